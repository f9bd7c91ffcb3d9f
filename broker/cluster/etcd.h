/* etcd: a client of etcd v3's JSON gateway (etcd 3.4: /v3/kv/range, /v3/kv/txn, /v3/watch) on
 * libcurl, and the parser of its answers. TLS (https:// endpoints: the server's certificate and
 * host name are always verified; a client certificate when given) and etcd's authentication (a
 * user and password: /v3/auth/authenticate, its token in the Authorization header of every call,
 * one re-authentication when etcd says the token is invalid or expired; docs/cluster.md).
 *
 * The parser (etcd_parse, etcd_stream_feed) is pure: it reads outside input (pointer, length)
 * under the named limits below and is fuzzed (tests/fuzz/fuzz_etcd.c).
 * The client calls block for at most their timeout per endpoint; an endpoint that cannot be
 * reached (connect error, timeout, 5xx) is skipped for the next one (fail over), the last good
 * endpoint is tried first. A client is used by one thread at a time.
 * Functions return 0 or a negative errno:
 *   -EHOSTUNREACH no endpoint answered in time   -EPROTO an answer that does not parse
 *   -E2BIG an answer over a limit                 -ENOMEM, -EINVAL
 *   -EACCES etcd refused the credentials (wrong user or password, none given while etcd
 *           requires them, or authentication not enabled in etcd while a user is given)
 *   -EPERM  the user lacks the permission (its roles do not grant the key range)
 *   -EBADE  TLS failed (the server's certificate does not verify, a file cannot be used, the
 *           handshake was refused): not a reachability problem, a configuration one
 * Everything handed out is malloc'd and freed with etcd_answer_free. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETCD_ENDPOINTS_MAX 8
#define ETCD_URL_MAX 256                   /* one endpoint URL */
#define ETCD_ANSWER_MAX (16 * 1024 * 1024) /* one answer body, or one watch line */
#define ETCD_KEY_MAX 1024                  /* a key, decoded */
#define ETCD_VALUE_MAX (2 * 1024 * 1024)   /* a value, decoded (etcd's request cap is 1.5 MiB) */
#define ETCD_KVS_MAX 100000                /* key-values in one answer */
#define ETCD_EVENTS_MAX 100000             /* events in one watch answer */
#define ETCD_ERROR_MAX 512                 /* an error message kept */
#define ETCD_MEMBERS_MAX 64                /* members in one member list */
#define ETCD_MEMBER_NAME_MAX 63            /* a member's name kept (bytes) */
#define ETCD_MEMBER_URL_MAX 255            /* a member's first client URL kept (bytes) */
#define ETCD_TIMEOUT_MS_DEFAULT 1500       /* one request, one endpoint */
#define ETCD_TOKEN_MAX 1024                /* an auth token (simple or JWT), printable ASCII */
#define ETCD_USER_MAX 128                  /* an etcd user name */
#define ETCD_PASSWORD_MAX 1024             /* an etcd password */
#define ETCD_PATH_MAX 4096                 /* a TLS file's path */

struct etcd_kv {
	uint8_t *key; /* NUL-terminated after keylen bytes */
	size_t keylen;
	uint8_t *value;
	size_t vlen;
	int64_t create_revision, mod_revision, version;
	int64_t lease; /* the lease the key is attached to (0: none) */
};

enum etcd_event_type { ETCD_EVENT_PUT = 0, ETCD_EVENT_DELETE = 1 };

struct etcd_event {
	enum etcd_event_type type;
	struct etcd_kv kv; /* a DELETE has the key and its mod_revision (the deletion's) */
};

/* One answer: of a range (kvs), of a txn (succeeded; a failed campaign's range in kvs), of a
 * watch line (events, created, ...), of a lease grant or keep-alive (lease_id, ttl), or an
 * error (error set: the gateway's {"error": ...} or a watch's cancel reason). */
