/* privsep/msg: the messages between the daemon process (root: key, store, policy) and the
 * unprivileged server process that serves workload.sock's HTTP for it (docs/DESIGN.md, "The
 * server process"). Pure: no I/O.
 *
 * One message is one SOCK_SEQPACKET datagram: a fixed 28-byte header, arg_len bytes of arg, then
 * body_len bytes of body; a CONNKEY carries a freshly accepted client connection's socket beside
 * it (SCM_RIGHTS), and only the fd count is checked here. All integers are little-endian.
 *
 *   0  u32 magic PRIVSEP_MAGIC    8  u32 id (request id)    16 u64 handle / version
 *   4  u16 version                12 u16 status              24 u32 body_len
 *   6  u16 type                   14 u16 arg_len
 *
 * The u64 at 16 is a connection's handle in a request and a CLOSE (struct privsep_msg.handle),
 * and in a REPLY the value's version or, answering a CONNKEY, the handle it names (.version).
 * Version 2: the client's connection travels once (CONNKEY) and is named by its handle after;
 * version 1 sent it beside every request.
 *
 * The daemon treats the server as untrusted: privsep_msg_decode accepts exactly the shapes listed
 * in privsep_type's comments and nothing else. Functions return 0 or a negative errno. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRIVSEP_MAGIC 0x31504453u /* "SDP1" */
#define PRIVSEP_VERSION 2
#define PRIVSEP_HEADER 28
#define PRIVSEP_NAME_MAX 255  /* a READ / TEMPLATE_READ name (SECRETD_NAME_MAX) */
#define PRIVSEP_PATH_MAX 4096 /* a MOUNT path (the daemon checks it again: registry) */
#define PRIVSEP_CTYPE_MAX 64  /* a REPLY's content type */
#define PRIVSEP_KEY_MAX 160   /* a CONNKEY reply's body (API_KEY_MAX) */
#define PRIVSEP_STATS_N 9     /* counters in a STATS body (enum privsep_stat) */
/* A REPLY's body: a secret value (--max-value, at most SECRETD_VALUE_MAX_CEILING) or a JSON
 * answer; the daemon's own limit is the configured largest value plus PRIVSEP_JSON_SLACK. */
#define PRIVSEP_BODY_MAX (64 * 1024 * 1024 + 64 * 1024)
#define PRIVSEP_JSON_SLACK (64 * 1024)
#define PRIVSEP_FDS_MAX 1
/* The largest message for a largest REPLY body of body_max bytes. */
#define PRIVSEP_MSG_MAX(body_max) (PRIVSEP_HEADER + PRIVSEP_PATH_MAX + (size_t)(body_max))

enum privsep_type {
	/* server -> daemon: one request, answered by one REPLY; no fd, handle (not 0) = the
	 * connection's, as CONNKEY's answer named it; body empty, status 0 */
	PRIVSEP_WHOAMI = 1,        /* GET /v1/self; no arg */
	PRIVSEP_LIST = 2,          /* GET /v1/self/secrets; no arg */
	PRIVSEP_READ = 3,          /* GET /v1/self/secrets/NAME; arg = NAME, 0..NAME_MAX bytes
	                            * (empty: the URL's name was over the limit: refused as invalid) */
	PRIVSEP_TEMPLATES = 4,     /* GET /v1/self/templates; no arg */
	PRIVSEP_TEMPLATE_READ = 5, /* GET /v1/self/templates/NAME; arg as READ */
	PRIVSEP_MOUNT = 6,         /* POST /v1/self/mount; arg = the decoded path, 0..PATH_MAX bytes
	                            * (empty: the default) */
	PRIVSEP_HEALTH = 7,        /* GET /healthz; no arg */
	PRIVSEP_CONNKEY = 8,       /* a new connection, exactly one fd beside it (the accepted
	                            * socket), handle 0: the daemon identifies it and keeps it; the
	                            * REPLY's body is the fairness key and its version field the
	                            * connection's handle (status 200), or 403: unidentified, 503:
	                            * the daemon's table of connections is full (no handle) */
	/* server -> daemon, no fd */
	PRIVSEP_STATS = 9,  /* id 0, no arg, body = PRIVSEP_STATS_N u64 (the server's transport
	                     * counters since it started) */
	PRIVSEP_CLOSE = 10, /* id 0, no arg, no body, handle (not 0): the server closed that
	                     * connection; the daemon forgets it (no answer) */
	/* daemon -> server, no fd */
	PRIVSEP_REPLY = 32, /* id of the request, status 100..599, arg = content type (1..CTYPE_MAX
	                     * bytes, printable ASCII), version (0: no X-Secret-Version header),
	                     * body */
};

/* The STATS body's counters, in order (struct metrics' fields of the same names). */
enum privsep_stat {
	PRIVSEP_ST_REQUESTS,
	PRIVSEP_ST_ERRORS,
	PRIVSEP_ST_REFUSED,
	PRIVSEP_ST_REFUSED_IDENT,
	PRIVSEP_ST_REFUSED_FULL,
	PRIVSEP_ST_EVICTED,
	PRIVSEP_ST_TIMED_OUT,
	PRIVSEP_ST_ACCEPT_ERRORS,
	PRIVSEP_ST_CONNS, /* a gauge: open connections */
};

struct privsep_msg {
	uint16_t type;
	uint32_t id;
	uint16_t status;
	uint64_t version; /* a REPLY's (0 for every other type) */
	uint64_t handle;  /* a request's but CONNKEY's, and a CLOSE's (0 for every other type) */
	const char *arg;  /* not NUL-terminated; decode: points into the buffer */
	size_t arg_len;
	const uint8_t *body; /* decode: points into the buffer; encode: the caller's */
	size_t body_len;
	unsigned nfds;
};

/* Checks that buf[0..len) is one message of a known type and shape with nfds fds beside it, and
 * fills *out (arg and body point into buf). body_max bounds a REPLY's body (at most
 * PRIVSEP_BODY_MAX). -EPROTO: bad magic or version, unknown type, a length that does not add up,
 * an arg or body a type does not carry or over its limit, a NUL or control byte in an arg,
 * fields a type does not carry not zero, a handle 0 where one is carried, or a wrong fd count. *out
 * is unspecified then. */
int privsep_msg_decode(const uint8_t *buf, size_t len, unsigned nfds, size_t body_max,
                       struct privsep_msg *out);
/* The header plus arg of m into buf (cap bytes): the body follows separately (the sender passes
 * it as a second iovec, so a value is never copied); *len is the header's and arg's size.
 * -EINVAL: a field out of its limits (the same rules as decode, body_max PRIVSEP_BODY_MAX);
 * -ENOSPC: cap too small. Header + arg + body always decode back to m. */
int privsep_msg_encode_head(const struct privsep_msg *m, uint8_t *buf, size_t cap, size_t *len);
/* True when type is a request (answered by a REPLY: WHOAMI..CONNKEY). */
bool privsep_is_request(uint16_t type);
/* True when type carries an fd (CONNKEY only). */
bool privsep_has_fd(uint16_t type);
/* A type's name for log lines ("READ", ..., "?"). Static string. */
const char *privsep_type_name(uint16_t type);
