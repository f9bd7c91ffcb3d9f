/* mounts: the containers the broker knows (registered by the OCI hook, or seen on the workload
 * socket), the view of secrets each one gets (policy over the store's grants), and each one's FUSE
 * mount (sfs) with its lifecycle: init exit (pidfd readable) or connection end tears it down.
 * Runs on the event loop's thread. Functions return 0 or a negative errno. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "broker/os/ident.h"
#include "broker/os/loop.h"
#include "broker/rules/policy.h"
#include "broker/os/procwatch.h"
#include "broker/store/store.h"

#define MOUNTS_ID_MAX 128    /* container id bytes */
#define MOUNTS_NAME_MAX 128  /* container name bytes */
#define MOUNTS_SEEN_MAX 1024 /* unregistered containers remembered from the workload socket */
/* A container whose view could not be applied is failed closed and the whole refresh retried
 * after MOUNTS_RETRY_MIN_MS, the pause doubling up to MOUNTS_RETRY_MAX_MS while it fails. */
#define MOUNTS_RETRY_MIN_MS 100
#define MOUNTS_RETRY_MAX_MS 5000

typedef struct mounts mounts;

/* One open(2) of a file in a container's mount, for the audit trail. Strings valid during the
 * callback only. */
struct mounts_open_event {
	const char *actor; /* container name, else id */
	pid_t pid;         /* the opener, in the daemon's pid namespace */
	const char *exe;   /* its executable ("" if unknown), or NULL without a procwatch */
	uid_t uid;
	const char *secret; /* the secret the file shows, or the file's path if unknown */
	const char *path;   /* the file's path inside the mount */
	uint64_t version;
	int result; /* 0 or -errno (-EACCES: refused by the cgroup check) */
};
typedef void (*mounts_open_cb)(void *ud, const struct mounts_open_event *ev);
/* A mounted container's view changed state: err < 0, it could not be applied and the mount is
 * failed closed (every access answers EIO) until a retry succeeds; err == 0, it serves again.
 * Called once per change of state (not per retry); actor is the name, else the id. */
typedef void (*mounts_view_cb)(void *ud, const char *actor, int err);

/* A container's FUSE connection, for a keeper (mounts_config.on_conn). */
struct mounts_conn {
	const char *id;          /* the container id */
	bool held;               /* true: hold a duplicate; false: close it */
	int fuse_fd, journal_fd; /* held: the /dev/fuse fd and the inode journal (sfs.h) */
	const void *init;        /* held: the connection's INIT record (sfs_init_record) */
	size_t init_len;
};

/* A held connection handed back for adoption (mounts_restore_ops.take_held). */
#define MOUNTS_INIT_MAX 512 /* == SFS_INIT_RECORD_MAX */
struct mounts_held {
	int fuse_fd, journal_fd; /* owned by the receiver */
	uint8_t init[MOUNTS_INIT_MAX];
	size_t init_len;
};

struct mounts_config {
	bool no_open;           /* every mount in no-open mode (see sfs_config.no_open) */
	mounts_open_cb on_open; /* called for every FUSE open (may be NULL); must not block */
	/* Asked first on every check (open, lookup, getattr; may be NULL): < 0 refuses with EACCES
	 * (the audit cannot record opens, see audit_admit). Gets on_open_ud; must not block. */
	int (*open_gate)(void *ud);
	void *on_open_ud;
	mounts_view_cb on_view; /* may be NULL; must not block */
	void *on_view_ud;
	/* Hands each container's FUSE connection to a keeper (may be NULL). Called with held true
	 * once the kernel's INIT has been served (fds borrowed: the callee duplicates them), and
	 * with held false when the session ends, before this process closes its fd: the holder
	 * must close its duplicate, or a stale mount would wait instead of failing. Not called for
	 * a hand-over (mounts_release), where the holder keeps them. Must not block. */
	void (*on_conn)(void *ud, const struct mounts_conn *conn);
	void *on_conn_ud;
	/* Remembers openers' identities and exes (may be NULL: every open is then checked from
	 * /proc afresh and ev->exe is NULL). Not owned; must outlive the registry. */
	procwatch *procwatch;
};

/* Counters for /metrics. */
struct mounts_stats {
	uint64_t containers, mounted, files, opens, opens_denied, refreshes;
	uint64_t view_failures; /* views that could not be applied (each attempt, retries too) */
	uint64_t failed_closed; /* mounted containers denied now (gauge) */
	/* unmounts in a live container's namespace that failed: its FUSE connection is closed
	 * anyway, so the stale mount serves nothing (ENOTCONN), but it stays until the container
	 * ends */
	uint64_t unmount_failures;
	uint64_t renders; /* rendered files' renderings made (an input changed, or the first) */
	/* registry rows (store_containers_*) that could not be deleted or updated after a detach,
	 * an exit or an ended mount (a failed write at attach fails the attach instead) */
	uint64_t registry_write_failures;
	uint64_t restore_failures; /* containers mounts_restore could not restore */
};

