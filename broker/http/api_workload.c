/* Workload routes (workload.sock, any local process; identity from the kernel):
 *   GET  /healthz                  {"status":"ok"}, or 503 when the store or audit fails
 *   GET  /v1/self                  the identity as the broker sees it
 *   GET  /v1/self/secrets          {"secrets":[names granted to me]} (exactly this shape:
 *                                  static clients in images parse it, secretd-wl too)
 *   GET  /v1/self/templates        {"templates":[{name,path}: rendered files my mount shows]}
 *   GET  /v1/self/secrets/NAME     the value (application/octet-stream); 404 alike for a name
 *                                  that does not exist and one that is not granted
 *   GET  /v1/self/templates/NAME   template NAME rendered as my mount shows it (octet-stream);
 *                                  404 alike for a missing template and one not shown to me
 *                                  (not granted, or an input not granted or missing)
 *   POST /v1/self/mount            {"path":"/run/secrets"} -> 201 {mount,files}
 * Every call but healthz is audited (actor: the container's name or id, else "uid:N") before it
 * is answered; a call whose record cannot be written is answered 500.
 */
#include <errno.h>
#include <string.h>

#include "broker/http/api_internal.h"
#include "broker/http/decode.h"
#include "broker/http/routes.h"
#include "broker/engine/audit.h"
#include "broker/privsep/msg.h"
#include "broker/store/store.h"
#include "common/limits.h"
#include "common/names.h"
#include "common/secret.h"

/* The caller's executable for its audit record ("" when unknown). With a procwatch it is read
 * once per process and kept until that process execs or exits (the proc connector says so;
 * docs/DESIGN.md, "Process identity and exe"); procwatch_sync first applies every exec and exit
 * reported before this request could be sent. workload_gate has just checked that the
 * connecting process is alive, so the pid is still its own. Without one (or when it cannot say),
 * /proc/PID/exe is read into buf. */
static const char *workload_exe(struct api_req *r, char *buf, size_t len)
{
	procwatch *pw = r->a->cfg.procwatch;
	pid_t pid = r->pc->who.pid;
	if (pw && procwatch_sync(pw) == 0 && procwatch_track(pw, pid) != 0) {
		const char *e = procwatch_exe(pw, pid);
		if (e)
			return e;
	}
	if (ident_exe(pid, buf, len) < 0)
		buf[0] = '\0';
	return buf;
}

/* Writes the audit record of this workload call; false (after replying 500) when it cannot. */
static bool workload_audit(struct api_req *r, const struct policy_identity *who, const char *action,
                           const char *target, uint64_t version, const char *result)
{
	char actor[160], exe[256];
	audit_actor(actor, sizeof(actor), who->container, who->id, who->name, who->uid);
	const char *x = workload_exe(r, exe, sizeof(exe));
	struct store_audit a = {.actor = actor,
	                        .pid = r->pc->who.pid,
	                        .exe = x,
	                        .action = action,
	                        .secret = target,
	                        .version = version,
	                        .result = result};
	/* Reads change nothing: their records are batched (written within AUDIT_FLUSH_MS, like FUSE
	 * opens) instead of costing an fdatasync per request. */
	int rc = r->a->cfg.reads_audit ? audit_add(r->a->cfg.reads_audit, &a)
	                               : store_audit_append(r->a->store, &a, 1);
	if (rc == 0)
		return true;
	api_reply_error(r, 500, "cannot write the audit record: %s", strerror(-rc));
	return false;
}

/* Who is asking, as the policy sees it (id is filled and returned). */
static const struct policy_identity *workload_who(struct api_req *r, struct policy_identity *id)
{
	mounts_identify(r->a->mounts, &r->pc->who, id);
	return id;
}

