/* auditlog.c: the audit trail: a hash chain of MAC'd records (each carries the previous one's
 * MAC; meta audit.head holds the last), its signed retention checkpoint and pruning, listing,
 * verification, and the anchor tag (the anchor file format itself is anchor.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "broker/store/store_int.h"

/* ---- audit chain ---- */

/* The chain's head as the store last wrote it: (seq, mac), or (0, zeros) for an empty chain. */
static int store_audit_head(store *s, uint64_t *seq, uint8_t mac[CRYPT_MAC_BYTES], bool *found)
{
	uint8_t h[STORE_AUDIT_HEAD_LEN];
	size_t n = 0;
	int r = store_cached_meta_get(s, STORE_META_AUDIT_HEAD, h, sizeof(h), &n);
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
	store_codec_audit_head_parse(h, seq, mac);
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
	r = store_cached_int(s, "SELECT coalesce(max(seq), 0) FROM audit", &maxseq);
	if (r < 0)
		return r;
	if ((uint64_t)maxseq > seq)
		seq = (uint64_t)maxseq;
	_cleanup_cached_ struct store_cached q_ins = {0};
	_cleanup_cached_ struct store_cached q_hd = {0};
	r = store_cached(s,
	                 "INSERT INTO audit (seq, time, actor, pid, exe, action, secret, version, "
	                 "result, prev_mac, mac, detail, count) "
	                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	                 &q_ins);
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
		r = store_codec_audit(&b, seq, &row, prev);
		if (r < 0)
			return r;
		uint8_t mac[CRYPT_MAC_BYTES];
		crypt_mac(s->audit_key, b.p, b.len, mac);
		sqlite3_reset(q_ins.st);
		sqlite3_bind_int64(q_ins.st, 1, (int64_t)seq);
		sqlite3_bind_int64(q_ins.st, 2, row.time);
		sqlite3_bind_text(q_ins.st, 3, row.actor, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q_ins.st, 4, row.pid);
		sqlite3_bind_text(q_ins.st, 5, row.exe, -1, SQLITE_STATIC);
		sqlite3_bind_text(q_ins.st, 6, row.action, -1, SQLITE_STATIC);
		if (row.secret)
			sqlite3_bind_text(q_ins.st, 7, row.secret, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q_ins.st, 7);
		sqlite3_bind_int64(q_ins.st, 8, (int64_t)row.version);
		sqlite3_bind_text(q_ins.st, 9, row.result, -1, SQLITE_STATIC);
		sqlite3_bind_blob(q_ins.st, 10, prev, CRYPT_MAC_BYTES, SQLITE_TRANSIENT);
		sqlite3_bind_blob(q_ins.st, 11, mac, CRYPT_MAC_BYTES, SQLITE_TRANSIENT);
		if (row.detail)
			sqlite3_bind_text(q_ins.st, 12, row.detail, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q_ins.st, 12);
		sqlite3_bind_int64(q_ins.st, 13, (int64_t)row.count);
		r = store_step_done(q_ins.st);
		if (r < 0)
			return r;
		memcpy(prev, mac, CRYPT_MAC_BYTES);
	}
	struct store_buf h _cleanup_buf_ = {0};
	r = store_codec_audit_head_value(&h, seq, prev);
	if (r < 0)
		return r;
	r = store_cached(s, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", &q_hd);
	if (r < 0)
		return r;
	sqlite3_bind_text(q_hd.st, 1, STORE_META_AUDIT_HEAD, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q_hd.st, 2, h.p, (int)h.len, SQLITE_STATIC);
	return store_step_done(q_hd.st);
}

int store_audit_tx(store *s, const struct store_audit *a, uint64_t version)
{
	return store_audit_write(s, a, a ? 1 : 0, version);
}

/* ---- audit checkpoint (retention) ---- */

static int store_cp_tag(store *s, const struct store_audit_checkpoint *cp, uint8_t *tag,
                        const uint8_t *check)
{
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_codec_checkpoint(&b, cp);
	if (r < 0)
		return r;
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
	int r = store_meta_get(s->db, STORE_META_AUDIT_CP, v, sizeof(v), &n);
	if (r == -EBADMSG && n == 0)
		return 0; /* no row (or an oversized one: then n stays 0 too, see below) */
	if (r < 0)
		return r;
	*found = true;
	if (n != sizeof(v))
		return -EBADMSG;
	const uint8_t *tag = store_codec_checkpoint_parse(v, cp);
	return store_cp_tag(s, cp, NULL, tag);
}

static int store_cp_write(store *s, const struct store_audit_checkpoint *cp)
{
	uint8_t tag[CRYPT_MAC_BYTES];
	int r = store_cp_tag(s, cp, tag, NULL);
	if (r < 0)
		return r;
	struct store_buf b _cleanup_buf_ = {0};
	r = store_codec_checkpoint_value(&b, cp, tag);
	if (r < 0)
		return r;
	return store_meta_put(s->db, STORE_META_AUDIT_CP, b.p, b.len);
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
	int64_t cut = 0;  /* prune seq <= cut */
	if (before > 0) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		r = store_prepare(s->db,
		                  "SELECT coalesce(min(seq), ?2 + 1) - 1 FROM audit "
		                  "WHERE time >= ?1",
		                  &st);
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

int store_audit_prune(store *s, int64_t before, uint64_t keep_max, size_t batch, uint64_t *pruned,
                      bool *more)
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
	int r = store_cached_exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	return store_cached_end(s, store_audit_write(s, recs, n, 0));
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

static void store_audit_row_clear_v(void *elem)
{
	store_audit_row_clear(elem);
}

static int store_audit_row_fill(store *s, sqlite3_stmt *st, void *elem)
{
	return store_audit_row_read(st, elem);
}

int store_audit_list(store *s, uint64_t after_seq, int64_t since_time, size_t limit,
                     struct store_audit_row **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(
	    s->db,
	    "SELECT seq, time, actor, pid, exe, action, secret, version, result, detail, "
	    "count FROM audit WHERE seq > ?1 AND time >= ?2 ORDER BY seq LIMIT ?3",
	    &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, (int64_t)after_seq);
	sqlite3_bind_int64(st, 2, since_time);
	sqlite3_bind_int64(st, 3, limit ? (int64_t)limit : -1);
	void *v;
	r = store_rows_collect(s, st, sizeof(**out), store_audit_row_fill, store_audit_row_clear_v,
	                       &v, n);
	*out = v;
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
	int r = store_codec_anchor(&b, seq, mac);
	if (r < 0)
		return r;
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
			r = store_codec_audit(&b, row.seq, &row, sizes ? pm : prev);
		uint64_t seq = row.seq, count = row.count;
		bool refused = r == 0 && strcmp(row.result, STORE_AUDIT_REFUSED) == 0;
		store_audit_row_clear(&row);
		if (r < 0)
			goto out;
		if (seq != expect) {
			vi->bad_seq = expect;
			vi->reason = seq > expect
			                 ? (found && expect == cp.seq + 1
			                        ? "records missing after the retention checkpoint"
			                        : "record missing (sequence gap)")
			                 : "sequence out of order";
		} else if (!sizes || crypt_mac_verify(s->audit_key, b.p, b.len, mac) < 0) {
			vi->bad_seq = seq;
			vi->reason =
			    "MAC mismatch (record altered, moved, or written without the key)";
		} else if (sodium_memcmp(pm, prev, CRYPT_MAC_BYTES) != 0) {
			vi->bad_seq = seq;
			vi->reason =
			    found && seq == cp.seq + 1
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
