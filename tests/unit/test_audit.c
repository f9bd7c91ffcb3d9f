/* Unit tests for the audit trail: broker/store's hash chain (store_audit_*, records written in
 * the transaction of the change they record) and broker/audit's batcher. Tampering with the
 * database (edit, delete, swap, a chain recomputed without the key, a truncated tail) is found
 * and the right record named. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "broker/engine/audit.h"
#include "tests/unit/storefix.h"
#include "broker/store/store.h"
#include "tests/unit/runner.h"

static void raw(const char *sql)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
	sqlite3_free(err);
	sqlite3_close(db);
}

/* A store with a chain of 10 records: 5 appended, 5 written by changes. */
static store *chain10(void)
{
	store *s = open_new();
	for (int i = 0; i < 5; i++) {
		struct store_audit a = {.actor = "uid:0",
		                        .pid = 100 + i,
		                        .exe = "/bin/x",
		                        .action = "get",
		                        .secret = "db/pw",
		                        .version = 1};
		ck_assert_int_eq(store_audit_append(s, &a, 1), 0);
	}
	struct store_audit a = {.actor = "uid:0", .action = "put", .secret = "db/pw"};
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(store_put_ex(s, "db/pw", (const uint8_t *)"v", 1, NULL, &a, NULL),
		                 0);
	struct store_audit d = {.actor = "uid:0", .action = "delete", .secret = "db/pw"};
	ck_assert_int_eq(store_delete_ex(s, "db/pw", &d), 0);
	return s;
}

static void expect_bad(store *s, uint64_t want_seq)
{
	uint64_t n = 0, bad = 0;
	const char *why = NULL;
	ck_assert_int_eq(store_audit_verify(s, &n, &bad, &why), -EBADMSG);
	ck_assert_msg(bad == want_seq, "bad_seq %llu, want %llu (%s)", (unsigned long long)bad,
	              (unsigned long long)want_seq, why);
	ck_assert_ptr_nonnull(why);
}

/* The chain verifies and holds want records. */
static void expect_ok(store *s, uint64_t want)
{
	uint64_t n = 0, bad = 0;
	const char *why = NULL;
	ck_assert_int_eq(store_audit_verify(s, &n, &bad, &why), 0);
	ck_assert_uint_eq(n, want);
}

START_TEST(test_chain_verifies)
{
	store *s = chain10();
	expect_ok(s, 10);
	struct store_audit_row *rows = NULL;
	size_t nr = 0;
	ck_assert_int_eq(store_audit_list(s, 0, 0, 0, &rows, &nr), 0);
	ck_assert_uint_eq(nr, 10);
	ck_assert_str_eq(rows[5].action, "put");
	ck_assert_uint_eq(rows[5].version, 1); /* the change's own version */
	ck_assert_uint_eq(rows[8].version, 4);
	ck_assert_str_eq(rows[9].action, "delete");
	store_audit_list_free(rows, nr);
	ck_assert_int_eq(store_audit_list(s, 7, 0, 2, &rows, &nr), 0);
	ck_assert_uint_eq(nr, 2);
	ck_assert_uint_eq(rows[0].seq, 8);
	store_audit_list_free(rows, nr);
	store_close(s);
	/* Survives a reopen, and appends continue the chain. */
	ck_assert_int_eq(store_open(&s, &opts), 0);
	struct store_audit a = {.actor = "x", .action = "whoami"};
	ck_assert_int_eq(store_audit_append(s, &a, 1), 0);
	expect_ok(s, 11);
	store_close(s);
}
END_TEST

START_TEST(test_edit_detected)
{
	store *s = chain10();
	raw("UPDATE audit SET actor = 'someone-else' WHERE seq = 4");
	expect_bad(s, 4);
	store_close(s);
}
END_TEST

START_TEST(test_delete_detected)
{
	store *s = chain10();
	raw("DELETE FROM audit WHERE seq = 6");
	expect_bad(s, 6);
	store_close(s);
}
END_TEST

START_TEST(test_tail_delete_detected)
{
	store *s = chain10();
	raw("DELETE FROM audit WHERE seq >= 9");
	expect_bad(s, 9);
	store_close(s);
}
END_TEST

