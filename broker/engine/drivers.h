/* drivers: the daemon's background work on the event loop, started and stopped together:
 *   - key rotation: one batch (service_key_rotate_step) per loop iteration while a rotation
 *     is unfinished (started by the API or left by a crash), so requests are served between
 *     batches; a failing batch is retried with a growing pause (an integrity failure will not
 *     heal: GET /v1/keys shows it);
 *   - the audit anchor (when a path is given): checked at start, rewritten after any loop
 *     iteration that wrote audit records (everything written before has committed by the next
 *     prepare), and once more at stop;
 *   - the schedules (sched.h): expiry and scheduled rotation, through the service layer;
 *   - procwatch (when given): process events (every fork, exec and exit on the host) and exits
 *     of tracked processes are applied between opens too, so that the connector's queue does
 *     not overflow and pidfds are closed. In batches: after a drain the fd leaves the loop for
 *     DRIVERS_PROCWATCH_MS, so a busy host costs at most 1000 / DRIVERS_PROCWATCH_MS wake-ups a
 *     second. Opens do not wait for this: each one syncs procwatch itself.
 * Nothing here logs: every event the operator must hear of goes to the report callback, which
 * the daemon's top level turns into log lines. Functions return 0 or a negative errno. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "broker/engine/sched.h"
#include "broker/engine/service.h"
#include "broker/os/loop.h"
#include "broker/os/procwatch.h"
#include "broker/store/store.h"

#define DRIVERS_PROCWATCH_MS 100

typedef struct drivers drivers;

enum drivers_event {
	DRIVERS_KEYROT_RESUMED, /* at start: an unfinished rotation to generation a resumes */
	DRIVERS_KEYROT_FAILED,  /* a batch of the rotation to generation a failed (err), retrying;
	                           reported once per distinct error */
	DRIVERS_KEYROT_DONE, /* the rotation to generation a is complete: b data keys re-wrapped */
	DRIVERS_ANCHOR_NEW,  /* at start: no anchor file yet, it is written now */
	DRIVERS_ANCHOR_BAD,  /* at start: the file cannot be read (err): refusing to start */
	DRIVERS_ANCHOR_FOREIGN, /* at start: not written with this store's key: refusing */
	DRIVERS_ANCHOR_STALE,   /* at start: the database lacks or differs at record a: refusing */
	DRIVERS_ANCHOR_CHECK_FAILED, /* at start: it cannot be checked (err): refusing */
	DRIVERS_ANCHOR_WRITE_FAILED, /* it cannot be written (err), retried every second; once
	                                per failing spell (and at stop) */
	DRIVERS_SCHED_FAILED,        /* at start: the schedules cannot be loaded (err) */
	DRIVERS_LOOP_FAILED,         /* at start: a hook cannot be added to the loop (err) */
	DRIVERS_PROCWATCH_FAILED,    /* process events cannot be read (err): exes are read from
	                                /proc per open */
};
/* Called on the loop's thread; path is the anchor file (or NULL). */
typedef void (*drivers_report_cb)(void *ud, enum drivers_event ev, const char *path, uint64_t a,
                                  uint64_t b, int err);

struct drivers_config {
	store *store;
	service *service;
	size_t rotate_batch;     /* data keys per key-rotation batch (> 0) */
	const char *anchor_path; /* NULL: no audit anchor */
	procwatch *procwatch;    /* NULL: none; not owned, must outlive drivers_stop */
	drivers_report_cb report;
	void *report_ud;
	sched_report_cb sched_report; /* the schedules' events */
	void *sched_ud;
};

/* Checks the anchor, resumes an unfinished key rotation, and adds the key-rotation hook and the
 * schedules to the loop. An error means: refuse to start (it was reported). */
int drivers_start(drivers **out, loop *l, const struct drivers_config *cfg);
/* Adds the anchor's hook: call it last, after every other prepare hook (it anchors what the
 * hooks before it and the handlers wrote). A no-op without an anchor path. An error was
 * reported. */
int drivers_start_anchor(drivers *d);
/* Stops the schedules (their exec children killed and reaped) and takes procwatch's fd out of
 * the loop. NULL is a no-op. */
void drivers_stop(drivers *d);
/* Writes the anchor a last time (after the last records, e.g. the audit batcher's last flush)
 * if records were written since; returns that write's result (0 without an anchor; a failure
 * is reported too). NULL is a no-op. */
int drivers_anchor_flush(drivers *d);
/* Stops what is left and frees. NULL is a no-op. */
void drivers_free(drivers *d);
