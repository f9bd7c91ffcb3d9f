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

struct main_cluster {
	cluster *c;
	service *sv;
	/* one limiter per kind of refusal: a rollback is not hidden behind an integrity failure */
	struct log_rl rl_rej_bad, rl_rej_stale, rl_rej_gone, rl_rej, rl_watch, rl_apply;
};

static const char *main_cluster_err(int r)
{
	switch (r) {
	case -EHOSTUNREACH:
		return "etcd cannot be reached";
	case -EKEYREJECTED:
		return "the cluster's keyring is not this store's (another root key file, or this "
		       "store was made for another cluster)";
	case -ENOTEMPTY:
		return "this store already holds secrets, grants or audit records: only a fresh "
		       "store joins a cluster";
	case -EINVAL:
		return "bad --etcd or --cluster (http://HOST:PORT[,...]; a name of a-z 0-9 - _), "
		       "or "
		       "a passphrase store (cluster mode needs a key file)";
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

int main_cluster_init(const char *state_dir, const char *key_file, const char *etcd,
                      const char *name)
{
	struct store_opts so = {.state_dir = state_dir, .key_file = key_file};
	store *s = NULL;
	int r = store_open(&s, &so);
	bool created = false;
	if (r == 0)
		r = cluster_join(s, etcd, name, &created);
	store_close(s);
	if (r < 0) {
		fprintf(stderr, "secretd: init: cannot join cluster %s: %s\n", name,
		        main_cluster_err(r));
		return 1;
	}
	printf("%s cluster %s through %s\n", created ? "created" : "joined", name, etcd);
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
	case CLUSTER_WATCHING:
		log_rl_reset(&mc->rl_watch);
		log_info("cluster: watching etcd from revision %d", err);
		break;
	case CLUSTER_KEYRING:
		log_ratelimited(&mc->rl_rej, LOG_LVL_ERROR, "cluster: %s: %s", what,
		                main_cluster_err(err));
		break;
	}
}

int main_cluster_start(struct main_cluster **out, store *s, loop *l, service *sv, const char *etcd,
                       const char *name)
{
	struct main_cluster *mc = calloc(1, sizeof(*mc));
	if (!mc)
		return -ENOMEM;
	mc->sv = sv;
	struct cluster_config cc = {.etcd = etcd,
	                            .name = name,
	                            .on_applied = main_cluster_applied,
	                            .report = main_cluster_report,
	                            .ud = mc};
	int r = cluster_new(&mc->c, s, l, &cc);
	if (r < 0) {
		log_error("cluster %s: %s", name, main_cluster_err(r));
		free(mc);
		return r;
	}
	service_set_cluster(sv, mc->c);
	log_info("cluster %s through %s", name, etcd);
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
