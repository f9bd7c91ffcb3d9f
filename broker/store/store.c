#include "broker/store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "broker/crypto/crypt.h"
#include "common/cleanup.h"
#include "common/limits.h"
#include "common/names.h"
#include "schema/schema.h"

#define STORE_DB_NAME "secretd.db"
#define STORE_LOCK_NAME "lock"
#define STORE_KIND_KEYFILE "keyfile"
#define STORE_KIND_ARGON "argon2id13"
/* Upper bound accepted for a stored Argon2id memlimit: a tampered value must not make start-up
 * allocate without limit (a wrong value only yields a wrong key). */
#define STORE_KDF_MEMLIMIT_CAP (4ULL * 1024 * 1024 * 1024)
#define STORE_SUBKEY_HEAD 1
#define STORE_SUBKEY_GRANT 2
#define STORE_SUBKEY_AUDIT 3
#define STORE_SUBKEY_LIFE 4
#define STORE_KEEP_MAX 1000
#define STORE_WRAPPED_KEY_BYTES (CRYPT_KEY_BYTES + CRYPT_SEAL_OVERHEAD)

struct store_kek {
	uint64_t id;
	uint8_t *key; /* crypt_alloc'd */
};

static const char store_meta_audit_head[] = "audit.head";
static const char store_meta_audit_cp[] = "audit.checkpoint";
static const char store_meta_kek_rotating[] = "kek.rotating"; /* u64: target generation */

struct store {
	sqlite3 *db;
	int lock_fd;
	size_t max_value;
	uint8_t *root_key;  /* seals new KEK generations */
	uint8_t *head_key;  /* MACs secrets.head */
	uint8_t *grant_key; /* MACs grants.mac */
	uint8_t *audit_key; /* MACs audit.mac */
	uint8_t *life_key;  /* MACs lifecycle.mac */
	uint64_t life_gen;  /* bumped by lifecycle changes */
	struct store_kek *keks;
	size_t nkeks;
	uint64_t kek_current;
	uint64_t kek_rotating; /* target of an unfinished key rotation, 0 = none */
	int kek_rotate_err;    /* the last step's error, 0 after a good one */
	uint64_t audit_gen;    /* bumped by every audit write (committed or not) */
};

static void store_stmt_freep(sqlite3_stmt **p)
{
	sqlite3_finalize(*p);
}
static void store_crypt_freep(void *p)
{
	crypt_free(*(void **)p);
}
#define _cleanup_stmt_ __attribute__((cleanup(store_stmt_freep)))
#define _cleanup_crypt_ __attribute__((cleanup(store_crypt_freep)))

static int64_t store_now(void)
{
	return (int64_t)time(NULL);
}

/* ---- byte encoding for associated data and MAC messages (length-prefixed, big-endian) ---- */

struct store_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static void store_buf_add(struct store_buf *b, const void *d, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void store_buf_u64(struct store_buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (56 - 8 * i));
	store_buf_add(b, x, sizeof(x));
}

static void store_buf_bytes(struct store_buf *b, const void *d, size_t n)
{
	store_buf_u64(b, n);
	store_buf_add(b, d, n);
}

static void store_buf_str(struct store_buf *b, const char *s)
{
	store_buf_bytes(b, s, strlen(s));
}

static void store_buf_free(struct store_buf *b)
{
	free(b->p);
	b->p = NULL;
}
#define _cleanup_buf_ __attribute__((cleanup(store_buf_free)))

static uint64_t store_be64(const uint8_t x[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | x[i];
	return v;
}

/* Payload AD: binds a ciphertext to its secret's immutable id, name and version (not the KEK, so
 * that rotation leaves payloads untouched). */
static int store_ad_data(struct store_buf *b, int64_t id, const char *name, uint64_t version)
{
	store_buf_str(b, "secretd/data/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_u64(b, version);
	store_buf_str(b, name);
	return b->oom ? -ENOMEM : 0;
}

/* Wrapped data key AD: binds it to (secret id, version, KEK generation). */
static int store_ad_dkey(struct store_buf *b, int64_t id, uint64_t version, uint64_t kek_id)
{
	store_buf_str(b, "secretd/dkey/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_u64(b, version);
	store_buf_u64(b, kek_id);
	return b->oom ? -ENOMEM : 0;
}

static void store_ad_kek(char *ad, size_t n, uint64_t kek_id)
{
	snprintf(ad, n, "kek|%llu", (unsigned long long)kek_id);
}

static const char store_ad_macroot[] = "mac|root";

/* ---- sqlite helpers ---- */

static int store_sqlerr(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		return -EIO;
	}
}

static int store_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : store_sqlerr(rc);
}

static int store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : store_sqlerr(rc);
}

/* Steps a statement expected to finish (no row). */
static int store_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : store_sqlerr(rc);
}

/* Ends the transaction begun by the caller: COMMIT when r == 0, else ROLLBACK keeping r. */
static int store_end(sqlite3 *db, int r)
{
	if (r < 0) {
		(void)store_exec(db, "ROLLBACK");
		return r;
	}
	r = store_exec(db, "COMMIT");
	if (r < 0)
		(void)store_exec(db, "ROLLBACK");
	return r;
}

static int store_pragma_int(sqlite3 *db, const char *sql, int64_t *v)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(db, sql, &st);
	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_ROW)
		return -EIO;
	*v = sqlite3_column_int64(st, 0);
	return 0;
}

/* Sets the connection's durability and safety pragmas and reads each back. */
static int store_pragmas(sqlite3 *db)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(db, "PRAGMA journal_mode=WAL", &st);
	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_ROW)
		return -EIO;
	const char *mode = (const char *)sqlite3_column_text(st, 0);
	if (!mode || strcmp(mode, "wal") != 0)
		return -EIO;
	r = store_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
	                   "PRAGMA secure_delete=ON; PRAGMA temp_store=MEMORY");
	if (r < 0)
		return r;
	int64_t v;
	if (store_pragma_int(db, "PRAGMA synchronous", &v) < 0 || v != 2)
		return -EIO;
	if (store_pragma_int(db, "PRAGMA foreign_keys", &v) < 0 || v != 1)
		return -EIO;
	if (store_pragma_int(db, "PRAGMA secure_delete", &v) < 0 || v != 1)
		return -EIO;
	return 0;
}

/* Applies migrations from+1..schema_migrations_count, each in its own transaction, setting
 * user_version after each. */
static int store_migrate(sqlite3 *db, int from)
{
	for (size_t i = (size_t)from; i < schema_migrations_count; i++) {
		const struct schema_migration *m = &schema_migrations[i];
		int r = store_exec(db, "BEGIN IMMEDIATE");
		if (r < 0)
			return r;
		r = store_exec(db, m->sql);
		if (r == 0) {
			/* PRAGMA takes no bound parameters; the value is our own integer. */
			char sql[64];
			snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", m->version);
			r = store_exec(db, sql);
		}
		r = store_end(db, r);
		if (r < 0)
			return r;
	}
	return 0;
}

static int store_meta_get(sqlite3 *db, const char *key, uint8_t *buf, size_t cap, size_t *len)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(db, "SELECT value FROM meta WHERE key = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -EBADMSG;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	const void *p = sqlite3_column_blob(st, 0);
	size_t n = (size_t)sqlite3_column_bytes(st, 0);
	if (n > cap)
		return -EBADMSG;
	if (n)
		memcpy(buf, p, n);
	*len = n;
	return 0;
}

static int store_meta_u64(sqlite3 *db, const char *key, uint64_t *v)
{
	uint8_t x[8];
	size_t n;
	int r = store_meta_get(db, key, x, sizeof(x), &n);
	if (r < 0)
		return r;
	if (n != 8)
		return -EBADMSG;
	*v = store_be64(x);
	return 0;
}

static int store_meta_put(sqlite3 *db, const char *key, const void *val, size_t len)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(db, "INSERT INTO meta (key, value) VALUES (?1, ?2) "
				   "ON CONFLICT(key) DO UPDATE SET value = excluded.value", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, val, (int)len, SQLITE_STATIC);
	return store_step_done(st);
}

static int store_meta_put_u64(sqlite3 *db, const char *key, uint64_t v)
{
	struct store_buf b _cleanup_buf_ = {0};
	store_buf_u64(&b, v);
	if (b.oom)
		return -ENOMEM;
	return store_meta_put(db, key, b.p, b.len);
}

/* ---- paths ---- */

