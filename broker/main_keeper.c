/* main_keeper.c: `secretd run` as the keeper process (broker/keeper), and its log lines. The
 * daemon's top level, like main.c: the only other file that logs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "broker/keeper/keeper.h"
#include "broker/keeper/msg.h"
#include "broker/main_int.h"
#include "broker/store/store.h"
#include "broker/os/log.h"

static void main_keeper_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st),
		         strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "wait status %#x", st);
}

static void main_keeper_report(void *ud, const struct keeper_event *ev)
{
	struct log_rl *bad = ud;
	char st[96];
	main_keeper_status(ev->status, st, sizeof(st));
	switch (ev->kind) {
	case KEEPER_EV_STARTED:
		if (ev->restarts)
			log_info("keeper: daemon process %d started (restart %u), holding %zu "
			         "connection(s) for it",
			         (int)ev->pid, ev->restarts, ev->held);
		else
			log_info("keeper: daemon process %d started", (int)ev->pid);
		break;
	case KEEPER_EV_READY:
		log_info("keeper: daemon process %d serves", (int)ev->pid);
		break;
	case KEEPER_EV_DIED:
		log_error("keeper: daemon process %d died (%s%s): restarting it %s, its %zu held "
		          "connection(s) wait meanwhile",
		          (int)ev->pid, st,
		          ev->err == -EINPROGRESS
		              ? "; its process has not exited yet: a thread may be stuck in the "
		                "kernel until its successor answers"
		              : "",
		          ev->backoff_ms ? "after a pause" : "now", ev->held);
		break;
	case KEEPER_EV_EXITED:
		log_info("keeper: daemon process %d exited (%s)", (int)ev->pid, st);
		break;
	case KEEPER_EV_GAVE_UP:
		log_error("keeper: the daemon process exited before it served (%s): not restarting "
		          "it",
		          st);
		break;
	case KEEPER_EV_BAD_MSG:
		log_ratelimited(bad, LOG_LVL_ERROR,
		                "keeper: refused a malformed message from the daemon process (%s)",
		                strerror(-ev->err));
		break;
	case KEEPER_EV_HELD_FULL:
		log_ratelimited(bad, LOG_LVL_ERROR,
		                "keeper: already holds %d connections: refused one more (it will "
		                "not survive a daemon crash)",
		                KEEPER_HELD_MAX);
		break;
	case KEEPER_EV_UPGRADE:
		log_info("keeper: upgrade: daemon process %d hands off, then the keeper re-execs",
		         (int)ev->pid);
		break;
	case KEEPER_EV_UPGRADE_FAILED:
		log_error("keeper: upgrade failed (%s): going on with the running binary",
		          strerror(-ev->err));
		break;
	case KEEPER_EV_RESUMED:
		if (ev->err < 0)
			log_error(
			    "keeper: after the upgrade's exec, the held connections could not "
			    "all be taken over (%s): %zu kept",
			    strerror(-ev->err), ev->held);
		else
			log_info("keeper: upgraded in place, %zu held connection(s) kept",
			         ev->held);
		break;
	case KEEPER_EV_ERROR:
		log_error("keeper: cannot %s: %s", ev->what ? ev->what : "go on",
		          strerror(-ev->err));
		break;
	}
}

/* ---- systemd's fd store: the held set survives the keeper too ----
 * Names: "l-NAME" for a listening socket; "f-ID-d", "f-ID-j", "f-ID-i" for a container's
 * /dev/fuse fd, its inode journal and its INIT record (in a memfd). systemd refuses ':' in a name:
 * ID's '%' and ':' are written %25 and %3a. */
#define MAIN_FDNAME_MAX 255 /* systemd's limit */
#define MAIN_FDSTORE_SEEDS_MAX 65536

struct main_fdstore {
	bool on; /* NOTIFY_SOCKET is set */
	struct log_rl fail;
};

static int main_fdname(char *buf, size_t len, uint8_t kind, const char *id, char part)
{
	size_t n = 0;
	const char *pre = kind == KEEPER_KIND_LISTEN ? "l-" : "f-";
	for (const char *p = pre; *p && n + 1 < len; p++)
		buf[n++] = *p;
	for (const char *p = id; *p; p++) {
		const char *esc = *p == '%' ? "%25" : *p == ':' ? "%3a" : NULL;
		size_t need = esc ? 3 : 1;
		if (n + need + 3 >= len)
			return -ENAMETOOLONG;
		if (esc) {
			memcpy(buf + n, esc, 3);
			n += 3;
		} else {
			buf[n++] = *p;
		}
	}
	if (kind != KEEPER_KIND_LISTEN) {
		buf[n++] = '-';
		buf[n++] = part;
	}
	buf[n] = '\0';
	return n <= MAIN_FDNAME_MAX ? 0 : -ENAMETOOLONG;
}

static int main_fdstore_put(const char *name, int fd)
{
	char msg[MAIN_FDNAME_MAX + 32];
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	int r = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	return r < 0 ? r : r == 0 ? -ENOTCONN : 0;
}

