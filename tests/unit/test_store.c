/* Unit tests for broker/store: schema, names, values, versions, integrity (swapped, copied and
 * restored rows), key rotation, passphrase mode, grants, and no plaintext on disk. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "broker/crypto/crypt.h"
#include "tests/unit/storefix.h"
#include "broker/store/store.h"
#include "common/limits.h"
#include "common/names.h"
#include "schema/schema.h"
#include "tests/unit/runner.h"

static void put_str(store *s, const char *name, const char *v, uint64_t want_version)
{
	uint64_t ver = 0;
	ck_assert_int_eq(store_put_ex(s, name, (const uint8_t *)v, strlen(v), NULL, NULL, &ver), 0);
	if (want_version)
		ck_assert_uint_eq(ver, want_version);
}

static void get_expect(store *s, const char *name, uint64_t version, const char *want)
{
	uint8_t *v = NULL;
	size_t len = 0;
	int r = store_get(s, name, version, &v, &len, NULL);
	ck_assert_msg(r == 0, "get %s@%llu: %d", name, (unsigned long long)version, r);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_mem_eq(v, want, len);
	store_value_free(v);
}

static int get_rc(store *s, const char *name, uint64_t version)
{
	uint8_t *v = NULL;
	size_t len = 0;
	int r = store_get(s, name, version, &v, &len, NULL);
	if (r == 0)
		store_value_free(v);
	else
		ck_assert_ptr_null(v);
	return r;
}

/* A second, raw connection: what an attacker with write access to the file can do. */
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

static int64_t secret_id(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT id FROM secrets WHERE name = ?1", -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Copies wrapped_key and ciphertext of (from_id, from_v) over (to_id, to_v). */
static void raw_copy_row(sqlite3 *db, int64_t from_id, int64_t from_v, int64_t to_id, int64_t to_v)
{
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db,
	                                    "UPDATE versions SET (wrapped_key, ciphertext, size) = "
	                                    "(SELECT wrapped_key, ciphertext, size FROM versions "
	                                    "WHERE secret_id = ?1 AND version = ?2) "
	                                    "WHERE secret_id = ?3 AND version = ?4",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_int64(st, 1, from_id);
	sqlite3_bind_int64(st, 2, from_v);
	sqlite3_bind_int64(st, 3, to_id);
	sqlite3_bind_int64(st, 4, to_v);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	ck_assert_int_eq(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	*len = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
	ck_assert_ptr_nonnull(b);
	*len = fread(b, 1, (size_t)n, f);
	fclose(f);
	return b;
}

static bool file_contains(const char *path, const char *needle)
{
	size_t len;
	uint8_t *b = read_file(path, &len);
	if (!b)
		return false;
	bool found = memmem(b, len, needle, strlen(needle)) != NULL;
	free(b);
	return found;
}

static void write_file(const char *path, const char *s, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

START_TEST(test_migrations_from_empty)
{
	store *s = NULL;
	ck_assert_int_eq(store_open(&s, &opts), -ENODATA); /* never initialised */
	ck_assert_ptr_null(s);
	s = open_new();
	store_close(s);
	struct stat st;
	ck_assert_int_eq(stat(state, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	sqlite3 *db = raw_open();
	ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), (int64_t)schema_migrations_count);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
	                             "name IN ('meta', 'keks', 'secrets', 'versions', 'grants')"),
	                 5);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM keks"), 1);
	sqlite3_close(db);
	/* Reopen: nothing pending, still fine. */
	ck_assert_int_eq(store_open(&s, &opts), 0);
	store_close(s);
	/* A db whose user_version is 0 was never initialised. */
	db = raw_open();
	raw_exec(db, "PRAGMA user_version = 0");
	sqlite3_close(db);
	ck_assert_int_eq(store_open(&s, &opts), -ENODATA);
}
END_TEST

START_TEST(test_init_refuses)
{
	store_close(open_new());
	ck_assert_int_eq(store_init(&opts), -EEXIST); /* db and key exist */
	/* Key file exists, db does not. */
	char st2[512];
	snprintf(st2, sizeof(st2), "%s/state2", tmpdir);
	struct store_opts o2 = {.state_dir = st2, .key_file = keyfile};
	ck_assert_int_eq(store_init(&o2), -EEXIST);
	/* Key file inside the state dir, also through "..". */
	char k3[512];
	snprintf(k3, sizeof(k3), "%s/state3/sub/master.key", tmpdir);
	char st3[512];
	snprintf(st3, sizeof(st3), "%s/state3", tmpdir);
	struct store_opts o3 = {.state_dir = st3, .key_file = k3};
	ck_assert_int_eq(store_init(&o3), -EINVAL);
	snprintf(k3, sizeof(k3), "%s/other/../state3/master.key", tmpdir);
	ck_assert_int_eq(store_init(&o3), -EINVAL);
	ck_assert_int_ne(access(st3, F_OK), 0); /* nothing created */
	/* Beside it is fine. */
	snprintf(k3, sizeof(k3), "%s/state3.key", tmpdir);
	ck_assert_int_eq(store_init(&o3), 0);
}
END_TEST

START_TEST(test_names_refused)
{
	store *s = open_new();
	char longname[257];
	memset(longname, 'a', 256);
	longname[256] = '\0';
	const char *bad[] = {"",      "/a",     "a/",  "a//b",     ".",    "..",  "a/../b",
	                     "a/./b", longname, "a b", "\xc3\xa9", "a\\b", "a\nb"};
	const uint8_t v[] = "x";
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(store_put_ex(s, bad[i], v, 1, NULL, NULL, NULL) == -EINVAL,
		              "accepted '%s'", bad[i]);
		ck_assert_int_eq(get_rc(s, bad[i], 0), -EINVAL);
		ck_assert_int_eq(store_delete_ex(s, bad[i], NULL), -EINVAL);
	}
	ck_assert_int_eq(store_put_ex(s, NULL, v, 1, NULL, NULL, NULL), -EINVAL);
	/* NUL inside: the C API cannot carry one; the shared rule the API layer uses refuses it. */
	ck_assert_int_eq(names_check("a\0b", 3, NULL), -EINVAL);
	uint64_t n = 99;
	ck_assert_int_eq(store_count(s, &n), 0);
	ck_assert_uint_eq(n, 0);
	longname[255] = '\0';
	ck_assert_int_eq(store_put_ex(s, longname, v, 1, NULL, NULL, NULL), 0);
	ck_assert_int_eq(store_put_ex(s, "a/b-c_d.e/F9", v, 1, NULL, NULL, NULL), 0);
	store_close(s);
}
END_TEST