static char *store_path(const char *dir, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/* Absolute, symlink-resolved form of path, whose trailing components need not exist yet. */
static int store_path_canon(const char *path, char **out)
{
	_cleanup_free_ char *abs = NULL;
	if (path[0] == '/') {
		abs = strdup(path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		abs = store_path(cwd, path);
	}
	if (!abs)
		return -ENOMEM;
	size_t len = strlen(abs);
	while (len > 1 && abs[len - 1] == '/')
		abs[--len] = '\0';
	char *real = realpath(abs, NULL);
	if (real) {
		*out = real;
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	char *slash = strrchr(abs, '/');
	const char *base = slash + 1;
	_cleanup_free_ char *parent = NULL;
	if (slash == abs) {
		parent = strdup("/");
	} else {
		*slash = '\0';
		parent = NULL;
		int r = store_path_canon(abs, &parent);
		if (r < 0)
			return r;
	}
	if (!parent)
		return -ENOMEM;
	if (strcmp(base, ".") == 0 || base[0] == '\0') {
		*out = TAKE_PTR(parent);
		return 0;
	}
	if (strcmp(base, "..") == 0) {
		char *ps = strrchr(parent, '/');
		if (ps == parent)
			ps[1] = '\0';
		else
			*ps = '\0';
		*out = TAKE_PTR(parent);
		return 0;
	}
	*out = store_path(strcmp(parent, "/") == 0 ? "" : parent, base);
	return *out ? 0 : -ENOMEM;
}

/* ---- keys ---- */

static void store_keys_free(store *s)
{
	for (size_t i = 0; i < s->nkeks; i++)
		crypt_free(s->keks[i].key);
	free(s->keks);
	s->keks = NULL;
	s->nkeks = 0;
	s->kek_current = 0;
}

static const uint8_t *store_kek_find(const store *s, uint64_t id)
{
	for (size_t i = 0; i < s->nkeks; i++)
		if (s->keks[i].id == id)
			return s->keks[i].key;
	return NULL;
}

/* Unseals every KEK generation with the root key into s->keks. -EBADMSG if one fails (the root
 * key was already proven right by the MAC root, so this is tampering). */
static int store_keks_load(store *s)
{
	store_keys_free(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db, "SELECT id, wrapped FROM keks ORDER BY id", &st);
	if (r < 0)
		return r;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
		const uint8_t *w = sqlite3_column_blob(st, 1);
		size_t wlen = (size_t)sqlite3_column_bytes(st, 1);
		if (!w || wlen != STORE_WRAPPED_KEY_BYTES)
			return -EBADMSG;
		struct store_kek *nk = realloc(s->keks, (s->nkeks + 1) * sizeof(*nk));
		if (!nk)
			return -ENOMEM;
		s->keks = nk;
		uint8_t *k = crypt_alloc(CRYPT_KEY_BYTES);
		if (!k)
			return -ENOMEM;
		char ad[32];
		store_ad_kek(ad, sizeof(ad), id);
		r = crypt_open(s->root_key, (const uint8_t *)ad, strlen(ad), w, wlen, k);
		if (r < 0) {
			crypt_free(k);
			return r;
		}
		s->keks[s->nkeks].id = id;
		s->keks[s->nkeks].key = k;
		s->nkeks++;
		s->kek_current = id;
	}
	if (rc != SQLITE_DONE)
		return store_sqlerr(rc);
	return s->nkeks ? 0 : -EBADMSG;
}

/* Inserts a new random KEK generation sealed under the root key; *id gets its id. */
static int store_kek_add(store *s, uint64_t *id)
{
	_cleanup_crypt_ uint8_t *k = crypt_alloc(CRYPT_KEY_BYTES);
	if (!k)
		return -ENOMEM;
	randombytes_buf(k, CRYPT_KEY_BYTES);
	_cleanup_stmt_ sqlite3_stmt *ins = NULL;
	int r = store_prepare(
	    s->db, "INSERT INTO keks (wrapped, created) VALUES (zeroblob(?1), ?2)", &ins);
	if (r < 0)
		return r;
	sqlite3_bind_int(ins, 1, STORE_WRAPPED_KEY_BYTES);
	sqlite3_bind_int64(ins, 2, store_now());
	r = store_step_done(ins);
	if (r < 0)
		return r;
	uint64_t kid = (uint64_t)sqlite3_last_insert_rowid(s->db);
	char ad[32];
	store_ad_kek(ad, sizeof(ad), kid);
	uint8_t w[STORE_WRAPPED_KEY_BYTES];
	r = crypt_seal(s->root_key, (const uint8_t *)ad, strlen(ad), k, CRYPT_KEY_BYTES, w);
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *up = NULL;
	r = store_prepare(s->db, "UPDATE keks SET wrapped = ?1 WHERE id = ?2", &up);
	if (r < 0)
		return r;
	sqlite3_bind_blob(up, 1, w, sizeof(w), SQLITE_TRANSIENT);
	sqlite3_bind_int64(up, 2, (int64_t)kid);
	r = store_step_done(up);
	if (r < 0)
		return r;
	*id = kid;
	return 0;
}

/* Unseals the MAC root (-EKEYREJECTED: wrong root key) and derives the head and grant keys. */
static int store_mac_keys_load(store *s)
{
	uint8_t w[STORE_WRAPPED_KEY_BYTES];
	size_t wlen;
	int r = store_meta_get(s->db, "mac.root", w, sizeof(w), &wlen);
	if (r < 0)
		return r;
	if (wlen != sizeof(w))
		return -EBADMSG;
	_cleanup_crypt_ uint8_t *mroot = crypt_alloc(CRYPT_KEY_BYTES);
	if (!mroot)
		return -ENOMEM;
	if (crypt_open(s->root_key, (const uint8_t *)store_ad_macroot, strlen(store_ad_macroot), w,
	               wlen, mroot) < 0)
		return -EKEYREJECTED;
	r = crypt_subkey(mroot, STORE_SUBKEY_HEAD, "sd_head_", &s->head_key);
	if (r < 0)
		return r;
	r = crypt_subkey(mroot, STORE_SUBKEY_GRANT, "sd_grant", &s->grant_key);
	if (r == 0)
		r = crypt_subkey(mroot, STORE_SUBKEY_AUDIT, "sd_audit", &s->audit_key);
	if (r == 0)
		r = crypt_subkey(mroot, STORE_SUBKEY_LIFE, "sd_life_", &s->life_key);
	return r;
}

/* Reads or derives the root key into s->root_key as meta.root.kind says. */
static int store_root_key_load(store *s, const struct store_opts *o)
{
	char kind[32] = {0};
	size_t n;
	int r = store_meta_get(s->db, "root.kind", (uint8_t *)kind, sizeof(kind) - 1, &n);
	if (r < 0)
		return r;
	if (strcmp(kind, STORE_KIND_KEYFILE) == 0) {
		if (o->pass_file || !o->key_file)
			return -EKEYREJECTED;
		return crypt_keyfile_read(o->key_file, &s->root_key);
	}
	if (strcmp(kind, STORE_KIND_ARGON) != 0)
		return -EBADMSG;
	if (!o->pass_file)
		return -EKEYREJECTED;
	uint8_t salt[CRYPT_SALT_BYTES];
	uint64_t ops, mem;
	r = store_meta_get(s->db, "kdf.salt", salt, sizeof(salt), &n);
	if (r < 0)
		return r;
	if (n != sizeof(salt))
		return -EBADMSG;
	r = store_meta_u64(s->db, "kdf.opslimit", &ops);
	if (r < 0)
		return r;
	r = store_meta_u64(s->db, "kdf.memlimit", &mem);
	if (r < 0)
		return r;
	if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_MAX ||
	    mem < crypto_pwhash_MEMLIMIT_MIN || mem > STORE_KDF_MEMLIMIT_CAP)
		return -EBADMSG;
	return crypt_passphrase_derive(o->pass_file, salt, ops, (size_t)mem, &s->root_key);
}

/* ---- head records ---- */

/* Computes the MAC message of a secret's head: (id, name, current, keep, the sorted version set,
 * digests of the current version's wrapped key and ciphertext). -EBADMSG if the current version
 * row is missing. */
static int store_head_msg(store *s, int64_t id, const char *name, uint64_t current, int64_t keep,
                          struct store_buf *b)
{
	store_buf_str(b, "secretd/head/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_str(b, name);
	store_buf_u64(b, current);
	store_buf_u64(b, (uint64_t)keep);

	_cleanup_stmt_ sqlite3_stmt *vs = NULL;
	int r = store_prepare(
	    s->db, "SELECT version FROM versions WHERE secret_id = ?1 ORDER BY version", &vs);
	if (r < 0)
		return r;
	sqlite3_bind_int64(vs, 1, id);
	struct store_buf set _cleanup_buf_ = {0};
	uint64_t count = 0;
	int rc;
	while ((rc = sqlite3_step(vs)) == SQLITE_ROW) {
		store_buf_u64(&set, (uint64_t)sqlite3_column_int64(vs, 0));
		count++;
	}
	if (rc != SQLITE_DONE)
		return store_sqlerr(rc);
	store_buf_u64(b, count);
	store_buf_add(b, set.p, set.len);

	_cleanup_stmt_ sqlite3_stmt *cur = NULL;
	r = store_prepare(s->db,
	                  "SELECT kek_id, wrapped_key, ciphertext, size FROM versions "
	                  "WHERE secret_id = ?1 AND version = ?2",
	                  &cur);
	if (r < 0)
		return r;
	sqlite3_bind_int64(cur, 1, id);
	sqlite3_bind_int64(cur, 2, (int64_t)current);
	rc = sqlite3_step(cur);
	if (rc == SQLITE_DONE)
		return -EBADMSG;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	uint8_t dw[CRYPT_MAC_BYTES], dc[CRYPT_MAC_BYTES];
	/* Keyed digests of the row's blobs (the whole message is MAC'd again below). */
	crypt_mac(s->head_key, sqlite3_column_blob(cur, 1), (size_t)sqlite3_column_bytes(cur, 1),
	          dw);
	crypt_mac(s->head_key, sqlite3_column_blob(cur, 2), (size_t)sqlite3_column_bytes(cur, 2),
	          dc);
	store_buf_u64(b, (uint64_t)sqlite3_column_int64(cur, 0));
	store_buf_u64(b, (uint64_t)sqlite3_column_int64(cur, 3));
	store_buf_bytes(b, dw, sizeof(dw));
	store_buf_bytes(b, dc, sizeof(dc));
	if (set.oom || b->oom)
		return -ENOMEM;
	return 0;
}

/* Recomputes and stores the head of secret id (inside the caller's transaction). */
static int store_head_update(store *s, int64_t id, const char *name, uint64_t current, int64_t keep)
{
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_head_msg(s, id, name, current, keep, &b);
	if (r < 0)
		return r;
	uint8_t mac[CRYPT_MAC_BYTES];
	crypt_mac(s->head_key, b.p, b.len, mac);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s->db, "UPDATE secrets SET head = ?1 WHERE id = ?2", &st);
	if (r < 0)
		return r;
	sqlite3_bind_blob(st, 1, mac, sizeof(mac), SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, id);
	return store_step_done(st);
}

static int store_head_check(store *s, int64_t id, const char *name, uint64_t current, int64_t keep,
                            const void *head, size_t headlen)
{
	if (!head || headlen != CRYPT_MAC_BYTES || current == 0 || keep < 1)
		return -EBADMSG;
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_head_msg(s, id, name, current, keep, &b);
	if (r < 0)
		return r;
	return crypt_mac_verify(s->head_key, b.p, b.len, head);
}

struct store_row {
	int64_t id;
	uint64_t current;
	int64_t keep;
};

/* Looks a secret up by name and checks its head. -ENOENT, -EBADMSG. */
static int store_secret_load(store *s, const char *name, struct store_row *row)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db, "SELECT id, current, keep, head FROM secrets WHERE name = ?1",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	row->id = sqlite3_column_int64(st, 0);
	row->current = (uint64_t)sqlite3_column_int64(st, 1);
	row->keep = sqlite3_column_int64(st, 2);
	return store_head_check(s, row->id, name, row->current, row->keep,
	                        sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3));
}

static int store_name_ok(const char *name)
{
	if (!name)
		return -EINVAL;
	return names_check(name, strlen(name), NULL);
}

/* Deletes KEK generations that are not current and wrap no data key. */
static int store_keks_gc(store *s)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "DELETE FROM keks WHERE id <> (SELECT max(id) FROM keks) "
	                      "AND id NOT IN (SELECT kek_id FROM versions)",
	                      &st);
	if (r < 0)
		return r;
	return store_step_done(st);
}

/* ---- init / open / close ---- */

static void store_init_cleanup(const char *dbpath)
{
	const char *sfx[] = {"", "-wal", "-shm", "-journal"};
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		char p[PATH_MAX];
		if ((size_t)snprintf(p, sizeof(p), "%s%s", dbpath, sfx[i]) < sizeof(p))
			unlink(p);
	}
}

/* Stores the root-key parameters, a sealed MAC root and KEK generation 1 (in the caller's
 * transaction) and loads the derived keys into s. */
static int store_init_keys(store *s, const uint8_t *salt, uint64_t ops, uint64_t mem)
{
	int r;
	if (salt) {
		r = store_meta_put(s->db, "root.kind", STORE_KIND_ARGON, strlen(STORE_KIND_ARGON));
		if (r == 0)
			r = store_meta_put(s->db, "kdf.salt", salt, CRYPT_SALT_BYTES);
		if (r == 0)
			r = store_meta_put_u64(s->db, "kdf.opslimit", ops);
		if (r == 0)
			r = store_meta_put_u64(s->db, "kdf.memlimit", mem);
	} else {
		r = store_meta_put(s->db, "root.kind", STORE_KIND_KEYFILE,
		                   strlen(STORE_KIND_KEYFILE));
	}
	if (r < 0)
		return r;
	_cleanup_crypt_ uint8_t *mroot = crypt_alloc(CRYPT_KEY_BYTES);
	if (!mroot)
		return -ENOMEM;
	randombytes_buf(mroot, CRYPT_KEY_BYTES);
	uint8_t w[STORE_WRAPPED_KEY_BYTES];
	r = crypt_seal(s->root_key, (const uint8_t *)store_ad_macroot, strlen(store_ad_macroot),
	               mroot, CRYPT_KEY_BYTES, w);
	if (r < 0)
		return r;
	r = store_meta_put(s->db, "mac.root", w, sizeof(w));
	if (r < 0)
		return r;
	uint64_t kid;
	return store_kek_add(s, &kid);
}

int store_init(const struct store_opts *o)
{
	if (!o || !o->state_dir || !*o->state_dir || (!o->pass_file && !o->key_file))
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	int r;
	_cleanup_free_ char *dbpath = store_path(o->state_dir, STORE_DB_NAME);
	if (!dbpath)
		return -ENOMEM;
	if (!o->pass_file) {
		_cleanup_free_ char *cstate = NULL, *ckey = NULL;
		r = store_path_canon(o->state_dir, &cstate);
		if (r < 0)
			return r;
		r = store_path_canon(o->key_file, &ckey);
		if (r < 0)
			return r;
		size_t n = strlen(cstate);
		if (strcmp(cstate, "/") == 0 || strcmp(ckey, cstate) == 0 ||
		    (strncmp(ckey, cstate, n) == 0 && ckey[n] == '/'))
			return -EINVAL;
	}
	struct stat st;
	if (lstat(dbpath, &st) == 0)
		return -EEXIST;
	if (!o->pass_file && lstat(o->key_file, &st) == 0)
		return -EEXIST;

	r = crypt_mkdir_p(o->state_dir, 0700);
	if (r < 0)
		return r;

	store s = {.lock_fd = -1};
	bool created_key = false, created_db = false;
	uint8_t salt[CRYPT_SALT_BYTES];
	uint64_t ops = 0, mem = 0;
	if (o->pass_file) {
		const char *t = getenv("SECRETD_KDF_TEST");
		bool fast = t && strcmp(t, "1") == 0;
		ops = fast ? crypto_pwhash_OPSLIMIT_MIN : crypto_pwhash_OPSLIMIT_INTERACTIVE;
		mem = fast ? crypto_pwhash_MEMLIMIT_MIN : crypto_pwhash_MEMLIMIT_INTERACTIVE;
		randombytes_buf(salt, sizeof(salt));
		r = crypt_passphrase_derive(o->pass_file, salt, ops, (size_t)mem, &s.root_key);
	} else {
		r = crypt_keyfile_create(o->key_file);
		if (r == 0) {
			created_key = true;
			r = crypt_keyfile_read(o->key_file, &s.root_key);
		}
	}
	if (r < 0)
		goto out;

	created_db = true;
	if (sqlite3_open_v2(dbpath, &s.db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW |
	                        SQLITE_OPEN_EXRESCODE,
	                    NULL) != SQLITE_OK) {
		r = -EIO;
		goto out;
	}
	(void)chmod(dbpath, 0600);
	sqlite3_busy_timeout(s.db, 5000);
	r = store_pragmas(s.db);
	if (r < 0)
		goto out;
	if (schema_migrations_count < 1) {
		r = -EIO;
		goto out;
	}
	r = store_exec(s.db, "BEGIN IMMEDIATE");
	if (r < 0)
		goto out;
	r = store_exec(s.db, schema_migrations[0].sql);
	if (r == 0)
		r = store_init_keys(&s, o->pass_file ? salt : NULL, ops, mem);
	if (r == 0)
		r = store_exec(s.db, "PRAGMA user_version=1");
	r = store_end(s.db, r);
	if (r < 0)
		goto out;
	r = store_migrate(s.db, 1);
out:
	if (s.db)
		sqlite3_close_v2(s.db);
	crypt_free(s.root_key);
	store_keys_free(&s);
	if (r < 0) {
		if (created_db)
			store_init_cleanup(dbpath);
		if (created_key)
			unlink(o->key_file);
	}
	return r;
}

