/* xrows.c: the store's sealed rows as bytes, for a cluster (store.h "cluster rows"): export,
 * pure bounded decoders, and imports checked with this node's keys. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "broker/store/store_int.h"
#include "common/cleanup.h"
#include "common/limits.h"
#include "common/names.h"

#define XROWS_SECRET_MAGIC "secretd/rows/secret/v2"        /* v2: with the lifecycle */
#define XROWS_GRANT_MAGIC "secretd/rows/grant/v2"          /* v2: with the generation */
#define XROWS_KEYRING_MAGIC "secretd/rows/keyring/v1"      /* a key file's store */
#define XROWS_KEYRING_PASS_MAGIC "secretd/rows/keyring/v2" /* v2: + the passphrase's KDF */
#define XROWS_KEKS_MAX 1024
#define STORE_META_CLUSTER_REV "cluster.rev"

void store_cluster_ids(store *s, bool on)
{
	if (s)
		s->cluster_ids = on;
}

int64_t store_cluster_id(void)
{
	uint64_t v;
	randombytes_buf(&v, sizeof(v));
	return (int64_t)((1ULL << 40) + v % ((1ULL << 62) - (1ULL << 40)));
}

/* ---- a bounded reader ---- */

struct xr {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

static uint64_t xr_u64(struct xr *r)
{
	if (r->bad || r->len - r->off < 8) {
		r->bad = true;
		return 0;
	}
	uint64_t v = store_be64(r->p + r->off);
	r->off += 8;
	return v;
}

static const uint8_t *xr_bytes(struct xr *r, size_t max, size_t *n)
{
	uint64_t l = xr_u64(r);
	if (r->bad || l > max || l > r->len - r->off) {
		r->bad = true;
		*n = 0;
		return NULL;
	}
	const uint8_t *q = r->p + r->off;
	r->off += l;
	*n = (size_t)l;
	return q;
}

/* A string field into buf (cap bytes with its NUL): no NUL byte inside. */
static int xr_str(struct xr *r, char *buf, size_t cap)
{
	size_t n;
	const uint8_t *q = xr_bytes(r, cap - 1, &n);
	if (!q || memchr(q, 0, n)) {
		r->bad = true;
		return -EBADMSG;
	}
	memcpy(buf, q, n);
	buf[n] = 0;
	return 0;
}

static char *xr_strdup(struct xr *r, size_t max)
{
	size_t n;
	const uint8_t *q = xr_bytes(r, max, &n);
	if (!q || memchr(q, 0, n)) {
		r->bad = true;
		return NULL;
	}
	return strndup((const char *)q, n);
}

static int xr_magic(struct xr *r, const char *magic)
{
	size_t n;
	const uint8_t *q = xr_bytes(r, 64, &n);
	return q && n == strlen(magic) && memcmp(q, magic, n) == 0 ? 0 : -EBADMSG;
}

/* ---- secrets ---- */

static void store_xsecret_clear(struct store_xsecret *x)
{
	free(x->v);
	x->v = NULL;
	x->nv = 0;
}

int store_xsecret_decode(const uint8_t *p, size_t len, struct store_xsecret *out)
{
	if (!p || !out)
		return -EINVAL;
	*out = (struct store_xsecret){0};
	if (len > STORE_XROWS_MAX)
		return -E2BIG;
	struct xr r = {.p = p, .len = len};
	if (xr_magic(&r, XROWS_SECRET_MAGIC) < 0)
		return -EBADMSG;
	uint64_t id = xr_u64(&r);
	if (xr_str(&r, out->name, sizeof(out->name)) < 0)
		return -EBADMSG;
	out->id = (int64_t)id;
	out->current = xr_u64(&r);
	out->keep = (int64_t)xr_u64(&r);
	out->created = (int64_t)xr_u64(&r);
	out->updated = (int64_t)xr_u64(&r);
	out->head = xr_bytes(&r, CRYPT_MAC_BYTES, &out->headlen);
	uint64_t nv = xr_u64(&r);
	if (r.bad || id == 0 || id > INT64_MAX || nv == 0 || nv > STORE_XROWS_VERSIONS_MAX ||
	    out->keep < 1 || out->keep > STORE_KEEP_MAX || out->headlen != CRYPT_MAC_BYTES ||
	    names_check(out->name, strlen(out->name), NULL) < 0)
		return -EBADMSG;
	out->v = calloc(nv, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	out->nv = nv;
	for (size_t i = 0; i < nv; i++) {
		struct store_xversion *v = &out->v[i];
		v->version = xr_u64(&r);
		v->kek_id = xr_u64(&r);
		v->wk = xr_bytes(&r, STORE_WRAPPED_KEY_BYTES, &v->wklen);
		v->ct = xr_bytes(&r, STORE_XROWS_MAX, &v->ctlen);
		v->size = xr_u64(&r);
		v->created = (int64_t)xr_u64(&r);
		if (r.bad || v->version == 0 || v->version > INT64_MAX || v->kek_id == 0 ||
		    v->kek_id > INT64_MAX || v->ctlen != v->size + CRYPT_SEAL_OVERHEAD ||
		    (i && v->version <= out->v[i - 1].version))
			goto bad;
	}
	struct store_xlife *l = &out->life;
	uint64_t gen = xr_u64(&r), length;
	l->expires = (int64_t)xr_u64(&r);
	l->every = (int64_t)xr_u64(&r);
	l->next = (int64_t)xr_u64(&r);
	length = xr_u64(&r);
	if (xr_str(&r, l->charset, sizeof(l->charset)) < 0)
		goto bad;
	uint64_t has_exec = xr_u64(&r);
	size_t ml = 0;
	const uint8_t *ex = xr_bytes(&r, STORE_XROWS_EXEC_MAX, &l->execlen);
	l->mac = xr_bytes(&r, CRYPT_MAC_BYTES, &ml);
	if (r.bad || gen > INT64_MAX || length > STORE_GEN_LENGTH_MAX || has_exec > 1 ||
	    l->expires < 0 || l->every < 0 || l->next < 0 || ml != CRYPT_MAC_BYTES ||
	    (has_exec && (l->execlen == 0 || memchr(ex, 0, l->execlen))) ||
	    (!has_exec && l->execlen))
		goto bad;
	l->gen = (int64_t)gen;
	l->length = (uint32_t)length;
	l->exec = has_exec ? ex : NULL;
	if (r.off != r.len)
		goto bad;
	return 0;
bad:
	free(out->v);
	out->v = NULL;
	out->nv = 0;
	return -EBADMSG;
}

int store_secret_export(store *s, const char *name, uint8_t **out, size_t *len)
{
	if (!s || !name || !out || !len)
		return -EINVAL;
	*out = NULL;
	*len = 0;
	struct store_row row;
	int r = store_secret_load(s, name, &row);
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *h = NULL, *vs = NULL;
	r = store_prepare(s->db, "SELECT created, updated, head FROM secrets WHERE id = ?1", &h);
	if (r < 0)
		return r;
	sqlite3_bind_int64(h, 1, row.id);
	if (sqlite3_step(h) != SQLITE_ROW)
		return -EIO;
	struct store_buf b = {0};
	store_buf_str(&b, XROWS_SECRET_MAGIC);
	store_buf_u64(&b, (uint64_t)row.id);
	store_buf_str(&b, name);
	store_buf_u64(&b, row.current);
	store_buf_u64(&b, (uint64_t)row.keep);
	store_buf_u64(&b, (uint64_t)sqlite3_column_int64(h, 0));
	store_buf_u64(&b, (uint64_t)sqlite3_column_int64(h, 1));
	store_buf_bytes(&b, sqlite3_column_blob(h, 2), (size_t)sqlite3_column_bytes(h, 2));
	r = store_prepare(s->db,
	                  "SELECT version, kek_id, wrapped_key, ciphertext, size, created FROM "
	                  "versions WHERE secret_id = ?1 ORDER BY version",
	                  &vs);
	if (r < 0) {
		store_buf_free(&b);
		return r;
	}
	sqlite3_bind_int64(vs, 1, row.id);
	struct store_buf vb = {0};
	uint64_t nv = 0;
	int rc;
	while ((rc = sqlite3_step(vs)) == SQLITE_ROW) {
		nv++;
		store_buf_u64(&vb, (uint64_t)sqlite3_column_int64(vs, 0));
		store_buf_u64(&vb, (uint64_t)sqlite3_column_int64(vs, 1));
		store_buf_bytes(&vb, sqlite3_column_blob(vs, 2),
		                (size_t)sqlite3_column_bytes(vs, 2));
		store_buf_bytes(&vb, sqlite3_column_blob(vs, 3),
		                (size_t)sqlite3_column_bytes(vs, 3));
		store_buf_u64(&vb, (uint64_t)sqlite3_column_int64(vs, 4));
		store_buf_u64(&vb, (uint64_t)sqlite3_column_int64(vs, 5));
		if (vb.len > STORE_XROWS_MAX)
			break;
	}
	store_buf_u64(&b, nv);
	store_buf_add(&b, vb.p, vb.len);
	bool oom = b.oom || vb.oom;
	store_buf_free(&vb);
	/* the lifecycle, its generation, and a MAC over both (the life key) */
	struct store_lifecycle l = {0};
	int64_t lgen = 0;
	uint8_t lmac[CRYPT_MAC_BYTES];
	int lr = store_life_load(s, row.id, name, &l);
	if (lr == 0)
		lr = store_life_gen(s, row.id, &lgen);
	l.gen = lgen;
	if (lr == 0)
		lr = store_life_mac(s, row.id, name, &l, lmac, NULL);
	if (lr == 0) {
		store_buf_u64(&b, (uint64_t)lgen);
		store_buf_u64(&b, (uint64_t)l.expires);
		store_buf_u64(&b, (uint64_t)l.every);
		store_buf_u64(&b, (uint64_t)l.next);
		store_buf_u64(&b, l.length);
		store_buf_str(&b, store_charset_name(l.charset));
		store_buf_u64(&b, l.exec ? 1 : 0);
		store_buf_str(&b, l.exec ? l.exec : "");
		store_buf_bytes(&b, lmac, sizeof(lmac));
		oom = oom || b.oom;
	}
	free(l.exec);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = store_sqlerr(rc);
	else if (lr < 0)
		r = lr;
	else if (oom)
		r = -ENOMEM;
	else if (b.len > STORE_XROWS_MAX)
		r = -EFBIG;
	if (r < 0) {
		store_buf_free(&b);
		return r;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

static const struct store_ximport store_ximport_none;

/* An imported secret's lifecycle: taken when newer than the one held (or forced: an undo). */
static int store_life_take(store *s, const struct store_xsecret *x, const struct store_lifecycle *l,
                           bool force)
{
	int64_t held = 0;
	int r = store_life_gen(s, x->id, &held);
	if (r < 0 || (!force && held >= l->gen))
		return r;
	r = store_life_put_gen(s, x->id, x->name, l, l->gen);
	if (r == 0)
		s->life_gen++;
	return r;
}

static int store_rev_tx(store *s, uint64_t rev)
{
	return rev ? store_meta_put_u64(s->db, STORE_META_CLUSTER_REV, rev) : 0;
}

/* The end of an applied change inside its transaction: its record and the revision. */
static int store_ximport_tx(store *s, const struct store_ximport *o, uint64_t version)
{
	int r = store_audit_tx(s, o->audit, version);
	return r == 0 ? store_rev_tx(s, o->rev) : r;
}

/* -ESTALE when a version x carries is held here wrapped by a newer key generation (a replay of
 * the row from before a key rotation re-wrapped it: a rollback). */
static int store_xsecret_older_wrap(store *s, const struct store_xsecret *x)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(
	    s->db, "SELECT kek_id FROM versions WHERE secret_id = ?1 AND version = ?2", &st);
	if (r < 0)
		return r;
	for (size_t i = 0; i < x->nv; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, x->id);
		sqlite3_bind_int64(st, 2, (int64_t)x->v[i].version);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 0) > x->v[i].kek_id)
			return -ESTALE;
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return store_sqlerr(rc);
	}
	return 0;
}