struct etcd_answer {
	int64_t revision; /* header.revision; 0 when absent */
	struct etcd_kv *kvs;
	size_t nkvs;
	bool succeeded; /* txn */
	struct etcd_event *events;
	size_t nevents;
	bool watch;    /* it was a watch line ({"result": ...}) */
	bool created;  /* watch created */
	bool canceled; /* watch canceled (compacted: compact_revision > 0) */
	int64_t compact_revision;
	int64_t lease_id, ttl; /* lease grant / keep-alive: ttl 0 = the lease is gone */
	char *error;           /* NULL, or the error text (at most ETCD_ERROR_MAX bytes) */
	char *token; /* authenticate: the token (at most ETCD_TOKEN_MAX bytes, 0x21..0x7e) */
	struct etcd_member *members; /* member list (at most ETCD_MEMBERS_MAX) */
	size_t nmembers;
	uint64_t leader; /* maintenance status: the Raft leader's member id (0 unknown) */
};

/* One member of etcd's cluster (/v3/cluster/member/list). */
struct etcd_member {
	uint64_t id;
	char name[ETCD_MEMBER_NAME_MAX + 1];      /* "" for a member not started yet */
	char client_url[ETCD_MEMBER_URL_MAX + 1]; /* its first client URL, "" none */
};

/* Parses one JSON answer of len bytes (no NUL needed) into *out (zeroed first; free with
 * etcd_answer_free, also after an error). -EPROTO: not an etcd answer (bad JSON, base64, or a
 * revision that is not a non-negative decimal); -E2BIG: over a limit. */
int etcd_parse(const char *p, size_t len, struct etcd_answer *out);
void etcd_answer_free(struct etcd_answer *a);

/* The watch stream: newline-separated JSON objects arriving in arbitrary pieces. feed appends
 * len bytes and calls cb once per complete line (empty lines skipped). A line over
 * ETCD_ANSWER_MAX is -E2BIG; cb's negative return stops and is returned. */
struct etcd_stream {
	char *buf;
	size_t len, cap;
};
typedef int (*etcd_line_cb)(const char *line, size_t len, void *ud);
int etcd_stream_feed(struct etcd_stream *s, const char *p, size_t len, etcd_line_cb cb, void *ud);
void etcd_stream_free(struct etcd_stream *s);

typedef struct etcd_client etcd_client;

struct secret; /* common/secret.h */

/* How a client proves itself and checks etcd. Every field may be NULL.
 * cacert: the CA bundle that signs etcd's server certificates (https:// only; NULL: the system's
 * CAs); cert, key: this node's client certificate and its key (both or neither; https:// only).
 * user, password: an etcd user (printable ASCII, no '"' or '\\', < ETCD_USER_MAX) and its password
 * (1..ETCD_PASSWORD_MAX bytes; the client takes a reference); https:// only: a password is never
 * sent in the clear. */
struct etcd_security {
	const char *cacert, *cert, *key;
	const char *user;
	struct secret *password;
};

/* urls: "http://H:P[,...]" or "https://H:P[,...]" (one scheme for all; 1..ETCD_ENDPOINTS_MAX,
 * each < ETCD_URL_MAX); timeout_ms: per request and endpoint (0: ETCD_TIMEOUT_MS_DEFAULT); sec
 * may be NULL (plain http, no user). -EINVAL for a bad list or security (TLS files or a user
 * with http://, a user without a password, a certificate without its key). */
int etcd_client_new(etcd_client **out, const char *urls, unsigned timeout_ms,
                    const struct etcd_security *sec);
void etcd_client_free(etcd_client *c);
/* The last transport error as text (for logs), "" when none. */
const char *etcd_client_error(const etcd_client *c);
/* Once *stop is true (stop may be NULL: never), a call in progress gives up within about a
 * tenth of a second and returns -ECANCELED (the node is stopping). */
void etcd_client_set_stop(etcd_client *c, const volatile bool *stop);
/* From now on each call ends by deadline_ms (CLOCK_MONOTONIC milliseconds; 0: no deadline):
 * every endpoint's try is cut to what is left, and once none is left a call returns
 * -ETIMEDOUT. For a bounded last call (the lease's revoke at a stop). */
