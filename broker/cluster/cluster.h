/* cluster: one secretd node of a cluster that shares its store through etcd (issue #18, first
 * slice; docs/cluster.md). etcd holds only the store's sealed rows (store.h "cluster rows")
 * under /secretd/<cluster>/: s/<name> (a secret's head and versions), g/<hex secret>/<hex
 * selector> (a grant row with its MAC), keyring (the sealed MAC root and key generations).
 *
 * Writes: the caller (engine/service) calls *_begin before its local change (a linearizable
 * read: etcd reachable, and this node holds what etcd holds for that key, else -ESTALE), makes
 * the change in the local store, then *_commit: a txn comparing the key's mod_revision puts the
 * new rows; when it fails the local change is undone (the rows from before imported back) and
 * -EHOSTUNREACH (etcd unreachable: writes are refused), -ESTALE (a conflict), or -EPERM /
 * -EACCES (etcd refused this node's user the key, or its credentials) is returned.
 *
 * Reads: a watch thread (blocking libcurl, etcd_watch) follows the prefix from the last
 * revision this node applied (kept in the store: a restart without etcd serves the local copy)
 * and queues what it sees; an eventfd wakes the daemon's loop, which applies the queue to the
 * store on its own thread (imports checked with this node's keys: a row that fails is refused,
 * reported and counted, never applied; a changed keyring through store_keyring_update: a key
 * rotation on another node) and calls on_applied. The thread never touches the
 * store. Functions return 0 or a negative errno. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/cluster/etcd.h"
#include "broker/os/loop.h"
#include "broker/store/store.h"

#define CLUSTER_NAME_MAX 64         /* [a-z0-9_-], 1..64 */
#define CLUSTER_QUEUE_MAX 100000    /* changes queued by the watch thread, not yet applied */
#define CLUSTER_BACKOFF_MIN_MS 100  /* the watch reconnects after 0.1 s, doubling ... */
#define CLUSTER_BACKOFF_MAX_MS 2000 /* ... to 2 s */
#define CLUSTER_KEY_MAX 1024
/* A secret's rows (every kept version) as one etcd value: etcd 3.4 refuses requests over
 * 1.5 MiB by default; a change whose rows are larger is refused (-EFBIG) and undone. */
#define CLUSTER_ROWS_MAX (1024 * 1024)
/* The election (schedules and expiry fire on one node): an etcd lease of this many seconds,
 * kept alive every third of it; the leader stops firing CLUSTER_LEASE_MARGIN_MS before the
 * lease could have expired in etcd since its last keep-alive was sent. */
#define CLUSTER_LEASE_TTL_S 6
#define CLUSTER_LEASE_MARGIN_MS 1500
/* At a stop the election's etcd call in progress is canceled and the lease revoked in one call
 * bounded by this (without quorum it expires by itself after its TTL). */
#define CLUSTER_REVOKE_MS 1000
#define CLUSTER_NODE_MAX 128     /* a node's name in the election */
#define CLUSTER_NODE_NAME_MAX 64 /* a name given with --node-name: 1..64 of a-z 0-9 . - _ */
/* At start, a node's name held by another lease is waited for this long before the start is
 * refused: twice the lease's TTL and a second, so that the lease of this node's own previous
 * run, crashed just before (a keeper restarts it at once), has surely expired in etcd. */
#define CLUSTER_NAME_WAIT_MS ((2 * CLUSTER_LEASE_TTL_S + 1) * 1000)
#define CLUSTER_ERROR_MAX 1200 /* an error text kept */
#define CLUSTER_MEMBERS_MAX 16 /* etcd members shown by cluster status (more are counted) */
/* The watch progress check: each election round (every CLUSTER_LEASE_TTL_S / 3 s) reads the
 * highest mod_revision under the prefix (linearizable); when the watch stream has delivered
 * nothing up to a revision seen there for this many more rounds, the stream is taken as stalled
 * (a member cut off from the quorum, or stopped, keeps a silent stream open): it is canceled and
 * reopened on the next endpoint from the last revision received. */
#define CLUSTER_WATCH_STALL_ROUNDS 2

typedef struct cluster cluster;

enum cluster_event {
	CLUSTER_REJECTED,     /* a row from etcd failed its checks: not applied (what, err) */
	CLUSTER_APPLY_ERROR,  /* a row could not be applied for another reason (what, err) */
	CLUSTER_WATCH_ERROR,  /* the watch stream broke (what: the endpoint's error) */
	CLUSTER_WATCHING,     /* the watch (re)started from revision err */
	CLUSTER_WATCH_STALL,  /* the watch stream stalled and was reopened (what: on which endpoint,
	                       * behind which revision) */
	CLUSTER_KEYRING,      /* etcd's keyring is not this node's: nothing from it can verify */
	CLUSTER_NAME_IN_USE,  /* later: another live node holds this node's name (what: the text);
	                       * this node does not lead until the name is its own again */
	CLUSTER_KEYRING_KEPT, /* a keyring from etcd dropped generations rows here still use: kept
	                       * here (err: how many) */
	CLUSTER_REFUSED, /* at start: etcd refused this node (err -EACCES, -EPERM, -EBADE; what:
	                  * etcd's or TLS's text); cluster_new then fails with err */
};

