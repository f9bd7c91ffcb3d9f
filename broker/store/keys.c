/* keys.c: the key hierarchy: the root key (a key file or Argon2id of a passphrase) seals the MAC
 * root and each key generation (KEK); KEKs wrap the data keys. Key rotation (in batches, resumed
 * after a crash) and rekey (a new root key). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "broker/store/store_int.h"
#include "common/cleanup.h"
#include "common/limits.h"

/* ---- keys ---- */

void store_keys_free(store *s)
{
	for (size_t i = 0; i < s->nkeks; i++)
		crypt_free(s->keks[i].key);
	free(s->keks);
	s->keks = NULL;
	s->nkeks = 0;
	s->kek_current = 0;
}

const uint8_t *store_kek_find(const store *s, uint64_t id)
{
	for (size_t i = 0; i < s->nkeks; i++)
		if (s->keks[i].id == id)
			return s->keks[i].key;
	return NULL;
}

/* Unseals every KEK generation with the root key into s->keks. -EBADMSG if one fails (the root
 * key was already proven right by the MAC root, so this is tampering). */
int store_keks_load(store *s)
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
int store_kek_add(store *s, uint64_t *id)
{
	_cleanup_secret_bytes_ uint8_t *k = crypt_alloc(CRYPT_KEY_BYTES);
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
int store_mac_keys_load(store *s)
{
	uint8_t w[STORE_WRAPPED_KEY_BYTES];
	size_t wlen;
	int r = store_meta_get(s->db, "mac.root", w, sizeof(w), &wlen);
	if (r < 0)
		return r;
	if (wlen != sizeof(w))
		return -EBADMSG;
	_cleanup_secret_bytes_ uint8_t *mroot = crypt_alloc(CRYPT_KEY_BYTES);
	if (!mroot)
		return -ENOMEM;
	if (crypt_open(s->root_key, (const uint8_t *)store_ad_macroot, strlen(store_ad_macroot), w,
	               wlen, mroot) < 0)
		return -EKEYREJECTED;
	r = crypt_subkey(mroot, STORE_SUBKEY_HEAD, STORE_SUBKEY_HEAD_CTX, &s->head_key);
	if (r < 0)
		return r;
	r = crypt_subkey(mroot, STORE_SUBKEY_GRANT, STORE_SUBKEY_GRANT_CTX, &s->grant_key);
	if (r == 0)
		r = crypt_subkey(mroot, STORE_SUBKEY_AUDIT, STORE_SUBKEY_AUDIT_CTX, &s->audit_key);
	if (r == 0)
		r = crypt_subkey(mroot, STORE_SUBKEY_LIFE, STORE_SUBKEY_LIFE_CTX, &s->life_key);
	if (r == 0)
		r = crypt_subkey(mroot, STORE_SUBKEY_CONT, STORE_SUBKEY_CONT_CTX, &s->cont_key);
	if (r == 0)
		r = crypt_subkey(mroot, STORE_SUBKEY_LABEL, STORE_SUBKEY_LABEL_CTX, &s->label_key);
	if (r == 0) {
		crypt_free(s->orig_key); /* a keyring adopted: derived again */
		s->orig_key = NULL;
		r = crypt_subkey(mroot, STORE_SUBKEY_ORIGIN, STORE_SUBKEY_ORIGIN_CTX, &s->orig_key);
	}
	return r;
}

/* Reads or derives the root key into s->root_key as meta.root.kind says. */
int store_root_key_load(store *s, const struct store_opts *o)
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

int store_keks_gc(store *s)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "DELETE FROM keks WHERE id <> (SELECT max(id) FROM keks) "
	                      "AND id NOT IN (SELECT kek_id FROM versions) "
	                      "AND id NOT IN (SELECT kek_id FROM template_versions)",
	                      &st);
	if (r < 0)
		return r;
	return store_step_done(st);
}

