/* main_cluster.c: the daemon's top level for cluster mode: joining at init, starting the node
 * at run, and the log lines of what it reports (main logs; the cluster layer never does). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/cluster/cluster.h"
#include "broker/crypto/crypt.h"
#include "broker/engine/service.h"
#include "broker/main_int.h"
#include "broker/os/log.h"
#include "broker/store/store.h"
#include "common/secret.h"

/* The systemd credential read when --etcd-user comes without --etcd-password-file
 * (LoadCredential=etcd-password:FILE puts it in $CREDENTIALS_DIRECTORY). */
#define MAIN_ETCD_CREDENTIAL "etcd-password"

struct main_cluster {
	cluster *c;
	service *sv;
	const struct main_etcd *e;
	/* one limiter per kind of refusal: a rollback is not hidden behind an integrity failure */
	struct log_rl rl_rej_bad, rl_rej_stale, rl_rej_gone, rl_rej, rl_watch, rl_apply, rl_stall,
	    rl_name;
};

static const char *main_cluster_err(int r)
{
	switch (r) {
	case -EHOSTUNREACH:
		return "etcd cannot be reached";
	case -EKEYREJECTED:
		return "the cluster's keyring is not this store's (another root key file or "
		       "passphrase, or this store was made for another cluster)";
	case -ENOTEMPTY:
		return "this store already holds secrets, grants or audit records: only a fresh "
		       "store joins a cluster";
	case -EADDRINUSE:
		return "this node's name (--node-name) is held by another live node of the cluster "
		       "(through its etcd lease): give each node its own name";
	case -EINVAL:
		return "bad --etcd or --cluster (http[s]://HOST:PORT[,...], one scheme; a name of "
		       "a-z 0-9 - _), TLS files or --etcd-user with http:// (https:// is needed), "
		       "or the cluster's root is a key file and this node has a passphrase (or the "
		       "other way round: every node needs what the first one was made with)";
	case -EBADMSG:
		return "integrity check failed";
	case -ESTALE:
		return "a newer version is held here (a rollback)";
	case -EIDRM:
		return "it was revoked or deleted here (a replay of a removed row)";
	case -EEXIST:
		return "the same name was made on two nodes with different ids";
	default:
		return strerror(-r);
	}
}

/* Why etcd refused this node, naming the user: the refusals (-EACCES, -EPERM, -EBADE) and
 * else main_cluster_err. */
static const char *main_cluster_why(int r, const struct main_etcd *e, char *buf, size_t n)
{
	switch (r) {
	case -EACCES:
		if (e->user)
			snprintf(buf, n,
			         "etcd refused the credentials for user %s (wrong password, "
			         "unknown user, or authentication not enabled in etcd)",
			         e->user);
		else
			snprintf(buf, n,
			         "etcd requires credentials: give --etcd-user NAME and its "
			         "password (--etcd-password-file or the systemd credential %s)",
			         MAIN_ETCD_CREDENTIAL);
		return buf;
	case -EPERM:
		if (e->user)
			snprintf(buf, n,
			         "etcd denied user %s this cluster's keys (its role needs "
			         "readwrite on the cluster's prefix /secretd/%s/)",
			         e->user, e->cluster);
		else
			snprintf(buf, n,
			         "etcd requires credentials: give --etcd-user NAME and its "
			         "password (etcd denied this node without a user)");
		return buf;
	case -EBADE:
		snprintf(buf, n,
		         "TLS with etcd failed: its certificate does not verify against %s, "
		         "or it %s",
		         e->cacert ? e->cacert : "the system's CAs (give --etcd-cacert)",
		         e->cert ? "refused this node's client certificate"
		                 : "requires a client certificate (--etcd-cert, --etcd-key)");
		return buf;
	default:
		return main_cluster_err(r);
	}
}

/* The etcd security from the options: *pw the password (read from --etcd-password-file or
 * $CREDENTIALS_DIRECTORY/etcd-password; the caller secret_unref's). Prints why not (stderr:
 * init, and run before the log is anything but stderr). */
static int main_cluster_sec(const struct main_etcd *e, struct etcd_security *sec, secret **pw)
{
	*sec = (struct etcd_security){.cacert = e->cacert, .cert = e->cert, .key = e->key};
	*pw = NULL;
	if (!e->user)
		return 0;
	char path[4096];
	const char *credir = getenv("CREDENTIALS_DIRECTORY");
	if (e->password_file) {
		snprintf(path, sizeof(path), "%s", e->password_file);
	} else if (credir && *credir) {
		snprintf(path, sizeof(path), "%s/%s", credir, MAIN_ETCD_CREDENTIAL);
	} else {
		log_error("--etcd-user %s needs its password: --etcd-password-file FILE, or the "
		          "systemd credential %s (LoadCredential=)",
		          e->user, MAIN_ETCD_CREDENTIAL);
		return -EINVAL;
	}
	int r = crypt_private_read(path, ETCD_PASSWORD_MAX, pw);
	if (r < 0) {
		log_error("etcd password file %s: %s", path,
		          r == -EPERM    ? "must be owned by this user with no group or other "
		                           "permission (chmod 600)"
		          : r == -EINVAL ? "must be a regular, non-empty file"
		          : r == -EFBIG  ? "too long"
		          : r == -ELOOP  ? "is a symlink"
		                         : strerror(-r));
		return r;
	}
	sec->user = e->user;
	sec->password = *pw;
	return 0;
}