int store_secret_import(store *s, const uint8_t *p, size_t len, const struct store_ximport *o,
                        char **name_out, bool *changed)
{
	int rc;
	if (!s || !p)
		return -EINVAL;
	if (!o)
		o = &store_ximport_none;
	bool force = o->force;
	if (name_out)
		*name_out = NULL;
	if (changed)
		*changed = false;
	__attribute__((cleanup(store_xsecret_clear))) struct store_xsecret x;
	int r = store_xsecret_decode(p, len, &x);
	if (r < 0)
		return r;
	for (size_t i = 0; i < x.nv; i++)
		if (!store_kek_find(s, x.v[i].kek_id))
			return -EBADMSG; /* a generation this node does not have */
	/* The lifecycle and its generation under the life key's MAC. */
	_cleanup_free_ char *exec =
	    x.life.exec ? strndup((const char *)x.life.exec, x.life.execlen) : NULL;
	struct store_lifecycle life = {.expires = x.life.expires,
	                               .every = x.life.every,
	                               .next = x.life.next,
	                               .length = x.life.length,
	                               .exec = exec,
	                               .gen = x.life.gen};
	if (x.life.exec && !exec)
		return -ENOMEM;
	if (store_charset_parse(x.life.charset, &life.charset) < 0 ||
	    store_life_mac(s, x.id, x.name, &life, NULL, x.life.mac) < 0)
		return -EBADMSG;
	/* Already these rows? (the node's own change coming back through the watch) */
	_cleanup_free_ uint8_t *mine = NULL;
	size_t minelen = 0;
	r = store_secret_export(s, x.name, &mine, &minelen);
	if (r == 0 && minelen == len && memcmp(mine, p, len) == 0) {
		if (name_out && !(*name_out = strdup(x.name)))
			return -ENOMEM;
		return o->rev ? store_cluster_rev_set(s, o->rev) : 0;
	}
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *q = NULL, *up = NULL, *del = NULL, *ins = NULL, *gone = NULL;
	/* A secret this store deleted does not come back under its id (a replay of its rows), but
	 * for the undo of a deletion etcd refused. */
	r = store_prepare(s->db,
	                  force ? "DELETE FROM secrets_gone WHERE id = ?1"
	                        : "SELECT 1 FROM secrets_gone WHERE id = ?1",
	                  &gone);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(gone, 1, x.id);
	rc = sqlite3_step(gone);
	if (rc == SQLITE_ROW) {
		r = -EIDRM;
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = store_sqlerr(rc);
		goto out;
	}
	r = store_prepare(s->db, "SELECT id, name, current FROM secrets WHERE name = ?1 OR id = ?2",
	                  &q);
	if (r < 0)
		goto out;
	sqlite3_bind_text(q, 1, x.name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, x.id);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *n = (const char *)sqlite3_column_text(q, 1);
		if (sqlite3_column_int64(q, 0) != x.id || !n || strcmp(n, x.name) != 0) {
			r = -EEXIST; /* made on two nodes at once, or a row moved to another name */
			goto out;
		}
		int64_t held = 0;
		r = store_life_gen(s, x.id, &held);
		if (r < 0)
			goto out;
		if (!force &&
		    ((uint64_t)sqlite3_column_int64(q, 2) > x.current || (held > x.life.gen))) {
			r = -ESTALE;
			goto out;
		}
		if (!force) {
			r = store_xsecret_older_wrap(s, &x);
			if (r < 0)
				goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		r = store_sqlerr(rc);
		goto out;
	}
	r = store_prepare(s->db,
	                  "INSERT INTO secrets (id, name, current, keep, created, updated, head) "
	                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET "
	                  "current = ?3, keep = ?4, created = ?5, updated = ?6, head = ?7",
	                  &up);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(up, 1, x.id);
	sqlite3_bind_text(up, 2, x.name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(up, 3, (int64_t)x.current);
	sqlite3_bind_int64(up, 4, x.keep);
	sqlite3_bind_int64(up, 5, x.created);
	sqlite3_bind_int64(up, 6, x.updated);
	sqlite3_bind_blob(up, 7, x.head, (int)x.headlen, SQLITE_STATIC);
	r = store_step_done(up);
	if (r < 0)
		goto out;
	r = store_prepare(s->db, "DELETE FROM versions WHERE secret_id = ?1", &del);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(del, 1, x.id);
	r = store_step_done(del);
	if (r < 0)
		goto out;
	r = store_prepare(s->db,
	                  "INSERT INTO versions (secret_id, version, kek_id, wrapped_key, "
	                  "ciphertext, size, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	                  &ins);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < x.nv; i++) {
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, x.id);
		sqlite3_bind_int64(ins, 2, (int64_t)x.v[i].version);
		sqlite3_bind_int64(ins, 3, (int64_t)x.v[i].kek_id);
		sqlite3_bind_blob(ins, 4, x.v[i].wk, (int)x.v[i].wklen, SQLITE_STATIC);
		sqlite3_bind_blob64(ins, 5, x.v[i].ct, x.v[i].ctlen, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 6, (int64_t)x.v[i].size);
		sqlite3_bind_int64(ins, 7, x.v[i].created);
		r = store_step_done(ins);
		if (r < 0)
			goto out;
	}
	/* The head MAC, made with the cluster's MAC root, must hold over exactly these rows. */
	struct store_row row;
	r = store_secret_load(s, x.name, &row);
	if (r == 0)
		r = store_life_take(s, &x, &life, force);
	if (r == 0)
		r = store_ximport_tx(s, o, x.current);
out:
	r = store_end(s->db, r);
	if (r == 0 && changed)
		*changed = true;
	if (r == 0 && name_out && !(*name_out = strdup(x.name)))
		return -ENOMEM;
	return r;
}

