/* relay: the daemon process's side of the privilege split (see relay.h). */
#include "broker/http/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker/crypto/crypt.h"
#include "broker/http/api_internal.h"
#include "broker/os/seccomp.h"
#include "broker/privsep/chan.h"
#include "common/limits.h"

#define RELAY_IN_MAX (PRIVSEP_HEADER + PRIVSEP_PATH_MAX + PRIVSEP_STATS_N * 8)
#define RELAY_ENV_MAX 24

struct relay {
	loop *l;
	api *a;
	struct metrics *met;
	struct relay_config cfg;
	const char *exe;
	bool drop; /* change uid/gid (the daemon is root) */
	uid_t uid;
	gid_t gid;
	char *envp[RELAY_ENV_MAX + 1];
	/* the server now running */
	pid_t pid;
	int pidfd, chan;
	bool served; /* it sent a first message */
	bool stopping;
	unsigned backoff_ms;
	uint64_t due_ms; /* a restart waits for this monotonic ms (0: none) */
	uint64_t last[PRIVSEP_STATS_N];
	uint8_t in[RELAY_IN_MAX];
	/* refusals, reported at most every RELAY_LOG_EVERY_MS */
	uint64_t logged_ms;
	unsigned long long unlogged;
};

static uint64_t relay_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void relay_report(struct relay *r, struct relay_report rep)
{
	if (r->cfg.report)
		r->cfg.report(r->cfg.report_ud, &rep);
}

/* Counts a refused request or message and reports it, rate-limited. */
static void relay_refused(struct relay *r, const char *why)
{
	r->met->server_refused++;
	r->unlogged++;
	uint64_t now = relay_now_ms();
	if (r->logged_ms && now - r->logged_ms < RELAY_LOG_EVERY_MS)
		return;
	relay_report(r,
	             (struct relay_report){
	                 .ev = RELAY_REFUSED, .pid = r->pid, .count = r->unlogged, .detail = why});
	r->logged_ms = now;
	r->unlogged = 0;
}

/* ---- the server's life ---- */

static void relay_on_chan(loop *l, int fd, uint32_t events, void *ud);
static void relay_on_exit(loop *l, int fd, uint32_t events, void *ud);

static void relay_close_chan(struct relay *r)
{
	if (r->chan < 0)
		return;
	loop_del(r->l, r->chan);
	close(r->chan);
	r->chan = -1;
}

/* A server that broke the protocol: refused, reported, killed (restarted when it is reaped). */
static void relay_hostile(struct relay *r, const char *why)
{
	r->met->server_refused++;
	relay_report(r, (struct relay_report){.ev = RELAY_HOSTILE, .pid = r->pid, .detail = why});
	relay_close_chan(r);
	if (r->pid > 0)
		kill(r->pid, SIGKILL); /* not reaped yet: the pid is still this server's */
}

