/* rendered: the rendered files of the views (issue 17). A grant of "tmpl:NAME" shows template
 * NAME rendered, to a container granted the template AND every secret it references (else the
 * file does not exist). One rendering per template is shared by every view that shows it,
 * cached with the versions it was made from (the template's and each referenced secret's): a
 * refresh that changes none of them hands the very same blob back (sfs leaves the file alone), a
 * changed input renders a new blob (sfs invalidates that file only; open handles keep the old
 * one whole). Rendered bytes live only in locked memory (tmpl_render_secret -> sfs_blob_wrap). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/engine/mounts_int.h"
#include "broker/rules/tmpl.h"
#include "common/names.h"
#include "common/secret.h"

/* ---- the inputs: templates and template grants ---- */

bool rendered_is_grant(const char *target)
{
	return target &&
	       strncmp(target, STORE_GRANT_TMPL_PREFIX, strlen(STORE_GRANT_TMPL_PREFIX)) == 0;
}

static const struct store_tmpl_info *rendered_tmpl_info(const mounts *m, const char *name)
{
	for (size_t i = 0; i < m->in.ntmpls; i++)
		if (strcmp(m->in.tmpls[i].name, name) == 0)
			return &m->in.tmpls[i];
	return NULL;
}

static struct mrender *rendered_find(struct rendercache *rc, const char *name)
{
	for (size_t i = 0; i < rc->n; i++)
		if (strcmp(rc->v[i].name, name) == 0)
			return &rc->v[i];
	return NULL;
}

static void rendered_entry_clear(struct mrender *e)
{
	free(e->name);
	tmpl_free(e->t);
	free(e->refv);
	sfs_blob_unref(e->blob);
	*e = (struct mrender){0};
}

/* The cache entry of template name holding tver parsed (decrypted and parsed again when the
 * version changed, or the name now is another template's). */
static int rendered_entry(mounts *m, const char *name, struct mver tver, struct mrender **out)
{
	struct rendercache *rc = &m->renders;
	struct mrender *e = rendered_find(rc, name);
	if (e && e->t && e->tver.sid == tver.sid && e->tver.version == tver.version) {
		*out = e;
		return 0;
	}
	_cleanup_secret_ secret *body = NULL;
	int r = store_tmpl_get_of(m->store, name, tver.sid, tver.version, &body);
	if (r < 0)
		return r == -ENOENT ? -EBADMSG : r; /* listed a moment ago, in the same refresh */
	tmpl *t = NULL;
	r = tmpl_parse((const char *)secret_data(body), secret_len(body), &t, NULL);
	if (r < 0)
		return -EBADMSG; /* it parsed when it was put: not what was stored */
	struct mver *refv = calloc(tmpl_nrefs(t) ? tmpl_nrefs(t) : 1, sizeof(*refv));
	if (!refv) {
		tmpl_free(t);
		return -ENOMEM;
	}
	if (!e) {
		if (rc->n == rc->cap) {
			size_t nc = rc->cap ? rc->cap * 2 : 8;
			struct mrender *nv = realloc(rc->v, nc * sizeof(*nv));
			if (!nv) {
				tmpl_free(t);
				free(refv);
				return -ENOMEM;
			}
			rc->v = nv;
			rc->cap = nc;
		}
		char *dup = strdup(name);
		if (!dup) {
			tmpl_free(t);
			free(refv);
			return -ENOMEM;
		}
		e = &rc->v[rc->n++];
		*e = (struct mrender){.name = dup};
	} else {
		tmpl_free(e->t);
		free(e->refv);
		sfs_blob_unref(e->blob);
		e->blob = NULL;
	}
	e->t = t;
	e->tver = tver;
	e->refv = refv;
	*out = e;
	return 0;
}

/* ---- which rendered files a view shows ---- */

/* Whether path (pl bytes) clashes with one of v[0..n): the same path, or one a directory of the
 * other (the view could not be laid out: sfs refuses it, failing the whole view closed). */
static bool rendered_path_clash(const struct policy_file *v, size_t n, const char *path, size_t pl)
{
	for (size_t k = 0; k < n; k++) {
		const char *q = v[k].path;
		size_t ql = strlen(q), m = ql < pl ? ql : pl;
		if (memcmp(q, path, m) == 0 && (ql == pl || (ql < pl ? path[ql] : q[pl]) == '/'))
			return true;
	}
	return false;
}

