/* sfs: replacing a mount's view (diff, commit, invalidations) and failing it closed. */
#include "fuse/sfs_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/names.h"

/* ---- set_view ---- */

struct want {
	const char *path; /* the key inside wmap (a file's or directory's full path) */
	size_t len;
	bool is_dir;
	const struct sfs_entry *e;
	size_t parent; /* index into wants, or SIZE_MAX for the root */
	uint64_t ino;
	struct node *node; /* existing node or NULL */
	struct node *fresh;
	struct node **kids;
	size_t nkids, kfill;
};

static bool is_version_path(const char *p)
{
	size_t l = strlen(SFS_VERSION_FILE);
	return !strncmp(p, SFS_VERSION_FILE, l) && (p[l] == '\0' || p[l] == '/');
}

struct view_build {
	struct want *w;
	size_t n, cap;
	struct smap wmap; /* path -> index */
	struct node **rootkids;
	size_t rootn, rootfill;
};

static void view_build_free(struct view_build *vb, bool free_fresh)
{
	for (size_t i = 0; i < vb->n; i++) {
		if (free_fresh)
			sfs_node_free(vb->w[i].fresh);
		free(vb->w[i].kids);
	}
	free(vb->w);
	free(vb->rootkids);
	sfs_smap_free(&vb->wmap);
}

static int want_add(struct view_build *vb, const char *path, size_t len, bool is_dir,
                    const struct sfs_entry *e, size_t parent)
{
	if (vb->n == vb->cap) {
		size_t cap = vb->cap ? vb->cap * 2 : 64;
		struct want *w = realloc(vb->w, cap * sizeof(*w));
		if (!w)
			return -ENOMEM;
		vb->w = w;
		vb->cap = cap;
	}
	if (sfs_smap_put(&vb->wmap, path, len, vb->n) < 0)
		return -ENOMEM;
	struct want *w = &vb->w[vb->n];
	memset(w, 0, sizeof(*w));
	w->len = len;
	w->is_dir = is_dir;
	w->e = e;
	w->parent = parent;
	vb->n++;
	return 0;
}

/* Validates the entries and lays out every path (implied directories included). */
static int view_plan(struct view_build *vb, const struct sfs_entry *e, size_t n)
{
	if (n > SFS_FILES_MAX)
		return -E2BIG;
	if (n && !e)
		return -EINVAL;
	char buf[SFS_NAME_CAP];
	for (size_t i = 0; i < n; i++) {
		const char *p = e[i].path;
		if (!p || !e[i].blob)
			return -EINVAL;
		size_t len = strlen(p);
		if (names_check(p, len, NULL) < 0 || len >= sizeof(buf))
			return -EINVAL;
		if (is_version_path(p))
			continue; /* the root's .version is ours */
		size_t parent = SIZE_MAX;
		for (size_t j = 0; j <= len; j++) {
			if (j < len && p[j] != '/')
				continue;
			memcpy(buf, p, j);
			buf[j] = '\0';
			bool last = j == len;
			struct smap_slot *s = sfs_smap_find(&vb->wmap, buf);
			if (s) {
				if (last || !vb->w[s->val].is_dir)
					return -EINVAL; /* duplicate, or file where a dir is needed
					                 */
				parent = s->val;
				continue;
			}
			int r = want_add(vb, buf, j, !last, last ? &e[i] : NULL, parent);
			if (r < 0)
				return r;
			parent = vb->n - 1;
		}
	}
	/* keys live in wmap; point each want at its own */
	for (size_t i = 0; i < vb->wmap.cap; i++)
		if (vb->wmap.slots[i].key)
			vb->w[vb->wmap.slots[i].val].path = vb->wmap.slots[i].key;
	return 0;
}