static int relay_spawn(struct relay *r)
{
	int sv[2];
	size_t sndbuf =
	    r->cfg.max_value + PRIVSEP_JSON_SLACK + PRIVSEP_HEADER + PRIVSEP_PATH_MAX + 64 * 1024;
	int rc = privsep_chan_pair(sv, sndbuf);
	if (rc < 0)
		return rc;
	pid_t parent = getpid();
	char *argv[] = {(char *)"secretd-server", NULL};
	pid_t pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here to the exec. */
		int lfd = fcntl(r->cfg.listen_fd, F_DUPFD, 10);
		int cfd = fcntl(sv[1], F_DUPFD, 10);
		if (lfd < 0 || cfd < 0 || dup2(lfd, 3) != 3 || dup2(cfd, 4) != 4)
			_exit(126);
		if (syscall(SYS_close_range, 5, ~0U, 0) < 0)
			_exit(126);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* The bounding set too, where we may (CAP_SETPCAP, before the uid change): a
		 * second wall only. After the change to a non-root uid the permitted and effective
		 * sets are empty and no-new-privs stops setuid and file-capability execs, so a
		 * unit without CAP_SETPCAP still gets a server (its own check is on CapEff, CapPrm,
		 * CapAmb and NoNewPrivs: relay_server_check_privs). */
		for (int c = 0; r->drop && c < 64; c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				break;
		if (r->drop && (syscall(SYS_setgroups, 0, NULL) < 0 ||
		                syscall(SYS_setresgid, r->gid, r->gid, r->gid) < 0 ||
		                syscall(SYS_setresuid, r->uid, r->uid, r->uid) < 0))
			_exit(126);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(126);
		/* After the uid change (which clears it): dies with this thread. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
			_exit(126);
		if (r->exe != NULL && strcmp(r->exe, "/proc/self/exe") != 0)
			argv[0] = (char *)r->exe;
		execve(r->exe, argv, r->envp);
		_exit(127);
	}
	close(sv[1]);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0) {
		rc = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(sv[0]);
		return rc;
	}
	r->pid = pid;
	r->pidfd = pfd;
	r->chan = sv[0];
	r->served = false;
	memset(r->last, 0, sizeof(r->last));
	rc = loop_add(r->l, r->pidfd, EPOLLIN, relay_on_exit, r);
	if (rc == 0)
		rc = loop_add(r->l, r->chan, EPOLLIN, relay_on_chan, r);
	if (rc < 0) {
		/* cannot watch it: stop it again (reaped here, not by the loop) */
		loop_del(r->l, r->pidfd);
		relay_close_chan(r);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(r->pidfd);
		r->pidfd = -1;
		r->pid = 0;
		return rc;
	}
	r->met->server_pid = (uint64_t)pid;
	relay_report(r, (struct relay_report){.ev = RELAY_STARTED, .pid = pid});
	return 0;
}

/* Starts a server now, or schedules a retry with backoff when that fails. */
static void relay_start_server(struct relay *r)
{
	int rc = relay_spawn(r);
	if (rc == 0)
		return;
	relay_report(r, (struct relay_report){.ev = RELAY_SPAWN_FAILED, .err = rc});
	r->due_ms = relay_now_ms() + r->backoff_ms;
	r->backoff_ms =
	    r->backoff_ms * 2 > RELAY_BACKOFF_MAX_MS ? RELAY_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* Reaps the server (its pidfd is readable); restarts it unless stopping. */
static void relay_reap(struct relay *r, bool wait)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED | (wait ? 0 : WNOHANG)) < 0 ||
	    si.si_pid == 0)
		return; /* not yet (a spurious wake-up) */
	pid_t pid = r->pid;
	loop_del(r->l, r->pidfd);
	close(r->pidfd);
	r->pidfd = -1;
	relay_close_chan(r);
	r->pid = 0;
	r->met->server_pid = 0;
	r->met->conns_workload = 0;
	bool killed = si.si_code != CLD_EXITED, sigsys = killed && si.si_status == SIGSYS;
	if (sigsys)
		r->met->server_seccomp_kills++;
	relay_report(r, (struct relay_report){.ev = RELAY_DIED,
	                                      .pid = pid,
	                                      .status = si.si_status,
	                                      .killed = killed,
	                                      .seccomp = sigsys});
	if (r->stopping)
		return;
	r->met->server_restarts++;
	if (r->served) {
		/* it served: at once (a crash of a working server is not a configuration error) */
		r->backoff_ms = RELAY_BACKOFF_MIN_MS;
		relay_start_server(r);
		return;
	}
	r->due_ms = relay_now_ms() + r->backoff_ms;
	r->backoff_ms =
	    r->backoff_ms * 2 > RELAY_BACKOFF_MAX_MS ? RELAY_BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void relay_on_exit(loop *l, int fd, uint32_t events, void *ud)
{
	relay_reap(ud, false);
}

static int relay_prepare(loop *l, void *ud)
{
	struct relay *r = ud;
	if (!r->due_ms || r->stopping)
		return -1;
	uint64_t now = relay_now_ms();
	if (now < r->due_ms)
		return (int)(r->due_ms - now);
	r->due_ms = 0;
	relay_start_server(r);
	return r->due_ms ? (int)(r->due_ms - relay_now_ms()) : -1;
}

