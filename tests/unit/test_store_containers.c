/* Unit tests for broker/store/containers.c (schema 006): the persisted registry of attached
 * containers. A row round trip (every field and the labels in order), replace, deletion,
 * invalid rows refused, rows surviving a reopen, and rows edited behind the store's back (a
 * column, a label, a label added, a row copied under another id) reported by their MAC
 * without hiding the other rows. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "broker/store/store.h"
#include "tests/unit/runner.h"
#include "tests/unit/storefix.h"

static struct store_cont_label labels2[] = {{"tier", "db"}, {"team", "pay"}};

static struct store_container row_a(void)
{
	return (struct store_container){.id = "cont-a",
	                                .hook = true,
	                                .runtime = "runc",
	                                .name = "app",
	                                .labels = labels2,
	                                .nlabels = 2,
	                                .cgroup = "/user.slice/cont-a",
	                                .pid = 4242,
	                                .start_time = 987654321,
	                                .mount = STORE_CONT_MOUNT_HOOK,
	                                .root = "/var/lib/bundle/rootfs",
	                                .target = "/run/secrets",
	                                .uid = 1000,
	                                .gid = 1001,
	                                .wants = true,
	                                .created = 1700000000};
}

static struct store_container row_b(void)
{
	return (struct store_container){.id = "cont-b",
	                                .hook = false,
	                                .runtime = "docker",
	                                .name = "",
	                                .cgroup = "/docker/cont-b",
	                                .pid = 77,
	                                .start_time = 5,
	                                .mount = STORE_CONT_MOUNT_SELF,
	                                .mount_pid = 77,
	                                .mount_start = 5,
	                                .mount_ns = 4026532000ULL,
	                                .target = "/secrets",
	                                .uid = 0,
	                                .gid = 0,
	                                .created = 1700000001};
}

static void same(const struct store_container *got, const struct store_container *want)
{
	ck_assert_int_eq(got->integrity, 0);
	ck_assert_str_eq(got->id, want->id);
	ck_assert(got->hook == want->hook);
	ck_assert_str_eq(got->runtime, want->runtime);
	ck_assert_str_eq(got->name, want->name);
	ck_assert_str_eq(got->cgroup, want->cgroup);
	ck_assert_int_eq(got->pid, want->pid);
	ck_assert_uint_eq(got->start_time, want->start_time);
	ck_assert_int_eq(got->mount, want->mount);
	ck_assert_int_eq(got->mount_pid, want->mount_pid);
	ck_assert_uint_eq(got->mount_start, want->mount_start);
	ck_assert_uint_eq(got->mount_ns, want->mount_ns);
	if (want->root)
		ck_assert_str_eq(got->root, want->root);
	else
		ck_assert_ptr_null(got->root);
	ck_assert_str_eq(got->target, want->target);
	ck_assert_uint_eq(got->uid, want->uid);
	ck_assert_uint_eq(got->gid, want->gid);
	ck_assert(got->wants == want->wants);
	ck_assert_int_eq(got->created, want->created);
	ck_assert_uint_eq(got->nlabels, want->nlabels);
	for (size_t i = 0; i < want->nlabels; i++) {
		ck_assert_str_eq(got->labels[i].key, want->labels[i].key);
		ck_assert_str_eq(got->labels[i].value, want->labels[i].value);
	}
}

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

START_TEST(test_round_trip)
{
	store *s = open_new();
	struct store_container *v = NULL;
	size_t n = 7;
	ck_assert_int_eq(store_containers_list(s, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_containers_free(v, n);

	struct store_container a = row_a(), b = row_b();
	ck_assert_int_eq(store_containers_put(s, &b), 0);
	ck_assert_int_eq(store_containers_put(s, &a), 0);
	ck_assert_int_eq(store_containers_list(s, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	same(&v[0], &a); /* ordered by id */
	same(&v[1], &b);
	store_containers_free(v, n);

	/* replace: the mount ended, one label less */
	a.mount = STORE_CONT_UNMOUNTED;
	a.nlabels = 1;
	ck_assert_int_eq(store_containers_put(s, &a), 0);
	store_close(s);
	ck_assert_int_eq(store_open(&s, &opts), 0); /* rows survive a restart */
	ck_assert_int_eq(store_containers_list(s, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	same(&v[0], &a);
	store_containers_free(v, n);

	/* deletion, labels with it */
	ck_assert_int_eq(store_containers_del(s, "cont-a"), 0);
	ck_assert_int_eq(store_containers_del(s, "cont-a"), -ENOENT);
	ck_assert_int_eq(store_containers_list(s, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	same(&v[0], &b);
	store_containers_free(v, n);
	store_close(s);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM container_labels", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
}
END_TEST

START_TEST(test_invalid)
{
	store *s = open_new();
	struct store_container c = row_a();
	c.id = "";
	ck_assert_int_eq(store_containers_put(s, &c), -EINVAL);
	c = row_a();
	c.pid = 0;
	ck_assert_int_eq(store_containers_put(s, &c), -EINVAL);
	c = row_a();
	c.mount = STORE_CONT_MOUNT_SELF; /* a self-mount without its requester */
	ck_assert_int_eq(store_containers_put(s, &c), -EINVAL);
	c = row_a();
	c.nlabels = STORE_CONT_LABELS_MAX + 1;
	ck_assert_int_eq(store_containers_put(s, &c), -EINVAL);
	c = row_a();
	c.target = NULL;
	ck_assert_int_eq(store_containers_put(s, &c), -EINVAL);
	char longid[STORE_CONT_ID_MAX + 2];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	c = row_a();
	c.id = longid;
	ck_assert_int_eq(store_containers_put(s, &c), -EINVAL);
	ck_assert_int_eq(store_containers_del(s, longid), -EINVAL);
	struct store_container *v = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_containers_list(s, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_containers_free(v, n);
	store_close(s);
}
END_TEST

/* One edit behind the store's back: that row (only) fails its check. */
static void tampered(const char *sql, const char *bad_id)
{
	store *s = open_new();
	struct store_container a = row_a(), b = row_b();
	ck_assert_int_eq(store_containers_put(s, &a), 0);
	ck_assert_int_eq(store_containers_put(s, &b), 0);
	raw(sql);
	struct store_container *v = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_containers_list(s, &v, &n), 0);
	bool seen_bad = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].id, bad_id) == 0) {
			ck_assert_int_eq(v[i].integrity, -EBADMSG);
			seen_bad = true;
		} else {
			ck_assert_int_eq(v[i].integrity, 0);
		}
	}
	ck_assert(seen_bad);
	store_containers_free(v, n);
	store_close(s);
}

