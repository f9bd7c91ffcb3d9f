/* cluster.c: a cluster node (cluster.h): the keys in etcd, writes (begin/commit with undo), the
 * watch thread and its queue, applying the queue on the loop's thread. */
#include "broker/cluster/cluster.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>

#include <curl/curl.h>

#include "broker/cluster/cluster_log.h"
#include "broker/cluster/etcd.h"
#include "common/cleanup.h"

enum cluster_item_type {
	IT_PUT,
	IT_DELETE,
	IT_SYNC_BEGIN, /* a full range follows (after a compaction): grants not in it are gone */
	IT_SYNC_END,   /* rev: the range's revision */
	IT_WATCHING,   /* rev: watching from */
	IT_ERROR,      /* key: the error text */
	IT_STALL,      /* key: the stalled stream, reopened (the progress check) */
	IT_NAME,       /* key: another live node holds this node's name (the election thread) */
};

struct cluster_item {
	enum cluster_item_type type;
	uint8_t *key, *val;
	size_t klen, vlen;
	int64_t rev;
};

/* etcd's answer to a write's read (cluster_begin_async). */
struct cluster_read {
	char *name, *selector;
	struct etcd_answer a;
};

/* One etcd call of a write, run by the writer thread (cluster_writer_thread): the linearizable
 * read before the local change, or the txn after it. */
struct cluster_wjob {
	struct cluster_wjob *next;
	bool txn;  /* else the read */
	bool sync; /* a caller on the loop's thread waits for it (cluster_wrun) */
	bool ran;  /* under mu: the writer ran it */
	char key[CLUSTER_KEY_MAX * 3];
	char *name, *selector; /* the write's subject (selector NULL: a secret) */
	const uint8_t *val;    /* txn: the new rows (NULL: delete the key); own: owned */
	size_t vlen;
	uint8_t *own;
	struct cluster_pre pre; /* txn: the rows before, for the undo; mod_rev for the compare */
	int r;                  /* the outcome */
	struct etcd_answer a;   /* the read's answer */
	cluster_begun_fn begun;
	cluster_committed_fn committed;
	void *ud;
	int (*fn)(cluster *c, void *arg); /* a key rotation's call (cluster_wrun) */
	void *arg;
};

struct cluster {
	store *s;
	loop *l;
	struct cluster_config cfg;
	etcd_client *wc; /* the loop thread's (writes) */
	etcd_client *rc; /* the watch thread's */
	char prefix[CLUSTER_NAME_MAX + 16];
	size_t plen;
	int efd;
	pthread_t th;
	bool started;
	volatile bool stop;
	/* the watch's progress check (cluster_watch_check): wabort ends the stream in progress
	 * (etcd_watch's stop; true whenever stop is); under mu: the revision the stream delivered
	 * up to, whether a stream is being opened or read, its attempt number, the stall's text */
	volatile bool wabort;
	int64_t seen_rev;
	bool in_watch;
	uint64_t attempt;
	char stall_what[ETCD_URL_MAX + 200];
	/* the election thread's: the revision the stream must reach, for how many rounds */
	int64_t stall_target;
	uint64_t stall_attempt;
	int stall_rounds;
	int64_t start_rev; /* the watch thread's */
	etcd_client *ec;   /* the election thread's */
	int64_t lease0;    /* the lease cluster_new claimed the node's name with (0: none yet) */
	bool name_clash;   /* the election thread's: the last round found the name held */
	pthread_t eth;
	bool estarted;
	int64_t leader_until_ms; /* under mu: CLOCK_MONOTONIC ms until which this node leads */
	/* under mu: the election's last round could not reach etcd (no endpoint answered in time,
	 * e.g. no quorum): writes are refused at once instead of holding the loop's thread */
	bool etcd_down;
	pthread_mutex_t mu;
	struct cluster_item *q; /* under mu */
	size_t nq, capq;
	struct cluster_stats st; /* under mu */
	/* loop thread: this node's own writes not yet seen back through the watch (key, the
	 * revision of its txn): an event of that key older than it is a stale echo, not news */
	struct cluster_own {
		char *key;
		int64_t rev;
	} * own;
	size_t nown;
	char last_err[CLUSTER_ERROR_MAX + 128]; /* loop thread */
	/* the writer thread: the etcd calls of writes, one at a time, in the order submitted */
	pthread_t wth;
	bool wstarted;
	pthread_cond_t wcond;             /* with mu: a job queued, or stop */
	pthread_cond_t wdone;             /* with mu: a synchronous job ran */
	struct cluster_wjob *wq, *wqtail; /* under mu: to run */
	struct cluster_wjob *wd, *wdtail; /* under mu: ran, for the loop (wfd) */
	int wfd;
	/* loop thread: async writes whose local change is made and whose txn has not been
	 * answered yet: watch events wait (applying another node's row now would meet the
	 * unpublished change) */
	unsigned holding;
	char actor[CLUSTER_NAME_MAX + 16]; /* "cluster:NAME": audit records of applied changes */
	/* loop thread: the last verified origin record (cluster_log.h) and its revision (0: none
	 * pending): the change of its key at that revision names its origin */
	struct cluster_origin origin;
	int64_t origin_rev;
	/* loop thread: during a sync, the grant keys seen */
	bool syncing;
	char **seen;
	size_t nseen;
};

static int cluster_name_ok(const char *n)
{
	size_t l = n ? strlen(n) : 0;
	if (l == 0 || l > CLUSTER_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < l; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '-' ||
		      n[i] == '_'))
			return -EINVAL;
	return 0;
}

bool cluster_node_name_ok(const char *n)
{
	size_t l = n ? strlen(n) : 0;
	if (l == 0 || l > CLUSTER_NODE_NAME_MAX)
		return false;
	for (size_t i = 0; i < l; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '-' ||
		      n[i] == '_' || n[i] == '.'))
			return false;
	return true;
}

static void cluster_hex(char *out, const char *s)
{
	static const char h[] = "0123456789abcdef";
	for (; *s; s++) {
		*out++ = h[(unsigned char)*s >> 4];
		*out++ = h[(unsigned char)*s & 15];
	}
	*out = 0;
}

static int cluster_unhex(char *out, size_t cap, const char *s, size_t n)
{
	if (n % 2 || n / 2 >= cap)
		return -EINVAL;
	for (size_t i = 0; i < n; i += 2) {
		int v = 0;
		for (int j = 0; j < 2; j++) {
			char ch = s[i + j];
			int d = ch >= '0' && ch <= '9'   ? ch - '0'
			        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
			                                 : -1;
			if (d < 0)
				return -EINVAL;
			v = v * 16 + d;
		}
		if (v == 0)
			return -EINVAL;
		out[i / 2] = (char)v;
	}
	out[n / 2] = 0;
	return 0;
}

static int cluster_key_secret(const cluster *c, const char *name, char *k, size_t cap)
{
	int n = snprintf(k, cap, "%ss/%s", c->prefix, name);
	return n < 0 || (size_t)n >= cap ? -EINVAL : n;
}

static int cluster_key_grant(const cluster *c, const char *secret, const char *selector, char *k,
                             size_t cap)
{
	if (c->plen + 4 + 2 * (strlen(secret) + strlen(selector)) >= cap)
		return -EINVAL;
	memcpy(k, c->prefix, c->plen);
	memcpy(k + c->plen, "g/", 2);
	cluster_hex(k + c->plen + 2, secret);
	size_t o = strlen(k);
	k[o++] = '/';
	cluster_hex(k + o, selector);
	return (int)strlen(k);
}

static void cluster_prefix(char *p, size_t cap, const char *name)
{
	snprintf(p, cap, "/secretd/%s/", name);
}

/* ---- the keyring ---- */

static int cluster_keyring_get(etcd_client *ec, const char *prefix, struct etcd_answer *a)
{
	char k[CLUSTER_KEY_MAX];
	snprintf(k, sizeof(k), "%skeyring", prefix);
	return etcd_range(ec, k, strlen(k), false, a);
}

