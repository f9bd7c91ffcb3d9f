/* relay_server: the server process's side of the privilege split (see relay.h): each new client
 * connection is handed to the daemon process once (CONNKEY, the socket beside it), which
 * identifies it and names it by a handle; each workload request is relayed as one typed message
 * naming its connection's handle, and answered with the daemon's reply; a closed connection is
 * reported (CLOSE) so that the daemon forgets it.
 *
 * One request at a time: the server sends a request and waits for its answer before it reads
 * the next one. The daemon answers from its event loop without waiting on anything but the
 * store (and a mount's namespace child), so concurrency in the server would only queue requests
 * in the channel instead of in the sockets; one at a time keeps the daemon's side trivially
 * bounded (never more than one request of the server in flight) and makes a stuck server
 * detectable (it does not read its answer). */
#include "broker/http/relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "broker/crypto/crypt.h"
#include "broker/http/api_internal.h"
#include "broker/privsep/chan.h"

#define RELAY_REPLY_TIMEOUT_MS 60000 /* a daemon that does not answer within this: 503 */

struct relay_server {
	int chan;
	uint32_t next_id;
	size_t body_max;
	uint8_t *buf; /* crypt_alloc'd: answers hold values */
	size_t cap;
	uint64_t sent[PRIVSEP_STATS_N];
	bool sent_once;
	uint64_t sent_ms; /* monotonic ms of the last STATS */
	/* connections closed, not yet reported (CLOSE): sent just before the next request, so
	 * that the daemon reads them in the same wake-up, else within RELAY_STATS_EVERY_MS */
	uint64_t closing[RELAY_CLOSE_BATCH];
	unsigned nclosing;
	uint64_t closing_ms; /* monotonic ms when the oldest of them was closed */
};

int relay_server_new(relay_server **out, int chan, size_t max_value)
{
	struct relay_server *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	struct timeval tv = {.tv_sec = RELAY_REPLY_TIMEOUT_MS / 1000};
	if (setsockopt(chan, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		int e = -errno;
		free(rs);
		return e;
	}
	rs->chan = chan;
	rs->body_max = max_value + PRIVSEP_JSON_SLACK;
	rs->cap = PRIVSEP_MSG_MAX(rs->body_max);
	rs->buf = crypt_alloc(rs->cap);
	if (!rs->buf) {
		free(rs);
		return -ENOMEM;
	}
	*out = rs;
	return 0;
}

void relay_server_free(relay_server *rs)
{
	if (!rs)
		return;
	crypt_free(rs->buf);
	if (rs->chan >= 0)
		close(rs->chan);
	free(rs);
}

int relay_server_fd(const relay_server *rs)
{
	return rs->chan;
}

static uint64_t relay_server_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reports the connections closed since the last report (CLOSE each). The daemon is gone, or the
 * channel broke: this server ends, as relay_forward does (a daemon that never hears of a close
 * would keep a connection it cannot tell from an open one, until its table is full). */
static void relay_flush_closes(relay_server *rs)
{
	for (unsigned i = 0; i < rs->nclosing; i++) {
		struct privsep_msg m = {.type = PRIVSEP_CLOSE, .handle = rs->closing[i]};
		int rc = privsep_chan_send(rs->chan, &m, -1, 0);
		if (rc < 0)
			_exit(rc == -EPIPE ? 0 : 1);
	}
	rs->nclosing = 0;
}

/* Sends one request and waits for its answer (m points into rs->buf then). -ENOTCONN: the
 * daemon is gone; -ETIMEDOUT; -EPROTO: it answered something else. */
static int relay_call(relay_server *rs, uint16_t type, const char *arg, size_t len, int fd,
                      uint64_t handle, struct privsep_msg *m)
{
	uint32_t id = ++rs->next_id;
	if (id == 0)
		id = rs->next_id = 1;
	relay_flush_closes(rs);
	struct privsep_msg q = {.type = type,
	                        .id = id,
	                        .arg = arg,
	                        .arg_len = len,
	                        .handle = handle,
	                        .nfds = privsep_has_fd(type) ? 1 : 0};
	int rc = privsep_chan_send(rs->chan, &q, fd, 0);
	if (rc < 0)
		return rc == -EPIPE ? -ENOTCONN : rc;
	/* a blocking receive (SO_RCVTIMEO: relay_server_new) instead of a poll and a receive */
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int cfd = -1;
		rc = privsep_chan_recv(rs->chan, rs->buf, rs->cap, rs->body_max, 0, m, &cfd);
		if (cfd >= 0)
			close(cfd);
		if (rc == -EAGAIN)
			return -ETIMEDOUT;
		if (rc < 0)
			return rc;
		if (m->type != PRIVSEP_REPLY)
			return -EPROTO;
		if (m->id == id)
			return 0;
		/* the late answer of a request that timed out: dropped (within the same bound) */
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >=
		    RELAY_REPLY_TIMEOUT_MS)
			return -ETIMEDOUT;
	}
}

