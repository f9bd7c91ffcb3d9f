#include "common/timespec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const int64_t timespec_unit_secs[] = {86400, 3600, 60, 1};
static const char timespec_units[] = "dhms";

/* Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian; H. Hinnant's algorithm). */
static int64_t timespec_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void timespec_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool timespec_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned timespec_month_days(int64_t y, unsigned m)
{
	static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && timespec_leap(y) ? 29 : days[m - 1];
}

static bool timespec_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Exactly n digits at s[*i] (within len) into *out; advances *i. */
static bool timespec_fixed(const char *s, size_t len, size_t *i, size_t n, unsigned *out)
{
	if (len - *i < n)
		return false;
	unsigned v = 0;
	for (size_t k = 0; k < n; k++) {
		if (!timespec_digit(s[*i + k]))
			return false;
		v = v * 10 + (unsigned)(s[*i + k] - '0');
	}
	*i += n;
	*out = v;
	return true;
}

/* The character c at s[*i] (within len); advances *i. */
static bool timespec_char(const char *s, size_t len, size_t *i, char c)
{
	if (*i >= len || s[*i] != c)
		return false;
	(*i)++;
	return true;
}

/* 1..TIMESPEC_NUMBER_DIGITS_MAX digits at s[*i] into *out; advances *i. -EINVAL when there is
 * no digit, -ERANGE when there are too many. */
static int timespec_number(const char *s, size_t len, size_t *i, int64_t *out)
{
	size_t k = *i;
	int64_t v = 0;
	while (k < len && timespec_digit(s[k])) {
		if (k - *i == TIMESPEC_NUMBER_DIGITS_MAX)
			return -ERANGE;
		v = v * 10 + (s[k] - '0');
		k++;
	}
	if (k == *i)
		return -EINVAL;
	*i = k;
	*out = v;
	return 0;
}

int timespec_parse_duration(const char *s, size_t len, int64_t *out)
{
	if (!s || len == 0 || len > TIMESPEC_TEXT_MAX)
		return -EINVAL;
	size_t i = 0, unit = 0, parts = 0;
	int64_t total = 0;
	bool range = false;
	while (i < len) {
		int64_t v;
		int rc = timespec_number(s, len, &i, &v);
		if (rc == -ERANGE) {
			/* still check the syntax: too many digits is a range error only in a
			 * duration */
			range = true;
			while (i < len && timespec_digit(s[i]))
				i++;
			v = 0;
		} else if (rc < 0) {
			return rc;
		}
		if (i == len && parts == 0) {
			/* digits only: seconds, the old form */
			if (range || v > TIMESPEC_DURATION_MAX)
				return -ERANGE;
			*out = v;
			return 0;
		}
		if (i == len)
			return -EINVAL; /* a number without a unit after another part */
		const char *u =
		    memchr(timespec_units + unit, s[i], sizeof(timespec_units) - 1 - unit);
		if (!u)
			return -EINVAL;
		unit = (size_t)(u - timespec_units);
		i++;
		if (v > TIMESPEC_DURATION_MAX / timespec_unit_secs[unit])
			range = true;
		else
			total += v * timespec_unit_secs[unit];
		if (total > TIMESPEC_DURATION_MAX)
			range = true;
		unit++;
		parts++;
		if (unit == sizeof(timespec_units) - 1 && i < len)
			return -EINVAL;
	}
	if (range)
		return -ERANGE;
	*out = total;
	return 0;
}

/* RFC 3339 date-time over the whole of s. */
static int timespec_rfc3339(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	unsigned y, mo, d, h, mi, se, oh = 0, om = 0;
	if (!timespec_fixed(s, len, &i, 4, &y) || !timespec_char(s, len, &i, '-') ||
	    !timespec_fixed(s, len, &i, 2, &mo) || !timespec_char(s, len, &i, '-') ||
	    !timespec_fixed(s, len, &i, 2, &d))
		return -EINVAL;
	if (!timespec_char(s, len, &i, 'T') && !timespec_char(s, len, &i, 't'))
		return -EINVAL;
	if (!timespec_fixed(s, len, &i, 2, &h) || !timespec_char(s, len, &i, ':') ||
	    !timespec_fixed(s, len, &i, 2, &mi) || !timespec_char(s, len, &i, ':') ||
	    !timespec_fixed(s, len, &i, 2, &se))
		return -EINVAL;
	if (timespec_char(s, len, &i, '.')) {
		size_t f = i;
		while (i < len && timespec_digit(s[i]))
			i++;
		if (i == f || i - f > TIMESPEC_FRACTION_DIGITS_MAX)
			return -EINVAL;
	}
	int sign = 0;
	if (timespec_char(s, len, &i, 'Z') || timespec_char(s, len, &i, 'z'))
		sign = 0;
	else if (timespec_char(s, len, &i, '+'))
		sign = 1;
	else if (timespec_char(s, len, &i, '-'))
		sign = -1;
	else
		return -EINVAL;
	if (sign && (!timespec_fixed(s, len, &i, 2, &oh) || !timespec_char(s, len, &i, ':') ||
	             !timespec_fixed(s, len, &i, 2, &om)))
		return -EINVAL;
	if (i != len)
		return -EINVAL;
	/* Leap seconds (:60) are not taken: the clocks this serves do not show them. */
	if (mo < 1 || mo > 12 || d < 1 || d > timespec_month_days(y, mo) || h > 23 || mi > 59 ||
	    se > 59 || oh > 23 || om > 59)
		return -EINVAL;
	int64_t t = timespec_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se -
	            sign * (int64_t)(oh * 3600 + om * 60);
	if (t < 0 || t > TIMESPEC_TIME_MAX)
		return -ERANGE;
	*out = t;
	return 0;
}

