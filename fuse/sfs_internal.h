/* sfs_internal.h: what the files of fuse/ share (not part of the API: fuse/sfs.h is).
 * session.c: the session's life and its nodes, adopt and release; ops.c: the FUSE operations;
 * view.c: sfs_set_view and sfs_deny; notify.c: the notifier thread; blob.c: blobs; smap.c: the
 * path map; journal.c: the inode journal (journal_parse.c: its pure parser). */
#pragma once
#define FUSE_USE_VERSION 35 /* before <fuse_lowlevel.h>: include this header first */
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/secret.h"
#include "fuse/sfs.h"

#define SFS_ROOT_INO FUSE_ROOT_ID
#define SFS_VERSION_INO 2
#define SFS_FIRST_INO 3
#define SFS_TIMEOUT_DEFAULT 3600.0
#define SFS_NAME_CAP 256 /* a segment of a valid name is at most 255 bytes */
#define SFS_NOOPEN_PH_MAX 16
#define SFS_PAGE_MIN 4096 /* the smallest page size: a page-cache fill asks at least this much */
/* Open handles per mount (files, .version, directories); more opens answer ENFILE. */
#define SFS_FH_MAX (1u << 20)
/* An adopted node's lookup count: the kernel holds an unknown number of lookups of it (made
 * with the previous server), so it is never taken for zero. */
#define SFS_NLOOKUP_UNKNOWN (UINT64_MAX / 4)

/* A blob (blob.c): a reference to the secret it serves, and that secret's version. */
struct sfs_blob {
	atomic_long ref;
	uint64_t version;
	secret *s;
};

struct smap_slot {
	char *key;
	uint64_t val;
};

struct smap {
	struct smap_slot *slots;
	size_t cap, n; /* cap is 0 or a power of two */
};

/* ---- nodes, handles, the filesystem ---- */

struct node {
	uint64_t ino, parent; /* parent: inode number (root's is itself) */
	char *path;           /* "" for the root */
	const char *name;     /* last segment, inside path */
	bool is_dir, live, is_version;
	bool cache_stale; /* content changed: the kernel's pages may be of an older version */
	bool adopted;     /* inode number given by a previous server (sfs_adopt) */
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
	uint64_t id;                /* the fh the kernel holds: (tag << 32) | (slot + 1) */
	uint32_t slot;              /* index in sfs.fhtab */
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
	/* The kernel may hold .version's pages (a read of a page or more: an mmap's fill) or
	 * attributes this session never gave it (before the first view, after an adoption): the
	 * next change invalidates its inode. Else a change that keeps gentext_len sends none
	 * (direct_io reads ask us anyway; only the mtime stat(2) shows lags). */
	bool ver_inval;
	bool inited;
	bool denied; /* failed closed (sfs_deny): everything but the root answers EIO */
	time_t start;
	unsigned epoch;
	struct sfs_fh *fhs;    /* list of open handles */
	struct sfs_fh **fhtab; /* handle ids: slot -> handle (NULL: free) */
	uint32_t fhused, fhcap;
	uint32_t *fhfree; /* free slots below fhused */
	uint32_t nfhfree;
	uint32_t fhtag; /* next tag (never 0); starts at a random value */
	/* the FUSE_INIT served (sfs_init_record) */
	uint8_t init_rec[SFS_INIT_RECORD_MAX];
	size_t init_len;
	bool init_toolong;
	/* the journal (journal.c) */
	int jfd;
	size_t jlen;
	/* adoption: inodes up to adopt_ino_max came from the journal */
	uint64_t adopt_ino_max;
	bool adopt_wait_view; /* adopted, no view yet: dispatch reads nothing */
	unsigned adopt_flags;
	int resend;      /* sfs_resend_status */
	bool notify_off; /* RESEND failed: no invalidations (see sfs_adopt_view_set) */
	/* no_open mode: .version reads and polls arrive with fh 0 */
	uint64_t noopen_seen;
	struct fuse_pollhandle *noopen_ph[SFS_NOOPEN_PH_MAX];
	size_t noopen_nph;
};

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

/* ---- smap.c ---- */
/* The slot of key, NULL if absent. */
struct smap_slot *sfs_smap_find(const struct smap *m, const char *key);
/* Inserts key (keylen bytes, copied) with val; the key must not be present. 0 or -ENOMEM. */
int sfs_smap_put(struct smap *m, const char *key, size_t keylen, uint64_t val);
/* Frees every key and the slots; m is empty again. */
void sfs_smap_free(struct smap *m);

/* ---- session.c ---- */
/* The node of inode ino, NULL if none. */
struct node *sfs_node_get(const sfs *fs, uint64_t ino);
/* A node for path (len bytes, copied), NULL on ENOMEM. Freed with sfs_node_free (NULL: no-op),
 * which drops its blob reference. */
struct node *sfs_node_new(uint64_t ino, const char *path, size_t len, bool is_dir);
void sfs_node_free(struct node *n);
/* Renders fs->generation into fs->gentext (the .version content). */
void sfs_gentext_set(sfs *fs);
/* Grows the inode index to hold at least need slots. 0 or -ENOMEM. */
int sfs_ino_reserve(sfs *fs, size_t need);
/* After a view was set: an adopted session's first one ends its wait and sends the RESEND. */
void sfs_adopt_view_set(sfs *fs);

/* ---- journal.c ---- */
/* Creates the journal memfd with its magic (sfs_new). 0 or -errno. */
int sfs_journal_create(sfs *fs);
/* Appends (ino, path[len], is_dir). 0, -E2BIG past SFS_JOURNAL_BYTES_MAX, -EIO/-errno when the
 * write failed (the journal is cut back to its last complete record). */
int sfs_journal_append(sfs *fs, uint64_t ino, const char *path, size_t len, bool is_dir);
/* Reads the journal in fs->jfd, fills fs->paths and sets fs->nino (sfs_adopt). */
int sfs_journal_replay(sfs *fs);

/* ---- ops.c ---- */
extern const struct fuse_lowlevel_ops sfs_llops;
/* Unlinks fh from fs's handle list and frees it (its blob reference, poll handle, names). */
void sfs_fh_free(sfs *fs, struct sfs_fh *fh);
/* qsort comparator of struct node * by name. */
int sfs_kid_cmp(const void *a, const void *b);

/* ---- notify.c ---- */
/* Queues b for the notifier thread (which frees it); frees it at once if no thread can run. */
void sfs_notifier_queue(struct nbatch *b);
/* Frees b and the poll handles it holds. NULL is a no-op. */
void sfs_nbatch_free(struct nbatch *b);
/* Queues one inode invalidation (nothing before INIT; dropped on ENOMEM: the next change
 * invalidates again). */
void sfs_queue_inval_inode(sfs *fs, uint64_t ino);
/* Drops fs's queued batches and waits out one being sent, serving fs meanwhile (sfs_destroy). */
void sfs_notifier_detach(sfs *fs);
/* Waits until every batch queued for fs has been sent, serving fs meanwhile (sfs_release). */
void sfs_notifier_drain(sfs *fs);