START_TEST(test_swap_detected)
{
	store *s = chain10();
	/* Swap the contents of records 3 and 7 (each keeps its seq). */
	raw("CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (3, 7);"
	    "UPDATE audit SET (time, actor, pid, exe, action, secret, version, result, prev_mac, "
	    "mac) = (SELECT time, actor, pid, exe, action, secret, version, result, prev_mac, mac "
	    "FROM t WHERE t.seq = 10 - audit.seq) WHERE seq IN (3, 7);");
	expect_bad(s, 3);
	store_close(s);
}
END_TEST

START_TEST(test_recomputed_without_key_detected)
{
	store *s = chain10();
	/* An attacker without the key rewrites record 5 and makes a consistent-looking chain from
	 * there on: new "MACs", every prev link and the head fixed up. */
	raw("UPDATE audit SET result = 'ok', mac = randomblob(32) WHERE seq >= 5;"
	    "UPDATE audit SET prev_mac = (SELECT a2.mac FROM audit a2 WHERE a2.seq = audit.seq - "
	    "1) "
	    "WHERE seq > 5;"
	    "UPDATE meta SET value = (SELECT x'000000000000000a' || mac FROM audit WHERE seq = 10) "
	    "WHERE key = 'audit.head';");
	expect_bad(s, 5);
	store_close(s);
}
END_TEST

START_TEST(test_failed_change_writes_no_record)
{
	store *s = open_new();
	struct store_audit a = {.actor = "uid:0", .action = "delete", .secret = "nope"};
	ck_assert_int_eq(store_delete_ex(s, "nope", &a), -ENOENT);
	struct store_audit r = {.actor = "uid:0", .action = "rollback", .secret = "nope"};
	ck_assert_int_eq(store_rollback(s, "nope", 1, &r, NULL), -ENOENT);
	struct store_audit_row *rows = NULL;
	size_t nr = 0;
	ck_assert_int_eq(store_audit_list(s, 0, 0, 0, &rows, &nr), 0);
	ck_assert_uint_eq(nr, 0);
	store_audit_list_free(rows, nr);
	store_close(s);
}
END_TEST

/* A record's detail (a grant's selector) is part of its MAC: edited, removed or added to a
 * record without one, it is found; records written before migration 003 still verify. */
START_TEST(test_detail)
{
	store *s = chain10();
	struct store_audit g = {.actor = "uid:0",
	                        .action = "grant",
	                        .secret = "db/pw",
	                        .detail = "selector=id:abc path=db/pw mode=0400 uid=-1 gid=-1"};
	ck_assert_int_eq(store_audit_append(s, &g, 1), 0); /* seq 11 */
	expect_ok(s, 11);
	struct store_audit_row *rows = NULL;
	size_t nr = 0;
	ck_assert_int_eq(store_audit_list(s, 9, 0, 0, &rows, &nr), 0);
	ck_assert_uint_eq(nr, 2);
	ck_assert_ptr_null(rows[0].detail);
	ck_assert_str_eq(rows[1].detail, g.detail);
	store_audit_list_free(rows, nr);

	raw("UPDATE audit SET detail = 'selector=id:other path=db/pw mode=0400 uid=-1 gid=-1' "
	    "WHERE seq = 11");
	expect_bad(s, 11);
	raw("UPDATE audit SET detail = NULL WHERE seq = 11");
	expect_bad(s, 11);
	raw("UPDATE audit SET detail = 'selector=id:abc path=db/pw mode=0400 uid=-1 gid=-1' "
	    "WHERE seq = 11");
	expect_ok(s, 11);
	raw("UPDATE audit SET detail = 'selector=*' WHERE seq = 3");
	expect_bad(s, 3);
	raw("UPDATE audit SET detail = NULL WHERE seq = 3");
	store_close(s);
}
END_TEST

/* A store from before migration 003 (no detail column): its chain verifies after the
 * migration, and new records with a detail extend it. */
