#include "broker/http/decode.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/decimal.h"
#include "common/names.h"
#include "common/timespec.h"

__attribute__((format(printf, 2, 3))) static int decode_fail(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, DECODE_ERR_MAX, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int decode_json_object(const uint8_t *body, size_t len, json_t **out, char *err)
{
	json_error_t jerr;
	*out = NULL;
	if (len > DECODE_JSON_MAX)
		return decode_fail(err, "request body larger than the limit of %zu bytes",
		                   (size_t)DECODE_JSON_MAX);
	json_t *j = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return decode_fail(err, "request body must be a JSON object%s%s", j ? "" : ": ",
		                   j ? "" : jerr.text);
	}
	*out = j;
	return 0;
}

/* An optional integer field in [lo, hi]: 0 with *out set (left alone when absent or null). */
static int decode_opt_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
                          char *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return decode_fail(err, "%s must be an integer from %lld to %lld", key,
		                   (long long)lo, (long long)hi);
	*out = json_integer_value(v);
	return 0;
}

static const char *decode_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

int decode_grant(const uint8_t *body, size_t len, struct decode_grant *out, char *err)
{
	memset(out, 0, sizeof(*out));
	int rc = decode_json_object(body, len, &out->doc, err);
	if (rc < 0)
		return rc;
	json_t *o = out->doc;
	const char *secret = decode_str(o, "secret");
	const char *sel = decode_str(o, "selector");
	json_t *jp = json_object_get(o, "path");
	const char *path = json_string_value(jp);
	const char *why = NULL;
	int64_t mode = 0400, uid = -1, gid = -1;
	size_t tpl = strlen(STORE_GRANT_TMPL_PREFIX);
	bool tmpl = secret && strncmp(secret, STORE_GRANT_TMPL_PREFIX, tpl) == 0;
	if (tmpl && names_check(secret + tpl, strlen(secret + tpl), &why) < 0)
		return decode_fail(err, "invalid template name (after \"%s\"): %s",
		                   STORE_GRANT_TMPL_PREFIX, why);
	if (!tmpl && (!secret || names_check_pattern(secret, strlen(secret), &why) < 0))
		return decode_fail(err, "invalid secret name or pattern: %s",
		                   why ? why : "missing \"secret\"");
	if (tmpl && json_is_true(json_object_get(o, "previous")))
		return decode_fail(err, "a template grant has no .previous file");
	if (!sel || policy_selector_check(sel, strlen(sel), &why) < 0)
		return decode_fail(err, "invalid selector: %s", why ? why : "missing \"selector\"");
	if (jp && !json_is_null(jp) &&
	    (!path || names_check(path, strlen(path), &why) < 0 ||
	     mounts_name_check(path, strlen(path), &why) < 0))
		return decode_fail(err, "invalid path: %s", why ? why : "must be a string");
	if ((rc = decode_opt_int(o, "mode", 0, DECODE_MODE_MAX, &mode, err)) < 0 ||
	    (rc = decode_opt_int(o, "uid", -1, DECODE_ID_MAX, &uid, err)) < 0 ||
	    (rc = decode_opt_int(o, "gid", -1, DECODE_ID_MAX, &gid, err)) < 0)
		return rc;
	out->secret = secret;
	out->selector = sel;
	out->path = path;
	out->mode = (uint32_t)mode;
	out->uid = uid;
	out->gid = gid;
	out->previous = json_is_true(json_object_get(o, "previous"));
	out->replace = json_is_true(json_object_get(o, "replace"));
	return 0;
}

void decode_grant_clear(struct decode_grant *g)
{
	json_decref(g->doc);
	memset(g, 0, sizeof(*g));
}

int decode_revoke(const uint8_t *body, size_t len, struct decode_revoke *out, char *err)
{
	memset(out, 0, sizeof(*out));
	int rc = decode_json_object(body, len, &out->doc, err);
	if (rc < 0)
		return rc;
	const char *secret = decode_str(out->doc, "secret");
	const char *sel = decode_str(out->doc, "selector");
	if (!secret || !sel)
		return decode_fail(err, "\"secret\" and \"selector\" are required");
	out->secret = secret;
	out->selector = sel;
	return 0;
}

void decode_revoke_clear(struct decode_revoke *v)
{
	json_decref(v->doc);
	memset(v, 0, sizeof(*v));
}

