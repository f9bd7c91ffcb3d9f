/* Unit tests for the engine's mounts files without root and without FUSE: a real store in a temp
 * dir, a mounts registry over it, and
 *   - views: grants x identities -> the files (names, paths, modes, owners, .previous), the
 *     values shared through the blob cache and decrypted again only when their version changed;
 *   - fail closed: a tampered value fails the whole view (nothing partial), tampered grants empty
 *     the policy inputs (the workload API allows nothing) and arm the retry, which recovers;
 *   - the registry: host vs container identities from (fake) peers' cgroups, the seen-container
 *     bound, attach/detach/exit of a real child process on a real loop, the JSON renderings;
 *   - the names a view reserves. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "broker/engine/mounts.h"
#include "broker/engine/fault_test.h"
#include "broker/engine/mounts_int.h"
#include "broker/os/loop.h"
#include "tests/unit/runner.h"
#include "tests/unit/storefix.h"

#define DOCKER_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DOCKER_CG "/system.slice/docker-" DOCKER_ID ".scope"

static store *s;
static mounts *m;

static void fix_setup(void)
{
	storefix_setup();
	s = open_new();
	ck_assert_int_eq(mounts_new(&m, NULL, s, NULL), 0);
}

static void fix_teardown(void)
{
	mounts_free(m);
	m = NULL;
	store_close(s);
	s = NULL;
	storefix_teardown();
}

int unit_setup(void)
{
	base_setup();
	return 0;
}

void unit_teardown(void)
{
	base_teardown();
}

/* ---- helpers ---- */

static uint64_t put(const char *name, const char *val)
{
	uint64_t v = 0;
	ck_assert_int_eq(store_put_ex(s, name, (const uint8_t *)val, strlen(val), NULL, NULL, &v),
	                 0);
	return v;
}

static void grant(const char *secret, const char *selector, const char *path, uint32_t mode,
                  int64_t uid, int64_t gid, uint32_t flags)
{
	struct store_grant g = {.secret = (char *)secret,
	                        .selector = (char *)selector,
	                        .path = (char *)path,
	                        .mode = mode,
	                        .uid = uid,
	                        .gid = gid,
	                        .flags = flags};
	ck_assert_int_eq(store_grant_add_ex(s, &g, false, NULL), 0);
}

static void refresh_ok(void)
{
	size_t unapplied = 99;
	ck_assert_int_eq(mounts_refresh(m, &unapplied), 0);
	ck_assert_uint_eq(unapplied, 0);
}

static void raw_sql(const char *sql)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
	ck_assert_int_eq(sqlite3_changes(db), 1);
	sqlite3_free(err);
	sqlite3_close(db);
}

/* A peer as ident would describe it (no pidfd: nothing here mounts). */
static struct ident peer(enum cgroup_runtime rt, const char *id, const char *path, uid_t uid)
{
	struct ident w = {.pid = 1, .uid = uid, .gid = uid, .pidfd = -1};
	w.cg.runtime = rt;
	snprintf(w.cg.id, sizeof(w.cg.id), "%s", id);
	snprintf(w.cg.path, sizeof(w.cg.path), "%s", path);
	return w;
}

static struct policy_identity container(const char *name, uint32_t uid)
{
	return (struct policy_identity){.container = true,
	                                .runtime = "runc",
	                                .id = "c-" /* any */,
	                                .name = name,
	                                .cgroup = "/test",
	                                .uid = uid,
	                                .gid = uid};
}

static const struct sfs_entry *entry(const struct mview *v, const char *path)
{
	for (size_t i = 0; i < v->nentries; i++)
		if (strcmp(v->entries[i].path, path) == 0)
			return &v->entries[i];
	return NULL;
}