void relay_forward(struct api_req *r, unsigned op, const char *arg, size_t len)
{
	relay_server *rs = r->a->cfg.conn_key_ud;
	struct privsep_msg m;
	int rc = relay_call(rs, (uint16_t)op, arg, len, -1, r->pc->handle, &m);
	if (rc == -ENOTCONN || rc == -EPROTO) {
		/* The daemon process is gone (or broken): this server ends with it (its
		 * parent-death signal is on the way too). No answer could be sent before the exit:
		 * the client sees its connection closed, and the next daemon's server serves its
		 * retry. */
		_exit(rc == -ENOTCONN ? 0 : 1);
	}
	if (rc < 0) {
		api_reply_error(r, 503, "the broker did not answer: %s", strerror(-rc));
		return;
	}
	uint8_t *body = NULL;
	if (m.body_len) {
		body = crypt_alloc(m.body_len);
		if (!body) {
			api_reply_error(r, 500, "out of memory");
			return;
		}
		memcpy(body, m.body, m.body_len);
	}
	/* the answer's copy in the receive buffer is wiped before the next request */
	sodium_memzero(rs->buf, PRIVSEP_HEADER + m.arg_len + m.body_len);
	char ctype[PRIVSEP_CTYPE_MAX + 1];
	memcpy(ctype, m.arg, m.arg_len);
	ctype[m.arg_len] = '\0';
	api_reply_relayed(r, m.status, ctype, body, m.body_len, m.version != 0,
	                  m.version ? m.version - 1 : 0);
}

int relay_server_conn_key(void *ud, int fd, char *key, size_t len, uint64_t *handle)
{
	relay_server *rs = ud;
	struct privsep_msg m;
	*handle = 0;
	int rc = relay_call(rs, PRIVSEP_CONNKEY, "", 0, fd, 0, &m);
	if (rc == -ENOTCONN)
		_exit(0);
	if (rc < 0)
		return rc;
	if (m.status != 200 || m.body_len == 0 || m.body_len >= len || m.version == 0)
		return -EPERM;
	memcpy(key, m.body, m.body_len);
	key[m.body_len] = '\0';
	*handle = m.version;
	return 0;
}

void relay_server_conn_close(void *ud, uint64_t handle)
{
	relay_server *rs = ud;
	if (rs->nclosing == 0)
		rs->closing_ms = relay_server_ms();
	rs->closing[rs->nclosing++] = handle;
	if (rs->nclosing == RELAY_CLOSE_BATCH)
		relay_flush_closes(rs);
}

