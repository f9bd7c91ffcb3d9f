/* Tests of broker/tmpl: the template syntax, each filter, the limits, error positions. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "broker/rules/tmpl.h"
#include "common/secret.h"
#include "tests/unit/runner.h"

/* A fake store: name -> value, version. */
struct fake {
	const char *name;
	const char *value;
	size_t len; /* 0: strlen(value) */
	uint64_t version;
};

static const struct fake store[] = {
    {"db/password", "p@ss w/rd&'x\"", 0, 7},
    {"db/user", "app", 0, 2},
    {"api/token", "  tok-123\n", 0, 1},
    {"bin", "a\0b", 3, 4},
    {"utf8", "caf\xc3\xa9 \xe2\x82\xac", 0, 1},
    {"badutf8", "\xff\xfe", 0, 1},
    {"empty", "", 0, 9},
};

static int lookups;

static int fake_lookup(void *ud, const char *name, const uint8_t **val, size_t *len,
                       uint64_t *version)
{
	lookups++;
	for (size_t i = 0; i < sizeof(store) / sizeof(store[0]); i++)
		if (strcmp(store[i].name, name) == 0) {
			*val = (const uint8_t *)store[i].value;
			*len = store[i].len ? store[i].len : strlen(store[i].value);
			*version = store[i].version;
			return 0;
		}
	return -ENOENT;
}

/* Renders src; returns the rendering as a malloc'd NUL-terminated copy (test only), or NULL with
 * *rc set. */
static char *render(const char *src, int *rc, size_t *outlen)
{
	tmpl *t = NULL;
	struct tmpl_error e;
	*rc = tmpl_parse(src, strlen(src), &t, &e);
	if (*rc < 0)
		return NULL;
	uint8_t *out = NULL;
	size_t n = 0;
	*rc = tmpl_render(t, fake_lookup, NULL, &out, &n);
	tmpl_free(t);
	if (*rc < 0)
		return NULL;
	char *copy = malloc(n + 1);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, out, n);
	copy[n] = '\0';
	if (outlen)
		*outlen = n;
	tmpl_output_free(out, n);
	return copy;
}

static void expect(const char *src, const char *want)
{
	int rc;
	char *got = render(src, &rc, NULL);
	ck_assert_msg(got != NULL, "%s: rc %d", src, rc);
	ck_assert_str_eq(got, want);
	free(got);
}

static void expect_parse_error(const char *src, int rc, unsigned line, unsigned col,
                               const char *msg_part)
{
	tmpl *t = NULL;
	struct tmpl_error e;
	int r = tmpl_parse(src, strlen(src), &t, &e);
	ck_assert_msg(r == rc, "%s: rc %d, want %d (%s)", src, r, rc, e.msg);
	ck_assert_ptr_null(t);
	ck_assert_msg(e.line == line && e.col == col, "%s: at %u:%u, want %u:%u (%s)", src, e.line,
	              e.col, line, col, e.msg);
	ck_assert_msg(strstr(e.msg, msg_part), "%s: message '%s' lacks '%s'", src, e.msg, msg_part);
}

START_TEST(test_text_only)
{
	expect("", "");
	expect("plain text } { }} {", "plain text } { }} {");
	expect("line1\nline2\n", "line1\nline2\n");
}
END_TEST

START_TEST(test_secret_and_version)
{
	expect("{{ secret \"db/user\" }}", "app");
	expect("{{secret \"db/user\"}}", "app");
	expect("u={{ secret \"db/user\" }} v={{ version \"db/password\" }}.", "u=app v=7.");
	expect("{{ version \"empty\" }}[{{ secret \"empty\" }}]", "9[]");
	expect("{{\n\tsecret\n\"db/user\"\n}}", "app");
	expect("{{ \"{{\" }} x {{ \"}}\" }}", "{{ x }}");
	expect("{{ \"a\\\"b\\\\c\\n\" }}", "a\"b\\c\n");
}
END_TEST

