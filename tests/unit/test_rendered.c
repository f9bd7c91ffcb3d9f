/* Unit tests for rendered files (broker/engine/rendered.c, service_template_*), without root and
 * without FUSE: a real store in a temp dir and a mounts registry over it.
 *   - a container sees a rendered file only when granted the template and every secret it
 *     references (and each exists); else there is no file;
 *   - one rendering shared by every view, made again only when the template or an input's
 *     version changed (the same blob otherwise: sfs leaves the file alone);
 *   - a secret's file keeps its path; the owner, mode and path of the grant;
 *   - put refuses a template naming a missing secret with the position; a tampered template
 *     fails the view closed. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "broker/engine/fault_test.h"
#include "broker/engine/mounts.h"
#include "broker/engine/mounts_int.h"
#include "broker/engine/service.h"
#include "broker/rules/tmpl.h"
#include "common/secret.h"
#include "tests/unit/runner.h"
#include "tests/unit/storefix.h"

static store *s;
static mounts *m;
static service *sv;
static const struct service_actor who = {.actor = "uid:0", .pid = 1, .exe = "test"};

static void fix_setup(void)
{
	storefix_setup();
	s = open_new();
	ck_assert_int_eq(mounts_new(&m, NULL, s, NULL), 0);
	ck_assert_int_eq(service_new(&sv, s, m, NULL, NULL), 0);
}

static void fix_teardown(void)
{
	service_free(sv);
	mounts_free(m);
	store_close(s);
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

static void put(const char *name, const char *val)
{
	struct service_put p = {.name = name, .val = (const uint8_t *)val, .len = strlen(val)};
	struct service_result res;
	ck_assert_int_eq(service_put(sv, &who, &p, &res), 0);
	ck_assert_int_eq(res.refresh_err, 0);
}

static void tput(const char *name, const char *body)
{
	struct tmpl_error err;
	struct service_result res;
	int r =
	    service_template_put(sv, &who, name, (const uint8_t *)body, strlen(body), &err, &res);
	ck_assert_msg(r == 0, "template put: %d %s", r, err.msg);
	ck_assert_int_eq(res.refresh_err, 0);
}

static void grant(const char *target, const char *selector, const char *path, uint32_t mode,
                  int64_t uid)
{
	struct store_grant g = {.secret = (char *)target,
	                        .selector = (char *)selector,
	                        .path = (char *)path,
	                        .mode = mode,
	                        .uid = uid,
	                        .gid = -1};
	struct service_result res;
	ck_assert_int_eq(service_grant(sv, &who, &g, false, &res), 0);
	ck_assert_int_eq(res.refresh_err, 0);
}

static void revoke(const char *target, const char *selector)
{
	struct service_result res;
	ck_assert_int_eq(service_revoke(sv, &who, target, selector, &res), 0);
}

static struct policy_identity container(const char *name, uint32_t uid)
{
	return (struct policy_identity){.container = true,
	                                .runtime = "runc",
	                                .id = "c-",
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

static const struct policy_file *file(const struct mview *v, const char *path)
{
	for (size_t i = 0; i < v->nfiles; i++)
		if (strcmp(v->files[i].path, path) == 0)
			return &v->files[i];
	return NULL;
}

/* The view of name: path shows want (or no file at all when want is NULL); its blob. */
static sfs_blob *expect(const char *name, const char *path, const char *want)
{
	struct policy_identity id = container(name, 1000);
	struct mview v;
	ck_assert_int_eq(views_build(m, &id, &v), 0);
	const struct sfs_entry *e = entry(&v, path);
	sfs_blob *b = NULL;
	if (!want) {
		ck_assert_msg(e == NULL, "%s sees %s", name, path);
	} else {
		ck_assert_msg(e != NULL, "%s does not see %s", name, path);
		secret *val = sfs_blob_secret(e->blob);
		ck_assert_uint_eq(secret_len(val), strlen(want));
		ck_assert_msg(memcmp(secret_data(val), want, strlen(want)) == 0, "%s: %.*s", path,
		              (int)secret_len(val), (const char *)secret_data(val));
		b = e->blob;
	}
	for (size_t i = 1; i < v.nfiles; i++) /* still sorted by path: mountfs bsearches it */
		ck_assert_int_lt(strcmp(v.files[i - 1].path, v.files[i].path), 0);
	views_clear(&v);
	return b;
}