static void expect_entry(const struct mview *v, const char *path, uint32_t mode, uint32_t uid,
                         uint32_t gid, uint64_t version, size_t len)
{
	const struct sfs_entry *e = entry(v, path);
	ck_assert_msg(e != NULL, "no file %s in the view", path);
	ck_assert_uint_eq(e->mode, mode);
	ck_assert_uint_eq(e->uid, uid);
	ck_assert_uint_eq(e->gid, gid);
	ck_assert_ptr_nonnull(e->blob);
	ck_assert_uint_eq(sfs_blob_version(e->blob), version);
	ck_assert_uint_eq(sfs_blob_len(e->blob), len);
}

/* ---- views ---- */

START_TEST(test_view_grants)
{
	put("app/db", "one");
	put("app/db", "second"); /* v2; v1 kept as .previous */
	put("app/key", "k");
	put("conf", "c-value");
	put("other", "o");
	put("solo", "s"); /* one version: its .previous does not exist yet */
	grant("app/*", "name:web", NULL, 0440, -1, -1, 0);
	grant("conf", "name:web", "etc/conf.txt", 0, 0, 5, 0);
	grant("app/db", "name:web", NULL, 0400, -1, -1, STORE_GRANT_PREVIOUS);
	grant("solo", "name:web", NULL, 0400, -1, -1, STORE_GRANT_PREVIOUS);
	grant("other", "name:db", NULL, 0400, -1, -1, 0);
	grant("other", "uid:1000", NULL, 0400, -1, -1, 0);
	refresh_ok();

	struct policy_identity web = container("web", 1000);
	struct mview v;
	ck_assert_int_eq(views_build(m, &web, &v), 0);
	/* app/db, app/db.previous, app/key, etc/conf.txt, solo (solo.previous left out) */
	ck_assert_uint_eq(v.nentries, 5);
	ck_assert_uint_eq(v.nfiles, 6);
	expect_entry(&v, "app/db", 0440, 1000, 1000, 2, 6); /* the first grant wins the path */
	expect_entry(&v, "app/db.previous", 0400, 1000, 1000, 1, 3);
	expect_entry(&v, "app/key", 0440, 1000, 1000, 1, 1);
	expect_entry(&v, "etc/conf.txt", POLICY_MODE_DEFAULT, 0, 5, 1, 7);
	expect_entry(&v, "solo", 0400, 1000, 1000, 1, 1);
	ck_assert_ptr_null(entry(&v, "other"));
	ck_assert_ptr_null(entry(&v, "conf"));
	ck_assert_ptr_null(entry(&v, "solo.previous"));
	/* files sorted by path, each naming its secret */
	for (size_t i = 1; i < v.nfiles; i++)
		ck_assert_int_lt(strcmp(v.files[i - 1].path, v.files[i].path), 0);
	ck_assert_str_eq(v.files[0].path, "app/db");
	ck_assert_str_eq(v.files[0].secret, "app/db");
	views_clear(&v);
	ck_assert_ptr_null(v.entries);
	ck_assert_uint_eq(v.nentries, 0);

	struct policy_identity db = container("db", 0);
	ck_assert_int_eq(views_build(m, &db, &v), 0);
	ck_assert_uint_eq(v.nentries, 1);
	expect_entry(&v, "other", 0400, 0, 0, 1, 1);
	views_clear(&v);

	/* uid:1000 is a host selector: a container running as 1000 does not match it */
	struct policy_identity c1000 = container("x", 1000);
	ck_assert_int_eq(views_build(m, &c1000, &v), 0);
	ck_assert_uint_eq(v.nentries, 0);
	views_clear(&v);
	struct policy_identity host = {.container = false,
	                               .runtime = "host",
	                               .id = "",
	                               .name = "",
	                               .cgroup = "/user.slice",
	                               .uid = 1000,
	                               .gid = 1000};
	ck_assert_int_eq(views_build(m, &host, &v), 0);
	ck_assert_uint_eq(v.nentries, 1);
	expect_entry(&v, "other", 0400, 1000, 1000, 1, 1);
	views_clear(&v);

	/* nobody */
	struct policy_identity nobody = container("nobody", 0);
	ck_assert_int_eq(views_build(m, &nobody, &v), 0);
	ck_assert_uint_eq(v.nentries, 0);
	ck_assert_uint_eq(v.nfiles, 0);
	views_clear(&v);
}
END_TEST

