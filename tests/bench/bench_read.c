/* bench_read: open+read+close latency of files, run inside a container (its cgroup and mount
 * namespace), so that secretd's per-open check sees a process of the container.
 * usage:
 *   bench_read cached ITERS WARMUP ROUNDS LABEL=PATH[@PID|@fd:N]...
 *     Rounds interleave the files (a noisy moment hits every file alike); each round reads every
 *     file WARMUP times untimed, then ITERS times timed. One line per label (microseconds).
 *     With @PID (the filesystem's serving thread), each timed read is also classified by where
 *     the reader and that thread ran (sampled after the read, outside the timed window: the
 *     reader's CPU and the CPU the server last ran on, /proc/PID/stat field 39), and two more
 *     lines are printed: LABEL.same (both on one CPU) and LABEL.split (on different CPUs).
 *     @fd:N: that /proc/PID/stat is open on fd N (from a caller outside the container's pid
 *     namespace).
 *   bench_read rotate ITERS WARMUP ADMIN_SOCK NAME SIZE SECRET_PATH REF_PATH
 *     Each iteration PUTs a new SIZE-byte value of NAME through ADMIN_SOCK, then times the first
 *     open+read+close of SECRET_PATH (checked to show the new value), then one of REF_PATH (the
 *     reference: minfs in uncached mode, where every open and read reach the filesystem). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchlib.h"

static char buf[65536];

/* One open+read+close; the bytes read or -1. */
static long read_once(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	long total = 0;
	for (;;) {
		ssize_t n = read(fd, buf + total, sizeof(buf) - (size_t)total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += n;
	}
	close(fd);
	return total;
}

/* The CPU the task behind the open /proc/PID/stat fd last ran on, or -1. */
static int task_cpu(int fd)
{
	char st[1024];
	ssize_t n = pread(fd, st, sizeof(st) - 1, 0);
	if (n <= 0)
		return -1;
	st[n] = '\0';
	const char *p = strrchr(st, ')'); /* the command name may hold spaces */
	if (!p)
		return -1;
	/* after ") ": field 3 (state) onwards; field 39 is "processor" */
	for (int field = 2; field < 39; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -1;
	}
	return atoi(p + 1);
}

static int run_cached(int argc, char **argv)
{
	if (argc < 6)
		return 2;
	size_t iters = strtoul(argv[2], NULL, 10), warm = strtoul(argv[3], NULL, 10);
	size_t rounds = strtoul(argv[4], NULL, 10), nf = (size_t)argc - 5;
	uint64_t **s = calloc(nf, sizeof(*s)), **same = calloc(nf, sizeof(*s));
	uint64_t **split = calloc(nf, sizeof(*s));
	size_t *nsame = calloc(nf, sizeof(size_t)), *nsplit = calloc(nf, sizeof(size_t));
	int *statfd = calloc(nf, sizeof(int));
	if (!s || !same || !split || !nsame || !nsplit || !statfd)
		return 1;
	for (size_t f = 0; f < nf; f++) {
		s[f] = calloc(iters * rounds, sizeof(uint64_t));
		same[f] = calloc(iters * rounds, sizeof(uint64_t));
		split[f] = calloc(iters * rounds, sizeof(uint64_t));
		if (!s[f] || !same[f] || !split[f])
			return 1;
		char *eq = strchr(argv[5 + f], '=');
		if (!eq)
			return 2;
		statfd[f] = -1;
		char *at = strchr(eq, '@');
		if (at) {
			*at = '\0'; /* the path ends here */
			char sp[64];
			snprintf(sp, sizeof(sp), "/proc/%s/stat", at + 1);
			/* fd:N: /proc/PID/stat opened by the caller (outside our pid namespace) */
			statfd[f] = !strncmp(at + 1, "fd:", 3) ? atoi(at + 4)
			                                       : open(sp, O_RDONLY | O_CLOEXEC);
			if (statfd[f] < 0 || task_cpu(statfd[f]) < 0) {
				fprintf(stderr, "bench_read: %s: %m\n", sp);
				return 1;
			}
		}
	}
	for (size_t r = 0; r < rounds; r++) {
		for (size_t f = 0; f < nf; f++) {
			const char *path = strchr(argv[5 + f], '=') + 1;
			for (size_t i = 0; i < warm; i++) {
				if (read_once(path) <= 0) {
					fprintf(stderr, "bench_read: cannot read %s: %m\n", path);
					return 1;
				}
			}
			for (size_t i = 0; i < iters; i++) {
				uint64_t t0 = bl_now();
				long n = read_once(path);
				uint64_t dt = bl_now() - t0;
				s[f][r * iters + i] = dt;
				if (statfd[f] >= 0) {
					int me = sched_getcpu(), srv = task_cpu(statfd[f]);
					if (me >= 0 && srv >= 0 && me == srv)
						same[f][nsame[f]++] = dt;
					else if (me >= 0 && srv >= 0)
						split[f][nsplit[f]++] = dt;
				}
				if (n <= 0) {
					fprintf(stderr, "bench_read: cannot read %s: %m\n", path);
					return 1;
				}
			}
		}
	}
	for (size_t f = 0; f < nf; f++) {
		char label[128];
		snprintf(label, sizeof(label), "%.*s",
		         (int)(strchr(argv[5 + f], '=') - argv[5 + f]), argv[5 + f]);
		bl_report(label, s[f], iters * rounds);
		if (statfd[f] < 0)
			continue;
		char l2[160];
		snprintf(l2, sizeof(l2), "%s.same", label);
		if (nsame[f])
			bl_report(l2, same[f], nsame[f]);
		snprintf(l2, sizeof(l2), "%s.split", label);
		if (nsplit[f])
			bl_report(l2, split[f], nsplit[f]);
	}
	return 0;
}

static int run_rotate(int argc, char **argv)
{
	if (argc != 9)
		return 2;
	size_t iters = strtoul(argv[2], NULL, 10), warm = strtoul(argv[3], NULL, 10);
	const char *sock = argv[4], *name = argv[5], *secret = argv[7], *ref = argv[8];
	size_t size = strtoul(argv[6], NULL, 10);
	if (size < 16 || size > 60000)
		return 2;
	char *val = malloc(size), path[512], out[256];
	uint64_t *s = calloc(iters, sizeof(*s)), *rs = calloc(iters, sizeof(*rs));
	uint64_t *pt = calloc(iters, sizeof(*pt));
	snprintf(path, sizeof(path), "/v1/secrets/%s?keep=2", name);
	size_t stale = 0;
	for (size_t i = 0; i < warm + iters; i++) {
		memset(val, 'a' + (int)(i % 26), size);
		snprintf(val, 16, "%014zu", i % 100000000000000u);
		int st = 0;
		uint64_t t0 = bl_now();
		long r = bl_http1(sock, "PUT", path, val, size, &st, out, sizeof(out));
		uint64_t t1 = bl_now();
		if (r < 0 || st != 201) {
			fprintf(stderr, "bench_read: PUT %s: %ld status %d %s\n", name, r, st, out);
			return 1;
		}
		long n = read_once(secret);
		uint64_t t2 = bl_now();
		if (n != (long)size || memcmp(buf, val, size) != 0)
			stale++;
		uint64_t t3 = bl_now();
		if (read_once(ref) <= 0) {
			fprintf(stderr, "bench_read: cannot read %s: %m\n", ref);
			return 1;
		}
		uint64_t t4 = bl_now();
		if (i >= warm) {
			pt[i - warm] = t1 - t0;
			s[i - warm] = t2 - t1;
			rs[i - warm] = t4 - t3;
		}
	}
	bl_report("first_read_after_put", s, iters);
	bl_report("ref_uncached", rs, iters);
	bl_report("put", pt, iters);
	printf("stale %zu\n", stale);
	return stale ? 1 : 0;
}

int main(int argc, char **argv)
{
	int rc = 2;
	if (argc > 1 && strcmp(argv[1], "cached") == 0)
		rc = run_cached(argc, argv);
	else if (argc > 1 && strcmp(argv[1], "rotate") == 0)
		rc = run_rotate(argc, argv);
	if (rc == 2)
		fprintf(stderr,
		        "usage: bench_read cached ITERS WARMUP ROUNDS LABEL=PATH... |\n"
		        "       bench_read rotate ITERS WARMUP ADMIN_SOCK NAME SIZE SECRET REF\n");
	return rc;
}
