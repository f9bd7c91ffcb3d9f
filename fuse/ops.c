/* sfs: the FUSE low-level operations (requests from the kernel, answered on the serving thread). */
#include "fuse/sfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/* ---- request helpers ---- */

static sfs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The caller check: pid 0 (outside our pid namespace) is refused without asking. */
static int req_check(sfs *fs, fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (!c || c->pid <= 0)
		return -EACCES;
	int r = fs->ops.check(fs->ud, c->pid, c->uid, c->gid);
	return r < 0 ? -EACCES : 0;
}

static void fill_attr(const sfs *fs, const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_blksize = 4096;
	if (n->is_dir) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		st->st_uid = fs->cfg.dir_uid;
		st->st_gid = fs->cfg.dir_gid;
		st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = fs->start;
	} else if (n->is_version) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_uid = fs->cfg.dir_uid;
		st->st_gid = fs->cfg.dir_gid;
		st->st_size = (off_t)fs->gentext_len;
		st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = n->mtime;
	} else {
		st->st_mode = S_IFREG | (n->mode & 0777);
		st->st_nlink = 1;
		st->st_uid = n->uid;
		st->st_gid = n->gid;
		st->st_size = (off_t)sfs_blob_len(n->blob);
		st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = n->mtime;
	}
	st->st_blocks = (st->st_size + 511) / 512;
}

static int kid_cmp_name(const void *key, const void *elem)
{
	return strcmp(key, (*(struct node *const *)elem)->name);
}

int sfs_kid_cmp(const void *a, const void *b)
{
	return strcmp((*(struct node *const *)a)->name, (*(struct node *const *)b)->name);
}

/* Gives fh a slot and an id (the fh the kernel will hold) and links it. 0 or -ENFILE/-ENOMEM
 * (then fh is not linked). */
static int fh_link(sfs *fs, struct sfs_fh *fh)
{
	uint32_t slot;
	if (fs->nfhfree) {
		slot = fs->fhfree[--fs->nfhfree];
	} else {
		if (fs->fhused == SFS_FH_MAX)
			return -ENFILE;
		if (fs->fhused == fs->fhcap) {
			uint32_t cap = fs->fhcap ? fs->fhcap * 2 : 16;
			struct sfs_fh **t = realloc(fs->fhtab, cap * sizeof(*t));
			if (!t)
				return -ENOMEM;
			fs->fhtab = t;
			uint32_t *f = realloc(fs->fhfree, cap * sizeof(*f));
			if (!f)
				return -ENOMEM;
			fs->fhfree = f;
			fs->fhcap = cap;
		}
		slot = fs->fhused++;
	}
	if (!++fs->fhtag)
		fs->fhtag = 1;
	fh->slot = slot;
	fh->id = (uint64_t)fs->fhtag << 32 | (uint64_t)(slot + 1);
	fs->fhtab[slot] = fh;
	fh->prev = NULL;
	fh->next = fs->fhs;
	if (fs->fhs)
		fs->fhs->prev = fh;
	fs->fhs = fh;
	return 0;
}

static void dents_free(struct sfs_fh *fh);

void sfs_fh_free(sfs *fs, struct sfs_fh *fh)
{
	fs->fhtab[fh->slot] = NULL;
	fs->fhfree[fs->nfhfree++] = fh->slot; /* fhfree holds fhcap slots */
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		fs->fhs = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	sfs_blob_unref(fh->blob);
	if (fh->ph)
		fuse_pollhandle_destroy(fh->ph);
	dents_free(fh);
	free(fh);
}

/* The handle the kernel's fh names, for inode ino; NULL when this process did not make it (fh 0
 * in no_open mode, a handle opened before a hand-over, or any made-up value): the id is looked
 * up in the table and checked whole, never dereferenced. */
