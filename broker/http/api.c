/* api: the transport of both sockets. It accepts every connection itself, identifies it, applies
 * the connection, time and body limits, drives libmicrohttpd, and hands each request to the
 * route its socket's table names (struct api_routes, given by the caller): it knows no route. */
#include "broker/http/api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "broker/http/api_internal.h"
#include "broker/cluster/cluster.h"
#include "broker/crypto/crypt.h"
#include "broker/os/log.h"
#include "common/limits.h"
#include "common/timespec.h"

#define API_BODY_INITIAL 4096
#define API_ACCEPT_BATCH 64    /* accepts per loop iteration and socket */
#define API_DRAIN_MAX 16384    /* bytes read (and dropped) from a refused connection */
#define API_LOG_EVERY_MS 10000 /* one log line per kind of refusal per this period */
#define API_REFUSE_MS 2000     /* a refused connection's request must arrive within this */

/* Connection refusals and evictions, for /metrics and the rate-limited log. */
enum api_drop {
	API_DROP_IDENT,
	API_DROP_FULL,
	API_DROP_EVICT,
	API_DROP_DEADLINE,
	API_DROP_ACCEPT,
	API_DROP_KINDS
};

struct api_server {
	api *a;
	const struct api_routes *routes;
	bool workload;
	char path[108];
	int fd;         /* the listening socket: ours, always watched (MHD never sees it) */
	bool keep_file; /* api_release: close without unlinking the socket file */
	int reserve;    /* a spare fd, given up to accept-and-refuse when the fd table is full */
	int epfd;
	struct MHD_Daemon *d;
	struct api_conn *head, *tail; /* connections, oldest first */
	unsigned live;                /* connections served (not refused, not evicted) */
	unsigned refusing;            /* refused, waiting for their request to answer it */
	unsigned evicted;             /* evicted, not yet closed by MHD */
	struct api_conn *adding;      /* being handed to MHD_add_connection */
	bool resumed;                 /* a connection was resumed: MHD runs at the next prepare */
	uint64_t logged_ms[API_DROP_KINDS];
	uint64_t unlogged[API_DROP_KINDS];
};

static void api_conn_kill(struct api_conn *pc);
static void api_gauge(struct api_server *s);
static uint64_t api_now_ms(void);

/* ---- replies ---- */

static void api_count(struct api_req *r, unsigned status)
{
	struct metrics *m = r->a->met;
	if (r->srv->workload) {
		m->workload_requests++;
		if (status >= 400)
			m->workload_errors++;
	} else {
		m->admin_requests++;
		if (status >= 400)
			m->admin_errors++;
	}
}

static void api_queue(struct api_req *r, unsigned status, struct MHD_Response *resp,
                      const char *ctype)
{
	if (!resp || r->answered) {
		if (resp)
			MHD_destroy_response(resp);
		return;
	}
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (r->refused) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	}
	if (MHD_queue_response(r->conn, status, resp) != MHD_YES) {
		/* Nothing else can be sent on this connection: close it rather than let it hang. */
		MHD_destroy_response(resp);
		api_conn_kill(r->pc);
		r->answered = true;
		return;
	}
	MHD_destroy_response(resp);
	r->answered = true;
	if (r->pc)
		r->pc->answered = true;
	api_count(r, status);
}

void api_suspend(struct api_req *r)
{
	if (r->answered || r->suspended || !r->conn)
		return;
	if (r->wake_pending) /* woken already: api_handler runs the route again now */
		return;
	r->suspended = true;
	if (r->pc)
		r->pc->waiting = r;
	MHD_suspend_connection(r->conn);
}

/* service_set_waker's: the request token waits no more (loop thread). */
static void api_write_wake(void *ud, const void *token)
{
	struct api_req *r = (struct api_req *)token;
	if (!r->suspended) {
		r->wake_pending = true;
		return;
	}
	r->suspended = false;
	if (r->pc) {
		r->pc->waiting = NULL;
		r->pc->cycle_ms = api_now_ms(); /* its deadline counts from here */
	}
	MHD_resume_connection(r->conn);
	r->srv->resumed = true; /* MHD takes it up when it runs next (api_prepare) */
}

/* A request answered for the server process: keeps the answer (body copied into locked memory
 * unless owned is set: then body is a crypt_alloc'd buffer taken over). */
static void api_capture_put(struct api_req *r, unsigned status, const char *ctype, const void *body,
                            size_t len, bool owned)
{
	struct api_capture *c = r->capture;
	if (r->answered) {
		if (owned)
			crypt_free((void *)body);
		return;
	}
	uint8_t *b = owned ? (uint8_t *)body : NULL;
	if (!owned && len) {
		b = crypt_alloc(len);
		if (!b) {
			status = 500;
			ctype = "application/json";
			body = "{\"error\":\"out of memory\"}\n";
			len = strlen(body);
			b = crypt_alloc(len);
			if (!b)
				len = 0;
		}
		if (b)
			memcpy(b, body, len);
	}
	c->status = status;
	c->ctype = ctype ? ctype : "text/plain";
	c->body = b;
	c->len = len;
	r->answered = true;
}

void api_reply_text(struct api_req *r, unsigned status, const char *ctype, const char *text)
{
	if (r->capture) {
		api_capture_put(r, status, ctype, text, strlen(text), false);
		return;
	}
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	api_queue(r, status, resp, ctype);
}

