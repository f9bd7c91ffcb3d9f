/* Tests of fuse/sfs and broker/nsmount. The mount part builds a "container" (a child in its own
 * mount namespace that runs commands sent over a socketpair), mounts an sfs into it with nsmount,
 * and serves the sfs from this process while the child (and its children, as other uids) read. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "broker/os/nsmount.h"
#include "fuse/sfs.h"
#include "tests/unit/runner.h"

/* ---- pure part ---- */

START_TEST(test_blob)
{
	sfs_blob *b = sfs_blob_new((const uint8_t *)"abc", 3, 7);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(sfs_blob_len(b), 3);
	ck_assert_uint_eq(sfs_blob_version(b), 7);
	ck_assert_ptr_eq(sfs_blob_ref(b), b);
	sfs_blob_unref(b);
	sfs_blob_unref(b);
	sfs_blob_unref(NULL);
	sfs_blob *z = sfs_blob_new(NULL, 0, 1);
	ck_assert_ptr_nonnull(z);
	ck_assert_uint_eq(sfs_blob_len(z), 0);
	sfs_blob_unref(z);
}
END_TEST

static atomic_int refuse;
static atomic_int opened_count;

static int t_check(void *ud, pid_t pid, uid_t uid, gid_t gid)
{
	return atomic_load(&refuse) ? -EACCES : 0;
}

static void t_opened(void *ud, pid_t pid, uid_t uid, const char *path, uint64_t version, int result)
{
	atomic_fetch_add(&opened_count, 1);
}

static const struct sfs_ops t_ops = {.check = t_check, .opened = t_opened};

static sfs *new_fs(bool no_open)
{
	struct sfs_config cfg = {.no_open = no_open, .dir_uid = 0, .dir_gid = 0};
	sfs *fs = NULL;
	int r = sfs_new(&fs, &cfg, &t_ops, NULL);
	ck_assert_int_eq(r, 0);
	return fs;
}

