#include "broker/engine/sched.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

extern char **environ;

/* A running exec child. */
struct sjob {
	char *name;
	uint8_t *val; /* crypt_alloc'd via store_generate */
	size_t len;
	pid_t pid;
	int pidfd;
	int64_t deadline; /* unix seconds */
	bool killed;
	struct sjob *next;
};

/* A firing in flight: its writes go through the service's write queue (cluster mode: each etcd
 * call on the writer thread, the loop never waits); f itself is the writes' token. A rotation
 * is SF_NEXT (the next firing written first), then SF_ROTATE (the new value; after its exec
 * command, if any, exited 0); an expiry is SF_EXPIRE. While a firing of a secret is in flight
 * nothing else fires for it (the timer is not armed for it either). */
enum sfire_step { SF_NEXT, SF_ROTATE, SF_EXPIRE };
struct sfire {
	struct sfire *next;
	char *name;
	enum sfire_step step;
	int64_t at; /* SF_NEXT: the next firing time to write */
	enum store_charset cs;
	uint32_t length;
	char *exec;   /* SF_NEXT: the schedule's command (NULL: none) */
	uint8_t *val; /* SF_ROTATE: the value (crypt_alloc'd) */
	size_t len;
	bool woken; /* the service's waker called: continued at the next prepare */
};

struct sched {
	loop *loop;
	store *store;
	service *service;
	sched_report_cb report;
	void *ud;
	int tfd;
	uint64_t gen; /* store_lifecycle_gen as of the last load */
	struct store_lifecycle *lc;
	size_t nlc;
	struct sjob *jobs;
	unsigned njobs;
	struct sfire *fires; /* in flight */
	bool woken;          /* a firing was woken */
	bool in_timer;       /* inside sched_on_timer (it re-arms at its end) */
};

static int64_t sched_now(void)
{
	return (int64_t)time(NULL);
}

/* A rotation that failed before the store: recorded by the service; a record that cannot be
 * written is reported too (the service counts it). */
static void sched_failed(sched *sc, const char *name, const char *result, const char *why)
{
	int r = service_rotate_failed(sc->service, name, result);
	if (r < 0) {
		char w[256];
		snprintf(w, sizeof(w), "%s; its audit record could not be written: %s", why,
		         strerror(-r));
		sc->report(sc->ud, name, SCHED_FAILED, 0, w);
		return;
	}
	sc->report(sc->ud, name, SCHED_FAILED, 0, why);
}

static struct sjob *sched_job_find(sched *sc, const char *name)
{
	for (struct sjob *j = sc->jobs; j; j = j->next)
		if (strcmp(j->name, name) == 0)
			return j;
	return NULL;
}

static const struct store_lifecycle *sched_lc_find(sched *sc, const char *name)
{
	for (size_t i = 0; i < sc->nlc; i++)
		if (strcmp(sc->lc[i].name, name) == 0)
			return &sc->lc[i];
	return NULL;
}

