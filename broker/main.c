/* secretd: the broker daemon's entry point (the only place that logs). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/anchor.h"
#include "broker/api.h"
#include "broker/audit.h"
#include "broker/crypt.h"
#include "broker/ident.h"
#include "broker/log.h"
#include "broker/loop.h"
#include "broker/metrics.h"
#include "broker/mounts.h"
#include "broker/procwatch.h"
#include "broker/sched.h"
#include "broker/store.h"
#include "common/decimal.h"
#include "common/limits.h"
#include "fuse/sfs.h"

struct main_opts {
	const char *state_dir, *runtime_dir, *key_file, *pass_file;
	const char *new_key_file, *new_pass_file; /* rekey */
	const char *audit_anchor;
	size_t max_value;
	size_t rotate_batch;
	unsigned max_conns, max_conns_per_ident, idle_timeout_s, request_timeout_s; /* 0: default */
	bool no_open;
	bool key_file_set;
};

static void main_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage:\n"
	    "  secretd init --state-dir DIR [--key-file F | --passphrase-file F]\n"
	    "  secretd run  --state-dir DIR --runtime-dir DIR [--key-file F | "
	    "--passphrase-file F]\n"
	    "               [--max-value BYTES] [--no-open] [--rotate-batch N]\n"
	    "               [--audit-anchor FILE] [--max-conns N] [--max-conns-per-ident N]\n"
	    "               [--idle-timeout S] [--request-timeout S] [--debug]\n"
	    "  secretd rekey --state-dir DIR [--key-file F | --passphrase-file F]\n"
	    "                (--new-key-file F2 | --new-passphrase-file F2)\n"
	    "\n"
	    "init creates an encrypted store in DIR and a random master key file (default %s,\n"
	    "mode 0400; never inside DIR), or derives the key from a passphrase (Argon2id).\n"
	    "run serves RUNTIME_DIR/admin.sock (0600) and RUNTIME_DIR/workload.sock (0666)\n"
	    "in the foreground, logging to stderr, until SIGTERM or SIGINT.\n"
	    "rekey (daemon stopped) re-seals the store's key generations under a new key file\n"
	    "(created, 0400) or passphrase; the old key stops working, secrets are untouched.\n"
	    "  --max-value BYTES  largest secret value (default %d)\n"
	    "  --no-open          serve every mount in no-open mode: reads come from the page\n"
	    "                     cache at tmpfs speed, but opens are no longer checked against\n"
	    "                     the container's cgroup nor audited (mode bits, uid and the\n"
	    "                     mount namespace still apply)\n"
	    "  --rotate-batch N   data keys re-wrapped per transaction by a key rotation\n"
	    "                     (default %d); the loop serves requests between batches\n"
	    "  --audit-anchor FILE  keep the audit chain's head, tagged with the store's key,\n"
	    "                     in FILE (outside the state dir): a database put back to an\n"
	    "                     older copy is refused at start and fails audit verify\n"
	    "  --max-conns N      connections per socket (default %d, at most %d); when full,\n"
	    "                     the oldest idle connection of whoever holds most is closed\n"
	    "  --max-conns-per-ident N  workload connections per container (a host process:\n"
	    "                     per uid), default %d; more are answered 429 and closed\n"
	    "  --idle-timeout S   close a connection silent for S seconds (default %d)\n"
	    "  --request-timeout S  a request must arrive complete within S seconds of the\n"
	    "                     previous one's end (default %d; slow senders are closed)\n",
	    SECRETD_KEY_FILE_DEFAULT, SECRETD_VALUE_MAX_DEFAULT, SECRETD_KEY_ROTATE_BATCH,
	    API_MAX_CONNS_DEFAULT, API_MAX_CONNS_CEILING, API_MAX_CONNS_PER_IDENT_DEFAULT,
	    API_IDLE_TIMEOUT_DEFAULT, API_REQUEST_TIMEOUT_DEFAULT);
}

