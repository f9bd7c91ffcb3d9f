#include "broker/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum log_level log_min = LOG_LVL_INFO;

void log_set_level(enum log_level lvl)
{
	log_min = lvl;
}

__attribute__((format(printf, 3, 0))) static void log_vmsg(enum log_level lvl, const char *suffix,
                                                           const char *fmt, va_list ap)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	if (lvl < log_min)
		return;
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line),
	                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ secretd %s: ", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 ts.tv_nsec / 1000000, names[lvl]);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s%s\n", line, suffix ? suffix : "");
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, NULL, fmt, ap);
	va_end(ap);
}

static int64_t log_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool log_ratelimited(struct log_rl *rl, enum log_level lvl, const char *fmt, ...)
{
	int64_t now = log_mono_ms();
	unsigned iv = rl->interval_ms ? rl->interval_ms : LOG_RL_DEFAULT_MS;
	rl->total++;
	if (rl->last_ms && now - rl->last_ms < (int64_t)iv) {
		rl->suppressed++;
		return false;
	}
	char suffix[64] = "";
	if (rl->suppressed)
		snprintf(suffix, sizeof(suffix), " (%llu similar suppressed)",
		         (unsigned long long)rl->suppressed);
	rl->suppressed = 0;
	rl->last_ms = now ? now : 1;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, suffix, fmt, ap);
	va_end(ap);
	return true;
}

void log_rl_reset(struct log_rl *rl)
{
	rl->last_ms = 0;
}