START_TEST(test_view_validation)
{
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		return; /* sfs_new needs the device; main() reports the skip */
	sfs *fs = new_fs(false);
	sfs_blob *b = sfs_blob_new((const uint8_t *)"x", 1, 1);
	ck_assert_uint_eq(sfs_generation(fs), 1);
	const char *bad[] = {"", "/abs", "a//b", "a/", "../x", "a/./b", "a b", "a/.."};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sfs_entry e = {.path = bad[i], .mode = 0400, .blob = b};
		ck_assert_int_eq(sfs_set_view(fs, &e, 1), -EINVAL);
	}
	struct sfs_entry nob = {.path = "x", .mode = 0400, .blob = NULL};
	ck_assert_int_eq(sfs_set_view(fs, &nob, 1), -EINVAL);
	struct sfs_entry c1[] = {{"a", 0400, 0, 0, b}, {"a/b", 0400, 0, 0, b}};
	ck_assert_int_eq(sfs_set_view(fs, c1, 2), -EINVAL);
	struct sfs_entry c2[] = {{"a/b", 0400, 0, 0, b}, {"a", 0400, 0, 0, b}};
	ck_assert_int_eq(sfs_set_view(fs, c2, 2), -EINVAL);
	struct sfs_entry dup[] = {{"x", 0400, 0, 0, b}, {"x", 0400, 0, 0, b}};
	ck_assert_int_eq(sfs_set_view(fs, dup, 2), -EINVAL);
	/* Past the cap: E2BIG (not a path error), nothing changes. */
	size_t n = SFS_FILES_MAX + 1;
	struct sfs_entry *many = calloc(n, sizeof(*many));
	ck_assert_ptr_nonnull(many);
	for (size_t i = 0; i < n; i++)
		many[i] = (struct sfs_entry){"f", 0400, 0, 0, b};
	ck_assert_int_eq(sfs_set_view(fs, many, n), -E2BIG);
	ck_assert_uint_eq(sfs_count(fs), 0);
	ck_assert_uint_eq(sfs_generation(fs), 1);
	free(many);
	/* 100,000 entries (the old cap was 4,096), each its own value, in subdirectories; then
	 * one more, one fewer: each change is a diff, not a rebuild. */
	n = 100000;
	many = calloc(n + 1, sizeof(*many));
	char(*names)[24] = calloc(n + 1, 24);
	sfs_blob **vals = calloc(n + 1, sizeof(*vals));
	ck_assert_ptr_nonnull(many);
	ck_assert_ptr_nonnull(names);
	ck_assert_ptr_nonnull(vals);
	for (size_t i = 0; i <= n; i++) {
		char v[24];
		snprintf(names[i], 24, "d%zu/f%zu", i % 100, i);
		snprintf(v, sizeof(v), "value-%zu", i);
		vals[i] = sfs_blob_new((const uint8_t *)v, strlen(v), 1);
		ck_assert_ptr_nonnull(vals[i]); /* one mapping per value would stop near 20,000 */
		many[i] = (struct sfs_entry){names[i], 0400, 0, 0, vals[i]};
	}
	struct timespec t0, t1, t2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(sfs_set_view(fs, many, n), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_uint_eq(sfs_count(fs), n);
	ck_assert_uint_eq(sfs_generation(fs), 2);
	ck_assert_int_eq(sfs_set_view(fs, many, n + 1), 0);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	ck_assert_uint_eq(sfs_count(fs), n + 1);
	ck_assert_uint_eq(sfs_generation(fs), 3);
	fprintf(stderr, "sfs_set_view: %zu entries new %.0f ms, +1 entry %.0f ms\n", n,
	        (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
	        (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6);
	ck_assert_int_eq(sfs_set_view(fs, many + 1, n), 0);
	ck_assert_uint_eq(sfs_count(fs), n);
	ck_assert_uint_eq(sfs_generation(fs), 4);
	for (size_t i = 0; i <= n; i++)
		sfs_blob_unref(vals[i]);
	free(vals);
	free(many);
	free(names);
	ck_assert_int_eq(sfs_set_view(fs, NULL, 0), 0);
	ck_assert_uint_eq(sfs_generation(fs), 5);

	struct sfs_entry ok[] = {{"a/b", 0400, 0, 0, b},
	                         {"a/c/d", 0440, 0, 0, b},
	                         {".version", 0400, 0, 0, b},
	                         {"e", 0400, 0, 0, b}};
	ck_assert_int_eq(sfs_set_view(fs, ok, 4), 0);
	ck_assert_uint_eq(sfs_count(fs), 3); /* .version ignored */
	ck_assert_uint_eq(sfs_generation(fs), 6);
	ck_assert_int_eq(sfs_set_view(fs, ok, 4), 0); /* nothing changed */
	ck_assert_uint_eq(sfs_generation(fs), 6);
	ck_assert_int_eq(sfs_set_view(fs, c1, 2), -EINVAL);
	ck_assert_uint_eq(sfs_count(fs), 3);
	/* denied: a bump, empty; a set_view ends it with another bump even when nothing changed */
	ck_assert(!sfs_denied(fs));
	ck_assert_int_eq(sfs_deny(fs), 0);
	ck_assert(sfs_denied(fs));
	ck_assert_uint_eq(sfs_count(fs), 0);
	ck_assert_uint_eq(sfs_generation(fs), 7);
	ck_assert_int_eq(sfs_set_view(fs, c1, 2), -EINVAL);
	ck_assert(sfs_denied(fs));
	ck_assert_int_eq(sfs_set_view(fs, NULL, 0), 0);
	ck_assert(!sfs_denied(fs));
	ck_assert_uint_eq(sfs_generation(fs), 8);
	ck_assert_int_eq(sfs_set_view(fs, NULL, 0), 0);
	ck_assert_uint_eq(sfs_count(fs), 0);
	ck_assert_uint_eq(sfs_generation(fs), 8);
	char data[128];
	ck_assert_int_eq(sfs_mount_data(fs, data, sizeof(data)), 0);
	ck_assert_ptr_nonnull(strstr(data, "rootmode=40000"));
	ck_assert_int_eq(sfs_mount_data(fs, data, 8), -ENOSPC);
	ck_assert_int_eq(sfs_dispatch(fs), 0); /* not mounted: nothing pending */
	sfs_destroy(fs);
	sfs_blob_unref(b);
	sfs_destroy(NULL);
}
END_TEST

/* ---- the container ---- */

struct ctr {
	pid_t pid;
	int pidfd, sock;
};

static void sendmsg_str(int s, const char *m)
{
	(void)!send(s, m, strlen(m), MSG_NOSIGNAL);
}

/* Runs fn(arg) in a grandchild as uid/gid, returning its message through a pipe. */
static void as_uid(uid_t uid, void (*fn)(const char *arg, char *out, size_t len), const char *arg,
                   char *out, size_t len)
{
	int p[2];
	if (pipe(p) < 0) {
		snprintf(out, len, "E%d", errno);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		alarm(20);
		if (uid && (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0))
			_exit(1);
		char buf[4096];
		fn(arg, buf, sizeof(buf));
		(void)!write(p[1], buf, strlen(buf));
		_exit(0);
	}
	close(p[1]);
	ssize_t n = 0, k;
	while ((k = read(p[0], out + n, len - 1 - (size_t)n)) > 0)
		n += k;
	out[n < 0 ? 0 : n] = '\0';
	close(p[0]);
	waitpid(pid, NULL, 0);
}

static void do_read(const char *path, char *out, size_t len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		snprintf(out, len, "E%d", errno);
		return;
	}
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int e = errno;
	close(fd);
	if (n < 0) {
		snprintf(out, len, "E%d", e);
		return;
	}
	buf[n] = '\0';
	snprintf(out, len, "=%s", buf);
}

static void do_ls(const char *path, char *out, size_t len)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "ls -a %s 2>&1 | tr '\\n' ' '", path);
	FILE *f = popen(cmd, "r");
	size_t n = f ? fread(out, 1, len - 1, f) : 0;
	out[n] = '\0';
	if (f)
		pclose(f);
}

