/* Tests of common/timespec: durations, RFC 3339 / @UNIX / now+D times, "when" texts, the
 * formatters, and the limits (every input is an exactly sized heap copy: ASan sees an overread). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/timespec.h"
#include "tests/unit/runner.h"

static char *dup_exact(const char *s)
{
	size_t n = strlen(s);
	char *b = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(b);
	memcpy(b, s, n);
	return b;
}

static int dur(const char *s, int64_t *out)
{
	char *b = dup_exact(s);
	int r = timespec_parse_duration(b, strlen(s), out);
	free(b);
	return r;
}

static int tim(const char *s, struct timespec_when *out)
{
	char *b = dup_exact(s);
	int r = timespec_parse_time(b, strlen(s), out);
	free(b);
	return r;
}

static int when(const char *s, int sign, struct timespec_when *out)
{
	char *b = dup_exact(s);
	int r = timespec_parse_when(b, strlen(s), sign, out);
	free(b);
	return r;
}

static const struct {
	const char *s;
	int64_t v;
} good_dur[] = {
    {"0", 0},
    {"90", 90},
    {"90s", 90},
    {"15m", 900},
    {"1h30m", 5400},
    {"7d", 604800},
    {"2d12h", 216000},
    {"1d2h3m4s", 93784},
    {"0s", 0},
    {"1m30s", 90},
    {"100s", 100},
    {"007m", 420},
    {"36525d", 3155760000LL},
    {"3155760000", 3155760000LL},
};

static const char *const bad_dur[] = {
    "",     "s",  "h1",  "1x",   "1h1h",      "30m1h", "1s1m", "1h ", " 1h",  "-1h", "+1h",
    "1.5h", "1H", "1hm", "1h30", "1d2h3m4s5", "1ms",   "1us",  "1 h", "1h\0", "1\n",
};

START_TEST(test_duration_good)
{
	int64_t v = -1;
	ck_assert_msg(dur(good_dur[_i].s, &v) == 0, "%s", good_dur[_i].s);
	ck_assert_int_eq(v, good_dur[_i].v);
}
END_TEST

START_TEST(test_duration_bad)
{
	int64_t v = 12345;
	const char *s = bad_dur[_i];
	size_t n = strlen(s);
	if (strcmp(s, "1h") == 0)
		n = 3; /* "1h\0": a NUL inside len */
	char *b = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(b);
	memcpy(b, s, n);
	ck_assert_msg(timespec_parse_duration(b, n, &v) == -EINVAL, "'%s' accepted", s);
	ck_assert_int_eq(v, 12345);
	free(b);
}
END_TEST

START_TEST(test_duration_limits)
{
	int64_t v = 7;
	ck_assert_int_eq(dur("36525d1s", &v), -ERANGE);
	ck_assert_int_eq(dur("3155760001", &v), -ERANGE);
	ck_assert_int_eq(dur("9999999999999999999", &v), -ERANGE);
	ck_assert_int_eq(dur("99999999999999999999999d", &v), -ERANGE);
	ck_assert_int_eq(dur("9223372036854775807s", &v), -ERANGE);
	ck_assert_int_eq(dur("106751991167300d", &v), -ERANGE); /* would overflow int64 in s */
	ck_assert_int_eq(v, 7);
	char big[TIMESPEC_TEXT_MAX + 2];
	memset(big, '0', sizeof(big));
	ck_assert_int_eq(timespec_parse_duration(big, sizeof(big), &v), -EINVAL);
	ck_assert_int_eq(timespec_parse_duration(NULL, 0, &v), -EINVAL);
}
END_TEST

START_TEST(test_time)
{
	struct timespec_when w = {0};
	ck_assert_int_eq(tim("2026-12-24T10:00:00Z", &w), 0);
	ck_assert(!w.relative && w.value == 1798106400LL);
	ck_assert_int_eq(tim("2026-12-24t10:00:00z", &w), 0);
	ck_assert(w.value == 1798106400LL);
	ck_assert_int_eq(tim("2026-12-24T11:30:00+01:30", &w), 0);
	ck_assert(w.value == 1798106400LL);
	ck_assert_int_eq(tim("2026-12-24T05:00:00-05:00", &w), 0);
	ck_assert(w.value == 1798106400LL);
	ck_assert_int_eq(tim("2026-12-24T10:00:00.999999999Z", &w), 0);
	ck_assert(w.value == 1798106400LL);
	ck_assert_int_eq(tim("1970-01-01T00:00:00Z", &w), 0);
	ck_assert(w.value == 0);
	ck_assert_int_eq(tim("2000-02-29T00:00:00Z", &w), 0);
	ck_assert(w.value == 951782400LL);
	ck_assert_int_eq(tim("9999-12-31T23:59:59Z", &w), 0);
	ck_assert(w.value == TIMESPEC_TIME_MAX);
	ck_assert_int_eq(tim("@0", &w), 0);
	ck_assert(!w.relative && w.value == 0);
	ck_assert_int_eq(tim("@1798106400", &w), 0);
	ck_assert(w.value == 1798106400LL);
	ck_assert_int_eq(tim("now", &w), 0);
	ck_assert(w.relative && w.value == 0);
	ck_assert_int_eq(tim("now+1h30m", &w), 0);
	ck_assert(w.relative && w.value == 5400);
	ck_assert_int_eq(tim("now-7d", &w), 0);
	ck_assert(w.relative && w.value == -604800);
	static const char *const bad[] = {
	    "2026-12-24",
	    "2026-12-24T10:00:00",
	    "2026-12-24 10:00:00Z",
	    "2026-13-01T00:00:00Z",
	    "2026-02-29T00:00:00Z",
	    "2026-12-32T00:00:00Z",
	    "2026-12-24T24:00:00Z",
	    "2026-12-24T10:60:00Z",
	    "2026-12-24T10:00:60Z",
	    "2026-12-24T10:00:00.Z",
	    "2026-12-24T10:00:00.1234567890Z",
	    "2026-12-24T10:00:00+1:00",
	    "2026-12-24T10:00:00+24:00",
	    "2026-12-24T10:00:00Zx",
	    "26-12-24T10:00:00Z",
	    "@",
	    "@-1",
	    "@1x",
	    "now+",
	    "now+x",
	    "now1h",
	    "nowh",
	    "Now",
	    "1h",
	    "+1h",
	    "tomorrow",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		w = (struct timespec_when){.relative = true, .value = 99};
		ck_assert_msg(tim(bad[i], &w) == -EINVAL, "'%s' accepted", bad[i]);
		ck_assert(w.relative && w.value == 99);
	}
	ck_assert_int_eq(tim("1969-12-31T23:59:59Z", &w), -ERANGE);
	ck_assert_int_eq(tim("1970-01-01T00:00:00+00:01", &w), -ERANGE);
	ck_assert_int_eq(tim("@253402300800", &w), -ERANGE);
	ck_assert_int_eq(tim("@99999999999999999999", &w), -ERANGE);
	ck_assert_int_eq(tim("now+36526d", &w), -ERANGE);
}
END_TEST

