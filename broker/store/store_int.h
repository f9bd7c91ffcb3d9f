/* store_int.h: the store's private header, included only by the files of broker/store/ and the
 * store's unit tests (tests/unit/test_store*.c). The public API is broker/store/store.h.
 *
 * The store is one file per job:
 *   db.c        the database file: open/init/close, pragmas, migrations, transactions, meta rows,
 *               and the one row collector (store_rows_collect)
 *   codec.c     the byte encodings bound into the on-disk format: AEAD associated data and every
 *               MAC message (secret heads, grants, lifecycle rows, audit records, checkpoint and
 *               anchor tags); pinned by tests/unit/test_store_kat.c
 *   keys.c      the root key, the MAC root and its subkeys, key generations (KEKs), rotation, rekey
 *   secrets.c   secrets and versions: head MACs, put, get, list, delete, rollback
 *   grants.c    grant rows
 *   labels.c    labels on secrets: one MAC'd set per secret (schema 007)
 *   auditlog.c  the audit hash chain, its retention checkpoint, pruning and the anchor tag
 *   lifecycle.c expiry and schedules (MAC'd lifecycle rows)
 *   containers.c the registry of attached containers (MAC'd rows, schema 006)
 *   generate.c  generated values and their charsets
 *   health.c    the /healthz probe
 *   anchor.c    the anchor file format
 * All functions return 0 or a negative errno unless said otherwise. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sqlite3.h>

#include "broker/crypto/crypt.h"
#include "common/secret.h"
#include "broker/store/store.h"

#define STORE_DB_NAME "secretd.db"
#define STORE_LOCK_NAME "lock"
#define STORE_KIND_KEYFILE "keyfile"
#define STORE_KIND_ARGON "argon2id13"
/* Upper bound accepted for a stored Argon2id memlimit: a tampered value must not make start-up
 * allocate without limit (a wrong value only yields a wrong key). */
#define STORE_KDF_MEMLIMIT_CAP (4ULL * 1024 * 1024 * 1024)
/* crypt_subkey ids and contexts of the MAC root's subkeys (on-disk format). */
#define STORE_SUBKEY_HEAD 1
#define STORE_SUBKEY_GRANT 2
#define STORE_SUBKEY_AUDIT 3
#define STORE_SUBKEY_LIFE 4
#define STORE_SUBKEY_CONT 5
#define STORE_SUBKEY_LABEL 6 /* 5 is the containers registry's (schema 006) */
#define STORE_SUBKEY_HEAD_CTX "sd_head_"
#define STORE_SUBKEY_GRANT_CTX "sd_grant"
#define STORE_SUBKEY_AUDIT_CTX "sd_audit"
#define STORE_SUBKEY_LIFE_CTX "sd_life_"
#define STORE_SUBKEY_CONT_CTX "sd_cont_"
#define STORE_SUBKEY_LABEL_CTX "sd_label"
#define STORE_SUBKEY_ORIGIN 7 /* cluster origin records (broker/cluster/cluster_log.c) */
#define STORE_SUBKEY_ORIGIN_CTX "sd_orign"
#define STORE_KEEP_MAX 1000
#define STORE_WRAPPED_KEY_BYTES (CRYPT_KEY_BYTES + CRYPT_SEAL_OVERHEAD)
/* Number of enum store_charset values. */
#define STORE_CHARSET_COUNT 4

/* meta keys */
#define STORE_META_AUDIT_HEAD "audit.head"
#define STORE_META_AUDIT_CP "audit.checkpoint"
#define STORE_META_KEK_ROTATING "kek.rotating" /* u64: target generation */

struct store_kek {
	uint64_t id;
	uint8_t *key; /* crypt_alloc'd */
};

struct store {
	sqlite3 *db;
	int lock_fd;
	size_t max_value;
	uint8_t *root_key;  /* seals new KEK generations */
	uint8_t *head_key;  /* MACs secrets.head */
	uint8_t *grant_key; /* MACs grants.mac */
	uint8_t *audit_key; /* MACs audit.mac */
	uint8_t *life_key;  /* MACs lifecycle.mac */
	uint8_t *cont_key;  /* MACs containers.mac (schema 006) */
	uint8_t *label_key; /* MACs secret_labels.mac */
	uint8_t *orig_key;  /* MACs cluster origin records (store_cluster_mac) */
	uint64_t life_gen;  /* bumped by lifecycle changes */
	struct store_kek *keks;
	size_t nkeks;
	uint64_t kek_current;
	uint64_t kek_rotating; /* target of an unfinished key rotation, 0 = none */
	int kek_rotate_err;    /* the last step's error, 0 after a good one */
	uint64_t audit_gen;    /* bumped by every audit write (committed or not) */
	bool cluster_ids;      /* new secrets and grants get random ids (store_cluster_ids) */
	struct store_stmt_cache *stmts; /* prepared hot statements (db.c), finalized at close */
};