/* The keys of every /v1 answer that hold a time (unix seconds) or a duration (seconds). */
static const char *const api_time_keys[] = {"created", "updated", "expires",
                                            "next",    "time",    "last_seen"};
static const char *const api_duration_keys[] = {"every"};
#define API_JSON_DEPTH_MAX 8 /* nesting walked for companions (our answers nest 3 deep) */

static bool api_key_in(const char *key, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, set[i]) == 0)
			return true;
	return false;
}

/* Adds the JSON shape convention's companions to one object's integer time and duration keys
 * (KEY_unix and KEY_rfc3339; KEY_seconds and KEY_duration), then walks its values. KEY itself is
 * left as it is: its type is the API's. 0, or -ENOMEM. */
int api_json_times(json_t *j, int depth)
{
	if (depth > API_JSON_DEPTH_MAX)
		return 0;
	size_t i;
	json_t *v;
	if (json_is_array(j)) {
		json_array_foreach(j, i, v) if (api_json_times(v, depth + 1) < 0) return -ENOMEM;
		return 0;
	}
	if (!json_is_object(j))
		return 0;
	/* companions first (set after the walk over the keys: an object must not change while
	 * it is iterated), then the values */
	char found[16][16]; /* copies: the object grows below */
	size_t nf = 0;
	const char *key;
	json_object_foreach(j, key, v)
	{
		if (json_is_integer(v) && nf < sizeof(found) / sizeof(found[0]) &&
		    strlen(key) < sizeof(found[0]) &&
		    (api_key_in(key, api_time_keys,
		                sizeof(api_time_keys) / sizeof(api_time_keys[0])) ||
		     api_key_in(key, api_duration_keys,
		                sizeof(api_duration_keys) / sizeof(api_duration_keys[0]))))
			snprintf(found[nf++], sizeof(found[0]), "%s", key);
		else if (api_json_times(v, depth + 1) < 0)
			return -ENOMEM;
	}
	for (size_t k = 0; k < nf; k++) {
		bool dur = api_key_in(found[k], api_duration_keys,
		                      sizeof(api_duration_keys) / sizeof(api_duration_keys[0]));
		json_int_t t = json_integer_value(json_object_get(j, found[k]));
		char name[64], text[TIMESPEC_DURATION_FORMAT_LEN > TIMESPEC_FORMAT_LEN
		                        ? TIMESPEC_DURATION_FORMAT_LEN
		                        : TIMESPEC_FORMAT_LEN];
		snprintf(name, sizeof(name), "%s_%s", found[k], dur ? "seconds" : "unix");
		if (json_object_set_new(j, name, json_integer(t)) < 0)
			return -ENOMEM;
		snprintf(name, sizeof(name), "%s_%s", found[k], dur ? "duration" : "rfc3339");
		json_t *str = dur ? json_string(timespec_format_duration(t, text, sizeof(text)))
		              : t <= 0 ? json_null()
		                       : json_string(timespec_format(t, text, sizeof(text)));
		if (json_object_set_new(j, name, str) < 0)
			return -ENOMEM;
	}
	return 0;
}

void api_reply_json(struct api_req *r, unsigned status, json_t *body)
{
	if (body && api_json_times(body, 0) < 0) {
		json_decref(body);
		body = NULL; /* out of memory: answered as such below */
	}
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!s) {
		api_reply_text(r, 500, "application/json", "{\"error\":\"out of memory\"}");
		return;
	}
	size_t n = strlen(s);
	s[n] = '\0';
	char *t = realloc(s, n + 2);
	if (t) {
		s = t;
		s[n++] = '\n';
		s[n] = '\0';
	}
	if (r->capture) {
		api_capture_put(r, status, "application/json", s, n, false);
		free(s);
		return;
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(s);
	api_queue(r, status, resp, "application/json");
}

void api_reply_error(struct api_req *r, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

static void api_secret_free(void *p)
{
	crypt_free(p);
}

void api_reply_secret(struct api_req *r, uint8_t *val, size_t len, uint64_t version)
{
	if (r->capture) {
		if (r->answered) {
			crypt_free(val);
			return;
		}
		api_capture_put(r, 200, "application/octet-stream", val, len, true);
		r->capture->has_version = true;
		r->capture->version = version;
		r->a->met->reads++;
		return;
	}
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer_with_free_callback(len, val, api_secret_free);
	if (!resp) {
		crypt_free(val);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	char v[32];
	snprintf(v, sizeof(v), "%llu", (unsigned long long)version);
	MHD_add_response_header(resp, "X-Secret-Version", v);
	r->a->met->reads++;
	api_queue(r, 200, resp, "application/octet-stream");
}

void api_reply_relayed(struct api_req *r, unsigned status, const char *ctype, uint8_t *body,
                       size_t len, bool has_version, uint64_t version)
{
	struct MHD_Response *resp =
	    body ? MHD_create_response_from_buffer_with_free_callback(len, body, api_secret_free)
	         : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		crypt_free(body);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	if (has_version) {
		char v[32];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)version);
		MHD_add_response_header(resp, "X-Secret-Version", v);
	}
	api_queue(r, status, resp, ctype);
}

