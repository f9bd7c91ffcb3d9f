/* etcd.c: etcd v3 JSON gateway client (libcurl) and the parser of its answers (jansson). */
#include "broker/cluster/etcd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "common/cleanup.h"
#include "common/decimal.h"
#include "common/secret.h"

/* ---- the parser (pure) ---- */

static void etcd_kv_clear(struct etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	*kv = (struct etcd_kv){0};
}

void etcd_answer_free(struct etcd_answer *a)
{
	if (!a)
		return;
	for (size_t i = 0; a->kvs && i < a->nkvs; i++)
		etcd_kv_clear(&a->kvs[i]);
	for (size_t i = 0; a->events && i < a->nevents; i++)
		etcd_kv_clear(&a->events[i].kv);
	free(a->kvs);
	free(a->events);
	free(a->members);
	free(a->error);
	if (a->token)
		sodium_memzero(a->token, strlen(a->token));
	free(a->token);
	*a = (struct etcd_answer){0};
}

/* A non-negative number of at most max as etcd's gateway writes it: a decimal string (or,
 * leniently, a JSON integer); absent is 0. */
static int etcd_num(json_t *o, const char *name, uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(o, name);
	*out = 0;
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
			return -EPROTO;
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v) ||
	    decimal_parse_u64(json_string_value(v), json_string_length(v), 0, max, out) < 0) {
		*out = 0;
		return -EPROTO;
	}
	return 0;
}

/* A revision, count or lease id: an int64. */
static int etcd_int(json_t *o, const char *name, int64_t *out)
{
	uint64_t u;
	int r = etcd_num(o, name, INT64_MAX, &u);
	*out = (int64_t)u;
	return r;
}

/* An unsigned 64-bit id (a member's: often above INT64_MAX). */
static int etcd_uint(json_t *o, const char *name, uint64_t *out)
{
	return etcd_num(o, name, UINT64_MAX, out);
}

/* A bounded printable string field into buf (cap bytes with the NUL); absent is "". */
static int etcd_str(json_t *v, char *buf, size_t cap)
{
	buf[0] = 0;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return -EPROTO;
	size_t n = json_string_length(v);
	const char *s = json_string_value(v);
	if (n >= cap)
		return -E2BIG;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return -EPROTO;
	memcpy(buf, s, n);
	buf[n] = 0;
	return 0;
}

/* An optional JSON array of at most max elements: *n its size and *out a zeroed array of *n
 * elements of size bytes (NULL, 0 when absent or empty). -EPROTO not an array, -E2BIG. */
static int etcd_array(json_t *arr, size_t max, size_t size, void **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return -EPROTO;
	size_t len = json_array_size(arr);
	if (len > max)
		return -E2BIG;
	if (len == 0)
		return 0;
	*out = calloc(len, size);
	if (!*out)
		return -ENOMEM;
	*n = len;
	return 0;
}

static int etcd_members_parse(json_t *arr, struct etcd_answer *a)
{
	void *v;
	size_t n;
	int r = etcd_array(arr, ETCD_MEMBERS_MAX, sizeof(*a->members), &v, &n);
	if (r < 0)
		return r;
	a->members = v;
	a->nmembers = n;
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_array_get(arr, i);
		struct etcd_member *e = &a->members[i];
		if (!json_is_object(m))
			return -EPROTO;
		r = etcd_uint(m, "ID", &e->id);
		if (r == 0)
			r = etcd_str(json_object_get(m, "name"), e->name, sizeof(e->name));
		json_t *urls = json_object_get(m, "clientURLs");
		if (r == 0 && urls && !json_is_array(urls))
			r = -EPROTO;
		if (r == 0 && urls && json_array_size(urls))
			r = etcd_str(json_array_get(urls, 0), e->client_url, sizeof(e->client_url));
		if (r < 0)
			return r;
	}
	return 0;
}

