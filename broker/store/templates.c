/* templates.c: stored templates of rendered files (schema 005) and their versions. A body may
 * hold literal secrets, so it is sealed exactly like a value (a random data key per version,
 * wrapped under the current key generation, both bound to the row by their associated data:
 * store_ad_tmpl_data, store_ad_tmpl_dkey) and each template's head MAC pins its version set and
 * current row (store_codec_tmpl_head). Parsing and checking the body is the caller's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "broker/store/store_int.h"
#include "common/cleanup.h"
#include "common/names.h"

struct store_tmpl_row {
	int64_t id;
	uint64_t current;
};

static int store_tmpl_version_fill(store *s, sqlite3_stmt *st, void *elem)
{
	(void)s;
	*(uint64_t *)elem = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

/* The head's MAC message of template id; -EBADMSG when its current row is missing. */
static int store_tmpl_head_msg(store *s, int64_t id, const char *name, uint64_t current,
                               struct store_buf *b)
{
	_cleanup_cached_ struct store_cached q_vs = {0};
	_cleanup_cached_ struct store_cached q_cur = {0};
	int r = store_cached(
	    s, "SELECT version FROM template_versions WHERE template_id = ?1 ORDER BY version",
	    &q_vs);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q_vs.st, 1, id);
	_cleanup_free_ uint64_t *set = NULL;
	size_t count = 0;
	void *v;
	r = store_rows_collect(s, q_vs.st, sizeof(*set), store_tmpl_version_fill, NULL, &v, &count);
	if (r < 0)
		return r;
	set = v;
	r = store_cached(s,
	                 "SELECT kek_id, wrapped_key, ciphertext, size FROM template_versions "
	                 "WHERE template_id = ?1 AND version = ?2",
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
	crypt_mac(s->head_key, sqlite3_column_blob(q_cur.st, 1),
	          (size_t)sqlite3_column_bytes(q_cur.st, 1), dw);
	crypt_mac(s->head_key, sqlite3_column_blob(q_cur.st, 2),
	          (size_t)sqlite3_column_bytes(q_cur.st, 2), dc);
	return store_codec_tmpl_head(b, id, name, current, set, count,
	                             (uint64_t)sqlite3_column_int64(q_cur.st, 0),
	                             (uint64_t)sqlite3_column_int64(q_cur.st, 3), dw, dc);
}

static int store_tmpl_head_update(store *s, int64_t id, const char *name, uint64_t current)
{
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_tmpl_head_msg(s, id, name, current, &b);
	if (r < 0)
		return r;
	uint8_t mac[CRYPT_MAC_BYTES];
	crypt_mac(s->head_key, b.p, b.len, mac);
	_cleanup_cached_ struct store_cached q_st = {0};
	r = store_cached(s, "UPDATE templates SET head = ?1 WHERE id = ?2", &q_st);
	if (r < 0)
		return r;
	sqlite3_bind_blob(q_st.st, 1, mac, sizeof(mac), SQLITE_TRANSIENT);
	sqlite3_bind_int64(q_st.st, 2, id);
	return store_step_done(q_st.st);
}

/* Looks template name up and checks its head: -ENOENT, -EBADMSG. */
static int store_tmpl_load(store *s, const char *name, struct store_tmpl_row *row)
{
	_cleanup_cached_ struct store_cached q_st = {0};
	int r = store_cached(s, "SELECT id, current, head FROM templates WHERE name = ?1", &q_st);
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
	const void *head = sqlite3_column_blob(q_st.st, 2);
	if (!head || sqlite3_column_bytes(q_st.st, 2) != CRYPT_MAC_BYTES || row->current == 0)
		return -EBADMSG;
	struct store_buf b _cleanup_buf_ = {0};
	r = store_tmpl_head_msg(s, row->id, name, row->current, &b);
	if (r < 0)
		return r;
	return crypt_mac_verify(s->head_key, b.p, b.len, head);
}

