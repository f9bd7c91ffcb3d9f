/* sfs_handover: FUSE connections handed to a new serving process (issue #14 items 2 and 3, the
 * fuse/ part), with real mounts. Built for tests only; run by tests/integration/test_handover.sh.
 *
 * The process plays the keeper: in a private mount namespace it starts a server child that
 * serves M mounts (one sfs each, F files each) and sends back a duplicate of every /dev/fuse fd,
 * its journal memfd and its recorded INIT. Server children are forked from the keeper, which
 * never touches sfs itself, so each one starts with nothing of its predecessor but the fds.
 *
 * usage: sfs_handover full [--mounts M] [--files F] [--kills K]
 *   M reader processes (one per mount, like one container each) loop open/read/close over their
 *   mount's files; reader 0 also keeps a file open (O_DIRECT: every read reaches the server) and
 *   reads it again each round, reader 1 also reads and polls .version. The server is killed -9 K
 *   times (each time once every reader has made progress) and re-spawned in adopt mode; then a
 *   view change must reach every reader; then a deliberate hand-over (sfs_release, adopt) and
 *   another view change. No read may fail; the longest open+read+close is printed and must stay
 *   under 1 s.
 * usage: sfs_handover stall [--no-resend] [--expect-hang] [--bound-ms MS]
 *   The server is made to hold a request it has read (its access check blocks) and is killed -9
 *   in that state. With FUSE_NOTIFY_RESEND the new server answers it: the reader's open
 *   completes. --no-resend adopts without it: the reader stays blocked (with --expect-hang that
 *   is the expected outcome, checked for MS milliseconds).
 * Exit: 0 pass, 1 fail, 77 the machine lacks root or /dev/fuse. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuse/sfs.h"

#define MOUNTS_MAX 64
#define FILES_MAX 64
#define WAIT_MS 120000 /* bound of every "wait until": generous, a loaded machine is slow */

struct rstat {
	atomic_ulong iters;
	atomic_ulong fails;
	atomic_ulong max_ns;
	atomic_ulong saw_gen;      /* highest generation read from a fresh open */
	atomic_ulong held_gen;     /* reader 0: generation read through the held-open file */
	atomic_ulong version_seen; /* reader 1: last .version value read */
	atomic_int first_errno;
	char first_what[96];
};

struct shm {
	atomic_int stop;
	atomic_int stall_req; /* the server's check blocks (once) */
	atomic_int stalled;
	atomic_int stall_done; /* the stalled reader's open+read finished */
	atomic_int stall_result;
	struct rstat r[MOUNTS_MAX];
};

static struct shm *shm;
static int nmounts = 20, nfiles = 5, nkills = 10;
static char base[64];
static unsigned adopt_flags;
static int drop_file = -1; /* a file left out of the views this server sets */

struct conn {
	int fuse_fd, journal_fd;
	uint8_t init[SFS_INIT_RECORD_MAX];
	size_t init_len;
};
static struct conn conns[MOUNTS_MAX];

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the server (a child of the keeper) ---- */

static int t_check(void *ud, pid_t pid, uid_t uid, gid_t gid)
{
	if (atomic_exchange(&shm->stall_req, 0)) {
		atomic_store(&shm->stalled, 1);
		for (;;)
			pause(); /* holds the request it has read until killed */
	}
	return 0;
}

static const struct sfs_ops t_ops = {.check = t_check};
static const struct sfs_config t_cfg = {.dir_uid = 0, .dir_gid = 0};

static sfs *fss[MOUNTS_MAX];

static void content(char *buf, size_t len, int m, int f, uint64_t gen)
{
	snprintf(buf, len, "m%d-f%d-g%" PRIu64 "\n", m, f, gen);
}