/* .version: open, read, then poll until it changes. */
static void do_pollver(const char *path, char *out, size_t len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		snprintf(out, len, "E%d", errno);
		return;
	}
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));
	(void)n;
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLPRI};
	int r = poll(&p, 1, 5000);
	if (r == 1) {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		snprintf(out, len, "woke %s", buf);
	} else {
		snprintf(out, len, "timeout");
	}
	close(fd);
}

static int held_fd = -1;
static const char *held_map; /* mapver's private mapping of a file's first page */

/* The first line of the mapped page (NUL-padded past the file's end), as "=TEXT". */
static void map_text(char *out, size_t len)
{
	snprintf(out, len, "=%.*s", (int)strnlen(held_map, 64), held_map);
}

static void ctr_loop(int s)
{
	char msg[1024], out[4096];
	for (;;) {
		ssize_t n = recv(s, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			_exit(0);
		msg[n] = '\0';
		char *arg = strchr(msg, ' ');
		if (arg)
			*arg++ = '\0';
		else
			arg = msg + n;
		out[0] = '\0';
		int r = 0;
		if (!strcmp(msg, "read")) { /* read UID PATH */
			char *path = strchr(arg, ' ');
			*path++ = '\0';
			as_uid((uid_t)atoi(arg), do_read, path, out, sizeof(out));
		} else if (!strcmp(msg, "ls")) {
			do_ls(arg, out, sizeof(out));
		} else if (!strcmp(msg, "hold")) {
			held_fd = open(arg, O_RDONLY);
			snprintf(out, sizeof(out), "%d", held_fd < 0 ? errno : 0);
		} else if (!strcmp(msg, "readheld")) {
			char buf[256];
			ssize_t k = pread(held_fd, buf, sizeof(buf) - 1, 0);
			if (k < 0)
				snprintf(out, sizeof(out), "E%d", errno);
			else
				snprintf(out, sizeof(out), "=%.*s", (int)k, buf);
		} else if (!strcmp(msg, "mapver")) { /* mmap PATH's first page, kept mapped */
			int fd = open(arg, O_RDONLY);
			void *p =
			    fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
			if (p == MAP_FAILED) {
				snprintf(out, sizeof(out), "E%d", errno);
			} else {
				held_map = p;
				map_text(out, sizeof(out));
			}
			if (fd >= 0)
				close(fd);
		} else if (!strcmp(msg, "readmap")) {
			map_text(out, sizeof(out));
		} else if (!strcmp(msg, "size")) {
			struct stat st;
			if (stat(arg, &st) < 0)
				snprintf(out, sizeof(out), "E%d", errno);
			else
				snprintf(out, sizeof(out), "%lld", (long long)st.st_size);
		} else if (!strcmp(msg, "closeheld")) {
			close(held_fd);
			held_fd = -1;
			strcpy(out, "0");
		} else if (!strcmp(msg, "pollver")) {
			sendmsg_str(s, "started");
			as_uid(0, do_pollver, arg, out, sizeof(out));
		} else {
			/* writing operations: reply the errno (0 = it worked) */
			if (!strcmp(msg, "write"))
				r = open(arg, O_WRONLY);
			else if (!strcmp(msg, "create"))
				r = open(arg, O_WRONLY | O_CREAT, 0600);
			else if (!strcmp(msg, "mkdir"))
				r = mkdir(arg, 0700);
			else if (!strcmp(msg, "unlink"))
				r = unlink(arg);
			else if (!strcmp(msg, "chmod"))
				r = chmod(arg, 0777);
			else if (!strcmp(msg, "setxattr"))
				r = setxattr(arg, "user.x", "1", 1, 0);
			else if (!strcmp(msg, "rename")) {
				char to[600];
				snprintf(to, sizeof(to), "%s.new", arg);
				r = rename(arg, to);
			} else if (!strcmp(msg, "stat")) {
				struct stat st;
				r = stat(arg, &st);
			} else
				r = -1, errno = EINVAL;
			snprintf(out, sizeof(out), "%d", r < 0 ? errno : 0);
			if (r > 0)
				close(r);
		}
		sendmsg_str(s, out);
	}
}

static void ctr_start(struct ctr *c)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(60);
		close(sv[0]);
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(1);
		sendmsg_str(sv[1], "ready");
		ctr_loop(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	c->pid = pid;
	c->sock = sv[0];
	c->pidfd = pidfd_open(pid, 0);
	ck_assert_int_ge(c->pidfd, 0);
	char buf[16];
	ssize_t n = recv(c->sock, buf, sizeof(buf), 0);
	ck_assert_int_eq(n, 5);
}

static void ctr_stop(struct ctr *c)
{
	close(c->sock);
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	close(c->pidfd);
}

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Serves fs (may be NULL) until a message arrives from the container (or for ms when out is
 * NULL). Returns the last sfs_dispatch result. */
static int serve(sfs *fs, struct ctr *c, char *out, size_t len, int ms)
{
	int64_t dl = ms_now() + ms;
	int last = 0;
	for (;;) {
		int64_t left = dl - ms_now();
		if (left <= 0) {
			ck_assert_msg(out == NULL, "container did not answer");
			return last;
		}
		struct pollfd p[2] = {
		    {.fd = fs && last != -ENODEV ? sfs_fd(fs) : -1, .events = POLLIN},
		    {.fd = out ? c->sock : -1, .events = POLLIN}};
		poll(p, 2, left > 50 ? 50 : (int)left);
		if (fs && last != -ENODEV && (p[0].revents & (POLLIN | POLLERR | POLLHUP)))
			last = sfs_dispatch(fs);
		if (out && (p[1].revents & POLLIN)) {
			ssize_t n = recv(c->sock, out, len - 1, 0);
			ck_assert_int_gt(n, 0);
			out[n] = '\0';
			return last;
		}
	}
}

static const char *cmd(sfs *fs, struct ctr *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static char reply[4096];
static const char *cmd(sfs *fs, struct ctr *c, const char *fmt, ...)
{
	char m[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	if (getenv("SFS_TEST_DEBUG"))
		fprintf(stderr, "cmd: %s\n", m);
	ck_assert_int_eq(send(c->sock, m, strlen(m), 0), (ssize_t)strlen(m));
	serve(fs, c, reply, sizeof(reply), 15000);
	return reply;
}

struct area {
	char dir[64], target[128];
};

static void area_new(struct area *a)
{
	strcpy(a->dir, "/tmp/sfs-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(a->dir));
	ck_assert_int_eq(chmod(a->dir, 0755), 0); /* uid 1000 must get through */
	snprintf(a->target, sizeof(a->target), "%s/run/secrets", a->dir);
}

static void area_free(struct area *a)
{
	char cmdline[128];
	snprintf(cmdline, sizeof(cmdline), "rm -rf %s", a->dir);
	(void)!system(cmdline);
}

static sfs_blob *blob(const char *s, uint64_t v)
{
	return sfs_blob_new((const uint8_t *)s, strlen(s), v);
}

static void mount_fs(sfs *fs, struct ctr *c, const char *root, const char *target)
{
	char data[256];
	ck_assert_int_eq(sfs_mount_data(fs, data, sizeof(data)), 0);
	int r = nsmount_fuse(c->pidfd, root, target, sfs_fd(fs), data);
	ck_assert_int_eq(r, 0);
}

/* Same device as its parent on the host: the mount lives only in the container's namespace. */
static void assert_not_mounted_on_host(const char *path)
{
	struct stat a, b;
	char parent[256];
	snprintf(parent, sizeof(parent), "%s/..", path);
	ck_assert_int_eq(stat(path, &a), 0);
	ck_assert_int_eq(stat(parent, &b), 0);
	ck_assert_uint_eq(a.st_dev, b.st_dev);
}

#define P(rel) "%s/" rel, a.target

START_TEST(test_mount_read)
{
	alarm(100);
	struct area a;
	area_new(&a);
	struct ctr c;
	ctr_start(&c);
	sfs *fs = new_fs(false);
	sfs_blob *b1 = blob("hello", 1), *b2 = blob("B", 1), *b3 = blob("R", 1);
	struct sfs_entry v1[] = {
	    {"a", 0444, 0, 0, b1}, {"dir/b", 0400, 1000, 1000, b2}, {"root_only", 0400, 0, 0, b3}};
	ck_assert_int_eq(sfs_set_view(fs, v1, 3), 0);
	mount_fs(fs, &c, NULL, a.target);
	assert_not_mounted_on_host(a.target);

	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("a")), "=hello");
	ck_assert_str_eq(cmd(fs, &c, "read 1000 " P("dir/b")), "=B");
	ck_assert_str_eq(cmd(fs, &c, "read 1000 " P("a")), "=hello");
	ck_assert_str_eq(cmd(fs, &c, "read 1000 " P("root_only")), "E13");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P(".version")), "=2\n");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("nope")), "E2");
	ck_assert_str_eq(cmd(fs, &c, "ls " P("")), ". .. .version a dir root_only ");
	ck_assert_str_eq(cmd(fs, &c, "ls " P("dir")), ". .. b ");
	ck_assert(atomic_load(&opened_count) >= 4);

	/* nothing writes */
	const char *ops[] = {"write", "create", "mkdir", "unlink", "chmod", "setxattr", "rename"};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		const char *r =
		    cmd(fs, &c, "%s %s/%s", ops[i], a.target,
		        !strcmp(ops[i], "create") || !strcmp(ops[i], "mkdir") ? "new" : "a");
		ck_assert_msg(!strcmp(r, "30") || !strcmp(r, "13"), "%s gave errno %s", ops[i], r);
	}

	/* the caller check, at open (the entry is cached) and at lookup */
	atomic_store(&refuse, 1);
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("a")), "E13");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("dir/b")), "E13");
	atomic_store(&refuse, 0);

	/* an open file keeps its version; new opens see the new one */
	ck_assert_str_eq(cmd(fs, &c, "hold " P("a")), "0");
	sfs_blob *b1n = blob("world!", 2), *b4 = blob("C", 1);
	struct sfs_entry v2[] = {
	    {"a", 0444, 0, 0, b1n}, {"dir/b", 0400, 1000, 1000, b2}, {"c", 0444, 0, 0, b4}};
	ck_assert_int_eq(sfs_set_view(fs, v2, 3), 0);
	ck_assert_int_eq(sfs_notifier_flush_timeout(5000), 0);
	ck_assert_str_eq(cmd(fs, &c, "readheld"), "=hello");
	sfs_notifier_flush(); /* the old open's read queued an invalidation */
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("a")), "=world!");
	cmd(fs, &c, "closeheld");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("a")), "=world!");
	ck_assert_str_eq(cmd(fs, &c, "read 1000 " P("a")), "=world!");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("root_only")), "E2");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("c")), "=C");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P(".version")), "=3\n");

	/* a negative entry is dropped when the name appears */
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("late")), "E2");
	struct sfs_entry v3[] = {{"a", 0444, 0, 0, b1n}, {"late", 0444, 0, 0, b4}};
	ck_assert_int_eq(sfs_set_view(fs, v3, 2), 0);
	sfs_notifier_flush();
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("late")), "=C");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("dir/b")), "E2");
	ck_assert_str_eq(cmd(fs, &c, "ls " P("")), ". .. .version a late ");

	/* a path that comes back (as a directory now, then as a file again) */
	struct sfs_entry v4[] = {{"dir", 0444, 0, 0, b1n}, {"late/x", 0444, 0, 0, b2}};
	ck_assert_int_eq(sfs_set_view(fs, v4, 2), 0);
	sfs_notifier_flush();
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("dir")), "=world!");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("late/x")), "=B");

	/* a poller of .version wakes up */
	ck_assert_str_eq(cmd(fs, &c, "pollver " P(".version")), "started");
	serve(fs, &c, NULL, 0, 300); /* let it read and block in poll */
	ck_assert_int_eq(sfs_set_view(fs, v3, 2), 0);
	uint64_t gen = sfs_generation(fs);
	sfs_notifier_flush();
	serve(fs, &c, reply, sizeof(reply), 10000);
	char want[64];
	snprintf(want, sizeof(want), "woke %llu\n", (unsigned long long)gen);
	ck_assert_str_eq(reply, want);

	/* A change of content only (same size, mode, owner): no inode invalidation is queued (the
	 * attributes stay valid), yet .version changes and its poller wakes, a new open reads the
	 * new value (its OPEN drops the cached pages) and an open made before reads the old. */
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("a")), "=world!"); /* in the page cache */
	ck_assert_str_eq(cmd(fs, &c, "hold " P("a")), "0");
	ck_assert_str_eq(cmd(fs, &c, "pollver " P(".version")), "started");
	serve(fs, &c, NULL, 0, 300);
	sfs_blob *b1s = blob("WORLD?", 3);
	struct sfs_entry v5[] = {{"a", 0444, 0, 0, b1s}, {"late", 0444, 0, 0, b4}};
	ck_assert_int_eq(sfs_set_view(fs, v5, 2), 0);
	ck_assert_uint_eq(sfs_generation(fs), gen + 1);
	sfs_notifier_flush();
	serve(fs, &c, reply, sizeof(reply), 10000);
	snprintf(want, sizeof(want), "woke %llu\n", (unsigned long long)(gen + 1));
	ck_assert_str_eq(reply, want);
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("a")), "=WORLD?");
	ck_assert_str_eq(cmd(fs, &c, "read 1000 " P("a")), "=WORLD?");
	ck_assert_str_eq(cmd(fs, &c, "readheld"), "=world!");
	cmd(fs, &c, "closeheld");
	sfs_notifier_flush();
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("a")), "=WORLD?");

	/* unmount: the connection ends */
	ck_assert_int_eq(nsmount_umount(c.pidfd, NULL, a.target), 0);
	int r = serve(fs, &c, NULL, 0, 500);
	ck_assert_int_eq(r, -ENODEV);
	ck_assert_int_eq(sfs_dispatch(fs), -ENODEV);
	ck_assert_str_eq(cmd(NULL, &c, "read 0 " P("a")), "E2");
	ck_assert_int_eq(nsmount_umount(c.pidfd, NULL, a.target), -ENOENT);
	sfs_destroy(fs);
	ctr_stop(&c);
	ck_assert_int_eq(nsmount_umount(c.pidfd, NULL, a.target), -EBADF);
	sfs_blob_unref(b1);
	sfs_blob_unref(b1n);
	sfs_blob_unref(b1s);
	sfs_blob_unref(b2);
	sfs_blob_unref(b3);
	sfs_blob_unref(b4);
	area_free(&a);
}
END_TEST