/* ---- db.c: the statement cache ----
 * The hot queries (every read, put, audit batch, head check) are prepared once per store and
 * kept: store_cached hands out the statement prepared for sql (a string literal: looked up by
 * address first, then by text), store_cached_release (the _cleanup_cached_ of the variable)
 * resets it and clears its bindings, so that no statement keeps a read transaction open or an
 * old binding after its scope. A statement still in use (the same query nested) or a full cache
 * (STORE_STMT_CACHE_MAX entries) gets a fresh statement, finalized at release. Every cached
 * statement is finalized by store_close. A schema change (a migration) is handled by sqlite:
 * a statement prepared with sqlite3_prepare_v2 is re-prepared on its next step. */
#define STORE_STMT_CACHE_MAX 64
struct store_cached {
	sqlite3_stmt *st; /* the statement: bind and step it; NULL before store_cached */
	store *s;
	int slot; /* index in the cache, -1: not cached (finalized at release) */
};
/* Fills q with the statement for sql: 0, or the sqlite error (store_sqlerr) of preparing it. */
int store_cached(store *s, const char *sql, struct store_cached *q);
/* Resets q's statement (its last step's error was already returned to whoever stepped it) and
 * clears its bindings, or finalizes an uncached one; q->st becomes NULL. */
void store_cached_release(struct store_cached *q);
#define _cleanup_cached_ __attribute__((cleanup(store_cached_release)))
/* store_exec for a statement without rows (BEGIN, COMMIT, ROLLBACK), through the cache. */
int store_cached_exec(store *s, const char *sql);
/* store_end through the cache: COMMIT when r == 0, else ROLLBACK keeping r. */
int store_cached_end(store *s, int r);
/* store_pragma_int through the cache: the first column of the first row (-EIO: no row). */
int store_cached_int(store *s, const char *sql, int64_t *v);
/* Finalizes every cached statement (none may be in use). */
void store_stmt_cache_free(store *s);
/* For tests: statements prepared into the cache and lookups answered from it so far. */
struct store_stmt_stats {
	uint64_t prepared, hits, uncached, cached_now;
};
void store_stmt_stats(const store *s, struct store_stmt_stats *st);

static inline void store_stmt_freep(sqlite3_stmt **p)
{
	sqlite3_finalize(*p);
}
#define _cleanup_stmt_ __attribute__((cleanup(store_stmt_freep)))

static inline int64_t store_now(void)
{
	return (int64_t)time(NULL);
}

/* ---- codec.c: byte encodings (length-prefixed, big-endian) ---- */

/* A growing byte buffer; an allocation failure sets oom and makes later adds no-ops. p is
 * malloc'd, freed by store_buf_free (or _cleanup_buf_). */
struct store_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};
void store_buf_add(struct store_buf *b, const void *d, size_t n);
void store_buf_u64(struct store_buf *b, uint64_t v);                /* 8 bytes big-endian */
void store_buf_bytes(struct store_buf *b, const void *d, size_t n); /* u64 length, bytes */
void store_buf_str(struct store_buf *b, const char *s);             /* u64 length, bytes, no NUL */
void store_buf_free(struct store_buf *b);
#define _cleanup_buf_ __attribute__((cleanup(store_buf_free)))
uint64_t store_be64(const uint8_t x[8]);

/* Each store_ad_* and store_codec_* appends its encoding to b: 0, or -ENOMEM (b->oom). */

/* Payload AD: binds a ciphertext to its secret's immutable id, name and version (not the KEK, so
 * that rotation leaves payloads untouched). */
int store_ad_data(struct store_buf *b, int64_t id, const char *name, uint64_t version);
/* Wrapped data key AD: binds it to (secret id, version, KEK generation). */
int store_ad_dkey(struct store_buf *b, int64_t id, uint64_t version, uint64_t kek_id);
/* A KEK generation's AD under the root key: "kek|<id>" into ad (n bytes, NUL-terminated). */
void store_ad_kek(char *ad, size_t n, uint64_t kek_id);
/* The MAC root's AD under the root key. */
extern const char store_ad_macroot[];

