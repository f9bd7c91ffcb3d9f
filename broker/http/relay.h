/* relay: the daemon process's side of the privilege split (docs/DESIGN.md, "The server
 * process"). It spawns the unprivileged server process that serves workload.sock's HTTP
 * (fork + exec of /proc/self/exe as SECRETD_ROLE=server, under --server-user, no capabilities,
 * PR_SET_NO_NEW_PRIVS), answers its typed requests (broker/privsep) from its event loop, and
 * restarts it when it dies. Identity is taken here, from the client connection the server
 * passes with each request (SO_PEERCRED, SO_PEERPIDFD, /proc/PID/cgroup, liveness), never from
 * the server's word. Functions return 0 or a negative errno; nothing here logs (events go to
 * the report callback, logged by main.c). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "broker/http/api.h"

/* The environment of the server process (set by relay, read by the server's main). */
#define RELAY_ENV_ROLE "SECRETD_ROLE"                  /* "server" */
#define RELAY_ENV_LISTEN_FD "SECRETD_SERVER_LISTEN_FD" /* workload.sock's listening socket */
#define RELAY_ENV_CHAN_FD "SECRETD_SERVER_CHAN_FD"     /* its end of the channel */
#define RELAY_ENV_DROPPED "SECRETD_SERVER_DROPPED"     /* set: the uid was changed (from root) */
#define RELAY_ENV_LIMITS "SECRETD_SERVER_LIMITS" /* max_value,max_conns,per_ident,idle,request */
/* Test hook: with SECRETD_TEST_FAULTS (main.c's test mode), the program executed as the server
 * instead of this binary (tests/integration/test_privsep.sh plays a hostile server with it). */
#define RELAY_ENV_TEST_EXEC "SECRETD_TEST_SERVER_EXEC"
#define RELAY_SERVER_USER_DEFAULT "secretd"
#define RELAY_FALLBACK_ID 65534    /* nobody/nogroup, when --server-user does not exist */
#define RELAY_IN_BATCH 64          /* messages read from the server per loop iteration */
#define RELAY_BACKOFF_MIN_MS 100   /* a server that dies before it serves: restart delay, */
#define RELAY_BACKOFF_MAX_MS 10000 /* doubling up to this */
#define RELAY_LOG_EVERY_MS 10000   /* refusals are reported at most once per this period */
#define RELAY_STOP_DRAIN_MS 2000   /* a stop or hand-over waits this long for the server */

enum relay_event {
	RELAY_STARTED,       /* pid: a server process was started */
	RELAY_DIED,          /* pid, status (waitid's si_status; code: exited or killed);
	                      * seccomp: killed by SIGSYS, its filter (server_seccomp_kills) */
	RELAY_SPAWN_FAILED,  /* err: fork/exec preparation failed (retried with backoff) */
	RELAY_USER_FALLBACK, /* detail: the --server-user that does not exist (once) */
	RELAY_NOT_ROOT,      /* the daemon is not root: the server keeps its uid (once) */
	RELAY_REFUSED,       /* count (since the last report), detail: the last reason */
	RELAY_HOSTILE,       /* pid, detail: a malformed message; the server is killed */
	RELAY_STOPPED,       /* pid, err: 0 drained, -ETIMEDOUT killed after the drain bound */
};

struct relay_report {
	enum relay_event ev;
	pid_t pid;
	int status;   /* RELAY_DIED: exit status or signal */
	bool killed;  /* RELAY_DIED: killed by a signal */
	bool seccomp; /* RELAY_DIED: killed by SIGSYS (a system call outside its allow-list) */
	int err;
	unsigned long long count;
	const char *detail;
};

struct relay_config {
	const char *server_user; /* NULL: RELAY_SERVER_USER_DEFAULT */
	int listen_fd;           /* workload.sock's listening socket (not owned, kept open) */
	size_t max_value;        /* the largest value a REPLY carries */
	unsigned max_conns, max_conns_per_ident, idle_timeout_s, request_timeout_s;
	const char *test_exec; /* NULL, or (test mode) the program run as the server */
	bool no_seccomp;       /* the server installs no seccomp filter (--no-seccomp) */
	void (*report)(void *ud, const struct relay_report *rep);
	void *report_ud;
};

typedef struct relay relay;

/* Starts the server process and watches it on l; answers its requests with a's workload
 * operations (a must have been started with workload_relayed). met: privsep, server_* and the
 * server's transport counters. */
int relay_start(relay **out, loop *l, api *a, struct metrics *met, const struct relay_config *cfg);
/* Stops the server: SIGTERM (it stops accepting and finishes what it accepted), answers its
 * requests meanwhile, at most RELAY_STOP_DRAIN_MS, then SIGKILL. Frees r; NULL is a no-op. */
void relay_stop(relay *r);
/* A hand-over: the server stops accepting and finishes what it accepted (SIGTERM); it is not
 * restarted. NULL is a no-op. */
void relay_quiesce(relay *r);
/* The server's pid, 0 when none runs. */
pid_t relay_server_pid(const relay *r);

/* ---- the server process's side (relay_server.c) ---- */

typedef struct relay_server relay_server;
/* Takes chan (its end of the channel, owned) for a server relaying replies of at most
 * max_value bytes. Pass it as api_config.conn_key_ud with conn_key = relay_server_conn_key. */
int relay_server_new(relay_server **out, int chan, size_t max_value);
void relay_server_free(relay_server *rs);
/* api_config.conn_key: asks the daemon process whom connection fd counts against. */
int relay_server_conn_key(void *ud, int fd, char *key, size_t len);
/* Sends the transport counters of met (STATS) when they changed since the last call; a full
 * channel leaves it for the next call. 0, or -ENOTCONN when the daemon process is gone. */
int relay_server_stats(relay_server *rs, const struct metrics *met);
/* The channel's fd (watch it for EOF: the daemon process died) and what to do when it is
 * readable outside a request: late replies are dropped. -ENOTCONN: the daemon is gone;
 * -EPROTO: it sent something else. */
int relay_server_fd(const relay_server *rs);
int relay_server_on_readable(relay_server *rs);
/* 0 when this process holds no privilege: uid (unless was_root is false) and gid not 0,
 * CapEff, CapPrm and CapAmb 0, NoNewPrivs 1 (read from /proc/self/status); -EPERM otherwise
 * with what[] naming the first field that is not (what: at least 64 bytes). */
int relay_server_check_privs(bool was_root, char *what, size_t len);
