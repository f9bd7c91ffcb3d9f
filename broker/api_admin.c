/* Admin routes (admin.sock, root only):
 *   GET    /healthz                         {"status":"ok"}
 *   GET    /metrics                         Prometheus text
 *   GET    /v1/secrets                      {"secrets":[{name,current,versions,created,updated}]}
 *   PUT    /v1/secrets/NAME                 body = value (binary) -> 201 {name,version}
 *   GET    /v1/secrets/NAME                 {name,current,versions:[{version,size,kek,created,current}]}
 *   DELETE /v1/secrets/NAME                 {name,deleted:true}
 *   GET    /v1/values/NAME[?version=N]      the value (application/octet-stream)
 *   POST   /v1/keys/rotate                  {kek_id,rewrapped}
 *   GET    /v1/grants                       {"grants":[...]}
 *   POST   /v1/grants                       {secret,selector,path?,mode?,uid?,gid?,previous?,replace?}
 *   POST   /v1/grants/revoke                {secret,selector}
 *   GET    /v1/containers                   {"containers":[...]}
 *   POST   /v1/containers                   attach (OCI hook, createRuntime)
 *   DELETE /v1/containers/ID                detach (OCI hook, poststop)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/api_internal.h"
#include "broker/policy.h"
#include "common/limits.h"
#include "common/names.h"

static bool admin_is(struct api_req *r, const char *method, const char *path)
{
	return strcmp(r->method, method) == 0 && strcmp(r->url, path) == 0;
}

/* Matches "METHOD PREFIX<rest>" and returns rest (non-empty) or NULL. */
static const char *admin_tail(struct api_req *r, const char *method, const char *prefix)
{
	size_t n = strlen(prefix);
	if (strcmp(r->method, method) != 0 || strncmp(r->url, prefix, n) != 0 || !r->url[n])
		return NULL;
	return r->url + n;
}

static bool admin_name_ok(struct api_req *r, const char *name)
{
	const char *why = NULL;
	if (names_check(name, strlen(name), &why) == 0)
		return true;
	api_reply_error(r, 400, "invalid secret name: %s", why);
	return false;
}

static void admin_refresh(struct api_req *r)
{
	/* The store changed: every mount's view follows before we answer. A failure here does not
	 * undo the stored change; the daemon logs nothing secret, mounts retry on next change. */
	(void)mounts_refresh(r->a->mounts);
}

static void admin_list(struct api_req *r)
{
	struct store_secret_info *v = NULL;
	size_t n = 0;
	int rc = store_list(r->a->store, &v, &n);
	if (rc < 0) {
		api_reply_errno(r, rc, "list");
		return;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:I, s:I}", "name", v[i].name,
						   "current", (json_int_t)v[i].current, "versions",
						   (json_int_t)v[i].nversions, "created",
						   (json_int_t)v[i].created, "updated",
						   (json_int_t)v[i].updated));
	store_list_free(v, n);
	api_reply_json(r, 200, json_pack("{s:o}", "secrets", a));
}

static void admin_put(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	uint64_t version = 0;
	int rc = store_put(r->a->store, name, r->body ? r->body : (const uint8_t *)"", r->len,
			   &version);
	if (rc < 0) {
		api_reply_errno(r, rc, name);
		return;
	}
	r->a->met->puts++;
	admin_refresh(r);
	api_reply_json(r, 201, json_pack("{s:s, s:I}", "name", name, "version", (json_int_t)version));
}

static void admin_versions(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	struct store_version_info *v = NULL;
	size_t n = 0;
	int rc = store_versions(r->a->store, name, &v, &n);
	if (rc < 0) {
		api_reply_errno(r, rc, name);
		return;
	}
	json_t *a = json_array();
	uint64_t current = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].current)
			current = v[i].version;
		json_array_append_new(a, json_pack("{s:I, s:I, s:I, s:I, s:b}", "version",
						   (json_int_t)v[i].version, "size",
						   (json_int_t)v[i].size, "kek",
						   (json_int_t)v[i].kek_id, "created",
						   (json_int_t)v[i].created, "current", v[i].current));
	}
	store_versions_free(v, n);
	api_reply_json(r, 200,
		       json_pack("{s:s, s:I, s:o}", "name", name, "current", (json_int_t)current,
				 "versions", a));
}

static void admin_delete(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	int rc = store_delete(r->a->store, name);
	if (rc < 0) {
		api_reply_errno(r, rc, name);
		return;
	}
	admin_refresh(r);
	api_reply_json(r, 200, json_pack("{s:s, s:b}", "name", name, "deleted", 1));
}

static void admin_value(struct api_req *r, const char *name)
{
	if (!admin_name_ok(r, name))
		return;
	uint64_t want = 0;
	const char *v = api_query(r, "version");
	if (v) {
		char *end;
		unsigned long long x = strtoull(v, &end, 10);
		if (!*v || *end || x == 0) {
			api_reply_error(r, 400, "version must be a positive integer");
			return;
		}
		want = x;
	}
	uint8_t *val = NULL;
	size_t len = 0;
	uint64_t got = 0;
	int rc = store_get(r->a->store, name, want, &val, &len, &got);
	if (rc < 0) {
		api_reply_errno(r, rc, name);
		return;
	}
	api_reply_secret(r, val, len, got);
}