/* A base64 field into a malloc'd buffer (NUL-terminated after *len bytes); absent is empty. */
static int etcd_b64(json_t *o, const char *name, size_t max, uint8_t **out, size_t *len)
{
	json_t *v = json_object_get(o, name);
	*out = NULL;
	*len = 0;
	const char *s = "";
	size_t sl = 0;
	if (v) {
		if (!json_is_string(v))
			return -EPROTO;
		s = json_string_value(v);
		sl = json_string_length(v);
	}
	if (sl / 4 * 3 > max + 3)
		return -E2BIG;
	uint8_t *b = malloc(sl / 4 * 3 + 4);
	if (!b)
		return -ENOMEM;
	size_t n = 0;
	if (sl && sodium_base642bin(b, sl / 4 * 3 + 3, s, sl, NULL, &n, NULL,
	                            sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(b);
		return -EPROTO;
	}
	if (n > max) {
		free(b);
		return -E2BIG;
	}
	b[n] = 0;
	*out = b;
	*len = n;
	return 0;
}

static int etcd_kv_parse(json_t *o, struct etcd_kv *kv)
{
	if (!json_is_object(o))
		return -EPROTO;
	int r = etcd_b64(o, "key", ETCD_KEY_MAX, &kv->key, &kv->keylen);
	if (r == 0)
		r = etcd_b64(o, "value", ETCD_VALUE_MAX, &kv->value, &kv->vlen);
	if (r == 0)
		r = etcd_int(o, "create_revision", &kv->create_revision);
	if (r == 0)
		r = etcd_int(o, "mod_revision", &kv->mod_revision);
	if (r == 0)
		r = etcd_int(o, "version", &kv->version);
	if (r == 0)
		r = etcd_int(o, "lease", &kv->lease);
	return r;
}

static int etcd_header(json_t *o, struct etcd_answer *a)
{
	json_t *h = json_object_get(o, "header");
	if (!h)
		return 0;
	if (!json_is_object(h))
		return -EPROTO;
	return etcd_int(h, "revision", &a->revision);
}

static int etcd_error(json_t *o, struct etcd_answer *a)
{
	json_t *e = json_object_get(o, "error");
	json_t *m = json_object_get(o, "message");
	if (!e && !m)
		return 0;
	const char *t = json_is_string(m)   ? json_string_value(m)
	                : json_is_string(e) ? json_string_value(e)
	                                    : "error";
	a->error = strndup(t, ETCD_ERROR_MAX);
	return a->error ? 0 : -ENOMEM;
}

/* authenticate's token: bounded, printable ASCII without spaces (it goes into a header). */
static int etcd_token(json_t *o, struct etcd_answer *a)
{
	json_t *t = json_object_get(o, "token");
	if (!t)
		return 0;
	if (!json_is_string(t))
		return -EPROTO;
	size_t n = json_string_length(t);
	if (n > ETCD_TOKEN_MAX)
		return -E2BIG;
	const char *v = json_string_value(t);
	if (n == 0 || strlen(v) != n)
		return -EPROTO;
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			return -EPROTO;
	a->token = strndup(v, n);
	return a->token ? 0 : -ENOMEM;
}

static int etcd_kvs(json_t *arr, struct etcd_answer *a)
{
	void *v;
	size_t n;
	int r = etcd_array(arr, ETCD_KVS_MAX, sizeof(*a->kvs), &v, &n);
	if (r < 0)
		return r;
	a->kvs = v;
	for (size_t i = 0; r == 0 && i < n; i++) {
		a->nkvs = i + 1;
		r = etcd_kv_parse(json_array_get(arr, i), &a->kvs[i]);
	}
	return r;
}

static int etcd_watch_result(json_t *res, struct etcd_answer *a)
{
	if (!json_is_object(res))
		return -EPROTO;
	a->watch = true;
	int r = etcd_header(res, a);
	if (r < 0)
		return r;
	a->created = json_is_true(json_object_get(res, "created"));
	r = etcd_int(res, "ID", &a->lease_id);
	if (r == 0)
		r = etcd_int(res, "TTL", &a->ttl);
	if (r < 0)
		return r;
	a->canceled = json_is_true(json_object_get(res, "canceled"));
	r = etcd_int(res, "compact_revision", &a->compact_revision);
	if (r < 0)
		return r;
	json_t *why = json_object_get(res, "cancel_reason");
	if (json_is_string(why) && json_string_length(why)) {
		a->error = strndup(json_string_value(why), ETCD_ERROR_MAX);
		if (!a->error)
			return -ENOMEM;
	}
	json_t *evs = json_object_get(res, "events");
	void *v;
	size_t n;
	r = etcd_array(evs, ETCD_EVENTS_MAX, sizeof(*a->events), &v, &n);
	if (r < 0)
		return r;
	a->events = v;
	for (size_t i = 0; i < n; i++) {
		json_t *ev = json_array_get(evs, i);
		a->nevents = i + 1;
		if (!json_is_object(ev))
			return -EPROTO;
		json_t *t = json_object_get(ev, "type");
		if (!t || (json_is_string(t) && strcmp(json_string_value(t), "PUT") == 0))
			a->events[i].type = ETCD_EVENT_PUT;
		else if (json_is_string(t) && strcmp(json_string_value(t), "DELETE") == 0)
			a->events[i].type = ETCD_EVENT_DELETE;
		else
			return -EPROTO;
		r = etcd_kv_parse(json_object_get(ev, "kv"), &a->events[i].kv);
		if (r < 0)
			return r;
	}
	return 0;
}

int etcd_parse(const char *p, size_t len, struct etcd_answer *out)
{
	if (!out)
		return -EINVAL;
	*out = (struct etcd_answer){0};
	if (!p || len > ETCD_ANSWER_MAX)
		return p ? -E2BIG : -EINVAL;
	json_error_t je;
	json_t *o = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return -EPROTO;
	int r = -EPROTO;
	if (!json_is_object(o))
		goto out;
	json_t *res = json_object_get(o, "result");
	if (res) {
		r = etcd_watch_result(res, out);
		goto out;
	}
	r = etcd_error(o, out);
	if (r == 0)
		r = etcd_token(o, out);
	if (r == 0)
		r = etcd_header(o, out);
	if (r == 0)
		r = etcd_kvs(json_object_get(o, "kvs"), out);
	if (r == 0)
		r = etcd_members_parse(json_object_get(o, "members"), out);
	if (r == 0)
		r = etcd_uint(o, "leader", &out->leader);
	if (r == 0)
		r = etcd_int(o, "ID", &out->lease_id);
	if (r == 0)
		r = etcd_int(o, "TTL", &out->ttl);
	if (r == 0)
		out->succeeded = json_is_true(json_object_get(o, "succeeded"));
	/* a txn's first range response (a lost campaign: the holder) */
	json_t *rs = json_object_get(o, "responses");
	if (r == 0 && rs && !out->nkvs) {
		json_t *r0 = json_is_array(rs) ? json_array_get(rs, 0) : NULL;
		json_t *rr = json_is_object(r0) ? json_object_get(r0, "response_range") : NULL;
		if (rs && !json_is_array(rs))
			r = -EPROTO;
		else if (rr && !json_is_object(rr))
			r = -EPROTO;
		else if (rr)
			r = etcd_kvs(json_object_get(rr, "kvs"), out);
	}
out:
	json_decref(o);
	return r;
}

int etcd_stream_feed(struct etcd_stream *s, const char *p, size_t len, etcd_line_cb cb, void *ud)
{
	while (len) {
		const char *nl = memchr(p, '\n', len);
		size_t take = nl ? (size_t)(nl - p) : len;
		if (s->len + take > ETCD_ANSWER_MAX)
			return -E2BIG;
		if (s->len + take > s->cap) {
			size_t cap = s->cap ? s->cap : 4096;
			while (cap < s->len + take)
				cap *= 2;
			char *b = realloc(s->buf, cap);
			if (!b)
				return -ENOMEM;
			s->buf = b;
			s->cap = cap;
		}
		if (take)
			memcpy(s->buf + s->len, p, take);
		s->len += take;
		p += take;
		len -= take;
		if (!nl)
			break;
		p++; /* the newline */
		len--;
		size_t l = s->len;
		s->len = 0;
		while (l && (s->buf[l - 1] == '\r' || s->buf[l - 1] == ' '))
			l--;
		if (l) {
			int r = cb(s->buf, l, ud);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

void etcd_stream_free(struct etcd_stream *s)
{
	free(s->buf);
	*s = (struct etcd_stream){0};
}

/* ---- the client ---- */

struct etcd_client {
	char *urls[ETCD_ENDPOINTS_MAX];
	size_t n, good;
	size_t wi;    /* the endpoint of the watch in progress or last started ... */
	bool watched; /* ... once one started */
	unsigned timeout_ms;
	bool tls;
	char *cacert, *cert, *key, *user;
	secret *password;
	char token[ETCD_TOKEN_MAX + 1]; /* "" until authenticated */
	char err[CURL_ERROR_SIZE + ETCD_ERROR_MAX + 64];
	const volatile bool *stop; /* etcd_client_set_stop: a call in progress gives up */
	int64_t deadline_ms;       /* etcd_client_set_deadline (0: none) */
};

static bool etcd_user_ok(const char *u)
{
	size_t n = strnlen(u, ETCD_USER_MAX);
	if (n == 0 || n == ETCD_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (u[i] < 0x20 || u[i] > 0x7e || u[i] == '"' || u[i] == '\\')
			return false;
	return true;
}

static int etcd_strdup_opt(char **out, const char *s)
{
	if (!s)
		return 0;
	if (!*s || strnlen(s, ETCD_PATH_MAX) == ETCD_PATH_MAX)
		return -EINVAL;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int etcd_client_secure(etcd_client *c, const struct etcd_security *sec)
{
	if (!sec)
		return 0;
	if (!c->tls && (sec->cacert || sec->cert || sec->key || sec->user))
		return -EINVAL; /* nothing secret or verified travels over plain http */
	if (!sec->cert != !sec->key || !sec->user != !sec->password)
		return -EINVAL;
	if (sec->user && !etcd_user_ok(sec->user))
		return -EINVAL;
	if (sec->password &&
	    (secret_len(sec->password) == 0 || secret_len(sec->password) > ETCD_PASSWORD_MAX))
		return -EINVAL;
	int r = etcd_strdup_opt(&c->cacert, sec->cacert);
	if (r == 0)
		r = etcd_strdup_opt(&c->cert, sec->cert);
	if (r == 0)
		r = etcd_strdup_opt(&c->key, sec->key);
	if (r == 0)
		r = etcd_strdup_opt(&c->user, sec->user);
	if (r == 0 && sec->password)
		c->password = secret_ref(sec->password);
	return r;
}

int etcd_client_new(etcd_client **out, const char *urls, unsigned timeout_ms,
                    const struct etcd_security *sec)
{
	if (!out || !urls || !*urls)
		return -EINVAL;
	*out = NULL;
	etcd_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->timeout_ms = timeout_ms ? timeout_ms : ETCD_TIMEOUT_MS_DEFAULT;
	c->tls = strncmp(urls, "https://", 8) == 0;
	const char *scheme = c->tls ? "https://" : "http://";
	size_t sl = strlen(scheme);
	const char *p = urls;
	int r = 0;
	while (*p) {
		size_t l = strcspn(p, ",");
		if (l == 0 || l >= ETCD_URL_MAX || c->n == ETCD_ENDPOINTS_MAX ||
		    strncmp(p, scheme, sl) != 0) {
			r = -EINVAL;
			break;
		}
		while (l > sl && p[l - 1] == '/')
			l--;
		c->urls[c->n] = strndup(p, l);
		if (!c->urls[c->n]) {
			r = -ENOMEM;
			break;
		}
		c->n++;
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
	if (r == 0 && c->n == 0)
		r = -EINVAL;
	if (r == 0)
		r = etcd_client_secure(c, sec);
	if (r < 0) {
		etcd_client_free(c);
		return r;
	}
	*out = c;
	return 0;
}

void etcd_client_free(etcd_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->urls[i]);
	free(c->cacert);
	free(c->cert);
	free(c->key);
	free(c->user);
	secret_unref(c->password);
	sodium_memzero(c->token, sizeof(c->token));
	free(c);
}

const char *etcd_client_error(const etcd_client *c)
{
	return c ? c->err : "";
}

const char *etcd_client_watch_endpoint(const etcd_client *c)
{
	return c && c->watched ? c->urls[c->wi] : "";
}

struct etcd_body {
	char *p;
	size_t len;
	bool over;
};

static size_t etcd_collect(char *d, size_t sz, size_t nm, void *ud)
{
	struct etcd_body *b = ud;
	size_t n = sz * nm;
	if (b->len + n > ETCD_ANSWER_MAX) {
		b->over = true;
		return 0;
	}
	char *q = realloc(b->p, b->len + n + 1);
	if (!q)
		return 0;
	memcpy(q + b->len, d, n);
	b->p = q;
	b->len += n;
	b->p[b->len] = 0;
	return n;
}

static void etcd_body_wipe(struct etcd_body *b)
{
	if (b->p)
		sodium_memzero(b->p, b->len);
	free(b->p);
	b->p = NULL;
}

static char *etcd_b64_enc(const void *p, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(cap);
	if (s)
		sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

/* The end of a prefix's range: the prefix with its last byte below 0xff incremented (bytes after
 * it dropped); "\0" (every key) when there is none. */
static char *etcd_range_end(const uint8_t *k, size_t n)
{
	uint8_t e[ETCD_KEY_MAX];
	if (n > sizeof(e))
		return NULL;
	memcpy(e, k, n);
	while (n && e[n - 1] == 0xff)
		n--;
	if (!n)
		return etcd_b64_enc("", 1);
	e[n - 1]++;
	return etcd_b64_enc(e, n);
}

/* The options every request shares: the scheme, TLS (peer and host always verified), the
 * headers (JSON, and the token once authenticated). *hd is the caller's to free. */
static int etcd_setup(etcd_client *c, CURL *h, struct curl_slist **hd)
{
	*hd = curl_slist_append(NULL, "Content-Type: application/json");
	if (*hd && c->token[0]) {
		char a[ETCD_TOKEN_MAX + 32];
		snprintf(a, sizeof(a), "Authorization: %s", c->token);
		struct curl_slist *t = curl_slist_append(*hd, a);
		sodium_memzero(a, sizeof(a));
		if (!t) {
			curl_slist_free_all(*hd);
			*hd = NULL;
		} else {
			*hd = t;
		}
	}
	if (!*hd)
		return -ENOMEM;
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hd);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c->tls ? "https" : "http");
	if (c->tls) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
		if (c->cacert)
			curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
		if (c->cert) {
			curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
			curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
		}
	}
	return 0;
}

/* A transfer that failed because of TLS (a configuration problem, not an unreachable member).
 * An etcd that requires client certificates drops a client without one right after the
 * handshake (TLS 1.3): a send or receive error, taken as TLS when no certificate was given. */
static bool etcd_tls_failed(const etcd_client *c, CURLcode cc, const char *eb)
{
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
		return true;
	case CURLE_RECV_ERROR: /* TLS 1.3: the server's alert comes after the handshake */
	case CURLE_SEND_ERROR:
		return c->tls && (!c->cert || strstr(eb, "alert") != NULL);
	default:
		return false;
	}
}

/* etcd's error text, classified: -EKEYEXPIRED the token is invalid or stale (authenticate
 * again), -EACCES credentials refused, -EPERM permission denied, else -EPROTO. */
static int etcd_error_class(const char *e)
{
	if (strstr(e, "invalid auth token") || strstr(e, "revision of auth store is old"))
		return -EKEYEXPIRED;
	if (strstr(e, "permission denied"))
		return -EPERM;
	if (strstr(e, "authentication failed") || strstr(e, "user name is empty") ||
	    strstr(e, "authentication is not enabled") || strstr(e, "user name not found"))
		return -EACCES;
	return -EPROTO;
}

/* POSTs body to path on the endpoints in turn (the last good first); the answer into *ans. */
void etcd_client_set_stop(etcd_client *c, const volatile bool *stop)
{
	c->stop = stop;
}

void etcd_client_set_deadline(etcd_client *c, int64_t deadline_ms)
{
	c->deadline_ms = deadline_ms;
}

static int64_t etcd_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int etcd_call_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c_, curl_off_t d)
{
	const etcd_client *c = ud;
	return c->stop && *c->stop ? 1 : 0;
}

static int etcd_call_once(etcd_client *c, const char *path, const char *body,
                          struct etcd_answer *ans)
{
	*ans = (struct etcd_answer){0}; /* freed by the caller whatever the outcome */
	int r = -EHOSTUNREACH;
	bool tls_failed = false;
	c->err[0] = 0;
	for (size_t t = 0; t < c->n; t++) {
		if (c->stop && *c->stop)
			return -ECANCELED;
		long tmo = (long)c->timeout_ms;
		if (c->deadline_ms) {
			int64_t left = c->deadline_ms - etcd_mono_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			if (left < tmo)
				tmo = (long)left;
		}
		size_t i = (c->good + t) % c->n;
		char url[ETCD_URL_MAX + 64];
		snprintf(url, sizeof(url), "%s%s", c->urls[i], path);
		CURL *h = curl_easy_init();
		if (!h)
			return -ENOMEM;
		struct etcd_body b = {0};
		char eb[CURL_ERROR_SIZE] = "";
		struct curl_slist *hd = NULL;
		if (etcd_setup(c, h, &hd) < 0) {
			curl_easy_cleanup(h);
			return -ENOMEM;
		}
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, etcd_collect);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, tmo);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, eb);
		if (c->stop) {
			curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
			curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, etcd_call_progress);
			curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
		}
		CURLcode cc = curl_easy_perform(h);
		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(h);
		curl_slist_free_all(hd);
		if (cc != CURLE_OK || status >= 500 || status == 0) {
			snprintf(c->err, sizeof(c->err), "%s: %s", c->urls[i],
			         cc != CURLE_OK ? (eb[0] ? eb : curl_easy_strerror(cc))
			                        : "server error");
			etcd_body_wipe(&b);
			tls_failed = cc != CURLE_OK && etcd_tls_failed(c, cc, eb);
			r = b.over ? -E2BIG : tls_failed ? -EBADE : -EHOSTUNREACH;
			if (b.over)
				break;
			continue;
		}
		c->good = i;
		r = etcd_parse(b.p ? b.p : "", b.len, ans);
		etcd_body_wipe(&b);
		if (r < 0)
			snprintf(c->err, sizeof(c->err), "%s: HTTP %ld: %s", c->urls[i], status,
			         r == -E2BIG ? "an answer over a limit"
			                     : "an answer that does not parse");
		if (r == 0 && (status != 200 || ans->error)) {
			snprintf(c->err, sizeof(c->err), "%s: HTTP %ld: %s", c->urls[i], status,
			         ans->error ? ans->error : "");
			r = ans->error ? etcd_error_class(ans->error) : -EPROTO;
		}
		break;
	}
	return r;
}

