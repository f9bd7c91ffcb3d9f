/* decode: the request decoders of the admin and workload APIs. Pure (no I/O, no state): a JSON
 * request body (pointer, length), or a request's query arguments (a lookup function), into a
 * typed request, with the limits below. Each decoder returns 0, or -EINVAL with err (at least
 * DECODE_ERR_MAX bytes) holding the reason: the text of the 400 answer, which quotes no value
 * from the request (only the names of its fields). A decoded body's strings point into its parsed
 * JSON, owned by the request struct: free it with the decoder's _clear (also after an error, and on
 * a zeroed struct; it is then zeroed again). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "broker/engine/mounts.h"
#include "broker/rules/policy.h"
#include "broker/store/store.h"
#include "common/labels.h"
#include "common/limits.h"
#include "common/timespec.h"

#define DECODE_ERR_MAX 512                     /* bytes of an error text, with its NUL */
#define DECODE_JSON_MAX SECRETD_JSON_BODY_MAX  /* bytes of a JSON body (the transport's limit) */
#define DECODE_ID_MAX 4294967294LL             /* largest uid or gid (-1: not given) */
#define DECODE_PID_MAX 4194304                 /* largest pid (the kernel's PID_MAX_LIMIT) */
#define DECODE_MODE_MAX 0777                   /* a grant's file mode bits */
#define DECODE_EXEC_MAX 4096                   /* bytes of a rotation's exec command */
#define DECODE_EVERY_MAX (100LL * 365 * 86400) /* longest rotation period (s) */
#define DECODE_KEEP_MAX 1000                   /* versions a put may keep */
#define DECODE_TTL_MAX (100ULL * 365 * 86400)  /* longest expiry of a put (s) */
#define DECODE_AUDIT_LIMIT_MAX 100000          /* audit records per listing */
#define DECODE_AUDIT_SEQ_BELOW 1000000000ULL   /* since=N below this is a sequence number */
#define DECODE_VALUE_VERSION_MAX INT64_MAX     /* GET /v1/values/NAME?version= */
#define DECODE_ROLLBACK_VERSION_MAX (UINT64_MAX >> 1)
#define DECODE_GEN_LENGTH_DEFAULT 32 /* a generated value's length when not given */

/* Parses body as one JSON object of at most DECODE_JSON_MAX bytes (duplicate keys refused): 0
 * with *out a new reference, or -EINVAL with err "request body must be a JSON object[: why]"
 * (or, past the limit, "request body larger than the limit of N bytes"). */
int decode_json_object(const uint8_t *body, size_t len, json_t **out, char *err);

/* POST /v1/grants {secret, selector, path?, mode?, uid?, gid?, previous?, replace?}: secret a
 * name or pattern (names_check_pattern) or "tmpl:NAME" (a template: NAME a name, no previous),
 * selector valid (policy_selector_check), path NULL or a name a view may show (names_check,
 * mounts_name_check), mode 0..DECODE_MODE_MAX (default 0400), uid and gid -1..DECODE_ID_MAX
 * (default -1). */
struct decode_grant {
	json_t *doc;
	const char *secret, *selector, *path;
	uint32_t mode;
	int64_t uid, gid;
	bool previous, replace;
};
int decode_grant(const uint8_t *body, size_t len, struct decode_grant *out, char *err);
void decode_grant_clear(struct decode_grant *g);

/* POST /v1/grants/revoke {secret, selector}: both strings (checked by the store's lookup). */
struct decode_revoke {
	json_t *doc;
	const char *secret, *selector;
};
int decode_revoke(const uint8_t *body, size_t len, struct decode_revoke *out, char *err);
void decode_revoke_clear(struct decode_revoke *v);

/* POST /v1/containers (the OCI hook's attach) {id, pid, root?, mount?, name?, runtime?,
 * labels?, uid?, gid?, wants?}: id a string, labels an object of at most POLICY_LABELS_MAX
 * strings, pid 1..DECODE_PID_MAX (0 when absent: the attach then fails as invalid), uid and gid
 * -1..DECODE_ID_MAX. req.labels points into the struct's own labels: req may be copied while
 * the struct lives, the struct itself not moved. */
struct decode_attach {
	json_t *doc;
	struct policy_label labels[POLICY_LABELS_MAX];
	struct mounts_attach_req req;
};
int decode_attach(const uint8_t *body, size_t len, struct decode_attach *out, char *err);
void decode_attach_clear(struct decode_attach *a);

