/* keeper.c: the keeper process (see keeper.h). */
#include "broker/keeper/keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker/keeper/chan.h"
#include "broker/keeper/msg.h"

struct held {
	uint8_t kind;
	char id[KEEPER_ID_MAX + 1];
	uint8_t *blob;
	size_t blob_len;
	int fds[KEEPER_FDS_MAX];
	unsigned nfds;
};

struct kp {
	const struct keeper_config *cfg;
	struct held *held;
	size_t nheld, capheld;
	pid_t pid; /* the worker, 0 if none */
	int pidfd, chan, sfd;
	bool ever_ready, ready, stopping, upgrading;
	unsigned restarts;
	int backoff_ms;
	int64_t respawn_at; /* monotonic ms; 0: none pending */
	int exit_status;
	bool mirror;         /* call cfg->on_held (off while seeding and resuming) */
	pid_t lingering[16]; /* dead workers whose process has not exited yet (reaped later) */
	size_t nlinger;
};

static int64_t kp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void kp_report(struct kp *k, struct keeper_event ev)
{
	ev.restarts = k->restarts;
	ev.held = k->nheld;
	k->cfg->report(k->cfg->report_ud, &ev);
}

static void kp_held_close(struct held *h)
{
	for (unsigned i = 0; i < h->nfds; i++)
		close(h->fds[i]);
	free(h->blob);
	h->blob = NULL;
	h->nfds = 0;
}

static struct held *kp_held_find(struct kp *k, uint8_t kind, const char *id)
{
	for (size_t i = 0; i < k->nheld; i++)
		if (k->held[i].kind == kind && !strcmp(k->held[i].id, id))
			return &k->held[i];
	return NULL;
}

static void kp_mirror(struct kp *k, const struct held *h, bool held)
{
	if (k->mirror && k->cfg->on_held)
		k->cfg->on_held(k->cfg->on_held_ud, h->kind, h->id, h->fds, h->nfds, h->blob,
		                h->blob_len, held);
}

static void kp_held_remove(struct kp *k, struct held *h)
{
	kp_mirror(k, h, false);
	kp_held_close(h);
	*h = k->held[--k->nheld];
}

/* Takes fds (closed on failure). */
static int kp_held_put(struct kp *k, const struct keeper_msg *m, const int *fds)
{
	struct held *h = kp_held_find(k, m->kind, m->id);
	uint8_t *blob = NULL;
	if (m->blob_len) {
		blob = malloc(m->blob_len);
		if (!blob)
			goto fail;
		memcpy(blob, m->blob, m->blob_len);
	}
	if (!h) {
		if (k->nheld >= KEEPER_HELD_MAX) {
			kp_report(k, (struct keeper_event){.kind = KEEPER_EV_HELD_FULL});
			goto fail;
		}
		if (k->nheld == k->capheld) {
			size_t cap = k->capheld ? 2 * k->capheld : 16;
			struct held *n = realloc(k->held, cap * sizeof(*n));
			if (!n)
				goto fail;
			k->held = n;
			k->capheld = cap;
		}
		h = &k->held[k->nheld++];
		memset(h, 0, sizeof(*h));
		h->kind = m->kind;
		memcpy(h->id, m->id, m->id_len + 1);
	} else {
		kp_mirror(k, h, false);
		kp_held_close(h);
	}
	h->blob = blob;
	h->blob_len = m->blob_len;
	memcpy(h->fds, fds, sizeof(int) * m->nfds);
	h->nfds = m->nfds;
	kp_mirror(k, h, true);
	return 0;
fail:
	free(blob);
	for (unsigned i = 0; i < m->nfds; i++)
		close(fds[i]);
	return -ENOMEM;
}

static struct keeper_msg kp_item(const struct held *h)
{
	struct keeper_msg m = {.type = KEEPER_ITEM,
	                       .kind = h->kind,
	                       .id_len = strlen(h->id),
	                       .blob = h->blob,
	                       .blob_len = h->blob_len,
	                       .nfds = h->nfds};
	memcpy(m.id, h->id, m.id_len + 1);
	return m;
}

