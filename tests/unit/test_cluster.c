/* test_cluster: the etcd answers' parser and the watch stream (broker/cluster/etcd.h), and the
 * store's cluster rows (store.h "cluster rows"): export, import checked with the node's keys
 * (tampered, rolled back, foreign key), the keyring adopted by a joining store. No etcd here:
 * test_cluster.sh runs the real one. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>

#include "broker/cluster/cluster.h"
#include "broker/cluster/cluster_log.h"
#include "broker/cluster/etcd.h"
#include "broker/store/store.h"
#include "common/secret.h"
#include "tests/unit/runner.h"
#include "tests/unit/testdir.h"

/* ---- the parser ---- */

static int parse(const char *s, struct etcd_answer *a)
{
	return etcd_parse(s, strlen(s), a);
}

START_TEST(test_range)
{
	struct etcd_answer a;
	/* "/k" and "dmFs" = "val" */
	ck_assert_int_eq(
	    parse("{\"header\":{\"revision\":\"42\"},\"kvs\":[{\"key\":\"L2s=\","
	          "\"create_revision\":\"3\",\"mod_revision\":\"41\",\"version\":\"2\","
	          "\"value\":\"dmFs\"}],\"count\":\"1\"}",
	          &a),
	    0);
	ck_assert_int_eq(a.revision, 42);
	ck_assert_uint_eq(a.nkvs, 1);
	ck_assert_uint_eq(a.kvs[0].keylen, 2);
	ck_assert_str_eq((char *)a.kvs[0].key, "/k");
	ck_assert_uint_eq(a.kvs[0].vlen, 3);
	ck_assert_mem_eq(a.kvs[0].value, "val", 3);
	ck_assert_int_eq(a.kvs[0].mod_revision, 41);
	ck_assert_int_eq(a.kvs[0].create_revision, 3);
	ck_assert(!a.watch);
	etcd_answer_free(&a);
	/* an empty range: no kvs at all */
	ck_assert_int_eq(parse("{\"header\":{\"revision\":\"7\"}}", &a), 0);
	ck_assert_uint_eq(a.nkvs, 0);
	ck_assert_int_eq(a.revision, 7);
	etcd_answer_free(&a);
}
END_TEST

START_TEST(test_txn_and_error)
{
	struct etcd_answer a;
	ck_assert_int_eq(parse("{\"header\":{\"revision\":\"9\"},\"succeeded\":true}", &a), 0);
	ck_assert(a.succeeded);
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"header\":{\"revision\":\"9\"}}", &a), 0);
	ck_assert(!a.succeeded);
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"error\":\"etcdserver: request timed out\",\"code\":14,"
	                       "\"message\":\"etcdserver: request timed out\"}",
	                       &a),
	                 0);
	ck_assert_ptr_nonnull(a.error);
	ck_assert_str_eq(a.error, "etcdserver: request timed out");
	etcd_answer_free(&a);
}
END_TEST

START_TEST(test_watch_lines)
{
	struct etcd_answer a;
	ck_assert_int_eq(
	    parse("{\"result\":{\"header\":{\"revision\":\"5\"},\"created\":true}}", &a), 0);
	ck_assert(a.watch);
	ck_assert(a.created);
	ck_assert_uint_eq(a.nevents, 0);
	etcd_answer_free(&a);
	ck_assert_int_eq(
	    parse("{\"result\":{\"header\":{\"revision\":\"8\"},\"events\":["
	          "{\"kv\":{\"key\":\"L2s=\",\"mod_revision\":\"7\",\"value\":\"dmFs\"}},"
	          "{\"type\":\"DELETE\",\"kv\":{\"key\":\"L2s=\",\"mod_revision\":\"8\"}}"
	          "]}}",
	          &a),
	    0);
	ck_assert_uint_eq(a.nevents, 2);
	ck_assert_int_eq(a.events[0].type, ETCD_EVENT_PUT);
	ck_assert_int_eq(a.events[0].kv.mod_revision, 7);
	ck_assert_int_eq(a.events[1].type, ETCD_EVENT_DELETE);
	ck_assert_uint_eq(a.events[1].kv.vlen, 0);
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"result\":{\"canceled\":true,\"compact_revision\":\"4\","
	                       "\"cancel_reason\":\"compacted\"}}",
	                       &a),
	                 0);
	ck_assert(a.canceled);
	ck_assert_int_eq(a.compact_revision, 4);
	ck_assert_str_eq(a.error, "compacted");
	etcd_answer_free(&a);
}
END_TEST

START_TEST(test_bad_answers)
{
	static const char *bad[] = {
	    "",
	    "[]",
	    "{\"header\":{\"revision\":\"-1\"}}",
	    "{\"header\":{\"revision\":\"1x\"}}",
	    "{\"header\":{\"revision\":\"99999999999999999999\"}}",
	    "{\"header\":[]}",
	    "{\"kvs\":{}}",
	    "{\"kvs\":[1]}",
	    "{\"kvs\":[{\"key\":\"%%%\"}]}",
	    "{\"kvs\":[{\"key\":7}]}",
	    "{\"result\":{\"events\":[{\"type\":\"MOVE\",\"kv\":{}}]}}",
	    "{\"result\":[]}",
	    "{\"a\":1,\"a\":2}",
	    "{\"header\":{\"revision\":\"1\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct etcd_answer a;
		int r = parse(bad[i], &a);
		ck_assert_msg(r == -EPROTO, "'%s' gave %d", bad[i], r);
		etcd_answer_free(&a);
	}
	/* over the limits */
	struct etcd_answer a;
	ck_assert_int_eq(etcd_parse("{}", ETCD_ANSWER_MAX + 1, &a), -E2BIG);
	size_t n = ETCD_KEY_MAX * 2 + 64;
	char *big = malloc(n);
	ck_assert_ptr_nonnull(big);
	int off = snprintf(big, n, "{\"kvs\":[{\"key\":\"");
	for (size_t i = 0; i < ETCD_KEY_MAX / 3 * 4 + 8; i++)
		big[off++] = 'A';
	snprintf(big + off, n - (size_t)off, "\"}]}");
	ck_assert_int_eq(parse(big, &a), -E2BIG);
	etcd_answer_free(&a);
	free(big);
}
END_TEST

struct lines {
	char got[8][64];
	int n;
};

static int on_line(const char *l, size_t len, void *ud)
{
	struct lines *ls = ud;
	ck_assert_int_lt(ls->n, 8);
	ck_assert_uint_lt(len, 64);
	memcpy(ls->got[ls->n], l, len);
	ls->got[ls->n][len] = 0;
	ls->n++;
	return 0;
}

/* etcd's member list and status (cluster status): ids above INT64_MAX, names and first client
 * URL bounded, a member not started yet (no name), and what is refused */
