/* Tests of broker/policy: selector syntax, selector matching (containers and the host), grants and
 * the view a container gets (subtrees, path remapping, first wins, .previous, "*"). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/rules/policy.h"
#include "common/limits.h"
#include "tests/unit/runner.h"

#define CID "4e1f5c8b2d3a6f7e9c0b1a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"

static const struct policy_label labels[] = {
    {"app", "web"},
    {"tier", "front=end"},
    {"empty", ""},
};

static const struct policy_identity ctr = {
    .container = true,
    .runtime = "docker",
    .id = CID,
    .name = "web-1",
    .labels = labels,
    .nlabels = 3,
    .cgroup = "/docker/" CID,
    .uid = 1000,
    .gid = 1001,
};

static const struct policy_identity host = {
    .container = false,
    .runtime = "host",
    .id = "",
    .name = "",
    .cgroup = "/user.slice",
    .uid = 1000,
    .gid = 1000,
};

/* ---- selector syntax ---- */

static const char *const valid_sel[] = {
    "id:4",           ("id:" CID),      "id:not-hex",
    "name:web-*",     "name:[a-z]*",    "label:app=web",
    "label:a=",       "label:k=v=w",    "cgroup:/docker/*",
    "cgroup:*",       "runtime:docker", "runtime:runc",
    "runtime:crun-1", "uid:0",          "uid:1000",
    "uid:4294967294", "name:a b",
};

static const char *const invalid_sel[] = {
    "",
    "id:",
    "name:",
    "label:",
    "cgroup:",
    "runtime:",
    "uid:",
    "id",
    "foo:bar",
    "ID:abc",
    " id:abc",
    "uid:abc",
    "uid:-1",
    "uid:+1",
    "uid:4294967295",
    "uid:99999999999",
    "uid:1 ",
    "uid: 1",
    "uid:0x10",
    "label:noequals",
    "label:=v",
    "runtime:Docker",
    "runtime:a_b",
    "runtime:a.b",
    "name:a\tb",
    "id:a\nb",
    "name:\x7f",
    "name:caf\xc3\xa9",
    "cgroup:/a\x01",
};

static int sel_check(const char *s, size_t len)
{
	char *b = malloc(len ? len : 1); /* exactly sized: no NUL for an overread to find */
	ck_assert_ptr_nonnull(b);
	memcpy(b, s, len);
	const char *why = NULL;
	int r = policy_selector_check(b, len, &why);
	free(b);
	if (r < 0) {
		ck_assert_int_eq(r, -EINVAL);
		ck_assert_ptr_nonnull(why);
		ck_assert_uint_gt(strlen(why), 0);
	}
	return r;
}

START_TEST(test_valid)
{
	ck_assert_msg(sel_check(valid_sel[_i], strlen(valid_sel[_i])) == 0, "'%s'", valid_sel[_i]);
}
END_TEST

START_TEST(test_invalid)
{
	ck_assert_msg(sel_check(invalid_sel[_i], strlen(invalid_sel[_i])) == -EINVAL, "'%s'",
	              invalid_sel[_i]);
	/* An invalid selector matches nobody */
	ck_assert(!policy_selector_match(invalid_sel[_i], &ctr));
	ck_assert(!policy_selector_match(invalid_sel[_i], &host));
}
END_TEST

