/* bench_watch: the process of one benchmark "container" (started in its cgroup and mount
 * namespace). Times `secretctl mount`, then waits for rotations of one secret: it blocks in
 * poll(2) on .version and, on every wake (or every 5 s as a safety net), reads the secret; each
 * new value is recorded with the time it was first read.
 * usage: bench_watch SECRETCTL WORKLOAD_SOCK MOUNTDIR NAME OUTFILE
 * OUTFILE (shared by all containers, O_APPEND: one write per line) gets
 *   "whoami NS 0", "mount NS 0" (durations), "ready 0 0", and "seen ROUND NS" (CLOCK_MONOTONIC)
 *   for every new value, whose first 14 bytes are the round number; "...fail ERR 0" on errors. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchlib.h"

static int out = -1;

/* One line "TAG A B". */
static void emit(const char *tag, unsigned long long a, unsigned long long b)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "%s %llu %llu\n", tag, a, b);
	if (write(out, line, (size_t)n) != n)
		exit(1);
}

static long read_file(const char *path, char *b, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, b, cap);
	close(fd);
	return n;
}

/* Runs secretctl --socket SOCK CMD [ARG] (stdout to /dev/null); 0 when it succeeded. */
static int run_ctl(const char *ctl, const char *sock, const char *cmd, const char *arg)
{
	pid_t p = fork();
	if (p == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		execl(ctl, ctl, "--socket", sock, cmd, arg, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		emit(strcmp(cmd, "mount") ? "ctlfail" : "mountfail", (unsigned long long)st, 0);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr,
		        "usage: bench_watch SECRETCTL WORKLOAD_SOCK MOUNTDIR NAME OUTFILE\n");
		return 2;
	}
	out = open(argv[5], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (out < 0)
		return 1;
	/* secretctl whoami first: the cost of the client and one workload request, the
	 * reference for the cost of mount */
	uint64_t t0 = bl_now();
	if (run_ctl(argv[1], argv[2], "whoami", NULL) != 0)
		return 1;
	emit("whoami", bl_now() - t0, 0);
	t0 = bl_now();
	if (run_ctl(argv[1], argv[2], "mount", argv[3]) != 0)
		return 1;
	emit("mount", bl_now() - t0, 0);
	char vpath[512], spath[512], cur[64] = "", b[64];
	snprintf(vpath, sizeof(vpath), "%s/.version", argv[3]);
	snprintf(spath, sizeof(spath), "%s/%s", argv[3], argv[4]);
	/* .version is read before the secret, every time: a change between the two reads then
	 * leaves .version unread and poll(2) returns at once. The other order (secret, then
	 * .version) misses a change that lands between them until the 5 s safety net. */
	char vb[64];
	int vfd = open(vpath, O_RDONLY | O_CLOEXEC);
	if (vfd < 0 || pread(vfd, vb, sizeof(vb), 0) < 0 || read_file(spath, cur, 14) != 14) {
		emit("readfail", (unsigned long long)errno, 0);
		return 1;
	}
	emit("ready", 0, 0);
	for (;;) {
		struct pollfd pf = {.fd = vfd, .events = POLLIN | POLLPRI};
		if (poll(&pf, 1, 5000) < 0 && errno != EINTR)
			return 1;
		if (pread(vfd, vb, sizeof(vb), 0) < 0)
			return 1;
		long n = read_file(spath, b, 14);
		uint64_t t = bl_now();
		if (n != 14) {
			emit("readfail", (unsigned long long)errno, 0);
			return 1;
		}
		if (memcmp(b, cur, 14) != 0) {
			memcpy(cur, b, 14);
			b[14] = '\0';
			emit("seen", strtoull(b, NULL, 10), t);
		}
	}
}