void api_reply_errno(struct api_req *r, int err, const char *what)
{
	switch (err) {
	case -EINVAL:
		api_reply_error(r, 400, "%s: invalid argument", what);
		break;
	case -ENOENT:
		api_reply_error(r, 404, "%s: not found", what);
		break;
	case -EEXIST:
		api_reply_error(r, 409, "%s: already exists", what);
		break;
	case -EFBIG:
		if (service_cluster(r->a->cfg.service))
			api_reply_error(
			    r, 413,
			    "%s: value larger than the limit of %zu bytes, or (cluster "
			    "mode) its kept versions together over %d bytes: put it with "
			    "a smaller --keep",
			    what, r->a->cfg.max_value, CLUSTER_ROWS_MAX);
		else
			api_reply_error(r, 413, "%s: value larger than the limit of %zu bytes",
			                what, r->a->cfg.max_value);
		break;
	case -EBADMSG:
		api_reply_error(
		    r, 500,
		    "%s: integrity check failed (the stored row was altered, swapped or "
		    "rolled back)",
		    what);
		break;
	case -EPERM:
	case -EACCES:
		api_reply_error(r, 403, "%s: not permitted", what);
		break;
	case -ELOOP:
		api_reply_error(r, 400, "%s: the mount path is a symlink or crosses one; refused",
		                what);
		break;
	case -ESRCH:
		api_reply_error(r, 409, "%s: the process is gone", what);
		break;
	case -EHOSTUNREACH: /* cluster mode: etcd cannot be reached */
	case -ESTALE:       /* cluster mode: another node changed it */
	case -EALREADY:     /* cluster mode: another node's key rotation is not finished */
		api_reply_error(r, err == -EHOSTUNREACH ? 503 : 409, "%s: %s", what,
		                service_strerror(err));
		break;
	case -EOPNOTSUPP:
		api_reply_error(r, 409, "%s: not available in cluster mode yet", what);
		break;
	case -EBUSY: /* cluster mode: SERVICE_WRITES_MAX writes wait already */
		api_reply_error(r, 503, "%s: too many cluster writes in flight (%d wait); retry",
		                what, SERVICE_WRITES_MAX);
		break;
	case -ENOTEMPTY:
		api_reply_error(
		    r, 409,
		    "%s: the mount path already holds files in the container (a runtime's "
		    "own secrets, e.g. podman --secret, or a volume); secretd does not hide "
		    "them: mount elsewhere (annotation io.secretd.mount=/run/secretd, or "
		    "secretctl mount /run/secretd)",
		    what);
		break;
	default:
		api_reply_error(r, 500, "%s: %s", what, strerror(-err));
	}
}

