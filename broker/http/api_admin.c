/* Admin routes (admin.sock, root only):
 *   GET    /healthz                         {"status":"ok"}
 *   GET    /metrics                         Prometheus text
 *   GET    /v1/secrets                      {"secrets":[{name,current,versions,created,updated,
 *                                           expires}]}  (expires: unix seconds, 0 = never)
 *   PUT    /v1/secrets/NAME[?keep=N&ttl=DUR&expires=WHEN&keep_expiry=1&allow_empty=1]
 *                                           body = value
 *                                           -> 201 {name,version,expires,expiry_cleared};
 *                                           keep: versions kept; ttl: expires in DUR (3600,
 *                                           1h30m); expires: at a time (RFC 3339, @UNIX,
 *                                           now+1h) or after a duration (common/timespec);
 *                                           without ttl an expiry is cleared unless
 *                                           keep_expiry=1; an empty body is refused (400)
 *                                           unless allow_empty=1
 *   GET    /v1/secrets/NAME {name,current,expires,versions:[{version,size,kek,created,current}]}
 *   DELETE /v1/secrets/NAME                 {name,deleted:true}
 *   POST   /v1/labels/NAME {set?:{K:V},remove?:[K]}  -> {name,labels}: labels changed (audited;
 *                                           no view changes). PUT /v1/secrets/NAME?labels=
 *                                           {"K":"V"} sets labels with a put; its answer, GET
 *                                           /v1/secrets and GET /v1/secrets/NAME carry "labels"
 *   GET    /v1/values/NAME[?version=N]      the value (application/octet-stream)
 *   GET    /v1/keys                         {current,rotating,target,remaining,generations:[...]}
 *   POST   /v1/keys/rotate                  202 {kek_id,resumed,...status}: re-wrapping goes on
 *                                           in batches; GET /v1/keys until rotating is false
 *   GET    /v1/grants                       {"grants":[...]}
 *   POST   /v1/grants {secret,selector,path?,mode?,uid?,gid?,previous?,replace?} POST
 * /v1/grants/revoke                {secret,selector} GET    /v1/containers {"containers":[...]}
 *   POST   /v1/containers                   attach (OCI hook, createRuntime)
 *   DELETE /v1/containers/ID                detach (OCI hook, poststop)
 *   POST   /v1/rollback/NAME?version=N      version N's value as a new version -> 201
 *   POST   /v1/rotate/NAME                  {generate,length?,charset?,print?,keep_expiry?}
 *                                           -> 201 {name,version,expires,expiry_cleared}
 *                                           (print: the value, octet-stream) or
 *                                           {every,length?,charset?,exec?} -> {name,every,next}
 *   GET    /v1/schedules                    {"schedules":[{name,expires,every,next,...}]}
 *   GET    /v1/audit[?since=SEQ|UNIXTIME|@UNIXTIME|RFC3339|now-DUR|DUR&limit=N&cluster=1]
 *                                           {"records":[...],"last":SEQ}; cluster=1: only the
 *                                           cluster's changes, each with its "origin" node
 *   POST   /v1/audit/verify                 {"ok":true,"records":N} | {"ok":false,bad_seq,reason}
 *   GET    /v1/templates                    {"templates":[{name,current,versions,created,updated}]}
 *   PUT    /v1/templates/NAME               body = template -> 201 {name,version}; refused (400)
 *                                           with {error,line,column,offset} when it does not
 *                                           parse or names a secret that does not exist
 *   GET    /v1/templates/NAME[?body=1[&version=N]]  {name,current,versions:[...]} or the body
 *   DELETE /v1/templates/NAME               {name,deleted:true} (its grants go with it)
 *   GET    /v1/cluster                      {cluster:false} or {cluster:true,name,etcd,revision,
 *                                           watching,applied,rejected,write_failures,conflicts,
 *                                           watch_errors,last_error,node,leader,is_leader,
 *                                           elected,etcd_revision,lag,election_error,
 *                                           members:[{name,id,client_url,raft_leader}],
 *                                           members_total,members_error} (cluster
 * mode, docs/cluster.md) POST   /v1/daemon/upgrade               202 {upgrading,pid}: the keeper
 * re-execs its binary and starts a new daemon process (409: no keeper) A grant of "tmpl:NAME"
 * grants the template NAME (POST /v1/grants, /v1/grants/revoke). Every call but healthz, metrics,
 * GET /v1/keys, GET /v1/cluster and GET /v1/audit is audited; a change's record is written in the
 * change's own transaction, a read's before the answer (no record, no answer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <time.h>

#include "broker/cluster/cluster.h"
#include "broker/http/api_internal.h"
#include "broker/http/decode.h"
#include "broker/http/routes.h"
#include "broker/engine/audit.h"
#include "broker/rules/policy.h"
#include "broker/rules/tmpl.h"
#include "common/limits.h"
#include "common/names.h"
#include "common/timespec.h"

static bool admin_name_ok(struct api_req *r, const char *name)
{
	const char *why = NULL;
	if (names_check(name, strlen(name), &why) == 0)
		return true;
	api_reply_error(r, 400, "invalid secret name: %s", why);
	return false;
}

/* Who asks on this admin connection, as audit records name it: "uid:N", the peer's pid, exe. */
struct admin_who {
	char actor[32];
	char exe[256];
	struct service_actor a;
};

static void admin_who_init(struct api_req *r, struct admin_who *w)
{
	memset(w, 0, sizeof(*w));
	int64_t pid = 0;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		pid = cred.pid;
	if (pid <= 0 || ident_exe((pid_t)pid, w->exe, sizeof(w->exe)) < 0)
		w->exe[0] = '\0';
	audit_actor(w->actor, sizeof(w->actor), false, NULL, NULL, (uint32_t)r->pc->uid);
	/* the token: a cluster write waits with the request suspended (api_suspend) */
	w->a = (struct service_actor){.actor = w->actor, .pid = pid, .exe = w->exe, .token = r};
}

/* The service's -EINPROGRESS (cluster mode: the write waits for etcd): true after suspending r;
 * its route runs again when the write moves on. */
static bool admin_waits(struct api_req *r, int rc)
{
	if (rc != -EINPROGRESS)
		return false;
	api_suspend(r);
	return true;
}

static service *admin_sv(struct api_req *r)
{
	return r->a->cfg.service;
}

/* A read's record, before the answer: false (after replying 500) when it cannot be written:
 * no record, no answer. */
static bool admin_record(struct api_req *r, struct admin_who *w, const char *action,
                         const char *secret, uint64_t version)
{
	int rc = service_record(admin_sv(r), &w->a, action, secret, version, 0);
	if (rc == 0)
		return true;
	api_reply_error(r, 500, "cannot write the audit record: %s", strerror(-rc));
	return false;
}

/* What failed, for an error answer; says so when the failure's own audit record could not be
 * written either (the service counted and reported it). */
static const char *admin_what(char *buf, size_t size, const char *what, int audit_err)
{
	if (!audit_err)
		return what;
	snprintf(buf, size, "%s [and its audit record could not be written: %s]", what,
	         strerror(-audit_err));
	return buf;
}

/* Replies to a failed change with its error (res: what the service could not record). */
static void admin_fail(struct api_req *r, int err, const char *what,
                       const struct service_result *res)
{
	char buf[512];
	api_reply_errno(r, err, admin_what(buf, sizeof(buf), what, res->audit_err));
}