static int view_alloc(sfs *fs, struct view_build *vb)
{
	char key[SFS_NAME_CAP + 1];
	for (size_t i = 0; i < vb->n; i++) {
		struct want *w = &vb->w[i];
		snprintf(key, sizeof(key), "%s%s", w->path, w->is_dir ? "/" : "");
		struct smap_slot *s = sfs_smap_find(&fs->paths, key);
		if (s) {
			w->ino = s->val;
		} else {
			int r = sfs_ino_reserve(fs, fs->nino + 1);
			if (r < 0)
				return r;
			/* In the journal before anyone sees the number (sfs_adopt). */
			r = sfs_journal_append(fs, fs->nino, w->path, w->len, w->is_dir);
			if (r < 0)
				return r;
			r = sfs_smap_put(&fs->paths, key, strlen(key), fs->nino);
			if (r < 0) {
				fs->nino++; /* journaled: burnt, never reused */
				return r;
			}
			w->ino = fs->nino++;
		}
		w->node = fs->byino[w->ino];
		if (!w->node) {
			w->fresh = sfs_node_new(w->ino, w->path, w->len, w->is_dir);
			if (!w->fresh)
				return -ENOMEM;
			if (w->ino <= fs->adopt_ino_max) {
				/* numbered by a previous server: the kernel may hold it */
				w->fresh->adopted = true;
				w->fresh->nlookup = SFS_NLOOKUP_UNKNOWN;
			}
		}
		if (w->parent == SIZE_MAX)
			vb->rootn++;
		else
			vb->w[w->parent].nkids++;
	}
	vb->rootkids = calloc(vb->rootn + 1, sizeof(*vb->rootkids));
	if (!vb->rootkids)
		return -ENOMEM;
	for (size_t i = 0; i < vb->n; i++) {
		struct want *w = &vb->w[i];
		if (w->is_dir && w->nkids && !(w->kids = calloc(w->nkids, sizeof(*w->kids))))
			return -ENOMEM;
	}
	return 0;
}

static void item_name(struct nitem *it, const struct node *n)
{
	it->namelen = strlen(n->name);
	memcpy(it->name, n->name, it->namelen + 1);
}

/* The first view after sfs_adopt: paths the previous servers numbered that are not in it may
 * still be cached by the kernel (their invalidations died with the server that queued them):
 * their pages and entries are dropped. At most 2 items per path in fs->paths. */
static void adopt_sweep(sfs *fs, struct nbatch *b)
{
	for (size_t i = 0; i < fs->paths.cap; i++) {
		const struct smap_slot *s = &fs->paths.slots[i];
		if (!s->key || s->val > fs->adopt_ino_max)
			continue;
		struct node *n = sfs_node_get(fs, s->val);
		if (n && n->live)
			continue;
		size_t len = strlen(s->key);
		bool is_dir = len && s->key[len - 1] == '/';
		size_t plen = is_dir ? len - 1 : len; /* the path without the slash */
		if (!is_dir) {
			struct nitem *it = &b->items[b->n++];
			it->kind = N_INODE;
			it->ino = s->val;
		}
		const char *slash = memrchr(s->key, '/', plen);
		uint64_t parent = SFS_ROOT_INO;
		if (slash) {
			char pkey[SFS_NAME_CAP + 1];
			size_t pl = (size_t)(slash - s->key) + 1; /* "dir/" */
			if (pl > SFS_NAME_CAP)
				continue;
			memcpy(pkey, s->key, pl);
			pkey[pl] = '\0';
			const struct smap_slot *ps = sfs_smap_find(&fs->paths, pkey);
			if (!ps)
				continue;
			parent = ps->val;
		}
		const char *name = slash ? slash + 1 : s->key;
		size_t nlen = plen - (size_t)(name - s->key);
		if (nlen == 0 || nlen >= SFS_NAME_CAP)
			continue;
		struct nitem *it = &b->items[b->n++];
		it->kind = N_ENTRY;
		it->parent = parent;
		it->namelen = nlen;
		memcpy(it->name, name, nlen);
		it->name[nlen] = '\0';
	}
}

/* sfs_set_view's work; bump: change .version even when no entry changed (entering or leaving the
 * denied state). */