void etcd_client_set_deadline(etcd_client *c, int64_t deadline_ms);
/* The endpoint of the client's watch in progress or last started ("" none yet; never NULL). */
const char *etcd_client_watch_endpoint(const etcd_client *c);

/* The key (prefix: every key starting with it), linearizable. */
int etcd_range(etcd_client *c, const void *key, size_t klen, bool prefix, struct etcd_answer *out);
/* The highest mod_revision of a key under prefix (*mod_rev, 0: no key) and the store's
 * revision (*revision, may be NULL), linearizable: one range sorted by MOD descending, limit 1,
 * keys only (no value travels). */
int etcd_range_last(etcd_client *c, const void *prefix, size_t plen, int64_t *mod_rev,
                    int64_t *revision);
/* A transaction: if key's mod_revision == mod_rev (0: the key does not exist) then put value
 * (val NULL: delete the key). *succeeded false: the compare failed (someone else wrote it);
 * *revision (may be NULL) the store's revision after it. */
int etcd_txn(etcd_client *c, const void *key, size_t klen, int64_t mod_rev, const void *val,
             size_t vlen, bool *succeeded, int64_t *revision);
/* One put more (a key and its value) for etcd_txn_with. */
struct etcd_put {
	const void *key, *val;
	size_t klen, vlen;
};
/* etcd_txn whose success also puts first (may be NULL) before the change, in the same
 * revision (a watch sees first's event before the change's). */
int etcd_txn_with(etcd_client *c, const struct etcd_put *first, const void *key, size_t klen,
                  int64_t mod_rev, const void *val, size_t vlen, bool *succeeded,
                  int64_t *revision);
/* One key of etcd_txn_cas: if its value is still old then put val. */
struct etcd_cas {
	const void *key, *old, *val;
	size_t klen, oldlen, vlen;
};
#define ETCD_TXN_OPS_MAX 128 /* etcd's default --max-txn-ops: compares (and puts) in one txn */
/* A transaction over n (1..ETCD_TXN_OPS_MAX) keys: if every key's value equals its old then put
 * every val. *succeeded false: a compare failed (a key changed or is gone); *revision (may be
 * NULL) the store's revision after it. */
int etcd_txn_cas(etcd_client *c, const struct etcd_cas *v, size_t n, bool *succeeded,
                 int64_t *revision);
/* etcd's members (*out: malloc'd, *n of them; free()) and the Raft leader's id as the answering
 * member sees it (*leader, 0 unknown). */
int etcd_members(etcd_client *c, struct etcd_member **out, size_t *n, uint64_t *leader);
/* A plain put (tests, keyring). */
int etcd_put(etcd_client *c, const void *key, size_t klen, const void *val, size_t vlen);

/* Leases (the election, cluster.c): grant one of ttl_s seconds (*id, *ttl_out the granted TTL);
 * keep it alive once (*ttl_out 0: it expired or never was); revoke it. */
int etcd_lease_grant(etcd_client *c, int64_t ttl_s, int64_t *id, int64_t *ttl_out);
int etcd_lease_keepalive(etcd_client *c, int64_t id, int64_t *ttl_out);
int etcd_lease_revoke(etcd_client *c, int64_t id);
/* A campaign: if key does not exist, put val attached to lease (*won true); else *won false and
 * the holder's value (malloc'd, NUL-terminated; free()) and lease. *revision (may be NULL): the
 * store's revision. */
int etcd_campaign(etcd_client *c, const char *key, const char *val, int64_t lease, bool *won,
                  char **holder, int64_t *holder_lease, int64_t *revision);

/* Watches every key under prefix from revision start_rev, blocking: each line goes to cb (its
 * negative return ends the watch with it). Returns when the stream ends (0), *stop becomes true
 * (checked at least every 200 ms: 0), or on an error (the endpoint fails over next time).
 * Never times out while the stream is open. */
int etcd_watch(etcd_client *c, const void *prefix, size_t plen, int64_t start_rev, etcd_line_cb cb,
               void *ud, const volatile bool *stop);
