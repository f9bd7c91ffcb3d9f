/* service: the use cases that change the store (put, generate, delete, expire, rollback,
 * schedule, grant, revoke, attach, detach, key rotation, rekey). Each one does, in one place:
 * the store change (its audit record written in the change's own transaction), the refresh of
 * every container's view (mounts_refresh: a container whose view cannot be recomputed is failed
 * closed and retried by mounts), the metrics, and the audit record of a change that failed or
 * was undone. Nothing is dropped: what went wrong after the change was committed comes back in
 * a struct service_result for the caller to render, is counted in struct metrics and is
 * reported (rate-limited by the caller's logger) through service_config.report.
 * Runs on the event loop's thread. Functions return 0 or a negative errno (the change's own
 * error: nothing was stored). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/engine/metrics.h"
#include "broker/engine/mounts.h"
#include "broker/store/store.h"

typedef struct service service;
struct cluster; /* broker/cluster/cluster.h */

/* Who asks, as audit records name it. Strings are borrowed for the call. */
struct service_actor {
	const char *actor; /* "uid:N" (admin socket) or SERVICE_ACTOR_DAEMON */
	int64_t pid;       /* 0 when none */
	const char *exe;   /* "" when unknown */
	/* Cluster mode: the caller's request when it can wait for a write (the admin API; NULL:
	 * the write holds the loop's thread for its etcd calls). Then put,
	 * generate, delete, rollback, schedule, grant and revoke return -EINPROGRESS while etcd is
	 * asked (nothing answered yet); the waker set by service_set_waker is called with token
	 * when the caller is to call again with the same arguments, which continues the write
	 * (its local change, then -EINPROGRESS again while the txn runs) and finally returns its
	 * outcome. One write runs at a time, the others wait their turn in order; -EBUSY when
	 * SERVICE_WRITES_MAX wait already. */
	const void *token;
};
#define SERVICE_WRITES_MAX 64
#define SERVICE_ACTOR_DAEMON "secretd"

/* What happened beyond the change itself (all zero: nothing to tell). */
struct service_result {
	uint64_t version;    /* put, generate, rollback: the version made */
	int64_t expires;     /* put, generate: the expiry in force after it (0: none) */
	bool expiry_cleared; /* put, generate: an expiry was there and is gone */
	/* The change is stored but the views could not follow: refresh_err says why, unapplied is
	 * the number of mounted containers failed closed now (mounts retries until it applies). */
	int refresh_err;
	size_t unapplied;
	/* The audit record of a failed or undone change (or of an attach/detach) could not be
	 * written: audit_err says why. unrecorded: the change itself happened without its record
	 * (attach, detach); an attach is then undone (undone; false only if the undo failed too),
	 * a detach cannot be (the mount is gone). */
	int audit_err;
	bool unrecorded, undone;
	bool not_tried; /* generate: the generator failed, nothing was tried on the store */
	/* detach: the unmount inside the live container failed (-errno); it is detached anyway and
	 * its stale mount serves nothing (ENOTCONN) */
	int unmount_err;
};

enum service_event {
	SERVICE_REFRESH_FAILED, /* a change is stored, views not recomputed: err, unapplied */
	SERVICE_AUDIT_FAILED,   /* a failure's or an attach/detach's record was not written: err */
};
/* Called on the loop's thread; action and name (may be NULL) are valid during the call. The
 * daemon's top level logs it (rate-limited). */
typedef void (*service_report_cb)(void *ud, enum service_event ev, const char *action,
                                  const char *name, int err, size_t unapplied);

struct service_config {
	service_report_cb report; /* may be NULL */
	void *report_ud;
};

/* m may be NULL (no views to refresh: the offline rekey); met may be NULL (nothing counted).
 * None are owned; all must outlive the service. 0, -EINVAL or -ENOMEM. */
int service_new(service **out, store *s, mounts *m, struct metrics *met,
                const struct service_config *cfg);
void service_free(service *sv);

