/* Unit tests for broker/log's rate limiter: one line per interval per condition, the next one
 * saying how many were suppressed; log_rl_reset lets the next line through at once. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/os/log.h"
#include "tests/unit/runner.h"

static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/secretd-test-log.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	int saved = dup(2);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fd, 2), 2);
	fn();
	fflush(stderr);
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	FILE *f = fdopen(fd, "r");
	ck_assert_ptr_nonnull(f);
	rewind(f);
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
	return buf;
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void burst(void)
{
	struct log_rl rl = {.interval_ms = 60000};
	for (int i = 0; i < 1000; i++)
		log_ratelimited(&rl, LOG_LVL_ERROR, "disk full %d", i);
	ck_assert_uint_eq(rl.total, 1000);
	ck_assert_uint_eq(rl.suppressed, 999);
	log_rl_reset(&rl);
	ck_assert(log_ratelimited(&rl, LOG_LVL_ERROR, "disk full again"));
	ck_assert_uint_eq(rl.suppressed, 0);
}

START_TEST(test_burst)
{
	char *out = capture(burst);
	ck_assert_int_eq(lines(out), 2);
	ck_assert_ptr_nonnull(strstr(out, "disk full 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "disk full again (999 similar suppressed)\n"));
}
END_TEST

static void interval(void)
{
	struct log_rl rl = {.interval_ms = 20};
	ck_assert(log_ratelimited(&rl, LOG_LVL_WARN, "a"));
	ck_assert(!log_ratelimited(&rl, LOG_LVL_WARN, "a"));
	/* after the interval: polled, bounded (no fixed sleep) */
	int tries = 0;
	while (!log_ratelimited(&rl, LOG_LVL_WARN, "b")) {
		ck_assert_int_lt(++tries, 100000);
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

START_TEST(test_interval)
{
	char *out = capture(interval);
	ck_assert_int_eq(lines(out), 2);
	ck_assert_ptr_nonnull(strstr(out, "similar suppressed)\n"));
}
END_TEST

Suite *unit_suite(void)
{
	Suite *su = suite_create("log");
	TCase *tc = tcase_create("log");
	tcase_add_test(tc, test_burst);
	tcase_add_test(tc, test_interval);
	suite_add_tcase(su, tc);
	return su;
}