START_TEST(test_view_blobs_shared)
{
	put("a", "1");
	grant("a", "name:*", NULL, 0400, -1, -1, STORE_GRANT_PREVIOUS);
	refresh_ok();
	struct policy_identity w1 = container("w1", 1), w2 = container("w2", 2);
	struct mview v1, v2;
	ck_assert_int_eq(views_build(m, &w1, &v1), 0);
	ck_assert_int_eq(views_build(m, &w2, &v2), 0);
	ck_assert_uint_eq(v1.nentries, 1);
	/* one decrypted copy of a version, whoever shows it */
	ck_assert_ptr_eq(v1.entries[0].blob, v2.entries[0].blob);
	sfs_blob *old = sfs_blob_ref(v1.entries[0].blob);
	views_clear(&v1);
	views_clear(&v2);

	/* an unchanged version is not decrypted again across refreshes */
	refresh_ok();
	ck_assert_int_eq(views_build(m, &w1, &v1), 0);
	ck_assert_ptr_eq(v1.entries[0].blob, old);
	views_clear(&v1);

	/* a new version: a new blob; the old one shows as .previous (a blob of its own) */
	put("a", "22");
	refresh_ok();
	ck_assert_int_eq(views_build(m, &w1, &v1), 0);
	ck_assert_uint_eq(v1.nentries, 2);
	expect_entry(&v1, "a", 0400, 1, 1, 2, 2);
	expect_entry(&v1, "a.previous", 0400, 1, 1, 1, 1);
	ck_assert_ptr_ne(entry(&v1, "a")->blob, old);
	views_clear(&v1);
	sfs_blob_unref(old);

	/* many names: the cache's index grows and still finds each one */
	char name[32];
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "many/%03d", i);
		put(name, name);
	}
	grant("many/*", "name:w1", NULL, 0400, -1, -1, 0);
	refresh_ok();
	ck_assert_int_eq(views_build(m, &w1, &v1), 0);
	ck_assert_int_eq(views_build(m, &w2, &v2), 0);
	ck_assert_uint_eq(v1.nentries, 302);
	ck_assert_uint_eq(v2.nentries, 2);
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "many/%03d", i);
		expect_entry(&v1, name, 0400, 1, 1, 1, strlen(name));
	}
	ck_assert_ptr_eq(entry(&v1, "a")->blob, entry(&v2, "a")->blob);
	views_clear(&v1);
	views_clear(&v2);
	ck_assert_uint_eq(m->blobs.n, 302);
	blobcache_sweep(&m->blobs); /* all used since the last sweep: kept */
	ck_assert_uint_eq(m->blobs.n, 302);
	blobcache_sweep(&m->blobs); /* none used since: all dropped */
	ck_assert_uint_eq(m->blobs.n, 0);
}
END_TEST

/* A deleted secret's decrypted value must not come back as the value of a new secret of the same
 * name: versions restart at 1 after a delete, and the blob cache was keyed by (name, version)
 * only. A view built between two refreshes (a container attaching, a template read) marks the
 * blob used, so the delete's refresh kept it, and the next put's refresh found "version 1" in the
 * cache: every mount showed the deleted value (#15: found while serving the workload API from
 * the cache). */
/* common/secret.h's accessor (its typedef would shadow grant()'s parameter here). */
uint8_t *secret_data(const struct secret *s);
void secret_unref(struct secret *s);

static int fail_inputs(enum engine_fault_point p, void *ud)
{
	return p == ENGINE_FAULT_VIEW_INPUTS ? -EIO : 0;
}

