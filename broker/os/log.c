#include "broker/os/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_min = LOG_LVL_INFO;

void log_set_level(enum log_level lvl)
{
	log_min = lvl;
}

static bool log_to_journal(void);

void log_prepare(void)
{
	log_to_journal(); /* its answer is cached */
	tzset();
}

/* Is stderr the journal's stream (systemd sets JOURNAL_STREAM to its "device:inode")? Then each
 * line starts with its syslog priority, "<3>" .. "<7>", and carries no time of its own. */
static bool log_to_journal(void)
{
	static int cached = -1;
	if (cached >= 0)
		return cached;
	cached = 0;
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
		cached = 1;
	return cached;
}

__attribute__((format(printf, 3, 0))) static void log_vmsg(enum log_level lvl, const char *suffix,
                                                           const char *fmt, va_list ap)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	static const int prio[] = {7, 6, 4, 3}; /* LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR */
	if (lvl < log_min)
		return;
	char line[1024];
	int n;
	if (log_to_journal()) {
		n = snprintf(line, sizeof(line), "<%d>%s: ", prio[lvl], names[lvl]);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
		             "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ secretd %s: ", tm.tm_year + 1900,
		             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		             ts.tv_nsec / 1000000, names[lvl]);
	}
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
