/* secrets.c: secrets and their versions: the head MAC that pins each secret's version set, put
 * (one new version, pruning beyond keep), get, list, delete, rollback. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "broker/store/store_int.h"
#include "common/cleanup.h"
#include "common/names.h"

/* ---- head records ---- */

/* Computes the MAC message of a secret's head: (id, name, current, keep, the sorted version set,
 * digests of the current version's wrapped key and ciphertext). -EBADMSG if the current version
 * row is missing. */
static int store_version_fill(store *s, sqlite3_stmt *st, void *elem)
{
	*(uint64_t *)elem = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

static int store_head_msg(store *s, int64_t id, const char *name, uint64_t current, int64_t keep,
                          struct store_buf *b)
{
	_cleanup_cached_ struct store_cached q_vs = {0};
	int r = store_cached(
	    s, "SELECT version FROM versions WHERE secret_id = ?1 ORDER BY version", &q_vs);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q_vs.st, 1, id);
	_cleanup_free_ uint64_t *set = NULL;
	size_t count = 0;
	void *v;
	r = store_rows_collect(s, q_vs.st, sizeof(*set), store_version_fill, NULL, &v, &count);
	if (r < 0)
		return r;
	set = v;

	_cleanup_cached_ struct store_cached q_cur = {0};
	r = store_cached(s,
	                 "SELECT kek_id, wrapped_key, ciphertext, size FROM versions "
	                 "WHERE secret_id = ?1 AND version = ?2",
	                 &q_cur);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q_cur.st, 1, id);
	sqlite3_bind_int64(q_cur.st, 2, (int64_t)current);
	int rc = sqlite3_step(q_cur.st);
	if (rc == SQLITE_DONE)
		return -EBADMSG;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	uint8_t dw[CRYPT_MAC_BYTES], dc[CRYPT_MAC_BYTES];
	/* Keyed digests of the row's blobs (the whole message is MAC'd again below). */
	crypt_mac(s->head_key, sqlite3_column_blob(q_cur.st, 1),
	          (size_t)sqlite3_column_bytes(q_cur.st, 1), dw);
	crypt_mac(s->head_key, sqlite3_column_blob(q_cur.st, 2),
	          (size_t)sqlite3_column_bytes(q_cur.st, 2), dc);
	return store_codec_head(b, id, name, current, keep, set, count,
	                        (uint64_t)sqlite3_column_int64(q_cur.st, 0),
	                        (uint64_t)sqlite3_column_int64(q_cur.st, 3), dw, dc);
}

/* Recomputes and stores the head of secret id (inside the caller's transaction). */
int store_head_update(store *s, int64_t id, const char *name, uint64_t current, int64_t keep)
{
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_head_msg(s, id, name, current, keep, &b);
	if (r < 0)
		return r;
	uint8_t mac[CRYPT_MAC_BYTES];
	crypt_mac(s->head_key, b.p, b.len, mac);
	_cleanup_cached_ struct store_cached q_st = {0};
	r = store_cached(s, "UPDATE secrets SET head = ?1 WHERE id = ?2", &q_st);
	if (r < 0)
		return r;
	sqlite3_bind_blob(q_st.st, 1, mac, sizeof(mac), SQLITE_TRANSIENT);
	sqlite3_bind_int64(q_st.st, 2, id);
	return store_step_done(q_st.st);
}