/* 404 in the one wording of not-found answers ("SUBJECT: no such KIND"): "NAME: no such
 * secret", or "NAME: no such version N" when version is not 0 and the secret exists. */
static void admin_not_found(struct api_req *r, const char *name, uint64_t version, int audit_err)
{
	char buf[512];
	int64_t expires;
	const size_t tl = strlen(STORE_GRANT_TMPL_PREFIX);
	if (strncmp(name, STORE_GRANT_TMPL_PREFIX, tl) == 0) /* a template, named as in grants */
		api_reply_error(r, 404, "%s: no such template%s", name + tl,
		                admin_what(buf, sizeof(buf), "", audit_err));
	else if (version && store_expiry(r->a->store, name, &expires) == 0)
		api_reply_error(r, 404, "%s: no such version %llu%s", name,
		                (unsigned long long)version,
		                admin_what(buf, sizeof(buf), "", audit_err));
	else
		api_reply_error(r, 404, "%s: no such secret%s", name,
		                admin_what(buf, sizeof(buf), "", audit_err));
}

/* A read that failed: its record (counted and reported when it cannot be written), the error
 * (for a missing secret or version, admin_not_found's). */
static void admin_read_fail(struct api_req *r, struct admin_who *w, const char *action,
                            const char *secret, uint64_t version, int err, const char *what)
{
	struct service_result res = {
	    .audit_err = service_record(admin_sv(r), &w->a, action, secret, version, err)};
	if (err == -ENOENT && secret)
		admin_not_found(r, secret, version, res.audit_err);
	else
		admin_fail(r, err, what, &res);
}

/* The answer to a stored change (reply, a JSON object, returned): when the views could not
 * follow, "unapplied" (containers failed closed now) and "warning"; secretctl then exits
 * ADMIN_EXIT_UNAPPLIED (3). */
static json_t *admin_applied(json_t *reply, const struct service_result *res)
{
	if (!reply || !res->refresh_err)
		return reply;
	char w[256];
	service_refresh_warning(res, w, sizeof(w));
	json_object_set_new(reply, "unapplied", json_integer((json_int_t)res->unapplied));
	json_object_set_new(reply, "warning", json_string(w));
	return reply;
}

/* A secret's labels as an object {"KEY": "VALUE", ...} (new reference). */
static json_t *admin_labels_json(const struct store_label *v, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < n; i++)
		json_object_set_new(o, v[i].key, json_string(v[i].value));
	return o;
}

/* One listing of the admin API (GET /v1/secrets, /v1/grants, /v1/schedules, /v1/templates): its
 * read (a malloc'd array of n elements of size bytes, freed by free), audited as action before
 * the answer, rendered one element at a time as {"KEY": [row(elem), ...]}. */
struct admin_listing {
	const char *action; /* the audit record's action */
	const char *what;   /* names it in an error answer */
	const char *key;    /* the answer's array */
	size_t size;        /* sizeof one element */
	int (*load)(store *st, void **v, size_t *n);
	json_t *(*row)(const void *elem);
	void (*free)(void *v, size_t n);
};

static void admin_listing_reply(struct api_req *r, const struct admin_listing *l)
{
	void *v = NULL;
	size_t n = 0;
	struct admin_who w;
	admin_who_init(r, &w);
	int rc = l->load(r->a->store, &v, &n);
	if (rc < 0) {
		admin_read_fail(r, &w, l->action, NULL, 0, rc, l->what);
		return;
	}
	if (!admin_record(r, &w, l->action, NULL, 0)) {
		l->free(v, n);
		return;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, l->row((const char *)v + i * l->size));
	l->free(v, n);
	api_reply_json(r, 200, json_pack("{s:o}", l->key, a));
}

static int admin_secrets_load(store *st, void **v, size_t *n)
{
	struct store_secret_info *p = NULL;
	int rc = store_list(st, &p, n);
	*v = p;
	return rc;
}

static void admin_secrets_free(void *v, size_t n)
{
	store_list_free(v, n);
}

static json_t *admin_secret_row(const void *elem)
{
	const struct store_secret_info *v = elem;
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "name", v->name, "current",
	                 (json_int_t)v->current, "versions", (json_int_t)v->nversions, "created",
	                 (json_int_t)v->created, "updated", (json_int_t)v->updated, "expires",
	                 (json_int_t)v->expires, "labels",
	                 admin_labels_json(v->labels, v->nlabels));
}

static const struct admin_listing admin_secrets_listing = {
    .action = "list",
    .what = "list",
    .key = "secrets",
    .size = sizeof(struct store_secret_info),
    .load = admin_secrets_load,
    .row = admin_secret_row,
    .free = admin_secrets_free,
};

static void admin_list(struct api_req *r)
{
	admin_listing_reply(r, &admin_secrets_listing);
}

/* A request decoder's verdict (broker/http/decode.h): true when it decoded, else false after
 * replying 400 with its reason. */
static bool admin_decoded(struct api_req *r, int rc, const char *err)
{
	if (rc == 0)
		return true;
	api_reply_error(r, 400, "%s", err);
	return false;
}

/* The expiry after a new version, for its answer. */
static void admin_expiry_reply(json_t *j, const struct service_result *res)
{
	if (!j)
		return;
	json_object_set_new(j, "expires", json_integer((json_int_t)res->expires));
	json_object_set_new(j, "expiry_cleared", json_boolean(res->expiry_cleared));
}

/* A secret's labels after a change, for its answer: "labels", or (the change is stored, only
 * this read failed) a "warning" that says so. */
static void admin_labels_reply(struct api_req *r, json_t *j, const char *name)
{
	struct store_label *v = NULL;
	size_t n = 0;
	int rc = store_labels(r->a->store, name, &v, &n);
	if (j && rc == 0)
		json_object_set_new(j, "labels", admin_labels_json(v, n));
	else if (j) {
		char w[256];
		snprintf(w, sizeof(w), "the change is stored, but its labels could not be read: %s",
		         service_strerror(rc));
		json_object_set_new(j, "labels", json_null());
		json_object_set_new(j, "warning", json_string(w));
	}
	store_labels_free(v, n);
}