struct mounts_attach_req {
	const char *id;      /* container id (printable, 1..MOUNTS_ID_MAX) */
	pid_t pid;           /* the container's init, as the runtime reports it */
	const char *root;    /* container root path in its namespace (NULL: the process's root) */
	const char *target;  /* absolute mount path inside the container, NULL = /run/secrets */
	const char *name;    /* NULL or "" if unknown */
	const char *runtime; /* "runc", "crun", "podman", "oci", ... */
	const struct policy_label *labels;
	size_t nlabels;
	int64_t uid, gid; /* the container process's user (-1: the init's current one) */
	bool wants;       /* the container asked for secrets (io.secretd.* annotation) */
};

/* Creates the registry, loads grants and secret names from the store and adds the retry hook to
 * the loop. */
int mounts_new(mounts **out, loop *l, store *s, const struct mounts_config *cfg);
/* Tears every mount down (unmount where the container still lives, abort, wipe) and frees. The
 * persisted registry rows stay: the next start re-attaches the containers that still run. */
void mounts_free(mounts *m);
/* Frees without unmounting: each session's fd is closed, which ends the connection only when no
 * other process holds a duplicate (the keeper does: its next daemon process adopts it). Memory is
 * wiped as by mounts_free. For a hand-over (upgrade). NULL is a no-op. */
void mounts_release(mounts *m);

/* Registers a container (OCI hook, createRuntime) and, when it has grants or wants secrets, mounts
 * its filesystem at target. *mounted and *files tell what happened. -EEXIST: id already attached;
 * -EPERM: its cgroup cannot tell it apart from the host; -ELOOP: unsafe (symlinked) target.
 * The container's row in the persisted registry (store_containers_put: id, name, labels,
 * cgroup, init pid and start time, target, ...) is written before this returns; when it cannot
 * be written the attach fails closed (the store's -errno; nothing registered, the mount
 * removed), so the hook gets an error and the container does not start. The row is deleted
 * when the container is detached or its init exits; a plain stop (mounts_free) keeps it. */
int mounts_attach(mounts *m, const struct mounts_attach_req *r, bool *mounted, size_t *files);
/* Unmounts (if the container still lives), wipes and forgets container id. -ENOENT if unknown.
 * *unmount_err (may be NULL): 0, or why the unmount inside the live container failed (the
 * container is detached anyway; its stale mount serves nothing). */
int mounts_detach(mounts *m, const char *id, int *unmount_err);
/* A process inside a container asks for its own mount (workload API): mounts into the peer's own
 * mount namespace at target. -EPERM for a host process; -EEXIST if already mounted. The mount
 * is persisted (the requester's pid and start time) like an attach; a failed write undoes it. */
int mounts_mount_self(mounts *m, const struct ident *who, const char *target, size_t *files);

/* Resolves a peer to a policy identity: a registered container whose cgroup holds the peer, else
 * a well-known runtime's container, else a host process. Strings point into m or who and stay
 * valid until the next call that changes m. Also remembers unregistered containers as seen. */
void mounts_identify(mounts *m, const struct ident *who, struct policy_identity *out);
/* True when the identity is granted secret `name` (which must exist). */
bool mounts_allows(mounts *m, const struct policy_identity *who, const char *name);
/* The names of existing secrets granted to who, sorted, as a JSON array (new reference). */
json_t *mounts_granted_json(mounts *m, const struct policy_identity *who);
/* The rendered files who's mount shows (docs/templates.md's access rule: granted the template
 * and every secret it names, each existing), as a JSON array of {"name": TEMPLATE, "path": PATH}
 * sorted by path (new reference); NULL when the inputs cannot be read (or ENOMEM). */
json_t *mounts_granted_templates_json(mounts *m, const struct policy_identity *who);
/* The rendering of template name that who's mount shows: 0 with *out (a new reference:
 * secret_unref) and *version the template's version; -ENOENT alike for a template that does not
 * exist and one who is not shown; other errors (-EBADMSG, a render error) as a view's. */
int mounts_template_read(mounts *m, const struct policy_identity *who, const char *name,
                         struct secret **out, uint64_t *version);