START_TEST(test_access_rule)
{
	put("db/user", "app");
	put("db/pw", "p@ss word");
	tput("db/url", "postgres://{{ secret \"db/user\" }}:{{ secret \"db/pw\" | urlquery }}@db/"
	               "app?v={{ version \"db/pw\" }}");
	grant("tmpl:db/url", "name:web", NULL, 0440, -1);
	/* the template alone: no file */
	expect("web", "db/url", NULL);
	grant("db/user", "name:web", NULL, 0400, -1);
	expect("web", "db/url", NULL); /* one input of two */
	grant("db/pw", "name:*", NULL, 0400, -1);
	expect("web", "db/url", "postgres://app:p%40ss%20word@db/app?v=1");
	expect("api", "db/url", NULL); /* granted the inputs, not the template */
	/* owner and mode of the grant; the audit name is the grant's */
	struct policy_identity web = container("web", 1000);
	struct mview v;
	ck_assert_int_eq(views_build(m, &web, &v), 0);
	const struct sfs_entry *e = entry(&v, "db/url");
	ck_assert_uint_eq(e->mode, 0440);
	ck_assert_uint_eq(e->uid, 1000);
	ck_assert_str_eq(file(&v, "db/url")->secret, "tmpl:db/url");
	views_clear(&v);
	/* revoke one input: the file is gone; the input deleted: gone too */
	revoke("db/user", "name:web");
	expect("web", "db/url", NULL);
	grant("db/user", "name:web", NULL, 0400, -1);
	expect("web", "db/url", "postgres://app:p%40ss%20word@db/app?v=1");
	struct service_result res;
	ck_assert_int_eq(service_delete(sv, &who, "db/pw", &res), 0);
	expect("web", "db/url", NULL);
	/* the template deleted: its grants go with it */
	put("db/pw", "x");
	grant("db/pw", "name:*", NULL, 0400, -1);
	expect("web", "db/url", "postgres://app:x@db/app?v=1");
	ck_assert_int_eq(service_template_delete(sv, &who, "db/url", &res), 0);
	expect("web", "db/url", NULL);
	ck_assert_uint_eq(m->in.ntgrants, 0);
	ck_assert_int_eq(service_template_delete(sv, &who, "db/url", &res), -ENOENT);
}
END_TEST

START_TEST(test_paths)
{
	put("a", "A");
	put("cfg", "secret-file");
	tput("t", "[{{ secret \"a\" }}]");
	grant("a", "name:*", NULL, 0400, -1);
	grant("cfg", "name:*", NULL, 0400, -1);
	grant("tmpl:t", "name:web", "cfg", 0400, -1); /* a secret's path: the secret keeps it */
	grant("tmpl:t", "name:api", "etc/app.conf", 0, 7);
	expect("web", "cfg", "secret-file");
	expect("api", "etc/app.conf", "[A]");
	struct policy_identity api = container("api", 1000);
	struct mview v;
	ck_assert_int_eq(views_build(m, &api, &v), 0);
	ck_assert_uint_eq(entry(&v, "etc/app.conf")->mode, POLICY_MODE_DEFAULT);
	ck_assert_uint_eq(entry(&v, "etc/app.conf")->uid, 7);
	ck_assert_uint_eq(v.nentries, 3); /* a, cfg, etc/app.conf */
	views_clear(&v);
	/* a directory of a secret's file, or a path below one: left out, the view still applies */
	put("dir/x", "X");
	grant("dir/x", "name:*", NULL, 0400, -1);
	grant("tmpl:t", "name:db", "dir", 0400, -1);
	grant("tmpl:t", "name:db2", "a/below", 0400, -1);
	expect("db", "dir/x", "X");
	expect("db", "dir", NULL);
	expect("db2", "a", "A");
	expect("db2", "a/below", NULL);
	/* a template without references, the only file of its view */
	tput("static", "no secrets here");
	grant("tmpl:static", "name:lonely", NULL, 0400, -1);
	expect("lonely", "static", "no secrets here");
}
END_TEST

