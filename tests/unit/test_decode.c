/* Unit tests for the API's request decoders (broker/http/decode.c): what each request decodes
 * to (defaults, every field, the query forms), and the reason given for what is refused. The
 * answers over a socket are pinned by test_http; the fuzz target (fuzz_decode) checks the
 * limits on arbitrary input. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "broker/http/decode.h"
#include "tests/unit/runner.h"

#define B(s) (const uint8_t *)(s), strlen(s)

/* A query as NULL-terminated {key, value} pairs. */
static const char *args_get(void *ud, const char *key)
{
	const char *const *kv = ud;
	for (; kv[0]; kv += 2)
		if (strcmp(kv[0], key) == 0)
			return kv[1];
	return NULL;
}

START_TEST(test_json_object)
{
	char err[DECODE_ERR_MAX];
	json_t *j = NULL;
	ck_assert_int_eq(decode_json_object(B("{\"a\":1}"), &j, err), 0);
	ck_assert(json_is_object(j));
	json_decref(j);
	ck_assert_int_eq(decode_json_object(B("[]"), &j, err), -EINVAL);
	ck_assert_ptr_null(j);
	ck_assert_str_eq(err, "request body must be a JSON object");
	ck_assert_int_eq(decode_json_object(B("{\"a\":1,\"a\":2}"), &j, err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "request body must be a JSON object: duplicate"));
	ck_assert_int_eq(decode_json_object(NULL, 0, &j, err), -EINVAL);
	static char big[DECODE_JSON_MAX + 2];
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[DECODE_JSON_MAX - 1] = '}';
	ck_assert_int_eq(decode_json_object((const uint8_t *)big, DECODE_JSON_MAX, &j, err), 0);
	json_decref(j);
	big[DECODE_JSON_MAX] = '}';
	ck_assert_int_eq(decode_json_object((const uint8_t *)big, DECODE_JSON_MAX + 1, &j, err),
	                 -EINVAL);
	ck_assert_str_eq(err, "request body larger than the limit of 65536 bytes");
}
END_TEST

START_TEST(test_grant)
{
	char err[DECODE_ERR_MAX];
	struct decode_grant g;
	ck_assert_int_eq(
	    decode_grant(B("{\"secret\":\"db/*\",\"selector\":\"name:web\"}"), &g, err), 0);
	ck_assert_str_eq(g.secret, "db/*");
	ck_assert_str_eq(g.selector, "name:web");
	ck_assert_ptr_null(g.path);
	ck_assert_uint_eq(g.mode, 0400);
	ck_assert_int_eq(g.uid, -1);
	ck_assert_int_eq(g.gid, -1);
	ck_assert(!g.previous && !g.replace);
	decode_grant_clear(&g);
	ck_assert_ptr_null(g.doc);
	ck_assert_int_eq(decode_grant(B("{\"secret\":\"a\",\"selector\":\"uid:0\",\"path\":\"x/y\","
	                                "\"mode\":288,\"uid\":4294967294,\"gid\":null,"
	                                "\"previous\":true,\"replace\":true}"),
	                              &g, err),
	                 0);
	ck_assert_str_eq(g.path, "x/y");
	ck_assert_uint_eq(g.mode, 0440);
	ck_assert_int_eq(g.uid, DECODE_ID_MAX);
	ck_assert_int_eq(g.gid, -1);
	ck_assert(g.previous && g.replace);
	decode_grant_clear(&g);
	/* The first problem is the one reported. */
	ck_assert_int_eq(decode_grant(B("{\"selector\":\"nope\",\"mode\":-1}"), &g, err), -EINVAL);
	ck_assert_str_eq(err, "invalid secret name or pattern: missing \"secret\"");
	decode_grant_clear(&g);
	ck_assert_int_eq(
	    decode_grant(B("{\"secret\":\"a\",\"selector\":\"name:x\",\"mode\":512}"), &g, err),
	    -EINVAL);
	ck_assert_str_eq(err, "mode must be an integer from 0 to 511");
	decode_grant_clear(&g);
	ck_assert_int_eq(decode_grant(B("{\"secret\":\"a\",\"selector\":\"name:x\",\"path\":"
	                                "\".version/x\"}"),
	                              &g, err),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "invalid path: the first segment .version is reserved"));
	decode_grant_clear(&g);
}
END_TEST