/* A secret head's MAC message: (id, name, current, keep, the sorted version set, the current
 * version's KEK id and size, keyed digests dw/dc of its wrapped key and ciphertext). */
int store_codec_head(struct store_buf *b, int64_t id, const char *name, uint64_t current,
                     int64_t keep, const uint64_t *versions, size_t nversions, uint64_t kek_id,
                     uint64_t size, const uint8_t dw[CRYPT_MAC_BYTES],
                     const uint8_t dc[CRYPT_MAC_BYTES]);
/* A grant row's MAC message (every column with the row id). */
int store_codec_grant(struct store_buf *b, const struct store_grant *g);
/* A lifecycle row's MAC message (l->name is not used: name is the secret's). */
int store_codec_life(struct store_buf *b, int64_t id, const char *name,
                     const struct store_lifecycle *l);
/* A container row's MAC message (every field and its labels in order, "secretd/container/v1"). */
int store_codec_container(struct store_buf *b, const struct store_container *c);
/* An audit record's MAC message: v1 (no detail, count 1), v2 (a detail, count 1) or v3
 * (count > 1), chained to prev (the previous record's MAC). */
int store_codec_audit(struct store_buf *b, uint64_t seq, const struct store_audit_row *r,
                      const uint8_t prev[CRYPT_MAC_BYTES]);
/* The retention checkpoint's tag message. */
int store_codec_checkpoint(struct store_buf *b, const struct store_audit_checkpoint *cp);
/* The audit anchor's tag message. */
int store_codec_anchor(struct store_buf *b, uint64_t seq, const uint8_t mac[CRYPT_MAC_BYTES]);

/* A label set's stored encoding (secret_labels.labels, schema 007): u64 count, then each key
 * and value (store_buf_str), in the order given (the caller sorts by key). */
int store_codec_labels(struct store_buf *b, const struct store_label *v, size_t n);
/* A label set's MAC message: "secretd/labels/v1", the secret's id and name, and the set's
 * encoding (store_buf_bytes of store_codec_labels's output). */
int store_codec_labels_mac(struct store_buf *b, int64_t id, const char *name, const uint8_t *enc,
                           size_t enclen);
/* Parses a set's encoding (enclen bytes) into *out (n labels, malloc'd; store_labels_free):
 * -EBADMSG when it is malformed, breaks the label rules or is not strictly sorted. */
int store_codec_labels_parse(const uint8_t *enc, size_t enclen, struct store_label **out,
                             size_t *n);

/* Template payload AD (schema 005): like store_ad_data, tagged "secretd/tmpl-data/v1", so that
 * a template's ciphertext never opens as a secret's and back. */
int store_ad_tmpl_data(struct store_buf *b, int64_t id, const char *name, uint64_t version);
/* Template data key AD: like store_ad_dkey, tagged "secretd/tmpl-dkey/v1". */
int store_ad_tmpl_dkey(struct store_buf *b, int64_t id, uint64_t version, uint64_t kek_id);
/* A template head's MAC message: like store_codec_head without keep, "secretd/tmpl-head/v1". */
int store_codec_tmpl_head(struct store_buf *b, int64_t id, const char *name, uint64_t current,
                          const uint64_t *versions, size_t nversions, uint64_t kek_id,
                          uint64_t size, const uint8_t dw[CRYPT_MAC_BYTES],
                          const uint8_t dc[CRYPT_MAC_BYTES]);

/* meta audit.head: the chain's last record, seq (8) | mac (32). */
#define STORE_AUDIT_HEAD_LEN (8 + CRYPT_MAC_BYTES)
int store_codec_audit_head_value(struct store_buf *b, uint64_t seq,
                                 const uint8_t mac[CRYPT_MAC_BYTES]);
void store_codec_audit_head_parse(const uint8_t v[STORE_AUDIT_HEAD_LEN], uint64_t *seq,
                                  uint8_t mac[CRYPT_MAC_BYTES]);
/* meta audit.checkpoint: seq (8) | mac (32) | pruned (8) | time (8) | tag (32), the tag a keyed
 * MAC of store_codec_checkpoint's message made with the audit key. */
#define STORE_CP_LEN (8 + CRYPT_MAC_BYTES + 8 + 8 + CRYPT_MAC_BYTES)
int store_codec_checkpoint_value(struct store_buf *b, const struct store_audit_checkpoint *cp,
                                 const uint8_t tag[CRYPT_MAC_BYTES]);
/* Fills cp from a stored value; returns where its tag is (inside v). */
const uint8_t *store_codec_checkpoint_parse(const uint8_t v[STORE_CP_LEN],
                                            struct store_audit_checkpoint *cp);

