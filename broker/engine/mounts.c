#include "broker/engine/mounts.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <time.h>
#include <unistd.h>

#include "broker/engine/fault.h"
#include "broker/os/cgroup.h"
#include "broker/os/nsmount.h"
#include "common/limits.h"
#include "common/names.h"
#include "fuse/sfs.h"

#define MOUNTS_CHECK_CACHE 16 /* per-container cache of open decisions, keyed by process token */

/* A decrypted secret version shared by every mount that shows it. */
struct mblob {
	char *name;
	bool previous;
	uint64_t version;
	sfs_blob *blob;
	bool used; /* referenced by the refresh in progress */
};

struct mcheck {
	pid_t pid;
	uint64_t token; /* procwatch's name for that very process; 0: free */
	bool ok;
};

struct mcont {
	mounts *m;
	char *id, *runtime, *name;
	struct policy_label *labels;
	size_t nlabels;
	char cgroup[CGROUP_PATH_MAX];
	pid_t pid;
	int pidfd; /* the container's init, watched for exit; -1 if unknown */
	uint32_t uid, gid;
	bool hook;   /* registered by the OCI hook (else seen on the workload socket) */
	sfs *fs;     /* NULL when not mounted */
	char *target, *root;
	size_t nfiles;
	int64_t created, last_seen;
	uint64_t opens, denied;
	bool failed;  /* its last view could not be applied: the mount is denied (sfs_deny) */
	bool deny_ok; /* sfs_deny queued its invalidations (else it is tried again) */
	struct mcheck cache[MOUNTS_CHECK_CACHE];
	unsigned cache_next;
	/* the view last applied (for naming the secret an open reads); its secret pointers are
	 * valid only while files_gen == m->inputs_gen */
	struct policy_file *files;
	size_t nfiles_view;
	uint64_t files_gen;
	struct mcont *next;
};

struct mounts {
	loop *loop;
	store *store;
	struct mounts_config cfg;
	struct mcont *conts;
	size_t ncont;
	/* policy inputs, as of the last refresh */
	struct store_grant *sgrants;
	size_t ngrants;
	struct policy_grant *grants;
	struct store_secret_info *secrets;
	size_t nsecrets;
	const char **names;
	uint64_t inputs_gen; /* bumped whenever the policy inputs are replaced */
	struct mblob *blobs;
	size_t nblobs, cblobs;
	size_t *bidx; /* hash of blobs by (name, previous): index + 1, 0 = empty; NULL = none */
	size_t cbidx; /* 0 or a power of two */
	bool inputs_stale; /* the last load failed: inputs emptied, every mount denied */
	size_t nfailed;    /* mounted containers denied */
	int retry_ms;      /* current pause between retries (0: none pending) */
	int64_t retry_at;  /* mounts_mono_ms() of the next retry */
	struct mounts_stats st;
	/* scratch identity for mounts_identify of unregistered peers */
	char scratch_rt[32];
};

static int64_t mounts_now(void)
{
	return (int64_t)time(NULL);
}

static int64_t mounts_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- policy inputs ---- */

static void mounts_inputs_free(mounts *m)
{
	store_grants_free(m->sgrants, m->ngrants);
	m->sgrants = NULL;
	free(m->grants);
	m->grants = NULL;
	m->ngrants = 0;
	store_list_free(m->secrets, m->nsecrets);
	m->secrets = NULL;
	free(m->names);
	m->names = NULL;
	m->nsecrets = 0;
}

static int mounts_inputs_load(mounts *m)
{
	struct store_grant *sg = NULL;
	struct store_secret_info *si = NULL;
	size_t ng = 0, ns = 0;
	int r = engine_fault(ENGINE_FAULT_VIEW_INPUTS); /* 0 unless a test injects a failure */
	if (r == 0)
		r = store_grants(m->store, &sg, &ng);
	if (r < 0)
		return r;
	r = store_list(m->store, &si, &ns);
	if (r < 0) {
		store_grants_free(sg, ng);
		return r;
	}
	struct policy_grant *pg = calloc(ng ? ng : 1, sizeof(*pg));
	const char **names = calloc(ns ? ns : 1, sizeof(*names));
	if (!pg || !names) {
		free(pg);
		free(names);
		store_grants_free(sg, ng);
		store_list_free(si, ns);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ng; i++)
		pg[i] = (struct policy_grant){.secret = sg[i].secret,
					      .selector = sg[i].selector,
					      .path = sg[i].path,
					      .mode = sg[i].mode,
					      .uid = sg[i].uid,
					      .gid = sg[i].gid,
					      .flags = sg[i].flags};
	for (size_t i = 0; i < ns; i++)
		names[i] = si[i].name;
	mounts_inputs_free(m);
	m->inputs_gen++;
	m->sgrants = sg;
	m->ngrants = ng;
	m->grants = pg;
	m->secrets = si;
	m->nsecrets = ns;
	m->names = names;
	return 0;
}

