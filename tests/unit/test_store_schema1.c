/* A database from the FIRST schema (tests/fixtures/store/schema1.sql, a text dump written by the
 * store code of the last commit with only schema/001_init.sql; see mkschema1.sh there) opened by
 * today's code: the migrations run, every MAC holds, every value reads back, the audit chain
 * (empty in schema 1, whose store had no audit trail) verifies, and puts, grants, key rotation and
 * audit records work on the migrated database. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "broker/store/store.h"
#include "schema/schema.h"
#include "tests/unit/runner.h"
#include "tests/unit/testdir.h"

#ifndef STORE_SCHEMA1_SQL
#error "STORE_SCHEMA1_SQL: the path of tests/fixtures/store/schema1.sql (set by meson)"
#endif

/* The fixture's master key: the passphrase fixed in mkschema1.sh (obviously not a secret). */
#define SCHEMA1_PASSPHRASE "secretd-schema1-fixture-passphrase-NOT-A-SECRET\n"

static char state[256], passfile[256], dbpath[300];

/* Loads the dump into STATE/secretd.db and writes the passphrase file. */
static void schema1_setup(void)
{
	tmpdir_setup();
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	snprintf(passfile, sizeof(passfile), "%s/pass", tmpdir);
	snprintf(dbpath, sizeof(dbpath), "%s/secretd.db", state);
	ck_assert_int_eq(mkdir(state, 0700), 0);

	FILE *f = fopen(STORE_SCHEMA1_SQL, "re");
	ck_assert_msg(f, "cannot read %s", STORE_SCHEMA1_SQL);
	static char sql[1 << 20];
	size_t n = fread(sql, 1, sizeof(sql) - 1, f);
	ck_assert(feof(f));
	fclose(f);
	sql[n] = '\0';
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	ck_assert_msg(rc == SQLITE_OK, "loading the dump: %s", err ? err : "?");
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

	int fd = open(passfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	size_t len = strlen(SCHEMA1_PASSPHRASE);
	ck_assert_int_eq(write(fd, SCHEMA1_PASSPHRASE, len), (ssize_t)len);
	close(fd);
}

static void schema1_teardown(void)
{
	tmpdir_teardown();
}

static int64_t raw_int(const char *sql)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static store *schema1_open(void)
{
	struct store_opts o = {.state_dir = state, .pass_file = passfile};
	store *s = NULL;
	ck_assert_int_eq(store_open(&s, &o), 0);
	return s;
}

static void expect_value(store *s, const char *name, uint64_t version, const void *want,
                         size_t wantlen)
{
	uint8_t *v = NULL;
	size_t len = 99;
	uint64_t got = 0;
	ck_assert_int_eq(store_get(s, name, version, &v, &len, &got), 0);
	ck_assert_uint_eq(len, wantlen);
	ck_assert(memcmp(v, want, wantlen) == 0);
	if (version)
		ck_assert_uint_eq(got, version);
	store_value_free(v);
}

/* The values mkschema1.sh wrote ("FIXTURE VALUES" there), plus those this test adds. */
static void expect_fixture_values(store *s, bool added)
{
	expect_value(s, "db/password", 1, "hunter2-v1", 10);
	expect_value(s, "db/password", 2, "hunter2-v2", 10);
	expect_value(s, "db/password", 3, "hunter2-v3", 10);
	if (added)
		expect_value(s, "db/password", 0, "hunter2-v4", 10);
	else
		expect_value(s, "db/password", 0, "hunter2-v3", 10);
	expect_value(s, "api/token", 0, "tok-AAAA", 8);
	expect_value(s, "tls/key", 0, "\x00\x01\x02\xff binary\n", 12);
	expect_value(s, "empty", 0, "", 0);
	uint8_t *v = NULL;
	size_t len;
	ck_assert_int_eq(store_get(s, "gone", 0, &v, &len, NULL), -ENOENT);
}

static void expect_verified(store *s, uint64_t records)
{
	struct store_audit_verify_info vi;
	ck_assert_int_eq(store_audit_verify_ex(s, &vi), 0);
	ck_assert_uint_eq(vi.records, records);
	ck_assert(!vi.checkpoint);
}

START_TEST(test_schema1_fixture_is_schema1)
{
	ck_assert_int_eq(raw_int("PRAGMA user_version"), 1);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE name = 'audit'"), 0);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM secrets"), 4);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM versions"), 6);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM grants"), 3);
}
END_TEST

