/* mounts_int.h: the private header of the engine's mounts files, one job each, behind the public
 * API broker/engine/mounts.h:
 *   mounts.c       the registry object's life (new, free) and its counters
 *   registry.c     the containers: attach, detach, lookup by id and cgroup, identities, the
 *                  seen-only ones from the workload socket, the init's pidfd watch
 *   views.c        the policy inputs (grants and names from the store), computing a container's
 *                  view, applying it, failing it closed, the refresh and its retries, allows
 *   blobcache.c    the decrypted values shared by every view that shows them
 *   rendered.c     rendered files (templates): which a view shows, their shared renderings
 *   mountfs.c      a container's FUSE session: mount into its namespace, serve, check openers,
 *                  report opens, unmount
 *   mounts_json.c  JSON rendering of the containers and of an identity's granted names
 *   restore.c      re-attaching the containers of the persisted registry at start
 * Included only by those files (and by the unit tests). Everything runs on the loop's thread.
 * Functions return 0 or a negative errno unless said otherwise. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/engine/mounts.h"
#include "broker/os/cgroup.h"
#include "fuse/sfs.h"

#define MOUNTS_CHECK_CACHE 16 /* per-container cache of open decisions, keyed by process token */

/* ---- blobcache.c ---- */

/* One value of a secret, for ever: versions start again at 1 when a name is deleted and put
 * again, but the secret's id (store_secret_info.id) is never reused. Every cache of decrypted or
 * rendered values is keyed by this, never by (name, version) alone. */
struct mver {
	uint64_t sid;
	uint64_t version;
};

/* A decrypted secret version shared by every mount that shows it. */
struct mblob {
	char *name;
	bool previous;
	struct mver ver;
	sfs_blob *blob;
	bool used; /* referenced by the refresh in progress */
};

/* The cache of decrypted values, keyed by (name, previous). Zero-initialised is empty. */
struct blobcache {
	struct mblob *v;
	size_t n, cap;
	size_t *idx; /* hash of v by (name, previous): index + 1, 0 = empty; NULL = none (scan) */
	size_t cidx; /* 0 or a power of two */
};

/* The blob showing ver of (name, previous): the cached one when it holds that very value, else
 * decrypted from s (store_get_secret_of: -ENOENT, -EBADMSG, ...) and cached. Marks it used for the
 * next sweep. *out is borrowed from the cache (valid until a sweep drops it; take an sfs_blob_ref
 * to keep it). */
int blobcache_get(struct blobcache *bc, store *s, const char *name, bool previous, struct mver ver,
                  sfs_blob **out);
/* Drops the blobs no blobcache_get used since the last sweep (mounts keep their own
 * references) and clears the marks. */
void blobcache_sweep(struct blobcache *bc);
/* After one container's mount (not a full refresh, so the used marks say nothing about the other
 * containers): drops only the entries no session holds, keeping every other one and its mark,
 * so that the next refresh hands the other containers the same blobs (no invalidation). */
void blobcache_sweep_unshared(struct blobcache *bc);
/* The cached blob of (name, previous) when it holds ver, else NULL; borrowed, not marked used
 * (a reader that is not a view must not keep a blob alive). */
sfs_blob *blobcache_peek(struct blobcache *bc, const char *name, bool previous, struct mver ver);
/* Drops every blob; bc is empty again. */
void blobcache_free(struct blobcache *bc);

/* ---- rendered.c ---- */

struct tmpl;
/* One template's rendering, shared by every view showing it. */
struct mrender {
	char *name;        /* the template's name */
	struct mver tver;  /* the template's version parsed into t (sid: the template's id) */
	struct tmpl *t;    /* parsed (its text in locked memory) */
	struct mver *refv; /* the referenced secrets' values blob was rendered from */
	sfs_blob *blob;    /* NULL until rendered */
	bool used;         /* used by the refresh in progress */
};
/* Zero-initialised is empty. Templates are few: a list. */
struct rendercache {
	struct mrender *v;
	size_t n, cap;
};
/* True when a grant's target names a template ("tmpl:NAME"). */
bool rendered_is_grant(const char *target);
/* Adds to who's files (*files, *nf: policy_view's, sorted by path; may be reallocated) the
 * rendered files of the template grants matching who whose template exists and whose every
 * referenced secret who is granted and exists; a path that a secret's file (or an earlier
 * template grant's) has, or that is a directory of one or has one as its directory, is skipped.
 * Sorted by path again. .secret is the grant's "tmpl:NAME". 0, -ENOMEM, or a template that cannot
 * be read or parsed (-EBADMSG, ...). */