/* A new version of name with value (val, len): keep (> 0) versions to keep from now on;
 * new_expiry (> 0) a new expiry in unix seconds; else an expiry is cleared unless keep_expiry.
 * res->version, expires, expiry_cleared. Audited as action ("put" when NULL). */
struct service_put {
	const char *name;
	const uint8_t *val;
	size_t len;
	int64_t keep;
	int64_t new_expiry;
	bool keep_expiry;
	const char *action;
	const struct store_label_change *labels; /* NULL, or labels set with the put (audited) */
};
int service_put(service *sv, const struct service_actor *who, const struct service_put *p,
                struct service_result *res);

/* Changes a secret's labels (audited "label" with the change as its detail, in the change's
 * transaction). Labels select nothing and change no container's view: no refresh follows. out/n
 * (may be NULL) the labels after it (store_labels_free). Errors as store_labels_change. */
int service_labels(service *sv, const struct service_actor *who, const char *name,
                   const struct store_label_change *c, struct store_label **out, size_t *n,
                   struct service_result *res);

/* A generated value (length characters of cs) as a new version of name (action "rotate", or
 * "rotate+print" when val is not NULL: then *val is the value, crypt_alloc'd, the caller frees
 * it with store_value_free). An expiry is cleared unless keep_expiry. -EINVAL for a bad
 * length; the generator's error is not audited (nothing was attempted on the store). */
int service_generate(service *sv, const struct service_actor *who, const char *name,
                     enum store_charset cs, size_t length, bool keep_expiry, uint8_t **val,
                     struct service_result *res);

/* The scheduler's writes (scheduled rotation, next firing, expiry) take the firing's token
 * (service_actor.token; NULL: they hold the loop's thread for their etcd calls). In cluster
 * mode they then go through the write queue like the admin API's: -EINPROGRESS while etcd is
 * asked, the waker set by service_set_sched_waker called with token when the caller is to call
 * again with the same arguments, and finally the outcome. They wait their turn behind admin
 * writes but are not refused by SERVICE_WRITES_MAX (the scheduler has at most one in flight per
 * secret). After the outcome the caller calls service_write_forget(token) (a write whose local
 * change failed stays queued until then), and before reusing token for the next step. */
void service_set_sched_waker(service *sv, void (*wake)(void *ud, const void *token), void *ud);
/* A scheduled rotation's value (made by the scheduler, accepted by its exec command if any) as
 * a new version: the expiry and the schedule are kept; audited as the daemon's "rotate". */
int service_rotate_scheduled(service *sv, const void *token, const char *name, const uint8_t *val,
                             size_t len, struct service_result *res);
/* A scheduled rotation that did not get as far as the store (exec failed, timed out): its
 * record (the daemon's "rotate", result as given). 0 or the audit's -errno (also reported). */
int service_rotate_failed(service *sv, const char *name, const char *result);
/* Sets the next firing of name's schedule (before the rotation is tried: a failing one is
 * retried next period, not in a loop). Not audited (as before: the rotation is). In cluster
 * mode it is written to etcd first (-EHOSTUNREACH, -ESTALE: another node changed it; the
 * caller then does not rotate; when undoing the local change failed, that error instead). */
int service_schedule_next(service *sv, const void *token, const char *name, int64_t next);
/* Whether this node fires schedules and expiry now: always on a single node; in cluster mode
 * only while it is the elected leader (cluster_is_leader). */
bool service_fires(service *sv);

/* Deletes name and every version (action "delete"); -ENOENT when there is none. */
int service_delete(service *sv, const struct service_actor *who, const char *name,
                   struct service_result *res);
/* The daemon deletes an expired secret (action "expire"); -ENOENT when it is gone already
 * (not audited then: nothing expired). */
int service_expire(service *sv, const void *token, const char *name, struct service_result *res);

/* Version from's value as a new version (action "rollback"); -ENOENT when from is not kept. */
int service_rollback(service *sv, const struct service_actor *who, const char *name, uint64_t from,
                     struct service_result *res);

