/* benchlib: see benchlib.h. */
#include "benchlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

uint64_t bl_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bl_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t bl_quantile(uint64_t *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), bl_cmp);
	size_t i = (size_t)(q * (double)n);
	if (i >= n)
		i = n - 1;
	return v[i];
}

void bl_report(const char *label, uint64_t *v, size_t n)
{
	uint64_t p50 = bl_quantile(v, n, 0.5), p99 = bl_quantile(v, n, 0.99);
	uint64_t max = n ? v[n - 1] : 0;
	printf("%s n=%zu p50=%.2f p99=%.2f max=%.2f\n", label, n, (double)p50 / 1e3,
	       (double)p99 / 1e3, (double)max / 1e3);
	fflush(stdout);
}

int bl_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static int bl_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

long bl_http(int fd, const char *method, const char *path, const void *body, size_t len,
             int close_after, int *status, char *out, size_t cap)
{
	char hdr[1024];
	int hl = snprintf(hdr, sizeof(hdr),
	                  "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n"
	                  "Content-Type: application/octet-stream\r\n%s\r\n",
	                  method, path, len, close_after ? "Connection: close\r\n" : "");
	if (hl < 0 || (size_t)hl >= sizeof(hdr))
		return -EINVAL;
	/* One write for small requests: two writes would cost a second wakeup of the server. */
	char one[2048];
	int r;
	if ((size_t)hl + len <= sizeof(one)) {
		memcpy(one, hdr, (size_t)hl);
		if (len)
			memcpy(one + hl, body, len);
		r = bl_write_all(fd, one, (size_t)hl + len);
	} else {
		r = bl_write_all(fd, hdr, (size_t)hl);
		if (r == 0 && len)
			r = bl_write_all(fd, body, len);
	}
	if (r < 0)
		return r;
	/* Headers first (byte-wise would be slow: read a chunk and keep the rest as body). */
	char buf[8192];
	size_t have = 0;
	char *end = NULL;
	while (!end) {
		if (have == sizeof(buf) - 1)
			return -E2BIG;
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		have += (size_t)n;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	*status = atoi(buf + 9);
	long clen = -1;
	for (char *p = buf; p < end; p++) {
		if ((*p == '\n') && strncasecmp(p + 1, "content-length:", 15) == 0)
			clen = atol(p + 16);
	}
	if (clen < 0)
		return -EPROTO;
	size_t got = have - (size_t)(end + 4 - buf);
	if (got > (size_t)clen)
		return -EPROTO; /* no pipelining here */
	size_t keep = got < cap ? got : cap;
	memcpy(out, end + 4, keep);
	while (got < (size_t)clen) {
		char tmp[4096];
		size_t want = (size_t)clen - got < sizeof(tmp) ? (size_t)clen - got : sizeof(tmp);
		ssize_t n = read(fd, tmp, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		size_t c = keep + (size_t)n <= cap ? (size_t)n : cap - keep;
		memcpy(out + keep, tmp, c);
		keep += c;
		got += (size_t)n;
	}
	if (keep < cap)
		out[keep] = '\0';
	return clen;
}

long bl_http1(const char *sock, const char *method, const char *path, const void *body, size_t len,
              int *status, char *out, size_t cap)
{
	int fd = bl_connect(sock);
	if (fd < 0)
		return fd;
	long r = bl_http(fd, method, path, body, len, 1, status, out, cap);
	close(fd);
	return r;
}
