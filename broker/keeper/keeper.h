/* keeper: the process that keeps a secretd daemon's connections alive across the daemon's crash
 * and upgrade. `secretd run` starts as the keeper, which execs the same binary as the worker (the
 * daemon proper: store, HTTP, FUSE) and supervises it:
 *  - it holds a duplicate of every fd the worker asks it to (each container's /dev/fuse connection,
 *    the listening sockets): while the keeper lives, a dead worker's mounts wait instead of failing
 *    (ENOTCONN comes only when the last fd of a connection closes) and connections queue in the
 *    sockets' backlogs;
 *  - when the worker dies it starts a new one at once (backing off only while workers die before
 *    they serve), which fetches the held fds and adopts them;
 *  - on SIGHUP or a worker's KEEPER_UPGRADE it asks the worker to hand off (SIGUSR1: exit without
 *    unmounting), re-execs its own binary keeping every held fd (their list in a memfd named by
 *    SECRETD_KEEPER_STATE), and the new keeper starts a new worker;
 *  - SIGTERM/SIGINT are passed to the worker; the keeper exits with the worker's status.
 * A worker counts as dead when the serving thread it named in READY has exited (PIDFD_THREAD,
 * Linux 6.9+; before READY, or on older kernels: the whole process): a killed process whose FUSE
 * notifier thread is stuck in an invalidation until a server answers the resent requests
 * lingers, and only its successor can free it. Such a process is reaped when it finally exits.
 * A stop or an upgrade waits for the whole process. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KEEPER_ENV_FD "SECRETD_KEEPER_FD"             /* worker: its channel to the keeper */
#define KEEPER_ENV_STATE "SECRETD_KEEPER_STATE"       /* new keeper: the held set's memfd */
#define KEEPER_ENV_RESTARTS "SECRETD_KEEPER_RESTARTS" /* worker: workers started before it */
#define KEEPER_ENV_LOCK "SECRETD_KEEPER_LOCK_FD"      /* worker, new keeper: the store's lock fd */
#define KEEPER_HELD_MAX 16384       /* entries held at once; more HOLDs are refused */
#define KEEPER_BACKOFF_MIN_MS 100   /* a worker that died before it served: first pause */
#define KEEPER_BACKOFF_MAX_MS 10000 /* ... doubling up to this */
#define KEEPER_SEND_TIMEOUT_MS 2000 /* a worker that does not read its answers is not waited on */

enum keeper_event_kind {
	KEEPER_EV_STARTED,        /* a worker started: pid, restarts */
	KEEPER_EV_READY,          /* it serves: pid, held */
	KEEPER_EV_DIED,           /* it died unasked: pid, status (wait status), backoff_ms; err
	                           * -EINPROGRESS: its serving thread ended but the process lingers
	                           * (a thread stuck in the kernel), reaped later */
	KEEPER_EV_EXITED,         /* it stopped as asked: pid, status */
	KEEPER_EV_GAVE_UP,        /* the first worker failed before serving: status; keeper exits */
	KEEPER_EV_BAD_MSG,        /* a message refused: err */
	KEEPER_EV_HELD_FULL,      /* a HOLD refused: KEEPER_HELD_MAX reached */
	KEEPER_EV_UPGRADE,        /* an upgrade starts: pid (the worker asked to hand off) */
	KEEPER_EV_UPGRADE_FAILED, /* exec failed: err; the old binary goes on */
	KEEPER_EV_RESUMED,        /* a new keeper took over held fds after exec: held, err */
	KEEPER_EV_ERROR,          /* a system call failed: err, what */
};

struct keeper_event {
	enum keeper_event_kind kind;
	pid_t pid;
	int status;
	int err;
	unsigned restarts;
	size_t held;
	int backoff_ms;
	const char *what;
};

/* An entry held from the start (systemd's fd store after the keeper itself was restarted). */
struct keeper_seed {
	uint8_t kind; /* enum keeper_kind */
	const char *id;
	const uint8_t *blob;
	size_t blob_len;
	int fds[2];
	unsigned nfds;
};

struct keeper_config {
	const char *exe;   /* absolute path of the binary exec'd for the worker and on upgrade */
	char *const *argv; /* its argv (argv[0] included); the same for worker and new keeper */
	void (*report)(void *ud, const struct keeper_event *ev); /* required; must not block */
	void *report_ud;
	/* Entries to hold from the start (nseed of them; keeper_run owns their fds, and refuses
	 * (closes) any whose shape keeper/msg.h would refuse). NULL: none. */
	const struct keeper_seed *seed;
	size_t nseed;
	/* Mirrors the held set (systemd's fd store, so that it survives the keeper too): called
	 * after an entry is held (held true; its fds and blob borrowed) and before one is closed
	 * (held false). Not called for seeded entries nor those taken over after an exec (their
	 * holder has them already). May be NULL; must not block. */
	void (*on_held)(void *ud, uint8_t kind, const char *id, const int *fds, unsigned nfds,
	                const uint8_t *blob, size_t blob_len, bool held);
	void *on_held_ud;
	/* An fd every worker inherits (named by KEEPER_ENV_LOCK) and an upgrade keeps: the store's
	 * lock, held by the keeper so that a worker that lingers (a thread stuck in the kernel)
	 * cannot keep its successor out. -1: none. */
	int lock_fd;
};

/* Runs the keeper until the worker stops on request (returns its exit status, 0..255) or the first
 * worker fails before serving (returns its status, or 1). Does not return after a successful
 * upgrade exec. Blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD for itself. */
int keeper_run(const struct keeper_config *cfg);