static void admin_put(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	const char *why = NULL;
	if (mounts_name_check(name, strlen(name), &why) < 0) {
		/* also for a name stored before this check: rm still removes it */
		api_reply_error(r, 400, "invalid secret name: %s", why);
		return;
	}
	struct decode_put q;
	char err[DECODE_ERR_MAX];
	if (!admin_decoded(r, decode_put(api_query_arg, r, r->len, &q, err), err))
		goto out;
	uint64_t keep = q.keep, ttl = q.ttl;
	bool keep_expiry = q.keep_expiry;
	int64_t now = (int64_t)time(NULL);
	int64_t new_expiry = ttl ? now + (int64_t)ttl : 0;
	if (q.has_expires) {
		new_expiry = timespec_resolve(&q.expires, now);
		if (new_expiry <= now) {
			api_reply_error(r, 400, "expires must be in the future");
			goto out;
		}
	}
	struct admin_who w;
	admin_who_init(r, &w);
	struct service_put p = {.name = name,
	                        .val = r->body ? r->body : (const uint8_t *)"",
	                        .len = r->len,
	                        .keep = (int64_t)keep,
	                        .new_expiry = new_expiry,
	                        .keep_expiry = keep_expiry,
	                        .labels = q.has_labels ? &q.labels.change : NULL};
	struct service_result res;
	int rc = service_put(admin_sv(r), &w.a, &p, &res);
	if (admin_waits(r, rc))
		goto out;
	if (rc == -E2BIG && q.has_labels) {
		char buf[512];
		api_reply_error(r, 400, "%s: more than %d labels%s", name, LABELS_MAX,
		                admin_what(buf, sizeof(buf), "", res.audit_err));
		goto out;
	}
	if (rc < 0) {
		admin_fail(r, rc, name, &res);
		goto out;
	}
	json_t *j = json_pack("{s:s, s:I}", "name", name, "version", (json_int_t)res.version);
	admin_expiry_reply(j, &res);
	admin_labels_reply(r, j, name);
	api_reply_json(r, 201, admin_applied(j, &res));
out:
	decode_put_clear(&q);
}

static void admin_versions(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	struct store_version_info *v = NULL;
	size_t n = 0;
	int64_t expires = 0;
	struct admin_who w;
	admin_who_init(r, &w);
	struct store_label *lv = NULL;
	size_t nl = 0;
	int rc = store_versions(r->a->store, name, &v, &n);
	if (rc == 0)
		rc = store_expiry(r->a->store, name, &expires);
	if (rc == 0)
		rc = store_labels(r->a->store, name, &lv, &nl);
	if (rc < 0) {
		store_versions_free(v, n);
		admin_read_fail(r, &w, "versions", name, 0, rc, name);
		return;
	}
	if (!admin_record(r, &w, "versions", name, 0)) {
		store_versions_free(v, n);
		store_labels_free(lv, nl);
		return;
	}
	json_t *a = json_array();
	uint64_t current = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].current)
			current = v[i].version;
		json_array_append_new(
		    a, json_pack("{s:I, s:I, s:I, s:I, s:b}", "version", (json_int_t)v[i].version,
		                 "size", (json_int_t)v[i].size, "kek", (json_int_t)v[i].kek_id,
		                 "created", (json_int_t)v[i].created, "current", v[i].current));
	}
	store_versions_free(v, n);
	json_t *labels = admin_labels_json(lv, nl);
	store_labels_free(lv, nl);
	api_reply_json(r, 200,
	               json_pack("{s:s, s:I, s:I, s:o, s:o}", "name", name, "current",
	                         (json_int_t)current, "expires", (json_int_t)expires, "versions", a,
	                         "labels", labels));
}

/* POST /v1/labels/NAME {set?, remove?}: the secret's labels changed (kubectl label's KEY=VALUE
 * and KEY-), audited; no container's view changes. -> 200 {name, labels}. */
static void admin_label(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	struct decode_labels d;
	char err[DECODE_ERR_MAX];
	if (admin_decoded(r, decode_labels(r->body, r->len, &d, err), err)) {
		struct admin_who w;
		admin_who_init(r, &w);
		struct service_result res;
		struct store_label *v = NULL;
		size_t n = 0;
		int rc = service_labels(admin_sv(r), &w.a, name, &d.change, &v, &n, &res);
		char buf[512];
		if (rc == -ENOENT)
			admin_not_found(r, name, 0, res.audit_err);
		else if (rc == -E2BIG)
			api_reply_error(r, 400, "%s: more than %d labels%s", name, LABELS_MAX,
			                admin_what(buf, sizeof(buf), "", res.audit_err));
		else if (rc < 0)
			admin_fail(r, rc, name, &res);
		else
			api_reply_json(r, 200,
			               json_pack("{s:s, s:o}", "name", name, "labels",
			                         admin_labels_json(v, n)));
		store_labels_free(v, n);
	}
	decode_labels_clear(&d);
}

static void admin_delete(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	struct admin_who w;
	admin_who_init(r, &w);
	struct service_result res;
	int rc = service_delete(admin_sv(r), &w.a, name, &res);
	if (admin_waits(r, rc))
		return;
	if (rc == -ENOENT) {
		admin_not_found(r, name, 0, res.audit_err);
		return;
	}
	if (rc < 0) {
		admin_fail(r, rc, name, &res);
		return;
	}
	api_reply_json(r, 200,
	               admin_applied(json_pack("{s:s, s:b}", "name", name, "deleted", 1), &res));
}

static void admin_value(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	uint64_t want = 0;
	char err[DECODE_ERR_MAX];
	if (!admin_decoded(
	        r, decode_version(api_query_arg, r, DECODE_VALUE_VERSION_MAX, false, &want, err),
	        err))
		return;
	uint8_t *val = NULL;
	size_t len = 0;
	uint64_t got = 0;
	struct admin_who w;
	admin_who_init(r, &w);
	int rc = store_get(r->a->store, name, want, &val, &len, &got);
	if (rc < 0) {
		admin_read_fail(r, &w, "get", name, want, rc, name);
		return;
	}
	if (!admin_record(r, &w, "get", name, got)) {
		store_value_free(val);
		return;
	}
	api_reply_secret(r, val, len, got);
}

static json_t *admin_key_status_json(store *st, bool *ok)
{
	struct store_key_status ks;
	*ok = store_key_status(st, &ks) == 0;
	if (!*ok)
		return NULL;
	json_t *gens = json_array();
	for (size_t i = 0; i < ks.ngens; i++)
		json_array_append_new(gens,
		                      json_pack("{s:I, s:I, s:I}", "id", (json_int_t)ks.gens[i].id,
		                                "created", (json_int_t)ks.gens[i].created,
		                                "data_keys", (json_int_t)ks.gens[i].versions));
	json_t *j = json_pack("{s:I, s:b, s:I, s:I, s:o}", "current", (json_int_t)ks.current,
	                      "rotating", ks.rotating != 0, "target", (json_int_t)ks.rotating,
	                      "remaining", (json_int_t)ks.remaining, "generations", gens);
	/* cluster mode: etcd away or a batch's secret changed meanwhile pause the rotation (it
	 * resumes by itself); any other failure stops it */
	bool paused = ks.error == -EHOSTUNREACH || ks.error == -ESTALE;
	if (j && ks.error)
		json_object_set_new(j, paused ? "paused" : "error",
		                    json_string(ks.error == -EBADMSG
		                                    ? "integrity check failed on a stored row"
		                                    : service_strerror(ks.error)));
	/* who re-wraps: this node, or (cluster mode) another node whose rotation left data keys
	 * here under an older generation */
	if (j && (ks.rotating || ks.remaining))
		json_object_set_new(j, "rewrapping",
		                    json_string(ks.rotating ? "this node" : "another node"));
	store_key_status_free(&ks);
	return j;
}

/* Starts a rotation (or reports the unfinished one); the loop re-wraps in batches after the
 * answer: 202 with the status, GET /v1/keys to follow it. */
