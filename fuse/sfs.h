/* sfs ("secret filesystem"): one container's read-only, in-memory filesystem served over FUSE with
 * the libfuse3 low-level API. Knows nothing of the broker: the caller hands it the entries to show
 * and callbacks for the access decision and the audit record. Single-threaded use: every function
 * but the notifier's internals runs on the caller's (event loop) thread; kernel invalidations are
 * sent from one notifier thread shared by all mounts, because an invalidation can wait on a page
 * locked by a read that only the serving thread would answer.
 * Functions return 0 or a negative errno unless said otherwise. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* common/secret.h's type, declared here without its typedef: the name "secret" is a common
 * variable name in the broker, and -Wshadow refuses a local that shadows a typedef. */
struct secret;

/* Files in one view. Memory is per entry, per mount, about 250 bytes plus the path (node, path
 * index, inode slot) and, while sfs_set_view runs, about 300 bytes more of scratch; values are
 * shared (sfs_blob). 1,000,000 entries bound one mount near 0.5 GiB. */
#define SFS_FILES_MAX 1000000
#define SFS_VERSION_FILE ".version"     /* root file whose content changes on every view change */
#define SFS_PREVIOUS_SUFFIX ".previous" /* a --previous grant shows NAME.previous */
/* Values of at most SFS_SLAB_VALUE_MAX bytes share SFS_SLAB_BYTES regions (common/secret.h). */
#define SFS_SLAB_BYTES (32 * 1024) /* == SECRET_SLAB_BYTES */
#define SFS_SLAB_VALUE_MAX 2048    /* == SECRET_SLAB_VALUE_MAX */

/* An immutable, reference-counted secret value (a reference to a common/secret, plus the secret
 * version it is), shared by every mount that shows the same secret version (memory locking is
 * scarce: one copy per version, not per mount). */
typedef struct sfs_blob sfs_blob;
/* A new blob (refcount 1) serving s, which it takes its own reference to (the caller keeps its
 * own): the bytes are not copied. s must not be written to any more. NULL on ENOMEM or s NULL. */
sfs_blob *sfs_blob_wrap(struct secret *s, uint64_t version);
/* Copies len bytes into a new secret and wraps it (refcount 1): sfs_blob_wrap for callers that
 * hold a bare buffer. NULL on ENOMEM, or data NULL with len not 0. */
sfs_blob *sfs_blob_new(const uint8_t *data, size_t len, uint64_t version);
/* Adds a reference; returns b. Thread-safe. */
sfs_blob *sfs_blob_ref(sfs_blob *b);
/* Drops a reference; the last one drops the secret's (which wipes and frees when it was the last
 * one). NULL is a no-op. Thread-safe. */
void sfs_blob_unref(sfs_blob *b);
size_t sfs_blob_len(const sfs_blob *b);
/* The secret served (borrowed: valid while b is held). NULL for b NULL. */
struct secret *sfs_blob_secret(const sfs_blob *b);
uint64_t sfs_blob_version(const sfs_blob *b);
/* True when a reference other than the caller's exists (a session's view, an open handle). */
bool sfs_blob_shared(const sfs_blob *b);

/* One file of a view. */
struct sfs_entry {
	const char *path; /* relative, '/'-separated, valid per names_check; directories implied */
	uint32_t mode;    /* permission bits (e.g. 0400) */
	uint32_t uid, gid;
	sfs_blob *blob; /* borrowed: sfs takes its own reference */
};

struct sfs_ops {
	/* May process pid (uid, gid from the FUSE request) use this mount? 0 or -EACCES.
	 * Called on every open and opendir, and on lookup/getattr of anything but the root.
	 * pid 0 (caller outside our pid namespace) is refused before this is called. */
	int (*check)(void *ud, pid_t pid, uid_t uid, gid_t gid);
	/* After every open of a file: the path, the blob version served (0 for .version) and the
	 * result (0 or -errno). For the audit trail; may be NULL. */
	void (*opened)(void *ud, pid_t pid, uid_t uid, const char *path, uint64_t version,
	               int result);
};

struct sfs_config {
	bool no_open;         /* answer OPEN with ENOSYS once: the kernel then never asks again and
	                         serves from its page cache (no per-open check, no open audit) */
	double entry_timeout; /* seconds; 0 = default (3600: we invalidate explicitly) */
	double attr_timeout;
	uint32_t dir_uid, dir_gid; /* owner of directories (mode 0555) */
};

typedef struct sfs sfs;

/* Opens /dev/fuse and creates the libfuse session, not yet mounted: the caller mounts the fd
 * (sfs_fd) with sfs_mount_data(). */
