/* metrics: the daemon's counters, rendered in the Prometheus text format. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct metrics {
	uint64_t admin_requests, admin_errors; /* errors: answers with status >= 400 */
	uint64_t workload_requests, workload_errors;
	uint64_t workload_refused;      /* identity refused (pid gone, limits) */
	uint64_t workload_cached_reads; /* workload reads served from a mount's decrypted value */
	uint64_t puts, reads;           /* secret versions written, values served */
	uint64_t label_changes;         /* label changes stored (secretctl label) */
	uint64_t proc_connector; /* 1: the proc connector feeds procwatch; 0: exes read per open */
	/* Connections (both sockets): refused at accept over the per-identity limit (429) or
	 * with the socket full and nothing idle to close (503); idle ones closed to make room;
	 * ones closed past the request deadline; accept/hand-over failures. */
	uint64_t conns_refused_ident, conns_refused_full, conns_evicted, conns_timed_out;
	uint64_t accept_errors;
	uint64_t conns_admin, conns_workload; /* gauges: connections open (not closing) */
	uint64_t health_failures;             /* /healthz answered 503 */
	/* service: changes stored whose views could not be recomputed (failed closed, retried);
	 * audit records of failed or undone changes that could not be written */
	uint64_t refresh_failures, audit_record_failures;
	uint64_t store_read_errors; /* /metrics could not count the secrets (secretd_secrets NaN) */
	/* the keeper (broker/keeper): daemon processes it started before this one (crashes and
	 * upgrades; counted since the keeper's last exec), and 1 when there is a keeper */
	uint64_t daemon_restarts, keeper;
	/* privilege separation (broker/http/relay.h): 1 when workload.sock is served by the
	 * unprivileged server process; its pid (0: not running); its restarts; the requests or
	 * messages of it the daemon refused (not granted, unidentified, malformed: counted); its
	 * deaths by SIGSYS (its seccomp filter killed it) */
	uint64_t privsep, server_pid, server_restarts, server_refused, server_seccomp_kills;
	uint64_t server_bad_handles; /* requests naming a connection not open (privsep) */
};

/* Gauges that other modules own, sampled at render time. */
struct metrics_gauges {
	uint64_t secrets, containers, mounted, files, fuse_opens, fuse_denied;
	/* the audit batcher (broker/audit.h audit_stats) */
	uint64_t audit_records, audit_events, audit_coalesced, audit_refused, audit_write_errors,
	    audit_pruned, audit_pending, audit_writable;
	uint64_t view_failures;    /* container views that could not be applied (counter) */
	uint64_t unmount_failures; /* unmounts in a live container that failed (counter) */
	uint64_t failed_closed;    /* mounted containers denied until a retry applies their view */
	int secrets_err;           /* 0, or why secrets could not be counted (rendered as NaN) */
	uint64_t renders;          /* rendered files rendered (an input changed) (counter) */
	uint64_t restore_failures; /* containers not restored at start (counter) */
	uint64_t registry_write_failures; /* registry rows not deleted/updated (counter) */
	/* cluster mode (broker/cluster cluster_stats); all 0 on a single node */
	uint64_t cluster, cluster_watching, cluster_revision, cluster_applied, cluster_rejected,
	    cluster_write_failures, cluster_conflicts, cluster_watch_errors, cluster_watch_stalls;
	uint64_t cluster_writes_pending; /* admin writes waiting for etcd or their turn */
};

/* Renders into a malloc'd NUL-terminated string (*out, caller frees). 0 or -ENOMEM. */
int metrics_render(const struct metrics *m, const struct metrics_gauges *g, char **out);