START_TEST(test_detail_migration)
{
	store *s = chain10();
	store_close(s);
	raw("ALTER TABLE audit DROP COLUMN count; ALTER TABLE audit DROP COLUMN detail; "
	    "PRAGMA user_version = 2");
	ck_assert_int_eq(store_open(&s, &opts), 0);
	expect_ok(s, 10);
	struct store_audit g = {.actor = "uid:0",
	                        .action = "revoke",
	                        .secret = "db/pw",
	                        .detail = "selector=runtime:podman"};
	ck_assert_int_eq(store_audit_append(s, &g, 1), 0);
	expect_ok(s, 11);
	store_close(s);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), a)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, b), n);
	fclose(a);
	ck_assert_int_eq(fclose(b), 0);
}

static void append_n(store *s, const char *action, int n)
{
	for (int i = 0; i < n; i++) {
		struct store_audit a = {.actor = "uid:0", .action = action};
		ck_assert_int_eq(store_audit_append(s, &a, 1), 0);
	}
}

START_TEST(test_anchor_format)
{
	struct anchor a = {.seq = 12345}, b;
	memset(a.mac, 0xab, sizeof(a.mac));
	memset(a.tag, 0x01, sizeof(a.tag));
	char line[ANCHOR_LINE_MAX];
	int n = anchor_format(&a, line, sizeof(line));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(anchor_parse(line, (size_t)n, &b), 0);
	ck_assert_mem_eq(&a, &b, sizeof(a));
	ck_assert_int_eq(anchor_parse(line, (size_t)n - 1, &b), 0); /* without the newline */
	const char *bad[] = {
	    "",
	    "secretd-audit-anchor 1 ",
	    "secretd-audit-anchor 2 1 00 00\n",
	    "secretd-audit-anchor 1 012 " /* leading zero */,
	    "secretd-audit-anchor 1 -1 ",
	    "secretd-audit-anchor 1 18446744073709551616 ", /* 2^64 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(anchor_parse(bad[i], strlen(bad[i]), &b), -EBADMSG);
	char edit[ANCHOR_LINE_MAX];
	memcpy(edit, line, (size_t)n);
	edit[n - 2] = 'A'; /* uppercase hex is not the canonical form */
	ck_assert_int_eq(anchor_parse(edit, (size_t)n, &b), -EBADMSG);
	memcpy(edit, line, (size_t)n);
	edit[n - 1] = ' '; /* trailing junk */
	ck_assert_int_eq(anchor_parse(edit, (size_t)n, &b), -EBADMSG);
	char big[ANCHOR_LINE_MAX + 2];
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(anchor_parse(big, sizeof(big), &b), -E2BIG);
}
END_TEST

/* A database put back to an older copy is found by the anchor written before, and so is an
 * older copy that went on to write records of its own; a fresher database passes. */
START_TEST(test_anchor_rollback)
{
	char backup[320], apath[320];
	snprintf(backup, sizeof(backup), "%s/old.db", tmpdir);
	snprintf(apath, sizeof(apath), "%s/audit.anchor", tmpdir);
	store *s = chain10();
	struct anchor a10, a13, rd;
	ck_assert_int_eq(store_audit_anchor(s, &a10), 0);
	ck_assert_uint_eq(a10.seq, 10);
	ck_assert_int_eq(store_audit_anchor_check(s, &a10), 0);
	store_close(s);
	copy_file(dbpath, backup);

	ck_assert_int_eq(store_open(&s, &opts), 0);
	append_n(s, "whoami", 3);
	ck_assert_int_eq(store_audit_anchor_check(s, &a10), 0); /* the chain is ahead: fine */
	ck_assert_int_eq(store_audit_anchor(s, &a13), 0);
	ck_assert_uint_eq(a13.seq, 13);
	ck_assert_int_eq(anchor_write(apath, &a13), 0);
	ck_assert_int_eq(anchor_read(apath, &rd), 0);
	ck_assert_mem_eq(&rd, &a13, sizeof(rd));
	struct anchor t = a13;
	t.seq = 12; /* edited without the key */
	ck_assert_int_eq(store_audit_anchor_check(s, &t), -EBADMSG);
	t = a13;
	t.tag[0] ^= 1;
	ck_assert_int_eq(store_audit_anchor_check(s, &t), -EBADMSG);
	store_close(s);

	copy_file(backup, dbpath); /* the older copy is put back */
	ck_assert_int_eq(store_open(&s, &opts), 0);
	expect_ok(s, 10); /* its own chain is whole */
	ck_assert_int_eq(store_audit_anchor_check(s, &rd), -ESTALE);
	append_n(s, "list", 3); /* it goes on: seq 11..13 exist again, but other records */
	ck_assert_int_eq(store_audit_anchor_check(s, &rd), -ESTALE);
	ck_assert_int_eq(store_audit_anchor_check(s, &a10), 0);
	store_close(s);
	ck_assert_int_eq(anchor_read("/nonexistent/anchor", &rd), -ENOENT);
}
END_TEST

START_TEST(test_batcher)
{
	store *s = open_new();
	audit *au = NULL;
	ck_assert_int_eq(audit_new(&au, s), 0);
	ck_assert_int_eq(audit_due_ms(au), -1);
	struct store_audit a = {.actor = "c1", .pid = 7, .action = "fuse-open", .secret = "x"};
	char actor[32];
	a.actor = actor;
	for (int i = 0; i < AUDIT_BATCH_MAX + 10; i++) {
		snprintf(actor, sizeof(actor), "c%d", i); /* all different: none coalesces */
		ck_assert_int_eq(audit_admit(au), 0);
		ck_assert_int_eq(audit_add(au, &a), 0);
	}
	/* A full batch was written at once; the rest waits for the timer. */
	ck_assert_uint_eq(audit_pending(au), 10);
	int due = audit_due_ms(au);
	ck_assert(due >= 0 && due <= AUDIT_FLUSH_MS);
	ck_assert_int_eq(audit_flush(au), 0);
	ck_assert_uint_eq(audit_pending(au), 0);
	ck_assert_int_eq(audit_free(au, NULL), 0);
	expect_ok(s, AUDIT_BATCH_MAX + 10);
	store_close(s);
}
END_TEST

static void sum_rows(store *s, const char *result, uint64_t *rows, uint64_t *events)
{
	struct store_audit_row *v = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_audit_list(s, 0, 0, 0, &v, &n), 0);
	*rows = *events = 0;
	for (size_t i = 0; i < n; i++) {
		if (result && strcmp(v[i].result, result) != 0)
			continue;
		ck_assert_uint_ge(v[i].count, 1);
		(*rows)++;
		*events += v[i].count;
	}
	store_audit_list_free(v, n);
}

