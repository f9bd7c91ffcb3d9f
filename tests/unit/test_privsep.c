/* Unit tests for the privsep codec, channel and connection table (broker/privsep): every message
 * type round-trips, what the daemon must refuse is refused (truncated, oversized, wrong version
 * or magic, a CONNKEY without its fd or a request with one, a request or CLOSE without a handle,
 * an arg with a NUL, a REPLY body over the limit), a CONNKEY's fd travels beside it, and the
 * table of connections names only the connections it holds now. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/privsep/chan.h"
#include "broker/privsep/conns.h"
#include "broker/privsep/msg.h"
#include "tests/unit/runner.h"

static size_t enc(const struct privsep_msg *m, uint8_t *buf, size_t cap)
{
	size_t len;
	ck_assert_int_eq(privsep_msg_encode_head(m, buf, cap, &len), 0);
	ck_assert_uint_le(len + m->body_len, cap);
	if (m->body_len)
		memcpy(buf + len, m->body, m->body_len);
	return len + m->body_len;
}

START_TEST(test_roundtrip)
{
	uint8_t stats[PRIVSEP_STATS_N * 8] = {1, 2, 3};
	const uint64_t h = (uint64_t)5 << 32 | 3;
	const struct privsep_msg ms[] = {
	    {.type = PRIVSEP_WHOAMI, .id = 1, .handle = h},
	    {.type = PRIVSEP_LIST, .id = 2, .handle = h},
	    {.type = PRIVSEP_READ, .id = 3, .arg = "app/db", .arg_len = 6, .handle = h},
	    {.type = PRIVSEP_READ, .id = 4, .arg = "", .arg_len = 0, .handle = 1},
	    {.type = PRIVSEP_TEMPLATES, .id = 5, .handle = h},
	    {.type = PRIVSEP_TEMPLATE_READ, .id = 6, .arg = "t", .arg_len = 1, .handle = h},
	    {.type = PRIVSEP_MOUNT, .id = 7, .arg = "/run/x", .arg_len = 6, .handle = h},
	    {.type = PRIVSEP_HEALTH, .id = 8, .handle = UINT64_MAX},
	    {.type = PRIVSEP_CONNKEY, .id = 9, .nfds = 1},
	    {.type = PRIVSEP_STATS, .body = stats, .body_len = sizeof(stats)},
	    {.type = PRIVSEP_CLOSE, .handle = h},
	    {.type = PRIVSEP_REPLY,
	     .id = 10,
	     .status = 200,
	     .version = 7,
	     .arg = "application/octet-stream",
	     .arg_len = 24,
	     .body = (const uint8_t *)"v\0alue",
	     .body_len = 6},
	    /* a CONNKEY's answer: the handle in the version field */
	    {.type = PRIVSEP_REPLY,
	     .id = 9,
	     .status = 200,
	     .version = h,
	     .arg = "text/plain",
	     .arg_len = 10,
	     .body = (const uint8_t *)"uid 0",
	     .body_len = 5},
	};
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		uint8_t buf[512];
		size_t n = enc(&ms[i], buf, sizeof(buf));
		struct privsep_msg d;
		ck_assert_int_eq(privsep_msg_decode(buf, n, ms[i].nfds, 1024, &d), 0);
		ck_assert_uint_eq(d.type, ms[i].type);
		ck_assert_uint_eq(d.id, ms[i].id);
		ck_assert_uint_eq(d.status, ms[i].status);
		ck_assert_uint_eq(d.version, ms[i].version);
		ck_assert_uint_eq(d.handle, ms[i].handle);
		ck_assert_uint_eq(d.arg_len, ms[i].arg_len);
		ck_assert_uint_eq(d.body_len, ms[i].body_len);
		ck_assert(memcmp(d.arg, ms[i].arg ? ms[i].arg : "", d.arg_len) == 0);
		ck_assert(
		    memcmp(d.body, ms[i].body ? ms[i].body : (const uint8_t *)"", d.body_len) == 0);
		/* every strict prefix and one byte more are refused */
		for (size_t k = 0; k < n; k++)
			ck_assert_int_eq(privsep_msg_decode(buf, k, ms[i].nfds, 1024, &d), -EPROTO);
		buf[n] = 0;
		ck_assert_int_eq(privsep_msg_decode(buf, n + 1, ms[i].nfds, 1024, &d), -EPROTO);
		/* a wrong fd count is refused */
		ck_assert_int_eq(privsep_msg_decode(buf, n, ms[i].nfds ^ 1, 1024, &d), -EPROTO);
		/* a handle where none is carried, none where one is: refused */
		if (ms[i].type != PRIVSEP_REPLY) {
			uint8_t save[8];
			memcpy(save, buf + 16, 8);
			memset(buf + 16, 0, 8);
			if (!ms[i].handle)
				buf[16] = 1;
			ck_assert_int_eq(privsep_msg_decode(buf, n, ms[i].nfds, 1024, &d), -EPROTO);
			memcpy(buf + 16, save, 8);
		}
	}
}
END_TEST