/* {"name":USER,"password":PASSWORD} in locked memory (the password JSON-escaped). */
static int etcd_auth_body(const etcd_client *c, secret **out)
{
	const uint8_t *pw = secret_data(c->password);
	size_t n = secret_len(c->password);
	size_t cap = strlen(c->user) + 6 * n + 64;
	_cleanup_secret_ secret *b = secret_new(cap);
	if (!b)
		return -ENOMEM;
	char *p = (char *)secret_data(b);
	size_t o = (size_t)snprintf(p, cap, "{\"name\":\"%s\",\"password\":\"", c->user);
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = pw[i];
		if (ch == '"' || ch == '\\') {
			p[o++] = '\\';
			p[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(p + o, cap - o, "\\u%04x", ch);
		} else {
			p[o++] = (char)ch;
		}
	}
	memcpy(p + o, "\"}", 3);
	*out = TAKE_PTR(b);
	return 0;
}

/* /v3/auth/authenticate: the token into c->token. */
static int etcd_authenticate(etcd_client *c)
{
	c->token[0] = 0;
	_cleanup_secret_ secret *body = NULL;
	int r = etcd_auth_body(c, &body);
	if (r < 0)
		return r;
	struct etcd_answer a;
	r = etcd_call_once(c, "/v3/auth/authenticate", (const char *)secret_data(body), &a);
	if (r == -EKEYEXPIRED)
		r = -EACCES;
	if (r == 0 && !a.token) {
		snprintf(c->err, sizeof(c->err), "%s: no token in etcd's answer", c->urls[c->good]);
		r = -EPROTO;
	}
	if (r == 0)
		snprintf(c->token, sizeof(c->token), "%s", a.token);
	etcd_answer_free(&a);
	return r;
}

