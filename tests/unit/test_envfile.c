/* Tests of client/envfile: .env syntax, Dockerfile ENV/ARG, malformed lines and limits. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/envfile.h"
#include "tests/unit/runner.h"

#define MAXV 64

struct got {
	size_t n, nbad;
	char *name[MAXV];
	char *val[MAXV];
	size_t vlen[MAXV];
	unsigned line[MAXV];
	unsigned bad_line[MAXV];
	const char *bad_why[MAXV];
	size_t total; /* variables seen, even past MAXV */
	int stop_at;  /* return -ECANCELED at this variable (1-based), 0 never */
};

static int on_var(void *ctx, const char *name, size_t nlen, const char *val, size_t vlen,
                  unsigned line)
{
	struct got *g = ctx;
	ck_assert_int_eq(val[vlen], '\0');
	g->total++;
	if (g->stop_at && (int)g->total == g->stop_at)
		return -ECANCELED;
	if (g->n < MAXV) {
		g->name[g->n] = strndup(name, nlen);
		g->val[g->n] = malloc(vlen + 1);
		memcpy(g->val[g->n], val, vlen + 1);
		g->vlen[g->n] = vlen;
		g->line[g->n] = line;
		g->n++;
	}
	return 0;
}

static void on_bad(void *ctx, unsigned line, const char *why)
{
	struct got *g = ctx;
	ck_assert_ptr_nonnull(why);
	if (g->nbad < MAXV) {
		g->bad_line[g->nbad] = line;
		g->bad_why[g->nbad] = why;
		g->nbad++;
	}
}

static void got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->name[i]);
		free(g->val[i]);
	}
	memset(g, 0, sizeof(*g));
}

/* Parses an exactly sized heap copy (no NUL after len: ASan catches an overread). */
static int parse_n(const char *s, size_t len, bool docker, struct got *g)
{
	char *b = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(b);
	memcpy(b, s, len);
	struct envfile_cb cb = {.var = on_var, .bad = on_bad, .ctx = g};
	int r = docker ? envfile_parse_dockerfile(b, len, &cb) : envfile_parse(b, len, &cb);
	free(b);
	return r;
}

static int parse(const char *s, bool docker, struct got *g)
{
	return parse_n(s, strlen(s), docker, g);
}

static void expect(struct got *g, size_t i, const char *name, const char *val, unsigned line)
{
	ck_assert_uint_gt(g->n, i);
	ck_assert_str_eq(g->name[i], name);
	ck_assert_uint_eq(g->vlen[i], strlen(val));
	ck_assert_str_eq(g->val[i], val);
	ck_assert_uint_eq(g->line[i], line);
}

START_TEST(test_basic)
{
	struct got g = {0};
	ck_assert_int_eq(parse("A=1\nB=two\nlast=no-newline", false, &g), 0);
	ck_assert_uint_eq(g.n, 3);
	expect(&g, 0, "A", "1", 1);
	expect(&g, 1, "B", "two", 2);
	expect(&g, 2, "last", "no-newline", 3);
	ck_assert_uint_eq(g.nbad, 0);
	got_free(&g);
}
END_TEST

START_TEST(test_comments_blanks)
{
	struct got g = {0};
	ck_assert_int_eq(
	    parse("# c\n\n   \n  # x=1\nA=1 # comment\nB=x#y\nC= #only\nD=\t\n", false, &g), 0);
	ck_assert_uint_eq(g.n, 4);
	expect(&g, 0, "A", "1", 5);
	expect(&g, 1, "B", "x#y", 6);
	expect(&g, 2, "C", "", 7);
	expect(&g, 3, "D", "", 8);
	ck_assert_uint_eq(g.nbad, 0);
	got_free(&g);
}
END_TEST

START_TEST(test_export_spaces_crlf)
{
	struct got g = {0};
	ck_assert_int_eq(
	    parse("export A=1\r\nexport\tB = 2  \r\nexport=3\r\n  C.d-e_f=4\n", false, &g), 0);
	ck_assert_uint_eq(g.n, 4);
	expect(&g, 0, "A", "1", 1);
	expect(&g, 1, "B", "2", 2);
	expect(&g, 2, "export", "3", 3);
	expect(&g, 3, "C.d-e_f", "4", 4);
	got_free(&g);
}
END_TEST

START_TEST(test_quotes)
{
	struct got g = {0};
	ck_assert_int_eq(parse("S='a\\nb $X # y'\n"
	                       "D=\"x\\ny\\t\\\"q\\\" \\\\ \\$ \\z\" # trailing comment\n"
	                       "M=\"l1\nl2\"\n"
	                       "N='p1\np2'\n"
	                       "E=\"\"\n"
	                       "Q= 'lead'\n",
	                       false, &g),
	                 0);
	ck_assert_uint_eq(g.nbad, 0);
	ck_assert_uint_eq(g.n, 6);
	expect(&g, 0, "S", "a\\nb $X # y", 1);
	expect(&g, 1, "D", "x\ny\t\"q\" \\ $ \\z", 2);
	expect(&g, 2, "M", "l1\nl2", 3);
	expect(&g, 3, "N", "p1\np2", 5);
	expect(&g, 4, "E", "", 7);
	expect(&g, 5, "Q", "lead", 8);
	got_free(&g);
}
END_TEST