START_TEST(test_members)
{
	struct etcd_answer a;
	ck_assert_int_eq(
	    parse("{\"header\":{\"member_id\":\"13668033151171901709\"},\"members\":["
	          "{\"ID\":\"13668033151171901709\",\"name\":\"m1\",\"peerURLs\":[\"http://"
	          "127.0.0.1:2380\"],\"clientURLs\":[\"http://127.0.0.1:2379\",\"http://x\"]},"
	          "{\"ID\":\"42\",\"peerURLs\":[\"http://127.0.0.1:2382\"]}]}",
	          &a),
	    0);
	ck_assert_uint_eq(a.nmembers, 2);
	ck_assert(a.members[0].id == 13668033151171901709ULL);
	ck_assert_str_eq(a.members[0].name, "m1");
	ck_assert_str_eq(a.members[0].client_url, "http://127.0.0.1:2379");
	ck_assert(a.members[1].id == 42);
	ck_assert_str_eq(a.members[1].name, "");
	ck_assert_str_eq(a.members[1].client_url, "");
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"leader\":\"13668033151171901709\",\"version\":\"3.4.23\"}", &a),
	                 0);
	ck_assert(a.leader == 13668033151171901709ULL);
	etcd_answer_free(&a);
	/* refused: an id that is not a number, a control byte in a name, a name over the limit,
	 * clientURLs not a list, too many members */
	ck_assert_int_eq(parse("{\"members\":[{\"ID\":\"x1\"}]}", &a), -EPROTO);
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"members\":[{\"ID\":\"1\",\"name\":\"a\\nb\"}]}", &a), -EPROTO);
	etcd_answer_free(&a);
	char big[512];
	snprintf(big, sizeof(big), "{\"members\":[{\"ID\":\"1\",\"name\":\"%0*d\"}]}",
	         ETCD_MEMBER_NAME_MAX + 1, 0);
	ck_assert_int_eq(parse(big, &a), -E2BIG);
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"members\":[{\"ID\":\"1\",\"clientURLs\":\"u\"}]}", &a), -EPROTO);
	etcd_answer_free(&a);
	char many[8192] = "{\"members\":[";
	for (int i = 0; i <= ETCD_MEMBERS_MAX; i++)
		strcat(many, i ? ",{}" : "{}");
	strcat(many, "]}");
	ck_assert_int_eq(parse(many, &a), -E2BIG);
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"leader\":\"-1\"}", &a), -EPROTO);
	etcd_answer_free(&a);
}
END_TEST

START_TEST(test_stream_pieces)
{
	const char *in = "{\"a\":1}\n\r\n{\"b\":2}\r\n{\"c\"";
	struct etcd_stream st = {0};
	struct lines ls = {0};
	for (size_t i = 0; i < strlen(in); i++)
		ck_assert_int_eq(etcd_stream_feed(&st, in + i, 1, on_line, &ls), 0);
	ck_assert_int_eq(ls.n, 2);
	ck_assert_str_eq(ls.got[0], "{\"a\":1}");
	ck_assert_str_eq(ls.got[1], "{\"b\":2}");
	ck_assert_int_eq(etcd_stream_feed(&st, ":3}\n", 4, on_line, &ls), 0);
	ck_assert_int_eq(ls.n, 3);
	ck_assert_str_eq(ls.got[2], "{\"c\":3}");
	etcd_stream_free(&st);
}
END_TEST

static int no_line(const char *l, size_t len, void *ud)
{
	return -EIO;
}

START_TEST(test_stream_limit)
{
	struct etcd_stream st = {0};
	size_t chunk = 1024 * 1024;
	char *b = malloc(chunk);
	ck_assert_ptr_nonnull(b);
	memset(b, 'x', chunk);
	int r = 0;
	for (size_t fed = 0; r == 0 && fed <= ETCD_ANSWER_MAX; fed += chunk)
		r = etcd_stream_feed(&st, b, chunk, no_line, NULL);
	ck_assert_int_eq(r, -E2BIG);
	etcd_stream_free(&st);
	/* the callback's error stops the feed */
	ck_assert_int_eq(etcd_stream_feed(&st, "x\n", 2, no_line, NULL), -EIO);
	etcd_stream_free(&st);
	free(b);
}
END_TEST

/* authenticate's token: kept when bounded and printable (it goes into a header), else refused */
START_TEST(test_token)
{
	struct etcd_answer a;
	ck_assert_int_eq(parse("{\"header\":{\"revision\":\"3\"},\"token\":\"abcDEF.12\"}", &a), 0);
	ck_assert_ptr_nonnull(a.token);
	ck_assert_str_eq(a.token, "abcDEF.12");
	etcd_answer_free(&a);
	ck_assert_ptr_null(a.token);
	/* a header injection, a space, an empty or non-string token */
	ck_assert_int_eq(parse("{\"token\":\"abc\\r\\nX-Evil: 1\"}", &a), -EPROTO);
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"token\":\"a b\"}", &a), -EPROTO);
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"token\":\"\"}", &a), -EPROTO);
	etcd_answer_free(&a);
	ck_assert_int_eq(parse("{\"token\":7}", &a), -EPROTO);
	etcd_answer_free(&a);
	/* the bound */
	size_t n = ETCD_TOKEN_MAX + 1;
	char *big = malloc(n + 32);
	ck_assert_ptr_nonnull(big);
	strcpy(big, "{\"token\":\"");
	memset(big + strlen(big), 'x', n);
	strcpy(big + 10 + n, "\"}");
	ck_assert_int_eq(parse(big, &a), -E2BIG);
	etcd_answer_free(&a);
	big[10 + n - 1] = '"';
	big[10 + n] = '}';
	big[10 + n + 1] = 0;
	ck_assert_int_eq(parse(big, &a), 0); /* exactly ETCD_TOKEN_MAX */
	ck_assert_uint_eq(strlen(a.token), ETCD_TOKEN_MAX);
	etcd_answer_free(&a);
	free(big);
}
END_TEST

/* TLS files and a user only with https://; a user needs a password, a certificate its key */
START_TEST(test_client_security)
{
	etcd_client *c = NULL;
	secret *pw = secret_from("pw", 2);
	ck_assert_ptr_nonnull(pw);
	struct etcd_security tls = {.cacert = "/ca.pem"};
	struct etcd_security user = {.user = "node1", .password = pw};
	ck_assert_int_eq(etcd_client_new(&c, "http://127.0.0.1:1", 100, &tls), -EINVAL);
	ck_assert_int_eq(etcd_client_new(&c, "http://127.0.0.1:1", 100, &user), -EINVAL);
	ck_assert_int_eq(etcd_client_new(&c, "https://127.0.0.1:1", 100, &tls), 0);
	etcd_client_free(c);
	ck_assert_int_eq(etcd_client_new(&c, "https://127.0.0.1:1", 100, &user), 0);
	etcd_client_free(c);
	struct etcd_security nopw = {.user = "node1"};
	ck_assert_int_eq(etcd_client_new(&c, "https://127.0.0.1:1", 100, &nopw), -EINVAL);
	struct etcd_security nokey = {.cert = "/c.pem"};
	ck_assert_int_eq(etcd_client_new(&c, "https://127.0.0.1:1", 100, &nokey), -EINVAL);
	struct etcd_security quote = {.user = "a\"b", .password = pw};
	ck_assert_int_eq(etcd_client_new(&c, "https://127.0.0.1:1", 100, &quote), -EINVAL);
	/* the client holds its own reference to the password */
	ck_assert_int_eq(etcd_client_new(&c, "https://127.0.0.1:1", 100, &user), 0);
	secret_unref(pw);
	/* nothing listens: unreachable (not a TLS failure), the password never sent */
	struct etcd_answer a;
	ck_assert_int_eq(etcd_range(c, "/k", 2, true, &a), -EHOSTUNREACH);
	etcd_answer_free(&a);
	etcd_client_free(c);
}
END_TEST