int store_init_keys(store *s, const uint8_t *salt, uint64_t ops, uint64_t mem)
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
	_cleanup_secret_bytes_ uint8_t *mroot = crypt_alloc(CRYPT_KEY_BYTES);
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
	uint8_t nwk[STORE_WRAPPED_KEY_BYTES];
	r = store_envelope_rewrap(&store_envelope_secret, v->secret_id, v->version,
	                          store_kek_find(s, old_id), old_id, wk, wklen, new_kek, new_id,
	                          nwk);
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
		                     (uint64_t)sqlite3_column_int64(st, 2),
		                     sqlite3_column_int64(st, 3), sqlite3_column_blob(st, 4),
		                     (size_t)sqlite3_column_bytes(st, 4));
		if (r < 0)
			return r;
	}
	return rc == SQLITE_DONE ? 0 : store_sqlerr(rc);
}

int store_key_rotate_begin(store *s, const struct store_audit *audit, uint64_t *kek_id,
                           bool *resumed)
{
	return store_key_rotate_begin_pub(s, audit, NULL, kek_id, resumed);
}

/* The keyring as it is inside the caller's transaction, handed to pub->keyring. */
static int store_key_pub_keyring(store *s, const struct store_key_pub *pub)
{
	_cleanup_free_ uint8_t *kr = NULL;
	size_t krlen = 0;
	int r = store_keyring_export(s, &kr, &krlen);
	return r < 0 ? r : pub->keyring(pub->ud, kr, krlen);
}

int store_key_rotate_begin_pub(store *s, const struct store_audit *audit,
                               const struct store_key_pub *pub, uint64_t *kek_id, bool *resumed)
{
	if (!s || (pub && (!pub->keyring || !pub->rows || !pub->max_keys)))
		return -EINVAL;
	/* A cluster's rotation started on another node is not finished yet: its generations are
	 * all here (several), this node is not re-wrapping. */
	if (pub && s->kek_rotating == 0 && s->nkeks > 1)
		return -EALREADY;
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
		r = store_meta_put_u64(s->db, STORE_META_KEK_ROTATING, new_id);
	if (r == 0)
		r = store_audit_tx(s, audit, new_id);
	if (r == 0 && pub) /* the cluster takes the new generation, or nothing happened */
		r = store_key_pub_keyring(s, pub);
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

static void store_rot_row_clear(void *elem)
{
	free(((struct store_rot_row *)elem)->name);
}

static void store_rot_rows_free(struct store_rot_row *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_rot_row_clear(&v[i]);
	free(v);
}

static int store_rot_row_fill(store *s, sqlite3_stmt *st, void *elem)
{
	struct store_rot_row *e = elem;
	const char *name = (const char *)sqlite3_column_text(st, 2);
	const void *head = sqlite3_column_blob(st, 5);
	e->name = strdup(name ? name : "");
	if (!e->name)
		return -ENOMEM;
	e->secret_id = sqlite3_column_int64(st, 0);
	e->version = (uint64_t)sqlite3_column_int64(st, 1);
	e->current = (uint64_t)sqlite3_column_int64(st, 3);
	e->keep = sqlite3_column_int64(st, 4);
	e->head_ok = head && sqlite3_column_bytes(st, 5) == CRYPT_MAC_BYTES;
	if (e->head_ok)
		memcpy(e->head, head, CRYPT_MAC_BYTES);
	return 0;
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
	void *v;
	r = store_rows_collect(s, st, sizeof(**out), store_rot_row_fill, store_rot_row_clear, &v,
	                       n);
	*out = v;
	return r;
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
			r = e->head_ok ? store_head_check(s, e->secret_id, e->name, e->current,
			                                  e->keep, e->head, CRYPT_MAC_BYTES)
			               : -EBADMSG;
		if (r == 0) {
			struct store_verref ref = {.secret_id = e->secret_id,
			                           .version = e->version};
			r = store_rewrap(s, &ref, target, kek);
		}
		if (r == 0 && last)
			r = store_head_update(s, e->secret_id, e->name, e->current, e->keep);
		if (r < 0)
			return r;
	}
	return 0;
}

static void store_rewrapped_free(struct store_rewrapped *w, size_t n)
{
	for (size_t i = 0; w && i < n; i++) {
		free(w[i].name);
		free(w[i].old);
		free(w[i].new);
	}
	free(w);
}

/* A cluster's batch: whole secrets of v (at most pub->max_keys, their rows before and after at
 * most pub->max_bytes but for the first) re-wrapped and handed to pub->rows inside the caller's
 * transaction; *used: the rows re-wrapped. */