int store_open(store **out, const struct store_opts *o)
{
	if (!out || !o || !o->state_dir || (!o->pass_file && !o->key_file))
		return -EINVAL;
	*out = NULL;
	size_t max = o->max_value ? o->max_value : SECRETD_VALUE_MAX_DEFAULT;
	if (max > SECRETD_VALUE_MAX_CEILING)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	_cleanup_free_ char *dbpath = store_path(o->state_dir, STORE_DB_NAME);
	_cleanup_free_ char *lockpath = store_path(o->state_dir, STORE_LOCK_NAME);
	if (!dbpath || !lockpath)
		return -ENOMEM;
	struct stat st;
	if (stat(dbpath, &st) < 0)
		return errno == ENOENT || errno == ENOTDIR ? -ENODATA : -errno;

	store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->lock_fd = -1;
	s->max_value = max;
	int r;
	s->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->lock_fd < 0) {
		r = -errno;
		goto out;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out;
	}
	if (sqlite3_open_v2(dbpath, &s->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
	                    NULL) != SQLITE_OK) {
		r = -EIO;
		goto out;
	}
	sqlite3_busy_timeout(s->db, 5000);
	r = store_pragmas(s->db);
	if (r < 0)
		goto out;
	int64_t uv;
	r = store_pragma_int(s->db, "PRAGMA user_version", &uv);
	if (r < 0)
		goto out;
	if (uv <= 0) {
		r = -ENODATA;
		goto out;
	}
	if ((uint64_t)uv > schema_migrations_count) {
		r = -EPROTO; /* written by a newer secretd */
		goto out;
	}
	/* The key is checked against 001's tables before any migration writes. */
	r = store_root_key_load(s, o);
	if (r < 0)
		goto out;
	r = store_mac_keys_load(s);
	if (r < 0)
		goto out;
	r = store_keks_load(s);
	if (r < 0)
		goto out;
	r = store_migrate(s->db, (int)uv);
	if (r < 0)
		goto out;
	r = store_meta_u64(s->db, store_meta_kek_rotating, &s->kek_rotating);
	if (r == -EBADMSG) { /* no unfinished rotation */
		s->kek_rotating = 0;
		r = 0;
	}
	if (r < 0)
		goto out;
	if (s->kek_rotating && s->kek_rotating != s->kek_current) {
		r = -EBADMSG; /* a rotation always targets the newest generation */
		goto out;
	}
	*out = s;
	s = NULL;
out:
	store_close(s);
	return r;
}

void store_close(store *s)
{
	if (!s)
		return;
	if (s->db)
		sqlite3_close_v2(s->db);
	crypt_free(s->root_key);
	crypt_free(s->head_key);
	crypt_free(s->grant_key);
	crypt_free(s->audit_key);
	crypt_free(s->life_key);
	store_keys_free(s);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s);
}

/* ---- secrets ---- */

static int store_life_set_expiry(store *s, int64_t id, const char *name, int64_t expires,
                                 bool *changed);
static int store_audit_tx(store *s, const struct store_audit *a, uint64_t version);
static int store_life_row(store *s, sqlite3_stmt *st, int col, int64_t id, const char *name,
                          struct store_lifecycle *l);

/* Creates the secret row if needed; *row gets it (head checked when it existed). */
static int store_put_row(store *s, const char *name, struct store_row *row)
{
	int r = store_secret_load(s, name, row);
	if (r != -ENOENT)
		return r;
	_cleanup_stmt_ sqlite3_stmt *ins = NULL, *k = NULL;
	r = store_prepare(s->db,
	                  "INSERT INTO secrets (name, current, created, updated, head) "
	                  "VALUES (?1, 0, ?2, ?2, zeroblob(?3))",
	                  &ins);
	if (r < 0)
		return r;
	sqlite3_bind_text(ins, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 2, store_now());
	sqlite3_bind_int(ins, 3, CRYPT_MAC_BYTES);
	r = store_step_done(ins);
	if (r < 0)
		return r;
	row->id = sqlite3_last_insert_rowid(s->db);
	row->current = 0;
	r = store_prepare(s->db, "SELECT keep FROM secrets WHERE id = ?1", &k);
	if (r < 0)
		return r;
	sqlite3_bind_int64(k, 1, row->id);
	if (sqlite3_step(k) != SQLITE_ROW)
		return -EIO;
	row->keep = sqlite3_column_int64(k, 0);
	return 0;
}

/* The body of store_put, inside its transaction. *life_changed (may be NULL) tells whether the
 * secret's expiry changed. */
static int store_put_tx(store *s, const char *name, const uint8_t *val, size_t len,
                        const uint8_t *kek, const struct store_put_opts *o, uint64_t *version_out,
                        bool *life_changed)
{
	_cleanup_crypt_ uint8_t *dk = crypt_alloc(CRYPT_KEY_BYTES);
	_cleanup_free_ uint8_t *ct = malloc(len + CRYPT_SEAL_OVERHEAD);
	struct store_buf ad _cleanup_buf_ = {0}, kad _cleanup_buf_ = {0};
	_cleanup_stmt_ sqlite3_stmt *vi = NULL, *pr = NULL, *up = NULL;
	if (!dk || !ct)
		return -ENOMEM;
	struct store_row row = {0};
	int r = store_put_row(s, name, &row);
	if (r < 0)
		return r;
	uint64_t version = row.current + 1;

	randombytes_buf(dk, CRYPT_KEY_BYTES);
	r = store_ad_data(&ad, row.id, name, version);
	if (r == 0)
		r = store_ad_dkey(&kad, row.id, version, s->kek_current);
	if (r == 0)
		r = crypt_seal(dk, ad.p, ad.len, val, len, ct);
	if (r < 0)
		return r;
	uint8_t wk[STORE_WRAPPED_KEY_BYTES];
	r = crypt_seal(kek, kad.p, kad.len, dk, CRYPT_KEY_BYTES, wk);
	if (r < 0)
		return r;

	r = store_prepare(
	    s->db,
	    "INSERT INTO versions (secret_id, version, kek_id, wrapped_key, ciphertext, "
	    "size, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	    &vi);
	if (r < 0)
		return r;
	int64_t now = store_now();
	sqlite3_bind_int64(vi, 1, row.id);
	sqlite3_bind_int64(vi, 2, (int64_t)version);
	sqlite3_bind_int64(vi, 3, (int64_t)s->kek_current);
	sqlite3_bind_blob(vi, 4, wk, sizeof(wk), SQLITE_STATIC);
	sqlite3_bind_blob64(vi, 5, ct, len + CRYPT_SEAL_OVERHEAD, SQLITE_STATIC);
	sqlite3_bind_int64(vi, 6, (int64_t)len);
	sqlite3_bind_int64(vi, 7, now);
	r = store_step_done(vi);
	if (r < 0)
		return r == -EEXIST ? -EBADMSG : r; /* a row beyond current: not written by us */

	if (o && o->keep > 0) {
		_cleanup_stmt_ sqlite3_stmt *kp = NULL;
		r = store_prepare(s->db, "UPDATE secrets SET keep = ?1 WHERE id = ?2", &kp);
		if (r < 0)
			return r;
		sqlite3_bind_int64(kp, 1, o->keep);
		sqlite3_bind_int64(kp, 2, row.id);
		r = store_step_done(kp);
		if (r < 0)
			return r;
		row.keep = o->keep;
	}
	if (o && o->expires) {
		r = store_life_set_expiry(s, row.id, name, o->expires < 0 ? 0 : o->expires,
		                          life_changed);
		if (r < 0)
			return r;
	}

	r = store_prepare(s->db,
	                  "DELETE FROM versions WHERE secret_id = ?1 AND version NOT IN "
	                  "(SELECT version FROM versions WHERE secret_id = ?1 "
	                  "ORDER BY version DESC LIMIT ?2)",
	                  &pr);
	if (r < 0)
		return r;
	sqlite3_bind_int64(pr, 1, row.id);
	sqlite3_bind_int64(pr, 2, row.keep);
	r = store_step_done(pr);
	if (r < 0)
		return r;

	r = store_prepare(s->db, "UPDATE secrets SET current = ?1, updated = ?2 WHERE id = ?3",
	                  &up);
	if (r < 0)
		return r;
	sqlite3_bind_int64(up, 1, (int64_t)version);
	sqlite3_bind_int64(up, 2, now);
	sqlite3_bind_int64(up, 3, row.id);
	r = store_step_done(up);
	if (r == 0)
		r = store_head_update(s, row.id, name, version, row.keep);
	if (r == 0)
		r = store_keks_gc(s);
	if (r == 0)
		*version_out = version;
	return r;
}

int store_put(store *s, const char *name, const uint8_t *val, size_t len, uint64_t *version_out)
{
	if (version_out)
		*version_out = 0;
	if (!s || (!val && len))
		return -EINVAL;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	if (len > s->max_value)
		return -EFBIG;
	const uint8_t *kek = store_kek_find(s, s->kek_current);
	if (!kek)
		return -EBADMSG;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	uint64_t v = 0;
	r = store_end(s->db, store_put_tx(s, name, val, len, kek, NULL, &v, NULL));
	if (r == 0 && version_out)
		*version_out = v;
	return r;
}

/* Reads and decrypts one version of a checked secret (inside a read transaction). */
static int store_get_version(store *s, const char *name, const struct store_row *row, uint64_t v,
                             uint8_t **val, size_t *len)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "SELECT kek_id, wrapped_key, ciphertext, size FROM versions "
	                      "WHERE secret_id = ?1 AND version = ?2",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, row->id);
	sqlite3_bind_int64(st, 2, (int64_t)v);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	uint64_t kek_id = (uint64_t)sqlite3_column_int64(st, 0);
	const uint8_t *wk = sqlite3_column_blob(st, 1);
	size_t wklen = (size_t)sqlite3_column_bytes(st, 1);
	const uint8_t *ct = sqlite3_column_blob(st, 2);
	size_t ctlen = (size_t)sqlite3_column_bytes(st, 2);
	int64_t size = sqlite3_column_int64(st, 3);
	const uint8_t *kek = store_kek_find(s, kek_id);
	if (!kek || !wk || wklen != STORE_WRAPPED_KEY_BYTES || !ct || ctlen < CRYPT_SEAL_OVERHEAD ||
	    size < 0 || (uint64_t)size != ctlen - CRYPT_SEAL_OVERHEAD)
		return -EBADMSG;

	_cleanup_crypt_ uint8_t *dk = crypt_alloc(CRYPT_KEY_BYTES);
	if (!dk)
		return -ENOMEM;
	struct store_buf kad _cleanup_buf_ = {0};
	r = store_ad_dkey(&kad, row->id, v, kek_id);
	if (r < 0)
		return r;
	r = crypt_open(kek, kad.p, kad.len, wk, wklen, dk);
	if (r < 0)
		return -EBADMSG;
	size_t n = (size_t)size;
	_cleanup_crypt_ uint8_t *out = crypt_alloc(n ? n : 1);
	if (!out)
		return -ENOMEM;
	struct store_buf ad _cleanup_buf_ = {0};
	r = store_ad_data(&ad, row->id, name, v);
	if (r < 0)
		return r;
	r = crypt_open(dk, ad.p, ad.len, ct, ctlen, out);
	if (r < 0)
		return -EBADMSG;
	*val = TAKE_PTR(out);
	*len = n;
	return 0;
}

int store_get(store *s, const char *name, uint64_t version, uint8_t **val, size_t *len,
              uint64_t *version_out)
{
	if (!s || !val || !len)
		return -EINVAL;
	*val = NULL;
	*len = 0;
	if (version_out)
		*version_out = 0;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	/* One read transaction: the head and the row are checked against the same snapshot. */
	r = store_exec(s->db, "BEGIN");
	if (r < 0)
		return r;
	struct store_row row;
	r = store_secret_load(s, name, &row);
	if (r < 0)
		goto out;
	uint64_t v = version ? version : row.current;
	if (v > row.current) {
		r = -ENOENT;
		goto out;
	}
	r = store_get_version(s, name, &row, v, val, len);
	if (r == 0 && version_out)
		*version_out = v;
out:
	(void)store_exec(s->db, "ROLLBACK");
	return r;
}

void store_value_free(uint8_t *val)
{
	crypt_free(val);
}