/* POST /v1/rotate/NAME: {generate:true, length?, charset?, print?, keep_expiry?} (a new value
 * now: every is -1) or {every, length?, charset?, exec?} (a schedule; every 0 removes it).
 * length 1..STORE_GEN_LENGTH_MAX (default DECODE_GEN_LENGTH_DEFAULT), every
 * 0..DECODE_EVERY_MAX seconds, an integer or a duration string (common/timespec: "1h30m"), charset
 * one of store_charset_parse's, exec 1..DECODE_EXEC_MAX bytes. */
struct decode_rotate {
	json_t *doc;
	int64_t every; /* -1: generate now */
	uint32_t length;
	enum store_charset charset;
	const char *exec; /* schedules only, or NULL */
	bool print;       /* generate: answer with the value */
	bool keep_expiry; /* generate: keep the secret's expiry */
};
int decode_rotate(const uint8_t *body, size_t len, struct decode_rotate *out, char *err);
void decode_rotate_clear(struct decode_rotate *o);

/* Labels on a secret (common/labels.h's rules and limits): "set" an object of at most LABELS_MAX
 * KEY: "VALUE" strings, "remove" an array of at most LABELS_MAX KEY strings, no key in both.
 * change points into the struct's own arrays (which point into doc): the struct is not moved. */
struct decode_labels {
	json_t *doc;
	struct store_label set[LABELS_MAX];
	const char *remove[LABELS_MAX];
	struct store_label_change change;
};
/* POST /v1/labels/NAME {set?, remove?}: at least one of them. */
int decode_labels(const uint8_t *body, size_t len, struct decode_labels *out, char *err);
void decode_labels_clear(struct decode_labels *l);

/* POST /v1/self/mount [{path?}]: an empty body or an object; path NULL unless a string (the
 * mount checks it). */
struct decode_mount {
	json_t *doc;
	const char *path;
};
int decode_mount(const uint8_t *body, size_t len, struct decode_mount *out, char *err);
void decode_mount_clear(struct decode_mount *m);

/* ---- query arguments ---- */

/* The value of query argument key (a C string), or NULL when absent. */
typedef const char *decode_arg_fn(void *ud, const char *key);

/* PUT /v1/secrets/NAME?keep=N&ttl=DUR&expires=WHEN&keep_expiry=1&allow_empty=1&labels=OBJ with a
 * value of value_len bytes: labels a JSON object of KEY: "VALUE" strings set with the put
 * (decode_labels' rules; has_labels, labels.change), freed by decode_put_clear;
 * keep 1..DECODE_KEEP_MAX; ttl a duration (common/timespec: 3600, 90s, 1h30m, 7d)
 * of 1..DECODE_TTL_MAX seconds (0: absent); expires a time or a duration from now
 * (timespec_parse_when: 2026-12-24T10:00:00Z, @UNIX, now+1h, 1h30m); flags "1" or "0"; ttl,
 * expires and keep_expiry exclude each other; an empty value needs allow_empty. The handler
 * resolves expires against its clock (and refuses one not in the future). */
struct decode_put {
	uint64_t keep, ttl;
	bool allow_empty, keep_expiry;
	bool has_expires;
	struct timespec_when expires;
	bool has_labels;
	struct decode_labels labels;
};
int decode_put(decode_arg_fn *arg, void *ud, size_t value_len, struct decode_put *out, char *err);
void decode_put_clear(struct decode_put *p);

/* ?version=N: 1..max, 0 when absent; required: absent is an error ("version is required"). */
int decode_version(decode_arg_fn *arg, void *ud, uint64_t max, bool required, uint64_t *out,
                   char *err);

/* GET /v1/templates/NAME[?body=1[&version=N]]: body "1" or "0"; version 1..
 * DECODE_VALUE_VERSION_MAX (0: absent = current) only with body. */
struct decode_template_get {
	bool body;
	uint64_t version;
};
int decode_template_get(decode_arg_fn *arg, void *ud, struct decode_template_get *out, char *err);

/* GET /v1/audit?since=SEQ|UNIXTIME|WHEN&limit=N: a plain number below DECODE_AUDIT_SEQ_BELOW
 * is a sequence number (after = SEQ - 1), a larger one unix seconds (since_time); else a time
 * or a duration ago (common/timespec: @UNIX, RFC 3339, now-1h, 10m): since_time when absolute,
 * since_rel (seconds from now, since_is_rel) when relative, for the handler to resolve;
 * limit 1..DECODE_AUDIT_LIMIT_MAX, 0 when absent. */
struct decode_audit {
	uint64_t after, limit;
	int64_t since_time;
	bool since_is_rel;
	int64_t since_rel;
	bool cluster; /* cluster=1: only the cluster's changes (docs/cluster.md "Audit") */
};
int decode_audit(decode_arg_fn *arg, void *ud, struct decode_audit *out, char *err);