int decode_attach(const uint8_t *body, size_t len, struct decode_attach *out, char *err)
{
	memset(out, 0, sizeof(*out));
	int rc = decode_json_object(body, len, &out->doc, err);
	if (rc < 0)
		return rc;
	json_t *o = out->doc;
	size_t nl = 0;
	json_t *jl = json_object_get(o, "labels");
	const char *key;
	json_t *val;
	bool bad = jl && !json_is_null(jl) && !json_is_object(jl);
	if (json_is_object(jl))
		json_object_foreach(jl, key, val)
		{
			if (nl == POLICY_LABELS_MAX || !json_is_string(val)) {
				bad = true;
				break;
			}
			out->labels[nl].key = key;
			out->labels[nl].value = json_string_value(val);
			nl++;
		}
	if (bad)
		return decode_fail(err, "labels must be an object of at most %d strings",
		                   POLICY_LABELS_MAX);
	const char *id = decode_str(o, "id");
	if (!id)
		return decode_fail(err, "\"id\" is required");
	int64_t pid = 0, uid = -1, gid = -1;
	if ((rc = decode_opt_int(o, "pid", 1, DECODE_PID_MAX, &pid, err)) < 0 ||
	    (rc = decode_opt_int(o, "uid", -1, DECODE_ID_MAX, &uid, err)) < 0 ||
	    (rc = decode_opt_int(o, "gid", -1, DECODE_ID_MAX, &gid, err)) < 0)
		return rc;
	out->req = (struct mounts_attach_req){
	    .id = id,
	    .pid = (pid_t)pid,
	    .root = decode_str(o, "root"),
	    .target = decode_str(o, "mount"),
	    .name = decode_str(o, "name"),
	    .runtime = decode_str(o, "runtime"),
	    .labels = out->labels,
	    .nlabels = nl,
	    .uid = uid,
	    .gid = gid,
	    .wants = json_is_true(json_object_get(o, "wants")),
	};
	return 0;
}

void decode_attach_clear(struct decode_attach *a)
{
	json_decref(a->doc);
	memset(a, 0, sizeof(*a));
}

int decode_rotate(const uint8_t *body, size_t len, struct decode_rotate *out, char *err)
{
	memset(out, 0, sizeof(*out));
	int rc = decode_json_object(body, len, &out->doc, err);
	if (rc < 0)
		return rc;
	json_t *o = out->doc;
	int64_t length = DECODE_GEN_LENGTH_DEFAULT, every = -1;
	enum store_charset cs = STORE_CHARSET_ALNUM;
	json_t *jc = json_object_get(o, "charset");
	json_t *je = json_object_get(o, "exec");
	const char *exec = json_string_value(je);
	bool print = json_is_true(json_object_get(o, "print"));
	json_t *jk = json_object_get(o, "keep_expiry");
	json_t *jv = json_object_get(o, "every");
	if (json_is_string(jv)) {
		/* a duration string: "1h30m", "7d", "3600" */
		int64_t d;
		if (timespec_parse_duration(json_string_value(jv), json_string_length(jv), &d) <
		        0 ||
		    d > DECODE_EVERY_MAX)
			return decode_fail(
			    err,
			    "every must be a duration (90s, 15m, 1h30m, 7d) of at most "
			    "%lld seconds",
			    (long long)DECODE_EVERY_MAX);
		every = d;
	} else if ((rc = decode_opt_int(o, "every", 0, DECODE_EVERY_MAX, &every, err)) < 0) {
		return rc;
	}
	if ((rc = decode_opt_int(o, "length", 1, STORE_GEN_LENGTH_MAX, &length, err)) < 0)
		return rc;
	if (jc && (!json_is_string(jc) || store_charset_parse(json_string_value(jc), &cs) < 0))
		return decode_fail(err, "charset must be one of alnum, hex, base64, ascii");
	if (je && !json_is_null(je) && (!exec || !*exec || strlen(exec) > DECODE_EXEC_MAX))
		return decode_fail(err, "exec must be a command of 1 to %d bytes", DECODE_EXEC_MAX);
	if (every >= 0) {
		if (print)
			return decode_fail(err, "print cannot be combined with every");
	} else {
		if (!json_is_true(json_object_get(o, "generate")))
			return decode_fail(
			    err, "give generate (a new random value) or every (a schedule)");
		if (exec)
			return decode_fail(err, "exec is only for scheduled rotations (every)");
		if (jk && !json_is_boolean(jk))
			return decode_fail(err, "keep_expiry must be true or false");
	}
	out->every = every;
	out->length = (uint32_t)length;
	out->charset = cs;
	out->exec = exec;
	out->print = print;
	out->keep_expiry = every < 0 && json_is_true(jk);
	return 0;
}

void decode_rotate_clear(struct decode_rotate *o)
{
	json_decref(o->doc);
	memset(o, 0, sizeof(*o));
}