/* A call, authenticated when the client has a user: the token is fetched first, and fetched
 * once more when etcd says it is invalid or stale. */
static int etcd_call(etcd_client *c, const char *path, const char *body, struct etcd_answer *ans)
{
	int r = 0;
	for (int tries = 0; tries < 2; tries++) {
		*ans = (struct etcd_answer){0};
		if (c->user && !c->token[0]) {
			r = etcd_authenticate(c);
			if (r < 0)
				return r;
		}
		r = etcd_call_once(c, path, body, ans);
		if (r != -EKEYEXPIRED)
			return r;
		c->token[0] = 0;
		if (tries == 0)
			etcd_answer_free(ans);
	}
	return -EACCES; /* a fresh token refused at once */
}

int etcd_range(etcd_client *c, const void *key, size_t klen, bool prefix, struct etcd_answer *out)
{
	if (!c || !key || !out || klen == 0 || klen > ETCD_KEY_MAX)
		return -EINVAL;
	*out = (struct etcd_answer){0};
	_cleanup_free_ char *k = etcd_b64_enc(key, klen);
	_cleanup_free_ char *e = prefix ? etcd_range_end(key, klen) : NULL;
	if (!k || (prefix && !e))
		return -ENOMEM;
	json_t *o = json_pack("{s:s}", "key", k);
	if (o && e)
		json_object_set_new(o, "range_end", json_string(e));
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -ENOMEM;
	int r = etcd_call(c, "/v3/kv/range", body, out);
	free(body);
	return r;
}

