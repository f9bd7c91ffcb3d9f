/* Fuzzes the API's request decoders (broker/http/decode.c). The first byte picks the decoder
 * (g grant, r revoke, a attach, o rotate, l labels, m mount: the rest is the body; p put, v value
 * version, b rollback version, t template get, u audit: the rest is a query string "k=v&k=v", each
 * value cut at a NUL as libmicrohttpd's would be). Checked: each returns 0 or -EINVAL; an error has
 * a non-empty text of fewer than DECODE_ERR_MAX bytes; what decodes lies within the documented
 * limits; _clear frees everything (the leak checker sees the rest). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/http/decode.h"
#include "common/names.h"
#include "fuzz.h"

#define FUZZ_ARGS_MAX 16

struct args {
	size_t n;
	char *key[FUZZ_ARGS_MAX], *val[FUZZ_ARGS_MAX];
	char *buf;
};

static const char *args_get(void *ud, const char *key)
{
	struct args *a = ud;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->key[i], key) == 0)
			return a->val[i];
	return NULL;
}

/* Splits "k=v&k=v" (a copy; cut at the first NUL). */
static void args_parse(struct args *a, const uint8_t *data, size_t size)
{
	memset(a, 0, sizeof(*a));
	a->buf = malloc(size + 1);
	if (!a->buf)
		abort();
	memcpy(a->buf, data, size);
	a->buf[size] = '\0';
	char *save = NULL;
	for (char *kv = strtok_r(a->buf, "&", &save); kv && a->n < FUZZ_ARGS_MAX;
	     kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		a->key[a->n] = kv;
		a->val[a->n] = eq ? eq + 1 : kv + strlen(kv);
		if (eq)
			*eq = '\0';
		a->n++;
	}
}

static void check_rc(int rc, const char *err)
{
	if (rc != 0 && rc != -EINVAL)
		abort();
	if (rc == -EINVAL) {
		size_t n = strnlen(err, DECODE_ERR_MAX);
		if (n == 0 || n == DECODE_ERR_MAX)
			abort();
	}
}

static void check_id(int64_t v)
{
	if (v < -1 || v > DECODE_ID_MAX)
		abort();
}

/* A decoded label change holds only what common/labels allows, each key once. */
static void check_labels(const struct decode_labels *l)
{
	const struct store_label_change *c = &l->change;
	if (c->nset > LABELS_MAX || c->nremove > LABELS_MAX || (c->nset && c->set != l->set) ||
	    (c->nremove && c->remove != l->remove))
		abort();
	for (size_t i = 0; i < c->nset; i++) {
		const char *k = c->set[i].key, *v = c->set[i].value;
		if (!k || !v || labels_key_check(k, strlen(k), NULL) < 0 ||
		    labels_value_check(v, strlen(v), NULL) < 0)
			abort();
		for (size_t j = 0; j < c->nremove; j++)
			if (strcmp(c->remove[j], k) == 0)
				abort();
	}
	for (size_t i = 0; i < c->nremove; i++)
		if (!c->remove[i] || labels_key_check(c->remove[i], strlen(c->remove[i]), NULL) < 0)
			abort();
}

static void fuzz_body(uint8_t which, const uint8_t *b, size_t n)
{
	char err[DECODE_ERR_MAX];
	memset(err, 0, sizeof(err));
	int rc;
	switch (which) {
	case 'g': {
		struct decode_grant g;
		rc = decode_grant(b, n, &g, err);
		check_rc(rc, err);
		if (rc == 0) {
			bool tmpl = g.secret && strncmp(g.secret, STORE_GRANT_TMPL_PREFIX,
			                                strlen(STORE_GRANT_TMPL_PREFIX)) == 0;
			const char *t = tmpl ? g.secret + strlen(STORE_GRANT_TMPL_PREFIX) : NULL;
			if (!g.secret ||
			    (tmpl ? names_check(t, strlen(t), NULL) < 0 || g.previous
			          : names_check_pattern(g.secret, strlen(g.secret), NULL) < 0) ||
			    !g.selector || g.mode > DECODE_MODE_MAX)
				abort();
			if (g.path && mounts_name_check(g.path, strlen(g.path), NULL) < 0)
				abort();
			check_id(g.uid);
			check_id(g.gid);
		}
		decode_grant_clear(&g);
		break;
	}
	case 'r': {
		struct decode_revoke v;
		rc = decode_revoke(b, n, &v, err);
		check_rc(rc, err);
		if (rc == 0 && (!v.secret || !v.selector))
			abort();
		decode_revoke_clear(&v);
		break;
	}
	case 'a': {
		struct decode_attach a;
		rc = decode_attach(b, n, &a, err);
		check_rc(rc, err);
		if (rc == 0) {
			if (!a.req.id || a.req.pid < 0 || a.req.pid > DECODE_PID_MAX ||
			    a.req.nlabels > POLICY_LABELS_MAX || a.req.labels != a.labels)
				abort();
			for (size_t i = 0; i < a.req.nlabels; i++)
				if (!a.labels[i].key || !a.labels[i].value)
					abort();
			check_id(a.req.uid);
			check_id(a.req.gid);
		}
		decode_attach_clear(&a);
		break;
	}
	case 'o': {
		struct decode_rotate o;
		rc = decode_rotate(b, n, &o, err);
		check_rc(rc, err);
		if (rc == 0) {
			if (o.length < 1 || o.length > STORE_GEN_LENGTH_MAX || o.every < -1 ||
			    o.every > DECODE_EVERY_MAX || !store_charset_name(o.charset))
				abort();
			if (o.every < 0 && o.exec)
				abort(); /* exec only for schedules */
			if (o.every >= 0 && (o.print || o.keep_expiry))
				abort();
			if (o.exec && (!*o.exec || strlen(o.exec) > DECODE_EXEC_MAX))
				abort();
		}
		decode_rotate_clear(&o);
		break;
	}
	case 'l': {
		struct decode_labels l;
		rc = decode_labels(b, n, &l, err);
		check_rc(rc, err);
		if (rc == 0) {
			check_labels(&l);
			if (!l.change.nset && !l.change.nremove && !json_object_get(l.doc, "set") &&
			    !json_object_get(l.doc, "remove"))
				abort();
		}
		decode_labels_clear(&l);
		break;
	}
	default: {
		struct decode_mount m;
		rc = decode_mount(b, n, &m, err);
		check_rc(rc, err);
		if (rc == 0 && n == 0 && (m.doc || m.path))
			abort();
		decode_mount_clear(&m);
		break;
	}
	}
}