START_TEST(test_client_urls)
{
	etcd_client *c = NULL;
	ck_assert_int_eq(etcd_client_new(&c, "http://127.0.0.1:1,http://127.0.0.1:2/", 100, NULL),
	                 0);
	etcd_client_free(c);
	ck_assert_int_eq(etcd_client_new(&c, "https://127.0.0.1:1,http://127.0.0.1:2", 100, NULL),
	                 -EINVAL);
	ck_assert_int_eq(etcd_client_new(&c, "http://a:1,,http://b:1", 100, NULL), -EINVAL);
	ck_assert_int_eq(etcd_client_new(&c, "", 100, NULL), -EINVAL);
	ck_assert_int_eq(etcd_client_new(&c,
	                                 "http://a:1,http://a:1,http://a:1,http://a:1,"
	                                 "http://a:1,http://a:1,http://a:1,http://a:1,http://a:1",
	                                 100, NULL),
	                 -EINVAL);
	/* nothing listens: unreachable, quickly, after trying each endpoint */
	ck_assert_int_eq(etcd_client_new(&c, "http://127.0.0.1:1,http://127.0.0.1:2", 500, NULL),
	                 0);
	struct etcd_answer a;
	ck_assert_int_eq(etcd_range(c, "/k", 2, true, &a), -EHOSTUNREACH);
	ck_assert_str_ne(etcd_client_error(c), "");
	etcd_answer_free(&a);
	/* every call frees its answer after a failure too (a txn whose etcd went away) */
	bool ok = true;
	int64_t id = 0, ttl = 0, hl = 0;
	char *holder = NULL;
	ck_assert_int_eq(etcd_txn(c, "/k", 2, 0, "v", 1, &ok, NULL), -EHOSTUNREACH);
	ck_assert(!ok);
	ck_assert_int_eq(etcd_put(c, "/k", 2, "v", 1), -EHOSTUNREACH);
	ck_assert_int_eq(etcd_lease_grant(c, 5, &id, &ttl), -EHOSTUNREACH);
	ck_assert_int_eq(etcd_lease_keepalive(c, 7, &ttl), -EHOSTUNREACH);
	ck_assert_int_eq(etcd_campaign(c, "/l", "me", 7, &ok, &holder, &hl, NULL), -EHOSTUNREACH);
	ck_assert_ptr_null(holder);
	etcd_client_free(c);
}
END_TEST

/* ---- the store's cluster rows ---- */

static char key[256], keyb[256], sa[256], sb[256], sc[256];

static void rows_setup(void)
{
	tmpdir_setup();
	snprintf(key, sizeof(key), "%s/cluster.key", tmpdir);
	snprintf(keyb, sizeof(keyb), "%s/other.key", tmpdir);
	snprintf(sa, sizeof(sa), "%s/a", tmpdir);
	snprintf(sb, sizeof(sb), "%s/b", tmpdir);
	snprintf(sc, sizeof(sc), "%s/c", tmpdir);
}

static store *open_store(const char *dir, const char *k, bool init)
{
	struct store_opts o = {.state_dir = dir, .key_file = k, .shared_key = true};
	if (init)
		ck_assert_int_eq(store_init(&o), 0);
	store *s = NULL;
	ck_assert_int_eq(store_open(&s, &o), 0);
	return s;
}

/* A: the first node; B: a node that joined it (the same key file, A's keyring adopted). */
static void two_nodes(store **a, store **b)
{
	*a = open_store(sa, key, true);
	store *j = open_store(sb, key, true);
	uint8_t *kr = NULL;
	size_t krl = 0;
	ck_assert_int_eq(store_keyring_export(*a, &kr, &krl), 0);
	ck_assert_int_eq(store_keyring_adopt(j, kr, krl, NULL), 0);
	free(kr);
	store_close(j);
	*b = open_store(sb, key, false);
	store_cluster_ids(*a, true);
	store_cluster_ids(*b, true);
}

static void put(store *s, const char *name, const char *v)
{
	ck_assert_int_eq(store_put_ex(s, name, (const uint8_t *)v, strlen(v), NULL, NULL, NULL), 0);
}

static void get_is(store *s, const char *name, const char *v)
{
	uint8_t *val = NULL;
	size_t len = 0;
	ck_assert_int_eq(store_get(s, name, 0, &val, &len, NULL), 0);
	ck_assert_uint_eq(len, strlen(v));
	ck_assert_mem_eq(val, v, len);
	store_value_free(val);
}

START_TEST(test_secret_rows)
{
	const struct store_ximport force = {.force = true};
	store *a, *b;
	two_nodes(&a, &b);
	put(a, "app/db", "one");
	uint8_t *x1 = NULL, *x2 = NULL;
	size_t l1 = 0, l2 = 0;
	ck_assert_int_eq(store_secret_export(a, "app/db", &x1, &l1), 0);
	put(a, "app/db", "two");
	ck_assert_int_eq(store_secret_export(a, "app/db", &x2, &l2), 0);
	bool changed = false;
	char *name = NULL;
	ck_assert_int_eq(
	    store_secret_import(b, x2, l2, &(struct store_ximport){.rev = 17}, &name, &changed), 0);
	ck_assert(changed);
	ck_assert_str_eq(name, "app/db");
	free(name);
	get_is(b, "app/db", "two");
	uint64_t rev = 0;
	ck_assert_int_eq(store_cluster_rev(b, &rev), 0);
	ck_assert_uint_eq(rev, 17);
	/* the same rows again: nothing changes */
	ck_assert_int_eq(store_secret_import(b, x2, l2, NULL, NULL, &changed), 0);
	ck_assert(!changed);
	/* an older copy (a rollback through etcd) is refused unless forced (an undo) */
	ck_assert_int_eq(store_secret_import(b, x1, l1, NULL, NULL, NULL), -ESTALE);
	get_is(b, "app/db", "two");
	/* every byte of the rows is checked: flip each one in turn */
	for (size_t i = 0; i < l2; i++) {
		x2[i] ^= 0x20;
		int r = store_secret_import(b, x2, l2, &force, NULL, NULL);
		x2[i] ^= 0x20;
		/* the keep and time fields are not in the head MAC's message: a changed created or
		 * updated time is the only change accepted (it decides nothing) */
		if (r == 0) {
			get_is(b, "app/db", "two");
			continue;
		}
		ck_assert_msg(r == -EBADMSG || r == -EEXIST || r == -EINVAL, "byte %zu flipped: %d",
		              i, r);
		get_is(b, "app/db", "two");
	}
	ck_assert_int_eq(store_secret_import(b, x1, l1, &force, NULL, NULL), 0);
	get_is(b, "app/db", "one");
	/* a deletion that came from the cluster */
	ck_assert_int_eq(store_secret_forget(b, "app/db", &(struct store_ximport){.rev = 18}), 0);
	ck_assert_int_eq(store_secret_forget(b, "app/db", NULL), -ENOENT);
	free(x1);
	free(x2);
	store_close(a);
	store_close(b);
}
END_TEST

