#include "broker/engine/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/cluster/cluster.h"
#include "broker/engine/fault.h"
#include "broker/rules/tmpl.h"
#include "common/limits.h"
#include "common/names.h"

/* A restore's audit record, kept until the daemon serves (service_restore). */
struct service_deferred {
	int64_t time;
	char action[24];
	char detail[MOUNTS_ID_MAX + MOUNTS_NAME_MAX + 160];
	int err;
};

/* Cluster mode: a write of a caller that waits (service_actor.token), from its read in etcd to
 * its txn's answer. The first in sv->wq runs; the others wait their turn. */
enum service_wstate {
	SW_QUEUED,     /* waits for the ones before it */
	SW_READING,    /* etcd's read runs (writer thread) */
	SW_READY,      /* read (rc): the caller's next call makes the local change */
	SW_LOCAL,      /* during that call: the local change is being made */
	SW_COMMITTING, /* the txn runs; the views are not refreshed yet */
	SW_DONE,       /* the outcome (rc, res) waits for the caller's next call */
};
#define SERVICE_AFTER_PUTS 1u    /* on success: counted in metrics' puts */
#define SERVICE_AFTER_REFRESH 2u /* on success: the views follow */
/* the scheduler's next firing: not audited (a failure leaves no cluster-undo record) and its
 * outcome is the undo's error when the undo failed (service_schedule_next) */
#define SERVICE_AFTER_QUIET 4u

struct service_write {
	struct service_write *next;
	service *sv;
	const void *token; /* NULL: the caller is gone */
	bool daemon;       /* the scheduler's (woken through sv->dwake, not counted in the cap) */
	enum service_wstate state;
	char *name, *selector;
	int rc;
	struct cluster_read *rd;   /* SW_READY: etcd's answer */
	struct service_result res; /* SW_COMMITTING, SW_DONE */
	uint8_t *val;              /* rotate+print: the value (crypt_alloc'd) */
	unsigned after;            /* SERVICE_AFTER_* */
	uint64_t before;           /* a secret's current version before the change (pinned) */
	/* the change's record: the cluster-undo record repeats it */
	char *actor, *exe, *action, *secret, *detail;
	int64_t pid;
};

struct service {
	store *store;
	mounts *mounts; /* NULL: no views */
	struct metrics *met;
	struct service_config cfg;
	cluster *cluster; /* NULL: a single node */
	struct service_deferred *dfr;
	size_t ndfr, capdfr;
	bool defer;               /* inside service_restore */
	struct service_write *wq; /* cluster mode: the waiting callers' writes, in order */
	size_t nw;
	bool refresh_deferred; /* a refresh came while a txn ran: it follows the txn's answer */
	void (*wake)(void *ud, const void *token);
	void *wake_ud;
	void (*dwake)(void *ud, const void *token); /* the scheduler's writes' waker */
	void *dwake_ud;
};

int service_new(service **out, store *s, mounts *m, struct metrics *met,
                const struct service_config *cfg)
{
	if (!out || !s)
		return -EINVAL;
	service *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return -ENOMEM;
	*sv = (struct service){.store = s, .mounts = m, .met = met};
	if (cfg)
		sv->cfg = *cfg;
	*out = sv;
	return 0;
}

static void service_w_free(struct service_write *w);

void service_free(service *sv)
{
	if (!sv)
		return;
	while (sv->wq) {
		struct service_write *w = sv->wq;
		sv->wq = w->next;
		service_w_free(w);
	}
	free(sv->dfr);
	free(sv);
}

const char *service_result_name(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -ENOENT:
		return "not found";
	case -EINVAL:
		return "invalid";
	case -EEXIST:
		return "exists";
	case -EBADMSG:
		return "integrity failure";
	case -EFBIG:
		return "too large";
	case -EPERM:
	case -EACCES:
		return "denied";
	case -EHOSTUNREACH:
		return "cluster unreachable";
	case -ESTALE:
		return "cluster conflict";
	default:
		return "error";
	}
}

const char *service_strerror(int err)
{
	switch (err) {
	case -EBADMSG:
		return "integrity check failed on a stored row";
	case -EHOSTUNREACH:
		return "the cluster's etcd cannot be reached: writes are refused (reads and "
		       "containers keep working from this node's copy)";
	case -ESTALE:
		return "conflict: another node changed it, or this node has not applied the latest "
		       "change yet; retry";
	case -EALREADY:
		return "a key rotation started on another node is not finished yet (secretctl key "
		       "status on that node)";
	default:
		return strerror(-err);
	}
}

void service_set_cluster(service *sv, cluster *c)
{
	sv->cluster = c;
}

cluster *service_cluster(service *sv)
{
	return sv ? sv->cluster : NULL;
}

void service_refresh_warning(const struct service_result *res, char *buf, size_t size)
{
	snprintf(buf, size,
	         "the change is stored, but could not be applied to %zu running container(s) "
	         "(%s): their mounts are failed closed (unreadable) and retried until it applies",
	         res->unapplied, service_strerror(res->refresh_err));
}

static struct store_audit service_audit(const struct service_actor *who, const char *action,
                                        const char *secret)
{
	return (struct store_audit){.actor = who->actor,
	                            .pid = who->pid,
	                            .exe = who->exe,
	                            .action = action,
	                            .secret = secret,
	                            .result = "ok"};
}