START_TEST(test_rendering_cached_by_input_versions)
{
	put("a", "1");
	put("b", "x");
	put("unrelated", "u");
	tput("t", "{{ secret \"a\" }}-{{ secret \"b\" }}");
	grant("a", "name:*", NULL, 0400, -1);
	grant("b", "name:*", NULL, 0400, -1);
	grant("unrelated", "name:*", NULL, 0400, -1);
	grant("tmpl:t", "name:*", NULL, 0400, -1);
	uint64_t renders = m->st.renders;
	sfs_blob *b1 = expect("w1", "t", "1-x");
	/* shared by every view, rendered once */
	ck_assert_ptr_eq(expect("w2", "t", "1-x"), b1);
	ck_assert_uint_eq(m->st.renders, renders + 1);
	sfs_blob *keep = sfs_blob_ref(b1);
	/* a change of something it does not use: the same blob (no invalidation) */
	put("unrelated", "u2");
	ck_assert_ptr_eq(expect("w1", "t", "1-x"), keep);
	size_t unapplied;
	ck_assert_int_eq(mounts_refresh(m, &unapplied), 0);
	ck_assert_ptr_eq(expect("w1", "t", "1-x"), keep);
	ck_assert_uint_eq(m->st.renders, renders + 1);
	/* an input rotates: a new rendering, whole */
	put("b", "yy");
	sfs_blob *b2 = expect("w1", "t", "1-yy");
	ck_assert_ptr_ne(b2, keep);
	ck_assert_uint_eq(m->st.renders, renders + 2);
	/* the old one is intact for whoever still holds it (an open file handle) */
	ck_assert_uint_eq(secret_len(sfs_blob_secret(keep)), 3);
	ck_assert(memcmp(secret_data(sfs_blob_secret(keep)), "1-x", 3) == 0);
	sfs_blob_unref(keep);
	/* a new template version renders again, with its version as the blob's */
	tput("t", "{{ secret \"a\" | json }}");
	sfs_blob *b3 = expect("w1", "t", "\"1\"");
	ck_assert_uint_eq(sfs_blob_version(b3), 2);
	/* not used by any view: dropped at the sweep (after one used since the last) */
	revoke("tmpl:t", "name:*");
	ck_assert_uint_eq(m->renders.n, 1);
	ck_assert_int_eq(mounts_refresh(m, &unapplied), 0);
	ck_assert_uint_eq(m->renders.n, 0);
}
END_TEST

static int fail_inputs(enum engine_fault_point p, void *ud)
{
	(void)ud;
	return p == ENGINE_FAULT_VIEW_INPUTS ? -EIO : 0;
}

/* A deleted input re-created under the same name starts again at version 1: the rendering made
 * from the deleted value must not stand for it (it was cached by input versions only, so the old
 * value came back in the rendered file), nor its decrypted value (the blob cache). */
START_TEST(test_recreated_input_renders_new_value)
{
	put("db/pw", "old-value");
	tput("t", "[{{ secret \"db/pw\" }}]");
	grant("db/*", "name:*", NULL, 0400, -1); /* a pattern: the delete keeps it */
	grant("tmpl:t", "name:*", NULL, 0400, -1);
	expect("w1", "t", "[old-value]");
	struct service_result res;
	ck_assert_int_eq(service_delete(sv, &who, "db/pw", &res), 0);
	expect("w1", "t", NULL);
	put("db/pw", "new");
	expect("w1", "t", "[new]");
	expect("w1", "db/pw", "new");
	/* the same for a template deleted and put again (its versions start again at 1 too), when
	 * the delete's refresh could not read its inputs (so nothing was swept) */
	expect("w1", "t", "[new]");
	engine_fault_hook = fail_inputs;
	ck_assert_int_eq(service_template_delete(sv, &who, "t", &res), 0);
	engine_fault_hook = NULL;
	ck_assert_int_ne(res.refresh_err, 0);
	tput("t", "<{{ secret \"db/pw\" }}>");
	/* the grant as a refresh sees it while it builds the mounted containers' views (before its
	 * sweep): written to the store, the inputs read again, no sweep in between */
	struct store_grant g = {
	    .secret = "tmpl:t", .selector = "name:*", .mode = 0400, .uid = -1, .gid = -1};
	ck_assert_int_eq(store_grant_add_ex(s, &g, false, NULL), 0);
	ck_assert_int_eq(views_inputs_load(m), 0);
	expect("w1", "t", "<new>");
}
END_TEST

