/* sfs: the per-container read-only FUSE filesystem (libfuse3 low-level API, single-threaded use).
 *
 * Inodes: every (path, type) pair gets an inode number the first time it appears in a view and
 * keeps it for the session's life (numbers are never reused; a path that goes and comes back gets
 * its old number again, a path that changes between file and directory gets a new one). Nodes are
 * looked up by number in a flat array. A node that leaves the view becomes "stale": it loses its
 * blob at once and answers ENOENT/ESTALE, but the object stays until the kernel has FORGOTten every
 * lookup of it, so a late request never touches freed memory.
 *
 * Invalidations go through one process-wide notifier thread (an invalidation can wait on a page
 * locked by a read that only our serving thread answers). A batch in the queue points at its sfs;
 * sfs_destroy removes its queued batches and, while the notifier is sending one of its batches,
 * keeps serving the connection until that send returns, so the sfs and its fd outlive every use by
 * the notifier without a reference count. */
#define FUSE_USE_VERSION 35
#include "fuse/sfs.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/names.h"

#define SFS_ROOT_INO FUSE_ROOT_ID
#define SFS_VERSION_INO 2
#define SFS_FIRST_INO 3
#define SFS_TIMEOUT_DEFAULT 3600.0
#define SFS_NAME_CAP 256 /* a segment of a valid name is at most 255 bytes */
#define SFS_NOOPEN_PH_MAX 16

/* ---- blobs ---- */

/* Small values share slabs: one sodium_malloc region costs three mappings (guard, data, guard),
 * and a process gets about 65,000 mappings (vm.max_map_count), so one region per value would stop
 * a broker near 20,000 values. A slab is a SFS_SLAB_BYTES sodium_malloc region cut by a bump
 * pointer into values of at most SFS_SLAB_VALUE_MAX bytes; each value is wiped when its blob is
 * freed, the region when its last value is gone. Larger values get a region of their own. */
struct sfs_slab {
	atomic_long live; /* values in it, +1 while it is the slab being filled */
	size_t used;
	uint8_t *mem; /* sodium_malloc(SFS_SLAB_BYTES) */
};

struct sfs_blob {
	atomic_long ref;
	size_t len;
	uint64_t version;
	uint8_t *data;         /* in slab, or a sodium_malloc region of its own */
	struct sfs_slab *slab; /* NULL: own region */
};

static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sfs_slab *slab_cur; /* the slab being filled */

static void slab_put(struct sfs_slab *sl)
{
	if (sl && atomic_fetch_sub_explicit(&sl->live, 1, memory_order_acq_rel) == 1) {
		sodium_free(sl->mem); /* zeroes before unmapping */
		free(sl);
	}
}

/* Space for len bytes (rounded up to 16) in the current slab, or a new one. NULL on ENOMEM. */
static uint8_t *slab_alloc(size_t len, struct sfs_slab **out)
{
	size_t need = (len + 15) & ~(size_t)15;
	if (!need)
		need = 16;
	pthread_mutex_lock(&slab_lock);
	if (!slab_cur || slab_cur->used + need > SFS_SLAB_BYTES) {
		struct sfs_slab *sl = calloc(1, sizeof(*sl));
		uint8_t *mem = sl ? sodium_malloc(SFS_SLAB_BYTES) : NULL;
		if (!mem) {
			free(sl);
			pthread_mutex_unlock(&slab_lock);
			return NULL;
		}
		sl->mem = mem;
		atomic_init(&sl->live, 1);
		struct sfs_slab *old = slab_cur;
		slab_cur = sl;
		slab_put(old);
	}
	uint8_t *p = slab_cur->mem + slab_cur->used;
	slab_cur->used += need;
	atomic_fetch_add_explicit(&slab_cur->live, 1, memory_order_relaxed);
	*out = slab_cur;
	pthread_mutex_unlock(&slab_lock);
	return p;
}

