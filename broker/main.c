/* secretd: the broker daemon's entry point (the only place that logs). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "broker/store/anchor.h"
#include "broker/http/api.h"
#include "broker/http/relay.h"
#include "broker/http/routes.h"
#include "broker/cluster/cluster.h"
#include "broker/engine/audit.h"
#include "broker/engine/audit_driver.h"
#include "broker/crypto/crypt.h"
#include "broker/os/ident.h"
#include "broker/os/log.h"
#include "broker/os/loop.h"
#include "broker/engine/metrics.h"
#include "broker/engine/mounts.h"
#include "broker/os/procwatch.h"
#include "broker/os/reserve.h"
#include "broker/engine/drivers.h"
#include "broker/engine/fault_test.h"
#include "broker/engine/sched.h"
#include "broker/engine/service.h"
#include "broker/store/store.h"
#include "broker/keeper/keeper.h"
#include "broker/keeper/link.h"
#include "broker/main_int.h"
#include "common/decimal.h"
#include "common/limits.h"
#include "common/timespec.h"
#include "fuse/sfs.h"

struct main_opts {
	const char *state_dir, *runtime_dir, *key_file, *pass_file;
	const char *new_key_file, *new_pass_file; /* rekey */
	const char *audit_anchor;
	int64_t audit_keep_s;       /* 0: keep forever */
	uint64_t audit_max_records; /* 0: no limit */
	uint64_t disk_reserve;      /* bytes */
	bool disk_reserve_set;
	size_t max_value;
	size_t rotate_batch;
	unsigned max_conns, max_conns_per_ident, idle_timeout_s, request_timeout_s; /* 0: default */
	bool no_open;
	bool no_keeper;
	bool no_privsep;         /* serve workload.sock in this process (debugging) */
	bool no_seccomp;         /* the server process runs without its seccomp filter */
	const char *server_user; /* the server process's user (NULL: secretd) */
	bool key_file_set;
	struct main_etcd et; /* cluster mode (main_cluster.c) */
};

static void main_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage:\n"
	    "  secretd init --state-dir DIR [--key-file F | --passphrase-file F]\n"
	    "               [--etcd URL[,URL...] --cluster NAME [--etcd-cacert F]\n"
	    "                [--etcd-cert F --etcd-key F] [--etcd-user NAME\n"
	    "                [--etcd-password-file F]]]\n"
	    "  secretd run  --state-dir DIR --runtime-dir DIR [--key-file F | "
	    "--passphrase-file F]\n"
	    "               [--max-value BYTES] [--no-open] [--rotate-batch N]\n"
	    "               [--audit-anchor FILE] [--audit-keep DURATION]\n"
	    "               [--audit-max-records N] [--disk-reserve BYTES]\n"
	    "               [--max-conns N] [--max-conns-per-ident N]\n"
	    "               [--idle-timeout S] [--request-timeout S] [--no-keeper] [--debug]\n"
	    "               [--server-user NAME] [--no-privsep] [--no-seccomp]\n"
	    "               [--etcd URL[,URL...] --cluster NAME [--etcd-cacert F]\n"
	    "                [--etcd-cert F --etcd-key F] [--etcd-user NAME\n"
	    "                [--etcd-password-file F]] [--node-name NAME]]\n"
	    "  secretd rekey --state-dir DIR [--key-file F | --passphrase-file F]\n"
	    "                (--new-key-file F2 | --new-passphrase-file F2)\n"
	    "\n"
	    "init creates an encrypted store in DIR and a random master key file (default %s,\n"
	    "mode 0400; never inside DIR), or derives the key from a passphrase (Argon2id).\n"
	    "run serves RUNTIME_DIR/admin.sock (0600) and RUNTIME_DIR/workload.sock (0666)\n"
	    "in the foreground, logging to stderr, until SIGTERM or SIGINT. It runs as two\n"
	    "processes: a keeper that holds every container's FUSE connection and the sockets,\n"
	    "and the daemon process it restarts at once if it dies; SIGHUP upgrades in place\n"
	    "(re-execs the binary, keeping every connection).\n"
	    "rekey (daemon stopped) re-seals the store's key generations under a new key file\n"
	    "(created, 0400) or passphrase; the old key stops working, secrets are untouched.\n"
	    "  --max-value BYTES  largest secret value (default %d)\n"
	    "  --etcd URL[,URL...] --cluster NAME  cluster mode (docs/cluster.md): secrets and\n"
	    "                     grants are shared with every node of cluster NAME through\n"
	    "                     etcd (sealed rows only; the key file is the same on every\n"
	    "                     node); init creates the cluster or joins it\n"
	    "  --etcd-cacert F    the CA that signs etcd's server certificates (https:// URLs;\n"
	    "                     without it, the system's CAs); peer and host always verified\n"
	    "  --etcd-cert F --etcd-key F  this node's TLS client certificate and its key\n"
	    "  --etcd-user NAME   authenticate to etcd as NAME (https:// only); the password\n"
	    "                     is read from --etcd-password-file F (owner-only, like the\n"
	    "                     key file) or $CREDENTIALS_DIRECTORY/etcd-password (systemd\n"
	    "                     LoadCredential=etcd-password:...)\n"
	    "  --node-name NAME   run: this node's name in the cluster (1-64 of a-z 0-9 . - _;\n"
	    "                     default HOSTNAME:PID): cluster status, the election, the\n"
	    "                     origin of its changes in every node's audit; refused while\n"
	    "                     another live node holds it\n"
	    "  --no-keeper        one process, no keeper: a crash then breaks the mounts until\n"
	    "                     the next start re-mounts them (debugging)\n"
	    "  --server-user NAME  the user of the server process that serves workload.sock\n"
	    "                     (no key, no store, no capabilities; default secretd, else\n"
	    "                     65534 when there is no such user)\n"
	    "  --no-privsep       serve workload.sock in the daemon process itself, with the\n"
	    "                     key (debugging)\n"
	    "  --no-seccomp       the server process runs without its system-call allow-list\n"
	    "                     (debugging: a call the list misses kills it with SIGSYS)\n"
	    "  --no-open          serve every mount in no-open mode: reads come from the page\n"
	    "                     cache at tmpfs speed, but opens are no longer checked against\n"
	    "                     the container's cgroup nor audited (mode bits, uid and the\n"
	    "                     mount namespace still apply)\n"
	    "  --rotate-batch N   data keys re-wrapped per transaction by a key rotation\n"
	    "                     (default %d); the loop serves requests between batches\n"
	    "  --audit-anchor FILE  keep the audit chain's head, tagged with the store's key,\n"
	    "                     in FILE (outside the state dir): a database put back to an\n"
	    "                     older copy is refused at start and fails audit verify\n"
	    "  --audit-keep DURATION  prune audit records older than DURATION (90d, 12h, 1h30m,\n"
	    "                     10s: secretctl's syntax, with a unit), keeping a signed "
	    "checkpoint\n"
	    "                     so that the rest still verifies (default: keep all)\n"
	    "  --audit-max-records N  prune the oldest audit records beyond the newest N\n"
	    "  --disk-reserve BYTES  space kept in STATE/reserve and released when the disk\n"
	    "                     fills, so that key operations still commit while FUSE opens\n"
	    "                     are refused (default %d; K, M, G suffixes; 0 = none)\n"
	    "  --max-conns N      connections per socket (default %d, at most %d); when full,\n"
	    "                     the oldest idle connection of whoever holds most is closed\n"
	    "  --max-conns-per-ident N  workload connections per container (a host process:\n"
	    "                     per uid), default %d; more are answered 429 and closed\n"
	    "  --idle-timeout S   close a connection silent for S seconds (default %d)\n"
	    "  --request-timeout S  a request must arrive complete within S seconds of the\n"
	    "                     previous one's end (default %d; slow senders are closed)\n",
	    SECRETD_KEY_FILE_DEFAULT, SECRETD_VALUE_MAX_DEFAULT, SECRETD_KEY_ROTATE_BATCH,
	    RESERVE_DEFAULT_BYTES, API_MAX_CONNS_DEFAULT, API_MAX_CONNS_CEILING,
	    API_MAX_CONNS_PER_IDENT_DEFAULT, API_IDLE_TIMEOUT_DEFAULT, API_REQUEST_TIMEOUT_DEFAULT);
}