int store_secret_forget(store *s, const char *name, const struct store_ximport *o)
{
	if (!s || store_name_ok(name) < 0)
		return -EINVAL;
	if (!o)
		o = &store_ximport_none;
	int r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL, *un = NULL;
	r = store_prepare(s->db, "DELETE FROM secrets WHERE name = ?1 RETURNING id", &st);
	int64_t id = 0;
	bool gone = false;
	if (r == 0) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			id = sqlite3_column_int64(st, 0);
			rc = sqlite3_step(st);
		} else {
			gone = rc == SQLITE_DONE;
		}
		if (rc != SQLITE_DONE)
			r = store_sqlerr(rc);
	}
	/* an undo of a secret etcd refused: its id never was in the cluster, not a deletion */
	if (r == 0 && !gone && o->force)
		r = store_prepare(s->db, "DELETE FROM secrets_gone WHERE id = ?1", &un);
	if (un) {
		sqlite3_bind_int64(un, 1, id);
		r = store_step_done(un);
	}
	if (r == 0)
		r = gone ? store_rev_tx(s, o->rev) : store_ximport_tx(s, o, 0);
	r = store_end(s->db, r);
	if (r == 0)
		s->life_gen++;
	return r == 0 && gone ? -ENOENT : r;
}

/* ---- grants ---- */