static struct sfs_fh *fi_fh(const sfs *fs, const struct fuse_file_info *fi, fuse_ino_t ino)
{
	if (!fi || !fi->fh)
		return NULL;
	uint64_t slot = (fi->fh & 0xffffffffu) - 1;
	if (slot >= fs->fhused)
		return NULL;
	struct sfs_fh *fh = fs->fhtab[slot];
	if (!fh || fh->id != fi->fh)
		return NULL;
	switch (fh->kind) {
	case FH_FILE:
		return fh->ino == ino ? fh : NULL;
	case FH_VERSION:
		return ino == SFS_VERSION_INO ? fh : NULL;
	case FH_DIR:
		return fh->dir_ino == ino ? fh : NULL;
	}
	return NULL;
}

/* ---- operations ---- */

static void op_init(void *ud, struct fuse_conn_info *conn)
{
	sfs *fs = ud;
	/* Replies come straight from locked memory: no splice, no writeback cache. */
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
	                FUSE_CAP_WRITEBACK_CACHE);
	fs->inited = true;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	sfs *fs = req_fs(req);
	if (fs->denied) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (req_check(fs, req) < 0) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct node *p = sfs_node_get(fs, parent);
	if (!p || !p->live || !p->is_dir) {
		/* An inode this process does not know (the kernel got it from a server before a
		 * hand-over and it is no longer in the view): ESTALE makes the VFS walk the path
		 * again with LOOKUP_REVAL. */
		fuse_reply_err(req, p ? ENOENT : ESTALE);
		return;
	}
	struct node **k =
	    p->nkids ? bsearch(name, p->kids, p->nkids, sizeof(*k), kid_cmp_name) : NULL;
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.entry_timeout = fs->entry_timeout;
	if (!k) {
		/* A negative entry, cached: names appearing later are invalidated explicitly. */
		fuse_reply_entry(req, &e);
		return;
	}
	struct node *n = *k;
	e.ino = n->ino;
	e.attr_timeout = fs->attr_timeout;
	fill_attr(fs, n, &e.attr);
	if (fuse_reply_entry(req, &e) == 0)
		n->nlookup++;
}

