/* procwatch: which process is behind a pid, and which executable it runs, remembered so that a
 * FUSE open costs neither a pidfd check nor a readlink(/proc/PID/exe). Runs on the event loop's
 * thread. Functions return 0 or a negative errno unless said otherwise.
 *
 * Identity. A tracked pid holds a pidfd in procwatch's own epoll set. A pidfd becomes readable
 * when its process has exited, which the kernel records (epoll's ready list, a state: nothing to
 * lose) before that process can be reaped, hence before its pid can be reused. A token (never
 * reused) names one tracked process, and dies when its pidfd fires.
 *
 * Executable. The proc connector (netlink NETLINK_CONNECTOR, CN_IDX_PROC) reports every exec(2)
 * from inside exec itself, after the new image is in place and before it runs a single
 * instruction. An exe read from /proc/PID/exe is kept until an exec of that process is reported,
 * or the connector says it lost events (ENOBUFS; a gap in a CPU's sequence numbers): then every
 * cached exe is forgotten. Without the connector (a daemon outside the initial pid or user
 * namespace, a kernel older than 6.6, no CAP_NET_ADMIN) the exe is read on every call, as before.
 *
 * The rule for callers: call procwatch_sync after reading a request and before trusting
 * procwatch_track or procwatch_exe for its sender. Every exit and exec that happened before the
 * sender could send that request is then applied (docs/DESIGN.md, "Process identity and exe").
 * Only thread-group leaders are tracked; a thread's own tid gets token 0 and a fresh exe read. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROCWATCH_EXE_MAX                                                                          \
	256 /* bytes of an exe path kept, with the NUL (the audit record's size) */
#define PROCWATCH_CPUS_MAX 4096 /* CPUs whose event sequence numbers are followed */

typedef struct procwatch procwatch;

struct procwatch_stats {
	uint64_t tracked;   /* processes tracked now */
	uint64_t exe_hits;  /* procwatch_exe answered from the cache */
	uint64_t exe_reads; /* procwatch_exe read /proc/PID/exe */
	uint64_t execs;     /* exec events that dropped a cached exe */
	uint64_t exits;     /* tracked processes seen exiting */
	uint64_t evictions; /* tracked processes pushed out by SECRETD_PROCWATCH_MAX */
	uint64_t losses;    /* connector losses (every cached exe forgotten) */
	bool connector;     /* exes are cached (the connector is listened to) */
};

/* Creates the watcher (with room for SECRETD_PROCWATCH_MAX processes). A missing connector is not
 * an error: *connector_err (may be NULL) gets why exes are not cached, 0 when they are. Freed with
 * procwatch_free. */
int procwatch_new(procwatch **out, int *connector_err);
/* Closes every pidfd and the connector socket. NULL is a no-op. */
void procwatch_free(procwatch *pw);
/* An epoll fd, readable when procwatch_sync has something to apply: watch it for EPOLLIN and call
 * procwatch_sync (else the connector's queue overflows, which costs every cached exe). */
int procwatch_fd(const procwatch *pw);
/* Applies every exit and exec reported so far (one epoll_wait when there are none). On an
 * unexpected error the connector is given up (exes are read every time from then on) and the
 * error returned; if epoll itself failed, every tracked process is forgotten too. */
int procwatch_sync(procwatch *pw);
/* The token of the process now behind pid, tracking it from now on (the least recently used one
 * is pushed out when full), or 0 when it cannot be tracked (not a thread-group leader, gone, out
 * of fds). Between two procwatch_sync calls that saw no exit, equal tokens mean the same process.
 * When exes are cached and pid's is not, it is read now: a request's exe is then the one of the
 * moment it was checked, even if the process is gone by the time procwatch_exe is asked. */
uint64_t procwatch_track(procwatch *pw, pid_t pid);
/* pid's executable (for the audit trail): cached when pid is tracked and the connector is on,
 * else read from /proc/PID/exe. NULL if it cannot be read (pid gone, pid <= 0). The string
 * belongs to pw and stays valid until the next procwatch call. */
const char *procwatch_exe(procwatch *pw, pid_t pid);
void procwatch_get_stats(const procwatch *pw, struct procwatch_stats *st);

/* ---- the pure core: no system calls. Exported for tests/unit/test_procwatch.c. ---- */

/* A table of tracked processes: pid -> (handle, token, cached exe), least recently used first
 * out, plus the per-CPU sequence numbers of the connector's messages. Handles (pidfds in the
 * daemon) are only stored and handed back: the caller closes them. */