START_TEST(test_refused)
{
	uint8_t buf[PRIVSEP_HEADER + PRIVSEP_PATH_MAX + 16];
	struct privsep_msg m = {
	    .type = PRIVSEP_READ, .id = 3, .arg = "a", .arg_len = 1, .handle = 9};
	struct privsep_msg d;
	size_t n = enc(&m, buf, sizeof(buf));
	/* wrong version (1: a request beside its fd), wrong magic, unknown type */
	buf[4] = 1;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 0, &d), -EPROTO);
	ck_assert_int_eq(privsep_msg_decode(buf, n, 1, 0, &d), -EPROTO);
	buf[4] = 3;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 0, &d), -EPROTO);
	buf[4] = PRIVSEP_VERSION;
	buf[0] ^= 1;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 0, &d), -EPROTO);
	buf[0] ^= 1;
	buf[6] = 99;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 0, &d), -EPROTO);
	buf[6] = PRIVSEP_READ;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 0, &d), 0);
	ck_assert_uint_eq(d.handle, 9);
	/* a request with an fd, with a status, without a handle */
	ck_assert_int_eq(privsep_msg_decode(buf, n, 1, 0, &d), -EPROTO);
	buf[12] = 200;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 0, &d), -EPROTO);
	buf[12] = 0;
	buf[16] = 0;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 0, &d), -EPROTO);
	buf[16] = 9;
	/* a CONNKEY naming a handle; a CLOSE with an id or without a handle */
	struct privsep_msg ck = {.type = PRIVSEP_CONNKEY, .id = 1, .handle = 9, .nfds = 1};
	ck_assert_int_eq(privsep_msg_encode_head(&ck, buf, sizeof(buf), &n), -EINVAL);
	struct privsep_msg cl = {.type = PRIVSEP_CLOSE, .id = 1, .handle = 9};
	ck_assert_int_eq(privsep_msg_encode_head(&cl, buf, sizeof(buf), &n), -EINVAL);
	cl.id = 0;
	cl.handle = 0;
	ck_assert_int_eq(privsep_msg_encode_head(&cl, buf, sizeof(buf), &n), -EINVAL);
	n = enc(&m, buf, sizeof(buf));
	/* a NUL or a control byte in a name */
	m.arg = "a\0b";
	m.arg_len = 3;
	ck_assert_int_eq(privsep_msg_encode_head(&m, buf, sizeof(buf), &n), -EINVAL);
	m.arg = "a\nb";
	ck_assert_int_eq(privsep_msg_encode_head(&m, buf, sizeof(buf), &n), -EINVAL);
	/* a name over PRIVSEP_NAME_MAX: encode refuses; a forged header saying so is refused */
	char big[PRIVSEP_PATH_MAX + 1];
	memset(big, 'a', sizeof(big));
	m.arg = big;
	m.arg_len = PRIVSEP_NAME_MAX + 1;
	ck_assert_int_eq(privsep_msg_encode_head(&m, buf, sizeof(buf), &n), -EINVAL);
	m.type = PRIVSEP_MOUNT;
	ck_assert_int_eq(privsep_msg_encode_head(&m, buf, sizeof(buf), &n), 0);
	buf[6] = PRIVSEP_READ;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 0, &d), -EPROTO);
	m.arg_len = PRIVSEP_PATH_MAX + 1;
	ck_assert_int_eq(privsep_msg_encode_head(&m, buf, sizeof(buf), &n), -EINVAL);
	/* a REPLY: status out of range, no content type, body over the limit */
	struct privsep_msg r = {
	    .type = PRIVSEP_REPLY, .id = 1, .status = 99, .arg = "x", .arg_len = 1};
	ck_assert_int_eq(privsep_msg_encode_head(&r, buf, sizeof(buf), &n), -EINVAL);
	r.status = 200;
	r.arg_len = 0;
	ck_assert_int_eq(privsep_msg_encode_head(&r, buf, sizeof(buf), &n), -EINVAL);
	r.arg_len = 1;
	static uint8_t body[64];
	r.body = body;
	r.body_len = sizeof(body);
	n = enc(&r, buf, sizeof(buf));
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 64, &d), 0);
	ck_assert_int_eq(privsep_msg_decode(buf, n, 0, 63, &d), -EPROTO);
	/* STATS with a wrong body size or an id */
	struct privsep_msg s = {.type = PRIVSEP_STATS, .body = body, .body_len = 8};
	ck_assert_int_eq(privsep_msg_encode_head(&s, buf, sizeof(buf), &n), -EINVAL);
	s.body_len = PRIVSEP_STATS_N * 8 > sizeof(body) ? 0 : PRIVSEP_STATS_N * 8;
	s.id = 1;
	ck_assert_int_eq(privsep_msg_encode_head(&s, buf, sizeof(buf), &n), -EINVAL);
}
END_TEST