static int main_parse(int argc, char **argv, struct main_opts *o)
{
	static const struct option longopts[] = {
	    {"state-dir", required_argument, NULL, 's'},
	    {"runtime-dir", required_argument, NULL, 'r'},
	    {"key-file", required_argument, NULL, 'k'},
	    {"passphrase-file", required_argument, NULL, 'p'},
	    {"new-key-file", required_argument, NULL, 'K'},
	    {"new-passphrase-file", required_argument, NULL, 'P'},
	    {"max-value", required_argument, NULL, 'm'},
	    {"no-open", no_argument, NULL, 'n'},
	    {"rotate-batch", required_argument, NULL, 'b'},
	    {"audit-anchor", required_argument, NULL, 'A'},
	    {"max-conns", required_argument, NULL, 'C'},
	    {"max-conns-per-ident", required_argument, NULL, 'I'},
	    {"idle-timeout", required_argument, NULL, 'T'},
	    {"request-timeout", required_argument, NULL, 'R'},
	    {"debug", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->state_dir = optarg;
			break;
		case 'r':
			o->runtime_dir = optarg;
			break;
		case 'k':
			o->key_file = optarg;
			o->key_file_set = true;
			break;
		case 'p':
			o->pass_file = optarg;
			break;
		case 'm': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end || v == 0 || v > SECRETD_VALUE_MAX_CEILING) {
				fprintf(stderr, "secretd: --max-value must be 1..%d bytes\n",
					SECRETD_VALUE_MAX_CEILING);
				return -EINVAL;
			}
			o->max_value = v;
			break;
		}
		case 'b': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end || v == 0 || v > SECRETD_KEY_ROTATE_BATCH_MAX) {
				fprintf(stderr, "secretd: --rotate-batch must be 1..%d\n",
					SECRETD_KEY_ROTATE_BATCH_MAX);
				return -EINVAL;
			}
			o->rotate_batch = v;
			break;
		}
		case 'A':
			o->audit_anchor = optarg;
			break;
		case 'C':
		case 'I':
		case 'T':
		case 'R': {
			unsigned max =
			    c == 'C' || c == 'I' ? API_MAX_CONNS_CEILING : API_TIMEOUT_CEILING;
			unsigned *dst = c == 'C'   ? &o->max_conns
			                : c == 'I' ? &o->max_conns_per_ident
			                : c == 'T' ? &o->idle_timeout_s
			                           : &o->request_timeout_s;
			uint64_t v = 0;
			if (decimal_parse_u64(optarg, strlen(optarg), 1, max, &v) < 0) {
				fprintf(stderr, "secretd: --%s must be 1..%u\n",
				        c == 'C'   ? "max-conns"
				        : c == 'I' ? "max-conns-per-ident"
				        : c == 'T' ? "idle-timeout"
				                   : "request-timeout",
				        max);
				return -EINVAL;
			}
			*dst = (unsigned)v;
			break;
		}
		case 'K':
			o->new_key_file = optarg;
			break;
		case 'P':
			o->new_pass_file = optarg;
			break;
		case 'n':
			o->no_open = true;
			break;
		case 'd':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'h':
			main_usage(stdout);
			exit(0);
		default:
			main_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "secretd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->key_file_set && o->pass_file) {
		fprintf(stderr, "secretd: give --key-file or --passphrase-file, not both\n");
		return -EINVAL;
	}
	if (!o->state_dir)
		o->state_dir = SECRETD_STATE_DIR_DEFAULT;
	if (!o->runtime_dir)
		o->runtime_dir = SECRETD_RUNTIME_DIR_DEFAULT;
	if (!o->key_file)
		o->key_file = SECRETD_KEY_FILE_DEFAULT;
	return 0;
}

static const char *main_store_error(int r)
{
	switch (r) {
	case -EKEYREJECTED:
		return "wrong master key or passphrase (the store was not changed)";
	case -EBUSY:
		return "another secretd is running on this state dir";
	case -ENODATA:
		return "the state dir is not initialised (run 'secretd init' first)";
	case -EEXIST:
		return "refusing to overwrite an existing store or key file";
	case -EBADMSG:
		return "the store failed an integrity check";
	case -EPERM:
		return "the key file is readable by group or others (chmod 0400 it)";
	default:
		return strerror(-r);
	}
}

