#include "client/client.h"

#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "common/limits.h"
#include "common/names.h"
#include "common/secret.h"
#include "client/wlhttp.h"

#define CLIENT_RESP_MAX (SECRETD_VALUE_MAX_CEILING + 4096) /* largest answer accepted */
#define CLIENT_TIMEOUT_S 30
#define CLIENT_RETRY_MAX 8       /* attempts of a request refused for load (429, 503) */
#define CLIENT_RETRY_BASE_MS 50  /* first pause; doubles each time */
#define CLIENT_RETRY_CAP_MS 2000 /* longest pause (before jitter) */

struct client_buf {
	uint8_t *p; /* secret_bytes_alloc: the answer may be a secret */
	size_t len, cap;
	bool too_big;
};

const char *client_socket(const char *opt, bool workload)
{
	if (opt && *opt)
		return opt;
	const char *env = workload ? getenv("SECRETD_WORKLOAD_SOCKET") : NULL;
	if (!env || !*env)
		env = getenv("SECRETD_SOCKET");
	if (env && *env)
		return env;
	return workload ? SECRETD_RUNTIME_DIR_DEFAULT "/" SECRETD_WORKLOAD_SOCK
	                : SECRETD_RUNTIME_DIR_DEFAULT "/" SECRETD_ADMIN_SOCK;
}

/* Appends n bytes to b (a locked buffer, grown by doubling, NUL-terminated). -E2BIG past
 * CLIENT_RESP_MAX, -ENOMEM. */