#define MAIN_AUDIT_KEEP_MAX_S (36500LL * 86400)
#define MAIN_DISK_RESERVE_MAX (1LL << 30)
#define MAIN_SIZE_UNITS "K1024M1048576G1073741824"

/* Parses "N" (times plain) or "N<unit>" with one of units ("s1m60": letter then multiplier)
 * into *out; -EINVAL when malformed or above INT64_MAX. */
static int main_parse_scaled(const char *arg, const char *units, int64_t plain, int64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (errno || end == arg || *arg == '-' || *arg == '+' || v > INT64_MAX)
		return -EINVAL;
	int64_t mul = plain;
	if (*end) {
		if (end[1])
			return -EINVAL;
		const char *u = units;
		mul = 0;
		while (*u) {
			char letter = *u++;
			char *next;
			long long m = strtoll(u, &next, 10);
			if (letter == *end) {
				mul = m;
				break;
			}
			u = next;
		}
		if (!mul)
			return -EINVAL;
	}
	if (v > (unsigned long long)(INT64_MAX / mul))
		return -EINVAL;
	*out = (int64_t)v * mul;
	return 0;
}

/* --audit-keep: a duration in common/timespec's syntax (90d, 1h30m) from 1 s to
 * MAIN_AUDIT_KEEP_MAX_S. A bare number is refused: it once meant days here and means seconds in
 * timespec, so taking it either way would surprise someone. -EINVAL otherwise. */