static int store_rot_publish(store *s, const struct store_rot_row *v, size_t n, uint64_t target,
                             const uint8_t *kek, const struct store_key_pub *pub, size_t *used)
{
	*used = 0;
	struct store_rewrapped *w = calloc(n, sizeof(*w));
	if (!w)
		return -ENOMEM;
	size_t k = 0, bytes = 0;
	int r = 0;
	for (size_t a = 0; a < n && k < pub->max_keys;) {
		size_t b = a + 1;
		while (b < n && v[b].secret_id == v[a].secret_id)
			b++;
		struct store_rewrapped *e = &w[k];
		e->name = strdup(v[a].name);
		r = e->name ? store_secret_export(s, e->name, &e->old, &e->oldlen) : -ENOMEM;
		if (r < 0)
			break;
		if (k && bytes + 2 * e->oldlen > pub->max_bytes)
			break; /* the next batch's (e freed with w) */
		r = store_rot_apply(s, v + a, b - a, target, kek);
		if (r == 0)
			r = store_secret_export(s, e->name, &e->new, &e->newlen);
		if (r < 0)
			break;
		bytes += e->oldlen + e->newlen;
		*used += b - a;
		k++;
		a = b;
	}
	if (r == 0)
		r = pub->rows(pub->ud, w, k);
	store_rewrapped_free(w, n);
	return r;
}

int store_key_rotate_step(store *s, size_t max, const struct store_audit *done_audit,
                          uint64_t *rewrapped, bool *finished)
{
	return store_key_rotate_step_pub(s, max, done_audit, NULL, rewrapped, finished);
}

int store_key_rotate_step_pub(store *s, size_t max, const struct store_audit *done_audit,
                              const struct store_key_pub *pub, uint64_t *rewrapped, bool *finished)
{
	if (!s || max == 0 || (pub && (!pub->keyring || !pub->rows || !pub->max_keys)))
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
	size_t n = 0, used = 0;
	bool done = false;
	int r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = store_rot_rows(s, target, max, &v, &n);
	if (r < 0)
		goto out;
	used = n;
	if (pub && n) /* a cluster: each batch's rows reach etcd before it commits here */
		r = store_rot_publish(s, v, n, target, kek, pub, &used);
	else
		r = store_rot_apply(s, v, n, target, kek);
	if (r < 0)
		goto out;
	if (pub ? n == 0 : n < max) {
		/* Nothing left under an older generation: drop the unused ones, end the rotation.
		 */
		done = true;
		r = store_tmpl_rewrap(s, target, kek); /* templates are few: all at once */
		if (r == 0)
			r = store_keks_gc(s);
		if (r == 0) {
			_cleanup_stmt_ sqlite3_stmt *del = NULL;
			r = store_prepare(s->db, "DELETE FROM meta WHERE key = ?1", &del);
			if (r == 0) {
				sqlite3_bind_text(del, 1, STORE_META_KEK_ROTATING, -1,
				                  SQLITE_STATIC);
				r = store_step_done(del);
			}
		}
		if (r == 0)
			r = store_audit_tx(s, done_audit, target);
		if (r == 0 && pub) /* the cluster's keyring drops the old generations too */
			r = store_key_pub_keyring(s, pub);
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
			*rewrapped = used;
		if (finished)
			*finished = done;
	}
	return r;
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

static int store_key_gen_fill(store *s, sqlite3_stmt *st, void *elem)
{
	struct store_key_gen *g = elem;
	g->id = (uint64_t)sqlite3_column_int64(st, 0);
	g->created = sqlite3_column_int64(st, 1);
	g->versions = (uint64_t)sqlite3_column_int64(st, 2);
	return 0;
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
	void *v;
	r = store_rows_collect(s, q, sizeof(*st->gens), store_key_gen_fill, NULL, &v, &st->ngens);
	if (r < 0)
		return r;
	st->gens = v;
	for (size_t i = 0; i < st->ngens; i++)
		if (st->gens[i].id != st->current)
			st->remaining += st->gens[i].versions;
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
	_cleanup_secret_bytes_ uint8_t *mroot = crypt_alloc(CRYPT_KEY_BYTES);
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