struct cluster_config {
	const char *etcd; /* "http[s]://H:P[,...]" */
	/* TLS files and the etcd user (may be NULL; etcd.h); copied and referenced by the clients
	 */
	const struct etcd_security *sec;
	const char *name;    /* the cluster's name */
	unsigned timeout_ms; /* per etcd request and endpoint; 0: ETCD_TIMEOUT_MS_DEFAULT */
	/* this node's name (cluster_node_name_ok; NULL: "HOSTNAME:PID"), claimed in etcd as
	 * /secretd/<cluster>/n/<node> attached to the node's lease: at start, a name another live
	 * node holds is waited for (up to CLUSTER_NAME_WAIT_MS: a crashed run of this node
	 * lets go of it by then) and else refused (-EADDRINUSE) */
	const char *node;
	/* On the loop's thread after a batch was applied; changed: the store changed (views must
	 * follow). */
	void (*on_applied)(void *ud, bool changed);
	/* On the loop's thread; what is valid during the call. The top level logs it. */
	void (*report)(void *ud, enum cluster_event ev, const char *what, int err);
	void *ud;
};

struct cluster_stats {
	uint64_t applied;        /* rows applied from etcd */
	uint64_t rejected;       /* rows refused (integrity, rollback, id collision) */
	uint64_t write_failures; /* writes refused: etcd unreachable */
	uint64_t conflicts;      /* writes refused: another node changed the key */
	uint64_t watch_errors;   /* watch streams broken */
	uint64_t watch_stalls;   /* watch streams canceled by the progress check */
	uint64_t revision;       /* the revision applied */
	uint64_t etcd_revision;  /* etcd's revision as last seen (election rounds, watch) */
	bool watching;           /* the watch stream is open */
	char watch_endpoint[ETCD_URL_MAX]; /* the endpoint of the open (or last) watch stream */
	bool leader;  /* this node fires schedules and expiry now (cluster_is_leader) */
	bool elected; /* an election round reached etcd (else leader_name is stale) */
	char leader_name[CLUSTER_NODE_MAX];     /* the leader as last seen ("" none known) */
	char node[CLUSTER_NODE_MAX];            /* this node's name */
	char election_error[CLUSTER_ERROR_MAX]; /* the last election round's error ("" none) */
	/* etcd's members as the last election round read them (nmembers 0: not read yet, or that
	 * read failed: members_error says why); etcd_leader is the Raft leader's member id */
	struct etcd_member members[CLUSTER_MEMBERS_MAX];
	size_t nmembers, members_total;
	uint64_t etcd_leader;
	char members_error[CLUSTER_ERROR_MAX];
};

/* Whether n is a valid --node-name: 1..CLUSTER_NODE_NAME_MAX of a-z 0-9 . - _ */
bool cluster_node_name_ok(const char *n);

/* Checks the name (-EINVAL), connects the client, and with etcd reachable checks that etcd's
 * keyring is this store's or one store_keyring_update takes (a key rotation this node missed;
 * -EKEYREJECTED otherwise: refuse to start); etcd unreachable is not an
 * error (the local copy serves; writes are refused until it is back). With etcd reachable,
 * claims the node's name (struct cluster_config's node: -EADDRINUSE when another live node
 * holds it). Starts the watch thread and puts its eventfd into l. Sets store_cluster_ids. */
int cluster_new(cluster **out, store *s, loop *l, const struct cluster_config *cfg);
/* Stops the threads (joins them; their etcd calls in progress are canceled; the election's lease
 * is then revoked in one call bounded by CLUSTER_REVOKE_MS) and frees. */
void cluster_free(cluster *c);
void cluster_get_stats(cluster *c, struct cluster_stats *st);
/* Whether this node holds the leader key through a lease that cannot have expired yet: only
 * then does it fire schedules and expiry. Any thread. */
bool cluster_is_leader(cluster *c);
/* The last etcd error seen by the watch or a write (for `secretctl cluster status`); "" when
 * none since the watch last started. Loop thread. */
const char *cluster_last_error(cluster *c);
/* The cluster's name and the etcd endpoints as configured. */
const char *cluster_name(cluster *c);
const char *cluster_endpoints(cluster *c);

/* At `secretd init --etcd --cluster`: publishes this store's keyring when the cluster has none
 * (*created true), else adopts the cluster's (store_keyring_adopt with pass_file, NULL for a key
 * file's store: the caller then closes the store). -EHOSTUNREACH, -EKEYREJECTED (another root key
 * or passphrase), -ENOTEMPTY, -EINVAL (the cluster's root is a key file and this store's a
 * passphrase, or the other way round), -EACCES / -EPERM / -EBADE (etcd refused the credentials,
 * the permission, or TLS failed: etcd.h). sec may be NULL. err (errlen bytes, may be NULL):
 * etcd's or the transport's text on failure. */