static int main_parse_keep(const char *arg, int64_t *out)
{
	size_t len = strlen(arg);
	if (len && strspn(arg, "0123456789") == len)
		return -EINVAL;
	int64_t v = 0;
	if (timespec_parse_duration(arg, len, &v) < 0 || v <= 0 || v > MAIN_AUDIT_KEEP_MAX_S)
		return -EINVAL;
	*out = v;
	return 0;
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
	    {"no-keeper", no_argument, NULL, 'N'},
	    {"no-privsep", no_argument, NULL, 'X'},
	    {"no-seccomp", no_argument, NULL, 'S'},
	    {"server-user", required_argument, NULL, 'U'},
	    {"rotate-batch", required_argument, NULL, 'b'},
	    {"audit-anchor", required_argument, NULL, 'A'},
	    {"audit-keep", required_argument, NULL, 'E'},
	    {"audit-max-records", required_argument, NULL, 'M'},
	    {"disk-reserve", required_argument, NULL, 'R'},
	    {"max-conns", required_argument, NULL, 'C'},
	    {"max-conns-per-ident", required_argument, NULL, 'I'},
	    {"idle-timeout", required_argument, NULL, 'T'},
	    {"request-timeout", required_argument, NULL, 'Q'},
	    {"etcd", required_argument, NULL, 'e'},
	    {"cluster", required_argument, NULL, 'c'},
	    {"etcd-cacert", required_argument, NULL, 0x101},
	    {"etcd-cert", required_argument, NULL, 0x102},
	    {"etcd-key", required_argument, NULL, 0x103},
	    {"etcd-user", required_argument, NULL, 0x104},
	    {"etcd-password-file", required_argument, NULL, 0x105},
	    {"node-name", required_argument, NULL, 0x106},
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
		case 'E':
			if (main_parse_keep(optarg, &o->audit_keep_s) < 0) {
				fprintf(
				    stderr,
				    "secretd: --audit-keep must be a duration from 1s to 36500d "
				    "with its unit (90d, 12h, 1h30m, 10s), not '%s'\n",
				    optarg);
				return -EINVAL;
			}
			break;
		case 'M': {
			int64_t v;
			if (main_parse_scaled(optarg, "", 1, &v) < 0 || v <= 0) {
				fprintf(stderr,
				        "secretd: --audit-max-records must be a positive number\n");
				return -EINVAL;
			}
			o->audit_max_records = (uint64_t)v;
			break;
		}
		case 'R': {
			int64_t v;
			if (main_parse_scaled(optarg, MAIN_SIZE_UNITS, 1, &v) < 0 ||
			    v > MAIN_DISK_RESERVE_MAX) {
				fprintf(stderr,
				        "secretd: --disk-reserve must be 0..1G bytes (K, M, G "
				        "suffixes)\n");
				return -EINVAL;
			}
			o->disk_reserve = (uint64_t)v;
			o->disk_reserve_set = true;
			break;
		}
		case 'C':
		case 'I':
		case 'T':
		case 'Q': {
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
		case 'N':
			o->no_keeper = true;
			break;
		case 'X':
			o->no_privsep = true;
			break;
		case 'S':
			o->no_seccomp = true;
			break;
		case 'U':
			o->server_user = optarg;
			break;
		case 'e':
			o->et.urls = optarg;
			break;
		case 'c':
			o->et.cluster = optarg;
			break;
		case 0x101:
			o->et.cacert = optarg;
			break;
		case 0x102:
			o->et.cert = optarg;
			break;
		case 0x103:
			o->et.key = optarg;
			break;
		case 0x104:
			o->et.user = optarg;
			break;
		case 0x105:
			o->et.password_file = optarg;
			break;
		case 0x106:
			if (!cluster_node_name_ok(optarg)) {
				fprintf(stderr,
				        "secretd: --node-name must be 1-%d of a-z 0-9 . - _\n",
				        CLUSTER_NODE_NAME_MAX);
				return -EINVAL;
			}
			o->et.node_name = optarg;
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
	if (!o->et.urls && (o->et.cacert || o->et.cert || o->et.key || o->et.user ||
	                    o->et.password_file || o->et.node_name)) {
		fprintf(stderr, "secretd: --etcd-cacert, --etcd-cert, --etcd-key, --etcd-user, "
		                "--etcd-password-file and --node-name need --etcd\n");
		return -EINVAL;
	}
	if (!o->et.cert != !o->et.key) {
		fprintf(stderr, "secretd: give --etcd-cert and --etcd-key together\n");
		return -EINVAL;
	}
	if (o->et.password_file && !o->et.user) {
		fprintf(stderr, "secretd: --etcd-password-file needs --etcd-user\n");
		return -EINVAL;
	}
	if (!o->et.urls != !o->et.cluster) {
		fprintf(stderr, "secretd: cluster mode needs both --etcd and --cluster\n");
		return -EINVAL;
	}
	if (!o->state_dir)
		o->state_dir = SECRETD_STATE_DIR_DEFAULT;
	if (!o->runtime_dir)
		o->runtime_dir = SECRETD_RUNTIME_DIR_DEFAULT;
	if (!o->key_file)
		o->key_file = SECRETD_KEY_FILE_DEFAULT;
	if (!o->disk_reserve_set)
		o->disk_reserve = RESERVE_DEFAULT_BYTES;
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
		return "the key or passphrase file must be owned by the daemon's user and have no "
		       "group or other permissions (chown it; chmod 0400 or 0600)";
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
	                        .max_value = o->max_value,
	                        .shared_key = o->et.cluster != NULL};
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
	return o->et.urls ? main_cluster_init(o->state_dir, o->key_file, o->pass_file, &o->et) : 0;
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
	r = service_rekey(s, o->new_key_file, o->new_pass_file);
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

/* Set by SIGUSR1 (the keeper's hand-off request): stop without unmounting anything. */
static bool main_handoff;
static int64_t main_mono_ms(void);

#define MAIN_HANDOFF_DRAIN_MS 2000 /* a hand-off waits this long at most for requests under way */

/* The signal handler's and the hand-off drain's state. */
struct main_sig {
	keeper_link *kl;
	api *a;           /* NULL until the sockets serve */
	relay *rl;        /* the workload server's supervisor (NULL: --no-privsep) */
	int64_t drain_at; /* monotonic ms: a hand-off's drain deadline (0: not draining) */
};

static void main_on_signal(loop *l, int fd, uint32_t events, void *ud)
{
	struct main_sig *ms = ud;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			if (!ms->kl) {
				log_warn("signal SIGUSR1 ignored: not run by a keeper");
				return;
			}
			if (main_handoff)
				return;
			main_handoff = true;
			log_info(
			    "hand-off (upgrade): stopping without unmounting; the keeper holds "
			    "every connection for the next daemon process");
			if (ms->a) {
				/* New connections wait for the successor; requests under way are
				 * answered first (main_drain_prepare ends the loop). */
				api_quiesce(ms->a);
				relay_quiesce(ms->rl);
				ms->drain_at = main_mono_ms() + MAIN_HANDOFF_DRAIN_MS;
				return;
			}
		} else {
			log_info("signal %u: shutting down", si.ssi_signo);
		}
		loop_quit(l);
	}
}

static int main_drain_prepare(loop *l, void *ud)
{
	struct main_sig *ms = ud;
	if (!ms->drain_at)
		return -1;
	unsigned pending = api_pending(ms->a) + (relay_server_pid(ms->rl) > 0 ? 1 : 0);
	if (pending == 0 || main_mono_ms() >= ms->drain_at) {
		if (pending)
			log_warn(
			    "hand-off: %u connection(s) still under way after %d ms are closed",
			    pending, MAIN_HANDOFF_DRAIN_MS);
		ms->drain_at = 0;
		loop_quit(l);
		return 0;
	}
	return 10;
}

struct main_store_try {
	store **s;
	const struct store_opts *so;
};

static int main_store_try(void *ud)
{
	struct main_store_try *t = ud;
	return store_open(t->s, t->so);
}

static int main_store_open(store **s, const struct store_opts *so)
{
	struct main_store_try t = {.s = s, .so = so};
	return main_lock_retry(main_store_try, &t);
}

/* The keeper's fds at start: the listening sockets a dead predecessor left (inh) and the FUSE
 * connections (left in kl until taken). */
static void main_keeper_fetch(keeper_link *kl, int inh[2])
{
	inh[0] = inh[1] = -1;
	if (!kl)
		return;
	int r = keeper_link_fetch(kl);
	if (r < 0) {
		log_error("keeper: cannot fetch the connections it holds (%s): sockets are bound "
		          "anew and containers re-mounted",
		          strerror(-r));
		return;
	}
	static const char *const names[2] = {"admin", "workload"};
	for (int i = 0; i < 2; i++) {
		int fds[KEEPER_FDS_MAX];
		unsigned n = 0;
		if (keeper_link_take(kl, KEEPER_KIND_LISTEN, names[i], fds, &n, NULL, NULL) == 0) {
			inh[i] = fds[0];
			for (unsigned j = 1; j < n; j++)
				close(fds[j]);
		}
	}
	if (inh[0] >= 0 || inh[1] >= 0)
		log_info("keeper: took over the listening sockets (restart %u)",
		         keeper_link_restarts(kl));
}