START_TEST(test_value_max)
{
	store *s = open_new();
	size_t max = SECRETD_VALUE_MAX_DEFAULT;
	uint8_t *big = malloc(max + 1);
	for (size_t i = 0; i < max + 1; i++)
		big[i] = (uint8_t)(i * 31 + 7);
	ck_assert_int_eq(store_put_ex(s, "big", big, max + 1, NULL, NULL, NULL), -EFBIG);
	ck_assert_int_eq(get_rc(s, "big", 0), -ENOENT);
	uint64_t n;
	ck_assert_int_eq(store_count(s, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(store_put_ex(s, "big", big, max, NULL, NULL, NULL), 0);
	uint8_t *v = NULL;
	size_t len;
	ck_assert_int_eq(store_get(s, "big", 0, &v, &len, NULL), 0);
	ck_assert_uint_eq(len, max);
	ck_assert(memcmp(v, big, max) == 0);
	store_value_free(v);
	/* Refused update stores nothing either. */
	ck_assert_int_eq(store_put_ex(s, "big", big, max + 1, NULL, NULL, NULL), -EFBIG);
	struct store_version_info *vi;
	size_t nv;
	ck_assert_int_eq(store_versions(s, "big", &vi, &nv), 0);
	ck_assert_uint_eq(nv, 1);
	store_versions_free(vi, nv);
	store_close(s);
	/* A configured max. */
	struct store_opts o = opts;
	o.max_value = 16;
	ck_assert_int_eq(store_open(&s, &o), 0);
	ck_assert_int_eq(store_put_ex(s, "small", big, 16, NULL, NULL, NULL), 0);
	ck_assert_int_eq(store_put_ex(s, "small", big, 17, NULL, NULL, NULL), -EFBIG);
	store_close(s);
	free(big);
}
END_TEST

START_TEST(test_round_trip_binary)
{
	store *s = open_new();
	const uint8_t bin[] = {0, 1, 2, 0, 0, 255, 'a', 0};
	uint64_t ver = 0;
	ck_assert_int_eq(store_put_ex(s, "bin", bin, sizeof(bin), NULL, NULL, &ver), 0);
	ck_assert_uint_eq(ver, 1);
	uint8_t *v = NULL;
	size_t len = 0;
	uint64_t got = 0;
	ck_assert_int_eq(store_get(s, "bin", 0, &v, &len, &got), 0);
	ck_assert_uint_eq(len, sizeof(bin));
	ck_assert_mem_eq(v, bin, sizeof(bin));
	ck_assert_uint_eq(got, 1);
	store_value_free(v);
	/* Empty value. */
	ck_assert_int_eq(store_put_ex(s, "empty", NULL, 0, NULL, NULL, &ver), 0);
	ck_assert_int_eq(store_get(s, "empty", 0, &v, &len, NULL), 0);
	ck_assert_uint_eq(len, 0);
	store_value_free(v);
	ck_assert_int_eq(get_rc(s, "missing", 0), -ENOENT);
	store_close(s);
	/* Survives close + reopen. */
	ck_assert_int_eq(store_open(&s, &opts), 0);
	ck_assert_int_eq(store_get(s, "bin", 0, &v, &len, NULL), 0);
	ck_assert_mem_eq(v, bin, sizeof(bin));
	store_value_free(v);
	store_close(s);
}
END_TEST

START_TEST(test_versions_and_pruning)
{
	store *s = open_new();
	char buf[32];
	for (int i = 1; i <= 13; i++) {
		snprintf(buf, sizeof(buf), "value-%d", i);
		put_str(s, "app/db", buf, (uint64_t)i);
		get_expect(s, "app/db", 0, buf);
	}
	/* keep = 10: versions 4..13 remain, oldest pruned first. */
	for (int i = 1; i <= 13; i++) {
		snprintf(buf, sizeof(buf), "value-%d", i);
		if (i <= 3)
			ck_assert_int_eq(get_rc(s, "app/db", (uint64_t)i), -ENOENT);
		else
			get_expect(s, "app/db", (uint64_t)i, buf);
	}
	ck_assert_int_eq(get_rc(s, "app/db", 14), -ENOENT);
	struct store_version_info *vi;
	size_t nv;
	ck_assert_int_eq(store_versions(s, "app/db", &vi, &nv), 0);
	ck_assert_uint_eq(nv, SECRETD_KEEP_VERSIONS_DEFAULT);
	ck_assert_uint_eq(vi[0].version, 4);
	ck_assert_uint_eq(vi[nv - 1].version, 13);
	ck_assert(vi[nv - 1].current);
	ck_assert(!vi[0].current);
	ck_assert_uint_eq(vi[0].size, strlen("value-4"));
	ck_assert_uint_eq(vi[0].kek_id, 1);
	store_versions_free(vi, nv);
	ck_assert_int_eq(store_versions(s, "nope", &vi, &nv), -ENOENT);

	put_str(s, "b", "x", 1);
	put_str(s, "a", "x", 1);
	char **names;
	size_t n;
	ck_assert_int_eq(store_names(s, &names, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(names[0], "a");
	ck_assert_str_eq(names[1], "app/db");
	ck_assert_str_eq(names[2], "b");
	store_names_free(names, n);
	struct store_secret_info *li;
	ck_assert_int_eq(store_list(s, &li, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(li[1].name, "app/db");
	ck_assert_uint_eq(li[1].current, 13);
	ck_assert_uint_eq(li[1].nversions, 10);
	store_list_free(li, n);
	uint64_t cnt;
	ck_assert_int_eq(store_count(s, &cnt), 0);
	ck_assert_uint_eq(cnt, 3);
	store_close(s);
}
END_TEST

START_TEST(test_delete)
{
	store *s = open_new();
	put_str(s, "gone", "v1", 1);
	put_str(s, "gone", "v2", 2);
	put_str(s, "stay", "v", 1);
	struct store_grant g = {
	    .secret = "gone", .selector = "id:abc", .mode = 0400, .uid = -1, .gid = -1};
	ck_assert_int_eq(store_grant_add_ex(s, &g, false, NULL), 0);
	g.secret = "gone/*";
	ck_assert_int_eq(store_grant_add_ex(s, &g, false, NULL), 0);
	ck_assert_int_eq(store_delete_ex(s, "gone", NULL), 0);
	ck_assert_int_eq(get_rc(s, "gone", 0), -ENOENT);
	ck_assert_int_eq(get_rc(s, "gone", 1), -ENOENT);
	ck_assert_int_eq(store_delete_ex(s, "gone", NULL), -ENOENT);
	get_expect(s, "stay", 0, "v");
	struct store_grant *gv;
	size_t n;
	ck_assert_int_eq(store_grants(s, &gv, &n), 0);
	ck_assert_uint_eq(n, 1); /* only the exact-name grant went */
	ck_assert_str_eq(gv[0].secret, "gone/*");
	store_grants_free(gv, n);
	sqlite3 *db = raw_open();
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM versions"), 1); /* cascade */
	sqlite3_close(db);
	/* Recreated: versions restart, the old id is not reused. */
	put_str(s, "gone", "new", 1);
	get_expect(s, "gone", 0, "new");
	store_close(s);
}
END_TEST

/* Expiry through store_put_ex: set, kept (0), cleared (-1); shown by store_expiry and
 * store_list (MAC-checked); the lifecycle generation moves only when the expiry changes. */
START_TEST(test_expiry)
{
	store *s = open_new();
	const uint8_t *v = (const uint8_t *)"v";
	struct store_put_opts set = {.expires = 2000000000}, keep = {0}, clear = {.expires = -1};
	int64_t ex = -5;
	ck_assert_int_eq(store_expiry(s, "e", &ex), -ENOENT);
	ck_assert_int_eq(store_put_ex(s, "e", v, 1, &set, NULL, NULL), 0);
	ck_assert_int_eq(store_put_ex(s, "plain", v, 1, &clear, NULL, NULL), 0);
	ck_assert_int_eq(store_expiry(s, "e", &ex), 0);
	ck_assert_int_eq(ex, 2000000000);
	struct store_secret_info *li;
	size_t n;
	ck_assert_int_eq(store_list(s, &li, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(li[0].name, "e");
	ck_assert_int_eq(li[0].expires, 2000000000);
	ck_assert_int_eq(li[1].expires, 0);
	store_list_free(li, n);
	/* kept: by opts 0 and by no opts (a scheduled rotation) */
	uint64_t gen = store_lifecycle_gen(s);
	ck_assert_int_eq(store_put_ex(s, "e", v, 1, &keep, NULL, NULL), 0);
	ck_assert_int_eq(store_put_ex(s, "e", v, 1, NULL, NULL, NULL), 0);
	ck_assert_int_eq(store_put_ex(s, "e", v, 1, &set, NULL, NULL), 0); /* the same again */
	ck_assert_int_eq(store_expiry(s, "e", &ex), 0);
	ck_assert_int_eq(ex, 2000000000);
	ck_assert_uint_eq(store_lifecycle_gen(s), gen);
	/* cleared: the generation moves (the scheduler reloads), then a second clear is no change
	 */
	ck_assert_int_eq(store_put_ex(s, "e", v, 1, &clear, NULL, NULL), 0);
	ck_assert_int_eq(store_expiry(s, "e", &ex), 0);
	ck_assert_int_eq(ex, 0);
	ck_assert_uint_gt(store_lifecycle_gen(s), gen);
	gen = store_lifecycle_gen(s);
	ck_assert_int_eq(store_put_ex(s, "e", v, 1, &clear, NULL, NULL), 0);
	ck_assert_uint_eq(store_lifecycle_gen(s), gen);
	struct store_lifecycle *lc;
	ck_assert_int_eq(store_lifecycles(s, &lc, &n), 0);
	ck_assert_uint_eq(n, 0); /* no row left */
	store_lifecycles_free(lc, n);
	/* a schedule survives a cleared expiry */
	ck_assert_int_eq(store_put_ex(s, "e", v, 1, &set, NULL, NULL), 0);
	ck_assert_int_eq(store_schedule_set(s, "e", 3600, 16, STORE_CHARSET_HEX, NULL, NULL), 0);
	ck_assert_int_eq(store_put_ex(s, "e", v, 1, &clear, NULL, NULL), 0);
	ck_assert_int_eq(store_lifecycles(s, &lc, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(lc[0].expires, 0);
	ck_assert_int_eq(lc[0].every, 3600);
	store_lifecycles_free(lc, n);
	/* a forged expiry is not shown: listing and store_expiry fail closed */
	sqlite3 *db = raw_open();
	raw_exec(db, "UPDATE lifecycle SET expires = 2100000000");
	sqlite3_close(db);
	ck_assert_int_eq(store_expiry(s, "e", &ex), -EBADMSG);
	ck_assert_int_eq(store_list(s, &li, &n), -EBADMSG);
	store_close(s);
}
END_TEST

START_TEST(test_wrong_master_key)
{
	store *s = open_new();
	put_str(s, "a", "secret", 1);
	store_close(s);
	size_t len1, len2;
	uint8_t *before = read_file(dbpath, &len1);
	ck_assert_ptr_nonnull(before);
	char other[512];
	snprintf(other, sizeof(other), "%s/other.key", tmpdir);
	ck_assert_int_eq(crypt_keyfile_create(other), 0);
	struct store_opts o = opts;
	o.key_file = other;
	ck_assert_int_eq(store_open(&s, &o), -EKEYREJECTED);
	ck_assert_ptr_null(s);
	/* Passphrase given for a key-file store. */
	char pass[512];
	snprintf(pass, sizeof(pass), "%s/pass", tmpdir);
	write_file(pass, "x\n", 0600);
	o.pass_file = pass;
	ck_assert_int_eq(store_open(&s, &o), -EKEYREJECTED);
	uint8_t *after = read_file(dbpath, &len2);
	ck_assert_uint_eq(len1, len2);
	ck_assert(memcmp(before, after, len1) == 0);
	free(before);
	free(after);
	/* The right key still works. */
	ck_assert_int_eq(store_open(&s, &opts), 0);
	get_expect(s, "a", 0, "secret");
	store_close(s);
}
END_TEST

START_TEST(test_busy)
{
	store *s = open_new();
	store *s2 = NULL;
	ck_assert_int_eq(store_open(&s2, &opts), -EBUSY);
	ck_assert_ptr_null(s2);
	store_close(s);
	ck_assert_int_eq(store_open(&s2, &opts), 0);
	store_close(s2);
}
END_TEST

START_TEST(test_copy_between_secrets)
{
	store *s = open_new();
	put_str(s, "a", "value of a", 1);
	put_str(s, "b", "value of b", 1);
	put_str(s, "b", "value of b2", 2);
	sqlite3 *db = raw_open();
	int64_t ida = secret_id(db, "a"), idb = secret_id(db, "b");
	/* Into B's current row. */
	raw_copy_row(db, ida, 1, idb, 2);
	ck_assert_int_eq(get_rc(s, "b", 0), -EBADMSG);
	ck_assert_int_eq(get_rc(s, "b", 1), -EBADMSG); /* the head covers every read */
	get_expect(s, "a", 0, "value of a");
	/* Head copied along too. */
	raw_exec(db, "UPDATE secrets SET head = (SELECT head FROM secrets WHERE name = 'a') "
	             "WHERE name = 'b'");
	ck_assert_int_eq(get_rc(s, "b", 0), -EBADMSG);
	/* A put over a tampered secret is refused rather than re-MAC'ing it. */
	ck_assert_int_eq(store_put_ex(s, "b", (const uint8_t *)"x", 1, NULL, NULL, NULL), -EBADMSG);
	/* A rotation would re-MAC heads: it refuses too and changes nothing. */
	ck_assert_int_eq(store_key_rotate_ex(s, NULL, NULL, NULL), -EBADMSG);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM keks"), 1);
	get_expect(s, "a", 0, "value of a");
	sqlite3_close(db);
	store_close(s);
}
END_TEST

START_TEST(test_copy_between_versions)
{
	store *s = open_new();
	put_str(s, "a", "one", 1);
	put_str(s, "a", "two", 2);
	put_str(s, "a", "three", 3);
	sqlite3 *db = raw_open();
	int64_t id = secret_id(db, "a");
	/* Into a non-current version: the head does not cover its blobs, the AD catches it. */
	raw_copy_row(db, id, 1, id, 2);
	ck_assert_int_eq(get_rc(s, "a", 2), -EBADMSG);
	get_expect(s, "a", 1, "one");
	get_expect(s, "a", 0, "three");
	sqlite3_close(db);
	store_close(s);
}
END_TEST

START_TEST(test_restore_older_row)
{
	store *s = open_new();
	put_str(s, "a", "one", 1);
	put_str(s, "a", "two", 2);
	put_str(s, "a", "three", 3);
	put_str(s, "z", "other", 1);
	store_close(s);
	sqlite3 *db = raw_open();
	int64_t id = secret_id(db, "a");

	/* 1: the current row's blobs replaced by an older version's. */
	raw_exec(db, "CREATE TEMP TABLE saved AS SELECT * FROM versions");
	raw_copy_row(db, id, 2, id, 3);
	ck_assert_int_eq(store_open(&s, &opts), 0);
	ck_assert_int_eq(get_rc(s, "a", 0), -EBADMSG);
	ck_assert_int_eq(get_rc(s, "a", 2), -EBADMSG);
	get_expect(s, "z", 0, "other");
	store_close(s);
	raw_exec(db, "DELETE FROM versions; INSERT INTO versions SELECT * FROM saved");
	ck_assert_int_eq(store_open(&s, &opts), 0);
	get_expect(s, "a", 0, "three"); /* restored exactly: fine again */

	/* 2: the newest row deleted and current set back (while the store is open). */
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "DELETE FROM versions WHERE secret_id = %lld AND version = 3; "
	         "UPDATE secrets SET current = 2 WHERE id = %lld",
	         (long long)id, (long long)id);
	raw_exec(db, sql);
	ck_assert_int_eq(get_rc(s, "a", 0), -EBADMSG);
	ck_assert_int_eq(get_rc(s, "a", 2), -EBADMSG);
	store_close(s);

	/* 3: only the newest row deleted, current left. */
	raw_exec(db, "DELETE FROM versions; INSERT INTO versions SELECT * FROM saved");
	raw_exec(db, "UPDATE secrets SET current = 3 WHERE name = 'a'");
	ck_assert_int_eq(store_open(&s, &opts), 0);
	get_expect(s, "a", 0, "three");
	snprintf(sql, sizeof(sql), "DELETE FROM versions WHERE secret_id = %lld AND version = 1",
	         (long long)id);
	raw_exec(db, sql); /* an old version vanished: the version set is covered */
	ck_assert_int_eq(get_rc(s, "a", 0), -EBADMSG);
	store_close(s);
	sqlite3_close(db);
}
END_TEST

/* Raw ciphertexts of all versions, ordered, concatenated with their lengths. */
static uint8_t *raw_blobs(sqlite3 *db, const char *col, size_t *len)
{
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT %s FROM versions ORDER BY secret_id, version", col);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	uint8_t *out = NULL;
	*len = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		out = realloc(out, *len + n + sizeof(n));
		memcpy(out + *len, &n, sizeof(n));
		memcpy(out + *len + sizeof(n), sqlite3_column_blob(st, 0), n);
		*len += n + sizeof(n);
	}
	sqlite3_finalize(st);
	return out;
}

START_TEST(test_key_rotation)
{
	store *s = open_new();
	put_str(s, "a", "a1", 1);
	put_str(s, "a", "a2", 2);
	put_str(s, "b/c", "bc1", 1);
	put_str(s, "d", "", 1);
	sqlite3 *db = raw_open();
	size_t ct_len1, ct_len2, wk_len1, wk_len2;
	uint8_t *ct1 = raw_blobs(db, "ciphertext", &ct_len1);
	uint8_t *wk1 = raw_blobs(db, "wrapped_key", &wk_len1);
	uint64_t kid = 0, n = 0;
	ck_assert_int_eq(store_key_rotate_ex(s, NULL, &kid, &n), 0);
	ck_assert_uint_eq(kid, 2);
	ck_assert_uint_eq(n, 4);
	uint8_t *ct2 = raw_blobs(db, "ciphertext", &ct_len2);
	uint8_t *wk2 = raw_blobs(db, "wrapped_key", &wk_len2);
	ck_assert_uint_eq(ct_len1, ct_len2);
	ck_assert(memcmp(ct1, ct2, ct_len1) == 0); /* payloads untouched */
	ck_assert_uint_eq(wk_len1, wk_len2);
	ck_assert(memcmp(wk1, wk2, wk_len1) != 0);                     /* data keys re-wrapped */
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM keks"), 1); /* old KEK unused: gone */
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM versions WHERE kek_id <> 2"), 0);
	get_expect(s, "a", 0, "a2");
	get_expect(s, "a", 1, "a1");
	get_expect(s, "b/c", 0, "bc1");
	get_expect(s, "d", 0, "");
	put_str(s, "a", "a3", 3);
	struct store_version_info *vi;
	size_t nv;
	ck_assert_int_eq(store_versions(s, "a", &vi, &nv), 0);
	ck_assert_uint_eq(vi[nv - 1].kek_id, 2);
	store_versions_free(vi, nv);
	ck_assert_int_eq(store_key_rotate_ex(s, NULL, &kid, &n), 0);
	ck_assert_uint_eq(kid, 3);
	ck_assert_uint_eq(n, 5);
	store_close(s);
	ck_assert_int_eq(store_open(&s, &opts), 0);
	get_expect(s, "a", 0, "a3");
	get_expect(s, "a", 1, "a1");
	get_expect(s, "b/c", 0, "bc1");
	put_str(s, "a", "a4", 4);
	get_expect(s, "a", 0, "a4");
	store_close(s);
	sqlite3_close(db);
	free(ct1);
	free(ct2);
	free(wk1);
	free(wk2);
}
END_TEST

/* Every value of the fixture below (5 secrets x 3 versions), still readable. */
static void batch_expect_all(store *s)
{
	for (int i = 0; i < 5; i++)
		for (int v = 1; v <= 3; v++) {
			char name[16], want[16];
			snprintf(name, sizeof(name), "k%d", i);
			snprintf(want, sizeof(want), "k%d-v%d", i, v);
			get_expect(s, name, (uint64_t)v, want);
		}
}

START_TEST(test_key_rotation_batches)
{
	store *s = open_new();
	for (int v = 1; v <= 3; v++)
		for (int i = 0; i < 5; i++) {
			char name[16], val[16];
			snprintf(name, sizeof(name), "k%d", i);
			snprintf(val, sizeof(val), "k%d-v%d", i, v);
			put_str(s, name, val, (uint64_t)v);
		}
	sqlite3 *db = raw_open();
	uint64_t kid = 0, n = 0;
	bool resumed = true, fin = true;
	struct store_audit a = {.actor = "uid:0", .action = "key-rotate"};
	ck_assert_int_eq(store_key_rotate_begin(s, &a, &kid, &resumed), 0);
	ck_assert_uint_eq(kid, 2);
	ck_assert(!resumed);
	ck_assert_uint_eq(store_key_rotating(s), 2);
	/* One batch: 4 of 15 data keys, across a secret boundary (k0 has 3). */
	ck_assert_int_eq(store_key_rotate_step(s, 4, NULL, &n, &fin), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert(!fin);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM versions WHERE kek_id = 2"), 4);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM keks"), 2);
	batch_expect_all(s);
	/* New values are wrapped by the new generation at once. */
	put_str(s, "late", "late-v1", 1);
	ck_assert_int_eq(raw_int(db, "SELECT kek_id FROM versions v JOIN secrets s "
	                             "ON s.id = v.secret_id WHERE s.name = 'late'"),
	                 2);
	struct store_key_status ks;
	ck_assert_int_eq(store_key_status(s, &ks), 0);
	ck_assert_uint_eq(ks.current, 2);
	ck_assert_uint_eq(ks.rotating, 2);
	ck_assert_uint_eq(ks.remaining, 11);
	ck_assert_uint_eq(ks.ngens, 2);
	ck_assert_uint_eq(ks.gens[0].versions, 11);
	ck_assert_uint_eq(ks.gens[1].versions, 5);
	store_key_status_free(&ks);

	/* "Crash": the store is closed mid-rotation; the next open resumes it. */
	store_close(s);
	ck_assert_int_eq(store_open(&s, &opts), 0);
	ck_assert_uint_eq(store_key_rotating(s), 2);
	batch_expect_all(s);
	/* Asking again starts no second generation. */
	ck_assert_int_eq(store_key_rotate_begin(s, &a, &kid, &resumed), 0);
	ck_assert_uint_eq(kid, 2);
	ck_assert(resumed);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM keks"), 2);

	/* A tampered secret not yet re-wrapped stops the batch that reaches it, changing nothing.
	 */
	raw_exec(db, "UPDATE secrets SET keep = 7 WHERE name = 'k2'");
	ck_assert_int_eq(store_key_rotate_step(s, 100, NULL, &n, &fin), -EBADMSG);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM versions WHERE kek_id = 2"), 5);
	ck_assert_int_eq(store_key_status(s, &ks), 0);
	ck_assert_int_eq(ks.error, -EBADMSG);
	store_key_status_free(&ks);
	raw_exec(db, "UPDATE secrets SET keep = 10 WHERE name = 'k2'");

	struct store_audit done = {.actor = "secretd", .action = "key-rotate-done"};
	uint64_t total = 0;
	int steps = 0;
	do {
		ck_assert_int_eq(store_key_rotate_step(s, 4, &done, &n, &fin), 0);
		total += n;
		steps++;
	} while (!fin);
	ck_assert_uint_eq(total, 11);
	ck_assert_int_eq(steps, 3);
	ck_assert_uint_eq(store_key_rotating(s), 0);
	/* The old generation is gone only now that no row uses it; the marker too. */
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM keks"), 1);
	ck_assert_int_eq(raw_int(db, "SELECT id FROM keks"), 2);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM meta WHERE key = 'kek.rotating'"), 0);
	ck_assert_int_eq(store_key_status(s, &ks), 0);
	ck_assert_uint_eq(ks.remaining, 0);
	ck_assert_uint_eq(ks.rotating, 0);
	ck_assert_int_eq(ks.error, 0);
	store_key_status_free(&ks);
	/* Recorded: the start twice (the second as in-progress) and the end once. */
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM audit WHERE action = 'key-rotate' "
	                             "AND version = 2"),
	                 2);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM audit WHERE action = 'key-rotate' "
	                             "AND result = 'in-progress'"),
	                 1);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM audit WHERE action = 'key-rotate-done'"),
	                 1);
	uint64_t recs = 0, bad = 0;
	const char *why = NULL;
	ck_assert_int_eq(store_audit_verify(s, &recs, &bad, &why), 0);
	/* Nothing pending: a step is a no-op. */
	ck_assert_int_eq(store_key_rotate_step(s, 4, NULL, &n, &fin), 0);
	ck_assert(fin);
	ck_assert_uint_eq(n, 0);
	store_close(s);
	ck_assert_int_eq(store_open(&s, &opts), 0);
	ck_assert_uint_eq(store_key_rotating(s), 0);
	batch_expect_all(s);
	get_expect(s, "late", 0, "late-v1");
	store_close(s);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_passphrase_mode)
{
	setenv("SECRETD_KDF_TEST", "1", 1);
	char pass[512], wrong[512];
	snprintf(pass, sizeof(pass), "%s/pass", tmpdir);
	snprintf(wrong, sizeof(wrong), "%s/wrong", tmpdir);
	write_file(pass, "correct horse battery staple\n", 0600);
	write_file(wrong, "correct horse battery stapler\n", 0600);
	struct store_opts o = {.state_dir = state, .pass_file = pass};
	ck_assert_int_eq(store_init(&o), 0);
	ck_assert_int_ne(access(keyfile, F_OK), 0); /* no key file in passphrase mode */
	store *s = NULL;
	ck_assert_int_eq(store_open(&s, &o), 0);
	put_str(s, "p", "by passphrase", 1);
	store_close(s);
	ck_assert_int_eq(store_open(&s, &o), 0);
	get_expect(s, "p", 0, "by passphrase");
	store_close(s);
	sqlite3 *db = raw_open();
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM meta WHERE key IN "
	                             "('kdf.salt', 'kdf.opslimit', 'kdf.memlimit')"),
	                 3);
	sqlite3_close(db);
	o.pass_file = wrong;
	ck_assert_int_eq(store_open(&s, &o), -EKEYREJECTED);
	/* Without the newline it is the same passphrase. */
	write_file(wrong, "correct horse battery staple", 0600);
	ck_assert_int_eq(store_open(&s, &o), 0);
	store_close(s);
	/* A key file for a passphrase store. */
	ck_assert_int_eq(crypt_keyfile_create(keyfile), 0);
	ck_assert_int_eq(store_open(&s, &opts), -EKEYREJECTED);
	unsetenv("SECRETD_KDF_TEST");
}
END_TEST

