/* Unit tests for broker/store/templates.c (schema 005): put/get/versions/list/delete, bodies
 * sealed (no plaintext on disk), rows bound to their template (swapped or restored rows fail),
 * template grants ("tmpl:NAME"), key rotation re-wrapping template data keys. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "broker/store/store.h"
#include "common/secret.h"
#include "tests/unit/runner.h"
#include "tests/unit/storefix.h"

static void tput(store *s, const char *name, const char *body, uint64_t want)
{
	uint64_t v = 0;
	ck_assert_int_eq(store_tmpl_put(s, name, (const uint8_t *)body, strlen(body), NULL, &v), 0);
	ck_assert_uint_eq(v, want);
}

static void tget(store *s, const char *name, uint64_t version, const char *want)
{
	secret *b = NULL;
	uint64_t got = 0;
	ck_assert_int_eq(store_tmpl_get(s, name, version, &b, &got), 0);
	ck_assert_uint_eq(secret_len(b), strlen(want));
	ck_assert(memcmp(secret_data(b), want, strlen(want)) == 0);
	secret_unref(b);
}

static int tget_rc(store *s, const char *name, uint64_t version)
{
	secret *b = NULL;
	int r = store_tmpl_get(s, name, version, &b, NULL);
	secret_unref(b);
	return r;
}

static sqlite3 *raw_open(void)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
	sqlite3_free(err);
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

START_TEST(test_put_get_versions)
{
	store *s = open_new();
	ck_assert_int_eq(tget_rc(s, "db/url", 0), -ENOENT);
	tput(s, "db/url", "postgres://{{ secret \"db/user\" }}@db", 1);
	tput(s, "db/url", "v2", 2);
	tput(s, "other", "", 1);
	tget(s, "db/url", 0, "v2");
	tget(s, "db/url", 1, "postgres://{{ secret \"db/user\" }}@db");
	tget(s, "other", 0, "");
	ck_assert_int_eq(tget_rc(s, "db/url", 3), -ENOENT);
	struct store_version_info *vi = NULL;
	size_t nv = 0;
	ck_assert_int_eq(store_tmpl_versions(s, "db/url", &vi, &nv), 0);
	ck_assert_uint_eq(nv, 2);
	ck_assert(vi[1].current && !vi[0].current);
	ck_assert_uint_eq(vi[1].size, 2);
	store_versions_free(vi, nv);
	ck_assert_int_eq(store_tmpl_versions(s, "nope", &vi, &nv), -ENOENT);
	for (uint64_t v = 3; v <= STORE_TMPL_KEEP + 2; v++)
		tput(s, "db/url", "again", v);
	ck_assert_int_eq(store_tmpl_versions(s, "db/url", &vi, &nv), 0);
	ck_assert_uint_eq(nv, STORE_TMPL_KEEP);
	store_versions_free(vi, nv);
	ck_assert_int_eq(tget_rc(s, "db/url", 1), -ENOENT); /* pruned */
	struct store_tmpl_info *li = NULL;
	size_t nl = 0;
	ck_assert_int_eq(store_tmpl_list(s, &li, &nl), 0);
	ck_assert_uint_eq(nl, 2);
	ck_assert_str_eq(li[0].name, "db/url");
	ck_assert_uint_eq(li[0].current, STORE_TMPL_KEEP + 2);
	ck_assert_uint_eq(li[0].nversions, STORE_TMPL_KEEP);
	ck_assert_str_eq(li[1].name, "other");
	store_tmpl_list_free(li, nl);
	/* names are secret names; secrets and templates do not see each other */
	ck_assert_int_eq(store_tmpl_put(s, "../x", (const uint8_t *)"x", 1, NULL, NULL), -EINVAL);
	ck_assert_int_eq(store_get_secret(s, "db/url", 0, &(secret *){NULL}, NULL), -ENOENT);
	store_close(s);
}
END_TEST

