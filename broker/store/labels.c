/* labels.c: labels on secrets (schema 007). A secret's whole label set is one row whose MAC
 * (label subkey) covers the secret's id and name and the set's encoding (codec.c): a row edited,
 * added or moved to another secret by someone who only writes the database file fails its check
 * (-EBADMSG), like grants and lifecycle rows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/store/store_int.h"
#include "common/cleanup.h"
#include "common/labels.h"

void store_labels_free(struct store_label *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
	free(v);
}

static int store_labels_mac(store *s, int64_t id, const char *name, const uint8_t *enc,
                            size_t enclen, uint8_t mac[CRYPT_MAC_BYTES])
{
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_codec_labels_mac(&b, id, name, enc, enclen);
	if (r < 0)
		return r;
	crypt_mac(s->label_key, b.p, b.len, mac);
	return 0;
}

int store_labels_row(store *s, sqlite3_stmt *st, int col, int64_t id, const char *name,
                     struct store_label **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	bool has_enc = sqlite3_column_type(st, col) != SQLITE_NULL;
	bool has_mac = sqlite3_column_type(st, col + 1) != SQLITE_NULL;
	if (!has_enc && !has_mac)
		return 0;
	const uint8_t *enc = sqlite3_column_blob(st, col);
	size_t enclen = (size_t)sqlite3_column_bytes(st, col);
	const uint8_t *mac = sqlite3_column_blob(st, col + 1);
	if (!has_enc || !enc || !mac || sqlite3_column_bytes(st, col + 1) != CRYPT_MAC_BYTES)
		return -EBADMSG;
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_codec_labels_mac(&b, id, name, enc, enclen);
	if (r < 0)
		return r;
	if (crypt_mac_verify(s->label_key, b.p, b.len, mac) < 0)
		return -EBADMSG;
	return store_codec_labels_parse(enc, enclen, out, n);
}

/* Secret id's labels (inside the caller's transaction). */
static int store_labels_load(store *s, int64_t id, const char *name, struct store_label **out,
                             size_t *n)
{
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r =
	    store_prepare(s->db, "SELECT labels, mac FROM secret_labels WHERE secret_id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_sqlerr(rc);
	return store_labels_row(s, st, 0, id, name, out, n);
}

/* Writes secret id's label set (v sorted by key; none: the row is deleted). */
static int store_labels_write(store *s, int64_t id, const char *name, const struct store_label *v,
                              size_t n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;
	if (n == 0) {
		r = store_prepare(s->db, "DELETE FROM secret_labels WHERE secret_id = ?1", &st);
		if (r < 0)
			return r;
		sqlite3_bind_int64(st, 1, id);
		return store_step_done(st);
	}
	struct store_buf enc _cleanup_buf_ = {0};
	r = store_codec_labels(&enc, v, n);
	if (r < 0)
		return r;
	uint8_t mac[CRYPT_MAC_BYTES];
	r = store_labels_mac(s, id, name, enc.p, enc.len, mac);
	if (r < 0)
		return r;
	r = store_prepare(s->db,
	                  "INSERT OR REPLACE INTO secret_labels (secret_id, labels, mac) "
	                  "VALUES (?1, ?2, ?3)",
	                  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_blob(st, 2, enc.p, (int)enc.len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, mac, sizeof(mac), SQLITE_STATIC);
	return store_step_done(st);
}

/* Checks a change against the label rules: every key and value valid, no key set twice or both
 * set and removed. */
static int store_labels_change_check(const struct store_label_change *c)
{
	if ((c->nset && !c->set) || (c->nremove && !c->remove) || c->nset > LABELS_MAX ||
	    c->nremove > LABELS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < c->nset; i++) {
		const char *k = c->set[i].key, *v = c->set[i].value;
		if (!k || !v || labels_key_check(k, strlen(k), NULL) < 0 ||
		    labels_value_check(v, strlen(v), NULL) < 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->set[j].key, k) == 0)
				return -EINVAL;
		for (size_t j = 0; j < c->nremove; j++)
			if (c->remove[j] && strcmp(c->remove[j], k) == 0)
				return -EINVAL;
	}
	for (size_t i = 0; i < c->nremove; i++)
		if (!c->remove[i] || labels_key_check(c->remove[i], strlen(c->remove[i]), NULL) < 0)
			return -EINVAL;
	return 0;
}

static int store_label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_label *)a)->key, ((const struct store_label *)b)->key);
}

/* The set after c: cur (n, sorted) with c's keys set and removed, sorted, into *out (shallow:
 * its strings point into cur and c; free() only the array). -E2BIG past LABELS_MAX. */
static int store_labels_merge(const struct store_label *cur, size_t n,
                              const struct store_label_change *c, struct store_label **out,
                              size_t *nout)
{
	struct store_label *m = calloc(n + c->nset + 1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool drop = false;
		for (size_t j = 0; j < c->nremove && !drop; j++)
			drop = strcmp(c->remove[j], cur[i].key) == 0;
		for (size_t j = 0; j < c->nset && !drop; j++)
			drop = strcmp(c->set[j].key, cur[i].key) == 0;
		if (!drop)
			m[k++] = cur[i];
	}
	for (size_t j = 0; j < c->nset; j++)
		m[k++] = c->set[j];
	if (k > LABELS_MAX) {
		free(m);
		return -E2BIG;
	}
	qsort(m, k, sizeof(*m), store_label_cmp);
	*out = m;
	*nout = k;
	return 0;
}

int store_labels_apply_tx(store *s, int64_t id, const char *name,
                          const struct store_label_change *c)
{
	int r = store_labels_change_check(c);
	if (r < 0)
		return r;
	struct store_label *cur = NULL;
	size_t n = 0;
	r = store_labels_load(s, id, name, &cur, &n);
	if (r < 0)
		return r;
	struct store_label *m = NULL;
	size_t k = 0;
	r = store_labels_merge(cur, n, c, &m, &k);
	if (r == 0)
		r = store_labels_write(s, id, name, m, k);
	free(m);
	store_labels_free(cur, n);
	return r;
}

int store_labels(store *s, const char *name, struct store_label **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	r = store_exec(s->db, "BEGIN");
	if (r < 0)
		return r;
	struct store_row row;
	r = store_secret_load(s, name, &row);
	if (r == 0)
		r = store_labels_load(s, row.id, name, out, n);
	/* A read transaction: its ROLLBACK loses nothing; its failure is the read's. */
	int rr = store_exec(s->db, "ROLLBACK");
	if (r == 0 && rr < 0) {
		store_labels_free(*out, *n);
		*out = NULL;
		*n = 0;
		r = rr;
	}
	return r;
}

int store_labels_change(store *s, const char *name, const struct store_label_change *c,
                        const struct store_audit *audit, struct store_label **out, size_t *n)
{
	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!s || !c)
		return -EINVAL;
	int r = store_name_ok(name);
	if (r < 0)
		return r;
	r = store_labels_change_check(c);
	if (r < 0)
		return r;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	struct store_row row;
	r = store_secret_load(s, name, &row);
	if (r == 0)
		r = store_labels_apply_tx(s, row.id, name, c);
	if (r == 0)
		r = store_audit_tx(s, audit, row.current);
	struct store_label *after = NULL;
	size_t na = 0;
	if (r == 0 && out && n)
		r = store_labels_load(s, row.id, name, &after, &na);
	r = store_end(s->db, r);
	if (r < 0) {
		store_labels_free(after, na);
		return r;
	}
	if (out && n) {
		*out = after;
		*n = na;
	}
	return 0;
}
