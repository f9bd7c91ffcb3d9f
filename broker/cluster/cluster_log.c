/* cluster_log.c: the origin records of cluster changes (cluster_log.h). */
#include "broker/cluster/cluster_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

void cluster_log_bind(const void *val, size_t len, uint8_t out[32])
{
	crypto_generichash(out, 32, val, len, NULL, 0);
}

int cluster_log_key(const char *prefix, const char *key, char *out, size_t cap)
{
	uint8_t h[CLUSTER_LOG_OKEY_HEX / 2];
	char hex[CLUSTER_LOG_OKEY_HEX + 1];
	crypto_generichash(h, sizeof(h), (const uint8_t *)key, strlen(key), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	int n = snprintf(out, cap, "%so/%s", prefix, hex);
	return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

/* A name field: 1..CLUSTER_LOG_NAME_MAX printable ASCII without '"' or '\\' (it goes into
 * audit details and logs as it is); the key: 1..CLUSTER_LOG_KEY_MAX of the same. */
static bool cluster_log_text_ok(const char *t, size_t max)
{
	size_t n = strnlen(t, max + 1);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (t[i] < 0x20 || t[i] > 0x7e || t[i] == '"' || t[i] == '\\')
			return false;
	return true;
}

static bool cluster_log_ok(const struct cluster_origin *o)
{
	return cluster_log_text_ok(o->key, CLUSTER_LOG_KEY_MAX) &&
	       cluster_log_text_ok(o->node, CLUSTER_LOG_NAME_MAX) &&
	       cluster_log_text_ok(o->actor, CLUSTER_LOG_NAME_MAX) &&
	       cluster_log_text_ok(o->action, CLUSTER_LOG_NAME_MAX) && o->time >= 0;
}

/* What the MAC covers: the magic and every field, each string NUL-terminated (none holds a
 * NUL), the time as 8 bytes little-endian, deleted as one byte, bind. */
static int cluster_log_macin(const struct cluster_origin *o, uint8_t **out, size_t *len)
{
	const char *f[] = {CLUSTER_LOG_MAGIC, o->key, o->node, o->actor, o->action};
	size_t n = 0;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		n += strlen(f[i]) + 1;
	uint8_t *b = malloc(n + 8 + 1 + 32);
	if (!b)
		return -ENOMEM;
	size_t o_ = 0;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		size_t l = strlen(f[i]) + 1;
		memcpy(b + o_, f[i], l);
		o_ += l;
	}
	uint64_t t = (uint64_t)o->time;
	for (int i = 0; i < 8; i++)
		b[o_++] = (uint8_t)(t >> (8 * i));
	b[o_++] = o->deleted ? 1 : 0;
	memcpy(b + o_, o->bind, 32);
	o_ += 32;
	*out = b;
	*len = o_;
	return 0;
}

int cluster_log_encode(store *s, struct cluster_origin *o, char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (!cluster_log_ok(o))
		return -EINVAL;
	uint8_t *m = NULL;
	size_t ml = 0;
	int r = cluster_log_macin(o, &m, &ml);
	if (r == 0)
		r = store_cluster_mac(s, m, ml, o->mac, NULL);
	free(m);
	if (r < 0)
		return r;
	char bind[65], mac[65];
	sodium_bin2hex(bind, sizeof(bind), o->bind, 32);
	sodium_bin2hex(mac, sizeof(mac), o->mac, 32);
	json_t *j =
	    json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:b, s:s, s:s}", "v", 1, "key", o->key,
	              "node", o->node, "actor", o->actor, "action", o->action, "time",
	              (json_int_t)o->time, "deleted", o->deleted, "bind", bind, "mac", mac);
	char *t = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (!t)
		return -ENOMEM;
	*out = t;
	*len = strlen(t);
	return 0;
}