START_TEST(test_malformed)
{
	struct got g = {0};
	ck_assert_int_eq(parse("NOEQUALS\n"         /* 1 */
	                       "1A=x\n"             /* 2 */
	                       "A B=c\n"            /* 3 */
	                       "A:B=c\n"            /* 4 */
	                       "=x\n"               /* 5 */
	                       "Q=\"x\" tail\n"     /* 6 */
	                       "GOOD=1\n"           /* 7 */
	                       "U=\"unterminated\n" /* 8 */
	                       "AFTER=2\n"          /* 9 */
	                       "V='open\n",         /* 10 */
	                       false, &g),
	                 0);
	ck_assert_uint_eq(g.nbad, 8);
	unsigned want[] = {1, 2, 3, 4, 5, 6, 8, 10};
	for (size_t i = 0; i < 8; i++)
		ck_assert_uint_eq(g.bad_line[i], want[i]);
	ck_assert_uint_eq(g.n, 2);
	expect(&g, 0, "GOOD", "1", 7);
	expect(&g, 1, "AFTER", "2", 9);
	got_free(&g);
}
END_TEST

START_TEST(test_nul)
{
	struct got g = {0};
	static const char in[] = "A=x\0y\nB=2\nC=\"p\0q\"\nD='r\0'\nE=5\n";
	ck_assert_int_eq(parse_n(in, sizeof(in) - 1, false, &g), 0);
	ck_assert_uint_eq(g.n, 2);
	expect(&g, 0, "B", "2", 2);
	expect(&g, 1, "E", "5", 5);
	ck_assert_uint_eq(g.nbad, 3);
	got_free(&g);
}
END_TEST

START_TEST(test_limits)
{
	struct got g = {0};
	/* name: ENVFILE_NAME_MAX ok, one more refused */
	size_t big = ENVFILE_VALUE_MAX + 512;
	char *s = malloc(big + 64);
	ck_assert_ptr_nonnull(s);
	memset(s, 'N', ENVFILE_NAME_MAX);
	strcpy(s + ENVFILE_NAME_MAX, "=1\n");
	ck_assert_int_eq(parse(s, false, &g), 0);
	ck_assert_uint_eq(g.n, 1);
	ck_assert_uint_eq(strlen(g.name[0]), ENVFILE_NAME_MAX);
	got_free(&g);
	memset(s, 'N', ENVFILE_NAME_MAX + 1);
	strcpy(s + ENVFILE_NAME_MAX + 1, "=1\n");
	ck_assert_int_eq(parse(s, false, &g), 0);
	ck_assert_uint_eq(g.n, 0);
	ck_assert_uint_eq(g.nbad, 1);
	got_free(&g);
	/* value: ENVFILE_VALUE_MAX ok (unquoted and quoted), one more refused */
	for (int q = 0; q < 2; q++) {
		for (size_t extra = 0; extra < 2; extra++) {
			size_t n = 0;
			n += (size_t)sprintf(s, "V=%s", q ? "\"" : "");
			memset(s + n, 'v', ENVFILE_VALUE_MAX + extra);
			n += ENVFILE_VALUE_MAX + extra;
			n += (size_t)sprintf(s + n, "%s\nW=1\n", q ? "\"" : "");
			ck_assert_int_eq(parse_n(s, n, false, &g), 0);
			ck_assert_uint_eq(g.n, extra ? 1 : 2);
			ck_assert_uint_eq(g.nbad, extra);
			if (!extra)
				ck_assert_uint_eq(g.vlen[0], ENVFILE_VALUE_MAX);
			got_free(&g);
		}
	}
	free(s);
	/* input */
	char *huge = calloc(1, ENVFILE_INPUT_MAX + 1);
	struct envfile_cb cb = {.var = on_var, .bad = on_bad, .ctx = &g};
	ck_assert_int_eq(envfile_parse(huge, ENVFILE_INPUT_MAX + 1, &cb), -EFBIG);
	ck_assert_int_eq(envfile_parse_dockerfile(huge, ENVFILE_INPUT_MAX + 1, &cb), -EFBIG);
	free(huge);
	/* variables */
	size_t nl = ENVFILE_VARS_MAX + 5;
	char *many = malloc(nl * 4 + 1);
	for (size_t i = 0; i < nl; i++)
		memcpy(many + i * 4, "A=1\n", 4);
	ck_assert_int_eq(parse_n(many, nl * 4, false, &g), -E2BIG);
	ck_assert_uint_eq(g.total, ENVFILE_VARS_MAX);
	got_free(&g);
	free(many);
}
END_TEST

START_TEST(test_stop)
{
	struct got g = {.stop_at = 2};
	ck_assert_int_eq(parse("A=1\nB=2\nC=3\n", false, &g), -ECANCELED);
	ck_assert_uint_eq(g.n, 1);
	got_free(&g);
	g.stop_at = 1;
	ck_assert_int_eq(parse("ENV A=1 B=2\n", true, &g), -ECANCELED);
	got_free(&g);
}
END_TEST