/* The highest generation this store held for (target, selector): -ENOENT when none. */
static int store_grant_gen_held(store *s, const char *target, const char *selector, int64_t *held)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(
	    s->db, "SELECT gen FROM grant_gens WHERE secret = ?1 AND selector = ?2", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, selector, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	*held = sqlite3_column_int64(st, 0);
	return 0;
}

static void store_xgrant_clear(struct store_grant *g)
{
	free(g->secret);
	free(g->selector);
	free(g->path);
	*g = (struct store_grant){0};
}

int store_xgrant_decode(const uint8_t *p, size_t len, struct store_grant *g, uint8_t mac[32])
{
	if (!p || !g || !mac)
		return -EINVAL;
	*g = (struct store_grant){0};
	if (len > STORE_XROWS_MAX)
		return -E2BIG;
	struct xr r = {.p = p, .len = len};
	if (xr_magic(&r, XROWS_GRANT_MAGIC) < 0)
		return -EBADMSG;
	uint64_t gen = xr_u64(&r);
	g->gen = (int64_t)(gen > INT64_MAX ? 0 : gen);
	g->id = (int64_t)xr_u64(&r);
	g->secret = xr_strdup(&r, SECRETD_NAME_MAX + 16);
	g->selector = xr_strdup(&r, SECRETD_SELECTOR_MAX);
	uint64_t has_path = xr_u64(&r);
	if (has_path == 1)
		g->path = xr_strdup(&r, SECRETD_PATH_MAX);
	uint64_t mode = xr_u64(&r), uid = xr_u64(&r), gid = xr_u64(&r), flags = xr_u64(&r);
	g->created = (int64_t)xr_u64(&r);
	size_t ml;
	const uint8_t *m = xr_bytes(&r, CRYPT_MAC_BYTES, &ml);
	g->mode = (uint32_t)mode;
	g->uid = (int64_t)uid;
	g->gid = (int64_t)gid;
	g->flags = (uint32_t)flags;
	if (r.bad || r.off != r.len || !g->secret || !g->selector || has_path > 1 ||
	    (has_path && !g->path) || g->id <= 0 || mode > 0777 || flags > UINT32_MAX ||
	    gen > INT64_MAX || ml != CRYPT_MAC_BYTES) {
		free(g->secret);
		free(g->selector);
		free(g->path);
		*g = (struct store_grant){0};
		return -EBADMSG;
	}
	memcpy(mac, m, CRYPT_MAC_BYTES);
	return 0;
}