int store_head_check(store *s, int64_t id, const char *name, uint64_t current, int64_t keep,
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

/* Looks a secret up by name and checks its head. -ENOENT, -EBADMSG. */
int store_secret_load(store *s, const char *name, struct store_row *row)
{
	_cleanup_cached_ struct store_cached q_st = {0};
	int r =
	    store_cached(s, "SELECT id, current, keep, head FROM secrets WHERE name = ?1", &q_st);
	if (r < 0)
		return r;
	sqlite3_bind_text(q_st.st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q_st.st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	row->id = sqlite3_column_int64(q_st.st, 0);
	row->current = (uint64_t)sqlite3_column_int64(q_st.st, 1);
	row->keep = sqlite3_column_int64(q_st.st, 2);
	return store_head_check(s, row->id, name, row->current, row->keep,
	                        sqlite3_column_blob(q_st.st, 3),
	                        (size_t)sqlite3_column_bytes(q_st.st, 3));
}

int store_name_ok(const char *name)
{
	if (!name)
		return -EINVAL;
	return names_check(name, strlen(name), NULL);
}

/* Deletes KEK generations that are not current and wrap no data key. */

/* ---- secrets ---- */

/* Creates the secret row if needed; *row gets it (head checked when it existed). */
static int store_put_row(store *s, const char *name, struct store_row *row)
{
	int r = store_secret_load(s, name, row);
	if (r != -ENOENT)
		return r;
	_cleanup_cached_ struct store_cached q_ins = {0};
	_cleanup_cached_ struct store_cached q_k = {0};
	r = store_cached(s,
	                 "INSERT INTO secrets (name, current, created, updated, head, id) "
	                 "VALUES (?1, 0, ?2, ?2, zeroblob(?3), ?4)",
	                 &q_ins);
	if (r < 0)
		return r;
	sqlite3_bind_text(q_ins.st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q_ins.st, 2, store_now());
	sqlite3_bind_int(q_ins.st, 3, CRYPT_MAC_BYTES);
	if (s->cluster_ids)
		sqlite3_bind_int64(q_ins.st, 4, store_cluster_id());
	else
		sqlite3_bind_null(q_ins.st, 4); /* the next id */
	r = store_step_done(q_ins.st);
	if (r < 0)
		return r;
	row->id = sqlite3_last_insert_rowid(s->db);
	row->current = 0;
	r = store_cached(s, "SELECT keep FROM secrets WHERE id = ?1", &q_k);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q_k.st, 1, row->id);
	if (sqlite3_step(q_k.st) != SQLITE_ROW)
		return -EIO;
	row->keep = sqlite3_column_int64(q_k.st, 0);
	return 0;
}

/* The body of store_put_ex and store_rollback, inside their transaction. *life_changed (may be
 * NULL) tells whether the secret's expiry changed. */
static int store_put_tx(store *s, const char *name, const uint8_t *val, size_t len,
                        const uint8_t *kek, const struct store_put_opts *o, uint64_t *version_out,
                        bool *life_changed)
{
	_cleanup_free_ uint8_t *ct = malloc(len + CRYPT_SEAL_OVERHEAD);
	_cleanup_cached_ struct store_cached q_vi = {0};
	_cleanup_cached_ struct store_cached q_pr = {0};
	_cleanup_cached_ struct store_cached q_up = {0};
	if (!ct)
		return -ENOMEM;
	struct store_row row = {0};
	int r = store_put_row(s, name, &row);
	if (r < 0)
		return r;
	uint64_t version = row.current + 1;

	uint8_t wk[STORE_WRAPPED_KEY_BYTES];
	r = store_envelope_seal(&store_envelope_secret, row.id, name, version, kek, s->kek_current,
	                        val, len, ct, wk);
	if (r < 0)
		return r;

	r = store_cached(
	    s,
	    "INSERT INTO versions (secret_id, version, kek_id, wrapped_key, ciphertext, "
	    "size, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	    &q_vi);
	if (r < 0)
		return r;
	int64_t now = store_now();
	sqlite3_bind_int64(q_vi.st, 1, row.id);
	sqlite3_bind_int64(q_vi.st, 2, (int64_t)version);
	sqlite3_bind_int64(q_vi.st, 3, (int64_t)s->kek_current);
	sqlite3_bind_blob(q_vi.st, 4, wk, sizeof(wk), SQLITE_STATIC);
	sqlite3_bind_blob64(q_vi.st, 5, ct, len + CRYPT_SEAL_OVERHEAD, SQLITE_STATIC);
	sqlite3_bind_int64(q_vi.st, 6, (int64_t)len);
	sqlite3_bind_int64(q_vi.st, 7, now);
	r = store_step_done(q_vi.st);
	if (r < 0)
		return r == -EEXIST ? -EBADMSG : r; /* a row beyond current: not written by us */

	if (o && o->keep > 0) {
		_cleanup_cached_ struct store_cached q_kp = {0};
		r = store_cached(s, "UPDATE secrets SET keep = ?1 WHERE id = ?2", &q_kp);
		if (r < 0)
			return r;
		sqlite3_bind_int64(q_kp.st, 1, o->keep);
		sqlite3_bind_int64(q_kp.st, 2, row.id);
		r = store_step_done(q_kp.st);
		if (r < 0)
			return r;
		row.keep = o->keep;
	}
	if (o && o->labels) {
		r = store_labels_apply_tx(s, row.id, name, o->labels);
		if (r < 0)
			return r;
	}
	if (o && o->expires) {
		r = store_life_set_expiry(s, row.id, name, o->expires < 0 ? 0 : o->expires,
		                          life_changed);
		if (r < 0)
			return r;
	}

	r = store_cached(s,
	                 "DELETE FROM versions WHERE secret_id = ?1 AND version NOT IN "
	                 "(SELECT version FROM versions WHERE secret_id = ?1 "
	                 "ORDER BY version DESC LIMIT ?2)",
	                 &q_pr);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q_pr.st, 1, row.id);
	sqlite3_bind_int64(q_pr.st, 2, row.keep);
	r = store_step_done(q_pr.st);
	if (r < 0)
		return r;

	r = store_cached(s, "UPDATE secrets SET current = ?1, updated = ?2 WHERE id = ?3", &q_up);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q_up.st, 1, (int64_t)version);
	sqlite3_bind_int64(q_up.st, 2, now);
	sqlite3_bind_int64(q_up.st, 3, row.id);
	r = store_step_done(q_up.st);
	if (r == 0)
		r = store_head_update(s, row.id, name, version, row.keep);
	if (r == 0)
		r = store_keks_gc(s);
	if (r == 0)
		*version_out = version;
	return r;
}