/* ---- requests ---- */

static void relay_stats(struct relay *r, const struct privsep_msg *m)
{
	uint64_t v[PRIVSEP_STATS_N];
	for (int i = 0; i < PRIVSEP_STATS_N; i++) {
		v[i] = 0;
		for (int k = 0; k < 8; k++)
			v[i] |= (uint64_t)m->body[i * 8 + k] << (8 * k);
	}
	uint64_t *dst[PRIVSEP_STATS_N] = {
	    [PRIVSEP_ST_REQUESTS] = &r->met->workload_requests,
	    [PRIVSEP_ST_ERRORS] = &r->met->workload_errors,
	    [PRIVSEP_ST_REFUSED] = &r->met->workload_refused,
	    [PRIVSEP_ST_REFUSED_IDENT] = &r->met->conns_refused_ident,
	    [PRIVSEP_ST_REFUSED_FULL] = &r->met->conns_refused_full,
	    [PRIVSEP_ST_EVICTED] = &r->met->conns_evicted,
	    [PRIVSEP_ST_TIMED_OUT] = &r->met->conns_timed_out,
	    [PRIVSEP_ST_ACCEPT_ERRORS] = &r->met->accept_errors,
	};
	/* counters: what grew since the last report (a counter that goes back is the server's
	 * lie or its restart: nothing is added) */
	for (int i = 0; i < PRIVSEP_STATS_N; i++) {
		if (i == PRIVSEP_ST_CONNS)
			continue;
		if (v[i] > r->last[i])
			*dst[i] += v[i] - r->last[i];
		r->last[i] = v[i];
	}
	r->met->conns_workload = v[PRIVSEP_ST_CONNS];
}

static void relay_reply(struct relay *r, uint32_t id, struct api_capture *c)
{
	if (c->len > r->cfg.max_value + PRIVSEP_JSON_SLACK) {
		/* larger than the server takes in one answer (a list of very many names): said,
		 * not cut short */
		crypt_free(c->body);
		static const char big[] = "{\"error\":\"the answer is too large for the workload "
		                          "server (more than --max-value + 64 KiB)\"}\n";
		c->body = crypt_alloc(sizeof(big) - 1);
		c->len = c->body ? sizeof(big) - 1 : 0;
		if (c->body)
			memcpy(c->body, big, c->len);
		c->status = 500;
		c->ctype = "application/json";
		c->has_version = false;
		relay_refused(r, "an answer over the relay's limit (500 instead)");
	}
	struct privsep_msg m = {.type = PRIVSEP_REPLY,
	                        .id = id,
	                        .status = (uint16_t)c->status,
	                        .version = c->has_version ? c->version + 1 : 0,
	                        .arg = c->ctype,
	                        .arg_len = strlen(c->ctype),
	                        .body = c->body,
	                        .body_len = c->len};
	int rc = privsep_chan_send(r->chan, &m, -1, MSG_DONTWAIT);
	if (rc == -EAGAIN)
		/* one request at a time and it does not read its answer: stuck or hostile */
		relay_hostile(r, "does not read its answers (channel full)");
	else if (rc < 0 && rc != -EPIPE)
		/* cannot happen within the limits above; the server would wait for the answer */
		relay_hostile(r, "an answer could not be sent to it");
	/* -EPIPE: it is gone; its pidfd says so */
}

