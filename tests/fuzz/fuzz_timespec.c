/* Fuzzes common/timespec: each parser returns 0, -EINVAL or -ERANGE and leaves its output alone
 * on error; what parses lies within the limits; a duration or an absolute time formatted and
 * parsed again gives the same value; resolve stays in 0..TIMESPEC_TIME_MAX. The first byte picks
 * the sign of a "when". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/timespec.h"
#include "fuzz.h"

static void check_rc(int rc)
{
	if (rc != 0 && rc != -EINVAL && rc != -ERANGE)
		abort();
}

static void check_when(const struct timespec_when *w)
{
	if (w->relative && (w->value < -TIMESPEC_DURATION_MAX || w->value > TIMESPEC_DURATION_MAX))
		abort();
	if (!w->relative && (w->value < 0 || w->value > TIMESPEC_TIME_MAX))
		abort();
	int64_t r = timespec_resolve(w, w->value & 0xffffffffLL);
	if (r < 0 || r > TIMESPEC_TIME_MAX)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	int64_t d = -7;
	int rc = timespec_parse_duration(s, size, &d);
	check_rc(rc);
	if (rc != 0 && d != -7)
		abort();
	if (rc == 0) {
		char b[TIMESPEC_DURATION_FORMAT_LEN];
		int64_t back = -1;
		if (d < 0 || d > TIMESPEC_DURATION_MAX || size > TIMESPEC_TEXT_MAX)
			abort();
		timespec_format_duration(d, b, sizeof(b));
		if (timespec_parse_duration(b, strlen(b), &back) != 0 || back != d)
			abort();
	}
	struct timespec_when w = {.relative = true, .value = 12345};
	rc = timespec_parse_time(s, size, &w);
	check_rc(rc);
	if (rc != 0 && (!w.relative || w.value != 12345))
		abort();
	if (rc == 0) {
		check_when(&w);
		if (!w.relative) {
			char b[TIMESPEC_FORMAT_LEN];
			struct timespec_when back;
			timespec_format(w.value, b, sizeof(b));
			if (timespec_parse_time(b, strlen(b), &back) != 0 || back.relative ||
			    back.value != w.value)
				abort();
		}
	}
	w = (struct timespec_when){.relative = true, .value = 12345};
	rc = timespec_parse_when(s, size, size && data[0] & 1 ? 1 : -1, &w);
	check_rc(rc);
	if (rc == 0)
		check_when(&w);
	else if (!w.relative || w.value != 12345)
		abort();
	return 0;
}