static void admin_key_rotate(struct api_req *r)
{
	uint64_t kek = 0;
	bool resumed = false;
	struct admin_who w;
	admin_who_init(r, &w);
	struct service_result res;
	int rc = service_key_rotate_begin(admin_sv(r), &w.a, &kek, &resumed, &res);
	if (rc < 0) {
		admin_fail(r, rc, "key rotation", &res);
		return;
	}
	bool ok;
	json_t *j = admin_key_status_json(r->a->store, &ok);
	if (!j) {
		api_reply_errno(r, -ENOMEM, "key status");
		return;
	}
	json_object_set_new(j, "kek_id", json_integer((json_int_t)kek));
	json_object_set_new(j, "resumed", json_boolean(resumed));
	api_reply_json(r, 202, j);
}

/* Not audited: a status without secrets, polled while a rotation runs. */
static void admin_keys(struct api_req *r)
{
	bool ok;
	json_t *j = admin_key_status_json(r->a->store, &ok);
	if (!j) {
		api_reply_errno(r, ok ? -ENOMEM : -EIO, "key status");
		return;
	}
	api_reply_json(r, 200, j);
}

static json_t *admin_grant_json(const struct store_grant *g)
{
	char mode[8];
	snprintf(mode, sizeof(mode), "%04o", (unsigned)g->mode);
	return json_pack("{s:I, s:s, s:s, s:s?, s:s, s:I, s:I, s:b, s:I}", "id", (json_int_t)g->id,
	                 "secret", g->secret, "selector", g->selector, "path", g->path, "mode",
	                 mode, "uid", (json_int_t)g->uid, "gid", (json_int_t)g->gid, "previous",
	                 (g->flags & STORE_GRANT_PREVIOUS) != 0, "created", (json_int_t)g->created);
}

static int admin_grants_load(store *st, void **v, size_t *n)
{
	struct store_grant *p = NULL;
	int rc = store_grants(st, &p, n);
	*v = p;
	return rc;
}

static void admin_grants_free(void *v, size_t n)
{
	store_grants_free(v, n);
}

static json_t *admin_grant_row(const void *elem)
{
	return admin_grant_json(elem);
}

static const struct admin_listing admin_grants_listing = {
    .action = "grants",
    .what = "grants",
    .key = "grants",
    .size = sizeof(struct store_grant),
    .load = admin_grants_load,
    .row = admin_grant_row,
    .free = admin_grants_free,
};

static void admin_grants(struct api_req *r)
{
	admin_listing_reply(r, &admin_grants_listing);
}

/* A grant is stored whether or not a secret matches it (a pattern may match secrets put later),
 * but when none does now the answer says so in "warning" (after the views' own warning, if
 * any), and secretctl prints it. The check is a listing of names, after the change. */
static void admin_grant_warn(struct api_req *r, json_t *j, const char *pattern)
{
	if (!j)
		return;
	const char *prev = json_string_value(json_object_get(j, "warning"));
	char w[1024];
	const size_t tl = strlen(STORE_GRANT_TMPL_PREFIX);
	if (strncmp(pattern, STORE_GRANT_TMPL_PREFIX, tl) == 0) {
		/* A template grant names one template. */
		struct store_version_info *v = NULL;
		size_t n = 0;
		int rc = store_tmpl_versions(r->a->store, pattern + tl, &v, &n);
		store_versions_free(v, n);
		if (rc == 0)
			return;
		if (rc == -ENOENT)
			snprintf(w, sizeof(w),
			         "%s%sno template is named %s yet: the grant is stored and applies "
			         "once it is put",
			         prev ? prev : "", prev ? "; " : "", pattern + tl);
		else
			snprintf(w, sizeof(w), "%s%sthe grant is stored, but template %s: %s",
			         prev ? prev : "", prev ? "; " : "", pattern + tl, strerror(-rc));
		json_object_set_new(j, "warning", json_string(w));
		return;
	}
	struct store_secret_info *v = NULL;
	size_t n = 0;
	int rc = store_list(r->a->store, &v, &n);
	if (rc < 0) {
		/* The grant is stored; only the check could not be made: say so, never drop it. */
		snprintf(w, sizeof(w),
		         "%s%sthe grant is stored, but the secrets could not be listed: %s",
		         prev ? prev : "", prev ? "; " : "", strerror(-rc));
		json_object_set_new(j, "warning", json_string(w));
		return;
	}
	bool match = false;
	for (size_t i = 0; i < n && !match; i++)
		match = names_pattern_match(pattern, v[i].name);
	store_list_free(v, n);
	if (match)
		return;
	snprintf(w, sizeof(w),
	         "%s%sno secret %s %s yet: the grant is stored and applies once %s put",
	         prev ? prev : "", prev ? "; " : "", strchr(pattern, '*') ? "matches" : "is named",
	         pattern, strchr(pattern, '*') ? "one is" : "it is");
	json_object_set_new(j, "warning", json_string(w));
}

static void admin_grant_add(struct api_req *r)
{
	struct decode_grant d;
	char err[DECODE_ERR_MAX];
	if (admin_decoded(r, decode_grant(r->body, r->len, &d, err), err)) {
		const char *secret = d.secret, *sel = d.selector, *path = d.path;
		int64_t mode = d.mode, uid = d.uid, gid = d.gid;
		struct store_grant g = {.secret = (char *)secret,
		                        .selector = (char *)sel,
		                        .path = (char *)path,
		                        .mode = (uint32_t)mode,
		                        .uid = uid,
		                        .gid = gid,
		                        .flags = d.previous ? STORE_GRANT_PREVIOUS : 0};
		bool replace = d.replace;
		struct admin_who w;
		admin_who_init(r, &w);
		struct service_result res;
		int rc = service_grant(admin_sv(r), &w.a, &g, replace, &res);
		char buf[512];
		if (admin_waits(r, rc))
			;
		else if (rc == -EEXIST)
			api_reply_error(r, 409, "%s is already granted to %s (use replace)",
			                admin_what(buf, sizeof(buf), secret, res.audit_err), sel);
		else if (rc < 0)
			admin_fail(r, rc, "grant", &res);
		else {
			json_t *j = admin_applied(
			    json_pack("{s:s, s:s}", "secret", secret, "selector", sel), &res);
			admin_grant_warn(r, j, secret);
			api_reply_json(r, 201, j);
		}
	}
	decode_grant_clear(&d);
}

static void admin_grant_remove(struct api_req *r)
{
	struct decode_revoke d;
	char err[DECODE_ERR_MAX];
	if (admin_decoded(r, decode_revoke(r->body, r->len, &d, err), err)) {
		const char *secret = d.secret, *sel = d.selector;
		struct admin_who w;
		admin_who_init(r, &w);
		struct service_result res;
		int rc = service_revoke(admin_sv(r), &w.a, secret, sel, &res);
		char buf[512];
		if (admin_waits(r, rc))
			;
		else if (rc == -ENOENT)
			api_reply_error(r, 404, "%s to %s: no such grant%s", secret, sel,
			                admin_what(buf, sizeof(buf), "", res.audit_err));
		else if (rc < 0)
			admin_fail(r, rc, "revoke", &res);
		else {
			api_reply_json(r, 200,
			               admin_applied(json_pack("{s:s, s:s, s:b}", "secret", secret,
			                                       "selector", sel, "revoked", 1),
			                             &res));
		}
	}
	decode_revoke_clear(&d);
}