/* 10,000 identical opens (batches written every 1,000) become 10 records whose counts sum to
 * 10,000; a different event in between is its own record; the chain verifies; editing a count
 * (up, down, or to 1, which would change the MAC version) is detected. */
START_TEST(test_coalesce)
{
	store *s = open_new();
	audit *au = NULL;
	ck_assert_int_eq(audit_new(&au, s), 0);
	struct store_audit a = {.actor = "c1",
	                        .pid = 7,
	                        .exe = "/bin/sh",
	                        .action = "fuse-open",
	                        .secret = "db/pw",
	                        .version = 3};
	struct store_audit other = a;
	other.pid = 8;
	for (int i = 0; i < 10000; i++) {
		ck_assert_int_eq(audit_admit(au), 0);
		ck_assert_int_eq(audit_add(au, &a), 0);
		if (i == 5000)
			ck_assert_int_eq(audit_add(au, &other), 0);
		if (i % 1000 == 999)
			ck_assert_int_eq(audit_flush(au), 0);
	}
	struct audit_stats st;
	audit_get_stats(au, &st);
	ck_assert_uint_eq(st.records_written, 11);
	ck_assert_uint_eq(st.events_written, 10001);
	ck_assert_uint_eq(st.coalesced, 10001 - 11);
	ck_assert_int_eq(audit_free(au, NULL), 0);
	uint64_t rows, events;
	sum_rows(s, "ok", &rows, &events);
	ck_assert_uint_eq(rows, 11);
	ck_assert_uint_eq(events, 10001);
	struct store_audit_verify_info vi;
	ck_assert_int_eq(store_audit_verify_ex(s, &vi), 0);
	ck_assert_uint_eq(vi.records, 11);
	ck_assert_uint_eq(vi.events, 10001);
	raw("UPDATE audit SET count = count + 1 WHERE seq = 2");
	expect_bad(s, 2);
	raw("UPDATE audit SET count = 1000 WHERE seq = 2");
	expect_ok(s, 11);
	raw("UPDATE audit SET count = 1 WHERE seq = 3");
	expect_bad(s, 3);
	store_close(s);
}
END_TEST