static int client_buf_add(struct client_buf *b, const void *data, size_t n)
{
	if (n > CLIENT_RESP_MAX - b->len) {
		b->too_big = true;
		return -E2BIG;
	}
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->len + n + 1)
			nc *= 2;
		uint8_t *np = secret_bytes_alloc(nc);
		if (!np)
			return -ENOMEM;
		if (b->p) {
			memcpy(np, b->p, b->len);
			secret_bytes_free(b->p);
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Writes all n bytes of p to fd (MSG_NOSIGNAL: a closed peer is EPIPE, not SIGPIPE). */
static int client_send_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	while (n) {
		ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Connects to the unix socket path: the fd, or a negative errno. */
static int client_connect(const char *socket_path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, socket_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = {.tv_sec = CLIENT_TIMEOUT_S};
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	int r;
	do
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* One attempt: an HTTP/1.0 request on a new connection, the answer read to its end and parsed by
 * wlhttp_parse (the parser the static workload client uses; fuzzed). No libcurl: loading it (and
 * the TLS, Kerberos and LDAP libraries it pulls in) was most of a short command's time (#15).
 * *retry is set when the broker refused it for load: 429, 503 with Retry-After (its connection
 * limits), a full accept queue (EAGAIN), or the request could not be sent because the broker had
 * already closed a refused connection (nothing was processed then). */
static int client_attempt(const char *socket_path, const char *method, const char *path,
                          const void *body, size_t len, const char *content_type,
                          struct client_resp *out, const char **err, bool *retry)
{
	*retry = false;
	/* The request line and headers are ours; a path or type with a control byte or a space
	 * would split them. */
	for (const char *c = path; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			if (err)
				*err = "invalid request path";
			return -EINVAL;
		}
	if (content_type && strpbrk(content_type, "\r\n")) {
		if (err)
			*err = "invalid content type";
		return -EINVAL;
	}
	char head[1024 + 256];
	int hn = snprintf(head, sizeof(head),
	                  "%s %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n"
	                  "%s%s%sContent-Length: %zu\r\n\r\n",
	                  method, path, content_type ? "Content-Type: " : "",
	                  content_type ? content_type : "", content_type ? "\r\n" : "",
	                  body ? len : (size_t)0);
	if (hn < 0 || (size_t)hn >= sizeof(head)) {
		if (err)
			*err = "request path too long";
		return -EINVAL;
	}
	int fd = client_connect(socket_path);
	if (fd < 0) {
		*retry = fd == -EAGAIN; /* the accept queue is full: the broker is busy */
		int r = fd == -EACCES || fd == -EPERM ? -EACCES
		        : fd == -ENOENT               ? -ENOENT
		                                      : -ECONNREFUSED;
		if (err)
			*err =
			    r == -EACCES   ? "permission denied on the socket (the admin socket is "
			                     "root's only; run as root, or use the workload socket)"
			    : r == -ENOENT ? "no socket there (is secretd running, with this "
			                     "--runtime-dir?)"
			    : fd == -EAGAIN ? "secretd is busy (its accept queue is full)"
			                    : "nobody listens on the socket (is secretd running?)";
		return r;
	}
	struct client_buf b = {0};
	int r = client_send_all(fd, head, (size_t)hn);
	if (r == 0 && body && len)
		r = client_send_all(fd, body, len);
	/* The broker may answer before the whole body is sent and close (413 for a length over
	 * its limit, 429/503 when refusing a connection): that answer is read below. Only when
	 * none came did the request fail (then it was not processed). */
	bool send_failed = r < 0;
	if (send_failed && r != -EPIPE && r != -ECONNRESET) {
		if (err)
			*err = "cannot send the request";
		close(fd);
		return -EIO;
	}
	struct wlhttp_resp wr;
	bool eof = false;
	for (;;) {
		char chunk[16384];
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			if (err)
				*err = r == -EAGAIN ? "timed out waiting for the answer"
				                    : "cannot read the answer";
			break;
		}
		if (n == 0)
			eof = true;
		else if ((r = client_buf_add(&b, chunk, (size_t)n)) < 0) {
			if (err)
				*err = r == -E2BIG ? "answer too large" : "out of memory";
			break;
		}
		r = wlhttp_parse(b.p ? (const char *)b.p : "", b.len, eof, &wr);
		if (r == -EAGAIN && !eof)
			continue;
		if (r < 0 && err)
			*err = "malformed answer";
		break;
	}
	close(fd);
	if (r < 0 && send_failed && b.len == 0) {
		/* the broker closed the connection before taking the request: nothing was done */
		*retry = true;
		if (err)
			*err = "cannot send the request";
	}
	if (r < 0) {
		if (b.p)
			secret_bytes_free(b.p);
		return -EIO;
	}
	out->status = wr.status;
	*retry = wr.status == 429 || (wr.status == 503 && wr.retry_after);
	if (!b.p) {
		b.p = secret_bytes_alloc(1);
		if (!b.p) {
			if (err)
				*err = "out of memory";
			return -ENOMEM;
		}
	}
	/* The body to the buffer's start, NUL-terminated, what was before it wiped. */
	memmove(b.p, b.p + wr.body_off, wr.body_len);
	sodium_memzero(b.p + wr.body_len, b.len - wr.body_len);
	b.p[wr.body_len] = '\0';
	out->body = b.p;
	out->len = wr.body_len;
	return 0;
}

int client_request(const char *socket, const char *method, const char *path, const void *body,
                   size_t len, const char *content_type, struct client_resp *out, const char **err)
{
	memset(out, 0, sizeof(*out));
	if (sodium_init() < 0) {
		if (err)
			*err = "libsodium failed to initialise";
		return -EIO;
	}
	unsigned pause = CLIENT_RETRY_BASE_MS;
	for (int attempt = 1;; attempt++) {
		bool retry = false;
		int r =
		    client_attempt(socket, method, path, body, len, content_type, out, err, &retry);
		if (!retry || attempt >= CLIENT_RETRY_MAX)
			return r;
		client_resp_free(out);
		out->status = 0;
		/* Exponential backoff with jitter (half to all of the pause), so that refused
		 * clients do not come back in step. */
		unsigned ms = pause / 2 + randombytes_uniform(pause / 2 + 1);
		struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		pause = pause * 2 > CLIENT_RETRY_CAP_MS ? CLIENT_RETRY_CAP_MS : pause * 2;
	}
}

int client_request_json(const char *socket, const char *method, const char *path, json_t *body,
                        struct client_resp *out, json_t **json_out, const char **err)
{
	char *s = NULL;
	if (json_out)
		*json_out = NULL;
	if (body) {
		s = json_dumps(body, JSON_COMPACT);
		if (!s) {
			if (err)
				*err = "out of memory";
			return -ENOMEM;
		}
	}
	int r = client_request(socket, method, path, s, s ? strlen(s) : 0,
	                       s ? "application/json" : NULL, out, err);
	free(s);
	if (r == 0 && json_out && out->status >= 200 && out->status < 300 && out->len)
		*json_out = json_loadb((const char *)out->body, out->len, 0, NULL);
	return r;
}

void client_resp_free(struct client_resp *r)
{
	if (r->body)
		secret_bytes_free(r->body);
	r->body = NULL;
	r->len = 0;
}

const char *client_error(const struct client_resp *r, char *buf, size_t len)
{
	json_t *j = r->body ? json_loadb((const char *)r->body, r->len, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(j, "error"));
	if (msg)
		snprintf(buf, len, "%s", msg);
	else
		snprintf(buf, len, "the broker answered HTTP %ld", r->status);
	json_decref(j);
	return buf;
}

int client_check_name(const char *name, const char **why)
{
	return names_check(name, strlen(name), why);
}

int client_fail(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return rc;
}