static struct sfire *sched_fire_find(sched *sc, const char *name)
{
	for (struct sfire *f = sc->fires; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* Arms the timer at the earliest expiry, schedule (not running) or child deadline. */
static int sched_arm(sched *sc)
{
	int64_t due = 0;
	for (size_t i = 0; i < sc->nlc; i++) {
		const struct store_lifecycle *l = &sc->lc[i];
		if (sched_fire_find(sc, l->name))
			continue; /* in flight: its end re-arms */
		if (l->expires > 0 && (!due || l->expires < due))
			due = l->expires;
		if (l->every > 0 && !sched_job_find(sc, l->name) && (!due || l->next < due))
			due = l->next > 0 ? l->next : 1;
	}
	for (struct sjob *j = sc->jobs; j; j = j->next)
		if (!j->killed && (!due || j->deadline < due))
			due = j->deadline;
	/* a node that does not fire (cluster mode, not the leader) looks again every
	 * SCHED_FOLLOWER_POLL_S: it may become the leader */
	int64_t poll = sched_now() + SCHED_FOLLOWER_POLL_S;
	if (due && due < poll && !service_fires(sc->service))
		due = poll;
	struct itimerspec its = {0};
	its.it_value.tv_sec = due; /* in the past: fires at once; 0: disarmed */
	if (timerfd_settime(sc->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	return 0;
}

static int sched_load(sched *sc)
{
	struct store_lifecycle *v = NULL;
	size_t n = 0;
	uint64_t gen = store_lifecycle_gen(sc->store);
	int r = store_lifecycles(sc->store, &v, &n);
	if (r < 0)
		return r;
	store_lifecycles_free(sc->lc, sc->nlc);
	sc->lc = v;
	sc->nlc = n;
	sc->gen = gen;
	return sched_arm(sc);
}

static void sched_job_free(struct sjob *j)
{
	if (!j)
		return;
	if (j->pidfd >= 0)
		close(j->pidfd);
	store_value_free(j->val);
	free(j->name);
	free(j);
}

static void sched_job_remove(sched *sc, struct sjob *j)
{
	for (struct sjob **p = &sc->jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			sc->njobs--;
			break;
		}
	if (j->pidfd >= 0)
		loop_del(sc->loop, j->pidfd);
	sched_job_free(j);
}

/* After a change to name, stored: mounts could not follow (res from the service), the
 * containers are failed closed and retried by mounts, and the caller hears of it. */
static void sched_unapplied(sched *sc, const char *name, const struct service_result *res)
{
	if (res->refresh_err)
		sc->report(sc->ud, name, SCHED_UNAPPLIED, res->unapplied,
		           service_strerror(res->refresh_err));
}

/* The outcome of a scheduled rotation's store (the service audits and refreshes): reported. */
static void sched_rotated(sched *sc, const char *name, int r, const struct service_result *res)
{
	if (r < 0) {
		char w[256];
		snprintf(w, sizeof(w), "%s%s%s", strerror(-r),
		         res->audit_err ? "; its audit record could not be written: " : "",
		         res->audit_err ? strerror(-res->audit_err) : "");
		sc->report(sc->ud, name, SCHED_FAILED, 0, w);
		return;
	}
	sc->report(sc->ud, name, SCHED_ROTATED, res->version, NULL);
	sched_unapplied(sc, name, res);
}

static int sched_spawn(sched *sc, const char *name, const char *cmd, uint8_t *val, size_t len);

static void sched_fire_free(struct sfire *f)
{
	if (f->val)
		store_value_free(f->val);
	free(f->name);
	free(f->exec);
	free(f);
}

/* A new firing of name (copies what it needs: the lifecycle table is reloaded meanwhile). */
static struct sfire *sched_fire_new(sched *sc, const char *name, enum sfire_step step,
                                    const struct store_lifecycle *l, int64_t at)
{
	struct sfire *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->step = step;
	f->at = at;
	f->name = strdup(name);
	if (l) {
		f->cs = l->charset;
		f->length = l->length;
		f->exec = l->exec ? strdup(l->exec) : NULL;
	}
	if (!f->name || (l && l->exec && !f->exec)) {
		sched_fire_free(f);
		return NULL;
	}
	f->next = sc->fires;
	sc->fires = f;
	return f;
}

/* f is over: out of the list, its write forgotten (one whose local change failed is still
 * queued until then); the timer is armed for its secret again. */
static void sched_fire_end(sched *sc, struct sfire *f)
{
	service_write_forget(sc->service, f);
	for (struct sfire **p = &sc->fires; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	sched_fire_free(f);
	if (sc->in_timer)
		return;
	int r = sched_arm(sc);
	if (r < 0) /* the timer could not be set: say so (the next schedule change re-arms it) */
		sc->report(sc->ud, "(schedules)", SCHED_FAILED, 0, strerror(-r));
}

/* Runs f's steps until one waits for etcd (-EINPROGRESS: the waker continues it) or it is
 * over. Failures are reported (and audited by the service) as when the writes were
 * synchronous: a next firing not written leaves the schedule due (tried again at the timer's
 * next turn, while this node leads); a rotation not stored waits for the next period; an expiry
 * not made is tried again at the timer's next turn. */
static void sched_fire_run(sched *sc, struct sfire *f)
{
	for (;;) {
		struct service_result res;
		int r;
		switch (f->step) {
		case SF_EXPIRE:
			r = service_expire(sc->service, f, f->name, &res);
			if (r == -EINPROGRESS)
				return;
			if (r == 0) {
				sc->report(sc->ud, f->name, SCHED_EXPIRED, 0, NULL);
				sched_unapplied(sc, f->name, &res);
			} else if (r != -ENOENT) {
				sc->report(sc->ud, f->name, SCHED_FAILED, 0, strerror(-r));
			}
			sched_fire_end(sc, f);
			return;
		case SF_ROTATE:
			r = service_rotate_scheduled(sc->service, f, f->name, f->val, f->len, &res);
			if (r == -EINPROGRESS)
				return;
			sched_rotated(sc, f->name, r, &res);
			sched_fire_end(sc, f);
			return;
		case SF_NEXT:
			break;
		}
		/* The next firing is set first: a failing rotation is retried next period, not in
		 * a loop. */
		r = service_schedule_next(sc->service, f, f->name, f->at);
		if (r == -EINPROGRESS)
			return;
		service_write_forget(sc->service, f); /* the token moves on to the rotation */
		if (r < 0) {
			sc->report(sc->ud, f->name, SCHED_FAILED, 0, strerror(-r));
			sched_fire_end(sc, f);
			return;
		}
		uint8_t *val = NULL;
		r = store_generate(f->cs, f->length, &val);
		if (r < 0) {
			sc->report(sc->ud, f->name, SCHED_FAILED, 0, strerror(-r));
			sched_fire_end(sc, f);
			return;
		}
		if (f->exec) {
			r = sched_spawn(sc, f->name, f->exec, val, f->length);
			if (r < 0) {
				store_value_free(val);
				sched_failed(sc, f->name, "exec failed", strerror(-r));
			}
			sched_fire_end(sc, f); /* the child's exit continues (sched_on_child) */
			return;
		}
		f->val = val;
		f->len = f->length;
		f->step = SF_ROTATE;
	}
}

/* The service's waker (loop thread): the firing token continues at the next prepare, outside
 * any service call. */
static void sched_wake(void *ud, const void *token)
{
	sched *sc = ud;
	for (struct sfire *f = sc->fires; f; f = f->next)
		if (f == token) {
			f->woken = true;
			sc->woken = true;
		}
}

static void sched_on_child(loop *l, int fd, uint32_t events, void *ud)
{
	sched *sc = ud;
	struct sjob *j = NULL;
	for (struct sjob *k = sc->jobs; k; k = k->next)
		if (k->pidfd == fd)
			j = k;
	if (!j)
		return;
	siginfo_t si = {0};
	if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return; /* not yet */
	char why[96];
	bool ok = si.si_code == CLD_EXITED && si.si_status == 0;
	if (j->killed)
		snprintf(why, sizeof(why), "exec timed out after %ds", SCHED_EXEC_TIMEOUT_S);
	else if (si.si_code == CLD_EXITED)
		snprintf(why, sizeof(why), "exec exited with status %d", si.si_status);
	else
		snprintf(why, sizeof(why), "exec killed by signal %d", si.si_status);
	struct sfire *f = NULL;
	if (ok && !j->killed) {
		/* still scheduled (not deleted meanwhile): its value is stored (a firing) */
		if (sched_lc_find(sc, j->name)) {
			f = sched_fire_new(sc, j->name, SF_ROTATE, NULL, 0);
			if (!f)
				sched_failed(sc, j->name, "error", strerror(ENOMEM));
		}
		if (f) {
			f->val = j->val;
			f->len = j->len;
			j->val = NULL;
		}
	} else {
		sched_failed(sc, j->name, j->killed ? "exec timed out" : "exec failed", why);
	}
	sched_job_remove(sc, j);
	if (f) {
		sc->in_timer = true; /* re-armed below */
		sched_fire_run(sc, f);
		sc->in_timer = false;
	}
	int r = sched_arm(sc);
	if (r < 0) /* the timer could not be set: say so (the next schedule change re-arms it) */
		sc->report(sc->ud, "(schedules)", SCHED_FAILED, 0, strerror(-r));
}

/* Starts `/bin/sh -c exec` with val on its stdin. */
static int sched_spawn(sched *sc, const char *name, const char *cmd, uint8_t *val, size_t len)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	_cleanup_close_ int rd = pfd[0], wr = pfd[1];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_adddup2(&fa, rd, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	sigset_t none, def;
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	                                  POSIX_SPAWN_SETSID);
	char envname[300];
	snprintf(envname, sizeof(envname), "SECRETD_SECRET=%s", name);
	char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	                envname, NULL};
	char *argv[] = {"sh", "-c", (char *)cmd, NULL};
	pid_t pid;
	int r = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r != 0)
		return -r;
	int pidfd = (int)pidfd_open(pid, 0);
	if (pidfd < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		return r;
	}
	/* At most STORE_GEN_LENGTH_MAX bytes into an empty pipe: never blocks, never partial.
	 * A child that exits without reading gets EPIPE here, which its exit status reports. */
	int fl = fcntl(wr, F_GETFL);
	(void)fcntl(wr, F_SETFL, fl | O_NONBLOCK);
	(void)!write(wr, val, len);
	struct sjob *j = calloc(1, sizeof(*j));
	if (!j || !(j->name = strdup(name))) {
		free(j);
		pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		(void)waitid((idtype_t)P_PIDFD, (id_t)pidfd, &(siginfo_t){0}, WEXITED);
		close(pidfd);
		return -ENOMEM;
	}
	j->val = val;
	j->len = len;
	j->pid = pid;
	j->pidfd = pidfd;
	j->deadline = sched_now() + SCHED_EXEC_TIMEOUT_S;
	r = loop_add(sc->loop, pidfd, EPOLLIN, sched_on_child, sc);
	if (r < 0) {
		j->val = NULL;
		pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
		(void)waitid((idtype_t)P_PIDFD, (id_t)pidfd, &(siginfo_t){0}, WEXITED);
		sched_job_free(j);
		return r;
	}
	j->next = sc->jobs;
	sc->jobs = j;
	sc->njobs++;
	return 0;
}

static void sched_on_timer(loop *l, int fd, uint32_t events, void *ud)
{
	sched *sc = ud;
	uint64_t ticks;
	(void)!read(fd, &ticks, sizeof(ticks));
	int64_t now = sched_now();
	for (struct sjob *j = sc->jobs; j; j = j->next)
		if (!j->killed && j->deadline <= now) {
			j->killed = true;
			(void)pidfd_send_signal(j->pidfd, SIGKILL, NULL, 0);
		}
	/* Work on the loaded copy; each change bumps the generation and we reload after. Only the
	 * node that fires (cluster mode: the leader) expires and rotates. */
	bool fires = service_fires(sc->service);
	sc->in_timer = true;
	for (size_t i = 0; fires && i < sc->nlc; i++) {
		const struct store_lifecycle *lc = &sc->lc[i];
		struct sfire *f = NULL;
		if (sched_fire_find(sc, lc->name))
			continue; /* in flight: nothing fires twice */
		if (lc->expires > 0 && lc->expires <= now)
			f = sched_fire_new(sc, lc->name, SF_EXPIRE, NULL, 0);
		else if (lc->every > 0 && lc->next <= now && !sched_job_find(sc, lc->name))
			f = sched_fire_new(sc, lc->name, SF_NEXT, lc, now + lc->every);
		else
			continue;
		if (f)
			sched_fire_run(sc, f);
		else
			sc->report(sc->ud, lc->name, SCHED_FAILED, 0, strerror(ENOMEM));
	}
	sc->in_timer = false;
	int r = sched_load(sc);
	if (r < 0)
		sc->report(sc->ud, "(schedules)", SCHED_FAILED, 0, strerror(-r));
}

static int sched_prepare(loop *l, void *ud)
{
	sched *sc = ud;
	while (sc->woken) { /* firings whose write etcd answered continue */
		sc->woken = false;
		for (struct sfire *f = sc->fires; f; f = f->next)
			if (f->woken) {
				f->woken = false;
				sc->woken = true; /* the list may change: scan again */
				sched_fire_run(sc, f);
				break;
			}
	}
	if (store_lifecycle_gen(sc->store) != sc->gen) {
		int r = sched_load(sc);
		if (r < 0) {
			sc->gen =
			    store_lifecycle_gen(sc->store); /* reported once, not every turn */
			sc->report(sc->ud, "(schedules)", SCHED_FAILED, 0, strerror(-r));
		}
	}
	return -1;
}

int sched_new(sched **out, loop *l, store *s, service *sv, sched_report_cb report, void *ud)
{
	if (!out || !l || !s || !sv || !report)
		return -EINVAL;
	sched *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	*sc = (struct sched){.loop = l, .store = s, .service = sv, .report = report, .ud = ud};
	sc->tfd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	int r = sc->tfd < 0 ? -errno : 0;
	if (r == 0)
		r = sched_load(sc);
	if (r == 0)
		r = loop_add(l, sc->tfd, EPOLLIN, sched_on_timer, sc);
	if (r == 0)
		r = loop_add_prepare(l, sched_prepare, sc);
	if (r == 0)
		service_set_sched_waker(sv, sched_wake, sc);
	if (r < 0) {
		if (sc->tfd >= 0) {
			loop_del(l, sc->tfd);
			close(sc->tfd);
		}
		store_lifecycles_free(sc->lc, sc->nlc);
		free(sc);
		return r;
	}
	*out = sc;
	return 0;
}

void sched_free(sched *sc)
{
	if (!sc)
		return;
	service_set_sched_waker(sc->service, NULL, NULL);
	while (sc->fires) { /* a write in flight ends with no one to tell (service.h) */
		struct sfire *f = sc->fires;
		sc->fires = f->next;
		service_write_forget(sc->service, f);
		sched_fire_free(f);
	}
	while (sc->jobs) {
		struct sjob *j = sc->jobs;
		(void)pidfd_send_signal(j->pidfd, SIGKILL, NULL, 0);
		(void)waitid((idtype_t)P_PIDFD, (id_t)j->pidfd, &(siginfo_t){0}, WEXITED);
		sched_job_remove(sc, j);
	}
	loop_del(sc->loop, sc->tfd);
	close(sc->tfd);
	store_lifecycles_free(sc->lc, sc->nlc);
	free(sc);
}

unsigned sched_running(const sched *sc)
{
	return sc ? sc->njobs : 0;
}