START_TEST(test_integrity_start_time)
{
	tampered("UPDATE containers SET start_time = start_time + 1 WHERE id = 'cont-a'", "cont-a");
}
END_TEST

START_TEST(test_integrity_pid)
{
	tampered("UPDATE containers SET pid = 1 WHERE id = 'cont-b'", "cont-b");
}
END_TEST

START_TEST(test_integrity_label)
{
	tampered("UPDATE container_labels SET value = 'web' WHERE container_id = 'cont-a' AND "
	         "key = 'tier'",
	         "cont-a");
}
END_TEST

START_TEST(test_integrity_label_added)
{
	tampered("INSERT INTO container_labels VALUES ('cont-b', 0, 'tier', 'db')", "cont-b");
}
END_TEST

START_TEST(test_integrity_copied)
{
	/* a valid row copied under another id */
	tampered("INSERT INTO containers SELECT 'cont-c', hook, runtime, name, cgroup, pid, "
	         "start_time, mount, mount_pid, mount_start, mount_ns, root, target, uid, gid, "
	         "wants, created, mac FROM containers WHERE id = 'cont-b'",
	         "cont-c");
}
END_TEST

START_TEST(test_integrity_mount_ns)
{
	tampered("UPDATE containers SET mount_ns = 1 WHERE id = 'cont-b'", "cont-b");
}
END_TEST

START_TEST(test_integrity_hook_flag)
{
	tampered("UPDATE containers SET hook = 0 WHERE id = 'cont-a'", "cont-a");
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("store_containers");
	TCase *tc = tcase_create("store_containers");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, storefix_setup, storefix_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_invalid);
	tcase_add_test(tc, test_integrity_start_time);
	tcase_add_test(tc, test_integrity_pid);
	tcase_add_test(tc, test_integrity_label);
	tcase_add_test(tc, test_integrity_label_added);
	tcase_add_test(tc, test_integrity_copied);
	tcase_add_test(tc, test_integrity_hook_flag);
	tcase_add_test(tc, test_integrity_mount_ns);
	suite_add_tcase(s, tc);
	return s;
}