static int set_views(uint64_t gen)
{
	for (int m = 0; m < nmounts; m++) {
		struct sfs_entry e[FILES_MAX];
		sfs_blob *b[FILES_MAX];
		char path[FILES_MAX][32];
		size_t n = 0;
		for (int f = 0; f < nfiles; f++) {
			char c[64];
			if (f == drop_file)
				continue;
			content(c, sizeof(c), m, f, gen);
			b[n] = sfs_blob_new((const uint8_t *)c, strlen(c), gen);
			if (!b[n])
				return -ENOMEM;
			snprintf(path[n], sizeof(path[n]), "d%d/f%d", f % 2, f);
			e[n] = (struct sfs_entry){.path = path[n], .mode = 0444, .blob = b[n]};
			n++;
		}
		int r = sfs_set_view(fss[m], e, n);
		for (size_t i = 0; i < n; i++)
			sfs_blob_unref(b[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static void send_msg(int s, const char *text, const int *fds, int nfd, const void *extra,
                     size_t elen)
{
	char buf[64 + SFS_INIT_RECORD_MAX];
	size_t tl = strlen(text) + 1;
	memcpy(buf, text, tl);
	if (elen)
		memcpy(buf + tl, extra, elen);
	struct iovec iov = {buf, tl + elen};
	union {
		char b[CMSG_SPACE(sizeof(int) * 2)];
		struct cmsghdr h;
	} cm;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfd) {
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfd);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfd);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfd);
	}
	if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0)
		die("sendmsg: %s", strerror(errno));
}

/* Receives one message: its text (NUL-terminated) and extra bytes, and up to 2 fds. Returns the
 * message length, 0 at EOF. Waits at most WAIT_MS. */
static ssize_t recv_msg(int s, char *buf, size_t len, int *fds, int *nfd)
{
	struct pollfd p = {.fd = s, .events = POLLIN};
	int pr;
	while ((pr = poll(&p, 1, WAIT_MS)) < 0 && errno == EINTR)
		;
	if (pr == 0)
		die("no message from the server in %d ms", WAIT_MS);
	union {
		char b[CMSG_SPACE(sizeof(int) * 2)];
		struct cmsghdr h;
	} cm;
	struct iovec iov = {buf, len};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	ssize_t n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		die("recvmsg: %s", strerror(errno));
	*nfd = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			*nfd = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)*nfd);
		}
	if (n > 0 && !memchr(buf, '\0', (size_t)n))
		die("a message without its text");
	return n;
}

static void mountpoint(char *buf, size_t len, int m)
{
	snprintf(buf, len, "%s/m%02d", base, m);
}

