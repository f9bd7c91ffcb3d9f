#include "broker/metrics.h"

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
	       "Workload connections refused (identity or limits).", "secretd_workload_refused_total %" PRIu64,
	       m->workload_refused);
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
	METRIC("secretd_puts_total", "counter", "Secret versions written.", "secretd_puts_total %" PRIu64,
	       m->puts);
	METRIC("secretd_reads_total", "counter", "Secret values served over the APIs.",
	       "secretd_reads_total %" PRIu64, m->reads);
	METRIC("secretd_secrets", "gauge", "Secrets stored.", "secretd_secrets %" PRIu64, g->secrets);
	METRIC("secretd_containers", "gauge", "Containers known.", "secretd_containers %" PRIu64,
	       g->containers);
	METRIC("secretd_mounts", "gauge", "FUSE mounts served.", "secretd_mounts %" PRIu64, g->mounted);
	METRIC("secretd_mount_files", "gauge", "Files shown in all mounts.",
	       "secretd_mount_files %" PRIu64, g->files);
	METRIC("secretd_fuse_opens_total", "counter", "Opens through FUSE mounts.",
	       "secretd_fuse_opens_total %" PRIu64, g->fuse_opens);
	METRIC("secretd_fuse_opens_denied_total", "counter", "Opens refused by the cgroup check.",
	       "secretd_fuse_opens_denied_total %" PRIu64, g->fuse_denied);
#undef METRIC
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	return 0;
}