static void workload_self(struct api_req *r, const struct policy_identity *who)
{
	json_t *labels = json_object();
	for (size_t i = 0; i < who->nlabels; i++)
		json_object_set_new(labels, who->labels[i].key, json_string(who->labels[i].value));
	api_reply_json(r, 200,
	               json_pack("{s:b, s:s, s:s, s:s, s:o, s:s, s:i, s:I, s:I}", "container",
	                         who->container, "runtime", who->runtime, "id", who->id, "name",
	                         who->name, "labels", labels, "cgroup", who->cgroup, "pid",
	                         (int)r->pc->who.pid, "uid", (json_int_t)who->uid, "gid",
	                         (json_int_t)who->gid));
}

/* GET /v1/self/secrets/NAME */
static void workload_read(struct api_req *r, const char *name)
{
	struct policy_identity id;
	const struct policy_identity *who = workload_who(r, &id);
	/* One answer for "no such secret" and "not yours": existence is not disclosed. */
	bool valid = names_check(name, strlen(name), NULL) == 0;
	if (!valid || !mounts_allows(r->a->mounts, who, name)) {
		if (workload_audit(r, who, "read", valid ? name : NULL, 0, "denied"))
			api_reply_error(r, 404, "no such secret");
		return;
	}
	uint8_t *val = NULL;
	size_t len = 0;
	uint64_t version = 0;
	/* The value a mount already holds decrypted (the current version as of the last refresh,
	 * which every change is followed by), else decrypted from the store. */
	secret *cached = NULL;
	uint64_t pin = 0;
	bool pinned = false;
	int rc = mounts_value_cached(r->a->mounts, name, &cached, &version);
	if (rc == 0) {
		/* the secret's bare-pointer form: store_value_free drops this reference */
		val = secret_data(cached);
		len = secret_len(cached);
		r->a->met->workload_cached_reads++;
	} else if ((pinned = service_write_pinned(r->a->cfg.service, name, &pin))) {
		/* cluster mode: a change etcd has not taken yet is not served: the version
		 * before it (when kept: else refused, retried by the caller) */
		rc = pin == 0            ? -ENOENT
		     : pin == UINT64_MAX ? -EAGAIN
		                         : store_get(r->a->store, name, pin, &val, &len, &version);
		if (rc == -ENOENT && pin)
			rc = -EAGAIN;
	} else {
		rc = store_get(r->a->store, name, 0, &val, &len, &version);
	}
	if (!workload_audit(r, who, "read", name, version,
	                    rc == 0         ? "ok"
	                    : rc == -ENOENT ? "not found"
	                                    : "error")) {
		store_value_free(val);
		return;
	}
	if (rc == -ENOENT)
		api_reply_error(r, 404, "no such secret");
	else if (rc == -EAGAIN && pinned)
		api_reply_error(r, 503,
		                "a change of it is being written to the cluster; retry shortly");
	else if (rc < 0)
		api_reply_errno(r, rc, "read");
	else
		api_reply_secret(r, val, len, version);
}

/* GET /v1/self/templates/NAME: audited as a read of "tmpl:NAME", like the mount's opens. */
static void workload_template_read(struct api_req *r, const char *name)
{
	struct policy_identity id;
	const struct policy_identity *who = workload_who(r, &id);
	bool valid = names_check(name, strlen(name), NULL) == 0;
	char target[SECRETD_NAME_MAX + 8];
	snprintf(target, sizeof(target), "%s%s", STORE_GRANT_TMPL_PREFIX, valid ? name : "");
	secret *out = NULL;
	uint64_t version = 0;
	int rc = valid ? mounts_template_read(r->a->mounts, who, name, &out, &version) : -ENOENT;
	if (!workload_audit(r, who, "read", valid ? target : NULL, version,
	                    rc == 0         ? "ok"
	                    : rc == -ENOENT ? "denied"
	                                    : "error")) {
		secret_unref(out);
		return;
	}
	if (rc == -ENOENT)
		api_reply_error(r, 404, "no such template");
	else if (rc < 0)
		api_reply_errno(r, rc, "read");
	else
		/* the secret's bare-pointer form: api_reply_secret frees it (store_value_free) */
		api_reply_secret(r, secret_data(out), secret_len(out), version);
}