static int main_fdstore_remove(const char *name)
{
	char msg[MAIN_FDNAME_MAX + 32];
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	int r = sd_notify(0, msg);
	return r < 0 ? r : r == 0 ? -ENOTCONN : 0;
}

static void main_on_held(void *ud, uint8_t kind, const char *id, const int *fds, unsigned nfds,
                         const uint8_t *blob, size_t blob_len, bool held)
{
	struct main_fdstore *fs = ud;
	if (!fs->on)
		return;
	static const char parts[3] = {'d', 'j', 'i'};
	unsigned nparts = kind == KEEPER_KIND_LISTEN ? 1 : 3;
	int r = 0;
	for (unsigned i = 0; i < nparts && r == 0; i++) {
		char name[MAIN_FDNAME_MAX + 1];
		r = main_fdname(name, sizeof(name), kind, id, parts[i]);
		if (r < 0)
			break;
		if (!held) {
			r = main_fdstore_remove(name);
		} else if (kind == KEEPER_KIND_LISTEN || i < nfds) {
			r = main_fdstore_put(name, fds[i]);
		} else if (parts[i] == 'i') {
			int mfd = memfd_create("secretd-fuse-init", MFD_CLOEXEC);
			if (mfd < 0 || write(mfd, blob, blob_len) != (ssize_t)blob_len)
				r = -errno;
			else
				r = main_fdstore_put(name, mfd);
			if (mfd >= 0)
				close(mfd);
		}
	}
	if (r < 0)
		log_ratelimited(
		    &fs->fail, LOG_LVL_ERROR,
		    "keeper: cannot %s systemd's fd store %s's connection (%s): a restart "
		    "of the keeper would re-mount it instead of keeping it",
		    held ? "put into" : "take out of", id, strerror(-r));
}

/* Parses an fd store name: kind, id (unescaped into id), part ('d', 'j', 'i'; 0 for a socket). */
static int main_fdname_parse(const char *name, uint8_t *kind, char *id, size_t idlen, char *part)
{
	size_t n = strlen(name), k = 0;
	const char *p = name + 2, *end = name + n;
	if (n > 2 && !strncmp(name, "l-", 2)) {
		*kind = KEEPER_KIND_LISTEN;
		*part = 0;
	} else if (n > 4 && !strncmp(name, "f-", 2) && name[n - 2] == '-') {
		*kind = KEEPER_KIND_FUSE;
		*part = name[n - 1];
		end = name + n - 2;
	} else {
		return -EINVAL;
	}
	for (; p < end; p++) {
		char c = *p;
		if (c == '%') {
			if (end - p < 3)
				return -EINVAL;
			if (!strncmp(p, "%25", 3))
				c = '%';
			else if (!strncmp(p, "%3a", 3))
				c = ':';
			else
				return -EINVAL;
			p += 2;
		}
		if (k + 1 >= idlen)
			return -EINVAL;
		id[k++] = c;
	}
	id[k] = '\0';
	return k ? 0 : -EINVAL;
}

struct main_seed_fuse {
	char id[KEEPER_ID_MAX + 1];
	int d, j, i;
};

/* The fds systemd passed at start (LISTEN_FDS: its fd store, after the keeper itself was
 * restarted) as keeper seeds. Unusable ones are closed and logged. */
static size_t main_fdstore_seeds(struct keeper_seed **out, uint8_t (**blobs)[KEEPER_BLOB_MAX],
                                 char (**ids)[KEEPER_ID_MAX + 1])
{
	*out = NULL;
	*blobs = NULL;
	*ids = NULL;
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	if (n <= 0)
		return 0;
	size_t cap = (size_t)n < MAIN_FDSTORE_SEEDS_MAX ? (size_t)n : MAIN_FDSTORE_SEEDS_MAX;
	struct keeper_seed *seeds = calloc(cap, sizeof(*seeds));
	struct main_seed_fuse *fu = calloc(cap, sizeof(*fu));
	uint8_t(*bl)[KEEPER_BLOB_MAX] = calloc(cap, sizeof(*bl));
	char(*idv)[KEEPER_ID_MAX + 1] = calloc(cap, sizeof(*idv));
	size_t ns = 0, nf = 0, bad = 0;
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		uint8_t kind;
		char id[KEEPER_ID_MAX + 1], part;
		if (!seeds || !fu || !bl || !idv || (size_t)i >= cap || !names || !names[i] ||
		    main_fdname_parse(names[i], &kind, id, sizeof(id), &part) < 0) {
			close(fd);
			bad++;
			continue;
		}
		if (kind == KEEPER_KIND_LISTEN) {
			snprintf(idv[ns], sizeof(idv[ns]), "%s", id);
			seeds[ns] = (struct keeper_seed){
			    .kind = kind, .id = idv[ns], .fds = {fd, -1}, .nfds = 1};
			ns++;
			continue;
		}
		size_t f = 0;
		while (f < nf && strcmp(fu[f].id, id) != 0)
			f++;
		if (f == nf) {
			fu[nf] = (struct main_seed_fuse){.d = -1, .j = -1, .i = -1};
			snprintf(fu[nf].id, sizeof(fu[nf].id), "%s", id);
			nf++;
		}
		int *slot = part == 'd'   ? &fu[f].d
		            : part == 'j' ? &fu[f].j
		            : part == 'i' ? &fu[f].i
		                          : NULL;
		if (!slot || *slot >= 0) {
			close(fd);
			bad++;
			continue;
		}
		*slot = fd;
	}
	for (size_t f = 0; f < nf; f++) {
		ssize_t bn = fu[f].i >= 0 ? pread(fu[f].i, bl[ns], KEEPER_BLOB_MAX, 0) : -1;
		if (fu[f].i >= 0)
			close(fu[f].i);
		if (fu[f].d < 0 || fu[f].j < 0 || bn <= 0 || ns >= cap) {
			if (fu[f].d >= 0)
				close(fu[f].d);
			if (fu[f].j >= 0)
				close(fu[f].j);
			bad++;
			continue;
		}
		snprintf(idv[ns], sizeof(idv[ns]), "%s", fu[f].id);
		seeds[ns] = (struct keeper_seed){.kind = KEEPER_KIND_FUSE,
		                                 .id = idv[ns],
		                                 .blob = bl[ns],
		                                 .blob_len = (size_t)bn,
		                                 .fds = {fu[f].d, fu[f].j},
		                                 .nfds = 2};
		ns++;
	}
	for (int i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	free(fu);
	if (bad)
		log_error("keeper: %zu fd(s) from systemd's fd store were unusable and closed",
		          bad);
	log_info("keeper: %zu connection(s) and socket(s) taken back from systemd's fd store", ns);
	*out = seeds;
	*blobs = bl;
	*ids = idv;
	return ns;
}