/* Serves until killed, told to release, or the keeper goes away. */
static void server_loop(int ctl)
{
	struct pollfd p[MOUNTS_MAX + 1];
	for (;;) {
		for (int m = 0; m < nmounts; m++)
			p[m] = (struct pollfd){.fd = sfs_fd(fss[m]), .events = POLLIN};
		p[nmounts] = (struct pollfd){.fd = ctl, .events = POLLIN};
		if (poll(p, (nfds_t)nmounts + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(2);
		}
		for (int m = 0; m < nmounts; m++)
			if (p[m].revents) {
				int r = sfs_dispatch(fss[m]);
				if (r < 0) {
					fprintf(stderr, "server: dispatch m%d: %s\n", m,
					        strerror(-r));
					_exit(3);
				}
			}
		if (!p[nmounts].revents)
			continue;
		char cmd[64];
		ssize_t n = recv(ctl, cmd, sizeof(cmd) - 1, 0);
		if (n <= 0)
			_exit(0);
		cmd[n] = '\0';
		uint64_t gen;
		if (sscanf(cmd, "view %" SCNu64, &gen) == 1) {
			/* no flush here: an invalidation can wait on a page only this thread's
			 * answer unlocks; the keeper waits for the readers to see it instead */
			int r = set_views(gen);
			send_msg(ctl, r == 0 ? "ok" : "err", NULL, 0, NULL, 0);
		} else if (!strcmp(cmd, "release")) {
			for (int m = 0; m < nmounts; m++)
				sfs_release(fss[m]);
			send_msg(ctl, "released", NULL, 0, NULL, 0);
			_exit(0);
		}
	}
}

/* A first server: new sessions, mounted here, reported to the keeper once INIT was served. */
static void server_new(int ctl, uint64_t gen)
{
	for (int m = 0; m < nmounts; m++) {
		int r = sfs_new(&fss[m], &t_cfg, &t_ops, NULL);
		if (r < 0)
			die("sfs_new: %s", strerror(-r));
		char data[256], mp[96];
		if (sfs_mount_data(fss[m], data, sizeof(data)) < 0)
			die("mount data");
		mountpoint(mp, sizeof(mp), m);
		if (mount("sfs-handover", mp, "fuse", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
		          data) < 0)
			die("mount %s: %s", mp, strerror(errno));
	}
	int r = set_views(gen);
	if (r < 0)
		die("set_view: %s", strerror(-r));
	/* INIT is the first request of every connection */
	for (int m = 0; m < nmounts; m++) {
		uint8_t init[SFS_INIT_RECORD_MAX];
		ssize_t n;
		uint64_t t0 = now_ns();
		while ((n = sfs_init_record(fss[m], init, sizeof(init))) == -ENOENT) {
			struct pollfd p = {.fd = sfs_fd(fss[m]), .events = POLLIN};
			if (poll(&p, 1, 100) > 0 && sfs_dispatch(fss[m]) < 0)
				die("dispatch before INIT");
			if (now_ns() - t0 > (uint64_t)WAIT_MS * 1000000u)
				die("no INIT on m%d", m);
		}
		if (n < 0)
			die("sfs_init_record: %s", strerror((int)-n));
		int fds[2] = {sfs_fd(fss[m]), sfs_journal_fd(fss[m])};
		send_msg(ctl, "conn", fds, 2, init, (size_t)n);
	}
	send_msg(ctl, "ready", NULL, 0, NULL, 0);
	server_loop(ctl);
}

/* A server adopting the keeper's connections (inherited through fork). */
static void server_adopt(int ctl, uint64_t gen)
{
	for (int m = 0; m < nmounts; m++) {
		int r = sfs_adopt(&fss[m], &t_cfg, &t_ops, NULL, conns[m].fuse_fd, conns[m].init,
		                  conns[m].init_len, conns[m].journal_fd, adopt_flags);
		if (r < 0)
			die("sfs_adopt m%d: %s", m, strerror(-r));
		close(conns[m].fuse_fd); /* the keeper's copies stay the keeper's */
		close(conns[m].journal_fd);
	}
	int r = set_views(gen);
	if (r < 0)
		die("set_view after adopt: %s", strerror(-r));
	for (int m = 0; m < nmounts; m++) {
		r = sfs_resend_status(fss[m]);
		if (r != 0 && !(adopt_flags & SFS_ADOPT_NO_RESEND))
			fprintf(stderr, "server: RESEND m%d: %s (requests in flight are lost)\n", m,
			        strerror(-r));
	}
	send_msg(ctl, "ready", NULL, 0, NULL, 0);
	server_loop(ctl);
}

/* ---- the keeper ---- */

static pid_t server_pid;
static int server_thread_fd = -1; /* pidfd of the server's serving (main) thread */
static int ctl_keeper = -1;
static pid_t dead[256]; /* killed servers not reaped yet */
static int ndead;

/* In every child: dies with the keeper (a failed test leaves no reader spinning). */
static pid_t keeper_pid;

static void child_setup(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != keeper_pid)
		_exit(1);
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* Linux 6.9 */
#endif

static void spawn_server(bool adopt, uint64_t gen)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		die("socketpair: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		child_setup();
		close(sp[0]);
		if (adopt)
			server_adopt(sp[1], gen);
		else
			server_new(sp[1], gen);
		_exit(0);
	}
	close(sp[1]);
	if (ctl_keeper >= 0)
		close(ctl_keeper);
	ctl_keeper = sp[0];
	server_pid = pid;
	/* The serving thread's pidfd, not the process's: a killed server whose notifier thread is
	 * blocked in an invalidation (on a lock held by a request only a server can answer) does
	 * not finish dying until the next server has answered that request. */
	server_thread_fd = (int)syscall(SYS_pidfd_open, pid, PIDFD_THREAD);
	if (server_thread_fd < 0)
		die("pidfd_open(PIDFD_THREAD): %s", strerror(errno));
	char buf[64 + SFS_INIT_RECORD_MAX];
	int fds[2], nfd, m = 0;
	for (;;) {
		ssize_t n = recv_msg(ctl_keeper, buf, sizeof(buf), fds, &nfd);
		if (n == 0)
			die("the server exited while starting");
		if (!strcmp(buf, "ready"))
			break;
		if (strcmp(buf, "conn") || nfd != 2 || m >= nmounts)
			die("unexpected message '%s' (%d fds)", buf, nfd);
		conns[m].fuse_fd = fds[0];
		conns[m].journal_fd = fds[1];
		conns[m].init_len = (size_t)n - 5;
		memcpy(conns[m].init, buf + 5, conns[m].init_len);
		m++;
	}
	if (!adopt && m != nmounts)
		die("%d connections reported, %d expected", m, nmounts);
}

/* Kills the server and waits for its serving thread to be gone (not for the process: see
 * spawn_server); it is reaped by reap_all. */
