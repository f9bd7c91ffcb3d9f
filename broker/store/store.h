/* store: secrets, versions and grants in SQLite (WAL, synchronous=FULL, foreign keys), encrypted
 * with crypt. One store per state dir, held by one daemon (flock on STATE/lock).
 * All functions return 0 or a negative errno:
 *   -ENOENT no such secret/version/grant   -EINVAL bad name/selector/argument
 *   -EFBIG value larger than max_value     -EBADMSG integrity failure (tampered or swapped row,
 *   restored older row, wrong MAC)         -EKEYREJECTED wrong master key or passphrase
 *   -EBUSY another daemon holds the store  -EEXIST already exists (init, grant)
 *   -ENODATA state dir not initialised     -EIO sqlite error
 *   -EPROTO the database is newer than this binary
 * Strings and arrays handed out are malloc'd and freed with the matching *_free; secret values are
 * crypt_alloc'd and freed with store_value_free. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/store/anchor.h"

struct secret; /* common/secret.h */
typedef struct store store;

struct store_opts {
	const char *state_dir; /* holds secretd.db and lock */
	const char *key_file;  /* master key file; used when pass_file is NULL */
	const char *pass_file; /* passphrase file (Argon2id), or NULL */
	size_t max_value;      /* 0 = SECRETD_VALUE_MAX_DEFAULT */
	bool shared_key;       /* init: key_file may exist already (a cluster's root key): it is
	                        * read, not created, when it does */
	/* > 0: the state dir's lock, already taken by a supervising process (store_lock) and
	 * inherited: checked to be that very file and used instead of taking it anew (the lock then
	 * outlives this process: a predecessor that lingers cannot keep its successor out). 0: take
	 * the lock. The store keeps its own duplicate; the caller may close lock_fd. */
	int lock_fd;
};

/* Takes STATE/lock, the lock store_open takes, for a process that supervises the store's opener
 * (the keeper): 0 with *fd (close-on-exec; the caller hands it down as store_opts.lock_fd);
 * -EBUSY when another process holds it; -errno else. */
int store_lock(const char *state_dir, int *fd);

/* Creates STATE/secretd.db (schema applied) and, with a key file, a new random key file; with a
 * passphrase, stores salt and limits. Refuses (-EEXIST) to overwrite a db or key file, and
 * (-EINVAL) a key file inside the state dir. */
int store_init(const struct store_opts *o);
/* Opens an initialised store: takes the lock, checks the master key (before changing anything),
 * applies pending migrations (each in a transaction), checks journal_mode=wal, synchronous=FULL,
 * foreign_keys=on. */
int store_open(store **out, const struct store_opts *o);
void store_close(store *s);

/* Decrypts a version (0 = current) once, into a new secret (*out: the caller's reference, drop
 * with secret_unref; exactly the value's length, which may be 0). *version_out (may be NULL) the
 * version read. -EBADMSG if the row or head fails checks, -ENOENT if there is no such version. */
int store_get_secret(store *s, const char *name, uint64_t version, struct secret **out,
                     uint64_t *version_out);
/* The same for version (not 0) of the secret whose id (store_secret_info.id) is id: -ENOENT when
 * name now belongs to another secret (deleted and created again since id was listed), so that
 * (id, version) names one value forever. */
int store_get_secret_of(store *s, const char *name, uint64_t id, uint64_t version,
                        struct secret **out);
/* The same, as a bare pointer into that secret: *val (free with store_value_free), *len. */
int store_get(store *s, const char *name, uint64_t version, uint8_t **val, size_t *len,
              uint64_t *version_out);
void store_value_free(uint8_t *val);

/* A label on a secret (common/labels.h: key and value rules, LABELS_MAX per secret). */
struct store_label {
	char *key;
	char *value;
};
/* A change of a secret's labels: set these (a key already there gets the new value), then
 * remove these keys (one that is not there is no error). */
struct store_label_change {
	const struct store_label *set;
	size_t nset;
	const char *const *remove;
	size_t nremove;
};