/* A change that keeps .version's length sends no invalidation of it (its reads are direct_io),
 * unless the kernel may hold its pages: a mapping of it sees every new generation. When the
 * length changes (9 -> 10), stat(2) sees the new size. */
START_TEST(test_version_unchanged_length)
{
	alarm(60);
	struct area a;
	area_new(&a);
	struct ctr c;
	ctr_start(&c);
	sfs *fs = new_fs(false);
	sfs_blob *bl[2] = {blob("x1", 1), blob("x2", 2)};
	struct sfs_entry v[] = {{"s", 0444, 0, 0, bl[0]}};
	ck_assert_int_eq(sfs_set_view(fs, v, 1), 0);
	mount_fs(fs, &c, NULL, a.target);
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P(".version")), "=2\n");
	ck_assert_str_eq(cmd(fs, &c, "size " P(".version")), "2");
	char want[32];
	for (unsigned g = 3; g <= 14; g++) {
		if (g == 11)
			ck_assert_str_eq(cmd(fs, &c, "mapver " P(".version")), "=10\n");
		v[0].blob = bl[g % 2]; /* the same size: a content-only change */
		ck_assert_int_eq(sfs_set_view(fs, v, 1), 0);
		ck_assert_uint_eq(sfs_generation(fs), g);
		ck_assert_int_eq(sfs_notifier_flush_timeout(5000), 0);
		/* the size the kernel holds (refreshed by the stat at the end of the last round:
		 * a read makes the next stat ask anyway), right after 9 -> 10 too */
		ck_assert_str_eq(cmd(fs, &c, "size " P(".version")), g < 10 ? "2" : "3");
		snprintf(want, sizeof(want), "=%u\n", g);
		if (g >= 11) /* the mapping's pages were dropped */
			ck_assert_str_eq(cmd(fs, &c, "readmap"), want);
		ck_assert_str_eq(cmd(fs, &c, "read 0 " P(".version")), want);
		ck_assert_str_eq(cmd(fs, &c, "read 0 " P("s")), g % 2 ? "=x2" : "=x1");
		ck_assert_str_eq(cmd(fs, &c, "size " P(".version")), g < 10 ? "2" : "3");
	}
	sfs_destroy(fs);
	ctr_stop(&c);
	sfs_blob_unref(bl[0]);
	sfs_blob_unref(bl[1]);
	area_free(&a);
}
END_TEST

