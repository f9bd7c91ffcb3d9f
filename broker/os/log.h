/* log: the daemon's top level writes one line per event to stderr (no secret values, ever). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Sets the lowest level printed (default INFO). */
void log_set_level(enum log_level lvl);
/* Does now what the first line would do lazily: the journal check (an fstat of stderr when
 * JOURNAL_STREAM is set) and loading the time zone (glibc reads /etc/localtime at the first time
 * conversion). Call it before a seccomp filter that allows neither (broker/os/seccomp.h). */
void log_prepare(void);
/* printf-style; prefixes time and level, appends a newline. */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

/* Rate-limited logging: at most one line per interval per condition (one struct log_rl each,
 * zero-initialised, e.g. static). A line that is let through after others were suppressed says
 * how many ("(N similar suppressed)"). interval_ms 0 means LOG_RL_DEFAULT_MS. Single-threaded,
 * like the rest of the daemon. */
#define LOG_RL_DEFAULT_MS 10000
struct log_rl {
	unsigned interval_ms; /* 0 = LOG_RL_DEFAULT_MS */
	int64_t last_ms;      /* monotonic time of the last line let through (0: never) */
	uint64_t suppressed;  /* lines dropped since then */
	uint64_t total;       /* calls ever (logged or not) */
};
/* Logs like log_msg unless rl let a line through less than its interval ago; returns true when
 * it logged. */
bool log_ratelimited(struct log_rl *rl, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Forgets the last line's time (the condition ended): the next call logs at once, with the
 * suppressed count if any. */
void log_rl_reset(struct log_rl *rl);
