/* routes: the route tables of the two sockets. Each table lives with its handlers (api_admin.c,
 * api_workload.c); main.c hands them to the transport (api_config.admin_routes and
 * .workload_routes), which never includes this header. */
#pragma once

struct api_req;
struct api_routes;

/* admin.sock's routes (api_admin.c). */
extern const struct api_routes api_admin_routes;
/* workload.sock's routes (api_workload.c). */
extern const struct api_routes api_workload_routes;
/* workload.sock's routes in the server process (api_workload.c): the same paths, each relayed
 * to the daemon process as one typed request (broker/http/relay.h). */
extern const struct api_routes api_workload_relay_routes;

/* GET /healthz (api_health.c): the admin socket's answer names what failed and why, the
 * workload socket's only what. Each answers the request. */
void api_health_admin(struct api_req *r);
void api_health_workload(struct api_req *r);