int main_cluster_init(const char *state_dir, const char *key_file, const char *pass_file,
                      const struct main_etcd *e)
{
	struct etcd_security sec;
	_cleanup_secret_ secret *pw = NULL;
	if (main_cluster_sec(e, &sec, &pw) < 0) {
		fprintf(stderr, "secretd: init: cannot join cluster %s (see above)\n", e->cluster);
		return 1;
	}
	struct store_opts so = {.state_dir = state_dir,
	                        .key_file = pass_file ? NULL : key_file,
	                        .pass_file = pass_file};
	store *s = NULL;
	int r = store_open(&s, &so);
	bool created = false;
	char err[CLUSTER_ERROR_MAX] = "", why[512];
	if (r == 0)
		r = cluster_join(s, e->urls, &sec, e->cluster, pass_file, &created, err,
		                 sizeof(err));
	store_close(s);
	if (r < 0) {
		fprintf(stderr, "secretd: init: cannot join cluster %s: %s%s%s%s\n", e->cluster,
		        main_cluster_why(r, e, why, sizeof(why)), err[0] ? " (" : "", err,
		        err[0] ? ")" : "");
		return 1;
	}
	printf("%s cluster %s through %s\n", created ? "created" : "joined", e->cluster, e->urls);
	return 0;
}

static void main_cluster_applied(void *ud, bool changed)
{
	struct main_cluster *mc = ud;
	service_cluster_applied(mc->sv, changed);
}

static void main_cluster_report(void *ud, enum cluster_event ev, const char *what, int err)
{
	struct main_cluster *mc = ud;
	switch (ev) {
	case CLUSTER_REJECTED:
		log_ratelimited(err == -EBADMSG  ? &mc->rl_rej_bad
		                : err == -ESTALE ? &mc->rl_rej_stale
		                : err == -EIDRM  ? &mc->rl_rej_gone
		                                 : &mc->rl_rej,
		                LOG_LVL_ERROR,
		                "cluster: refused %s from etcd: %s (not applied; counted in "
		                "secretd_cluster_rejected_total)",
		                what, main_cluster_err(err));
		break;
	case CLUSTER_APPLY_ERROR:
		log_ratelimited(&mc->rl_apply, LOG_LVL_ERROR, "cluster: cannot apply %s: %s", what,
		                main_cluster_err(err));
		break;
	case CLUSTER_WATCH_ERROR:
		log_ratelimited(&mc->rl_watch, LOG_LVL_WARN,
		                "cluster: etcd: %s (this node serves its local copy; writes are "
		                "refused while etcd cannot be reached)",
		                what && *what ? what : main_cluster_err(err));
		break;
	case CLUSTER_WATCH_STALL:
		log_ratelimited(&mc->rl_stall, LOG_LVL_WARN,
		                "cluster: %s (counted in secretd_cluster_watch_stalls_total)",
		                what);
		break;
	case CLUSTER_NAME_IN_USE:
		log_ratelimited(&mc->rl_name, LOG_LVL_ERROR, "cluster: %s", what);
		break;
	case CLUSTER_WATCHING:
		log_rl_reset(&mc->rl_watch);
		log_info("cluster: watching etcd from revision %d", err);
		break;
	case CLUSTER_KEYRING:
		log_ratelimited(&mc->rl_rej, LOG_LVL_ERROR, "cluster: %s: %s", what,
		                main_cluster_err(err));
		break;
	case CLUSTER_KEYRING_KEPT:
		log_ratelimited(&mc->rl_apply, LOG_LVL_WARN,
		                "cluster: %s dropped %d key generation(s) that rows of this node "
		                "still use: kept here until none does",
		                what, err);
		break;
	case CLUSTER_REFUSED: {
		char why[512];
		log_error("cluster %s: %s (%s)", mc->e->cluster,
		          main_cluster_why(err, mc->e, why, sizeof(why)), what);
		break;
	}
	}
}

int main_cluster_start(struct main_cluster **out, store *s, loop *l, service *sv,
                       const struct main_etcd *e)
{
	struct etcd_security sec;
	_cleanup_secret_ secret *pw = NULL; /* the clients hold their references */
	int r = main_cluster_sec(e, &sec, &pw);
	if (r < 0)
		return r; /* logged */
	struct main_cluster *mc = calloc(1, sizeof(*mc));
	if (!mc)
		return -ENOMEM;
	mc->sv = sv;
	mc->e = e;
	struct cluster_config cc = {.etcd = e->urls,
	                            .sec = &sec,
	                            .name = e->cluster,
	                            .node = e->node_name,
	                            .on_applied = main_cluster_applied,
	                            .report = main_cluster_report,
	                            .ud = mc};
	r = cluster_new(&mc->c, s, l, &cc);
	if (r < 0) {
		if (r != -EACCES && r != -EPERM && r != -EBADE) /* else CLUSTER_REFUSED logged */
			log_error("cluster %s: %s", e->cluster, main_cluster_err(r));
		free(mc);
		return r;
	}
	service_set_cluster(sv, mc->c);
	log_info("cluster %s through %s%s%s%s", e->cluster, e->urls,
	         e->user ? " as etcd user " : "", e->user ? e->user : "",
	         e->cert ? " (TLS client certificate)" : "");
	*out = mc;
	return 0;
}

void main_cluster_stop(struct main_cluster *mc)
{
	if (!mc)
		return;
	service_set_cluster(mc->sv, NULL);
	cluster_free(mc->c);
	free(mc);
}