const char *api_query_arg(void *req, const char *key)
{
	struct api_req *r = req;
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* ---- connections ----
 * api.c accepts every connection itself (MHD runs with MHD_USE_NO_LISTEN_SOCKET), so the listening
 * socket never leaves the event loop: accepting cannot stop, whatever MHD's state. Each connection
 * is identified at accept and counted against its identity (the container, else the uid); one
 * over the per-identity limit is answered 429 and closed at once, and when the socket is full
 * the oldest idle connection of the identity holding most is closed to make room. */

static uint64_t api_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void api_drop_count(struct api_server *s, enum api_drop why, const char *detail)
{
	struct metrics *m = s->a->met;
	static const char *const what[API_DROP_KINDS] = {
	    [API_DROP_IDENT] = "refused connections over the per-identity limit",
	    [API_DROP_FULL] = "refused connections: socket full, nothing idle to close",
	    [API_DROP_EVICT] = "closed idle connections to make room",
	    [API_DROP_DEADLINE] = "closed connections past the request deadline",
	    [API_DROP_ACCEPT] = "accept failed"};
	switch (why) {
	case API_DROP_IDENT:
		m->conns_refused_ident++;
		break;
	case API_DROP_FULL:
		m->conns_refused_full++;
		break;
	case API_DROP_EVICT:
		m->conns_evicted++;
		break;
	case API_DROP_DEADLINE:
		m->conns_timed_out++;
		break;
	default:
		m->accept_errors++;
	}
	if (s->workload && (why == API_DROP_IDENT || why == API_DROP_FULL))
		m->workload_refused++;
	uint64_t now = api_now_ms();
	s->unlogged[why]++;
	if (s->logged_ms[why] && now - s->logged_ms[why] < API_LOG_EVERY_MS)
		return;
	log_warn("%s: %s: %llu (last: %s)", s->workload ? "workload.sock" : "admin.sock", what[why],
	         (unsigned long long)s->unlogged[why], detail);
	s->logged_ms[why] = now;
	s->unlogged[why] = 0;
}

/* Answers a connection that never reaches MHD (429/503, Connection: close) and closes it: only
 * when too many refused connections are already waiting for their request (a peer connecting
 * and seeing the close at once may report a connect failure). What the peer already sent is
 * read first, so that the answer stays readable after the close. */
static void api_refuse_fd(int fd, unsigned status, const char *msg)
{
	char buf[1024];
	for (size_t got = 0; got < API_DRAIN_MAX;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	json_t *j = json_pack("{s:s}", "error", msg);
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	int n = snprintf(buf, sizeof(buf),
	                 "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nCache-Control: "
	                 "no-store\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: "
	                 "%zu\r\n\r\n%s\n",
	                 status, status == 429 ? "Too Many Requests" : "Service Unavailable",
	                 body ? strlen(body) + 1 : 1, body ? body : "");
	free(body);
	/* Best effort by design: the peer may be gone; the refusal is counted either way. */
	if (n > 0 && (size_t)n < sizeof(buf) &&
	    send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
		shutdown(fd, SHUT_WR);
	close(fd);
}

/* The count a connection is in. */
static unsigned *api_conn_counter(struct api_conn *pc)
{
	struct api_server *s = pc->srv;
	return pc->evicted ? &s->evicted : pc->refuse ? &s->refusing : &s->live;
}

/* Makes MHD close the connection on its next run (it sees end of file); it stops counting. */
static void api_conn_kill(struct api_conn *pc)
{
	if (!pc || pc->evicted)
		return;
	(*api_conn_counter(pc))--;
	pc->evicted = true;
	pc->srv->evicted++;
	api_gauge(pc->srv);
	/* It can only fail when the peer is already gone (ENOTCONN): MHD sees that end too. */
	if (shutdown(pc->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
		pc->srv->a->met->accept_errors++;
}

/* Publishes the number of open connections (after any change to live). */
static void api_gauge(struct api_server *s)
{
	if (s->workload)
		s->a->met->conns_workload = s->live;
	else
		s->a->met->conns_admin = s->live;
}

static unsigned api_key_count(struct api_server *s, const char *key)
{
	unsigned n = 0;
	for (struct api_conn *c = s->head; c; c = c->next)
		if (!c->evicted && !c->refuse && strcmp(c->key, key) == 0)
			n++;
	return n;
}

/* The oldest idle connection of the identity holding most connections, or NULL when that
 * identity has none idle. */
static struct api_conn *api_evict_pick(struct api_server *s)
{
	struct api_conn *top = NULL;
	unsigned topn = 0;
	for (struct api_conn *c = s->head; c; c = c->next) {
		if (c->evicted || c->refuse || (top && strcmp(c->key, top->key) == 0))
			continue;
		unsigned n = api_key_count(s, c->key);
		if (n > topn) {
			top = c;
			topn = n;
		}
	}
	for (struct api_conn *c = top; c; c = c->next)
		if (!c->evicted && !c->refuse && !c->busy && strcmp(c->key, top->key) == 0)
			return c;
	return NULL;
}

static void api_conn_identify(struct api_server *s, struct api_conn *pc)
{
	if (s->workload && s->a->cfg.conn_key) {
		/* The server process: the daemon process identifies the peer and names its key. */
		pc->ident_rc = s->a->cfg.conn_key(s->a->cfg.conn_key_ud, pc->fd, pc->key,
		                                  sizeof(pc->key), &pc->handle);
		pc->ident_ok = pc->ident_rc == 0;
		pc->uid = (uid_t)-1;
		if (!pc->ident_ok)
			snprintf(pc->key, sizeof(pc->key), "unidentified");
		return;
	}
	if (s->workload) {
		pc->ident_rc = ident_from_socket(pc->fd, &pc->who);
		pc->ident_ok = pc->ident_rc == 0;
		pc->uid = pc->who.uid;
		if (!pc->ident_ok) {
			snprintf(pc->key, sizeof(pc->key), "unidentified");
			return;
		}
		struct policy_identity pi;
		mounts_identify(s->a->mounts, &pc->who, &pi);
		if (pi.container)
			snprintf(pc->key, sizeof(pc->key), "container %s", pi.id);
		else
			snprintf(pc->key, sizeof(pc->key), "uid %u", (unsigned)pc->uid);
		return;
	}
	struct ucred cred;
	socklen_t len = sizeof(cred);
	pc->ident_rc = getsockopt(pc->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ? -errno : 0;
	pc->uid = pc->ident_rc == 0 ? cred.uid : (uid_t)-1;
	/* The socket is 0600; check the peer too in case it is bind-mounted. */
	pc->ident_ok = pc->ident_rc == 0 && (cred.uid == 0 || cred.uid == geteuid());
	snprintf(pc->key, sizeof(pc->key), "uid %u", (unsigned)pc->uid);
}

/* Frees pc, telling the daemon process (the server process) that its connection is gone. */
static void api_conn_free(struct api_server *s, struct api_conn *pc)
{
	if (pc->handle && s->a->cfg.conn_close)
		s->a->cfg.conn_close(s->a->cfg.conn_key_ud, pc->handle);
	ident_clear(&pc->who);
	free(pc);
}

static void api_conn_unlink(struct api_server *s, struct api_conn *pc)
{
	if (pc->prev)
		pc->prev->next = pc->next;
	else
		s->head = pc->next;
	if (pc->next)
		pc->next->prev = pc->prev;
	else
		s->tail = pc->prev;
	(*api_conn_counter(pc))--;
	api_gauge(s);
	api_conn_free(s, pc);
}

/* Takes a freshly accepted fd: identifies it, applies the limits, hands it to MHD. A refused
 * connection is handed over too, marked: its request is answered 429/503 (Retry-After,
 * Connection: close) as soon as its headers are in, and it never counts as served. */
static void api_admit(struct api_server *s, int fd, const struct sockaddr_un *sa, socklen_t salen)
{
	struct api_conn *pc = calloc(1, sizeof(*pc));
	if (!pc) {
		api_refuse_fd(fd, 503, "the broker is out of memory");
		api_drop_count(s, API_DROP_ACCEPT, "out of memory");
		return;
	}
	pc->srv = s;
	pc->fd = fd;
	pc->who.pidfd = -1;
	api_conn_identify(s, pc);
	unsigned max = s->a->cfg.max_conns, per = s->a->cfg.max_conns_per_ident;
	if (s->workload && api_key_count(s, pc->key) >= per) {
		pc->refuse = 429;
		api_drop_count(s, API_DROP_IDENT, pc->key);
	} else if (s->live >= max) {
		struct api_conn *victim = api_evict_pick(s);
		if (victim && s->evicted < max) {
			api_drop_count(s, API_DROP_EVICT, victim->key);
			api_conn_kill(victim);
		} else {
			pc->refuse = 503;
			api_drop_count(s, API_DROP_FULL, pc->key);
		}
	}
	if (pc->refuse && s->refusing >= max) {
		char msg[256];
		if (pc->refuse == 429)
			snprintf(msg, sizeof(msg), "too many connections from %s (limit %u)",
			         pc->key, per);
		else
			snprintf(msg, sizeof(msg),
			         "the broker is at its limit of %u connections; retry later", max);
		api_refuse_fd(fd, pc->refuse, msg);
		api_conn_free(s, pc);
		return;
	}
	pc->cycle_ms = api_now_ms();
	pc->prev = s->tail;
	if (s->tail)
		s->tail->next = pc;
	else
		s->head = pc;
	s->tail = pc;
	(*api_conn_counter(pc))++;
	api_gauge(s);
	s->adding = pc;
	if (MHD_add_connection(s->d, fd, (const struct sockaddr *)sa, salen) != MHD_YES) {
		/* MHD closed the fd. If it never started the connection, it is ours to forget. */
		int err = errno;
		if (s->adding == pc)
			api_conn_unlink(s, pc);
		api_drop_count(s, API_DROP_ACCEPT, strerror(err));
	}
	s->adding = NULL;
}

static void api_on_listen(loop *l, int lfd, uint32_t events, void *ud)
{
	struct api_server *s = ud;
	for (int i = 0; i < API_ACCEPT_BATCH; i++) {
		struct sockaddr_un sa;
		socklen_t salen = sizeof(sa);
		int fd = accept4(lfd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			api_admit(s, fd, &sa, salen);
			continue;
		}
		int err = errno;
		if (err == EINTR || err == ECONNABORTED)
			continue;
		if (err == EAGAIN || err == EWOULDBLOCK)
			return;
		api_drop_count(s, API_DROP_ACCEPT, strerror(err));
		if ((err == EMFILE || err == ENFILE) && s->reserve >= 0) {
			/* Out of fds: use the spare one to refuse the waiting peer, so that the
			 * queue keeps moving (and the loop does not spin on a readable socket). */
			close(s->reserve);
			s->reserve = -1;
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (fd >= 0)
				api_refuse_fd(fd, 503, "the broker is out of file descriptors");
			/* a duplicate, not an open: the server's seccomp filter allows no open */
			s->reserve = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
		}
		return;
	}
}

static void api_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                            enum MHD_ConnectionNotificationCode code)
{
	struct api_server *s = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_ctx = s->adding;
		s->adding = NULL;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct api_conn *pc = *socket_ctx;
		if (pc)
			api_conn_unlink(s, pc);
		*socket_ctx = NULL;
	}
}

/* Closes connections whose current request has not been complete within request_timeout_s of
 * the end of the previous one (slow senders); returns ms until the next such deadline, or -1. */
static int api_deadlines(struct api_server *s)
{
	uint64_t now = api_now_ms();
	int next = -1;
	for (struct api_conn *c = s->head; c; c = c->next) {
		if (c->evicted || c->answered || c->waiting)
			continue; /* a request waiting for a cluster write is bounded by etcd's
			             timeouts */
		uint64_t lim =
		    c->refuse ? API_REFUSE_MS : (uint64_t)s->a->cfg.request_timeout_s * 1000;
		if (now - c->cycle_ms >= lim) {
			api_drop_count(s, API_DROP_DEADLINE, c->key);
			api_conn_kill(c);
			continue;
		}
		uint64_t left = lim - (now - c->cycle_ms);
		if (next < 0 || left < (uint64_t)next)
			next = (int)left;
	}
	return next;
}

/* ---- requests ---- */

static void api_req_free(struct api_req *r)
{
	if (!r)
		return;
	if (r->body) {
		crypt_free(r->body);
	}
	free(r);
}

/* Called by MHD with the raw request URI (before it decodes it), once per request. */
static void *api_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct api_server *s = cls;
	struct api_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->a = s->a;
	r->srv = s;
	r->conn = conn;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	r->pc = ci ? ci->socket_context : NULL;
	if (r->pc)
		r->pc->busy = true;
	/* MHD decodes %00 into the C strings it hands over, which would cut them short. */
	for (const char *p = uri; (p = strchr(p, '%')) != NULL; p++)
		if (p[1] == '0' && p[2] == '0')
			r->bad_uri = true;
	/* A raw NUL byte cuts uri short too: see api_req_check. */
	r->raw_uri_end = uri + strlen(uri);
	return r;
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                          enum MHD_RequestTerminationCode toe)
{
	struct api_req *r = *req_cls;
	if (r && !r->capture) {
		service_write_forget(r->a->cfg.service, r);
		if (r->pc && r->pc->waiting == r)
			r->pc->waiting = NULL;
	}
	/* After the answer: the hand-off that follows would close this connection. */
	if (r && r->then_upgrade && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && r->a->cfg.upgrade)
		r->a->cfg.upgrade(r->a->cfg.upgrade_ud);
	if (r && r->pc) {
		r->pc->served_one = true;
		r->pc->busy = false;
		r->pc->answered = false;
		r->pc->cycle_ms = api_now_ms();
	}
	api_req_free(r);
	*req_cls = NULL;
}

static int api_body_append(struct api_req *r, const char *data, size_t n)
{
	if (r->too_large || n > r->limit - r->len) {
		r->too_large = true;
		return 0;
	}
	if (r->len + n > r->cap) {
		size_t nc = r->cap ? r->cap : API_BODY_INITIAL;
		while (nc < r->len + n)
			nc *= 2;
		if (nc > r->limit)
			nc = r->limit;
		uint8_t *nb = crypt_alloc(nc + 1);
		if (!nb)
			return -ENOMEM;
		if (r->body) {
			memcpy(nb, r->body, r->len);
			crypt_free(r->body);
		}
		r->body = nb;
		r->cap = nc;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	return 0;
}

/* The first route of the socket's table that matches the request, or NULL; *tail is the rest of
 * the URL after a prefix route's path (NULL for an exact route). */
static const struct api_route *api_route_match(const struct api_routes *t, const char *method,
                                               const char *url, const char **tail)
{
	*tail = NULL;
	for (size_t i = 0; i < t->n; i++) {
		const struct api_route *rt = &t->v[i];
		if (strcmp(rt->method, method) != 0)
			continue;
		if (rt->handle_tail) {
			size_t n = strlen(rt->path);
			if (strncmp(url, rt->path, n) == 0 && url[n]) {
				*tail = url + n;
				return rt;
			}
		} else if (strcmp(url, rt->path) == 0) {
			return rt;
		}
	}
	return NULL;
}

/* Answers the request with its route's handler (after the table's gate), or 404. The route was
 * matched when the headers came in (it chose the body limit). */
static void api_dispatch(struct api_server *s, struct api_req *r)
{
	if (s->routes->gate && !s->routes->gate(r))
		return;
	const struct api_route *rt = r->route;
	if (!rt)
		api_reply_error(r, 404, "no route for %s %s", r->method, r->url);
	else if (rt->handle_tail)
		rt->handle_tail(r, r->tail);
	else
		rt->handle(r);
}

/* First call, headers complete: refuses what must not be read further (answered at once, and
 * MHD closes the connection without reading the body). */
static void api_req_check(struct api_req *r, const char *version)
{
	struct MHD_Connection *conn = r->conn;
	const char *cl =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	/* MHD parses the request line in place: the URI runs up to the NUL it wrote over the space
	 * before the HTTP version, so a URI whose string ends anywhere else held a raw NUL byte. */
	if (r->bad_uri || !version || r->raw_uri_end + 1 != version) {
		api_reply_error(r, 400, "the request URL holds a NUL byte (%%00)");
		return;
	}
	if (cl && te) {
		api_reply_error(r, 400,
		                "a request may not carry both Content-Length and "
		                "Transfer-Encoding");
		return;
	}
	/* Bodies come with a Content-Length (as every client of ours sends them): no chunk
	 * parsing, no chunk size to trust. */
	if (te) {
		api_reply_error(r, 411,
		                "send the body with a Content-Length (Transfer-Encoding "
		                "is not accepted)");
		return;
	}
	if (cl) {
		char *end;
		unsigned long long v = strtoull(cl, &end, 10);
		if (!*cl || *end || cl[0] < '0' || cl[0] > '9')
			api_reply_error(r, 400, "invalid Content-Length");
		else if (v > r->limit)
			api_reply_error(r, 413, "request body larger than the limit of %zu bytes",
			                r->limit);
	}
}

static enum MHD_Result api_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **req_cls)
{
	struct api_server *s = cls;
	struct api_req *r = *req_cls;
	if (!r)
		return MHD_NO; /* out of memory in api_uri_log: close */
	if (!r->started) {
		r->started = true;
		r->method = method;
		r->url = url;
		r->route = api_route_match(s->routes, method, url, &r->tail);
		r->limit = r->route && r->route->body == API_BODY_VALUE ? s->a->cfg.max_value
		                                                        : SECRETD_JSON_BODY_MAX;
		/* A refused connection is answered now, before any body is read. */
		if (r->pc && r->pc->refuse) {
			r->refused = true;
			if (r->pc->refuse == 429)
				api_reply_error(r, 429, "too many connections from %s (limit %u)",
				                r->pc->key, s->a->cfg.max_conns_per_ident);
			else
				api_reply_error(
				    r, 503,
				    "the broker is at its limit of %u connections; retry later",
				    s->a->cfg.max_conns);
		} else {
			api_req_check(r, version);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (r->answered) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		if (api_body_append(r, upload_data, *upload_data_size) < 0)
			return MHD_NO;
		/* A chunked body past the limit: close now, not when the sender gives up. */
		if (r->too_large)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	if (!r->pc || !r->pc->ident_ok) {
		if (s->workload)
			s->a->met->workload_refused++;
		api_reply_error(r, 403, "%s",
		                s->workload ? "cannot identify the connecting process"
		                            : "the admin socket is for root only");
	} else if (r->too_large) {
		api_reply_error(r, 413, "request body larger than the limit of %zu bytes",
		                r->limit);
	} else {
		api_dispatch(s, r);
		/* woken while its route ran (before it could suspend): at once again */
		for (int i = 0; i < 4 && r->wake_pending && !r->answered && !r->suspended; i++) {
			r->wake_pending = false;
			api_dispatch(s, r);
		}
	}
	if (r->suspended)
		return MHD_YES; /* answered when the route runs again (api_write_wake) */
	if (!r->answered)
		api_reply_error(r, 500, "internal error: no answer");
	/* its write, if any, is over (or never started): the next one may run */
	service_write_forget(r->a->cfg.service, r);
	return MHD_YES;
}

/* ---- sockets and loop ---- */

static int api_bind(const char *path, mode_t mode, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(path); /* a stale socket: the store lock proved no daemon owns it */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(path, mode) < 0 || listen(fd, 128) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

static void api_on_mhd(loop *l, int fd, uint32_t events, void *ud)
{
	struct api_server *s = ud;
	MHD_run(s->d);
}

#define API_MHD_RUNS_PER_PREPARE 8 /* MHD_run calls per loop iteration while MHD has work */

static int api_prepare(loop *l, void *ud)
{
	struct api_server *s = ud;
	MHD_UNSIGNED_LONG_LONG ms;
	int dl = api_deadlines(s);
	int t = -1;
	if (s->resumed) {
		s->resumed = false;
		MHD_run(s->d);
	}
	/* MHD watches its sockets edge-triggered: data it has read but not processed yet, and
	 * expired connection timeouts, show up only as a zero timeout, never as an event. */
	for (int i = 0;; i++) {
		if (MHD_get_timeout(s->d, &ms) != MHD_YES)
			break;
		if (ms > 0) {
			t = ms > 60000 ? 60000 : (int)ms;
			break;
		}
		if (i == API_MHD_RUNS_PER_PREPARE) {
			/* Still work to do: come back at once, after the loop's other events (never
			 * wait for an event that MHD's edge-triggered sockets will not send again).
			 */
			t = 0;
			break;
		}
		MHD_run(s->d);
	}
	if (t < 0 || (dl >= 0 && dl < t))
		t = dl;
	return t;
}

static void api_server_free(api *a, struct api_server *s)
{
	if (!s)
		return;
	if (s->fd >= 0 && s->d)
		loop_del(a->loop, s->fd);
	if (s->d) {
		loop_del(a->loop, s->epfd);
		/* requests waiting for a cluster write: their connections close (MHD cannot stop
		 * with a connection suspended); the writes end without them */
		for (struct api_conn *c = s->head; c; c = c->next)
			if (c->waiting) {
				struct api_req *r = c->waiting;
				service_write_forget(a->cfg.service, r);
				r->suspended = false;
				c->waiting = NULL;
				MHD_resume_connection(r->conn);
			}
		MHD_stop_daemon(s->d);
	}
	if (s->fd >= 0) {
		close(s->fd);
		if (!s->keep_file)
			unlink(s->path);
	}
	if (s->reserve >= 0)
		close(s->reserve);
	free(s);
}

static int api_server_new(api *a, const struct api_routes *routes, struct api_server **out)
{
	bool workload = routes->socket == API_SOCKET_WORKLOAD;
	/* A socket handed over is owned from here (closed on failure, its file kept for the
	 * keeper's next worker). */
	int inherited = a->cfg.inherit_fds ? a->cfg.inherit_fds[workload ? 1 : 0] : -1;
	struct api_server *s = calloc(1, sizeof(*s));
	if (!s) {
		if (inherited >= 0)
			close(inherited);
		return -ENOMEM;
	}
	s->a = a;
	s->routes = routes;
	s->workload = workload;
	s->fd = inherited;
	s->keep_file = inherited >= 0;
	s->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int n = snprintf(s->path, sizeof(s->path), "%s/%s", a->cfg.runtime_dir,
	                 workload ? SECRETD_WORKLOAD_SOCK : SECRETD_ADMIN_SOCK);
	if (s->reserve < 0 || n < 0 || (size_t)n >= sizeof(s->path)) {
		int r = s->reserve < 0 ? -errno : -ENAMETOOLONG;
		api_server_free(a, s);
		return r;
	}
	int r = 0;
	if (inherited < 0)
		r = api_bind(s->path, workload ? 0666 : 0600, &s->fd);
	if (r < 0) {
		s->fd = -1;
		api_server_free(a, s);
		return r;
	}
	if (workload && a->cfg.workload_relayed) {
		/* Held for the server process, which serves it: not watched here. */
		s->keep_file = false;
		*out = s;
		return 0;
	}
	/* MHD's own limit only backs ours up: it holds the served and the refused (until answered),
	 * at most max_conns of each, and the evicted or timed out (until closed). */
	s->d = MHD_start_daemon(
	    MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | (workload ? 0 : MHD_ALLOW_SUSPEND_RESUME), 0,
	    NULL, NULL, api_handler, s, MHD_OPTION_NOTIFY_CONNECTION, api_notify_conn, s,
	    MHD_OPTION_NOTIFY_COMPLETED, api_completed, s, MHD_OPTION_URI_LOG_CALLBACK, api_uri_log,
	    s, MHD_OPTION_CONNECTION_LIMIT, API_CONNS_OPEN_MAX(a->cfg.max_conns),
	    MHD_OPTION_CONNECTION_TIMEOUT, a->cfg.idle_timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)(workload ? API_CONN_MEMORY_WORKLOAD : API_CONN_MEMORY_ADMIN), MHD_OPTION_END);
	const union MHD_DaemonInfo *di =
	    s->d ? MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!di) {
		api_server_free(a, s);
		return -EIO;
	}
	s->epfd = di->epoll_fd;
	r = loop_add(a->loop, s->epfd, EPOLLIN, api_on_mhd, s);
	if (r == 0)
		r = loop_add(a->loop, s->fd, EPOLLIN, api_on_listen, s);
	if (r == 0)
		r = loop_add_prepare(a->loop, api_prepare, s);
	if (r < 0) {
		api_server_free(a, s);
		return r;
	}
	s->keep_file = false; /* serving: a stop unlinks it (api_release does not) */
	*out = s;
	return 0;
}

int api_start(api **out, loop *l, store *s, mounts *m, struct metrics *met,
              const struct api_config *cfg)
{
	api *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->loop = l;
	a->store = s;
	a->mounts = m;
	a->met = met;
	a->cfg = *cfg;
	if (!a->cfg.max_conns)
		a->cfg.max_conns = API_MAX_CONNS_DEFAULT;
	if (!a->cfg.max_conns_per_ident)
		a->cfg.max_conns_per_ident = API_MAX_CONNS_PER_IDENT_DEFAULT;
	if (!a->cfg.idle_timeout_s)
		a->cfg.idle_timeout_s = API_IDLE_TIMEOUT_DEFAULT;
	if (!a->cfg.request_timeout_s)
		a->cfg.request_timeout_s = API_REQUEST_TIMEOUT_DEFAULT;
	if (!a->cfg.max_value)
		a->cfg.max_value = SECRETD_VALUE_MAX_DEFAULT;
	const struct api_routes *ar = a->cfg.admin_routes, *wr = a->cfg.workload_routes;
	bool only = a->cfg.workload_only;
	if ((only ? ar != NULL : !ar || ar->socket != API_SOCKET_ADMIN) || !wr ||
	    wr->socket != API_SOCKET_WORKLOAD || (only && a->cfg.workload_relayed) ||
	    a->cfg.max_conns > API_MAX_CONNS_CEILING ||
	    a->cfg.idle_timeout_s > API_TIMEOUT_CEILING ||
	    a->cfg.request_timeout_s > API_TIMEOUT_CEILING) {
		free(a);
		return -EINVAL;
	}
	int r = only ? 0 : api_server_new(a, ar, &a->admin);
	if (r == 0)
		r = api_server_new(a, wr, &a->workload);
	if (r == 0 && a->admin && a->admin->d && a->cfg.service)
		service_set_waker(a->cfg.service, api_write_wake, a);
	if (r < 0) {
		/* Owned from here: a socket handed over but never reached is closed too. */
		if (cfg->inherit_fds && !a->admin && !only && cfg->inherit_fds[1] >= 0)
			close(cfg->inherit_fds[1]);
		api_stop(a);
		return r;
	}
	*out = a;
	return 0;
}

void api_quiesce(api *a)
{
	struct api_server *sv[2] = {a->admin, a->workload};
	for (int i = 0; i < 2; i++)
		if (sv[i] && sv[i]->fd >= 0 && sv[i]->d)
			loop_del(a->loop, sv[i]->fd);
}

unsigned api_pending(const api *a)
{
	unsigned n = 0;
	const struct api_server *sv[2] = {a->admin, a->workload};
	for (int i = 0; i < 2; i++)
		for (const struct api_conn *c = sv[i] ? sv[i]->head : NULL; c; c = c->next)
			if (!c->evicted && (c->busy || !c->served_one))
				n++;
	return n;
}

int api_listen_fd(const api *a, bool workload)
{
	const struct api_server *s = workload ? a->workload : a->admin;
	return s ? s->fd : -1;
}

void api_release(api *a)
{
	if (!a)
		return;
	if (a->admin)
		a->admin->keep_file = true;
	if (a->workload)
		a->workload->keep_file = true;
	api_stop(a);
}

void api_stop(api *a)
{
	if (!a)
		return;
	if (a->admin && a->admin->d && a->cfg.service)
		service_set_waker(a->cfg.service, NULL, NULL);
	api_server_free(a, a->admin);
	api_server_free(a, a->workload);
	free(a);
}