sfs_blob *sfs_blob_new(const uint8_t *data, size_t len, uint64_t version)
{
	if (sodium_init() < 0)
		return NULL;
	if (len && !data)
		return NULL;
	sfs_blob *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (len <= SFS_SLAB_VALUE_MAX)
		b->data = slab_alloc(len, &b->slab);
	else
		b->data = sodium_malloc(len);
	if (!b->data) {
		free(b);
		return NULL;
	}
	if (len)
		memcpy(b->data, data, len);
	b->len = len;
	b->version = version;
	atomic_init(&b->ref, 1);
	return b;
}

sfs_blob *sfs_blob_ref(sfs_blob *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->ref, 1, memory_order_relaxed);
	return b;
}

void sfs_blob_unref(sfs_blob *b)
{
	if (!b)
		return;
	if (atomic_fetch_sub_explicit(&b->ref, 1, memory_order_acq_rel) != 1)
		return;
	if (b->slab) {
		sodium_memzero(b->data, b->len);
		slab_put(b->slab);
	} else {
		sodium_free(b->data); /* zeroes before unmapping */
	}
	free(b);
}

size_t sfs_blob_len(const sfs_blob *b)
{
	return b ? b->len : 0;
}

uint64_t sfs_blob_version(const sfs_blob *b)
{
	return b ? b->version : 0;
}

/* ---- a grow-only string -> u64 map (open addressing, keys owned) ---- */

struct smap_slot {
	char *key;
	uint64_t val;
};

struct smap {
	struct smap_slot *slots;
	size_t cap, n; /* cap is 0 or a power of two */
};

static uint64_t smap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct smap_slot *smap_find(const struct smap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = smap_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].key)
			return NULL;
		if (!strcmp(m->slots[i].key, key))
			return &m->slots[i];
	}
}

static int smap_grow(struct smap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct smap_slot *s = calloc(cap, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t j = 0; j < m->cap; j++) {
		if (!m->slots[j].key)
			continue;
		size_t i = smap_hash(m->slots[j].key) & (cap - 1);
		while (s[i].key)
			i = (i + 1) & (cap - 1);
		s[i] = m->slots[j];
	}
	free(m->slots);
	m->slots = s;
	m->cap = cap;
	return 0;
}

/* Inserts key (copied) with val; the key must not be present. */
static int smap_put(struct smap *m, const char *key, size_t keylen, uint64_t val)
{
	if ((m->n + 1) * 2 > m->cap && smap_grow(m) < 0)
		return -ENOMEM;
	char *k = strndup(key, keylen);
	if (!k)
		return -ENOMEM;
	size_t i = smap_hash(k) & (m->cap - 1);
	while (m->slots[i].key)
		i = (i + 1) & (m->cap - 1);
	m->slots[i].key = k;
	m->slots[i].val = val;
	m->n++;
	return 0;
}

static void smap_free(struct smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}

/* ---- nodes, handles, the filesystem ---- */

struct node {
	uint64_t ino, parent; /* parent: inode number (root's is itself) */
	char *path;           /* "" for the root */
	const char *name;     /* last segment, inside path */
	bool is_dir, live, is_version;
	bool cache_stale; /* content changed: the kernel's pages may be of an older version */
	uint64_t nlookup; /* kernel references (LOOKUP replies minus FORGETs) */
	uint32_t mode, uid, gid;
	sfs_blob *blob; /* files in the view only */
	time_t mtime;
	struct node **kids; /* directories in the view: children sorted by name */
	size_t nkids;
	unsigned mark; /* set_view scratch */
};

enum fh_kind { FH_FILE = 1, FH_VERSION, FH_DIR };

struct dent {
	uint64_t ino;
	bool is_dir;
	char *name;
};

struct sfs_fh {
	enum fh_kind kind;
	struct sfs_fh *prev, *next; /* every live handle, so destroy can free them */
	sfs_blob *blob;             /* FH_FILE: the version this open serves */
	uint64_t seen;              /* FH_VERSION: generation last read (0: none yet) */
	struct fuse_pollhandle *ph; /* FH_VERSION: waiting poller */
	struct dent *ents;          /* FH_DIR: snapshot taken at opendir */
	size_t nents;
	uint64_t dir_ino, dir_parent;
	uint64_t ino; /* FH_FILE */
	bool revoked; /* FH_FILE: its path left the view: reads fail */
};