/* Hands the listening sockets this process bound to the keeper. */
static void main_keeper_hold_sockets(keeper_link *kl, api *a, const int inh[2])
{
	static const char *const names[2] = {"admin", "workload"};
	for (int i = 0; kl && i < 2; i++) {
		if (inh[i] >= 0)
			continue; /* it holds them already */
		int fd = api_listen_fd(a, i == 1);
		int r = keeper_link_hold(kl, KEEPER_KIND_LISTEN, names[i], &fd, 1, NULL, 0);
		if (r < 0)
			log_error("keeper: cannot hand it the %s socket (%s): a crash would refuse "
			          "connections until the next start",
			          names[i], strerror(-r));
	}
}

/* The audit driver's events, logged: one line per condition per LOG_RL_DEFAULT_MS. */
struct main_auditlog {
	struct log_rl fail, hold, open, prune;
};

static void main_on_audit(void *ud, enum audit_driver_event ev, const char *state_dir, uint64_t a,
                          uint64_t b, int err)
{
	struct main_auditlog *al = ud;
	switch (ev) {
	case AUDIT_DRIVER_OPEN_UNRECORDED:
		log_ratelimited(&al->open, LOG_LVL_ERROR,
		                "audit: a FUSE open was answered but the audit could not take its "
		                "record (%s): it is recorded as refused",
		                strerror(-err));
		break;
	case AUDIT_DRIVER_DISK_HOLD:
		log_ratelimited(&al->hold, LOG_LVL_ERROR,
		                "audit: the disk is still full (%s; %llu bytes free, %llu "
		                "needed to remake the disk reserve): FUSE opens and workload "
		                "reads stay refused",
		                strerror(-err), (unsigned long long)a, (unsigned long long)b);
		break;
	case AUDIT_DRIVER_RESERVE_REMADE:
		log_info("disk reserve remade (%llu bytes in %s/%s)", (unsigned long long)a,
		         state_dir, RESERVE_FILE);
		break;
	case AUDIT_DRIVER_WRITE_FAILED:
		log_ratelimited(&al->fail, LOG_LVL_ERROR,
		                "audit: cannot write %llu buffered records (%s): FUSE opens and "
		                "workload reads are refused until it can (%llu refused so far)",
		                (unsigned long long)a, strerror(-err), (unsigned long long)b);
		break;
	case AUDIT_DRIVER_RESERVE_RELEASED:
		log_warn(
		    "disk full: released the disk reserve (%llu bytes) for key operations; FUSE "
		    "opens stay refused until the disk has room again",
		    (unsigned long long)a);
		break;
	case AUDIT_DRIVER_RESERVE_RELEASE_FAILED:
		log_error("disk full: cannot release the disk reserve %s/%s: %s", state_dir,
		          RESERVE_FILE, strerror(-err));
		break;
	case AUDIT_DRIVER_WRITABLE_AGAIN:
		log_info("audit: writable again; %llu events refused while it was not are recorded "
		         "(result %s)",
		         (unsigned long long)a, STORE_AUDIT_REFUSED);
		log_rl_reset(&al->fail);
		log_rl_reset(&al->hold);
		break;
	case AUDIT_DRIVER_PRUNE_FAILED:
		log_ratelimited(&al->prune, LOG_LVL_ERROR,
		                "audit retention: cannot prune old records: %s; retrying",
		                main_store_error(err));
		break;
	case AUDIT_DRIVER_PRUNED:
		log_info("audit retention: pruned %llu records (a signed checkpoint keeps the rest "
		         "verifiable)",
		         (unsigned long long)a);
		break;
	case AUDIT_DRIVER_RESERVE_MAKE_FAILED:
		log_error("cannot make the disk reserve %s/%s (%llu bytes): %s; on a full disk "
		          "key operations may fail too",
		          state_dir, RESERVE_FILE, (unsigned long long)a, strerror(-err));
		break;
	case AUDIT_DRIVER_RESERVE_REMOVE_FAILED:
		log_error("cannot remove the disk reserve %s/%s: %s", state_dir, RESERVE_FILE,
		          strerror(-err));
		break;
	}
}

static int64_t main_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The drivers' events (key rotation, audit anchor), logged. */
static void main_on_driver(void *ud, enum drivers_event ev, const char *path, uint64_t a,
                           uint64_t b, int err)
{
	switch (ev) {
	case DRIVERS_KEYROT_RESUMED:
		log_info("resuming the unfinished key rotation to generation %llu",
		         (unsigned long long)a);
		break;
	case DRIVERS_KEYROT_FAILED:
		log_error("key rotation to generation %llu stopped: %s; retrying",
		          (unsigned long long)a, main_store_error(err));
		break;
	case DRIVERS_KEYROT_DONE:
		log_info("key rotation to generation %llu complete: %llu data keys re-wrapped",
		         (unsigned long long)a, (unsigned long long)b);
		break;
	case DRIVERS_ANCHOR_NEW:
		log_info("audit anchor %s: none yet, writing it", path);
		break;
	case DRIVERS_ANCHOR_BAD:
		log_error(
		    "audit anchor %s is unreadable (%s): refusing to start; if it was damaged, "
		    "remove it (a new one is written) and run audit verify",
		    path, strerror(-err));
		break;
	case DRIVERS_ANCHOR_FOREIGN:
		log_error(
		    "audit anchor %s was not written with this store's key: refusing to start "
		    "(another store's anchor?)",
		    path);
		break;
	case DRIVERS_ANCHOR_STALE:
		log_error(
		    "the database is older than its audit anchor %s (it names audit record %llu, "
		    "which the database lacks or holds differently): refusing to start. If a "
		    "backup was restored on purpose, remove the anchor file",
		    path, (unsigned long long)a);
		break;
	case DRIVERS_ANCHOR_CHECK_FAILED:
		log_error("cannot check the audit anchor %s: %s", path, main_store_error(err));
		break;
	case DRIVERS_ANCHOR_WRITE_FAILED:
		log_error("cannot write the audit anchor %s: %s; retrying", path, strerror(-err));
		break;
	case DRIVERS_SCHED_FAILED:
		log_error("cannot load schedules: %s", main_store_error(err));
		break;
	case DRIVERS_LOOP_FAILED:
		log_error("event loop: %s", strerror(-err));
		break;
	case DRIVERS_PROCWATCH_FAILED:
		log_warn("procwatch: cannot read process events (%s): exes are read from /proc per "
		         "open",
		         strerror(-err));
		break;
	}
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
	case SCHED_UNAPPLIED:
		log_warn("%s: scheduled change stored, but not applied to %llu container(s) (%s): "
		         "their mounts are failed closed and retried",
		         name, (unsigned long long)version, why ? why : "?");
		break;
	}
}