/* Loads the inputs again when the last load failed (before a new mount uses them). */
static int mounts_inputs_fresh(mounts *m)
{
	if (!m->inputs_stale)
		return 0;
	int r = mounts_inputs_load(m);
	if (r == 0)
		m->inputs_stale = false;
	return r;
}

static const struct store_secret_info *mounts_secret(mounts *m, const char *name)
{
	size_t lo = 0, hi = m->nsecrets;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(m->secrets[mid].name, name);
		if (c == 0)
			return &m->secrets[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- blobs ---- */

static int mounts_previous_version(mounts *m, const char *name, uint64_t current, uint64_t *out)
{
	struct store_version_info *v = NULL;
	size_t n = 0;
	int r = store_versions(m->store, name, &v, &n);
	if (r < 0)
		return r;
	uint64_t best = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].version < current && v[i].version > best)
			best = v[i].version;
	store_versions_free(v, n);
	if (!best)
		return -ENOENT;
	*out = best;
	return 0;
}

static size_t mounts_bhash(const char *name, bool previous)
{
	uint64_t h = 1469598103934665603ULL ^ (previous ? 0x9e3779b97f4a7c15ULL : 0);
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)h;
}

static void mounts_bidx_put(mounts *m, size_t idx)
{
	size_t i = mounts_bhash(m->blobs[idx].name, m->blobs[idx].previous) & (m->cbidx - 1);
	while (m->bidx[i])
		i = (i + 1) & (m->cbidx - 1);
	m->bidx[i] = idx + 1;
}

/* Rebuilds the index for nblobs + 1 entries (at most half full). On ENOMEM the index is dropped
 * and lookups scan (slow, still right). */
static int mounts_bidx_rebuild(mounts *m)
{
	size_t cap = 64;
	while (cap < 2 * (m->nblobs + 1))
		cap *= 2;
	free(m->bidx);
	m->cbidx = 0;
	m->bidx = calloc(cap, sizeof(*m->bidx));
	if (!m->bidx)
		return -ENOMEM;
	m->cbidx = cap;
	for (size_t i = 0; i < m->nblobs; i++)
		mounts_bidx_put(m, i);
	return 0;
}

static struct mblob *mounts_blob_find(mounts *m, const char *name, bool previous)
{
	if (!m->bidx) {
		for (size_t i = 0; i < m->nblobs; i++)
			if (m->blobs[i].previous == previous && strcmp(m->blobs[i].name, name) == 0)
				return &m->blobs[i];
		return NULL;
	}
	for (size_t i = mounts_bhash(name, previous) & (m->cbidx - 1); m->bidx[i];
	     i = (i + 1) & (m->cbidx - 1)) {
		struct mblob *b = &m->blobs[m->bidx[i] - 1];
		if (b->previous == previous && strcmp(b->name, name) == 0)
			return b;
	}
	return NULL;
}