struct store_secret_info {
	char *name;
	uint64_t id; /* immutable and never reused (AUTOINCREMENT): a name deleted and put again
	              * gets a new one, while its versions start again at 1 */
	struct store_label *labels; /* sorted by key, MAC checked; freed by store_list_free */
	size_t nlabels;
	uint64_t current;   /* current version */
	uint64_t nversions; /* versions kept */
	int64_t created;    /* unix seconds */
	int64_t updated;
	int64_t expires; /* unix seconds when it will be deleted, 0 = never */
};
/* All secrets, sorted by name, no values. -EBADMSG when a secret's lifecycle row fails its MAC. */
int store_list(store *s, struct store_secret_info **out, size_t *n);
void store_list_free(struct store_secret_info *v, size_t n);
/* Only the names, sorted (for building views); *out is an array of n malloc'd strings. */
int store_names(store *s, char ***out, size_t *n);
void store_names_free(char **v, size_t n);

struct store_version_info {
	uint64_t version;
	uint64_t kek_id; /* key generation wrapping its data key */
	size_t size;     /* plaintext length */
	int64_t created;
	bool current;
};
int store_versions(store *s, const char *name, struct store_version_info **out, size_t *n);
void store_versions_free(struct store_version_info *v, size_t n);

struct store_audit;

/* Master-key rotation: adds a key generation and re-wraps every data key under it; payloads are
 * untouched. It runs in batches, each its own transaction (SECRETD_KEY_ROTATE_BATCH data keys),
 * so that a crash loses nothing and the next open resumes it (store_key_rotating); an older
 * generation is dropped only once no row uses it. */

/* Starts a rotation: checks every head, adds a generation (new data keys use it at once) and
 * records audit, all in one transaction. With a rotation unfinished, starts none: *kek_id is
 * that one's target and *resumed true (audit recorded as "in-progress"). Either out may be NULL. */
int store_key_rotate_begin(store *s, const struct store_audit *audit, uint64_t *kek_id,
                           bool *resumed);
/* Re-wraps at most max data keys in one transaction. When none is left, the same transaction
 * drops unused generations, ends the rotation and records done_audit (may be NULL): *finished.
 * With no rotation pending: 0, *finished true, nothing done. */
int store_key_rotate_step(store *s, size_t max, const struct store_audit *done_audit,
                          uint64_t *rewrapped, bool *finished);
/* Cluster mode (docs/cluster.md, "Key rotation across the cluster"): the same steps, each
 * handing what it changed to the cluster while its transaction is still open; a negative return
 * of a callback rolls the step back (nothing changed here). keyring: the keyring after the
 * begin (a new generation) and after the last step (the old generations dropped). rows: a
 * batch's re-wrapped secrets (at most max_keys, their rows before and after at most max_bytes
 * but for a batch of one), each with its rows before (what etcd must still hold) and after.
 * A step that re-wraps rows never ends the rotation: the one that finds none left does. */
struct store_rewrapped {
	char *name;
	uint8_t *old, *new;
	size_t oldlen, newlen;
};
struct store_key_pub {
	int (*keyring)(void *ud, const uint8_t *p, size_t len);
	int (*rows)(void *ud, const struct store_rewrapped *v, size_t n);
	void *ud;
	size_t max_keys, max_bytes;
};
/* store_key_rotate_begin with pub: also -EALREADY when this store holds several generations
 * and is not rotating itself (another node's rotation is not finished). */
int store_key_rotate_begin_pub(store *s, const struct store_audit *audit,
                               const struct store_key_pub *pub, uint64_t *kek_id, bool *resumed);
int store_key_rotate_step_pub(store *s, size_t max, const struct store_audit *done_audit,
                              const struct store_key_pub *pub, uint64_t *rewrapped, bool *finished);
/* The target generation of the unfinished rotation, 0 when none (no database access). */
uint64_t store_key_rotating(const store *s);

struct store_key_gen {
	uint64_t id;
	int64_t created;
	uint64_t versions; /* data keys it wraps */
};
struct store_key_status {
	uint64_t current;   /* generation wrapping new data keys */
	uint64_t rotating;  /* target of an unfinished rotation, 0 = none */
	uint64_t remaining; /* data keys under an older generation */
	int error;          /* the last failed step's -errno (e.g. -EBADMSG), 0 = none */
	struct store_key_gen *gens;
	size_t ngens;
};
/* Fills *st (gens oldest first); free with store_key_status_free. */
int store_key_status(store *s, struct store_key_status *st);
void store_key_status_free(struct store_key_status *st);