START_TEST(test_when)
{
	struct timespec_when w;
	ck_assert_int_eq(when("1h", 1, &w), 0);
	ck_assert(w.relative && w.value == 3600);
	ck_assert_int_eq(when("1h", -1, &w), 0);
	ck_assert(w.relative && w.value == -3600);
	ck_assert_int_eq(when("90", 1, &w), 0);
	ck_assert(w.relative && w.value == 90);
	ck_assert_int_eq(when("@90", -1, &w), 0);
	ck_assert(!w.relative && w.value == 90);
	ck_assert_int_eq(when("2026-12-24T10:00:00Z", -1, &w), 0);
	ck_assert(!w.relative && w.value == 1798106400LL);
	ck_assert_int_eq(when("now-1m", 1, &w), 0);
	ck_assert(w.relative && w.value == -60);
	ck_assert_int_eq(when("36526d", 1, &w), -ERANGE);
	ck_assert_int_eq(when("soon", 1, &w), -EINVAL);
	/* resolve: clamped at both ends */
	w = (struct timespec_when){.relative = true, .value = -3600};
	ck_assert_int_eq(timespec_resolve(&w, 1000), 0);
	ck_assert_int_eq(timespec_resolve(&w, 7200), 3600);
	w = (struct timespec_when){.relative = true, .value = TIMESPEC_DURATION_MAX};
	ck_assert_int_eq(timespec_resolve(&w, INT64_MAX), TIMESPEC_TIME_MAX);
	w = (struct timespec_when){.relative = false, .value = 5};
	ck_assert_int_eq(timespec_resolve(&w, 1000), 5);
}
END_TEST

START_TEST(test_format)
{
	char b[TIMESPEC_FORMAT_LEN], d[TIMESPEC_DURATION_FORMAT_LEN];
	ck_assert_str_eq(timespec_format(1798106400LL, b, sizeof(b)), "2026-12-24T10:00:00Z");
	ck_assert_str_eq(timespec_format(0, b, sizeof(b)), "1970-01-01T00:00:00Z");
	ck_assert_str_eq(timespec_format(-5, b, sizeof(b)), "1970-01-01T00:00:00Z");
	ck_assert_str_eq(timespec_format(INT64_MAX, b, sizeof(b)), "9999-12-31T23:59:59Z");
	ck_assert_str_eq(timespec_format(951782400LL, b, sizeof(b)), "2000-02-29T00:00:00Z");
	ck_assert_str_eq(timespec_format(1, b, 5), "");
	ck_assert_str_eq(timespec_format_duration(5400, d, sizeof(d)), "1h30m");
	ck_assert_str_eq(timespec_format_duration(0, d, sizeof(d)), "0s");
	ck_assert_str_eq(timespec_format_duration(604800, d, sizeof(d)), "7d");
	ck_assert_str_eq(timespec_format_duration(93784, d, sizeof(d)), "1d2h3m4s");
	ck_assert_str_eq(timespec_format_duration(TIMESPEC_DURATION_MAX, d, sizeof(d)), "36525d");
	/* every time's text parses back to it (one per day for 30 years, at varying hours) */
	for (int64_t t = 0; t < 30LL * 366 * 86400; t += 86400 + 3661) {
		struct timespec_when w;
		timespec_format(t, b, sizeof(b));
		ck_assert_int_eq(timespec_parse_time(b, strlen(b), &w), 0);
		ck_assert(!w.relative && w.value == t);
	}
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("timespec");
	TCase *tc = tcase_create("timespec");
	tcase_add_loop_test(tc, test_duration_good, 0,
	                    (int)(sizeof(good_dur) / sizeof(good_dur[0])));
	tcase_add_loop_test(tc, test_duration_bad, 0, (int)(sizeof(bad_dur) / sizeof(bad_dur[0])));
	tcase_add_test(tc, test_duration_limits);
	tcase_add_test(tc, test_time);
	tcase_add_test(tc, test_when);
	tcase_add_test(tc, test_format);
	suite_add_tcase(s, tc);
	return s;
}