static int main_init(struct main_opts *o)
{
	if (crypt_harden_process() < 0) {
		fprintf(stderr, "secretd: init: cannot lock memory for keys\n");
		return 1;
	}
	struct store_opts so = {.state_dir = o->state_dir,
				.key_file = o->pass_file ? NULL : o->key_file,
				.pass_file = o->pass_file,
				.max_value = o->max_value};
	int r = store_init(&so);
	if (r == -EINVAL && !o->pass_file) {
		fprintf(stderr, "secretd: init: the key file must not be inside the state dir\n");
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "secretd: init: %s\n", main_store_error(r));
		return 1;
	}
	printf("initialised store in %s (%s)\n", o->state_dir,
	       o->pass_file ? "passphrase" : o->key_file);
	return 0;
}

static int main_rekey(struct main_opts *o)
{
	if (!o->new_key_file == !o->new_pass_file) {
		fprintf(stderr, "secretd: rekey: give --new-key-file or --new-passphrase-file\n");
		return 2;
	}
	if (crypt_harden_process() < 0) {
		fprintf(stderr, "secretd: rekey: cannot lock memory for keys\n");
		return 1;
	}
	struct store_opts so = {.state_dir = o->state_dir,
				.key_file = o->pass_file ? NULL : o->key_file,
				.pass_file = o->pass_file};
	store *s = NULL;
	int r = store_open(&s, &so);
	if (r < 0) {
		fprintf(stderr, "secretd: rekey: %s\n", main_store_error(r));
		return 1;
	}
	r = store_rekey(s, o->new_key_file, o->new_pass_file);
	store_close(s);
	if (r < 0) {
		fprintf(stderr, "secretd: rekey: %s\n",
			r == -EEXIST ? "the new key file exists already" : main_store_error(r));
		return 1;
	}
	printf("re-keyed %s: it now opens with %s only\n", o->state_dir,
	       o->new_pass_file ? "the new passphrase" : o->new_key_file);
	return 0;
}

static void main_on_signal(loop *l, int fd, uint32_t events, void *ud)
{
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) == sizeof(si)) {
		log_info("signal %u: shutting down", si.ssi_signo);
		loop_quit(l);
	}
}

/* FUSE opens go to the audit batcher (written within AUDIT_FLUSH_MS by main_audit_prepare). */
static void main_on_open(void *ud, const struct mounts_open_event *ev)
{
	audit *au = ud;
	char buf[PROCWATCH_EXE_MAX];
	const char *exe = ev->exe; /* from procwatch: cached until the opener execs or exits */
	if (!exe)
		exe = ident_exe(ev->pid, buf, sizeof(buf)) == 0 ? buf : "";
	struct store_audit a = {.actor = ev->actor,
				.pid = ev->pid,
				.exe = exe,
				.action = "fuse-open",
				.secret = ev->secret,
				.version = ev->version,
				.result = ev->result == 0	     ? "ok"
					  : ev->result == -EACCES ? "denied"
								  : "error"};
	if (audit_add(au, &a) < 0)
		log_error("audit: batch full and cannot be written: an open record was dropped");
}

/* Process events (every fork, exec and exit on the host) and exits of tracked processes are
 * applied between opens too, so that the connector's queue does not overflow and pidfds are
 * closed. In batches: after a drain the fd leaves the loop for MAIN_PROCWATCH_MS, so a busy host
 * costs at most 1000 / MAIN_PROCWATCH_MS wake-ups a second. Opens do not wait for this: each one
 * syncs procwatch itself. */
#define MAIN_PROCWATCH_MS 100

struct main_procwatch {
	procwatch *pw;
	bool armed;        /* its fd is in the loop */
	int64_t rearm_ms;  /* monotonic time to put it back */
};

static int64_t main_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void main_on_procwatch(loop *l, int fd, uint32_t events, void *ud)
{
	struct main_procwatch *mp = ud;
	int r = procwatch_sync(mp->pw);
	if (r < 0)
		log_warn("procwatch: cannot read process events (%s): exes are read from /proc per open",
			 strerror(-r));
	loop_del(l, fd);
	mp->armed = false;
	mp->rearm_ms = main_mono_ms() + MAIN_PROCWATCH_MS;
}

