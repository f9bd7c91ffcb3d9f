/* views: what each container sees. The policy inputs (grants and secret names read from the
 * store), a container's view computed from them (policy_view, values through the blob cache),
 * applying it to its mount, and the fail-closed machinery: a view that cannot be applied denies
 * its mount and the refresh is retried with a growing pause (see mounts_refresh in mounts.h).
 * Also the workload API's decision (mounts_allows) and the names a view reserves. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/engine/fault.h"
#include "broker/engine/mounts_int.h"
#include "common/secret.h"
#include "common/names.h"

static int64_t views_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- policy inputs ---- */

void views_inputs_free(mounts *m)
{
	struct views_inputs *in = &m->in;
	store_grants_free(in->sgrants, in->nsgrants);
	in->nsgrants = 0;
	in->sgrants = NULL;
	free(in->grants);
	in->grants = NULL;
	in->ngrants = 0;
	store_list_free(in->secrets, in->nsecrets);
	in->secrets = NULL;
	free(in->tgrants);
	in->tgrants = NULL;
	in->ntgrants = 0;
	store_tmpl_list_free(in->tmpls, in->ntmpls);
	in->tmpls = NULL;
	in->ntmpls = 0;
	free(in->names);
	in->names = NULL;
	in->nsecrets = 0;
}

int views_inputs_load(mounts *m)
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
	struct store_tmpl_info *ti = NULL;
	size_t nt = 0;
	r = store_tmpl_list(m->store, &ti, &nt);
	if (r < 0) {
		store_grants_free(sg, ng);
		store_list_free(si, ns);
		return r;
	}
	struct policy_grant *pg = calloc(ng ? ng : 1, sizeof(*pg));
	struct policy_grant *tg = calloc(ng ? ng : 1, sizeof(*tg));
	const char **names = calloc(ns ? ns : 1, sizeof(*names));
	if (!pg || !tg || !names) {
		free(pg);
		free(tg);
		free(names);
		store_grants_free(sg, ng);
		store_list_free(si, ns);
		store_tmpl_list_free(ti, nt);
		return -ENOMEM;
	}
	size_t npg = 0, ntg = 0;
	for (size_t i = 0; i < ng; i++) {
		struct policy_grant g = {.secret = sg[i].secret,
		                         .selector = sg[i].selector,
		                         .path = sg[i].path,
		                         .mode = sg[i].mode,
		                         .uid = sg[i].uid,
		                         .gid = sg[i].gid,
		                         .flags = sg[i].flags};
		if (rendered_is_grant(g.secret))
			tg[ntg++] = g;
		else
			pg[npg++] = g;
	}
	for (size_t i = 0; i < ns; i++)
		names[i] = si[i].name;
	views_inputs_free(m);
	struct views_inputs *in = &m->in;
	in->gen++;
	in->sgrants = sg;
	in->nsgrants = ng;
	in->grants = pg;
	in->ngrants = npg;
	in->tgrants = tg;
	in->ntgrants = ntg;
	in->tmpls = ti;
	in->ntmpls = nt;
	in->secrets = si;
	in->nsecrets = ns;
	in->names = names;
	return 0;
}

int views_inputs_fresh(mounts *m)
{
	if (!m->in.stale)
		return 0;
	int r = views_inputs_load(m);
	if (r == 0)
		m->in.stale = false;
	return r;
}

