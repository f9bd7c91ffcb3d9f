#include "client/client.h"

#include <errno.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "common/limits.h"
#include "common/names.h"
#include "common/secret.h"

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

static size_t client_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct client_buf *b = ud;
	size_t n = size * nmemb;
	if (n > CLIENT_RESP_MAX - b->len) {
		b->too_big = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->len + n + 1)
			nc *= 2;
		uint8_t *np = secret_bytes_alloc(nc);
		if (!np)
			return 0;
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
	return n;
}

/* One attempt. *retry is set when the broker refused it for load: 429, 503 with Retry-After (its
 * connection limits), a full accept queue (EAGAIN), or the request could not be sent because
 * the broker had already closed a refused connection (nothing was processed then). */
static int client_attempt(const char *socket, const char *method, const char *path,
                          const void *body, size_t len, const char *content_type,
                          struct client_resp *out, const char **err, bool *retry)
{
	*retry = false;
	CURL *c = curl_easy_init();
	if (!c) {
		if (err)
			*err = "out of memory";
		return -ENOMEM;
	}
	char url[1024];
	snprintf(url, sizeof(url), "http://localhost%s", path);
	struct client_buf b = {0};
	struct curl_slist *hdrs = NULL;
	if (content_type) {
		char h[128];
		snprintf(h, sizeof(h), "Content-Type: %s", content_type);
		hdrs = curl_slist_append(hdrs, h);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, client_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)CLIENT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	CURLcode cc = curl_easy_perform(c);
	int r = 0;
	if (cc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
		struct curl_header *h = NULL;
		*retry = out->status == 429 ||
		         (out->status == 503 &&
		          curl_easy_header(c, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK);
		if (!b.p) {
			b.p = secret_bytes_alloc(1);
			if (b.p)
				b.p[0] = '\0';
		}
		out->body = b.p;
		out->len = b.len;
		b.p = NULL;
	} else if (cc == CURLE_COULDNT_CONNECT) {
		long oserr = 0;
		curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
		*retry = oserr == EAGAIN; /* the accept queue is full: the broker is busy */
		r = oserr == EACCES || oserr == EPERM ? -EACCES
		    : oserr == ENOENT                 ? -ENOENT
		                                      : -ECONNREFUSED;
		if (err)
			*err = r == -EACCES
			           ? "permission denied on the socket (the admin socket is "
			             "root's only; run as root, or use the workload socket)"
			       : r == -ENOENT ? "no socket there (is secretd running, with this "
			                        "--runtime-dir?)"
			       : oserr == EAGAIN
			           ? "secretd is busy (its accept queue is full)"
			           : "nobody listens on the socket (is secretd running?)";
	} else {
		r = -EIO;
		*retry = cc == CURLE_SEND_ERROR;
		if (err)
			*err = b.too_big ? "answer too large" : curl_easy_strerror(cc);
	}
	if (b.p)
		secret_bytes_free(b.p);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return r;
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