START_TEST(test_same_name_two_nodes)
{
	store *a, *b;
	two_nodes(&a, &b);
	put(a, "app/x", "from-a");
	put(b, "app/x", "from-b"); /* made on both at once: different random ids */
	uint8_t *x = NULL;
	size_t l = 0;
	ck_assert_int_eq(store_secret_export(a, "app/x", &x, &l), 0);
	ck_assert_int_eq(store_secret_import(b, x, l, NULL, NULL, NULL), -EEXIST);
	get_is(b, "app/x", "from-b");
	free(x);
	store_close(a);
	store_close(b);
}
END_TEST

START_TEST(test_grant_rows)
{
	store *a, *b;
	two_nodes(&a, &b);
	struct store_grant g = {
	    .secret = "app/*", .selector = "label:tier=db", .mode = 0400, .uid = -1, .gid = -1};
	ck_assert_int_eq(store_grant_add_ex(a, &g, false, NULL), 0);
	uint8_t *x = NULL;
	size_t l = 0;
	ck_assert_int_eq(store_grant_export(a, "app/*", "label:tier=db", &x, &l), 0);
	/* a tampered mode, secret or MAC is refused */
	for (size_t i = 0; i < l; i += 7) {
		x[i] ^= 0x01;
		int r = store_grant_import(b, x, l, NULL, NULL);
		x[i] ^= 0x01;
		ck_assert_msg(r == -EBADMSG, "byte %zu flipped: %d", i, r);
	}
	struct store_grant *v = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_grants(b, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	bool changed = false;
	ck_assert_int_eq(store_grant_import(b, x, l, &(struct store_ximport){.rev = 5}, &changed),
	                 0);
	ck_assert(changed);
	ck_assert_int_eq(store_grants(b, &v, &n), 0); /* MAC checked with B's (the cluster's) key */
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].selector, "label:tier=db");
	store_grants_free(v, n);
	ck_assert_int_eq(
	    store_grant_forget(b, "app/*", "label:tier=db", &(struct store_ximport){.rev = 6}), 0);
	ck_assert_int_eq(store_grant_forget(b, "app/*", "label:tier=db", NULL), -ENOENT);
	free(x);
	store_close(a);
	store_close(b);
}
END_TEST

/* Generations (issue #18): an etcd writer puts back an older or a revoked grant row (its MAC
 * still good), or a deleted secret's rows: refused; an undo (force) puts the generation held
 * back, so that the next row from another node is taken. */
