/* audit_driver: drives the audit batcher (audit.h) from the event loop, and what the daemon does
 * around it:
 *   - flushes each due batch; while the audit cannot be written, FUSE opens and workload reads
 *     are refused (the batcher's own rule); on a full disk (ENOSPC) the disk reserve (os/reserve)
 *     is released so that key operations still commit, and batches wait until the disk has room
 *     to remake it (so that opens cannot eat the space kept for key operations);
 *   - retention (when a keep window or a record cap is set): one prune batch per loop iteration
 *     while some are due, then a check every half keep window (1 s .. 60 s);
 *   - the FUSE open gate and open records (mounts_config.open_gate, on_open: give them the
 *     driver as on_open_ud).
 * Nothing here logs: every event goes to the report callback (the daemon's top level logs it,
 * rate-limited). Functions return 0 or a negative errno. */
#pragma once
#include <stdint.h>

#include "broker/engine/audit.h"
#include "broker/engine/mounts.h"
#include "broker/os/loop.h"

typedef struct audit_driver audit_driver;

enum audit_driver_event {
	AUDIT_DRIVER_OPEN_UNRECORDED, /* a FUSE open was answered, its record not taken (err): it is
	                                 recorded as refused */
	AUDIT_DRIVER_DISK_HOLD,       /* the disk is still full (err): a bytes free, b needed */
	AUDIT_DRIVER_RESERVE_REMADE,  /* the disk reserve (a bytes) is back */
	AUDIT_DRIVER_WRITE_FAILED,    /* a batch cannot be written (err): a pending, b refused */
	AUDIT_DRIVER_RESERVE_RELEASED,       /* disk full: the reserve (a bytes) was released */
	AUDIT_DRIVER_RESERVE_RELEASE_FAILED, /* disk full: the reserve cannot be released (err) */
	AUDIT_DRIVER_WRITABLE_AGAIN,         /* writable again: a events were refused meanwhile */
	AUDIT_DRIVER_PRUNE_FAILED,           /* retention cannot prune (err), retried in 5 s */
	AUDIT_DRIVER_PRUNED,                 /* retention pruned a records (one run of batches) */
	AUDIT_DRIVER_RESERVE_MAKE_FAILED, /* at start: the reserve (a bytes) cannot be made (err) */
	AUDIT_DRIVER_RESERVE_REMOVE_FAILED, /* at start (no reserve wanted): an old one stays (err)
	                                     */
};
/* Called on the loop's thread; state_dir is the configured one. */
typedef void (*audit_driver_report_cb)(void *ud, enum audit_driver_event ev, const char *state_dir,
                                       uint64_t a, uint64_t b, int err);

struct audit_driver_config {
	const char *state_dir; /* where the reserve file lives */
	uint64_t reserve;      /* bytes of the disk reserve; 0 = none (an old one is removed) */
	int64_t keep_s;        /* retention: records older than this are pruned; 0 = kept */
	uint64_t keep_max;     /* retention: at most this many records; 0 = no cap */
	audit_driver_report_cb report;
	void *report_ud;
};

/* Adds the flush (and, with a retention, the prune) hook to the loop and makes (or removes) the
 * disk reserve (a failure there is reported, not fatal). au is not owned. */
int audit_driver_start(audit_driver **out, loop *l, audit *au,
                       const struct audit_driver_config *cfg);
/* mounts_config.open_gate: < 0 (refuse the open) while the audit cannot be written. */
int audit_driver_open_gate(void *ud);
/* mounts_config.on_open: the open's record goes to the batcher. */
void audit_driver_on_open(void *ud, const struct mounts_open_event *ev);
/* NULL is a no-op. The loop must not run again afterwards (its hooks point here). */
void audit_driver_free(audit_driver *d);