/* Returns the blob for (name, previous), decrypting only when the version changed. */
static int mounts_blob(mounts *m, const char *name, bool previous, sfs_blob **out)
{
	const struct store_secret_info *si = mounts_secret(m, name);
	if (!si)
		return -ENOENT;
	uint64_t want = si->current;
	if (previous) {
		int r = mounts_previous_version(m, name, si->current, &want);
		if (r < 0)
			return r;
	}
	struct mblob *b = mounts_blob_find(m, name, previous);
	if (b && b->version == want) {
		b->used = true;
		*out = b->blob;
		return 0;
	}
	uint8_t *val = NULL;
	size_t len = 0;
	int r = store_get(m->store, name, want, &val, &len, NULL);
	if (r < 0)
		return r;
	sfs_blob *nb = sfs_blob_new(val, len, want);
	store_value_free(val);
	if (!nb)
		return -ENOMEM;
	if (!b) {
		if (m->nblobs == m->cblobs) {
			size_t nc = m->cblobs ? m->cblobs * 2 : 16;
			struct mblob *n = realloc(m->blobs, nc * sizeof(*n));
			if (!n) {
				sfs_blob_unref(nb);
				return -ENOMEM;
			}
			m->blobs = n;
			m->cblobs = nc;
		}
		char *dup = strdup(name);
		if (!dup) {
			sfs_blob_unref(nb);
			return -ENOMEM;
		}
		b = &m->blobs[m->nblobs++];
		*b = (struct mblob){.name = dup, .previous = previous};
		if (m->bidx && 2 * (m->nblobs + 1) <= m->cbidx)
			mounts_bidx_put(m, m->nblobs - 1);
		else if (mounts_bidx_rebuild(m) < 0)
			m->bidx = NULL; /* scans until the next sweep rebuilds it */
	} else {
		sfs_blob_unref(b->blob);
	}
	b->version = want;
	b->blob = nb;
	b->used = true;
	*out = nb;
	return 0;
}

/* Drops cached blobs no view uses any more (mounts keep their own references). */
static void mounts_blobs_sweep(mounts *m)
{
	size_t j = 0;
	for (size_t i = 0; i < m->nblobs; i++) {
		if (m->blobs[i].used) {
			m->blobs[i].used = false;
			m->blobs[j++] = m->blobs[i];
		} else {
			sfs_blob_unref(m->blobs[i].blob);
			free(m->blobs[i].name);
		}
	}
	m->nblobs = j;
	if (mounts_bidx_rebuild(m) < 0)
		m->bidx = NULL; /* lookups scan until a rebuild succeeds */
}

/* ---- containers ---- */

static void mcont_identity(const struct mcont *c, struct policy_identity *who)
{
	*who = (struct policy_identity){.container = true,
					.runtime = c->runtime,
					.id = c->id,
					.name = c->name,
					.labels = c->labels,
					.nlabels = c->nlabels,
					.cgroup = c->cgroup,
					.uid = c->uid,
					.gid = c->gid};
}

static void mcont_cache_clear(struct mcont *c)
{
	memset(c->cache, 0, sizeof(c->cache));
}

static void mcont_unmount(struct mcont *c, bool in_namespace)
{
	if (!c->fs)
		return;
	if (in_namespace && c->pidfd >= 0 && pidfd_send_signal(c->pidfd, 0, NULL, 0) == 0)
		(void)nsmount_umount(c->pidfd, c->root, c->target);
	loop_del(c->m->loop, sfs_fd(c->fs));
	sfs_destroy(c->fs);
	c->fs = NULL;
	c->nfiles = 0;
	if (c->failed) {
		c->failed = false;
		c->m->nfailed--;
	}
	mcont_cache_clear(c);
}

static void mcont_free(struct mcont *c)
{
	if (!c)
		return;
	mcont_unmount(c, false);
	if (c->pidfd >= 0) {
		loop_del(c->m->loop, c->pidfd);
		close(c->pidfd);
	}
	for (size_t i = 0; i < c->nlabels; i++) {
		free((char *)c->labels[i].key);
		free((char *)c->labels[i].value);
	}
	free(c->labels);
	free(c->files);
	free(c->id);
	free(c->runtime);
	free(c->name);
	free(c->target);
	free(c->root);
	free(c);
}

static void mounts_unlink(mounts *m, struct mcont *c)
{
	for (struct mcont **p = &m->conts; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			m->ncont--;
			return;
		}
}

