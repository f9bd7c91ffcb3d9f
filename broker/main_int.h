/* main_int.h: what broker/main.c and broker/main_keeper.c share (the daemon's top level). */
#pragma once

/* Runs `secretd run` as the keeper (broker/keeper/keeper.h) of a worker exec'd with the same argv;
 * returns the process's exit status. */
int main_keeper(char **argv, const char *state_dir);

/* A predecessor killed a moment ago may still be exiting and hold the store's lock (its daemon
 * process dies with it, asynchronously): calls attempt(ud) every 50 ms while it returns -EBUSY,
 * for at most MAIN_LOCK_WAIT_MS (logged once); returns attempt's last result. */
#define MAIN_LOCK_WAIT_MS 5000
int main_lock_retry(int (*attempt)(void *ud), void *ud);

/* broker/main_cluster.c: cluster mode (--etcd URL[,URL...] --cluster NAME; docs/cluster.md). */
struct store;
struct loop;
struct service;
struct main_cluster;
/* The cluster options of init and run as given (NULL: not given). */
struct main_etcd {
	const char *urls, *cluster;       /* --etcd, --cluster */
	const char *cacert, *cert, *key;  /* --etcd-cacert, --etcd-cert, --etcd-key */
	const char *user, *password_file; /* --etcd-user, --etcd-password-file */
	const char *node_name;            /* --node-name (run) */
};
/* `secretd init --etcd --cluster`: joins the new store at state_dir (key_file) to the cluster:
 * publishes its keyring (the first node) or adopts the cluster's. Prints what it did; returns
 * the process's exit status. */
int main_cluster_init(const char *state_dir, const char *key_file, const char *pass_file,
                      const struct main_etcd *e);
/* `secretd run --etcd --cluster`: starts the node (logs why not; -errno) and sets it on sv. */
int main_cluster_start(struct main_cluster **out, struct store *s, struct loop *l,
                       struct service *sv, const struct main_etcd *e);
void main_cluster_stop(struct main_cluster *mc);

/* broker/main_server.c: the server process (SECRETD_ROLE=server; broker/http/relay.h): serves
 * workload.sock unprivileged, relaying each request to the daemon process. Returns the exit
 * status. */
int main_server(void);