/* POST /v1/self/mount, its body decoded: path, or NULL for the default */
static void workload_mount_path(struct api_req *r, const char *path)
{
	struct policy_identity id;
	const struct policy_identity *who = workload_who(r, &id);
	size_t files = 0;
	int rc = mounts_mount_self(r->a->mounts, &r->pc->who, path, &files);
	const char *target = path ? path : SECRETD_MOUNT_DEFAULT;
	if (!workload_audit(r, who, "mount", NULL, 0, rc == 0 ? "ok" : "error"))
		return;
	if (rc == -EPERM)
		api_reply_error(r, 403, "only a process inside a container can ask for a mount");
	else if (rc == -EEXIST)
		api_reply_error(r, 409, "this container already has its secrets mounted");
	else if (rc == -EINVAL)
		api_reply_error(r, 400, "invalid mount path (absolute, plain segments only)");
	else if (rc < 0)
		api_reply_errno(r, rc, "mount");
	else
		api_reply_json(
		    r, 201, json_pack("{s:s, s:I}", "mount", target, "files", (json_int_t)files));
}

/* POST /v1/self/mount */
static void workload_mount(struct api_req *r)
{
	struct decode_mount d;
	char err[DECODE_ERR_MAX];
	if (decode_mount(r->body, r->len, &d, err) < 0) {
		api_reply_error(r, 400, "%s", err);
		return;
	}
	workload_mount_path(r, d.path);
	decode_mount_clear(&d);
}

/* Before any route: the connector must still be the live process that connected (a socket left
 * to a child after the connector exited, or a pid reused since, is refused). */
static bool workload_gate(struct api_req *r)
{
	if (r->alive_checked || ident_alive(&r->pc->who) == 0)
		return true;
	r->a->met->workload_refused++;
	api_reply_error(r, 403, "the process that opened this connection has exited");
	return false;
}

/* GET /v1/self */
static void workload_whoami(struct api_req *r)
{
	struct policy_identity id;
	const struct policy_identity *who = workload_who(r, &id);
	if (workload_audit(r, who, "whoami", NULL, 0, "ok"))
		workload_self(r, who);
}

/* GET /v1/self/secrets */
static void workload_list(struct api_req *r)
{
	struct policy_identity id;
	const struct policy_identity *who = workload_who(r, &id);
	if (workload_audit(r, who, "list", NULL, 0, "ok"))
		api_reply_json(
		    r, 200, json_pack("{s:o}", "secrets", mounts_granted_json(r->a->mounts, who)));
}

/* GET /v1/self/templates: the rendered files my mount shows (audited as a list). */
static void workload_templates(struct api_req *r)
{
	struct policy_identity id;
	const struct policy_identity *who = workload_who(r, &id);
	json_t *t = mounts_granted_templates_json(r->a->mounts, who);
	if (!workload_audit(r, who, "template-list", NULL, 0, t ? "ok" : "error")) {
		json_decref(t);
		return;
	}
	if (!t)
		api_reply_error(r, 500, "the rendered files cannot be listed");
	else
		api_reply_json(r, 200, json_pack("{s:o}", "templates", t));
}

static const struct api_route workload_routes[] = {
    API_ROUTE("GET", "/healthz", api_health_workload),
    API_ROUTE("GET", "/v1/self", workload_whoami),
    API_ROUTE("GET", "/v1/self/secrets", workload_list),
    API_PREFIX("GET", "/v1/self/secrets/", workload_read),
    API_ROUTE("GET", "/v1/self/templates", workload_templates),
    API_PREFIX("GET", "/v1/self/templates/", workload_template_read),
    API_ROUTE("POST", "/v1/self/mount", workload_mount),
};

