/* lifecycle.c: a secret's expiry and rotation schedule, in one MAC'd lifecycle row. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/store/store_int.h"
#include "common/cleanup.h"

/* ---- lifecycle: expiry and schedules ---- */

int store_life_mac(store *s, int64_t id, const char *name, const struct store_lifecycle *l,
                   uint8_t mac[CRYPT_MAC_BYTES], const uint8_t *check)
{
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_codec_life(&b, id, name, l);
	if (r < 0)
		return r;
	if (check)
		return crypt_mac_verify(s->life_key, b.p, b.len, check);
	crypt_mac(s->life_key, b.p, b.len, mac);
	return 0;
}

/* Fills l from a lifecycle row (columns: expires, every, next, length, charset, exec, mac) and
 * checks its MAC. l->exec malloc'd. */
int store_life_row(store *s, sqlite3_stmt *st, int col, int64_t id, const char *name,
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
int store_life_load(store *s, int64_t id, const char *name, struct store_lifecycle *l)
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

int store_life_gen(store *s, int64_t id, int64_t *gen)
{
	*gen = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db, "SELECT gen FROM life_gens WHERE secret_id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*gen = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		return store_sqlerr(rc);
	return 0;
}

static int store_life_gen_set(store *s, int64_t id, int64_t gen)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "INSERT INTO life_gens (secret_id, gen) VALUES (?1, ?2) "
	                      "ON CONFLICT (secret_id) DO UPDATE SET gen = ?2",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, gen);
	return store_step_done(st);
}

static int store_life_write_row(store *s, int64_t id, const char *name,
                                const struct store_lifecycle *l);

/* Writes (or, with neither expiry nor schedule, deletes) secret id's lifecycle row; its
 * generation goes one up. */
static int store_life_write(store *s, int64_t id, const char *name, const struct store_lifecycle *l)
{
	int64_t gen = 0;
	int r = store_life_gen(s, id, &gen);
	if (r == 0)
		r = store_life_write_row(s, id, name, l);
	return r == 0 ? store_life_gen_set(s, id, gen + 1) : r;
}

int store_life_put_gen(store *s, int64_t id, const char *name, const struct store_lifecycle *l,
                       int64_t gen)
{
	struct store_lifecycle row = *l;
	row.gen = 0; /* the table's MAC is v1 */
	int r = store_life_write_row(s, id, name, &row);
	return r == 0 ? store_life_gen_set(s, id, gen) : r;
}

static int store_life_write_row(store *s, int64_t id, const char *name,
                                const struct store_lifecycle *l)
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
int store_life_set_expiry(store *s, int64_t id, const char *name, int64_t expires, bool *changed)
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
	    (size_t)cs >= STORE_CHARSET_COUNT || (exec && (!*exec || strlen(exec) > 4096)))
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

static void store_life_clear(void *elem)
{
	struct store_lifecycle *l = elem;
	free(l->name);
	free(l->exec);
}

static int store_life_fill(store *s, sqlite3_stmt *st, void *elem)
{
	struct store_lifecycle *l = elem;
	l->name = store_col_strdup(st, 1);
	if (!l->name)
		return -ENOMEM;
	return store_life_row(s, st, 2, sqlite3_column_int64(st, 0), l->name, l);
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
	void *v;
	r = store_rows_collect(s, st, sizeof(**out), store_life_fill, store_life_clear, &v, n);
	*out = v;
	return r;
}

void store_lifecycles_free(struct store_lifecycle *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_life_clear(&v[i]);
	free(v);
}

uint64_t store_lifecycle_gen(store *s)
{
	return s ? s->life_gen : 0;
}