struct store_grant {
	int64_t id;
	char *secret;   /* name or pattern (names_check_pattern) */
	char *selector; /* policy_selector_check */
	char *path;     /* file path inside the mount, or NULL = the secret's name */
	uint32_t mode;  /* file mode bits, e.g. 0400 */
	int64_t uid;    /* -1 = the container's uid */
	int64_t gid;    /* -1 = the container's gid */
	uint32_t flags; /* STORE_GRANT_* */
	int64_t created;
	/* the row's generation: each add or replace takes one above the highest this store has
	 * held for (secret, selector), revoked ones included (set by the store; MAC'd) */
	int64_t gen;
};
#define STORE_GRANT_PREVIOUS 0x1 /* also show NAME.previous (the version before current) */
/* A grant whose secret is "tmpl:NAME" grants the template NAME (a rendered file), never a
 * secret: ':' is in no secret name or pattern. NAME is a valid name (no pattern). */
#define STORE_GRANT_TMPL_PREFIX "tmpl:"

/* All grants ordered by id; each row's MAC is checked (-EBADMSG names no row, the caller logs). */
int store_grants(store *s, struct store_grant **out, size_t *n);
void store_grants_free(struct store_grant *v, size_t n);

/* ---- containers (schema 006): the registry of attached containers, for restore ---- */

/* How a container's mount was made. */
enum store_cont_mount {
	STORE_CONT_UNMOUNTED = 0,
	STORE_CONT_MOUNT_HOOK = 1, /* at attach, in the init's (pid's) mount namespace */
	STORE_CONT_MOUNT_SELF = 2, /* a workload `mount`: in mount_pid's mount namespace */
};
struct store_cont_label {
	char *key, *value;
};
/* One attached container. No secret material. Strings are malloc'd in rows handed out by
 * store_containers_list; store_containers_put only reads them. */
struct store_container {
	char *id;      /* 1..STORE_CONT_ID_MAX printable bytes */
	bool hook;     /* attached by the OCI hook; false: a seen-only container's self-mount */
	char *runtime; /* "runc", "oci", "docker", ... */
	char *name;    /* "" when unknown */
	struct store_cont_label *labels;
	size_t nlabels; /* <= STORE_CONT_LABELS_MAX */
	char *cgroup;   /* the container's cgroup path */
	/* The process the row stands for (the init when hook, else the mount's requester) and its
	 * start time (field 22 of /proc/PID/stat, clock ticks since boot). */
	int64_t pid;
	uint64_t start_time;
	enum store_cont_mount mount;
	int64_t mount_pid; /* STORE_CONT_MOUNT_SELF: the requester; else 0 */
	uint64_t mount_start;
	uint64_t mount_ns; /* STORE_CONT_MOUNT_SELF: its mount namespace's inode (0: unknown) */
	char *root;        /* the bundle root given at attach, or NULL */
	char *target;      /* the mount target inside the container */
	uint32_t uid, gid;
	bool wants;
	int64_t created;
	/* list only: 0, or -EBADMSG when the row (or its labels) fails its MAC: such a row must
	 * not be trusted (its fields are as read) */
	int integrity;
};
#define STORE_CONT_ID_MAX 128
#define STORE_CONT_LABELS_MAX 64
#define STORE_CONT_STR_MAX 4096 /* runtime, name, cgroup, root, target, label keys and values */

/* Writes (inserts or replaces, with its labels and MAC, in one transaction) the row of c->id.
 * -EINVAL for a bad field. Callers treat a failure as a failed attach (no row, no attach). */
int store_containers_put(store *s, const struct store_container *c);
/* Deletes the row of id and its labels; -ENOENT when there is none. */
int store_containers_del(store *s, const char *id);
/* Every row, ordered by id, each with its labels and integrity set (a row failing its MAC is
 * returned with integrity -EBADMSG, not an error of the list). *out is the caller's: free with
 * store_containers_free. */
int store_containers_list(store *s, struct store_container **out, size_t *n);
void store_containers_free(struct store_container *v, size_t n);

