/* audit: batches high-rate audit records (FUSE opens, workload reads) in memory and appends them
 * to the store's hash chain (store_audit_append) in one transaction, at most AUDIT_FLUSH_MS after
 * the first one was buffered or as soon as AUDIT_BATCH_MAX are waiting. Records that change the
 * store are not batched: the store writes them in the change's own transaction.
 *
 * Coalescing: an event identical to one already buffered (same actor, pid, exe, action, secret,
 * version, result and detail) adds one to that record's count instead of a new record, so a
 * container's open loop costs one record per flush window, not one per open.
 *
 * Fail closed: once a flush fails (ENOSPC, EIO, ...) the batcher is "failing" until a flush
 * succeeds: audit_admit answers -ENOSPC or -EIO (the open path refuses the open), audit_add
 * answers the same (the caller refuses what it was about to serve) and records the event as refused
 * (result STORE_AUDIT_REFUSED), coalesced or buffered; when neither is possible (the buffer is
 * full) it is counted and written as one summary record when the audit recovers. Nothing served
 * is ever left unrecorded while the daemon runs; what is buffered is bounded.
 *
 * Retention: audit_set_retention and audit_prune_step prune the oldest records in batches (see
 * store_audit_prune). No I/O besides the store; the caller drives the timing (audit_due_ms from
 * a loop prepare hook). Functions return 0 or -errno. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/store/store.h"

#define AUDIT_FLUSH_MS 100
#define AUDIT_BATCH_MAX 256
#define AUDIT_RETRY_MAX_MS 1000 /* a failing flush is retried after 100, 200, ... this ms */
#define AUDIT_PRUNE_BATCH 1000  /* records deleted per transaction by a prune step */

typedef struct audit audit;

/* A batcher writing to s (which must outlive it). */
int audit_new(audit **out, store *s);
/* Flushes what is buffered (audit_flush) and frees; returns that flush's result (on failure the
 * buffered records and *lost, if not NULL, how many events they stood for, are gone: the caller
 * logs it). */
int audit_free(audit *a, uint64_t *lost);

/* May an event that is about to be served be recorded? 0: yes, and the audit_add that follows
 * (before anything else touches a) cannot fail for lack of room; -ENOSPC (the disk is full) or
 * -EIO (any other write error): the audit is failing (or the buffer is full and cannot be written):
 * refuse the event, then audit_add it (it is recorded and counted as refused). */
int audit_admit(audit *a);
/* Buffers a copy of rec (strings truncated to fixed sizes; time 0 = now), coalescing it with an
 * identical buffered record; flushes when the batch is full. While failing: records it as
 * refused and returns -ENOSPC or -EIO like audit_admit (the caller must not serve it). */
int audit_add(audit *a, const struct store_audit *rec);
/* Writes every buffered record in one transaction; on failure they stay buffered and the batcher
 * is failing until a flush succeeds. */
int audit_flush(audit *a);
/* Milliseconds until the next flush is due (0: now), or -1 when nothing is buffered. While
 * failing: the next retry (backing off from AUDIT_FLUSH_MS to AUDIT_RETRY_MAX_MS). */
int audit_due_ms(audit *a);
/* True while the last flush failed (opens and reads are refused). */
bool audit_failing(const audit *a);
/* The last flush's error (-ENOSPC, -EIO, ...), 0 when it succeeded. */
int audit_last_error(const audit *a);

struct audit_stats {
	uint64_t records_written; /* rows appended */
	uint64_t events_written;  /* events they stand for */
	uint64_t coalesced;       /* events folded into another buffered record */
	uint64_t refused;         /* events refused because the audit was failing */
	uint64_t write_errors;    /* failed flushes */
	uint64_t pruned;          /* records pruned by retention */
	uint64_t pending;         /* records buffered now */
	bool writable;            /* !failing */
};
void audit_get_stats(const audit *a, struct audit_stats *st);
/* Records buffered (for metrics and logs). */
size_t audit_pending(const audit *a);

/* Retention: keep records younger than keep_s seconds (0: no age limit) and at most keep_max
 * (0: no count limit). */
void audit_set_retention(audit *a, int64_t keep_s, uint64_t keep_max);
/* One prune batch (AUDIT_PRUNE_BATCH records, its own transaction) if any is due: *pruned the
 * records deleted, *more when another batch is due now. 0 or -errno. */
int audit_prune_step(audit *a, uint64_t *pruned, bool *more);

/* Fills buf with the actor string for a peer: container name or id, else "uid:N". */
void audit_actor(char *buf, size_t len, bool container, const char *id, const char *name,
                 uint32_t uid);