int etcd_range_last(etcd_client *c, const void *prefix, size_t plen, int64_t *mod_rev,
                    int64_t *revision)
{
	if (!c || !prefix || !mod_rev || plen == 0 || plen > ETCD_KEY_MAX)
		return -EINVAL;
	*mod_rev = 0;
	_cleanup_free_ char *k = etcd_b64_enc(prefix, plen);
	_cleanup_free_ char *e = etcd_range_end(prefix, plen);
	if (!k || !e)
		return -ENOMEM;
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "key", k, "range_end", e, "limit",
	                      "1", "sort_order", "DESCEND", "sort_target", "MOD", "keys_only", 1);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -ENOMEM;
	struct etcd_answer a;
	int r = etcd_call(c, "/v3/kv/range", body, &a);
	free(body);
	if (r == 0) {
		*mod_rev = a.nkvs ? a.kvs[0].mod_revision : 0;
		if (revision)
			*revision = a.revision;
	}
	etcd_answer_free(&a);
	return r;
}

int etcd_txn(etcd_client *c, const void *key, size_t klen, int64_t mod_rev, const void *val,
             size_t vlen, bool *succeeded, int64_t *revision)
{
	return etcd_txn_with(c, NULL, key, klen, mod_rev, val, vlen, succeeded, revision);
}