static void kill_server(void)
{
	if (kill(server_pid, SIGKILL) < 0)
		die("kill: %s", strerror(errno));
	struct pollfd p = {.fd = server_thread_fd, .events = POLLIN};
	int r;
	while ((r = poll(&p, 1, WAIT_MS)) < 0 && errno == EINTR)
		;
	if (r == 0)
		die("the killed server's serving thread is still there after %d ms", WAIT_MS);
	close(server_thread_fd);
	server_thread_fd = -1;
	if (ndead == (int)(sizeof(dead) / sizeof(dead[0])))
		die("too many servers");
	dead[ndead++] = server_pid;
}

static void abort_conn(int m);

/* The end: aborts every connection (a killed server stuck in an invalidation ends with it) and
 * reaps every server. */
static void reap_all(void)
{
	for (int m = 0; m < nmounts; m++)
		abort_conn(m);
	for (int i = 0; i < ndead; i++) {
		int st;
		while (waitpid(dead[i], &st, 0) < 0)
			if (errno != EINTR)
				die("waitpid: %s", strerror(errno));
	}
	ndead = 0;
}

static void server_cmd(const char *cmd, const char *want)
{
	send_msg(ctl_keeper, cmd, NULL, 0, NULL, 0);
	char buf[64];
	int fds[2], nfd;
	if (recv_msg(ctl_keeper, buf, sizeof(buf), fds, &nfd) == 0)
		die("server gone during '%s'", cmd);
	if (strcmp(buf, want))
		die("'%s' answered '%s'", cmd, buf);
}

/* ---- readers (one per mount: a container each) ---- */

static void fail_read(struct rstat *st, const char *what, int err)
{
	if (atomic_fetch_add(&st->fails, 1) == 0) {
		snprintf(st->first_what, sizeof(st->first_what), "%s", what);
		atomic_store(&st->first_errno, err);
	}
}

/* Parses "mM-fF-gG\n"; the generation, 0 if it is not file F of mount M. */
static uint64_t parse_gen(const char *buf, int m, int f)
{
	int mm, ff;
	uint64_t g;
	char nl;
	if (sscanf(buf, "m%d-f%d-g%" SCNu64 "%c", &mm, &ff, &g, &nl) != 4 || mm != m || ff != f ||
	    nl != '\n')
		return 0;
	return g;
}