START_TEST(test_no_open)
{
	alarm(60);
	struct area a;
	area_new(&a);
	struct ctr c;
	ctr_start(&c);
	sfs *fs = new_fs(true);
	sfs_blob *b1 = blob("one", 1), *b2 = blob("two", 2);
	struct sfs_entry v1[] = {{"s", 0444, 0, 0, b1}};
	ck_assert_int_eq(sfs_set_view(fs, v1, 1), 0);
	mount_fs(fs, &c, NULL, a.target);
	atomic_store(&opened_count, 0);
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("s")), "=one");
	ck_assert_str_eq(cmd(fs, &c, "read 1000 " P("s")), "=one");
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P(".version")), "=2\n");
	ck_assert_int_eq(atomic_load(&opened_count), 0);
	struct sfs_entry v2[] = {{"s", 0444, 0, 0, b2}};
	ck_assert_int_eq(sfs_set_view(fs, v2, 1), 0);
	sfs_notifier_flush();
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P("s")), "=two");
	/* .version in no_open mode: page-cached like any file, but its inode is invalidated on
	 * every change, so the next read sees the new generation */
	ck_assert_str_eq(cmd(fs, &c, "read 0 " P(".version")), "=3\n");
	ck_assert_str_eq(cmd(fs, &c, "pollver " P(".version")), "started");
	serve(fs, &c, NULL, 0, 300);
	ck_assert_int_eq(sfs_set_view(fs, v1, 1), 0);
	sfs_notifier_flush();
	serve(fs, &c, reply, sizeof(reply), 10000);
	ck_assert_str_eq(reply, "woke 4\n");
	/* destroy while mounted: the connection is aborted */
	sfs_destroy(fs);
	const char *r = cmd(NULL, &c, "read 0 " P("s"));
	ck_assert_msg(!strcmp(r, "E107") || !strcmp(r, "E103"), "got %s", r);
	ctr_stop(&c);
	sfs_blob_unref(b1);
	sfs_blob_unref(b2);
	area_free(&a);
}
END_TEST

