/* Unit tests for the store's statement cache (broker/store/db.c, issue #15): a hot query is
 * prepared once and reused, a statement is reset (and its bindings cleared) after use, also after
 * a failed step, nested use of one query and a full cache get statements of their own, a schema
 * change is survived, and store_close finalizes every statement it kept. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "tests/unit/storefix.h"
#include "broker/store/store_int.h"
#include "tests/unit/runner.h"

static void put_str(store *s, const char *name, const char *v)
{
	ck_assert_int_eq(store_put_ex(s, name, (const uint8_t *)v, strlen(v), NULL, NULL, NULL), 0);
}

static void get_expect(store *s, const char *name, const char *want)
{
	uint8_t *v = NULL;
	size_t len = 0;
	ck_assert_int_eq(store_get(s, name, 0, &v, &len, NULL), 0);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_mem_eq(v, want, len);
	store_value_free(v);
}

/* Statements of this connection still open (prepared and not finalized). */
static size_t live_stmts(store *s)
{
	size_t n = 0;
	for (sqlite3_stmt *st = sqlite3_next_stmt(s->db, NULL); st;
	     st = sqlite3_next_stmt(s->db, st))
		n++;
	return n;
}

START_TEST(test_reuse)
{
	store *s = open_new();
	put_str(s, "app/a", "one");
	get_expect(s, "app/a", "one");
	struct store_stmt_stats a, b;
	store_stmt_stats(s, &a);
	ck_assert_uint_gt(a.cached_now, 0);
	for (int i = 0; i < 50; i++)
		get_expect(s, "app/a", "one");
	store_stmt_stats(s, &b);
	/* 50 reads prepared nothing new: every statement came from the cache */
	ck_assert_uint_eq(b.prepared, a.prepared);
	ck_assert_uint_eq(b.uncached, a.uncached);
	ck_assert_uint_ge(b.hits - a.hits, 50 * 4);
	/* a put after them still sees (and writes) the right rows */
	put_str(s, "app/a", "two");
	get_expect(s, "app/a", "two");
	/* no statement is left in use or stepping: nothing holds a read transaction */
	for (sqlite3_stmt *st = sqlite3_next_stmt(s->db, NULL); st;
	     st = sqlite3_next_stmt(s->db, st))
		ck_assert_msg(!sqlite3_stmt_busy(st), "statement left stepping: %s",
		              sqlite3_sql(st));
	ck_assert_int_eq(sqlite3_get_autocommit(s->db), 1);
	store_close(s);
}
END_TEST

START_TEST(test_reset_after_error)
{
	store *s = open_new();
	ck_assert_int_eq(store_exec(s->db, "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"), 0);
	static const char ins[] = "INSERT INTO t (k, v) VALUES (?1, ?2)";
	for (int i = 0; i < 3; i++) {
		_cleanup_cached_ struct store_cached q = {0};
		ck_assert_int_eq(store_cached(s, ins, &q), 0);
		sqlite3_bind_int(q.st, 1, 7);
		sqlite3_bind_text(q.st, 2, "x", -1, SQLITE_STATIC);
		/* the first insert works, the next two hit the primary key: the error is returned
		 */
		ck_assert_int_eq(store_step_done(q.st), i == 0 ? 0 : -EEXIST);
	}
	{
		/* after the failed steps the statement is reset and unbound: a new row goes in, and
		 * a missing binding is NULL, not the last one's "x" */
		_cleanup_cached_ struct store_cached q = {0};
		ck_assert_int_eq(store_cached(s, ins, &q), 0);
		ck_assert_int_eq(q.slot >= 0, 1);
		sqlite3_bind_int(q.st, 1, 8);
		ck_assert_int_eq(store_step_done(q.st), 0);
	}
	int64_t n = -1;
	ck_assert_int_eq(store_cached_int(s, "SELECT count(*) FROM t WHERE v IS NULL", &n), 0);
	ck_assert_int_eq(n, 1);
	/* a failing transaction through the cache ends and leaves the connection usable */
	ck_assert_int_eq(store_cached_exec(s, "BEGIN IMMEDIATE"), 0);
	ck_assert_int_eq(store_cached_end(s, -EIO), -EIO);
	ck_assert_int_eq(sqlite3_get_autocommit(s->db), 1);
	put_str(s, "app/a", "one");
	get_expect(s, "app/a", "one");
	store_close(s);
}
END_TEST