static int main_procwatch_prepare(loop *l, void *ud)
{
	struct main_procwatch *mp = ud;
	if (mp->armed)
		return -1;
	int64_t left = mp->rearm_ms - main_mono_ms();
	if (left > 0)
		return (int)left;
	if (loop_add(l, procwatch_fd(mp->pw), EPOLLIN, main_on_procwatch, mp) < 0) {
		mp->rearm_ms = main_mono_ms() + MAIN_PROCWATCH_MS;
		return MAIN_PROCWATCH_MS;
	}
	mp->armed = true;
	return -1;
}

static int main_audit_prepare(loop *l, void *ud)
{
	audit *au = ud;
	int due = audit_due_ms(au);
	if (due != 0)
		return due;
	int r = audit_flush(au);
	if (r < 0) {
		log_error("audit: cannot write %zu open records (%s); retrying", audit_pending(au),
			  strerror(-r));
		return AUDIT_FLUSH_MS;
	}
	return -1;
}

/* Key rotation: one batch per loop iteration while one is unfinished (started by the API or
 * left by a crash), so requests are served between batches. A failing batch is retried with a
 * growing pause (an integrity failure will not heal: GET /v1/keys shows it). */
struct main_keyrot {
	store *s;
	size_t batch;
	uint64_t done;   /* data keys re-wrapped by this process */
	int pause_ms;    /* after a failure */
	int64_t retry_at; /* main_mono_ms() before which no batch is tried (after a failure) */
	int last_err;
};

static int main_keyrot_prepare(loop *l, void *ud)
{
	struct main_keyrot *k = ud;
	uint64_t target = store_key_rotating(k->s);
	if (!target)
		return -1;
	int64_t wait = k->retry_at - main_mono_ms();
	if (wait > 0) /* other events wake the loop too: the pause counts from the failure */
		return (int)wait;
	struct store_audit done = {.actor = "secretd", .pid = getpid(), .action = "key-rotate-done"};
	uint64_t n = 0;
	bool finished = false;
	int r = store_key_rotate_step(k->s, k->batch, &done, &n, &finished);
	if (r < 0) {
		if (r != k->last_err)
			log_error("key rotation to generation %llu stopped: %s; retrying",
				  (unsigned long long)target, main_store_error(r));
		k->last_err = r;
		k->pause_ms = k->pause_ms ? (k->pause_ms < 30000 ? k->pause_ms * 2 : 60000) : 500;
		k->retry_at = main_mono_ms() + k->pause_ms;
		return k->pause_ms;
	}
	k->last_err = 0;
	k->pause_ms = 0;
	k->done += n;
	if (!finished)
		return 0;
	log_info("key rotation to generation %llu complete: %llu data keys re-wrapped",
		 (unsigned long long)target, (unsigned long long)k->done);
	k->done = 0;
	return -1;
}

/* The audit anchor: checked once at start, rewritten after any loop iteration that wrote audit
 * records (everything a handler or hook wrote has committed by the next prepare). */
struct main_anchor {
	store *s;
	const char *path;
	uint64_t gen;
	bool failing;
	int64_t retry_at; /* main_mono_ms() before which a failed write is not retried */
};

static int main_anchor_prepare(loop *l, void *ud)
{
	struct main_anchor *an = ud;
	uint64_t gen = store_audit_gen(an->s);
	if (gen == an->gen)
		return -1;
	int64_t wait = an->retry_at - main_mono_ms();
	if (wait > 0)
		return (int)wait;
	struct anchor a;
	int r = store_audit_anchor(an->s, &a);
	if (r == 0)
		r = anchor_write(an->path, &a);
	if (r < 0) {
		if (!an->failing)
			log_error("cannot write the audit anchor %s: %s; retrying", an->path,
				  strerror(-r));
		an->failing = true;
		an->retry_at = main_mono_ms() + 1000;
		return 1000;
	}
	an->failing = false;
	an->gen = gen;
	return -1;
}

