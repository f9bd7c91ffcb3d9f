/* api_internal: the transport's side of the route files. api.c (the transport: accept, identify,
 * limits, MHD, replies) reads a route table per socket and knows no route itself; the route
 * files (api_admin.c, api_workload.c, api_health.c) include this header and declare their
 * tables in broker/http/routes.h, which api.c never includes. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "broker/http/api.h"
#include "broker/os/ident.h"

struct api_server;

#define API_KEY_MAX 160 /* bytes of a connection's fairness identity ("container:ID", "uid:N") */

/* Per connection: accepted by api.c (never by MHD), handed to MHD with MHD_add_connection. */
struct api_conn {
	struct api_server *srv;
	struct api_conn *prev, *next; /* the server's connections, oldest first */
	int fd;                       /* MHD owns and closes it */
	bool ident_ok;
	int ident_rc;     /* why identification failed (-errno) */
	struct ident who; /* workload socket: the connecting process */
	uid_t uid;
	char key[API_KEY_MAX]; /* who the connection counts against: container id, else uid */
	uint64_t handle;       /* the server process: the daemon's name for it (0: none) */
	bool busy;             /* a request is in progress (request line seen, not completed) */
	bool answered;         /* the current request has its answer queued */
	bool evicted;          /* shut down by the broker (limits, deadline); MHD closes it next */
	unsigned refuse;       /* 429/503: over a limit; its request gets this answer, then close */
	uint64_t cycle_ms;     /* monotonic ms when it began waiting for its current request */
	bool served_one;       /* a request of it has completed (api_pending) */
	struct api_req *waiting; /* its request suspended by api_suspend, or NULL */
};

/* A request answered in the daemon process for the server process (broker/http/relay.c): the
 * reply functions fill this instead of queueing an HTTP answer. */
struct api_capture {
	unsigned status;
	const char *ctype; /* a static string */
	uint8_t *body;     /* crypt_alloc'd (may hold a secret), or NULL when empty */
	size_t len;
	bool has_version; /* an X-Secret-Version header (a value's answer) */
	uint64_t version;
};

/* Per request. */
struct api_req {
	api *a;
	struct api_server *srv;
	struct MHD_Connection *conn;
	struct api_conn *pc;
	const char *method;
	const char *url;
	uint8_t *body; /* crypt_alloc'd: may hold a secret */
	size_t len, cap, limit;
	bool started;            /* the handler saw the headers */
	bool bad_uri;            /* the raw request URI holds an encoded NUL (%00) */
	const char *raw_uri_end; /* where the raw URI's string ended (compared, never read) */
	bool refused;            /* answered 429/503 for load: Retry-After, Connection: close */
	bool too_large;
	bool answered;
	const struct api_route *route; /* the matched route, or NULL (404) */
	const char *tail;              /* a prefix route's rest of the URL (in url) */
	bool then_upgrade;             /* call cfg.upgrade once the answer is sent */
	struct api_capture *capture;   /* relay.c: capture the answer (conn, srv are NULL) */
	bool alive_checked;            /* relay.c: the connector was just found alive (the gate
	                                  need not check again) */
	bool suspended;                /* api_suspend: no answer yet; its route runs again */
	bool wake_pending;             /* woken before it was suspended: run again at once */
};

struct api {
	loop *loop;
	store *store;
	mounts *mounts;
	struct metrics *met;
	struct api_config cfg;
	struct api_server *admin, *workload;
	/* The last /healthz probe, reused for API_HEALTH_CACHE_MS (any local user can ask). */
	uint64_t health_ms;
	int health_rc;
	const char *health_what;
};

/* Adds the JSON shape convention's companions to every integer time key (created, updated,
 * expires, next, time, last_seen: KEY_unix, the same seconds, and KEY_rfc3339, the RFC 3339 UTC
 * string or null for 0) and duration key (every: KEY_seconds, KEY_duration "1h30m") in j and
 * below (depth: 0 at the top). KEY keeps its type. 0 or -ENOMEM. */
int api_json_times(json_t *j, int depth);
/* Replies with a JSON body (steals the reference), its times given their companions
 * (api_json_times): docs/cli.md, "JSON shape". */