static int kp_send(struct kp *k, const struct keeper_msg *m, const int *fds)
{
	int r = keeper_chan_send(k->chan, m, fds);
	if (r < 0)
		kp_report(k, (struct keeper_event){
		                 .kind = KEEPER_EV_ERROR, .err = r, .what = "answer the worker"});
	return r;
}

static void kp_close_worker_chan(struct kp *k)
{
	if (k->chan >= 0)
		close(k->chan);
	k->chan = -1;
}

static void kp_upgrade_begin(struct kp *k);

/* From READY on, the worker counts as dead when its serving thread ends: a killed worker whose
 * FUSE notifier thread is stuck behind a read only its successor can answer never exits as a
 * whole (and, as the thread-group leader's pidfd is not woken while another thread lives, the
 * serving thread is not the leader). */
static void kp_watch_thread(struct kp *k, pid_t tid)
{
	if (tid <= 0 || tid == k->pid)
		return;
	/* Its thread group must be the worker's: /proc/PID/task/TID exists. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)k->pid, (int)tid);
	if (access(path, F_OK) < 0)
		return;
	int fd = (int)syscall(SYS_pidfd_open, tid, O_EXCL); /* O_EXCL == PIDFD_THREAD */
	if (fd < 0) {
		kp_report(k, (struct keeper_event){.kind = KEEPER_EV_ERROR,
		                                   .err = -errno,
		                                   .what = "watch the serving thread"});
		return;
	}
	close(k->pidfd);
	k->pidfd = fd;
}

/* One message from the worker. */
static void kp_on_msg(struct kp *k)
{
	uint8_t buf[KEEPER_MSG_MAX];
	struct keeper_msg m;
	int fds[KEEPER_FDS_MAX];
	int r = keeper_chan_recv(k->chan, buf, &m, fds);
	if (r == -EAGAIN)
		return;
	if (r == -ENOTCONN) {
		kp_close_worker_chan(k); /* the worker is going: its pidfd tells when */
		return;
	}
	if (r < 0) {
		kp_report(k, (struct keeper_event){.kind = KEEPER_EV_BAD_MSG, .err = r});
		return;
	}
	switch (m.type) {
	case KEEPER_HOLD:
		kp_held_put(k, &m, fds);
		break;
	case KEEPER_DROP: {
		struct held *h = kp_held_find(k, m.kind, m.id);
		if (h)
			kp_held_remove(k, h);
		break;
	}
	case KEEPER_FETCH:
		for (size_t i = 0; i < k->nheld; i++) {
			struct keeper_msg it = kp_item(&k->held[i]);
			if (kp_send(k, &it, k->held[i].fds) < 0)
				return;
		}
		kp_send(k, &(struct keeper_msg){.type = KEEPER_END}, NULL);
		break;
	case KEEPER_READY:
		k->ready = k->ever_ready = true;
		k->backoff_ms = 0;
		kp_watch_thread(k, (pid_t)m.result);
		kp_report(k, (struct keeper_event){.kind = KEEPER_EV_READY, .pid = k->pid});
		break;
	case KEEPER_UPGRADE: {
		int res = k->upgrading || k->stopping ? -EBUSY : 0;
		kp_send(k, &(struct keeper_msg){.type = KEEPER_RESULT, .result = res}, NULL);
		if (res == 0)
			kp_upgrade_begin(k);
		break;
	}
	default: /* a keeper-to-worker type from the worker */
		for (unsigned i = 0; i < m.nfds; i++)
			close(fds[i]);
		kp_report(k, (struct keeper_event){.kind = KEEPER_EV_BAD_MSG, .err = -EPROTO});
		break;
	}
}

