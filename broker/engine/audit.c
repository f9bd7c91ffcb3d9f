#include "broker/engine/audit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct audit_slot {
	int64_t time;
	int64_t pid;
	uint64_t version;
	uint64_t count;
	bool has_secret, has_detail;
	char actor[160], exe[256], action[24], secret[256], result[32], detail[256];
};

struct audit {
	store *store;
	struct audit_slot *slots; /* AUDIT_BATCH_MAX */
	size_t n;
	int64_t first_ms; /* monotonic time the oldest buffered record arrived */
	bool failing;     /* the last flush failed */
	int last_err;
	int backoff_ms;   /* pause before the next retry while failing */
	int64_t retry_ms; /* monotonic time of that retry */
	/* Refused events that found no slot: written as one record on recovery. */
	uint64_t unrecorded;
	int64_t unrecorded_since;
	int64_t keep_s;
	uint64_t keep_max;
	struct audit_stats st;
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

int audit_free(audit *a, uint64_t *lost)
{
	if (lost)
		*lost = 0;
	if (!a)
		return 0;
	int r = audit_flush(a);
	if (r < 0 && lost) {
		for (size_t i = 0; i < a->n; i++)
			*lost += a->slots[i].count;
		*lost += a->unrecorded;
	}
	free(a->slots);
	free(a);
	return r;
}

/* The summary of refused events that found no slot, as the last record of the batch. */
static void audit_unrecorded_rec(const audit *a, struct store_audit *r)
{
	*r = (struct store_audit){.time = a->unrecorded_since,
	                          .actor = "secretd",
	                          .action = "audit-unavailable",
	                          .result = STORE_AUDIT_REFUSED,
	                          .detail =
	                              "events refused while the audit could not be written, not "
	                              "recorded one by one (the buffer was full)",
	                          .count = a->unrecorded};
}

int audit_flush(audit *a)
{
	if (!a || (a->n == 0 && a->unrecorded == 0))
		return 0;
	size_t n = a->n + (a->unrecorded ? 1 : 0);
	struct store_audit *recs = calloc(n, sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	uint64_t events = 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct audit_slot *sl = &a->slots[i];
		recs[i] = (struct store_audit){.time = sl->time,
		                               .actor = sl->actor,
		                               .pid = sl->pid,
		                               .exe = sl->exe,
		                               .action = sl->action,
		                               .secret = sl->has_secret ? sl->secret : NULL,
		                               .version = sl->version,
		                               .result = sl->result,
		                               .detail = sl->has_detail ? sl->detail : NULL,
		                               .count = sl->count};
		events += sl->count;
	}
	if (a->unrecorded) {
		audit_unrecorded_rec(a, &recs[a->n]);
		events += a->unrecorded;
	}
	int r = store_audit_append(a->store, recs, n);
	free(recs);
	a->last_err = r;
	if (r < 0) {
		a->failing = true;
		a->st.write_errors++;
		a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : AUDIT_FLUSH_MS;
		if (a->backoff_ms > AUDIT_RETRY_MAX_MS)
			a->backoff_ms = AUDIT_RETRY_MAX_MS;
		a->retry_ms = audit_mono_ms() + a->backoff_ms;
		return r;
	}
	a->failing = false;
	a->backoff_ms = 0;
	a->st.records_written += n;
	a->st.events_written += events;
	a->n = 0;
	a->unrecorded = 0;
	return 0;
}

static bool audit_same(const struct audit_slot *sl, const struct store_audit *rec,
                       const char *result)
{
	/* The strings as they would be stored (truncated like audit_copy) */
	char tmp[256];
#define SAME(field, src)                                                                           \
	(snprintf(tmp, sizeof(sl->field), "%s", (src) ? (src) : ""), strcmp(sl->field, tmp) == 0)
	return sl->pid == rec->pid && sl->version == rec->version &&
	       sl->has_secret == (rec->secret != NULL) && sl->has_detail == (rec->detail != NULL) &&
	       SAME(action, rec->action) && SAME(result, result) && SAME(actor, rec->actor) &&
	       SAME(exe, rec->exe) && SAME(secret, rec->secret) && SAME(detail, rec->detail);
#undef SAME
}

/* Coalesces rec into an identical buffered record (newest first): true when it did. */
static bool audit_coalesce(audit *a, const struct store_audit *rec, const char *result)
{
	for (size_t i = a->n; i-- > 0;) {
		struct audit_slot *sl = &a->slots[i];
		if (sl->count < INT64_MAX && audit_same(sl, rec, result)) {
			sl->count++;
			a->st.coalesced++;
			return true;
		}
	}
	return false;
}

static void audit_put(audit *a, const struct store_audit *rec, const char *result)
{
	struct audit_slot *sl = &a->slots[a->n];
	sl->time = rec->time ? rec->time : (int64_t)time(NULL);
	sl->pid = rec->pid;
	sl->version = rec->version;
	sl->count = 1;
	sl->has_secret = rec->secret != NULL;
	sl->has_detail = rec->detail != NULL;
	audit_copy(sl->actor, sizeof(sl->actor), rec->actor);
	audit_copy(sl->exe, sizeof(sl->exe), rec->exe);
	audit_copy(sl->action, sizeof(sl->action), rec->action);
	audit_copy(sl->secret, sizeof(sl->secret), rec->secret);
	audit_copy(sl->result, sizeof(sl->result), result);
	audit_copy(sl->detail, sizeof(sl->detail), rec->detail);
	if (a->n++ == 0)
		a->first_ms = audit_mono_ms();
}

/* Flushes a full batch; a failure is kept in a (failing, last_err, write_errors), which the
 * callers then act on. */
static void audit_flush_full(audit *a)
{
	if (a->n == AUDIT_BATCH_MAX && audit_flush(a) < 0 && !a->failing)
		a->failing = true; /* -ENOMEM before the store was asked */
}

/* What a refusal answers: -ENOSPC when the disk is full, else -EIO. */
static int audit_refusal(const audit *a)
{
	return a->last_err == -ENOSPC ? -ENOSPC : -EIO;
}

int audit_admit(audit *a)
{
	if (!a)
		return -EINVAL;
	if (!a->failing)
		audit_flush_full(a);
	return a->failing ? audit_refusal(a) : 0;
}

int audit_add(audit *a, const struct store_audit *rec)
{
	if (!a || !rec)
		return -EINVAL;
	const char *result = rec->result ? rec->result : "ok";
	if (!a->failing) {
		if (audit_coalesce(a, rec, result))
			return 0;
		audit_flush_full(a);
	}
	if (!a->failing) {
		audit_put(a, rec, result);
		audit_flush_full(a); /* on failure: kept, failing; the next admit refuses */
		return 0;
	}
	/* Refused: recorded as such, in a slot if one is identical or free, else counted. */
	a->st.refused++;
	if (!audit_coalesce(a, rec, STORE_AUDIT_REFUSED)) {
		if (a->n < AUDIT_BATCH_MAX)
			audit_put(a, rec, STORE_AUDIT_REFUSED);
		else if (a->unrecorded++ == 0)
			a->unrecorded_since = (int64_t)time(NULL);
	}
	return audit_refusal(a);
}

int audit_due_ms(audit *a)
{
	if (!a || (a->n == 0 && a->unrecorded == 0))
		return -1;
	int64_t left = (a->failing ? a->retry_ms : a->first_ms + AUDIT_FLUSH_MS) - audit_mono_ms();
	return left <= 0 ? 0 : (int)left;
}

bool audit_failing(const audit *a)
{
	return a && a->failing;
}

int audit_last_error(const audit *a)
{
	return a ? a->last_err : 0;
}

void audit_get_stats(const audit *a, struct audit_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!a)
		return;
	*st = a->st;
	st->pending = a->n;
	st->writable = !a->failing;
}

size_t audit_pending(const audit *a)
{
	return a ? a->n : 0;
}

void audit_set_retention(audit *a, int64_t keep_s, uint64_t keep_max)
{
	if (!a)
		return;
	a->keep_s = keep_s > 0 ? keep_s : 0;
	a->keep_max = keep_max;
}

int audit_prune_step(audit *a, uint64_t *pruned, bool *more)
{
	if (!a || !pruned || !more)
		return -EINVAL;
	*pruned = 0;
	*more = false;
	if (!a->keep_s && !a->keep_max)
		return 0;
	int64_t before = a->keep_s ? (int64_t)time(NULL) - a->keep_s : 0;
	int r = store_audit_prune(a->store, before, a->keep_max, AUDIT_PRUNE_BATCH, pruned, more);
	if (r == 0)
		a->st.pruned += *pruned;
	return r;
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