START_TEST(test_revoke)
{
	char err[DECODE_ERR_MAX];
	struct decode_revoke v;
	ck_assert_int_eq(decode_revoke(B("{\"secret\":\"a\",\"selector\":\"name:x\"}"), &v, err),
	                 0);
	ck_assert_str_eq(v.secret, "a");
	ck_assert_str_eq(v.selector, "name:x");
	decode_revoke_clear(&v);
	ck_assert_int_eq(decode_revoke(B("{\"secret\":\"a\",\"selector\":1}"), &v, err), -EINVAL);
	ck_assert_str_eq(err, "\"secret\" and \"selector\" are required");
	decode_revoke_clear(&v);
}
END_TEST

START_TEST(test_attach)
{
	char err[DECODE_ERR_MAX];
	struct decode_attach a;
	ck_assert_int_eq(
	    decode_attach(B("{\"id\":\"c1\",\"pid\":42,\"root\":\"/r\",\"mount\":\"/m\","
	                    "\"name\":\"web\",\"runtime\":\"runc\",\"labels\":{\"k\":"
	                    "\"v\",\"t\":\"db\"},\"uid\":7,\"wants\":true}"),
	                  &a, err),
	    0);
	ck_assert_str_eq(a.req.id, "c1");
	ck_assert_int_eq(a.req.pid, 42);
	ck_assert_str_eq(a.req.root, "/r");
	ck_assert_str_eq(a.req.target, "/m");
	ck_assert_str_eq(a.req.name, "web");
	ck_assert_str_eq(a.req.runtime, "runc");
	ck_assert_uint_eq(a.req.nlabels, 2);
	ck_assert_str_eq(a.req.labels[0].key, "k");
	ck_assert_str_eq(a.req.labels[1].value, "db");
	ck_assert_int_eq(a.req.uid, 7);
	ck_assert_int_eq(a.req.gid, -1);
	ck_assert(a.req.wants);
	decode_attach_clear(&a);
	/* No pid: decoded as 0 (the attach itself then refuses it). */
	ck_assert_int_eq(decode_attach(B("{\"id\":\"c1\"}"), &a, err), 0);
	ck_assert_int_eq(a.req.pid, 0);
	ck_assert_ptr_null(a.req.target);
	decode_attach_clear(&a);
	/* Labels are checked before the id. */
	ck_assert_int_eq(decode_attach(B("{\"labels\":\"x\"}"), &a, err), -EINVAL);
	ck_assert_str_eq(err, "labels must be an object of at most 64 strings");
	decode_attach_clear(&a);
	char big[POLICY_LABELS_MAX * 16 + 64];
	size_t n = (size_t)snprintf(big, sizeof(big), "{\"id\":\"c\",\"labels\":{");
	for (int i = 0; i <= POLICY_LABELS_MAX; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"l%d\":\"v\"", i ? "," : "", i);
	snprintf(big + n, sizeof(big) - n, "}}");
	ck_assert_int_eq(decode_attach(B(big), &a, err), -EINVAL);
	decode_attach_clear(&a);
	ck_assert_int_eq(decode_attach(B("{\"id\":\"c\",\"gid\":-2}"), &a, err), -EINVAL);
	ck_assert_str_eq(err, "gid must be an integer from -1 to 4294967294");
	decode_attach_clear(&a);
}
END_TEST

