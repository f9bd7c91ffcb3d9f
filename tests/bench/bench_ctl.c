/* bench_ctl: the request-side tools of the benchmarks.
 * usage:
 *   bench_ctl put SOCK NAME SIZE ROUND
 *     PUTs a SIZE-byte value starting with ROUND (14 digits); prints "put T_BEFORE T_AFTER"
 *     (CLOCK_MONOTONIC ns just before the request is sent and just after the answer).
 *   bench_ctl store SOCK DIR N SIZE
 *     N durable puts of SIZE bytes (one keep-alive connection) interleaved in rounds with N
 *     write+fsync of SIZE bytes appended to a file in DIR (the reference).
 *   bench_ctl keyrot SOCK SECRETS VERSIONS
 *     Stores VERSIONS versions of each of SECRETS secrets, then times POST /v1/keys/rotate until
 *     GET /v1/keys says it is over, and the slowest GET /v1/keys meanwhile (the loop stall).
 *   bench_ctl http ROUNDS N WORKLOAD_SOCK RAW_SOCK NAME
 *     GET /v1/self/secrets/NAME, new connection per request and keep-alive, against the same
 *     request to the raw server, interleaved in ROUNDS rounds of N requests each.
 *   bench_ctl rawsrv SOCK SIZE
 *     The raw reference server: accept, SO_PEERCRED, read a request, answer SIZE bytes, on one
 *     thread; keeps the connection while the client does. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "benchlib.h"

static char out[65536];

static int cmd_put(char **argv)
{
	size_t size = strtoul(argv[4], NULL, 10);
	if (size < 16 || size > 60000)
		return 2;
	char *val = malloc(size), path[512];
	memset(val, 'v', size);
	snprintf(val, 16, "%014llu", strtoull(argv[5], NULL, 10) % 100000000000000ull);
	val[14] = 'v';
	snprintf(path, sizeof(path), "/v1/secrets/%s?keep=2", argv[3]);
	int st = 0;
	uint64_t t0 = bl_now();
	long r = bl_http1(argv[2], "PUT", path, val, size, &st, out, sizeof(out));
	uint64_t t1 = bl_now();
	if (r < 0 || st != 201) {
		fprintf(stderr, "bench_ctl: PUT: %ld status %d %s\n", r, st, out);
		return 1;
	}
	printf("put %llu %llu\n", (unsigned long long)t0, (unsigned long long)t1);
	return 0;
}

static int cmd_store(char **argv)
{
	size_t n = strtoul(argv[4], NULL, 10), size = strtoul(argv[5], NULL, 10);
	char path[512];
	snprintf(path, sizeof(path), "%s/bench-fsync.ref", argv[3]);
	int ffd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	int sfd = bl_connect(argv[2]);
	if (ffd < 0 || sfd < 0) {
		fprintf(stderr, "bench_ctl: cannot open %s or connect: %m\n", path);
		return 1;
	}
	uint64_t *ps = calloc(n, sizeof(*ps)), *fs = calloc(n, sizeof(*fs)), ptot = 0, ftot = 0;
	char *val = malloc(size);
	memset(val, 's', size);
	const size_t chunk = 25, warm = 10;
	for (size_t i = 0; i < warm; i++) {
		int st;
		if (bl_http(sfd, "PUT", "/v1/secrets/bench/store?keep=10", val, size, 0, &st, out,
		            sizeof(out)) < 0 ||
		    st != 201)
			return 1;
		if (write(ffd, val, size) != (ssize_t)size || fsync(ffd) < 0)
			return 1;
	}
	for (size_t b = 0; b < n; b += chunk) {
		for (size_t i = b; i < n && i < b + chunk; i++) {
			int st = 0;
			uint64_t t0 = bl_now();
			long r = bl_http(sfd, "PUT", "/v1/secrets/bench/store?keep=10", val, size,
			                 0, &st, out, sizeof(out));
			ps[i] = bl_now() - t0;
			ptot += ps[i];
			if (r < 0 || st != 201) {
				fprintf(stderr, "bench_ctl: PUT: %ld status %d\n", r, st);
				return 1;
			}
		}
		for (size_t i = b; i < n && i < b + chunk; i++) {
			uint64_t t0 = bl_now();
			if (write(ffd, val, size) != (ssize_t)size || fsync(ffd) < 0)
				return 1;
			fs[i] = bl_now() - t0;
			ftot += fs[i];
		}
	}
	close(ffd);
	unlink(path);
	close(sfd);
	bl_report("store_put", ps, n);
	bl_report("raw_fsync", fs, n);
	printf("rate store_put %.1f raw_fsync %.1f\n", (double)n * 1e9 / (double)ptot,
	       (double)n * 1e9 / (double)ftot);
	return 0;
}

/* POST /v1/keys/rotate, then GET /v1/keys back to back until the rotation is over: returns
 * when every data key is re-wrapped; *stall = the slowest status answer (ns), i.e. the longest
 * the daemon's loop was held by one batch. */