static int rendered_file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct policy_file *)a)->path, ((const struct policy_file *)b)->path);
}

/* Is who granted every secret template name references (and does each exist)? -ENOENT when
 * not (no file), 0 when so. */
static int rendered_inputs_granted(mounts *m, const struct policy_identity *who, const char *name)
{
	const struct store_tmpl_info *ti = rendered_tmpl_info(m, name);
	if (!ti)
		return -ENOENT;
	struct mrender *e;
	int r = rendered_entry(m, name, (struct mver){.sid = ti->id, .version = ti->current}, &e);
	if (r < 0)
		return r;
	e->used = true;
	for (size_t i = 0; i < tmpl_nrefs(e->t); i++) {
		const char *ref = tmpl_ref(e->t, i);
		if (!policy_allows(m->in.grants, m->in.ngrants, who, ref) ||
		    !views_has_secret(m, ref))
			return -ENOENT;
	}
	return 0;
}

int rendered_merge(mounts *m, const struct policy_identity *who, struct policy_file **files,
                   size_t *nf)
{
	size_t ns = *nf, n = ns, cap = ns;
	struct policy_file *v = *files;
	for (size_t i = 0; i < m->in.ntgrants; i++) {
		const struct policy_grant *g = &m->in.tgrants[i];
		if (!policy_selector_match(g->selector, who))
			continue;
		const char *name = g->secret + strlen(STORE_GRANT_TMPL_PREFIX);
		const char *path = g->path ? g->path : name;
		size_t pl = strlen(path);
		if (pl >= sizeof(v->path) || names_check(path, pl, NULL) < 0 ||
		    mounts_name_check(path, pl, NULL) < 0)
			continue;
		/* a secret's file keeps its path (and its directories); among template grants the
		 * first wins */
		if (rendered_path_clash(v, n, path, pl))
			continue;
		int64_t uid = g->uid < 0 ? who->uid : g->uid, gid = g->gid < 0 ? who->gid : g->gid;
		int r = rendered_inputs_granted(m, who, name);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct policy_file *nv = realloc(v, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			v = nv;
			cap = nc;
			*files = v;
		}
		struct policy_file *f = &v[n++];
		*f = (struct policy_file){.secret = g->secret,
		                          .mode = g->mode ? (g->mode & 0777) : POLICY_MODE_DEFAULT,
		                          .uid = (uint32_t)uid,
		                          .gid = (uint32_t)gid};
		memcpy(f->path, path, pl + 1);
		*nf = n;
	}
	if (n > ns)
		qsort(v, n, sizeof(*v), rendered_file_cmp);
	return 0;
}

/* ---- rendering ---- */

struct rendered_lookup {
	mounts *m;
	size_t nrefs;
	const char *const *names;
	sfs_blob **blobs;
	const struct mver *versions;
};

static int rendered_lookup(void *ud, const char *name, const uint8_t **val, size_t *len,
                           uint64_t *version)
{
	struct rendered_lookup *l = ud;
	for (size_t i = 0; i < l->nrefs; i++)
		if (strcmp(l->names[i], name) == 0) {
			secret *s = sfs_blob_secret(l->blobs[i]);
			*val = secret_data(s);
			*len = secret_len(s);
			*version = l->versions[i].version;
			return 0;
		}
	return -ENOENT;
}