/* Re-keys the store (offline, with the old key already proven by store_open): the MAC root and
 * every key generation are re-sealed under a new root key — a new random key file created at
 * new_key_file (O_EXCL, 0400), or Argon2id of new_pass_file — in one transaction. Payloads and
 * data keys are untouched; the old key no longer opens the store. Exactly one of the two. */
int store_rekey(store *s, const char *new_key_file, const char *new_pass_file);

/* A stat for /metrics: number of secrets. */
int store_count(store *s, uint64_t *secrets);
/* A cheap real access for /healthz: the database file is still the one open (-ESTALE if
 * removed or replaced), its file system has room (-ENOSPC), a probe file beside it (created once)
 * reads from the device, the write lock can be taken and a table read. 0 or -errno. Never opens
 * a descriptor of the database itself (that would drop SQLite's POSIX locks). */
int store_health(store *s);

/* ---- audit trail, versions, lifecycle (schema 002) ---- */

/* One audit record as the caller describes it (never a secret value). Strings may be NULL
 * (stored as ""; secret NULL stays NULL). time 0 = now. */
struct store_audit {
	int64_t time;
	const char *actor; /* container id/name, "uid:N", or "secretd" */
	int64_t pid;       /* 0 when none */
	const char *exe;
	const char *action; /* "put", "get", "fuse-open", ... */
	const char *secret;
	uint64_t version;   /* 0 = none; mutating calls fill in the version they made */
	const char *result; /* "ok", "denied", an error name ... */
	const char *detail; /* NULL, or what else it applied to ("selector=..."); never a value */
	uint64_t count;     /* identical events this record stands for; 0 = 1 */
};

/* Appends records (in order) to the chain in one transaction of their own. */
int store_audit_append(store *s, const struct store_audit *recs, size_t n);

struct store_audit_row {
	uint64_t seq;
	int64_t time;
	char *actor, *exe, *action, *secret, *result; /* secret may be NULL */
	char *detail;                                 /* may be NULL */
	int64_t pid;
	uint64_t version;
	uint64_t count; /* identical events it stands for (>= 1) */
};
/* Records with seq > after_seq and time >= since_time, in seq order, at most limit (0 = all). */
int store_audit_list(store *s, uint64_t after_seq, int64_t since_time, size_t limit,
                     struct store_audit_row **out, size_t *n);
void store_audit_list_free(struct store_audit_row *v, size_t n);
/* The result of records of events refused because the audit could not be written. */
#define STORE_AUDIT_REFUSED "refused-audit"

struct store_audit_verify_info {
	uint64_t records;        /* records verified (after the checkpoint) */
	uint64_t events;         /* events they stand for (sum of counts) */
	uint64_t refused;        /* of which refused because the audit could not be written */
	bool checkpoint;         /* records were pruned: the chain starts at a signed checkpoint */
	uint64_t checkpoint_seq; /* the last pruned record */
	int64_t checkpoint_time; /* when the last prune ran */
	uint64_t pruned;         /* records pruned in all */
	uint64_t bad_seq;        /* on -EBADMSG: the first bad record (the missing one for a gap) */
	const char *reason;      /* on -EBADMSG: a static string */
};
/* Walks the chain from the retention checkpoint (its tag checked) or seq 1: no gaps, each
 * prev_mac the previous mac (the first one the checkpoint's), each MAC right, the last record
 * the stored head. 0, or -EBADMSG with vi->bad_seq and vi->reason; -errno on I/O errors. */
int store_audit_verify_ex(store *s, struct store_audit_verify_info *vi);
/* Walks the whole chain: seq 1.. without gaps, each prev_mac the previous mac, each MAC right,
 * the last record the stored head. 0 with *records = the count, or -EBADMSG with *bad_seq the
 * first bad record (the missing one for a gap) and *reason a static string. */
int store_audit_verify(store *s, uint64_t *records, uint64_t *bad_seq, const char **reason);

/* Retention: the last pruned record (seq, MAC), the records pruned in all and when, tagged with
 * the audit key and kept in meta. */
struct store_audit_checkpoint {
	uint64_t seq;
	uint8_t mac[32];
	uint64_t pruned;
	int64_t time;
};
/* 0 with *found; -EBADMSG when the stored checkpoint fails its tag. */
int store_audit_checkpoint(store *s, struct store_audit_checkpoint *out, bool *found);
/* Prunes, in one transaction, at most batch of the oldest records: those older than before (unix
 * seconds; 0 = no age limit) and those beyond the newest keep_max (0 = no count limit); never
 * the last record. Stores the checkpoint (the last pruned record's seq and MAC) in the same
 * transaction. *pruned the records deleted now; *more when more are due (call again). */