static void admin_attach(struct api_req *r)
{
	struct decode_attach d;
	char err[DECODE_ERR_MAX];
	if (admin_decoded(r, decode_attach(r->body, r->len, &d, err), err)) {
		struct mounts_attach_req a = d.req;
		bool mounted = false;
		size_t files = 0;
		struct admin_who w;
		admin_who_init(r, &w);
		struct service_result res;
		int rc = service_attach(admin_sv(r), &w.a, &a, &mounted, &files, &res);
		char buf[512];
		if (res.unrecorded)
			/* no record, no attach */
			api_reply_error(r, 500,
			                "cannot write the audit record: %s; container %s %s",
			                strerror(-res.audit_err), a.id,
			                res.undone ? "was not attached"
			                           : "is attached but could not be detached again");
		else if (rc == -EPERM)
			api_reply_error(r, 403,
			                "container %s has no cgroup of its own: its processes "
			                "cannot be told apart from the host's",
			                a.id);
		else if (rc == -EINVAL)
			api_reply_error(
			    r, 400, "invalid attach request (id, pid, root or mount)%s",
			    res.audit_err ? admin_what(buf, sizeof(buf), "", res.audit_err) : "");
		else if (rc < 0)
			admin_fail(r, rc, a.id, &res);
		else if (mounted)
			api_reply_json(r, 201,
			               json_pack("{s:s, s:b, s:I, s:s}", "id", a.id, "mounted", 1,
			                         "files", (json_int_t)files, "mount",
			                         a.target ? a.target : SECRETD_MOUNT_DEFAULT));
		else
			api_reply_json(r, 200, json_pack("{s:s, s:b}", "id", a.id, "mounted", 0));
	}
	decode_attach_clear(&d);
}

static void admin_rollback(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	uint64_t from = 0;
	char err[DECODE_ERR_MAX];
	if (!admin_decoded(
	        r, decode_version(api_query_arg, r, DECODE_ROLLBACK_VERSION_MAX, true, &from, err),
	        err))
		return;
	struct admin_who w;
	admin_who_init(r, &w);
	struct service_result res;
	int rc = service_rollback(admin_sv(r), &w.a, name, from, &res);
	if (admin_waits(r, rc))
		return;
	if (rc == -ENOENT) {
		admin_not_found(r, name, from, res.audit_err);
		return;
	}
	if (rc < 0) {
		admin_fail(r, rc, name, &res);
		return;
	}
	api_reply_json(r, 201,
	               admin_applied(json_pack("{s:s, s:I, s:I}", "name", name, "version",
	                                       (json_int_t)res.version, "from", (json_int_t)from),
	                             &res));
}

/* POST /v1/rotate/NAME: a generated value now, or (every) a schedule. */
static void admin_rotate(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	struct decode_rotate d;
	char err[DECODE_ERR_MAX];
	if (!admin_decoded(r, decode_rotate(r->body, r->len, &d, err), err))
		goto out;
	int64_t length = d.length, every = d.every;
	enum store_charset cs = d.charset;
	const char *exec = d.exec;
	bool print = d.print;
	if (every >= 0) {
		struct admin_who w;
		admin_who_init(r, &w);
		struct service_result res;
		int rc = service_schedule(admin_sv(r), &w.a, name, every, (uint32_t)length, cs,
		                          exec, &res);
		char buf[512];
		if (admin_waits(r, rc)) {
			/* answered when it runs again */
		} else if (rc == -ENOENT) {
			api_reply_error(r, 404, "%s: no such secret (put or rotate it first)%s",
			                name, admin_what(buf, sizeof(buf), "", res.audit_err));
		} else if (rc < 0) {
			admin_fail(r, rc, name, &res);
		} else {
			api_reply_json(r, 200,
			               json_pack("{s:s, s:I, s:I}", "name", name, "every",
			                         (json_int_t)every, "next",
			                         (json_int_t)(every ? time(NULL) + every : 0)));
		}
		goto out;
	}
	struct admin_who w;
	admin_who_init(r, &w);
	uint8_t *val = NULL;
	struct service_result res;
	int rc = service_generate(admin_sv(r), &w.a, name, cs, (size_t)length, d.keep_expiry,
	                          print ? &val : NULL, &res);
	if (admin_waits(r, rc))
		goto out;
	if (rc < 0) {
		admin_fail(r, rc, res.not_tried ? "generate" : name, &res);
		goto out;
	}
	if (print) {
		/* The value is the answer: a failed refresh is logged and counted only. */
		api_reply_secret(r, val, (size_t)length, res.version);
	} else {
		json_t *j = json_pack("{s:s, s:I, s:I, s:s}", "name", name, "version",
		                      (json_int_t)res.version, "length", (json_int_t)length,
		                      "charset", store_charset_name(cs));
		admin_expiry_reply(j, &res);
		api_reply_json(r, 201, admin_applied(j, &res));
	}
out:
	decode_rotate_clear(&d);
}

static int admin_schedules_load(store *st, void **v, size_t *n)
{
	struct store_lifecycle *p = NULL;
	int rc = store_lifecycles(st, &p, n);
	*v = p;
	return rc;
}

static void admin_schedules_free(void *v, size_t n)
{
	store_lifecycles_free(v, n);
}

static json_t *admin_schedule_row(const void *elem)
{
	const struct store_lifecycle *v = elem;
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:s?}", "name", v->name, "expires",
	                 (json_int_t)v->expires, "every", (json_int_t)v->every, "next",
	                 (json_int_t)v->next, "length", (json_int_t)v->length, "charset",
	                 store_charset_name(v->charset), "exec", v->exec);
}

static const struct admin_listing admin_schedules_listing = {
    .action = "schedules",
    .what = "schedules",
    .key = "schedules",
    .size = sizeof(struct store_lifecycle),
    .load = admin_schedules_load,
    .row = admin_schedule_row,
    .free = admin_schedules_free,
};

static void admin_schedules(struct api_req *r)
{
	admin_listing_reply(r, &admin_schedules_listing);
}

static json_t *admin_audit_row_json(const struct store_audit_row *w)
{
	return json_pack("{s:I, s:I, s:s, s:I, s:s, s:s, s:s?, s:I, s:s, s:s?, s:I}", "seq",
	                 (json_int_t)w->seq, "time", (json_int_t)w->time, "actor", w->actor, "pid",
	                 (json_int_t)w->pid, "exe", w->exe, "action", w->action, "secret",
	                 w->secret, "version", (json_int_t)w->version, "result", w->result,
	                 "detail", w->detail, "count", (json_int_t)w->count);
}

/* ?cluster=1: the cluster's changes, with their origin node: this node's own changes of what
 * etcd shares (secrets, grants, lifecycles; a change etcd refused follows as cluster-undo), named
 * with this node's name, and the cluster-* records of changes applied from etcd, named with the
 * origin their detail carries (origin=NODE, cluster_log.h). NULL: not one of them. */
static const char *admin_audit_origin(const struct store_audit_row *w, const char *node, char *buf,
                                      size_t size)
{
	static const char *const own[] = {"put",        "generate", "rotate", "rotate+print",
	                                  "rollback",   "delete",   "expire", "schedule",
	                                  "unschedule", "grant",    "revoke", "cluster-undo"};
	if (strncmp(w->action, "cluster-", 8) == 0 && strcmp(w->action, "cluster-undo") != 0) {
		const char *o = w->detail ? strstr(w->detail, " origin=") : NULL;
		size_t n = o ? strcspn(o + 8, " ") : 0;
		snprintf(buf, size, "%.*s", (int)(n ? n : 1), n ? o + 8 : "?");
		return buf;
	}
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (strcmp(w->action, own[i]) == 0 &&
		    (strcmp(w->result, "ok") == 0 || strcmp(w->action, "cluster-undo") == 0))
			return node;
	return NULL;
}