int store_list(store *s, struct store_secret_info **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "SELECT s.name, s.current, (SELECT count(*) FROM versions "
	                      "WHERE secret_id = s.id), s.created, s.updated, s.id, l.expires, "
	                      "l.every, l.next, l.length, l.charset, l.exec, l.mac "
	                      "FROM secrets s LEFT JOIN lifecycle l ON l.secret_id = s.id "
	                      "ORDER BY s.name",
	                      &st);
	if (r < 0)
		return r;
	struct store_secret_info *v = NULL;
	size_t cnt = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_secret_info *nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			goto fail;
		}
		v = nv;
		const char *name = (const char *)sqlite3_column_text(st, 0);
		v[cnt].name = strdup(name ? name : "");
		if (!v[cnt].name) {
			r = -ENOMEM;
			goto fail;
		}
		v[cnt].current = (uint64_t)sqlite3_column_int64(st, 1);
		v[cnt].nversions = (uint64_t)sqlite3_column_int64(st, 2);
		v[cnt].created = sqlite3_column_int64(st, 3);
		v[cnt].updated = sqlite3_column_int64(st, 4);
		v[cnt].expires = 0;
		cnt++;
		if (sqlite3_column_type(st, 12) != SQLITE_NULL) {
			/* A lifecycle row: shown only once its MAC holds. */
			struct store_lifecycle l = {0};
			r = store_life_row(s, st, 6, sqlite3_column_int64(st, 5), v[cnt - 1].name,
			                   &l);
			free(l.exec);
			if (r < 0)
				goto fail;
			v[cnt - 1].expires = l.expires;
		}
	}
	if (rc != SQLITE_DONE) {
		r = store_sqlerr(rc);
		goto fail;
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	store_list_free(v, cnt);
	return r;
}

void store_list_free(struct store_secret_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

int store_names(store *s, char ***out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db, "SELECT name FROM secrets ORDER BY name", &st);
	if (r < 0)
		return r;
	char **v = NULL;
	size_t cnt = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			goto fail;
		}
		v = nv;
		const char *name = (const char *)sqlite3_column_text(st, 0);
		v[cnt] = strdup(name ? name : "");
		if (!v[cnt]) {
			r = -ENOMEM;
			goto fail;
		}
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		r = store_sqlerr(rc);
		goto fail;
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	store_names_free(v, cnt);
	return r;
}

void store_names_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int store_versions(store *s, const char *name, struct store_version_info **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s->db,
	                  "SELECT v.version, v.kek_id, v.size, v.created, s.current "
	                  "FROM versions v JOIN secrets s ON s.id = v.secret_id "
	                  "WHERE s.name = ?1 ORDER BY v.version",
	                  &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	struct store_version_info *v = NULL;
	size_t cnt = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_version_info *nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			free(v);
			return -ENOMEM;
		}
		v = nv;
		v[cnt].version = (uint64_t)sqlite3_column_int64(st, 0);
		v[cnt].kek_id = (uint64_t)sqlite3_column_int64(st, 1);
		v[cnt].size = (size_t)sqlite3_column_int64(st, 2);
		v[cnt].created = sqlite3_column_int64(st, 3);
		v[cnt].current = (uint64_t)sqlite3_column_int64(st, 4) == v[cnt].version;
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		free(v);
		return store_sqlerr(rc);
	}
	if (cnt == 0)
		return -ENOENT;
	*out = v;
	*n = cnt;
	return 0;
}

void store_versions_free(struct store_version_info *v, size_t n)
{
	(void)n;
	free(v);
}

int store_delete(store *s, const char *name)
{
	return store_delete_ex(s, name, NULL);
}

int store_delete_ex(store *s, const char *name, const struct store_audit *audit)
{
	if (!s)
		return -EINVAL;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *ds = NULL, *dg = NULL;
	r = store_prepare(s->db, "DELETE FROM secrets WHERE name = ?1", &ds);
	if (r < 0)
		goto out;
	sqlite3_bind_text(ds, 1, name, -1, SQLITE_STATIC);
	r = store_step_done(ds);
	if (r < 0)
		goto out;
	if (sqlite3_changes(s->db) == 0) {
		r = -ENOENT;
		goto out;
	}
	r = store_prepare(s->db, "DELETE FROM grants WHERE secret = ?1", &dg);
	if (r < 0)
		goto out;
	sqlite3_bind_text(dg, 1, name, -1, SQLITE_STATIC);
	r = store_step_done(dg);
	if (r == 0)
		r = store_keks_gc(s);
	if (r == 0)
		r = store_audit_tx(s, audit, 0);
out:
	r = store_end(s->db, r);
	if (r == 0)
		s->life_gen++;
	return r;
}

struct store_verref {
	int64_t secret_id;
	uint64_t version;
};

static int store_rewrap(store *s, const struct store_verref *v, uint64_t new_id,
                        const uint8_t *new_kek)
{
	_cleanup_stmt_ sqlite3_stmt *sel = NULL, *up = NULL;
	int r = store_prepare(s->db,
	                      "SELECT kek_id, wrapped_key FROM versions "
	                      "WHERE secret_id = ?1 AND version = ?2",
	                      &sel);
	if (r < 0)
		return r;
	sqlite3_bind_int64(sel, 1, v->secret_id);
	sqlite3_bind_int64(sel, 2, (int64_t)v->version);
	if (sqlite3_step(sel) != SQLITE_ROW)
		return -EIO;
	uint64_t old_id = (uint64_t)sqlite3_column_int64(sel, 0);
	const uint8_t *wk = sqlite3_column_blob(sel, 1);
	size_t wklen = (size_t)sqlite3_column_bytes(sel, 1);
	const uint8_t *old = store_kek_find(s, old_id);
	if (!old || !wk || wklen != STORE_WRAPPED_KEY_BYTES)
		return -EBADMSG;
	_cleanup_crypt_ uint8_t *dk = crypt_alloc(CRYPT_KEY_BYTES);
	if (!dk)
		return -ENOMEM;
	struct store_buf oad _cleanup_buf_ = {0}, nad _cleanup_buf_ = {0};
	r = store_ad_dkey(&oad, v->secret_id, v->version, old_id);
	if (r == 0)
		r = store_ad_dkey(&nad, v->secret_id, v->version, new_id);
	if (r < 0)
		return r;
	if (crypt_open(old, oad.p, oad.len, wk, wklen, dk) < 0)
		return -EBADMSG;
	uint8_t nwk[STORE_WRAPPED_KEY_BYTES];
	r = crypt_seal(new_kek, nad.p, nad.len, dk, CRYPT_KEY_BYTES, nwk);
	if (r < 0)
		return r;
	r = store_prepare(s->db,
	                  "UPDATE versions SET kek_id = ?1, wrapped_key = ?2 "
	                  "WHERE secret_id = ?3 AND version = ?4",
	                  &up);
	if (r < 0)
		return r;
	sqlite3_bind_int64(up, 1, (int64_t)new_id);
	sqlite3_bind_blob(up, 2, nwk, sizeof(nwk), SQLITE_TRANSIENT);
	sqlite3_bind_int64(up, 3, v->secret_id);
	sqlite3_bind_int64(up, 4, (int64_t)v->version);
	return store_step_done(up);
}

/* ---- master-key rotation, in batches ---- */

uint64_t store_key_rotating(const store *s)
{
	return s ? s->kek_rotating : 0;
}

/* Checks every head (so that a rotation never starts over a tampered secret). */
static int store_heads_check(store *s)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db, "SELECT id, name, current, keep, head FROM secrets", &st);
	if (r < 0)
		return r;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		if (!name)
			return -EBADMSG;
		r = store_head_check(s, sqlite3_column_int64(st, 0), name,
		                     (uint64_t)sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
		                     sqlite3_column_blob(st, 4), (size_t)sqlite3_column_bytes(st, 4));
		if (r < 0)
			return r;
	}
	return rc == SQLITE_DONE ? 0 : store_sqlerr(rc);
}

int store_key_rotate_begin(store *s, const struct store_audit *audit, uint64_t *kek_id,
                           bool *resumed)
{
	if (!s)
		return -EINVAL;
	uint64_t new_id = 0;
	bool again = s->kek_rotating != 0;
	int r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	if (again) {
		/* One rotation at a time: the unfinished one is the answer (and is recorded). */
		new_id = s->kek_rotating;
		if (audit) {
			struct store_audit a = *audit;
			a.result = "in-progress";
			r = store_audit_tx(s, &a, new_id);
		}
		goto out;
	}
	r = store_heads_check(s);
	if (r < 0)
		goto out;
	r = store_kek_add(s, &new_id);
	if (r == 0)
		r = store_meta_put_u64(s->db, store_meta_kek_rotating, new_id);
	if (r == 0)
		r = store_audit_tx(s, audit, new_id);
out:
	r = store_end(s->db, r);
	if (r == 0 && !again) {
		/* New data keys are wrapped by the new generation from now on. */
		r = store_keks_load(s);
		if (r == 0 && !store_kek_find(s, new_id))
			r = -EIO;
		if (r == 0)
			s->kek_rotating = new_id;
	}
	if (r == 0) {
		if (kek_id)
			*kek_id = new_id;
		if (resumed)
			*resumed = again;
	}
	return r;
}

struct store_rot_row {
	int64_t secret_id;
	uint64_t version;
	char *name;
	uint64_t current;
	int64_t keep;
	uint8_t head[CRYPT_MAC_BYTES];
	bool head_ok;
};

static void store_rot_rows_free(struct store_rot_row *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* The next (at most max) versions not wrapped by generation target, grouped by secret. */
static int store_rot_rows(store *s, uint64_t target, size_t max, struct store_rot_row **out,
                          size_t *n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "SELECT v.secret_id, v.version, s.name, s.current, s.keep, s.head "
	                      "FROM versions v JOIN secrets s ON s.id = v.secret_id "
	                      "WHERE v.kek_id <> ?1 ORDER BY v.secret_id, v.version LIMIT ?2",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, (int64_t)target);
	sqlite3_bind_int64(st, 2, (int64_t)max);
	struct store_rot_row *v = calloc(max ? max : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	int rc = SQLITE_DONE;
	while (k < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 2);
		const void *head = sqlite3_column_blob(st, 5);
		struct store_rot_row *e = &v[k];
		e->name = strdup(name ? name : "");
		if (!e->name) {
			rc = SQLITE_NOMEM;
			break;
		}
		k++;
		e->secret_id = sqlite3_column_int64(st, 0);
		e->version = (uint64_t)sqlite3_column_int64(st, 1);
		e->current = (uint64_t)sqlite3_column_int64(st, 3);
		e->keep = sqlite3_column_int64(st, 4);
		e->head_ok = head && sqlite3_column_bytes(st, 5) == CRYPT_MAC_BYTES;
		if (e->head_ok)
			memcpy(e->head, head, CRYPT_MAC_BYTES);
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		store_rot_rows_free(v, k);
		return store_sqlerr(rc);
	}
	*out = v;
	*n = k;
	return 0;
}

/* Re-wraps the rows of one batch: each secret's head is checked before its first row is touched
 * and recomputed after its last, inside the caller's transaction. */
static int store_rot_apply(store *s, const struct store_rot_row *v, size_t n, uint64_t target,
                           const uint8_t *kek)
{
	for (size_t i = 0; i < n; i++) {
		const struct store_rot_row *e = &v[i];
		bool first = i == 0 || v[i - 1].secret_id != e->secret_id;
		bool last = i + 1 == n || v[i + 1].secret_id != e->secret_id;
		int r = 0;
		if (first)
			r = e->head_ok ? store_head_check(s, e->secret_id, e->name, e->current, e->keep,
			                                  e->head, CRYPT_MAC_BYTES)
			               : -EBADMSG;
		if (r == 0) {
			struct store_verref ref = {.secret_id = e->secret_id, .version = e->version};
			r = store_rewrap(s, &ref, target, kek);
		}
		if (r == 0 && last)
			r = store_head_update(s, e->secret_id, e->name, e->current, e->keep);
		if (r < 0)
			return r;
	}
	return 0;
}

int store_key_rotate_step(store *s, size_t max, const struct store_audit *done_audit,
                          uint64_t *rewrapped, bool *finished)
{
	if (!s || max == 0)
		return -EINVAL;
	if (rewrapped)
		*rewrapped = 0;
	if (finished)
		*finished = s->kek_rotating == 0;
	if (s->kek_rotating == 0)
		return 0;
	uint64_t target = s->kek_rotating;
	const uint8_t *kek = store_kek_find(s, target);
	if (!kek)
		return -EBADMSG;
	struct store_rot_row *v = NULL;
	size_t n = 0;
	bool done = false;
	int r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = store_rot_rows(s, target, max, &v, &n);
	if (r < 0)
		goto out;
	r = store_rot_apply(s, v, n, target, kek);
	if (r < 0)
		goto out;
	if (n < max) {
		/* Nothing left under an older generation: drop the unused ones, end the rotation. */
		done = true;
		r = store_keks_gc(s);
		if (r == 0) {
			_cleanup_stmt_ sqlite3_stmt *del = NULL;
			r = store_prepare(s->db, "DELETE FROM meta WHERE key = ?1", &del);
			if (r == 0) {
				sqlite3_bind_text(del, 1, store_meta_kek_rotating, -1, SQLITE_STATIC);
				r = store_step_done(del);
			}
		}
		if (r == 0)
			r = store_audit_tx(s, done_audit, target);
	}
out:
	store_rot_rows_free(v, n);
	r = store_end(s->db, r);
	if (r == 0 && done) {
		s->kek_rotating = 0;
		r = store_keks_load(s);
	}
	s->kek_rotate_err = r;
	if (r == 0) {
		if (rewrapped)
			*rewrapped = n;
		if (finished)
			*finished = done;
	}
	return r;
}