START_TEST(test_check_edges)
{
	ck_assert_int_eq(policy_selector_check(NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(sel_check("id:a\0b", 6), -EINVAL); /* NUL inside len */
	ck_assert_int_eq(sel_check("id:abc", 4), 0);        /* only len counts: "id:a" */
	ck_assert_int_eq(sel_check("uid:12x", 6), 0);       /* "uid:12" */
	char buf[SECRETD_SELECTOR_MAX + 1];
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "name:", 5);
	ck_assert_int_eq(sel_check(buf, SECRETD_SELECTOR_MAX), 0);
	ck_assert_int_eq(sel_check(buf, SECRETD_SELECTOR_MAX + 1), -EINVAL);
}
END_TEST

/* ---- matching ---- */

struct match_case {
	const char *sel;
	bool ctr, host;
};

static const struct match_case matches[] = {
    {"id:4", true, false},
    {"id:4e1f5c8b", true, false},
    {"id:" CID, true, false},
    {"id:" CID "0", false, false},
    {"id:4e1f5c8c", false, false},
    {"id:E", false, false},
    {"name:web-1", true, false},
    {"name:web-*", true, false},
    {"name:*", true, false},
    {"name:web", false, false},
    {"name:db-*", false, false},
    {"label:app=web", true, false},
    {"label:tier=front=end", true, false},
    {"label:empty=", true, false},
    {"label:app=db", false, false},
    {"label:ap=web", false, false},
    {"label:app=we", false, false},
    {"label:nokey=web", false, false},
    {"cgroup:/docker/*", true, false},
    {"cgroup:/docker/" CID, true, false},
    {"cgroup:*", true, false},
    {"cgroup:/user.slice", false, false},
    {"cgroup:/docker", false, false},
    {"runtime:docker", true, false},
    {"runtime:podman", false, false},
    {"runtime:host", false, false}, /* the host is not a container runtime */
    /* uid: is for host processes only: a container whose process runs as that uid is not one */
    {"uid:1000", false, true},
    {"uid:0", false, false},
    {"uid:01000", false, true},
};

START_TEST(test_match)
{
	const struct match_case *m = &matches[_i];
	ck_assert_msg(policy_selector_match(m->sel, &ctr) == m->ctr, "%s vs container", m->sel);
	ck_assert_msg(policy_selector_match(m->sel, &host) == m->host, "%s vs host", m->sel);
}
END_TEST

START_TEST(test_match_unknowns)
{
	/* A container whose name, id and cgroup are unknown ("") is matched by none of them. */
	struct policy_identity anon = ctr;
	anon.name = "";
	anon.id = "";
	anon.cgroup = "";
	anon.labels = NULL;
	anon.nlabels = 0;
	ck_assert(!policy_selector_match("name:*", &anon));
	ck_assert(!policy_selector_match("id:4", &anon));
	ck_assert(!policy_selector_match("cgroup:*", &anon));
	ck_assert(!policy_selector_match("label:app=web", &anon));
	ck_assert(policy_selector_match("runtime:docker", &anon));
	ck_assert(!policy_selector_match(NULL, &anon));
	ck_assert(!policy_selector_match("uid:1000", NULL));
	/* A root container is not the host's root: uid:0 matches the host process only. */
	struct policy_identity root_ctr = ctr, root_host = host;
	root_ctr.uid = 0;
	root_host.uid = 0;
	ck_assert(!policy_selector_match("uid:0", &root_ctr));
	ck_assert(policy_selector_match("uid:0", &root_host));
	const struct policy_grant all = {.secret = "*", .selector = "uid:0", .uid = -1, .gid = -1};
	ck_assert(!policy_allows(&all, 1, &root_ctr, "db/password"));
	ck_assert(policy_allows(&all, 1, &root_host, "db/password"));
	const char *const one[] = {"db/password"};
	struct policy_file *f = NULL;
	size_t n = 1;
	ck_assert_int_eq(policy_view(&all, 1, one, 1, &root_ctr, &f, &n), 0);
	ck_assert_uint_eq(n, 0); /* nothing in a root container's mount */
	free(f);
	/* fnmatch without FNM_PATHNAME: '*' crosses '/' */
	ck_assert(policy_selector_match("cgroup:/*", &ctr));
	/* A label key must match exactly: no glob */
	ck_assert(!policy_selector_match("label:a*=web", &ctr));
}
END_TEST

/* ---- grants ---- */

START_TEST(test_allows)
{
	const struct policy_grant g[] = {
	    {.secret = "db/password", .selector = "name:web-*", .uid = -1, .gid = -1},
	    {.secret = "api/*", .selector = "runtime:docker", .uid = -1, .gid = -1},
	    {.secret = "host/key", .selector = "uid:1000", .uid = -1, .gid = -1},
	    {.secret = "bad//pattern", .selector = "uid:1000", .uid = -1, .gid = -1},
	    {.secret = "x", .selector = "bogus", .uid = -1, .gid = -1},
	};
	size_t ng = sizeof(g) / sizeof(g[0]);
	ck_assert(policy_allows(g, ng, &ctr, "db/password"));
	ck_assert(!policy_allows(g, ng, &ctr, "db/other"));
	ck_assert(policy_allows(g, ng, &ctr, "api/token"));
	ck_assert(policy_allows(g, ng, &ctr, "api/a/b"));
	ck_assert(!policy_allows(g, ng, &ctr, "api"));
	ck_assert(!policy_allows(g, ng, &ctr, "host/key")); /* uid: never reaches a container */
	ck_assert(!policy_allows(g, ng, &ctr, "x"));
	ck_assert(!policy_allows(g, ng, &ctr, "bad//pattern"));
	/* host: only uid: grants */
	ck_assert(!policy_allows(g, ng, &host, "db/password"));
	ck_assert(!policy_allows(g, ng, &host, "api/token"));
	ck_assert(policy_allows(g, ng, &host, "host/key"));
	/* invalid names are never allowed */
	ck_assert(!policy_allows(g, ng, &ctr, "api/../db/password"));
	ck_assert(!policy_allows(g, ng, &ctr, "api/"));
	ck_assert(!policy_allows(g, 0, &ctr, "db/password"));
	const struct policy_grant star = {.secret = "*", .selector = "id:4e", .uid = -1, .gid = -1};
	ck_assert(policy_allows(&star, 1, &ctr, "anything/at/all"));
	ck_assert(!policy_allows(&star, 1, &host, "anything"));
}
END_TEST

static const char *const secrets[] = {
    "a", "api/a/b", "api/token", "db/password", "db/user", "other", "x.previous",
};
#define NS (sizeof(secrets) / sizeof(secrets[0]))

static const struct policy_file *find(const struct policy_file *f, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(f[i].path, path) == 0)
			return &f[i];
	return NULL;
}