static int keyrot_once(int fd, uint64_t *stall)
{
	int st = 0;
	uint64_t t = bl_now();
	long r = bl_http(fd, "POST", "/v1/keys/rotate", "{}", 2, 0, &st, out, sizeof(out));
	if (r < 0 || st / 100 != 2) {
		fprintf(stderr, "bench_ctl: key rotate: %ld status %d %s\n", r, st, out);
		return -1;
	}
	*stall = bl_now() - t; /* the start checks every secret's head in one go */
	for (;;) {
		uint64_t a = bl_now();
		r = bl_http(fd, "GET", "/v1/keys", NULL, 0, 0, &st, out, sizeof(out));
		uint64_t d = bl_now() - a;
		if (r < 0 || st != 200) {
			fprintf(stderr, "bench_ctl: GET /v1/keys: %ld status %d %s\n", r, st, out);
			return -1;
		}
		if (d > *stall)
			*stall = d;
		if (!strstr(out, "\"rotating\": true") && !strstr(out, "\"rotating\":true"))
			return 0;
	}
}

static int cmd_keyrot(char **argv)
{
	size_t ns = strtoul(argv[3], NULL, 10), nv = strtoul(argv[4], NULL, 10);
	int fd = bl_connect(argv[2]);
	if (fd < 0)
		return 1;
	char val[64], path[256];
	memset(val, 'k', sizeof(val));
	uint64_t t0 = bl_now();
	for (size_t v = 0; v < nv; v++) {
		for (size_t s = 0; s < ns; s++) {
			int st = 0;
			snprintf(path, sizeof(path), "/v1/secrets/bench/kr%zu?keep=1000", s);
			if (bl_http(fd, "PUT", path, val, sizeof(val), 0, &st, out, sizeof(out)) <
			        0 ||
			    st != 201) {
				fprintf(stderr, "bench_ctl: PUT %s: status %d %s\n", path, st, out);
				return 1;
			}
		}
	}
	uint64_t t1 = bl_now();
	uint64_t stall1 = 0, stall2 = 0;
	if (keyrot_once(fd, &stall1) < 0)
		return 1;
	uint64_t t2 = bl_now();
	/* the same key rotation again: a second sample of the same work */
	if (keyrot_once(fd, &stall2) < 0)
		return 1;
	uint64_t t3 = bl_now();
	close(fd);
	printf("keyrot versions %zu fill_ms %.1f rotate_ms %.1f rotate2_ms %.1f stall_ms %.1f "
	       "stall2_ms %.1f answer %s\n",
	       ns * nv, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6, (double)(t3 - t2) / 1e6,
	       (double)stall1 / 1e6, (double)stall2 / 1e6, out);
	return 0;
}

