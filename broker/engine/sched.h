/* sched: expiry and scheduled rotation of secrets, from the store's lifecycle table, on the
 * event loop. One timerfd (CLOCK_REALTIME, absolute) is armed at the earliest due time and
 * re-armed whenever the store's lifecycle generation changes (checked in a prepare hook).
 * A rotation with an exec command runs `/bin/sh -c CMD` with the new value on its stdin (a pipe,
 * written at once: values are at most STORE_GEN_LENGTH_MAX bytes), watched by a pidfd in the
 * loop and killed after SCHED_EXEC_TIMEOUT_S; the value becomes current only when the command
 * exits 0. Every change goes through the service layer (service.h: the store change, the
 * refresh of the views, the audit record, actor "secretd"); every outcome is reported to the
 * caller, who logs. In cluster mode each firing's writes wait in the service's write queue
 * (a token per firing, continued by the service's waker at the next prepare): no etcd call
 * holds the loop, and nothing else fires for a secret while its firing is in flight.
 * Functions return 0 or a negative errno. */
#pragma once
#include <stdint.h>

#include "broker/os/loop.h"
#include "broker/engine/service.h"
#include "broker/store/store.h"

#define SCHED_EXEC_TIMEOUT_S 30
#define SCHED_FOLLOWER_POLL_S 1 /* cluster mode: a node that is not the leader looks again */

typedef struct sched sched;

enum sched_event {
	SCHED_EXPIRED,   /* a secret expired and was deleted */
	SCHED_ROTATED,   /* a scheduled rotation stored version `version` */
	SCHED_FAILED,    /* a rotation or expiry failed; why says how; the old value stays */
	SCHED_UNAPPLIED, /* after an expiry or rotation (stored), mounts could not follow: version
	                    is the number of containers failed closed (retried by mounts) */
};
/* Called on the loop's thread after each event; why is a static or short-lived string. */
typedef void (*sched_report_cb)(void *ud, const char *name, enum sched_event ev, uint64_t version,
                                const char *why);

/* Loads the lifecycle table (from s) and arms the timer; changes go through sv. */
int sched_new(sched **out, loop *l, store *s, service *sv, sched_report_cb report, void *ud);
/* Kills running exec children (SIGKILL, reaped), wipes their values, frees. */
void sched_free(sched *sc);
/* Exec children running now (for tests and metrics). */
unsigned sched_running(const sched *sc);