START_TEST(test_docker)
{
	struct got g = {0};
	ck_assert_int_eq(parse("# syntax=docker/dockerfile:1\n"    /* 1 */
	                       "FROM debian:12 AS build\n"         /* 2 */
	                       "ENV A=b C=\"d e\" F='g h' \\\n"    /* 3 */
	                       "    G=h\\ i\n"                     /* 4 */
	                       "env legacy value with  spaces  \n" /* 5 */
	                       "ARG NOVAL\n"                       /* 6 */
	                       "ARG X=1 Y Z=\"2\"\n"               /* 7 */
	                       "RUN echo PASSWORD=nope \\\n"       /* 8 */
	                       "  && true\n"                       /* 9 */
	                       "ENV J=1 \\\n"                      /* 10 */
	                       "# comment in a continuation\n"     /* 11 */
	                       "\n"                                /* 12 */
	                       "    K=\"q\\\"x\\\\y\\$\"\n"        /* 13 */
	                       "ENV CR=1\r\n",                     /* 14 */
	                       true, &g),
	                 0);
	ck_assert_uint_eq(g.nbad, 0);
	ck_assert_uint_eq(g.n, 10);
	expect(&g, 0, "A", "b", 3);
	expect(&g, 1, "C", "d e", 3);
	expect(&g, 2, "F", "g h", 3);
	expect(&g, 3, "G", "h i", 4);
	expect(&g, 4, "legacy", "value with  spaces", 5);
	expect(&g, 5, "X", "1", 7);
	expect(&g, 6, "Z", "2", 7);
	expect(&g, 7, "J", "1", 10);
	expect(&g, 8, "K", "q\"x\\y$", 13);
	expect(&g, 9, "CR", "1", 14);
	got_free(&g);
}
END_TEST

START_TEST(test_docker_multiline_value)
{
	struct got g = {0};
	ck_assert_int_eq(parse("ENV A=\"x\\\ny\" B=2\nENV C=", true, &g), 0);
	ck_assert_uint_eq(g.n, 3);
	expect(&g, 0, "A", "xy", 1);
	expect(&g, 1, "B", "2", 2);
	expect(&g, 2, "C", "", 3);
	got_free(&g);
}
END_TEST

START_TEST(test_docker_malformed)
{
	struct got g = {0};
	ck_assert_int_eq(parse("ENV\n"                  /* 1 */
	                       "ENV A=\"unterminated\n" /* 2 */
	                       "ENV A=1 B\n"            /* 3: A handed out, then B refused */
	                       "ENV 1A=x\n"             /* 4 */
	                       "ENV LEGACY\n"           /* 5 */
	                       "ARG 9=1\n"              /* 6 */
	                       "ENV OK=1\n",            /* 7 */
	                       true, &g),
	                 0);
	ck_assert_uint_eq(g.nbad, 6);
	unsigned want[] = {1, 2, 3, 4, 5, 6};
	for (size_t i = 0; i < 6; i++)
		ck_assert_uint_eq(g.bad_line[i], want[i]);
	ck_assert_uint_eq(g.n, 2);
	expect(&g, 0, "A", "1", 3);
	expect(&g, 1, "OK", "1", 7);
	got_free(&g);
	/* an instruction over ENVFILE_LOGICAL_MAX, made of continuation lines */
	size_t n = 0, cap = ENVFILE_LOGICAL_MAX * 2;
	char *s = malloc(cap + 64);
	n += (size_t)sprintf(s, "ENV A=1 \\\n");
	while (n < ENVFILE_LOGICAL_MAX + ENVFILE_LOGICAL_MAX / 4)
		n += (size_t)sprintf(s + n, "  B=2222222222222222222222222222 \\\n");
	n += (size_t)sprintf(s + n, "  C=3\nENV D=4\n");
	ck_assert_int_eq(parse_n(s, n, true, &g), 0);
	ck_assert_uint_eq(g.nbad, 1);
	ck_assert_uint_eq(g.bad_line[0], 1);
	ck_assert_uint_eq(g.n, 1);
	ck_assert_str_eq(g.name[0], "D");
	got_free(&g);
	free(s);
}
END_TEST

START_TEST(test_name_ok)
{
	ck_assert(envfile_name_ok("A", 1));
	ck_assert(envfile_name_ok("_a.b-c9", 7));
	ck_assert(!envfile_name_ok("", 0));
	ck_assert(!envfile_name_ok("9A", 2));
	ck_assert(!envfile_name_ok("A B", 3));
	ck_assert(!envfile_name_ok("A/B", 3));
	ck_assert(!envfile_name_ok("A=B", 3));
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("envfile");
	TCase *tc = tcase_create("envfile");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_basic);
	tcase_add_test(tc, test_comments_blanks);
	tcase_add_test(tc, test_export_spaces_crlf);
	tcase_add_test(tc, test_quotes);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_nul);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_stop);
	tcase_add_test(tc, test_docker);
	tcase_add_test(tc, test_docker_multiline_value);
	tcase_add_test(tc, test_docker_malformed);
	tcase_add_test(tc, test_name_ok);
	suite_add_tcase(s, tc);
	return s;
}