void api_reply_json(struct api_req *r, unsigned status, json_t *body);
/* Replies {"error": "..."} (printf-style; never put a secret value in it). */
void api_reply_error(struct api_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replies with raw secret bytes (takes ownership of crypt_alloc'd val; wiped when sent). */
void api_reply_secret(struct api_req *r, uint8_t *val, size_t len, uint64_t version);
/* The server process: replies with what the daemon process answered (body crypt_alloc'd or NULL,
 * owned from here; ctype copied; an X-Secret-Version header when has_version). */
void api_reply_relayed(struct api_req *r, unsigned status, const char *ctype, uint8_t *body,
                       size_t len, bool has_version, uint64_t version);
/* The admin socket, cluster mode: r waits for a write (its service call returned -EINPROGRESS
 * with r as service_actor.token). The route returns without answering; when the service wakes
 * r, its route is called again with the same request and the handler calls the service again.
 * A connection closed meanwhile (or the daemon stopping) forgets the write (the service ends it
 * cleanly). */
void api_suspend(struct api_req *r);
/* Replies with text (copied). */
void api_reply_text(struct api_req *r, unsigned status, const char *ctype, const char *text);
/* Maps a store/mounts errno to an HTTP status and replies with msg: what failed. */
void api_reply_errno(struct api_req *r, int err, const char *what);
/* The value of query argument key, or NULL (a decode_arg_fn for broker/http/decode.h's query
 * decoders: req is the struct api_req). */
const char *api_query_arg(void *req, const char *key);

/* ---- route tables ---- */

/* Which socket a table serves: admin.sock (root or the daemon's own uid) or workload.sock
 * (anyone, identified by the kernel). */
enum api_socket { API_SOCKET_ADMIN, API_SOCKET_WORKLOAD };

/* How large a route's request body may be: SECRETD_JSON_BODY_MAX, or the configured largest
 * secret value (api_config.max_value). Known once the request's headers are in. */
enum api_body { API_BODY_JSON, API_BODY_VALUE };

/* One route: METHOD PATH exactly (handle), or METHOD PREFIX followed by a non-empty tail
 * (handle_tail gets it, e.g. the NAME of /v1/secrets/NAME). Exactly one handler is set. Every
 * handler answers the request exactly once. */
struct api_route {
	const char *method;
	const char *path;
	enum api_body body;
	void (*handle)(struct api_req *r);
	void (*handle_tail)(struct api_req *r, const char *tail);
};

#define API_ROUTE(m, p, fn)                                                                        \
	{                                                                                          \
		.method = (m), .path = (p), .handle = (fn)                                         \
	}
#define API_PREFIX(m, p, fn)                                                                       \
	{                                                                                          \
		.method = (m), .path = (p), .handle_tail = (fn)                                    \
	}
#define API_PREFIX_VALUE(m, p, fn)                                                                 \
	{                                                                                          \
		.method = (m), .path = (p), .body = API_BODY_VALUE, .handle_tail = (fn)            \
	}

/* A socket's routes, matched in order (the first match wins). A request matching none is
 * answered 404 {"error":"no route for METHOD URL"} with a JSON-sized body limit. */
struct api_routes {
	enum api_socket socket;
	/* Asked before any route (may be NULL): false after it answered the request itself. */
	bool (*gate)(struct api_req *r);
	const struct api_route *v;
	size_t n;
};

/* ---- the workload socket split across processes (broker/http/relay.c) ---- */

/* The daemon process: runs workload operation op (privsep/msg.h: PRIVSEP_WHOAMI..HEALTH) for r,
 * whose r->pc->who was identified from the connection the server passed, exactly as the route
 * would (the gate first); arg is the name (READ, TEMPLATE_READ) or the mount path (MOUNT,
 * "" for the default), NUL-terminated. Answers r (captured) exactly once. */
void api_workload_op(struct api_req *r, unsigned op, const char *arg);
/* The server process: relays r as operation op with arg[0..len) (and r's connection) to the
 * daemon process and replies with its answer. Defined by relay_server.c. */
void relay_forward(struct api_req *r, unsigned op, const char *arg, size_t len);