const struct api_routes api_workload_routes = {
    .socket = API_SOCKET_WORKLOAD,
    .gate = workload_gate,
    .v = workload_routes,
    .n = sizeof(workload_routes) / sizeof(workload_routes[0]),
};

/* ---- the daemon process's side of the split (broker/http/relay.c) ---- */

void api_workload_op(struct api_req *r, unsigned op, const char *arg)
{
	if (!workload_gate(r))
		return;
	switch (op) {
	case PRIVSEP_WHOAMI:
		workload_whoami(r);
		break;
	case PRIVSEP_LIST:
		workload_list(r);
		break;
	case PRIVSEP_READ:
		workload_read(r, arg);
		break;
	case PRIVSEP_TEMPLATES:
		workload_templates(r);
		break;
	case PRIVSEP_TEMPLATE_READ:
		workload_template_read(r, arg);
		break;
	case PRIVSEP_MOUNT:
		workload_mount_path(r, *arg ? arg : NULL);
		break;
	case PRIVSEP_HEALTH:
		api_health_workload(r);
		break;
	default:
		api_reply_error(r, 400, "unknown operation");
	}
}

/* ---- the server process's side: the same routes, each relayed as one typed request ---- */

/* The name of a READ / TEMPLATE_READ as the message carries it: a name over the limit or with
 * a control byte goes as "" (the daemon refuses it as invalid, as it would the name itself). */
static void relay_name(struct api_req *r, unsigned op, const char *name)
{
	size_t n = strlen(name);
	bool ok = n <= PRIVSEP_NAME_MAX;
	for (size_t i = 0; ok && i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			ok = false;
	relay_forward(r, op, ok ? name : "", ok ? n : 0);
}

static void relay_health(struct api_req *r)
{
	relay_forward(r, PRIVSEP_HEALTH, "", 0);
}

static void relay_whoami(struct api_req *r)
{
	relay_forward(r, PRIVSEP_WHOAMI, "", 0);
}

static void relay_list(struct api_req *r)
{
	relay_forward(r, PRIVSEP_LIST, "", 0);
}

static void relay_read(struct api_req *r, const char *name)
{
	relay_name(r, PRIVSEP_READ, name);
}

static void relay_templates(struct api_req *r)
{
	relay_forward(r, PRIVSEP_TEMPLATES, "", 0);
}

static void relay_template_read(struct api_req *r, const char *name)
{
	relay_name(r, PRIVSEP_TEMPLATE_READ, name);
}

/* The body is parsed here (the daemon gets the path alone and checks it again); a path the
 * message cannot carry goes as one the daemon refuses as invalid (relative). */
static void relay_mount(struct api_req *r)
{
	struct decode_mount d;
	char err[DECODE_ERR_MAX];
	if (decode_mount(r->body, r->len, &d, err) < 0) {
		api_reply_error(r, 400, "%s", err);
		return;
	}
	const char *p = d.path ? d.path : "";
	size_t n = strlen(p);
	bool ok = n <= PRIVSEP_PATH_MAX;
	for (size_t i = 0; ok && i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			ok = false;
	if (!ok)
		p = "invalid";
	relay_forward(r, PRIVSEP_MOUNT, p, strlen(p));
	decode_mount_clear(&d);
}

static const struct api_route relay_routes[] = {
    API_ROUTE("GET", "/healthz", relay_health),
    API_ROUTE("GET", "/v1/self", relay_whoami),
    API_ROUTE("GET", "/v1/self/secrets", relay_list),
    API_PREFIX("GET", "/v1/self/secrets/", relay_read),
    API_ROUTE("GET", "/v1/self/templates", relay_templates),
    API_PREFIX("GET", "/v1/self/templates/", relay_template_read),
    API_ROUTE("POST", "/v1/self/mount", relay_mount),
};

const struct api_routes api_workload_relay_routes = {
    .socket = API_SOCKET_WORKLOAD,
    .v = relay_routes,
    .n = sizeof(relay_routes) / sizeof(relay_routes[0]),
};