/* ---- db.c: sqlite helpers, transactions, meta, the row collector ---- */

/* Maps an sqlite result code to -EBUSY, -ENOMEM, -ENOSPC, -EEXIST or -EIO. */
int store_sqlerr(int rc);
int store_exec(sqlite3 *db, const char *sql);
int store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st);
/* Steps a statement expected to finish (no row). */
int store_step_done(sqlite3_stmt *st);
/* Ends the transaction begun by the caller: COMMIT when r == 0, else ROLLBACK keeping r. */
int store_end(sqlite3 *db, int r);
/* Runs sql and reads the first column of its first row (-EIO when no row). */
int store_pragma_int(sqlite3 *db, const char *sql, int64_t *v);
/* A meta value into buf (cap bytes), *len its length. -EBADMSG when absent (*len untouched) or
 * larger than cap. */
int store_meta_get(sqlite3 *db, const char *key, uint8_t *buf, size_t cap, size_t *len);
/* store_meta_get through the cache. */
int store_cached_meta_get(store *s, const char *key, uint8_t *buf, size_t cap, size_t *len);
int store_meta_u64(sqlite3 *db, const char *key, uint64_t *v);
int store_meta_put(sqlite3 *db, const char *key, const void *val, size_t len);
int store_meta_put_u64(sqlite3 *db, const char *key, uint64_t v);

/* The one row collector. fill fills one zeroed element from the current row: 0 or -errno. */
typedef int (*store_row_fill_fn)(store *s, sqlite3_stmt *st, void *elem);
/* Frees what fill put in one element (not the element itself). */
typedef void (*store_row_clear_fn)(void *elem);
/* Steps st to its end, appending one zeroed element of elem_size bytes per row to a malloc'd
 * array filled by fill. 0 with *out (NULL when there was no row; free()) and *n; on failure
 * clear (may be NULL) is called on every element appended (the failing one included), the array
 * is freed, *out = NULL, *n = 0, and fill's error, -ENOMEM or the sqlite error is returned. */
int store_rows_collect(store *s, sqlite3_stmt *st, size_t elem_size, store_row_fill_fn fill,
                       store_row_clear_fn clear, void **out, size_t *n);
/* Duplicates a text column (NULL for NULL or on ENOMEM). */
char *store_col_strdup(sqlite3_stmt *st, int col);

/* ---- keys.c ---- */

void store_keys_free(store *s);
/* The unsealed key of generation id, or NULL. */
const uint8_t *store_kek_find(const store *s, uint64_t id);
/* Unseals every KEK generation with the root key into s->keks (-EBADMSG if one fails). */
int store_keks_load(store *s);
/* Inserts a new random KEK generation sealed under the root key; *id gets its id. */
int store_kek_add(store *s, uint64_t *id);
/* Unseals the MAC root (-EKEYREJECTED: wrong root key) and derives the MAC subkeys. */
int store_mac_keys_load(store *s);
/* Reads or derives the root key into s->root_key as meta root.kind says. */
int store_root_key_load(store *s, const struct store_opts *o);
/* Stores the root-key parameters (salt NULL: a key file), a sealed MAC root and KEK generation 1
 * in the caller's transaction. */
int store_init_keys(store *s, const uint8_t *salt, uint64_t ops, uint64_t mem);
/* Deletes KEK generations that are not current and wrap no data key. */
int store_keks_gc(store *s);

/* ---- secrets.c ---- */

struct store_row {
	int64_t id;
	uint64_t current;
	int64_t keep;
};
int store_name_ok(const char *name);
/* Looks a secret up by name and checks its head. -ENOENT, -EBADMSG. */
int store_secret_load(store *s, const char *name, struct store_row *row);
/* Recomputes and stores the head of secret id (inside the caller's transaction). */
int store_head_update(store *s, int64_t id, const char *name, uint64_t current, int64_t keep);
/* Checks a stored head (headlen bytes). -EBADMSG when it does not hold. */
int store_head_check(store *s, int64_t id, const char *name, uint64_t current, int64_t keep,
                     const void *head, size_t headlen);

/* ---- xrows.c ---- */

/* A random row id in 2^40..2^62 (cluster mode: ids made on different nodes do not collide). */
int64_t store_cluster_id(void);

/* ---- grants.c ---- */

/* Verifies a grant row's MAC (-EBADMSG). */
int store_grant_check_mac(store *s, const struct store_grant *g, const uint8_t *mac);

/* ---- auditlog.c ---- */