START_TEST(test_rotate)
{
	char err[DECODE_ERR_MAX];
	struct decode_rotate o;
	ck_assert_int_eq(decode_rotate(B("{\"generate\":true}"), &o, err), 0);
	ck_assert_int_eq(o.every, -1);
	ck_assert_uint_eq(o.length, DECODE_GEN_LENGTH_DEFAULT);
	ck_assert_int_eq(o.charset, STORE_CHARSET_ALNUM);
	ck_assert(!o.print && !o.keep_expiry);
	ck_assert_ptr_null(o.exec);
	decode_rotate_clear(&o);
	ck_assert_int_eq(decode_rotate(B("{\"generate\":true,\"print\":true,\"keep_expiry\":true,"
	                                 "\"length\":4096,\"charset\":\"base64\"}"),
	                               &o, err),
	                 0);
	ck_assert(o.print && o.keep_expiry);
	ck_assert_uint_eq(o.length, 4096);
	ck_assert_int_eq(o.charset, STORE_CHARSET_BASE64);
	decode_rotate_clear(&o);
	ck_assert_int_eq(
	    decode_rotate(B("{\"every\":3600,\"exec\":\"reload\",\"charset\":\"hex\"}"), &o, err),
	    0);
	ck_assert_int_eq(o.every, 3600);
	ck_assert_str_eq(o.exec, "reload");
	ck_assert_int_eq(o.charset, STORE_CHARSET_HEX);
	decode_rotate_clear(&o);
	ck_assert_int_eq(decode_rotate(B("{\"every\":0,\"generate\":true}"), &o, err), 0);
	ck_assert_int_eq(o.every, 0);
	decode_rotate_clear(&o);
	ck_assert_int_eq(decode_rotate(B("{\"every\":-1}"), &o, err), -EINVAL);
	ck_assert_str_eq(err, "every must be an integer from 0 to 3153600000");
	decode_rotate_clear(&o);
	ck_assert_int_eq(decode_rotate(B("{\"every\":\"1h30m\"}"), &o, err), 0);
	ck_assert_int_eq(o.every, 5400);
	decode_rotate_clear(&o);
	ck_assert_int_eq(decode_rotate(B("{\"every\":\"1y\"}"), &o, err), -EINVAL);
	ck_assert_str_eq(err, "every must be a duration (90s, 15m, 1h30m, 7d) of at most "
	                      "3153600000 seconds");
	decode_rotate_clear(&o);
	ck_assert_int_eq(decode_rotate(B("{\"generate\":true,\"length\":4097}"), &o, err), -EINVAL);
	ck_assert_str_eq(err, "length must be an integer from 1 to 4096");
	decode_rotate_clear(&o);
}
END_TEST

START_TEST(test_mount)
{
	char err[DECODE_ERR_MAX];
	struct decode_mount m;
	ck_assert_int_eq(decode_mount(NULL, 0, &m, err), 0);
	ck_assert_ptr_null(m.path);
	decode_mount_clear(&m);
	ck_assert_int_eq(decode_mount(B("{\"path\":\"/s\"}"), &m, err), 0);
	ck_assert_str_eq(m.path, "/s");
	decode_mount_clear(&m);
	ck_assert_int_eq(decode_mount(B("{\"path\":false}"), &m, err), 0);
	ck_assert_ptr_null(m.path);
	decode_mount_clear(&m);
	ck_assert_int_eq(decode_mount(B("x"), &m, err), -EINVAL);
	decode_mount_clear(&m);
}
END_TEST