/* The store's lock, for the keeper: inherited across an upgrade's exec (KEEPER_ENV_LOCK), else
 * taken. -1 when the state dir has no lock file yet (the daemon process then says why it cannot
 * open the store); exits on another daemon holding it. */
int main_lock_retry(int (*attempt)(void *ud), void *ud)
{
	for (int waited = 0;; waited += 50) {
		int r = attempt(ud);
		if (r != -EBUSY || waited >= MAIN_LOCK_WAIT_MS)
			return r;
		if (waited == 0)
			log_info(
			    "the store is locked by another process: waiting up to %d ms for it "
			    "to exit",
			    MAIN_LOCK_WAIT_MS);
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

struct main_keeper_lock_try {
	const char *state_dir;
	int *fd;
};

static int main_keeper_lock_try(void *ud)
{
	struct main_keeper_lock_try *t = ud;
	return store_lock(t->state_dir, t->fd);
}

static int main_keeper_lock(const char *state_dir, int *fd)
{
	*fd = -1;
	const char *v = getenv(KEEPER_ENV_LOCK);
	if (v) {
		char *end;
		long l = strtol(v, &end, 10);
		unsetenv(KEEPER_ENV_LOCK);
		if (*v && !*end && l > 2 && l < 65536 && fcntl((int)l, F_SETFD, FD_CLOEXEC) == 0) {
			*fd = (int)l;
			return 0;
		}
	}
	struct main_keeper_lock_try t = {.state_dir = state_dir, .fd = fd};
	int r = main_lock_retry(main_keeper_lock_try, &t);
	if (r == -EBUSY) {
		log_error("cannot open store %s: another secretd is running on this state dir",
		          state_dir);
		return r;
	}
	if (r < 0)
		*fd = -1; /* e.g. not initialised: the daemon process reports it */
	return 0;
}

int main_keeper(char **argv, const char *state_dir)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0 || (size_t)n >= sizeof(exe) - 1) {
		log_error("keeper: cannot find its own binary (/proc/self/exe): %s",
		          n < 0 ? strerror(errno) : "path too long");
		return 1;
	}
	exe[n] = '\0';
	/* Replaced on disk (an upgrade installs a new file): the kernel's name ends " (deleted)";
	 * the path names the new binary, which is the point. */
	const char *del = " (deleted)";
	size_t dl = strlen(del);
	if ((size_t)n > dl && !strcmp(exe + n - dl, del))
		exe[n - dl] = '\0';
	struct log_rl bad = {0};
	struct main_fdstore fst = {.on = getenv("NOTIFY_SOCKET") != NULL};
	struct keeper_seed *seeds = NULL;
	uint8_t(*blobs)[KEEPER_BLOB_MAX] = NULL;
	char(*ids)[KEEPER_ID_MAX + 1] = NULL;
	size_t nseed = main_fdstore_seeds(&seeds, &blobs, &ids);
	int lock_fd;
	if (main_keeper_lock(state_dir, &lock_fd) < 0)
		return 1;
	struct keeper_config kc = {.exe = exe,
	                           .lock_fd = lock_fd,
	                           .argv = argv,
	                           .report = main_keeper_report,
	                           .report_ud = &bad,
	                           .seed = seeds,
	                           .nseed = nseed,
	                           .on_held = main_on_held,
	                           .on_held_ud = &fst};
	int rc = keeper_run(&kc);
	free(seeds);
	free(blobs);
	free(ids);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}