int cluster_join(store *s, const char *etcd, const struct etcd_security *sec, const char *name,
                 const char *pass_file, bool *created, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	if (!s || !etcd || !created || cluster_name_ok(name) < 0)
		return -EINVAL;
	*created = false;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	etcd_client *ec = NULL;
	int r = etcd_client_new(&ec, etcd, 0, sec);
	if (r < 0)
		return r;
	char prefix[CLUSTER_NAME_MAX + 16], k[CLUSTER_KEY_MAX];
	cluster_prefix(prefix, sizeof(prefix), name);
	snprintf(k, sizeof(k), "%skeyring", prefix);
	_cleanup_free_ uint8_t *mine = NULL;
	size_t minelen = 0;
	struct etcd_answer a = {0};
	r = store_keyring_export(s, &mine, &minelen);
	for (int tries = 0; r == 0 && tries < 2; tries++) {
		etcd_answer_free(&a);
		r = etcd_range(ec, k, strlen(k), false, &a);
		if (r < 0)
			break;
		if (a.nkvs == 0) {
			bool ok = false;
			r = etcd_txn(ec, k, strlen(k), 0, mine, minelen, &ok, NULL);
			if (r == 0 && ok) {
				*created = true;
				break;
			}
			continue; /* another node created it meanwhile: adopt that one */
		}
		if (a.kvs[0].vlen == minelen && memcmp(a.kvs[0].value, mine, minelen) == 0)
			break; /* joined already */
		r = store_keyring_adopt(s, a.kvs[0].value, a.kvs[0].vlen, pass_file);
		break;
	}
	if (r < 0 && err && errlen)
		snprintf(err, errlen, "%s", etcd_client_error(ec));
	etcd_answer_free(&a);
	etcd_client_free(ec);
	return r;
}

/* ---- the watch thread ---- */

static void cluster_item_free(struct cluster_item *it)
{
	free(it->key);
	free(it->val);
}

/* Queues an item (copies key and val); wakes the loop. Waits while the queue is full. */
static int cluster_push(cluster *c, enum cluster_item_type t, const void *key, size_t klen,
                        const void *val, size_t vlen, int64_t rev)
{
	struct cluster_item it = {.type = t, .klen = klen, .vlen = vlen, .rev = rev};
	it.key = malloc(klen + 1);
	it.val = val ? malloc(vlen + 1) : NULL;
	if (!it.key || (val && !it.val)) {
		cluster_item_free(&it);
		return -ENOMEM;
	}
	if (klen)
		memcpy(it.key, key, klen);
	it.key[klen] = 0;
	if (val) {
		if (vlen)
			memcpy(it.val, val, vlen);
		it.val[vlen] = 0;
	}
	for (;;) {
		pthread_mutex_lock(&c->mu);
		if (c->nq < CLUSTER_QUEUE_MAX || c->stop)
			break;
		pthread_mutex_unlock(&c->mu);
		usleep(10000);
	}
	int r = 0;
	if (c->nq == c->capq) {
		size_t cap = c->capq ? c->capq * 2 : 64;
		struct cluster_item *nq = realloc(c->q, cap * sizeof(*nq));
		if (!nq)
			r = -ENOMEM;
		else {
			c->q = nq;
			c->capq = cap;
		}
	}
	if (r == 0)
		c->q[c->nq++] = it;
	pthread_mutex_unlock(&c->mu);
	if (r < 0) {
		cluster_item_free(&it);
		return r;
	}
	uint64_t one = 1;
	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is full, the loop is woken anyway */
	}
	return 0;
}

static int cluster_push_error(cluster *c, const char *what)
{
	return cluster_push(c, IT_ERROR, what, strlen(what), NULL, 0, 0);
}

struct cluster_watch_state {
	cluster *c;
	bool need_sync;
	bool created;
};

/* The watch thread received everything up to start_rev - 1 (for the progress check). */
static void cluster_seen(cluster *c)
{
	pthread_mutex_lock(&c->mu);
	c->seen_rev = c->start_rev - 1;
	pthread_mutex_unlock(&c->mu);
}

static int cluster_on_line(const char *line, size_t len, void *ud)
{
	struct cluster_watch_state *w = ud;
	cluster *c = w->c;
	struct etcd_answer a;
	int r = etcd_parse(line, len, &a);
	if (r == 0 && a.revision > 0) {
		pthread_mutex_lock(&c->mu);
		if ((uint64_t)a.revision > c->st.etcd_revision)
			c->st.etcd_revision = (uint64_t)a.revision;
		pthread_mutex_unlock(&c->mu);
	}
	if (r == 0 && a.watch && a.canceled) {
		if (a.compact_revision > 0)
			w->need_sync = true;
		r = -ECANCELED;
	} else if (r == 0 && (!a.watch || a.error)) {
		r = -EPROTO;
	}
	if (r == 0 && a.created) {
		w->created = true;
		pthread_mutex_lock(&c->mu);
		snprintf(c->st.watch_endpoint, sizeof(c->st.watch_endpoint), "%s",
		         etcd_client_watch_endpoint(c->rc));
		pthread_mutex_unlock(&c->mu);
		r = cluster_push(c, IT_WATCHING, "", 0, NULL, 0, c->start_rev);
	}
	for (size_t i = 0; r == 0 && i < a.nevents; i++) {
		struct etcd_kv *kv = &a.events[i].kv;
		r = cluster_push(c, a.events[i].type == ETCD_EVENT_DELETE ? IT_DELETE : IT_PUT,
		                 kv->key, kv->keylen,
		                 a.events[i].type == ETCD_EVENT_DELETE ? NULL : kv->value, kv->vlen,
		                 kv->mod_revision);
		if (kv->mod_revision >= c->start_rev)
			c->start_rev = kv->mod_revision + 1;
	}
	if (r == 0 && a.nevents)
		cluster_seen(c);
	etcd_answer_free(&a);
	return r;
}

static int cluster_sync(cluster *c)
{
	struct etcd_answer a;
	int r = etcd_range(c->rc, c->prefix, c->plen, true, &a);
	if (r == 0)
		r = cluster_push(c, IT_SYNC_BEGIN, "", 0, NULL, 0, 0);
	for (size_t i = 0; r == 0 && i < a.nkvs; i++)
		r = cluster_push(c, IT_PUT, a.kvs[i].key, a.kvs[i].keylen, a.kvs[i].value,
		                 a.kvs[i].vlen, a.kvs[i].mod_revision);
	if (r == 0)
		r = cluster_push(c, IT_SYNC_END, "", 0, NULL, 0, a.revision);
	if (r == 0) {
		c->start_rev = a.revision + 1;
		cluster_seen(c);
	}
	etcd_answer_free(&a);
	return r;
}

static void cluster_nap(cluster *c, unsigned ms)
{
	for (unsigned t = 0; t < ms && !c->stop; t += 50)
		usleep(50000);
}