START_TEST(test_chan_fd)
{
	int sv[2];
	ck_assert_int_eq(privsep_chan_pair(sv, 256 * 1024), 0);
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	struct privsep_msg m = {.type = PRIVSEP_CONNKEY, .id = 42, .nfds = 1};
	ck_assert_int_eq(privsep_chan_send(sv[1], &m, fd, 0), 0);
	size_t cap = PRIVSEP_MSG_MAX(200 * 1024);
	uint8_t *buf = malloc(cap);
	struct privsep_msg d;
	int got = -1;
	ck_assert_int_eq(privsep_chan_recv(sv[0], buf, cap, 200 * 1024, MSG_DONTWAIT, &d, &got), 0);
	ck_assert_uint_eq(d.id, 42);
	ck_assert_int_ge(got, 0);
	struct stat a, b;
	ck_assert_int_eq(fstat(fd, &a), 0);
	ck_assert_int_eq(fstat(got, &b), 0);
	ck_assert(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	close(got);
	/* a CONNKEY without its fd is refused; nothing is left queued */
	m.nfds = 0;
	ck_assert_int_eq(privsep_chan_send(sv[1], &m, -1, 0), -EINVAL);
	/* a large REPLY (a 200 KiB value) fits in one datagram */
	uint8_t *val = calloc(1, 200 * 1024);
	struct privsep_msg r = {.type = PRIVSEP_REPLY,
	                        .id = 42,
	                        .status = 200,
	                        .arg = "a/b",
	                        .arg_len = 3,
	                        .body = val,
	                        .body_len = 200 * 1024};
	ck_assert_int_eq(privsep_chan_send(sv[0], &r, -1, MSG_DONTWAIT), 0);
	ck_assert_int_eq(privsep_chan_recv(sv[1], buf, cap, 200 * 1024, 0, &d, &got), 0);
	ck_assert_uint_eq(d.body_len, 200 * 1024);
	ck_assert_int_eq(got, -1);
	/* nothing queued: EAGAIN; the peer closed: ENOTCONN */
	ck_assert_int_eq(privsep_chan_recv(sv[0], buf, cap, 0, MSG_DONTWAIT, &d, &got), -EAGAIN);
	close(sv[1]);
	ck_assert_int_eq(privsep_chan_recv(sv[0], buf, cap, 0, MSG_DONTWAIT, &d, &got), -ENOTCONN);
	close(sv[0]);
	close(fd);
	free(val);
	free(buf);
}
END_TEST

/* The daemon's table of the server's connections: a handle names its entry while it is held,
 * never after (not even once the slot holds another connection), a made-up one names nothing,
 * the table is bounded and empties (a server restart) without reusing a handle. */
static void test_conns_count(void *v, void *ud)
{
	ck_assert_ptr_nonnull(v);
	(*(int *)ud)++;
}

START_TEST(test_conns)
{
	privsep_conns *t = NULL;
	ck_assert_int_eq(privsep_conns_new(&t, 0), -EINVAL);
	ck_assert_int_eq(privsep_conns_new(&t, PRIVSEP_CONNS_MAX + 1), -EINVAL);
	ck_assert_int_eq(privsep_conns_new(&t, 3), 0);
	int v[5];
	uint64_t h[5];
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(privsep_conns_add(t, &v[i], &h[i]), 0);
		ck_assert_uint_ne(h[i], 0);
		for (int j = 0; j < i; j++)
			ck_assert_uint_ne(h[i], h[j]);
	}
	ck_assert_uint_eq(privsep_conns_count(t), 3);
	/* full: the limit holds */
	ck_assert_int_eq(privsep_conns_add(t, &v[3], &h[3]), -ENOSPC);
	ck_assert_int_eq(privsep_conns_add(t, NULL, &h[3]), -EINVAL);
	for (int i = 0; i < 3; i++)
		ck_assert_ptr_eq(privsep_conns_get(t, h[i]), &v[i]);
	/* made up: 0, another generation of a held slot, a slot out of range, a free slot */
	ck_assert_ptr_null(privsep_conns_get(t, 0));
	ck_assert_ptr_null(privsep_conns_get(t, h[0] + ((uint64_t)1 << 32)));
	ck_assert_ptr_null(privsep_conns_get(t, h[0] & 0xffffffffu));
	ck_assert_ptr_null(privsep_conns_get(t, (h[0] & ~(uint64_t)0xffffffffu) | 3));
	ck_assert_ptr_null(privsep_conns_get(t, UINT64_MAX));
	/* closed: gone, and its slot's next connection has another handle */
	ck_assert_ptr_eq(privsep_conns_remove(t, h[1]), &v[1]);
	ck_assert_ptr_null(privsep_conns_get(t, h[1]));
	ck_assert_ptr_null(privsep_conns_remove(t, h[1]));
	ck_assert_int_eq(privsep_conns_add(t, &v[3], &h[3]), 0);
	ck_assert_uint_eq(h[3] & 0xffffffffu, h[1] & 0xffffffffu); /* the same slot */
	ck_assert_uint_ne(h[3], h[1]);
	ck_assert_ptr_null(privsep_conns_get(t, h[1]));
	ck_assert_ptr_eq(privsep_conns_get(t, h[3]), &v[3]);
	/* a server restart: every entry drained, none named after */
	int drained = 0;
	privsep_conns_drain(t, test_conns_count, &drained);
	ck_assert_int_eq(drained, 3);
	ck_assert_uint_eq(privsep_conns_count(t), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_ptr_null(privsep_conns_get(t, h[i]));
	ck_assert_int_eq(privsep_conns_add(t, &v[4], &h[4]), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_ne(h[4], h[i]);
	privsep_conns_free(t);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("privsep");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_chan_fd);
	tcase_add_test(tc, test_conns);
	suite_add_tcase(s, tc);
	return s;
}