START_TEST(test_view_deleted_value_not_reused)
{
	put("app/a", "old");
	grant("app/*", "name:*", NULL, 0400, -1, -1, 0); /* a pattern: the delete keeps it */
	refresh_ok();
	struct policy_identity w1 = container("w1", 1);
	struct mview v;
	ck_assert_int_eq(views_build(m, &w1, &v), 0); /* as an attach does, between refreshes */
	expect_entry(&v, "app/a", 0400, 1, 1, 1, 3);
	views_clear(&v);
	ck_assert_int_eq(store_delete_ex(s, "app/a", NULL), 0);
	refresh_ok();
	ck_assert_uint_eq(put("app/a", "newer"), 1);
	refresh_ok();
	ck_assert_int_eq(views_build(m, &w1, &v), 0);
	expect_entry(&v, "app/a", 0400, 1, 1, 1, 5);
	ck_assert_mem_eq(secret_data(sfs_blob_secret(entry(&v, "app/a")->blob)), "newer", 5);
	views_clear(&v);
	/* the workload API's read from the mounts' values: the new value or none, never the old */
	struct secret *cv = NULL;
	uint64_t cver = 0;
	if (mounts_value_cached(m, "app/a", &cv, &cver) == 0) {
		ck_assert_mem_eq(secret_data(cv), "newer", 5);
		secret_unref(cv);
	}

	/* the same when the delete's refresh could not read the inputs at all */
	ck_assert_int_eq(views_build(m, &w1, &v), 0);
	views_clear(&v);
	ck_assert_int_eq(store_delete_ex(s, "app/a", NULL), 0);
	engine_fault_hook = fail_inputs;
	ck_assert_int_eq(mounts_refresh(m, NULL), -EIO);
	engine_fault_hook = NULL;
	ck_assert_uint_eq(put("app/a", "newest!"), 1);
	refresh_ok();
	ck_assert_int_eq(views_build(m, &w1, &v), 0);
	expect_entry(&v, "app/a", 0400, 1, 1, 1, 7);
	ck_assert_mem_eq(secret_data(sfs_blob_secret(entry(&v, "app/a")->blob)), "newest!", 7);
	views_clear(&v);
}
END_TEST

START_TEST(test_view_tampered_value_fails_closed)
{
	put("good", "g");
	put("bad", "b");
	grant("good", "name:web", NULL, 0400, -1, -1, 0);
	grant("bad", "name:web", NULL, 0400, -1, -1, 0);
	grant("good", "name:db", NULL, 0400, -1, -1, 0);
	/* an attacker with write access to the database flips the stored ciphertext */
	raw_sql("UPDATE versions SET ciphertext = zeroblob(length(ciphertext)) WHERE secret_id = "
	        "(SELECT id FROM secrets WHERE name = 'bad')");
	refresh_ok(); /* grants and names still read and verify */
	struct policy_identity web = container("web", 0), db = container("db", 0);
	struct mview v;
	int r = views_build(m, &web, &v);
	ck_assert_int_eq(r, -EBADMSG);
	/* nothing partial: not even the good file */
	ck_assert_ptr_null(v.entries);
	ck_assert_ptr_null(v.files);
	ck_assert_uint_eq(v.nentries, 0);
	views_clear(&v);
	/* a view that does not show it is unaffected */
	ck_assert_int_eq(views_build(m, &db, &v), 0);
	ck_assert_uint_eq(v.nentries, 1);
	views_clear(&v);
	/* the failure is not cached: every build reads it again, and fails again */
	refresh_ok();
	ck_assert_int_eq(views_build(m, &web, &v), -EBADMSG);
	ck_assert_int_eq(views_build(m, &web, &v), -EBADMSG);
	ck_assert_uint_eq(v.nentries, 0);
}
END_TEST

