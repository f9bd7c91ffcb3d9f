#include "broker/mounts.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <time.h>
#include <unistd.h>

#include "broker/cgroup.h"
#include "broker/nsmount.h"
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
	struct mounts_stats st;
	/* scratch identity for mounts_identify of unregistered peers */
	char scratch_rt[32];
};

static int64_t mounts_now(void)
{
	return (int64_t)time(NULL);
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
	int r = store_grants(m->store, &sg, &ng);
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
	struct mblob *b = NULL;
	for (size_t i = 0; i < m->nblobs; i++)
		if (m->blobs[i].previous == previous && strcmp(m->blobs[i].name, name) == 0) {
			b = &m->blobs[i];
			break;
		}
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
	if (c->files_gen == c->m->inputs_gen)
		for (size_t i = 0; i < c->nfiles_view; i++)
			if (strcmp(c->files[i].path, path) == 0) {
				secret = c->files[i].secret;
				break;
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
		if (mounts_blob(m, files[i].secret, files[i].previous, &b) < 0)
			continue; /* e.g. no previous version yet */
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
	free(c->files);
	c->files = files;
	c->nfiles_view = nf;
	c->files_gen = m->inputs_gen;
	return r;
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
	int r = sfs_new(&fs, &cfg, &ops, c);
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

int mounts_refresh(mounts *m)
{
	int r = mounts_inputs_load(m);
	if (r < 0)
		return r;
	int first_err = 0;
	for (struct mcont *c = m->conts; c; c = c->next) {
		if (!c->fs)
			continue;
		r = mcont_apply_view(c);
		if (r < 0 && !first_err)
			first_err = r;
	}
	mounts_blobs_sweep(m);
	m->st.refreshes++;
	return first_err;
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
	if (r < 0) {
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
		json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:I, s:I, s:s, s:b, s:s?, s:I, "
				      "s:I, s:I, s:I, s:I}",
				      "id", c->id, "runtime", c->runtime, "name", c->name, "labels",
				      labels, "cgroup", c->cgroup, "pid", (int)c->pid, "uid",
				      (json_int_t)c->uid, "gid", (json_int_t)c->gid, "source",
				      c->hook ? "hook" : "workload", "mounted", c->fs != NULL,
				      "mount", c->fs ? c->target : NULL, "files",
				      (json_int_t)c->nfiles, "opens", (json_int_t)c->opens, "denied",
				      (json_int_t)c->denied, "created", (json_int_t)c->created,
				      "last_seen", (json_int_t)c->last_seen);
		if (o)
			json_array_append_new(a, o);
	}
	return a;
}

void mounts_get_stats(mounts *m, struct mounts_stats *st)
{
	*st = m->st;
	st->containers = m->ncont;
	st->mounted = 0;
	st->files = 0;
	for (struct mcont *c = m->conts; c; c = c->next)
		if (c->fs) {
			st->mounted++;
			st->files += c->nfiles;
		}
}