START_TEST(test_filters)
{
	expect("{{ secret \"db/password\" | urlquery }}", "p%40ss%20w%2Frd%26%27x%22");
	expect("{{ secret \"db/password\" | json }}", "\"p@ss w/rd&'x\\\"\"");
	expect("{{ secret \"db/password\" | shellquote }}", "'p@ss w/rd&'\\''x\"'");
	expect("{{ secret \"api/token\" | trim }}", "tok-123");
	expect("{{ secret \"db/user\" | base64 }}", "YXBw");
	expect("{{ secret \"empty\" | base64 }}{{ secret \"empty\" | json }}", "\"\"");
	expect("{{ secret \"api/token\" | trim | base64 }}", "dG9rLTEyMw==");
	expect("{{ secret \"api/token\" | json }}", "\"  tok-123\\n\"");
	expect("{{ secret \"utf8\" | json }}", "\"caf\xc3\xa9 \xe2\x82\xac\"");
	expect("{{ \"\\t\" | json }}", "\"\\t\"");
	expect("{{ version \"db/password\" | base64 }}", "Nw==");
	/* binary-safe: the NUL passes through (compared by length) */
	int rc;
	size_t n = 0;
	char *got = render("[{{ secret \"bin\" }}]", &rc, &n);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(memcmp(got, "[a\0b]", 5), 0);
	free(got);
	got = render("{{ secret \"bin\" | base64 }}", &rc, NULL);
	ck_assert_str_eq(got, "YQBi");
	free(got);
	got = render("{{ secret \"bin\" | urlquery }}", &rc, NULL);
	ck_assert_str_eq(got, "a%00b");
	free(got);
	got = render("{{ secret \"bin\" | json }}", &rc, NULL);
	ck_assert_str_eq(got, "\"a\\u0000b\"");
	free(got);
}
END_TEST

START_TEST(test_render_errors)
{
	int rc;
	ck_assert_ptr_null(render("{{ secret \"no/such\" }}", &rc, NULL));
	ck_assert_int_eq(rc, -ENOENT);
	/* invalid UTF-8 cannot be a JSON string; a NUL cannot be a shell word */
	ck_assert_ptr_null(render("{{ secret \"badutf8\" | json }}", &rc, NULL));
	ck_assert_int_eq(rc, -EILSEQ);
	ck_assert_ptr_null(render("{{ secret \"bin\" | shellquote }}", &rc, NULL));
	ck_assert_int_eq(rc, -EILSEQ);
}
END_TEST

START_TEST(test_refs)
{
	const char *src = "{{ secret \"db/user\" }}:{{ secret \"db/password\" | urlquery }}@h/"
	                  "{{ version \"db/user\" }}";
	tmpl *t = NULL;
	ck_assert_int_eq(tmpl_parse(src, strlen(src), &t, NULL), 0);
	ck_assert_uint_eq(tmpl_nrefs(t), 2);
	ck_assert_str_eq(tmpl_ref(t, 0), "db/user");
	ck_assert_str_eq(tmpl_ref(t, 1), "db/password");
	ck_assert_ptr_null(tmpl_ref(t, 2));
	lookups = 0;
	uint8_t *out = NULL;
	size_t n = 0;
	ck_assert_int_eq(tmpl_render(t, fake_lookup, NULL, &out, &n), 0);
	ck_assert_int_eq(lookups, 3);
	tmpl_output_free(out, n);
	tmpl_free(t);
}
END_TEST

