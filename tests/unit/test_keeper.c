/* Unit tests for the keeper (broker/keeper): the message codec (what decodes and what is refused),
 * the channel (fds travel, extra fds are closed), the held set's encoding across exec, and
 * keeper_run itself supervising a worker that is this test binary in peer mode: it hands the
 * keeper an fd, sends hostile messages, dies, and its successor gets the fd back. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker/keeper/chan.h"
#include "broker/keeper/keeper.h"
#include "broker/keeper/link.h"
#include "broker/keeper/msg.h"
#include "tests/unit/runner.h"

static struct keeper_msg mk(uint16_t type, uint8_t kind, const char *id, const char *blob,
                            unsigned nfds)
{
	struct keeper_msg m = {.type = type, .kind = kind, .nfds = nfds};
	if (id) {
		m.id_len = strlen(id);
		memcpy(m.id, id, m.id_len + 1);
	}
	if (blob) {
		m.blob = (const uint8_t *)blob;
		m.blob_len = strlen(blob);
	}
	return m;
}

START_TEST(test_roundtrip)
{
	const struct keeper_msg ms[] = {
	    mk(KEEPER_HOLD, KEEPER_KIND_FUSE, "c-1.a_b", "INITBYTES", 2),
	    mk(KEEPER_HOLD, KEEPER_KIND_LISTEN, "admin", NULL, 1),
	    mk(KEEPER_DROP, KEEPER_KIND_FUSE, "c-1", NULL, 0),
	    mk(KEEPER_FETCH, 0, NULL, NULL, 0),
	    mk(KEEPER_READY, 0, NULL, NULL, 0),
	    mk(KEEPER_UPGRADE, 0, NULL, NULL, 0),
	    mk(KEEPER_ITEM, KEEPER_KIND_FUSE, "x", "", 1),
	    mk(KEEPER_END, 0, NULL, NULL, 0),
	};
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		uint8_t buf[KEEPER_MSG_MAX];
		size_t len;
		ck_assert_int_eq(keeper_msg_encode(&ms[i], buf, sizeof(buf), &len), 0);
		struct keeper_msg d;
		ck_assert_int_eq(keeper_msg_decode(buf, len, ms[i].nfds, &d), 0);
		ck_assert_uint_eq(d.type, ms[i].type);
		ck_assert_uint_eq(d.kind, ms[i].kind);
		ck_assert_str_eq(d.id, ms[i].id);
		ck_assert_uint_eq(d.blob_len, ms[i].blob_len);
		if (d.blob_len)
			ck_assert(memcmp(d.blob, ms[i].blob, d.blob_len) == 0);
	}
	struct keeper_msg r = {.type = KEEPER_RESULT, .result = -EBUSY};
	uint8_t buf[KEEPER_MSG_MAX];
	size_t len;
	ck_assert_int_eq(keeper_msg_encode(&r, buf, sizeof(buf), &len), 0);
	struct keeper_msg d;
	ck_assert_int_eq(keeper_msg_decode(buf, len, 0, &d), 0);
	ck_assert_int_eq(d.result, -EBUSY);
}
END_TEST

START_TEST(test_refused)
{
	uint8_t buf[KEEPER_MSG_MAX];
	size_t len;
	struct keeper_msg d;
	struct keeper_msg h = mk(KEEPER_HOLD, KEEPER_KIND_FUSE, "c1", "ab", 1);
	ck_assert_int_eq(keeper_msg_encode(&h, buf, sizeof(buf), &len), 0);
	ck_assert_int_eq(keeper_msg_decode(buf, len, 1, &d), 0);
	/* fd counts: none, too many */
	ck_assert_int_eq(keeper_msg_decode(buf, len, 0, &d), -EPROTO);
	ck_assert_int_eq(keeper_msg_decode(buf, len, 3, &d), -EPROTO);
	/* every truncation, and one byte too many */
	for (size_t l = 0; l < len; l++)
		ck_assert_int_eq(keeper_msg_decode(buf, l, 1, &d), -EPROTO);
	uint8_t big[KEEPER_MSG_MAX + 1];
	memcpy(big, buf, len);
	big[len] = 'x';
	ck_assert_int_eq(keeper_msg_decode(big, len + 1, 1, &d), -EPROTO);
	/* each header byte changed: magic, version, type, reserved */
	size_t bytes[] = {0, 3, 4, 5, 7, 9};
	for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++) {
		memcpy(big, buf, len);
		big[bytes[i]] ^= 0x40;
		ck_assert_int_eq(keeper_msg_decode(big, len, 1, &d), -EPROTO);
	}
	/* an id that is not printable, or with a space */
	memcpy(big, buf, len);
	big[KEEPER_MSG_HEADER] = ' ';
	ck_assert_int_eq(keeper_msg_decode(big, len, 1, &d), -EPROTO);
	big[KEEPER_MSG_HEADER] = 0x7f;
	ck_assert_int_eq(keeper_msg_decode(big, len, 1, &d), -EPROTO);
	big[KEEPER_MSG_HEADER] = '\0';
	ck_assert_int_eq(keeper_msg_decode(big, len, 1, &d), -EPROTO);
	/* an unknown kind */
	memcpy(big, buf, len);
	big[8] = 9;
	ck_assert_int_eq(keeper_msg_decode(big, len, 1, &d), -EPROTO);
	/* shapes the encoder refuses: a listen socket with a blob or two fds, a DROP with an fd,
	 * a FETCH with an id, a HOLD without id, a positive result, an oversized blob */
	struct keeper_msg bad[] = {
	    mk(KEEPER_HOLD, KEEPER_KIND_LISTEN, "admin", "x", 1),
	    mk(KEEPER_HOLD, KEEPER_KIND_LISTEN, "admin", NULL, 2),
	    mk(KEEPER_DROP, KEEPER_KIND_FUSE, "c1", NULL, 1),
	    mk(KEEPER_FETCH, KEEPER_KIND_FUSE, "c1", NULL, 0),
	    mk(KEEPER_HOLD, KEEPER_KIND_FUSE, NULL, NULL, 1),
	    mk(KEEPER_HOLD, 0, "c1", NULL, 1),
	    {.type = KEEPER_RESULT, .result = 5},
	    {.type = KEEPER_READY, .result = -1},
	    {.type = 99},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(keeper_msg_encode(&bad[i], buf, sizeof(buf), &len), -EINVAL);
	static char blob[KEEPER_BLOB_MAX + 2];
	memset(blob, 'b', KEEPER_BLOB_MAX + 1);
	struct keeper_msg huge = mk(KEEPER_HOLD, KEEPER_KIND_FUSE, "c1", blob, 1);
	ck_assert_int_eq(keeper_msg_encode(&huge, buf, sizeof(buf), &len), -EINVAL);
	blob[KEEPER_BLOB_MAX] = '\0';
	huge = mk(KEEPER_HOLD, KEEPER_KIND_FUSE, "c1", blob, 1);
	ck_assert_int_eq(keeper_msg_encode(&huge, buf, sizeof(buf), &len), 0);
	ck_assert_int_eq(keeper_msg_encode(&huge, buf, len - 1, &len), -ENOSPC);
}
END_TEST