/* Mount view state changes, logged with a budget: at most MAIN_VIEW_LOG_BURST lines per
 * MAIN_VIEW_LOG_WINDOW_MS, then one line saying how many were left out (the counters in
 * /metrics keep counting). mounts reports each change of state once, not each retry. */
#define MAIN_VIEW_LOG_BURST 20
#define MAIN_VIEW_LOG_WINDOW_MS 10000

struct main_viewlog {
	int64_t window_start;
	unsigned lines, dropped;
};

static void main_on_view(void *ud, const char *actor, int err)
{
	struct main_viewlog *vl = ud;
	int64_t now = main_mono_ms();
	if (now - vl->window_start >= MAIN_VIEW_LOG_WINDOW_MS) {
		if (vl->dropped)
			log_warn("mounts: %u more view state changes not logged", vl->dropped);
		vl->window_start = now;
		vl->lines = vl->dropped = 0;
	}
	if (vl->lines >= MAIN_VIEW_LOG_BURST) {
		vl->dropped++;
		return;
	}
	vl->lines++;
	if (err < 0)
		log_error("container %s: its view cannot be applied (%s): mount failed closed "
		          "(EIO) until a retry succeeds",
		          actor,
		          err == -EBADMSG ? "integrity check failed on a stored row"
		                          : strerror(-err));
	else
		log_info("container %s: view applied again, mount serves again", actor);
}

/* The service's reports: stored changes whose views could not follow, and audit records of
 * failed or undone changes that could not be written. Rate-limited per kind. */
struct main_svlog {
	struct log_rl refresh, audit;
};

static void main_on_service(void *ud, enum service_event ev, const char *action, const char *name,
                            int err, size_t unapplied)
{
	struct main_svlog *sl = ud;
	if (ev == SERVICE_REFRESH_FAILED)
		log_ratelimited(&sl->refresh, LOG_LVL_ERROR,
		                "%s %s: stored, but the views could not be recomputed (%s): %zu "
		                "container(s) failed closed, retried until it applies",
		                action, name ? name : "", service_strerror(err), unapplied);
	else
		log_ratelimited(&sl->audit, LOG_LVL_ERROR,
		                "audit: the record of %s %s could not be written (%s)", action,
		                name ? name : "", strerror(-err));
}

static void main_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Tells systemd (Type=notify) where the daemon is; a no-op outside systemd (no NOTIFY_SOCKET).
 * A failure is logged: the unit would otherwise time out with no reason given. */
__attribute__((format(printf, 1, 2))) static void main_notify(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int r = sd_notify(0, msg);
	if (r < 0)
		log_error("cannot notify systemd (%s): %s", getenv("NOTIFY_SOCKET"), strerror(-r));
}

/* Test mode, for tests/integration only: both SECRETD_TEST_FAULTS=1 and an absolute
 * SECRETD_TEST_FAULT_DIR (a 0700 directory of the daemon's uid) are needed, and it is logged
 * as a warning at start; an unusable directory refuses the start. */
static bool main_test_mode; /* SECRETD_TEST_FAULTS=1 with its directory: test hooks on */

static int main_test_faults(void)
{
	const char *on = getenv("SECRETD_TEST_FAULTS");
	const char *dir = getenv("SECRETD_TEST_FAULT_DIR");
	if (!on || strcmp(on, "1") != 0 || !dir)
		return 0;
	int r = engine_fault_use_dir(dir);
	if (r < 0) {
		log_error("SECRETD_TEST_FAULTS=1: cannot use the fault directory %s: %s", dir,
		          strerror(-r));
		return r;
	}
	main_test_mode = true;
	log_warn("TEST MODE (SECRETD_TEST_FAULTS=1): faults are injected from %s; never run a "
	         "production daemon like this",
	         dir);
	return 0;
}

/* One line per container of the persisted registry (mounts_restore). */
static void main_on_restore(void *ud, const struct mounts_restore_event *ev)
{
	const char *name = ev->name && *ev->name ? ev->name : "-";
	switch (ev->outcome) {
	case MOUNTS_RESTORE_RESTORED:
		if (ev->adopted)
			log_info(
			    "restored container %s (name %s): its connection at %s taken over from "
			    "the keeper (never unmounted), %zu files",
			    ev->id, name, ev->target, ev->files);
		else if (ev->mounted)
			log_info("restored container %s (name %s): mounted again at %s, %zu files",
			         ev->id, name, ev->target, ev->files);
		else
			log_info("restored container %s (name %s): registered, no mount", ev->id,
			         name);
		break;
	case MOUNTS_RESTORE_FORGOTTEN:
		log_info("forgot container %s (name %s): %s", ev->id, name, ev->why);
		break;
	case MOUNTS_RESTORE_FAILED:
		log_error("container %s (name %s): cannot restore: %s (%s)%s", ev->id, name,
		          ev->why, main_store_error(ev->err),
		          ev->row_kept ? "; its row is kept for the next start" : "");
		break;
	}
}

/* The keeper link's side of the engine: each container's FUSE connection handed over, and
 * taken back after a crash. */
struct main_conns {
	keeper_link *kl;
	struct log_rl fail;
};