static void fuzz_query(uint8_t which, const uint8_t *b, size_t n)
{
	char err[DECODE_ERR_MAX];
	memset(err, 0, sizeof(err));
	struct args a;
	args_parse(&a, b, n);
	int rc;
	switch (which) {
	case 'p': {
		struct decode_put q;
		/* The value's length: empty when the query is short, to reach allow_empty. */
		rc = decode_put(args_get, &a, n % 2, &q, err);
		check_rc(rc, err);
		if (rc == 0 && (q.keep > DECODE_KEEP_MAX || q.ttl > DECODE_TTL_MAX ||
		                (q.ttl && q.keep_expiry) || (n % 2 == 0 && !q.allow_empty)))
			abort();
		/* expires: alone, and a relative one in the future within DECODE_TTL_MAX */
		if (rc == 0 && q.has_expires &&
		    (q.ttl || q.keep_expiry ||
		     (q.expires.relative &&
		      (q.expires.value < 1 || (uint64_t)q.expires.value > DECODE_TTL_MAX)) ||
		     (!q.expires.relative &&
		      (q.expires.value < 0 || q.expires.value > TIMESPEC_TIME_MAX))))
			abort();
		if (rc == 0 && q.has_labels) {
			check_labels(&q.labels);
			if (q.labels.change.nremove)
				abort(); /* a put only sets labels */
		}
		decode_put_clear(&q);
		break;
	}
	case 'v':
	case 'b': {
		uint64_t v = 7, max = which == 'v' ? DECODE_VALUE_VERSION_MAX
		                                   : DECODE_ROLLBACK_VERSION_MAX;
		rc = decode_version(args_get, &a, max, which == 'b', &v, err);
		check_rc(rc, err);
		if (rc == 0 && (v > max || (which == 'b' && v == 0)))
			abort();
		if (rc == 0 && !args_get(&a, "version") && v != 0)
			abort();
		break;
	}
	case 't': {
		struct decode_template_get q;
		rc = decode_template_get(args_get, &a, &q, err);
		check_rc(rc, err);
		if (rc == 0 && ((q.version && !q.body) || q.version > DECODE_VALUE_VERSION_MAX))
			abort();
		break;
	}
	default: {
		struct decode_audit q;
		rc = decode_audit(args_get, &a, &q, err);
		check_rc(rc, err);
		if (rc == 0 && (q.limit > DECODE_AUDIT_LIMIT_MAX ||
		                q.after >= DECODE_AUDIT_SEQ_BELOW || (q.after && q.since_time)))
			abort();
		if (rc == 0 && q.since_is_rel &&
		    (q.after || q.since_time || q.since_rel < -TIMESPEC_DURATION_MAX ||
		     q.since_rel > TIMESPEC_DURATION_MAX))
			abort();
		break;
	}
	}
	free(a.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t which = data[0];
	static const char kinds[] = "gramolpvbtu";
	if (!strchr(kinds, which) || !which)
		which = (uint8_t)kinds[which % (sizeof(kinds) - 1)];
	if (strchr("gramol", which))
		fuzz_body(which, data + 1, size - 1);
	else
		fuzz_query(which, data + 1, size - 1);
	return 0;
}