START_TEST(test_replays)
{
	const struct store_ximport force = {.force = true};
	store *a, *b;
	two_nodes(&a, &b);
	struct store_grant g = {
	    .secret = "app/db", .selector = "id:c1", .mode = 0400, .uid = -1, .gid = -1};
	ck_assert_int_eq(store_grant_add_ex(a, &g, false, NULL), 0);
	uint8_t *g1 = NULL, *g2 = NULL, *g3 = NULL;
	size_t l1 = 0, l2 = 0, l3 = 0;
	ck_assert_int_eq(store_grant_export(a, "app/db", "id:c1", &g1, &l1), 0);
	g.mode = 0440;
	ck_assert_int_eq(store_grant_add_ex(a, &g, true, NULL), 0);
	ck_assert_int_eq(store_grant_export(a, "app/db", "id:c1", &g2, &l2), 0);
	struct store_grant *v = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_grants(a, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(v[0].gen, 2);
	store_grants_free(v, n);
	ck_assert_int_eq(store_grant_import(b, g2, l2, NULL, NULL), 0);
	/* an older form of a live grant */
	ck_assert_int_eq(store_grant_import(b, g1, l1, NULL, NULL), -ESTALE);
	/* revoked (on A, the deletion applied on B), then its row put back */
	ck_assert_int_eq(store_grant_remove_ex(a, "app/db", "id:c1", NULL), 0);
	ck_assert_int_eq(store_grant_forget(b, "app/db", "id:c1", NULL), 0);
	ck_assert_int_eq(store_grant_import(b, g2, l2, NULL, NULL), -EIDRM);
	ck_assert_int_eq(store_grant_import(a, g2, l2, NULL, NULL), -EIDRM);
	ck_assert_int_eq(store_grants(b, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_grants_free(v, n);
	/* granted again: a newer generation, taken */
	ck_assert_int_eq(store_grant_add_ex(a, &g, false, NULL), 0);
	ck_assert_int_eq(store_grant_export(a, "app/db", "id:c1", &g3, &l3), 0);
	ck_assert_int_eq(store_grant_import(b, g3, l3, NULL, NULL), 0);
	/* an undo on B (a grant etcd refused) puts the generation held back: A's next row (the
	 * same generation B had made) is taken */
	g.mode = 0400;
	ck_assert_int_eq(store_grant_add_ex(b, &g, true, NULL), 0);
	ck_assert_int_eq(store_grant_import(b, g3, l3, &force, NULL), 0);
	g.mode = 0444;
	ck_assert_int_eq(store_grant_add_ex(a, &g, true, NULL), 0);
	free(g3);
	ck_assert_int_eq(store_grant_export(a, "app/db", "id:c1", &g3, &l3), 0);
	ck_assert_int_eq(store_grant_import(b, g3, l3, NULL, NULL), 0);
	ck_assert_int_eq(store_grants(b, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(v[0].mode, 0444);
	store_grants_free(v, n);
	/* a new grant undone on B (forget, forced): not a revocation */
	struct store_grant h = {
	    .secret = "app/x", .selector = "id:c2", .mode = 0400, .uid = -1, .gid = -1};
	ck_assert_int_eq(store_grant_add_ex(b, &h, false, NULL), 0);
	ck_assert_int_eq(store_grant_forget(b, "app/x", "id:c2", &force), 0);
	ck_assert_int_eq(store_grant_add_ex(a, &h, false, NULL), 0);
	free(g1);
	ck_assert_int_eq(store_grant_export(a, "app/x", "id:c2", &g1, &l1), 0);
	ck_assert_int_eq(store_grant_import(b, g1, l1, NULL, NULL), 0);

	/* a deleted secret's rows put back */
	put(a, "app/gone", "x");
	uint8_t *x = NULL;
	size_t xl = 0;
	ck_assert_int_eq(store_secret_export(a, "app/gone", &x, &xl), 0);
	ck_assert_int_eq(store_secret_import(b, x, xl, NULL, NULL, NULL), 0);
	ck_assert_int_eq(store_delete_ex(a, "app/gone", NULL), 0);
	ck_assert_int_eq(store_secret_forget(b, "app/gone", NULL), 0);
	ck_assert_int_eq(store_secret_import(b, x, xl, NULL, NULL, NULL), -EIDRM);
	ck_assert_int_eq(store_secret_import(a, x, xl, NULL, NULL, NULL), -EIDRM);
	/* the undo of that deletion (etcd refused it) brings it back */
	ck_assert_int_eq(store_secret_import(a, x, xl, &force, NULL, NULL), 0);
	get_is(a, "app/gone", "x");
	/* an undone new secret (forget, forced) is not a deletion: its rows are taken later */
	put(b, "app/new", "y");
	uint8_t *y = NULL;
	size_t yl = 0;
	ck_assert_int_eq(store_secret_export(b, "app/new", &y, &yl), 0);
	ck_assert_int_eq(store_secret_forget(b, "app/new", &force), 0);
	ck_assert_int_eq(store_secret_import(b, y, yl, NULL, NULL, NULL), 0);
	free(x);
	free(y);
	free(g1);
	free(g2);
	free(g3);
	store_close(a);
	store_close(b);
}
END_TEST

/* A secret's lifecycle (expiry, schedule) travels with its rows under its own MAC and
 * generation: a schedule set on A reaches B, its removal too, and the older rows (the schedule
 * back) are refused as a rollback. */
START_TEST(test_life_rows)
{
	store *a, *b;
	two_nodes(&a, &b);
	put(a, "app/rot", "v");
	ck_assert_int_eq(store_schedule_set(a, "app/rot", 3600, 16, STORE_CHARSET_HEX, NULL, NULL),
	                 0);
	uint8_t *x1 = NULL, *x2 = NULL;
	size_t l1 = 0, l2 = 0;
	ck_assert_int_eq(store_secret_export(a, "app/rot", &x1, &l1), 0);
	ck_assert_int_eq(store_secret_import(b, x1, l1, NULL, NULL, NULL), 0);
	struct store_lifecycle *lc = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_lifecycles(b, &lc, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(lc[0].every, 3600);
	ck_assert_uint_eq(lc[0].length, 16);
	store_lifecycles_free(lc, n);
	/* B's export of what it took is A's, byte for byte (what a write's begin compares) */
	uint8_t *xb = NULL;
	size_t lb = 0;
	ck_assert_int_eq(store_secret_export(b, "app/rot", &xb, &lb), 0);
	ck_assert_uint_eq(lb, l1);
	ck_assert_mem_eq(xb, x1, l1);
	free(xb);
	ck_assert_int_eq(store_schedule_set(a, "app/rot", 0, 0, STORE_CHARSET_ALNUM, NULL, NULL),
	                 0);
	ck_assert_int_eq(store_secret_export(a, "app/rot", &x2, &l2), 0);
	ck_assert_int_eq(store_secret_import(b, x2, l2, NULL, NULL, NULL), 0);
	ck_assert_int_eq(store_lifecycles(b, &lc, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_lifecycles_free(lc, n);
	/* the rows with the schedule again: an older lifecycle generation */
	ck_assert_int_eq(store_secret_import(b, x1, l1, NULL, NULL, NULL), -ESTALE);
	/* its schedule's bytes altered: the lifecycle MAC */
	x2[l2 - 32 - 60] ^= 1;
	ck_assert_int_eq(store_secret_import(b, x2, l2, NULL, NULL, NULL), -EBADMSG);
	free(x1);
	free(x2);
	store_close(a);
	store_close(b);
}
END_TEST

START_TEST(test_keyring)
{
	store *a = open_store(sa, key, true);
	uint8_t *kr = NULL;
	size_t krl = 0;
	ck_assert_int_eq(store_keyring_export(a, &kr, &krl), 0);
	struct store_xkeyring xk;
	ck_assert_int_eq(store_xkeyring_decode(kr, krl, &xk), 0);
	ck_assert_ptr_null(xk.salt); /* a key file's keyring: v1, no KDF */
	ck_assert_int_eq(store_xkeyring_decode(kr, krl - 1, &xk), -EBADMSG);
	/* another root key cannot open it */
	store *c = open_store(sc, keyb, true);
	ck_assert_int_eq(store_keyring_adopt(c, kr, krl, NULL), -EKEYREJECTED);
	store_close(c);
	/* a store that holds something does not join */
	store *b = open_store(sb, key, true);
	put(b, "app/y", "v");
	ck_assert_int_eq(store_keyring_adopt(b, kr, krl, NULL), -ENOTEMPTY);
	/* a truncated or altered keyring is refused */
	ck_assert_int_eq(store_keyring_adopt(b, kr, krl - 1, NULL), -EBADMSG);
	kr[krl - 20] ^= 1;
	ck_assert_int_eq(store_keyring_adopt(b, kr, krl, NULL), -EKEYREJECTED);
	free(kr);
	store_close(b);
	store_close(a);
}
END_TEST

/* ---- key rotation across the cluster: store_keyring_update, store_key_rotate_*_pub ---- */

struct kpub {
	uint8_t *kr; /* the last keyring handed over */
	size_t krl;
	uint8_t *rows[8]; /* the last batch's rows after, and before */
	uint8_t *old[8];
	size_t rowl[8], oldl[8], nrows;
	int fail; /* returned by the callbacks (0: taken) */
};

static int kpub_keyring(void *ud, const uint8_t *p, size_t len)
{
	struct kpub *k = ud;
	if (k->fail)
		return k->fail;
	free(k->kr);
	k->kr = malloc(len);
	ck_assert_ptr_nonnull(k->kr);
	memcpy(k->kr, p, len);
	k->krl = len;
	return 0;
}

static int kpub_rows(void *ud, const struct store_rewrapped *v, size_t n)
{
	struct kpub *k = ud;
	if (k->fail)
		return k->fail;
	ck_assert_uint_le(n, 8);
	for (size_t i = 0; i < k->nrows; i++) {
		free(k->rows[i]);
		free(k->old[i]);
	}
	for (size_t i = 0; i < n; i++) {
		k->rows[i] = malloc(v[i].newlen);
		k->old[i] = malloc(v[i].oldlen);
		memcpy(k->rows[i], v[i].new, v[i].newlen);
		memcpy(k->old[i], v[i].old, v[i].oldlen);
		k->rowl[i] = v[i].newlen;
		k->oldl[i] = v[i].oldlen;
	}
	k->nrows = n;
	return 0;
}

static void kpub_free(struct kpub *k)
{
	free(k->kr);
	for (size_t i = 0; i < k->nrows; i++) {
		free(k->rows[i]);
		free(k->old[i]);
	}
}

static size_t ngens(store *s)
{
	struct store_key_status ks;
	ck_assert_int_eq(store_key_status(s, &ks), 0);
	size_t n = ks.ngens;
	store_key_status_free(&ks);
	return n;
}

static void keyring_is(store *s, const uint8_t *kr, size_t krl)
{
	uint8_t *m = NULL;
	size_t ml = 0;
	ck_assert_int_eq(store_keyring_export(s, &m, &ml), 0);
	ck_assert_uint_eq(ml, krl);
	ck_assert_mem_eq(m, kr, krl);
	free(m);
}

START_TEST(test_key_rotation_rows)
{
	store *a, *b;
	two_nodes(&a, &b);
	put(a, "app/db", "one");
	put(a, "app/db", "two");
	put(a, "app/x", "x");
	uint8_t *x0 = NULL, *kr0 = NULL, *y = NULL;
	size_t l0 = 0, krl0 = 0, yl = 0;
	ck_assert_int_eq(store_secret_export(a, "app/db", &x0, &l0), 0);
	ck_assert_int_eq(store_secret_import(b, x0, l0, NULL, NULL, NULL), 0);
	ck_assert_int_eq(store_secret_export(a, "app/x", &y, &yl), 0);
	ck_assert_int_eq(store_secret_import(b, y, yl, NULL, NULL, NULL), 0);
	ck_assert_int_eq(store_keyring_export(a, &kr0, &krl0), 0);
	struct kpub k = {0};
	struct store_key_pub pub = {.keyring = kpub_keyring,
	                            .rows = kpub_rows,
	                            .ud = &k,
	                            .max_keys = 1,
	                            .max_bytes = 1 << 20};
	/* etcd refuses the new generation: nothing of it stays */
	k.fail = -ESTALE;
	uint64_t id = 0, nre = 0;
	bool resumed = false, fin = false;
	ck_assert_int_eq(store_key_rotate_begin_pub(a, NULL, &pub, &id, &resumed), -ESTALE);
	ck_assert_uint_eq(ngens(a), 1);
	ck_assert_uint_eq(store_key_rotating(a), 0);
	keyring_is(a, kr0, krl0);
	k.fail = 0;
	ck_assert_int_eq(store_key_rotate_begin_pub(a, NULL, &pub, &id, &resumed), 0);
	ck_assert_uint_eq(id, 2);
	ck_assert_uint_eq(ngens(a), 2);
	uint8_t *kr1 = k.kr;
	size_t krl1 = k.krl;
	k.kr = NULL;
	keyring_is(a, kr1, krl1);
	/* B takes the new generation; the same keyring again changes nothing */
	size_t kept = 9;
	bool ch = false;
	ck_assert_int_eq(store_keyring_update(b, kr1, krl1, NULL, &kept, &ch), 0);
	ck_assert(ch);
	ck_assert_uint_eq(kept, 0);
	keyring_is(b, kr1, krl1);
	ck_assert_int_eq(store_keyring_update(b, kr1, krl1, NULL, &kept, &ch), 0);
	ck_assert(!ch);
	/* the keyring from before (without the newest generation): a replay */
	ck_assert_int_eq(store_keyring_update(b, kr0, krl0, NULL, NULL, NULL), -ESTALE);
	ck_assert_uint_eq(ngens(b), 2);
	/* B, holding several generations and not rotating, starts none of its own */
	ck_assert_int_eq(store_key_rotate_begin_pub(b, NULL, &pub, &id, &resumed), -EALREADY);
	/* a batch etcd does not take changes nothing */
	k.fail = -EHOSTUNREACH;
	ck_assert_int_eq(store_key_rotate_step_pub(a, 128, NULL, &pub, &nre, &fin), -EHOSTUNREACH);
	k.fail = 0;
	uint8_t *same = NULL;
	size_t sl = 0;
	ck_assert_int_eq(store_secret_export(a, "app/db", &same, &sl), 0);
	ck_assert_uint_eq(sl, l0);
	ck_assert_mem_eq(same, x0, l0);
	free(same);
	/* batches of one secret (max_keys 1): each handed over with its rows before and after
	 * (ids are random in cluster mode: either secret may come first) */
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(store_key_rotate_step_pub(a, 128, NULL, &pub, &nre, &fin), 0);
		ck_assert(!fin);
		ck_assert_uint_eq(k.nrows, 1);
		bool db = k.oldl[0] == l0 && memcmp(k.old[0], x0, l0) == 0;
		ck_assert_uint_eq(nre, db ? 2 : 1); /* app/db's two versions, app/x's one */
		ck_assert_int_eq(store_secret_import(b, k.rows[0], k.rowl[0], NULL, NULL, NULL), 0);
		if (!db)
			continue;
		get_is(b, "app/db", "two");
		/* the rows from before the re-wrap replayed: a rollback (same versions, older
		 * wrap) */
		ck_assert_int_eq(store_secret_import(b, x0, l0, NULL, NULL, NULL), -ESTALE);
		get_is(b, "app/db", "two");
	}
	/* nothing left: the last step drops generation 1 here and hands over the keyring */
	ck_assert_int_eq(store_key_rotate_step_pub(a, 128, NULL, &pub, &nre, &fin), 0);
	ck_assert(fin);
	ck_assert_uint_eq(ngens(a), 1);
	uint8_t *kr2 = k.kr;
	size_t krl2 = k.krl;
	k.kr = NULL;
	keyring_is(a, kr2, krl2);
	ck_assert_int_eq(store_keyring_update(b, kr2, krl2, NULL, &kept, &ch), 0);
	ck_assert(ch);
	ck_assert_uint_eq(kept, 0);
	keyring_is(b, kr2, krl2); /* what a restart compares */
	get_is(b, "app/db", "two");
	get_is(b, "app/x", "x");
	/* older keyrings replayed: a generation dropped here comes back */
	ck_assert_int_eq(store_keyring_update(b, kr1, krl1, NULL, NULL, NULL), -ESTALE);
	ck_assert_int_eq(store_keyring_update(b, kr0, krl0, NULL, NULL, NULL), -ESTALE);
	keyring_is(b, kr2, krl2);
	/* another cluster's keyring (another MAC root) */
	store *c = open_store(sc, keyb, true);
	uint8_t *kc = NULL;
	size_t kcl = 0;
	ck_assert_int_eq(store_keyring_export(c, &kc, &kcl), 0);
	ck_assert_int_eq(store_keyring_update(b, kc, kcl, NULL, NULL, NULL), -EBADMSG);
	free(kc);
	store_close(c);
	/* a new generation A makes (3), altered: it does not open with the root key */
	ck_assert_int_eq(store_key_rotate_begin_pub(a, NULL, &pub, &id, &resumed), 0);
	ck_assert_uint_eq(id, 3);
	uint8_t *kr3 = k.kr;
	size_t krl3 = k.krl;
	k.kr = NULL;
	kr3[krl3 - 8 - 10] ^= 1; /* in the last generation's sealed key */
	ck_assert_int_eq(store_keyring_update(b, kr3, krl3, NULL, NULL, NULL), -EKEYREJECTED);
	kr3[krl3 - 8 - 10] ^= 1;
	/* a held generation altered */
	kr3[krl3 - 2 * (8 + 8 + 72) + 8 + 8 + 3] ^= 1;
	ck_assert_int_eq(store_keyring_update(b, kr3, krl3, NULL, NULL, NULL), -EBADMSG);
	kr3[krl3 - 2 * (8 + 8 + 72) + 8 + 8 + 3] ^= 1;
	keyring_is(b, kr2, krl2);
	ck_assert_int_eq(store_keyring_update(b, kr3, krl3, NULL, NULL, NULL), 0);
	/* A finishes without B applying its rows: the keyring without generation 2, which B's
	 * rows still use, keeps it on B */
	for (fin = false; !fin;)
		ck_assert_int_eq(store_key_rotate_step_pub(a, 128, NULL, &pub, &nre, &fin), 0);
	ck_assert_int_eq(store_keyring_update(b, k.kr, k.krl, NULL, &kept, &ch), 0);
	ck_assert_uint_eq(kept, 1);
	ck_assert_uint_eq(ngens(b), 2);
	get_is(b, "app/db", "two");
	kpub_free(&k);
	free(kr0);
	free(kr1);
	free(kr2);
	free(kr3);
	free(x0);
	free(y);
	store_close(a);
	store_close(b);
}
END_TEST

/* ---- writes off the loop's thread (cluster_begin_async / cluster_commit_async) ----
 * etcd here is a TCP socket that listens and never answers (a member without quorum, or frozen:
 * connections are taken by the kernel, requests hang until the timeout). */
static int mute_etcd(char *url, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	socklen_t al = sizeof(a);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	snprintf(url, cap, "http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
	return fd;
}

struct wr_seen {
	loop *l;
	int calls, r, undo;
	struct cluster_read *rd;
};

static void wr_begun(void *ud, int r, struct cluster_read *rd)
{
	struct wr_seen *w = ud;
	w->calls++;
	w->r = r;
	w->rd = rd;
	loop_quit(w->l);
}

static void wr_committed(void *ud, int r, int undo)
{
	struct wr_seen *w = ud;
	w->calls++;
	w->r = r;
	w->undo = undo;
	loop_quit(w->l);
}

static void wr_timeout(loop *l, int fd, uint32_t events, void *ud)
{
	*(bool *)ud = true;
	loop_quit(l);
}

/* Runs the loop until a write's answer (or 60 s: a failure). */
static void wr_run(loop *l)
{
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	ck_assert_int_ge(tfd, 0);
	struct itimerspec its = {.it_value = {.tv_sec = 60}};
	ck_assert_int_eq(timerfd_settime(tfd, 0, &its, NULL), 0);
	bool late = false;
	ck_assert_int_eq(loop_add(l, tfd, EPOLLIN, wr_timeout, &late), 0);
	ck_assert_int_eq(loop_run(l), 0);
	ck_assert_int_eq(loop_del(l, tfd), 0);
	close(tfd);
	ck_assert_msg(!late, "no answer from the writer thread in 60 s");
}

static bool has_secret(store *s, const char *name)
{
	uint8_t *v = NULL;
	size_t n = 0;
	int r = store_secret_export(s, name, &v, &n);
	free(v);
	ck_assert(r == 0 || r == -ENOENT);
	return r == 0;
}

/* A write's etcd calls run on the writer thread and their answers come through the loop: a
 * txn etcd does not answer undoes the local change; the read answers -EHOSTUNREACH (or is
 * refused at once once the election saw etcd unreachable). The loop is not held meanwhile. */
START_TEST(test_async_writes)
{
	char url[64];
	int mute = mute_etcd(url, sizeof(url));
	store *s = open_store(sa, key, true);
	loop *l = NULL;
	ck_assert_int_eq(loop_new(&l), 0);
	struct cluster_config cfg = {.etcd = url, .name = "unit", .timeout_ms = 300};
	cluster *c = NULL;
	ck_assert_int_eq(cluster_new(&c, s, l, &cfg), 0);
	/* the local change (a new secret, nothing before it), then its txn */
	ck_assert_int_eq(store_put_ex(s, "app/x", (const uint8_t *)"v", 1, NULL, NULL, NULL), 0);
	struct cluster_pre pre = {0};
	struct wr_seen w = {.l = l, .r = 1};
	int undo = 0;
	ck_assert_int_eq(
	    cluster_commit_async(c, "app/x", NULL, false, &pre, wr_committed, &w, &undo), 0);
	ck_assert_int_eq(w.calls, 0); /* not before the loop runs */
	wr_run(l);
	ck_assert_int_eq(w.calls, 1);
	ck_assert_int_eq(w.r, -EHOSTUNREACH);
	ck_assert_int_eq(w.undo, 0);
	ck_assert(!has_secret(s, "app/x")); /* undone */
	/* the read */
	w = (struct wr_seen){.l = l, .r = 1};
	int r = cluster_begin_async(c, "app/x", NULL, wr_begun, &w);
	ck_assert(r == 0 || r == -EHOSTUNREACH);
	if (r == 0) {
		wr_run(l);
		ck_assert_int_eq(w.calls, 1);
		ck_assert_int_eq(w.r, -EHOSTUNREACH);
		cluster_read_free(w.rd); /* NULL: no answer */
	}
	struct cluster_stats st;
	cluster_get_stats(c, &st);
	ck_assert_uint_ge(st.write_failures, 2);
	/* stopped with a txn queued: it ends, undone, without the loop */
	ck_assert_int_eq(store_put_ex(s, "app/y", (const uint8_t *)"v", 1, NULL, NULL, NULL), 0);
	w = (struct wr_seen){.l = l, .r = 1};
	ck_assert_int_eq(
	    cluster_commit_async(c, "app/y", NULL, false, &pre, wr_committed, &w, &undo), 0);
	cluster_free(c);
	ck_assert_int_eq(w.calls, 1);
	ck_assert(w.r < 0);
	ck_assert(!has_secret(s, "app/y"));
	loop_free(l);
	store_close(s);
	close(mute);
}
END_TEST

/* Origin records (cluster_log.h): made on node A, verified on node B (one keyring); a record
 * altered, moved to another key, or MAC'd under another cluster's keys is refused. */
START_TEST(test_origin_records)
{
	store *a, *b;
	two_nodes(&a, &b);
	struct cluster_log_put lp;
	const char *val = "rows";
	ck_assert_int_eq(cluster_log_prepare(a, "/secretd/p/", "node-1", "/secretd/p/s/app/db", val,
	                                     strlen(val), false, "uid:0", "put", &lp),
	                 0);
	char okey[ETCD_KEY_MAX + 1];
	ck_assert_int_eq(cluster_log_key("/secretd/p/", "s/app/db", okey, sizeof(okey)), 0);
	ck_assert_str_eq(lp.key, okey);
	ck_assert_uint_eq(strlen(okey), strlen("/secretd/p/o/") + CLUSTER_LOG_OKEY_HEX);
	struct cluster_origin o;
	ck_assert_int_eq(cluster_log_decode(lp.val, lp.put.vlen, &o), 0);
	ck_assert_str_eq(o.node, "node-1");
	ck_assert_str_eq(o.actor, "uid:0");
	ck_assert_str_eq(o.action, "put");
	ck_assert_str_eq(o.key, "s/app/db");
	ck_assert(!o.deleted);
	uint8_t bind[32];
	cluster_log_bind(val, strlen(val), bind);
	ck_assert_mem_eq(o.bind, bind, 32);
	ck_assert_int_eq(cluster_log_verify(b, &o), 0); /* another node of the cluster */
	/* any field changed: the MAC fails */
	struct cluster_origin f = o;
	f.node[0] = 'e';
	ck_assert_int_eq(cluster_log_verify(b, &f), -EBADMSG);
	f = o;
	f.deleted = true;
	ck_assert_int_eq(cluster_log_verify(b, &f), -EBADMSG);
	f = o;
	f.bind[0] ^= 1;
	ck_assert_int_eq(cluster_log_verify(b, &f), -EBADMSG);
	f = o;
	snprintf(f.key, sizeof(f.key), "s/app/other");
	ck_assert_int_eq(cluster_log_verify(b, &f), -EBADMSG);
	/* a store of another root key (another cluster) */
	store *c = open_store(sc, keyb, true);
	ck_assert_int_eq(cluster_log_verify(c, &o), -EBADMSG);
	store_close(c);
	/* what a record cannot hold is refused at decode; the caller's names are cleaned */
	ck_assert_int_eq(cluster_log_decode("{\"v\":1}", 7, &o), -EBADMSG);
	ck_assert_int_eq(cluster_log_decode(lp.val, CLUSTER_LOG_MAX + 1, &o), -E2BIG);
	cluster_log_put_free(&lp);
	ck_assert_int_eq(cluster_log_prepare(a, "/secretd/p/", "node-1", "/secretd/p/s/x", NULL, 0,
	                                     true, "we\"ird\n", "", &lp),
	                 0);
	ck_assert_int_eq(cluster_log_decode(lp.val, lp.put.vlen, &o), 0);
	ck_assert_str_eq(o.actor, "we?ird?");
	ck_assert_str_eq(o.action, "change");
	ck_assert(o.deleted);
	ck_assert_int_eq(cluster_log_verify(b, &o), 0);
	cluster_log_put_free(&lp);
	/* a key outside the prefix */
	ck_assert_int_eq(cluster_log_prepare(a, "/secretd/p/", "n", "/secretd/q/s/x", "v", 1, false,
	                                     "", "", &lp),
	                 -EINVAL);
	store_close(b);
	store_close(a);
}
END_TEST

/* A passphrase file (0600, owned by us) holding text. */
static void write_pass(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0600), 0);
}

static store *open_pass_store(const char *dir, const char *pass, bool init)
{
	struct store_opts o = {.state_dir = dir, .pass_file = pass};
	if (init)
		ck_assert_int_eq(store_init(&o), 0);
	store *s = NULL;
	ck_assert_int_eq(store_open(&s, &o), 0);
	return s;
}

/* A cluster made by a passphrase store: its keyring carries the KDF's salt and limits, so a
 * node with the same passphrase (its own init drew another salt) derives the same root key;
 * another passphrase, a key file's store, a passphrase store without its passphrase, or a
 * passphrase store given a key file's keyring are refused. */
START_TEST(test_keyring_passphrase)
{
	setenv("SECRETD_KDF_TEST", "1", 1);
	char pass[PATH_MAX], other[PATH_MAX];
	snprintf(pass, sizeof(pass), "%s/pass", tmpdir);
	snprintf(other, sizeof(other), "%s/other-pass", tmpdir);
	write_pass(pass, "correct horse battery staple\n");
	write_pass(other, "another passphrase\n");
	store *a = open_pass_store(sa, pass, true);
	put(a, "app/p", "from-a");
	uint8_t *kr = NULL, *mine = NULL;
	size_t krl = 0, ml = 0;
	ck_assert_int_eq(store_keyring_export(a, &kr, &krl), 0);
	struct store_xkeyring xk;
	ck_assert_int_eq(store_xkeyring_decode(kr, krl, &xk), 0);
	ck_assert_str_eq(xk.kind, "argon2id13");
	ck_assert_ptr_nonnull(xk.salt);
	ck_assert_uint_eq(xk.n, 1);
	/* a wrong passphrase derives another root key */
	store *c = open_pass_store(sc, other, true);
	ck_assert_int_eq(store_keyring_adopt(c, kr, krl, other), -EKEYREJECTED);
	ck_assert_int_eq(store_keyring_adopt(c, kr, krl, NULL), -EINVAL);
	store_close(c);
	/* a key file's store cannot take a passphrase's keyring, nor the other way round */
	char sd[PATH_MAX];
	snprintf(sd, sizeof(sd), "%s/d", tmpdir);
	store *k = open_store(sd, key, true);
	ck_assert_int_eq(store_keyring_adopt(k, kr, krl, pass), -EINVAL);
	uint8_t *kkr = NULL;
	size_t kkl = 0;
	ck_assert_int_eq(store_keyring_export(k, &kkr, &kkl), 0);
	store_close(k);
	store *b = open_pass_store(sb, pass, true);
	ck_assert_int_eq(store_keyring_adopt(b, kkr, kkl, pass), -EINVAL);
	free(kkr);
	/* truncated: refused */
	ck_assert_int_eq(store_keyring_adopt(b, kr, krl - 1, pass), -EBADMSG);
	/* the same passphrase joins; reopened with it, the store's keyring is the cluster's */
	ck_assert_int_eq(store_keyring_adopt(b, kr, krl, pass), 0);
	store_close(b);
	b = open_pass_store(sb, pass, false);
	ck_assert_int_eq(store_keyring_export(b, &mine, &ml), 0);
	ck_assert_uint_eq(ml, krl);
	ck_assert_mem_eq(mine, kr, krl);
	/* and A's rows verify and open there */
	store_cluster_ids(a, true);
	store_cluster_ids(b, true);
	uint8_t *x = NULL;
	size_t xl = 0;
	ck_assert_int_eq(store_secret_export(a, "app/p", &x, &xl), 0);
	ck_assert_int_eq(store_secret_import(b, x, xl, NULL, NULL, NULL), 0);
	get_is(b, "app/p", "from-a");
	free(x);
	free(mine);
	free(kr);
	store_close(b);
	store_close(a);
	unsetenv("SECRETD_KDF_TEST");
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("cluster");
	TCase *tp = tcase_create("etcd_parse");
	tcase_add_test(tp, test_range);
	tcase_add_test(tp, test_txn_and_error);
	tcase_add_test(tp, test_members);
	tcase_add_test(tp, test_watch_lines);
	tcase_add_test(tp, test_bad_answers);
	tcase_add_test(tp, test_stream_pieces);
	tcase_add_test(tp, test_stream_limit);
	tcase_add_test(tp, test_client_urls);
	tcase_add_test(tp, test_token);
	tcase_add_test(tp, test_client_security);
	suite_add_tcase(s, tp);
	TCase *tr = tcase_create("rows");
	tcase_add_unchecked_fixture(tr, base_setup, base_teardown);
	tcase_add_checked_fixture(tr, rows_setup, tmpdir_teardown);
	tcase_set_timeout(tr, 60);
	tcase_add_test(tr, test_secret_rows);
	tcase_add_test(tr, test_same_name_two_nodes);
	tcase_add_test(tr, test_grant_rows);
	tcase_add_test(tr, test_replays);
	tcase_add_test(tr, test_life_rows);
	tcase_add_test(tr, test_keyring);
	tcase_add_test(tr, test_key_rotation_rows);
	tcase_add_test(tr, test_async_writes);
	tcase_add_test(tr, test_origin_records);
	tcase_add_test(tr, test_keyring_passphrase);
	suite_add_tcase(s, tr);
	return s;
}
