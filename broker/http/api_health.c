/* GET /healthz, on both sockets: a real store access (store_health) and the audit writer's state
 * (buffered records are flushed now), probed at most every API_HEALTH_CACHE_MS (workload callers
 * are anyone). 200 {"status":"ok"} or 503 {"error": ...}; the admin socket's answer names the
 * failing part's error, the workload socket's does not. With the privilege split, the admin
 * socket also answers 503 while no server process serves workload.sock (one that dies while
 * serving is restarted at once, so this is one that cannot start: a crash loop in back-off). */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "broker/http/api_internal.h"
#include "broker/http/routes.h"

#define API_HEALTH_CACHE_MS 500 /* a /healthz probe answers the requests of this period */

static uint64_t health_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void api_health(struct api_req *r, bool detail)
{
	api *a = r->a;
	uint64_t now = health_now_ms();
	if (!a->health_ms || now - a->health_ms >= API_HEALTH_CACHE_MS) {
		a->health_what = "store";
		a->health_rc = store_health(a->store);
		if (a->health_rc == 0 && a->cfg.reads_audit && audit_pending(a->cfg.reads_audit)) {
			a->health_what = "audit";
			a->health_rc = audit_flush(a->cfg.reads_audit);
		}
		a->health_ms = now;
	}
	const char *what = a->health_what;
	int rc = a->health_rc;
	if (rc == 0 && detail && a->met->privsep && a->met->server_pid == 0) {
		r->a->met->health_failures++;
		api_reply_error(r, 503,
		                "workload server unavailable: not running, restarted %llu time(s) "
		                "(its log lines say why)",
		                (unsigned long long)a->met->server_restarts);
		return;
	}
	if (rc == 0) {
		/* The admin socket names the daemon process (secretctl daemon upgrade waits for a
		 * new one); the workload socket tells containers nothing about the host. */
		json_t *j =
		    detail ? json_pack("{s:s, s:I}", "status", "ok", "pid", (json_int_t)getpid())
		           : json_pack("{s:s}", "status", "ok");
		/* ... and the server process that serves workload.sock (privsep): whether it
		 * runs now (it is restarted at once when it dies) and its pid */
		if (detail && j && a->met->privsep)
			json_object_set_new(j, "server",
			                    json_pack("{s:b, s:I}", "running",
			                              a->met->server_pid != 0, "pid",
			                              (json_int_t)a->met->server_pid));
		api_reply_json(r, 200, j);
		return;
	}
	r->a->met->health_failures++;
	if (detail)
		api_reply_error(r, 503, "%s unavailable: %s", what, strerror(-rc));
	else
		api_reply_error(r, 503, "%s unavailable", what);
}

void api_health_admin(struct api_req *r)
{
	api_health(r, true);
}

void api_health_workload(struct api_req *r)
{
	api_health(r, false);
}