START_TEST(test_put_args)
{
	char err[DECODE_ERR_MAX];
	struct decode_put q;
	const char *none[] = {NULL};
	ck_assert_int_eq(decode_put(args_get, none, 1, &q, err), 0);
	ck_assert(q.keep == 0 && q.ttl == 0 && !q.allow_empty && !q.keep_expiry);
	const char *all[] = {"keep", "3",           "ttl", "60", "allow_empty",
	                     "1",    "keep_expiry", "0",   NULL};
	ck_assert_int_eq(decode_put(args_get, all, 0, &q, err), 0);
	ck_assert(q.keep == 3 && q.ttl == 60 && q.allow_empty && !q.keep_expiry);
	const char *both[] = {"ttl", "60", "keep_expiry", "1", NULL};
	ck_assert_int_eq(decode_put(args_get, both, 1, &q, err), -EINVAL);
	ck_assert_str_eq(err, "give ttl (a new expiry) or keep_expiry, not both");
	ck_assert_int_eq(decode_put(args_get, none, 0, &q, err), -EINVAL);
	ck_assert_str_eq(err, "refusing to store an empty value (allow_empty=1 stores one)");
	const char *sign[] = {"keep", "+3", NULL};
	ck_assert_int_eq(decode_put(args_get, sign, 1, &q, err), -EINVAL);
	ck_assert_str_eq(err, "keep must be an integer from 1 to 1000");
	/* common/timespec's durations and times: ttl=1h30m, expires=WHEN */
	const char *hm[] = {"ttl", "1h30m", NULL}, *zero[] = {"ttl", "0s", NULL};
	ck_assert_int_eq(decode_put(args_get, hm, 1, &q, err), 0);
	ck_assert(q.ttl == 5400 && !q.has_expires);
	ck_assert_int_eq(decode_put(args_get, zero, 1, &q, err), -EINVAL);
	ck_assert_str_eq(err, "ttl must be a duration (3600, 90s, 15m, 1h30m, 7d) of 1 to "
	                      "3153600000 seconds");
	const char *at[] = {"expires", "2026-12-24T10:00:00Z", NULL};
	ck_assert_int_eq(decode_put(args_get, at, 1, &q, err), 0);
	ck_assert(q.has_expires && !q.expires.relative && q.expires.value == 1798106400LL);
	const char *in[] = {"expires", "7d", NULL}, *nowp[] = {"expires", "now+1h", NULL};
	ck_assert_int_eq(decode_put(args_get, in, 1, &q, err), 0);
	ck_assert(q.has_expires && q.expires.relative && q.expires.value == 604800);
	ck_assert_int_eq(decode_put(args_get, nowp, 1, &q, err), 0);
	ck_assert(q.expires.relative && q.expires.value == 3600);
	const char *past[] = {"expires", "now-1h", NULL}, *junk[] = {"expires", "soon", NULL};
	ck_assert_int_eq(decode_put(args_get, past, 1, &q, err), -EINVAL);
	ck_assert_int_eq(decode_put(args_get, junk, 1, &q, err), -EINVAL);
	ck_assert_str_eq(err, "expires must be a time (2026-12-24T10:00:00Z, @UNIX, now+1h) or a "
	                      "duration from now (1h30m, 7d) within 100 years");
	const char *two[] = {"ttl", "60", "expires", "1h", NULL};
	ck_assert_int_eq(decode_put(args_get, two, 1, &q, err), -EINVAL);
	ck_assert_str_eq(err, "give ttl or expires, not both");
}
END_TEST

static int labels_of(const char *body, struct decode_labels *l, char *err)
{
	return decode_labels((const uint8_t *)body, strlen(body), l, err);
}