int store_key_rotate(store *s, uint64_t *kek_id, uint64_t *rewrapped)
{
	return store_key_rotate_ex(s, NULL, kek_id, rewrapped);
}

int store_key_rotate_ex(store *s, const struct store_audit *audit, uint64_t *kek_id,
                        uint64_t *rewrapped)
{
	uint64_t id = 0, total = 0;
	int r = store_key_rotate_begin(s, audit, &id, NULL);
	for (bool done = false; r == 0 && !done;) {
		uint64_t n = 0;
		r = store_key_rotate_step(s, SECRETD_KEY_ROTATE_BATCH, NULL, &n, &done);
		total += n;
	}
	if (r == 0) {
		if (kek_id)
			*kek_id = id;
		if (rewrapped)
			*rewrapped = total;
	}
	return r;
}

int store_key_status(store *s, struct store_key_status *st)
{
	if (!s || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->current = s->kek_current;
	st->rotating = s->kek_rotating;
	st->error = s->kek_rotating ? s->kek_rotate_err : 0;
	_cleanup_stmt_ sqlite3_stmt *q = NULL;
	int r = store_prepare(s->db,
	                      "SELECT k.id, k.created, (SELECT count(*) FROM versions v "
	                      "WHERE v.kek_id = k.id) FROM keks k ORDER BY k.id",
	                      &q);
	if (r < 0)
		return r;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct store_key_gen *g = realloc(st->gens, (st->ngens + 1) * sizeof(*g));
		if (!g) {
			store_key_status_free(st);
			return -ENOMEM;
		}
		st->gens = g;
		g[st->ngens].id = (uint64_t)sqlite3_column_int64(q, 0);
		g[st->ngens].created = sqlite3_column_int64(q, 1);
		g[st->ngens].versions = (uint64_t)sqlite3_column_int64(q, 2);
		if (g[st->ngens].id != st->current)
			st->remaining += g[st->ngens].versions;
		st->ngens++;
	}
	if (rc != SQLITE_DONE) {
		store_key_status_free(st);
		return store_sqlerr(rc);
	}
	return 0;
}

void store_key_status_free(struct store_key_status *st)
{
	if (!st)
		return;
	free(st->gens);
	st->gens = NULL;
	st->ngens = 0;
}

/* ---- grants ---- */

static int store_grant_valid(const struct store_grant *g)
{
	if (!g || !g->secret || !g->selector)
		return -EINVAL;
	if (names_check_pattern(g->secret, strlen(g->secret), NULL) < 0)
		return -EINVAL;
	size_t sl = strlen(g->selector);
	if (sl == 0 || sl > SECRETD_SELECTOR_MAX)
		return -EINVAL;
	if (g->path && names_check(g->path, strlen(g->path), NULL) < 0)
		return -EINVAL;
	if (g->mode > 0777 || g->uid < -1 || g->uid > UINT32_MAX - 1 || g->gid < -1 ||
	    g->gid > UINT32_MAX - 1 || (g->flags & ~(uint32_t)STORE_GRANT_PREVIOUS))
		return -EINVAL;
	return 0;
}

/* Computes a grant row's MAC into mac, or with check non-NULL verifies check (-EBADMSG). */
static int store_grant_mac(store *s, const struct store_grant *g, uint8_t mac[CRYPT_MAC_BYTES],
                           const uint8_t *check)
{
	struct store_buf b _cleanup_buf_ = {0};
	store_buf_str(&b, "secretd/grant/v1");
	store_buf_u64(&b, (uint64_t)g->id);
	store_buf_str(&b, g->secret);
	store_buf_str(&b, g->selector);
	store_buf_u64(&b, g->path ? 1 : 0);
	store_buf_str(&b, g->path ? g->path : "");
	store_buf_u64(&b, g->mode);
	store_buf_u64(&b, (uint64_t)g->uid);
	store_buf_u64(&b, (uint64_t)g->gid);
	store_buf_u64(&b, g->flags);
	store_buf_u64(&b, (uint64_t)g->created);
	if (b.oom)
		return -ENOMEM;
	if (check)
		return crypt_mac_verify(s->grant_key, b.p, b.len, check);
	crypt_mac(s->grant_key, b.p, b.len, mac);
	return 0;
}

int store_grant_add(store *s, const struct store_grant *g, bool replace)
{
	return store_grant_add_ex(s, g, replace, NULL);
}

int store_grant_add_ex(store *s, const struct store_grant *g, bool replace,
                       const struct store_audit *audit)
{
	if (!s)
		return -EINVAL;
	int r = store_grant_valid(g);
	if (r < 0)
		return r;
	struct store_grant row = *g;
	row.created = store_now();
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *sel = NULL, *wr = NULL, *mu = NULL;
	r = store_prepare(s->db, "SELECT id FROM grants WHERE secret = ?1 AND selector = ?2", &sel);
	if (r < 0)
		goto out;
	sqlite3_bind_text(sel, 1, g->secret, -1, SQLITE_STATIC);
	sqlite3_bind_text(sel, 2, g->selector, -1, SQLITE_STATIC);
	int rc = sqlite3_step(sel);
	if (rc == SQLITE_ROW) {
		if (!replace) {
			r = -EEXIST;
			goto out;
		}
		row.id = sqlite3_column_int64(sel, 0);
		r = store_prepare(s->db,
		                  "UPDATE grants SET path = ?1, mode = ?2, uid = ?3, gid = ?4, "
		                  "flags = ?5, created = ?6 WHERE id = ?7",
		                  &wr);
		if (r < 0)
			goto out;
		sqlite3_bind_int64(wr, 7, row.id);
	} else if (rc == SQLITE_DONE) {
		r = store_prepare(
		    s->db,
		    "INSERT INTO grants (path, mode, uid, gid, flags, created, secret, "
		    "selector, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?9, zeroblob(?10))",
		    &wr);
		if (r < 0)
			goto out;
		sqlite3_bind_text(wr, 8, g->secret, -1, SQLITE_STATIC);
		sqlite3_bind_text(wr, 9, g->selector, -1, SQLITE_STATIC);
		sqlite3_bind_int(wr, 10, CRYPT_MAC_BYTES);
	} else {
		r = store_sqlerr(rc);
		goto out;
	}
	if (g->path)
		sqlite3_bind_text(wr, 1, g->path, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(wr, 1);
	sqlite3_bind_int64(wr, 2, g->mode);
	sqlite3_bind_int64(wr, 3, g->uid);
	sqlite3_bind_int64(wr, 4, g->gid);
	sqlite3_bind_int64(wr, 5, g->flags);
	sqlite3_bind_int64(wr, 6, row.created);
	r = store_step_done(wr);
	if (r < 0)
		goto out;
	if (rc == SQLITE_DONE)
		row.id = sqlite3_last_insert_rowid(s->db);
	uint8_t mac[CRYPT_MAC_BYTES];
	r = store_grant_mac(s, &row, mac, NULL);
	if (r < 0)
		goto out;
	r = store_prepare(s->db, "UPDATE grants SET mac = ?1 WHERE id = ?2", &mu);
	if (r < 0)
		goto out;
	sqlite3_bind_blob(mu, 1, mac, sizeof(mac), SQLITE_TRANSIENT);
	sqlite3_bind_int64(mu, 2, row.id);
	r = store_step_done(mu);
	if (r == 0)
		r = store_audit_tx(s, audit, 0);
out:
	return store_end(s->db, r);
}

int store_grant_remove(store *s, const char *secret, const char *selector)
{
	return store_grant_remove_ex(s, secret, selector, NULL);
}

int store_grant_remove_ex(store *s, const char *secret, const char *selector,
                          const struct store_audit *audit)
{
	if (!s || !secret || !selector || !*selector || strlen(selector) > SECRETD_SELECTOR_MAX ||
	    names_check_pattern(secret, strlen(secret), NULL) < 0)
		return -EINVAL;
	int r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s->db, "DELETE FROM grants WHERE secret = ?1 AND selector = ?2", &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, secret, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, selector, -1, SQLITE_STATIC);
	r = store_step_done(st);
	if (r == 0 && sqlite3_changes(s->db) == 0)
		r = -ENOENT;
	if (r == 0)
		r = store_audit_tx(s, audit, 0);
out:
	return store_end(s->db, r);
}

static char *store_col_strdup(sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	return t ? strdup(t) : NULL;
}

int store_grants(store *s, struct store_grant **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r =
	    store_prepare(s->db,
	                  "SELECT id, secret, selector, path, mode, uid, gid, flags, created, mac "
	                  "FROM grants ORDER BY id",
	                  &st);
	if (r < 0)
		return r;
	struct store_grant *v = NULL;
	size_t cnt = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_grant *nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			goto fail;
		}
		v = nv;
		struct store_grant *g = &v[cnt];
		memset(g, 0, sizeof(*g));
		cnt++;
		g->id = sqlite3_column_int64(st, 0);
		g->secret = store_col_strdup(st, 1);
		g->selector = store_col_strdup(st, 2);
		bool has_path = sqlite3_column_type(st, 3) != SQLITE_NULL;
		g->path = has_path ? store_col_strdup(st, 3) : NULL;
		if (!g->secret || !g->selector || (has_path && !g->path)) {
			r = -ENOMEM;
			goto fail;
		}
		int64_t mode = sqlite3_column_int64(st, 4);
		int64_t flags = sqlite3_column_int64(st, 7);
		g->mode = (uint32_t)mode;
		g->uid = sqlite3_column_int64(st, 5);
		g->gid = sqlite3_column_int64(st, 6);
		g->flags = (uint32_t)flags;
		g->created = sqlite3_column_int64(st, 8);
		const uint8_t *mac = sqlite3_column_blob(st, 9);
		if (!mac || sqlite3_column_bytes(st, 9) != CRYPT_MAC_BYTES ||
		    mode != (int64_t)g->mode || flags != (int64_t)g->flags) {
			r = -EBADMSG;
			goto fail;
		}
		r = store_grant_mac(s, g, NULL, mac);
		if (r < 0)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		r = store_sqlerr(rc);
		goto fail;
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	store_grants_free(v, cnt);
	return r;
}

void store_grants_free(struct store_grant *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].secret);
		free(v[i].selector);
		free(v[i].path);
	}
	free(v);
}

int store_count(store *s, uint64_t *secrets)
{
	if (!s || !secrets)
		return -EINVAL;
	int64_t c;
	int r = store_pragma_int(s->db, "SELECT count(*) FROM secrets", &c);
	if (r < 0)
		return r;
	*secrets = (uint64_t)c;
	return 0;
}

/* The file in the state directory that /healthz reads past the page cache. */
#define STORE_HEALTH_FILE "health"
#define STORE_HEALTH_BYTES 4096

/* Reads STORE_HEALTH_FILE beside the database with O_DIRECT (where the file system supports it),
 * creating it first (one page, fsync'd). 0 or -errno.
 * Never the database file itself: SQLite locks it with POSIX record locks, which the kernel drops
 * for the whole process as soon as ANY descriptor of that file is closed. Opening and closing the
 * database behind SQLite's back let another process (an operator's sqlite3, a backup) believe it
 * was the last user, checkpoint and delete the WAL that the daemon still writes to: acknowledged
 * writes were lost at the next start. */
static int store_health_probe(const char *dbpath)
{
	char path[PATH_MAX];
	const char *slash = strrchr(dbpath, '/');
	int n = slash ? snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - dbpath), dbpath,
	                         STORE_HEALTH_FILE)
	              : snprintf(path, sizeof(path), "%s", STORE_HEALTH_FILE);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	void *page = NULL;
	if (posix_memalign(&page, STORE_HEALTH_BYTES, STORE_HEALTH_BYTES) != 0)
		return -ENOMEM;
	int r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT | O_NOFOLLOW);
	if (fd < 0 && errno == EINVAL)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		int w = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (w < 0) {
			r = -errno;
			goto out;
		}
		memset(page, 0, STORE_HEALTH_BYTES);
		ssize_t wn = write(w, page, STORE_HEALTH_BYTES);
		int werr = wn < 0 ? errno : 0;
		if (wn == STORE_HEALTH_BYTES && fsync(w) < 0)
			werr = errno;
		close(w);
		if (wn != STORE_HEALTH_BYTES || werr) {
			unlink(path);
			r = werr ? -werr : -ENOSPC;
			goto out;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT | O_NOFOLLOW);
		if (fd < 0 && errno == EINVAL)
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	ssize_t got = pread(fd, page, STORE_HEALTH_BYTES, 0);
	if (got < 0)
		r = -errno;
	else if (got != STORE_HEALTH_BYTES)
		r = -EIO;
	close(fd);
out:
	free(page);
	return r;
}