static void admin_audit_list(struct api_req *r)
{
	struct decode_audit q;
	char err[DECODE_ERR_MAX];
	if (!admin_decoded(r, decode_audit(api_query_arg, r, &q, err), err))
		return;
	uint64_t after = q.after, limit = q.limit;
	int64_t since_time = q.since_time;
	if (q.since_is_rel) {
		/* "10m" or "now-10m": that long before now; at least 1 (0 is "no time given") */
		struct timespec_when sw = {.relative = true, .value = q.since_rel};
		since_time = timespec_resolve(&sw, (int64_t)time(NULL));
		if (since_time < 1)
			since_time = 1;
	}
	struct store_audit_row *rows = NULL;
	size_t n = 0;
	int rc = store_audit_list(r->a->store, after, since_time, limit, &rows, &n);
	if (rc < 0) {
		api_reply_errno(r, rc, "audit");
		return;
	}
	json_t *a = json_array();
	uint64_t last = after;
	cluster *cl = q.cluster ? service_cluster(r->a->cfg.service) : NULL;
	struct cluster_stats cs = {0};
	if (cl)
		cluster_get_stats(cl, &cs);
	for (size_t i = 0; i < n; i++) {
		last = rows[i].seq;
		char ob[CLUSTER_NODE_MAX];
		const char *origin =
		    cl ? admin_audit_origin(&rows[i], cs.node, ob, sizeof(ob)) : NULL;
		if (q.cluster && !origin)
			continue; /* ?cluster=1 (single node: nothing is a cluster change) */
		json_t *row = admin_audit_row_json(&rows[i]);
		if (row && origin)
			json_object_set_new(row, "origin", json_string(origin));
		json_array_append_new(a, row);
	}
	store_audit_list_free(rows, n);
	api_reply_json(r, 200, json_pack("{s:o, s:I}", "records", a, "last", (json_int_t)last));
}

/* The chain against the anchor file (when configured): NULL when it holds, else the reason. */
static const char *admin_anchor_check(struct api_req *r, uint64_t *aseq)
{
	const char *path = r->a->cfg.audit_anchor;
	if (!path)
		return NULL;
	struct anchor an;
	int rc = anchor_read(path, &an);
	if (rc == -ENOENT)
		return NULL; /* not written yet: the daemon writes it after each audited change */
	if (rc < 0)
		return "the audit anchor file is unreadable or malformed";
	*aseq = an.seq;
	rc = store_audit_anchor_check(r->a->store, &an);
	if (rc == -EBADMSG)
		return "the audit anchor was not written with this store's key";
	if (rc == -ESTALE)
		return "the database is older than its audit anchor (restored from an older copy): "
		       "records the anchor names are missing or different";
	return rc < 0 ? "the audit anchor cannot be checked" : NULL;
}

/* What the batcher holds right now (not yet in the chain), for audit verify. */
static json_t *admin_audit_live(struct api_req *r)
{
	if (!r->a->cfg.reads_audit)
		return json_pack("{s:b}", "writable", 1);
	struct audit_stats as;
	audit_get_stats(r->a->cfg.reads_audit, &as);
	int err = audit_last_error(r->a->cfg.reads_audit);
	return json_pack("{s:b, s:I, s:I, s:s?}", "writable", as.writable, "pending",
	                 (json_int_t)as.pending, "refused_since_start", (json_int_t)as.refused,
	                 "error", as.writable || !err ? NULL : strerror(-err));
}

static void admin_audit_verify(struct api_req *r)
{
	struct admin_who w;
	admin_who_init(r, &w);
	struct store_audit_verify_info vi;
	int rc = store_audit_verify_ex(r->a->store, &vi);
	if (rc == -EBADMSG) {
		/* Not appended to: the chain is broken and must be looked at as it is. */
		json_t *rec = NULL;
		struct store_audit_row *rows = NULL;
		size_t n = 0;
		if (store_audit_list(r->a->store, vi.bad_seq ? vi.bad_seq - 1 : 0, 0, 1, &rows,
		                     &n) == 0 &&
		    n && rows[0].seq == vi.bad_seq)
			rec = admin_audit_row_json(&rows[0]);
		store_audit_list_free(rows, n);
		api_reply_json(r, 200,
		               json_pack("{s:b, s:I, s:s, s:I, s:o?, s:o}", "ok", 0, "bad_seq",
		                         (json_int_t)vi.bad_seq, "reason", vi.reason, "records",
		                         (json_int_t)vi.records, "record", rec, "live",
		                         admin_audit_live(r)));
		return;
	}
	if (rc < 0) {
		api_reply_errno(r, rc, "audit verify");
		return;
	}
	uint64_t aseq = vi.checkpoint_seq + vi.records + 1;
	const char *anchor_why = admin_anchor_check(r, &aseq);
	if (anchor_why) {
		api_reply_json(r, 200,
		               json_pack("{s:b, s:I, s:s, s:I}", "ok", 0, "bad_seq",
		                         (json_int_t)aseq, "reason", anchor_why, "records",
		                         (json_int_t)vi.records));
		return;
	}
	if (!admin_record(r, &w, "audit-verify", NULL, 0))
		return;
	json_t *cp =
	    vi.checkpoint
	        ? json_pack("{s:I, s:I, s:I}", "seq", (json_int_t)vi.checkpoint_seq, "pruned",
	                    (json_int_t)vi.pruned, "time", (json_int_t)vi.checkpoint_time)
	        : NULL;
	api_reply_json(r, 200,
	               json_pack("{s:b, s:I, s:I, s:I, s:o?, s:o}", "ok", 1, "records",
	                         (json_int_t)vi.records, "events", (json_int_t)vi.events, "refused",
	                         (json_int_t)vi.refused, "checkpoint", cp, "live",
	                         admin_audit_live(r)));
}