int store_grant_export(store *s, const char *target, const char *selector, uint8_t **out,
                       size_t *len)
{
	if (!s || !target || !selector || !out || !len)
		return -EINVAL;
	*out = NULL;
	*len = 0;
	struct store_grant *v = NULL;
	size_t n = 0;
	int r = store_grants(s, &v, &n); /* MACs checked */
	if (r < 0)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].secret, target) != 0 || strcmp(v[i].selector, selector) != 0)
			continue;
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		r = store_prepare(s->db, "SELECT mac FROM grants WHERE id = ?1", &st);
		if (r < 0)
			break;
		sqlite3_bind_int64(st, 1, v[i].id);
		if (sqlite3_step(st) != SQLITE_ROW ||
		    sqlite3_column_bytes(st, 0) != CRYPT_MAC_BYTES) {
			r = -EIO;
			break;
		}
		struct store_buf b = {0};
		store_buf_str(&b, XROWS_GRANT_MAGIC);
		store_buf_u64(&b, (uint64_t)v[i].gen);
		store_buf_u64(&b, (uint64_t)v[i].id);
		store_buf_str(&b, v[i].secret);
		store_buf_str(&b, v[i].selector);
		store_buf_u64(&b, v[i].path ? 1 : 0);
		if (v[i].path)
			store_buf_str(&b, v[i].path);
		store_buf_u64(&b, v[i].mode);
		store_buf_u64(&b, (uint64_t)v[i].uid);
		store_buf_u64(&b, (uint64_t)v[i].gid);
		store_buf_u64(&b, v[i].flags);
		store_buf_u64(&b, (uint64_t)v[i].created);
		store_buf_bytes(&b, sqlite3_column_blob(st, 0), CRYPT_MAC_BYTES);
		if (b.oom) {
			store_buf_free(&b);
			r = -ENOMEM;
			break;
		}
		*out = b.p;
		*len = b.len;
		r = 0;
		break;
	}
	store_grants_free(v, n);
	return r;
}