static int cluster_log_str(json_t *j, const char *name, char *out, size_t max)
{
	json_t *v = json_object_get(j, name);
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return -EBADMSG;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int cluster_log_hex(json_t *j, const char *name, uint8_t out[32])
{
	json_t *v = json_object_get(j, name);
	size_t n = 0;
	if (!json_is_string(v) || json_string_length(v) != 64 ||
	    sodium_hex2bin(out, 32, json_string_value(v), 64, NULL, &n, NULL) != 0 || n != 32)
		return -EBADMSG;
	return 0;
}

int cluster_log_decode(const char *p, size_t len, struct cluster_origin *o)
{
	memset(o, 0, sizeof(*o));
	if (!p || len > CLUSTER_LOG_MAX)
		return -E2BIG;
	json_error_t je;
	json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
	int r = json_is_object(j) && json_object_size(j) == 9 ? 0 : -EBADMSG;
	json_t *v = json_object_get(j, "v"), *t = json_object_get(j, "time"),
	       *d = json_object_get(j, "deleted");
	if (r == 0 && (!json_is_integer(v) || json_integer_value(v) != 1 || !json_is_integer(t) ||
	               json_integer_value(t) < 0 || !json_is_boolean(d)))
		r = -EBADMSG;
	if (r == 0)
		r = cluster_log_str(j, "key", o->key, CLUSTER_LOG_KEY_MAX);
	if (r == 0)
		r = cluster_log_str(j, "node", o->node, CLUSTER_LOG_NAME_MAX);
	if (r == 0)
		r = cluster_log_str(j, "actor", o->actor, CLUSTER_LOG_NAME_MAX);
	if (r == 0)
		r = cluster_log_str(j, "action", o->action, CLUSTER_LOG_NAME_MAX);
	if (r == 0)
		r = cluster_log_hex(j, "bind", o->bind);
	if (r == 0)
		r = cluster_log_hex(j, "mac", o->mac);
	if (r == 0) {
		o->time = (int64_t)json_integer_value(t);
		o->deleted = json_is_true(d);
		if (!cluster_log_ok(o))
			r = -EBADMSG;
	}
	json_decref(j);
	if (r < 0)
		memset(o, 0, sizeof(*o));
	return r;
}

int cluster_log_verify(store *s, const struct cluster_origin *o)
{
	if (!cluster_log_ok(o))
		return -EBADMSG;
	uint8_t *m = NULL, mac[32];
	size_t ml = 0;
	int r = cluster_log_macin(o, &m, &ml);
	if (r == 0)
		r = store_cluster_mac(s, m, ml, mac, o->mac);
	free(m);
	return r;
}

/* A name field from a caller's text: '?' for what a record cannot hold, cut to the limit. */
static void cluster_log_name(char *out, const char *in, const char *dflt)
{
	const char *t = in && *in ? in : dflt;
	size_t i = 0;
	for (; t[i] && i < CLUSTER_LOG_NAME_MAX; i++)
		out[i] = t[i] < 0x20 || t[i] > 0x7e || t[i] == '"' || t[i] == '\\' ? '?' : t[i];
	out[i] = 0;
}

int cluster_log_prepare(store *s, const char *prefix, const char *node, const char *key,
                        const void *val, size_t vlen, bool deleted, const char *actor,
                        const char *action, struct cluster_log_put *out)
{
	memset(out, 0, sizeof(*out));
	size_t pl = strlen(prefix);
	if (strncmp(key, prefix, pl) != 0 || strlen(key + pl) > CLUSTER_LOG_KEY_MAX)
		return -EINVAL;
	struct cluster_origin o = {.time = (int64_t)time(NULL), .deleted = deleted};
	snprintf(o.key, sizeof(o.key), "%s", key + pl);
	cluster_log_name(o.node, node, "node");
	cluster_log_name(o.actor, actor, "daemon");
	cluster_log_name(o.action, action, "change");
	cluster_log_bind(val ? val : "", val ? vlen : 0, o.bind);
	int r = cluster_log_key(prefix, o.key, out->key, sizeof(out->key));
	size_t len = 0;
	if (r == 0)
		r = cluster_log_encode(s, &o, &out->val, &len);
	if (r < 0) {
		cluster_log_put_free(out);
		return r;
	}
	out->put = (struct etcd_put){
	    .key = out->key, .klen = strlen(out->key), .val = out->val, .vlen = len};
	return 0;
}

void cluster_log_put_free(struct cluster_log_put *p)
{
	if (!p)
		return;
	free(p->val);
	memset(p, 0, sizeof(*p));
}