START_TEST(test_grants)
{
	store *s = open_new();
	struct store_grant g = {.secret = "app/*",
	                        .selector = "name:web",
	                        .path = "db/password",
	                        .mode = 0440,
	                        .uid = 1000,
	                        .gid = -1,
	                        .flags = STORE_GRANT_PREVIOUS};
	ck_assert_int_eq(store_grant_add_ex(s, &g, false, NULL), 0);
	ck_assert_int_eq(store_grant_add_ex(s, &g, false, NULL), -EEXIST);
	struct store_grant g2 = {
	    .secret = "*", .selector = "uid:0", .mode = 0400, .uid = -1, .gid = -1};
	ck_assert_int_eq(store_grant_add_ex(s, &g2, false, NULL), 0);
	struct store_grant *v;
	size_t n;
	ck_assert_int_eq(store_grants(s, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[0].secret, "app/*");
	ck_assert_str_eq(v[0].selector, "name:web");
	ck_assert_str_eq(v[0].path, "db/password");
	ck_assert_uint_eq(v[0].mode, 0440);
	ck_assert_int_eq(v[0].uid, 1000);
	ck_assert_int_eq(v[0].gid, -1);
	ck_assert_uint_eq(v[0].flags, STORE_GRANT_PREVIOUS);
	ck_assert_ptr_null(v[1].path);
	ck_assert_int_lt(v[0].id, v[1].id);
	int64_t id0 = v[0].id;
	store_grants_free(v, n);
	/* Replace keeps the row. */
	g.mode = 0400;
	g.path = NULL;
	ck_assert_int_eq(store_grant_add_ex(s, &g, true, NULL), 0);
	ck_assert_int_eq(store_grants(s, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(v[0].id, id0);
	ck_assert_uint_eq(v[0].mode, 0400);
	ck_assert_ptr_null(v[0].path);
	store_grants_free(v, n);

	/* Validation. */
	struct store_grant b = g;
	b.secret = "a/../b";
	ck_assert_int_eq(store_grant_add_ex(s, &b, false, NULL), -EINVAL);
	b = g;
	b.secret = "a/*/b";
	ck_assert_int_eq(store_grant_add_ex(s, &b, false, NULL), -EINVAL);
	b = g;
	b.selector = "";
	ck_assert_int_eq(store_grant_add_ex(s, &b, false, NULL), -EINVAL);
	char longsel[SECRETD_SELECTOR_MAX + 2];
	memset(longsel, 'x', sizeof(longsel) - 1);
	longsel[sizeof(longsel) - 1] = '\0';
	b.selector = longsel;
	ck_assert_int_eq(store_grant_add_ex(s, &b, false, NULL), -EINVAL);
	longsel[SECRETD_SELECTOR_MAX] = '\0';
	ck_assert_int_eq(store_grant_add_ex(s, &b, false, NULL), 0);
	b = g;
	b.path = "../etc/passwd";
	ck_assert_int_eq(store_grant_add_ex(s, &b, false, NULL), -EINVAL);
	b = g;
	b.mode = 01000;
	ck_assert_int_eq(store_grant_add_ex(s, &b, false, NULL), -EINVAL);
	b = g;
	b.flags = 0x80;
	ck_assert_int_eq(store_grant_add_ex(s, &b, false, NULL), -EINVAL);

	ck_assert_int_eq(store_grant_remove_ex(s, "*", "uid:0", NULL), 0);
	ck_assert_int_eq(store_grant_remove_ex(s, "*", "uid:0", NULL), -ENOENT);
	ck_assert_int_eq(store_grants(s, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	store_grants_free(v, n);

	/* Raw edits of a grant row are detected. */
	sqlite3 *db = raw_open();
	raw_exec(db, "UPDATE grants SET mode = 420 WHERE secret = 'app/*'");
	v = (struct store_grant *)1;
	ck_assert_int_eq(store_grants(s, &v, &n), -EBADMSG);
	ck_assert_ptr_null(v);
	raw_exec(db, "UPDATE grants SET mode = 256 WHERE secret = 'app/*'");
	ck_assert_int_eq(store_grants(s, &v, &n), 0);
	store_grants_free(v, n);
	raw_exec(db, "UPDATE grants SET selector = 'name:evil' WHERE selector = 'name:web'");
	ck_assert_int_eq(store_grants(s, &v, &n), -EBADMSG);
	raw_exec(db, "UPDATE grants SET selector = 'name:web' WHERE selector = 'name:evil'");
	/* A row copied under a new id. */
	raw_exec(db, "INSERT INTO grants (secret, selector, path, mode, uid, gid, flags, created, "
	             "mac) SELECT 'x', selector, path, mode, uid, gid, flags, created, mac "
	             "FROM grants WHERE selector = 'name:web'");
	ck_assert_int_eq(store_grants(s, &v, &n), -EBADMSG);
	sqlite3_close(db);
	store_close(s);
}
END_TEST

START_TEST(test_no_plaintext_on_disk)
{
	static const char canary[] = "CANARY-7f3a9c1e-plaintext-must-not-reach-disk";
	const char *files[] = {"secretd.db", "secretd.db-wal", "secretd.db-shm"};
	char p[3][512];
	for (int i = 0; i < 3; i++)
		snprintf(p[i], sizeof(p[i]), "%s/%s", state, files[i]);
	store *s = open_new();
	put_str(s, "c", canary, 1);
	for (int i = 0; i < 3; i++)
		ck_assert_msg(!file_contains(p[i], canary), "canary in %s after put", files[i]);
	char upd[128];
	snprintf(upd, sizeof(upd), "%s-v2", canary);
	put_str(s, "c", upd, 2);
	for (int i = 0; i < 3; i++)
		ck_assert_msg(!file_contains(p[i], canary), "canary in %s after update", files[i]);
	ck_assert_int_eq(store_delete_ex(s, "c", NULL), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_msg(!file_contains(p[i], canary), "canary in %s after delete", files[i]);
	store_close(s);
	for (int i = 0; i < 3; i++)
		ck_assert_msg(!file_contains(p[i], canary), "canary in %s after close", files[i]);
	ck_assert(!file_contains(keyfile, canary));
}
END_TEST

/* Labels (schema 007): set with a put, changed (set, remove), listed and read back sorted; the
 * rules and the per-secret limit refused; a label row edited, moved to another secret or added
 * by someone who only writes the database fails its MAC; a delete takes them along. */
START_TEST(test_labels)
{
	store *s = open_new();
	struct store_label two[] = {{.key = "team", .value = "payments"},
	                            {.key = "env", .value = "prod"}};
	struct store_label_change c = {.set = two, .nset = 2};
	struct store_put_opts po = {.labels = &c};
	ck_assert_int_eq(store_put_ex(s, "db/a", (const uint8_t *)"v", 1, &po, NULL, NULL), 0);
	put_str(s, "db/b", "v", 1);
	struct store_label *l = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_labels(s, "db/a", &l, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(l[0].key, "env");
	ck_assert_str_eq(l[1].value, "payments");
	store_labels_free(l, n);
	ck_assert_int_eq(store_labels(s, "db/b", &l, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(store_labels(s, "nope", &l, &n), -ENOENT);

	/* a put without labels keeps them; a change sets one and removes one */
	put_str(s, "db/a", "v2", 2);
	struct store_label one[] = {{.key = "team", .value = "core"}};
	const char *rm[] = {"env"};
	c = (struct store_label_change){.set = one, .nset = 1, .remove = rm, .nremove = 1};
	ck_assert_int_eq(store_labels_change(s, "db/a", &c, NULL, &l, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(l[0].key, "team");
	ck_assert_str_eq(l[0].value, "core");
	store_labels_free(l, n);
	struct store_secret_info *v = NULL;
	ck_assert_int_eq(store_list(s, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(v[0].nlabels, 1);
	ck_assert_str_eq(v[0].labels[0].value, "core");
	ck_assert_uint_eq(v[1].nlabels, 0);
	store_list_free(v, n);

	/* refused: bad key, bad value, a key set and removed, past LABELS_MAX; no secret */
	struct store_label bad[] = {{.key = "-x", .value = "v"}};
	c = (struct store_label_change){.set = bad, .nset = 1};
	ck_assert_int_eq(store_labels_change(s, "db/a", &c, NULL, NULL, NULL), -EINVAL);
	bad[0] = (struct store_label){.key = "x", .value = "a\nb"};
	ck_assert_int_eq(store_labels_change(s, "db/a", &c, NULL, NULL, NULL), -EINVAL);
	const char *rm_team[] = {"team"};
	c = (struct store_label_change){.set = one, .nset = 1, .remove = rm_team, .nremove = 1};
	ck_assert_int_eq(store_labels_change(s, "db/a", &c, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(
	    store_labels_change(s, "nope", &(struct store_label_change){0}, NULL, NULL, NULL),
	    -ENOENT);
	static char keys[65][8];
	struct store_label many[65];
	for (int i = 0; i < 65; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		many[i] = (struct store_label){.key = keys[i], .value = ""};
	}
	c = (struct store_label_change){.set = many, .nset = 63};
	ck_assert_int_eq(store_labels_change(s, "db/b", &c, NULL, NULL, NULL), 0); /* 63 */
	c = (struct store_label_change){.set = many + 63, .nset = 2};
	ck_assert_int_eq(store_labels_change(s, "db/b", &c, NULL, NULL, NULL), -E2BIG);
	c = (struct store_label_change){.set = many + 63, .nset = 1};
	ck_assert_int_eq(store_labels_change(s, "db/b", &c, NULL, NULL, NULL), 0); /* 64 */

	/* forged by a writer of the file: an edited value, a set moved to another secret */
	sqlite3 *db = raw_open();
	char *err = NULL;
	ck_assert_int_eq(sqlite3_exec(db,
	                              "UPDATE secret_labels SET labels = replace(labels, 'core', "
	                              "'evil') WHERE secret_id = (SELECT id FROM secrets WHERE "
	                              "name = 'db/a')",
	                              NULL, NULL, &err),
	                 SQLITE_OK);
	ck_assert_int_eq(store_labels(s, "db/a", &l, &n), -EBADMSG);
	ck_assert_int_eq(store_list(s, &v, &n), -EBADMSG);
	ck_assert_int_eq(sqlite3_exec(db,
	                              "DELETE FROM secret_labels WHERE secret_id = (SELECT id FROM "
	                              "secrets WHERE name = 'db/a'); UPDATE secret_labels SET "
	                              "secret_id = (SELECT id FROM secrets WHERE name = 'db/a')",
	                              NULL, NULL, &err),
	                 SQLITE_OK);
	ck_assert_int_eq(store_labels(s, "db/a", &l, &n), -EBADMSG);
	ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM secret_labels", NULL, NULL, &err),
	                 SQLITE_OK);
	ck_assert_int_eq(store_labels(s, "db/a", &l, &n), 0);
	ck_assert_uint_eq(n, 0);
	/* a delete takes them along (cascade) */
	c = (struct store_label_change){.set = one, .nset = 1};
	ck_assert_int_eq(store_labels_change(s, "db/a", &c, NULL, NULL, NULL), 0);
	ck_assert_int_eq(store_delete_ex(s, "db/a", NULL), 0);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM secret_labels"), 0);
	sqlite3_close(db);
	store_close(s);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, storefix_setup, storefix_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_migrations_from_empty);
	tcase_add_test(tc, test_init_refuses);
	tcase_add_test(tc, test_names_refused);
	tcase_add_test(tc, test_value_max);
	tcase_add_test(tc, test_round_trip_binary);
	tcase_add_test(tc, test_versions_and_pruning);
	tcase_add_test(tc, test_delete);
	tcase_add_test(tc, test_expiry);
	tcase_add_test(tc, test_wrong_master_key);
	tcase_add_test(tc, test_busy);
	tcase_add_test(tc, test_copy_between_secrets);
	tcase_add_test(tc, test_copy_between_versions);
	tcase_add_test(tc, test_restore_older_row);
	tcase_add_test(tc, test_key_rotation);
	tcase_add_test(tc, test_key_rotation_batches);
	tcase_add_test(tc, test_passphrase_mode);
	tcase_add_test(tc, test_grants);
	tcase_add_test(tc, test_labels);
	tcase_add_test(tc, test_no_plaintext_on_disk);
	suite_add_tcase(s, tc);
	return s;
}

Suite *unit_suite(void)
{
	return store_suite();
}