int store_grant_import(store *s, const uint8_t *p, size_t len, const struct store_ximport *o,
                       bool *changed)
{
	if (!s || !p)
		return -EINVAL;
	if (!o)
		o = &store_ximport_none;
	if (changed)
		*changed = false;
	__attribute__((cleanup(store_xgrant_clear))) struct store_grant g;
	uint8_t mac[CRYPT_MAC_BYTES];
	int r = store_xgrant_decode(p, len, &g, mac);
	if (r < 0)
		return r;
	r = store_grant_check_mac(s, &g, mac);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *mine = NULL;
	size_t minelen = 0;
	if (store_grant_export(s, g.secret, g.selector, &mine, &minelen) == 0 && minelen == len &&
	    memcmp(mine, p, len) == 0)
		return o->rev ? store_cluster_rev_set(s, o->rev) : 0;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *del = NULL, *ins = NULL;
	/* Not newer than a generation this store held (live or revoked): a replay, unless this is
	 * the undo of a change etcd refused (its generation is then what it was before). */
	if (!o->force) {
		int64_t held = 0;
		r = store_grant_gen_held(s, g.secret, g.selector, &held);
		if (r == 0 && g.gen <= held)
			r = minelen ? -ESTALE : -EIDRM; /* an older form / a revoked row */
		if (r == -ENOENT)
			r = 0;
		if (r < 0)
			goto out;
	}
	r = store_prepare(
	    s->db, "DELETE FROM grants WHERE id = ?1 OR (secret = ?2 AND selector = ?3)", &del);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(del, 1, g.id);
	sqlite3_bind_text(del, 2, g.secret, -1, SQLITE_STATIC);
	sqlite3_bind_text(del, 3, g.selector, -1, SQLITE_STATIC);
	r = store_step_done(del);
	if (r < 0)
		goto out;
	r = store_prepare(s->db,
	                  "INSERT INTO grants (id, secret, selector, path, mode, uid, gid, flags, "
	                  "created, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	                  &ins);
	if (r < 0)
		goto out;
	sqlite3_bind_int64(ins, 1, g.id);
	sqlite3_bind_text(ins, 2, g.secret, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 3, g.selector, -1, SQLITE_STATIC);
	if (g.path)
		sqlite3_bind_text(ins, 4, g.path, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(ins, 4);
	sqlite3_bind_int64(ins, 5, g.mode);
	sqlite3_bind_int64(ins, 6, g.uid);
	sqlite3_bind_int64(ins, 7, g.gid);
	sqlite3_bind_int64(ins, 8, g.flags);
	sqlite3_bind_int64(ins, 9, g.created);
	sqlite3_bind_blob(ins, 10, mac, sizeof(mac), SQLITE_STATIC);
	r = store_step_done(ins);
	if (r == 0) /* newer than the one held, or (an undo) the one held before */
		r = store_grant_gen_put(s, g.secret, g.selector, g.gen);
	if (r == 0)
		r = store_ximport_tx(s, o, 0);
out:
	r = store_end(s->db, r);
	if (r == 0 && changed)
		*changed = true;
	return r;
}

int store_grant_forget(store *s, const char *target, const char *selector,
                       const struct store_ximport *o)
{
	if (!s || !target || !selector)
		return -EINVAL;
	if (!o)
		o = &store_ximport_none;
	int r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int64_t held = 0;
	/* an undo: the generation held goes back to the one before the grant's */
	if (o->force)
		r = store_grant_gen_held(s, target, selector, &held);
	if (r == 0)
		r = store_prepare(s->db, "DELETE FROM grants WHERE secret = ?1 AND selector = ?2",
		                  &st);
	if (r == 0) {
		sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, selector, -1, SQLITE_STATIC);
		r = store_step_done(st);
	}
	bool gone = r == 0 && sqlite3_changes(s->db) == 0;
	if (r == 0 && !gone && o->force)
		r = store_grant_gen_put(s, target, selector, held > 0 ? held - 1 : 0);
	if (r == 0)
		r = gone ? store_rev_tx(s, o->rev) : store_ximport_tx(s, o, 0);
	r = store_end(s->db, r);
	return r == 0 && gone ? -ENOENT : r;
}

/* ---- the keyring ---- */

int store_keyring_export(store *s, uint8_t **out, size_t *len)
{
	if (!s || !out || !len)
		return -EINVAL;
	*out = NULL;
	*len = 0;
	char kind[32] = {0};
	size_t kl;
	int r = store_meta_get(s->db, "root.kind", (uint8_t *)kind, sizeof(kind) - 1, &kl);
	if (r < 0)
		return r;
	uint8_t w[STORE_WRAPPED_KEY_BYTES];
	size_t wl;
	r = store_meta_get(s->db, "mac.root", w, sizeof(w), &wl);
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	r = store_prepare(s->db, "SELECT id, wrapped, created FROM keks ORDER BY id", &st);
	if (r < 0)
		return r;
	struct store_buf kb = {0};
	uint64_t n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		store_buf_u64(&kb, (uint64_t)sqlite3_column_int64(st, 0));
		store_buf_bytes(&kb, sqlite3_column_blob(st, 1),
		                (size_t)sqlite3_column_bytes(st, 1));
		store_buf_u64(&kb, (uint64_t)sqlite3_column_int64(st, 2));
	}
	/* A passphrase store's keyring carries the KDF's salt and limits: every node derives the
	 * same root key from the same passphrase with them. A key file's stays v1, byte for byte
	 * what clusters made before hold (a node compares the two). */
	bool pass = strcmp(kind, STORE_KIND_ARGON) == 0;
	uint8_t salt[CRYPT_SALT_BYTES];
	size_t sl = 0;
	uint64_t ops = 0, mem = 0;
	if (pass) {
		r = store_meta_get(s->db, "kdf.salt", salt, sizeof(salt), &sl);
		if (r == 0 && sl != sizeof(salt))
			r = -EBADMSG;
		if (r == 0)
			r = store_meta_u64(s->db, "kdf.opslimit", &ops);
		if (r == 0)
			r = store_meta_u64(s->db, "kdf.memlimit", &mem);
		if (r < 0)
			return r;
	}
	struct store_buf b = {0};
	store_buf_str(&b, pass ? XROWS_KEYRING_PASS_MAGIC : XROWS_KEYRING_MAGIC);
	store_buf_str(&b, kind);
	if (pass) {
		store_buf_bytes(&b, salt, sl);
		store_buf_u64(&b, ops);
		store_buf_u64(&b, mem);
	}
	store_buf_bytes(&b, w, wl);
	store_buf_u64(&b, n);
	store_buf_add(&b, kb.p, kb.len);
	bool oom = b.oom || kb.oom;
	store_buf_free(&kb);
	if (rc != SQLITE_DONE || oom) {
		store_buf_free(&b);
		return oom ? -ENOMEM : store_sqlerr(rc);
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

int store_xkeyring_decode(const uint8_t *p, size_t len, struct store_xkeyring *out)
{
	if (!p || !out)
		return -EINVAL;
	*out = (struct store_xkeyring){0};
	if (len > STORE_XROWS_MAX)
		return -E2BIG;
	struct xr x = {.p = p, .len = len};
	bool v2 = xr_magic(&x, XROWS_KEYRING_PASS_MAGIC) == 0;
	if (!v2) {
		x.off = 0;
		x.bad = false;
		if (xr_magic(&x, XROWS_KEYRING_MAGIC) < 0)
			return -EBADMSG;
	}
	if (xr_str(&x, out->kind, sizeof(out->kind)) < 0 ||
	    strcmp(out->kind, v2 ? STORE_KIND_ARGON : STORE_KIND_KEYFILE) != 0)
		return -EBADMSG;
	if (v2) {
		size_t sl;
		out->salt = xr_bytes(&x, CRYPT_SALT_BYTES, &sl);
		out->ops = xr_u64(&x);
		out->mem = xr_u64(&x);
		if (x.bad || sl != CRYPT_SALT_BYTES || out->ops < crypto_pwhash_OPSLIMIT_MIN ||
		    out->ops > crypto_pwhash_OPSLIMIT_MAX ||
		    out->mem < crypto_pwhash_MEMLIMIT_MIN || out->mem > STORE_KDF_MEMLIMIT_CAP)
			return -EBADMSG;
	}
	size_t wl;
	out->macroot = xr_bytes(&x, STORE_WRAPPED_KEY_BYTES, &wl);
	uint64_t n = xr_u64(&x);
	if (x.bad || wl != STORE_WRAPPED_KEY_BYTES || n == 0 || n > XROWS_KEKS_MAX)
		return -EBADMSG;
	out->n = (size_t)n;
	out->keks = p + x.off;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t id = xr_u64(&x);
		size_t kwl;
		xr_bytes(&x, STORE_WRAPPED_KEY_BYTES, &kwl);
		xr_u64(&x);
		if (x.bad || kwl != STORE_WRAPPED_KEY_BYTES || id == 0 || id > INT64_MAX)
			return -EBADMSG;
	}
	if (x.off != x.len)
		return -EBADMSG;
	out->kekslen = (size_t)(p + x.off - out->keks);
	return 0;
}

/* The next sealed key generation of a decoded keyring's keks (x over keks, kekslen: the
 * decoder checked every entry's sizes). */
static void store_xkeyring_kek(struct xr *x, uint64_t *id, const uint8_t **w, uint64_t *created)
{
	size_t wl;
	*id = xr_u64(x);
	*w = xr_bytes(x, STORE_WRAPPED_KEY_BYTES, &wl);
	*created = xr_u64(x);
}

int store_keyring_adopt(store *s, const uint8_t *p, size_t len, const char *pass_file)
{
	if (!s || !p)
		return -EINVAL;
	struct store_xkeyring kr;
	int r = store_xkeyring_decode(p, len, &kr);
	if (r < 0)
		return r;
	/* This store must be of the cluster's kind: a key file opens a key file's keyring, a
	 * passphrase a passphrase's. */
	char mykind[32] = {0};
	size_t ml;
	r = store_meta_get(s->db, "root.kind", (uint8_t *)mykind, sizeof(mykind) - 1, &ml);
	if (r < 0)
		return r;
	if (strcmp(mykind, kr.kind) != 0 || (kr.salt && !pass_file))
		return -EINVAL;
	/* A passphrase store derives the cluster's root key with the cluster's salt (its own
	 * init drew another salt); the salt and limits replace the store's with the keyring. */
	_cleanup_secret_bytes_ uint8_t *root = NULL;
	if (kr.salt) {
		r = crypt_passphrase_derive(pass_file, kr.salt, kr.ops, (size_t)kr.mem, &root);
		if (r < 0)
			return r;
	}
	const uint8_t *rk = root ? root : s->root_key;
	_cleanup_secret_bytes_ uint8_t *k = crypt_alloc(CRYPT_KEY_BYTES);
	if (!k)
		return -ENOMEM;
	if (crypt_open(rk, (const uint8_t *)store_ad_macroot, strlen(store_ad_macroot), kr.macroot,
	               STORE_WRAPPED_KEY_BYTES, k) < 0)
		return -EKEYREJECTED;
	struct xr x = {.p = kr.keks, .len = kr.kekslen};
	for (size_t i = 0; i < kr.n; i++) {
		uint64_t id, created;
		const uint8_t *kw;
		store_xkeyring_kek(&x, &id, &kw, &created);
		char ad[32];
		store_ad_kek(ad, sizeof(ad), id);
		if (crypt_open(rk, (const uint8_t *)ad, strlen(ad), kw, STORE_WRAPPED_KEY_BYTES,
		               k) < 0)
			return -EKEYREJECTED;
	}
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *cnt = NULL, *ins = NULL;
	r = store_prepare(s->db,
	                  "SELECT (SELECT count(*) FROM secrets) + (SELECT count(*) FROM grants) + "
	                  "(SELECT count(*) FROM templates) + (SELECT count(*) FROM audit)",
	                  &cnt);
	if (r < 0)
		goto out;
	if (sqlite3_step(cnt) != SQLITE_ROW) {
		r = -EIO;
		goto out;
	}
	if (sqlite3_column_int64(cnt, 0) != 0) {
		r = -ENOTEMPTY;
		goto out;
	}
	r = store_meta_put(s->db, "mac.root", kr.macroot, STORE_WRAPPED_KEY_BYTES);
	if (r == 0 && kr.salt)
		r = store_meta_put(s->db, "kdf.salt", kr.salt, CRYPT_SALT_BYTES);
	if (r == 0 && kr.salt)
		r = store_meta_put_u64(s->db, "kdf.opslimit", kr.ops);
	if (r == 0 && kr.salt)
		r = store_meta_put_u64(s->db, "kdf.memlimit", kr.mem);
	if (r == 0)
		r = store_exec(s->db, "DELETE FROM keks");
	if (r == 0)
		r = store_prepare(
		    s->db, "INSERT INTO keks (id, wrapped, created) VALUES (?1, ?2, ?3)", &ins);
	x = (struct xr){.p = kr.keks, .len = kr.kekslen};
	for (size_t i = 0; r == 0 && i < kr.n; i++) {
		uint64_t id, created;
		const uint8_t *kw;
		store_xkeyring_kek(&x, &id, &kw, &created);
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, (int64_t)id);
		sqlite3_bind_blob(ins, 2, kw, STORE_WRAPPED_KEY_BYTES, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, (int64_t)created);
		r = store_step_done(ins);
	}
out:
	return store_end(s->db, r);
}