START_TEST(test_symlink_and_root)
{
	alarm(60);
	struct area a;
	area_new(&a);
	struct ctr c;
	ctr_start(&c);
	sfs *fs = new_fs(false);
	sfs_blob *b1 = blob("x", 1);
	struct sfs_entry v1[] = {{"s", 0444, 0, 0, b1}};
	ck_assert_int_eq(sfs_set_view(fs, v1, 1), 0);
	char data[256], p[256], q[256];
	ck_assert_int_eq(sfs_mount_data(fs, data, sizeof(data)), 0);

	/* run -> real: refused, nothing created or mounted behind the link */
	snprintf(p, sizeof(p), "%s/real", a.dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(q, sizeof(q), "%s/run", a.dir);
	ck_assert_int_eq(symlink("real", q), 0);
	ck_assert_int_eq(nsmount_fuse(c.pidfd, NULL, a.target, sfs_fd(fs), data), -ELOOP);
	ck_assert_int_eq(nsmount_fuse(c.pidfd, a.dir, "/run/secrets", sfs_fd(fs), data), -ELOOP);
	ck_assert_str_eq(cmd(fs, &c, "stat %s/real/secrets", a.dir), "2");
	/* an absolute link is not followed either (it would leave the root) */
	ck_assert_int_eq(unlink(q), 0);
	ck_assert_int_eq(symlink("/tmp", q), 0);
	ck_assert_int_eq(nsmount_fuse(c.pidfd, a.dir, "/run/secrets", sfs_fd(fs), data), -ELOOP);
	/* a file where a directory is needed */
	ck_assert_int_eq(unlink(q), 0);
	int fd = open(q, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(nsmount_fuse(c.pidfd, a.dir, "/run/secrets", sfs_fd(fs), data), -ENOTDIR);
	ck_assert_int_eq(nsmount_fuse(c.pidfd, a.dir, "/../x", sfs_fd(fs), data), -EINVAL);
	ck_assert_int_eq(unlink(q), 0);

	/* with an explicit root (the createRuntime case) */
	ck_assert_int_eq(nsmount_fuse(c.pidfd, a.dir, "/run/secrets", sfs_fd(fs), data), 0);
	assert_not_mounted_on_host(a.target);
	ck_assert_str_eq(cmd(fs, &c, "read 1000 " P("s")), "=x");
	ck_assert_int_eq(nsmount_umount(c.pidfd, a.dir, "/run/secrets"), 0);
	ck_assert_int_eq(serve(fs, &c, NULL, 0, 500), -ENODEV);
	ck_assert_int_eq(nsmount_umount(c.pidfd, a.dir, "/run/secrets"), -ENOENT);
	ck_assert_int_eq(nsmount_umount(c.pidfd, a.dir, "/run/nothing"), -ENOENT);
	sfs_destroy(fs);
	/* a gone process */
	ctr_stop(&c);
	int pfd = -1;
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	pfd = pidfd_open(pid, 0);
	waitpid(pid, NULL, 0);
	ck_assert_int_eq(nsmount_umount(pfd, NULL, "/run/secrets"), -ESRCH);
	close(pfd);
	sfs_blob_unref(b1);
	area_free(&a);
}
END_TEST

/* libfuse takes a pthread key per session: more than PTHREAD_KEYS_MAX (1024) sessions must still
 * work in one process (1,000 and more containers per daemon). */
static int many_check(void *ud, pid_t pid, uid_t uid, gid_t gid)
{
	return 0;
}

START_TEST(test_many_sessions)
{
	enum { N = 1200 };
	static sfs *all[N];
	struct sfs_config cfg = {0};
	struct sfs_ops ops = {.check = many_check};
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(sfs_new(&all[i], &cfg, &ops, NULL), 0);
	for (int i = 0; i < N; i++)
		sfs_destroy(all[i]);
	/* and again, after all were destroyed */
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(sfs_new(&all[i], &cfg, &ops, NULL), 0);
	for (int i = 0; i < N; i++)
		sfs_destroy(all[i]);
}
END_TEST

/* ---- hand-over (#14): the journal, the INIT record, sfs_adopt's refusals ---- */

struct jrec {
	uint64_t ino[8];
	char path[8][32];
	bool dir[8];
	size_t n;
};

static int collect(void *ctx, uint64_t ino, const char *path, size_t len, bool is_dir)
{
	struct jrec *j = ctx;
	if (j->n == 8 || len >= sizeof(j->path[0]))
		return -ENOSPC;
	j->ino[j->n] = ino;
	memcpy(j->path[j->n], path, len);
	j->path[j->n][len] = '\0';
	j->dir[j->n++] = is_dir;
	return 0;
}

START_TEST(test_handover_api)
{
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		return; /* main() reports the skip */
	sfs *fs = new_fs(false);
	uint8_t init[SFS_INIT_RECORD_MAX];
	ck_assert_int_eq(sfs_init_record(fs, init, sizeof(init)), -ENOENT); /* no INIT yet */
	ck_assert_int_eq(sfs_resend_status(fs), 0);
	int jfd = sfs_journal_fd(fs);
	ck_assert_int_ge(jfd, 0);
	sfs_blob *b = sfs_blob_new((const uint8_t *)"v", 1, 1);
	struct sfs_entry e1[] = {{"a/x", 0400, 0, 0, b}, {"b", 0400, 0, 0, b}};
	struct sfs_entry e2[] = {{"a/x", 0400, 0, 0, b}, {"c", 0400, 0, 0, b}};
	ck_assert_int_eq(sfs_set_view(fs, e1, 2), 0);
	ck_assert_int_eq(sfs_set_view(fs, e2, 2), 0);
	ck_assert_int_eq(sfs_set_view(fs, e1, 2), 0); /* b comes back: no new record */
	/* every path once, in the order its inode was given */
	uint8_t buf[4096];
	ssize_t n = pread(jfd, buf, sizeof(buf), 0);
	ck_assert_int_gt(n, 0);
	struct jrec j = {.n = 0};
	size_t used = 0;
	ck_assert_int_eq(sfs_journal_parse(buf, (size_t)n, collect, &j, &used), 0);
	ck_assert_uint_eq(used, (size_t)n);
	ck_assert_uint_eq(j.n, 4);
	const char *want[] = {"a", "a/x", "b", "c"};
	for (size_t i = 0; i < 4; i++) {
		ck_assert_uint_eq(j.ino[i], SFS_JOURNAL_FIRST_INO + i);
		ck_assert_str_eq(j.path[i], want[i]);
		ck_assert(j.dir[i] == (i == 0));
	}
	/* a torn last record is the end; a gap in the numbers is refused */
	ck_assert_int_eq(sfs_journal_parse(buf, (size_t)n - 1, NULL, NULL, &used), 0);
	ck_assert_uint_lt(used, (size_t)n - 1);
	buf[SFS_JOURNAL_MAGIC_LEN] = 9;
	ck_assert_int_eq(sfs_journal_parse(buf, (size_t)n, NULL, NULL, NULL), -EBADMSG);

	/* sfs_adopt refuses what is not an INIT record, unknown flags and a bad journal */
	struct sfs_config cfg = {.dir_uid = 0};
	int dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(dev, 0);
	sfs *ad = NULL;
	uint8_t fake[80];
	memset(fake, 0, sizeof(fake));
	fake[0] = sizeof(fake); /* fuse_in_header.len, then opcode 0: not FUSE_INIT (26) */
	ck_assert_int_eq(sfs_adopt(&ad, &cfg, &t_ops, NULL, dev, fake, 10, jfd, 0), -EINVAL);
	ck_assert_int_eq(sfs_adopt(&ad, &cfg, &t_ops, NULL, dev, fake, sizeof(fake), jfd, 0),
	                 -EINVAL);
	ck_assert_int_eq(sfs_adopt(&ad, &cfg, &t_ops, NULL, dev, fake, sizeof(fake), jfd, 0x80),
	                 -EINVAL);
	ck_assert_ptr_null(ad);
	int bad = memfd_create("bad-journal", MFD_CLOEXEC);
	ck_assert_int_ge(bad, 0);
	ck_assert_int_eq(write(bad, "SFSJRNL2", 8), 8);
	ck_assert_int_eq(sfs_adopt(&ad, &cfg, &t_ops, NULL, dev, fake, sizeof(fake), bad, 0),
	                 -EBADMSG);
	ck_assert_ptr_null(ad);
	close(bad);
	close(dev);
	sfs_blob_unref(b);
	sfs_destroy(fs);
}
END_TEST

static bool can_mount(void)
{
	return geteuid() == 0 && access("/dev/fuse", R_OK | W_OK) == 0;
}

static bool sfs_unit_skipped;

bool unit_skipped(void)
{
	return sfs_unit_skipped;
}

Suite *unit_suite(void)
{
	Suite *s = suite_create("sfs");
	TCase *pure = tcase_create("pure");
	tcase_add_test(pure, test_blob);
	tcase_add_test(pure, test_view_validation);
	tcase_add_test(pure, test_handover_api);
	suite_add_tcase(s, pure);
	bool mount = can_mount();
	sfs_unit_skipped = !mount;
	if (mount) {
		TCase *m = tcase_create("mount");
		tcase_set_timeout(m, 120);
		tcase_add_test(m, test_mount_read);
		tcase_add_test(m, test_no_open);
		tcase_add_test(m, test_version_unchanged_length);
		tcase_add_test(m, test_symlink_and_root);
		tcase_add_test(m, test_many_sessions);
		suite_add_tcase(s, m);
	}
	return s;
}