struct sfs {
	struct fuse_session *se;
	struct fuse_buf buf;
	struct sfs_config cfg;
	struct sfs_ops ops;
	void *ud;
	double entry_timeout, attr_timeout;
	struct node **byino; /* index: inode number */
	size_t nino;         /* next inode number == used length of byino */
	size_t capino;
	struct smap paths; /* "path" (file) or "path/" (dir) -> inode number */
	size_t nfiles;     /* files in the view */
	uint64_t generation;
	char gentext[24];
	size_t gentext_len;
	bool inited;
	bool denied; /* failed closed (sfs_deny): everything but the root answers EIO */
	time_t start;
	unsigned epoch;
	struct sfs_fh *fhs; /* list of open handles */
	/* no_open mode: .version reads and polls arrive with fh 0 */
	uint64_t noopen_seen;
	struct fuse_pollhandle *noopen_ph[SFS_NOOPEN_PH_MAX];
	size_t noopen_nph;
};

static struct node *get_node(const sfs *fs, uint64_t ino)
{
	return ino < fs->nino ? fs->byino[ino] : NULL;
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	sfs_blob_unref(n->blob);
	free(n->kids);
	free(n->path);
	free(n);
}

static struct node *node_new(uint64_t ino, const char *path, size_t len, bool is_dir)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->path = strndup(path, len);
	if (!n->path) {
		free(n);
		return NULL;
	}
	const char *slash = strrchr(n->path, '/');
	n->name = slash ? slash + 1 : n->path;
	n->ino = ino;
	n->is_dir = is_dir;
	return n;
}

static void set_gentext(sfs *fs)
{
	int r = snprintf(fs->gentext, sizeof(fs->gentext), "%" PRIu64 "\n", fs->generation);
	fs->gentext_len = r > 0 ? (size_t)r : 0;
}

/* ---- the notifier ---- */

enum nkind { N_INODE, N_ENTRY, N_DELETE, N_POLL };

struct nitem {
	enum nkind kind;
	uint64_t parent, ino;
	struct fuse_pollhandle *ph;
	size_t namelen;
	char name[SFS_NAME_CAP];
};

struct nbatch {
	struct nbatch *next;
	sfs *fs;
	size_t n, cap;
	struct nitem items[];
};

static pthread_mutex_t nlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nwork = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ndone = PTHREAD_COND_INITIALIZER;
static struct nbatch *nhead, **ntail = &nhead;
static const sfs *ninflight;
static bool nrunning, nstopping;
static pthread_t nthread;

static void nbatch_free(struct nbatch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i].kind == N_POLL)
			fuse_pollhandle_destroy(b->items[i].ph);
	free(b);
}

static void nbatch_send(struct nbatch *b)
{
	struct fuse_session *se = b->fs->se;
	/* Errors are expected and harmless: ENOENT when the kernel has nothing cached, ENODEV
	 * after the connection ended. */
	for (size_t i = 0; i < b->n; i++) {
		struct nitem *it = &b->items[i];
		switch (it->kind) {
		case N_INODE:
			fuse_lowlevel_notify_inval_inode(se, it->ino, 0, 0);
			break;
		case N_ENTRY:
			fuse_lowlevel_notify_inval_entry(se, it->parent, it->name, it->namelen);
			break;
		case N_DELETE:
			if (fuse_lowlevel_notify_delete(se, it->parent, it->ino, it->name,
							it->namelen) == -ENOTEMPTY)
				fuse_lowlevel_notify_inval_entry(se, it->parent, it->name,
								 it->namelen);
			break;
		case N_POLL:
			fuse_lowlevel_notify_poll(it->ph);
			break;
		}
	}
}