static void store_max(atomic_ulong *a, unsigned long v)
{
	unsigned long cur = atomic_load(a);
	while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

static void reader(int m)
{
	struct rstat *st = &shm->r[m];
	char mp[96], path[160], buf[128], what[96];
	mountpoint(mp, sizeof(mp), m);
	int held = -1, ver = -1;
	if (m == 0) {
		snprintf(path, sizeof(path), "%s/d0/f0", mp);
		held = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (held < 0)
			fail_read(st, "open held", errno);
	}
	if (m == 1) {
		snprintf(path, sizeof(path), "%s/.version", mp);
		ver = open(path, O_RDONLY | O_CLOEXEC);
		if (ver < 0)
			fail_read(st, "open .version", errno);
	}
	for (unsigned long i = 0; !atomic_load(&shm->stop); i++) {
		int f = (int)(i % (unsigned long)nfiles);
		snprintf(path, sizeof(path), "%s/d%d/f%d", mp, f % 2, f);
		uint64_t t0 = now_ns();
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = -1;
		int err = 0;
		if (fd < 0) {
			err = errno;
			snprintf(what, sizeof(what), "open d%d/f%d", f % 2, f);
		} else {
			n = read(fd, buf, sizeof(buf) - 1);
			if (n < 0) {
				err = errno;
				snprintf(what, sizeof(what), "read d%d/f%d", f % 2, f);
			}
			close(fd);
		}
		uint64_t dt = now_ns() - t0;
		store_max(&st->max_ns, (unsigned long)dt);
		if (n < 0) {
			fail_read(st, what, err);
		} else {
			buf[n] = '\0';
			uint64_t g = parse_gen(buf, m, f);
			if (!g)
				fail_read(st, "wrong content", 0);
			else
				store_max(&st->saw_gen, (unsigned long)g);
		}
		if (held >= 0) {
			t0 = now_ns();
			n = pread(held, buf, sizeof(buf) - 1, 0);
			store_max(&st->max_ns, (unsigned long)(now_ns() - t0));
			if (n < 0) {
				fail_read(st, "pread held", errno);
			} else {
				buf[n] = '\0';
				uint64_t g = parse_gen(buf, 0, 0);
				if (!g)
					fail_read(st, "held: wrong content", 0);
				else
					store_max(&st->held_gen, (unsigned long)g);
			}
		}
		if (ver >= 0) {
			struct pollfd p = {.fd = ver, .events = POLLIN | POLLPRI};
			t0 = now_ns();
			if (poll(&p, 1, 0) < 0)
				fail_read(st, "poll .version", errno);
			n = pread(ver, buf, sizeof(buf) - 1, 0);
			store_max(&st->max_ns, (unsigned long)(now_ns() - t0));
			if (n <= 0) {
				fail_read(st, "read .version", n < 0 ? errno : 0);
			} else {
				buf[n] = '\0';
				atomic_store(&st->version_seen, strtoul(buf, NULL, 10));
			}
		}
		atomic_fetch_add(&st->iters, 1);
	}
	_exit(0);
}

static pid_t readers[MOUNTS_MAX];

static void close_conns(void)
{
	for (int m = 0; m < nmounts; m++) {
		close(conns[m].fuse_fd);
		close(conns[m].journal_fd);
	}
}

static void spawn_readers(void)
{
	for (int m = 0; m < nmounts; m++) {
		readers[m] = fork();
		if (readers[m] < 0)
			die("fork: %s", strerror(errno));
		if (readers[m] == 0) {
			child_setup();
			close_conns();
			close(ctl_keeper);
			reader(m);
		}
	}
}

/* Waits until every reader has done `more` iterations more than in `since`. */
static void wait_progress(unsigned long *since, unsigned long more, const char *when)
{
	uint64_t t0 = now_ns();
	for (int m = 0; m < nmounts; m++) {
		while (atomic_load(&shm->r[m].iters) < since[m] + more) {
			if (now_ns() - t0 > (uint64_t)WAIT_MS * 1000000u)
				die("reader %d made no progress %s (%lu iterations, %lu failures)",
				    m, when, atomic_load(&shm->r[m].iters),
				    atomic_load(&shm->r[m].fails));
			sleep_ms(1);
		}
	}
	for (int m = 0; m < nmounts; m++)
		since[m] = atomic_load(&shm->r[m].iters);
}

/* Waits until every reader has read generation gen (reader 0 also through its held file). */
static void wait_gen(uint64_t gen, const char *when)
{
	uint64_t t0 = now_ns();
	for (int m = 0; m < nmounts; m++) {
		while (atomic_load(&shm->r[m].saw_gen) < gen ||
		       (m == 0 && atomic_load(&shm->r[0].held_gen) < gen)) {
			if (now_ns() - t0 > (uint64_t)WAIT_MS * 1000000u)
				die("reader %d never read generation %" PRIu64
				    " %s (saw %lu, held %lu)",
				    m, gen, when, atomic_load(&shm->r[m].saw_gen),
				    atomic_load(&shm->r[m].held_gen));
			sleep_ms(1);
		}
	}
}

static int run_full(void)
{
	uint64_t gen = 1;
	spawn_server(false, gen);
	spawn_readers();
	unsigned long since[MOUNTS_MAX] = {0};
	wait_progress(since, 20, "before the first kill");
	wait_gen(gen, "before the first kill");
	for (int k = 1; k <= nkills; k++) {
		kill_server();
		spawn_server(true, gen);
		wait_progress(since, 20, "after a kill -9 and adopt");
	}
	printf("ok - %d kill -9 hand-overs, every reader kept reading\n", nkills);
	unsigned long ver_before = nmounts > 1 ? atomic_load(&shm->r[1].version_seen) : 0;
	gen++;
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "view %" PRIu64, gen);
	server_cmd(cmd, "ok");
	wait_gen(gen, "after a view change following the hand-overs");
	if (nmounts > 1) {
		uint64_t t0 = now_ns();
		while (atomic_load(&shm->r[1].version_seen) <= ver_before) {
			if (now_ns() - t0 > (uint64_t)WAIT_MS * 1000000u)
				die(".version stayed at %lu", ver_before);
			sleep_ms(1);
		}
	}
	printf("ok - a view change after the hand-overs reached every reader (the held-open file "
	       "too; .version %lu -> %lu)\n",
	       ver_before, nmounts > 1 ? atomic_load(&shm->r[1].version_seen) : 0);
	/* a deliberate hand-over: release, then adopt */
	server_cmd("release", "released");
	int st;
	while (waitpid(server_pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("the released server ended with status %d", st);
	close(server_thread_fd);
	spawn_server(true, gen);
	wait_progress(since, 20, "after a deliberate hand-over");
	gen++;
	snprintf(cmd, sizeof(cmd), "view %" PRIu64, gen);
	server_cmd(cmd, "ok");
	wait_gen(gen, "after a view change following the deliberate hand-over");
	printf("ok - deliberate hand-over (sfs_release, sfs_adopt), then a view change reached "
	       "every reader\n");

	atomic_store(&shm->stop, 1);
	unsigned long fails = 0, max_ns = 0, iters = 0;
	for (int m = 0; m < nmounts; m++) {
		while (waitpid(readers[m], &st, 0) < 0)
			if (errno != EINTR)
				die("waitpid: %s", strerror(errno));
		struct rstat *r = &shm->r[m];
		fails += atomic_load(&r->fails);
		iters += atomic_load(&r->iters);
		if (atomic_load(&r->max_ns) > max_ns)
			max_ns = atomic_load(&r->max_ns);
		if (atomic_load(&r->fails))
			fprintf(stderr, "reader %d: %lu failures, first: %s: %s\n", m,
			        atomic_load(&r->fails), r->first_what,
			        strerror(atomic_load(&r->first_errno)));
	}
	printf("readers: %lu rounds, %lu failures, longest open+read+close %.1f ms\n", iters, fails,
	       (double)max_ns / 1e6);
	kill_server();
	reap_all();
	if (fails)
		die("%lu reads failed", fails);
	if (max_ns >= 1000000000ul)
		die("the longest read waited %.1f ms (>= 1 s)", (double)max_ns / 1e6);
	printf("ok - no read failed, none waited 1 s\n");
	return 0;
}

/* Aborts mount m's connection through fusectl (mounted in our private namespace): its waiting
 * callers get ENOTCONN. The only way out for a request no server will answer. */
static void abort_conn(int m)
{
	char mp[96], line[512];
	mountpoint(mp, sizeof(mp), m);
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		die("mountinfo: %s", strerror(errno));
	unsigned major = 0, minor = 0;
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char where[256];
		if (sscanf(line, "%*u %*u %u:%u %*s %255s", &major, &minor, where) == 3 &&
		    !strcmp(where, mp))
			found = true;
	}
	fclose(f);
	if (!found)
		die("%s is not mounted", mp);
	if (mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL) < 0 && errno != EBUSY)
		die("fusectl: %s", strerror(errno));
	char path[128];
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", minor);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1)
		die("%s: %s", path, strerror(errno));
	close(fd);
}