/* Decrypts version v of a checked secret (inside a read transaction) into a new secret of
 * exactly its length (*out, the caller's reference). */
static int store_get_version(store *s, const char *name, const struct store_row *row, uint64_t v,
                             secret **out)
{
	_cleanup_cached_ struct store_cached q_st = {0};
	int r = store_cached(s,
	                     "SELECT kek_id, wrapped_key, ciphertext, size FROM versions "
	                     "WHERE secret_id = ?1 AND version = ?2",
	                     &q_st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q_st.st, 1, row->id);
	sqlite3_bind_int64(q_st.st, 2, (int64_t)v);
	int rc = sqlite3_step(q_st.st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	return store_envelope_open(s, &store_envelope_secret, q_st.st, row->id, name, v, out);
}

/* store_get_secret, and store_get_secret_of when id is not 0. */
static int store_get_secret_id(store *s, const char *name, uint64_t id, uint64_t version,
                               secret **out, uint64_t *version_out)
{
	if (!s || !out)
		return -EINVAL;
	*out = NULL;
	if (version_out)
		*version_out = 0;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	/* One read transaction: the head and the row are checked against the same snapshot. */
	r = store_cached_exec(s, "BEGIN");
	if (r < 0)
		return r;
	struct store_row row;
	r = store_secret_load(s, name, &row);
	if (r < 0)
		goto out;
	if (id && (uint64_t)row.id != id) {
		r = -ENOENT;
		goto out;
	}
	uint64_t v = version ? version : row.current;
	if (v > row.current) {
		r = -ENOENT;
		goto out;
	}
	r = store_get_version(s, name, &row, v, out);
	if (r == 0 && version_out)
		*version_out = v;
out:;
	/* A read transaction: its ROLLBACK cannot lose anything; a failure of it would show on the
	 * next BEGIN. The read's own result is what counts. */
	int rr = store_cached_exec(s, "ROLLBACK");
	if (r == 0 && rr < 0) {
		secret_unref(*out);
		*out = NULL;
		r = rr;
	}
	return r;
}

int store_get_secret(store *s, const char *name, uint64_t version, secret **out,
                     uint64_t *version_out)
{
	return store_get_secret_id(s, name, 0, version, out, version_out);
}

int store_get_secret_of(store *s, const char *name, uint64_t id, uint64_t version, secret **out)
{
	if (!id || !version)
		return -EINVAL;
	return store_get_secret_id(s, name, id, version, out, NULL);
}

int store_get(store *s, const char *name, uint64_t version, uint8_t **val, size_t *len,
              uint64_t *version_out)
{
	if (!s || !val || !len)
		return -EINVAL;
	*val = NULL;
	*len = 0;
	secret *sec = NULL;
	int r = store_get_secret(s, name, version, &sec, version_out);
	if (r < 0)
		return r;
	/* The secret's bare-pointer form: store_value_free (secret_bytes_free) drops it. */
	*len = secret_len(sec);
	*val = secret_data(sec);
	return 0;
}

void store_value_free(uint8_t *val)
{
	crypt_free(val);
}

static void store_info_clear(void *elem)
{
	struct store_secret_info *e = elem;
	free(e->name);
	store_labels_free(e->labels, e->nlabels);
}

static int store_info_fill(store *s, sqlite3_stmt *st, void *elem)
{
	struct store_secret_info *e = elem;
	const char *name = (const char *)sqlite3_column_text(st, 0);
	e->name = strdup(name ? name : "");
	if (!e->name)
		return -ENOMEM;
	e->id = (uint64_t)sqlite3_column_int64(st, 5);
	e->current = (uint64_t)sqlite3_column_int64(st, 1);
	e->nversions = (uint64_t)sqlite3_column_int64(st, 2);
	e->created = sqlite3_column_int64(st, 3);
	e->updated = sqlite3_column_int64(st, 4);
	e->expires = 0;
	if (sqlite3_column_type(st, 12) != SQLITE_NULL) {
		/* A lifecycle row: shown only once its MAC holds. */
		struct store_lifecycle l = {0};
		int r = store_life_row(s, st, 6, sqlite3_column_int64(st, 5), e->name, &l);
		free(l.exec);
		if (r < 0)
			return r;
		e->expires = l.expires;
	}
	/* The labels: shown only once their set's MAC holds. */
	return store_labels_row(s, st, 13, sqlite3_column_int64(st, 5), e->name, &e->labels,
	                        &e->nlabels);
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
	                      "l.every, l.next, l.length, l.charset, l.exec, l.mac, "
	                      "lb.labels, lb.mac "
	                      "FROM secrets s LEFT JOIN lifecycle l ON l.secret_id = s.id "
	                      "LEFT JOIN secret_labels lb ON lb.secret_id = s.id "
	                      "ORDER BY s.name",
	                      &st);
	if (r < 0)
		return r;
	void *v;
	r = store_rows_collect(s, st, sizeof(**out), store_info_fill, store_info_clear, &v, n);
	*out = v;
	return r;
}