/* Creates the template row when needed (*row: it, head checked when it existed). */
static int store_tmpl_row(store *s, const char *name, struct store_tmpl_row *row)
{
	int r = store_tmpl_load(s, name, row);
	if (r != -ENOENT)
		return r;
	_cleanup_stmt_ sqlite3_stmt *ins = NULL;
	r = store_prepare(s->db,
	                  "INSERT INTO templates (name, current, created, updated, head) "
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
	return 0;
}

static int store_tmpl_put_tx(store *s, const char *name, const uint8_t *body, size_t len,
                             const uint8_t *kek, uint64_t *version_out)
{
	_cleanup_free_ uint8_t *ct = malloc(len + CRYPT_SEAL_OVERHEAD);
	_cleanup_cached_ struct store_cached q_vi = {0};
	_cleanup_cached_ struct store_cached q_pr = {0};
	_cleanup_cached_ struct store_cached q_up = {0};
	if (!ct)
		return -ENOMEM;
	struct store_tmpl_row row = {0};
	int r = store_tmpl_row(s, name, &row);
	if (r < 0)
		return r;
	uint64_t version = row.current + 1;
	uint8_t wk[STORE_WRAPPED_KEY_BYTES];
	r = store_envelope_seal(&store_envelope_tmpl, row.id, name, version, kek, s->kek_current,
	                        body, len, ct, wk);
	if (r < 0)
		return r;
	r = store_cached(s,
	                 "INSERT INTO template_versions (template_id, version, kek_id, "
	                 "wrapped_key, ciphertext, size, created) "
	                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
	r = store_cached(s,
	                 "DELETE FROM template_versions WHERE template_id = ?1 AND version NOT IN "
	                 "(SELECT version FROM template_versions WHERE template_id = ?1 "
	                 "ORDER BY version DESC LIMIT ?2)",
	                 &q_pr);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q_pr.st, 1, row.id);
	sqlite3_bind_int64(q_pr.st, 2, STORE_TMPL_KEEP);
	r = store_step_done(q_pr.st);
	if (r < 0)
		return r;
	r = store_cached(s, "UPDATE templates SET current = ?1, updated = ?2 WHERE id = ?3", &q_up);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q_up.st, 1, (int64_t)version);
	sqlite3_bind_int64(q_up.st, 2, now);
	sqlite3_bind_int64(q_up.st, 3, row.id);
	r = store_step_done(q_up.st);
	if (r == 0)
		r = store_tmpl_head_update(s, row.id, name, version);
	if (r == 0)
		r = store_keks_gc(s);
	if (r == 0)
		*version_out = version;
	return r;
}

int store_tmpl_put(store *s, const char *name, const uint8_t *body, size_t len,
                   const struct store_audit *audit, uint64_t *version_out)
{
	if (version_out)
		*version_out = 0;
	if (!s || (!body && len))
		return -EINVAL;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	if (len > s->max_value)
		return -EFBIG;
	const uint8_t *kek = store_kek_find(s, s->kek_current);
	if (!kek)
		return -EBADMSG;
	r = store_cached_exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	uint64_t v = 0;
	r = store_tmpl_put_tx(s, name, body ? body : (const uint8_t *)"", len, kek, &v);
	if (r == 0)
		r = store_audit_tx(s, audit, v);
	r = store_cached_end(s, r);
	if (r == 0 && version_out)
		*version_out = v;
	return r;
}

