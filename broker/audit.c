#include "broker/audit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct audit_slot {
	int64_t time;
	int64_t pid;
	uint64_t version;
	bool has_secret;
	char actor[160], exe[256], action[24], secret[256], result[32];
};

struct audit {
	store *store;
	struct audit_slot *slots; /* AUDIT_BATCH_MAX */
	size_t n;
	int64_t first_ms; /* monotonic time the oldest buffered record arrived */
	uint64_t dropped;
};

static int64_t audit_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void audit_copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

int audit_new(audit **out, store *s)
{
	if (!out || !s)
		return -EINVAL;
	audit *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->slots = calloc(AUDIT_BATCH_MAX, sizeof(*a->slots));
	if (!a->slots) {
		free(a);
		return -ENOMEM;
	}
	a->store = s;
	*out = a;
	return 0;
}

void audit_free(audit *a)
{
	if (!a)
		return;
	(void)audit_flush(a);
	free(a->slots);
	free(a);
}

int audit_flush(audit *a)
{
	if (!a || a->n == 0)
		return 0;
	struct store_audit *recs = calloc(a->n, sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	for (size_t i = 0; i < a->n; i++) {
		const struct audit_slot *sl = &a->slots[i];
		recs[i] = (struct store_audit){.time = sl->time,
					       .actor = sl->actor,
					       .pid = sl->pid,
					       .exe = sl->exe,
					       .action = sl->action,
					       .secret = sl->has_secret ? sl->secret : NULL,
					       .version = sl->version,
					       .result = sl->result};
	}
	int r = store_audit_append(a->store, recs, a->n);
	free(recs);
	if (r == 0)
		a->n = 0;
	return r;
}

int audit_add(audit *a, const struct store_audit *rec)
{
	if (!a || !rec)
		return -EINVAL;
	if (a->n == AUDIT_BATCH_MAX && audit_flush(a) < 0) {
		a->dropped++;
		return -ENOSPC;
	}
	struct audit_slot *sl = &a->slots[a->n];
	sl->time = rec->time ? rec->time : (int64_t)time(NULL);
	sl->pid = rec->pid;
	sl->version = rec->version;
	sl->has_secret = rec->secret != NULL;
	audit_copy(sl->actor, sizeof(sl->actor), rec->actor);
	audit_copy(sl->exe, sizeof(sl->exe), rec->exe);
	audit_copy(sl->action, sizeof(sl->action), rec->action);
	audit_copy(sl->secret, sizeof(sl->secret), rec->secret);
	audit_copy(sl->result, sizeof(sl->result), rec->result ? rec->result : "ok");
	if (a->n++ == 0)
		a->first_ms = audit_mono_ms();
	if (a->n == AUDIT_BATCH_MAX)
		(void)audit_flush(a); /* kept buffered on failure; retried later */
	return 0;
}

int audit_due_ms(audit *a)
{
	if (!a || a->n == 0)
		return -1;
	int64_t left = a->first_ms + AUDIT_FLUSH_MS - audit_mono_ms();
	return left <= 0 ? 0 : (int)left;
}

size_t audit_pending(const audit *a)
{
	return a ? a->n : 0;
}

uint64_t audit_dropped(const audit *a)
{
	return a ? a->dropped : 0;
}

void audit_actor(char *buf, size_t len, bool container, const char *id, const char *name,
		 uint32_t uid)
{
	if (container && name && *name)
		snprintf(buf, len, "%s", name);
	else if (container && id && *id)
		snprintf(buf, len, "%s", id);
	else
		snprintf(buf, len, "uid:%u", (unsigned)uid);
}