static int main_anchor_start(struct main_anchor *an)
{
	struct anchor a;
	int r = anchor_read(an->path, &a);
	if (r == -ENOENT) {
		log_info("audit anchor %s: none yet, writing it", an->path);
		an->gen = store_audit_gen(an->s) - 1; /* due now */
		return 0;
	}
	if (r < 0) {
		log_error("audit anchor %s is unreadable (%s): refusing to start; if it was damaged, "
			  "remove it (a new one is written) and run audit verify",
			  an->path, strerror(-r));
		return r;
	}
	r = store_audit_anchor_check(an->s, &a);
	if (r == -EBADMSG) {
		log_error("audit anchor %s was not written with this store's key: refusing to start "
			  "(another store's anchor?)",
			  an->path);
		return r;
	}
	if (r == -ESTALE) {
		log_error("the database is older than its audit anchor %s (it names audit record %llu, "
			  "which the database lacks or holds differently): refusing to start. If a "
			  "backup was restored on purpose, remove the anchor file",
			  an->path, (unsigned long long)a.seq);
		return r;
	}
	if (r < 0) {
		log_error("cannot check the audit anchor %s: %s", an->path, main_store_error(r));
		return r;
	}
	an->gen = store_audit_gen(an->s) - 1; /* rewrite it now: the chain may be ahead */
	return 0;
}

static void main_on_sched(void *ud, const char *name, enum sched_event ev, uint64_t version,
			  const char *why)
{
	switch (ev) {
	case SCHED_EXPIRED:
		log_info("%s expired: deleted", name);
		break;
	case SCHED_ROTATED:
		log_info("%s rotated on schedule: version %llu", name, (unsigned long long)version);
		break;
	case SCHED_FAILED:
		log_warn("%s: scheduled change failed, old value kept: %s", name, why ? why : "?");
		break;
	}
}