static const struct store_secret_info *views_secret(mounts *m, const char *name)
{
	size_t lo = 0, hi = m->in.nsecrets;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(m->in.secrets[mid].name, name);
		if (c == 0)
			return &m->in.secrets[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool views_has_secret(mounts *m, const char *name)
{
	return views_secret(m, name) != NULL;
}

int views_secret_version(mounts *m, const char *name, struct mver *ver)
{
	const struct store_secret_info *si = views_secret(m, name);
	if (!si)
		return -ENOENT;
	*ver = (struct mver){.sid = si->id, .version = si->current};
	return 0;
}

int mounts_value_cached(mounts *m, const char *name, struct secret **out, uint64_t *version)
{
	*out = NULL;
	struct mver v;
	if (m->in.stale || views_secret_version(m, name, &v) < 0)
		return -ENOENT;
	sfs_blob *b = blobcache_peek(&m->blobs, name, false, v);
	if (!b)
		return -ENOENT;
	*out = secret_ref(sfs_blob_secret(b));
	*version = v.version;
	return 0;
}

/* ---- computing a view ---- */

static int views_previous_version(mounts *m, const char *name, uint64_t current, uint64_t *out)
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

/* The blob a file of the view shows: the secret's current version, or for a .previous file the
 * newest one before it (-ENOENT when there is none yet). */
static int views_blob(mounts *m, const char *name, bool previous, sfs_blob **out)
{
	const struct store_secret_info *si = views_secret(m, name);
	if (!si)
		return -ENOENT;
	struct mver want = {.sid = si->id, .version = si->current};
	if (previous) {
		int r = views_previous_version(m, name, si->current, &want.version);
		if (r < 0)
			return r;
	}
	return blobcache_get(&m->blobs, m->store, name, previous, want, out);
}

void views_clear(struct mview *v)
{
	free(v->entries);
	free(v->files);
	*v = (struct mview){0};
}

int views_build(mounts *m, const struct policy_identity *who, struct mview *out)
{
	*out = (struct mview){0};
	struct policy_file *files = NULL;
	size_t nf = 0;
	int r =
	    policy_view(m->in.grants, m->in.ngrants, m->in.names, m->in.nsecrets, who, &files, &nf);
	if (r == 0)
		r = rendered_merge(m, who, &files, &nf);
	if (r < 0) {
		free(files);
		return r;
	}
	struct sfs_entry *e = calloc(nf ? nf : 1, sizeof(*e));
	if (!e) {
		free(files);
		return -ENOMEM;
	}
	size_t ne = 0;
	for (size_t i = 0; i < nf; i++) {
		sfs_blob *b = NULL;
		bool rendered = rendered_is_grant(files[i].secret);
		r = rendered ? rendered_blob(m, files[i].secret, &b)
		             : views_blob(m, files[i].secret, files[i].previous, &b);
		if (r == -ENOENT && (files[i].previous || rendered))
			continue; /* no previous version yet; an input of a rendering is gone */
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
	*out = (struct mview){.files = files, .nfiles = nf, .entries = e, .nentries = ne};
	return 0;
}

/* ---- applying views, failing closed ---- */

int views_apply(struct mcont *c)
{
	mounts *m = c->m;
	struct policy_identity who;
	registry_identity(c, &who);
	struct mview v;
	int r = views_build(m, &who, &v);
	if (r < 0)
		return r;
	r = c->fs ? sfs_set_view(c->fs, v.entries, v.nentries) : 0;
	if (r == 0)
		c->nfiles = v.nentries;
	free(v.entries);
	if (r < 0) {
		free(v.files);
		return r;
	}
	free(c->files);
	c->files = v.files;
	c->nfiles_view = v.nfiles;
	c->files_gen = m->in.gen;
	return 0;
}

size_t views_count(struct mcont *c)
{
	struct policy_identity who;
	registry_identity(c, &who);
	struct policy_file *files = NULL;
	size_t nf = 0;
	/* the secrets' files and the rendered ones: what the mount will show */
	if (policy_view(c->m->in.grants, c->m->in.ngrants, c->m->in.names, c->m->in.nsecrets, &who,
	                &files, &nf) < 0)
		return 0;
	size_t ns = nf;
	if (rendered_merge(c->m, &who, &files, &nf) < 0)
		nf = ns ? ns
		        : 1; /* a template granted to c cannot be read: mount, and fail closed */
	free(files);
	return nf;
}

/* c's view could not be applied (err): deny its mount; reports the change of state once. */
static void views_fail(struct mcont *c, int err)
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
static void views_recovered(struct mcont *c)
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

/* Schedules the next retry while something is denied or stale (the pause doubles from
 * MOUNTS_RETRY_MIN_MS to MOUNTS_RETRY_MAX_MS), or ends the retries. */
static void views_retry_arm(mounts *m)
{
	if (!m->nfailed && !m->in.stale) {
		m->retry_ms = 0;
		return;
	}
	m->retry_ms = m->retry_ms ? m->retry_ms * 2 : MOUNTS_RETRY_MIN_MS;
	if (m->retry_ms > MOUNTS_RETRY_MAX_MS)
		m->retry_ms = MOUNTS_RETRY_MAX_MS;
	m->retry_at = views_mono_ms() + m->retry_ms;
}

int mounts_refresh(mounts *m, size_t *unapplied)
{
	m->st.refreshes++;
	int first_err = views_inputs_load(m);
	if (first_err < 0) {
		/* Grants and names as of an older state: nothing may be decided on them. */
		views_inputs_free(m);
		m->in.gen++;
		m->in.stale = true;
		for (struct mcont *c = m->conts; c; c = c->next)
			if (c->fs)
				views_fail(c, first_err);
	} else {
		m->in.stale = false;
		for (struct mcont *c = m->conts; c; c = c->next) {
			if (!c->fs)
				continue;
			int r = views_apply(c);
			if (r < 0) {
				views_fail(c, r);
				if (!first_err)
					first_err = r;
			} else {
				views_recovered(c);
			}
		}
		blobcache_sweep(&m->blobs);
		rendered_sweep(&m->renders);
	}
	views_retry_arm(m);
	if (unapplied)
		*unapplied = m->nfailed;
	return first_err;
}

int views_retry_prepare(loop *l, void *ud)
{
	(void)l;
	mounts *m = ud;
	if (!m->retry_ms)
		return -1;
	int64_t wait = m->retry_at - views_mono_ms();
	if (wait > 0) /* other events wake the loop too: the pause counts from the failure */
		return (int)wait;
	if (mounts_refresh(m, NULL) < 0 || m->retry_ms)
		return m->retry_ms;
	return -1;
}

/* ---- decisions on the inputs ---- */

bool mounts_allows(mounts *m, const struct policy_identity *who, const char *name)
{
	/* The same work whether name exists or not, and whatever the grants on it: every grant's
	 * selector and pattern are evaluated (no early exit), existence is looked up last, and
	 * the answers are combined without branching on either. A secret's existence must not
	 * show in the time of a refusal (policy_allows would stop at the first match). */
	bool granted = false;
	if (names_check(name, strlen(name), NULL) == 0) {
		for (size_t i = 0; i < m->in.ngrants; i++) {
			const struct policy_grant *g = &m->in.grants[i];
			bool sel = policy_selector_match(g->selector, who);
			bool pat = g->secret &&
			           names_check_pattern(g->secret, strlen(g->secret), NULL) == 0;
			pat = pat & names_pattern_match(g->secret ? g->secret : "", name);
			granted = granted | (sel & pat);
		}
	}
	bool exists = views_secret(m, name) != NULL;
	return granted & exists;
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