static struct mcont *mounts_find_id(mounts *m, const char *id)
{
	for (struct mcont *c = m->conts; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

/* The most specific known container whose cgroup holds path. */
static struct mcont *mounts_find_cgroup(mounts *m, const char *path)
{
	struct mcont *best = NULL;
	for (struct mcont *c = m->conts; c; c = c->next)
		if (strcmp(c->cgroup, "/") != 0 && cgroup_path_within(path, c->cgroup) &&
		    (!best || strlen(c->cgroup) > strlen(best->cgroup)))
			best = c;
	return best;
}

/* Runs first for every request that checks (sfs calls it before .opened): its procwatch_sync
 * also serves mcont_opened's procwatch_exe for the same request. */
static int mcont_check(void *ud, pid_t pid, uid_t uid, gid_t gid)
{
	struct mcont *c = ud;
	if (c->m->cfg.open_gate && c->m->cfg.open_gate(c->m->cfg.on_open_ud) < 0)
		return -EACCES; /* the audit cannot record: fail closed */
	procwatch *pw = c->m->cfg.procwatch;
	uint64_t token = 0;
	/* After the sync, every exit that happened before this request was sent has been applied:
	 * a token procwatch still gives for pid names the very process that sent it (a reused pid
	 * gets a new token), so a decision cached under it needs no system call. */
	if (pw && procwatch_sync(pw) == 0)
		token = procwatch_track(pw, pid);
	if (token)
		for (size_t i = 0; i < MOUNTS_CHECK_CACHE; i++) {
			struct mcheck *e = &c->cache[i];
			if (e->token != token || e->pid != pid)
				continue;
			if (!e->ok)
				c->denied++;
			return e->ok ? 0 : -EACCES;
		}
	struct ident id;
	bool ok = false;
	if (ident_from_pid(pid, &id) == 0) {
		ok = cgroup_path_within(id.cg.path, c->cgroup);
		ident_clear(&id);
		/* Untracked (a thread's tid, no procwatch): decided afresh each time. */
		if (token)
			c->cache[c->cache_next++ % MOUNTS_CHECK_CACHE] =
				(struct mcheck){.pid = pid, .token = token, .ok = ok};
	}
	if (!ok)
		c->denied++;
	return ok ? 0 : -EACCES;
}

static int mounts_file_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct policy_file *)elem)->path);
}

static void mcont_opened(void *ud, pid_t pid, uid_t uid, const char *path, uint64_t version,
			 int result)
{
	struct mcont *c = ud;
	c->opens++;
	c->m->st.opens++;
	if (result < 0)
		c->m->st.opens_denied++;
	if (!c->m->cfg.on_open)
		return;
	const char *secret = path;
	if (c->files_gen == c->m->inputs_gen && c->nfiles_view) {
		/* policy_view sorts files by path */
		const struct policy_file *f =
		    bsearch(path, c->files, c->nfiles_view, sizeof(*c->files), mounts_file_cmp);
		if (f)
			secret = f->secret;
	}
	const char *exe = NULL;
	if (c->m->cfg.procwatch) {
		/* mcont_check synced procwatch for this request (sfs calls it first). */
		exe = procwatch_exe(c->m->cfg.procwatch, pid);
		if (!exe)
			exe = "";
	}
	struct mounts_open_event ev = {.actor = c->name && *c->name ? c->name : c->id,
				       .pid = pid,
				       .exe = exe,
				       .uid = uid,
				       .secret = secret,
				       .path = path,
				       .version = version,
				       .result = result};
	c->m->cfg.on_open(c->m->cfg.on_open_ud, &ev);
}

/* Builds c's view and hands it to its sfs. */
static int mcont_apply_view(struct mcont *c)
{
	mounts *m = c->m;
	struct policy_identity who;
	mcont_identity(c, &who);
	struct policy_file *files = NULL;
	size_t nf = 0;
	int r = policy_view(m->grants, m->ngrants, m->names, m->nsecrets, &who, &files, &nf);
	if (r < 0)
		return r;
	struct sfs_entry *e = calloc(nf ? nf : 1, sizeof(*e));
	if (!e) {
		free(files);
		return -ENOMEM;
	}
	size_t ne = 0;
	for (size_t i = 0; i < nf; i++) {
		sfs_blob *b = NULL;
		r = mounts_blob(m, files[i].secret, files[i].previous, &b);
		if (r == -ENOENT && files[i].previous)
			continue; /* no previous version yet */
		if (r < 0) {
			/* cannot read or verify a value: this view cannot be applied */
			free(e);
			free(files);
			return r;
		}
		e[ne++] = (struct sfs_entry){.path = files[i].path,
					     .mode = files[i].mode,
					     .uid = files[i].uid,
					     .gid = files[i].gid,
					     .blob = b};
	}
	r = c->fs ? sfs_set_view(c->fs, e, ne) : 0;
	if (r == 0)
		c->nfiles = ne;
	free(e);
	if (r < 0) {
		free(files);
		return r;
	}
	free(c->files);
	c->files = files;
	c->nfiles_view = nf;
	c->files_gen = m->inputs_gen;
	return 0;
}