static void *cluster_thread(void *ud)
{
	cluster *c = ud;
	struct cluster_watch_state w = {.c = c, .need_sync = c->start_rev <= 1};
	unsigned backoff = CLUSTER_BACKOFF_MIN_MS;
	char msg[ETCD_ERROR_MAX + 600];
	while (!c->stop) {
		int r = 0;
		if (w.need_sync) {
			r = cluster_sync(c);
			if (r == 0)
				w.need_sync = false;
		}
		bool stalled = false;
		if (r == 0) {
			w.created = false;
			pthread_mutex_lock(&c->mu);
			c->wabort = c->stop;
			c->in_watch = true;
			c->attempt++;
			pthread_mutex_unlock(&c->mu);
			r = etcd_watch(c->rc, c->prefix, c->plen, c->start_rev, cluster_on_line, &w,
			               &c->wabort);
			pthread_mutex_lock(&c->mu);
			c->in_watch = false;
			stalled = c->wabort && !c->stop;
			c->wabort = c->stop;
			if (stalled)
				snprintf(msg, sizeof(msg), "%s", c->stall_what);
			pthread_mutex_unlock(&c->mu);
		}
		if (c->stop)
			break;
		if (stalled) { /* reopened at once, on the next endpoint (etcd_watch) */
			if (cluster_push(c, IT_STALL, msg, strlen(msg), NULL, 0, 0) < 0) {
				/* out of memory: the stall stays counted in the stats */
			}
			backoff = CLUSTER_BACKOFF_MIN_MS;
			continue;
		}
		if (w.created)
			backoff = CLUSTER_BACKOFF_MIN_MS;
		snprintf(msg, sizeof(msg), "%s%s%s",
		         r == -ECANCELED ? "watch canceled (compacted: a full read follows)"
		         : r < 0         ? strerror(-r)
		                         : "watch stream ended",
		         etcd_client_error(c->rc)[0] ? ": " : "", etcd_client_error(c->rc));
		cluster_push_error(c, msg);
		cluster_nap(c, backoff);
		backoff =
		    backoff * 2 > CLUSTER_BACKOFF_MAX_MS ? CLUSTER_BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

/* ---- the election thread ---- */

static int64_t cluster_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One lease per node, kept alive every third of its TTL; each round a campaign (txn: create the
 * leader key attached to the lease when it does not exist, else read its holder). The holder
 * of the key under this node's lease leads until the lease could have expired. */
/* Reads etcd's members for cluster status (each election round; the election thread). */
static void cluster_members_round(cluster *c)
{
	struct etcd_member *m = NULL;
	size_t n = 0;
	uint64_t leader = 0;
	int r = etcd_members(c->ec, &m, &n, &leader);
	pthread_mutex_lock(&c->mu);
	if (r == 0) {
		size_t keep = n < CLUSTER_MEMBERS_MAX ? n : CLUSTER_MEMBERS_MAX;
		memcpy(c->st.members, m, keep * sizeof(*m));
		c->st.nmembers = keep;
		c->st.members_total = n;
		c->st.etcd_leader = leader;
		c->st.members_error[0] = 0;
	} else {
		c->st.nmembers = c->st.members_total = 0;
		c->st.etcd_leader = 0;
		snprintf(c->st.members_error, sizeof(c->st.members_error), "%s%s%s", strerror(-r),
		         etcd_client_error(c->ec)[0] ? ": " : "", etcd_client_error(c->ec));
	}
	pthread_mutex_unlock(&c->mu);
	free(m);
}

/* This node's name key (n/<node>) attached to lease: created when absent; *mine false when
 * another lease holds it (another live node of that name). */
static int cluster_name_claim(cluster *c, int64_t lease, bool *mine)
{
	char k[CLUSTER_KEY_MAX];
	snprintf(k, sizeof(k), "%sn/%s", c->prefix, c->st.node);
	bool won = false;
	char *holder = NULL;
	int64_t hl = 0;
	int r = etcd_campaign(c->ec, k, c->st.node, lease, &won, &holder, &hl, NULL);
	free(holder);
	*mine = r == 0 && (won || hl == lease);
	return r;
}

/* At start, with etcd reachable: a lease, and the node's name claimed with it. A name held by
 * another lease is waited for up to CLUSTER_NAME_WAIT_MS (this node's previous run, crashed,
 * lets go of it by then), then refused (-EADDRINUSE). The lease goes to the election thread. */
static int cluster_name_start(cluster *c)
{
	int64_t lease = 0, ttl = 0;
	int r = etcd_lease_grant(c->ec, CLUSTER_LEASE_TTL_S, &lease, &ttl);
	int64_t until = cluster_mono_ms() + CLUSTER_NAME_WAIT_MS;
	bool mine = false;
	while (r == 0) {
		r = cluster_name_claim(c, lease, &mine);
		if (r < 0 || mine || cluster_mono_ms() >= until)
			break;
		usleep(500 * 1000);
		r = etcd_lease_keepalive(c->ec, lease, &ttl);
		if (r == 0 && ttl <= 0)
			r = -ENOLINK;
	}
	if (r == 0 && !mine)
		r = -EADDRINUSE;
	if (r < 0 && lease && etcd_lease_revoke(c->ec, lease) < 0) {
		/* etcd unreachable: the lease expires by itself */
	}
	if (r == 0)
		c->lease0 = lease;
	return r;
}

/* The watch's progress check (the election thread, after a round that reached etcd): the
 * highest mod_revision under the prefix, read linearizably; a stream (open or being opened)
 * that has not delivered up to a revision seen there CLUSTER_WATCH_STALL_ROUNDS rounds later
 * is ended (wabort): the watch thread reopens it on the next endpoint. Each new stream starts
 * its own count. */
static void cluster_watch_check(cluster *c)
{
	int64_t last = 0;
	int r = etcd_range_last(c->ec, c->prefix, c->plen, &last, NULL);
	if (r < 0)
		return; /* etcd did not answer now: the election's error says so */
	pthread_mutex_lock(&c->mu);
	if ((uint64_t)last > c->st.etcd_revision)
		c->st.etcd_revision = (uint64_t)last;
	bool behind = c->in_watch && last > c->seen_rev;
	if (!behind || c->attempt != c->stall_attempt || c->stall_target == 0 ||
	    c->seen_rev >= c->stall_target) {
		c->stall_attempt = c->attempt;
		c->stall_target = behind ? last : 0;
		c->stall_rounds = 0;
	} else if (++c->stall_rounds >= CLUSTER_WATCH_STALL_ROUNDS) {
		c->st.watch_stalls++;
		snprintf(
		    c->stall_what, sizeof(c->stall_what),
		    "the watch stream on %s delivered nothing past revision %lld while etcd "
		    "holds a change at %lld (%d election rounds): reopened on the next endpoint",
		    c->st.watch_endpoint[0] ? c->st.watch_endpoint : "(not yet open)",
		    (long long)c->seen_rev, (long long)c->stall_target, c->stall_rounds);
		c->wabort = true;
		c->stall_target = 0;
		c->stall_rounds = 0;
	}
	pthread_mutex_unlock(&c->mu);
}

static void *cluster_elect_thread(void *ud)
{
	cluster *c = ud;
	char key[CLUSTER_KEY_MAX];
	snprintf(key, sizeof(key), "%sleader", c->prefix);
	int64_t lease = c->lease0;
	while (!c->stop) {
		int64_t t0 = cluster_mono_ms(), ttl = 0, hl = 0, rev = 0;
		bool won = false;
		char *holder = NULL;
		int r = lease ? etcd_lease_keepalive(c->ec, lease, &ttl)
		              : etcd_lease_grant(c->ec, CLUSTER_LEASE_TTL_S, &lease, &ttl);
		if (r == 0 && ttl <= 0) {
			lease =
			    0; /* expired meanwhile (etcd was unreachable too long): a new one */
			r = -ENOLINK;
		}
		bool mine = false;
		if (r == 0)
			r = cluster_name_claim(c, lease, &mine);
		if (r == 0 && mine)
			r = etcd_campaign(c->ec, key, c->st.node, lease, &won, &holder, &hl, &rev);
		pthread_mutex_lock(&c->mu);
		if (r == 0) {
			c->st.leader = won || hl == lease;
			c->st.elected = true;
			c->leader_until_ms =
			    c->st.leader ? t0 + ttl * 1000 - CLUSTER_LEASE_MARGIN_MS : 0;
			snprintf(c->st.leader_name, sizeof(c->st.leader_name), "%s",
			         c->st.leader ? c->st.node
			         : holder     ? holder
			                      : "");
			if (rev > 0 && (uint64_t)rev > c->st.etcd_revision)
				c->st.etcd_revision = (uint64_t)rev;
			c->st.election_error[0] = 0;
			c->etcd_down = false;
			/* another live node holds this node's name: this one does not lead */
			if (!mine) {
				c->st.leader = false;
				c->leader_until_ms = 0;
				snprintf(
				    c->st.election_error, sizeof(c->st.election_error),
				    "this node's name %s is held by another live node: it does not "
				    "lead until the name is its own again (give each node its own "
				    "--node-name)",
				    c->st.node);
			}
		} else {
			c->st.leader = false;
			c->st.elected = false;
			c->leader_until_ms = 0;
			c->etcd_down = r == -EHOSTUNREACH;
			snprintf(c->st.election_error, sizeof(c->st.election_error), "%s%s%s",
			         r == -ENOLINK ? "the lease expired" : strerror(-r),
			         etcd_client_error(c->ec)[0] ? ": " : "", etcd_client_error(c->ec));
		}
		char clash[CLUSTER_ERROR_MAX];
		snprintf(clash, sizeof(clash), "%s", c->st.election_error);
		pthread_mutex_unlock(&c->mu);
		free(holder);
		if (r == 0 && !mine && !c->name_clash &&
		    cluster_push(c, IT_NAME, clash, strlen(clash), NULL, 0, 0) < 0) {
			/* out of memory: cluster status still shows it */
		}
		if (r == 0)
			c->name_clash = !mine;
		if (r == 0)
			cluster_watch_check(c);
		cluster_members_round(c);
		int64_t spent = cluster_mono_ms() - t0, period = CLUSTER_LEASE_TTL_S * 1000 / 3;
		cluster_nap(c, spent < period ? (unsigned)(period - spent) : 0);
	}
	pthread_mutex_lock(&c->mu);
	c->st.leader = false;
	c->leader_until_ms = 0;
	pthread_mutex_unlock(&c->mu);
	/* The call in progress was canceled by the stop; the lease is revoked in one bounded
	 * call (the next leader is then elected within a round instead of after the TTL). */
	etcd_client_set_stop(c->ec, NULL);
	etcd_client_set_deadline(c->ec, cluster_mono_ms() + CLUSTER_REVOKE_MS);
	if (lease && etcd_lease_revoke(c->ec, lease) < 0) {
		/* etcd unreachable or too slow: the lease expires by itself */
	}
	return NULL;
}

bool cluster_is_leader(cluster *c)
{
	if (!c)
		return false;
	pthread_mutex_lock(&c->mu);
	bool l = c->st.leader && cluster_mono_ms() < c->leader_until_ms;
	pthread_mutex_unlock(&c->mu);
	return l;
}

/* ---- applying the queue (the loop's thread) ---- */

static void cluster_report(cluster *c, enum cluster_event ev, const char *what, int err)
{
	if (c->cfg.report)
		c->cfg.report(c->cfg.ud, ev, what, err);
}

static void cluster_count(cluster *c, uint64_t *field, uint64_t rev)
{
	pthread_mutex_lock(&c->mu);
	if (field)
		(*field)++;
	if (rev > c->st.revision)
		c->st.revision = rev;
	pthread_mutex_unlock(&c->mu);
}

/* This node wrote key at rev (loop thread). */
static void cluster_own_add(cluster *c, const char *key, int64_t rev)
{
	for (size_t i = 0; i < c->nown; i++)
		if (strcmp(c->own[i].key, key) == 0) {
			if (rev > c->own[i].rev)
				c->own[i].rev = rev;
			return;
		}
	struct cluster_own *n = realloc(c->own, (c->nown + 1) * sizeof(*n));
	if (!n)
		return; /* the echo is then refused as a rollback: loud, not wrong */
	c->own = n;
	c->own[c->nown].key = strdup(key);
	if (c->own[c->nown].key) {
		c->own[c->nown].rev = rev;
		c->nown++;
	}
}

/* An event of key at rev older than this node's own last write of it: true (skip it). Drops
 * the entry once the watch has reached that write. */
static bool cluster_own_stale(cluster *c, const char *key, int64_t rev)
{
	for (size_t i = 0; i < c->nown; i++) {
		if (strcmp(c->own[i].key, key) != 0)
			continue;
		if (rev < c->own[i].rev)
			return true;
		free(c->own[i].key);
		c->own[i] = c->own[--c->nown];
		return false;
	}
	return false;
}

/* An origin record from etcd (o/...): decoded, its MAC checked, and its etcd key the one of
 * the key it names; kept for the change that follows it in its txn. -EBADMSG, -E2BIG. */
static int cluster_origin_take(cluster *c, const struct cluster_item *it)
{
	struct cluster_origin o;
	char okey[ETCD_KEY_MAX + 1];
	int r = cluster_log_decode((const char *)it->val, it->vlen, &o);
	if (r == 0 && cluster_log_verify(c->s, &o) < 0)
		r = -EBADMSG;
	if (r == 0 && (cluster_log_key(c->prefix, o.key, okey, sizeof(okey)) < 0 ||
	               strcmp(okey, (const char *)it->key) != 0))
		r = -EBADMSG; /* a good record moved to another key */
	if (r == 0) {
		c->origin = o;
		c->origin_rev = it->rev;
	}
	return r;
}

/* The origin of the change it of key k (after the prefix), appended to its audit record's
 * detail: when the last origin record taken is of its revision and key and binds this change
 * (val: the value put; for a deletion, the value this node held). */
static void cluster_origin_detail(cluster *c, const struct cluster_item *it, const char *k,
                                  const void *val, size_t vlen, char *detail, size_t cap)
{
	if (!c->origin_rev || c->origin_rev != it->rev || strcmp(c->origin.key, k) != 0)
		return;
	uint8_t b[32];
	cluster_log_bind(val ? val : "", val ? vlen : 0, b);
	size_t n = strlen(detail);
	if (c->origin.deleted != (it->type == IT_DELETE) || memcmp(b, c->origin.bind, 32) != 0)
		snprintf(detail + n, cap - n,
		         " origin=unknown (its record does not bind this change)");
	else
		snprintf(detail + n, cap - n, " origin=%s actor=%s action=%s", c->origin.node,
		         c->origin.actor, c->origin.action);
	c->origin_rev = 0;
}

/* Applies one put or delete of key (after the prefix). *changed when the store changed. */
static void cluster_apply(cluster *c, const struct cluster_item *it, bool *changed)
{
	const char *k = (const char *)it->key + c->plen;
	uint64_t rev = it->rev > 0 ? (uint64_t)it->rev : 0;
	char sec_name[256] = "";
	int r = 0;
	bool ch = false;
	char what[CLUSTER_KEY_MAX + 64];
	snprintf(what, sizeof(what), "%s", (const char *)it->key);
	if (cluster_own_stale(c, (const char *)it->key, it->rev)) {
		cluster_count(c, NULL, rev);
		return;
	}
	/* each applied change is recorded in this node's audit chain, in its transaction */
	char detail[CLUSTER_KEY_MAX + 4 * CLUSTER_LOG_NAME_MAX];
	snprintf(detail, sizeof(detail), "rev=%llu", (unsigned long long)rev);
	_cleanup_free_ uint8_t *held = NULL; /* a deletion's origin binds the value held here */
	size_t heldlen = 0;
	struct store_audit a = {.actor = c->actor,
	                        .exe = "",
	                        .action = it->type == IT_PUT ? "cluster-put" : "cluster-delete",
	                        .result = "ok",
	                        .detail = detail};
	struct store_ximport xo = {.rev = rev, .audit = &a};
	if (strncmp(k, "s/", 2) == 0) {
		if (it->type == IT_PUT) {
			/* the record names the secret: decode it first (pure; the import checks) */
			struct store_xsecret xs;
			if (store_xsecret_decode(it->val, it->vlen, &xs) == 0) {
				free(xs.v);
				snprintf(sec_name, sizeof(sec_name), "%s", xs.name);
				a.secret = sec_name;
			}
			cluster_origin_detail(c, it, k, it->val, it->vlen, detail, sizeof(detail));
			r = store_secret_import(c->s, it->val, it->vlen, &xo, NULL, &ch);
		} else {
			a.secret = k + 2;
			if (store_secret_export(c->s, k + 2, &held, &heldlen) == 0)
				cluster_origin_detail(c, it, k, held, heldlen, detail,
				                      sizeof(detail));
			r = store_secret_forget(c->s, k + 2, &xo);
			ch = r == 0;
			if (r == -ENOENT)
				r = 0;
		}
	} else if (strncmp(k, "g/", 2) == 0) {
		const char *slash = strchr(k + 2, '/');
		char sec[CLUSTER_KEY_MAX], sel[CLUSTER_KEY_MAX];
		if (!slash || cluster_unhex(sec, sizeof(sec), k + 2, (size_t)(slash - k - 2)) < 0 ||
		    cluster_unhex(sel, sizeof(sel), slash + 1, strlen(slash + 1)) < 0) {
			r = -EBADMSG;
		} else if (it->type == IT_PUT) {
			a.action = "cluster-grant";
			a.secret = sec;
			snprintf(detail, sizeof(detail), "rev=%llu selector=%s",
			         (unsigned long long)rev, sel);
			cluster_origin_detail(c, it, k, it->val, it->vlen, detail, sizeof(detail));
			r = store_grant_import(c->s, it->val, it->vlen, &xo, &ch);
			/* the row must be the one its key names */
			if (r == 0 && c->syncing) {
				char **ns = realloc(c->seen, (c->nseen + 1) * sizeof(*ns));
				if (ns) {
					c->seen = ns;
					c->seen[c->nseen] = strdup((const char *)it->key);
					if (c->seen[c->nseen])
						c->nseen++;
				}
			}
		} else {
			a.action = "cluster-revoke";
			a.secret = sec;
			snprintf(detail, sizeof(detail), "rev=%llu selector=%s",
			         (unsigned long long)rev, sel);
			if (store_grant_export(c->s, sec, sel, &held, &heldlen) == 0)
				cluster_origin_detail(c, it, k, held, heldlen, detail,
				                      sizeof(detail));
			r = store_grant_forget(c->s, sec, sel, &xo);
			ch = r == 0;
			if (r == -ENOENT)
				r = 0;
		}
	} else if (strncmp(k, "o/", 2) == 0) {
		/* an origin record: kept for the change after it; not a change of the store, and
		 * the revision is the change's to record (applied after it) */
		r = it->type == IT_PUT ? cluster_origin_take(c, it) : 0;
		if (r < 0) {
			cluster_count(c, &c->st.rejected, 0);
			cluster_report(c, CLUSTER_REJECTED, what, r);
		}
		return;
	} else if (strcmp(k, "leader") == 0 || strncmp(k, "n/", 2) == 0) {
		/* the election's keys (the leader, the nodes' names): nothing to apply */
		if (rev)
			r = store_cluster_rev_set(c->s, rev);
		if (r == 0) {
			cluster_count(c, NULL, rev);
			return;
		}
	} else if (strcmp(k, "keyring") == 0) {
		/* a key rotation on another node: its new generation, or its old ones dropped */
		a.action = "cluster-key-rotate";
		size_t kept = 0;
		if (it->type == IT_PUT)
			r = store_keyring_update(c->s, it->val, it->vlen, &xo, &kept, &ch);
		else
			r = -EBADMSG; /* the keyring is never deleted */
		if (r == 0 && kept)
			cluster_report(c, CLUSTER_KEYRING_KEPT, what, (int)kept);
		if (r == 0 && !ch && rev)
			r = store_cluster_rev_set(c->s, rev);
	} else {
		r = -EBADMSG; /* nothing of ours */
	}
	if (r < 0) {
		bool refused = r == -EBADMSG || r == -ESTALE || r == -EIDRM || r == -EEXIST ||
		               r == -EKEYREJECTED || r == -E2BIG;
		cluster_count(c, &c->st.rejected, 0);
		cluster_report(c, refused ? CLUSTER_REJECTED : CLUSTER_APPLY_ERROR, what, r);
		/* not applied, but passed: the next start does not meet it again */
		if (rev && store_cluster_rev_set(c->s, rev) < 0)
			cluster_report(c, CLUSTER_APPLY_ERROR, "the applied revision", r);
		return;
	}
	cluster_count(c, &c->st.applied, rev);
	if (ch)
		*changed = true;
}

/* After a full read: local grants that etcd no longer holds were revoked meanwhile. */
static void cluster_sync_end(cluster *c, int64_t rev, bool *changed)
{
	struct store_grant *g = NULL;
	size_t n = 0;
	int r = store_grants(c->s, &g, &n);
	if (r < 0) {
		cluster_report(c, CLUSTER_APPLY_ERROR, "grants after a full read", r);
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		char k[CLUSTER_KEY_MAX * 3];
		if (cluster_key_grant(c, g[i].secret, g[i].selector, k, sizeof(k)) < 0)
			continue;
		bool seen = false;
		for (size_t j = 0; j < c->nseen && !seen; j++)
			seen = strcmp(c->seen[j], k) == 0;
		struct store_audit a = {.actor = c->actor,
		                        .exe = "",
		                        .action = "cluster-revoke",
		                        .secret = g[i].secret,
		                        .result = "ok",
		                        .detail = "gone from etcd at a full read"};
		struct store_ximport xo = {.audit = &a};
		if (!seen && store_grant_forget(c->s, g[i].secret, g[i].selector, &xo) == 0)
			*changed = true;
	}
	store_grants_free(g, n);
	for (size_t j = 0; j < c->nseen; j++)
		free(c->seen[j]);
	free(c->seen);
	c->seen = NULL;
	c->nseen = 0;
	c->syncing = false;
	if (rev > 0) {
		r = store_cluster_rev_set(c->s, (uint64_t)rev);
		if (r < 0)
			cluster_report(c, CLUSTER_APPLY_ERROR, "the applied revision", r);
		cluster_count(c, NULL, (uint64_t)rev);
	}
}

static void cluster_on_event(loop *l, int fd, uint32_t events, void *ud)
{
	cluster *c = ud;
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	if (c->holding)
		return; /* a write is in flight: its end wakes us again (cluster_wjob_finish) */
	pthread_mutex_lock(&c->mu);
	struct cluster_item *q = c->q;
	size_t n = c->nq;
	c->q = NULL;
	c->nq = c->capq = 0;
	pthread_mutex_unlock(&c->mu);
	bool changed = false;
	for (size_t i = 0; i < n; i++) {
		struct cluster_item *it = &q[i];
		switch (it->type) {
		case IT_PUT:
		case IT_DELETE:
			if (it->klen > c->plen && memcmp(it->key, c->prefix, c->plen) == 0)
				cluster_apply(c, it, &changed);
			break;
		case IT_SYNC_BEGIN:
			c->syncing = true;
			break;
		case IT_SYNC_END:
			cluster_sync_end(c, it->rev, &changed);
			break;
		case IT_WATCHING:
			pthread_mutex_lock(&c->mu);
			c->st.watching = true;
			pthread_mutex_unlock(&c->mu);
			c->last_err[0] = 0;
			cluster_report(c, CLUSTER_WATCHING, "",
			               (int)(it->rev > INT32_MAX ? INT32_MAX : it->rev));
			break;
		case IT_NAME:
			cluster_report(c, CLUSTER_NAME_IN_USE, (const char *)it->key, -EADDRINUSE);
			break;
		case IT_STALL:
			pthread_mutex_lock(&c->mu);
			c->st.watching = false;
			pthread_mutex_unlock(&c->mu);
			snprintf(c->last_err, sizeof(c->last_err), "%s", (const char *)it->key);
			cluster_report(c, CLUSTER_WATCH_STALL, (const char *)it->key, -ETIMEDOUT);
			break;
		case IT_ERROR:
			pthread_mutex_lock(&c->mu);
			c->st.watching = false;
			c->st.watch_errors++;
			pthread_mutex_unlock(&c->mu);
			cluster_report(c, CLUSTER_WATCH_ERROR, (const char *)it->key,
			               -EHOSTUNREACH);
			break;
		}
		cluster_item_free(it);
	}
	free(q);
	if (n && c->cfg.on_applied)
		c->cfg.on_applied(c->cfg.ud, changed);
}

/* ---- the writer thread ---- */

static int cluster_commit(cluster *c, const char *key, const uint8_t *val, size_t vlen,
                          const struct cluster_pre *pre);
static int cluster_begin_check(cluster *c, struct etcd_answer *a, uint8_t *old, size_t oldlen,
                               struct cluster_pre *pre);

/* The read of a write (writer thread): 0, -EHOSTUNREACH, or -EPERM / -EACCES (refused). */
static int cluster_range(cluster *c, const char *key, struct etcd_answer *a)
{
	int r = etcd_range(c->wc, key, strlen(key), false, a);
	if (r < 0) {
		cluster_count(c, &c->st.write_failures, 0);
		snprintf(c->last_err, sizeof(c->last_err), "write: %s", etcd_client_error(c->wc));
		return r == -EPERM || r == -EACCES ? r : -EHOSTUNREACH; /* refused: say so */
	}
	return 0;
}

static void cluster_wjob_free(struct cluster_wjob *j)
{
	etcd_answer_free(&j->a);
	cluster_pre_free(&j->pre);
	free(j->own);
	free(j->name);
	free(j->selector);
	free(j);
}

static void *cluster_writer_thread(void *ud)
{
	cluster *c = ud;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->wq && !c->stop)
			pthread_cond_wait(&c->wcond, &c->mu);
		if (c->stop)
			break; /* what is left is ended by cluster_free (cluster_wjobs_end) */
		struct cluster_wjob *j = c->wq;
		c->wq = j->next;
		if (!c->wq)
			c->wqtail = NULL;
		j->next = NULL;
		pthread_mutex_unlock(&c->mu);
		j->r = j->fn    ? j->fn(c, j->arg)
		       : j->txn ? cluster_commit(c, j->key, j->val, j->vlen, &j->pre)
		                : cluster_range(c, j->key, &j->a);
		pthread_mutex_lock(&c->mu);
		j->ran = true;
		if (j->sync) {
			pthread_cond_broadcast(&c->wdone);
			continue;
		}
		if (c->wdtail)
			c->wdtail->next = j;
		else
			c->wd = j;
		c->wdtail = j;
		uint64_t one = 1;
		if (write(c->wfd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is full, the loop is woken anyway */
		}
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void cluster_wsubmit(cluster *c, struct cluster_wjob *j)
{
	pthread_mutex_lock(&c->mu);
	if (c->wqtail)
		c->wqtail->next = j;
	else
		c->wq = j;
	c->wqtail = j;
	pthread_cond_broadcast(&c->wcond);
	pthread_mutex_unlock(&c->mu);
}

/* Runs j on the writer thread and waits for it (loop thread; the loop is held as before the
 * writer existed: the daemon's own scheduled writes). */
static void cluster_wrun(cluster *c, struct cluster_wjob *j)
{
	j->sync = true;
	cluster_wsubmit(c, j);
	pthread_mutex_lock(&c->mu);
	while (!j->ran)
		pthread_cond_wait(&c->wdone, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

/* Puts back the rows from before a change etcd did not take (loop thread): 0 or why not. */
static int cluster_undo(cluster *c, const char *name, const char *selector,
                        const struct cluster_pre *pre)
{
	const struct store_ximport undo = {.force = true};
	int u;
	if (selector)
		u = pre->old ? store_grant_import(c->s, pre->old, pre->oldlen, &undo, NULL)
		             : store_grant_forget(c->s, name, selector, &undo);
	else
		u = pre->old ? store_secret_import(c->s, pre->old, pre->oldlen, &undo, NULL, NULL)
		             : store_secret_forget(c->s, name, &undo);
	return u == -ENOENT ? 0 : u;
}

/* The loop's side of an async job that ran (or, stopping, did not: r -ECANCELED). */
static void cluster_wjob_finish(cluster *c, struct cluster_wjob *j)
{
	if (!j->txn) {
		struct cluster_read *rd = NULL;
		int r = j->r;
		if (r == 0) {
			rd = calloc(1, sizeof(*rd));
			if (!rd)
				r = -ENOMEM;
		}
		if (rd) { /* the answer moves to rd: compared at the local change */
			rd->name = j->name;
			rd->selector = j->selector;
			rd->a = j->a;
			j->name = j->selector = NULL;
			j->a = (struct etcd_answer){0};
		}
		j->begun(j->ud, r, rd);
		return;
	}
	int u = j->r < 0 ? cluster_undo(c, j->name, j->selector, &j->pre) : 0;
	if (c->holding)
		c->holding--;
	j->committed(j->ud, j->r, u);
	if (!c->holding) {
		/* watch events held meanwhile are applied now */
		uint64_t one = 1;
		if (write(c->efd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is full, the loop is woken anyway */
		}
	}
}

static void cluster_on_written(loop *l, int fd, uint32_t events, void *ud)
{
	cluster *c = ud;
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	pthread_mutex_lock(&c->mu);
	struct cluster_wjob *j = c->wd;
	c->wd = c->wdtail = NULL;
	pthread_mutex_unlock(&c->mu);
	while (j) {
		struct cluster_wjob *next = j->next;
		cluster_wjob_finish(c, j);
		cluster_wjob_free(j);
		j = next;
	}
}

/* cluster_free, the writer joined: every write not answered yet ends (loop thread). */
static void cluster_wjobs_end(cluster *c)
{
	cluster_on_written(c->l, c->wfd, 0, c);
	struct cluster_wjob *j = c->wq;
	c->wq = c->wqtail = NULL;
	while (j) {
		struct cluster_wjob *next = j->next;
		j->r = -ECANCELED;
		cluster_wjob_finish(c, j);
		cluster_wjob_free(j);
		j = next;
	}
}

/* ---- life ---- */

int cluster_new(cluster **out, store *s, loop *l, const struct cluster_config *cfg)
{
	if (!out || !s || !l || !cfg || !cfg->etcd || cluster_name_ok(cfg->name) < 0 ||
	    (cfg->node && !cluster_node_name_ok(cfg->node)))
		return -EINVAL;
	*out = NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->s = s;
	c->l = l;
	c->cfg = *cfg;
	c->efd = -1;
	c->wfd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->wcond, NULL);
	pthread_cond_init(&c->wdone, NULL);
	cluster_prefix(c->prefix, sizeof(c->prefix), cfg->name);
	c->plen = strlen(c->prefix);
	snprintf(c->actor, sizeof(c->actor), "cluster:%s", cfg->name);
	if (cfg->node) {
		snprintf(c->st.node, sizeof(c->st.node), "%s", cfg->node);
	} else {
		char host[64] = "";
		if (gethostname(host, sizeof(host) - 1) < 0)
			snprintf(host, sizeof(host), "node");
		snprintf(c->st.node, sizeof(c->st.node), "%s:%ld", host, (long)getpid());
	}
	int r = etcd_client_new(&c->wc, cfg->etcd, cfg->timeout_ms, cfg->sec);
	if (r == 0)
		r = etcd_client_new(&c->rc, cfg->etcd, cfg->timeout_ms, cfg->sec);
	if (r == 0)
		r = etcd_client_new(&c->ec, cfg->etcd, cfg->timeout_ms, cfg->sec);
	c->cfg.sec = NULL; /* the clients copied it: the caller's may go */
	if (r == 0) {
		/* a stop does not wait for a write's, the watch's or the election's etcd call */
		etcd_client_set_stop(c->wc, &c->stop);
		etcd_client_set_stop(c->rc, &c->stop);
		etcd_client_set_stop(c->ec, &c->stop);
	}
	uint64_t rev = 0;
	if (r == 0)
		r = store_cluster_rev(s, &rev);
	if (r < 0)
		goto fail;
	c->st.revision = rev;
	c->start_rev = (int64_t)rev + 1;
	c->seen_rev = (int64_t)rev;
	/* The keyring: the cluster's must be this store's (else nothing verifies). */
	struct etcd_answer a;
	int kr = cluster_keyring_get(c->wc, c->prefix, &a);
	if (kr == 0) {
		_cleanup_free_ uint8_t *mine = NULL;
		size_t ml = 0;
		r = store_keyring_export(s, &mine, &ml);
		if (r == 0 && a.nkvs == 0) {
			char k[CLUSTER_KEY_MAX];
			bool ok = false;
			snprintf(k, sizeof(k), "%skeyring", c->prefix);
			r = etcd_txn(c->wc, k, strlen(k), 0, mine, ml, &ok, NULL);
			if (r == 0 && !ok)
				r = -EKEYREJECTED; /* another node's appeared meanwhile */
		} else if (r == 0 &&
		           (a.kvs[0].vlen != ml || memcmp(a.kvs[0].value, mine, ml) != 0)) {
			/* a key rotation this node has not applied yet: taken when it passes
			 * store_keyring_update's checks (the same root), else not this store's */
			struct store_audit ka = {.actor = c->actor,
			                         .exe = "",
			                         .action = "cluster-key-rotate",
			                         .result = "ok",
			                         .detail = "at start"};
			struct store_ximport xo = {.audit = &ka};
			size_t kept = 0;
			r = store_keyring_update(s, a.kvs[0].value, a.kvs[0].vlen, &xo, &kept,
			                         NULL) < 0
			        ? -EKEYREJECTED
			        : 0;
		}
		etcd_answer_free(&a);
		/* the name: only another live node holding it stops the start; any other failure
		 * (etcd gone meanwhile, a read-only user) is the election's to meet and show */
		if (r == 0 && cluster_name_start(c) == -EADDRINUSE)
			r = -EADDRINUSE;
		if (r < 0)
			goto fail;
	} else if (kr == -EACCES || kr == -EPERM || kr == -EBADE) {
		/* refused, not unreachable: a configuration to fix, not an outage to ride out */
		etcd_answer_free(&a);
		cluster_report(c, CLUSTER_REFUSED, etcd_client_error(c->wc), kr);
		r = kr;
		goto fail;
	} else {
		etcd_answer_free(&a);
		cluster_report(c, CLUSTER_WATCH_ERROR, etcd_client_error(c->wc), kr);
	}
	store_cluster_ids(s, true);
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0) {
		r = -errno;
		goto fail;
	}
	r = loop_add(l, c->efd, EPOLLIN, cluster_on_event, c);
	if (r < 0)
		goto fail;
	c->wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wfd < 0) {
		r = -errno;
		loop_del(l, c->efd);
		goto fail;
	}
	r = loop_add(l, c->wfd, EPOLLIN, cluster_on_written, c);
	if (r == 0) {
		r = -pthread_create(&c->wth, NULL, cluster_writer_thread, c);
		if (r < 0)
			loop_del(l, c->wfd);
	}
	if (r < 0) {
		loop_del(l, c->efd);
		goto fail;
	}
	c->wstarted = true;
	r = -pthread_create(&c->th, NULL, cluster_thread, c);
	if (r < 0) {
		loop_del(l, c->efd);
		goto fail; /* cluster_free stops the writer and takes wfd out */
	}
	c->started = true;
	r = -pthread_create(&c->eth, NULL, cluster_elect_thread, c);
	if (r < 0)
		goto fail;
	c->estarted = true;
	*out = c;
	return 0;
fail:
	cluster_free(c);
	return r;
}

void cluster_free(cluster *c)
{
	if (!c)
		return;
	c->stop = true;
	c->wabort = true;
	if (c->wstarted) {
		/* the writer gives up its call in progress (etcd_client_set_stop); the writes
		 * not answered end here: a read as canceled, a txn's local change undone */
		pthread_mutex_lock(&c->mu);
		pthread_cond_broadcast(&c->wcond);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->wth, NULL);
		loop_del(c->l, c->wfd);
		cluster_wjobs_end(c);
	}
	if (c->estarted)
		pthread_join(c->eth, NULL);
	if (c->started) {
		pthread_join(c->th, NULL);
		loop_del(c->l, c->efd);
	}
	for (size_t i = 0; i < c->nq; i++)
		cluster_item_free(&c->q[i]);
	free(c->q);
	for (size_t j = 0; j < c->nseen; j++)
		free(c->seen[j]);
	free(c->seen);
	for (size_t j = 0; j < c->nown; j++)
		free(c->own[j].key);
	free(c->own);
	if (c->efd >= 0)
		close(c->efd);
	if (c->wfd >= 0)
		close(c->wfd);
	pthread_cond_destroy(&c->wcond);
	pthread_cond_destroy(&c->wdone);
	etcd_client_free(c->wc);
	etcd_client_free(c->rc);
	etcd_client_free(c->ec);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void cluster_get_stats(cluster *c, struct cluster_stats *st)
{
	pthread_mutex_lock(&c->mu);
	*st = c->st;
	pthread_mutex_unlock(&c->mu);
}

const char *cluster_last_error(cluster *c)
{
	return c ? c->last_err : "";
}

const char *cluster_name(cluster *c)
{
	return c ? c->cfg.name : "";
}

const char *cluster_endpoints(cluster *c)
{
	return c ? c->cfg.etcd : "";
}

/* ---- writes ---- */

void cluster_pre_free(struct cluster_pre *p)
{
	if (!p)
		return;
	free(p->old);
	*p = (struct cluster_pre){0};
}

/* etcd known unreachable (the election's last round, at most a round ago): true, counted; a
 * write is refused at once, without an etcd call; the next good round lets writes through. */
static bool cluster_down(cluster *c)
{
	pthread_mutex_lock(&c->mu);
	bool down = c->etcd_down;
	if (down) {
		c->st.write_failures++;
		snprintf(
		    c->last_err, sizeof(c->last_err),
		    "write: refused at once, etcd was unreachable at the election's last round: "
		    "%s",
		    c->st.election_error);
	}
	pthread_mutex_unlock(&c->mu);
	return down;
}

/* After the read: a key etcd holds must be what this node holds (old, taken over; else it has
 * not applied a change yet, or another node is writing it: a conflict, retried by the
 * operator). Frees a. */
static int cluster_begin_check(cluster *c, struct etcd_answer *a, uint8_t *old, size_t oldlen,
                               struct cluster_pre *pre)
{
	int r = 0;
	pre->old = old;
	pre->oldlen = oldlen;
	pre->mod_rev = a->nkvs ? a->kvs[0].mod_revision : 0;
	if (a->nkvs &&
	    (!old || a->kvs[0].vlen != oldlen || memcmp(a->kvs[0].value, old, oldlen) != 0))
		r = -ESTALE;
	etcd_answer_free(a);
	if (r < 0) {
		cluster_count(c, &c->st.conflicts, 0);
		cluster_pre_free(pre);
	}
	return r;
}

/* The linearizable read before a change, waited for: etcd answers, and holds what this node
 * holds. */
static int cluster_begin(cluster *c, const char *key, uint8_t *old, size_t oldlen,
                         struct cluster_pre *pre)
{
	if (cluster_down(c)) {
		free(old);
		return -EHOSTUNREACH;
	}
	struct cluster_wjob j = {0};
	snprintf(j.key, sizeof(j.key), "%s", key);
	cluster_wrun(c, &j);
	if (j.r < 0) {
		free(old);
		etcd_answer_free(&j.a);
		return j.r;
	}
	return cluster_begin_check(c, &j.a, old, oldlen, pre);
}

/* The txn after the local change, waited for. */
static int cluster_commit_wait(cluster *c, const char *key, const uint8_t *val, size_t vlen,
                               const struct cluster_pre *pre)
{
	struct cluster_wjob j = {.txn = true, .val = val, .vlen = vlen};
	snprintf(j.key, sizeof(j.key), "%s", key);
	j.pre = *pre; /* borrowed (the mod_revision, the rows before, who asks): never freed here */
	cluster_wrun(c, &j);
	return j.r;
}

int cluster_secret_begin(cluster *c, const char *name, struct cluster_pre *pre)
{
	if (!c || !name || !pre)
		return -EINVAL;
	*pre = (struct cluster_pre){0};
	char k[CLUSTER_KEY_MAX];
	if (cluster_key_secret(c, name, k, sizeof(k)) < 0)
		return -EINVAL;
	uint8_t *old = NULL;
	size_t oldlen = 0;
	int r = store_secret_export(c->s, name, &old, &oldlen);
	if (r < 0 && r != -ENOENT)
		return r;
	return cluster_begin(c, k, old, oldlen, pre);
}

/* The txn after the local change; val NULL deletes the key. */
static int cluster_commit(cluster *c, const char *key, const uint8_t *val, size_t vlen,
                          const struct cluster_pre *pre)
{
	bool ok = false;
	int64_t rev = 0;
	struct cluster_log_put lp; /* the change's origin record, put in the same txn */
	int r = cluster_log_prepare(c->s, c->prefix, c->st.node, key, val ? val : pre->old,
	                            val ? vlen : pre->oldlen, !val, pre->actor, pre->action, &lp);
	if (r == 0)
		r = etcd_txn_with(c->wc, &lp.put, key, strlen(key), pre->mod_rev, val, vlen, &ok,
		                  &rev);
	cluster_log_put_free(&lp);
	if (r < 0) {
		cluster_count(c, &c->st.write_failures, 0);
		snprintf(c->last_err, sizeof(c->last_err), "write: %s", etcd_client_error(c->wc));
		return r == -EINVAL || r == -E2BIG   ? -EFBIG
		       : r == -EPERM || r == -EACCES ? r /* etcd refused this node's user */
		                                     : -EHOSTUNREACH;
	}
	if (!ok) {
		cluster_count(c, &c->st.conflicts, 0);
		return -ESTALE;
	}
	cluster_own_add(c, key, rev);
	return 0;
}

int cluster_secret_commit(cluster *c, const char *name, bool deleted, struct cluster_pre *pre,
                          int *undo_err)
{
	if (undo_err)
		*undo_err = 0;
	if (!c || !name || !pre)
		return -EINVAL;
	char k[CLUSTER_KEY_MAX];
	int r = cluster_key_secret(c, name, k, sizeof(k)) < 0 ? -EINVAL : 0;
	_cleanup_free_ uint8_t *now = NULL;
	size_t nowlen = 0;
	if (r == 0 && !deleted)
		r = store_secret_export(c->s, name, &now, &nowlen);
	if (r == 0 && nowlen > CLUSTER_ROWS_MAX)
		r = -EFBIG;
	if (r == 0)
		r = cluster_commit_wait(c, k, deleted ? NULL : now, nowlen, pre);
	if (r < 0) {
		int u = cluster_undo(c, name, NULL, pre);
		if (undo_err)
			*undo_err = u;
	}
	cluster_pre_free(pre);
	return r;
}

int cluster_grant_begin(cluster *c, const char *secret, const char *selector,
                        struct cluster_pre *pre)
{
	if (!c || !secret || !selector || !pre)
		return -EINVAL;
	*pre = (struct cluster_pre){0};
	char k[CLUSTER_KEY_MAX * 3];
	if (cluster_key_grant(c, secret, selector, k, sizeof(k)) < 0)
		return -EINVAL;
	uint8_t *old = NULL;
	size_t oldlen = 0;
	int r = store_grant_export(c->s, secret, selector, &old, &oldlen);
	if (r < 0 && r != -ENOENT)
		return r;
	return cluster_begin(c, k, old, oldlen, pre);
}

int cluster_grant_commit(cluster *c, const char *secret, const char *selector, bool removed,
                         struct cluster_pre *pre, int *undo_err)
{
	if (undo_err)
		*undo_err = 0;
	if (!c || !secret || !selector || !pre)
		return -EINVAL;
	char k[CLUSTER_KEY_MAX * 3];
	int r = cluster_key_grant(c, secret, selector, k, sizeof(k)) < 0 ? -EINVAL : 0;
	_cleanup_free_ uint8_t *now = NULL;
	size_t nowlen = 0;
	if (r == 0 && !removed)
		r = store_grant_export(c->s, secret, selector, &now, &nowlen);
	if (r == 0)
		r = cluster_commit_wait(c, k, removed ? NULL : now, nowlen, pre);
	if (r < 0) {
		int u = cluster_undo(c, secret, selector, pre);
		if (undo_err)
			*undo_err = u;
	}
	cluster_pre_free(pre);
	return r;
}

/* ---- writes that do not hold the loop ---- */

void cluster_read_free(struct cluster_read *rd)
{
	if (!rd)
		return;
	etcd_answer_free(&rd->a);
	free(rd->name);
	free(rd->selector);
	free(rd);
}

int cluster_read_check(cluster *c, struct cluster_read *rd, struct cluster_pre *pre)
{
	*pre = (struct cluster_pre){0};
	if (!c || !rd) {
		cluster_read_free(rd);
		return -EINVAL;
	}
	/* this node's rows now: whatever the watch applied since the read is compared too */
	uint8_t *old = NULL;
	size_t oldlen = 0;
	int r = rd->selector ? store_grant_export(c->s, rd->name, rd->selector, &old, &oldlen)
	                     : store_secret_export(c->s, rd->name, &old, &oldlen);
	if (r == -ENOENT)
		r = 0;
	if (r == 0)
		r = cluster_begin_check(c, &rd->a, old, oldlen, pre); /* takes old */
	else
		free(old);
	cluster_read_free(rd);
	return r;
}

static struct cluster_wjob *cluster_wjob_new(cluster *c, const char *name, const char *selector)
{
	struct cluster_wjob *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->name = strdup(name);
	j->selector = selector ? strdup(selector) : NULL;
	int k = selector ? cluster_key_grant(c, name, selector, j->key, sizeof(j->key))
	                 : cluster_key_secret(c, name, j->key, sizeof(j->key));
	if (!j->name || (selector && !j->selector) || k < 0) {
		cluster_wjob_free(j);
		return NULL;
	}
	return j;
}

int cluster_begin_async(cluster *c, const char *name, const char *selector, cluster_begun_fn cb,
                        void *ud)
{
	if (!c || !name || !cb)
		return -EINVAL;
	if (c->stop)
		return -ECANCELED;
	if (cluster_down(c))
		return -EHOSTUNREACH;
	struct cluster_wjob *j = cluster_wjob_new(c, name, selector);
	if (!j)
		return -EINVAL; /* a key too long (or out of memory) */
	j->begun = cb;
	j->ud = ud;
	cluster_wsubmit(c, j);
	return 0;
}

int cluster_commit_async(cluster *c, const char *name, const char *selector, bool gone,
                         struct cluster_pre *pre, cluster_committed_fn cb, void *ud, int *undo_err)
{
	*undo_err = 0;
	if (!c || !name || !pre || !cb)
		return -EINVAL;
	struct cluster_wjob *j = cluster_wjob_new(c, name, selector);
	int r = j ? 0 : -ENOMEM;
	if (r == 0 && c->stop)
		r = -ECANCELED;
	if (r == 0 && !gone)
		r = selector ? store_grant_export(c->s, name, selector, &j->own, &j->vlen)
		             : store_secret_export(c->s, name, &j->own, &j->vlen);
	if (r == 0 && !selector && j->vlen > CLUSTER_ROWS_MAX)
		r = -EFBIG;
	if (r < 0) {
		*undo_err = cluster_undo(c, name, selector, pre);
		cluster_pre_free(pre);
		if (j)
			cluster_wjob_free(j);
		return r;
	}
	j->txn = true;
	j->val = j->own;
	j->pre = *pre;
	*pre = (struct cluster_pre){0};
	j->committed = cb;
	j->ud = ud;
	c->holding++;
	cluster_wsubmit(c, j);
	return 0;
}

/* ---- key rotation (docs/cluster.md, "Key rotation across the cluster") ---- */

struct cluster_kr_call {
	const char *key;
	const uint8_t *mine, *val; /* the read: this node's keyring; the txn: the new one */
	size_t minelen, vlen;
	int64_t mod_rev;
	const struct store_rewrapped *v; /* a batch */
	size_t n;
};

static int cluster_kr_fail(cluster *c, int r)
{
	cluster_count(c, &c->st.write_failures, 0);
	snprintf(c->last_err, sizeof(c->last_err), "key rotation: %s", etcd_client_error(c->wc));
	return r == -EPERM || r == -EACCES ? r : -EHOSTUNREACH;
}

/* Writer thread: the keyring's read, then (val) its txn on the read's mod_revision. */
static int cluster_kr_keyring(cluster *c, void *arg)
{
	struct cluster_kr_call *k = arg;
	struct etcd_answer a;
	int r = etcd_range(c->wc, k->key, strlen(k->key), false, &a);
	if (r < 0) {
		etcd_answer_free(&a);
		return cluster_kr_fail(c, r);
	}
	if (a.nkvs != 1 || a.kvs[0].vlen != k->minelen ||
	    memcmp(a.kvs[0].value, k->mine, k->minelen) != 0)
		r = -ESTALE; /* another node rotated meanwhile, or this one is behind */
	int64_t mod_rev = a.nkvs ? a.kvs[0].mod_revision : 0;
	etcd_answer_free(&a);
	if (r < 0) {
		cluster_count(c, &c->st.conflicts, 0);
		return r;
	}
	bool ok = false;
	r = etcd_txn(c->wc, k->key, strlen(k->key), mod_rev, k->val, k->vlen, &ok, NULL);
	if (r < 0)
		return cluster_kr_fail(c, r);
	if (!ok) {
		cluster_count(c, &c->st.conflicts, 0);
		return -ESTALE;
	}
	return 0;
}

int cluster_keyring_put(cluster *c, const uint8_t *mine, size_t minelen, const uint8_t *kr,
                        size_t len)
{
	if (!c || !mine || !kr || len == 0 || len > CLUSTER_ROWS_MAX)
		return -EINVAL;
	if (cluster_down(c))
		return -EHOSTUNREACH;
	char key[CLUSTER_KEY_MAX];
	snprintf(key, sizeof(key), "%skeyring", c->prefix);
	struct cluster_kr_call k = {
	    .key = key, .mine = mine, .minelen = minelen, .val = kr, .vlen = len};
	struct cluster_wjob j = {.fn = cluster_kr_keyring, .arg = &k};
	cluster_wrun(c, &j);
	return j.r;
}

/* Writer thread: one txn for a batch, each key's value compared with the rows before. */
static int cluster_kr_rows(cluster *c, void *arg)
{
	struct cluster_kr_call *k = arg;
	struct etcd_cas *v = calloc(k->n, sizeof(*v));
	char(*keys)[CLUSTER_KEY_MAX] = calloc(k->n, sizeof(*keys));
	int r = v && keys ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < k->n; i++) {
		int kl = cluster_key_secret(c, k->v[i].name, keys[i], sizeof(keys[i]));
		if (kl < 0) {
			r = -EINVAL;
			break;
		}
		v[i] = (struct etcd_cas){.key = keys[i],
		                         .klen = (size_t)kl,
		                         .old = k->v[i].old,
		                         .oldlen = k->v[i].oldlen,
		                         .val = k->v[i].new,
		                         .vlen = k->v[i].newlen};
	}
	bool ok = false;
	if (r == 0 && k->n == 1 && v[0].oldlen + v[0].vlen > CLUSTER_REWRAP_BYTES) {
		/* one large secret: its old rows would not fit in the request beside the new ones
		 * (etcd's 1.5 MiB): read it, compare here, txn on its mod_revision */
		struct etcd_answer a = {0};
		r = etcd_range(c->wc, v[0].key, v[0].klen, false, &a);
		if (r < 0) {
			r = cluster_kr_fail(c, r);
		} else if (a.nkvs != 1 || a.kvs[0].vlen != v[0].oldlen ||
		           memcmp(a.kvs[0].value, v[0].old, v[0].oldlen) != 0) {
			r = -ESTALE;
			cluster_count(c, &c->st.conflicts, 0);
		} else {
			r = etcd_txn(c->wc, v[0].key, v[0].klen, a.kvs[0].mod_revision, v[0].val,
			             v[0].vlen, &ok, NULL);
			r = r < 0 ? (r == -EINVAL || r == -E2BIG ? -EFBIG : cluster_kr_fail(c, r))
			    : !ok ? -ESTALE
			          : 0;
			if (r == -ESTALE)
				cluster_count(c, &c->st.conflicts, 0);
		}
		etcd_answer_free(&a);
	} else if (r == 0) {
		r = etcd_txn_cas(c->wc, v, k->n, &ok, NULL);
		if (r < 0)
			r = r == -EINVAL || r == -E2BIG ? -EFBIG : cluster_kr_fail(c, r);
		else if (!ok)
			r = -ESTALE; /* a secret changed meanwhile: the batch is redone later */
		if (r == -ESTALE)
			cluster_count(c, &c->st.conflicts, 0);
	}
	free(v);
	free(keys);
	return r;
}

int cluster_rewrap_put(cluster *c, const struct store_rewrapped *v, size_t n)
{
	if (!c || (!v && n) || n > CLUSTER_REWRAP_KEYS)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (cluster_down(c))
		return -EHOSTUNREACH;
	struct cluster_kr_call k = {.v = v, .n = n};
	struct cluster_wjob j = {.fn = cluster_kr_rows, .arg = &k};
	cluster_wrun(c, &j);
	return j.r;
}