int sfs_new(sfs **out, const struct sfs_config *cfg, const struct sfs_ops *ops, void *ud);
/* The /dev/fuse fd: poll it for EPOLLIN and call sfs_dispatch. Owned by sfs. */
int sfs_fd(const sfs *fs);
/* Writes the kernel mount data ("fd=N,rootmode=40000,user_id=0,group_id=0,allow_other,
 * default_permissions") into buf. -ENOSPC if len is too small. */
int sfs_mount_data(const sfs *fs, char *buf, size_t len);
/* Replaces the view with n entries and ends a denied state (sfs_deny). Diffs against the current
 * view and queues exactly the needed invalidations (changed content: inode; added/removed names:
 * entry/delete), bumps .version and wakes pollers of .version. Open file handles keep the blob
 * they opened (no mixed-version reads) while their path stays in the view; handles of a path that
 * leaves the view are revoked: their reads fail with EACCES, and the inode's cached pages (and so
 * every mmap of it) are invalidated, so the next access asks us and fails (an mmap gets SIGBUS).
 * -EINVAL for a bad path, -E2BIG for more than SFS_FILES_MAX entries, -ENOMEM: the old view
 * stays (the caller should sfs_deny, it is no longer what the container may see); the same for
 * a failed write of the inode journal (-E2BIG past SFS_JOURNAL_BYTES_MAX, -EIO or another
 * errno): no inode is shown before it is journaled. */
int sfs_set_view(sfs *fs, const struct sfs_entry *e, size_t n);
/* Fails the mount closed: from now on every lookup, getattr (but the root's), open, opendir,
 * readdir and read answers EIO, the view is emptied (handles revoked, cached pages and entries
 * invalidated as for removed paths) and pollers of .version wake. Lasts until a successful
 * sfs_set_view. 0, or -ENOMEM when the invalidations could not be queued: the mount is denied
 * all the same, but the kernel may still hold cached pages: call again (it is idempotent). */
int sfs_deny(sfs *fs);
/* True between sfs_deny and the next successful sfs_set_view. */
bool sfs_denied(const sfs *fs);
/* Handles the requests pending on the fd (non-blocking). 0, or -ENODEV when the connection has
 * ended (unmounted or aborted): the caller then removes the fd from its loop and destroys. */
int sfs_dispatch(sfs *fs);
/* For a level-triggered event loop: handles at most one request, without a poll of its own.
 * revents: what the caller's poll/epoll reported for sfs_fd (POLLERR == EPOLLERR: checked for
 * a connection not attached yet, 0, or ended, -ENODEV). The fd stays readable while requests
 * are pending, so the loop comes back; one epoll_wait then serves many connections, instead of
 * a poll and a failing (EAGAIN) read per connection per wake-up. Returns as sfs_dispatch. */
int sfs_dispatch_ready(sfs *fs, uint32_t revents);
/* Closes the fd and drops every blob reference. Closing the last fd of a connection aborts it
 * (the mount answers ENOTCONN); while another process (a keeper) holds a duplicate, the
 * connection stays and that holder decides. Queued invalidations are dropped. NULL is a no-op. */
void sfs_destroy(sfs *fs);

/* ---- handing a live connection to another process (docs/DESIGN.md, "FUSE hand-over") ----
 *
 * A keeper holds a duplicate of the /dev/fuse fd and of the journal memfd; the mount lives as
 * long as any fd of the connection does. When the serving process dies (or releases), a new
 * process adopts the connection with the recorded INIT and the journal:
 *   1. sfs_adopt(): replays the INIT (libfuse answers nothing before it), rebuilds the
 *      path -> inode assignments from the journal;
 *   2. sfs_set_view() (or sfs_deny()): the first view; sfs_dispatch reads nothing before it,
 *      so no request is answered from an empty tree (requests wait in the kernel);
 *   3. that first view also writes FUSE_NOTIFY_RESEND: requests the previous server had read but
 *      not answered are queued again and answered by this process.
 * Inode numbers are the ones the previous process gave (the kernel caches them for an hour).
 * File handles are ids into a table (never pointers): a handle this process did not create
 * (opened before the hand-over, or made up) is never dereferenced; it is served like a handle
 * of no_open mode: READ checks the caller and serves the node's current value (not the version
 * it opened: that pin is lost with the old process), ESTALE if the inode is unknown or no
 * longer in the view; POLL of .version works; READDIR lists the directory's current names. */

/* The recorded FUSE_INIT request (fuse_in_header + fuse_init_in) is at most this long. */
#define SFS_INIT_RECORD_MAX 512
/* Copies the bytes of the FUSE_INIT request this session served (or adopted) into buf. Returns
 * their length, -ENOENT before INIT, -ENOSPC if len is too small (SFS_INIT_RECORD_MAX always
 * suffices), -E2BIG if the kernel's INIT was longer than SFS_INIT_RECORD_MAX (not adoptable). */
ssize_t sfs_init_record(const sfs *fs, void *buf, size_t len);