/* Appends audit record a (NULL: nothing) inside the caller's transaction; version (when
 * non-zero) overrides the record's. */
int store_audit_tx(store *s, const struct store_audit *a, uint64_t version);

/* ---- lifecycle.c ---- */

/* Sets (expires > 0) or clears (0) secret id's expiry, keeping its schedule. Writes nothing
 * when it is already so; *changed (may be NULL) says whether it changed. */
int store_life_set_expiry(store *s, int64_t id, const char *name, int64_t expires, bool *changed);
/* Cluster rows (xrows.c): secret id's lifecycle (defaults when none; MAC checked), its
 * generation held (0: none), its MAC over l (l->gen included), and writing l (a row, or none
 * when neither expiry nor schedule) with the generation held set to exactly gen. */
int store_life_load(store *s, int64_t id, const char *name, struct store_lifecycle *l);
/* Sets the generation of the grant (target, selector) (grant_gens, migration 008): the live
 * grant's, kept after a revoke. Inside the caller's transaction. */
int store_grant_gen_put(store *s, const char *target, const char *selector, int64_t gen);
int store_life_gen(store *s, int64_t id, int64_t *gen);
int store_life_mac(store *s, int64_t id, const char *name, const struct store_lifecycle *l,
                   uint8_t mac[CRYPT_MAC_BYTES], const uint8_t *check);
int store_life_put_gen(store *s, int64_t id, const char *name, const struct store_lifecycle *l,
                       int64_t gen);
/* Fills l from a lifecycle row (columns from col: expires, every, next, length, charset, exec,
 * mac) and checks its MAC. l->exec malloc'd. */
int store_life_row(store *s, sqlite3_stmt *st, int col, int64_t id, const char *name,
                   struct store_lifecycle *l);

/* ---- labels.c ---- */

/* Secret id's labels from a row's columns col (labels) and col + 1 (mac), MAC checked; both NULL
 * is no labels. */
int store_labels_row(store *s, sqlite3_stmt *st, int col, int64_t id, const char *name,
                     struct store_label **out, size_t *n);
/* Applies c to secret id's labels inside the caller's transaction. */
int store_labels_apply_tx(store *s, int64_t id, const char *name,
                          const struct store_label_change *c);

/* ---- templates.c ---- */

/* Re-wraps every template data key not under generation target with kek (the unfinished key
 * rotation's last batch, inside its transaction) and recomputes those templates' heads. */
int store_tmpl_rewrap(store *s, uint64_t target, const uint8_t *kek);

/* ---- envelope.c: one sealed version (a secret's or a template's) ---- */

/* The associated-data builders of one kind of sealed version: its payload's and its data key's
 * (store_ad_data/store_ad_dkey for secrets, store_ad_tmpl_* for templates). */
struct store_envelope {
	int (*ad_data)(struct store_buf *b, int64_t id, const char *name, uint64_t version);
	int (*ad_dkey)(struct store_buf *b, int64_t id, uint64_t version, uint64_t kek_id);
};
extern const struct store_envelope store_envelope_secret, store_envelope_tmpl;

/* Seals len bytes of val as version `version` of row id / name: a fresh data key seals the
 * payload into ct (len + CRYPT_SEAL_OVERHEAD bytes), kek (generation kek_id) wraps the data key
 * into wk. 0 or -errno. */
int store_envelope_seal(const struct store_envelope *k, int64_t id, const char *name,
                        uint64_t version, const uint8_t *kek, uint64_t kek_id, const uint8_t *val,
                        size_t len, uint8_t *ct, uint8_t wk[STORE_WRAPPED_KEY_BYTES]);
/* Opens the version in st's current row (columns 0..3: kek_id, wrapped_key, ciphertext, size)
 * into a new secret of exactly its length (*out, the caller's reference). -EBADMSG when the row
 * is malformed or fails to open, -ENOMEM. */
int store_envelope_open(store *s, const struct store_envelope *k, sqlite3_stmt *st, int64_t id,
                        const char *name, uint64_t version, struct secret **out);
/* Re-wraps a data key: wk (wklen bytes, under old, generation old_id) into nwk under new_kek
 * (generation new_id). -EBADMSG when old is NULL, wk malformed or it fails to open. */
int store_envelope_rewrap(const struct store_envelope *k, int64_t id, uint64_t version,
                          const uint8_t *old, uint64_t old_id, const uint8_t *wk, size_t wklen,
                          const uint8_t *new_kek, uint64_t new_id,
                          uint8_t nwk[STORE_WRAPPED_KEY_BYTES]);