int store_audit_prune(store *s, int64_t before, uint64_t keep_max, size_t batch, uint64_t *pruned,
                      bool *more);

/* The audit anchor for the chain as it stands now: its head (seq, MAC) with a tag made by the
 * audit key. 0 or -errno. */
int store_audit_anchor(store *s, struct anchor *out);
/* Checks an anchor read back from its file: 0 when the chain holds that record with that MAC;
 * -EBADMSG when the tag was not made by this store's key; -ESTALE when the chain ends before it
 * (an older copy of the database) or holds another record there (an older copy that went on). */
int store_audit_anchor_check(store *s, const struct anchor *a);
/* Changes whenever audit records may have been written (no database access): when it moved,
 * the anchor is due. */
uint64_t store_audit_gen(const store *s);

struct store_put_opts {
	int64_t keep; /* > 0: versions to keep from now on (1..1000); 0 = unchanged */
	const struct store_label_change *labels; /* NULL = unchanged; else applied in the put */
	int64_t expires; /* > 0: unix seconds when the secret expires; 0 = unchanged; -1 = never
	                  * (clears an expiry). The admin API clears it on a put without one. */
};
/* Stores a new version of name (creating the secret); prunes versions beyond the secret's keep.
 * *version_out (may be NULL) gets the new version number (1, 2, ...). o: options (NULL: the
 * expiry and the schedule are kept, as a scheduled rotation does). audit (may be NULL; version
 * filled in) is recorded in the same transaction: a failure to write it fails the put. */
int store_put_ex(store *s, const char *name, const uint8_t *val, size_t len,
                 const struct store_put_opts *o, const struct store_audit *audit,
                 uint64_t *version_out);
/* Makes version's value current again as a new version (audited as audit says). -ENOENT if the
 * version is not kept. */
int store_rollback(store *s, const char *name, uint64_t version, const struct store_audit *audit,
                   uint64_t *version_out);
/* Each mutation below writes its audit record (may be NULL: none) in the same transaction: a
 * failure to write it fails the change. (There is no unaudited variant: store_put, store_delete,
 * store_key_rotate, store_grant_add and store_grant_remove were called only by tests.) */
/* Deletes a secret, all its versions, and grants naming it exactly. */
int store_delete_ex(store *s, const char *name, const struct store_audit *audit);
/* Does the whole rotation now (begin + every step). *kek_id the new generation (or the
 * unfinished one it completed), *rewrapped the count (both may be NULL). -EBADMSG over a tampered
 * secret (a rotation never starts over one). */
int store_key_rotate_ex(store *s, const struct store_audit *audit, uint64_t *kek_id,
                        uint64_t *rewrapped);
/* Adds a grant (MAC'd row). -EEXIST if (secret, selector) already granted: use replace=true to
 * update it. */
int store_grant_add_ex(store *s, const struct store_grant *g, bool replace,
                       const struct store_audit *audit);
/* Removes the grant (secret, selector). -ENOENT if none. */
int store_grant_remove_ex(store *s, const char *pattern, const char *selector,
                          const struct store_audit *audit);

#define STORE_GEN_LENGTH_MAX 4096
/* Generated value charsets. */
enum store_charset {
	STORE_CHARSET_ALNUM,
	STORE_CHARSET_HEX,
	STORE_CHARSET_BASE64,
	STORE_CHARSET_ASCII
};
/* Parses "alnum", "hex", "base64", "ascii"; -EINVAL otherwise. */
int store_charset_parse(const char *s, enum store_charset *out);
const char *store_charset_name(enum store_charset c);
/* length (1..STORE_GEN_LENGTH_MAX) characters drawn uniformly (randombytes_uniform) from the
 * charset into *val (crypt_alloc'd, free with store_value_free). */
int store_generate(enum store_charset cs, size_t length, uint8_t **val);

