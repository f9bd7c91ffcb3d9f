/* timespec: the one syntax for durations and points in time, shared by secretctl and the daemon's
 * request decoders. Pure: no I/O and no clock (a relative time is returned as an offset from "now",
 * which the caller adds). Every parser takes (pointer, length), reads nothing past len and needs no
 * NUL; it returns 0, -EINVAL (not this syntax) or -ERANGE (this syntax, out of the limits below),
 * and leaves *out alone on error.
 *
 *   duration   DIGITS (seconds: the old form) or one to four NUMBER UNIT parts, units d h m s in
 *              that order, each at most once: 90s  15m  1h30m  7d  2d12h  (0 and 0s are 0)
 *   time       RFC 3339: YYYY-MM-DDTHH:MM:SS[.FRACTION](Z|+HH:MM|-HH:MM) (T and Z in either
 *              case; the fraction is dropped); @UNIX (seconds since 1970); now; now+DURATION;
 *              now-DURATION
 *   when       a time, or a bare duration counted from now in the direction the caller says
 *              (an expiry: later; "since": earlier). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMESPEC_TEXT_MAX 64               /* bytes of a duration or time text */
#define TIMESPEC_TIME_MAX 253402300799LL   /* 9999-12-31T23:59:59Z, the last time written */
#define TIMESPEC_DURATION_MAX 3155760000LL /* 100 years of 365.25 days (s) */
#define TIMESPEC_NUMBER_DIGITS_MAX 18      /* digits of one number (fits int64, no overflow) */
#define TIMESPEC_FRACTION_DIGITS_MAX 9     /* digits after the seconds' '.' (nanoseconds) */
#define TIMESPEC_FORMAT_LEN 21             /* "YYYY-MM-DDTHH:MM:SSZ" and its NUL */
#define TIMESPEC_DURATION_FORMAT_LEN 24    /* "36524d23h59m59s" and more, with its NUL */

/* A parsed point in time: absolute (unix seconds, 0..TIMESPEC_TIME_MAX) or relative (seconds
 * from the caller's now, -TIMESPEC_DURATION_MAX..TIMESPEC_DURATION_MAX). */
struct timespec_when {
	bool relative;
	int64_t value;
};

/* A duration into *out seconds (0..TIMESPEC_DURATION_MAX). */
int timespec_parse_duration(const char *s, size_t len, int64_t *out);

/* A time (RFC 3339, @UNIX, now, now+DURATION, now-DURATION) into *out. */
int timespec_parse_time(const char *s, size_t len, struct timespec_when *out);

/* A time, or a bare duration taken as relative: later than now when sign > 0, earlier when
 * sign < 0 (a plain number of seconds counts as a duration here). */
int timespec_parse_when(const char *s, size_t len, int sign, struct timespec_when *out);

/* The unix time w stands for, given now: w's value when absolute, now + value when relative,
 * clamped to 0..TIMESPEC_TIME_MAX. */
int64_t timespec_resolve(const struct timespec_when *w, int64_t now);

/* Writes t (clamped to 0..TIMESPEC_TIME_MAX) as "YYYY-MM-DDTHH:MM:SSZ" into buf of len bytes
 * (at least TIMESPEC_FORMAT_LEN); returns buf ("" when len is too small). */
const char *timespec_format(int64_t t, char *buf, size_t len);

/* Writes secs (clamped to 0..TIMESPEC_DURATION_MAX) in the duration syntax, largest unit first
 * ("1h30m", "7d", "0s") into buf of len bytes (at least TIMESPEC_DURATION_FORMAT_LEN); returns
 * buf ("" when len is too small). Parsing the text gives secs back. */
const char *timespec_format_duration(int64_t secs, char *buf, size_t len);
