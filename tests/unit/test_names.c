/* Tests of common/names: secret names, grant patterns, pattern matching. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/names.h"
#include "tests/unit/runner.h"

/* Checks with an exactly sized heap copy (no NUL after len: ASan catches an overread). */
static int check_name(const char *s, size_t len, int pattern)
{
	char *b = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(b);
	memcpy(b, s, len);
	const char *why = NULL;
	int r = pattern ? names_check_pattern(b, len, &why) : names_check(b, len, &why);
	free(b);
	if (r < 0) {
		ck_assert_int_eq(r, -EINVAL);
		ck_assert_ptr_nonnull(why);
		ck_assert_uint_gt(strlen(why), 0);
	}
	return r;
}

static const char *const good[] = {
    "a",
    "A",
    "0",
    "db",
    "db/password",
    "a/b/c/d",
    "x.y",
    "x_y",
    "x-y",
    "...",
    ".a",
    "a.",
    "..a",
    "a..",
    "a/.b",
    "-",
    "_",
    "a/-/b",
    "tls/server.crt",
    "v1.2.3",
};

static const char *const bad[] = {
    "/a",   "a/",   "a//b",        "/",    "//",  ".",  "..",    "a/../b", "a/./b", "./a",
    "../a", "a/.",  "a/..",        "a b",  " a",  "a ", "a\tb",  "a\nb",   "a:b",   "a*b",
    "*a",   "a\\b", "caf\xc3\xa9", "\xff", "a?b", "a~", "$HOME", "a,b",
};

START_TEST(test_good)
{
	ck_assert_int_eq(check_name(good[_i], strlen(good[_i]), 0), 0);
	ck_assert_int_eq(check_name(good[_i], strlen(good[_i]), 1), 0);
}
END_TEST

START_TEST(test_bad)
{
	ck_assert_int_eq(check_name(bad[_i], strlen(bad[_i]), 0), -EINVAL);
	ck_assert_int_eq(check_name(bad[_i], strlen(bad[_i]), 1), -EINVAL);
}
END_TEST

START_TEST(test_edges)
{
	const char *why = NULL;
	ck_assert_int_eq(names_check("", 0, &why), -EINVAL);
	ck_assert_ptr_nonnull(why);
	ck_assert_int_eq(names_check(NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(names_check(NULL, 3, NULL), -EINVAL);
	/* Embedded NUL within len */
	ck_assert_int_eq(check_name("a\0b", 3, 0), -EINVAL);
	ck_assert_int_eq(check_name("a\0", 2, 0), -EINVAL);
	ck_assert_int_eq(check_name("\0", 1, 0), -EINVAL);
	/* len stops before the bad part */
	ck_assert_int_eq(names_check("ab/", 2, NULL), 0);
	ck_assert_int_eq(names_check("a/..", 1, NULL), 0);
	/* 255 vs 256 bytes */
	char buf[SECRETD_NAME_MAX + 2];
	memset(buf, 'a', sizeof(buf));
	ck_assert_int_eq(check_name(buf, SECRETD_NAME_MAX, 0), 0);
	ck_assert_int_eq(check_name(buf, SECRETD_NAME_MAX + 1, 0), -EINVAL);
	for (size_t i = 1; i < SECRETD_NAME_MAX; i += 2)
		buf[i] = '/';
	ck_assert_int_eq(check_name(buf, SECRETD_NAME_MAX, 0), 0); /* a/a/.../a, 128 segments */
	/* No reason pointer needed */
	ck_assert_int_eq(names_check("..", 2, NULL), -EINVAL);
}
END_TEST

START_TEST(test_patterns)
{
	ck_assert_int_eq(check_name("*", 1, 1), 0);
	ck_assert_int_eq(check_name("a/*", 3, 1), 0);
	ck_assert_int_eq(check_name("a/b/*", 5, 1), 0);
	ck_assert_int_eq(check_name("db/password", 11, 1), 0);
	/* not names */
	ck_assert_int_eq(check_name("*", 1, 0), -EINVAL);
	ck_assert_int_eq(check_name("a/*", 3, 0), -EINVAL);
	/* bad patterns */
	static const char *const badp[] = {"",     "/*",    "**",   "*/a",  "a*",
	                                   "a/**", "a/*/b", "a/b*", "../*", "./*",
	                                   "a//*", "*/*",   "a/*/", " *",   "* "};
	for (size_t i = 0; i < sizeof(badp) / sizeof(badp[0]); i++)
		ck_assert_msg(check_name(badp[i], strlen(badp[i]), 1) == -EINVAL, "'%s'", badp[i]);
	/* a 255-byte pattern: a 253-byte prefix and the subtree mark */
	char buf[SECRETD_NAME_MAX + 3];
	memset(buf, 'a', sizeof(buf));
	buf[SECRETD_NAME_MAX - 2] = '/';
	buf[SECRETD_NAME_MAX - 1] = '*';
	ck_assert_int_eq(check_name(buf, SECRETD_NAME_MAX, 1), 0);
	/* 256 bytes: a pattern that could match no name is refused */
	buf[SECRETD_NAME_MAX - 1] = '/';
	buf[SECRETD_NAME_MAX] = '*';
	ck_assert_int_eq(check_name(buf, SECRETD_NAME_MAX + 1, 1), -EINVAL);
	buf[SECRETD_NAME_MAX - 2] = 'a';
	ck_assert_int_eq(check_name(buf, SECRETD_NAME_MAX + 1, 1), -EINVAL);
}
END_TEST

START_TEST(test_match)
{
	ck_assert(names_pattern_match("a/b", "a/b"));
	ck_assert(!names_pattern_match("a/b", "a/b/c"));
	ck_assert(!names_pattern_match("a/b", "a"));
	ck_assert(!names_pattern_match("a/b", "a/bc"));
	ck_assert(names_pattern_match("a/*", "a/b"));
	ck_assert(names_pattern_match("a/*", "a/b/c"));
	ck_assert(!names_pattern_match("a/*", "a"));
	ck_assert(!names_pattern_match("a/*", "ab/c"));
	ck_assert(!names_pattern_match("a/*", "b/a"));
	ck_assert(names_pattern_match("a/b/*", "a/b/c"));
	ck_assert(!names_pattern_match("a/b/*", "a/bc/d"));
	ck_assert(names_pattern_match("*", "a"));
	ck_assert(names_pattern_match("*", "a/b/c"));

	ck_assert_str_eq(names_pattern_rest("a/*", "a/b/c"), "b/c");
	ck_assert_str_eq(names_pattern_rest("a/b/*", "a/b/c"), "c");
	ck_assert_str_eq(names_pattern_rest("a/b", "a/b"), "a/b");
	ck_assert_str_eq(names_pattern_rest("*", "x/y"), "x/y");
	const char *n = "q/r";
	ck_assert_ptr_eq(names_pattern_rest("*", n), n);
	ck_assert_ptr_eq(names_pattern_rest("q/r", n), n);
	ck_assert_ptr_eq(names_pattern_rest("q/*", n), n + 2);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("names");
	TCase *tc = tcase_create("names");
	tcase_add_loop_test(tc, test_good, 0, (int)(sizeof(good) / sizeof(good[0])));
	tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_edges);
	tcase_add_test(tc, test_patterns);
	tcase_add_test(tc, test_match);
	suite_add_tcase(s, tc);
	return s;
}