static void main_on_conn(void *ud, const struct mounts_conn *c)
{
	struct main_conns *mc = ud;
	int r;
	if (c->held) {
		int fds[2] = {c->fuse_fd, c->journal_fd};
		r = keeper_link_hold(mc->kl, KEEPER_KIND_FUSE, c->id, fds, 2, c->init, c->init_len);
	} else {
		r = keeper_link_drop(mc->kl, KEEPER_KIND_FUSE, c->id);
	}
	if (r < 0)
		log_ratelimited(&mc->fail, LOG_LVL_ERROR,
		                "keeper: cannot %s container %s's connection (%s)%s",
		                c->held ? "hand it" : "take back", c->id, strerror(-r),
		                c->held ? ": a crash of this process would break its mount until "
		                          "the next start re-mounts it"
		                        : "");
}

static int main_take_held(void *ud, const char *id, struct mounts_held *out)
{
	struct main_conns *mc = ud;
	int fds[KEEPER_FDS_MAX];
	unsigned n = 0;
	int r = keeper_link_take(mc->kl, KEEPER_KIND_FUSE, id, fds, &n, out->init, &out->init_len);
	if (r < 0)
		return r;
	if (n != 2 || out->init_len > sizeof(out->init)) {
		for (unsigned i = 0; i < n; i++)
			close(fds[i]);
		return -EPROTO;
	}
	out->fuse_fd = fds[0];
	out->journal_fd = fds[1];
	return 0;
}

/* POST /v1/daemon/upgrade, after its answer: asks the keeper (which then sends SIGUSR1). */
static int main_upgrade(void *ud)
{
	int r = keeper_link_upgrade(ud);
	if (r < 0)
		log_error("upgrade asked for over the admin socket, but the keeper refused it (%s)",
		          r == -EBUSY ? "one is under way" : strerror(-r));
	else
		log_info("upgrade asked for over the admin socket: the keeper re-execs its binary");
	return r;
}

/* Restore's audit records, written once the daemon process serves (service_restore says why). */
#define MAIN_RESTORE_RECORDS_DELAY_MS 500
#define MAIN_RESTORE_RECORDS_RETRY_MS 1000

struct main_deferred {
	service *sv;
	int64_t due; /* monotonic ms of the next try; 0: nothing pending */
	struct log_rl busy;
};

static int main_deferred_prepare(loop *l, void *ud)
{
	struct main_deferred *md = ud;
	if (!md->due)
		return -1;
	int64_t now = main_mono_ms();
	if (now < md->due)
		return (int)(md->due - now);
	size_t left = 0;
	int r = service_flush_deferred(md->sv, &left);
	if (r == 0) {
		md->due = 0;
		return -1;
	}
	log_ratelimited(&md->busy, LOG_LVL_WARN,
	                "audit: %zu restore record(s) not written yet (%s); trying again", left,
	                strerror(-r));
	md->due = now + MAIN_RESTORE_RECORDS_RETRY_MS;
	return MAIN_RESTORE_RECORDS_RETRY_MS;
}

/* The workload server's events (broker/http/relay.h). */
static void main_on_relay(void *ud, const struct relay_report *rep)
{
	switch (rep->ev) {
	case RELAY_STARTED:
		log_info("server: workload.sock served by the unprivileged server process %d",
		         (int)rep->pid);
		break;
	case RELAY_DIED:
		if (rep->seccomp) {
			/* a compromised server, or a call missing from the list: loud, bounded */
			static struct log_rl seccomp_rl;
			log_ratelimited(
			    &seccomp_rl, LOG_LVL_ERROR,
			    "server: process %d killed by its seccomp filter (SIGSYS: a "
			    "system call outside its allow-list, see "
			    "secretd_server_seccomp_kills_total); restarting it",
			    (int)rep->pid);
			break;
		}
		log_warn("server: process %d %s %d; %s", (int)rep->pid,
		         rep->killed ? "killed by signal" : "exited with status", rep->status,
		         "restarting it (connections wait in workload.sock's backlog)");
		break;
	case RELAY_SPAWN_FAILED:
		log_error("server: cannot start the server process: %s (retrying)",
		          strerror(-rep->err));
		break;
	case RELAY_USER_FALLBACK:
		log_warn(
		    "server: no user '%s' (or it is root): the server process runs as uid/gid %d "
		    "(create it: useradd --system --no-create-home --shell "
		    "/usr/sbin/nologin secretd)",
		    rep->detail, RELAY_FALLBACK_ID);
		break;
	case RELAY_NOT_ROOT:
		log_warn("server: not run as root: the server process keeps this uid (no "
		         "capabilities, no new privileges)");
		break;
	case RELAY_REFUSED:
		log_warn("server: refused %llu request(s) of the server process (last: %s)",
		         rep->count, rep->detail);
		break;
	case RELAY_HOSTILE:
		log_error("server: process %d broke the protocol (%s): killed and restarted",
		          (int)rep->pid, rep->detail);
		break;
	case RELAY_STOPPED:
		if (rep->err)
			log_warn("server: process %d did not finish within %d ms: killed",
			         (int)rep->pid, RELAY_STOP_DRAIN_MS);
		else
			log_info("server: process %d stopped", (int)rep->pid);
		break;
	}
}