/* Sets (every > 0 seconds) or clears (every == 0) name's rotation schedule: length characters
 * of cs, exec (may be NULL) run with the value (actions "schedule", "unschedule"). -ENOENT when
 * name has no value. Views do not change: no refresh. */
int service_schedule(service *sv, const struct service_actor *who, const char *name, int64_t every,
                     uint32_t length, enum store_charset cs, const char *exec,
                     struct service_result *res);

/* Adds a grant (action "grant", its selector, path, mode, uid, gid as detail); -EEXIST when
 * that secret is granted to that selector already and not replace. */
int service_grant(service *sv, const struct service_actor *who, const struct store_grant *g,
                  bool replace, struct service_result *res);
/* Removes the grant of secret to selector (action "revoke"); -ENOENT when there is none. */
int service_revoke(service *sv, const struct service_actor *who, const char *secret,
                   const char *selector, struct service_result *res);

/* Registers (and mounts) a container: mounts_attach, then its record (action "attach"; a
 * failed attach is recorded too). When the record of a done attach cannot be written the
 * attach is undone (no record, no attach): it returns the audit's -errno with res->audit_err,
 * res->unrecorded and res->undone set. Other errors as mounts_attach (-EINVAL: pid <= 0). */
int service_attach(service *sv, const struct service_actor *who, const struct mounts_attach_req *r,
                   bool *mounted, size_t *files, struct service_result *res);
/* Unmounts and forgets a container (action "detach"); -ENOENT when unknown. A detach whose
 * record cannot be written stays done (the mount is gone): 0 with res->audit_err and
 * res->unrecorded set. */
int service_detach(service *sv, const struct service_actor *who, const char *id,
                   struct service_result *res);

/* At start: re-attaches the containers of the persisted registry (mounts_restore, see mounts.h;
 * cb hears of each) and records each outcome as the daemon's own record: action "restore"
 * (result "ok" when restored, else the error's name) or "restore-forget" (it exited meanwhile),
 * detail "id=ID name=NAME" and, when not restored, "why=...". A record that cannot be written
 * is counted and reported (SERVICE_AUDIT_FAILED); the restore stands (undoing it would strand
 * the container again). Returns mounts_restore's result. */
/* Restore's audit records (restore, restore-forget) are kept in memory, not written during the
 * restore: at start a predecessor that lingers (killed with a thread stuck in the kernel until
 * this process serves) may still hold the database's write lock, and a write per container,
 * each waiting out SQLite's busy timeout, would delay the serving that frees it. The caller
 * writes them once it serves (service_flush_deferred, one transaction). */
#define SERVICE_DEFERRED_MAX 65536 /* records kept; beyond, they are written at once */
/* Writes the deferred records in one transaction: 0 (*left 0), or the store's -errno with all
 * of them still kept (*left) for another try. */
int service_flush_deferred(service *sv, size_t *left);
/* Gives up on the deferred records (at stop, when they still cannot be written): each is
 * counted and reported as a lost record. Returns how many. */
size_t service_drop_deferred(service *sv);
int service_restore(service *sv, const struct mounts_restore_ops *ops, mounts_restore_cb cb,
                    void *cb_ud, struct mounts_restore_counts *out);

/* Starts a master-key rotation (action "key-rotate") or finds the unfinished one (*resumed).
 * Cluster mode (docs/cluster.md, "Key rotation across the cluster"): the new generation is a
 * write of etcd's keyring, waited for on the loop's thread (bounded by the etcd timeouts);
 * -ESTALE (conflict), -EHOSTUNREACH, -EPERM/-EACCES: nothing changed, recorded "cluster-undo";
 * -EALREADY: another node's rotation is not finished. */
int service_key_rotate_begin(service *sv, const struct service_actor *who, uint64_t *kek_id,
                             bool *resumed, struct service_result *res);
/* One batch (at most max data keys) of the unfinished key rotation; the last one records the
 * daemon's "key-rotate-done" in its own transaction. *done the keys re-wrapped now, *finished
 * when none is left. Cluster mode: each batch reaches etcd (one txn, waited for) before it
 * commits here, else it is rolled back (-ESTALE, -EHOSTUNREACH: retried); -EAGAIN while an
 * admin write is in flight (nothing done: try again shortly). */