/* Decrypts version v of a checked template into a new secret. */
static int store_tmpl_open(store *s, const char *name, const struct store_tmpl_row *row, uint64_t v,
                           secret **out)
{
	_cleanup_cached_ struct store_cached q_st = {0};
	int r = store_cached(s,
	                     "SELECT kek_id, wrapped_key, ciphertext, size FROM template_versions "
	                     "WHERE template_id = ?1 AND version = ?2",
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
	return store_envelope_open(s, &store_envelope_tmpl, q_st.st, row->id, name, v, out);
}

/* store_tmpl_get, and store_tmpl_get_of when id is not 0. */
static int store_tmpl_get_id(store *s, const char *name, uint64_t id, uint64_t version,
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
	r = store_cached_exec(s, "BEGIN");
	if (r < 0)
		return r;
	struct store_tmpl_row row;
	r = store_tmpl_load(s, name, &row);
	if (r == 0 && id && (uint64_t)row.id != id)
		r = -ENOENT;
	uint64_t v = version ? version : row.current;
	if (r == 0 && v > row.current)
		r = -ENOENT;
	if (r == 0)
		r = store_tmpl_open(s, name, &row, v, out);
	if (r == 0 && version_out)
		*version_out = v;
	/* a read transaction: its own result is what counts (as store_get_secret) */
	int rr = store_cached_exec(s, "ROLLBACK");
	if (r == 0 && rr < 0) {
		secret_unref(*out);
		*out = NULL;
		r = rr;
	}
	return r;
}

int store_tmpl_get(store *s, const char *name, uint64_t version, secret **out,
                   uint64_t *version_out)
{
	return store_tmpl_get_id(s, name, 0, version, out, version_out);
}

int store_tmpl_get_of(store *s, const char *name, uint64_t id, uint64_t version, secret **out)
{
	if (!id || !version)
		return -EINVAL;
	return store_tmpl_get_id(s, name, id, version, out, NULL);
}

int store_tmpl_get_bytes(store *s, const char *name, uint64_t version, uint8_t **val, size_t *len,
                         uint64_t *version_out)
{
	if (!val || !len)
		return -EINVAL;
	*val = NULL;
	*len = 0;
	secret *sec = NULL;
	int r = store_tmpl_get(s, name, version, &sec, version_out);
	if (r < 0)
		return r;
	*len = secret_len(sec);
	*val = secret_data(sec); /* store_value_free drops the secret */
	return 0;
}

static void store_tmpl_info_clear(void *elem)
{
	free(((struct store_tmpl_info *)elem)->name);
}

static int store_tmpl_info_fill(store *s, sqlite3_stmt *st, void *elem)
{
	(void)s;
	struct store_tmpl_info *e = elem;
	e->name = store_col_strdup(st, 0);
	if (!e->name)
		return -ENOMEM;
	e->current = (uint64_t)sqlite3_column_int64(st, 1);
	e->nversions = (uint64_t)sqlite3_column_int64(st, 2);
	e->created = sqlite3_column_int64(st, 3);
	e->updated = sqlite3_column_int64(st, 4);
	e->id = (uint64_t)sqlite3_column_int64(st, 5);
	return 0;
}

int store_tmpl_list(store *s, struct store_tmpl_info **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r =
	    store_prepare(s->db,
	                  "SELECT t.name, t.current, (SELECT count(*) FROM template_versions "
	                  "WHERE template_id = t.id), t.created, t.updated, t.id FROM templates t "
	                  "ORDER BY t.name",
	                  &st);
	if (r < 0)
		return r;
	void *v;
	r = store_rows_collect(s, st, sizeof(**out), store_tmpl_info_fill, store_tmpl_info_clear,
	                       &v, n);
	*out = v;
	return r;
}

void store_tmpl_list_free(struct store_tmpl_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

static int store_tmpl_vinfo_fill(store *s, sqlite3_stmt *st, void *elem)
{
	(void)s;
	struct store_version_info *e = elem;
	e->version = (uint64_t)sqlite3_column_int64(st, 0);
	e->kek_id = (uint64_t)sqlite3_column_int64(st, 1);
	e->size = (size_t)sqlite3_column_int64(st, 2);
	e->created = sqlite3_column_int64(st, 3);
	e->current = (uint64_t)sqlite3_column_int64(st, 4) == e->version;
	return 0;
}

int store_tmpl_versions(store *s, const char *name, struct store_version_info **out, size_t *n)
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
	                  "SELECT v.version, v.kek_id, v.size, v.created, t.current "
	                  "FROM template_versions v JOIN templates t ON t.id = v.template_id "
	                  "WHERE t.name = ?1 ORDER BY v.version",
	                  &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	void *v;
	r = store_rows_collect(s, st, sizeof(**out), store_tmpl_vinfo_fill, NULL, &v, n);
	if (r < 0)
		return r;
	if (*n == 0)
		return -ENOENT;
	*out = v;
	return 0;
}

int store_tmpl_delete(store *s, const char *name, const struct store_audit *audit)
{
	if (!s)
		return -EINVAL;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *dt = NULL, *dg = NULL;
	r = store_prepare(s->db, "DELETE FROM templates WHERE name = ?1", &dt);
	if (r < 0)
		goto out;
	sqlite3_bind_text(dt, 1, name, -1, SQLITE_STATIC);
	r = store_step_done(dt);
	if (r < 0)
		goto out;
	if (sqlite3_changes(s->db) == 0) {
		r = -ENOENT;
		goto out;
	}
	r = store_prepare(s->db, "DELETE FROM grants WHERE secret = ?1 || ?2", &dg);
	if (r < 0)
		goto out;
	sqlite3_bind_text(dg, 1, STORE_GRANT_TMPL_PREFIX, -1, SQLITE_STATIC);
	sqlite3_bind_text(dg, 2, name, -1, SQLITE_STATIC);
	r = store_step_done(dg);
	if (r == 0)
		r = store_keks_gc(s);
	if (r == 0)
		r = store_audit_tx(s, audit, 0);
out:
	return store_end(s->db, r);
}

/* ---- key rotation ---- */

struct store_tmpl_ref {
	int64_t id;
	uint64_t version, kek_id, current;
	char *name;
};

static void store_tmpl_ref_clear(void *elem)
{
	free(((struct store_tmpl_ref *)elem)->name);
}

static int store_tmpl_ref_fill(store *s, sqlite3_stmt *st, void *elem)
{
	(void)s;
	struct store_tmpl_ref *e = elem;
	e->id = sqlite3_column_int64(st, 0);
	e->version = (uint64_t)sqlite3_column_int64(st, 1);
	e->kek_id = (uint64_t)sqlite3_column_int64(st, 2);
	e->current = (uint64_t)sqlite3_column_int64(st, 3);
	e->name = store_col_strdup(st, 4);
	return e->name ? 0 : -ENOMEM;
}

static int store_tmpl_rewrap_one(store *s, const struct store_tmpl_ref *e, uint64_t target,
                                 const uint8_t *kek)
{
	_cleanup_stmt_ sqlite3_stmt *sel = NULL, *up = NULL;
	int r = store_prepare(s->db,
	                      "SELECT wrapped_key FROM template_versions "
	                      "WHERE template_id = ?1 AND version = ?2",
	                      &sel);
	if (r < 0)
		return r;
	sqlite3_bind_int64(sel, 1, e->id);
	sqlite3_bind_int64(sel, 2, (int64_t)e->version);
	if (sqlite3_step(sel) != SQLITE_ROW)
		return -EIO;
	const uint8_t *wk = sqlite3_column_blob(sel, 0);
	size_t wklen = (size_t)sqlite3_column_bytes(sel, 0);
	uint8_t nwk[STORE_WRAPPED_KEY_BYTES];
	r = store_envelope_rewrap(&store_envelope_tmpl, e->id, e->version,
	                          store_kek_find(s, e->kek_id), e->kek_id, wk, wklen, kek, target,
	                          nwk);
	if (r < 0)
		return r;
	r = store_prepare(s->db,
	                  "UPDATE template_versions SET kek_id = ?1, wrapped_key = ?2 "
	                  "WHERE template_id = ?3 AND version = ?4",
	                  &up);
	if (r < 0)
		return r;
	sqlite3_bind_int64(up, 1, (int64_t)target);
	sqlite3_bind_blob(up, 2, nwk, sizeof(nwk), SQLITE_TRANSIENT);
	sqlite3_bind_int64(up, 3, e->id);
	sqlite3_bind_int64(up, 4, (int64_t)e->version);
	return store_step_done(up);
}

int store_tmpl_rewrap(store *s, uint64_t target, const uint8_t *kek)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "SELECT v.template_id, v.version, v.kek_id, t.current, t.name "
	                      "FROM template_versions v JOIN templates t ON t.id = v.template_id "
	                      "WHERE v.kek_id <> ?1 ORDER BY v.template_id, v.version",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, (int64_t)target);
	struct store_tmpl_ref *v = NULL;
	size_t n = 0;
	void *p;
	r = store_rows_collect(s, st, sizeof(*v), store_tmpl_ref_fill, store_tmpl_ref_clear, &p,
	                       &n);
	if (r < 0)
		return r;
	v = p;
	for (size_t i = 0; r == 0 && i < n; i++) {
		/* the head is checked before its rows change, recomputed after the last one */
		if (i == 0 || v[i].id != v[i - 1].id) {
			struct store_tmpl_row row;
			r = store_tmpl_load(s, v[i].name, &row);
			if (r < 0)
				break;
		}
		r = store_tmpl_rewrap_one(s, &v[i], target, kek);
		if (r == 0 && (i + 1 == n || v[i + 1].id != v[i].id))
			r = store_tmpl_head_update(s, v[i].id, v[i].name, v[i].current);
	}
	for (size_t i = 0; i < n; i++)
		store_tmpl_ref_clear(&v[i]);
	free(v);
	return r;
}