int store_health(store *s)
{
	if (!s)
		return -EINVAL;
	const char *path = sqlite3_db_filename(s->db, "main");
	if (!path || !*path)
		return -EIO;
	/* The database we hold open must still be the file at its path (not removed or replaced:
	 * what we write would be lost at the next start). */
	int moved = 0;
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK)
		return -EIO;
	if (moved)
		return -ESTALE;
	/* Room to write (a full file system fails every write, audit records included). statvfs by
	 * path: no descriptor of the database is ever opened here (see store_health_probe). */
	struct statvfs vs;
	if (statvfs(path, &vs) < 0)
		return -errno;
	if (vs.f_bavail == 0 || (vs.f_files && vs.f_favail == 0))
		return -ENOSPC;
	/* A read that reaches the device: a failing disk shows here, not only in the next write. */
	int r = store_health_probe(path);
	if (r < 0)
		return r;
	/* The write lock can be taken, and SQLite can read its tables. */
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	int64_t c;
	r = store_pragma_int(s->db, "SELECT count(*) FROM secrets", &c);
	int r2 = store_exec(s->db, "ROLLBACK");
	return r < 0 ? r : r2;
}

/* ---- audit chain ---- */


static int store_audit_msg(struct store_buf *b, uint64_t seq, const struct store_audit_row *r,
                           const uint8_t prev[CRYPT_MAC_BYTES])
{
	bool v3 = r->count > 1;
	store_buf_str(b, v3          ? "secretd/audit/v3"
	                 : r->detail ? "secretd/audit/v2"
	                             : "secretd/audit/v1");
	store_buf_u64(b, seq);
	store_buf_u64(b, (uint64_t)r->time);
	store_buf_str(b, r->actor ? r->actor : "");
	store_buf_u64(b, (uint64_t)r->pid);
	store_buf_str(b, r->exe ? r->exe : "");
	store_buf_str(b, r->action ? r->action : "");
	store_buf_u64(b, r->secret ? 1 : 0);
	store_buf_str(b, r->secret ? r->secret : "");
	store_buf_u64(b, r->version);
	store_buf_str(b, r->result ? r->result : "");
	if (v3) {
		store_buf_u64(b, r->detail ? 1 : 0);
		store_buf_str(b, r->detail ? r->detail : "");
		store_buf_u64(b, r->count);
	} else if (r->detail) {
		store_buf_str(b, r->detail);
	}
	store_buf_bytes(b, prev, CRYPT_MAC_BYTES);
	return b->oom ? -ENOMEM : 0;
}

/* The chain's head as the store last wrote it: (seq, mac), or (0, zeros) for an empty chain. */
static int store_audit_head(store *s, uint64_t *seq, uint8_t mac[CRYPT_MAC_BYTES], bool *found)
{
	uint8_t h[8 + CRYPT_MAC_BYTES];
	size_t n = 0;
	int r = store_meta_get(s->db, store_meta_audit_head, h, sizeof(h), &n);
	*found = r == 0;
	if (r == -EBADMSG && n == 0) { /* no row yet */
		*seq = 0;
		memset(mac, 0, CRYPT_MAC_BYTES);
		return 0;
	}
	if (r < 0)
		return r;
	if (n != sizeof(h))
		return -EBADMSG;
	*seq = store_be64(h);
	memcpy(mac, h + 8, CRYPT_MAC_BYTES);
	return 0;
}

/* Appends n records inside the caller's transaction; version (when non-zero) overrides each
 * record's. The new seq follows both the stored head and the table (a tampered head shows up as
 * a broken link in store_audit_verify rather than stopping every write). */
static int store_audit_write(store *s, const struct store_audit *a, size_t n, uint64_t version)
{
	if (!a || n == 0)
		return 0;
	s->audit_gen++;
	uint64_t seq;
	uint8_t prev[CRYPT_MAC_BYTES];
	bool found;
	int r = store_audit_head(s, &seq, prev, &found);
	if (r < 0)
		return r;
	int64_t maxseq = 0;
	r = store_pragma_int(s->db, "SELECT coalesce(max(seq), 0) FROM audit", &maxseq);
	if (r < 0)
		return r;
	if ((uint64_t)maxseq > seq)
		seq = (uint64_t)maxseq;
	_cleanup_stmt_ sqlite3_stmt *ins = NULL, *hd = NULL;
	r = store_prepare(s->db,
	                  "INSERT INTO audit (seq, time, actor, pid, exe, action, secret, version, "
	                  "result, prev_mac, mac, detail, count) "
	                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	                  &ins);
	if (r < 0)
		return r;
	int64_t now = store_now();
	for (size_t i = 0; i < n; i++) {
		struct store_audit_row row = {
			.time = a[i].time ? a[i].time : now,
			.actor = (char *)(a[i].actor ? a[i].actor : ""),
			.pid = a[i].pid,
			.exe = (char *)(a[i].exe ? a[i].exe : ""),
			.action = (char *)(a[i].action ? a[i].action : ""),
			.secret = (char *)a[i].secret,
			.version = version ? version : a[i].version,
			.result = (char *)(a[i].result ? a[i].result : "ok"),
			.detail = (char *)a[i].detail,
			.count = a[i].count ? a[i].count : 1,
		};
		if (row.count > INT64_MAX)
			return -EINVAL;
		seq++;
		struct store_buf b _cleanup_buf_ = {0};
		r = store_audit_msg(&b, seq, &row, prev);
		if (r < 0)
			return r;
		uint8_t mac[CRYPT_MAC_BYTES];
		crypt_mac(s->audit_key, b.p, b.len, mac);
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, (int64_t)seq);
		sqlite3_bind_int64(ins, 2, row.time);
		sqlite3_bind_text(ins, 3, row.actor, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 4, row.pid);
		sqlite3_bind_text(ins, 5, row.exe, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 6, row.action, -1, SQLITE_STATIC);
		if (row.secret)
			sqlite3_bind_text(ins, 7, row.secret, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(ins, 7);
		sqlite3_bind_int64(ins, 8, (int64_t)row.version);
		sqlite3_bind_text(ins, 9, row.result, -1, SQLITE_STATIC);
		sqlite3_bind_blob(ins, 10, prev, CRYPT_MAC_BYTES, SQLITE_TRANSIENT);
		sqlite3_bind_blob(ins, 11, mac, CRYPT_MAC_BYTES, SQLITE_TRANSIENT);
		if (row.detail)
			sqlite3_bind_text(ins, 12, row.detail, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(ins, 12);
		sqlite3_bind_int64(ins, 13, (int64_t)row.count);
		r = store_step_done(ins);
		if (r < 0)
			return r;
		memcpy(prev, mac, CRYPT_MAC_BYTES);
	}
	struct store_buf h _cleanup_buf_ = {0};
	store_buf_u64(&h, seq);
	store_buf_add(&h, prev, CRYPT_MAC_BYTES);
	if (h.oom)
		return -ENOMEM;
	r = store_prepare(s->db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", &hd);
	if (r < 0)
		return r;
	sqlite3_bind_text(hd, 1, store_meta_audit_head, -1, SQLITE_STATIC);
	sqlite3_bind_blob(hd, 2, h.p, (int)h.len, SQLITE_STATIC);
	return store_step_done(hd);
}

static int store_audit_tx(store *s, const struct store_audit *a, uint64_t version)
{
	return store_audit_write(s, a, a ? 1 : 0, version);
}

/* ---- audit checkpoint (retention) ---- */

/* meta 'audit.checkpoint': seq (8) | mac (32) | pruned (8) | time (8) | tag (32), tag a keyed MAC
 * over the rest made with the audit key. */
#define STORE_CP_LEN (8 + CRYPT_MAC_BYTES + 8 + 8 + CRYPT_MAC_BYTES)

static int store_cp_tag(store *s, const struct store_audit_checkpoint *cp, uint8_t *tag,
                        const uint8_t *check)
{
	struct store_buf b _cleanup_buf_ = {0};
	store_buf_str(&b, "secretd/audit-checkpoint/v1");
	store_buf_u64(&b, cp->seq);
	store_buf_bytes(&b, cp->mac, CRYPT_MAC_BYTES);
	store_buf_u64(&b, cp->pruned);
	store_buf_u64(&b, (uint64_t)cp->time);
	if (b.oom)
		return -ENOMEM;
	if (check)
		return crypt_mac_verify(s->audit_key, b.p, b.len, check) < 0 ? -EBADMSG : 0;
	crypt_mac(s->audit_key, b.p, b.len, tag);
	return 0;
}

/* The checkpoint inside the caller's transaction: 0 with *found; -EBADMSG when it is malformed or
 * its tag was not made with the audit key. */
static int store_cp_read(store *s, struct store_audit_checkpoint *cp, bool *found)
{
	uint8_t v[STORE_CP_LEN];
	size_t n = 0;
	memset(cp, 0, sizeof(*cp));
	*found = false;
	int r = store_meta_get(s->db, store_meta_audit_cp, v, sizeof(v), &n);
	if (r == -EBADMSG && n == 0)
		return 0; /* no row (or an oversized one: then n stays 0 too, see below) */
	if (r < 0)
		return r;
	*found = true;
	if (n != sizeof(v))
		return -EBADMSG;
	cp->seq = store_be64(v);
	memcpy(cp->mac, v + 8, CRYPT_MAC_BYTES);
	cp->pruned = store_be64(v + 8 + CRYPT_MAC_BYTES);
	cp->time = (int64_t)store_be64(v + 16 + CRYPT_MAC_BYTES);
	return store_cp_tag(s, cp, NULL, v + 24 + CRYPT_MAC_BYTES);
}

static int store_cp_write(store *s, const struct store_audit_checkpoint *cp)
{
	uint8_t tag[CRYPT_MAC_BYTES];
	int r = store_cp_tag(s, cp, tag, NULL);
	if (r < 0)
		return r;
	struct store_buf b _cleanup_buf_ = {0};
	store_buf_u64(&b, cp->seq);
	store_buf_add(&b, cp->mac, CRYPT_MAC_BYTES);
	store_buf_u64(&b, cp->pruned);
	store_buf_u64(&b, (uint64_t)cp->time);
	store_buf_add(&b, tag, CRYPT_MAC_BYTES);
	if (b.oom)
		return -ENOMEM;
	return store_meta_put(s->db, store_meta_audit_cp, b.p, b.len);
}

int store_audit_checkpoint(store *s, struct store_audit_checkpoint *out, bool *found)
{
	if (!s || !out || !found)
		return -EINVAL;
	return store_cp_read(s, out, found);
}

static int store_audit_prune_tx(store *s, int64_t before, uint64_t keep_max, size_t batch,
                                uint64_t *pruned, bool *more)
{
	struct store_audit_checkpoint cp;
	bool found;
	int r = store_cp_read(s, &cp, &found);
	if (r < 0)
		return r;
	int64_t first = 0, last = 0;
	r = store_pragma_int(s->db, "SELECT coalesce(min(seq), 0) FROM audit", &first);
	if (r == 0)
		r = store_pragma_int(s->db, "SELECT coalesce(max(seq), 0) FROM audit", &last);
	if (r < 0)
		return r;
	if (first == 0 || last <= first)
		return 0; /* the last record (the head) is never pruned */
	int64_t cut = 0; /* prune seq <= cut */
	if (before > 0) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		r = store_prepare(s->db, "SELECT coalesce(min(seq), ?2 + 1) - 1 FROM audit "
		                         "WHERE time >= ?1", &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, before);
		sqlite3_bind_int64(st, 2, last);
		if (sqlite3_step(st) != SQLITE_ROW)
			return -EIO;
		cut = sqlite3_column_int64(st, 0);
	}
	if (keep_max > 0 && (uint64_t)last > keep_max && last - (int64_t)keep_max > cut)
		cut = last - (int64_t)keep_max;
	if (cut >= last)
		cut = last - 1;
	int64_t want = cut;
	if (cut - first + 1 > (int64_t)batch)
		cut = first + (int64_t)batch - 1;
	if (cut < first)
		return 0;
	*more = want > cut;
	_cleanup_stmt_ sqlite3_stmt *mst = NULL, *del = NULL;
	r = store_prepare(s->db, "SELECT mac FROM audit WHERE seq = ?1", &mst);
	if (r < 0)
		return r;
	sqlite3_bind_int64(mst, 1, cut);
	if (sqlite3_step(mst) != SQLITE_ROW || sqlite3_column_bytes(mst, 0) != CRYPT_MAC_BYTES)
		return -EBADMSG; /* a gap where the cut falls: verify names it; nothing pruned */
	struct store_audit_checkpoint ncp = {.seq = (uint64_t)cut, .time = store_now()};
	memcpy(ncp.mac, sqlite3_column_blob(mst, 0), CRYPT_MAC_BYTES);
	r = store_prepare(s->db, "DELETE FROM audit WHERE seq <= ?1", &del);
	if (r < 0)
		return r;
	sqlite3_bind_int64(del, 1, cut);
	r = store_step_done(del);
	if (r < 0)
		return r;
	uint64_t n = (uint64_t)sqlite3_changes(s->db);
	ncp.pruned = cp.pruned + n;
	r = store_cp_write(s, &ncp);
	if (r < 0)
		return r;
	*pruned = n;
	return 0;
}

int store_audit_prune(store *s, int64_t before, uint64_t keep_max, size_t batch,
                      uint64_t *pruned, bool *more)
{
	if (!s || !pruned || !more || batch == 0)
		return -EINVAL;
	*pruned = 0;
	*more = false;
	if (before <= 0 && keep_max == 0)
		return 0;
	int r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = store_end(s->db, store_audit_prune_tx(s, before, keep_max, batch, pruned, more));
	if (r < 0) {
		*pruned = 0;
		*more = false;
	}
	return r;
}

int store_audit_append(store *s, const struct store_audit *recs, size_t n)
{
	if (!s || (!recs && n))
		return -EINVAL;
	if (n == 0)
		return 0;
	int r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	return store_end(s->db, store_audit_write(s, recs, n, 0));
}

static int store_audit_row_read(sqlite3_stmt *st, struct store_audit_row *a)
{
	memset(a, 0, sizeof(*a));
	a->seq = (uint64_t)sqlite3_column_int64(st, 0);
	a->time = sqlite3_column_int64(st, 1);
	a->actor = store_col_strdup(st, 2);
	a->pid = sqlite3_column_int64(st, 3);
	a->exe = store_col_strdup(st, 4);
	a->action = store_col_strdup(st, 5);
	bool has_secret = sqlite3_column_type(st, 6) != SQLITE_NULL;
	a->secret = has_secret ? store_col_strdup(st, 6) : NULL;
	a->version = (uint64_t)sqlite3_column_int64(st, 7);
	a->result = store_col_strdup(st, 8);
	bool has_detail = sqlite3_column_type(st, 9) != SQLITE_NULL;
	a->detail = has_detail ? store_col_strdup(st, 9) : NULL;
	int64_t count = sqlite3_column_int64(st, 10);
	a->count = count >= 1 ? (uint64_t)count : 0; /* 0: never written so (fails its MAC) */
	if (!a->actor || !a->exe || !a->action || !a->result || (has_secret && !a->secret) ||
	    (has_detail && !a->detail))
		return -ENOMEM;
	return 0;
}

static void store_audit_row_clear(struct store_audit_row *a)
{
	free(a->actor);
	free(a->exe);
	free(a->action);
	free(a->secret);
	free(a->result);
	free(a->detail);
	memset(a, 0, sizeof(*a));
}

int store_audit_list(store *s, uint64_t after_seq, int64_t since_time, size_t limit,
                     struct store_audit_row **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "SELECT seq, time, actor, pid, exe, action, secret, version, result, detail, "
	                      "count FROM audit WHERE seq > ?1 AND time >= ?2 ORDER BY seq LIMIT ?3",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, (int64_t)after_seq);
	sqlite3_bind_int64(st, 2, since_time);
	sqlite3_bind_int64(st, 3, limit ? (int64_t)limit : -1);
	struct store_audit_row *v = NULL;
	size_t cnt = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_audit_row *nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			goto fail;
		}
		v = nv;
		r = store_audit_row_read(st, &v[cnt++]);
		if (r < 0)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		r = store_sqlerr(rc);
		goto fail;
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	store_audit_list_free(v, cnt);
	return r;
}