START_TEST(test_put_refused)
{
	put("db/user", "u");
	struct tmpl_error err;
	struct service_result res;
	const char *body = "user={{ secret \"db/user\" }}\npw={{ secret \"db/missing\" }}";
	ck_assert_int_eq(
	    service_template_put(sv, &who, "t", (const uint8_t *)body, strlen(body), &err, &res),
	    -EINVAL);
	ck_assert_uint_eq(err.line, 2);
	ck_assert_uint_eq(err.col, 14);
	ck_assert_ptr_nonnull(strstr(err.msg, "db/missing"));
	ck_assert_ptr_nonnull(strstr(err.msg, "does not exist"));
	body = "{{ secret \"db/user\" | nofilter }}";
	ck_assert_int_eq(
	    service_template_put(sv, &who, "t", (const uint8_t *)body, strlen(body), &err, &res),
	    -EINVAL);
	ck_assert_uint_eq(err.col, 23);
	ck_assert_int_eq(
	    service_template_put(sv, &who, "../t", (const uint8_t *)"x", 1, &err, &res), -EINVAL);
	struct store_tmpl_info *ti;
	size_t n;
	ck_assert_int_eq(store_tmpl_list(s, &ti, &n), 0);
	ck_assert_uint_eq(n, 0); /* nothing stored */
	store_tmpl_list_free(ti, n);
	/* each refusal is audited, naming the template */
	struct store_audit_row *a;
	ck_assert_int_eq(store_audit_list(s, 0, 0, 0, &a, &n), 0);
	size_t refused = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].action, "template-put") == 0 && strcmp(a[i].result, "invalid") == 0)
			refused++;
	ck_assert_uint_eq(refused, 3);
	ck_assert_str_eq(a[n - 2].secret, "tmpl:t");
	store_audit_list_free(a, n);
}
END_TEST

START_TEST(test_tampered_template_fails_closed)
{
	put("a", "1");
	tput("t", "{{ secret \"a\" }}");
	tput("u", "u");
	grant("a", "name:*", NULL, 0400, -1);
	grant("tmpl:t", "name:*", NULL, 0400, -1);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	ck_assert_int_eq(
	    sqlite3_exec(db,
	                 "UPDATE template_versions SET ciphertext = (SELECT ciphertext "
	                 "FROM template_versions WHERE template_id = (SELECT id FROM "
	                 "templates WHERE name = 'u')) WHERE template_id = (SELECT id "
	                 "FROM templates WHERE name = 't')",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(mounts_refresh(m, NULL), 0); /* no container mounted */
	struct policy_identity w = container("w", 1);
	struct mview v;
	ck_assert_int_eq(views_build(m, &w, &v), -EBADMSG);
	ck_assert_ptr_null(v.entries);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *su = suite_create("rendered");
	TCase *tc = tcase_create("rendered");
	tcase_add_checked_fixture(tc, fix_setup, fix_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_access_rule);
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_rendering_cached_by_input_versions);
	tcase_add_test(tc, test_recreated_input_renders_new_value);
	tcase_add_test(tc, test_put_refused);
	tcase_add_test(tc, test_tampered_template_fails_closed);
	suite_add_tcase(su, tc);
	return su;
}