int service_key_rotate_step(service *sv, size_t max, uint64_t *done, bool *finished);
/* Re-seals the key generations under a new key file or passphrase (daemon stopped; s opened
 * with the old key). -EEXIST when the new key file exists. */
int service_rekey(store *s, const char *new_key_file, const char *new_pass_file);

/* ---- templates (rendered files) ---- */

struct tmpl_error; /* broker/rules/tmpl.h */
/* The audit name of template name ("tmpl:NAME", as its grants name it) into buf. */
void service_template_target(char *buf, size_t size, const char *name);
/* A new version of template name with body (len bytes; action "template-put"): parsed (syntax,
 * limits) and each secret it references must exist; otherwise -EINVAL (or -E2BIG over a limit)
 * with *err saying where and why (err->msg[0] != 0; nothing stored). res->version. */
int service_template_put(service *sv, const struct service_actor *who, const char *name,
                         const uint8_t *body, size_t len, struct tmpl_error *err,
                         struct service_result *res);
/* Deletes template name, its versions and grants (action "template-delete"); -ENOENT. */
int service_template_delete(service *sv, const struct service_actor *who, const char *name,
                            struct service_result *res);

/* The record of a read (list, versions, get, grants, schedules, containers, audit-verify):
 * written before the answer (no record, no answer). err is the read's outcome (0 or -errno).
 * 0 or the audit's -errno: for a read that succeeded the caller then refuses to answer; the
 * record of a failed read that cannot be written is counted and reported too. */
int service_record(service *sv, const struct service_actor *who, const char *action,
                   const char *secret, uint64_t version, int err);

/* ---- cluster mode (broker/cluster, docs/cluster.md) ----
 * With a cluster set, every change of a secret (put, generate, scheduled rotation, rollback,
 * delete, expiry) and of a grant (grant, revoke) is made in etcd too: cluster_*_begin before the
 * local change, cluster_*_commit after it; when etcd refuses or cannot be reached the local
 * change is undone (recorded as "cluster-undo") and -EHOSTUNREACH or -ESTALE returned (nothing
 * stored). Key rotation goes through etcd too (service_key_rotate_begin/step). Labels and
 * templates stay this node's. */
void service_set_cluster(service *sv, struct cluster *c);
struct cluster *service_cluster(service *sv);
/* Changes from other nodes were applied to the store (changed): every view follows. */
void service_cluster_applied(service *sv, bool changed);
/* Who continues a waiting write (service_actor.token): wake(ud, token) on the loop's thread,
 * never from inside a service call for that token. wake NULL: none (the caller stops). */
void service_set_waker(service *sv, void (*wake)(void *ud, const void *token), void *ud);
/* The caller of token is gone or has its answer: a write of it not started yet is dropped; one
 * whose txn runs finishes (views refreshed, or undone and recorded as "cluster-undo") with no
 * one to tell. Any time (a token without a write is ignored). */
void service_write_forget(service *sv, const void *token);
/* Writes waiting or running (cluster mode). */
size_t service_writes_pending(const service *sv);
/* Whether secret name's change is made in the store but not taken by etcd yet (an admin write
 * between its local change and its txn's answer): true with *version, the current version
 * before it (0: the secret did not exist; UINT64_MAX: unknown). A reader outside the
 * containers' views (the workload API's read) serves that version, never the unpublished one. */
bool service_write_pinned(const service *sv, const char *name, uint64_t *version);

/* The audit result name for an errno ("ok", "not found", "invalid", ...). */
const char *service_result_name(int err);
/* A sentence for the operator about a stored change that could not be applied (res->
 * refresh_err != 0) into buf: "the change is stored, but ...". */
void service_refresh_warning(const struct service_result *res, char *buf, size_t size);
/* A short reason for an errno from the store or mounts ("integrity check failed on a stored
 * row" for -EBADMSG, else strerror). Static. */
const char *service_strerror(int err);