static int main_run(struct main_opts *o)
{
	int rc = 1, r;
	loop *l = NULL;
	store *s = NULL;
	mounts *m = NULL;
	api *a = NULL;
	relay *rl = NULL;
	audit *au = NULL;
	audit_driver *ad = NULL;
	struct main_auditlog alog = {0};
	procwatch *pw = NULL;
	service *sv = NULL;
	struct main_svlog svlog = {0};
	struct metrics met = {0};
	struct main_viewlog vlog = {0};
	drivers *dr = NULL;
	int sfd = -1;
	keeper_link *kl = NULL;
	struct main_cluster *mcl = NULL;
	struct main_conns conns = {0};
	struct main_sig msig = {0};
	struct main_deferred mdef = {0};
	int inh[2] = {-1, -1};

	r = crypt_harden_process();
	if (r < 0) {
		log_error("cannot lock memory or disable core dumps (%s): refusing to start, "
		          "secrets could reach swap or a core file",
		          strerror(-r));
		return 1;
	}
	if (main_test_faults() < 0)
		return 1;
	r = keeper_link_open(&kl);
	if (r < 0) {
		log_error("keeper: %s does not name its channel (%s)", KEEPER_ENV_FD, strerror(-r));
		return 1;
	}
	msig.kl = kl;
	met.keeper = kl ? 1 : 0;
	met.daemon_restarts = keeper_link_restarts(kl);
	main_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	struct store_opts so = {.state_dir = o->state_dir,
	                        .key_file = o->pass_file ? NULL : o->key_file,
	                        .pass_file = o->pass_file,
	                        .max_value = o->max_value};
	/* Under a keeper, the store's lock is the keeper's (inherited). */
	const char *lk = kl ? getenv(KEEPER_ENV_LOCK) : NULL;
	if (lk) {
		char *end;
		long v = strtol(lk, &end, 10);
		so.lock_fd = *lk && !*end && v > 2 && v < 65536 ? (int)v : -1;
		unsetenv(KEEPER_ENV_LOCK);
	}
	r = main_store_open(&s, &so);
	if (so.lock_fd > 0)
		close(so.lock_fd); /* the store keeps its own duplicate */
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
		r = loop_add(l, sfd, EPOLLIN, main_on_signal, &msig);
	if (r == 0)
		r = loop_add_prepare(l, main_drain_prepare, &msig);
	if (r == 0)
		r = loop_add_prepare(l, main_deferred_prepare, &mdef);
	if (r < 0) {
		log_error("event loop: %s", strerror(-r));
		goto out;
	}
	r = audit_new(&au, s);
	struct audit_driver_config adc = {.state_dir = o->state_dir,
	                                  .reserve = o->disk_reserve,
	                                  .keep_s = o->audit_keep_s,
	                                  .keep_max = o->audit_max_records,
	                                  .report = main_on_audit,
	                                  .report_ud = &alog};
	if (r == 0)
		r = audit_driver_start(&ad, l, au, &adc);
	if (r < 0) {
		log_error("audit: %s", strerror(-r));
		goto out;
	}
	int cn_err = 0;
	r = procwatch_new(&pw, &cn_err);
	if (r < 0) {
		log_error("procwatch: %s", strerror(-r));
		goto out;
	}
	/* Loud: without the connector every FUSE open costs a readlink of /proc/PID/exe. Under
	 * systemd, RestrictAddressFamilies without AF_NETLINK or PrivateNetwork=yes (the connector
	 * lives in the initial network namespace only) turn it off. */
	met.proc_connector = cn_err < 0 ? 0 : 1;
	if (cn_err < 0)
		log_warn(
		    "proc connector unavailable (%s): the exe of each FUSE open is read from "
		    "/proc, which is slower (a sandbox must allow AF_NETLINK in the host's network "
		    "namespace; see secretd(8))",
		    strerror(-cn_err));
	else
		log_info("proc connector: exes of FUSE openers cached until exec or exit");
	struct mounts_config mc = {.no_open = o->no_open,
	                           .on_open = audit_driver_on_open,
	                           .open_gate = audit_driver_open_gate,
	                           .on_open_ud = ad,
	                           .on_view = main_on_view,
	                           .on_view_ud = &vlog,
	                           .on_conn = kl ? main_on_conn : NULL,
	                           .on_conn_ud = &conns,
	                           .procwatch = pw};
	conns.kl = kl;
	/* What a dead predecessor left with the keeper: taken by restore and api_start. */
	main_keeper_fetch(kl, inh);
	r = mounts_new(&m, l, s, &mc);
	if (r < 0) {
		log_error("cannot load grants: %s", main_store_error(r));
		goto out;
	}
	struct service_config svc = {.report = main_on_service, .report_ud = &svlog};
	r = service_new(&sv, s, m, &met, &svc);
	if (r < 0) {
		log_error("service: %s", strerror(-r));
		goto out;
	}
	if (o->et.urls && main_cluster_start(&mcl, s, l, sv, &o->et) < 0)
		goto out; /* logged */
	/* Before serving: the containers that ran under the previous daemon get their mounts back
	 * (no held connections yet: a later keeper passes its take_held). */
	struct mounts_restore_counts rc_n;
	struct mounts_restore_ops rops = {.take_held = main_take_held, .ud = &conns};
	r = service_restore(sv, kl ? &rops : NULL, main_on_restore, NULL, &rc_n);
	if (r < 0)
		log_error("cannot read the container registry: %s; no container was restored (they "
		          "get their secrets again when restarted)",
		          main_store_error(r));
	else if (rc_n.restored || rc_n.forgotten || rc_n.failed)
		log_info(
		    "restore: %zu container(s) restored (%zu of them kept their connection), %zu "
		    "forgotten (exited meanwhile), %zu failed",
		    rc_n.restored, rc_n.adopted, rc_n.forgotten, rc_n.failed);
	struct drivers_config dc = {.store = s,
	                            .service = sv,
	                            .rotate_batch = o->rotate_batch ? o->rotate_batch
	                                                            : SECRETD_KEY_ROTATE_BATCH,
	                            .anchor_path = o->audit_anchor,
	                            .procwatch = pw,
	                            .report = main_on_driver,
	                            .sched_report = main_on_sched};
	if (drivers_start(&dr, l, &dc) < 0)
		goto out; /* logged by main_on_driver */
	struct api_config ac = {.runtime_dir = o->runtime_dir,
	                        .admin_routes = &api_admin_routes,
	                        .workload_routes = &api_workload_routes,
	                        .max_value = o->max_value,
	                        .max_conns = o->max_conns,
	                        .max_conns_per_ident = o->max_conns_per_ident,
	                        .idle_timeout_s = o->idle_timeout_s,
	                        .request_timeout_s = o->request_timeout_s,
	                        .reads_audit = au,
	                        .audit_anchor = o->audit_anchor,
	                        .procwatch = pw,
	                        .service = sv,
	                        .inherit_fds = inh,
	                        .upgrade = kl ? main_upgrade : NULL,
	                        .upgrade_ud = kl,
	                        .workload_relayed = !o->no_privsep};
	r = api_start(&a, l, s, m, &met, &ac);
	if (r < 0) {
		log_error("cannot serve sockets in %s: %s", o->runtime_dir, strerror(-r));
		goto out;
	}
	if (!o->no_privsep) {
		struct relay_config rcf = {.server_user = o->server_user,
		                           .listen_fd = api_listen_fd(a, true),
		                           .max_value = o->max_value,
		                           .max_conns = o->max_conns,
		                           .max_conns_per_ident = o->max_conns_per_ident,
		                           .idle_timeout_s = o->idle_timeout_s,
		                           .request_timeout_s = o->request_timeout_s,
		                           .test_exec =
		                               main_test_mode ? getenv(RELAY_ENV_TEST_EXEC) : NULL,
		                           .no_seccomp = o->no_seccomp,
		                           .report = main_on_relay};
		r = relay_start(&rl, l, a, &met, &rcf);
		if (r < 0) {
			log_error("server: cannot supervise the server process: %s", strerror(-r));
			goto out;
		}
		msig.rl = rl;
	}
	/* Last: it anchors what the hooks before it and the handlers wrote. */
	if (drivers_start_anchor(dr) < 0)
		goto out; /* logged by main_on_driver */
	log_info("ready: admin %s/%s, workload %s/%s%s", o->runtime_dir, SECRETD_ADMIN_SOCK,
	         o->runtime_dir, SECRETD_WORKLOAD_SOCK, o->no_open ? " (no-open mounts)" : "");
	main_keeper_hold_sockets(kl, a, inh);
	msig.a = a;
	mdef.sv = sv;
	mdef.due = main_mono_ms() + MAIN_RESTORE_RECORDS_DELAY_MS;
	if (kl) {
		size_t dropped = keeper_link_drop_untaken(kl);
		if (dropped)
			log_info(
			    "keeper: %zu held connection(s) of containers no longer known closed",
			    dropped);
		r = keeper_link_ready(kl, gettid());
		if (r < 0)
			log_error("keeper: cannot tell it this process serves (%s)", strerror(-r));
	}
	main_notify("READY=1\nSTATUS=serving %s/%s and %s/%s", o->runtime_dir, SECRETD_ADMIN_SOCK,
	            o->runtime_dir, SECRETD_WORKLOAD_SOCK);
	r = loop_run(l);
	if (r < 0) {
		/* Under a keeper, a failed loop is a crash: the next daemon process (started as
		 * soon as this thread ends) takes every mount over, so none is unmounted here. */
		log_error("event loop failed: %s%s", strerror(-r),
		          kl ? "; the keeper's next daemon process takes over" : "");
		if (kl)
			main_handoff = true;
		goto out;
	}
	rc = 0;
out:
	/* The server first: it finishes what it accepted (answered from the store still open). */
	relay_stop(rl);
	msig.rl = NULL;
	if (main_handoff) {
		main_notify("STATUS=upgrading: the keeper holds every connection");
		api_release(a);
	} else {
		main_notify("STOPPING=1\nSTATUS=stopping: unmounting every container's secrets");
		api_stop(a);
	}
	drivers_stop(dr);
	main_cluster_stop(mcl);
	if (sv) {
		size_t left = 0;
		if (service_flush_deferred(sv, &left) < 0) {
			size_t lost = service_drop_deferred(sv); /* counted and reported */
			log_error(
			    "audit: %zu restore record(s) could not be written before the stop",
			    lost);
		}
	}
	service_free(sv);
	if (main_handoff)
		mounts_release(m);
	else
		mounts_free(m);
	if (pw) {
		struct procwatch_stats ps;
		procwatch_get_stats(pw, &ps);
		log_info(
		    "procwatch: opener exes %llu from cache, %llu read from /proc; %llu execs, "
		    "%llu exits, %llu evictions, %llu event losses",
		    (unsigned long long)ps.exe_hits, (unsigned long long)ps.exe_reads,
		    (unsigned long long)ps.execs, (unsigned long long)ps.exits,
		    (unsigned long long)ps.evictions, (unsigned long long)ps.losses);
	}
	procwatch_free(pw);
	sfs_notifier_stop();
	uint64_t lost = 0;
	r = audit_free(au, &lost); /* flushes the last batch */
	if (r < 0) {
		log_error("audit: the last %llu buffered events could not be written at stop (%s): "
		          "they are not in the audit trail",
		          (unsigned long long)lost, strerror(-r));
		rc = 1;
	}
	if (rc == 0)
		drivers_anchor_flush(dr); /* a failure is reported (logged) by main_on_driver */
	drivers_free(dr);
	audit_driver_free(ad);
	store_close(s);
	loop_free(l);
	if (sfd >= 0)
		close(sfd);
	keeper_link_free(kl);
	if (rc == 0)
		log_info(main_handoff ? "handed off" : "stopped");
	return rc;
}