/* c's view could not be applied (err): deny its mount; reports the change of state once. */
static void mcont_fail(struct mcont *c, int err)
{
	mounts *m = c->m;
	m->st.view_failures++;
	if (c->fs && (!c->failed || !c->deny_ok))
		c->deny_ok = sfs_deny(c->fs) == 0;
	c->nfiles = 0;
	if (c->failed)
		return;
	c->failed = true;
	m->nfailed++;
	if (m->cfg.on_view)
		m->cfg.on_view(m->cfg.on_view_ud, c->name && *c->name ? c->name : c->id, err);
}

/* c's view was applied: it serves again if it was denied. */
static void mcont_recovered(struct mcont *c)
{
	mounts *m = c->m;
	if (!c->failed)
		return;
	c->failed = false;
	c->deny_ok = false;
	m->nfailed--;
	if (m->cfg.on_view)
		m->cfg.on_view(m->cfg.on_view_ud, c->name && *c->name ? c->name : c->id, 0);
}

static size_t mcont_count_view(struct mcont *c)
{
	struct policy_identity who;
	mcont_identity(c, &who);
	struct policy_file *files = NULL;
	size_t nf = 0;
	if (policy_view(c->m->grants, c->m->ngrants, c->m->names, c->m->nsecrets, &who, &files,
			&nf) < 0)
		return 0;
	free(files);
	return nf;
}

static void mcont_on_fuse(loop *l, int fd, uint32_t events, void *ud)
{
	struct mcont *c = ud;
	if (sfs_dispatch(c->fs) == -ENODEV) {
		/* Unmounted, or the mount namespace is gone: the container has left. */
		mcont_unmount(c, false);
		if (!c->hook) {
			mounts *m = c->m;
			mounts_unlink(m, c);
			mcont_free(c);
		}
	}
}

static void mcont_on_exit(loop *l, int fd, uint32_t events, void *ud)
{
	struct mcont *c = ud;
	mounts_unlink(c->m, c);
	mcont_free(c);
}

static int mcont_mount(struct mcont *c, int pidfd)
{
	struct sfs_config cfg = {.no_open = c->m->cfg.no_open, .dir_uid = c->uid, .dir_gid = c->gid};
	struct sfs_ops ops = {.check = mcont_check, .opened = mcont_opened};
	sfs *fs = NULL;
	int r = mounts_inputs_fresh(c->m);
	if (r < 0)
		return r;
	r = sfs_new(&fs, &cfg, &ops, c);
	if (r < 0)
		return r;
	c->fs = fs;
	r = mcont_apply_view(c);
	if (r < 0)
		goto fail;
	char data[256];
	r = sfs_mount_data(fs, data, sizeof(data));
	if (r < 0)
		goto fail;
	r = nsmount_fuse(pidfd, c->root, c->target, sfs_fd(fs), data);
	if (r < 0)
		goto fail;
	r = loop_add(c->m->loop, sfs_fd(fs), EPOLLIN, mcont_on_fuse, c);
	if (r < 0)
		goto fail;
	mounts_blobs_sweep(c->m);
	return 0;
fail:
	sfs_destroy(fs);
	c->fs = NULL;
	c->nfiles = 0;
	mounts_blobs_sweep(c->m);
	return r;
}

static bool mounts_id_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static int mounts_target_ok(const char *t)
{
	if (!t || t[0] != '/' || strlen(t) > SECRETD_PATH_MAX)
		return -EINVAL;
	return names_check(t + 1, strlen(t + 1), NULL);
}

static struct mcont *mcont_new(mounts *m, const char *id, const char *runtime, const char *name)
{
	struct mcont *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->m = m;
	c->pidfd = -1;
	c->id = strdup(id);
	c->runtime = strdup(runtime ? runtime : "oci");
	c->name = strdup(name ? name : "");
	c->created = c->last_seen = mounts_now();
	if (!c->id || !c->runtime || !c->name) {
		mcont_free(c);
		return NULL;
	}
	return c;
}