START_TEST(test_tampered_grants_allow_nothing)
{
	put("a", "1");
	grant("a", "name:web", NULL, 0400, -1, -1, 0);
	refresh_ok();
	struct policy_identity web = container("web", 0);
	ck_assert(mounts_allows(m, &web, "a"));
	ck_assert_int_eq(m->retry_ms, 0);

	/* a grant row that fails its MAC: the inputs cannot be read */
	raw_sql("UPDATE grants SET mode = 420 WHERE secret = 'a'");
	size_t unapplied = 99;
	ck_assert_int_eq(mounts_refresh(m, &unapplied), -EBADMSG);
	ck_assert_uint_eq(unapplied, 0); /* nothing mounted here */
	ck_assert(m->in.stale);
	/* decided on nothing: the old grant no longer counts */
	ck_assert(!mounts_allows(m, &web, "a"));
	json_t *g = mounts_granted_json(m, &web);
	ck_assert_uint_eq(json_array_size(g), 0);
	json_decref(g);
	struct mview v;
	ck_assert_int_eq(views_build(m, &web, &v), 0);
	ck_assert_uint_eq(v.nentries, 0);
	views_clear(&v);
	/* the refresh is retried with a doubling pause */
	ck_assert_int_eq(m->retry_ms, MOUNTS_RETRY_MIN_MS);
	ck_assert_int_eq(mounts_refresh(m, NULL), -EBADMSG);
	ck_assert_int_eq(m->retry_ms, 2 * MOUNTS_RETRY_MIN_MS);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(mounts_refresh(m, NULL), -EBADMSG);
	ck_assert_int_eq(m->retry_ms, MOUNTS_RETRY_MAX_MS);
	/* a new mount would load afresh, and fail the same way */
	ck_assert_int_eq(views_inputs_fresh(m), -EBADMSG);
	ck_assert(m->in.stale);

	/* repaired: served again, retries end */
	raw_sql("UPDATE grants SET mode = 256 WHERE secret = 'a'");
	refresh_ok();
	ck_assert(!m->in.stale);
	ck_assert_int_eq(m->retry_ms, 0);
	ck_assert(mounts_allows(m, &web, "a"));
	struct mounts_stats st;
	mounts_get_stats(m, &st);
	ck_assert_uint_eq(st.refreshes, 14);
	ck_assert_uint_eq(st.failed_closed, 0);
}
END_TEST

/* ---- the registry: identities ---- */