static size_t open_fds(void)
{
	size_t n = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

START_TEST(test_chan)
{
	int sv[2], p[2];
	ck_assert_int_eq(keeper_chan_pair(sv), 0);
	ck_assert_int_eq(pipe(p), 0);
	struct keeper_msg h = mk(KEEPER_HOLD, KEEPER_KIND_FUSE, "c1", "init", 1);
	ck_assert_int_eq(keeper_chan_send(sv[1], &h, &p[1]), 0);
	uint8_t buf[KEEPER_MSG_MAX];
	struct keeper_msg d;
	int fds[KEEPER_FDS_MAX];
	ck_assert_int_eq(keeper_chan_recv(sv[0], buf, &d, fds), 0);
	ck_assert_str_eq(d.id, "c1");
	ck_assert_uint_eq(d.nfds, 1);
	ck_assert(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(write(fds[0], "k", 1), 1); /* the same pipe */
	char c;
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	close(fds[0]);
	/* Three fds beside a message: refused, and none of them left open here. */
	size_t before = open_fds();
	uint8_t mb[KEEPER_MSG_MAX];
	size_t len;
	h.nfds = 2;
	ck_assert_int_eq(keeper_msg_encode(&h, mb, sizeof(mb), &len), 0);
	int three[3] = {p[0], p[1], p[1]};
	union {
		char b[CMSG_SPACE(sizeof(three))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = mb, .iov_len = len};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	struct cmsghdr *cmh = CMSG_FIRSTHDR(&mh);
	cmh->cmsg_level = SOL_SOCKET;
	cmh->cmsg_type = SCM_RIGHTS;
	cmh->cmsg_len = CMSG_LEN(sizeof(three));
	memcpy(CMSG_DATA(cmh), three, sizeof(three));
	ck_assert_int_eq(sendmsg(sv[1], &mh, 0), (ssize_t)len);
	ck_assert_int_eq(keeper_chan_recv(sv[0], buf, &d, fds), -EPROTO);
	ck_assert_uint_eq(open_fds(), before);
	/* Garbage: refused. The peer gone: -ENOTCONN. */
	ck_assert_int_eq(send(sv[1], "garbage", 7, 0), 7);
	ck_assert_int_eq(keeper_chan_recv(sv[0], buf, &d, fds), -EPROTO);
	close(sv[1]);
	ck_assert_int_eq(keeper_chan_recv(sv[0], buf, &d, fds), -ENOTCONN);
	close(sv[0]);
	close(p[0]);
	close(p[1]);
}
END_TEST

struct seen {
	int n;
	char ids[4][KEEPER_ID_MAX + 1];
	int fds[4][KEEPER_FDS_MAX];
};

static int state_cb(void *ud, const struct keeper_msg *m, const int *fds)
{
	struct seen *s = ud;
	ck_assert_int_lt(s->n, 4);
	strcpy(s->ids[s->n], m->id);
	memcpy(s->fds[s->n], fds, sizeof(int) * m->nfds);
	s->n++;
	return 0;
}

START_TEST(test_state)
{
	static uint8_t buf[KEEPER_STATE_MAX];
	size_t len = 0;
	struct keeper_msg a = mk(KEEPER_ITEM, KEEPER_KIND_FUSE, "c1", "init", 2);
	struct keeper_msg b = mk(KEEPER_ITEM, KEEPER_KIND_LISTEN, "admin", NULL, 1);
	int fa[2] = {7, 8}, fb[1] = {9};
	ck_assert_int_eq(keeper_state_append(buf, sizeof(buf), &len, &a, fa), 0);
	size_t first = len; /* a cut here is a whole (shorter) state */
	ck_assert_int_eq(keeper_state_append(buf, sizeof(buf), &len, &b, fb), 0);
	struct keeper_msg hold = mk(KEEPER_HOLD, KEEPER_KIND_LISTEN, "admin", NULL, 1);
	ck_assert_int_eq(keeper_state_append(buf, sizeof(buf), &len, &hold, fb), -EINVAL);
	struct seen s = {0};
	ck_assert_int_eq(keeper_state_parse(buf, len, state_cb, &s), 0);
	ck_assert_int_eq(s.n, 2);
	ck_assert_str_eq(s.ids[0], "c1");
	ck_assert_int_eq(s.fds[0][1], 8);
	ck_assert_str_eq(s.ids[1], "admin");
	ck_assert_int_eq(s.fds[1][0], 9);
	for (size_t l = 1; l < len; l++) {
		if (l == first)
			continue;
		struct seen t = {0};
		int r = keeper_state_parse(buf, l, state_cb, &t);
		ck_assert_msg(r == -EPROTO, "a state cut at %zu bytes parsed (%d)", l, r);
	}
	ck_assert_int_eq(keeper_state_parse(buf, 0, state_cb, &s), 0);
}
END_TEST

/* ---- keeper_run with this binary as its worker ---- */

#define PEER_ENV "KEEPER_TEST_PEER_OUT"

static void peer_say(const char *out, const char *line)
{
	FILE *f = fopen(out, "a");
	if (f) {
		fprintf(f, "%s\n", line);
		fclose(f);
	}
}

/* The worker: the first one hands over a pipe and hostile messages, then dies by SIGKILL; the
 * second checks it gets the pipe back, writes through it, and waits to be stopped. */
static void peer_main(const char *out)
{
	keeper_link *kl = NULL;
	if (keeper_link_open(&kl) < 0 || !kl)
		_exit(90);
	if (keeper_link_fetch(kl) < 0)
		_exit(91);
	int fds[KEEPER_FDS_MAX];
	unsigned n = 0;
	uint8_t blob[KEEPER_BLOB_MAX];
	size_t bl = 0;
	if (keeper_link_restarts(kl) == 0) {
		int p[2];
		if (pipe(p) < 0)
			_exit(92);
		/* Both ends: the pipe then lives on in the keeper only. */
		if (keeper_link_hold(kl, KEEPER_KIND_FUSE, "c1", p, 2, "init", 4) < 0)
			_exit(93);
		/* Hostile: garbage, a HOLD with an id with a space, a keeper-to-worker type. */
		int sock = -1;
		for (int fd = 3; fd < 64; fd++) {
			int type;
			socklen_t tl = sizeof(type);
			if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
			    type == SOCK_SEQPACKET)
				sock = fd;
		}
		if (sock < 0 || send(sock, "\x31\x44\x4b\x53junk", 8, 0) != 8)
			_exit(94);
		uint8_t mb[KEEPER_MSG_MAX];
		size_t len;
		struct keeper_msg h = mk(KEEPER_HOLD, KEEPER_KIND_FUSE, "c2", NULL, 1);
		keeper_msg_encode(&h, mb, sizeof(mb), &len);
		mb[KEEPER_MSG_HEADER] = ' ';
		if (send(sock, mb, len, 0) != (ssize_t)len) /* no fd beside it, either */
			_exit(95);
		struct keeper_msg e = mk(KEEPER_END, 0, NULL, NULL, 0);
		keeper_chan_send(sock, &e, NULL);
		keeper_link_ready(kl, 0);
		peer_say(out, "first");
		kill(getpid(), SIGKILL);
	}
	if (keeper_link_take(kl, KEEPER_KIND_FUSE, "c1", fds, &n, blob, &bl) < 0 || n != 2 ||
	    bl != 4 || memcmp(blob, "init", 4) != 0)
		_exit(96);
	char c = 0;
	if (write(fds[1], "x", 1) != 1 || read(fds[0], &c, 1) != 1 || c != 'x')
		_exit(97);
	keeper_link_ready(kl, 0);
	peer_say(out, "second got c1");
	for (;;)
		pause();
}

int unit_setup(void)
{
	const char *out = getenv(PEER_ENV);
	if (out && getenv(KEEPER_ENV_FD))
		peer_main(out);
	return 0;
}

static void run_report(void *ud, const struct keeper_event *ev)
{
	FILE *f = fopen(ud, "a");
	if (f) {
		fprintf(f, "event %d pid %d err %d held %zu status %d\n", (int)ev->kind,
		        (int)ev->pid, ev->err, ev->held, ev->status);
		fclose(f);
	}
}

static int file_has(const char *path, const char *s)
{
	char buf[8192] = {0};
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, s) != NULL;
}

START_TEST(test_run)
{
	char dir[] = "/tmp/keeper-test.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char out[128], evs[128], exe[512];
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(evs, sizeof(evs), "%s/events", dir);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	setenv(PEER_ENV, out, 1);
	pid_t k = fork();
	ck_assert_int_ge(k, 0);
	if (k == 0) {
		char *argv[] = {exe, NULL};
		struct keeper_config kc = {
		    .exe = exe, .argv = argv, .report = run_report, .report_ud = evs};
		_exit(keeper_run(&kc));
	}
	unsetenv(PEER_ENV);
	/* No timing assumption: wait as long as it takes (Check's timeout bounds the test). */
	while (!file_has(out, "second got c1"))
		usleep(10000);
	ck_assert(file_has(out, "first"));
	kill(k, SIGTERM);
	int st;
	ck_assert_int_eq(waitpid(k, &st, 0), k);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 128 + SIGTERM); /* the worker's status */
	char line[64];
	snprintf(line, sizeof(line), "event %d pid 0 err %d", KEEPER_EV_BAD_MSG, -EPROTO);
	ck_assert_msg(file_has(evs, line), "no bad message reported");
	snprintf(line, sizeof(line), "event %d", KEEPER_EV_DIED);
	ck_assert(file_has(evs, line));
	unlink(out);
	unlink(evs);
	rmdir(dir);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("keeper");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_chan);
	tcase_add_test(tc, test_state);
	tcase_add_test(tc, test_run);
	suite_add_tcase(s, tc);
	return s;
}