/* A store from before migration 004 (no count column): its chain verifies after the migration
 * (every old record counts 1), and coalesced records extend it. */
START_TEST(test_count_migration)
{
	store *s = chain10();
	store_close(s);
	raw("ALTER TABLE audit DROP COLUMN count; PRAGMA user_version = 3");
	ck_assert_int_eq(store_open(&s, &opts), 0);
	expect_ok(s, 10);
	struct store_audit g = {.actor = "c", .action = "fuse-open", .secret = "db/pw", .count = 5};
	ck_assert_int_eq(store_audit_append(s, &g, 1), 0);
	struct store_audit_verify_info vi;
	ck_assert_int_eq(store_audit_verify_ex(s, &vi), 0);
	ck_assert_uint_eq(vi.records, 11);
	ck_assert_uint_eq(vi.events, 15);
	store_close(s);
}
END_TEST

/* Writes fail (a trigger aborts every insert, like a full disk): the batcher keeps what it
 * buffered, admits nothing, records refusals as refused (coalesced, then in free slots, then
 * counted), and writes all of it once writes work again: served events all in the chain,
 * refusals summed equal to what it counted. */
START_TEST(test_fail_closed)
{
	store *s = open_new();
	audit *au = NULL;
	ck_assert_int_eq(audit_new(&au, s), 0);
	struct store_audit a = {.actor = "c1", .pid = 7, .action = "fuse-open", .secret = "x"};
	const char *five[] = {"k1", "k2", "k3", "k4", "k5"};
	for (int i = 0; i < 5; i++) {
		a.actor = five[i];
		ck_assert_int_eq(audit_admit(au), 0);
		ck_assert_int_eq(audit_add(au, &a), 0);
	}
	raw("CREATE TRIGGER full BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'full'); END");
	ck_assert_int_lt(audit_flush(au), 0);
	ck_assert(audit_failing(au));
	ck_assert_int_ne(audit_last_error(au), 0);
	ck_assert_uint_eq(audit_pending(au), 5); /* kept */
	ck_assert_int_eq(audit_admit(au), -EIO);
	ck_assert_int_ge(audit_due_ms(au), 0);
	/* 1000 refusals of one opener: one record; then 2 * AUDIT_BATCH_MAX distinct ones: the
	 * slots fill up, the rest is counted. */
	a.pid = 1;
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(audit_add(au, &a), -EIO);
	ck_assert_uint_eq(audit_pending(au), 6);
	char actor[32];
	for (int i = 0; i < 2 * AUDIT_BATCH_MAX; i++) {
		snprintf(actor, sizeof(actor), "c%d", i); /* other containers: none coalesces */
		a.actor = actor;
		ck_assert_int_eq(audit_admit(au), -EIO);
		ck_assert_int_eq(audit_add(au, &a), -EIO);
	}
	ck_assert_uint_eq(audit_pending(au), AUDIT_BATCH_MAX);
	struct audit_stats st;
	audit_get_stats(au, &st);
	ck_assert(!st.writable);
	ck_assert_uint_eq(st.refused, 1000 + 2 * AUDIT_BATCH_MAX);
	ck_assert_int_lt(audit_flush(au), 0); /* still failing */
	raw("DROP TRIGGER full");
	ck_assert_int_eq(audit_flush(au), 0);
	ck_assert(!audit_failing(au));
	ck_assert_int_eq(audit_admit(au), 0);
	uint64_t rows, events;
	sum_rows(s, "ok", &rows, &events);
	ck_assert_uint_eq(events, 5);
	sum_rows(s, STORE_AUDIT_REFUSED, &rows, &events);
	ck_assert_uint_eq(events, 1000 + 2 * AUDIT_BATCH_MAX);
	ck_assert_uint_eq(rows, AUDIT_BATCH_MAX - 5 + 1); /* slots + the summary record */
	struct store_audit_verify_info vi;
	ck_assert_int_eq(store_audit_verify_ex(s, &vi), 0);
	ck_assert_uint_eq(vi.refused, 1000 + 2 * AUDIT_BATCH_MAX);
	ck_assert_int_eq(audit_free(au, NULL), 0);
	store_close(s);
}
END_TEST