int cluster_join(store *s, const char *etcd, const struct etcd_security *sec, const char *name,
                 const char *pass_file, bool *created, char *err, size_t errlen);

/* A write in progress (begin → local change → commit). */
struct cluster_pre {
	uint8_t *old; /* this node's rows before the change (NULL: none) */
	size_t oldlen;
	int64_t mod_rev; /* the key's mod_revision in etcd (0: absent) */
	/* who asks, for the change's origin record (cluster_log.h): the audit record's actor and
	 * action; "" (as *_begin leaves them): "daemon" and "change" */
	char actor[CLUSTER_NODE_MAX], action[CLUSTER_NODE_MAX];
};
void cluster_pre_free(struct cluster_pre *p);

/* Before a change of secret name (put, rotate, rollback, delete). -EHOSTUNREACH, -ESTALE.
 * While the election's last round could not reach etcd, -EHOSTUNREACH at once (no etcd call:
 * the loop's thread is not held); else a read bounded by the timeout. */
int cluster_secret_begin(cluster *c, const char *name, struct cluster_pre *pre);
/* After the local change (deleted: the secret is gone). On failure the local change is undone
 * (*undo_err (may be NULL): 0, or why the undo failed). Frees pre. */
int cluster_secret_commit(cluster *c, const char *name, bool deleted, struct cluster_pre *pre,
                          int *undo_err);
int cluster_grant_begin(cluster *c, const char *secret, const char *selector,
                        struct cluster_pre *pre);
int cluster_grant_commit(cluster *c, const char *secret, const char *selector, bool removed,
                         struct cluster_pre *pre, int *undo_err);

/* Writes that do not hold the loop (the admin API's): the same steps with each etcd call on the
 * node's writer thread (one call at a time, in the order submitted) and its outcome delivered on
 * the loop's thread.
 * cluster_begin_async: the read of name's key (selector non-NULL: the grant's). Returns 0 and
 * cb follows once etcd answered: r 0 with rd, etcd's answer (the callee's: cluster_read_check
 * at the local change, or cluster_read_free), or r -EHOSTUNREACH, -EPERM / -EACCES (refused),
 * -ECANCELED (the node is stopping), -ENOMEM (rd NULL). Or returns < 0 at once (cb is not
 * called): -EHOSTUNREACH while the election's last round could not reach etcd, -ECANCELED,
 * -EINVAL. */
struct cluster_read;
typedef void (*cluster_begun_fn)(void *ud, int r, struct cluster_read *rd);
int cluster_begin_async(cluster *c, const char *name, const char *selector, cluster_begun_fn cb,
                        void *ud);
/* Just before the local change: etcd's answer rd (freed) against this node's rows now (what the
 * watch applied since the read included). 0 and *pre for cluster_commit_async, or -ESTALE (a
 * conflict, counted) or the export's error. */
int cluster_read_check(cluster *c, struct cluster_read *rd, struct cluster_pre *pre);
void cluster_read_free(struct cluster_read *rd);
/* After the local change (gone: the secret or grant is removed): exports the rows now and
 * queues the txn (takes pre). Until its answer is delivered the watch's events wait (not
 * applied). Returns 0 and cb follows: r 0, or the txn's error with the local change undone
 * (undo_err: 0, or why the undo failed); r -ECANCELED when the node stopped before sending it
 * (undone too). Or returns < 0 at once (-EFBIG rows too large, -ECANCELED, -ENOMEM; cb is not
 * called) with the local change undone (*undo_err as above). */
typedef void (*cluster_committed_fn)(void *ud, int r, int undo_err);
int cluster_commit_async(cluster *c, const char *name, const char *selector, bool gone,
                         struct cluster_pre *pre, cluster_committed_fn cb, void *ud, int *undo_err);

/* Key rotation across the cluster (loop thread; each call waits for its etcd calls, run on the
 * writer thread after the writes queued before it, each bounded by the timeout per endpoint).
 * cluster_keyring_put: etcd's keyring must be mine (this node's before the change: -ESTALE
 * otherwise, a conflict), then a txn on its mod_revision puts kr. cluster_rewrap_put: one txn
 * for a batch of re-wrapped secrets (at most CLUSTER_REWRAP_KEYS), each key's value compared
 * with its rows before (-ESTALE when one changed: the batch is redone later). Both:
 * -EHOSTUNREACH (etcd unreachable, at once while the election's last round failed), -EPERM /
 * -EACCES (refused), -EFBIG (too large for one txn). */
#define CLUSTER_REWRAP_KEYS ETCD_TXN_OPS_MAX
/* a batch's rows before and after: etcd 3.4 refuses a request over 1.5 MiB (base64 adds a
 * third); a single secret over it goes alone */
#define CLUSTER_REWRAP_BYTES (512 * 1024)
int cluster_keyring_put(cluster *c, const uint8_t *mine, size_t minelen, const uint8_t *kr,
                        size_t len);
int cluster_rewrap_put(cluster *c, const struct store_rewrapped *v, size_t n);