int etcd_txn_with(etcd_client *c, const struct etcd_put *first, const void *key, size_t klen,
                  int64_t mod_rev, const void *val, size_t vlen, bool *succeeded, int64_t *revision)
{
	if (!c || !key || klen == 0 || klen > ETCD_KEY_MAX || vlen > ETCD_VALUE_MAX ||
	    mod_rev < 0 || !succeeded ||
	    (first && (!first->key || !first->val || first->klen == 0 ||
	               first->klen > ETCD_KEY_MAX || first->vlen > ETCD_VALUE_MAX)))
		return -EINVAL;
	*succeeded = false;
	_cleanup_free_ char *k = etcd_b64_enc(key, klen);
	_cleanup_free_ char *v = val ? etcd_b64_enc(val, vlen) : NULL;
	_cleanup_free_ char *fk = first ? etcd_b64_enc(first->key, first->klen) : NULL;
	_cleanup_free_ char *fv = first ? etcd_b64_enc(first->val, first->vlen) : NULL;
	if (!k || (val && !v) || (first && (!fk || !fv)))
		return -ENOMEM;
	char rev[24];
	snprintf(rev, sizeof(rev), "%lld", (long long)mod_rev);
	json_t *ops = json_array();
	if (ops && first &&
	    json_array_append_new(
	        ops, json_pack("{s:{s:s,s:s}}", "request_put", "key", fk, "value", fv)) < 0) {
		json_decref(ops);
		ops = NULL;
	}
	if (ops && json_array_append_new(
	               ops, val ? json_pack("{s:{s:s,s:s}}", "request_put", "key", k, "value", v)
	                        : json_pack("{s:{s:s}}", "request_delete_range", "key", k)) < 0) {
		json_decref(ops);
		ops = NULL;
	}
	json_t *o = ops ? json_pack("{s:[{s:s,s:s,s:s,s:s}],s:o}", "compare", "key", k, "target",
	                            "MOD", "result", "EQUAL", "mod_revision", rev, "success", ops)
	                : NULL;
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -ENOMEM;
	struct etcd_answer a;
	int r = etcd_call(c, "/v3/kv/txn", body, &a);
	free(body);
	if (r == 0) {
		*succeeded = a.succeeded;
		if (revision)
			*revision = a.revision;
	}
	etcd_answer_free(&a);
	return r;
}