/* The current value of secret name (its version as of the last refresh, which every change is
 * followed by) when the mounts already hold it decrypted: 0 with *out (a new reference:
 * secret_unref) and *version; -ENOENT when no mount holds that version, or the inputs are
 * stale (then read the store). Checks no grant: the caller decides who may read. The value was
 * verified and decrypted by the refresh that cached it, and is what every mount shows. */
int mounts_value_cached(mounts *m, const char *name, struct secret **out, uint64_t *version);

/* Re-reads grants and secrets from the store and updates every mount's view (call after any
 * change: put, delete, grant, revoke). Only changed files are invalidated in the kernel.
 * Fails closed: a container whose view cannot be applied (the store cannot be read, a value
 * cannot be decrypted or verified, no memory, a view past SFS_FILES_MAX) is denied (sfs_deny)
 * and the refresh is retried from the loop with a growing pause until it succeeds. When the
 * grants and names cannot be read at all, every mount is denied and the workload API allows
 * nothing until they can. Returns 0, or the first error; *unapplied (may be NULL) is the number
 * of mounted containers denied after this call. */
int mounts_refresh(mounts *m, size_t *unapplied);

/* Names a view reserves: the root's SFS_VERSION_FILE (a first segment ".version") and any name
 * ending in SFS_PREVIOUS_SUFFIX (".previous", the --previous file of another secret). 0 if name
 * (valid per names_check) may be stored or used as a grant path, else -EINVAL with *why a
 * static reason. */
int mounts_name_check(const char *name, size_t len, const char **why);

/* ---- restore (restore.c): re-attaching the persisted registry at start ---- */

/* A later step holds each container's FUSE fd in another process; restore asks it first. */
struct mounts_restore_ops {
	/* The live FUSE connection held for container id: 0 with *out filled (its fds the
	 * caller's then), -ENOENT when none is held, another -errno on failure. NULL: none is ever
	 * held. A held connection is adopted (sfs_adopt: the container's mount never went away;
	 * requests the dead process had read are answered through FUSE_NOTIFY_RESEND); when that
	 * fails, the container is mounted afresh. */
	int (*take_held)(void *ud, const char *id, struct mounts_held *out);
	void *ud;
};

enum mounts_restore_outcome {
	MOUNTS_RESTORE_RESTORED,  /* registered again (mounted afresh when it had a mount) */
	MOUNTS_RESTORE_FORGOTTEN, /* it exited meanwhile (pid gone, another start time or cgroup):
	                           * its row is deleted */
	MOUNTS_RESTORE_FAILED,    /* could not be restored (err, why) */
};
/* One container's outcome; strings valid during the callback. */
struct mounts_restore_event {
	enum mounts_restore_outcome outcome;
	const char *id, *name;
	bool mounted; /* restored: it serves again at target */
	bool adopted; /* restored: its live connection was adopted from the keeper (not mounted
	               * afresh): its mount never went away */
	const char *target;
	size_t files;
	const char *why; /* forgotten, failed: a static reason */
	int err;         /* failed: the -errno */
	bool row_kept;   /* failed: its row stays for the next start (see mounts_restore) */
};
typedef void (*mounts_restore_cb)(void *ud, const struct mounts_restore_event *ev);
struct mounts_restore_counts {
	size_t restored, forgotten, failed;
	size_t adopted; /* of the restored: connections taken over from the keeper */
};

/* Call once, right after mounts_new, before serving: for every row of the persisted registry,
 * finds its process (pidfd + the start time in the row: a reused pid is never taken for it)
 * and its cgroup (must still hold it); one that is gone or changed is forgotten (row deleted).
 * A running one is registered again with its name, labels and cgroup, and its mount (if it had
 * one) is made afresh in its namespace (its /proc/PID/root; the stale mount at the target is
 * detached first: nsmount_replace), or adopted from ops->take_held (ops may be NULL; adoption
 * itself is a later step: a held fd is closed and the container re-mounted). A row failing its
 * MAC is not restored and deleted (failed); a mount that cannot be made again is failed with its
 * row kept (the container stays registered without its mount, and the next start tries again);
 * every failure is counted in st.restore_failures. cb (may be NULL) hears of each row. 0, or the
 * store's -errno when the rows cannot be read (then nothing was restored; counted as one
 * failure). */
int mounts_restore(mounts *m, const struct mounts_restore_ops *ops, mounts_restore_cb cb,
                   void *cb_ud, struct mounts_restore_counts *out);

/* JSON array describing every known container (new reference; NULL on ENOMEM). */
json_t *mounts_list_json(mounts *m);
void mounts_get_stats(mounts *m, struct mounts_stats *st);