static int run_stall(bool expect_hang, int bound_ms)
{
	spawn_server(false, 1);
	/* the next access check blocks: the server holds a request it has read */
	atomic_store(&shm->stall_req, 1);
	pid_t rd = fork();
	if (rd < 0)
		die("fork: %s", strerror(errno));
	if (rd == 0) {
		child_setup();
		close_conns();
		char path[160], buf[64];
		snprintf(path, sizeof(path), "%s/m00/d1/f1", base);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		atomic_store(&shm->stall_result, n < 0 ? errno : 0);
		if (n >= 0) {
			buf[n] = '\0';
			if (!parse_gen(buf, 0, 1))
				atomic_store(&shm->stall_result, EBADMSG);
		}
		atomic_store(&shm->stall_done, 1);
		_exit(0);
	}
	uint64_t t0 = now_ns();
	while (!atomic_load(&shm->stalled)) {
		if (now_ns() - t0 > (uint64_t)WAIT_MS * 1000000u)
			die("the server never read the reader's request");
		sleep_ms(1);
	}
	kill_server();
	atomic_store(&shm->stall_req, 0);
	spawn_server(true, 1);
	t0 = now_ns();
	while (!atomic_load(&shm->stall_done) && now_ns() - t0 < (uint64_t)bound_ms * 1000000u)
		sleep_ms(1);
	bool done = atomic_load(&shm->stall_done);
	double ms = (double)(now_ns() - t0) / 1e6;
	if (!done)
		abort_conn(0); /* the reader waits in D state: not even SIGKILL ends it */
	int st;
	while (waitpid(rd, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	kill_server();
	reap_all();
	if (expect_hang) {
		if (done)
			die("without RESEND the in-flight request was answered anyway");
		printf("ok - without RESEND the request the dead server had read stayed unanswered "
		       "(%d ms)\n",
		       bound_ms);
		return 0;
	}
	if (!done)
		die("the request the dead server had read is unanswered after %.0f ms%s", ms,
		    adopt_flags & SFS_ADOPT_NO_RESEND ? " (adopted without RESEND)" : "");
	if (atomic_load(&shm->stall_result))
		die("the in-flight open/read failed: %s",
		    strerror(atomic_load(&shm->stall_result)));
	printf("ok - the request in flight at kill -9 was answered by the new server (%.1f ms "
	       "after the adopt)\n",
	       ms);
	return 0;
}

/* open+read of mount 0's file f: 0 or the errno. */
static int try_read(int f)
{
	char path[160], buf[64];
	snprintf(path, sizeof(path), "%s/m00/d%d/f%d", base, f % 2, f);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int err = n < 0 ? errno : 0;
	close(fd);
	if (!err) {
		buf[n] = '\0';
		if (!parse_gen(buf, 0, f))
			err = EBADMSG;
	}
	return err;
}

/* A path the kernel still caches (dentry and inode number from the previous server) that the
 * adopter does not serve: its OPEN answers ESTALE and the VFS walks the path again
 * (LOOKUP_REVAL), so the caller gets ENOENT. Invalidations are off (SFS_ADOPT_NO_RESEND sets
 * that), so nothing but ESTALE drops the cached entry. */
static int run_estale(void)
{
	spawn_server(false, 1);
	pid_t rd = fork();
	if (rd == 0) {
		child_setup();
		close_conns();
		_exit(try_read(1) || try_read(3) ? 1 : 0); /* the kernel caches d1/f1 and d1/f3 */
	}
	int st;
	while (waitpid(rd, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("first reads failed");
	kill_server();
	adopt_flags |= SFS_ADOPT_NO_RESEND;
	drop_file = 1;
	spawn_server(true, 1);
	rd = fork();
	if (rd == 0) {
		child_setup();
		close_conns();
		int e1 = try_read(1), e3 = try_read(3);
		if (e1 != ENOENT || e3 != 0) {
			fprintf(stderr, "FAIL: d1/f1: %s (want ENOENT), d1/f3: %s\n", strerror(e1),
			        strerror(e3));
			_exit(1);
		}
		_exit(0);
	}
	while (waitpid(rd, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	kill_server();
	reap_all();
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("an unknown inode's ESTALE did not end in a fresh lookup");
	printf("ok - a cached path the adopter does not serve: ESTALE, then ENOENT from a fresh "
	       "lookup; its neighbour still reads\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: sfs_handover full|stall [options]");
	bool expect_hang = false;
	int bound_ms = WAIT_MS;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--mounts") && i + 1 < argc)
			nmounts = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--files") && i + 1 < argc)
			nfiles = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--kills") && i + 1 < argc)
			nkills = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--bound-ms") && i + 1 < argc)
			bound_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-resend"))
			adopt_flags |= SFS_ADOPT_NO_RESEND;
		else if (!strcmp(argv[i], "--expect-hang"))
			expect_hang = true;
		else
			die("unknown argument %s", argv[i]);
	}
	if (nmounts < 1 || nmounts > MOUNTS_MAX || nfiles < 2 || nfiles > FILES_MAX || nkills < 0)
		die("bad counts");
	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) < 0) {
		fprintf(stderr, "SKIP: needs root and /dev/fuse\n");
		return 77;
	}
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("private mount namespace: %s", strerror(errno));
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	/* a tmpfs of our own over /tmp, in our namespace only: the mount points vanish with it */
	if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
		die("tmpfs: %s", strerror(errno));
	snprintf(base, sizeof(base), "/tmp/handover");
	if (mkdir(base, 0755) < 0)
		die("mkdir %s: %s", base, strerror(errno));
	for (int m = 0; m < nmounts; m++) {
		char mp[96];
		mountpoint(mp, sizeof(mp), m);
		if (mkdir(mp, 0755) < 0)
			die("mkdir %s: %s", mp, strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
	keeper_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "full"))
		return run_full();
	if (!strcmp(argv[1], "estale"))
		return run_estale();
	if (!strcmp(argv[1], "stall"))
		return run_stall(expect_hang, bound_ms);
	die("unknown mode %s", argv[1]);
}