static void *notifier_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&nlock);
	for (;;) {
		if (!nhead) {
			if (nstopping)
				break;
			pthread_cond_wait(&nwork, &nlock);
			continue;
		}
		struct nbatch *b = nhead;
		nhead = b->next;
		if (!nhead)
			ntail = &nhead;
		ninflight = b->fs;
		pthread_mutex_unlock(&nlock);
		nbatch_send(b);
		nbatch_free(b);
		pthread_mutex_lock(&nlock);
		ninflight = NULL;
		pthread_cond_broadcast(&ndone);
	}
	pthread_mutex_unlock(&nlock);
	return NULL;
}

static int notifier_start_locked(void)
{
	if (nrunning)
		return 0;
	sigset_t all, old;
	sigfillset(&all);
	/* The thread takes no signals: the broker's signal handling stays on its own thread. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&nthread, NULL, notifier_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -r;
	nrunning = true;
	return 0;
}

int sfs_notifier_start(void)
{
	pthread_mutex_lock(&nlock);
	int r = notifier_start_locked();
	pthread_mutex_unlock(&nlock);
	return r;
}

void sfs_notifier_stop(void)
{
	pthread_mutex_lock(&nlock);
	if (!nrunning || nstopping) {
		pthread_mutex_unlock(&nlock);
		return;
	}
	nstopping = true; /* the thread drains the queue first */
	pthread_cond_signal(&nwork);
	pthread_mutex_unlock(&nlock);
	pthread_join(nthread, NULL);
	pthread_mutex_lock(&nlock);
	nrunning = false;
	nstopping = false;
	pthread_mutex_unlock(&nlock);
}

int sfs_notifier_flush_timeout(int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	if (timeout_ms >= 0) {
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	int r = 0;
	pthread_mutex_lock(&nlock);
	while ((nhead || ninflight) && nrunning) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&ndone, &nlock);
		} else if (pthread_cond_timedwait(&ndone, &nlock, &dl) == ETIMEDOUT) {
			r = (nhead || ninflight) ? -ETIMEDOUT : 0;
			break;
		}
	}
	pthread_mutex_unlock(&nlock);
	return r;
}

void sfs_notifier_flush(void)
{
	sfs_notifier_flush_timeout(-1);
}

static void notifier_queue(struct nbatch *b)
{
	pthread_mutex_lock(&nlock);
	if (notifier_start_locked() < 0) {
		/* No thread: the kernel keeps stale caches until timeouts expire. Nothing better
		 * to do without risking the deadlock the thread exists for. */
		pthread_mutex_unlock(&nlock);
		nbatch_free(b);
		return;
	}
	b->next = NULL;
	*ntail = b;
	ntail = &b->next;
	pthread_cond_signal(&nwork);
	pthread_mutex_unlock(&nlock);
}

static void queue_inval_inode(sfs *fs, uint64_t ino)
{
	if (!fs->inited)
		return;
	struct nbatch *b = calloc(1, sizeof(*b) + sizeof(b->items[0]));
	if (!b)
		return; /* the next rotation invalidates again */
	b->fs = fs;
	b->n = b->cap = 1;
	b->items[0].kind = N_INODE;
	b->items[0].ino = ino;
	notifier_queue(b);
}

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

static int kid_cmp(const void *a, const void *b)
{
	return strcmp((*(struct node *const *)a)->name, (*(struct node *const *)b)->name);
}

static void fh_link(sfs *fs, struct sfs_fh *fh)
{
	fh->prev = NULL;
	fh->next = fs->fhs;
	if (fs->fhs)
		fs->fhs->prev = fh;
	fs->fhs = fh;
}

static void fh_free(sfs *fs, struct sfs_fh *fh)
{
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		fs->fhs = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	sfs_blob_unref(fh->blob);
	if (fh->ph)
		fuse_pollhandle_destroy(fh->ph);
	for (size_t i = 0; i < fh->nents; i++)
		free(fh->ents[i].name);
	free(fh->ents);
	free(fh);
}