/* The journal: a memfd, owned by sfs, holding every (inode, path) assignment this session and
 * the sessions before it made, appended before the inode is ever shown to the kernel. Hand a
 * duplicate to the keeper with the /dev/fuse fd. Format: SFS_JOURNAL_MAGIC, then records
 * { u64 ino (little endian), u16 path length, u8 'f' or 'd', path bytes }; record k (from 0)
 * names inode SFS_JOURNAL_FIRST_INO + k. */
int sfs_journal_fd(const sfs *fs);
#define SFS_JOURNAL_MAGIC "SFSJRNL1"
#define SFS_JOURNAL_MAGIC_LEN 8
#define SFS_JOURNAL_REC_HEADER 11
#define SFS_JOURNAL_FIRST_INO 3
/* A journal longer than this is refused (parse: -E2BIG; a set_view that would grow it past it:
 * -E2BIG). 1,000,000 files with 255-byte paths need ~270 MB. */
#define SFS_JOURNAL_BYTES_MAX (512u * 1024 * 1024)
/* Parses a journal (outside input for the adopter: pure, bounded, fuzzed). Calls rec for each
 * record in order (path not NUL-terminated; valid per names_check); a non-zero return stops and
 * is returned. A torn last record (a writer killed mid-append) is not an error: *used (may be
 * NULL) is the length of the complete records. 0; -EBADMSG: bad magic, an inode out of order, a
 * bad type or path; -E2BIG: longer than SFS_JOURNAL_BYTES_MAX. */
int sfs_journal_parse(const void *data, size_t len,
                      int (*rec)(void *ctx, uint64_t ino, const char *path, size_t path_len,
                                 bool is_dir),
                      void *ctx, size_t *used);

/* sfs_adopt flags */
#define SFS_ADOPT_NO_RESEND 1u /* tests only: do not send FUSE_NOTIFY_RESEND */
/* Serves a mounted connection another process set up: duplicates fuse_fd and journal_fd (the
 * caller keeps and closes its own), replays init (init_len bytes from sfs_init_record of the
 * previous server), replays the journal. Then behaves as a session from sfs_new, except that
 * sfs_dispatch reads nothing until the first sfs_set_view/sfs_deny, which also sends the RESEND
 * (see above). -EINVAL: bad arguments or an init record that is not a FUSE_INIT; -EPROTO:
 * libfuse refused the INIT; -EBADMSG/-E2BIG: the journal (sfs_journal_parse); -ENOMEM. */
int sfs_adopt(sfs **out, const struct sfs_config *cfg, const struct sfs_ops *ops, void *ud,
              int fuse_fd, const void *init, size_t init_len, int journal_fd, unsigned flags);
/* After sfs_adopt: 1 while the RESEND waits for the first view; 0 once it was written (or the
 * session was not adopted); a negative errno when it was not sent: -ECANCELED for
 * SFS_ADOPT_NO_RESEND, else the kernel's refusal (before Linux 6.9: -EINVAL). Then the requests
 * the dead server had read are never answered: their callers wait in D state (not even SIGKILL
 * ends the wait) and a LOOKUP among them holds its directory's lock. The session then queues no
 * invalidation (one would block the process-wide notifier thread on that lock, for every
 * mount), so its kernel caches may go stale: the caller must abandon the connection: abort it
 * (fusectl's /sys/fs/fuse/connections/N/abort, or close every fd of it; the waiting callers
 * then get ENOTCONN) and mount a fresh session. */
int sfs_resend_status(const sfs *fs);
/* Stops serving for a deliberate hand-over: delivers the queued invalidations (serving the
 * connection meanwhile), then frees everything and closes this process's fds without aborting
 * anything. Call between sfs_dispatch calls (every request read so far has been answered, the
 * rest waits in the kernel for the adopter). The connection survives only if another fd of it
 * is open elsewhere (the keeper's); take sfs_init_record and the journal fd before. NULL: no-op. */
void sfs_release(sfs *fs);
/* Entries in the current view (without .version). */
size_t sfs_count(const sfs *fs);
/* The .version counter (starts at 1, +1 per sfs_set_view that changed something). */
uint64_t sfs_generation(const sfs *fs);

/* Starts/stops the process-wide notifier thread (idempotent). sfs_new starts it when needed. */
int sfs_notifier_start(void);
void sfs_notifier_stop(void);
/* Blocks until every invalidation queued so far has been delivered to the kernel (tests, and the
 * broker's "put returns after containers see it" guarantee). */
void sfs_notifier_flush(void);
/* Same with a bound: 0, or -ETIMEDOUT when invalidations were still pending after timeout_ms
 * (< 0: no bound). Flushing from the serving thread can wait on a request only that thread would
 * answer: the broker should use a bound (or flush from elsewhere). */
int sfs_notifier_flush_timeout(int timeout_ms);