static void view(const struct policy_grant *g, size_t ng, const struct policy_identity *who,
                 struct policy_file **f, size_t *n)
{
	ck_assert_int_eq(policy_view(g, ng, secrets, NS, who, f, n), 0);
	for (size_t i = 1; i < *n; i++) /* sorted, unique */
		ck_assert_int_lt(strcmp((*f)[i - 1].path, (*f)[i].path), 0);
}

START_TEST(test_view_default)
{
	const struct policy_grant g[] = {
	    {.secret = "db/password", .selector = "id:4e1f", .uid = -1, .gid = -1},
	    {.secret = "api/*", .selector = "runtime:docker", .mode = 0440, .uid = 0, .gid = 5},
	    {.secret = "other", .selector = "runtime:podman", .uid = -1, .gid = -1},
	};
	struct policy_file *f;
	size_t n;
	view(g, 3, &ctr, &f, &n);
	ck_assert_uint_eq(n, 3);
	const struct policy_file *p = find(f, n, "db/password");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->secret, "db/password");
	ck_assert_ptr_eq(p->secret, secrets[3]);
	ck_assert_uint_eq(p->mode, 0400);
	ck_assert_uint_eq(p->uid, 1000);
	ck_assert_uint_eq(p->gid, 1001);
	ck_assert(!p->previous);
	p = find(f, n, "api/token");
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->mode, 0440);
	ck_assert_uint_eq(p->uid, 0);
	ck_assert_uint_eq(p->gid, 5);
	ck_assert_ptr_nonnull(find(f, n, "api/a/b"));
	ck_assert_ptr_null(find(f, n, "other"));
	free(f);
	/* The host sees nothing through container selectors */
	view(g, 3, &host, &f, &n);
	ck_assert_uint_eq(n, 0);
	free(f);
}
END_TEST