int decode_mount(const uint8_t *body, size_t len, struct decode_mount *out, char *err)
{
	memset(out, 0, sizeof(*out));
	if (!len)
		return 0;
	int rc = decode_json_object(body, len, &out->doc, err);
	if (rc < 0)
		return rc;
	out->path = decode_str(out->doc, "path");
	return 0;
}

void decode_mount_clear(struct decode_mount *m)
{
	json_decref(m->doc);
	memset(m, 0, sizeof(*m));
}

/* ---- query arguments ---- */

/* Argument key as a decimal integer in [min, max] (decimal_parse_u64: digits only, at most
 * DECIMAL_DIGITS_MAX); *out left alone when it is absent. */
static int decode_arg_u64(decode_arg_fn *arg, void *ud, const char *key, uint64_t min, uint64_t max,
                          uint64_t *out, char *err)
{
	const char *v = arg(ud, key);
	if (v && decimal_parse_u64(v, strlen(v), min, max, out) < 0)
		return decode_fail(err, "%s must be an integer from %llu to %llu", key,
		                   (unsigned long long)min, (unsigned long long)max);
	return 0;
}

/* A flag argument: "1" or "0", absent = false. */
static int decode_arg_flag(decode_arg_fn *arg, void *ud, const char *key, bool *out, char *err)
{
	const char *v = arg(ud, key);
	*out = false;
	if (!v)
		return 0;
	if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
		return decode_fail(err, "%s must be 1 or 0", key);
	*out = v[0] == '1';
	return 0;
}

/* The "set" object (may be NULL) and the "remove" array (may be NULL) of a label change. */
static int decode_label_parts(json_t *set, json_t *remove, struct decode_labels *out, char *err)
{
	const char *why = NULL;
	if (set && (!json_is_object(set) || json_object_size(set) > LABELS_MAX))
		return decode_fail(err, "labels to set must be an object of at most %d strings",
		                   LABELS_MAX);
	if (remove && (!json_is_array(remove) || json_array_size(remove) > LABELS_MAX))
		return decode_fail(err, "labels to remove must be an array of at most %d keys",
		                   LABELS_MAX);
	const char *k;
	json_t *v;
	size_t n = 0;
	json_object_foreach(set, k, v)
	{
		const char *val = json_string_value(v);
		if (labels_key_check(k, strlen(k), &why) < 0)
			return decode_fail(err, "invalid label: %s", why);
		if (!val || labels_value_check(val, json_string_length(v), &why) < 0)
			return decode_fail(err, "invalid label: %s",
			                   val ? why : "a label value must be a string");
		out->set[n++] = (struct store_label){.key = (char *)k, .value = (char *)val};
	}
	size_t i;
	json_array_foreach(remove, i, v)
	{
		const char *key = json_string_value(v);
		if (!key || labels_key_check(key, json_string_length(v), &why) < 0)
			return decode_fail(err, "invalid label to remove: %s",
			                   key ? why : "a key must be a string");
		if (set && json_object_get(set, key))
			return decode_fail(err, "a label cannot be both set and removed");
		for (size_t j = 0; j < i; j++)
			if (strcmp(out->remove[j], key) == 0)
				return decode_fail(err, "a label to remove is named twice");
		out->remove[i] = key;
	}
	out->change = (struct store_label_change){.set = out->set,
	                                          .nset = n,
	                                          .remove = out->remove,
	                                          .nremove = remove ? json_array_size(remove) : 0};
	return 0;
}

int decode_labels(const uint8_t *body, size_t len, struct decode_labels *out, char *err)
{
	memset(out, 0, sizeof(*out));
	int rc = decode_json_object(body, len, &out->doc, err);
	if (rc < 0)
		return rc;
	json_t *set = json_object_get(out->doc, "set");
	json_t *remove = json_object_get(out->doc, "remove");
	if (!set && !remove)
		return decode_fail(err, "give labels to \"set\" or to \"remove\"");
	return decode_label_parts(set, remove, out, err);
}

void decode_labels_clear(struct decode_labels *l)
{
	json_decref(l->doc);
	memset(l, 0, sizeof(*l));
}

void decode_put_clear(struct decode_put *p)
{
	decode_labels_clear(&p->labels);
	p->has_labels = false;
}