static void admin_metrics(struct api_req *r)
{
	struct mounts_stats ms;
	mounts_get_stats(r->a->mounts, &ms);
	struct metrics_gauges g = {.containers = ms.containers,
	                           .mounted = ms.mounted,
	                           .files = ms.files,
	                           .fuse_opens = ms.opens,
	                           .fuse_denied = ms.opens_denied,
	                           .audit_writable = 1,
	                           .view_failures = ms.view_failures,
	                           .renders = ms.renders,
	                           .unmount_failures = ms.unmount_failures,
	                           .restore_failures = ms.restore_failures,
	                           .registry_write_failures = ms.registry_write_failures,
	                           .failed_closed = ms.failed_closed};
	if (r->a->cfg.reads_audit) {
		struct audit_stats as;
		audit_get_stats(r->a->cfg.reads_audit, &as);
		g.audit_records = as.records_written;
		g.audit_events = as.events_written;
		g.audit_coalesced = as.coalesced;
		g.audit_refused = as.refused;
		g.audit_write_errors = as.write_errors;
		g.audit_pruned = as.pruned;
		g.audit_pending = as.pending;
		g.audit_writable = as.writable;
	}
	/* A store that cannot be read is what the metrics are for: the rest is served, the count
	 * is NaN and counted. */
	cluster *cl = service_cluster(r->a->cfg.service);
	if (cl) {
		struct cluster_stats cs;
		cluster_get_stats(cl, &cs);
		g.cluster = 1;
		g.cluster_watching = cs.watching;
		g.cluster_revision = cs.revision;
		g.cluster_applied = cs.applied;
		g.cluster_rejected = cs.rejected;
		g.cluster_write_failures = cs.write_failures;
		g.cluster_conflicts = cs.conflicts;
		g.cluster_watch_errors = cs.watch_errors;
		g.cluster_writes_pending = service_writes_pending(admin_sv(r));
		g.cluster_watch_stalls = cs.watch_stalls;
	}
	g.secrets_err = store_count(r->a->store, &g.secrets);
	if (g.secrets_err < 0)
		r->a->met->store_read_errors++;
	char *text = NULL;
	if (metrics_render(r->a->met, &g, &text) < 0) {
		api_reply_error(r, 500, "out of memory");
		return;
	}
	api_reply_text(r, 200, "text/plain; version=0.0.4", text);
	free(text);
}

static void admin_containers(struct api_req *r)
{
	struct admin_who w;
	admin_who_init(r, &w);
	if (admin_record(r, &w, "containers", NULL, 0))
		api_reply_json(r, 200,
		               json_pack("{s:o}", "containers", mounts_list_json(r->a->mounts)));
}

/* DELETE /v1/containers/ID (OCI hook, poststop). A detach is done even when its record cannot
 * be written (the mount is gone): 500 says both. */
static void admin_detach(struct api_req *r, const char *id)
{
	struct admin_who w;
	admin_who_init(r, &w);
	struct service_result res;
	int rc = service_detach(admin_sv(r), &w.a, id, &res);
	if (res.unrecorded)
		api_reply_error(r, 500,
		                "container %s was detached, but its audit record could not be "
		                "written: %s",
		                id, strerror(-res.audit_err));
	else if (rc == -ENOENT) {
		char buf[512];
		api_reply_error(r, 404, "%s: no such container%s", id,
		                admin_what(buf, sizeof(buf), "", res.audit_err));
	} else if (rc < 0)
		admin_fail(r, rc, "container", &res);
	else if (res.unmount_err)
		api_reply_json(
		    r, 200,
		    json_pack("{s:s, s:b, s:s++}", "id", id, "detached", 1, "warning",
		              "the mount could not be removed from the running container: ",
		              strerror(-res.unmount_err),
		              " (it serves nothing: its connection is closed)"));
	else
		api_reply_json(r, 200, json_pack("{s:s, s:b}", "id", id, "detached", 1));
}

/* ---- templates (rendered files) ---- */

static bool admin_template_name_ok(struct api_req *r, const char *name)
{
	const char *why = NULL;
	if (names_check(name, strlen(name), &why) == 0 &&
	    mounts_name_check(name, strlen(name), &why) == 0)
		return true;
	api_reply_error(r, 400, "invalid template name: %s", why);
	return false;
}

/* PUT /v1/templates/NAME: parsed and checked (every secret it names must exist) by the service;
 * a refusal says where: {"error":"line L, column C: ...", line, column, offset}. */
static void admin_template_put(struct api_req *r, const char *name)
{
	if (!admin_template_name_ok(r, name))
		return;
	struct admin_who w;
	admin_who_init(r, &w);
	struct tmpl_error te;
	struct service_result res;
	int rc = service_template_put(admin_sv(r), &w.a, name,
	                              r->body ? r->body : (const uint8_t *)"", r->len, &te, &res);
	if (rc < 0 && te.msg[0]) {
		char msg[320];
		snprintf(msg, sizeof(msg), "template %s refused: line %u, column %u: %s", name,
		         te.line, te.col, te.msg);
		char buf[512];
		api_reply_json(r, rc == -E2BIG ? 413 : 400,
		               json_pack("{s:s, s:I, s:I, s:I}", "error",
		                         admin_what(buf, sizeof(buf), msg, res.audit_err), "line",
		                         (json_int_t)te.line, "column", (json_int_t)te.col,
		                         "offset", (json_int_t)te.offset));
		return;
	}
	if (rc < 0) {
		admin_fail(r, rc, name, &res);
		return;
	}
	api_reply_json(
	    r, 201,
	    admin_applied(json_pack("{s:s, s:I}", "name", name, "version", (json_int_t)res.version),
	                  &res));
}

static int admin_templates_load(store *st, void **v, size_t *n)
{
	struct store_tmpl_info *p = NULL;
	int rc = store_tmpl_list(st, &p, n);
	*v = p;
	return rc;
}

static void admin_templates_free(void *v, size_t n)
{
	store_tmpl_list_free(v, n);
}

static json_t *admin_template_row(const void *elem)
{
	const struct store_tmpl_info *v = elem;
	return json_pack("{s:s, s:I, s:I, s:I, s:I}", "name", v->name, "current",
	                 (json_int_t)v->current, "versions", (json_int_t)v->nversions, "created",
	                 (json_int_t)v->created, "updated", (json_int_t)v->updated);
}

static const struct admin_listing admin_templates_listing = {
    .action = "template-list",
    .what = "templates",
    .key = "templates",
    .size = sizeof(struct store_tmpl_info),
    .load = admin_templates_load,
    .row = admin_template_row,
    .free = admin_templates_free,
};

/* GET /v1/templates */
static void admin_templates(struct api_req *r)
{
	admin_listing_reply(r, &admin_templates_listing);
}

/* GET /v1/templates/NAME: its versions; ?body=1[&version=N]: the body (octet-stream). */
static void admin_template_get(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	struct decode_template_get q;
	char err[DECODE_ERR_MAX];
	if (!admin_decoded(r, decode_template_get(api_query_arg, r, &q, err), err))
		return;
	char target[SECRETD_NAME_MAX + 8];
	service_template_target(target, sizeof(target), name);
	struct admin_who w;
	admin_who_init(r, &w);
	if (q.body) {
		uint8_t *body = NULL;
		size_t len = 0;
		uint64_t got = 0;
		int rc = store_tmpl_get_bytes(r->a->store, name, q.version, &body, &len, &got);
		if (rc < 0) {
			admin_read_fail(r, &w, "template-get", target, q.version, rc, target);
			return;
		}
		if (!admin_record(r, &w, "template-get", target, got)) {
			store_value_free(body);
			return;
		}
		api_reply_secret(r, body, len, got);
		return;
	}
	struct store_version_info *v = NULL;
	size_t n = 0;
	int rc = store_tmpl_versions(r->a->store, name, &v, &n);
	if (rc < 0) {
		admin_read_fail(r, &w, "template-versions", target, 0, rc, target);
		return;
	}
	if (!admin_record(r, &w, "template-versions", target, 0)) {
		store_versions_free(v, n);
		return;
	}
	json_t *a = json_array();
	uint64_t current = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].current)
			current = v[i].version;
		json_array_append_new(
		    a, json_pack("{s:I, s:I, s:I, s:b}", "version", (json_int_t)v[i].version,
		                 "size", (json_int_t)v[i].size, "created", (json_int_t)v[i].created,
		                 "current", v[i].current));
	}
	store_versions_free(v, n);
	api_reply_json(r, 200,
	               json_pack("{s:s, s:I, s:o}", "name", name, "current", (json_int_t)current,
	                         "versions", a));
}