static struct service_actor service_daemon_actor(void)
{
	return (struct service_actor){
	    .actor = SERVICE_ACTOR_DAEMON, .pid = getpid(), .exe = SERVICE_ACTOR_DAEMON};
}

/* Writes a record of its own (one the change's transaction did not write). */
static int service_append(service *sv, struct store_audit *a, int err)
{
	a->result =
	    a->result && strcmp(a->result, "ok") != 0 ? a->result : service_result_name(err);
	int r = engine_fault(ENGINE_FAULT_AUDIT_RECORD);
	return r < 0 ? r : store_audit_append(sv->store, a, 1);
}

/* The record of a change that failed with err (nothing stored) or was undone: its failure to
 * be written is kept in res, counted and reported, never dropped. Returns err. */
static void service_lost(service *sv, const struct store_audit *a, int r,
                         struct service_result *res)
{
	res->audit_err = r;
	if (sv->met)
		sv->met->audit_record_failures++;
	if (sv->cfg.report)
		sv->cfg.report(sv->cfg.report_ud, SERVICE_AUDIT_FAILED, a->action, a->secret, r, 0);
}

static int service_failed(service *sv, struct store_audit *a, int err, struct service_result *res)
{
	if (err == -EINPROGRESS)
		return err; /* not failed: a cluster write waits for etcd (the caller calls again)
		             */
	int r = service_append(sv, a, err);
	if (r < 0)
		service_lost(sv, a, r, res);
	return err;
}

/* The store changed: every mount's view follows. A failure does not undo the committed change:
 * the containers it could not reach are failed closed and retried by mounts (which counts and
 * reports each one), and res says so for the caller's answer. */
static void service_refresh(service *sv, const char *action, const char *name,
                            struct service_result *res)
{
	if (!sv->mounts)
		return;
	if (sv->wq && sv->wq->state == SW_COMMITTING) {
		/* a local change etcd has not taken yet: no view shows it before its answer */
		sv->refresh_deferred = true;
		return;
	}
	sv->refresh_deferred = false;
	size_t unapplied = 0;
	int r = mounts_refresh(sv->mounts, &unapplied);
	if (r == 0)
		return;
	res->refresh_err = r;
	res->unapplied = unapplied;
	if (sv->met)
		sv->met->refresh_failures++;
	if (sv->cfg.report)
		sv->cfg.report(sv->cfg.report_ud, SERVICE_REFRESH_FAILED, action, name, r,
		               unapplied);
}

static struct service_result *service_res(struct service_result *res)
{
	*res = (struct service_result){0};
	return res;
}

/* ---- cluster writes of a caller that waits (service_actor.token) ---- */

static void service_w_free(struct service_write *w)
{
	cluster_read_free(w->rd);
	if (w->val)
		store_value_free(w->val);
	free(w->name);
	free(w->selector);
	free(w->actor);
	free(w->exe);
	free(w->action);
	free(w->secret);
	free(w->detail);
	free(w);
}

static struct service_write *service_w_find(service *sv, const void *token)
{
	for (struct service_write *w = sv->wq; w && token; w = w->next)
		if (w->token == token)
			return w;
	return NULL;
}

static void service_w_read(void *ud, int r, struct cluster_read *rd);

/* Tells w's caller to call again (the admin API's waker, or the scheduler's). */
static void service_w_call(service *sv, const struct service_write *w)
{
	void (*wake)(void *, const void *) = w->daemon ? sv->dwake : sv->wake;
	if (wake)
		wake(w->daemon ? sv->dwake_ud : sv->wake_ud, w->token);
}

/* w is over: out of the queue, and the next one starts (its caller woken if it fails at once). */
static void service_w_end(service *sv, struct service_write *w)
{
	for (struct service_write **p = &sv->wq; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			sv->nw--;
			break;
		}
	service_w_free(w);
	while (sv->wq && sv->wq->state == SW_QUEUED) {
		struct service_write *n = sv->wq;
		int r = cluster_begin_async(sv->cluster, n->name, n->selector, service_w_read, n);
		if (r == 0) {
			n->state = SW_READING;
			return;
		}
		n->rc = r; /* its caller hears it at its next call */
		n->state = SW_READY;
		if (n->token) {
			service_w_call(sv, n);
			return;
		}
		sv->wq = n->next;
		sv->nw--;
		service_w_free(n);
	}
}

static void service_w_wake(service *sv, struct service_write *w)
{
	if (!w->token)
		service_w_end(sv, w); /* no one waits for it */
	else
		service_w_call(sv, w);
}

static void service_w_read(void *ud, int r, struct cluster_read *rd)
{
	struct service_write *w = ud;
	w->rc = r;
	w->rd = rd;
	w->state = SW_READY;
	service_w_wake(w->sv, w);
}

static void service_w_committed(void *ud, int r, int undo)
{
	struct service_write *w = ud;
	service *sv = w->sv;
	w->state = SW_DONE; /* refreshes are no longer deferred */
	w->rc = r;
	if (r < 0 && (w->after & SERVICE_AFTER_QUIET)) {
		w->rc = undo ? undo : r; /* as the synchronous next firing: not audited */
		if (undo || sv->refresh_deferred)
			service_refresh(sv, w->action, w->name, &w->res);
	} else if (r == 0) {
		if ((w->after & SERVICE_AFTER_PUTS) && sv->met)
			sv->met->puts++;
		if ((w->after & SERVICE_AFTER_REFRESH) || sv->refresh_deferred)
			service_refresh(sv, w->action, w->name, &w->res);
	} else {
		struct store_audit u = {.actor = w->actor ? w->actor : SERVICE_ACTOR_DAEMON,
		                        .pid = w->pid,
		                        .exe = w->exe ? w->exe : "",
		                        .action = "cluster-undo",
		                        .secret = w->secret,
		                        .detail = w->detail,
		                        .result = undo ? "undo failed" : NULL};
		if (undo || sv->refresh_deferred) /* the local change stands unpublished */
			service_refresh(sv, w->action, w->name, &w->res);
		service_failed(sv, &u, r, &w->res);
	}
	service_w_wake(sv, w);
}