START_TEST(test_schema1_opens_and_verifies)
{
	store *s = schema1_open();
	/* Migrated to the newest schema. */
	ck_assert_int_eq(raw_int("PRAGMA user_version"), (int64_t)schema_migrations_count);

	/* Every head and every payload: all values read back. */
	expect_fixture_values(s, false);
	struct store_secret_info *info = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_list(s, &info, &n), 0);
	ck_assert_uint_eq(n, 4);
	const char *names[] = {"api/token", "db/password", "empty", "tls/key"};
	const uint64_t current[] = {1, 3, 1, 1}, nversions[] = {1, 3, 1, 1};
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(info[i].name, names[i]);
		ck_assert_uint_eq(info[i].current, current[i]);
		ck_assert_uint_eq(info[i].nversions, nversions[i]);
		ck_assert_int_eq(info[i].expires, 0);
	}
	store_list_free(info, n);
	expect_value(s, "tls/key", 1, "\x00\x01\x02\xff binary\n", 12);

	/* One key generation (2: the fixture rotated once), wrapping every data key. */
	struct store_key_status ks;
	ck_assert_int_eq(store_key_status(s, &ks), 0);
	ck_assert_uint_eq(ks.current, 2);
	ck_assert_uint_eq(ks.rotating, 0);
	ck_assert_uint_eq(ks.remaining, 0);
	ck_assert_uint_eq(ks.ngens, 1);
	ck_assert_uint_eq(ks.gens[0].versions, 6);
	store_key_status_free(&ks);

	/* Every grant's MAC holds (store_grants checks them). */
	struct store_grant *g = NULL;
	ck_assert_int_eq(store_grants(s, &g, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(g[0].secret, "db/password");
	ck_assert_str_eq(g[0].selector, "name:web");
	ck_assert_ptr_null(g[0].path);
	ck_assert_uint_eq(g[0].mode, 0400);
	ck_assert_int_eq(g[0].uid, -1);
	ck_assert_uint_eq(g[0].flags, STORE_GRANT_PREVIOUS);
	ck_assert_str_eq(g[1].secret, "api/*");
	ck_assert_str_eq(g[1].selector, "label:tier=front");
	ck_assert_str_eq(g[1].path, "token.txt");
	ck_assert_uint_eq(g[1].mode, 0440);
	ck_assert_int_eq(g[1].uid, 1000);
	ck_assert_int_eq(g[1].gid, 1000);
	ck_assert_str_eq(g[2].secret, "tls/key");
	ck_assert_str_eq(g[2].selector, "uid:1000");
	store_grants_free(g, n);

	/* The audit trail the migrations created is empty and verifies. */
	expect_verified(s, 0);
	struct store_lifecycle *l = NULL;
	ck_assert_int_eq(store_lifecycles(s, &l, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_lifecycles_free(l, n);
	store_close(s);
}
END_TEST

START_TEST(test_schema1_writes_after_migration)
{
	store *s = schema1_open();
	struct store_audit a = {.actor = "uid:0", .action = "put", .secret = "db/password"};
	uint64_t v = 0;
	ck_assert_int_eq(
	    store_put_ex(s, "db/password", (const uint8_t *)"hunter2-v4", 10, NULL, &a, &v), 0);
	ck_assert_uint_eq(v, 4);
	struct store_grant g = {.secret = "db/*",
	                        .selector = "name:worker",
	                        .path = NULL,
	                        .mode = 0400,
	                        .uid = -1,
	                        .gid = -1};
	struct store_audit ag = {.actor = "uid:0",
	                         .action = "grant",
	                         .secret = "db/*",
	                         .detail = "selector=name:worker"};
	ck_assert_int_eq(store_grant_add_ex(s, &g, false, &ag), 0);
	ck_assert_int_eq(store_grant_add_ex(s, &g, false, NULL), -EEXIST);
	struct store_audit ak = {.actor = "uid:0", .action = "key-rotate"};
	uint64_t kek = 0, rewrapped = 0;
	ck_assert_int_eq(store_key_rotate_ex(s, &ak, &kek, &rewrapped), 0);
	ck_assert_uint_eq(kek, 3);
	ck_assert_uint_eq(rewrapped, 7);
	expect_fixture_values(s, true);
	expect_verified(s, 3);
	struct store_grant *gs = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_grants(s, &gs, &n), 0);
	ck_assert_uint_eq(n, 4);
	store_grants_free(gs, n);
	store_close(s);

	/* Reopened (nothing left to migrate), all still holds. */
	s = schema1_open();
	expect_fixture_values(s, true);
	expect_verified(s, 3);
	store_close(s);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("store_schema1");
	TCase *tc = tcase_create("schema1");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, schema1_setup, schema1_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_schema1_fixture_is_schema1);
	tcase_add_test(tc, test_schema1_opens_and_verifies);
	tcase_add_test(tc, test_schema1_writes_after_migration);
	suite_add_tcase(s, tc);
	return s;
}