struct store_lifecycle {
	char *name;
	int64_t expires; /* unix seconds, 0 = never */
	int64_t every;   /* seconds between rotations, 0 = no schedule */
	int64_t next;    /* next rotation, unix seconds */
	uint32_t length;
	enum store_charset charset;
	char *exec; /* NULL = none */
	/* cluster rows only: the lifecycle's generation (0 in rows read from the table) */
	int64_t gen;
};
/* Sets a secret's schedule (every > 0; 0 removes it) keeping its expiry; next = now + every.
 * Audited in the same transaction. -ENOENT: no such secret. */
int store_schedule_set(store *s, const char *name, int64_t every, uint32_t length,
                       enum store_charset cs, const char *exec, const struct store_audit *audit);
/* Moves a schedule's next firing (after a run, failed or not). */
int store_schedule_next(store *s, const char *name, int64_t next);
/* Every secret with an expiry or a schedule (MACs checked). */
int store_lifecycles(store *s, struct store_lifecycle **out, size_t *n);
void store_lifecycles_free(struct store_lifecycle *v, size_t n);
/* A secret's expiry (unix seconds, 0 = none) into *expires, its lifecycle row's MAC checked.
 * -ENOENT: no such secret; -EBADMSG: the row fails its MAC. */
int store_expiry(store *s, const char *name, int64_t *expires);
/* Bumped by every lifecycle change (schedule set, expiry set, delete): a cheap "reload?" test. */
uint64_t store_lifecycle_gen(store *s);

/* ---- labels on secrets (schema 007): metadata, MAC'd as one set per secret ---- */

/* A secret's labels, sorted by key (free with store_labels_free; *out NULL when none). -ENOENT:
 * no such secret; -EBADMSG: the secret's head or its label row fails its check. */
int store_labels(store *s, const char *name, struct store_label **out, size_t *n);
void store_labels_free(struct store_label *v, size_t n);
/* Changes a secret's labels with audit (may be NULL; its version is the current one) in one
 * transaction; out/n (may be NULL) the labels after it. -ENOENT: no such secret; -EINVAL: a key
 * or value breaks common/labels.h's rules, or a key is both set and removed; -E2BIG: more than
 * LABELS_MAX would be left; -EBADMSG as store_labels. */
int store_labels_change(store *s, const char *name, const struct store_label_change *c,
                        const struct store_audit *audit, struct store_label **out, size_t *n);

/* ---- templates (schema 005): rendered files' sources, versioned, sealed like values ---- */

#define STORE_TMPL_KEEP 10 /* versions of a template kept */
struct store_tmpl_info {
	char *name;
	uint64_t id;        /* never reused, as store_secret_info.id */
	uint64_t current;   /* current version */
	uint64_t nversions; /* versions kept */
	int64_t created, updated;
};
/* Stores body (len bytes, at most max_value; the caller has parsed it) as a new version of
 * template name, creating it; prunes beyond STORE_TMPL_KEEP. audit (may be NULL; version filled
 * in) in the same transaction. *version_out (may be NULL) the new version. */
int store_tmpl_put(store *s, const char *name, const uint8_t *body, size_t len,
                   const struct store_audit *audit, uint64_t *version_out);
/* Decrypts a version (0 = current) of template name into a new secret (*out: the caller's
 * reference, secret_unref). *version_out (may be NULL) the version read. -ENOENT, -EBADMSG. */
int store_tmpl_get(store *s, const char *name, uint64_t version, struct secret **out,
                   uint64_t *version_out);
/* The same for version (not 0) of the template whose id is id: -ENOENT when name now belongs to
 * another template (deleted and put again since id was listed). */
int store_tmpl_get_of(store *s, const char *name, uint64_t id, uint64_t version,
                      struct secret **out);
/* The same, as a bare pointer into that secret (store_get's form): *val (free with
 * store_value_free), *len. */
int store_tmpl_get_bytes(store *s, const char *name, uint64_t version, uint8_t **val, size_t *len,
                         uint64_t *version_out);
/* All templates, sorted by name, no bodies: free with store_tmpl_list_free. */
int store_tmpl_list(store *s, struct store_tmpl_info **out, size_t *n);
void store_tmpl_list_free(struct store_tmpl_info *v, size_t n);
/* A template's versions (free with store_versions_free); -ENOENT when there is none. */
int store_tmpl_versions(store *s, const char *name, struct store_version_info **out, size_t *n);
/* Deletes template name, its versions and the grants of it ("tmpl:NAME"). -ENOENT. */
int store_tmpl_delete(store *s, const char *name, const struct store_audit *audit);