START_TEST(test_syntax_errors)
{
	expect_parse_error("abc {{ secret \"x\"", -EINVAL, 1, 5, "unterminated action");
	expect_parse_error("abc {{", -EINVAL, 1, 5, "unterminated action");
	expect_parse_error("a\nb {{ env \"HOME\" }}", -EINVAL, 2, 6, "unknown function \"env\"");
	expect_parse_error("{{ secret \"x\" | upper }}", -EINVAL, 1, 17,
	                   "unknown filter \"upper\"");
	expect_parse_error("{{ secret \"x\" extra }}", -EINVAL, 1, 15, "expected \"|\" or \"}}\"");
	expect_parse_error("{{ secret \"../etc\" }}", -EINVAL, 1, 11, "invalid secret name");
	expect_parse_error("{{ secret \"a/\" }}", -EINVAL, 1, 11, "invalid secret name");
	expect_parse_error("{{ secret x }}", -EINVAL, 1, 11, "expected a string");
	expect_parse_error("{{ secret \"x }}", -EINVAL, 1, 11, "unterminated string");
	expect_parse_error("{{ \"\\q\" }}", -EINVAL, 1, 5, "unknown escape");
	expect_parse_error("{{ }}", -EINVAL, 1, 4, "expected secret");
	expect_parse_error("{{ range . }}", -EINVAL, 1, 4, "unknown function \"range\"");
	expect_parse_error("{{ secret \"x\" | }}", -EINVAL, 1, 17, "unknown filter");
	expect_parse_error("{{ secretx \"x\" }}", -EINVAL, 1, 4, "unknown function");
}
END_TEST

START_TEST(test_nul_refused)
{
	tmpl *t = NULL;
	struct tmpl_error e;
	ck_assert_int_eq(tmpl_parse("ab\0{{ secret \"x\" }}", 19, &t, &e), -EINVAL);
	ck_assert_uint_eq(e.offset, 2);
	ck_assert_ptr_nonnull(strstr(e.msg, "NUL"));
}
END_TEST

START_TEST(test_limits)
{
	tmpl *t = NULL;
	struct tmpl_error e;
	/* source size */
	size_t big = TMPL_SOURCE_MAX + 1;
	char *s = malloc(big);
	ck_assert_ptr_nonnull(s);
	memset(s, 'a', big);
	ck_assert_int_eq(tmpl_parse(s, big, &t, &e), -E2BIG);
	ck_assert_int_eq(tmpl_parse(s, TMPL_SOURCE_MAX, &t, &e), 0); /* exactly the limit: fine */
	tmpl_free(t);
	t = NULL;
	free(s);
	/* distinct references */
	char *b = malloc(TMPL_SOURCE_MAX);
	ck_assert_ptr_nonnull(b);
	size_t n = 0;
	for (int i = 0; i <= TMPL_REFS_MAX; i++)
		n += (size_t)snprintf(b + n, TMPL_SOURCE_MAX - n, "{{secret \"s%d\"}}", i);
	ck_assert_int_eq(tmpl_parse(b, n, &t, &e), -E2BIG);
	ck_assert_ptr_nonnull(strstr(e.msg, "distinct secrets"));
	/* the same secret many times is one reference */
	n = 0;
	for (int i = 0; i < TMPL_ACTIONS_MAX; i++)
		n += (size_t)snprintf(b + n, TMPL_SOURCE_MAX - n, "{{secret \"s\"}}");
	ck_assert_int_eq(tmpl_parse(b, n, &t, &e), 0);
	ck_assert_uint_eq(tmpl_nrefs(t), 1);
	tmpl_free(t);
	t = NULL;
	/* actions */
	n += (size_t)snprintf(b + n, TMPL_SOURCE_MAX - n, "{{secret \"s\"}}");
	ck_assert_int_eq(tmpl_parse(b, n, &t, &e), -E2BIG);
	ck_assert_ptr_nonnull(strstr(e.msg, "actions"));
	/* filters per action */
	n = (size_t)snprintf(b, TMPL_SOURCE_MAX, "{{ \"x\"");
	for (int i = 0; i < TMPL_FILTERS_MAX; i++)
		n += (size_t)snprintf(b + n, TMPL_SOURCE_MAX - n, " | trim");
	memcpy(b + n, " }}", 3);
	ck_assert_int_eq(tmpl_parse(b, n + 3, &t, &e), 0);
	tmpl_free(t);
	t = NULL;
	n += (size_t)snprintf(b + n, TMPL_SOURCE_MAX - n, " | trim }}");
	ck_assert_int_eq(tmpl_parse(b, n, &t, &e), -E2BIG);
	ck_assert_ptr_nonnull(strstr(e.msg, "filters"));
	/* a literal's length */
	b[0] = '{', b[1] = '{', b[2] = '"';
	memset(b + 3, 'x', TMPL_LITERAL_MAX + 1);
	memcpy(b + 3 + TMPL_LITERAL_MAX + 1, "\"}}", 3);
	ck_assert_int_eq(tmpl_parse(b, TMPL_LITERAL_MAX + 7, &t, &e), -E2BIG);
	free(b);
}
END_TEST