/* n requests; new_conn: one connection each, else one keep-alive connection. Latencies in s. */
static int http_run(const char *sock, const char *path, size_t n, int new_conn, uint64_t *s,
                    uint64_t *total)
{
	int fd = new_conn ? -1 : bl_connect(sock);
	if (!new_conn && fd < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int st = 0;
		uint64_t t0 = bl_now();
		long r = new_conn ? bl_http1(sock, "GET", path, NULL, 0, &st, out, sizeof(out))
		                  : bl_http(fd, "GET", path, NULL, 0, 0, &st, out, sizeof(out));
		s[i] = bl_now() - t0;
		*total += s[i];
		if (r < 0 || st != 200) {
			fprintf(stderr, "bench_ctl: GET %s on %s: %ld status %d %s\n", path, sock,
			        r, st, out);
			return -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

static int cmd_http(char **argv)
{
	size_t rounds = strtoul(argv[2], NULL, 10), n = strtoul(argv[3], NULL, 10);
	const char *socks[2] = {argv[4], argv[5]},
	           *labels[4] = {"secretd_newconn", "raw_newconn", "secretd_keepalive",
	                         "raw_keepalive"};
	char path[256];
	snprintf(path, sizeof(path), "/v1/self/secrets/%s", argv[6]);
	uint64_t *s[4], tot[4] = {0};
	for (int k = 0; k < 4; k++)
		s[k] = calloc(rounds * n, sizeof(uint64_t));
	uint64_t *scratch = calloc(n, sizeof(uint64_t)), junk = 0;
	for (int k = 0; k < 4; k++) /* warm-up, excluded */
		if (http_run(socks[k % 2], path, n / 10 + 1, k < 2, scratch, &junk) < 0)
			return 1;
	for (size_t r = 0; r < rounds; r++)
		for (int k = 0; k < 4; k++)
			if (http_run(socks[k % 2], path, n, k < 2, s[k] + r * n, &tot[k]) < 0)
				return 1;
	for (int k = 0; k < 4; k++) {
		bl_report(labels[k], s[k], rounds * n);
		printf("rate %s %.1f\n", labels[k], (double)(rounds * n) * 1e9 / (double)tot[k]);
	}
	return 0;
}

static int cmd_rawsrv(char **argv)
{
	size_t size = strtoul(argv[3], NULL, 10);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[2]);
	unlink(argv[2]);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 128) < 0 ||
	    chmod(argv[2], 0666) < 0) {
		perror("bench_ctl rawsrv");
		return 1;
	}
	char *resp = malloc(size + 256), req[8192];
	int hl = snprintf(resp, 256,
	                  "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
	                  "Content-Length: %zu\r\n\r\n",
	                  size);
	memset(resp + hl, 'r', size);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.pid <= 0) {
			close(c);
			continue;
		}
		size_t have = 0;
		for (;;) {
			ssize_t n = read(c, req + have, sizeof(req) - 1 - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			req[have] = '\0';
			char *end = strstr(req, "\r\n\r\n");
			if (!end) {
				if (have == sizeof(req) - 1)
					break;
				continue;
			}
			/* GETs only: no body follows the headers */
			bool close_after = strcasestr(req, "connection: close") != NULL;
			if (write(c, resp, (size_t)hl + size) != (ssize_t)((size_t)hl + size) ||
			    close_after)
				break;
			have = 0;
		}
		close(c);
	}
}

int main(int argc, char **argv)
{
	int rc = 2;
	const char *cmd = argc > 1 ? argv[1] : "";
	if (!strcmp(cmd, "put") && argc == 6)
		rc = cmd_put(argv);
	else if (!strcmp(cmd, "store") && argc == 6)
		rc = cmd_store(argv);
	else if (!strcmp(cmd, "keyrot") && argc == 5)
		rc = cmd_keyrot(argv);
	else if (!strcmp(cmd, "http") && argc == 7)
		rc = cmd_http(argv);
	else if (!strcmp(cmd, "rawsrv") && argc == 4)
		rc = cmd_rawsrv(argv);
	if (rc == 2)
		fprintf(stderr, "usage: see the comment at the top of tests/bench/bench_ctl.c\n");
	return rc;
}