START_TEST(test_view_remap)
{
	const struct policy_grant g[] = {
	    /* exact secret at another path */
	    {.secret = "db/password",
	     .selector = "runtime:docker",
	     .path = "DB_PASS",
	     .uid = -1,
	     .gid = -1},
	    /* subtree placed under a path */
	    {.secret = "api/*",
	     .selector = "runtime:docker",
	     .path = "conf/api",
	     .uid = -1,
	     .gid = -1},
	    /* everything under a path */
	    {.secret = "*", .selector = "name:web-1", .path = "all", .uid = -1, .gid = -1},
	};
	struct policy_file *f;
	size_t n;
	view(g, 3, &ctr, &f, &n);
	ck_assert_ptr_nonnull(find(f, n, "DB_PASS"));
	ck_assert_str_eq(find(f, n, "DB_PASS")->secret, "db/password");
	ck_assert_ptr_null(find(f, n, "db/password"));
	ck_assert_str_eq(find(f, n, "conf/api/token")->secret, "api/token");
	ck_assert_str_eq(find(f, n, "conf/api/a/b")->secret, "api/a/b");
	for (size_t i = 0; i < NS; i++) {
		char want[300];
		snprintf(want, sizeof(want), "all/%s", secrets[i]);
		ck_assert_ptr_nonnull(find(f, n, want));
	}
	ck_assert_uint_eq(n, 3 + NS);
	free(f);
	/* The host: uid grants only, and those only */
	view(g, 3, &host, &f, &n);
	ck_assert_uint_eq(n, 0);
	free(f);
	struct policy_grant hg[2]; /* the two remapping grants, for uid 1000 */
	memcpy(hg, g, sizeof(hg));
	for (size_t i = 0; i < 2; i++)
		hg[i].selector = "uid:1000";
	view(hg, 2, &host, &f, &n);
	ck_assert_uint_eq(n, 3);
	free(f);
	view(hg, 2, &ctr, &f, &n); /* the container runs as uid 1000 too: not a host process */
	ck_assert_uint_eq(n, 0);
	free(f);
}
END_TEST

START_TEST(test_view_first_wins)
{
	const struct policy_grant g[] = {
	    {.secret = "db/user",
	     .selector = "id:4",
	     .path = "cred",
	     .mode = 0444,
	     .uid = -1,
	     .gid = -1},
	    {.secret = "db/password",
	     .selector = "id:4",
	     .path = "cred",
	     .mode = 0400,
	     .uid = -1,
	     .gid = -1},
	    /* the same secret a second time at another path: both appear */
	    {.secret = "db/password", .selector = "id:4", .uid = -1, .gid = -1},
	    {.secret = "db/password", .selector = "id:4", .mode = 0600, .uid = -1, .gid = -1},
	};
	struct policy_file *f;
	size_t n;
	view(g, 4, &ctr, &f, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(find(f, n, "cred")->secret, "db/user"); /* grant order, not name order */
	ck_assert_uint_eq(find(f, n, "cred")->mode, 0444);
	ck_assert_uint_eq(find(f, n, "db/password")->mode, 0400);
	free(f);
}
END_TEST

START_TEST(test_view_previous)
{
	const struct policy_grant g[] = {
	    {.secret = "db/*",
	     .selector = "id:4",
	     .uid = -1,
	     .gid = -1,
	     .flags = POLICY_GRANT_PREVIOUS},
	    {.secret = "x",
	     .selector = "id:4",
	     .uid = -1,
	     .gid = -1,
	     .flags = POLICY_GRANT_PREVIOUS},
	    {.secret = "x.previous", .selector = "id:4", .uid = -1, .gid = -1},
	    {.secret = "a",
	     .selector = "id:4",
	     .path = "b",
	     .mode = 0440,
	     .uid = -1,
	     .gid = -1,
	     .flags = POLICY_GRANT_PREVIOUS},
	};
	struct policy_file *f;
	size_t n;
	const char *const sec[] = {"a", "db/password", "db/user", "x", "x.previous"};
	ck_assert_int_eq(policy_view(g, 4, sec, 5, &ctr, &f, &n), 0);
	const struct policy_file *p = find(f, n, "db/password.previous");
	ck_assert_ptr_nonnull(p);
	ck_assert(p->previous);
	ck_assert_str_eq(p->secret, "db/password");
	ck_assert(!find(f, n, "db/password")->previous);
	ck_assert(find(f, n, "db/user.previous")->previous);
	/* the secret named x.previous keeps its path over x's previous version */
	p = find(f, n, "x.previous");
	ck_assert_str_eq(p->secret, "x.previous");
	ck_assert(!p->previous);
	/* remapped path gets the suffix, and the grant's mode */
	p = find(f, n, "b.previous");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->secret, "a");
	ck_assert_uint_eq(p->mode, 0440);
	ck_assert_uint_eq(n,
	                  8); /* b x x.previous db/password db/user, each of those 3 + .previous */
	free(f);
}
END_TEST