/* A rendering past TMPL_OUTPUT_MAX is refused, not truncated: base64 of 1,024 references to a
 * 1 KiB value would be 1.4 MiB. */
static uint8_t kib[1024];
static int kib_lookup(void *ud, const char *name, const uint8_t **val, size_t *len,
                      uint64_t *version)
{
	*val = kib;
	*len = sizeof(kib);
	*version = 1;
	return 0;
}

START_TEST(test_output_limit)
{
	char *b = malloc(TMPL_SOURCE_MAX);
	ck_assert_ptr_nonnull(b);
	size_t n = 0;
	for (int i = 0; i < TMPL_ACTIONS_MAX; i++)
		n += (size_t)snprintf(b + n, TMPL_SOURCE_MAX - n, "{{secret \"k\"|base64}}");
	tmpl *t = NULL;
	ck_assert_int_eq(tmpl_parse(b, n, &t, NULL), 0);
	uint8_t *out = (uint8_t *)1;
	size_t len = 0;
	ck_assert_int_eq(tmpl_render(t, kib_lookup, NULL, &out, &len), -EFBIG);
	tmpl_free(t);
	/* without base64: 1 MiB exactly fits */
	n = 0;
	for (int i = 0; i < TMPL_ACTIONS_MAX; i++)
		n += (size_t)snprintf(b + n, TMPL_SOURCE_MAX - n, "{{secret \"k\"}}");
	ck_assert_int_eq(tmpl_parse(b, n, &t, NULL), 0);
	ck_assert_int_eq(tmpl_render(t, kib_lookup, NULL, &out, &len), 0);
	ck_assert_uint_eq(len, TMPL_OUTPUT_MAX);
	tmpl_output_free(out, len);
	tmpl_free(t);
	free(b);
}
END_TEST

/* base64 round-trips through libsodium's decoder for every length 0..300. */
struct bytes {
	const uint8_t *p;
	size_t n;
};
static int bytes_lookup(void *ud, const char *name, const uint8_t **val, size_t *len,
                        uint64_t *version)
{
	const struct bytes *b = ud;
	*val = b->p;
	*len = b->n;
	*version = 1;
	return 0;
}

START_TEST(test_base64_roundtrip)
{
	static uint8_t v[300], back[300];
	for (size_t i = 0; i < sizeof(v); i++)
		v[i] = (uint8_t)(i * 37 + 11);
	const char *src = "{{ secret \"v\" | base64 }}";
	tmpl *t = NULL;
	ck_assert_int_eq(tmpl_parse(src, strlen(src), &t, NULL), 0);
	for (size_t len = 0; len <= sizeof(v); len++) {
		struct bytes cur = {v, len};
		uint8_t *out = NULL;
		size_t n = 0;
		ck_assert_int_eq(tmpl_render(t, bytes_lookup, &cur, &out, &n), 0);
		ck_assert_uint_eq(n, (len + 2) / 3 * 4);
		size_t got = 0;
		ck_assert_int_eq(sodium_base642bin(back, sizeof(back), (const char *)out, n, NULL,
		                                   &got, NULL, sodium_base64_VARIANT_ORIGINAL),
		                 0);
		ck_assert_uint_eq(got, len);
		ck_assert_int_eq(memcmp(back, v, len), 0);
		tmpl_output_free(out, n);
	}
	tmpl_free(t);
}
END_TEST