static void admin_key_rotate(struct api_req *r)
{
	uint64_t kek = 0, n = 0;
	int rc = store_key_rotate(r->a->store, &kek, &n);
	if (rc < 0) {
		api_reply_errno(r, rc, "key rotation");
		return;
	}
	api_reply_json(r, 200, json_pack("{s:I, s:I}", "kek_id", (json_int_t)kek, "rewrapped",
					 (json_int_t)n));
}

static json_t *admin_grant_json(const struct store_grant *g)
{
	char mode[8];
	snprintf(mode, sizeof(mode), "%04o", (unsigned)g->mode);
	return json_pack("{s:I, s:s, s:s, s:s?, s:s, s:I, s:I, s:b, s:I}", "id", (json_int_t)g->id,
			 "secret", g->secret, "selector", g->selector, "path", g->path, "mode",
			 mode, "uid", (json_int_t)g->uid, "gid", (json_int_t)g->gid,
			 "previous", (g->flags & STORE_GRANT_PREVIOUS) != 0, "created",
			 (json_int_t)g->created);
}

static void admin_grants(struct api_req *r)
{
	struct store_grant *g = NULL;
	size_t n = 0;
	int rc = store_grants(r->a->store, &g, &n);
	if (rc < 0) {
		api_reply_errno(r, rc, "grants");
		return;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(a, admin_grant_json(&g[i]));
	}
	store_grants_free(g, n);
	api_reply_json(r, 200, json_pack("{s:o}", "grants", a));
}

/* Reads an optional integer field; false (after replying 400) when it has the wrong type. */
static bool admin_opt_int(struct api_req *r, json_t *o, const char *key, int64_t lo, int64_t hi,
			  int64_t *out)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		api_reply_error(r, 400, "%s must be an integer from %lld to %lld", key,
				(long long)lo, (long long)hi);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

static void admin_grant_add(struct api_req *r)
{
	json_t *o = api_body_json(r);
	if (!o)
		return;
	const char *secret = json_string_value(json_object_get(o, "secret"));
	const char *sel = json_string_value(json_object_get(o, "selector"));
	json_t *jp = json_object_get(o, "path");
	const char *path = json_string_value(jp);
	const char *why = NULL;
	int64_t mode = 0400, uid = -1, gid = -1;
	if (!secret || names_check_pattern(secret, strlen(secret), &why) < 0) {
		api_reply_error(r, 400, "invalid secret name or pattern: %s",
				why ? why : "missing \"secret\"");
	} else if (!sel || policy_selector_check(sel, strlen(sel), &why) < 0) {
		api_reply_error(r, 400, "invalid selector: %s", why ? why : "missing \"selector\"");
	} else if (jp && !json_is_null(jp) &&
		   (!path || names_check(path, strlen(path), &why) < 0)) {
		api_reply_error(r, 400, "invalid path: %s", why ? why : "must be a string");
	} else if (admin_opt_int(r, o, "mode", 0, 0777, &mode) &&
		   admin_opt_int(r, o, "uid", -1, 4294967294LL, &uid) &&
		   admin_opt_int(r, o, "gid", -1, 4294967294LL, &gid)) {
		struct store_grant g = {.secret = (char *)secret,
					.selector = (char *)sel,
					.path = (char *)path,
					.mode = (uint32_t)mode,
					.uid = uid,
					.gid = gid,
					.flags = json_is_true(json_object_get(o, "previous"))
							 ? STORE_GRANT_PREVIOUS
							 : 0};
		bool replace = json_is_true(json_object_get(o, "replace"));
		int rc = store_grant_add(r->a->store, &g, replace);
		if (rc == -EEXIST)
			api_reply_error(r, 409, "%s is already granted to %s (use replace)", secret,
					sel);
		else if (rc < 0)
			api_reply_errno(r, rc, "grant");
		else {
			admin_refresh(r);
			api_reply_json(r, 201, json_pack("{s:s, s:s}", "secret", secret,
							 "selector", sel));
		}
	}
	json_decref(o);
}

static void admin_grant_remove(struct api_req *r)
{
	json_t *o = api_body_json(r);
	if (!o)
		return;
	const char *secret = json_string_value(json_object_get(o, "secret"));
	const char *sel = json_string_value(json_object_get(o, "selector"));
	if (!secret || !sel) {
		api_reply_error(r, 400, "\"secret\" and \"selector\" are required");
	} else {
		int rc = store_grant_remove(r->a->store, secret, sel);
		if (rc == -ENOENT)
			api_reply_error(r, 404, "no grant of %s to %s", secret, sel);
		else if (rc < 0)
			api_reply_errno(r, rc, "revoke");
		else {
			admin_refresh(r);
			api_reply_json(r, 200, json_pack("{s:s, s:s, s:b}", "secret", secret,
							 "selector", sel, "revoked", 1));
		}
	}
	json_decref(o);
}