START_TEST(test_view_skips)
{
	char longname[SECRETD_NAME_MAX + 1];
	memset(longname, 'a', SECRETD_NAME_MAX);
	longname[SECRETD_NAME_MAX] = '\0';
	char path250[251];
	memset(path250, 'p', 250);
	path250[250] = '\0';
	const char *const sec[] = {longname, "bad//name", "ok"};
	const struct policy_grant g[] = {
	    /* 255-byte name fits; its .previous (264) does not */
	    {.secret = "*",
	     .selector = "runtime:docker",
	     .uid = -1,
	     .gid = -1,
	     .flags = POLICY_GRANT_PREVIOUS},
	    /* remapping past 255 bytes: path250 + "/ok" fits (253), path250 + "/" + long not */
	    {.secret = "*", .selector = "runtime:docker", .path = path250, .uid = -1, .gid = -1},
	    /* a path that is no valid name */
	    {.secret = "ok", .selector = "runtime:docker", .path = "../etc", .uid = -1, .gid = -1},
	    /* out-of-range owners: the grant is ignored */
	    {.secret = "ok",
	     .selector = "runtime:docker",
	     .path = "own",
	     .uid = 4294967295LL,
	     .gid = -1},
	    {.secret = "ok", .selector = "runtime:docker", .path = "own2", .uid = -1, .gid = -2},
	    /* setuid bits are dropped */
	    {.secret = "ok",
	     .selector = "runtime:docker",
	     .path = "m",
	     .mode = 04755,
	     .uid = -1,
	     .gid = -1},
	};
	struct policy_file *f;
	size_t n;
	ck_assert_int_eq(policy_view(g, 6, sec, 3, &ctr, &f, &n), 0);
	ck_assert_ptr_nonnull(find(f, n, longname));
	ck_assert_ptr_nonnull(find(f, n, "ok"));
	ck_assert_ptr_nonnull(find(f, n, "ok.previous"));
	char want[300];
	snprintf(want, sizeof(want), "%s/ok", path250);
	ck_assert_ptr_nonnull(find(f, n, want));
	ck_assert_ptr_null(find(f, n, "../etc"));
	ck_assert_ptr_null(find(f, n, "own"));
	ck_assert_ptr_null(find(f, n, "own2"));
	ck_assert_uint_eq(find(f, n, "m")->mode, 0755);
	ck_assert_uint_eq(n, 5);
	for (size_t i = 0; i < n; i++)
		ck_assert(strcmp(f[i].secret, "bad//name") != 0);
	free(f);
	/* nothing at all */
	ck_assert_int_eq(policy_view(NULL, 0, NULL, 0, &ctr, &f, &n), 0);
	ck_assert_uint_eq(n, 0);
	free(f);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("policy");
	tcase_add_loop_test(tc, test_valid, 0, (int)(sizeof(valid_sel) / sizeof(valid_sel[0])));
	tcase_add_loop_test(tc, test_invalid, 0,
	                    (int)(sizeof(invalid_sel) / sizeof(invalid_sel[0])));
	tcase_add_test(tc, test_check_edges);
	tcase_add_loop_test(tc, test_match, 0, (int)(sizeof(matches) / sizeof(matches[0])));
	tcase_add_test(tc, test_match_unknowns);
	tcase_add_test(tc, test_allows);
	tcase_add_test(tc, test_view_default);
	tcase_add_test(tc, test_view_remap);
	tcase_add_test(tc, test_view_first_wins);
	tcase_add_test(tc, test_view_previous);
	tcase_add_test(tc, test_view_skips);
	suite_add_tcase(s, tc);
	return s;
}