/* DELETE /v1/templates/NAME: the template, its versions and its grants. */
static void admin_template_delete(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	struct admin_who w;
	admin_who_init(r, &w);
	struct service_result res;
	int rc = service_template_delete(admin_sv(r), &w.a, name, &res);
	if (rc == -ENOENT) {
		char buf[512];
		api_reply_error(r, 404, "%s: no such template%s", name,
		                admin_what(buf, sizeof(buf), "", res.audit_err));
		return;
	}
	if (rc < 0) {
		admin_fail(r, rc, name, &res);
		return;
	}
	api_reply_json(r, 200,
	               admin_applied(json_pack("{s:s, s:b}", "name", name, "deleted", 1), &res));
}

/* POST /v1/daemon/upgrade: 202 {"upgrading": true, "pid": this daemon process}, then (once sent)
 * the keeper re-execs its binary and starts a new daemon process that adopts every connection;
 * 409 without a keeper (--no-keeper). */
static void admin_upgrade(struct api_req *r)
{
	if (!r->a->cfg.upgrade) {
		api_reply_error(
		    r, 409,
		    "no keeper: this daemon runs with --no-keeper; restart it to run a new "
		    "binary (its containers are re-mounted at start)");
		return;
	}
	struct admin_who w;
	admin_who_init(r, &w);
	if (!admin_record(r, &w, "daemon-upgrade", NULL, 0))
		return; /* no record, no upgrade */
	r->then_upgrade = true;
	api_reply_json(r, 202,
	               json_pack("{s:b, s:I}", "upgrading", 1, "pid", (json_int_t)getpid()));
}

/* The node's side of cluster mode (like /metrics: counters, no secret, not audited), the
 * election (this node's name, the leader as last seen) and the lag behind etcd. */
static void admin_cluster(struct api_req *r)
{
	cluster *cl = service_cluster(r->a->cfg.service);
	if (!cl) {
		api_reply_json(r, 200, json_pack("{s:b}", "cluster", 0));
		return;
	}
	struct cluster_stats cs;
	cluster_get_stats(cl, &cs);
	json_t *o = json_pack(
	    "{s:b, s:s, s:s, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:s}", "cluster", 1, "name",
	    cluster_name(cl), "etcd", cluster_endpoints(cl), "revision", (json_int_t)cs.revision,
	    "watching", cs.watching, "applied", (json_int_t)cs.applied, "rejected",
	    (json_int_t)cs.rejected, "write_failures", (json_int_t)cs.write_failures, "conflicts",
	    (json_int_t)cs.conflicts, "watch_errors", (json_int_t)cs.watch_errors, "last_error",
	    cluster_last_error(cl));
	/* the election and the lag: etcd's revision as last seen minus the one applied */
	uint64_t lag = cs.etcd_revision > cs.revision ? cs.etcd_revision - cs.revision : 0;
	json_t *e =
	    json_pack("{s:s, s:s, s:b, s:b, s:I, s:I, s:s, s:I, s:s}", "node", cs.node, "leader",
	              cs.leader_name, "is_leader", cluster_is_leader(cl), "elected", cs.elected,
	              "etcd_revision", (json_int_t)cs.etcd_revision, "lag", (json_int_t)lag,
	              "election_error", cs.election_error, "watch_stalls",
	              (json_int_t)cs.watch_stalls, "watch_endpoint", cs.watch_endpoint);
	/* etcd's members as the last election round read them; ids in hex, as etcdctl shows them */
	json_t *ms = json_array();
	for (size_t i = 0; ms && i < cs.nmembers; i++) {
		char id[17];
		snprintf(id, sizeof(id), "%016llx", (unsigned long long)cs.members[i].id);
		json_t *m = json_pack("{s:s, s:s, s:s, s:b}", "name", cs.members[i].name, "id", id,
		                      "client_url", cs.members[i].client_url, "raft_leader",
		                      cs.etcd_leader && cs.members[i].id == cs.etcd_leader);
		if (!m || json_array_append_new(ms, m) < 0) {
			json_decref(ms);
			ms = NULL;
		}
	}
	if (e && ms &&
	    (json_object_set_new(e, "members", ms) < 0 ||
	     json_object_set_new(e, "members_total", json_integer((json_int_t)cs.members_total)) <
	         0 ||
	     json_object_set_new(e, "members_error", json_string(cs.members_error)) < 0)) {
		json_decref(e);
		e = NULL;
	} else if (!e || !ms) {
		json_decref(ms);
		json_decref(e);
		e = NULL;
	}
	if (!e || (o && json_object_update(o, e) < 0)) {
		json_decref(o);
		o = NULL;
	}
	json_decref(e);
	api_reply_json(r, 200, o);
}

/* admin.sock's routes, in the order they are matched (the list at the top of this file). */
static const struct api_route admin_routes[] = {
    API_ROUTE("GET", "/healthz", api_health_admin),
    API_ROUTE("GET", "/metrics", admin_metrics),
    API_ROUTE("GET", "/v1/secrets", admin_list),
    API_PREFIX_VALUE("PUT", "/v1/secrets/", admin_put),
    API_PREFIX("GET", "/v1/secrets/", admin_versions),
    API_PREFIX("DELETE", "/v1/secrets/", admin_delete),
    API_PREFIX("GET", "/v1/values/", admin_value),
    API_PREFIX("POST", "/v1/labels/", admin_label),
    API_ROUTE("POST", "/v1/keys/rotate", admin_key_rotate),
    API_ROUTE("GET", "/v1/keys", admin_keys),
    API_ROUTE("GET", "/v1/cluster", admin_cluster),
    API_ROUTE("GET", "/v1/grants", admin_grants),
    API_ROUTE("POST", "/v1/grants", admin_grant_add),
    API_ROUTE("POST", "/v1/grants/revoke", admin_grant_remove),
    API_PREFIX("POST", "/v1/rollback/", admin_rollback),
    API_PREFIX("POST", "/v1/rotate/", admin_rotate),
    API_ROUTE("GET", "/v1/schedules", admin_schedules),
    API_ROUTE("GET", "/v1/audit", admin_audit_list),
    API_ROUTE("POST", "/v1/audit/verify", admin_audit_verify),
    API_ROUTE("GET", "/v1/containers", admin_containers),
    API_ROUTE("POST", "/v1/containers", admin_attach),
    API_PREFIX("DELETE", "/v1/containers/", admin_detach),
    API_ROUTE("GET", "/v1/templates", admin_templates),
    API_PREFIX_VALUE("PUT", "/v1/templates/", admin_template_put),
    API_PREFIX("GET", "/v1/templates/", admin_template_get),
    API_PREFIX("DELETE", "/v1/templates/", admin_template_delete),
    API_ROUTE("POST", "/v1/daemon/upgrade", admin_upgrade),
};

const struct api_routes api_admin_routes = {
    .socket = API_SOCKET_ADMIN,
    .v = admin_routes,
    .n = sizeof(admin_routes) / sizeof(admin_routes[0]),
};