static void relay_handle(struct relay *r, const struct privsep_msg *m, int fd)
{
	char arg[PRIVSEP_PATH_MAX + 1];
	memcpy(arg, m->arg, m->arg_len);
	arg[m->arg_len] = '\0';
	struct api_conn pc = {.fd = fd};
	pc.who.pidfd = -1;
	struct api_capture cap = {0};
	struct api_req req = {.a = r->a, .pc = &pc, .capture = &cap, .method = "GET", .url = ""};
	int ir = fd >= 0 ? ident_from_socket(fd, &pc.who) : -EMFILE;
	if (m->type == PRIVSEP_CONNKEY) {
		if (ir == 0) {
			struct policy_identity pi;
			mounts_identify(r->a->mounts, &pc.who, &pi);
			char key[API_KEY_MAX];
			if (pi.container)
				snprintf(key, sizeof(key), "container %s", pi.id);
			else
				snprintf(key, sizeof(key), "uid %u", (unsigned)pc.who.uid);
			api_reply_text(&req, 200, "text/plain", key);
		} else {
			api_reply_text(&req, 403, "text/plain", "");
		}
	} else if (ir == -EMFILE) {
		api_reply_error(&req, 503, "the broker is out of file descriptors");
		relay_refused(r, "a request whose connection could not be received (out of fds)");
	} else if (ir < 0) {
		r->met->workload_refused++;
		if (ir == -ESRCH)
			api_reply_error(&req, 403,
			                "the process that opened this connection has exited");
		else
			api_reply_error(&req, 403, "cannot identify the connecting process");
		relay_refused(r, "a request from a process that cannot be identified");
	} else {
		api_workload_op(&req, m->type, arg);
		if (!req.answered)
			api_reply_error(&req, 500, "internal error: no answer");
		if ((m->type == PRIVSEP_READ || m->type == PRIVSEP_TEMPLATE_READ) &&
		    (cap.status == 404 || cap.status == 403))
			relay_refused(r, "a read of a name not granted to its caller (or missing)");
		else if (cap.status == 403)
			relay_refused(r, "a request refused (the caller has exited)");
	}
	relay_reply(r, m->id, &cap);
	crypt_free(cap.body);
	ident_clear(&pc.who);
	if (fd >= 0)
		close(fd);
}

static void relay_on_chan(loop *l, int fd, uint32_t events, void *ud)
{
	struct relay *r = ud;
	for (int i = 0; i < RELAY_IN_BATCH && r->chan >= 0; i++) {
		struct privsep_msg m;
		int cfd = -1;
		int rc =
		    privsep_chan_recv(r->chan, r->in, sizeof(r->in), 0, MSG_DONTWAIT, &m, &cfd);
		if (rc == -EAGAIN)
			return;
		if (rc == -ENOTCONN) {
			/* it closed its end: it is exiting (or useless): its pidfd restarts it */
			relay_close_chan(r);
			if (r->pid > 0 && !r->stopping)
				kill(r->pid, SIGKILL);
			return;
		}
		if (rc == -EMFILE) {
			r->served = true;
			relay_handle(r, &m, -1);
			continue;
		}
		if (rc < 0) {
			relay_hostile(r,
			              "a message that does not decode (truncated, oversized, wrong "
			              "version or shape, or wrong fds)");
			return;
		}
		if (m.type == PRIVSEP_REPLY) {
			relay_hostile(r, "a message only the daemon sends (REPLY)");
			return;
		}
		r->served = true;
		if (m.type == PRIVSEP_STATS)
			relay_stats(r, &m);
		else
			relay_handle(r, &m, cfd);
	}
}

/* ---- start and stop ---- */

static int relay_env(struct relay *r)
{
	char buf[256];
	size_t n = 0;
	const char *fixed[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", RELAY_ENV_ROLE "=server",
	                       RELAY_ENV_LISTEN_FD "=3", RELAY_ENV_CHAN_FD "=4"};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!(r->envp[n++] = strdup(fixed[i])))
			return -ENOMEM;
	if (r->drop && !(r->envp[n++] = strdup(RELAY_ENV_DROPPED "=1")))
		return -ENOMEM;
	if (r->cfg.no_seccomp && !(r->envp[n++] = strdup(SECCOMP_ENV_OFF "=1")))
		return -ENOMEM;
	snprintf(buf, sizeof(buf), RELAY_ENV_LIMITS "=%zu,%u,%u,%u,%u", r->cfg.max_value,
	         r->cfg.max_conns, r->cfg.max_conns_per_ident, r->cfg.idle_timeout_s,
	         r->cfg.request_timeout_s);
	if (!(r->envp[n++] = strdup(buf)))
		return -ENOMEM;
	/* a test server (test mode only) gets the test's own variables */
	for (char **e = environ;
	     r->exe != NULL && strcmp(r->exe, "/proc/self/exe") != 0 && *e && n < RELAY_ENV_MAX;
	     e++)
		if (strncmp(*e, "SECRETD_TEST_", 13) == 0 && !(r->envp[n++] = strdup(*e)))
			return -ENOMEM;
	r->envp[n] = NULL;
	return 0;
}