START_TEST(test_delete_and_grants)
{
	store *s = open_new();
	tput(s, "cfg", "x", 1);
	struct store_grant g = {
	    .secret = "tmpl:cfg", .selector = "name:web", .mode = 0400, .uid = -1, .gid = -1};
	ck_assert_int_eq(store_grant_add_ex(s, &g, false, NULL), 0);
	struct store_grant bad = g;
	bad.secret = "tmpl:cfg/*"; /* a template grant names one template */
	ck_assert_int_eq(store_grant_add_ex(s, &bad, false, NULL), -EINVAL);
	bad.secret = "tmpl:";
	ck_assert_int_eq(store_grant_add_ex(s, &bad, false, NULL), -EINVAL);
	struct store_grant *gv = NULL;
	size_t ng = 0;
	ck_assert_int_eq(store_grants(s, &gv, &ng), 0);
	ck_assert_uint_eq(ng, 1);
	ck_assert_str_eq(gv[0].secret, "tmpl:cfg");
	store_grants_free(gv, ng);
	ck_assert_int_eq(store_tmpl_delete(s, "cfg", NULL), 0);
	ck_assert_int_eq(store_tmpl_delete(s, "cfg", NULL), -ENOENT);
	ck_assert_int_eq(tget_rc(s, "cfg", 0), -ENOENT);
	ck_assert_int_eq(store_grants(s, &gv, &ng), 0);
	ck_assert_uint_eq(ng, 0); /* its grants went with it */
	store_grants_free(gv, ng);
	ck_assert_int_eq(store_grant_remove_ex(s, "tmpl:cfg", "name:web", NULL), -ENOENT);
	store_close(s);
}
END_TEST

/* A body never reaches the disk in clear; rows swapped between templates or versions, or an
 * older row restored, fail their checks. */
START_TEST(test_integrity)
{
	store *s = open_new();
	tput(s, "a", "password=HUNTER2-LITERAL", 1);
	tput(s, "a", "second-version-body", 2);
	tput(s, "b", "b-body", 1);
	store_close(s);
	/* no plaintext in the database file */
	FILE *f = fopen(dbpath, "rb");
	ck_assert_ptr_nonnull(f);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	ck_assert_ptr_null(memmem(buf, n, "HUNTER2-LITERAL", 15));
	ck_assert_int_eq(store_open(&s, &opts), 0);
	sqlite3 *db = raw_open();
	/* b's current row replaced by a's version 2 (renumbered): b fails, a still reads */
	raw_exec(db, "CREATE TEMP TABLE saved AS SELECT * FROM template_versions");
	raw_exec(db,
	         "UPDATE template_versions SET ciphertext = (SELECT ciphertext FROM saved "
	         "WHERE template_id = (SELECT id FROM templates WHERE name = 'a') AND "
	         "version = 2) WHERE template_id = (SELECT id FROM templates WHERE name = 'b')");
	ck_assert_int_eq(tget_rc(s, "b", 0), -EBADMSG);
	tget(s, "a", 0, "second-version-body");
	raw_exec(
	    db, "DELETE FROM template_versions; INSERT INTO template_versions SELECT * FROM saved");
	tget(s, "b", 0, "b-body");
	/* a's head points back at version 1 (a restored older state) */
	raw_exec(db, "UPDATE templates SET current = 1 WHERE name = 'a'");
	ck_assert_int_eq(tget_rc(s, "a", 0), -EBADMSG);
	raw_exec(db, "UPDATE templates SET current = 2 WHERE name = 'a'");
	tget(s, "a", 1, "password=HUNTER2-LITERAL");
	/* a dropped old version changes the version set */
	raw_exec(db, "DELETE FROM template_versions WHERE version = 1 AND template_id = "
	             "(SELECT id FROM templates WHERE name = 'a')");
	ck_assert_int_eq(tget_rc(s, "a", 0), -EBADMSG);
	sqlite3_close(db);
	store_close(s);
}
END_TEST

START_TEST(test_key_rotation)
{
	store *s = open_new();
	tput(s, "t", "one", 1);
	tput(s, "t", "two", 2);
	uint64_t kid = 0, n = 0;
	ck_assert_int_eq(store_key_rotate_ex(s, NULL, &kid, &n), 0);
	ck_assert_uint_eq(kid, 2);
	sqlite3 *db = raw_open();
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM template_versions WHERE kek_id <> 2"),
	                 0);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM keks"), 1); /* the old one is gone */
	sqlite3_close(db);
	tget(s, "t", 0, "two");
	tget(s, "t", 1, "one");
	store_close(s);
	ck_assert_int_eq(store_open(&s, &opts), 0);
	tget(s, "t", 0, "two");
	store_close(s);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("store_tmpl");
	TCase *tc = tcase_create("store_tmpl");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, storefix_setup, storefix_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_put_get_versions);
	tcase_add_test(tc, test_delete_and_grants);
	tcase_add_test(tc, test_integrity);
	tcase_add_test(tc, test_key_rotation);
	suite_add_tcase(s, tc);
	return s;
}