/* Records are pruned in batches behind a signed checkpoint: the rest verifies from it, the
 * anchor of a pruned head still checks; an edited or deleted checkpoint, or a record deleted
 * right after it, is found. */
START_TEST(test_prune_checkpoint)
{
	store *s = open_new();
	int64_t now = (int64_t)time(NULL);
	for (int i = 0; i < 50; i++) {
		struct store_audit a = {
		    .time = now - 1000 + i, .actor = "c", .action = "fuse-open"};
		ck_assert_int_eq(store_audit_append(s, &a, 1), 0);
	}
	struct anchor a20;
	ck_assert_int_eq(store_audit_anchor(s, &a20), 0);
	append_n(s, "list", 10); /* time now: 51..60 */
	uint64_t n = 0;
	bool more = false;
	ck_assert_int_eq(store_audit_prune(s, now - 500, 0, 30, &n, &more), 0);
	ck_assert_uint_eq(n, 30);
	ck_assert(more);
	ck_assert_int_eq(store_audit_prune(s, now - 500, 0, 30, &n, &more), 0);
	ck_assert_uint_eq(n, 20);
	ck_assert(!more);
	ck_assert_int_eq(store_audit_prune(s, now - 500, 0, 30, &n, &more), 0);
	ck_assert_uint_eq(n, 0);
	struct store_audit_verify_info vi;
	ck_assert_int_eq(store_audit_verify_ex(s, &vi), 0);
	ck_assert_uint_eq(vi.records, 10);
	ck_assert(vi.checkpoint);
	ck_assert_uint_eq(vi.checkpoint_seq, 50);
	ck_assert_uint_eq(vi.pruned, 50);
	ck_assert_int_eq(store_audit_anchor_check(s, &a20), 0); /* an anchor from before pruning */
	/* by count: keep the newest 4; never the head */
	ck_assert_int_eq(store_audit_prune(s, 0, 4, 1000, &n, &more), 0);
	ck_assert_uint_eq(n, 6);
	ck_assert_int_eq(store_audit_prune(s, now + 100, 0, 1000, &n, &more), 0);
	ck_assert_uint_eq(n, 3); /* all old, but the head stays */
	ck_assert_int_eq(store_audit_verify_ex(s, &vi), 0);
	ck_assert_uint_eq(vi.records, 1);
	ck_assert_uint_eq(vi.pruned, 59);
	ck_assert_uint_eq(vi.checkpoint_seq, 59);
	append_n(s, "list", 2);
	expect_ok(s, 3);

	/* tampering */
	raw("CREATE TABLE cp AS SELECT value FROM meta WHERE key = 'audit.checkpoint'");
	raw("UPDATE meta SET value = substr(value, 1, 47) || x'ff' || substr(value, 49) "
	    "WHERE key = 'audit.checkpoint'"); /* the pruned count */
	expect_bad(s, 60);
	raw("DELETE FROM meta WHERE key = 'audit.checkpoint'");
	expect_bad(s, 1);
	raw("INSERT INTO meta (key, value) SELECT 'audit.checkpoint', value FROM cp");
	expect_ok(s, 3);
	raw("DELETE FROM audit WHERE seq = 60");
	expect_bad(s, 60);
	store_close(s);
}
END_TEST