static void relay_free(struct relay *r)
{
	for (int i = 0; i < RELAY_ENV_MAX && r->envp[i]; i++)
		free(r->envp[i]);
	free(r);
}

int relay_start(relay **out, loop *l, api *a, struct metrics *met, const struct relay_config *cfg)
{
	struct relay *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->l = l;
	r->a = a;
	r->met = met;
	r->cfg = *cfg;
	r->pidfd = r->chan = -1;
	r->backoff_ms = RELAY_BACKOFF_MIN_MS;
	if (!r->cfg.max_value)
		r->cfg.max_value = SECRETD_VALUE_MAX_DEFAULT;
	r->exe = cfg->test_exec ? cfg->test_exec : "/proc/self/exe";
	const char *user = cfg->server_user ? cfg->server_user : RELAY_SERVER_USER_DEFAULT;
	r->drop = geteuid() == 0;
	if (!r->drop) {
		relay_report(r, (struct relay_report){.ev = RELAY_NOT_ROOT});
	} else {
		struct passwd *pw = getpwnam(user);
		if (pw && pw->pw_uid != 0) {
			r->uid = pw->pw_uid;
			r->gid = pw->pw_gid;
		} else {
			r->uid = RELAY_FALLBACK_ID;
			r->gid = RELAY_FALLBACK_ID;
			relay_report(
			    r, (struct relay_report){.ev = RELAY_USER_FALLBACK, .detail = user});
		}
	}
	int rc = relay_env(r);
	if (rc == 0)
		rc = loop_add_prepare(l, relay_prepare, r);
	if (rc < 0) {
		relay_free(r);
		return rc;
	}
	met->privsep = 1;
	relay_start_server(r);
	*out = r;
	return 0;
}

void relay_quiesce(relay *r)
{
	if (!r || r->stopping)
		return;
	r->stopping = true;
	r->due_ms = 0;
	if (r->pid > 0)
		kill(r->pid, SIGTERM);
}

pid_t relay_server_pid(const relay *r)
{
	return r ? r->pid : 0;
}

void relay_stop(relay *r)
{
	if (!r)
		return;
	bool signalled = r->stopping;
	r->stopping = true;
	r->due_ms = 0;
	if (r->pid > 0) {
		pid_t pid = r->pid;
		if (!signalled)
			kill(pid, SIGTERM);
		uint64_t end = relay_now_ms() + RELAY_STOP_DRAIN_MS;
		while (r->pid > 0) {
			uint64_t now = relay_now_ms();
			if (now >= end)
				break;
			struct pollfd p[2] = {{.fd = r->pidfd, .events = POLLIN},
			                      {.fd = r->chan, .events = POLLIN}};
			int n = poll(p, r->chan >= 0 ? 2 : 1, (int)(end - now));
			if (n < 0 && errno != EINTR)
				break;
			if (n > 0 && r->chan >= 0 && p[1].revents)
				relay_on_chan(r->l, r->chan, 0, r);
			if (n > 0 && p[0].revents)
				relay_reap(r, false);
		}
		int err = 0;
		if (r->pid > 0) {
			err = -ETIMEDOUT;
			kill(r->pid, SIGKILL);
			relay_reap(r, true);
		}
		relay_report(r, (struct relay_report){.ev = RELAY_STOPPED, .pid = pid, .err = err});
	}
	r->met->privsep = 0;
	relay_free(r);
}