static int kp_spawn(struct kp *k)
{
	int sv[2];
	int r = keeper_chan_pair(sv);
	if (r < 0)
		return r;
	pid_t parent = getpid();
	char fdbuf[16], rbuf[16];
	snprintf(fdbuf, sizeof(fdbuf), "%d", sv[1]);
	snprintf(rbuf, sizeof(rbuf), "%u", k->restarts);
	pid_t pid = fork();
	if (pid < 0) {
		r = -errno;
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		/* The worker dies with the keeper: a worker without a keeper would serve mounts
		 * that nobody can hand over, and hold the store against the keeper's successor. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(127);
		int fl = fcntl(sv[1], F_GETFD);
		if (fl < 0 || fcntl(sv[1], F_SETFD, fl & ~FD_CLOEXEC) < 0)
			_exit(127);
		if (setenv(KEEPER_ENV_FD, fdbuf, 1) < 0 || setenv(KEEPER_ENV_RESTARTS, rbuf, 1) < 0)
			_exit(127);
		if (k->cfg->lock_fd >= 0) {
			char lbuf[16];
			snprintf(lbuf, sizeof(lbuf), "%d", k->cfg->lock_fd);
			fl = fcntl(k->cfg->lock_fd, F_GETFD);
			if (fl < 0 || fcntl(k->cfg->lock_fd, F_SETFD, fl & ~FD_CLOEXEC) < 0 ||
			    setenv(KEEPER_ENV_LOCK, lbuf, 1) < 0)
				_exit(127);
		}
		unsetenv(KEEPER_ENV_STATE);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(k->cfg->exe, k->cfg->argv);
		_exit(127);
	}
	close(sv[1]);
	/* The process until READY names its serving thread (kp_watch_thread). */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	/* Without a send timeout a worker that stops reading would block the keeper: refused. */
	struct timeval tv = {.tv_sec = KEEPER_SEND_TIMEOUT_MS / 1000,
	                     .tv_usec = (KEEPER_SEND_TIMEOUT_MS % 1000) * 1000};
	if (pidfd < 0 || setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (pidfd >= 0)
			close(pidfd);
		close(sv[0]);
		return r;
	}
	k->pid = pid;
	k->pidfd = pidfd;
	k->chan = sv[0];
	k->ready = false;
	kp_report(k, (struct keeper_event){.kind = KEEPER_EV_STARTED, .pid = pid});
	k->restarts++;
	return 0;
}

static int kp_set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -errno;
	if (fcntl(fd, F_SETFD, on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

static void kp_exec(struct kp *k)
{
	size_t cap = KEEPER_STATE_MAX, len = 0;
	uint8_t *buf = malloc(cap);
	int mfd = -1, r = buf ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < k->nheld; i++) {
		struct keeper_msg it = kp_item(&k->held[i]);
		r = keeper_state_append(buf, cap, &len, &it, k->held[i].fds);
	}
	if (r == 0) {
		mfd = memfd_create("secretd-keeper-state", 0);
		if (mfd < 0)
			r = -errno;
	}
	for (size_t off = 0; r == 0 && off < len;) {
		ssize_t n = write(mfd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = n < 0 ? -errno : -EIO;
		else
			off += (size_t)n;
	}
	free(buf);
	char mbuf[16];
	if (r == 0 && lseek(mfd, 0, SEEK_SET) < 0)
		r = -errno;
	snprintf(mbuf, sizeof(mbuf), "%d", mfd);
	for (size_t i = 0; r == 0 && i < k->nheld; i++)
		for (unsigned j = 0; r == 0 && j < k->held[i].nfds; j++)
			r = kp_set_cloexec(k->held[i].fds[j], false);
	char lbuf[16];
	snprintf(lbuf, sizeof(lbuf), "%d", k->cfg->lock_fd);
	if (r == 0 && k->cfg->lock_fd >= 0 &&
	    ((r = kp_set_cloexec(k->cfg->lock_fd, false)) < 0 ||
	     setenv(KEEPER_ENV_LOCK, lbuf, 1) < 0))
		r = r < 0 ? r : -errno;
	if (r == 0 && setenv(KEEPER_ENV_STATE, mbuf, 1) < 0)
		r = -errno;
	if (r == 0) {
		unsetenv(KEEPER_ENV_FD);
		execv(k->cfg->exe, k->cfg->argv);
		r = -errno;
	}
	/* Still the old keeper: undo, and go on with the old binary. A held fd left without
	 * FD_CLOEXEC would leak into the next worker: said, not dropped. */
	unsetenv(KEEPER_ENV_STATE);
	unsetenv(KEEPER_ENV_LOCK);
	int ur = 0;
	if (k->cfg->lock_fd >= 0)
		ur = kp_set_cloexec(k->cfg->lock_fd, true);
	for (size_t i = 0; i < k->nheld; i++)
		for (unsigned j = 0; j < k->held[i].nfds; j++) {
			int q = kp_set_cloexec(k->held[i].fds[j], true);
			ur = ur < 0 ? ur : q;
		}
	if (ur < 0)
		kp_report(k,
		          (struct keeper_event){.kind = KEEPER_EV_ERROR,
		                                .err = ur,
		                                .what = "mark the held fds close-on-exec again"});
	if (mfd >= 0)
		close(mfd);
	kp_report(k, (struct keeper_event){.kind = KEEPER_EV_UPGRADE_FAILED, .err = r});
}

static void kp_upgrade_begin(struct kp *k)
{
	if (k->upgrading || k->stopping)
		return;
	k->upgrading = true;
	kp_report(k, (struct keeper_event){.kind = KEEPER_EV_UPGRADE, .pid = k->pid});
	if (k->pid > 0) {
		/* hand off: exit without unmounting. ESRCH: it is exiting anyway, and its exit
		 * finishes the upgrade (kp_on_exit). */
		if (kill(k->pid, SIGUSR1) < 0)
			kp_report(k, (struct keeper_event){.kind = KEEPER_EV_ERROR,
			                                   .err = -errno,
			                                   .what = "ask the worker to hand off"});
	} else {
		kp_exec(k);
		k->upgrading = false;
		k->respawn_at = kp_now_ms();
	}
}

/* The worker has exited: reap it and decide. Returns 1 when the keeper should exit. */
static int kp_on_exit(struct kp *k)
{
	int st = 0;
	pid_t p;
	/* Its main thread has exited. A normal exit or a stop is reaped at once; a killed process
	 * whose other thread is stuck in the kernel lingers: it is reaped later, and the keeper
	 * goes on (a stop waits for it, the status matters then). */
	do
		p = waitpid(k->pid, &st, k->stopping || k->upgrading ? 0 : WNOHANG);
	while (p < 0 && errno == EINTR);
	if (p == 0) {
		st = SIGKILL; /* unknown yet: reported as killed */
		if (k->nlinger < sizeof(k->lingering) / sizeof(k->lingering[0]))
			k->lingering[k->nlinger++] = k->pid;
		else
			kill(k->pid, SIGKILL); /* already dying; reaped by init if we exit */
	}
	close(k->pidfd);
	k->pidfd = -1;
	kp_close_worker_chan(k);
	pid_t dead = k->pid;
	k->pid = 0;
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	if (k->stopping) {
		kp_report(
		    k, (struct keeper_event){.kind = KEEPER_EV_EXITED, .pid = dead, .status = st});
		k->exit_status = code;
		return 1;
	}
	if (k->upgrading) {
		kp_report(
		    k, (struct keeper_event){.kind = KEEPER_EV_EXITED, .pid = dead, .status = st});
		kp_exec(k); /* returns only on failure */
		k->upgrading = false;
		k->respawn_at = kp_now_ms();
		return 0;
	}
	if (!k->ever_ready) {
		/* The first worker never served: a configuration error (bad key, busy store, ...)
		 * that restarting will not fix. */
		kp_report(
		    k, (struct keeper_event){.kind = KEEPER_EV_GAVE_UP, .pid = dead, .status = st});
		k->exit_status = code ? code : 1;
		return 1;
	}
	if (k->ready)
		k->backoff_ms = 0; /* it served: restart at once */
	else
		k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : KEEPER_BACKOFF_MIN_MS;
	if (k->backoff_ms > KEEPER_BACKOFF_MAX_MS)
		k->backoff_ms = KEEPER_BACKOFF_MAX_MS;
	kp_report(k, (struct keeper_event){.kind = KEEPER_EV_DIED,
	                                   .pid = dead,
	                                   .status = st,
	                                   .err = p == 0 ? -EINPROGRESS : 0,
	                                   .backoff_ms = k->backoff_ms});
	k->respawn_at = kp_now_ms() + k->backoff_ms;
	return 0;
}

static int kp_resume_one(void *ud, const struct keeper_msg *m, const int *fds)
{
	struct kp *k = ud;
	int own[KEEPER_FDS_MAX];
	for (unsigned i = 0; i < m->nfds; i++) {
		if (kp_set_cloexec(fds[i], true) < 0) {
			for (unsigned j = 0; j < i; j++)
				close(own[j]);
			return 0; /* not an open fd: skip the entry */
		}
		own[i] = fds[i];
	}
	struct keeper_msg h = *m;
	h.type = KEEPER_HOLD;
	kp_held_put(k, &h, own);
	return 0;
}

/* Entries handed in at start (systemd's fd store): held as a worker's HOLD would be. */
static void kp_seed(struct kp *k)
{
	for (size_t i = 0; i < k->cfg->nseed; i++) {
		const struct keeper_seed *s = &k->cfg->seed[i];
		struct keeper_msg m = {.type = KEEPER_HOLD,
		                       .kind = s->kind,
		                       .id_len = s->id ? strnlen(s->id, KEEPER_ID_MAX + 1) : 0,
		                       .blob = s->blob,
		                       .blob_len = s->blob_len,
		                       .nfds = s->nfds};
		uint8_t buf[KEEPER_MSG_MAX];
		size_t len;
		int own[KEEPER_FDS_MAX];
		if (s->nfds > KEEPER_FDS_MAX || m.id_len > KEEPER_ID_MAX) {
			for (unsigned j = 0; j < s->nfds && j < 2; j++)
				close(s->fds[j]);
			kp_report(k,
			          (struct keeper_event){.kind = KEEPER_EV_BAD_MSG, .err = -EPROTO});
			continue;
		}
		memcpy(m.id, s->id, m.id_len);
		m.id[m.id_len] = '\0';
		memcpy(own, s->fds, sizeof(int) * s->nfds);
		/* The shape a worker's HOLD must have, checked by the same codec. */
		if (keeper_msg_encode(&m, buf, sizeof(buf), &len) < 0) {
			for (unsigned j = 0; j < s->nfds; j++)
				close(own[j]);
			kp_report(k,
			          (struct keeper_event){.kind = KEEPER_EV_BAD_MSG, .err = -EPROTO});
			continue;
		}
		kp_held_put(k, &m, own);
	}
}

/* After an upgrade exec: take over the fds the previous keeper listed. */
static void kp_resume(struct kp *k)
{
	const char *v = getenv(KEEPER_ENV_STATE);
	if (!v)
		return;
	char *end;
	long fd = strtol(v, &end, 10);
	unsetenv(KEEPER_ENV_STATE);
	int r = 0;
	struct stat st;
	uint8_t *buf = NULL;
	if (*v == '\0' || *end || fd < 3 || fd > INT32_MAX || fstat((int)fd, &st) < 0) {
		r = -EBADF;
		goto out;
	}
	if (st.st_size < 0 || st.st_size > KEEPER_STATE_MAX) {
		r = -EPROTO;
		goto out;
	}
	size_t len = (size_t)st.st_size;
	buf = malloc(len ? len : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	ssize_t n = pread((int)fd, buf, len, 0);
	if (n < 0 || (size_t)n != len)
		r = n < 0 ? -errno : -EIO;
	else
		r = keeper_state_parse(buf, len, kp_resume_one, k);
out:
	free(buf);
	if (r != -EBADF)
		close((int)fd);
	kp_report(k, (struct keeper_event){.kind = KEEPER_EV_RESUMED, .err = r});
}

int keeper_run(const struct keeper_config *cfg)
{
	struct kp k = {.cfg = cfg, .pidfd = -1, .chan = -1, .sfd = -1};
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	k.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (k.sfd < 0) {
		kp_report(&k, (struct keeper_event){
		                  .kind = KEEPER_EV_ERROR, .err = -errno, .what = "signalfd"});
		return 1;
	}
	bool resumed = getenv(KEEPER_ENV_STATE) != NULL;
	kp_resume(&k);
	kp_seed(&k);
	k.mirror = true;
	/* After an upgrade the workers served before: a new one that dies is restarted. */
	k.ever_ready = resumed;
	k.respawn_at = kp_now_ms();
	for (;;) {
		for (size_t i = 0; i < k.nlinger;) {
			if (waitpid(k.lingering[i], NULL, WNOHANG) != 0)
				k.lingering[i] = k.lingering[--k.nlinger];
			else
				i++;
		}
		if (k.pid == 0 && k.respawn_at && kp_now_ms() >= k.respawn_at) {
			k.respawn_at = 0;
			int r = kp_spawn(&k);
			if (r < 0) {
				kp_report(&k, (struct keeper_event){.kind = KEEPER_EV_ERROR,
				                                    .err = r,
				                                    .what = "start the worker"});
				k.backoff_ms =
				    k.backoff_ms ? 2 * k.backoff_ms : KEEPER_BACKOFF_MIN_MS;
				if (k.backoff_ms > KEEPER_BACKOFF_MAX_MS)
					k.backoff_ms = KEEPER_BACKOFF_MAX_MS;
				k.respawn_at = kp_now_ms() + k.backoff_ms;
			}
		}
		struct pollfd p[3] = {{.fd = k.sfd, .events = POLLIN},
		                      {.fd = k.chan, .events = POLLIN},
		                      {.fd = k.pidfd, .events = POLLIN}};
		int timeout = k.nlinger ? 200 : -1; /* reap lingering workers */
		if (k.pid == 0 && k.respawn_at) {
			int64_t d = k.respawn_at - kp_now_ms();
			timeout = d < 0 ? 0 : (int)d;
		}
		int n = poll(p, 3, timeout);
		if (n < 0 && errno != EINTR) {
			kp_report(&k, (struct keeper_event){
			                  .kind = KEEPER_EV_ERROR, .err = -errno, .what = "poll"});
			break;
		}
		if (n <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(k.sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
					k.stopping = true;
					if (k.pid > 0)
						kill(k.pid, (int)si.ssi_signo);
				} else if (si.ssi_signo == SIGHUP) {
					kp_upgrade_begin(&k);
				}
			}
			if (k.stopping && k.pid == 0)
				break;
		}
		/* Messages before the exit: a worker's last HOLD counts. */
		if (k.chan >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			kp_on_msg(&k);
		if (k.pidfd >= 0 && (p[2].revents & POLLIN)) {
			while (k.chan >= 0) { /* read what it sent before it died */
				struct pollfd q = {.fd = k.chan, .events = POLLIN};
				if (poll(&q, 1, 0) <= 0 || !(q.revents & POLLIN))
					break;
				kp_on_msg(&k);
			}
			if (kp_on_exit(&k))
				break;
		}
	}
	for (size_t i = 0; i < k.nheld; i++)
		kp_held_close(&k.held[i]);
	free(k.held);
	kp_close_worker_chan(&k);
	close(k.sfd);
	return k.exit_status;
}