/* This store's keyring decoded (*mine: its bytes, free()). */
static int store_keyring_mine(store *s, uint8_t **mine, struct store_xkeyring *kr)
{
	size_t len = 0;
	int r = store_keyring_export(s, mine, &len);
	if (r == 0)
		r = store_xkeyring_decode(*mine, len, kr);
	return r;
}

/* The sealed generation id of a decoded keyring: its bytes (w) and created, or -ENOENT. */
static int store_xkeyring_find(const struct store_xkeyring *kr, uint64_t id, const uint8_t **w,
                               uint64_t *created)
{
	struct xr x = {.p = kr->keks, .len = kr->kekslen};
	for (size_t i = 0; i < kr->n; i++) {
		uint64_t kid, c;
		const uint8_t *kw;
		store_xkeyring_kek(&x, &kid, &kw, &c);
		if (kid == id) {
			*w = kw;
			*created = c;
			return 0;
		}
	}
	return -ENOENT;
}

/* Whether a row of this store (a secret's or template's version) uses generation id. */
static int store_kek_used(store *s, uint64_t id, bool *used)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db,
	                      "SELECT EXISTS (SELECT 1 FROM versions WHERE kek_id = ?1) OR "
	                      "EXISTS (SELECT 1 FROM template_versions WHERE kek_id = ?1)",
	                      &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, (int64_t)id);
	if (sqlite3_step(st) != SQLITE_ROW)
		return -EIO;
	*used = sqlite3_column_int(st, 0) != 0;
	return 0;
}