/* ---- cluster rows (broker/cluster): the store's own sealed rows as bytes ----
 * What a cluster node puts into etcd and takes from it: a secret's head and version rows
 * (wrapped data keys, ciphertexts, the head MAC), a grant row with its MAC, the keyring (the
 * MAC root and key generations, sealed under the root key). No key and no plaintext: an import
 * is checked with this node's keys (head MAC, grant MAC, keyring unsealing) before it is
 * applied. The encodings are store_buf fields after a magic string (xrows.c); decoders are
 * pure, bounded by STORE_XROWS_MAX, and fuzzed (fuzz_etcd). Bytes handed out are malloc'd:
 * free(). */
#define STORE_XROWS_MAX (2 * 1024 * 1024) /* one encoded row set */
#define STORE_XROWS_VERSIONS_MAX 1000     /* versions in one export (STORE_KEEP_MAX) */
#define STORE_XROWS_EXEC_MAX 4096         /* a schedule's exec command */

/* In cluster mode new secrets and grants get random ids (2^40..2^62) instead of the next local
 * one, so that rows made on different nodes do not collide when imported. */
void store_cluster_ids(store *s, bool on);
/* A secret's head and every kept version: -ENOENT, -EBADMSG (its head fails its check),
 * -EFBIG (over STORE_XROWS_MAX). */
int store_secret_export(store *s, const char *name, uint8_t **out, size_t *len);
/* How an import or a removal from the cluster is applied (NULL: all zero). */
struct store_ximport {
	uint64_t rev; /* > 0: stored as the applied cluster revision in the same transaction */
	/* the undo of a change etcd refused: accept an older row (a secret's older current
	 * version, a grant's older generation, a deleted secret's id) and put the generations
	 * held back as they were */
	bool force;
	/* the record of the change, written in its transaction when something changed (NULL:
	 * none, e.g. an undo that its caller records); version filled in for a secret */
	const struct store_audit *audit;
};
/* Applies an exported secret (replacing this node's rows of it, and its lifecycle when the
 * row's lifecycle generation is newer than the one held) after checking: the head MAC over the
 * rows and the lifecycle MAC (-EBADMSG), a known key generation (-EBADMSG), the same id for the
 * same name (-EEXIST otherwise), and, unless o->force, no older current version or lifecycle
 * generation than this node's (-ESTALE: a rollback) and no id of a secret this store deleted
 * (-EIDRM: a replay). *name_out (may be NULL; malloc'd) the secret's name. Labels and templates
 * stay this node's. *changed (may be NULL): false when the rows were already these (then only
 * o->rev is stored, no record). */
int store_secret_import(store *s, const uint8_t *p, size_t len, const struct store_ximport *o,
                        char **name_out, bool *changed);
/* Removes a secret (a deletion that came from the cluster, or undoing a change the cluster
 * refused). Its id is kept as deleted (an import of it is refused), unless o->force (an undo:
 * the id never was the cluster's). -ENOENT (o->rev stored anyway). */
int store_secret_forget(store *s, const char *name, const struct store_ximport *o);
/* A grant row (target, selector) with its MAC: -ENOENT, -EBADMSG. */
int store_grant_export(store *s, const char *target, const char *selector, uint8_t **out,
                       size_t *len);
/* Applies an exported grant (replacing the row of its (target, selector) or id) after checking
 * its fields and MAC (-EBADMSG) and, unless o->force, that its generation is newer than any
 * this store held for (target, selector), revoked ones included (-ESTALE: an older form of the
 * grant held; -EIDRM: the grant was revoked here). o and
 * *changed as for a secret. */
int store_grant_import(store *s, const uint8_t *p, size_t len, const struct store_ximport *o,
                       bool *changed);
/* Removes a grant (a revoke that came from the cluster); its generation stays held (a replay
 * of the row is refused), with o->force (an undo) the one before it. -ENOENT (o->rev stored
 * anyway). */
int store_grant_forget(store *s, const char *target, const char *selector,
                       const struct store_ximport *o);