/* A filter whose input is empty after another filter gave nothing (no buffer yet): trim used to
 * compute NULL + 0 (undefined; UBSan stops there, found by fuzz_tmpl). */
START_TEST(test_empty_filter_chain)
{
	expect("a{{ \"\" | urlquery | trim }}b", "ab");
	expect("{{ \"\" | json | trim }}", "\"\"");
	expect("{{ secret \"empty\" | urlquery | trim | shellquote }}", "''");
}
END_TEST

/* tmpl_render_secret: the same bytes, in a secret of exactly their length; errors leave none. */
START_TEST(test_render_secret)
{
	tmpl *t = NULL;
	const char *src = "user={{ secret \"db/user\" }} v{{ version \"db/user\" }}";
	ck_assert_int_eq(tmpl_parse(src, strlen(src), &t, NULL), 0);
	struct secret *s = NULL;
	ck_assert_int_eq(tmpl_render_secret(t, fake_lookup, NULL, &s), 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(secret_len(s), strlen("user=app v2"));
	ck_assert_mem_eq(secret_data(s), "user=app v2", secret_len(s));
	secret_unref(s);
	tmpl_free(t);
	src = "{{ secret \"missing\" }}";
	ck_assert_int_eq(tmpl_parse(src, strlen(src), &t, NULL), 0);
	s = (struct secret *)1;
	ck_assert_int_eq(tmpl_render_secret(t, fake_lookup, NULL, &s), -ENOENT);
	tmpl_free(t);
}
END_TEST

/* A reference refused after parsing (the service's "no such secret") says where it is. */
START_TEST(test_ref_error)
{
	const char *src =
	    "host=db\nuser={{ secret \"db/user\" }} pw={{secret \"db/pw\"|urlquery}}\n"
	    "again={{ version \"db/user\" }}";
	tmpl *t = NULL;
	ck_assert_int_eq(tmpl_parse(src, strlen(src), &t, NULL), 0);
	struct tmpl_error e;
	ck_assert_int_eq(tmpl_ref_error(t, 1, "does not exist", &e), 0);
	ck_assert_uint_eq(e.line, 2);
	ck_assert_uint_eq(e.col, 41);
	ck_assert_uint_eq(e.offset, (size_t)(strstr(src, "\"db/pw\"") - src));
	ck_assert_str_eq(e.msg, "secret \"db/pw\" does not exist");
	ck_assert_int_eq(tmpl_ref_error(t, 0, "does not exist", &e), 0);
	ck_assert_uint_eq(e.line, 2);
	ck_assert_uint_eq(e.col, 16);
	ck_assert_int_eq(tmpl_ref_error(t, 2, "x", &e), -EINVAL);
	tmpl_free(t);
}
END_TEST

static Suite *tmpl_suite(void)
{
	Suite *s = suite_create("tmpl");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_text_only);
	tcase_add_test(tc, test_secret_and_version);
	tcase_add_test(tc, test_filters);
	tcase_add_test(tc, test_render_errors);
	tcase_add_test(tc, test_refs);
	tcase_add_test(tc, test_syntax_errors);
	tcase_add_test(tc, test_nul_refused);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_output_limit);
	tcase_add_test(tc, test_base64_roundtrip);
	tcase_add_test(tc, test_render_secret);
	tcase_add_test(tc, test_empty_filter_chain);
	tcase_add_test(tc, test_ref_error);
	suite_add_tcase(s, tc);
	return s;
}

int unit_setup(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

Suite *unit_suite(void)
{
	return tmpl_suite();
}