int decode_put(decode_arg_fn *arg, void *ud, size_t value_len, struct decode_put *out, char *err)
{
	memset(out, 0, sizeof(*out));
	int rc;
	if ((rc = decode_arg_u64(arg, ud, "keep", 1, DECODE_KEEP_MAX, &out->keep, err)) < 0 ||
	    (rc = decode_arg_flag(arg, ud, "allow_empty", &out->allow_empty, err)) < 0 ||
	    (rc = decode_arg_flag(arg, ud, "keep_expiry", &out->keep_expiry, err)) < 0)
		return rc;
	const char *v = arg(ud, "ttl");
	int64_t d = 0;
	if (v && (timespec_parse_duration(v, strlen(v), &d) < 0 || d < 1 ||
	          (uint64_t)d > DECODE_TTL_MAX))
		return decode_fail(
		    err,
		    "ttl must be a duration (3600, 90s, 15m, 1h30m, 7d) of 1 to %llu "
		    "seconds",
		    (unsigned long long)DECODE_TTL_MAX);
	out->ttl = (uint64_t)d;
	v = arg(ud, "expires");
	if (v) {
		if (timespec_parse_when(v, strlen(v), 1, &out->expires) < 0 ||
		    (out->expires.relative &&
		     (out->expires.value < 1 || (uint64_t)out->expires.value > DECODE_TTL_MAX)))
			return decode_fail(err, "expires must be a time (2026-12-24T10:00:00Z, "
			                        "@UNIX, now+1h) or a duration from now (1h30m, 7d) "
			                        "within 100 years");
		out->has_expires = true;
	}
	if ((out->ttl || out->has_expires) && out->keep_expiry)
		return decode_fail(err, "give ttl (a new expiry) or keep_expiry, not both");
	if (out->ttl && out->has_expires)
		return decode_fail(err, "give ttl or expires, not both");
	v = arg(ud, "labels");
	if (v) {
		char jerr[DECODE_ERR_MAX];
		rc = decode_json_object((const uint8_t *)v, strlen(v), &out->labels.doc, jerr);
		if (rc < 0)
			return decode_fail(
			    err, "labels must be a JSON object of KEY: \"VALUE\" strings");
		if ((rc = decode_label_parts(out->labels.doc, NULL, &out->labels, err)) < 0)
			return rc;
		out->has_labels = true;
	}
	/* An empty stdin is far likelier a mistake than a value: containers would see it at once.
	 */
	if (value_len == 0 && !out->allow_empty)
		return decode_fail(err,
		                   "refusing to store an empty value (allow_empty=1 stores one)");
	return 0;
}

int decode_version(decode_arg_fn *arg, void *ud, uint64_t max, bool required, uint64_t *out,
                   char *err)
{
	*out = 0;
	int rc = decode_arg_u64(arg, ud, "version", 1, max, out, err);
	if (rc < 0)
		return rc;
	if (required && !*out)
		return decode_fail(err, "version is required");
	return 0;
}

int decode_template_get(decode_arg_fn *arg, void *ud, struct decode_template_get *out, char *err)
{
	memset(out, 0, sizeof(*out));
	int rc = decode_arg_flag(arg, ud, "body", &out->body, err);
	if (rc == 0)
		rc = decode_arg_u64(arg, ud, "version", 1, DECODE_VALUE_VERSION_MAX, &out->version,
		                    err);
	if (rc == 0 && out->version && !out->body)
		return decode_fail(err, "version needs body=1");
	return rc;
}

int decode_audit(decode_arg_fn *arg, void *ud, struct decode_audit *out, char *err)
{
	memset(out, 0, sizeof(*out));
	const char *v = arg(ud, "since");
	if (v && *v) {
		char *end;
		unsigned long long x = strtoull(v[0] == '@' ? v + 1 : v, &end, 10);
		if (isdigit((unsigned char)v[v[0] == '@']) && !*end) {
			if (v[0] != '@' && x < DECODE_AUDIT_SEQ_BELOW)
				out->after = x ? x - 1 : 0;
			else
				out->since_time = (int64_t)x;
		} else {
			struct timespec_when w;
			if (timespec_parse_when(v, strlen(v), -1, &w) < 0)
				return decode_fail(err,
				                   "since must be a sequence number, a time "
				                   "(@SECONDS, RFC 3339, now-1h) or a duration "
				                   "ago (10m, 1h30m, 7d)");
			if (w.relative) {
				out->since_is_rel = true;
				out->since_rel = w.value;
			} else {
				out->since_time = w.value;
			}
		}
	}
	int rc = decode_arg_flag(arg, ud, "cluster", &out->cluster, err);
	if (rc < 0)
		return rc;
	return decode_arg_u64(arg, ud, "limit", 1, DECODE_AUDIT_LIMIT_MAX, &out->limit, err);
}