/* The keyring: root kind, the sealed MAC root and the sealed key generations. */
int store_keyring_export(store *s, uint8_t **out, size_t *len);
/* Replaces this store's keyring by another node's (a node joining a cluster, right after
 * init): only a store with no secret, grant, template or audit record (-ENOTEMPTY), of the
 * keyring's kind (a key file's, or a passphrase's with pass_file: else -EINVAL), whose root key
 * opens every sealed key in it (-EKEYREJECTED). A passphrase keyring carries the cluster's KDF
 * salt and limits: the root key is derived from pass_file with them, and they replace this
 * store's own. The store must be closed (store_close) afterwards: its loaded keys are the old
 * ones. */
int store_keyring_adopt(store *s, const uint8_t *p, size_t len, const char *pass_file);
/* Another node's keyring, seen in etcd (a key rotation elsewhere): accepted only when its kind,
 * KDF and sealed MAC root are byte for byte this store's, every generation this store holds and
 * the keyring keeps is byte-identical in it (-EBADMSG), its newest generation is not older than
 * this store's and every generation new to this store is numbered above the highest held here
 * (-ESTALE: an older keyring replayed) and opens with this store's root key (-EKEYREJECTED);
 * refused: nothing changed. The new generations are added (new data keys use the highest); a
 * held generation the keyring dropped is deleted when no row here uses it, else kept (*kept
 * counts those, may be NULL). o->audit recorded and o->rev stored in the same transaction when
 * something changed (*changed, may be NULL). */
int store_keyring_update(store *s, const uint8_t *p, size_t len, const struct store_ximport *o,
                         size_t *kept, bool *changed);
/* A keyring's bytes decoded (pure, bounded; pointers into the input): its root kind, the
 * passphrase's KDF (salt NULL for a key file's keyring), the sealed MAC root
 * (STORE_WRAPPED_KEY_BYTES), and n sealed key generations at keks (kekslen bytes: u64 id, the
 * sealed key with its u64 length, u64 created). 0, -EBADMSG, -E2BIG. */
struct store_xkeyring {
	char kind[32];
	const uint8_t *salt; /* CRYPT_SALT_BYTES, or NULL */
	uint64_t ops, mem;
	const uint8_t *macroot;
	size_t n;
	const uint8_t *keks;
	size_t kekslen;
};
int store_xkeyring_decode(const uint8_t *p, size_t len, struct store_xkeyring *out);
/* The cluster revision this store has applied (0: none). */
int store_cluster_rev(store *s, uint64_t *rev);
int store_cluster_rev_set(store *s, uint64_t rev);

/* The decoded forms (pure; pointers into the input, valid while it is). */
struct store_xversion {
	uint64_t version, kek_id, size;
	int64_t created;
	const uint8_t *wk, *ct;
	size_t wklen, ctlen;
};
struct store_xsecret {
	int64_t id;
	char name[256]; /* SECRETD_NAME_MAX + 1 */
	uint64_t current;
	int64_t keep, created, updated;
	const uint8_t *head;
	size_t headlen;
	struct store_xversion *v; /* malloc'd: free() */
	size_t nv;
	/* the lifecycle (expiry, schedule) with its generation and its MAC (life key) */
	struct store_xlife {
		int64_t gen, expires, every, next;
		uint32_t length;
		char charset[16];
		const uint8_t *exec; /* NULL: none; execlen bytes, no NUL */
		size_t execlen;
		const uint8_t *mac;
	} life;
};
int store_xsecret_decode(const uint8_t *p, size_t len, struct store_xsecret *out);
/* A grant's encoding into g (strings malloc'd: store_grants_free(g, 1) frees g too, so pass a
 * malloc'd g, or free its strings) and its MAC. */
int store_xgrant_decode(const uint8_t *p, size_t len, struct store_grant *g, uint8_t mac[32]);
/* A cluster's origin records (broker/cluster/cluster_log.c): the keyed MAC of msg under the
 * MAC root's origin subkey (the same on every node of a cluster: its keyring). check NULL:
 * writes it into mac; else compares check with it (constant time): 0 or -EBADMSG. -EINVAL
 * without keys. */
int store_cluster_mac(store *s, const uint8_t *msg, size_t len, uint8_t mac[32],
                      const uint8_t *check);