int rendered_blob(mounts *m, const char *grant_target, sfs_blob **out)
{
	const char *name = grant_target + strlen(STORE_GRANT_TMPL_PREFIX);
	const struct store_tmpl_info *ti = rendered_tmpl_info(m, name);
	if (!ti)
		return -ENOENT;
	struct mrender *e;
	int r = rendered_entry(m, name, (struct mver){.sid = ti->id, .version = ti->current}, &e);
	if (r < 0)
		return r;
	e->used = true;
	size_t n = tmpl_nrefs(e->t);
	struct mver cur[TMPL_REFS_MAX];
	bool same = e->blob != NULL;
	for (size_t i = 0; i < n; i++) {
		r = views_secret_version(m, tmpl_ref(e->t, i), &cur[i]);
		if (r < 0)
			return r;
		same = same && cur[i].sid == e->refv[i].sid && cur[i].version == e->refv[i].version;
	}
	if (same) {
		*out = e->blob;
		return 0;
	}
	/* An input changed (or the first rendering): the values through the blob cache. */
	sfs_blob *blobs[TMPL_REFS_MAX];
	const char *names[TMPL_REFS_MAX];
	for (size_t i = 0; i < n; i++) {
		names[i] = tmpl_ref(e->t, i);
		r = blobcache_get(&m->blobs, m->store, names[i], false, cur[i], &blobs[i]);
		if (r < 0)
			return r;
	}
	struct rendered_lookup l = {
	    .m = m, .nrefs = n, .names = names, .blobs = blobs, .versions = cur};
	secret *s = NULL;
	r = tmpl_render_secret(e->t, rendered_lookup, &l, &s);
	if (r < 0)
		return r;
	sfs_blob *b = sfs_blob_wrap(s, e->tver.version);
	secret_unref(s);
	if (!b)
		return -ENOMEM;
	sfs_blob_unref(e->blob);
	e->blob = b;
	memcpy(e->refv, cur, n * sizeof(*cur));
	m->st.renders++;
	*out = b;
	return 0;
}

void rendered_sweep(struct rendercache *rc)
{
	size_t j = 0;
	for (size_t i = 0; i < rc->n; i++) {
		if (rc->v[i].used) {
			rc->v[i].used = false;
			rc->v[j++] = rc->v[i];
		} else {
			rendered_entry_clear(&rc->v[i]);
		}
	}
	rc->n = j;
}

void rendered_free(struct rendercache *rc)
{
	for (size_t i = 0; i < rc->n; i++)
		rendered_entry_clear(&rc->v[i]);
	free(rc->v);
	*rc = (struct rendercache){0};
}

/* ---- the workload API's view of rendered files ---- */

/* who's files (secrets and rendered, as its mount shows them; no value read): *files (free()). */
static int rendered_view_files(mounts *m, const struct policy_identity *who,
                               struct policy_file **files, size_t *nf)
{
	*files = NULL;
	*nf = 0;
	int r = views_inputs_fresh(m);
	if (r == 0)
		r = policy_view(m->in.grants, m->in.ngrants, (const char *const *)m->in.names,
		                m->in.nsecrets, who, files, nf);
	if (r == 0)
		r = rendered_merge(m, who, files, nf);
	if (r < 0) {
		free(*files);
		*files = NULL;
		*nf = 0;
	}
	return r;
}

json_t *mounts_granted_templates_json(mounts *m, const struct policy_identity *who)
{
	struct policy_file *f = NULL;
	size_t nf = 0;
	if (rendered_view_files(m, who, &f, &nf) < 0)
		return NULL;
	json_t *a = json_array();
	const size_t tl = strlen(STORE_GRANT_TMPL_PREFIX);
	for (size_t i = 0; a && i < nf; i++)
		if (rendered_is_grant(f[i].secret) &&
		    json_array_append_new(a, json_pack("{s:s, s:s}", "name", f[i].secret + tl,
		                                       "path", f[i].path)) < 0) {
			json_decref(a);
			a = NULL;
		}
	free(f);
	return a;
}

int mounts_template_read(mounts *m, const struct policy_identity *who, const char *name,
                         secret **out, uint64_t *version)
{
	*out = NULL;
	*version = 0;
	struct policy_file *f = NULL;
	size_t nf = 0;
	int r = rendered_view_files(m, who, &f, &nf);
	if (r < 0)
		return r;
	const size_t tl = strlen(STORE_GRANT_TMPL_PREFIX);
	const char *target = NULL;
	for (size_t i = 0; i < nf && !target; i++)
		if (rendered_is_grant(f[i].secret) && strcmp(f[i].secret + tl, name) == 0)
			target = f[i].secret;
	sfs_blob *b = NULL;
	r = target ? rendered_blob(m, target, &b) : -ENOENT;
	free(f);
	if (r < 0)
		return r;
	const struct store_tmpl_info *ti = rendered_tmpl_info(m, name);
	*version = ti ? ti->current : 0;
	*out = secret_ref(sfs_blob_secret(b));
	return 0;
}