START_TEST(test_identify_host_and_containers)
{
	put("h", "1");
	put("d", "2");
	put("both/x", "3");
	grant("h", "uid:1000", NULL, 0400, -1, -1, 0);
	grant("d", "runtime:docker", NULL, 0400, -1, -1, 0);
	grant("both/*", "uid:1000", NULL, 0400, -1, -1, 0);
	grant("both/*", "id:0123", NULL, 0400, -1, -1, 0);
	refresh_ok();

	/* a host process: no container, only uid: selectors */
	struct ident hp =
	    peer(CGROUP_RT_NONE, "", "/user.slice/user-1000.slice/session-1.scope", 1000);
	struct policy_identity who;
	mounts_identify(m, &hp, &who);
	ck_assert(!who.container);
	ck_assert_str_eq(who.runtime, "host");
	ck_assert_str_eq(who.id, "");
	ck_assert_uint_eq(who.uid, 1000);
	ck_assert(mounts_allows(m, &who, "h"));
	ck_assert(!mounts_allows(m, &who, "d"));
	ck_assert(mounts_allows(m, &who, "both/x"));
	ck_assert(!mounts_allows(m, &who, "missing"));
	ck_assert(!mounts_allows(m, &who, "../h"));
	json_t *g = mounts_granted_json(m, &who);
	ck_assert_uint_eq(json_array_size(g), 2);
	ck_assert_str_eq(json_string_value(json_array_get(g, 0)), "both/x");
	ck_assert_str_eq(json_string_value(json_array_get(g, 1)), "h");
	json_decref(g);
	struct mounts_stats st;
	mounts_get_stats(m, &st);
	ck_assert_uint_eq(st.containers, 0); /* a host process is not remembered */

	/* a docker container seen on the workload socket, running as uid 1000 */
	struct ident dp = peer(CGROUP_RT_DOCKER, DOCKER_ID, DOCKER_CG, 1000);
	mounts_identify(m, &dp, &who);
	ck_assert(who.container);
	ck_assert_str_eq(who.runtime, "docker");
	ck_assert_str_eq(who.id, DOCKER_ID);
	ck_assert_str_eq(who.cgroup, DOCKER_CG);
	ck_assert_uint_eq(who.uid, 1000);
	ck_assert(!mounts_allows(m, &who, "h")); /* uid:1000 never matches a container */
	ck_assert(mounts_allows(m, &who, "d"));
	ck_assert(mounts_allows(m, &who, "both/x"));
	mounts_get_stats(m, &st);
	ck_assert_uint_eq(st.containers, 1);
	ck_assert_uint_eq(st.mounted, 0);

	/* a process in a cgroup below it (no runtime recognised there) is that container, with
	 * its own uid */
	struct ident sub = peer(CGROUP_RT_NONE, "", DOCKER_CG "/sub/inner", 33);
	mounts_identify(m, &sub, &who);
	ck_assert(who.container);
	ck_assert_str_eq(who.id, DOCKER_ID);
	ck_assert_uint_eq(who.uid, 33);
	/* a sibling whose path only starts with the same bytes is not */
	struct ident sib = peer(CGROUP_RT_NONE, "", DOCKER_CG "x", 1000);
	mounts_identify(m, &sib, &who);
	ck_assert(!who.container);
	ck_assert(mounts_allows(m, &who, "h"));
	mounts_get_stats(m, &st);
	ck_assert_uint_eq(st.containers, 1);

	/* the JSON list */
	json_t *l = mounts_list_json(m);
	ck_assert_uint_eq(json_array_size(l), 1);
	json_t *c = json_array_get(l, 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "id")), DOCKER_ID);
	ck_assert_str_eq(json_string_value(json_object_get(c, "runtime")), "docker");
	ck_assert_str_eq(json_string_value(json_object_get(c, "source")), "workload");
	ck_assert(json_is_false(json_object_get(c, "mounted")));
	ck_assert(json_is_null(json_object_get(c, "mount")));
	ck_assert(json_is_false(json_object_get(c, "failed_closed")));
	ck_assert_int_eq(json_integer_value(json_object_get(c, "uid")), 1000);
	json_decref(l);

	/* a workload may not mount outside a container, nor at a bad target */
	size_t files = 9;
	ck_assert_int_eq(mounts_mount_self(m, &hp, NULL, &files), -EPERM);
	ck_assert_uint_eq(files, 0);
	ck_assert_int_eq(mounts_mount_self(m, &dp, "relative", &files), -EINVAL);
	ck_assert_int_eq(mounts_mount_self(m, &dp, "/run/../etc", &files), -EINVAL);
}
END_TEST

START_TEST(test_seen_bounded)
{
	char id[65], path[128];
	for (int i = 0; i < MOUNTS_SEEN_MAX + 10; i++) {
		snprintf(id, sizeof(id), "%064x", i);
		snprintf(path, sizeof(path), "/docker/%s", id);
		struct ident p = peer(CGROUP_RT_DOCKER, id, path, 0);
		struct policy_identity who;
		mounts_identify(m, &p, &who);
		ck_assert(who.container);
		ck_assert_str_eq(who.id, id);
	}
	struct mounts_stats st;
	mounts_get_stats(m, &st);
	ck_assert_uint_eq(st.containers, MOUNTS_SEEN_MAX);
	json_t *l = mounts_list_json(m);
	ck_assert_uint_eq(json_array_size(l), MOUNTS_SEEN_MAX);
	/* The ones forgotten are the least recently seen (all within the same second here): the
	 * first 10, not the newest. */
	for (int i = 0; i < MOUNTS_SEEN_MAX + 10; i++) {
		snprintf(id, sizeof(id), "%064x", i);
		bool listed = false;
		for (size_t k = 0; k < json_array_size(l) && !listed; k++)
			listed = !strcmp(
			    json_string_value(json_object_get(json_array_get(l, k), "id")), id);
		ck_assert_msg(listed == (i >= 10), "container %d %s", i,
		              listed ? "kept" : "forgotten");
	}
	json_decref(l);
	/* Seeing one again makes it the most recent: the next newcomer pushes out the next oldest.
	 */
	snprintf(id, sizeof(id), "%064x", 10);
	snprintf(path, sizeof(path), "/docker/%s", id);
	struct ident again = peer(CGROUP_RT_DOCKER, id, path, 0);
	struct policy_identity who;
	mounts_identify(m, &again, &who);
	snprintf(id, sizeof(id), "%064x", MOUNTS_SEEN_MAX + 10);
	snprintf(path, sizeof(path), "/docker/%s", id);
	struct ident late = peer(CGROUP_RT_DOCKER, id, path, 0);
	mounts_identify(m, &late, &who);
	l = mounts_list_json(m);
	bool has10 = false, has11 = false;
	for (size_t k = 0; k < json_array_size(l); k++) {
		const char *cid = json_string_value(json_object_get(json_array_get(l, k), "id"));
		has10 |= strtoull(cid + 48, NULL, 16) == 10;
		has11 |= strtoull(cid + 48, NULL, 16) == 11;
	}
	json_decref(l);
	ck_assert_msg(has10, "the container seen again was forgotten");
	ck_assert_msg(!has11, "the least recently seen container was kept");
}
END_TEST