static void admin_attach(struct api_req *r)
{
	json_t *o = api_body_json(r);
	if (!o)
		return;
	struct policy_label labels[POLICY_LABELS_MAX];
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
			labels[nl].key = key;
			labels[nl].value = json_string_value(val);
			nl++;
		}
	int64_t pid = 0, uid = -1, gid = -1;
	struct mounts_attach_req a = {
		.id = json_string_value(json_object_get(o, "id")),
		.root = json_string_value(json_object_get(o, "root")),
		.target = json_string_value(json_object_get(o, "mount")),
		.name = json_string_value(json_object_get(o, "name")),
		.runtime = json_string_value(json_object_get(o, "runtime")),
		.labels = labels,
		.nlabels = nl,
		.wants = json_is_true(json_object_get(o, "wants")),
	};
	if (bad) {
		api_reply_error(r, 400, "labels must be an object of at most %d strings",
				POLICY_LABELS_MAX);
	} else if (!a.id) {
		api_reply_error(r, 400, "\"id\" is required");
	} else if (admin_opt_int(r, o, "pid", 1, 4194304, &pid) &&
		   admin_opt_int(r, o, "uid", -1, 4294967294LL, &uid) &&
		   admin_opt_int(r, o, "gid", -1, 4294967294LL, &gid)) {
		a.pid = (pid_t)pid;
		a.uid = uid;
		a.gid = gid;
		bool mounted = false;
		size_t files = 0;
		int rc = a.pid > 0 ? mounts_attach(r->a->mounts, &a, &mounted, &files) : -EINVAL;
		if (rc == -EPERM)
			api_reply_error(r, 403,
					"container %s has no cgroup of its own: its processes "
					"cannot be told apart from the host's",
					a.id);
		else if (rc == -EINVAL)
			api_reply_error(r, 400, "invalid attach request (id, pid, root or mount)");
		else if (rc < 0)
			api_reply_errno(r, rc, a.id);
		else if (mounted)
			api_reply_json(r, 201, json_pack("{s:s, s:b, s:I, s:s}", "id", a.id,
							 "mounted", 1, "files", (json_int_t)files,
							 "mount",
							 a.target ? a.target : SECRETD_MOUNT_DEFAULT));
		else
			api_reply_json(r, 200, json_pack("{s:s, s:b}", "id", a.id, "mounted", 0));
	}
	json_decref(o);
}

void api_admin_handle(struct api_req *r)
{
	const char *name;
	if (admin_is(r, "GET", "/healthz")) {
		api_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
	} else if (admin_is(r, "GET", "/metrics")) {
		struct mounts_stats ms;
		mounts_get_stats(r->a->mounts, &ms);
		struct metrics_gauges g = {.containers = ms.containers,
					   .mounted = ms.mounted,
					   .files = ms.files,
					   .fuse_opens = ms.opens,
					   .fuse_denied = ms.opens_denied};
		(void)store_count(r->a->store, &g.secrets);
		char *text = NULL;
		if (metrics_render(r->a->met, &g, &text) < 0) {
			api_reply_error(r, 500, "out of memory");
			return;
		}
		api_reply_text(r, 200, "text/plain; version=0.0.4", text);
		free(text);
	} else if (admin_is(r, "GET", "/v1/secrets")) {
		admin_list(r);
	} else if ((name = admin_tail(r, "PUT", "/v1/secrets/"))) {
		admin_put(r, name);
	} else if ((name = admin_tail(r, "GET", "/v1/secrets/"))) {
		admin_versions(r, name);
	} else if ((name = admin_tail(r, "DELETE", "/v1/secrets/"))) {
		admin_delete(r, name);
	} else if ((name = admin_tail(r, "GET", "/v1/values/"))) {
		admin_value(r, name);
	} else if (admin_is(r, "POST", "/v1/keys/rotate")) {
		admin_key_rotate(r);
	} else if (admin_is(r, "GET", "/v1/grants")) {
		admin_grants(r);
	} else if (admin_is(r, "POST", "/v1/grants")) {
		admin_grant_add(r);
	} else if (admin_is(r, "POST", "/v1/grants/revoke")) {
		admin_grant_remove(r);
	} else if (admin_is(r, "GET", "/v1/containers")) {
		api_reply_json(r, 200, json_pack("{s:o}", "containers",
						 mounts_list_json(r->a->mounts)));
	} else if (admin_is(r, "POST", "/v1/containers")) {
		admin_attach(r);
	} else if ((name = admin_tail(r, "DELETE", "/v1/containers/"))) {
		int rc = mounts_detach(r->a->mounts, name);
		if (rc < 0)
			api_reply_errno(r, rc, "container");
		else
			api_reply_json(r, 200, json_pack("{s:s, s:b}", "id", name, "detached", 1));
	} else {
		api_reply_error(r, 404, "no route for %s %s", r->method, r->url);
	}
}
