/* api: the broker's two HTTP+JSON servers on unix sockets, both driven by the daemon's event loop:
 * admin.sock (0600, operators and the OCI hook) and workload.sock (0666, containers; the peer is
 * identified by the kernel, never by a token). Functions return 0 or a negative errno. */
#pragma once
#include <stddef.h>

#include "broker/engine/audit.h"
#include "broker/os/loop.h"
#include "broker/engine/metrics.h"
#include "broker/engine/mounts.h"
#include "broker/os/procwatch.h"
#include "broker/engine/service.h"
#include "broker/store/store.h"

struct api_config {
	const char *runtime_dir; /* sockets are created here */
	/* What each socket serves (broker/http/routes.h: api_admin_routes, api_workload_routes);
	 * required, each for its own socket. Not owned. */
	const struct api_routes *admin_routes, *workload_routes;
	size_t max_value;             /* largest secret value accepted */
	unsigned max_conns;           /* per socket, 0 = API_MAX_CONNS_DEFAULT; when full, the
	                                 oldest idle connection of the identity holding most is
	                                 closed for a new one (else the new one gets 503) */
	unsigned max_conns_per_ident; /* workload socket, per container (else per uid), 0 =
	                                 API_MAX_CONNS_PER_IDENT_DEFAULT; more get 429 at once */
	unsigned idle_timeout_s;      /* 0 = API_IDLE_TIMEOUT_DEFAULT (no byte for this long) */
	unsigned request_timeout_s;   /* 0 = API_REQUEST_TIMEOUT_DEFAULT: a request (from the
	                                 end of the previous one) must be complete within this */
	audit *reads_audit;           /* batches the audit records of workload reads (NULL: each
	                                 is written in its own durable transaction) */
	const char *audit_anchor;     /* audit anchor file checked by audit verify, or NULL */
	/* Remembers workload callers' exes for their audit records (NULL: read from /proc on every
	 * call). Runs on the same loop; not owned, must outlive the api. */
	procwatch *procwatch;
	service *service; /* the admin routes' use cases (required for admin.sock) */
	/* Listening sockets handed over by the keeper (broker/keeper): {admin, workload}, each a
	 * bound, listening, non-blocking AF_UNIX socket at the socket's path, or -1 to bind anew.
	 * NULL: bind both. api takes ownership of the fds it is given. */
	const int *inherit_fds;
	/* POST /v1/daemon/upgrade: asks the keeper to upgrade in place, called once the 202 answer
	 * has been sent (the keeper then asks this process to hand off). NULL without a keeper: the
	 * route answers 409. Returns 0 or -errno (-EBUSY: one is under way); reports itself. */
	int (*upgrade)(void *ud);
	void *upgrade_ud;
	/* Privilege separation (broker/http/relay.h). The daemon process: workload_relayed binds
	 * (or inherits) workload.sock but does not serve it: the server process does, on a
	 * duplicate (api_listen_fd). The server process: workload_only serves workload.sock alone
	 * (admin_routes NULL; store, mounts NULL) and conn_key says whom a new connection counts
	 * against (0 with key filled and *handle the daemon's name for it, or -errno:
	 * unidentified) and conn_close that a connection with a handle is closed. */
	bool workload_relayed, workload_only;
	int (*conn_key)(void *ud, int fd, char *key, size_t len, uint64_t *handle);
	void (*conn_close)(void *ud, uint64_t handle);
	void *conn_key_ud;
};

#define API_MAX_CONNS_DEFAULT 256
#define API_MAX_CONNS_CEILING 4096
/* Connections of one socket open at once, at most: max_conns served, as many refused (answered
 * then closed) and as many evicted (closing), and one being added (MHD's connection limit; the
 * privsep daemon's table of the server's connections: broker/http/relay.c). */
#define API_CONNS_OPEN_MAX(max_conns) (4 * (max_conns) + 1)
#define API_MAX_CONNS_PER_IDENT_DEFAULT 32
#define API_IDLE_TIMEOUT_DEFAULT 30
#define API_REQUEST_TIMEOUT_DEFAULT 30
#define API_TIMEOUT_CEILING 3600
/* MHD's memory per connection (request line, headers, MHD's bookkeeping; bodies go to our own
 * buffers). At most 32 KiB MHD takes it with malloc: above, an mmap and munmap per connection
 * (the munmap of a 64 KiB pool was most of what the daemon still did after a put's reply, when
 * the first read after a rotation wants the CPU). The workload API's requests are a GET or a
 * small POST: 16 KiB; the admin API's heads (a name, a query) fit 32 KiB. A request whose head
 * does not fit gets 431. */
#define API_CONN_MEMORY_WORKLOAD (16 * 1024)
#define API_CONN_MEMORY_ADMIN (32 * 1024)

typedef struct api api;
struct api_routes;

/* Binds both sockets (a stale socket file is replaced; anything else at the path is refused with
 * -EEXIST) and registers them with the loop. -EINVAL when a route table is missing or made for
 * the other socket. */
int api_start(api **out, loop *l, store *s, mounts *m, struct metrics *met,
              const struct api_config *cfg);
/* Stops serving, closes and unlinks the sockets. NULL is a no-op. */
void api_stop(api *a);
/* Stops serving and closes the sockets but leaves their files: a hand-over to a successor that
 * holds the same listening sockets (the keeper's upgrade). NULL is a no-op. */
void api_release(api *a);
/* For a hand-over: stops accepting on both sockets (their listening fds stay open; connections
 * not accepted yet wait in the backlog for the successor). Accepted connections are served on. */
void api_quiesce(api *a);
/* Connections a hand-over should wait for: a request in progress, or accepted and not through a
 * first request yet. Idle keep-alive connections are not counted (their clients reconnect). */
unsigned api_pending(const api *a);
/* The listening socket of the admin (workload false) or workload socket (owned by api). */
int api_listen_fd(const api *a, bool workload);