typedef struct procwatch_tab procwatch_tab;

/* Bits returned by procwatch_tab_feed. */
#define PROCWATCH_FED_EXEC 0x1 /* an exec dropped a cached exe */
#define PROCWATCH_FED_LOST                                                                         \
	0x2                   /* a gap in a CPU's sequence numbers, or an unreadable message:      \
	                         every exe was forgotten */
#define PROCWATCH_FED_ACK 0x4 /* the answer to our subscription, with ack == cookie + 1 */
#define PROCWATCH_FED_FIRST                                                                        \
	0x8 /* the first message from this CPU: nothing tells what it                              \
	       missed before, so every exe was forgotten too */

/* A table for at most max (1..2^20) processes; freed with procwatch_tab_free (which does not
 * close the handles). */
int procwatch_tab_new(procwatch_tab **out, size_t max);
void procwatch_tab_free(procwatch_tab *t);
/* Tracks pid (> 0) with handle (>= 0); returns its new token (> 0). The entry pid had before, or
 * else the least recently used one when the table is full, is dropped: *dropped gets its handle
 * (-1 if none). */
uint64_t procwatch_tab_add(procwatch_tab *t, pid_t pid, int handle, int *dropped);
/* pid's token (marking it the most recently used), 0 if untracked. */
uint64_t procwatch_tab_token(procwatch_tab *t, pid_t pid);
/* Drops the entry named by token; returns its handle, or -1 for a token no longer tracked. */
int procwatch_tab_remove(procwatch_tab *t, uint64_t token);
/* Handle of the entry at position i (0 .. count-1, any order), to close them all. */
int procwatch_tab_handle_at(const procwatch_tab *t, size_t i);
size_t procwatch_tab_count(const procwatch_tab *t);
/* Drops every entry (handles are not closed: read them first with procwatch_tab_handle_at). */
void procwatch_tab_clear(procwatch_tab *t);
/* pid's cached exe, NULL if none (or untracked). */
const char *procwatch_tab_exe(const procwatch_tab *t, pid_t pid);
/* Caches exe for tracked pid (truncated to PROCWATCH_EXE_MAX - 1 bytes). -ENOENT if untracked. */
int procwatch_tab_set_exe(procwatch_tab *t, pid_t pid, const char *exe);
/* Forgets every cached exe (entries and tokens stay). */
void procwatch_tab_forget_exes(procwatch_tab *t);
/* One proc-connector message, as procwatch_parse reads it. */
struct procwatch_msg {
	uint32_t cpu, seq; /* the CPU that sent it, and its sequence number on that CPU */
	uint32_t what;     /* PROC_EVENT_* (linux/cn_proc.h) */
	uint32_t ack;      /* cn_msg.ack (our cookie + 1 on the answer to our subscription) */
	int32_t tgid;      /* PROC_EVENT_EXEC: the thread group that exec'd; else 0 */
	int32_t err; /* PROC_EVENT_NONE: the kernel's answer (0 or a positive errno); else 0 */
};
/* Bytes of one datagram read from the connector socket (longer ones are truncated, and lost). */
#define PROCWATCH_MSG_MAX 512

/* Parses one datagram from the connector socket (len bytes at buf, any alignment): a netlink
 * header, a cn_msg for CN_IDX_PROC/CN_VAL_PROC and a whole struct proc_event, which need
 * PROCWATCH_MSG_MIN bytes (procwatch.c: 76 on Linux) and nlmsg_len within [that, len]. Reads
 * nothing past buf + len. 0 with *out filled, or -EBADMSG (too short, longer than
 * PROCWATCH_MSG_MAX, another connector, a short or oversized length field). Pure. */
int procwatch_parse(const void *buf, size_t len, struct procwatch_msg *out);
/* Applies one datagram received from the kernel on the connector socket: PROC_EVENT_EXEC drops
 * the exe of its thread group; every message's (cpu, seq) is checked to follow that CPU's
 * previous one, and the first message from a CPU, a gap or a message that cannot be parsed
 * forgets every exe (it may stand for a lost exec); parsing is procwatch_parse's. Returns
 * PROCWATCH_FED_* bits; *ack_err (may be NULL) gets the kernel's answer (0 or a positive errno)
 * with PROCWATCH_FED_ACK. */
int procwatch_tab_feed(procwatch_tab *t, const void *buf, size_t len, uint32_t cookie,
                       int *ack_err);
