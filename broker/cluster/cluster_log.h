/* cluster_log: the origin of each cluster change (issue #18; docs/cluster.md "Audit"). A node
 * that writes a secret's or a grant's key to etcd puts, in the same txn and before the change,
 * the origin record /secretd/<cluster>/o/<hex BLAKE2b-128 of the key after the prefix>: JSON
 * {"v":1,"key","node","actor","action","time","deleted","bind","mac"}, overwritten at each change
 * of that key (one per key). bind is the BLAKE2b-256 of the value put (of the value deleted, for
 * a deletion): the record belongs to that change only. mac is the keyed MAC (store_cluster_mac,
 * the cluster's MAC root) over every other field: a writer to etcd without the root key cannot
 * forge one, nor move one to another key or change. Every node that applies the change puts
 * origin=NODE actor=ACTOR action=ACTION into its cluster-* audit record.
 *
 * cluster_log_decode is pure: it parses outside input (pointer, length) under the named limits
 * below and is fuzzed (tests/fuzz/fuzz_origin.c). Functions return 0 or a negative errno. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/cluster/etcd.h"
#include "broker/store/store.h"

#define CLUSTER_LOG_MAX 4096     /* an origin record's JSON (the etcd value) */
#define CLUSTER_LOG_KEY_MAX 1024 /* the key changed (after the prefix) */
#define CLUSTER_LOG_NAME_MAX 128 /* node, actor, action: printable ASCII, no '"' or '\\' */
#define CLUSTER_LOG_OKEY_HEX 32  /* the origin key's hex digits (BLAKE2b-128) */
#define CLUSTER_LOG_MAGIC "secretd/cluster/origin/v1"

struct cluster_origin {
	char key[CLUSTER_LOG_KEY_MAX + 1]; /* the key changed, after the prefix: s/NAME, g/... */
	char node[CLUSTER_LOG_NAME_MAX + 1];
	char actor[CLUSTER_LOG_NAME_MAX + 1];
	char action[CLUSTER_LOG_NAME_MAX + 1];
	int64_t time; /* unix seconds */
	bool deleted; /* the change deleted the key */
	uint8_t bind[32];
	uint8_t mac[32];
};

/* The BLAKE2b-256 of a value (bind). */
void cluster_log_bind(const void *val, size_t len, uint8_t out[32]);
/* The origin key of a change of key (after the prefix) into out (cap bytes):
 * PREFIX "o/" HEX; -EINVAL when it does not fit. */
int cluster_log_key(const char *prefix, const char *key, char *out, size_t cap);
/* Fills o->mac (store_cluster_mac) and encodes o into malloc'd JSON *out (*len bytes, the
 * caller frees). -EINVAL for a field out of its limits. */
int cluster_log_encode(store *s, struct cluster_origin *o, char **out, size_t *len);
/* Parses an origin record (len bytes, no NUL needed) into *o. Pure. -EBADMSG: not an origin
 * record (bad JSON, a field missing, of the wrong type or out of its limits); -E2BIG: over
 * CLUSTER_LOG_MAX. */
int cluster_log_decode(const char *p, size_t len, struct cluster_origin *o);
/* Checks o's MAC: 0 or -EBADMSG (also -EINVAL without keys). */
int cluster_log_verify(store *s, const struct cluster_origin *o);

/* The origin record of a change about to be written (cluster_commit): node (this node's name)
 * changed key (the full etcd key; prefix is the cluster's) to val (deleted: from val, the
 * value held before) as actor doing action (either may be "": "daemon" / "change"; bytes a
 * record cannot hold become '?', longer ones are cut). put is the extra put of the change's
 * txn (etcd_txn_with); free with cluster_log_put_free. */
struct cluster_log_put {
	char key[ETCD_KEY_MAX + 1];
	char *val;
	struct etcd_put put;
};
int cluster_log_prepare(store *s, const char *prefix, const char *node, const char *key,
                        const void *val, size_t vlen, bool deleted, const char *actor,
                        const char *action, struct cluster_log_put *out);
void cluster_log_put_free(struct cluster_log_put *p);