int rendered_merge(mounts *m, const struct policy_identity *who, struct policy_file **files,
                   size_t *nf);
/* The rendering of grant_target ("tmpl:NAME") over the current inputs: the cached blob when the
 * template's and every input's versions are those it was made from, else a new one. Borrowed
 * from the cache like blobcache_get's. -ENOENT when an input is gone; render errors. */
int rendered_blob(mounts *m, const char *grant_target, sfs_blob **out);
/* Drops the renderings no view used since the last sweep; clears the marks. */
void rendered_sweep(struct rendercache *rc);
void rendered_free(struct rendercache *rc);

/* ---- registry.c ---- */

struct mcheck {
	pid_t pid;
	uint64_t token; /* procwatch's name for that very process; 0: free */
	bool ok;
};

/* One known container. */
struct mcont {
	mounts *m;
	char *id, *runtime, *name;
	struct policy_label *labels;
	size_t nlabels;
	char cgroup[CGROUP_PATH_MAX];
	pid_t pid;
	int pidfd;           /* the container's init, watched for exit; -1 if unknown */
	uint64_t start_time; /* the init's (hook): field 22 of /proc/PID/stat */
	bool wants;          /* it asked for secrets (attach) */
	/* how its mount was made (kept in its registry row for restore): at attach in the init's
	 * namespace, or by a workload `mount` in the namespace of mount_pid (start mount_start) */
	enum store_cont_mount mount_kind;
	pid_t mount_pid;
	uint64_t mount_start;
	uint64_t mount_ns; /* that mount namespace's inode */
	uint32_t uid, gid;
	bool hook; /* registered by the OCI hook (else seen on the workload socket) */
	sfs *fs;   /* NULL when not mounted */
	bool held; /* its connection was handed to the keeper (mounts_config.on_conn) */
	char *target, *root;
	size_t nfiles;
	int64_t created, last_seen;
	uint64_t seen_seq; /* order of last sight (m->seen_seq), for forgetting the least recent */
	uint64_t opens, denied;
	bool failed;  /* its last view could not be applied: the mount is denied (sfs_deny) */
	bool deny_ok; /* sfs_deny queued its invalidations (else it is tried again) */
	struct mcheck cache[MOUNTS_CHECK_CACHE];
	unsigned cache_next;
	/* the view last applied (for naming the secret an open reads); its secret pointers are
	 * valid only while files_gen == m->in.gen */
	struct policy_file *files;
	size_t nfiles_view;
	uint64_t files_gen;
	struct mcont *next;
};

/* A new unregistered record (not linked into m); NULL on ENOMEM. runtime NULL = "oci", name
 * NULL = "". */
struct mcont *registry_cont_new(mounts *m, const char *id, const char *runtime, const char *name);
/* Unmounts without entering its namespace, stops watching its pidfd, frees. NULL is a no-op. */
void registry_cont_free(struct mcont *c);
/* Takes c out of m's list (does not free it). */
void registry_unlink(mounts *m, struct mcont *c);
/* Writes c's row of the persisted registry (store_containers_put): a hook-attached container,
 * or a seen-only one with a self-mount. */
int registry_persist(struct mcont *c);
/* Deletes c's row (the container is gone or detached); a failure other than -ENOENT is counted
 * in st.registry_write_failures (a stale row is forgotten at the next start: its pid is gone). */
void registry_unpersist(struct mcont *c);
/* Links c into m's list; a hook container's init pidfd is watched for exit. */
int registry_link(mounts *m, struct mcont *c);
/* c's policy identity (strings point into c). */
void registry_identity(const struct mcont *c, struct policy_identity *who);

/* ---- views.c ---- */

