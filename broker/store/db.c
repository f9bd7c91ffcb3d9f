/* db.c: the database file: init, open (lock, pragmas, key check, migrations), close; sqlite
 * helpers and transactions; meta rows; the one row collector. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "broker/store/store_int.h"
#include "common/cleanup.h"
#include "common/limits.h"
#include "schema/schema.h"

/* ---- sqlite helpers ---- */

int store_sqlerr(int rc)
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

int store_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : store_sqlerr(rc);
}

int store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : store_sqlerr(rc);
}

/* ---- the statement cache ---- */

struct store_stmt_slot {
	const char *sql; /* the caller's literal (compared by address, then text) */
	sqlite3_stmt *st;
	bool busy;
};
struct store_stmt_cache {
	struct store_stmt_slot v[STORE_STMT_CACHE_MAX];
	size_t n;
	uint64_t prepared, hits, uncached;
};

int store_cached(store *s, const char *sql, struct store_cached *q)
{
	q->st = NULL;
	q->s = s;
	q->slot = -1;
	if (!s->stmts) {
		s->stmts = calloc(1, sizeof(*s->stmts));
		if (!s->stmts)
			return -ENOMEM;
	}
	struct store_stmt_cache *c = s->stmts;
	size_t i;
	for (i = 0; i < c->n; i++)
		if (c->v[i].sql == sql)
			break;
	if (i == c->n)
		for (i = 0; i < c->n; i++)
			if (strcmp(c->v[i].sql, sql) == 0)
				break;
	if (i < c->n && !c->v[i].busy) {
		c->v[i].busy = true;
		c->hits++;
		q->st = c->v[i].st;
		q->slot = (int)i;
		return 0;
	}
	int r = store_prepare(s->db, sql, &q->st);
	if (r < 0)
		return r;
	if (i == c->n && c->n < STORE_STMT_CACHE_MAX) {
		c->v[i] = (struct store_stmt_slot){.sql = sql, .st = q->st, .busy = true};
		c->n++;
		c->prepared++;
		q->slot = (int)i;
	} else {
		c->uncached++;
	}
	return 0;
}

void store_cached_release(struct store_cached *q)
{
	if (!q->st)
		return;
	if (q->slot < 0) {
		sqlite3_finalize(q->st);
	} else {
		/* sqlite3_reset repeats the last step's error, which that step already returned to
		 * the caller: the reset itself cannot fail in a way that matters here. */
		(void)sqlite3_reset(q->st);
		(void)sqlite3_clear_bindings(q->st);
		q->s->stmts->v[q->slot].busy = false;
	}
	q->st = NULL;
}