void store_audit_list_free(struct store_audit_row *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_audit_row_clear(&v[i]);
	free(v);
}

/* ---- audit anchor ---- */

_Static_assert(ANCHOR_MAC_BYTES == CRYPT_MAC_BYTES, "an anchor holds an audit MAC");

uint64_t store_audit_gen(const store *s)
{
	return s ? s->audit_gen : 0;
}

static int store_anchor_tag(store *s, uint64_t seq, const uint8_t *mac, uint8_t *tag,
                            const uint8_t *check)
{
	struct store_buf b _cleanup_buf_ = {0};
	store_buf_str(&b, "secretd/anchor/v1");
	store_buf_u64(&b, seq);
	store_buf_bytes(&b, mac, CRYPT_MAC_BYTES);
	if (b.oom)
		return -ENOMEM;
	if (check)
		return crypt_mac_verify(s->audit_key, b.p, b.len, check);
	crypt_mac(s->audit_key, b.p, b.len, tag);
	return 0;
}

int store_audit_anchor(store *s, struct anchor *out)
{
	if (!s || !out)
		return -EINVAL;
	bool found;
	memset(out, 0, sizeof(*out));
	int r = store_audit_head(s, &out->seq, out->mac, &found);
	if (r < 0)
		return r;
	return store_anchor_tag(s, out->seq, out->mac, out->tag, NULL);
}

int store_audit_anchor_check(store *s, const struct anchor *a)
{
	if (!s || !a)
		return -EINVAL;
	if (store_anchor_tag(s, a->seq, a->mac, NULL, a->tag) < 0)
		return -EBADMSG;
	if (a->seq == 0)
		return 0;
	struct store_audit_checkpoint cp;
	bool found;
	int r = store_cp_read(s, &cp, &found);
	if (r == -EBADMSG)
		return -ESTALE; /* audit verify names the checkpoint */
	if (r < 0)
		return r;
	if (found && a->seq < cp.seq)
		return 0; /* pruned since: the signed checkpoint is past it */
	if (found && a->seq == cp.seq)
		return sodium_memcmp(cp.mac, a->mac, CRYPT_MAC_BYTES) == 0 ? 0 : -ESTALE;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s->db, "SELECT mac FROM audit WHERE seq = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, (int64_t)a->seq);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ESTALE;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	const void *mac = sqlite3_column_blob(st, 0);
	if (!mac || sqlite3_column_bytes(st, 0) != CRYPT_MAC_BYTES ||
	    sodium_memcmp(mac, a->mac, CRYPT_MAC_BYTES) != 0)
		return -ESTALE;
	return 0;
}

int store_audit_verify_ex(store *s, struct store_audit_verify_info *vi)
{
	if (!s || !vi)
		return -EINVAL;
	memset(vi, 0, sizeof(*vi));
	int r = store_exec(s->db, "BEGIN");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	uint8_t prev[CRYPT_MAC_BYTES] = {0};
	uint64_t expect = 1;
	struct store_audit_checkpoint cp;
	bool found;
	r = store_cp_read(s, &cp, &found);
	if (r == -EBADMSG) {
		vi->bad_seq = cp.seq + 1;
		vi->reason = "retention checkpoint altered or not made with this store's key";
		goto out;
	}
	if (r < 0)
		goto out;
	if (found) {
		vi->checkpoint = true;
		vi->checkpoint_seq = cp.seq;
		vi->checkpoint_time = cp.time;
		vi->pruned = cp.pruned;
		memcpy(prev, cp.mac, CRYPT_MAC_BYTES);
		expect = cp.seq + 1;
	}
	r = store_prepare(s->db,
	                  "SELECT seq, time, actor, pid, exe, action, secret, version, result, "
	                  "detail, count, prev_mac, mac FROM audit ORDER BY seq",
	                  &st);
	if (r < 0)
		goto out;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_audit_row row;
		r = store_audit_row_read(st, &row);
		const uint8_t *pm = sqlite3_column_blob(st, 11);
		const uint8_t *mac = sqlite3_column_blob(st, 12);
		bool sizes = sqlite3_column_bytes(st, 11) == CRYPT_MAC_BYTES &&
		             sqlite3_column_bytes(st, 12) == CRYPT_MAC_BYTES && pm && mac;
		struct store_buf b _cleanup_buf_ = {0};
		if (r == 0)
			r = store_audit_msg(&b, row.seq, &row, sizes ? pm : prev);
		uint64_t seq = row.seq, count = row.count;
		bool refused = r == 0 && strcmp(row.result, STORE_AUDIT_REFUSED) == 0;
		store_audit_row_clear(&row);
		if (r < 0)
			goto out;
		if (seq != expect) {
			vi->bad_seq = expect;
			vi->reason = seq > expect ? (found && expect == cp.seq + 1
			                                     ? "records missing after the retention checkpoint"
			                                     : "record missing (sequence gap)")
			                          : "sequence out of order";
		} else if (!sizes || crypt_mac_verify(s->audit_key, b.p, b.len, mac) < 0) {
			vi->bad_seq = seq;
			vi->reason = "MAC mismatch (record altered, moved, or written without the key)";
		} else if (sodium_memcmp(pm, prev, CRYPT_MAC_BYTES) != 0) {
			vi->bad_seq = seq;
			vi->reason = found && seq == cp.seq + 1
			                     ? "first record after the retention checkpoint does not link to it"
			                     : "previous-record link mismatch";
		}
		if (vi->reason) {
			r = -EBADMSG;
			goto out;
		}
		memcpy(prev, mac, CRYPT_MAC_BYTES);
		expect++;
		vi->records++;
		vi->events += count;
		if (refused)
			vi->refused += count;
	}
	if (rc != SQLITE_DONE) {
		r = store_sqlerr(rc);
		goto out;
	}
	uint64_t hseq, lastseq = expect - 1;
	uint8_t hmac[CRYPT_MAC_BYTES];
	bool hfound;
	r = store_audit_head(s, &hseq, hmac, &hfound);
	if (r < 0)
		goto out;
	if (lastseq && !hfound) {
		vi->bad_seq = lastseq;
		vi->reason = "chain head missing";
		r = -EBADMSG;
	} else if (hseq > lastseq) {
		vi->bad_seq = lastseq + 1;
		vi->reason = "records missing at the end of the chain";
		r = -EBADMSG;
	} else if (hseq != lastseq || sodium_memcmp(hmac, prev, CRYPT_MAC_BYTES) != 0) {
		vi->bad_seq = lastseq;
		vi->reason = "chain head does not match the last record";
		r = -EBADMSG;
	}
out:
	(void)store_exec(s->db, "ROLLBACK");
	if (vi->reason)
		r = -EBADMSG;
	return r;
}

int store_audit_verify(store *s, uint64_t *records, uint64_t *bad_seq, const char **reason)
{
	if (!s || !records || !bad_seq || !reason)
		return -EINVAL;
	struct store_audit_verify_info vi;
	int r = store_audit_verify_ex(s, &vi);
	*records = vi.records;
	*bad_seq = vi.bad_seq;
	*reason = vi.reason;
	return r;
}

/* ---- versions ---- */

int store_put_ex(store *s, const char *name, const uint8_t *val, size_t len,
                 const struct store_put_opts *o, const struct store_audit *audit,
                 uint64_t *version_out)
{
	if (version_out)
		*version_out = 0;
	if (!s || (!val && len))
		return -EINVAL;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	if (len > s->max_value)
		return -EFBIG;
	if (o && (o->keep < 0 || o->keep > STORE_KEEP_MAX || o->expires < -1))
		return -EINVAL;
	const uint8_t *kek = store_kek_find(s, s->kek_current);
	if (!kek)
		return -EBADMSG;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	uint64_t v = 0;
	bool life_changed = false;
	r = store_put_tx(s, name, val, len, kek, o, &v, &life_changed);
	if (r == 0)
		r = store_audit_tx(s, audit, v);
	r = store_end(s->db, r);
	if (r == 0 && life_changed)
		s->life_gen++;
	if (r == 0 && version_out)
		*version_out = v;
	return r;
}

int store_rollback(store *s, const char *name, uint64_t version, const struct store_audit *audit,
                   uint64_t *version_out)
{
	if (version_out)
		*version_out = 0;
	if (!s || version == 0)
		return -EINVAL;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	const uint8_t *kek = store_kek_find(s, s->kek_current);
	if (!kek)
		return -EBADMSG;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_crypt_ uint8_t *val = NULL;
	size_t len = 0;
	uint64_t v = 0;
	struct store_row row;
	r = store_secret_load(s, name, &row);
	if (r == 0 && version > row.current)
		r = -ENOENT;
	if (r == 0)
		r = store_get_version(s, name, &row, version, &val, &len);
	if (r == 0)
		r = store_put_tx(s, name, val, len, kek, NULL, &v, NULL);
	if (r == 0)
		r = store_audit_tx(s, audit, v);
	r = store_end(s->db, r);
	if (r == 0 && version_out)
		*version_out = v;
	return r;
}

/* ---- generated values ---- */

static const char *const store_charsets[] = {
	[STORE_CHARSET_ALNUM] = "alnum",
	[STORE_CHARSET_HEX] = "hex",
	[STORE_CHARSET_BASE64] = "base64",
	[STORE_CHARSET_ASCII] = "ascii",
};

int store_charset_parse(const char *str, enum store_charset *out)
{
	for (size_t i = 0; str && i < sizeof(store_charsets) / sizeof(store_charsets[0]); i++)
		if (strcmp(str, store_charsets[i]) == 0) {
			*out = (enum store_charset)i;
			return 0;
		}
	return -EINVAL;
}

const char *store_charset_name(enum store_charset c)
{
	return (size_t)c < sizeof(store_charsets) / sizeof(store_charsets[0]) ? store_charsets[c]
	                                                                     : "alnum";
}