int mounts_attach(mounts *m, const struct mounts_attach_req *r, bool *mounted, size_t *files)
{
	*mounted = false;
	*files = 0;
	if (!r->id || !mounts_id_ok(r->id, MOUNTS_ID_MAX) || r->pid <= 0)
		return -EINVAL;
	if (r->name && *r->name && !mounts_id_ok(r->name, MOUNTS_NAME_MAX))
		return -EINVAL;
	const char *target = r->target && *r->target ? r->target : SECRETD_MOUNT_DEFAULT;
	if (mounts_target_ok(target) < 0 || (r->root && r->root[0] != '/'))
		return -EINVAL;
	if (r->nlabels > POLICY_LABELS_MAX)
		return -E2BIG;
	struct mcont *old = mounts_find_id(m, r->id);
	if (old) {
		if (old->hook)
			return -EEXIST;
		mounts_unlink(m, old); /* seen before on the workload socket: now registered */
		mcont_free(old);
	}
	struct ident id;
	int rc = ident_from_pid(r->pid, &id);
	if (rc < 0)
		return rc;
	struct mcont *c = mcont_new(m, r->id, r->runtime, r->name);
	if (!c) {
		ident_clear(&id);
		return -ENOMEM;
	}
	c->hook = true;
	c->pid = r->pid;
	c->pidfd = id.pidfd;
	id.pidfd = -1;
	snprintf(c->cgroup, sizeof(c->cgroup), "%s", id.cg.path);
	c->uid = r->uid >= 0 ? (uint32_t)r->uid : id.uid;
	c->gid = r->gid >= 0 ? (uint32_t)r->gid : id.gid;
	c->target = strdup(target);
	c->root = r->root ? strdup(r->root) : NULL;
	c->labels = calloc(r->nlabels ? r->nlabels : 1, sizeof(*c->labels));
	if (!c->target || (r->root && !c->root) || !c->labels) {
		mcont_free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->nlabels; i++) {
		c->labels[i].key = strdup(r->labels[i].key);
		c->labels[i].value = strdup(r->labels[i].value);
		c->nlabels++;
		if (!c->labels[i].key || !c->labels[i].value) {
			mcont_free(c);
			return -ENOMEM;
		}
	}
	rc = mounts_inputs_fresh(m);
	if (rc < 0) {
		mcont_free(c);
		return rc;
	}
	size_t want_files = mcont_count_view(c);
	if ((want_files > 0 || r->wants) && strcmp(c->cgroup, "/") == 0) {
		/* Every host process shares this cgroup: opens could not be told apart. A container
		 * that wants nothing may still start without a cgroup of its own. */
		mcont_free(c);
		return -EPERM;
	}
	if (want_files > 0 || r->wants) {
		rc = mcont_mount(c, c->pidfd);
		if (rc < 0) {
			mcont_free(c);
			return rc;
		}
		*mounted = true;
		*files = c->nfiles;
	}
	rc = loop_add(m->loop, c->pidfd, EPOLLIN, mcont_on_exit, c);
	if (rc < 0) {
		mcont_free(c);
		return rc;
	}
	c->next = m->conts;
	m->conts = c;
	m->ncont++;
	return 0;
}

int mounts_detach(mounts *m, const char *id)
{
	struct mcont *c = mounts_find_id(m, id);
	if (!c)
		return -ENOENT;
	mcont_unmount(c, true);
	mounts_unlink(m, c);
	mcont_free(c);
	return 0;
}

/* Makes room for one more seen-only container: forgets the oldest unmounted ones. */
static void mounts_seen_trim(mounts *m)
{
	for (;;) {
		struct mcont *oldest = NULL;
		size_t nseen = 0;
		for (struct mcont *c = m->conts; c; c = c->next)
			if (!c->hook && !c->fs) {
				nseen++;
				if (!oldest || c->last_seen < oldest->last_seen)
					oldest = c;
			}
		if (nseen < MOUNTS_SEEN_MAX || !oldest)
			return;
		mounts_unlink(m, oldest);
		mcont_free(oldest);
	}
}

/* The record for an unregistered well-known container, created on first sight. */
static struct mcont *mounts_seen(mounts *m, const struct ident *who)
{
	const char *rt = cgroup_runtime_name(who->cg.runtime);
	struct mcont *c = mounts_find_id(m, who->cg.id);
	if (c) {
		c->last_seen = mounts_now();
		return c;
	}
	mounts_seen_trim(m);
	c = mcont_new(m, who->cg.id, rt, "");
	if (!c)
		return NULL;
	snprintf(c->cgroup, sizeof(c->cgroup), "%s", who->cg.path);
	c->uid = who->uid;
	c->gid = who->gid;
	c->next = m->conts;
	m->conts = c;
	m->ncont++;
	return c;
}

