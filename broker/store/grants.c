/* grants.c: grant rows (which containers see which secrets, and how), each MAC'd with its id. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/store/store_int.h"
#include "common/limits.h"
#include "common/names.h"

/* ---- grants ---- */

/* A grant's target: a secret name or pattern, or "tmpl:NAME" (a template). */
static int store_grant_target_check(const char *t)
{
	size_t pl = strlen(STORE_GRANT_TMPL_PREFIX);
	if (strncmp(t, STORE_GRANT_TMPL_PREFIX, pl) == 0)
		return names_check(t + pl, strlen(t + pl), NULL);
	return names_check_pattern(t, strlen(t), NULL);
}

static int store_grant_valid(const struct store_grant *g)
{
	if (!g || !g->secret || !g->selector)
		return -EINVAL;
	if (store_grant_target_check(g->secret) < 0)
		return -EINVAL;
	size_t sl = strlen(g->selector);
	if (sl == 0 || sl > SECRETD_SELECTOR_MAX)
		return -EINVAL;
	if (g->path && names_check(g->path, strlen(g->path), NULL) < 0)
		return -EINVAL;
	if (g->mode > 0777 || g->uid < -1 || g->uid > UINT32_MAX - 1 || g->gid < -1 ||
	    g->gid > UINT32_MAX - 1 || (g->flags & ~(uint32_t)STORE_GRANT_PREVIOUS) || g->gen < 0)
		return -EINVAL;
	return 0;
}

/* Computes a grant row's MAC into mac, or with check non-NULL verifies check (-EBADMSG). */
static int store_grant_mac(store *s, const struct store_grant *g, uint8_t mac[CRYPT_MAC_BYTES],
                           const uint8_t *check)
{
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_codec_grant(&b, g);
	if (r < 0)
		return r;
	if (check)
		return crypt_mac_verify(s->grant_key, b.p, b.len, check);
	crypt_mac(s->grant_key, b.p, b.len, mac);
	return 0;
}

int store_grant_gen_put(store *s, const char *target, const char *selector, int64_t gen)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "INSERT INTO grant_gens (secret, selector, gen) VALUES (?1, ?2, ?3) "
	                      "ON CONFLICT (secret, selector) DO UPDATE SET gen = ?3",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, selector, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, gen);
	return store_step_done(st);
}

int store_grant_check_mac(store *s, const struct store_grant *g, const uint8_t *mac)
{
	int r = store_grant_valid(g);
	return r < 0 ? -EBADMSG : store_grant_mac(s, g, NULL, mac);
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
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		/* one above the highest generation held for this grant, revoked ones included */
		_cleanup_stmt_ sqlite3_stmt *gq = NULL;
		r = store_prepare(
		    s->db,
		    "SELECT coalesce((SELECT gen FROM grant_gens WHERE secret = ?1 AND "
		    "selector = ?2), 0)",
		    &gq);
		if (r < 0)
			goto out;
		sqlite3_bind_text(gq, 1, g->secret, -1, SQLITE_STATIC);
		sqlite3_bind_text(gq, 2, g->selector, -1, SQLITE_STATIC);
		if (sqlite3_step(gq) != SQLITE_ROW) {
			r = -EIO;
			goto out;
		}
		row.gen = sqlite3_column_int64(gq, 0) + 1;
	}
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
		    "selector, mac, id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?9, zeroblob(?10), "
		    "?11)",
		    &wr);
		if (r < 0)
			goto out;
		sqlite3_bind_text(wr, 8, g->secret, -1, SQLITE_STATIC);
		sqlite3_bind_text(wr, 9, g->selector, -1, SQLITE_STATIC);
		sqlite3_bind_int(wr, 10, CRYPT_MAC_BYTES);
		if (s->cluster_ids)
			sqlite3_bind_int64(wr, 11, store_cluster_id());
		else
			sqlite3_bind_null(wr, 11); /* the next id */
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
	if (r == 0)
		r = store_grant_gen_put(s, g->secret, g->selector, row.gen);
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

int store_grant_remove_ex(store *s, const char *pattern, const char *selector,
                          const struct store_audit *audit)
{
	if (!s || !pattern || !selector || !*selector || strlen(selector) > SECRETD_SELECTOR_MAX ||
	    store_grant_target_check(pattern) < 0)
		return -EINVAL;
	int r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s->db, "DELETE FROM grants WHERE secret = ?1 AND selector = ?2", &st);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, selector, -1, SQLITE_STATIC);
	r = store_step_done(st);
	if (r == 0 && sqlite3_changes(s->db) == 0)
		r = -ENOENT;
	if (r == 0)
		r = store_audit_tx(s, audit, 0);
out:
	return store_end(s->db, r);
}

static void store_grant_clear(void *elem)
{
	struct store_grant *g = elem;
	free(g->secret);
	free(g->selector);
	free(g->path);
}

static int store_grant_fill(store *s, sqlite3_stmt *st, void *elem)
{
	struct store_grant *g = elem;
	g->id = sqlite3_column_int64(st, 0);
	g->secret = store_col_strdup(st, 1);
	g->selector = store_col_strdup(st, 2);
	bool has_path = sqlite3_column_type(st, 3) != SQLITE_NULL;
	g->path = has_path ? store_col_strdup(st, 3) : NULL;
	if (!g->secret || !g->selector || (has_path && !g->path))
		return -ENOMEM;
	int64_t mode = sqlite3_column_int64(st, 4);
	int64_t flags = sqlite3_column_int64(st, 7);
	g->mode = (uint32_t)mode;
	g->uid = sqlite3_column_int64(st, 5);
	g->gid = sqlite3_column_int64(st, 6);
	g->flags = (uint32_t)flags;
	g->created = sqlite3_column_int64(st, 8);
	g->gen = sqlite3_column_int64(st, 10);
	const uint8_t *mac = sqlite3_column_blob(st, 9);
	if (!mac || sqlite3_column_bytes(st, 9) != CRYPT_MAC_BYTES || mode != (int64_t)g->mode ||
	    flags != (int64_t)g->flags)
		return -EBADMSG;
	return store_grant_mac(s, g, NULL, mac);
}

int store_grants(store *s, struct store_grant **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(
	    s->db,
	    "SELECT g.id, g.secret, g.selector, g.path, g.mode, g.uid, g.gid, g.flags, "
	    "g.created, g.mac, coalesce(gg.gen, 0) FROM grants g LEFT JOIN grant_gens "
	    "gg ON gg.secret = g.secret AND gg.selector = g.selector ORDER BY g.id",
	    &st);
	if (r < 0)
		return r;
	void *v;
	r = store_rows_collect(s, st, sizeof(**out), store_grant_fill, store_grant_clear, &v, n);
	*out = v;
	return r;
}

void store_grants_free(struct store_grant *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_grant_clear(&v[i]);
	free(v);
}