int store_cached_exec(store *s, const char *sql)
{
	_cleanup_cached_ struct store_cached q = {0};
	int r = store_cached(s, sql, &q);
	if (r < 0)
		return r;
	int rc = sqlite3_step(q.st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_sqlerr(rc);
}

int store_cached_end(store *s, int r)
{
	if (r < 0) {
		(void)store_cached_exec(s, "ROLLBACK");
		return r;
	}
	r = store_cached_exec(s, "COMMIT");
	if (r < 0)
		(void)store_cached_exec(s, "ROLLBACK");
	return r;
}

int store_cached_int(store *s, const char *sql, int64_t *v)
{
	_cleanup_cached_ struct store_cached q = {0};
	int r = store_cached(s, sql, &q);
	if (r < 0)
		return r;
	int rc = sqlite3_step(q.st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -EIO : store_sqlerr(rc);
	*v = sqlite3_column_int64(q.st, 0);
	return 0;
}

void store_stmt_cache_free(store *s)
{
	if (!s->stmts)
		return;
	for (size_t i = 0; i < s->stmts->n; i++)
		sqlite3_finalize(s->stmts->v[i].st);
	free(s->stmts);
	s->stmts = NULL;
}

void store_stmt_stats(const store *s, struct store_stmt_stats *st)
{
	*st = (struct store_stmt_stats){0};
	if (!s->stmts)
		return;
	st->prepared = s->stmts->prepared;
	st->hits = s->stmts->hits;
	st->uncached = s->stmts->uncached;
	st->cached_now = s->stmts->n;
}

/* Steps a statement expected to finish (no row). */
int store_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : store_sqlerr(rc);
}

/* Ends the transaction begun by the caller: COMMIT when r == 0, else ROLLBACK keeping r. */
int store_end(sqlite3 *db, int r)
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

int store_pragma_int(sqlite3 *db, const char *sql, int64_t *v)
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

int store_meta_get(sqlite3 *db, const char *key, uint8_t *buf, size_t cap, size_t *len)
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

int store_cached_meta_get(store *s, const char *key, uint8_t *buf, size_t cap, size_t *len)
{
	_cleanup_cached_ struct store_cached q = {0};
	int r = store_cached(s, "SELECT value FROM meta WHERE key = ?1", &q);
	sqlite3_stmt *st = q.st;
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

int store_meta_u64(sqlite3 *db, const char *key, uint64_t *v)
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

int store_meta_put(sqlite3 *db, const char *key, const void *val, size_t len)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(db,
	                      "INSERT INTO meta (key, value) VALUES (?1, ?2) "
	                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, val, (int)len, SQLITE_STATIC);
	return store_step_done(st);
}

int store_meta_put_u64(sqlite3 *db, const char *key, uint64_t v)
{
	struct store_buf b _cleanup_buf_ = {0};
	store_buf_u64(&b, v);
	if (b.oom)
		return -ENOMEM;
	return store_meta_put(db, key, b.p, b.len);
}

/* ---- the row collector ---- */

int store_rows_collect(store *s, sqlite3_stmt *st, size_t elem_size, store_row_fill_fn fill,
                       store_row_clear_fn clear, void **out, size_t *n)
{
	uint8_t *v = NULL;
	size_t cnt = 0, cap = 0;
	int r = 0, rc;
	*out = NULL;
	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			uint8_t *nv =
			    ncap > SIZE_MAX / elem_size ? NULL : realloc(v, ncap * elem_size);
			if (!nv) {
				r = -ENOMEM;
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		void *e = v + cnt * elem_size;
		memset(e, 0, elem_size);
		cnt++;
		r = fill(s, st, e);
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
	for (size_t i = 0; clear && i < cnt; i++)
		clear(v + i * elem_size);
	free(v);
	return r;
}

char *store_col_strdup(sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	return t ? strdup(t) : NULL;
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
	bool key_there = !o->pass_file && lstat(o->key_file, &st) == 0;
	if (key_there && !o->shared_key)
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
		r = key_there ? 0 : crypt_keyfile_create(o->key_file);
		if (r == 0) {
			created_key = !key_there;
			r = crypt_keyfile_read(o->key_file, &s.root_key);
		}
	}
	if (r < 0)
		goto out;

	/* The file exists with mode 0600 before SQLite opens it (whatever the umask: no moment in
	 * which it is readable by others); SQLite gives its -wal and -shm files the same mode. */
	int dbfd = open(dbpath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dbfd < 0) {
		r = -errno;
		goto out;
	}
	created_db = true;
	if (fchmod(dbfd, 0600) < 0) {
		r = -errno;
		close(dbfd);
		goto out;
	}
	close(dbfd);
	if (sqlite3_open_v2(dbpath, &s.db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW |
	                        SQLITE_OPEN_EXRESCODE,
	                    NULL) != SQLITE_OK) {
		r = -EIO;
		goto out;
	}
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

int store_lock(const char *state_dir, int *fd)
{
	*fd = -1;
	_cleanup_free_ char *lockpath = store_path(state_dir, STORE_LOCK_NAME);
	if (!lockpath)
		return -ENOMEM;
	int f = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (f < 0)
		return -errno;
	if (flock(f, LOCK_EX | LOCK_NB) < 0) {
		int r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(f);
		return r;
	}
	*fd = f;
	return 0;
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
	if (o->lock_fd > 0) {
		struct stat ls, ps;
		if (fstat(o->lock_fd, &ls) < 0 || lstat(lockpath, &ps) < 0 ||
		    ls.st_dev != ps.st_dev || ls.st_ino != ps.st_ino) {
			r = -EBADF; /* not this state dir's lock file */
			goto out;
		}
		s->lock_fd = fcntl(o->lock_fd, F_DUPFD_CLOEXEC, 3);
	} else {
		s->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (s->lock_fd < 0) {
		r = -errno;
		goto out;
	}
	/* An inherited lock is the same open file description: this succeeds when it holds it. */
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
	r = store_meta_u64(s->db, STORE_META_KEK_ROTATING, &s->kek_rotating);
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
	store_stmt_cache_free(s);
	if (s->db)
		sqlite3_close_v2(s->db);
	crypt_free(s->root_key);
	crypt_free(s->head_key);
	crypt_free(s->grant_key);
	crypt_free(s->cont_key);
	crypt_free(s->audit_key);
	crypt_free(s->life_key);
	crypt_free(s->label_key);
	crypt_free(s->orig_key);
	store_keys_free(s);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s);
}