/* The policy inputs: grants and secret names as of the last load. */
struct views_inputs {
	struct store_grant *sgrants;
	size_t nsgrants;
	struct policy_grant *grants; /* sgrants but templates' as policy sees them (strings point
	                              * into sgrants) */
	size_t ngrants;
	struct store_secret_info *secrets; /* sorted by name */
	size_t nsecrets;
	const char **names; /* the secrets' names (point into secrets) */
	/* template grants ("tmpl:NAME": kept out of grants, which policy sees) and templates */
	struct policy_grant *tgrants; /* strings point into sgrants */
	size_t ntgrants;
	struct store_tmpl_info *tmpls; /* sorted by name */
	size_t ntmpls;
	uint64_t gen; /* bumped whenever the inputs are replaced */
	bool stale;   /* the last load failed: inputs emptied, every mount denied */
};

/* Reads grants and secret names from m's store into m->in (replaced only on success). */
int views_inputs_load(mounts *m);
/* Empties m->in (gen and stale unchanged). */
void views_inputs_free(mounts *m);
/* Loads the inputs again when the last load failed (before a new mount uses them). */
int views_inputs_fresh(mounts *m);
/* Whether secret name exists in the inputs; its current value (-ENOENT). */
bool views_has_secret(mounts *m, const char *name);
int views_secret_version(mounts *m, const char *name, struct mver *ver);

/* One identity's view as computed from the inputs. */
struct mview {
	struct policy_file *files; /* malloc'd, sorted by path (policy_view) */
	size_t nfiles;
	struct sfs_entry
	    *entries; /* malloc'd; paths point into files, blobs borrowed from the
	               * cache; a .previous file with no previous version is left out */
	size_t nentries;
};
/* Computes who's view over m's inputs, reading the values through the blob cache. 0, or
 * policy_view's -ENOMEM or the first value that cannot be read or verified (store_get's
 * -EBADMSG, ...): then nothing is returned (*out all empty). Free with views_clear. */
int views_build(mounts *m, const struct policy_identity *who, struct mview *out);
void views_clear(struct mview *v);
/* Builds c's view and hands it to its sfs (when mounted); remembers its files. */
int views_apply(struct mcont *c);
/* The number of files c's view would show (0 also on ENOMEM). */
size_t views_count(struct mcont *c);
/* The loop's prepare hook: runs the pending retry of a failed refresh when its pause is over;
 * returns the wait it allows in ms (-1: none pending). ud is the mounts. */
int views_retry_prepare(loop *l, void *ud);

/* ---- mountfs.c ---- */

/* Creates c's sfs with its view and mounts it at c->target (under c->root) in the mount
 * namespace of the process behind pidfd, then serves it from the loop. replace: stale
 * fuse.secretd mounts at the target are detached first (restore, nsmount_replace). On failure
 * c stays unmounted. */
int mountfs_mount(struct mcont *c, int pidfd, bool replace);
/* Serves a connection a dead predecessor left with the keeper (h's fds are closed here): adopts
 * it (sfs_adopt), applies c's view (which sends FUSE_NOTIFY_RESEND) and serves it from the loop.
 * On failure c stays unmounted (the caller mounts afresh). */
int mountfs_adopt(struct mcont *c, struct mounts_held *h);
/* Tears c's sfs down (first unmounting it inside the container when in_namespace and its init
 * still lives); no-op when not mounted. The sfs is gone either way; returns 0, or the -errno of
 * the unmount in the container's namespace, which left a stale mount there (it serves nothing:
 * its FUSE connection is closed) and is counted in st.unmount_failures. */
int mountfs_unmount(struct mcont *c, bool in_namespace);
/* The same, unmounting inside the namespace of pidfd's process (-1: not at all). */
int mountfs_unmount_from(struct mcont *c, int pidfd);

/* ---- mounts.c ---- */

struct mounts {
	loop *loop;
	store *store;
	struct mounts_config cfg;
	struct mcont *conts;
	size_t ncont;
	uint64_t seen_seq; /* bumped at every sight of a container */
	struct views_inputs in;
	struct blobcache blobs;
	struct rendercache renders;
	size_t nfailed;   /* mounted containers denied */
	bool releasing;   /* mounts_release: sessions are handed over, not ended */
	int retry_ms;     /* current pause between retries (0: none pending) */
	int64_t retry_at; /* CLOCK_MONOTONIC ms of the next retry */
	struct mounts_stats st;
};