static int view_apply(sfs *fs, const struct sfs_entry *e, size_t n, bool bump)
{
	struct view_build vb;
	memset(&vb, 0, sizeof(vb));
	struct nbatch *b = NULL;
	int r = view_plan(&vb, e, n);
	if (r < 0)
		goto fail;
	r = view_alloc(fs, &vb);
	if (r < 0)
		goto fail;
	size_t nlive = 0;
	for (size_t i = SFS_FIRST_INO; i < fs->nino; i++)
		if (fs->byino[i] && fs->byino[i]->live)
			nlive++;
	size_t nph = fs->noopen_nph;
	for (struct sfs_fh *fh = fs->fhs; fh; fh = fh->next)
		nph += fh->ph != NULL;
	size_t cap = 2 * vb.n + 2 * nlive + nph + 1;
	if (fs->adopt_wait_view)
		cap += 2 * fs->paths.n;
	b = calloc(1, sizeof(*b) + cap * sizeof(b->items[0]));
	if (!b) {
		r = -ENOMEM;
		goto fail;
	}
	b->fs = fs;
	b->cap = cap;

	/* ---- commit: nothing below fails ---- */
	unsigned epoch = ++fs->epoch;
	time_t now = time(NULL);
	for (size_t i = 0; i < vb.n; i++)
		if (vb.w[i].node)
			vb.w[i].node->mark = epoch;
	/* removed: topmost ones are announced (a directory's entry takes its subtree along) */
	for (size_t i = SFS_FIRST_INO; i < fs->nino; i++) {
		struct node *o = fs->byino[i];
		if (!o || !o->live || o->mark == epoch)
			continue;
		struct node *p = sfs_node_get(fs, o->parent);
		bool parent_stays = o->parent == SFS_ROOT_INO || (p && p->mark == epoch);
		if (!o->is_dir && o->nlookup) {
			/* Drops its cached pages and unmaps them from every mmap: the next
			 * access asks us, on a handle we revoke below. */
			struct nitem *it = &b->items[b->n++];
			it->kind = N_INODE;
			it->ino = o->ino;
		}
		if (parent_stays) {
			struct nitem *it = &b->items[b->n++];
			it->kind = o->is_dir ? N_ENTRY : N_DELETE;
			it->parent = o->parent;
			it->ino = o->ino;
			item_name(it, o);
		}
	}
	for (size_t i = SFS_FIRST_INO; i < fs->nino; i++) {
		struct node *o = fs->byino[i];
		if (!o || !o->live || o->mark == epoch)
			continue;
		o->live = false;
		sfs_blob_unref(o->blob);
		o->blob = NULL;
		free(o->kids);
		o->kids = NULL;
		o->nkids = 0;
		if (!o->nlookup) {
			fs->byino[i] = NULL;
			sfs_node_free(o);
		}
	}
	/* kept, revived, added */
	size_t nfiles = 0;
	bool kept_changes = false;
	for (size_t i = 0; i < vb.n; i++) {
		struct want *w = &vb.w[i];
		struct node *nd = w->node ? w->node : w->fresh;
		uint64_t parent = w->parent == SIZE_MAX ? SFS_ROOT_INO : vb.w[w->parent].ino;
		bool was_live = w->node && w->node->live;
		bool changed = false, attrs_kept = false;
		if (!w->is_dir) {
			nfiles++;
			changed = !was_live || nd->blob != w->e->blob || nd->mode != w->e->mode ||
			          nd->uid != w->e->uid || nd->gid != w->e->gid;
			/* Only the content changed, not its size: the kernel's attributes stay
			 * right (but mtime), so they are not invalidated (an open would otherwise
			 * ask GETATTR first). The stale pages go at the next OPEN (cache_stale: no
			 * keep_cache). Not in no_open mode (no OPEN to drop them), nor for a node a
			 * previous server numbered (handles of its opens read through the cache).
			 */
			attrs_kept =
			    changed && was_live && !fs->cfg.no_open && !nd->adopted && nd->blob &&
			    sfs_blob_len(nd->blob) == sfs_blob_len(w->e->blob) &&
			    nd->mode == w->e->mode && nd->uid == w->e->uid && nd->gid == w->e->gid;
			if (changed) {
				sfs_blob_ref(w->e->blob);
				sfs_blob_unref(nd->blob);
				nd->blob = w->e->blob;
				nd->mode = w->e->mode;
				nd->uid = w->e->uid;
				nd->gid = w->e->gid;
				nd->mtime = now;
				nd->cache_stale = true;
			}
		}
		if (attrs_kept)
			kept_changes = true; /* no item, but .version changes all the same */
		if (was_live && changed && !attrs_kept) {
			struct nitem *it = &b->items[b->n++];
			it->kind = N_INODE;
			it->ino = nd->ino;
		} else if (!was_live) {
			/* revived, or numbered by a previous server: the kernel may hold old
			 * attributes and pages (what that server queued died with it) */
			if (w->node || nd->adopted) {
				struct nitem *it = &b->items[b->n++];
				it->kind = N_INODE;
				it->ino = nd->ino;
			}
			/* drops a cached negative entry (harmless ENOENT when there is none) */
			struct nitem *it = &b->items[b->n++];
			it->kind = N_ENTRY;
			it->parent = parent;
			item_name(it, nd);
		}
		if (w->fresh) {
			fs->byino[w->ino] = w->fresh;
			w->fresh = NULL;
		}
		nd->live = true;
		nd->parent = parent;
		free(nd->kids);
		nd->kids = w->kids;
		nd->nkids = w->nkids;
		w->kids = NULL;
	}
	/* children lists */
	struct node *root = fs->byino[SFS_ROOT_INO];
	free(root->kids);
	root->kids = vb.rootkids;
	vb.rootkids = NULL;
	root->kids[0] = fs->byino[SFS_VERSION_INO];
	root->nkids = 1;
	for (size_t i = 0; i < vb.n; i++) {
		struct node *nd = fs->byino[vb.w[i].ino];
		struct node *p =
		    vb.w[i].parent == SIZE_MAX ? root : fs->byino[vb.w[vb.w[i].parent].ino];
		if (p == root)
			root->kids[root->nkids++] = nd;
		else
			p->kids[vb.w[vb.w[i].parent].kfill++] = nd;
	}
	for (size_t i = 0; i < vb.n; i++) {
		struct node *nd = fs->byino[vb.w[i].ino];
		if (nd->is_dir && nd->nkids > 1)
			qsort(nd->kids, nd->nkids, sizeof(*nd->kids), sfs_kid_cmp);
	}
	qsort(root->kids, root->nkids, sizeof(*root->kids), sfs_kid_cmp);
	fs->nfiles = nfiles;
	/* Handles of paths that left the view are revoked (a rotation keeps the path: its handles
	 * go on reading the version they opened). */
	for (struct sfs_fh *fh = fs->fhs; fh; fh = fh->next) {
		if (fh->kind != FH_FILE || fh->revoked)
			continue;
		struct node *nd = sfs_node_get(fs, fh->ino);
		if (!nd || !nd->live)
			fh->revoked = true;
	}

	if (fs->adopt_wait_view)
		adopt_sweep(fs, b);

	if (b->n || kept_changes || bump) {
		size_t oldlen = fs->gentext_len;
		fs->generation++;
		sfs_gentext_set(fs);
		fs->byino[SFS_VERSION_INO]->mtime = now;
		struct nitem *it;
		/* .version is opened direct_io: its reads ask us whatever the kernel holds. Its
		 * inode is invalidated only when its size changes, when it may have pages (an
		 * mmap; no_open mode reads it through the page cache) or attributes it never had
		 * from us (ver_inval). One notification fewer per mount and rotation. */
		if (fs->ver_inval || fs->cfg.no_open || fs->gentext_len != oldlen) {
			it = &b->items[b->n++];
			it->kind = N_INODE;
			it->ino = SFS_VERSION_INO;
			fs->ver_inval = false;
		}
		for (struct sfs_fh *fh = fs->fhs; fh; fh = fh->next) {
			if (!fh->ph)
				continue;
			it = &b->items[b->n++];
			it->kind = N_POLL;
			it->ph = fh->ph;
			fh->ph = NULL;
		}
		for (size_t i = 0; i < fs->noopen_nph; i++) {
			it = &b->items[b->n++];
			it->kind = N_POLL;
			it->ph = fs->noopen_ph[i];
		}
		fs->noopen_nph = 0;
	}
	view_build_free(&vb, false);
	/* An adopted session's first view is in place: serving starts, RESEND is written. */
	sfs_adopt_view_set(fs);
	if (b->n && fs->inited && !fs->notify_off)
		sfs_notifier_queue(b); /* before INIT the kernel has nothing cached */
	else
		sfs_nbatch_free(b);
	return 0;
fail:
	view_build_free(&vb, true);
	free(b);
	return r;
}

int sfs_set_view(sfs *fs, const struct sfs_entry *e, size_t n)
{
	if (!fs)
		return -EINVAL;
	int r = view_apply(fs, e, n, fs->denied);
	if (r == 0)
		fs->denied = false;
	return r;
}

int sfs_deny(sfs *fs)
{
	if (!fs)
		return -EINVAL;
	fs->denied = true;
	int r = view_apply(fs, NULL, 0, true);
	/* denied: every request is answered (EIO) without the tree, so serving may start even
	 * when the empty view could not be applied */
	sfs_adopt_view_set(fs);
	return r;
}

bool sfs_denied(const sfs *fs)
{
	return fs && fs->denied;
}