static int etcd_cas_append(json_t *cmp, json_t *ops, const struct etcd_cas *e)
{
	_cleanup_free_ char *k = etcd_b64_enc(e->key, e->klen);
	_cleanup_free_ char *o = etcd_b64_enc(e->old, e->oldlen);
	_cleanup_free_ char *v = etcd_b64_enc(e->val, e->vlen);
	if (!k || !o || !v)
		return -ENOMEM;
	if (json_array_append_new(cmp, json_pack("{s:s,s:s,s:s,s:s}", "key", k, "target", "VALUE",
	                                         "result", "EQUAL", "value", o)) < 0 ||
	    json_array_append_new(
	        ops, json_pack("{s:{s:s,s:s}}", "request_put", "key", k, "value", v)) < 0)
		return -ENOMEM;
	return 0;
}

int etcd_txn_cas(etcd_client *c, const struct etcd_cas *v, size_t n, bool *succeeded,
                 int64_t *revision)
{
	if (!c || !v || !succeeded || n == 0 || n > ETCD_TXN_OPS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!v[i].key || !v[i].old || !v[i].val || v[i].klen == 0 ||
		    v[i].klen > ETCD_KEY_MAX || v[i].oldlen > ETCD_VALUE_MAX ||
		    v[i].vlen > ETCD_VALUE_MAX)
			return -EINVAL;
	*succeeded = false;
	json_t *cmp = json_array(), *ops = json_array();
	int r = cmp && ops ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = etcd_cas_append(cmp, ops, &v[i]);
	json_t *o = r == 0 ? json_pack("{s:O,s:O}", "compare", cmp, "success", ops) : NULL;
	json_decref(cmp);
	json_decref(ops);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -ENOMEM;
	struct etcd_answer a;
	r = etcd_call(c, "/v3/kv/txn", body, &a);
	free(body);
	if (r == 0) {
		*succeeded = a.succeeded;
		if (revision)
			*revision = a.revision;
	}
	etcd_answer_free(&a);
	return r;
}

int etcd_put(etcd_client *c, const void *key, size_t klen, const void *val, size_t vlen)
{
	if (!c || !key || !val || klen == 0 || klen > ETCD_KEY_MAX || vlen > ETCD_VALUE_MAX)
		return -EINVAL;
	_cleanup_free_ char *k = etcd_b64_enc(key, klen);
	_cleanup_free_ char *v = etcd_b64_enc(val, vlen);
	if (!k || !v)
		return -ENOMEM;
	json_t *o = json_pack("{s:s,s:s}", "key", k, "value", v);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -ENOMEM;
	struct etcd_answer a;
	int r = etcd_call(c, "/v3/kv/put", body, &a);
	free(body);
	etcd_answer_free(&a);
	return r;
}

int etcd_members(etcd_client *c, struct etcd_member **out, size_t *n, uint64_t *leader)
{
	if (!c || !out || !n || !leader)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	*leader = 0;
	struct etcd_answer a = {0};
	int r = etcd_call(c, "/v3/cluster/member/list", "{}", &a);
	if (r == 0) {
		*out = a.members;
		*n = a.nmembers;
		a.members = NULL;
		a.nmembers = 0;
	}
	etcd_answer_free(&a);
	if (r < 0)
		return r;
	r = etcd_call(c, "/v3/maintenance/status", "{}", &a);
	if (r == 0)
		*leader = a.leader;
	etcd_answer_free(&a);
	if (r < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return r;
}

int etcd_lease_grant(etcd_client *c, int64_t ttl_s, int64_t *id, int64_t *ttl_out)
{
	if (!c || ttl_s <= 0 || !id || !ttl_out)
		return -EINVAL;
	*id = *ttl_out = 0;
	char body[64];
	snprintf(body, sizeof(body), "{\"TTL\":%lld}", (long long)ttl_s);
	struct etcd_answer a = {0};
	int r = etcd_call(c, "/v3/lease/grant", body, &a);
	if (r == 0 && (a.lease_id <= 0 || a.ttl <= 0))
		r = -EPROTO;
	if (r == 0) {
		*id = a.lease_id;
		*ttl_out = a.ttl;
	}
	etcd_answer_free(&a);
	return r;
}

int etcd_lease_keepalive(etcd_client *c, int64_t id, int64_t *ttl_out)
{
	if (!c || id <= 0 || !ttl_out)
		return -EINVAL;
	*ttl_out = 0;
	char body[64];
	snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)id);
	struct etcd_answer a = {0};
	int r = etcd_call(c, "/v3/lease/keepalive", body, &a);
	if (r == 0)
		*ttl_out = a.ttl;
	etcd_answer_free(&a);
	return r;
}

int etcd_lease_revoke(etcd_client *c, int64_t id)
{
	if (!c || id <= 0)
		return -EINVAL;
	char body[64];
	snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)id);
	struct etcd_answer a = {0};
	int r = etcd_call(c, "/v3/lease/revoke", body, &a);
	etcd_answer_free(&a);
	return r;
}