/* The outcome of the caller's write, when it is over: true (*r, *res, *val) and it is gone. */
static bool service_cl_done(service *sv, const struct service_actor *who, int *r,
                            struct service_result *res, uint8_t **val)
{
	struct service_write *w = sv->cluster && who ? service_w_find(sv, who->token) : NULL;
	if (!w || w->state != SW_DONE)
		return false;
	*r = w->rc;
	*res = w->res;
	if (val && w->rc == 0) { /* a value etcd did not take is wiped (service_w_free) */
		*val = w->val;
		w->val = NULL;
	}
	service_w_end(sv, w);
	return true;
}

void service_set_waker(service *sv, void (*wake)(void *ud, const void *token), void *ud)
{
	sv->wake = wake;
	sv->wake_ud = ud;
}

void service_set_sched_waker(service *sv, void (*wake)(void *ud, const void *token), void *ud)
{
	sv->dwake = wake;
	sv->dwake_ud = ud;
}

void service_write_forget(service *sv, const void *token)
{
	struct service_write *w = sv ? service_w_find(sv, token) : NULL;
	if (!w)
		return;
	if (w->state == SW_READING || w->state == SW_COMMITTING)
		w->token = NULL; /* it ends when etcd answers */
	else
		service_w_end(sv, w);
}

size_t service_writes_pending(const service *sv)
{
	return sv ? sv->nw : 0;
}

bool service_write_pinned(const service *sv, const char *name, uint64_t *version)
{
	const struct service_write *w = sv ? sv->wq : NULL;
	if (!w || (w->state != SW_LOCAL && w->state != SW_COMMITTING) || w->selector ||
	    strcmp(w->name, name) != 0)
		return false;
	*version = w->before;
	return true;
}

/* The current version of secret name (0: none; UINT64_MAX: it cannot be read). */
static uint64_t service_current(service *sv, const char *name)
{
	struct store_version_info *v = NULL;
	size_t n = 0;
	int r = store_versions(sv->store, name, &v, &n);
	uint64_t cur = r == -ENOENT ? 0 : UINT64_MAX;
	for (size_t i = 0; r == 0 && i < n; i++)
		if (v[i].current)
			cur = v[i].version;
	store_versions_free(v, n);
	return cur;
}

/* Cluster mode: before a change of a secret (name) or a grant (selector non-NULL). A caller that
 * waits (who->token): -EINPROGRESS while etcd is read, 0 at its next call with the read's
 * answer (the local change follows), or the read's error. daemon: the scheduler's write (its
 * own waker; not refused by the cap: at most one per schedule or expiry is in flight). */
static int service_cl_begin_ex(service *sv, const struct service_actor *who, const char *name,
                               const char *selector, struct cluster_pre *pre, bool daemon)
{
	*pre = (struct cluster_pre){0};
	if (!sv->cluster)
		return 0;
	if (!who || !who->token)
		return selector ? cluster_grant_begin(sv->cluster, name, selector, pre)
		                : cluster_secret_begin(sv->cluster, name, pre);
	struct service_write *w = service_w_find(sv, who->token);
	if (w) {
		if (w->state != SW_READY)
			return -EINPROGRESS;
		int r = w->rc;
		if (r == 0) { /* compared with this node's rows now, just before the change */
			r = cluster_read_check(sv->cluster, w->rd, pre);
			w->rd = NULL;
		}
		if (r < 0) {
			service_w_end(sv, w);
			return r;
		}
		w->before = selector ? 0 : service_current(sv, name);
		w->state = SW_LOCAL;
		return 0;
	}
	if (sv->nw >= SERVICE_WRITES_MAX && !daemon)
		return -EBUSY;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct service_write){
	    .sv = sv, .token = who->token, .daemon = daemon, .state = SW_QUEUED};
	w->name = strdup(name);
	w->selector = selector ? strdup(selector) : NULL;
	if (!w->name || (selector && !w->selector)) {
		service_w_free(w);
		return -ENOMEM;
	}
	struct service_write **p = &sv->wq;
	while (*p)
		p = &(*p)->next;
	*p = w;
	sv->nw++;
	if (sv->wq == w) {
		int r = cluster_begin_async(sv->cluster, name, selector, service_w_read, w);
		if (r < 0) {
			service_w_end(sv, w);
			return r;
		}
		w->state = SW_READING;
	}
	return -EINPROGRESS;
}

static int service_cl_begin(service *sv, const struct service_actor *who, const char *name,
                            const char *selector, struct cluster_pre *pre)
{
	return service_cl_begin_ex(sv, who, name, selector, pre, false);
}