static struct sfs_fh *fi_fh(const struct fuse_file_info *fi)
{
	return fi ? (struct sfs_fh *)(uintptr_t)fi->fh : NULL;
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
	struct node *p = get_node(fs, parent);
	if (!p || !p->live || !p->is_dir) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct node **k = p->nkids ? bsearch(name, p->kids, p->nkids, sizeof(*k), kid_cmp_name)
				   : NULL;
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
	struct node *n = get_node(fs, ino);
	if (!n)
		return;
	n->nlookup = nlookup >= n->nlookup ? 0 : n->nlookup - nlookup;
	if (!n->nlookup && !n->live && ino >= SFS_FIRST_INO) {
		fs->byino[ino] = NULL;
		node_free(n);
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
	struct node *n = get_node(fs, ino);
	if (!n || !n->live) {
		fuse_reply_err(req, ENOENT);
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
	return (struct who){ c ? c->pid : 0, c ? c->uid : (uid_t)-1 };
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
	struct node *n = get_node(fs, ino);
	const char *path = n ? (n->is_version ? SFS_VERSION_FILE : n->path) : "";
	uint64_t version = n && n->blob ? n->blob->version : 0;
	int err = 0;
	if (fs->denied)
		err = EIO;
	else if (req_check(fs, req) < 0)
		err = EACCES;
	else if (!n || !n->live)
		err = ENOENT;
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
	fh_link(fs, fh);
	fi->fh = (uintptr_t)fh;
	if (fuse_reply_open(req, fi) != 0) {
		/* interrupted: the kernel will not release it */
		fh_free(fs, fh);
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
	struct sfs_fh *fh = fi_fh(fi);
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
		reply_slice(req, fh->blob->data, fh->blob->len, size, off);
		struct node *n = get_node(fs, fh->ino);
		if (!n || n->blob != fh->blob) {
			/* An open of an older version read through the page cache: the kernel
			 * now holds old pages, and a short read has even shrunk its idea of the
			 * size. Drop both (new opens bypass the cache meanwhile). */
			queue_inval_inode(fs, fh->ino);
			if (n)
				n->cache_stale = true;
		}
		return;
	}
	if (fh && fh->kind == FH_VERSION) {
		fh->seen = fs->generation;
		reply_slice(req, fs->gentext, fs->gentext_len, size, off);
		return;
	}
	if (fh) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	/* fh 0: no_open mode, a page-cache fill for some reader. */
	if (req_check(fs, req) < 0) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct node *n = get_node(fs, ino);
	if (!n || !n->live || n->is_dir) {
		fuse_reply_err(req, n && n->is_dir ? EISDIR : ESTALE);
		return;
	}
	if (n->is_version) {
		fs->noopen_seen = fs->generation;
		reply_slice(req, fs->gentext, fs->gentext_len, size, off);
		return;
	}
	reply_slice(req, n->blob->data, n->blob->len, size, off);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fh *fh = fi_fh(fi);
	if (fh)
		fh_free(req_fs(req), fh);
	fuse_reply_err(req, 0);
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
	struct node *n = get_node(fs, ino);
	if (!n || !n->live) {
		fuse_reply_err(req, ENOENT);
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
	fh_link(fs, fh);
	if (n->nkids) {
		fh->ents = calloc(n->nkids, sizeof(*fh->ents));
		if (!fh->ents)
			goto nomem_fh;
		for (size_t i = 0; i < n->nkids; i++) {
			fh->ents[i].name = strdup(n->kids[i]->name);
			if (!fh->ents[i].name)
				goto nomem_fh;
			fh->ents[i].ino = n->kids[i]->ino;
			fh->ents[i].is_dir = n->kids[i]->is_dir;
			fh->nents++;
		}
	}
	fi->fh = (uintptr_t)fh;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0)
		fh_free(fs, fh);
	return;
nomem_fh:
	fh_free(fs, fh);
nomem:
	fuse_reply_err(req, ENOMEM);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	sfs *fs = req_fs(req);
	struct sfs_fh *fh = fi_fh(fi);
	if (!fh || fh->kind != FH_DIR) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (fs->denied) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (size > 128 * 1024)
		size = 128 * 1024;
	char *buf = malloc(size ? size : 1);
	if (!buf) {
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
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fh *fh = fi_fh(fi);
	if (fh)
		fh_free(req_fs(req), fh);
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
	struct sfs_fh *fh = fi_fh(fi);
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
	struct node *n = fh ? NULL : get_node(fs, ino);
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
static const struct fuse_lowlevel_ops sfs_llops = {
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

/* ---- lifecycle ---- */

static int ensure_ino_cap(sfs *fs, size_t need)
{
	if (need <= fs->capino)
		return 0;
	size_t cap = fs->capino ? fs->capino : 64;
	while (cap < need)
		cap *= 2;
	struct node **a = realloc(fs->byino, cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	memset(a + fs->capino, 0, (cap - fs->capino) * sizeof(*a));
	fs->byino = a;
	fs->capino = cap;
	return 0;
}

/* Gives back the pthread key a new session took (see sfs_new). The session never uses it: we do
 * not enable splice, and every sfs session is created and destroyed on one thread. libfuse deletes
 * it again at fuse_session_destroy: by then the slot is free (EINVAL, harmless) or held by another
 * session's key, which this same function already gave back, so nothing in use is lost. */
static void sfs_release_session_key(pthread_key_t key)
{
	pthread_key_delete(key);
}

int sfs_new(sfs **out, const struct sfs_config *cfg, const struct sfs_ops *ops, void *ud)
{
	if (!out || !cfg || !ops || !ops->check)
		return -EINVAL;
	*out = NULL;
	if (sodium_init() < 0)
		return -ENOMEM;
	int r = sfs_notifier_start();
	if (r < 0)
		return r;
	sfs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->cfg = *cfg;
	fs->ops = *ops;
	fs->ud = ud;
	fs->entry_timeout = cfg->entry_timeout > 0 ? cfg->entry_timeout : SFS_TIMEOUT_DEFAULT;
	fs->attr_timeout = cfg->attr_timeout > 0 ? cfg->attr_timeout : SFS_TIMEOUT_DEFAULT;
	fs->generation = 1;
	fs->noopen_seen = 0;
	fs->start = time(NULL);
	set_gentext(fs);
	int fd = -1;
	r = ensure_ino_cap(fs, SFS_FIRST_INO);
	if (r < 0)
		goto fail;
	fs->nino = SFS_FIRST_INO;
	struct node *root = node_new(SFS_ROOT_INO, "", 0, true);
	struct node *ver = node_new(SFS_VERSION_INO, SFS_VERSION_FILE, strlen(SFS_VERSION_FILE),
				    false);
	struct node **kids = malloc(sizeof(*kids));
	if (!root || !ver || !kids) {
		node_free(root);
		node_free(ver);
		free(kids);
		r = -ENOMEM;
		goto fail;
	}
	root->live = ver->live = true;
	root->parent = SFS_ROOT_INO;
	ver->parent = SFS_ROOT_INO;
	ver->is_version = true;
	ver->mtime = fs->start;
	kids[0] = ver;
	root->kids = kids;
	root->nkids = 1;
	fs->byino[SFS_ROOT_INO] = root;
	fs->byino[SFS_VERSION_INO] = ver;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	char *argv[] = { (char *)"secretd", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	/* libfuse 3.14 takes a pthread key per session (for splice pipes, which we never ask
	 * for), so one process would stop at PTHREAD_KEYS_MAX (1024) sessions. glibc hands out
	 * the lowest free key: find it, let the session take it, then give it back. */
	pthread_key_t probe, check;
	bool have_probe = pthread_key_create(&probe, NULL) == 0;
	if (have_probe)
		pthread_key_delete(probe);
	fs->se = fuse_session_new(&args, &sfs_llops, sizeof(sfs_llops), fs);
	fuse_opt_free_args(&args); /* option parsing replaced argv with an allocated copy */
	if (!fs->se) {
		r = -ENOMEM;
		goto fail;
	}
	if (have_probe && pthread_key_create(&check, NULL) == 0) {
		pthread_key_delete(check);
		if (check != probe)
			sfs_release_session_key(probe);
	}
	char mp[32];
	snprintf(mp, sizeof(mp), "/dev/fd/%d", fd);
	/* Adopts the open fd (libfuse >= 3.3): nothing is mounted here. */
	if (fuse_session_mount(fs->se, mp) != 0) {
		r = -EIO;
		goto fail;
	}
	fd = -1; /* the session owns it now */
	*out = fs;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	sfs_destroy(fs);
	return r;
}

int sfs_fd(const sfs *fs)
{
	return fs && fs->se ? fuse_session_fd(fs->se) : -EBADF;
}

int sfs_mount_data(const sfs *fs, char *buf, size_t len)
{
	if (!fs || !buf)
		return -EINVAL;
	int r = snprintf(buf, len, "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,"
				   "default_permissions",
			 sfs_fd(fs));
	if (r < 0 || (size_t)r >= len)
		return -ENOSPC;
	return 0;
}

int sfs_dispatch(sfs *fs)
{
	if (!fs || !fs->se)
		return -EINVAL;
	int fd = fuse_session_fd(fs->se);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR)) {
		/* Not attached to a mount yet (a read would fail with EPERM), or disconnected
		 * (ENODEV, or ECONNABORTED after an abort, which libfuse would print). A 1-byte
		 * read tells them apart without consuming anything: attached devices refuse a
		 * buffer that small with EINVAL. */
		char c;
		if (read(fd, &c, 1) < 0 && errno == EPERM)
			return 0;
		fuse_session_exit(fs->se);
		return -ENODEV;
	}
	for (;;) {
		if (fuse_session_exited(fs->se))
			return -ENODEV;
		/* libfuse 3.14: -EAGAIN on an empty non-blocking fd (no message printed); a read
		 * failing with ENODEV marks the session exited and returns 0; ENOENT (an
		 * interrupted request) is retried inside. */
		int r = fuse_session_receive_buf(fs->se, &fs->buf);
		if (r == -EINTR)
			continue;
		if (r == -EAGAIN)
			return 0;
		if (r == 0)
			continue; /* exited (checked above) or nothing read */
		if (r == -ENODEV || r == -ECONNABORTED) {
			fuse_session_exit(fs->se);
			return -ENODEV;
		}
		if (r < 0)
			return r;
		fuse_session_process_buf(fs->se, &fs->buf);
	}
}

void sfs_destroy(sfs *fs)
{
	if (!fs)
		return;
	/* Drop our queued batches; wait out a batch being sent, serving meanwhile: the send may
	 * wait on a page locked by a read only we can answer. */
	pthread_mutex_lock(&nlock);
	struct nbatch **pp = &nhead;
	ntail = &nhead;
	while (*pp) {
		struct nbatch *b = *pp;
		if (b->fs == fs) {
			*pp = b->next;
			nbatch_free(b);
		} else {
			ntail = &b->next;
			pp = &b->next;
		}
	}
	while (ninflight == fs) {
		pthread_mutex_unlock(&nlock);
		struct pollfd p = { .fd = sfs_fd(fs), .events = POLLIN };
		if (fs->se && poll(&p, 1, 20) > 0)
			sfs_dispatch(fs);
		pthread_mutex_lock(&nlock);
	}
	pthread_cond_broadcast(&ndone);
	pthread_mutex_unlock(&nlock);

	while (fs->fhs)
		fh_free(fs, fs->fhs);
	for (size_t i = 0; i < fs->noopen_nph; i++)
		fuse_pollhandle_destroy(fs->noopen_ph[i]);
	/* Closing the only /dev/fuse fd of the connection aborts it: the mount answers ENOTCONN. */
	if (fs->se)
		fuse_session_destroy(fs->se);
	free(fs->buf.mem);
	for (size_t i = 0; i < fs->nino; i++)
		node_free(fs->byino[i]);
	free(fs->byino);
	smap_free(&fs->paths);
	free(fs);
}

size_t sfs_count(const sfs *fs)
{
	return fs ? fs->nfiles : 0;
}

uint64_t sfs_generation(const sfs *fs)
{
	return fs ? fs->generation : 0;
}

/* ---- set_view ---- */

struct want {
	const char *path; /* the key inside wmap (a file's or directory's full path) */
	size_t len;
	bool is_dir;
	const struct sfs_entry *e;
	size_t parent;    /* index into wants, or SIZE_MAX for the root */
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
			node_free(vb->w[i].fresh);
		free(vb->w[i].kids);
	}
	free(vb->w);
	free(vb->rootkids);
	smap_free(&vb->wmap);
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
	if (smap_put(&vb->wmap, path, len, vb->n) < 0)
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
			struct smap_slot *s = smap_find(&vb->wmap, buf);
			if (s) {
				if (last || !vb->w[s->val].is_dir)
					return -EINVAL; /* duplicate, or file where a dir is needed */
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
		struct smap_slot *s = smap_find(&fs->paths, key);
		if (s) {
			w->ino = s->val;
		} else {
			int r = ensure_ino_cap(fs, fs->nino + 1);
			if (r < 0)
				return r;
			r = smap_put(&fs->paths, key, strlen(key), fs->nino);
			if (r < 0)
				return r;
			w->ino = fs->nino++;
		}
		w->node = fs->byino[w->ino];
		if (!w->node) {
			w->fresh = node_new(w->ino, w->path, w->len, w->is_dir);
			if (!w->fresh)
				return -ENOMEM;
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
		struct node *p = get_node(fs, o->parent);
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
			node_free(o);
		}
	}
	/* kept, revived, added */
	size_t nfiles = 0;
	for (size_t i = 0; i < vb.n; i++) {
		struct want *w = &vb.w[i];
		struct node *nd = w->node ? w->node : w->fresh;
		uint64_t parent = w->parent == SIZE_MAX ? SFS_ROOT_INO : vb.w[w->parent].ino;
		bool was_live = w->node && w->node->live;
		bool changed = false;
		if (!w->is_dir) {
			nfiles++;
			changed = !was_live || nd->blob != w->e->blob || nd->mode != w->e->mode ||
				  nd->uid != w->e->uid || nd->gid != w->e->gid;
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
		if (was_live && changed) {
			struct nitem *it = &b->items[b->n++];
			it->kind = N_INODE;
			it->ino = nd->ino;
		} else if (!was_live) {
			if (w->node) { /* revived: the kernel may hold old attributes */
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
		struct node *p = vb.w[i].parent == SIZE_MAX ? root : fs->byino[vb.w[vb.w[i].parent].ino];
		if (p == root)
			root->kids[root->nkids++] = nd;
		else
			p->kids[vb.w[vb.w[i].parent].kfill++] = nd;
	}
	for (size_t i = 0; i < vb.n; i++) {
		struct node *nd = fs->byino[vb.w[i].ino];
		if (nd->is_dir && nd->nkids > 1)
			qsort(nd->kids, nd->nkids, sizeof(*nd->kids), kid_cmp);
	}
	qsort(root->kids, root->nkids, sizeof(*root->kids), kid_cmp);
	fs->nfiles = nfiles;
	/* Handles of paths that left the view are revoked (a rotation keeps the path: its handles
	 * go on reading the version they opened). */
	for (struct sfs_fh *fh = fs->fhs; fh; fh = fh->next) {
		if (fh->kind != FH_FILE || fh->revoked)
			continue;
		struct node *nd = get_node(fs, fh->ino);
		if (!nd || !nd->live)
			fh->revoked = true;
	}

	if (b->n || bump) {
		fs->generation++;
		set_gentext(fs);
		fs->byino[SFS_VERSION_INO]->mtime = now;
		struct nitem *it = &b->items[b->n++];
		it->kind = N_INODE;
		it->ino = SFS_VERSION_INO;
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
	if (b->n && fs->inited)
		notifier_queue(b); /* before INIT the kernel has nothing cached */
	else
		nbatch_free(b);
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
	return view_apply(fs, NULL, 0, true);
}

bool sfs_denied(const sfs *fs)
{
	return fs && fs->denied;
}
