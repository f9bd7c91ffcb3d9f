#include "broker/engine/metrics.h"
#include "common/secret.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int metrics_render(const struct metrics *m, const struct metrics_gauges *g, char **out)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
#define METRIC(name, type, help, fmt, ...)                                                         \
	fprintf(f, "# HELP " name " " help "\n# TYPE " name " " type "\n" fmt "\n", __VA_ARGS__)
	METRIC("secretd_requests_total", "counter", "HTTP requests answered.",
	       "secretd_requests_total{api=\"admin\"} %" PRIu64
	       "\nsecretd_requests_total{api=\"workload\"} %" PRIu64,
	       m->admin_requests, m->workload_requests);
	METRIC("secretd_request_errors_total", "counter", "HTTP answers with status >= 400.",
	       "secretd_request_errors_total{api=\"admin\"} %" PRIu64
	       "\nsecretd_request_errors_total{api=\"workload\"} %" PRIu64,
	       m->admin_errors, m->workload_errors);
	METRIC("secretd_workload_refused_total", "counter",
	       "Workload connections refused (identity or limits).",
	       "secretd_workload_refused_total %" PRIu64, m->workload_refused);
	METRIC("secretd_workload_cached_reads_total", "counter",
	       "Workload API reads served from the value a mount holds decrypted (no store read).",
	       "secretd_workload_cached_reads_total %" PRIu64, m->workload_cached_reads);
	METRIC("secretd_proc_connector", "gauge",
	       "1 when the proc connector caches FUSE openers' exes; 0: each open reads /proc "
	       "(slower).",
	       "secretd_proc_connector %" PRIu64, m->proc_connector);
	METRIC("secretd_keeper", "gauge",
	       "1 when a keeper process holds the FUSE connections and sockets across a crash "
	       "or upgrade of the daemon process; 0 with --no-keeper.",
	       "secretd_keeper %" PRIu64, m->keeper);
	METRIC("secretd_daemon_restarts_total", "counter",
	       "Daemon processes the keeper started before this one (crashes, upgrades).",
	       "secretd_daemon_restarts_total %" PRIu64, m->daemon_restarts);
	METRIC("secretd_privsep", "gauge",
	       "1 when workload.sock is served by the unprivileged server process (no key, no "
	       "store); 0 with --no-privsep.",
	       "secretd_privsep %" PRIu64, m->privsep);
	METRIC("secretd_server_restarts_total", "counter",
	       "Server processes the daemon process restarted (the server died).",
	       "secretd_server_restarts_total %" PRIu64, m->server_restarts);
	METRIC("secretd_server_refused_total", "counter",
	       "Requests or messages of the server process the daemon process refused (not "
	       "granted, unidentified, malformed).",
	       "secretd_server_refused_total %" PRIu64, m->server_refused);
	METRIC("secretd_server_bad_handles_total", "counter",
	       "Requests or closes of the server process naming a connection that is not open "
	       "(unknown handle, or its client has closed it); counted in "
	       "secretd_server_refused_total too.",
	       "secretd_server_bad_handles_total %" PRIu64, m->server_bad_handles);
	METRIC("secretd_server_seccomp_kills_total", "counter",
	       "Server processes killed by their seccomp filter (SIGSYS: a system call outside "
	       "the allow-list); each is also a restart.",
	       "secretd_server_seccomp_kills_total %" PRIu64, m->server_seccomp_kills);
	METRIC("secretd_connections", "gauge", "Connections open.",
	       "secretd_connections{api=\"admin\"} %" PRIu64
	       "\nsecretd_connections{api=\"workload\"} %" PRIu64,
	       m->conns_admin, m->conns_workload);
	METRIC("secretd_connections_dropped_total", "counter",
	       "Connections refused or closed by the broker, by reason.",
	       "secretd_connections_dropped_total{reason=\"identity_limit\"} %" PRIu64
	       "\nsecretd_connections_dropped_total{reason=\"full\"} %" PRIu64
	       "\nsecretd_connections_dropped_total{reason=\"evicted_idle\"} %" PRIu64
	       "\nsecretd_connections_dropped_total{reason=\"request_deadline\"} %" PRIu64
	       "\nsecretd_connections_dropped_total{reason=\"accept_error\"} %" PRIu64,
	       m->conns_refused_ident, m->conns_refused_full, m->conns_evicted, m->conns_timed_out,
	       m->accept_errors);
	METRIC("secretd_health_failures_total", "counter", "/healthz answers 503 (store or audit).",
	       "secretd_health_failures_total %" PRIu64, m->health_failures);
	METRIC("secretd_puts_total", "counter", "Secret versions written.",
	       "secretd_puts_total %" PRIu64, m->puts);
	METRIC("secretd_label_changes_total", "counter", "Label changes stored.",
	       "secretd_label_changes_total %" PRIu64, m->label_changes);
	METRIC("secretd_reads_total", "counter", "Secret values served over the APIs.",
	       "secretd_reads_total %" PRIu64, m->reads);
	char secrets[24] = "NaN"; /* unknown when the store could not be read */
	if (!g->secrets_err)
		snprintf(secrets, sizeof(secrets), "%" PRIu64, g->secrets);
	METRIC("secretd_secrets", "gauge", "Secrets stored.", "secretd_secrets %s", secrets);
	METRIC("secretd_containers", "gauge", "Containers known.", "secretd_containers %" PRIu64,
	       g->containers);
	METRIC("secretd_mounts", "gauge", "FUSE mounts served.", "secretd_mounts %" PRIu64,
	       g->mounted);
	METRIC("secretd_mount_files", "gauge", "Files shown in all mounts.",
	       "secretd_mount_files %" PRIu64, g->files);
	METRIC("secretd_fuse_opens_total", "counter", "Opens through FUSE mounts.",
	       "secretd_fuse_opens_total %" PRIu64, g->fuse_opens);
	METRIC("secretd_fuse_opens_denied_total", "counter", "Opens refused by the cgroup check.",
	       "secretd_fuse_opens_denied_total %" PRIu64, g->fuse_denied);
	METRIC("secretd_audit_records_written_total", "counter",
	       "Batched audit records (opens, workload reads) written.",
	       "secretd_audit_records_written_total %" PRIu64, g->audit_records);
	METRIC("secretd_audit_events_written_total", "counter",
	       "Events the written batched records stand for (coalesced ones counted).",
	       "secretd_audit_events_written_total %" PRIu64, g->audit_events);
	METRIC("secretd_audit_coalesced_total", "counter",
	       "Events folded into an identical buffered record (its count).",
	       "secretd_audit_coalesced_total %" PRIu64, g->audit_coalesced);
	METRIC("secretd_audit_refused_total", "counter",
	       "FUSE opens and workload reads refused because the audit could not be written.",
	       "secretd_audit_refused_total %" PRIu64, g->audit_refused);
	METRIC("secretd_audit_write_errors_total", "counter", "Failed audit batch writes.",
	       "secretd_audit_write_errors_total %" PRIu64, g->audit_write_errors);
	METRIC("secretd_audit_pruned_total", "counter", "Audit records pruned by retention.",
	       "secretd_audit_pruned_total %" PRIu64, g->audit_pruned);
	METRIC("secretd_audit_pending", "gauge", "Audit records buffered, not yet written.",
	       "secretd_audit_pending %" PRIu64, g->audit_pending);
	METRIC("secretd_audit_writable", "gauge",
	       "1 while audit records can be written; 0: opens and reads are refused.",
	       "secretd_audit_writable %" PRIu64, g->audit_writable);
	METRIC(
	    "secretd_view_failures_total", "counter",
	    "Container views that could not be applied (each attempt; the mount is failed closed).",
	    "secretd_view_failures_total %" PRIu64, g->view_failures);
	METRIC(
	    "secretd_unmount_failures_total", "counter",
	    "Unmounts in a live container's namespace that failed (the FUSE connection is closed "
	    "anyway: the stale mount serves nothing).",
	    "secretd_unmount_failures_total %" PRIu64, g->unmount_failures);
	METRIC("secretd_restore_failures_total", "counter",
	       "Containers of the persisted registry that could not be restored at start (or the "
	       "registry could not be read).",
	       "secretd_restore_failures_total %" PRIu64, g->restore_failures);
	METRIC(
	    "secretd_registry_write_failures_total", "counter",
	    "Persisted registry rows that could not be deleted or updated after a detach, an exit "
	    "or an ended mount (forgotten at the next start).",
	    "secretd_registry_write_failures_total %" PRIu64, g->registry_write_failures);
	METRIC("secretd_containers_failed_closed", "gauge",
	       "Mounted containers denied (EIO) until their view can be applied.",
	       "secretd_containers_failed_closed %" PRIu64, g->failed_closed);
	METRIC("secretd_refresh_failures_total", "counter",
	       "Changes stored whose container views could not be recomputed (failed closed, "
	       "retried).",
	       "secretd_refresh_failures_total %" PRIu64, m->refresh_failures);
	METRIC(
	    "secretd_audit_record_failures_total", "counter",
	    "Audit records of failed or undone changes (or of a detach) that could not be written.",
	    "secretd_audit_record_failures_total %" PRIu64, m->audit_record_failures);
	METRIC("secretd_store_read_errors_total", "counter",
	       "Reads of the store for /metrics that failed (secretd_secrets is then NaN).",
	       "secretd_store_read_errors_total %" PRIu64, m->store_read_errors);
	struct secret_stats ss;
	secret_get_stats(&ss);
	METRIC("secretd_plaintext_buffers", "gauge",
	       "Plaintext and key buffers alive (the secret type: values served, keys, bodies).",
	       "secretd_plaintext_buffers %" PRIu64, ss.live);
	METRIC("secretd_plaintext_regions", "gauge",
	       "Locked memory regions holding them: shared 32 KiB slabs and large values' own.",
	       "secretd_plaintext_regions{kind=\"slab\"} %" PRIu64
	       "\nsecretd_plaintext_regions{kind=\"own\"} %" PRIu64,
	       ss.slabs, ss.regions);
	METRIC("secretd_renders_total", "counter",
	       "Renderings of rendered files (templates) made: an input changed, or the first.",
	       "secretd_renders_total %" PRIu64, g->renders);
	METRIC("secretd_cluster", "gauge",
	       "1 in cluster mode (--etcd): secrets and grants are shared through etcd.",
	       "secretd_cluster %" PRIu64, g->cluster);
	METRIC("secretd_cluster_watching", "gauge",
	       "1 while this node's etcd watch stream is open.",
	       "secretd_cluster_watching %" PRIu64, g->cluster_watching);
	METRIC("secretd_cluster_revision", "gauge",
	       "The etcd revision this node has applied (kept in its store).",
	       "secretd_cluster_revision %" PRIu64, g->cluster_revision);
	METRIC("secretd_cluster_applied_total", "counter",
	       "Rows from etcd applied to this node's store (changes of other nodes).",
	       "secretd_cluster_applied_total %" PRIu64, g->cluster_applied);
	METRIC("secretd_cluster_rejected_total", "counter",
	       "Rows from etcd refused (integrity check, rollback, id collision): not applied.",
	       "secretd_cluster_rejected_total %" PRIu64, g->cluster_rejected);
	METRIC("secretd_cluster_write_failures_total", "counter",
	       "Writes refused because etcd could not be reached.",
	       "secretd_cluster_write_failures_total %" PRIu64, g->cluster_write_failures);
	METRIC("secretd_cluster_conflicts_total", "counter",
	       "Writes refused because another node changed the same key.",
	       "secretd_cluster_conflicts_total %" PRIu64, g->cluster_conflicts);
	METRIC("secretd_cluster_writes_pending", "gauge",
	       "Admin writes waiting for etcd (one at a time) or for their turn (at most 64).",
	       "secretd_cluster_writes_pending %" PRIu64, g->cluster_writes_pending);
	METRIC("secretd_cluster_watch_errors_total", "counter",
	       "etcd watch streams that broke (reconnected with backoff).",
	       "secretd_cluster_watch_errors_total %" PRIu64, g->cluster_watch_errors);
	METRIC("secretd_cluster_watch_stalls_total", "counter",
	       "etcd watch streams open but silent behind etcd (the progress check): reopened.",
	       "secretd_cluster_watch_stalls_total %" PRIu64, g->cluster_watch_stalls);
#undef METRIC
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	return 0;
}