void store_list_free(struct store_secret_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_info_clear(&v[i]);
	free(v);
}

static void store_name_clear(void *elem)
{
	free(*(char **)elem);
}

static int store_name_fill(store *s, sqlite3_stmt *st, void *elem)
{
	const char *name = (const char *)sqlite3_column_text(st, 0);
	*(char **)elem = strdup(name ? name : "");
	return *(char **)elem ? 0 : -ENOMEM;
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
	void *v;
	r = store_rows_collect(s, st, sizeof(**out), store_name_fill, store_name_clear, &v, n);
	*out = v;
	return r;
}

void store_names_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static int store_version_info_fill(store *s, sqlite3_stmt *st, void *elem)
{
	struct store_version_info *e = elem;
	e->version = (uint64_t)sqlite3_column_int64(st, 0);
	e->kek_id = (uint64_t)sqlite3_column_int64(st, 1);
	e->size = (size_t)sqlite3_column_int64(st, 2);
	e->created = sqlite3_column_int64(st, 3);
	e->current = (uint64_t)sqlite3_column_int64(st, 4) == e->version;
	return 0;
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
	void *v;
	r = store_rows_collect(s, st, sizeof(**out), store_version_info_fill, NULL, &v, n);
	if (r < 0)
		return r;
	if (*n == 0)
		return -ENOENT;
	*out = v;
	return 0;
}

void store_versions_free(struct store_version_info *v, size_t n)
{
	(void)n;
	free(v);
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
	r = store_cached_exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	uint64_t v = 0;
	bool life_changed = false;
	r = store_put_tx(s, name, val, len, kek, o, &v, &life_changed);
	if (r == 0)
		r = store_audit_tx(s, audit, v);
	r = store_cached_end(s, r);
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
	r = store_cached_exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_secret_ secret *val = NULL;
	uint64_t v = 0;
	struct store_row row;
	r = store_secret_load(s, name, &row);
	if (r == 0 && version > row.current)
		r = -ENOENT;
	if (r == 0)
		r = store_get_version(s, name, &row, version, &val);
	if (r == 0)
		r = store_put_tx(s, name, secret_data(val), secret_len(val), kek, NULL, &v, NULL);
	if (r == 0)
		r = store_audit_tx(s, audit, v);
	r = store_cached_end(s, r);
	if (r == 0 && version_out)
		*version_out = v;
	return r;
}