void mounts_identify(mounts *m, const struct ident *who, struct policy_identity *out)
{
	struct mcont *c = mounts_find_cgroup(m, who->cg.path);
	if (!c && who->cg.runtime != CGROUP_RT_NONE)
		c = mounts_seen(m, who);
	if (c) {
		c->last_seen = mounts_now();
		mcont_identity(c, out);
		/* The peer's own uid, not the container's default file owner. */
		out->uid = who->uid;
		out->gid = who->gid;
		return;
	}
	*out = (struct policy_identity){.container = false,
					.runtime = "host",
					.id = "",
					.name = "",
					.cgroup = who->cg.path,
					.uid = who->uid,
					.gid = who->gid};
}

int mounts_mount_self(mounts *m, const struct ident *who, const char *target, size_t *files)
{
	*files = 0;
	target = target && *target ? target : SECRETD_MOUNT_DEFAULT;
	if (mounts_target_ok(target) < 0)
		return -EINVAL;
	struct mcont *c = mounts_find_cgroup(m, who->cg.path);
	if (!c && who->cg.runtime != CGROUP_RT_NONE)
		c = mounts_seen(m, who);
	if (!c)
		return -EPERM;
	if (c->fs)
		return -EEXIST;
	char *t = strdup(target);
	if (!t)
		return -ENOMEM;
	free(c->target);
	c->target = t;
	free(c->root);
	c->root = NULL;
	if (!c->hook) {
		c->uid = who->uid;
		c->gid = who->gid;
	}
	int r = mcont_mount(c, who->pidfd);
	if (r < 0)
		return r;
	*files = c->nfiles;
	return 0;
}

bool mounts_allows(mounts *m, const struct policy_identity *who, const char *name)
{
	/* The same work whether name exists or not, and whatever the grants on it: every grant's
	 * selector and pattern are evaluated (no early exit), existence is looked up last, and
	 * the answers are combined without branching on either. A secret's existence must not
	 * show in the time of a refusal (policy_allows would stop at the first match). */
	bool granted = false;
	if (names_check(name, strlen(name), NULL) == 0) {
		for (size_t i = 0; i < m->ngrants; i++) {
			const struct policy_grant *g = &m->grants[i];
			bool sel = policy_selector_match(g->selector, who);
			bool pat = g->secret &&
			           names_check_pattern(g->secret, strlen(g->secret), NULL) == 0;
			pat = pat & names_pattern_match(g->secret ? g->secret : "", name);
			granted = granted | (sel & pat);
		}
	}
	bool exists = mounts_secret(m, name) != NULL;
	return granted & exists;
}

json_t *mounts_granted_json(mounts *m, const struct policy_identity *who)
{
	json_t *a = json_array();
	if (!a)
		return NULL;
	for (size_t i = 0; i < m->nsecrets; i++)
		if (policy_allows(m->grants, m->ngrants, who, m->names[i]))
			json_array_append_new(a, json_string(m->names[i]));
	return a;
}

/* Schedules the next retry while something is denied or stale (the pause doubles from
 * MOUNTS_RETRY_MIN_MS to MOUNTS_RETRY_MAX_MS), or ends the retries. */
static void mounts_retry_arm(mounts *m)
{
	if (!m->nfailed && !m->inputs_stale) {
		m->retry_ms = 0;
		return;
	}
	m->retry_ms = m->retry_ms ? m->retry_ms * 2 : MOUNTS_RETRY_MIN_MS;
	if (m->retry_ms > MOUNTS_RETRY_MAX_MS)
		m->retry_ms = MOUNTS_RETRY_MAX_MS;
	m->retry_at = mounts_mono_ms() + m->retry_ms;
}

int mounts_refresh(mounts *m, size_t *unapplied)
{
	m->st.refreshes++;
	int first_err = mounts_inputs_load(m);
	if (first_err < 0) {
		/* Grants and names as of an older state: nothing may be decided on them. */
		mounts_inputs_free(m);
		m->inputs_gen++;
		m->inputs_stale = true;
		for (struct mcont *c = m->conts; c; c = c->next)
			if (c->fs)
				mcont_fail(c, first_err);
	} else {
		m->inputs_stale = false;
		for (struct mcont *c = m->conts; c; c = c->next) {
			if (!c->fs)
				continue;
			int r = mcont_apply_view(c);
			if (r < 0) {
				mcont_fail(c, r);
				if (!first_err)
					first_err = r;
			} else {
				mcont_recovered(c);
			}
		}
		mounts_blobs_sweep(m);
	}
	mounts_retry_arm(m);
	if (unapplied)
		*unapplied = m->nfailed;
	return first_err;
}