/* Labels: POST /v1/labels/NAME {set, remove} and PUT's ?labels= (common/labels' rules). */
START_TEST(test_labels)
{
	char err[DECODE_ERR_MAX];
	struct decode_labels l;
	ck_assert_int_eq(labels_of("{\"set\":{\"team\":\"pay ments\",\"app.io/name\":\"\"},"
	                           "\"remove\":[\"tier\"]}",
	                           &l, err),
	                 0);
	ck_assert_uint_eq(l.change.nset, 2);
	ck_assert_uint_eq(l.change.nremove, 1);
	ck_assert_str_eq(l.change.remove[0], "tier");
	decode_labels_clear(&l);
	static const struct {
		const char *body, *err;
	} bad[] = {
	    {"{}", "give labels to \"set\" or to \"remove\""},
	    {"{\"set\":[]}", "labels to set must be an object of at most 64 strings"},
	    {"{\"remove\":{}}", "labels to remove must be an array of at most 64 keys"},
	    {"{\"set\":{\"-k\":\"v\"}}",
	     "invalid label: a label key must begin and end with a letter or digit"},
	    {"{\"set\":{\"k=\":\"v\"}}",
	     "invalid label: a label key must begin and end with a letter or digit"},
	    {"{\"set\":{\"a b\":\"v\"}}",
	     "invalid label: a label key holds only letters, digits and . _ - /"},
	    {"{\"set\":{\"k\":1}}", "invalid label: a label value must be a string"},
	    {"{\"set\":{\"k\":\"a\\nb\"}}",
	     "invalid label: a label value holds only printable ASCII characters"},
	    {"{\"set\":{\"k\":\"v\"},\"remove\":[\"k\"]}",
	     "a label cannot be both set and removed"},
	    {"{\"remove\":[\"k\",\"k\"]}", "a label to remove is named twice"},
	    {"{\"remove\":[3]}", "invalid label to remove: a key must be a string"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(labels_of(bad[i].body, &l, err), -EINVAL);
		ck_assert_str_eq(err, bad[i].err);
		decode_labels_clear(&l);
	}
	/* limits: a key of 128 bytes and a value of 256 pass, one more byte does not; 64 labels */
	char big[1024];
	snprintf(big, sizeof(big), "{\"set\":{\"%0128d\":\"%0256d\"}}", 0, 0);
	ck_assert_int_eq(labels_of(big, &l, err), 0);
	decode_labels_clear(&l);
	snprintf(big, sizeof(big), "{\"set\":{\"%0129d\":\"v\"}}", 0);
	ck_assert_int_eq(labels_of(big, &l, err), -EINVAL);
	ck_assert_str_eq(err, "invalid label: a label key is longer than 128 bytes");
	decode_labels_clear(&l);
	snprintf(big, sizeof(big), "{\"set\":{\"k\":\"%0257d\"}}", 0);
	ck_assert_int_eq(labels_of(big, &l, err), -EINVAL);
	ck_assert_str_eq(err, "invalid label: a label value is longer than 256 bytes");
	decode_labels_clear(&l);
	char many[2048] = "{\"set\":{";
	for (int i = 0; i < 65; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"k%d\":\"\"",
		         i ? "," : "", i);
	strcat(many, "}}");
	ck_assert_int_eq(labels_of(many, &l, err), -EINVAL);
	ck_assert_str_eq(err, "labels to set must be an object of at most 64 strings");
	decode_labels_clear(&l);

	struct decode_put q;
	const char *put[] = {"labels", "{\"team\":\"payments\"}", NULL};
	ck_assert_int_eq(decode_put(args_get, put, 1, &q, err), 0);
	ck_assert(q.has_labels && q.labels.change.nset == 1 && !q.labels.change.nremove);
	ck_assert_str_eq(q.labels.change.set[0].value, "payments");
	decode_put_clear(&q);
	const char *put_bad[] = {"labels", "team=payments", NULL};
	ck_assert_int_eq(decode_put(args_get, put_bad, 1, &q, err), -EINVAL);
	ck_assert_str_eq(err, "labels must be a JSON object of KEY: \"VALUE\" strings");
	decode_put_clear(&q);
}
END_TEST

START_TEST(test_version_args)
{
	char err[DECODE_ERR_MAX];
	uint64_t v = 9;
	const char *none[] = {NULL};
	ck_assert_int_eq(decode_version(args_get, none, 10, false, &v, err), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(decode_version(args_get, none, 10, true, &v, err), -EINVAL);
	ck_assert_str_eq(err, "version is required");
	const char *ten[] = {"version", "10", NULL}, *big[] = {"version", "11", NULL};
	ck_assert_int_eq(decode_version(args_get, ten, 10, true, &v, err), 0);
	ck_assert_uint_eq(v, 10);
	ck_assert_int_eq(decode_version(args_get, big, 10, true, &v, err), -EINVAL);
	ck_assert_str_eq(err, "version must be an integer from 1 to 10");
}
END_TEST

/* Templates: a grant of "tmpl:NAME" (one template, no .previous); GET's query. */
START_TEST(test_template)
{
	char err[DECODE_ERR_MAX];
	struct decode_grant g;
	ck_assert_int_eq(decode_grant(B("{\"secret\":\"tmpl:db/url\",\"selector\":\"name:web\","
	                                "\"path\":\"etc/db.url\"}"),
	                              &g, err),
	                 0);
	ck_assert_str_eq(g.secret, "tmpl:db/url");
	ck_assert_str_eq(g.path, "etc/db.url");
	decode_grant_clear(&g);
	ck_assert_int_eq(
	    decode_grant(B("{\"secret\":\"tmpl:db/*\",\"selector\":\"name:web\"}"), &g, err),
	    -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "invalid template name (after \"tmpl:\")"));
	decode_grant_clear(&g);
	ck_assert_int_eq(decode_grant(B("{\"secret\":\"tmpl:x\",\"selector\":\"name:web\","
	                                "\"previous\":true}"),
	                              &g, err),
	                 -EINVAL);
	ck_assert_str_eq(err, "a template grant has no .previous file");
	decode_grant_clear(&g);
	struct decode_template_get q;
	const char *none[] = {NULL}, *body[] = {"body", "1", "version", "3", NULL},
	           *nobody[] = {"version", "3", NULL}, *bad[] = {"body", "yes", NULL};
	ck_assert_int_eq(decode_template_get(args_get, none, &q, err), 0);
	ck_assert(!q.body && q.version == 0);
	ck_assert_int_eq(decode_template_get(args_get, body, &q, err), 0);
	ck_assert(q.body && q.version == 3);
	ck_assert_int_eq(decode_template_get(args_get, nobody, &q, err), -EINVAL);
	ck_assert_str_eq(err, "version needs body=1");
	ck_assert_int_eq(decode_template_get(args_get, bad, &q, err), -EINVAL);
}
END_TEST

START_TEST(test_audit_args)
{
	char err[DECODE_ERR_MAX];
	struct decode_audit q;
	const char *seq[] = {"since", "42", "limit", "5", NULL};
	ck_assert_int_eq(decode_audit(args_get, seq, &q, err), 0);
	ck_assert(q.after == 41 && q.since_time == 0 && q.limit == 5);
	const char *zero[] = {"since", "0", NULL};
	ck_assert_int_eq(decode_audit(args_get, zero, &q, err), 0);
	ck_assert(q.after == 0 && q.since_time == 0 && q.limit == 0);
	const char *unix_s[] = {"since", "1000000000", NULL}, *at[] = {"since", "@5", NULL};
	ck_assert_int_eq(decode_audit(args_get, unix_s, &q, err), 0);
	ck_assert(q.after == 0 && q.since_time == 1000000000);
	ck_assert_int_eq(decode_audit(args_get, at, &q, err), 0);
	ck_assert(q.after == 0 && q.since_time == 5);
	const char *iso[] = {"since", "2024-01-02T03:04:05Z", NULL};
	ck_assert_int_eq(decode_audit(args_get, iso, &q, err), 0);
	ck_assert_int_eq(q.since_time, 1704164645);
	const char *bad[] = {"since", "-1", NULL}, *lim[] = {"limit", "100001", NULL};
	ck_assert_int_eq(decode_audit(args_get, bad, &q, err), -EINVAL);
	ck_assert_str_eq(err, "since must be a sequence number, a time (@SECONDS, RFC 3339, "
	                      "now-1h) or a duration ago (10m, 1h30m, 7d)");
	/* common/timespec's forms: a duration ago, now-DUR (relative), RFC 3339 with an offset */
	const char *ago[] = {"since", "1h30m", NULL}, *nowm[] = {"since", "now-7d", NULL};
	ck_assert_int_eq(decode_audit(args_get, ago, &q, err), 0);
	ck_assert(q.since_is_rel && q.since_rel == -5400 && q.after == 0);
	ck_assert_int_eq(decode_audit(args_get, nowm, &q, err), 0);
	ck_assert(q.since_is_rel && q.since_rel == -604800);
	const char *off[] = {"since", "2024-01-02T04:04:05+01:00", NULL};
	ck_assert_int_eq(decode_audit(args_get, off, &q, err), 0);
	ck_assert(!q.since_is_rel && q.since_time == 1704164645);
	ck_assert_int_eq(decode_audit(args_get, lim, &q, err), -EINVAL);
	ck_assert_str_eq(err, "limit must be an integer from 1 to 100000");
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("decode");
	TCase *tc = tcase_create("decode");
	tcase_add_test(tc, test_json_object);
	tcase_add_test(tc, test_grant);
	tcase_add_test(tc, test_revoke);
	tcase_add_test(tc, test_attach);
	tcase_add_test(tc, test_rotate);
	tcase_add_test(tc, test_mount);
	tcase_add_test(tc, test_put_args);
	tcase_add_test(tc, test_version_args);
	tcase_add_test(tc, test_labels);
	tcase_add_test(tc, test_audit_args);
	tcase_add_test(tc, test_template);
	suite_add_tcase(s, tc);
	return s;
}