struct main_run_arg {
	struct main_opts *o;
	int rc;
};

static void *main_serve(void *p)
{
	struct main_run_arg *a = p;
	a->rc = main_run(a->o);
	return NULL;
}

/* The daemon process serves from a thread of its own, not from the process's first thread: the
 * keeper watches that thread (keeper_link_ready), because a killed process can linger while its
 * FUSE notifier thread is stuck in the kernel, and the first thread's end would not be seen then.
 * The signals main_run reads from its signalfd are blocked here first, in every thread. */
static int main_run_threaded(struct main_opts *o)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	struct main_run_arg a = {.o = o, .rc = 1};
	pthread_t t;
	int r = pthread_create(&t, NULL, main_serve, &a);
	if (r != 0) {
		log_error("cannot start the serving thread: %s", strerror(r));
		return 1;
	}
	pthread_join(t, NULL);
	return a.rc;
}

int main(int argc, char **argv)
{
	/* The workload server, exec'd by the daemon process's relay (already unprivileged). */
	const char *role = getenv(RELAY_ENV_ROLE);
	if (role && strcmp(role, "server") == 0)
		return main_server();
	if (argc < 2) {
		main_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		main_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("secretd %s\n", SECRETD_VERSION);
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
	if (init)
		return main_init(&o);
	/* `run` starts as the keeper, which execs this binary again as the daemon process (the
	 * worker: it finds KEEPER_ENV_FD set). */
	if (!o.no_keeper && !getenv(KEEPER_ENV_FD))
		return main_keeper(argv, o.state_dir);
	return main_run_threaded(&o);
}