int etcd_campaign(etcd_client *c, const char *key, const char *val, int64_t lease, bool *won,
                  char **holder, int64_t *holder_lease, int64_t *revision)
{
	if (!c || !key || !val || lease <= 0 || !won || !holder || !holder_lease ||
	    strlen(key) > ETCD_KEY_MAX || strlen(val) > ETCD_KEY_MAX || !*key)
		return -EINVAL;
	*won = false;
	*holder = NULL;
	*holder_lease = 0;
	_cleanup_free_ char *k = etcd_b64_enc(key, strlen(key));
	_cleanup_free_ char *v = etcd_b64_enc(val, strlen(val));
	if (!k || !v)
		return -ENOMEM;
	char ls[24];
	snprintf(ls, sizeof(ls), "%lld", (long long)lease);
	json_t *o = json_pack("{s:[{s:s,s:s,s:s,s:s}],s:[{s:{s:s,s:s,s:s}}],s:[{s:{s:s}}]}",
	                      "compare", "key", k, "target", "CREATE", "result", "EQUAL",
	                      "create_revision", "0", "success", "request_put", "key", k, "value",
	                      v, "lease", ls, "failure", "request_range", "key", k);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -ENOMEM;
	struct etcd_answer a = {0};
	int r = etcd_call(c, "/v3/kv/txn", body, &a);
	free(body);
	if (r == 0) {
		*won = a.succeeded;
		if (revision)
			*revision = a.revision;
		if (!a.succeeded && a.nkvs) {
			*holder = strndup((const char *)a.kvs[0].value, a.kvs[0].vlen);
			*holder_lease = a.kvs[0].lease;
			if (!*holder)
				r = -ENOMEM;
		}
	}
	etcd_answer_free(&a);
	return r;
}

struct etcd_watch_ctx {
	struct etcd_stream st;
	etcd_line_cb cb;
	void *ud;
	int err;
	const volatile bool *stop;
};

static size_t etcd_watch_write(char *d, size_t sz, size_t nm, void *ud)
{
	struct etcd_watch_ctx *w = ud;
	int r = etcd_stream_feed(&w->st, d, sz * nm, w->cb, w->ud);
	if (r < 0) {
		w->err = r;
		return 0;
	}
	return sz * nm;
}

static int etcd_watch_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c_, curl_off_t d)
{
	struct etcd_watch_ctx *w = ud;
	return w->stop && *w->stop ? 1 : 0;
}

int etcd_watch(etcd_client *c, const void *prefix, size_t plen, int64_t start_rev, etcd_line_cb cb,
               void *ud, const volatile bool *stop)
{
	if (!c || !prefix || !cb || plen == 0 || plen > ETCD_KEY_MAX || start_rev < 0)
		return -EINVAL;
	_cleanup_free_ char *k = etcd_b64_enc(prefix, plen);
	_cleanup_free_ char *e = etcd_range_end(prefix, plen);
	if (!k || !e)
		return -ENOMEM;
	char rev[24];
	snprintf(rev, sizeof(rev), "%lld", (long long)start_rev);
	json_t *o = json_pack("{s:{s:s,s:s,s:s}}", "create_request", "key", k, "range_end", e,
	                      "start_revision", rev);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -ENOMEM;
	if (c->user) { /* a fresh token for each stream: one that expired ends no call */
		int r = etcd_authenticate(c);
		if (r < 0) {
			free(body);
			return r;
		}
	}
	size_t i = c->good;
	c->good = (c->good + 1) % c->n; /* a broken stream tries the next endpoint next time */
	c->wi = i;
	c->watched = true;
	char url[ETCD_URL_MAX + 64];
	snprintf(url, sizeof(url), "%s/v3/watch", c->urls[i]);
	CURL *h = curl_easy_init();
	if (!h) {
		free(body);
		return -ENOMEM;
	}
	struct etcd_watch_ctx w = {.cb = cb, .ud = ud, .stop = stop};
	char eb[CURL_ERROR_SIZE] = "";
	struct curl_slist *hd = NULL;
	if (etcd_setup(c, h, &hd) < 0) {
		curl_easy_cleanup(h);
		free(body);
		return -ENOMEM;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, etcd_watch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, etcd_watch_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &w);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, eb);
	/* A member that stops answering (killed host, partition) shows as a silent stream:
	 * keepalive probes end it. */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 2L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 1L);
	CURLcode cc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	curl_slist_free_all(hd);
	free(body);
	etcd_stream_free(&w.st);
	if (stop && *stop)
		return 0;
	if (w.err)
		return w.err;
	if (cc != CURLE_OK) {
		snprintf(c->err, sizeof(c->err), "%s: %s", c->urls[i],
		         eb[0] ? eb : curl_easy_strerror(cc));
		return etcd_tls_failed(c, cc, eb) ? -EBADE : -EHOSTUNREACH;
	}
	return 0;
}