int store_generate(enum store_charset cs, size_t length, uint8_t **val)
{
	static const char alnum[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static const char hex[] = "0123456789abcdef";
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char ascii[95];
	const char *set;
	switch (cs) {
	case STORE_CHARSET_ALNUM:
		set = alnum;
		break;
	case STORE_CHARSET_HEX:
		set = hex;
		break;
	case STORE_CHARSET_BASE64:
		set = b64;
		break;
	case STORE_CHARSET_ASCII:
		for (int c = 0x21; c <= 0x7e; c++)
			ascii[c - 0x21] = (char)c;
		ascii[0x7e - 0x21 + 1] = '\0';
		set = ascii;
		break;
	default:
		return -EINVAL;
	}
	if (!val || length == 0 || length > STORE_GEN_LENGTH_MAX)
		return -EINVAL;
	uint32_t n = (uint32_t)strlen(set);
	uint8_t *v = crypt_alloc(length);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < length; i++)
		v[i] = (uint8_t)set[randombytes_uniform(n)]; /* unbiased */
	*val = v;
	return 0;
}

/* ---- lifecycle: expiry and schedules ---- */

static int store_life_mac(store *s, int64_t id, const char *name, const struct store_lifecycle *l,
                          uint8_t mac[CRYPT_MAC_BYTES], const uint8_t *check)
{
	struct store_buf b _cleanup_buf_ = {0};
	store_buf_str(&b, "secretd/life/v1");
	store_buf_u64(&b, (uint64_t)id);
	store_buf_str(&b, name);
	store_buf_u64(&b, (uint64_t)l->expires);
	store_buf_u64(&b, (uint64_t)l->every);
	store_buf_u64(&b, (uint64_t)l->next);
	store_buf_u64(&b, l->length);
	store_buf_str(&b, store_charset_name(l->charset));
	store_buf_u64(&b, l->exec ? 1 : 0);
	store_buf_str(&b, l->exec ? l->exec : "");
	if (b.oom)
		return -ENOMEM;
	if (check)
		return crypt_mac_verify(s->life_key, b.p, b.len, check);
	crypt_mac(s->life_key, b.p, b.len, mac);
	return 0;
}

/* Fills l from a lifecycle row (columns: expires, every, next, length, charset, exec, mac) and
 * checks its MAC. l->exec malloc'd. */
static int store_life_row(store *s, sqlite3_stmt *st, int col, int64_t id, const char *name,
                          struct store_lifecycle *l)
{
	l->expires = sqlite3_column_int64(st, col);
	l->every = sqlite3_column_int64(st, col + 1);
	l->next = sqlite3_column_int64(st, col + 2);
	int64_t len = sqlite3_column_int64(st, col + 3);
	const char *cs = (const char *)sqlite3_column_text(st, col + 4);
	bool has_exec = sqlite3_column_type(st, col + 5) != SQLITE_NULL;
	l->exec = has_exec ? store_col_strdup(st, col + 5) : NULL;
	if (has_exec && !l->exec)
		return -ENOMEM;
	const uint8_t *mac = sqlite3_column_blob(st, col + 6);
	if (len < 0 || len > STORE_GEN_LENGTH_MAX || !mac ||
	    sqlite3_column_bytes(st, col + 6) != CRYPT_MAC_BYTES ||
	    store_charset_parse(cs, &l->charset) < 0)
		return -EBADMSG;
	l->length = (uint32_t)len;
	return store_life_mac(s, id, name, l, NULL, mac);
}

/* Loads secret id's lifecycle (defaults when it has none). */
static int store_life_load(store *s, int64_t id, const char *name, struct store_lifecycle *l)
{
	*l = (struct store_lifecycle){.length = 32, .charset = STORE_CHARSET_ALNUM};
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "SELECT expires, every, next, length, charset, exec, mac "
	                      "FROM lifecycle WHERE secret_id = ?1",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	return store_life_row(s, st, 0, id, name, l);
}

/* Writes (or, with neither expiry nor schedule, deletes) secret id's lifecycle row. */
static int store_life_write(store *s, int64_t id, const char *name, const struct store_lifecycle *l)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;
	if (!l->expires && !l->every) {
		r = store_prepare(s->db, "DELETE FROM lifecycle WHERE secret_id = ?1", &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, id);
		return store_step_done(st);
	}
	uint8_t mac[CRYPT_MAC_BYTES];
	r = store_life_mac(s, id, name, l, mac, NULL);
	if (r < 0)
		return r;
	r = store_prepare(s->db,
	                  "INSERT OR REPLACE INTO lifecycle (secret_id, expires, every, next, "
	                  "length, charset, exec, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	                  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, l->expires);
	sqlite3_bind_int64(st, 3, l->every);
	sqlite3_bind_int64(st, 4, l->next);
	sqlite3_bind_int64(st, 5, l->length);
	sqlite3_bind_text(st, 6, store_charset_name(l->charset), -1, SQLITE_STATIC);
	if (l->exec)
		sqlite3_bind_text(st, 7, l->exec, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_blob(st, 8, mac, sizeof(mac), SQLITE_TRANSIENT);
	return store_step_done(st);
}

/* Sets (expires > 0) or clears (0) secret id's expiry, keeping its schedule. Writes nothing
 * when it is already so; *changed (may be NULL) says whether it changed. */
static int store_life_set_expiry(store *s, int64_t id, const char *name, int64_t expires,
                                 bool *changed)
{
	struct store_lifecycle l;
	int r = store_life_load(s, id, name, &l);
	if (r == 0 && l.expires != expires) {
		l.expires = expires;
		r = store_life_write(s, id, name, &l);
		if (r == 0 && changed)
			*changed = true;
	}
	free(l.exec);
	return r;
}

int store_expiry(store *s, const char *name, int64_t *expires)
{
	if (!s || !expires)
		return -EINVAL;
	*expires = 0;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s->db, "SELECT id FROM secrets WHERE name = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	struct store_lifecycle l;
	r = store_life_load(s, sqlite3_column_int64(st, 0), name, &l);
	free(l.exec);
	if (r == 0)
		*expires = l.expires;
	return r;
}

int store_schedule_set(store *s, const char *name, int64_t every, uint32_t length,
                       enum store_charset cs, const char *exec, const struct store_audit *audit)
{
	if (!s || every < 0 || (every && (length == 0 || length > STORE_GEN_LENGTH_MAX)) ||
	    (size_t)cs >= sizeof(store_charsets) / sizeof(store_charsets[0]) ||
	    (exec && (!*exec || strlen(exec) > 4096)))
		return -EINVAL;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	struct store_row row;
	struct store_lifecycle l = {0};
	r = store_secret_load(s, name, &row);
	if (r == 0)
		r = store_life_load(s, row.id, name, &l);
	if (r == 0) {
		free(l.exec);
		l.exec = exec && every ? strdup(exec) : NULL;
		if (exec && every && !l.exec)
			r = -ENOMEM;
		l.every = every;
		l.next = every ? store_now() + every : 0;
		l.length = every ? length : 32;
		l.charset = every ? cs : STORE_CHARSET_ALNUM;
	}
	if (r == 0)
		r = store_life_write(s, row.id, name, &l);
	if (r == 0)
		r = store_audit_tx(s, audit, 0);
	free(l.exec);
	r = store_end(s->db, r);
	if (r == 0)
		s->life_gen++;
	return r;
}

int store_schedule_next(store *s, const char *name, int64_t next)
{
	if (!s)
		return -EINVAL;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	struct store_row row;
	struct store_lifecycle l = {0};
	r = store_secret_load(s, name, &row);
	if (r == 0)
		r = store_life_load(s, row.id, name, &l);
	if (r == 0 && !l.every)
		r = -ENOENT;
	if (r == 0) {
		l.next = next;
		r = store_life_write(s, row.id, name, &l);
	}
	free(l.exec);
	r = store_end(s->db, r);
	if (r == 0)
		s->life_gen++;
	return r;
}

int store_lifecycles(store *s, struct store_lifecycle **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "SELECT s.id, s.name, l.expires, l.every, l.next, l.length, "
	                      "l.charset, l.exec, l.mac FROM lifecycle l "
	                      "JOIN secrets s ON s.id = l.secret_id ORDER BY s.name",
	                      &st);
	if (r < 0)
		return r;
	struct store_lifecycle *v = NULL;
	size_t cnt = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_lifecycle *nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			goto fail;
		}
		v = nv;
		struct store_lifecycle *l = &v[cnt++];
		memset(l, 0, sizeof(*l));
		l->name = store_col_strdup(st, 1);
		if (!l->name) {
			r = -ENOMEM;
			goto fail;
		}
		r = store_life_row(s, st, 2, sqlite3_column_int64(st, 0), l->name, l);
		if (r < 0)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		r = store_sqlerr(rc);
		goto fail;
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	store_lifecycles_free(v, cnt);
	return r;
}

void store_lifecycles_free(struct store_lifecycle *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].exec);
	}
	free(v);
}

uint64_t store_lifecycle_gen(store *s)
{
	return s ? s->life_gen : 0;
}

/* ---- rekey ---- */

/* Re-seals the MAC root and every KEK generation under new_root and records how the new root key
 * is obtained, in one transaction. Secrets, versions and data keys are untouched. */
static int store_rekey_tx(store *s, const uint8_t *new_root, const uint8_t *salt, uint64_t ops,
			  uint64_t mem)
{
	uint8_t w[STORE_WRAPPED_KEY_BYTES];
	size_t wlen;
	int r = store_meta_get(s->db, "mac.root", w, sizeof(w), &wlen);
	if (r < 0)
		return r;
	if (wlen != sizeof(w))
		return -EBADMSG;
	_cleanup_crypt_ uint8_t *mroot = crypt_alloc(CRYPT_KEY_BYTES);
	if (!mroot)
		return -ENOMEM;
	if (crypt_open(s->root_key, (const uint8_t *)store_ad_macroot, strlen(store_ad_macroot), w,
		       wlen, mroot) < 0)
		return -EKEYREJECTED;
	r = crypt_seal(new_root, (const uint8_t *)store_ad_macroot, strlen(store_ad_macroot), mroot,
		       CRYPT_KEY_BYTES, w);
	if (r == 0)
		r = store_meta_put(s->db, "mac.root", w, sizeof(w));
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *up = NULL;
	r = store_prepare(s->db, "UPDATE keks SET wrapped = ?1 WHERE id = ?2", &up);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->nkeks; i++) {
		char ad[32];
		store_ad_kek(ad, sizeof(ad), s->keks[i].id);
		r = crypt_seal(new_root, (const uint8_t *)ad, strlen(ad), s->keks[i].key,
			       CRYPT_KEY_BYTES, w);
		if (r < 0)
			return r;
		sqlite3_reset(up);
		sqlite3_bind_blob(up, 1, w, sizeof(w), SQLITE_TRANSIENT);
		sqlite3_bind_int64(up, 2, (int64_t)s->keks[i].id);
		r = store_step_done(up);
		if (r < 0)
			return r;
	}
	r = store_exec(s->db, "DELETE FROM meta WHERE key IN ('kdf.salt', 'kdf.opslimit', "
			      "'kdf.memlimit')");
	if (r < 0)
		return r;
	if (!salt)
		return store_meta_put(s->db, "root.kind", STORE_KIND_KEYFILE,
				      strlen(STORE_KIND_KEYFILE));
	r = store_meta_put(s->db, "root.kind", STORE_KIND_ARGON, strlen(STORE_KIND_ARGON));
	if (r == 0)
		r = store_meta_put(s->db, "kdf.salt", salt, CRYPT_SALT_BYTES);
	if (r == 0)
		r = store_meta_put_u64(s->db, "kdf.opslimit", ops);
	if (r == 0)
		r = store_meta_put_u64(s->db, "kdf.memlimit", mem);
	return r;
}

int store_rekey(store *s, const char *new_key_file, const char *new_pass_file)
{
	if (!s || (!new_key_file == !new_pass_file))
		return -EINVAL;
	uint8_t *new_root = NULL;
	uint8_t salt[CRYPT_SALT_BYTES];
	uint64_t ops = 0, mem = 0;
	bool created_key = false;
	int r;
	if (new_pass_file) {
		const char *t = getenv("SECRETD_KDF_TEST");
		bool fast = t && strcmp(t, "1") == 0;
		ops = fast ? crypto_pwhash_OPSLIMIT_MIN : crypto_pwhash_OPSLIMIT_INTERACTIVE;
		mem = fast ? crypto_pwhash_MEMLIMIT_MIN : crypto_pwhash_MEMLIMIT_INTERACTIVE;
		randombytes_buf(salt, sizeof(salt));
		r = crypt_passphrase_derive(new_pass_file, salt, ops, (size_t)mem, &new_root);
	} else {
		r = crypt_keyfile_create(new_key_file);
		if (r == 0) {
			created_key = true;
			r = crypt_keyfile_read(new_key_file, &new_root);
		}
	}
	if (r == 0) {
		r = store_exec(s->db, "BEGIN IMMEDIATE");
		if (r == 0) {
			r = store_rekey_tx(s, new_root, new_pass_file ? salt : NULL, ops, mem);
			r = store_end(s->db, r);
		}
	}
	if (r < 0) {
		crypt_free(new_root);
		if (created_key)
			unlink(new_key_file);
		return r;
	}
	crypt_free(s->root_key);
	s->root_key = new_root;
	return 0;
}