static char *service_strdup_opt(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Cluster mode: after the local change, its rows go to etcd; when that fails the local change
 * was undone by cluster: recorded as "cluster-undo" (result: why), and the error returned. The
 * write of a caller that waits: its txn is queued and -EINPROGRESS returned; what follows a
 * success (after: SERVICE_AFTER_*) is done when etcd answers. */
static int service_cl_commit(service *sv, const struct store_audit *a, const char *name,
                             const char *selector, bool gone, struct cluster_pre *pre,
                             struct service_result *res, unsigned after)
{
	if (!sv->cluster)
		return 0;
	int undo = 0, r;
	snprintf(pre->actor, sizeof(pre->actor), "%s", a->actor ? a->actor : "");
	snprintf(pre->action, sizeof(pre->action), "%s", a->action ? a->action : "");
	struct service_write *w = sv->wq && sv->wq->state == SW_LOCAL ? sv->wq : NULL;
	if (w) {
		w->res = *res;
		w->after = after;
		w->pid = a->pid;
		w->actor = service_strdup_opt(a->actor);
		w->exe = service_strdup_opt(a->exe);
		w->action = service_strdup_opt(a->action);
		w->secret = service_strdup_opt(a->secret);
		w->detail = service_strdup_opt(a->detail);
		r = cluster_commit_async(sv->cluster, name, selector, gone, pre,
		                         service_w_committed, w, &undo);
		if (r == 0) {
			w->state = SW_COMMITTING;
			return -EINPROGRESS;
		}
	} else {
		r = selector ? cluster_grant_commit(sv->cluster, name, selector, gone, pre, &undo)
		             : cluster_secret_commit(sv->cluster, name, gone, pre, &undo);
	}
	if (r == 0)
		return 0;
	if (after & SERVICE_AFTER_QUIET) {
		if (undo) /* the local change stands unpublished: the views follow it */
			service_refresh(sv, a->action, name, res);
		return undo ? undo : r;
	}
	struct store_audit u = *a;
	u.action = "cluster-undo";
	u.result = undo ? "undo failed" : NULL;
	if (undo) /* the local change stands unpublished: the views follow it */
		service_refresh(sv, a->action, name, res);
	return service_failed(sv, &u, r, res);
}

/* A new value starts a new life: without a new expiry the old one is cleared unless kept; *set
 * is store_put_opts.expires (> 0 new, 0 kept, -1 cleared). */
static int service_expiry(service *sv, const char *name, int64_t new_expiry, bool keep,
                          int64_t *set, struct service_result *res)
{
	int64_t old = 0;
	int r = store_expiry(sv->store, name, &old);
	if (r < 0 && r != -ENOENT)
		return r; /* e.g. -EBADMSG: the put would fail on the same row anyway */
	*set = new_expiry > 0 ? new_expiry : keep ? 0 : -1;
	res->expires = new_expiry > 0 ? new_expiry : keep ? old : 0;
	res->expiry_cleared = old != 0 && res->expires == 0;
	return 0;
}

static int service_put_value(service *sv, const struct service_actor *who, struct store_audit *a,
                             const char *name, const uint8_t *val, size_t len,
                             const struct store_put_opts *po, struct service_result *res)
{
	struct cluster_pre pre;
	int r = service_cl_begin(sv, who, name, NULL, &pre);
	if (r < 0)
		return service_failed(sv, a, r, res);
	r = store_put_ex(sv->store, name, val, len, po, a, &res->version);
	if (r < 0) {
		cluster_pre_free(&pre);
		return service_failed(sv, a, r, res);
	}
	r = service_cl_commit(sv, a, name, NULL, false, &pre, res,
	                      SERVICE_AFTER_PUTS | SERVICE_AFTER_REFRESH);
	if (r < 0)
		return r;
	if (sv->met)
		sv->met->puts++;
	service_refresh(sv, a->action, name, res);
	return 0;
}

/* A label change as an audit record's detail: "labels set K=V K2=V2 remove K3" (labels are
 * metadata, never secret). malloc'd; NULL on ENOMEM. */
static char *service_labels_detail(const struct store_label_change *c)
{
	size_t size = 32;
	for (size_t i = 0; i < c->nset; i++)
		size += strlen(c->set[i].key) + strlen(c->set[i].value) + 2;
	for (size_t i = 0; i < c->nremove; i++)
		size += strlen(c->remove[i]) + 1;
	char *d = malloc(size);
	if (!d)
		return NULL;
	size_t off = (size_t)snprintf(d, size, "labels%s", c->nset ? " set" : "");
	for (size_t i = 0; i < c->nset; i++)
		off +=
		    (size_t)snprintf(d + off, size - off, " %s=%s", c->set[i].key, c->set[i].value);
	if (c->nremove)
		off += (size_t)snprintf(d + off, size - off, " remove");
	for (size_t i = 0; i < c->nremove; i++)
		off += (size_t)snprintf(d + off, size - off, " %s", c->remove[i]);
	return d;
}

int service_put(service *sv, const struct service_actor *who, const struct service_put *p,
                struct service_result *res)
{
	service_res(res);
	int r;
	if (service_cl_done(sv, who, &r, res, NULL))
		return r;
	struct store_audit a = service_audit(who, p->action ? p->action : "put", p->name);
	char *detail = NULL;
	if (p->labels && (p->labels->nset || p->labels->nremove)) {
		detail = service_labels_detail(p->labels);
		if (!detail)
			return service_failed(sv, &a, -ENOMEM, res);
		a.detail = detail;
	}
	struct store_put_opts po = {.keep = p->keep, .labels = p->labels};
	r = service_expiry(sv, p->name, p->new_expiry, p->keep_expiry, &po.expires, res);
	if (r == 0)
		r = service_put_value(sv, who, &a, p->name, p->val, p->len, &po, res);
	else
		service_failed(sv, &a, r, res);
	free(detail);
	return r;
}

int service_labels(service *sv, const struct service_actor *who, const char *name,
                   const struct store_label_change *c, struct store_label **out, size_t *n,
                   struct service_result *res)
{
	service_res(res);
	struct store_audit a = service_audit(who, "label", name);
	char *detail = service_labels_detail(c);
	if (!detail)
		return service_failed(sv, &a, -ENOMEM, res);
	a.detail = detail;
	int r = store_labels_change(sv->store, name, c, &a, out, n);
	if (r < 0)
		service_failed(sv, &a, r, res);
	else if (sv->met)
		sv->met->label_changes++;
	/* No refresh: labels select nothing (grants select containers, not secrets), so no
	 * container's view can change. */
	free(detail);
	return r;
}

int service_generate(service *sv, const struct service_actor *who, const char *name,
                     enum store_charset cs, size_t length, bool keep_expiry, uint8_t **val,
                     struct service_result *res)
{
	service_res(res);
	if (val)
		*val = NULL;
	int r;
	if (service_cl_done(sv, who, &r, res, val))
		return r;
	struct store_audit a = service_audit(who, val ? "rotate+print" : "rotate", name);
	struct store_put_opts po = {0};
	r = service_expiry(sv, name, 0, keep_expiry, &po.expires, res);
	if (r < 0)
		return service_failed(sv, &a, r, res);
	uint8_t *v = NULL;
	r = store_generate(cs, length, &v);
	if (r < 0) {
		res->not_tried = true;
		return r;
	}
	r = service_put_value(sv, who, &a, name, v, length, &po, res);
	if (r == -EINPROGRESS && val && sv->wq && sv->wq->state == SW_COMMITTING &&
	    sv->wq->token == who->token && !sv->wq->val) {
		sv->wq->val = v; /* the answer's, once etcd took it */
		return r;
	}
	if (r < 0 || !val)
		store_value_free(v);
	else
		*val = v;
	return r;
}

/* The scheduler's actor: the daemon, with the firing's token (NULL: synchronous). */
static struct service_actor service_sched_actor(const void *token)
{
	struct service_actor d = service_daemon_actor();
	d.token = token;
	return d;
}

int service_rotate_scheduled(service *sv, const void *token, const char *name, const uint8_t *val,
                             size_t len, struct service_result *res)
{
	service_res(res);
	struct service_actor d = service_sched_actor(token);
	int r;
	if (service_cl_done(sv, &d, &r, res, NULL))
		return r;
	struct store_audit a = service_audit(&d, "rotate", name);
	struct cluster_pre pre;
	r = service_cl_begin_ex(sv, &d, name, NULL, &pre, true);
	if (r == 0) {
		r = store_put_ex(sv->store, name, val, len, NULL, &a, &res->version);
		if (r < 0)
			cluster_pre_free(&pre);
	}
	if (r < 0) {
		a.result = "error";
		return service_failed(sv, &a, r, res);
	}
	r = service_cl_commit(sv, &a, name, NULL, false, &pre, res,
	                      SERVICE_AFTER_PUTS | SERVICE_AFTER_REFRESH);
	if (r < 0)
		return r;
	if (sv->met)
		sv->met->puts++;
	service_refresh(sv, "rotate", name, res);
	return 0;
}

int service_rotate_failed(service *sv, const char *name, const char *result)
{
	struct service_result res;
	struct service_actor d = service_daemon_actor();
	struct store_audit a = service_audit(&d, "rotate", name);
	a.result = result;
	service_failed(sv, &a, -ECANCELED, service_res(&res));
	return res.audit_err;
}

int service_schedule_next(service *sv, const void *token, const char *name, int64_t next)
{
	/* cluster mode: the next firing goes to etcd first (the leader that follows sees it) */
	struct service_result res = {0};
	struct service_actor d = service_sched_actor(token);
	int r;
	if (service_cl_done(sv, &d, &r, &res, NULL))
		return r;
	struct cluster_pre pre;
	r = service_cl_begin_ex(sv, &d, name, NULL, &pre, true);
	if (r < 0)
		return r;
	r = store_schedule_next(sv->store, name, next);
	if (r < 0) {
		cluster_pre_free(&pre);
		return r;
	}
	struct store_audit a = service_audit(&d, "schedule-next", name);
	return service_cl_commit(sv, &a, name, NULL, false, &pre, &res, SERVICE_AFTER_QUIET);
}

bool service_fires(service *sv)
{
	return sv && (!sv->cluster || cluster_is_leader(sv->cluster));
}

int service_delete(service *sv, const struct service_actor *who, const char *name,
                   struct service_result *res)
{
	service_res(res);
	int r;
	if (service_cl_done(sv, who, &r, res, NULL))
		return r;
	struct store_audit a = service_audit(who, "delete", name);
	struct cluster_pre pre;
	r = service_cl_begin(sv, who, name, NULL, &pre);
	if (r < 0)
		return service_failed(sv, &a, r, res);
	r = store_delete_ex(sv->store, name, &a);
	if (r < 0) {
		cluster_pre_free(&pre);
		return service_failed(sv, &a, r, res);
	}
	r = service_cl_commit(sv, &a, name, NULL, true, &pre, res, SERVICE_AFTER_REFRESH);
	if (r < 0)
		return r;
	service_refresh(sv, "delete", name, res);
	return 0;
}

int service_expire(service *sv, const void *token, const char *name, struct service_result *res)
{
	service_res(res);
	struct service_actor d = service_sched_actor(token);
	int r;
	if (service_cl_done(sv, &d, &r, res, NULL))
		return r;
	struct store_audit a = service_audit(&d, "expire", name);
	struct cluster_pre pre;
	r = service_cl_begin_ex(sv, &d, name, NULL, &pre, true);
	if (r < 0)
		return r; /* the scheduler reports it */
	r = store_delete_ex(sv->store, name, &a);
	if (r < 0) {
		cluster_pre_free(&pre);
		return r; /* as before: the scheduler reports it; -ENOENT: deleted meanwhile */
	}
	r = service_cl_commit(sv, &a, name, NULL, true, &pre, res, SERVICE_AFTER_REFRESH);
	if (r < 0)
		return r;
	service_refresh(sv, "expire", name, res);
	return 0;
}

int service_rollback(service *sv, const struct service_actor *who, const char *name, uint64_t from,
                     struct service_result *res)
{
	service_res(res);
	int r;
	if (service_cl_done(sv, who, &r, res, NULL))
		return r;
	struct store_audit a = service_audit(who, "rollback", name);
	struct cluster_pre pre;
	r = service_cl_begin(sv, who, name, NULL, &pre);
	if (r < 0)
		return service_failed(sv, &a, r, res);
	r = store_rollback(sv->store, name, from, &a, &res->version);
	if (r < 0) {
		cluster_pre_free(&pre);
		return service_failed(sv, &a, r, res);
	}
	r = service_cl_commit(sv, &a, name, NULL, false, &pre, res, SERVICE_AFTER_REFRESH);
	if (r < 0)
		return r;
	service_refresh(sv, "rollback", name, res);
	return 0;
}

int service_schedule(service *sv, const struct service_actor *who, const char *name, int64_t every,
                     uint32_t length, enum store_charset cs, const char *exec,
                     struct service_result *res)
{
	service_res(res);
	int r;
	if (service_cl_done(sv, who, &r, res, NULL))
		return r;
	struct store_audit a = service_audit(who, every ? "schedule" : "unschedule", name);
	struct cluster_pre pre;
	r = service_cl_begin(sv, who, name, NULL, &pre);
	if (r < 0)
		return service_failed(sv, &a, r, res);
	r = store_schedule_set(sv->store, name, every, length, cs, exec, &a);
	if (r < 0) {
		cluster_pre_free(&pre);
		return service_failed(sv, &a, r, res);
	}
	return service_cl_commit(sv, &a, name, NULL, false, &pre, res, 0);
}

int service_grant(service *sv, const struct service_actor *who, const struct store_grant *g,
                  bool replace, struct service_result *res)
{
	service_res(res);
	int r;
	if (service_cl_done(sv, who, &r, res, NULL))
		return r;
	struct store_audit a = service_audit(who, "grant", g->secret);
	char detail[SECRETD_SELECTOR_MAX + SECRETD_PATH_MAX + 96];
	snprintf(detail, sizeof(detail), "selector=%s path=%s mode=%04o uid=%lld gid=%lld%s%s",
	         g->selector, g->path ? g->path : g->secret, (unsigned)g->mode, (long long)g->uid,
	         (long long)g->gid, g->flags & STORE_GRANT_PREVIOUS ? " previous" : "",
	         replace ? " replace" : "");
	a.detail = detail;
	struct cluster_pre pre;
	r = service_cl_begin(sv, who, g->secret, g->selector, &pre);
	if (r < 0)
		return service_failed(sv, &a, r, res);
	r = store_grant_add_ex(sv->store, g, replace, &a);
	if (r < 0) {
		cluster_pre_free(&pre);
		return service_failed(sv, &a, r, res);
	}
	r = service_cl_commit(sv, &a, g->secret, g->selector, false, &pre, res,
	                      SERVICE_AFTER_REFRESH);
	if (r < 0)
		return r;
	service_refresh(sv, "grant", g->secret, res);
	return 0;
}

int service_revoke(service *sv, const struct service_actor *who, const char *secret,
                   const char *selector, struct service_result *res)
{
	service_res(res);
	int r;
	if (service_cl_done(sv, who, &r, res, NULL))
		return r;
	struct store_audit a = service_audit(who, "revoke", secret);
	char detail[SECRETD_SELECTOR_MAX + 16];
	snprintf(detail, sizeof(detail), "selector=%s", selector);
	a.detail = detail;
	struct cluster_pre pre;
	r = service_cl_begin(sv, who, secret, selector, &pre);
	if (r < 0)
		return service_failed(sv, &a, r, res);
	r = store_grant_remove_ex(sv->store, secret, selector, &a);
	if (r < 0) {
		cluster_pre_free(&pre);
		return service_failed(sv, &a, r, res);
	}
	r = service_cl_commit(sv, &a, secret, selector, true, &pre, res, SERVICE_AFTER_REFRESH);
	if (r < 0)
		return r;
	service_refresh(sv, "revoke", secret, res);
	return 0;
}

int service_attach(service *sv, const struct service_actor *who, const struct mounts_attach_req *r,
                   bool *mounted, size_t *files, struct service_result *res)
{
	service_res(res);
	*mounted = false;
	*files = 0;
	if (!sv->mounts)
		return -EINVAL;
	int rc = r->pid > 0 ? mounts_attach(sv->mounts, r, mounted, files) : -EINVAL;
	struct store_audit a = service_audit(who, "attach", NULL);
	if (rc < 0)
		return service_failed(sv, &a, rc, res);
	int ar = service_append(sv, &a, 0);
	if (ar == 0)
		return 0;
	/* No record, no attach: undone, and the undo recorded (counted if it cannot be). */
	service_lost(sv, &a, ar, res);
	res->unrecorded = true;
	res->undone = mounts_detach(sv->mounts, r->id, NULL) == 0;
	*mounted = false;
	*files = 0;
	a.result = res->undone ? "undone" : "error";
	service_failed(sv, &a, ar, res);
	res->audit_err = ar;
	return ar;
}

int service_detach(service *sv, const struct service_actor *who, const char *id,
                   struct service_result *res)
{
	service_res(res);
	if (!sv->mounts)
		return -EINVAL;
	int rc = mounts_detach(sv->mounts, id, &res->unmount_err);
	struct store_audit a = service_audit(who, "detach", NULL);
	service_failed(sv, &a, rc, res);
	res->unrecorded = rc == 0 && res->audit_err;
	return rc;
}

struct service_restore_ctx {
	service *sv;
	mounts_restore_cb cb;
	void *ud;
};

static void service_on_restore(void *ud, const struct mounts_restore_event *ev)
{
	struct service_restore_ctx *x = ud;
	struct service_actor d = service_daemon_actor();
	bool forgot = ev->outcome == MOUNTS_RESTORE_FORGOTTEN;
	struct store_audit a = service_audit(&d, forgot ? "restore-forget" : "restore", NULL);
	char detail[MOUNTS_ID_MAX + MOUNTS_NAME_MAX + 160];
	snprintf(detail, sizeof(detail), "id=%s name=%s%s%s", ev->id ? ev->id : "",
	         ev->name ? ev->name : "", ev->why ? " why=" : "", ev->why ? ev->why : "");
	a.detail = detail;
	int err = ev->outcome == MOUNTS_RESTORE_FAILED ? ev->err : 0;
	service *sv = x->sv;
	if (sv->ndfr == sv->capdfr && sv->ndfr < SERVICE_DEFERRED_MAX) {
		size_t cap = sv->capdfr ? 2 * sv->capdfr : 32;
		struct service_deferred *n = realloc(sv->dfr, cap * sizeof(*n));
		if (n) {
			sv->dfr = n;
			sv->capdfr = cap;
		}
	}
	if (sv->ndfr < sv->capdfr) {
		struct service_deferred *df = &sv->dfr[sv->ndfr++];
		df->time = (int64_t)time(NULL);
		snprintf(df->action, sizeof(df->action), "%s", a.action);
		snprintf(df->detail, sizeof(df->detail), "%s", detail);
		df->err = err;
	} else {
		struct service_result res;
		service_failed(sv, &a, err, service_res(&res)); /* no room: written now */
	}
	if (x->cb)
		x->cb(x->ud, ev);
}

int service_flush_deferred(service *sv, size_t *left)
{
	*left = sv->ndfr;
	if (!sv->ndfr)
		return 0;
	struct store_audit *recs = calloc(sv->ndfr, sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	for (size_t i = 0; i < sv->ndfr; i++)
		recs[i] = (struct store_audit){.time = sv->dfr[i].time,
		                               .actor = SERVICE_ACTOR_DAEMON,
		                               .pid = getpid(),
		                               .exe = SERVICE_ACTOR_DAEMON,
		                               .action = sv->dfr[i].action,
		                               .result = service_result_name(sv->dfr[i].err),
		                               .detail = sv->dfr[i].detail};
	int r = engine_fault(ENGINE_FAULT_AUDIT_RECORD);
	if (r == 0)
		r = store_audit_append(sv->store, recs, sv->ndfr); /* one transaction */
	free(recs);
	if (r < 0)
		return r;
	sv->ndfr = 0;
	*left = 0;
	return 0;
}

size_t service_drop_deferred(service *sv)
{
	size_t n = sv->ndfr;
	for (size_t i = 0; i < n; i++) {
		struct store_audit a = {.actor = SERVICE_ACTOR_DAEMON, .action = sv->dfr[i].action};
		struct service_result res;
		service_lost(sv, &a, -EIO, service_res(&res));
	}
	sv->ndfr = 0;
	return n;
}

int service_restore(service *sv, const struct mounts_restore_ops *ops, mounts_restore_cb cb,
                    void *cb_ud, struct mounts_restore_counts *out)
{
	if (!sv->mounts)
		return -EINVAL;
	struct service_restore_ctx x = {.sv = sv, .cb = cb, .ud = cb_ud};
	return mounts_restore(sv->mounts, ops, service_on_restore, &x, out);
}

/* Cluster mode: what a key rotation hands to etcd before its local transaction commits. */
struct service_kr {
	service *sv;
	uint8_t *mine; /* this node's keyring before the change */
	size_t minelen;
};

static int service_kr_keyring(void *ud, const uint8_t *p, size_t len)
{
	struct service_kr *k = ud;
	return cluster_keyring_put(k->sv->cluster, k->mine, k->minelen, p, len);
}

static int service_kr_rows(void *ud, const struct store_rewrapped *v, size_t n)
{
	struct service_kr *k = ud;
	return cluster_rewrap_put(k->sv->cluster, v, n);
}

static int service_kr_init(service *sv, struct service_kr *k, struct store_key_pub *pub)
{
	*k = (struct service_kr){.sv = sv};
	*pub = (struct store_key_pub){.keyring = service_kr_keyring,
	                              .rows = service_kr_rows,
	                              .ud = k,
	                              .max_keys = CLUSTER_REWRAP_KEYS,
	                              .max_bytes = CLUSTER_REWRAP_BYTES};
	return store_keyring_export(sv->store, &k->mine, &k->minelen);
}

int service_key_rotate_begin(service *sv, const struct service_actor *who, uint64_t *kek_id,
                             bool *resumed, struct service_result *res)
{
	service_res(res);
	struct store_audit a = service_audit(who, "key-rotate", NULL);
	if (!sv->cluster) {
		int r = store_key_rotate_begin(sv->store, &a, kek_id, resumed);
		return r < 0 ? service_failed(sv, &a, r, res) : 0;
	}
	/* Cluster mode: the new generation is a write of the cluster's keyring (etcd's must be
	 * this node's); when etcd does not take it, nothing of it stays here. */
	struct service_kr k;
	struct store_key_pub pub;
	int r = service_kr_init(sv, &k, &pub);
	if (r == 0)
		r = store_key_rotate_begin_pub(sv->store, &a, &pub, kek_id, resumed);
	free(k.mine);
	if (r == -EHOSTUNREACH || r == -ESTALE || r == -EPERM || r == -EACCES || r == -EFBIG) {
		struct store_audit u = a;
		u.action = "cluster-undo";
		return service_failed(sv, &u, r, res);
	}
	return r < 0 ? service_failed(sv, &a, r, res) : 0;
}

int service_key_rotate_step(service *sv, size_t max, uint64_t *done, bool *finished)
{
	struct store_audit a = {
	    .actor = SERVICE_ACTOR_DAEMON, .pid = getpid(), .action = "key-rotate-done"};
	if (!sv->cluster)
		return store_key_rotate_step(sv->store, max, &a, done, finished);
	/* Cluster mode: each batch reaches etcd before it commits here; an admin write in
	 * flight goes first (its rows would meet the batch's). */
	if (done)
		*done = 0;
	if (finished)
		*finished = false;
	if (sv->nw)
		return -EAGAIN;
	struct service_kr k;
	struct store_key_pub pub;
	int r = service_kr_init(sv, &k, &pub);
	if (r == 0)
		r = store_key_rotate_step_pub(sv->store, max, &a, &pub, done, finished);
	free(k.mine);
	return r;
}

int service_rekey(store *s, const char *new_key_file, const char *new_pass_file)
{
	return store_rekey(s, new_key_file, new_pass_file);
}

int service_record(service *sv, const struct service_actor *who, const char *action,
                   const char *secret, uint64_t version, int err)
{
	struct store_audit a = service_audit(who, action, secret);
	a.version = version;
	if (err == 0)
		return service_append(sv, &a, 0);
	struct service_result res;
	service_failed(sv, &a, err, service_res(&res));
	return res.audit_err;
}

/* ---- templates ---- */

void service_template_target(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s%s", STORE_GRANT_TMPL_PREFIX, name ? name : "");
}

/* Checks that every secret t references exists: 0, or -EINVAL with *err at the first missing. */
static int service_template_refs(service *sv, const tmpl *t, struct tmpl_error *err)
{
	for (size_t i = 0; i < tmpl_nrefs(t); i++) {
		struct store_version_info *v = NULL;
		size_t n = 0;
		int r = store_versions(sv->store, tmpl_ref(t, i), &v, &n);
		store_versions_free(v, n);
		if (r == -ENOENT) {
			tmpl_ref_error(t, i, "does not exist (store it first)", err);
			return -EINVAL;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int service_template_put(service *sv, const struct service_actor *who, const char *name,
                         const uint8_t *body, size_t len, struct tmpl_error *err,
                         struct service_result *res)
{
	service_res(res);
	*err = (struct tmpl_error){0};
	char target[SECRETD_NAME_MAX + 8];
	service_template_target(target, sizeof(target), name);
	struct store_audit a = service_audit(who, "template-put", target);
	if (!name || names_check(name, strlen(name), NULL) < 0)
		return service_failed(sv, &a, -EINVAL, res);
	tmpl *t = NULL;
	int r = tmpl_parse((const char *)body, len, &t, err);
	if (r == 0)
		r = service_template_refs(sv, t, err);
	tmpl_free(t);
	if (r == 0)
		r = store_tmpl_put(sv->store, name, body, len, &a, &res->version);
	if (r < 0)
		return service_failed(sv, &a, r, res);
	service_refresh(sv, a.action, target, res);
	return 0;
}

int service_template_delete(service *sv, const struct service_actor *who, const char *name,
                            struct service_result *res)
{
	service_res(res);
	char target[SECRETD_NAME_MAX + 8];
	service_template_target(target, sizeof(target), name);
	struct store_audit a = service_audit(who, "template-delete", target);
	int r = store_tmpl_delete(sv->store, name, &a);
	if (r < 0)
		return service_failed(sv, &a, r, res);
	service_refresh(sv, a.action, target, res);
	return 0;
}

void service_cluster_applied(service *sv, bool changed)
{
	if (changed) {
		struct service_result res = {0};
		service_refresh(sv, "cluster", NULL, &res);
	}
}