static void node_forget(sfs *fs, uint64_t ino, uint64_t nlookup)
{
	struct node *n = sfs_node_get(fs, ino);
	if (!n)
		return;
	n->nlookup = nlookup >= n->nlookup ? 0 : n->nlookup - nlookup;
	if (!n->nlookup && !n->live && ino >= SFS_FIRST_INO) {
		fs->byino[ino] = NULL;
		sfs_node_free(n);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(req_fs(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	sfs *fs = req_fs(req);
	for (size_t i = 0; i < count; i++)
		node_forget(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	sfs *fs = req_fs(req);
	if (ino != SFS_ROOT_INO && fs->denied) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (ino != SFS_ROOT_INO && req_check(fs, req) < 0) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct node *n = sfs_node_get(fs, ino);
	if (!n || !n->live) {
		fuse_reply_err(req, n ? ENOENT : ESTALE);
		return;
	}
	struct stat st;
	fill_attr(fs, n, &st);
	fuse_reply_attr(req, &st, fs->attr_timeout);
}

/* The request's context, copied: a request is freed by its reply. */
struct who {
	pid_t pid;
	uid_t uid;
};

static struct who req_who(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	return (struct who){c ? c->pid : 0, c ? c->uid : (uid_t)-1};
}

static void audit_open(sfs *fs, struct who w, const char *path, uint64_t version, int result)
{
	if (fs->ops.opened)
		fs->ops.opened(fs->ud, w.pid, w.uid, path, version, result);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	sfs *fs = req_fs(req);
	if (fs->cfg.no_open) {
		/* ENOSYS: the kernel never sends OPEN (nor RELEASE) again on this connection and
		 * serves reads from its page cache with fh 0. This trades away the per-open caller
		 * check and the open audit record; lookups and getattr are still checked. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	struct who who = req_who(req);
	struct node *n = sfs_node_get(fs, ino);
	const char *path = n ? (n->is_version ? SFS_VERSION_FILE : n->path) : "";
	uint64_t version = n && n->blob ? n->blob->version : 0;
	int err = 0;
	if (fs->denied)
		err = EIO;
	else if (req_check(fs, req) < 0)
		err = EACCES;
	else if (!n || !n->live)
		err = n ? ENOENT : ESTALE;
	else if (n->is_dir)
		err = EISDIR;
	else if ((fi->flags & O_ACCMODE) != O_RDONLY)
		err = EROFS;
	struct sfs_fh *fh = NULL;
	if (!err && !(fh = calloc(1, sizeof(*fh))))
		err = ENOMEM;
	if (err) {
		audit_open(fs, who, path, version, -err);
		fuse_reply_err(req, err);
		return;
	}
	if (n->is_version) {
		fh->kind = FH_VERSION;
		fi->direct_io = 1; /* every read asks us: the content changes under the same size */
		fi->nonseekable = 0;
	} else {
		fh->kind = FH_FILE;
		fh->blob = sfs_blob_ref(n->blob);
		fh->ino = n->ino;
		/* The page cache is per inode, not per open. While an open of an older version
		 * exists, it may (re)fill the cache with old pages after our invalidation: new
		 * opens then bypass the cache (and so never put new pages under the old open).
		 * The first cached open after that drops whatever the old opens left. */
		bool older_open = false;
		for (struct sfs_fh *o = fs->fhs; o && !older_open; o = o->next)
			older_open = o->kind == FH_FILE && !o->revoked && o->ino == n->ino &&
			             o->blob != n->blob;
		if (older_open) {
			fi->direct_io = 1;
		} else if (n->cache_stale) {
			fi->keep_cache = 0;
			n->cache_stale = false;
		} else {
			fi->keep_cache = 1;
		}
	}
	if (fh_link(fs, fh) < 0) {
		sfs_blob_unref(fh->blob);
		free(fh);
		audit_open(fs, who, path, version, -ENFILE);
		fuse_reply_err(req, ENFILE);
		return;
	}
	fi->fh = fh->id;
	if (fuse_reply_open(req, fi) != 0) {
		/* interrupted: the kernel will not release it */
		sfs_fh_free(fs, fh);
		audit_open(fs, who, path, version, -EINTR);
		return;
	}
	audit_open(fs, who, path, version, 0);
}

static void reply_slice(fuse_req_t req, const void *data, size_t len, size_t size, off_t off)
{
	if (off < 0 || (uint64_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t rest = len - (size_t)off;
	fuse_reply_buf(req, (const char *)data + off, size < rest ? size : rest);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	sfs *fs = req_fs(req);
	struct sfs_fh *fh = fi_fh(fs, fi, ino);
	if (fs->denied) {
		/* .version readers count this generation as seen: poll(2) then blocks until the
		 * next change (the one that ends the denial) instead of spinning on EIO. */
		if (fh && fh->kind == FH_VERSION)
			fh->seen = fs->generation;
		else if (!fh)
			fs->noopen_seen = fs->generation;
		fuse_reply_err(req, EIO);
		return;
	}
	if (fh && fh->kind == FH_FILE && fh->revoked) {
		/* Revoked (its path left the view): not even the version it opened. */
		fuse_reply_err(req, EACCES);
		return;
	}
	if (fh && fh->kind == FH_FILE) {
		reply_slice(req, secret_data(fh->blob->s), secret_len(fh->blob->s), size, off);
		struct node *n = sfs_node_get(fs, fh->ino);
		if (!n || n->blob != fh->blob) {
			/* An open of an older version read through the page cache: the kernel
			 * now holds old pages, and a short read has even shrunk its idea of the
			 * size. Drop both (new opens bypass the cache meanwhile). */
			sfs_queue_inval_inode(fs, fh->ino);
			if (n)
				n->cache_stale = true;
		}
		return;
	}
	if (fh && fh->kind == FH_VERSION) {
		fh->seen = fs->generation;
		if (size >= SFS_PAGE_MIN)
			fs->ver_inval = true; /* may fill a page (an mmap): see sfs_internal.h */
		reply_slice(req, fs->gentext, fs->gentext_len, size, off);
		return;
	}
	if (fh) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	/* fh 0: no_open mode, a page-cache fill for some reader; or a handle this process did not
	 * make (opened before a hand-over): served the same way, the node's current value. */
	if (req_check(fs, req) < 0) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct node *n = sfs_node_get(fs, ino);
	if (!n || !n->live || n->is_dir) {
		fuse_reply_err(req, n && n->is_dir ? EISDIR : ESTALE);
		return;
	}
	if (n->is_version) {
		fs->noopen_seen = fs->generation;
		if (size >= SFS_PAGE_MIN)
			fs->ver_inval = true;
		reply_slice(req, fs->gentext, fs->gentext_len, size, off);
		return;
	}
	reply_slice(req, secret_data(n->blob->s), secret_len(n->blob->s), size, off);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fh *fh = fi_fh(req_fs(req), fi, ino);
	if (fh)
		sfs_fh_free(req_fs(req), fh);
	fuse_reply_err(req, 0);
}

static void dents_free(struct sfs_fh *fh)
{
	for (size_t i = 0; i < fh->nents; i++)
		free(fh->ents[i].name);
	free(fh->ents);
	fh->ents = NULL;
	fh->nents = 0;
}

/* Fills fh (kind FH_DIR) with a snapshot of directory n's names. 0 or -ENOMEM (what was filled
 * stays for the caller to free). */
static int dir_fill(struct sfs_fh *fh, const struct node *n)
{
	fh->kind = FH_DIR;
	fh->dir_ino = n->ino;
	fh->dir_parent = n->parent;
	if (!n->nkids)
		return 0;
	fh->ents = calloc(n->nkids, sizeof(*fh->ents));
	if (!fh->ents)
		return -ENOMEM;
	for (size_t i = 0; i < n->nkids; i++) {
		fh->ents[i].name = strdup(n->kids[i]->name);
		if (!fh->ents[i].name)
			return -ENOMEM;
		fh->ents[i].ino = n->kids[i]->ino;
		fh->ents[i].is_dir = n->kids[i]->is_dir;
		fh->nents++;
	}
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	sfs *fs = req_fs(req);
	if (fs->denied) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (req_check(fs, req) < 0) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct node *n = sfs_node_get(fs, ino);
	if (!n || !n->live) {
		fuse_reply_err(req, n ? ENOENT : ESTALE);
		return;
	}
	if (!n->is_dir) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	/* A snapshot of the names, so offsets stay meaningful across view changes. */
	struct sfs_fh *fh = calloc(1, sizeof(*fh));
	if (!fh)
		goto nomem;
	fh->kind = FH_DIR;
	fh->dir_ino = n->ino;
	fh->dir_parent = n->parent;
	if (fh_link(fs, fh) < 0) {
		free(fh);
		fuse_reply_err(req, ENFILE);
		return;
	}
	if (dir_fill(fh, n) < 0)
		goto nomem_fh;
	fi->fh = fh->id;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0)
		sfs_fh_free(fs, fh);
	return;
nomem_fh:
	sfs_fh_free(fs, fh);
nomem:
	fuse_reply_err(req, ENOMEM);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	sfs *fs = req_fs(req);
	struct sfs_fh *fh = fi_fh(fs, fi, ino);
	struct sfs_fh tmp;
	memset(&tmp, 0, sizeof(tmp));
	if (fs->denied) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (!fh) {
		/* A directory handle this process did not make (opened before a hand-over): the
		 * directory's current names, checked like an opendir. */
		if (req_check(fs, req) < 0) {
			fuse_reply_err(req, EACCES);
			return;
		}
		struct node *n = sfs_node_get(fs, ino);
		if (!n || !n->live || !n->is_dir) {
			fuse_reply_err(req, n && n->live ? ENOTDIR : ESTALE);
			return;
		}
		if (dir_fill(&tmp, n) < 0) {
			dents_free(&tmp);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fh = &tmp;
	}
	if (size > 128 * 1024)
		size = 128 * 1024;
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		dents_free(&tmp);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t pos = 0;
	for (off_t i = off < 0 ? 0 : off; (size_t)i < fh->nents + 2; i++) {
		struct stat st;
		memset(&st, 0, sizeof(st));
		const char *name;
		if (i == 0) {
			name = ".";
			st.st_ino = fh->dir_ino;
			st.st_mode = S_IFDIR;
		} else if (i == 1) {
			name = "..";
			st.st_ino = fh->dir_parent;
			st.st_mode = S_IFDIR;
		} else {
			const struct dent *d = &fh->ents[i - 2];
			name = d->name;
			st.st_ino = d->ino;
			st.st_mode = d->is_dir ? S_IFDIR : S_IFREG;
		}
		size_t need = fuse_add_direntry(req, buf + pos, size - pos, name, &st, i + 1);
		if (need > size - pos)
			break;
		pos += need;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
	dents_free(&tmp);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fh *fh = fi_fh(req_fs(req), fi, ino);
	if (fh)
		sfs_fh_free(req_fs(req), fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	sfs *fs = req_fs(req);
	struct statvfs st;
	memset(&st, 0, sizeof(st));
	st.f_bsize = st.f_frsize = 4096;
	st.f_files = fs->nfiles + 1;
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                    struct fuse_pollhandle *ph)
{
	sfs *fs = req_fs(req);
	struct sfs_fh *fh = fi_fh(fs, fi, ino);
	const unsigned ready = POLLIN | POLLPRI;
	if (fh && fh->kind == FH_VERSION) {
		if (fh->seen != fs->generation) {
			if (ph)
				fuse_pollhandle_destroy(ph);
			fuse_reply_poll(req, ready);
			return;
		}
		if (ph) {
			if (fh->ph)
				fuse_pollhandle_destroy(fh->ph);
			fh->ph = ph;
		}
		fuse_reply_poll(req, 0);
		return;
	}
	struct node *n = fh ? NULL : sfs_node_get(fs, ino);
	if (n && n->is_version) {
		/* no_open mode: one "last read" generation for the whole mount, and a few handles
		 * (the kernel's handle ids are opaque to us, so repeated polls are not merged). */
		if (fs->noopen_seen != fs->generation) {
			if (ph)
				fuse_pollhandle_destroy(ph);
			fuse_reply_poll(req, ready);
			return;
		}
		if (ph) {
			if (fs->noopen_nph == SFS_NOOPEN_PH_MAX) {
				fuse_pollhandle_destroy(fs->noopen_ph[0]);
				memmove(fs->noopen_ph, fs->noopen_ph + 1,
				        (SFS_NOOPEN_PH_MAX - 1) * sizeof(fs->noopen_ph[0]));
				fs->noopen_nph--;
			}
			fs->noopen_ph[fs->noopen_nph++] = ph;
		}
		fuse_reply_poll(req, 0);
		return;
	}
	/* Secrets are always readable. */
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLRDNORM);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	fuse_reply_err(req, ENODATA); /* there are none, for anyone */
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

/* Every writing operation: the mount is also read-only, this is the second wall. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                               struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
                               struct fuse_file_info *fi_out, size_t len, int flags)
{
	fuse_reply_err(req, EROFS);
}

/* No flush (ENOSYS once: the kernel stops sending it), no access (default_permissions). */
const struct fuse_lowlevel_ops sfs_llops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .create = op_create,
    .poll = op_poll,
    .fallocate = op_fallocate,
    .copy_file_range = op_copy_file_range,
};