int timespec_parse_time(const char *s, size_t len, struct timespec_when *out)
{
	if (!s || len == 0 || len > TIMESPEC_TEXT_MAX)
		return -EINVAL;
	if (s[0] == '@') {
		size_t i = 1;
		int64_t v;
		int rc = timespec_number(s, len, &i, &v);
		if (rc < 0)
			return rc;
		if (i != len)
			return -EINVAL;
		if (v > TIMESPEC_TIME_MAX)
			return -ERANGE;
		*out = (struct timespec_when){.relative = false, .value = v};
		return 0;
	}
	if (len >= 3 && memcmp(s, "now", 3) == 0) {
		if (len == 3) {
			*out = (struct timespec_when){.relative = true, .value = 0};
			return 0;
		}
		if (len == 4 || (s[3] != '+' && s[3] != '-'))
			return -EINVAL;
		int64_t d;
		int rc = timespec_parse_duration(s + 4, len - 4, &d);
		if (rc < 0)
			return rc;
		*out = (struct timespec_when){.relative = true, .value = s[3] == '+' ? d : -d};
		return 0;
	}
	int64_t t;
	int rc = timespec_rfc3339(s, len, &t);
	if (rc < 0)
		return rc;
	*out = (struct timespec_when){.relative = false, .value = t};
	return 0;
}

int timespec_parse_when(const char *s, size_t len, int sign, struct timespec_when *out)
{
	int64_t d;
	int rc = timespec_parse_duration(s, len, &d);
	if (rc == 0) {
		*out = (struct timespec_when){.relative = true, .value = sign < 0 ? -d : d};
		return 0;
	}
	if (rc == -ERANGE)
		return rc;
	return timespec_parse_time(s, len, out);
}

int64_t timespec_resolve(const struct timespec_when *w, int64_t now)
{
	if (now < 0)
		now = 0;
	if (now > TIMESPEC_TIME_MAX)
		now = TIMESPEC_TIME_MAX;
	/* |value| <= TIMESPEC_TIME_MAX and now is clamped: no overflow */
	int64_t t = w->relative ? now + w->value : w->value;
	return t < 0 ? 0 : t > TIMESPEC_TIME_MAX ? TIMESPEC_TIME_MAX : t;
}

const char *timespec_format(int64_t t, char *buf, size_t len)
{
	if (len < TIMESPEC_FORMAT_LEN) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	t = t < 0 ? 0 : t > TIMESPEC_TIME_MAX ? TIMESPEC_TIME_MAX : t;
	int64_t days = t / 86400, rem = t % 86400, y;
	unsigned m, d;
	timespec_civil_from_days(days, &y, &m, &d);
	snprintf(buf, len, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", (long long)y, m, d,
	         (long long)(rem / 3600), (long long)(rem / 60 % 60), (long long)(rem % 60));
	return buf;
}

const char *timespec_format_duration(int64_t secs, char *buf, size_t len)
{
	if (len < TIMESPEC_DURATION_FORMAT_LEN) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	secs = secs < 0 ? 0 : secs > TIMESPEC_DURATION_MAX ? TIMESPEC_DURATION_MAX : secs;
	size_t n = 0;
	buf[0] = '\0';
	for (size_t u = 0; u < sizeof(timespec_unit_secs) / sizeof(timespec_unit_secs[0]); u++) {
		int64_t v = secs / timespec_unit_secs[u];
		secs %= timespec_unit_secs[u];
		if (v)
			n += (size_t)snprintf(buf + n, len - n, "%lld%c", (long long)v,
			                      timespec_units[u]);
	}
	if (n == 0)
		snprintf(buf, len, "0s");
	return buf;
}