/* The retry: a whole refresh once the pause is over. */
static int mounts_prepare(loop *l, void *ud)
{
	mounts *m = ud;
	if (!m->retry_ms)
		return -1;
	int64_t wait = m->retry_at - mounts_mono_ms();
	if (wait > 0) /* other events wake the loop too: the pause counts from the failure */
		return (int)wait;
	if (mounts_refresh(m, NULL) < 0 || m->retry_ms)
		return m->retry_ms;
	return -1;
}

int mounts_name_check(const char *name, size_t len, const char **why)
{
	size_t vl = strlen(SFS_VERSION_FILE), pl = strlen(SFS_PREVIOUS_SUFFIX);
	if (len >= vl && memcmp(name, SFS_VERSION_FILE, vl) == 0 &&
	    (len == vl || name[vl] == '/')) {
		if (why)
			*why =
			    "the first segment .version is reserved (every mount's root shows its "
			    "change counter there)";
		return -EINVAL;
	}
	if (len >= pl && memcmp(name + len - pl, SFS_PREVIOUS_SUFFIX, pl) == 0) {
		if (why)
			*why = "names ending in .previous are reserved (a --previous grant shows "
			       "NAME.previous)";
		return -EINVAL;
	}
	return 0;
}

int mounts_new(mounts **out, loop *l, store *s, const struct mounts_config *cfg)
{
	mounts *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = l;
	m->store = s;
	if (cfg)
		m->cfg = *cfg;
	int r = mounts_inputs_load(m);
	if (r == 0 && l)
		r = loop_add_prepare(l, mounts_prepare, m);
	if (r < 0) {
		mounts_inputs_free(m);
		free(m);
		return r;
	}
	*out = m;
	return 0;
}

void mounts_free(mounts *m)
{
	if (!m)
		return;
	while (m->conts) {
		struct mcont *c = m->conts;
		m->conts = c->next;
		mcont_unmount(c, true);
		mcont_free(c);
	}
	for (size_t i = 0; i < m->nblobs; i++) {
		sfs_blob_unref(m->blobs[i].blob);
		free(m->blobs[i].name);
	}
	free(m->blobs);
	free(m->bidx);
	mounts_inputs_free(m);
	free(m);
}

json_t *mounts_list_json(mounts *m)
{
	json_t *a = json_array();
	if (!a)
		return NULL;
	for (struct mcont *c = m->conts; c; c = c->next) {
		json_t *labels = json_object();
		for (size_t i = 0; i < c->nlabels; i++)
			json_object_set_new(labels, c->labels[i].key, json_string(c->labels[i].value));
		json_t *o =
		    json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:I, s:I, s:s, s:b, s:s?, s:I, "
		              "s:I, s:I, s:I, s:I, s:b}",
		              "id", c->id, "runtime", c->runtime, "name", c->name, "labels", labels,
		              "cgroup", c->cgroup, "pid", (int)c->pid, "uid", (json_int_t)c->uid,
		              "gid", (json_int_t)c->gid, "source", c->hook ? "hook" : "workload",
		              "mounted", c->fs != NULL, "mount", c->fs ? c->target : NULL, "files",
		              (json_int_t)c->nfiles, "opens", (json_int_t)c->opens, "denied",
		              (json_int_t)c->denied, "created", (json_int_t)c->created, "last_seen",
		              (json_int_t)c->last_seen, "failed_closed", c->failed);
		if (o)
			json_array_append_new(a, o);
	}
	return a;
}

void mounts_get_stats(mounts *m, struct mounts_stats *st)
{
	*st = m->st;
	st->containers = m->ncont;
	st->failed_closed = m->nfailed;
	st->mounted = 0;
	st->files = 0;
	for (struct mcont *c = m->conts; c; c = c->next)
		if (c->fs) {
			st->mounted++;
			st->files += c->nfiles;
		}
}
