/* main_server: the server process's top level (SECRETD_ROLE=server, started by the daemon
 * process's relay: broker/http/relay.h). It checks that it holds no privilege, then serves
 * workload.sock on the fds it inherited and relays every request to the daemon process. It
 * exits when the daemon process is gone (the channel ends) and, on SIGTERM, stops accepting
 * and finishes what it accepted (at most MAIN_SERVER_DRAIN_MS). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "broker/crypto/crypt.h"
#include "broker/http/api.h"
#include "broker/http/relay.h"
#include "broker/http/routes.h"
#include "broker/os/log.h"
#include "broker/os/loop.h"
#include "broker/os/seccomp.h"
#include "broker/main_int.h"

#define MAIN_SERVER_DRAIN_MS 2000
/* Test hook (passed only by a daemon in test mode, with SECRETD_TEST_SERVER_EXEC): on SIGUSR2
 * the server makes the forbidden system call this names (seccomp_try), so that a test sees the
 * filter kill it and the daemon report and restart it; "log": it writes a log line and serves
 * on (a line under the filter must not kill it). */
#define MAIN_SERVER_ENV_TEST_SYSCALL "SECRETD_TEST_SERVER_SYSCALL"

struct main_server {
	relay_server *rs;
	api *a;
	struct metrics met;
	const char *test_syscall; /* NULL, or the test hook's system call */
	uint64_t drain_at;        /* monotonic ms (0: not draining) */
	int rc;
};

static uint64_t main_server_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int main_server_fd(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long n = v ? strtol(v, &end, 10) : -1;
	return v && *v && !*end && n > 2 && n < 1024 ? (int)n : -1;
}

static void main_server_on_signal(loop *l, int fd, uint32_t events, void *ud)
{
	struct main_server *ms = ud;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGUSR2 && ms->test_syscall && !strcmp(ms->test_syscall, "log")) {
		log_warn("server: test: a log line under the seccomp filter");
		return;
	}
	if (si.ssi_signo == SIGUSR2 && ms->test_syscall) {
		int r = seccomp_try(ms->test_syscall);
		log_error("server: test: the system call '%s' was let through (%s)",
		          ms->test_syscall, r < 0 ? strerror(-r) : "succeeded");
		ms->rc = 3;
		loop_quit(l);
		return;
	}
	if (ms->drain_at)
		return;
	api_quiesce(ms->a);
	ms->drain_at = main_server_ms() + MAIN_SERVER_DRAIN_MS;
}

static void main_server_on_chan(loop *l, int fd, uint32_t events, void *ud)
{
	struct main_server *ms = ud;
	int r = relay_server_on_readable(ms->rs);
	if (r == -ENOTCONN) {
		loop_quit(l); /* the daemon process is gone */
	} else if (r < 0) {
		log_error("server: the daemon process sent something unexpected (%s)",
		          strerror(-r));
		ms->rc = 1;
		loop_quit(l);
	}
}

static int main_server_prepare(loop *l, void *ud)
{
	struct main_server *ms = ud;
	if (relay_server_stats(ms->rs, &ms->met) == -ENOTCONN) {
		loop_quit(l);
		return 0;
	}
	if (!ms->drain_at)
		return 1000; /* the counters of refusals without any event are sent within this */
	unsigned pending = api_pending(ms->a);
	if (pending == 0 || main_server_ms() >= ms->drain_at) {
		if (pending)
			log_warn("server: %u connection(s) still under way after %d ms are closed",
			         pending, MAIN_SERVER_DRAIN_MS);
		loop_quit(l);
		return 0;
	}
	return 10;
}

/* The seccomp allow-list (broker/os/seccomp.h), last before serving: everything is open and
 * mapped. What glibc, our log and jansson would open lazily is loaded first (the time zone for
 * the Date header and log lines, the journal check's fstat; jansson's hash seed, read from
 * /dev/urandom at the first JSON object). */
static int main_server_sandbox(void)
{
	if (getenv(SECCOMP_ENV_OFF)) {
		log_warn("server: no seccomp filter (--no-seccomp)");
		return 0;
	}
	if (!seccomp_supported()) {
		log_warn(
		    "server: no seccomp filter in this build (a sanitizer build, or not x86_64)");
		return 0;
	}
	log_prepare();
	json_object_seed(0);
	return seccomp_server_install();
}

int main_server(void)
{
	prctl(PR_SET_NAME, "secretd-server", 0, 0, 0); /* comm: "exe" after the exec otherwise */
	int r = crypt_harden_process();
	if (r < 0) {
		log_error("server: cannot disable core dumps or lock memory (%s)", strerror(-r));
		return 1;
	}
	char what[128];
	bool dropped = getenv(RELAY_ENV_DROPPED) != NULL;
	if (relay_server_check_privs(dropped, what, sizeof(what)) < 0) {
		log_error("server: refusing to serve with a privilege left (%s)", what);
		return 1;
	}
	int lfd = main_server_fd(RELAY_ENV_LISTEN_FD), cfd = main_server_fd(RELAY_ENV_CHAN_FD);
	const char *lim = getenv(RELAY_ENV_LIMITS);
	size_t max_value = 0;
	unsigned mc = 0, mpi = 0, idle = 0, req = 0;
	if (lfd < 0 || cfd < 0 || !lim ||
	    sscanf(lim, "%zu,%u,%u,%u,%u", &max_value, &mc, &mpi, &idle, &req) != 5) {
		log_error("server: started without its fds or limits");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	struct main_server ms = {.test_syscall = getenv(MAIN_SERVER_ENV_TEST_SYSCALL)};
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (ms.test_syscall)
		sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	loop *l = NULL;
	int inh[2] = {-1, lfd};
	r = sfd < 0 ? -errno : loop_new(&l);
	if (r == 0)
		r = relay_server_new(&ms.rs, cfd, max_value);
	if (r < 0) {
		log_error("server: %s", strerror(-r));
		return 1;
	}
	struct api_config ac = {.runtime_dir = "/nonexistent",
	                        .workload_routes = &api_workload_relay_routes,
	                        .max_value = max_value,
	                        .max_conns = mc,
	                        .max_conns_per_ident = mpi,
	                        .idle_timeout_s = idle,
	                        .request_timeout_s = req,
	                        .inherit_fds = inh,
	                        .workload_only = true,
	                        .conn_key = relay_server_conn_key,
	                        .conn_key_ud = ms.rs};
	r = loop_add(l, sfd, EPOLLIN, main_server_on_signal, &ms);
	if (r == 0)
		r = loop_add(l, relay_server_fd(ms.rs), EPOLLIN, main_server_on_chan, &ms);
	if (r == 0)
		r = api_start(&ms.a, l, NULL, NULL, &ms.met, &ac);
	if (r == 0)
		r = loop_add_prepare(l, main_server_prepare, &ms);
	if (r < 0) {
		log_error("server: cannot serve workload.sock: %s", strerror(-r));
		return 1;
	}
	r = main_server_sandbox();
	if (r < 0) {
		log_error("server: cannot install its seccomp filter: %s", strerror(-r));
		return 1;
	}
	r = loop_run(l);
	if (r < 0) {
		log_error("server: event loop failed: %s", strerror(-r));
		ms.rc = 1;
	}
	/* the socket file is the daemon process's: never unlinked here */
	api_release(ms.a);
	relay_server_free(ms.rs);
	loop_free(l);
	close(sfd);
	return ms.rc;
}