/* ---- the registry: attach, detach, exit (a real child on a real loop) ---- */

static pid_t child_start(void)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static int quit_when_empty(loop *l, void *ud)
{
	mounts *mm = ud;
	struct mounts_stats st;
	mounts_get_stats(mm, &st);
	if (st.containers == 0)
		loop_quit(l);
	return 50; /* poll; Check's timeout bounds the wait */
}

START_TEST(test_attach_detach_exit)
{
	loop *l = NULL;
	ck_assert_int_eq(loop_new(&l), 0);
	mounts *lm = NULL;
	ck_assert_int_eq(mounts_new(&lm, l, s, NULL), 0);
	pid_t pid = child_start();
	struct policy_label labels[] = {{"team", "a"}, {"tier", "web"}};
	struct mounts_attach_req r = {.id = "c1",
	                              .pid = pid,
	                              .name = "web",
	                              .runtime = "runc",
	                              .labels = labels,
	                              .nlabels = 2,
	                              .uid = -1,
	                              .gid = -1};
	bool mounted = true;
	size_t files = 9;
	/* wants nothing, granted nothing: registered, not mounted (also in the root cgroup) */
	ck_assert_int_eq(mounts_attach(lm, &r, &mounted, &files), 0);
	ck_assert(!mounted);
	ck_assert_uint_eq(files, 0);
	ck_assert_int_eq(mounts_attach(lm, &r, &mounted, &files), -EEXIST);

	struct mounts_attach_req bad = r;
	bad.id = "has space";
	ck_assert_int_eq(mounts_attach(lm, &bad, &mounted, &files), -EINVAL);
	bad = r;
	bad.id = "";
	ck_assert_int_eq(mounts_attach(lm, &bad, &mounted, &files), -EINVAL);
	bad = r;
	bad.pid = 0;
	ck_assert_int_eq(mounts_attach(lm, &bad, &mounted, &files), -EINVAL);
	bad = r;
	bad.target = "run/secrets";
	ck_assert_int_eq(mounts_attach(lm, &bad, &mounted, &files), -EINVAL);
	bad = r;
	bad.root = "rootfs";
	ck_assert_int_eq(mounts_attach(lm, &bad, &mounted, &files), -EINVAL);
	bad = r;
	bad.id = "c2";
	bad.nlabels = POLICY_LABELS_MAX + 1;
	ck_assert_int_eq(mounts_attach(lm, &bad, &mounted, &files), -E2BIG);

	json_t *list = mounts_list_json(lm);
	ck_assert_uint_eq(json_array_size(list), 1);
	json_t *c = json_array_get(list, 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "id")), "c1");
	ck_assert_str_eq(json_string_value(json_object_get(c, "name")), "web");
	ck_assert_str_eq(json_string_value(json_object_get(c, "source")), "hook");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "labels"), "tier")),
	                 "web");
	ck_assert_int_eq(json_integer_value(json_object_get(c, "pid")), pid);
	ck_assert_int_eq(json_integer_value(json_object_get(c, "uid")), getuid());
	json_decref(list);

	ck_assert_int_eq(mounts_detach(lm, "c1", NULL), 0);
	ck_assert_int_eq(mounts_detach(lm, "c1", NULL), -ENOENT);

	/* registered again; the init's exit forgets it (its pidfd, watched on the loop) */
	ck_assert_int_eq(mounts_attach(lm, &r, &mounted, &files), 0);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(loop_add_prepare(l, quit_when_empty, lm), 0);
	ck_assert_int_eq(loop_run(l), 0);
	struct mounts_stats st;
	mounts_get_stats(lm, &st);
	ck_assert_uint_eq(st.containers, 0);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	ck_assert_int_eq(mounts_detach(lm, "c1", NULL), -ENOENT);

	mounts_free(lm);
	loop_free(l);
}
END_TEST