START_TEST(test_nested_and_full)
{
	store *s = open_new();
	static const char sel[] = "SELECT 1";
	struct store_stmt_stats a, b;
	{
		_cleanup_cached_ struct store_cached q1 = {0};
		_cleanup_cached_ struct store_cached q2 = {0};
		ck_assert_int_eq(store_cached(s, sel, &q1), 0);
		ck_assert_int_eq(sqlite3_step(q1.st), SQLITE_ROW);
		/* the same query while the first is in use: a statement of its own */
		ck_assert_int_eq(store_cached(s, sel, &q2), 0);
		ck_assert_ptr_ne(q1.st, q2.st);
		ck_assert_int_eq(q2.slot, -1);
		ck_assert_int_eq(sqlite3_step(q2.st), SQLITE_ROW);
	}
	store_stmt_stats(s, &a);
	/* the cache is bounded: queries beyond STORE_STMT_CACHE_MAX are prepared and finalized */
	char sql[STORE_STMT_CACHE_MAX + 8][32];
	for (int i = 0; i < STORE_STMT_CACHE_MAX + 8; i++) {
		snprintf(sql[i], sizeof(sql[i]), "SELECT %d", i + 100);
		_cleanup_cached_ struct store_cached q = {0};
		ck_assert_int_eq(store_cached(s, sql[i], &q), 0);
		ck_assert_int_eq(sqlite3_step(q.st), SQLITE_ROW);
		ck_assert_int_eq(sqlite3_column_int(q.st, 0), i + 100);
	}
	store_stmt_stats(s, &b);
	ck_assert_uint_eq(b.cached_now, STORE_STMT_CACHE_MAX);
	ck_assert_uint_ge(b.uncached - a.uncached, 8);
	/* only the cached statements are left open */
	ck_assert_uint_eq(live_stmts(s), STORE_STMT_CACHE_MAX);
	store_close(s);
}
END_TEST

START_TEST(test_schema_change)
{
	store *s = open_new();
	put_str(s, "app/a", "one");
	get_expect(s, "app/a", "one");
	/* another connection changes the schema (what a migration does): the cached statements
	 * are re-prepared by sqlite on their next step, and read the same rows */
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db,
	                              "CREATE INDEX extra_idx ON versions (size); "
	                              "CREATE TABLE extra (x INTEGER)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	get_expect(s, "app/a", "one");
	put_str(s, "app/a", "two");
	get_expect(s, "app/a", "two");
	/* and on this connection */
	ck_assert_int_eq(store_exec(s->db, "DROP INDEX extra_idx"), 0);
	get_expect(s, "app/a", "two");
	store_close(s);
}
END_TEST

START_TEST(test_finalized_at_close)
{
	store *s = open_new();
	put_str(s, "app/a", "one");
	get_expect(s, "app/a", "one");
	ck_assert_uint_gt(live_stmts(s), 0);
	struct store_stmt_stats st;
	store_stmt_stats(s, &st);
	ck_assert_uint_eq(live_stmts(s), st.cached_now);
	/* what store_close does first: afterwards no statement of this connection is left, so the
	 * plain sqlite3_close (which refuses to close with one open) succeeds */
	store_stmt_cache_free(s);
	ck_assert_uint_eq(live_stmts(s), 0);
	ck_assert_int_eq(sqlite3_close(s->db), SQLITE_OK);
	s->db = NULL;
	store_close(s);
}
END_TEST

static Suite *stmt_suite(void)
{
	Suite *s = suite_create("store_stmt");
	TCase *tc = tcase_create("store_stmt");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, storefix_setup, storefix_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_reuse);
	tcase_add_test(tc, test_reset_after_error);
	tcase_add_test(tc, test_nested_and_full);
	tcase_add_test(tc, test_schema_change);
	tcase_add_test(tc, test_finalized_at_close);
	suite_add_tcase(s, tc);
	return s;
}

Suite *unit_suite(void)
{
	return stmt_suite();
}
