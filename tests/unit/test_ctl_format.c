/* Tests of client/ctl_format: secretctl's --format templates. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/ctl_format.h"
#include "tests/unit/runner.h"

static const struct ctl_format_field fields[] = {{"Name", false, false},
                                                 {"Version", true, false},
                                                 {"Expires", false, false},
                                                 {"Labels", false, true}};
#define NFIELDS 4

/* Renders t over one row; returns the text (static) or the parse error. */
static const char *render(const char *t, const char *const *vals, const char *whole)
{
	static struct ctl_format f;
	static char out[256];
	char err[CTL_FORMAT_ERR_MAX];
	if (ctl_format_parse(t, strlen(t), fields, NFIELDS, &f, err) < 0) {
		snprintf(out, sizeof(out), "ERR %s", err);
		return out;
	}
	size_t n;
	ck_assert_int_eq(ctl_format_render(&f, vals, whole, out, sizeof(out), &n), 0);
	ck_assert_uint_eq(n, strlen(out));
	return out;
}

START_TEST(test_render)
{
	const char *v[] = {"db/\"pw\"", "3", NULL};
	ck_assert_str_eq(render("{{.Name}} {{.Version}}", v, NULL), "db/\"pw\" 3");
	ck_assert_str_eq(render("{{ .name }}:{{.VERSION}}", v, NULL), "db/\"pw\":3");
	ck_assert_str_eq(render("{{json .Name}} {{json .Version}} {{json .Expires}}", v, NULL),
	                 "\"db/\\\"pw\\\"\" 3 \"\"");
	const char *nov[] = {"a", NULL, NULL};
	ck_assert_str_eq(render("{{json .Version}}", nov, NULL), "null");
	ck_assert_str_eq(render("{{json .}}", v, "{\"name\":\"x\"}"), "{\"name\":\"x\"}");
	ck_assert_str_eq(render("{{json .}}", v, NULL), "null");
	ck_assert_str_eq(render("a\\tb\\nc\\\\d\\x", v, NULL), "a\tb\nc\\d\\x");
	ck_assert_str_eq(render("", v, NULL), "");
	ck_assert_str_eq(render("}} {", v, NULL), "}} {");
	const char *ctl[] = {"a\x01\tb", "1", NULL};
	ck_assert_str_eq(render("{{json .Name}}", ctl, NULL), "\"a\\u0001\\tb\"");
}
END_TEST

/* A map field's lookup for the tests: team=payments, env=prod. */
static const char *labels_lookup(void *ud, size_t field, const char *key)
{
	ck_assert_uint_eq(field, 3);
	if (!key)
		return "{\"env\":\"prod\",\"team\":\"payments\"}";
	if (strcmp(key, "team") == 0)
		return "payments";
	if (strcmp(key, "env") == 0)
		return "prod";
	return NULL;
}

/* {{.Labels}} (the caller's text), {{index .Labels "KEY"}} and {{json .Labels}} (the lookup). */
START_TEST(test_map)
{
	static struct ctl_format f;
	char err[CTL_FORMAT_ERR_MAX], out[256];
	const char *t = "{{.Name}} {{index .Labels \"team\"}}/{{ index  .labels \"nope\" }}/"
	                "{{.Labels}} {{json .Labels}}";
	ck_assert_int_eq(ctl_format_parse(t, strlen(t), fields, NFIELDS, &f, err), 0);
	const char *v[] = {"db/a", "1", NULL, "env=prod,team=payments"};
	size_t n;
	ck_assert_int_eq(
	    ctl_format_render_map(&f, v, labels_lookup, NULL, NULL, out, sizeof(out), &n), 0);
	ck_assert_str_eq(out, "db/a payments//env=prod,team=payments "
	                      "{\"env\":\"prod\",\"team\":\"payments\"}");
	/* without a lookup: empty and {} */
	ck_assert_int_eq(ctl_format_render(&f, v, NULL, out, sizeof(out), &n), 0);
	ck_assert_str_eq(out, "db/a //env=prod,team=payments {}");
	ck_assert_str_eq(render("{{index .Name \"k\"}}", v, NULL),
	                 "ERR index takes a map field (Labels)");
	ck_assert_str_eq(render("{{index .Labels k}}", v, NULL),
	                 "ERR index takes a map field and a quoted key: {{index .Labels \"KEY\"}}");
	ck_assert_str_eq(render("{{index .Labels \"a\"b\"}}", v, NULL),
	                 "ERR index: the key is too long or holds a quote");
	ck_assert_str_eq(render("{{index . \"k\"}}", v, NULL), "ERR index takes a map field");
}
END_TEST

START_TEST(test_refused)
{
	const char *v[] = {"a", "1", NULL};
	ck_assert_str_eq(render("{{.Nope}}", v, NULL), "ERR unknown field in the template");
	ck_assert_str_eq(render("{{.Name", v, NULL), "ERR an action is not closed with }}");
	ck_assert_str_eq(render("{{.}}", v, NULL), "ERR {{.}} is {{json .}} here");
	ck_assert_str_eq(render("{{Name}}", v, NULL),
	                 "ERR an action must be {{.Field}}, {{json .Field}}, {{json .}} or {{index "
	                 ".Field \"KEY\"}}");
	ck_assert_str_eq(render("{{printf .Name}}", v, NULL),
	                 "ERR an action must be {{.Field}}, {{json .Field}}, {{json .}} or {{index "
	                 ".Field \"KEY\"}}");
	ck_assert_str_eq(render("{{jsonx .Name}}", v, NULL),
	                 "ERR an action must be {{.Field}}, {{json .Field}}, {{json .}} or {{index "
	                 ".Field \"KEY\"}}");
	static struct ctl_format f;
	char err[CTL_FORMAT_ERR_MAX], t[CTL_FORMAT_TEXT_MAX + 1];
	memset(t, 'a', sizeof(t));
	ck_assert_int_eq(ctl_format_parse(t, sizeof(t), fields, NFIELDS, &f, err), -EINVAL);
	ck_assert_str_eq(err, "the template is too long");
	/* more parts than CTL_FORMAT_PARTS_MAX: "{{.Name}}x" alternates action and text */
	size_t n = 0;
	while (n + 10 < sizeof(t)) {
		memcpy(t + n, "{{.Name}}x", 10);
		n += 10;
	}
	ck_assert_int_eq(ctl_format_parse(t, n, fields, NFIELDS, &f, err), -EINVAL);
	ck_assert_str_eq(err, "the template has too many parts");
	ck_assert_int_eq(ctl_format_parse("a\0b", 3, fields, NFIELDS, &f, err), -EINVAL);
}
END_TEST

START_TEST(test_nobufs)
{
	static struct ctl_format f;
	char err[CTL_FORMAT_ERR_MAX], out[8];
	const char *v[] = {"abcdefghij", "1", NULL};
	ck_assert_int_eq(ctl_format_parse("{{.Name}}", 9, fields, NFIELDS, &f, err), 0);
	size_t n = 99;
	ck_assert_int_eq(ctl_format_render(&f, v, NULL, out, sizeof(out), &n), -ENOBUFS);
	ck_assert_uint_eq(n, 7);
	ck_assert_str_eq(out, "abcdefg");
	ck_assert_int_eq(ctl_format_render(&f, v, NULL, out, 0, &n), -ENOBUFS);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("ctl_format");
	TCase *tc = tcase_create("ctl_format");
	tcase_add_test(tc, test_render);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_map);
	tcase_add_test(tc, test_nobufs);
	suite_add_tcase(s, tc);
	return s;
}