/* STATS, as relay_server_stats says. */
static int relay_send_stats(relay_server *rs, const struct metrics *met, uint64_t now)
{
	uint64_t v[PRIVSEP_STATS_N] = {
	    [PRIVSEP_ST_REQUESTS] = met->workload_requests,
	    [PRIVSEP_ST_ERRORS] = met->workload_errors,
	    [PRIVSEP_ST_REFUSED] = met->workload_refused,
	    [PRIVSEP_ST_REFUSED_IDENT] = met->conns_refused_ident,
	    [PRIVSEP_ST_REFUSED_FULL] = met->conns_refused_full,
	    [PRIVSEP_ST_EVICTED] = met->conns_evicted,
	    [PRIVSEP_ST_TIMED_OUT] = met->conns_timed_out,
	    [PRIVSEP_ST_ACCEPT_ERRORS] = met->accept_errors,
	    [PRIVSEP_ST_CONNS] = met->conns_workload,
	};
	if (rs->sent_once && memcmp(v, rs->sent, sizeof(v)) == 0)
		return 0;
	bool rare = !rs->sent_once;
	for (int i = 0; i < PRIVSEP_STATS_N; i++)
		if (i != PRIVSEP_ST_REQUESTS && i != PRIVSEP_ST_ERRORS && i != PRIVSEP_ST_CONNS &&
		    v[i] != rs->sent[i])
			rare = true;
	if (!rare && now - rs->sent_ms < RELAY_STATS_EVERY_MS)
		return (int)(RELAY_STATS_EVERY_MS - (now - rs->sent_ms));
	uint8_t body[PRIVSEP_STATS_N * 8];
	for (int i = 0; i < PRIVSEP_STATS_N; i++)
		for (int k = 0; k < 8; k++)
			body[i * 8 + k] = (uint8_t)(v[i] >> (8 * k));
	struct privsep_msg m = {.type = PRIVSEP_STATS, .body = body, .body_len = sizeof(body)};
	int rc = privsep_chan_send(rs->chan, &m, -1, MSG_DONTWAIT);
	if (rc == -EAGAIN)
		return RELAY_STATS_EVERY_MS; /* next time */
	if (rc < 0)
		return rc == -EPIPE ? -ENOTCONN : rc;
	memcpy(rs->sent, v, sizeof(v));
	rs->sent_once = true;
	rs->sent_ms = now;
	return 0;
}

int relay_server_stats(relay_server *rs, const struct metrics *met)
{
	uint64_t now = relay_server_ms();
	int wait = 0;
	if (rs->nclosing) {
		uint64_t age = now - rs->closing_ms;
		if (age >= RELAY_STATS_EVERY_MS)
			relay_flush_closes(rs);
		else
			wait = (int)(RELAY_STATS_EVERY_MS - age);
	}
	int st = relay_send_stats(rs, met, now);
	if (st < 0)
		return st;
	return st > 0 && (wait == 0 || st < wait) ? st : wait;
}

int relay_server_on_readable(relay_server *rs)
{
	for (;;) {
		struct privsep_msg m;
		int cfd = -1;
		int rc = privsep_chan_recv(rs->chan, rs->buf, rs->cap, rs->body_max, MSG_DONTWAIT,
		                           &m, &cfd);
		if (cfd >= 0)
			close(cfd);
		if (rc == -EAGAIN)
			return 0;
		if (rc < 0)
			return rc;
		if (m.type != PRIVSEP_REPLY)
			return -EPROTO;
		/* a late answer: dropped */
	}
}

/* The value of field in /proc/self/status ("CapEff:\t0000000000000000"), or -1. */
static long long relay_status_field(const char *text, const char *field, int base)
{
	size_t n = strlen(field);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, field, n) == 0 && p[n] == ':')
			return strtoll(p + n + 1, NULL, base);
	return -1;
}

int relay_server_check_privs(bool was_root, char *what, size_t len)
{
	char text[8192];
	FILE *f = fopen("/proc/self/status", "re");
	if (!f) {
		snprintf(what, len, "/proc/self/status unreadable");
		return -EPERM;
	}
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	static const struct {
		const char *field;
		int base;
		long long want; /* -2: not 0 */
	} checks[] = {
	    {"CapEff", 16, 0}, {"CapPrm", 16, 0}, {"CapAmb", 16, 0}, {"NoNewPrivs", 10, 1}};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		long long v = relay_status_field(text, checks[i].field, checks[i].base);
		if (v != checks[i].want) {
			snprintf(what, len, "%s is %lld", checks[i].field, v);
			return -EPERM;
		}
	}
	if (was_root && (getuid() == 0 || geteuid() == 0 || getgid() == 0 || getegid() == 0)) {
		snprintf(what, len, "uid or gid 0");
		return -EPERM;
	}
	return 0;
}
