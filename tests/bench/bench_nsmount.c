/* bench_nsmount: what one nsmount_fuse + nsmount_umount costs the daemon (broker/os/nsmount),
 * the daemon's part of `secretctl mount` and of the OCI hook. Issue #15.
 * usage: bench_nsmount N [RSS_MIB]
 * A "container" (a child in its own mount namespace) is made once; then N times: a fresh
 * /dev/fuse connection (no server needed: the mount does not wait for INIT) is mounted at a
 * directory in that namespace and unmounted again. RSS_MIB (default 24, the daemon's RSS at 1,000
 * containers) of touched memory stands for the daemon's address space, which a forked child
 * copies and tears down. Prints p50/p99 of the mount and the unmount in microseconds. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/os/nsmount.h"
#include "tests/bench/benchlib.h"

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	size_t n = strtoul(argv[1], NULL, 10);
	size_t rss = argc > 2 ? strtoul(argv[2], NULL, 10) : 24;
	if (n == 0 || n > 1000000)
		return 2;
	char *ballast = malloc(rss << 20);
	if (rss && !ballast)
		return 1;
	memset(ballast, 1, rss << 20);
	char dir[] = "/tmp/bench-nsmount-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	int ready[2];
	if (pipe(ready) < 0)
		return 1;
	pid_t c = fork();
	if (c < 0)
		return 1;
	if (c == 0) {
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	char b;
	if (read(ready[0], &b, 1) != 1)
		return 1;
	int pidfd = pidfd_open(c, 0);
	uint64_t *tm = calloc(n, sizeof(*tm)), *tu = calloc(n, sizeof(*tu));
	int rc = 0;
	if (pidfd < 0 || !tm || !tu) {
		rc = 1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			rc = 1;
			break;
		}
		char data[128];
		snprintf(data, sizeof(data), "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
		uint64_t t0 = bl_now();
		int r = nsmount_fuse(pidfd, NULL, dir, fd, data);
		uint64_t t1 = bl_now();
		int u = r == 0 ? nsmount_umount(pidfd, NULL, dir) : 0;
		uint64_t t2 = bl_now();
		close(fd);
		if (r < 0 || u < 0) {
			fprintf(stderr, "bench_nsmount: mount %d umount %d\n", r, u);
			rc = 1;
			break;
		}
		tm[i] = t1 - t0;
		tu[i] = t2 - t1;
	}
	if (rc == 0) {
		bl_report("nsmount_fuse", tm, n);
		bl_report("nsmount_umount", tu, n);
	}
out:
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	rmdir(dir);
	return rc;
}