START_TEST(test_generate_charsets)
{
	const char *sets[] = {"alnum", "hex", "base64", "ascii"};
	const char *allowed[] = {
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "0123456789abcdef",
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", NULL};
	for (size_t i = 0; i < 4; i++) {
		enum store_charset cs;
		ck_assert_int_eq(store_charset_parse(sets[i], &cs), 0);
		uint8_t *v = NULL;
		ck_assert_int_eq(store_generate(cs, 1000, &v), 0);
		for (size_t k = 0; k < 1000; k++) {
			if (allowed[i])
				ck_assert_ptr_nonnull(strchr(allowed[i], v[k]));
			else
				ck_assert(v[k] > 0x20 && v[k] < 0x7f);
		}
		store_value_free(v);
	}
	enum store_charset cs;
	ck_assert_int_eq(store_charset_parse("emoji", &cs), -EINVAL);
	uint8_t *v = NULL;
	ck_assert_int_eq(store_generate(STORE_CHARSET_HEX, 0, &v), -EINVAL);
	ck_assert_int_eq(store_generate(STORE_CHARSET_HEX, STORE_GEN_LENGTH_MAX + 1, &v), -EINVAL);
}
END_TEST

START_TEST(test_keep_rollback_lifecycle)
{
	store *s = open_new();
	struct store_put_opts po = {.keep = 3};
	for (int i = 1; i <= 5; i++) {
		char b[8];
		snprintf(b, sizeof(b), "v%d", i);
		ck_assert_int_eq(store_put_ex(s, "k", (const uint8_t *)b, 2, &po, NULL, NULL), 0);
	}
	struct store_version_info *vi = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_versions(s, "k", &vi, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(vi[0].version, 3);
	store_versions_free(vi, n);
	uint64_t v = 0;
	ck_assert_int_eq(store_rollback(s, "k", 2, NULL, &v), -ENOENT); /* pruned */
	ck_assert_int_eq(store_rollback(s, "k", 4, NULL, &v), 0);
	ck_assert_uint_eq(v, 6);
	uint8_t *val = NULL;
	size_t len = 0;
	ck_assert_int_eq(store_get(s, "k", 0, &val, &len, NULL), 0);
	ck_assert_mem_eq(val, "v4", 2);
	store_value_free(val);

	uint64_t gen = store_lifecycle_gen(s);
	struct store_put_opts pe = {.expires = 2000000000};
	ck_assert_int_eq(store_put_ex(s, "k", (const uint8_t *)"x", 1, &pe, NULL, NULL), 0);
	ck_assert_int_eq(store_schedule_set(s, "k", 60, 16, STORE_CHARSET_HEX, "true", NULL), 0);
	ck_assert_int_eq(store_schedule_set(s, "missing", 60, 16, STORE_CHARSET_HEX, NULL, NULL),
	                 -ENOENT);
	ck_assert_uint_ne(store_lifecycle_gen(s), gen);
	struct store_lifecycle *lc = NULL;
	ck_assert_int_eq(store_lifecycles(s, &lc, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(lc[0].expires, 2000000000);
	ck_assert_int_eq(lc[0].every, 60);
	ck_assert_str_eq(lc[0].exec, "true");
	store_lifecycles_free(lc, n);
	/* A lifecycle row edited behind the store's back fails its MAC. */
	raw("UPDATE lifecycle SET every = 1");
	ck_assert_int_eq(store_lifecycles(s, &lc, &n), -EBADMSG);
	store_close(s);
}
END_TEST

int unit_setup(void)
{
	base_setup();
	return 0;
}

void unit_teardown(void)
{
	base_teardown();
}

Suite *unit_suite(void)
{
	Suite *su = suite_create("audit");
	TCase *tc = tcase_create("audit");
	tcase_add_checked_fixture(tc, storefix_setup, storefix_teardown);
	tcase_add_test(tc, test_chain_verifies);
	tcase_add_test(tc, test_edit_detected);
	tcase_add_test(tc, test_delete_detected);
	tcase_add_test(tc, test_tail_delete_detected);
	tcase_add_test(tc, test_swap_detected);
	tcase_add_test(tc, test_recomputed_without_key_detected);
	tcase_add_test(tc, test_failed_change_writes_no_record);
	tcase_add_test(tc, test_detail);
	tcase_add_test(tc, test_detail_migration);
	tcase_add_test(tc, test_anchor_format);
	tcase_add_test(tc, test_anchor_rollback);
	tcase_add_test(tc, test_batcher);
	tcase_add_test(tc, test_coalesce);
	tcase_add_test(tc, test_count_migration);
	tcase_add_test(tc, test_fail_closed);
	tcase_add_test(tc, test_prune_checkpoint);
	tcase_add_test(tc, test_generate_charsets);
	tcase_add_test(tc, test_keep_rollback_lifecycle);
	suite_add_tcase(su, tc);
	return su;
}
