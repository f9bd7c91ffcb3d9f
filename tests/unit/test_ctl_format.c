/* Tests of client/ctl_format: secretctl's --format templates. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/ctl_format.h"
#include "tests/unit/runner.h"

static const struct ctl_format_field fields[] = {
    {"Name", false}, {"Version", true}, {"Expires", false}};

/* Renders t over one row; returns the text (static) or the parse error. */
static const char *render(const char *t, const char *const *vals, const char *whole)
{
	static struct ctl_format f;
	static char out[256];
	char err[CTL_FORMAT_ERR_MAX];
	if (ctl_format_parse(t, strlen(t), fields, 3, &f, err) < 0) {
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

START_TEST(test_refused)
{
	const char *v[] = {"a", "1", NULL};
	ck_assert_str_eq(render("{{.Nope}}", v, NULL), "ERR unknown field in the template");
	ck_assert_str_eq(render("{{.Name", v, NULL), "ERR an action is not closed with }}");
	ck_assert_str_eq(render("{{.}}", v, NULL), "ERR {{.}} is {{json .}} here");
	ck_assert_str_eq(render("{{Name}}", v, NULL),
	                 "ERR an action must be {{.Field}}, {{json .Field}} or {{json .}}");
	ck_assert_str_eq(render("{{printf .Name}}", v, NULL),
	                 "ERR an action must be {{.Field}}, {{json .Field}} or {{json .}}");
	ck_assert_str_eq(render("{{jsonx .Name}}", v, NULL),
	                 "ERR an action must be {{.Field}}, {{json .Field}} or {{json .}}");
	static struct ctl_format f;
	char err[CTL_FORMAT_ERR_MAX], t[CTL_FORMAT_TEXT_MAX + 1];
	memset(t, 'a', sizeof(t));
	ck_assert_int_eq(ctl_format_parse(t, sizeof(t), fields, 3, &f, err), -EINVAL);
	ck_assert_str_eq(err, "the template is too long");
	/* more parts than CTL_FORMAT_PARTS_MAX: "{{.Name}}x" alternates action and text */
	size_t n = 0;
	while (n + 10 < sizeof(t)) {
		memcpy(t + n, "{{.Name}}x", 10);
		n += 10;
	}
	ck_assert_int_eq(ctl_format_parse(t, n, fields, 3, &f, err), -EINVAL);
	ck_assert_str_eq(err, "the template has too many parts");
	ck_assert_int_eq(ctl_format_parse("a\0b", 3, fields, 3, &f, err), -EINVAL);
}
END_TEST

START_TEST(test_nobufs)
{
	static struct ctl_format f;
	char err[CTL_FORMAT_ERR_MAX], out[8];
	const char *v[] = {"abcdefghij", "1", NULL};
	ck_assert_int_eq(ctl_format_parse("{{.Name}}", 9, fields, 3, &f, err), 0);
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
	tcase_add_test(tc, test_nobufs);
	suite_add_tcase(s, tc);
	return s;
}