static int store_keyring_update_tx(store *s, const struct store_xkeyring *kr,
                                   const struct store_xkeyring *my, uint64_t top,
                                   const struct store_ximport *o, size_t *kept, bool *changed)
{
	_cleanup_stmt_ sqlite3_stmt *ins = NULL, *del = NULL;
	int r = store_prepare(s->db, "INSERT INTO keks (id, wrapped, created) VALUES (?1, ?2, ?3)",
	                      &ins);
	if (r == 0)
		r = store_prepare(s->db, "DELETE FROM keks WHERE id = ?1", &del);
	struct xr x = {.p = kr->keks, .len = kr->kekslen};
	for (size_t i = 0; r == 0 && i < kr->n; i++) {
		uint64_t id, created;
		const uint8_t *kw;
		store_xkeyring_kek(&x, &id, &kw, &created);
		if (id <= top)
			continue; /* held: checked byte for byte by the caller */
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, (int64_t)id);
		sqlite3_bind_blob(ins, 2, kw, STORE_WRAPPED_KEY_BYTES, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, (int64_t)created);
		r = store_step_done(ins);
		*changed = true;
	}
	/* the generations held here that the keyring dropped: gone unless a row uses one */
	x = (struct xr){.p = my->keks, .len = my->kekslen};
	for (size_t i = 0; r == 0 && i < my->n; i++) {
		uint64_t id, created, c2;
		const uint8_t *kw, *w2;
		store_xkeyring_kek(&x, &id, &kw, &created);
		if (store_xkeyring_find(kr, id, &w2, &c2) == 0)
			continue;
		bool used = true;
		r = store_kek_used(s, id, &used);
		if (r < 0 || (used && ++*kept) || id == s->kek_rotating)
			continue;
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, (int64_t)id);
		r = store_step_done(del);
		*changed = true;
	}
	if (r == 0 && *changed)
		r = store_ximport_tx(s, o, 0);
	else if (r == 0)
		r = store_rev_tx(s, o->rev);
	return r;
}

int store_keyring_update(store *s, const uint8_t *p, size_t len, const struct store_ximport *o,
                         size_t *kept, bool *changed)
{
	if (!s || !p)
		return -EINVAL;
	if (!o)
		o = &store_ximport_none;
	size_t nkept = 0;
	bool ch = false;
	if (kept)
		*kept = 0;
	if (changed)
		*changed = false;
	struct store_xkeyring kr, my;
	int r = store_xkeyring_decode(p, len, &kr);
	if (r < 0)
		return r;
	_cleanup_free_ uint8_t *mine = NULL;
	r = store_keyring_mine(s, &mine, &my);
	if (r < 0)
		return r;
	/* the same root: kind, KDF and sealed MAC root byte for byte */
	if (strcmp(kr.kind, my.kind) != 0 || !kr.salt != !my.salt ||
	    (kr.salt && (memcmp(kr.salt, my.salt, CRYPT_SALT_BYTES) != 0 || kr.ops != my.ops ||
	                 kr.mem != my.mem)) ||
	    memcmp(kr.macroot, my.macroot, STORE_WRAPPED_KEY_BYTES) != 0)
		return -EBADMSG;
	uint64_t top = 0;
	struct xr x = {.p = my.keks, .len = my.kekslen};
	for (size_t i = 0; i < my.n; i++) {
		uint64_t id, created, c2;
		const uint8_t *kw, *w2;
		store_xkeyring_kek(&x, &id, &kw, &created);
		top = id > top ? id : top;
		if (store_xkeyring_find(&kr, id, &w2, &c2) == 0 &&
		    (c2 != created || memcmp(w2, kw, STORE_WRAPPED_KEY_BYTES) != 0))
			return -EBADMSG; /* a generation held here, altered */
	}
	/* a keyring never takes away the newest generation (new data keys use it) */
	uint64_t ktop = 0;
	x = (struct xr){.p = kr.keks, .len = kr.kekslen};
	for (size_t i = 0; i < kr.n; i++) {
		uint64_t id, created;
		const uint8_t *kw;
		store_xkeyring_kek(&x, &id, &kw, &created);
		ktop = id > ktop ? id : ktop;
	}
	if (ktop < top)
		return -ESTALE; /* an older keyring replayed */
	/* new generations: numbered above every one held here, sealed under this root key */
	_cleanup_secret_bytes_ uint8_t *k = crypt_alloc(CRYPT_KEY_BYTES);
	if (!k)
		return -ENOMEM;
	x = (struct xr){.p = kr.keks, .len = kr.kekslen};
	for (size_t i = 0; i < kr.n; i++) {
		uint64_t id, created;
		const uint8_t *kw, *w2;
		store_xkeyring_kek(&x, &id, &kw, &created);
		if (store_xkeyring_find(&my, id, &w2, &created) == 0)
			continue;
		if (id <= top)
			return -ESTALE; /* an older keyring (a generation dropped here) replayed */
		char ad[32];
		store_ad_kek(ad, sizeof(ad), id);
		if (crypt_open(s->root_key, (const uint8_t *)ad, strlen(ad), kw,
		               STORE_WRAPPED_KEY_BYTES, k) < 0)
			return -EKEYREJECTED;
	}
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = store_keyring_update_tx(s, &kr, &my, top, o, &nkept, &ch);
	r = store_end(s->db, r);
	if (r == 0 && ch)
		r = store_keks_load(s); /* the newest generation wraps new data keys from now on */
	if (r == 0) {
		if (kept)
			*kept = nkept;
		if (changed)
			*changed = ch;
	}
	return r;
}

int store_cluster_rev(store *s, uint64_t *rev)
{
	if (!s || !rev)
		return -EINVAL;
	*rev = 0;
	int r = store_meta_u64(s->db, STORE_META_CLUSTER_REV, rev);
	return r == -EBADMSG ? (*rev = 0, 0) : r;
}

int store_cluster_rev_set(store *s, uint64_t rev)
{
	if (!s)
		return -EINVAL;
	return store_meta_put_u64(s->db, STORE_META_CLUSTER_REV, rev);
}

int store_cluster_mac(store *s, const uint8_t *msg, size_t len, uint8_t mac[32],
                      const uint8_t *check)
{
	if (!s || !s->orig_key || (!msg && len) || !mac)
		return -EINVAL;
	if (check)
		return crypt_mac_verify(s->orig_key, msg, len, check);
	crypt_mac(s->orig_key, msg, len, mac);
	return 0;
}
