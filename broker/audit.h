/* audit: batches high-rate audit records (FUSE opens) in memory and appends them to the store's
 * hash chain (store_audit_append) in one transaction, at most AUDIT_FLUSH_MS after the first one
 * was buffered or as soon as AUDIT_BATCH_MAX are waiting. Records that change the store are not
 * batched: the store writes them in the change's own transaction. No I/O besides the store; the
 * caller drives the timing (audit_due_ms from a loop prepare hook). Returns 0 or -errno. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/store.h"

#define AUDIT_FLUSH_MS 100
#define AUDIT_BATCH_MAX 256

typedef struct audit audit;

/* A batcher writing to s (which must outlive it). */
int audit_new(audit **out, store *s);
/* Flushes what is buffered (best effort) and frees. */
void audit_free(audit *a);
/* Buffers a copy of rec (strings truncated to fixed sizes; time 0 = now); flushes when the batch
 * is full. -ENOSPC when the batch is full and cannot be written (the record is dropped). */
int audit_add(audit *a, const struct store_audit *rec);
/* Writes every buffered record in one transaction; on failure they stay buffered. */
int audit_flush(audit *a);
/* Milliseconds until the next flush is due (0: now), or -1 when nothing is buffered. */
int audit_due_ms(audit *a);
/* Records buffered, and records dropped since audit_new (both for metrics and logs). */
size_t audit_pending(const audit *a);
uint64_t audit_dropped(const audit *a);
/* Fills buf with the actor string for a peer: container name or id, else "uid:N". */
void audit_actor(char *buf, size_t len, bool container, const char *id, const char *name,
		 uint32_t uid);