static void main_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int main_run(struct main_opts *o)
{
	int rc = 1, r;
	loop *l = NULL;
	store *s = NULL;
	mounts *m = NULL;
	api *a = NULL;
	audit *au = NULL;
	procwatch *pw = NULL;
	struct main_procwatch mp = {0};
	sched *sc = NULL;
	struct metrics met = {0};
	struct main_anchor anc = {.path = o->audit_anchor};
	struct main_keyrot kr = {.batch = o->rotate_batch ? o->rotate_batch : SECRETD_KEY_ROTATE_BATCH};
	int sfd = -1;

	r = crypt_harden_process();
	if (r < 0) {
		log_error("cannot lock memory or disable core dumps (%s): refusing to start, "
			  "secrets could reach swap or a core file",
			  strerror(-r));
		return 1;
	}
	main_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	struct store_opts so = {.state_dir = o->state_dir,
				.key_file = o->pass_file ? NULL : o->key_file,
				.pass_file = o->pass_file,
				.max_value = o->max_value};
	r = store_open(&s, &so);
	if (r < 0) {
		log_error("cannot open store %s: %s", o->state_dir, main_store_error(r));
		goto out;
	}
	if (mkdir(o->runtime_dir, 0755) < 0 && errno != EEXIST) {
		log_error("cannot create runtime dir %s: %s", o->runtime_dir, strerror(errno));
		goto out;
	}
	r = loop_new(&l);
	if (r == 0)
		r = loop_add(l, sfd, EPOLLIN, main_on_signal, NULL);
	if (r < 0) {
		log_error("event loop: %s", strerror(-r));
		goto out;
	}
	r = audit_new(&au, s);
	if (r == 0)
		r = loop_add_prepare(l, main_audit_prepare, au);
	if (r < 0) {
		log_error("audit: %s", strerror(-r));
		goto out;
	}
	if (o->audit_anchor) {
		anc.s = s;
		if (main_anchor_start(&anc) < 0)
			goto out;
	}
	kr.s = s;
	if (store_key_rotating(s))
		log_info("resuming the unfinished key rotation to generation %llu",
			 (unsigned long long)store_key_rotating(s));
	r = loop_add_prepare(l, main_keyrot_prepare, &kr);
	if (r < 0) {
		log_error("event loop: %s", strerror(-r));
		goto out;
	}
	int cn_err = 0;
	r = procwatch_new(&pw, &cn_err);
	mp.pw = pw;
	if (r == 0)
		r = loop_add_prepare(l, main_procwatch_prepare, &mp);
	if (r < 0) {
		log_error("procwatch: %s", strerror(-r));
		goto out;
	}
	if (cn_err < 0)
		log_info("proc connector unavailable (%s): the exe of each FUSE open is read from /proc",
			 strerror(-cn_err));
	else
		log_info("proc connector: exes of FUSE openers cached until exec or exit");
	struct mounts_config mc = {
		.no_open = o->no_open, .on_open = main_on_open, .on_open_ud = au, .procwatch = pw};
	r = mounts_new(&m, l, s, &mc);
	if (r < 0) {
		log_error("cannot load grants: %s", main_store_error(r));
		goto out;
	}
	r = sched_new(&sc, l, s, m, main_on_sched, NULL);
	if (r < 0) {
		log_error("cannot load schedules: %s", main_store_error(r));
		goto out;
	}
	struct api_config ac = {.runtime_dir = o->runtime_dir,
	                        .max_value = o->max_value,
	                        .max_conns = o->max_conns,
	                        .max_conns_per_ident = o->max_conns_per_ident,
	                        .idle_timeout_s = o->idle_timeout_s,
	                        .request_timeout_s = o->request_timeout_s,
	                        .reads_audit = au,
	                        .audit_anchor = o->audit_anchor};
	r = api_start(&a, l, s, m, &met, &ac);
	if (r < 0) {
		log_error("cannot serve sockets in %s: %s", o->runtime_dir, strerror(-r));
		goto out;
	}
	/* Last: it anchors what the hooks before it and the handlers wrote. */
	if (o->audit_anchor && (r = loop_add_prepare(l, main_anchor_prepare, &anc)) < 0) {
		log_error("event loop: %s", strerror(-r));
		goto out;
	}
	log_info("ready: admin %s/%s, workload %s/%s%s", o->runtime_dir, SECRETD_ADMIN_SOCK,
		 o->runtime_dir, SECRETD_WORKLOAD_SOCK, o->no_open ? " (no-open mounts)" : "");
	r = loop_run(l);
	if (r < 0) {
		log_error("event loop failed: %s", strerror(-r));
		goto out;
	}
	rc = 0;
out:
	api_stop(a);
	sched_free(sc);
	mounts_free(m);
	if (pw) {
		struct procwatch_stats ps;
		procwatch_get_stats(pw, &ps);
		log_info("procwatch: opener exes %llu from cache, %llu read from /proc; %llu execs, "
			 "%llu exits, %llu evictions, %llu event losses",
			 (unsigned long long)ps.exe_hits, (unsigned long long)ps.exe_reads,
			 (unsigned long long)ps.execs, (unsigned long long)ps.exits,
			 (unsigned long long)ps.evictions, (unsigned long long)ps.losses);
		if (mp.armed)
			loop_del(l, procwatch_fd(pw));
	}
	procwatch_free(pw);
	sfs_notifier_stop();
	audit_free(au); /* flushes the last batch */
	if (anc.s && rc == 0)
		(void)main_anchor_prepare(l, &anc);
	store_close(s);
	loop_free(l);
	if (sfd >= 0)
		close(sfd);
	if (rc == 0)
		log_info("stopped");
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		main_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		main_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("secretd 0.1.0\n");
		return 0;
	}
	struct main_opts o = {0};
	bool init = !strcmp(argv[1], "init");
	bool rekey = !strcmp(argv[1], "rekey");
	if (!init && !rekey && strcmp(argv[1], "run") != 0) {
		fprintf(stderr, "secretd: unknown command '%s' (init, run, rekey)\n", argv[1]);
		return 2;
	}
	if (main_parse(argc, argv, &o) < 0)
		return 2;
	if (rekey)
		return main_rekey(&o);
	return init ? main_init(&o) : main_run(&o);
}