/* A container whose cgroup is the root one cannot be told apart from the host: it may register
 * only while it wants nothing (needs this test to run in the root cgroup itself, else skipped:
 * there the attach would really mount). */
START_TEST(test_attach_root_cgroup_refused)
{
	struct ident self;
	ck_assert_int_eq(ident_from_pid(getpid(), &self), 0);
	bool root = strcmp(self.cg.path, "/") == 0;
	ident_clear(&self);
	if (!root)
		return;
	loop *l = NULL;
	ck_assert_int_eq(loop_new(&l), 0);
	mounts *lm = NULL;
	put("a", "1");
	grant("a", "id:c1", NULL, 0400, -1, -1, 0);
	ck_assert_int_eq(mounts_new(&lm, l, s, NULL), 0);
	pid_t pid = child_start();
	struct mounts_attach_req r = {.id = "c1", .pid = pid, .uid = -1, .gid = -1};
	bool mounted = true;
	size_t files = 9;
	ck_assert_int_eq(mounts_attach(lm, &r, &mounted, &files), -EPERM); /* granted a file */
	r.id = "c2";
	r.wants = true;
	ck_assert_int_eq(mounts_attach(lm, &r, &mounted, &files), -EPERM); /* asked for secrets */
	r.wants = false;
	ck_assert_int_eq(mounts_attach(lm, &r, &mounted, &files), 0); /* neither */
	ck_assert(!mounted);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	mounts_free(lm);
	loop_free(l);
}
END_TEST

/* ---- reserved names ---- */

START_TEST(test_name_check)
{
	const char *why = NULL;
	ck_assert_int_eq(mounts_name_check(".version", 8, &why), -EINVAL);
	ck_assert_ptr_nonnull(why);
	ck_assert_int_eq(mounts_name_check(".version/x", 10, NULL), -EINVAL);
	ck_assert_int_eq(mounts_name_check("a.previous", 10, &why), -EINVAL);
	ck_assert_int_eq(mounts_name_check("a/b.previous", 12, NULL), -EINVAL);
	ck_assert_int_eq(mounts_name_check(".versions", 9, NULL), 0);
	ck_assert_int_eq(mounts_name_check("x/.version", 10, NULL), 0);
	ck_assert_int_eq(mounts_name_check("a.previous.txt", 14, NULL), 0);
	ck_assert_int_eq(mounts_name_check("app/db", 6, NULL), 0);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *su = suite_create("views");
	TCase *tc = tcase_create("views");
	tcase_add_checked_fixture(tc, fix_setup, fix_teardown);
	tcase_add_test(tc, test_view_grants);
	tcase_add_test(tc, test_view_blobs_shared);
	tcase_add_test(tc, test_view_deleted_value_not_reused);
	tcase_add_test(tc, test_view_tampered_value_fails_closed);
	tcase_add_test(tc, test_tampered_grants_allow_nothing);
	tcase_add_test(tc, test_identify_host_and_containers);
	tcase_add_test(tc, test_seen_bounded);
	tcase_add_test(tc, test_attach_detach_exit);
	tcase_add_test(tc, test_attach_root_cgroup_refused);
	tcase_add_test(tc, test_name_check);
	suite_add_tcase(su, tc);
	return su;
}
