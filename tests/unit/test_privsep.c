/* Unit tests for the privsep codec and channel (broker/privsep): every message type round-trips,
 * what the daemon must refuse is refused (truncated, oversized, wrong version or magic, a
 * request without its fd or with two, an arg with a NUL, a REPLY body over the limit), and a
 * request's fd travels beside it. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/privsep/chan.h"
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
	const struct privsep_msg ms[] = {
	    {.type = PRIVSEP_WHOAMI, .id = 1, .nfds = 1},
	    {.type = PRIVSEP_LIST, .id = 2, .nfds = 1},
	    {.type = PRIVSEP_READ, .id = 3, .arg = "app/db", .arg_len = 6, .nfds = 1},
	    {.type = PRIVSEP_READ, .id = 4, .arg = "", .arg_len = 0, .nfds = 1},
	    {.type = PRIVSEP_TEMPLATES, .id = 5, .nfds = 1},
	    {.type = PRIVSEP_TEMPLATE_READ, .id = 6, .arg = "t", .arg_len = 1, .nfds = 1},
	    {.type = PRIVSEP_MOUNT, .id = 7, .arg = "/run/x", .arg_len = 6, .nfds = 1},
	    {.type = PRIVSEP_HEALTH, .id = 8, .nfds = 1},
	    {.type = PRIVSEP_CONNKEY, .id = 9, .nfds = 1},
	    {.type = PRIVSEP_STATS, .body = stats, .body_len = sizeof(stats)},
	    {.type = PRIVSEP_REPLY,
	     .id = 10,
	     .status = 200,
	     .version = 7,
	     .arg = "application/octet-stream",
	     .arg_len = 24,
	     .body = (const uint8_t *)"v\0alue",
	     .body_len = 6},
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
	}
}
END_TEST

START_TEST(test_refused)
{
	uint8_t buf[PRIVSEP_HEADER + PRIVSEP_PATH_MAX + 16];
	struct privsep_msg m = {.type = PRIVSEP_READ, .id = 3, .arg = "a", .arg_len = 1, .nfds = 1};
	struct privsep_msg d;
	size_t n = enc(&m, buf, sizeof(buf));
	/* wrong version, wrong magic, unknown type */
	buf[4] = 2;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 1, 0, &d), -EPROTO);
	buf[4] = 1;
	buf[0] ^= 1;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 1, 0, &d), -EPROTO);
	buf[0] ^= 1;
	buf[6] = 99;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 1, 0, &d), -EPROTO);
	buf[6] = PRIVSEP_READ;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 1, 0, &d), 0);
	/* a request carrying a status, a version or a body */
	buf[12] = 200;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 1, 0, &d), -EPROTO);
	buf[12] = 0;
	buf[16] = 1;
	ck_assert_int_eq(privsep_msg_decode(buf, n, 1, 0, &d), -EPROTO);
	buf[16] = 0;
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
	ck_assert_int_eq(privsep_msg_decode(buf, n, 1, 0, &d), -EPROTO);
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
	struct privsep_msg m = {
	    .type = PRIVSEP_READ, .id = 42, .arg = "x/y", .arg_len = 3, .nfds = 1};
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
	/* a request without its fd is refused; nothing is left queued */
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

Suite *unit_suite(void)
{
	Suite *s = suite_create("privsep");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_chan_fd);
	suite_add_tcase(s, tc);
	return s;
}
