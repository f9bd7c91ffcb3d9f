/* Unit tests for the HTTP routes (broker/http), without root: the API is started on unix sockets
 * in a temp dir with a real store and a mounts registry holding no container, its loop run by a
 * thread, and requests are written raw over the sockets (so that malformed ones can be sent
 * too). The peer of both sockets is this process, a host process: the admin socket allows it
 * (its own uid), and the workload socket sees a process outside any container.
 * What is pinned: the status and the JSON {"error": ...} of bad input (bad JSON, too large,
 * unknown route, wrong method, bad names and arguments), each route's body limit, and that a
 * refused request changed nothing stored (secrets, grants, audit chain). The admin routes go
 * through a real service layer (broker/engine/service.h) over the same store and mounts. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "broker/engine/metrics.h"
#include "broker/engine/mounts.h"
#include "broker/engine/service.h"
#include "broker/http/api.h"
#include "broker/http/routes.h"
#include "broker/os/loop.h"
#include "common/limits.h"
#include "common/timespec.h"
#include "tests/unit/runner.h"
#include "tests/unit/storefix.h"

#define T_MAX_VALUE (128 * 1024) /* api_config.max_value of the tests' API */
#define T_IO_MS 30000            /* the longest wait for a socket (a generous bound) */

static struct {
	loop *l;
	store *s;
	mounts *m;
	service *sv;
	struct metrics met;
	api *a;
	int quit_fd;
	pthread_t th;
	char admin[240], workload[240];
} srv;

static void on_quit(loop *l, int fd, uint32_t events, void *ud)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* nothing to do: the loop quits either way */
	}
	loop_quit(l);
}

static void *loop_thread(void *ud)
{
	(void)ud;
	loop_run(srv.l);
	return NULL;
}

static void http_setup(void)
{
	storefix_setup();
	memset(&srv, 0, sizeof(srv));
	srv.s = open_new();
	ck_assert_int_eq(loop_new(&srv.l), 0);
	struct mounts_config mc = {0};
	ck_assert_int_eq(mounts_new(&srv.m, srv.l, srv.s, &mc), 0);
	struct service_config sc = {0};
	ck_assert_int_eq(service_new(&srv.sv, srv.s, srv.m, &srv.met, &sc), 0);
	char run[160];
	snprintf(run, sizeof(run), "%s/run", tmpdir);
	ck_assert_int_eq(mkdir(run, 0700), 0);
	struct api_config ac = {.runtime_dir = run,
	                        .admin_routes = &api_admin_routes,
	                        .workload_routes = &api_workload_routes,
	                        .max_value = T_MAX_VALUE,
	                        .service = srv.sv};
	ck_assert_int_eq(api_start(&srv.a, srv.l, srv.s, srv.m, &srv.met, &ac), 0);
	snprintf(srv.admin, sizeof(srv.admin), "%s/%s", run, SECRETD_ADMIN_SOCK);
	snprintf(srv.workload, sizeof(srv.workload), "%s/%s", run, SECRETD_WORKLOAD_SOCK);
	srv.quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ck_assert_int_ge(srv.quit_fd, 0);
	ck_assert_int_eq(loop_add(srv.l, srv.quit_fd, EPOLLIN, on_quit, NULL), 0);
	ck_assert_int_eq(pthread_create(&srv.th, NULL, loop_thread, NULL), 0);
}

/* Stops the loop thread; the store is then the test's alone. */
static void http_stop(void)
{
	if (!srv.l)
		return;
	uint64_t one = 1;
	ck_assert_int_eq(write(srv.quit_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	pthread_join(srv.th, NULL);
	api_stop(srv.a);
	service_free(srv.sv);
	mounts_free(srv.m);
	loop_free(srv.l);
	close(srv.quit_fd);
	srv.l = NULL;
}

static void http_teardown(void)
{
	http_stop();
	if (srv.s)
		store_close(srv.s);
	srv.s = NULL;
	storefix_teardown();
}

/* ---- a raw HTTP client ---- */

struct resp {
	int status;
	char head[4096];
	char *body; /* NUL-terminated */
	size_t len;
	json_t *json; /* the body parsed, when it is JSON */
};

static void resp_clear(struct resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static bool wait_fd(int fd, short ev)
{
	struct pollfd p = {.fd = fd, .events = ev};
	return poll(&p, 1, T_IO_MS) == 1;
}

/* Sends req (len bytes) on a new connection to sock and reads the answer until the server
 * closes. Writes that fail (the server answered early and closed) are not errors. */
static void http_raw(const char *sock, const char *req, size_t len, struct resp *out)
{
	memset(out, 0, sizeof(*out));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	for (size_t off = 0; off < len;) {
		ck_assert(wait_fd(fd, POLLOUT));
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	size_t cap = 4096, got = 0;
	char *buf = malloc(cap + 1);
	ck_assert_ptr_nonnull(buf);
	for (;;) {
		ck_assert_msg(wait_fd(fd, POLLIN), "no answer within %d ms", T_IO_MS);
		if (got == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			ck_assert_ptr_nonnull(buf);
		}
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	ck_assert_msg(sscanf(buf, "HTTP/1.%*d %d", &out->status) == 1, "no status line: %s", buf);
	char *end = strstr(buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(end);
	size_t hl = (size_t)(end - buf);
	ck_assert_uint_lt(hl, sizeof(out->head));
	memcpy(out->head, buf, hl);
	out->head[hl] = '\0';
	out->len = got - hl - 4;
	out->body = malloc(out->len + 1);
	ck_assert_ptr_nonnull(out->body);
	memcpy(out->body, end + 4, out->len);
	out->body[out->len] = '\0';
	free(buf);
	if (strstr(out->head, "application/json"))
		out->json = json_loadb(out->body, out->len, 0, NULL);
}

/* METHOD URL with body (Content-Length: len) on sock. */
static void http_do(const char *sock, const char *method, const char *url, const void *body,
                    size_t len, struct resp *out)
{
	size_t cap = len + 512;
	char *req = malloc(cap);
	ck_assert_ptr_nonnull(req);
	int n = snprintf(req, cap,
	                 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
	                 "Content-Length: %zu\r\n\r\n",
	                 method, url, len);
	ck_assert(n > 0 && (size_t)n < cap);
	if (len)
		memcpy(req + n, body, len);
	http_raw(sock, req, (size_t)n + len, out);
	free(req);
}

static void admin(const char *method, const char *url, const char *body, struct resp *out)
{
	http_do(srv.admin, method, url, body, body ? strlen(body) : 0, out);
}

static void workload(const char *method, const char *url, const char *body, struct resp *out)
{
	http_do(srv.workload, method, url, body, body ? strlen(body) : 0, out);
}

/* Asserts status and a JSON {"error": ...} that contains want. */
static void assert_error(const struct resp *r, int status, const char *want)
{
	ck_assert_msg(r->status == status, "status %d, want %d: %s", r->status, status, r->body);
	ck_assert_msg(r->json && json_is_object(r->json), "not JSON: %s", r->body);
	const char *e = json_string_value(json_object_get(r->json, "error"));
	ck_assert_msg(e != NULL, "no error: %s", r->body);
	ck_assert_msg(strstr(e, want) != NULL, "error \"%s\" lacks \"%s\"", e, want);
}

static void expect_error(bool adm, const char *method, const char *url, const char *body,
                         int status, const char *want)
{
	struct resp r;
	if (adm)
		admin(method, url, body, &r);
	else
		workload(method, url, body, &r);
	assert_error(&r, status, want);
	resp_clear(&r);
}

/* What is stored, as the API shows it: secrets, grants and the audit chain (less the records
 * of the listings this function asks for itself). */
static char *stored_state(void)
{
	struct resp a, b, c;
	admin("GET", "/v1/audit?limit=100000", NULL, &c); /* not audited */
	admin("GET", "/v1/secrets", NULL, &a);
	admin("GET", "/v1/grants", NULL, &b);
	ck_assert_int_eq(a.status, 200);
	ck_assert_int_eq(b.status, 200);
	ck_assert_int_eq(c.status, 200);
	json_t *recs = json_object_get(c.json, "records"), *rec;
	json_t *kept = json_array();
	size_t i;
	json_array_foreach(recs, i, rec)
	{
		const char *act = json_string_value(json_object_get(rec, "action"));
		if (strcmp(act, "list") != 0 && strcmp(act, "grants") != 0)
			json_array_append(kept, rec);
	}
	char *t = json_dumps(kept, JSON_COMPACT);
	json_decref(kept);
	size_t len = strlen(a.body) + strlen(b.body) + strlen(t) + 1;
	char *s = malloc(len);
	ck_assert_ptr_nonnull(s);
	snprintf(s, len, "%s%s%s", a.body, b.body, t);
	free(t);
	resp_clear(&a);
	resp_clear(&b);
	resp_clear(&c);
	return s;
}

/* The number of audit records. */
static size_t audit_count(void)
{
	struct resp c;
	admin("GET", "/v1/audit?limit=100000", NULL, &c);
	ck_assert_int_eq(c.status, 200);
	size_t n = json_array_size(json_object_get(c.json, "records"));
	resp_clear(&c);
	return n;
}

/* ---- tests ---- */

START_TEST(test_healthz)
{
	struct resp r;
	admin("GET", "/healthz", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok");
	ck_assert_ptr_nonnull(strstr(r.head, "Cache-Control: no-store"));
	resp_clear(&r);
	workload("GET", "/healthz", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok");
	resp_clear(&r);
}
END_TEST

START_TEST(test_unknown_route_and_method)
{
	expect_error(true, "GET", "/v1/nope", NULL, 404, "no route for GET /v1/nope");
	expect_error(false, "GET", "/v1/nope", NULL, 404, "no route for GET /v1/nope");
	/* A known path with another method. */
	expect_error(true, "POST", "/v1/secrets", "{}", 404, "no route for POST /v1/secrets");
	expect_error(true, "PATCH", "/v1/secrets/a", "x", 404, "no route for PATCH /v1/secrets/a");
	expect_error(true, "GET", "/v1/keys/rotate", NULL, 404, "no route for GET /v1/keys/rotate");
	expect_error(false, "POST", "/v1/self", "{}", 404, "no route for POST /v1/self");
	expect_error(false, "GET", "/v1/self/mount", NULL, 404, "no route for GET /v1/self/mount");
	/* A prefix route needs a non-empty tail. */
	expect_error(true, "PUT", "/v1/secrets/", "x", 404, "no route for PUT /v1/secrets/");
	expect_error(true, "DELETE", "/v1/containers/", NULL, 404, "no route for");
	/* Each socket serves its own table only. */
	expect_error(false, "GET", "/v1/secrets", NULL, 404, "no route for GET /v1/secrets");
	expect_error(false, "PUT", "/v1/secrets/a", "x", 404, "no route for PUT /v1/secrets/a");
	expect_error(false, "GET", "/metrics", NULL, 404, "no route for GET /metrics");
	expect_error(true, "GET", "/v1/self", NULL, 404, "no route for GET /v1/self");
	ck_assert_uint_eq(srv.met.admin_errors, 7);
	ck_assert_uint_eq(srv.met.workload_errors, 6);
}
END_TEST

START_TEST(test_bad_json)
{
	char *before = stored_state();
	expect_error(true, "POST", "/v1/grants", "{", 400, "request body must be a JSON object: ");
	expect_error(true, "POST", "/v1/grants", "[1]", 400, "request body must be a JSON object");
	expect_error(true, "POST", "/v1/grants", "", 400, "request body must be a JSON object");
	expect_error(true, "POST", "/v1/grants", "{\"secret\":\"a\",\"secret\":\"b\"}", 400,
	             "request body must be a JSON object: duplicate object key");
	expect_error(true, "POST", "/v1/grants/revoke", "nope", 400,
	             "request body must be a JSON object");
	expect_error(true, "POST", "/v1/containers", "{\"id\":", 400,
	             "request body must be a JSON object");
	expect_error(true, "POST", "/v1/rotate/a", "\"generate\"", 400,
	             "request body must be a JSON object");
	expect_error(false, "POST", "/v1/self/mount", "{]", 400,
	             "request body must be a JSON object");
	char *after = stored_state();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}
END_TEST

START_TEST(test_bad_names)
{
	char *before = stored_state();
	expect_error(true, "PUT", "/v1/secrets/bad%20name", "v", 400, "invalid secret name: ");
	expect_error(true, "PUT", "/v1/secrets/a/../b", "v", 400, "invalid secret name: ");
	expect_error(true, "PUT", "/v1/secrets/.version", "v", 400,
	             "invalid secret name: the first segment .version is reserved");
	expect_error(true, "PUT", "/v1/secrets/db.previous", "v", 400,
	             "invalid secret name: names ending in .previous are reserved");
	expect_error(true, "PUT", "/v1/secrets/a%00b", "v", 400,
	             "the request URL holds a NUL byte (%00)");
	expect_error(true, "GET", "/v1/secrets/bad%20name", NULL, 400, "invalid secret name: ");
	expect_error(true, "DELETE", "/v1/secrets/bad%20name", NULL, 400, "invalid secret name: ");
	expect_error(true, "GET", "/v1/values/bad%20name", NULL, 400, "invalid secret name: ");
	expect_error(true, "POST", "/v1/rollback/bad%20name?version=1", NULL, 400,
	             "invalid secret name: ");
	expect_error(true, "POST", "/v1/rotate/bad%20name", "{\"generate\":true}", 400,
	             "invalid secret name: ");
	expect_error(true, "POST", "/v1/grants", "{\"secret\":\"a b\",\"selector\":\"name:web\"}",
	             400, "invalid secret name or pattern: ");
	expect_error(true, "POST", "/v1/grants", "{\"selector\":\"name:web\"}", 400,
	             "invalid secret name or pattern: missing \"secret\"");
	expect_error(true, "POST", "/v1/grants", "{\"secret\":\"a\"}", 400,
	             "invalid selector: missing \"selector\"");
	expect_error(true, "POST", "/v1/grants", "{\"secret\":\"a\",\"selector\":\"x=\"}", 400,
	             "invalid selector: ");
	expect_error(true, "POST", "/v1/grants",
	             "{\"secret\":\"a\",\"selector\":\"name:web\",\"path\":\"x.previous\"}", 400,
	             "invalid path: names ending in .previous are reserved");
	expect_error(true, "POST", "/v1/grants",
	             "{\"secret\":\"a\",\"selector\":\"name:web\",\"path\":7}", 400,
	             "invalid path: must be a string");
	char *after = stored_state();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	/* The workload socket does not tell a bad name from a missing or ungranted one (and audits
	 * the denied read, without the name). */
	size_t records = audit_count();
	expect_error(false, "GET", "/v1/self/secrets/bad%20name", NULL, 404, "no such secret");
	ck_assert_uint_eq(audit_count(), records + 1);
}
END_TEST

START_TEST(test_bad_arguments)
{
	char *before = stored_state();
	size_t records = audit_count();
	expect_error(true, "PUT", "/v1/secrets/a?keep=x", "v", 400,
	             "keep must be an integer from 1 to 1000");
	expect_error(true, "PUT", "/v1/secrets/a?keep=1001", "v", 400,
	             "keep must be an integer from 1 to 1000");
	expect_error(true, "PUT", "/v1/secrets/a?ttl=-1", "v", 400,
	             "ttl must be a duration (3600, 90s, 15m, 1h30m, 7d) of 1 to");
	expect_error(true, "PUT", "/v1/secrets/a?allow_empty=yes", "v", 400,
	             "allow_empty must be 1 or 0");
	expect_error(true, "PUT", "/v1/secrets/a?ttl=5&keep_expiry=1", "v", 400,
	             "give ttl (a new expiry) or keep_expiry, not both");
	expect_error(true, "PUT", "/v1/secrets/a", "", 400, "refusing to store an empty value");
	expect_error(true, "GET", "/v1/values/a?version=0", NULL, 400,
	             "version must be an integer from 1");
	expect_error(true, "POST", "/v1/rollback/a", NULL, 400, "version is required");
	expect_error(true, "POST", "/v1/rollback/a?version=1x", NULL, 400,
	             "version must be an integer from 1");
	expect_error(true, "POST", "/v1/grants",
	             "{\"secret\":\"a\",\"selector\":\"name:web\",\"mode\":\"0400\"}", 400,
	             "mode must be an integer from 0 to 511");
	expect_error(true, "POST", "/v1/grants",
	             "{\"secret\":\"a\",\"selector\":\"name:web\",\"uid\":-2}", 400,
	             "uid must be an integer from -1 to 4294967294");
	expect_error(true, "POST", "/v1/grants/revoke", "{\"secret\":\"a\"}", 400,
	             "\"secret\" and \"selector\" are required");
	expect_error(true, "POST", "/v1/containers", "{}", 400, "\"id\" is required");
	expect_error(true, "POST", "/v1/containers", "{\"id\":\"c\",\"labels\":[]}", 400,
	             "labels must be an object of at most");
	expect_error(true, "POST", "/v1/containers", "{\"id\":\"c\",\"labels\":{\"a\":1}}", 400,
	             "labels must be an object of at most");
	expect_error(true, "POST", "/v1/containers", "{\"id\":\"c\",\"pid\":0}", 400,
	             "pid must be an integer from 1 to 4194304");
	expect_error(true, "POST", "/v1/rotate/a", "{}", 400,
	             "give generate (a new random value) or every (a schedule)");
	expect_error(true, "POST", "/v1/rotate/a", "{\"generate\":true,\"charset\":\"nope\"}", 400,
	             "charset must be one of alnum, hex, base64, ascii");
	expect_error(true, "POST", "/v1/rotate/a", "{\"generate\":true,\"length\":0}", 400,
	             "length must be an integer from 1 to");
	expect_error(true, "POST", "/v1/rotate/a", "{\"generate\":true,\"exec\":\"\"}", 400,
	             "exec must be a command of 1 to 4096 bytes");
	expect_error(true, "POST", "/v1/rotate/a", "{\"generate\":true,\"exec\":\"x\"}", 400,
	             "exec is only for scheduled rotations (every)");
	expect_error(true, "POST", "/v1/rotate/a", "{\"every\":60,\"print\":true}", 400,
	             "print cannot be combined with every");
	expect_error(true, "POST", "/v1/rotate/a", "{\"generate\":true,\"keep_expiry\":1}", 400,
	             "keep_expiry must be true or false");
	expect_error(true, "GET", "/v1/audit?since=yesterday", NULL, 400,
	             "since must be a sequence number");
	expect_error(true, "GET", "/v1/audit?limit=0", NULL, 400,
	             "limit must be an integer from 1 to 100000");
	/* Refused before anything was looked up: no change, and no audit record either. */
	ck_assert_uint_eq(audit_count(), records);
	char *after = stored_state();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}
END_TEST

START_TEST(test_body_limits)
{
	/* A value may be up to max_value bytes; a JSON body up to SECRETD_JSON_BODY_MAX. */
	size_t big = SECRETD_JSON_BODY_MAX + 1000;
	ck_assert_uint_lt(big, T_MAX_VALUE);
	char *v = malloc(big);
	ck_assert_ptr_nonnull(v);
	memset(v, 'x', big);
	struct resp r;
	http_do(srv.admin, "PUT", "/v1/secrets/big", v, big, &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "version")), 1);
	resp_clear(&r);
	http_do(srv.admin, "GET", "/v1/values/big", NULL, 0, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.len, big);
	ck_assert_int_eq(memcmp(r.body, v, big), 0);
	resp_clear(&r);
	free(v);

	char *before = stored_state();
	/* Refused from the headers alone (the body is never sent). */
	char req[512];
	const struct {
		const char *sock, *line;
		size_t len, limit;
	} cases[] = {
	    {srv.admin, "PUT /v1/secrets/big", T_MAX_VALUE + 1, T_MAX_VALUE},
	    {srv.admin, "POST /v1/grants", SECRETD_JSON_BODY_MAX + 1, SECRETD_JSON_BODY_MAX},
	    {srv.admin, "POST /v1/containers", big, SECRETD_JSON_BODY_MAX},
	    {srv.admin, "POST /v1/rotate/big", big, SECRETD_JSON_BODY_MAX},
	    {srv.admin, "GET /v1/secrets", big, SECRETD_JSON_BODY_MAX},
	    {srv.admin, "POST /v1/nope", big, SECRETD_JSON_BODY_MAX},
	    {srv.workload, "POST /v1/self/mount", big, SECRETD_JSON_BODY_MAX},
	    {srv.workload, "PUT /v1/secrets/big", big, SECRETD_JSON_BODY_MAX},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = snprintf(req, sizeof(req),
		                 "%s HTTP/1.1\r\nHost: l\r\nConnection: close\r\n"
		                 "Content-Length: %zu\r\n\r\n",
		                 cases[i].line, cases[i].len);
		http_raw(cases[i].sock, req, (size_t)n, &r);
		char want[128];
		snprintf(want, sizeof(want), "request body larger than the limit of %zu bytes",
		         cases[i].limit);
		assert_error(&r, 413, want);
		resp_clear(&r);
	}
	/* A body just at the JSON limit is read (and then judged as JSON). */
	char *j = malloc(SECRETD_JSON_BODY_MAX);
	ck_assert_ptr_nonnull(j);
	memset(j, ' ', SECRETD_JSON_BODY_MAX);
	j[0] = '{';
	j[SECRETD_JSON_BODY_MAX - 1] = '}';
	http_do(srv.admin, "POST", "/v1/grants/revoke", j, SECRETD_JSON_BODY_MAX, &r);
	assert_error(&r, 400, "\"secret\" and \"selector\" are required");
	resp_clear(&r);
	free(j);
	char *after = stored_state();
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
}
END_TEST

START_TEST(test_framing)
{
	static const char te[] = "POST /v1/grants HTTP/1.1\r\nHost: l\r\nConnection: close\r\n"
	                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
	static const char both[] = "POST /v1/grants HTTP/1.1\r\nHost: l\r\nConnection: close\r\n"
	                           "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}";
	static const char badcl[] = "POST /v1/grants HTTP/1.1\r\nHost: l\r\nConnection: close\r\n"
	                            "Content-Length: +2\r\n\r\n{}";
	struct resp r;
	http_raw(srv.admin, te, sizeof(te) - 1, &r);
	assert_error(&r, 411, "send the body with a Content-Length");
	resp_clear(&r);
	http_raw(srv.admin, both, sizeof(both) - 1, &r);
	assert_error(&r, 400, "both Content-Length and Transfer-Encoding");
	resp_clear(&r);
	http_raw(srv.admin, badcl, sizeof(badcl) - 1, &r);
	ck_assert_int_eq(r.status, 400);
	resp_clear(&r);
}
END_TEST

START_TEST(test_admin_roundtrip)
{
	struct resp r;
	admin("PUT", "/v1/secrets/db/pw?keep=2", "s3cret", &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "name")), "db/pw");
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "version")), 1);
	resp_clear(&r);
	admin("PUT", "/v1/secrets/db/pw", "s3cret2", &r);
	ck_assert_int_eq(r.status, 201);
	resp_clear(&r);
	admin("GET", "/v1/values/db/pw?version=1", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "s3cret");
	ck_assert_ptr_nonnull(strstr(r.head, "X-Secret-Version: 1"));
	ck_assert_ptr_nonnull(strstr(r.head, "application/octet-stream"));
	resp_clear(&r);
	admin("GET", "/v1/secrets/db/pw", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "current")), 2);
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "versions")), 2);
	resp_clear(&r);
	/* one wording for what is not there: "SUBJECT: no such KIND" */
	expect_error(true, "GET", "/v1/values/db/pw?version=9", NULL, 404,
	             "db/pw: no such version 9");
	expect_error(true, "GET", "/v1/values/none?version=9", NULL, 404, "none: no such secret");
	expect_error(true, "GET", "/v1/values/none", NULL, 404, "none: no such secret");
	expect_error(true, "GET", "/v1/secrets/none", NULL, 404, "none: no such secret");
	expect_error(true, "POST", "/v1/rollback/db/pw?version=7", NULL, 404,
	             "db/pw: no such version 7");
	expect_error(true, "POST", "/v1/rollback/none?version=7", NULL, 404,
	             "none: no such secret");
	admin("POST", "/v1/rollback/db/pw?version=1", NULL, &r);
	ck_assert_int_eq(r.status, 201);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "version")), 3);
	resp_clear(&r);

	admin("POST", "/v1/grants", "{\"secret\":\"db/*\",\"selector\":\"name:web\",\"mode\":288}",
	      &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	ck_assert_ptr_null(json_object_get(r.json, "warning")); /* db/pw matches */
	resp_clear(&r);
	/* a grant that names no secret (yet) is stored, with a warning */
	admin("POST", "/v1/grants", "{\"secret\":\"later/*\",\"selector\":\"name:web\"}", &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "warning")),
	                 "no secret matches later/* yet: the grant is stored and applies once one "
	                 "is put");
	ck_assert_ptr_null(json_object_get(r.json, "unapplied"));
	resp_clear(&r);
	admin("POST", "/v1/grants", "{\"secret\":\"later\",\"selector\":\"name:web\"}", &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "warning")),
	                 "no secret is named later yet: the grant is stored and applies once it is "
	                 "put");
	resp_clear(&r);
	admin("POST", "/v1/grants/revoke", "{\"secret\":\"later/*\",\"selector\":\"name:web\"}",
	      &r);
	ck_assert_int_eq(r.status, 200);
	resp_clear(&r);
	admin("POST", "/v1/grants/revoke", "{\"secret\":\"later\",\"selector\":\"name:web\"}", &r);
	ck_assert_int_eq(r.status, 200);
	resp_clear(&r);
	expect_error(true, "POST", "/v1/grants", "{\"secret\":\"db/*\",\"selector\":\"name:web\"}",
	             409, "db/* is already granted to name:web (use replace)");
	admin("GET", "/v1/grants", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	json_t *g = json_array_get(json_object_get(r.json, "grants"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(g, "mode")), "0440");
	resp_clear(&r);
	/* A host process is granted nothing: selectors match containers. */
	workload("GET", "/v1/self/secrets", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "secrets")), 0);
	resp_clear(&r);
	expect_error(true, "POST", "/v1/grants/revoke",
	             "{\"secret\":\"x\",\"selector\":\"name:web\"}", 404,
	             "x to name:web: no such grant");
	admin("POST", "/v1/grants/revoke", "{\"secret\":\"db/*\",\"selector\":\"name:web\"}", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(json_is_true(json_object_get(r.json, "revoked")));
	resp_clear(&r);

	admin("POST", "/v1/rotate/db/pw", "{\"generate\":true,\"length\":12,\"charset\":\"hex\"}",
	      &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "length")), 12);
	resp_clear(&r);
	admin("POST", "/v1/rotate/db/pw", "{\"generate\":true,\"length\":5,\"print\":true}", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.len, 5);
	resp_clear(&r);
	expect_error(true, "POST", "/v1/rotate/nope", "{\"every\":60}", 404,
	             "nope: no such secret (put or rotate it first)");

	admin("DELETE", "/v1/secrets/db/pw", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(json_is_true(json_object_get(r.json, "deleted")));
	resp_clear(&r);
	expect_error(true, "DELETE", "/v1/secrets/db/pw", NULL, 404, "db/pw: no such secret");
	expect_error(true, "DELETE", "/v1/containers/nope", NULL, 404, "nope: no such container");
	admin("GET", "/v1/containers", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "containers")), 0);
	resp_clear(&r);
	admin("GET", "/metrics", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.head, "text/plain"));
	/* The secret type's buffers are counted: at least the master key's are alive. */
	const char *pb = strstr(r.body, "\nsecretd_plaintext_buffers ");
	ck_assert_ptr_nonnull(pb);
	ck_assert_int_gt(atoi(pb + strlen("\nsecretd_plaintext_buffers ")), 0);
	ck_assert_ptr_nonnull(strstr(r.body, "\nsecretd_plaintext_regions{kind=\"slab\"} "));
	resp_clear(&r);
	admin("POST", "/v1/audit/verify", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(json_is_true(json_object_get(r.json, "ok")));
	resp_clear(&r);

	/* Every change above went to the store: check it directly, the loop stopped. */
	http_stop();
	uint64_t n = 99;
	ck_assert_int_eq(store_count(srv.s, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

/* Templates over the admin API: put (refused with where and why), list, versions, body,
 * grant as "tmpl:NAME", delete. */
/* The daemon's times (docs/cli.md, JSON shape): every time key KEY keeps its unix seconds (the
 * type /v1 clients rely on) and gains KEY_unix (the same number, the name that means seconds in
 * every answer, the daemon's and secretctl's) and KEY_rfc3339 (the RFC 3339 UTC string, null for
 * 0 = none); a duration "every" gains every_seconds and every_duration ("1h30m"). Strings (a
 * label's value) are left alone. */
static void expect_time(json_t *o, const char *key)
{
	char k[64], want[TIMESPEC_FORMAT_LEN];
	json_t *v = json_object_get(o, key);
	ck_assert_msg(json_is_integer(v), "%s is not an integer", key);
	json_int_t t = json_integer_value(v);
	snprintf(k, sizeof(k), "%s_unix", key);
	ck_assert_msg(json_integer_value(json_object_get(o, k)) == t &&
	                  json_is_integer(json_object_get(o, k)),
	              "%s", k);
	snprintf(k, sizeof(k), "%s_rfc3339", key);
	if (t == 0)
		ck_assert_msg(json_is_null(json_object_get(o, k)), "%s not null", k);
	else
		ck_assert_str_eq(json_string_value(json_object_get(o, k)),
		                 timespec_format(t, want, sizeof(want)));
}

START_TEST(test_times)
{
	struct resp r;
	admin("PUT", "/v1/secrets/t/a?ttl=1h&labels=%7B%22created%22%3A%22x%22%7D", "v", &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	ck_assert(json_integer_value(json_object_get(r.json, "expires")) > 0);
	expect_time(r.json, "expires");
	json_t *lab = json_object_get(r.json, "labels");
	ck_assert_uint_eq(json_object_size(lab), 1); /* a label's string is no time */
	ck_assert_str_eq(json_string_value(json_object_get(lab, "created")), "x");
	resp_clear(&r);
	admin("PUT", "/v1/secrets/t/b", "v", &r);
	expect_time(r.json, "expires"); /* 0: expires_rfc3339 null */
	resp_clear(&r);
	admin("GET", "/v1/secrets", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	json_t *row = json_array_get(json_object_get(r.json, "secrets"), 0);
	expect_time(row, "created");
	expect_time(row, "updated");
	expect_time(row, "expires");
	resp_clear(&r);
	admin("GET", "/v1/secrets/t/a", NULL, &r);
	expect_time(r.json, "expires");
	expect_time(json_array_get(json_object_get(r.json, "versions"), 0), "created");
	resp_clear(&r);
	admin("POST", "/v1/rotate/t/a", "{\"every\":\"1h30m\"}", &r);
	ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
	expect_time(r.json, "next");
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "every")), 5400);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "every_seconds")), 5400);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "every_duration")), "1h30m");
	resp_clear(&r);
	admin("GET", "/v1/schedules", NULL, &r);
	row = json_array_get(json_object_get(r.json, "schedules"), 0);
	expect_time(row, "next");
	expect_time(row, "expires");
	ck_assert_str_eq(json_string_value(json_object_get(row, "every_duration")), "1h30m");
	resp_clear(&r);
	admin("GET", "/v1/audit", NULL, &r);
	expect_time(json_array_get(json_object_get(r.json, "records"), 0), "time");
	resp_clear(&r);
	admin("GET", "/v1/keys", NULL, &r);
	expect_time(json_array_get(json_object_get(r.json, "generations"), 0), "created");
	resp_clear(&r);
}
END_TEST

START_TEST(test_templates)
{
	struct resp r;
	admin("PUT", "/v1/secrets/db/pw", "pw", &r);
	ck_assert_int_eq(r.status, 201);
	resp_clear(&r);
	admin("PUT", "/v1/templates/db/url", "x={{ secret \"db/pw\" }}\ny={{ secret \"db/nope\" }}",
	      &r);
	assert_error(&r, 400,
	             "template db/url refused: line 2, column 13: secret \"db/nope\" does "
	             "not exist");
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "line")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "column")), 13);
	resp_clear(&r);
	expect_error(true, "PUT", "/v1/templates/t", "{{ secret \"db/pw\" | upper }}", 400,
	             "line 1, column 21: unknown filter \"upper\"");
	expect_error(true, "PUT", "/v1/templates/.version", "x", 400, "invalid template name");
	admin("PUT", "/v1/templates/db/url", "postgres://u:{{ secret \"db/pw\" | urlquery }}@h/d",
	      &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "version")), 1);
	resp_clear(&r);
	admin("PUT", "/v1/templates/db/url", "v2 {{ version \"db/pw\" }}", &r);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "version")), 2);
	resp_clear(&r);
	admin("GET", "/v1/templates", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	json_t *t = json_array_get(json_object_get(r.json, "templates"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(t, "name")), "db/url");
	ck_assert_int_eq(json_integer_value(json_object_get(t, "current")), 2);
	resp_clear(&r);
	admin("GET", "/v1/templates/db/url", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "versions")), 2);
	resp_clear(&r);
	admin("GET", "/v1/templates/db/url?body=1&version=1", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "postgres://u:{{ secret \"db/pw\" | urlquery }}@h/d");
	resp_clear(&r);
	expect_error(true, "GET", "/v1/templates/db/url?version=1", NULL, 400,
	             "version needs body=1");
	expect_error(true, "GET", "/v1/templates/none", NULL, 404, "none: no such template");
	admin("POST", "/v1/grants", "{\"secret\":\"tmpl:db/url\",\"selector\":\"name:web\"}", &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	/* the template exists: no "no secret is named tmpl:..." warning */
	ck_assert_msg(!json_object_get(r.json, "warning"), "%s", r.body);
	resp_clear(&r);
	admin("POST", "/v1/grants", "{\"secret\":\"tmpl:db/later\",\"selector\":\"name:web\"}", &r);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "no template is named db/later yet"));
	resp_clear(&r);
	admin("POST", "/v1/grants/revoke",
	      "{\"secret\":\"tmpl:db/later\",\"selector\":\"name:web\"}", &r);
	ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
	resp_clear(&r);
	expect_error(true, "POST", "/v1/grants",
	             "{\"secret\":\"tmpl:db/url\",\"selector\":\"name:web\",\"previous\":true}",
	             400, "a template grant has no .previous file");
	admin("DELETE", "/v1/templates/db/url", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	resp_clear(&r);
	admin("GET", "/v1/grants", NULL, &r);
	ck_assert_uint_eq(json_array_size(json_object_get(r.json, "grants")), 0);
	resp_clear(&r);
	expect_error(true, "DELETE", "/v1/templates/db/url", NULL, 404, "db/url: no such template");
}
END_TEST

START_TEST(test_workload_host_process)
{
	struct resp r;
	workload("GET", "/v1/self", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(json_is_false(json_object_get(r.json, "container")));
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "pid")), getpid());
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "uid")), geteuid());
	resp_clear(&r);
	/* Existing but not granted: the same answer as missing. */
	admin("PUT", "/v1/secrets/app/key", "v", &r);
	ck_assert_int_eq(r.status, 201);
	resp_clear(&r);
	expect_error(false, "GET", "/v1/self/secrets/app/key", NULL, 404, "no such secret");
	expect_error(false, "GET", "/v1/self/secrets/nope", NULL, 404, "no such secret");
	expect_error(false, "POST", "/v1/self/mount", NULL, 403,
	             "only a process inside a container can ask for a mount");
	expect_error(false, "POST", "/v1/self/mount", "{\"path\":\"/x\"}", 403,
	             "only a process inside a container can ask for a mount");
	/* Every workload call but healthz is audited. */
	admin("GET", "/v1/audit?limit=100000", NULL, &r);
	json_t *recs = json_object_get(r.json, "records");
	size_t reads = 0, mounted = 0, whoami = 0;
	for (size_t i = 0; i < json_array_size(recs); i++) {
		const char *act =
		    json_string_value(json_object_get(json_array_get(recs, i), "action"));
		reads += strcmp(act, "read") == 0;
		mounted += strcmp(act, "mount") == 0;
		whoami += strcmp(act, "whoami") == 0;
	}
	ck_assert_uint_eq(reads, 2);
	ck_assert_uint_eq(mounted, 2);
	ck_assert_uint_eq(whoami, 1);
	resp_clear(&r);
}
END_TEST

/* The transport serves only what it is given: each socket's table, made for that socket. */
START_TEST(test_start_needs_tables)
{
	char run[160];
	snprintf(run, sizeof(run), "%s/run2", tmpdir);
	ck_assert_int_eq(mkdir(run, 0700), 0);
	struct api_config ac = {.runtime_dir = run,
	                        .admin_routes = &api_workload_routes,
	                        .workload_routes = &api_admin_routes};
	api *a = NULL;
	ck_assert_int_eq(api_start(&a, srv.l, srv.s, srv.m, &srv.met, &ac), -EINVAL);
	ac.admin_routes = &api_admin_routes;
	ck_assert_int_eq(api_start(&a, srv.l, srv.s, srv.m, &srv.met, &ac), -EINVAL);
	ac.workload_routes = NULL;
	ck_assert_int_eq(api_start(&a, srv.l, srv.s, srv.m, &srv.met, &ac), -EINVAL);
	ck_assert_ptr_null(a);
	struct stat st;
	ck_assert_int_eq(stat(run, &st), 0);
	char sock[240];
	snprintf(sock, sizeof(sock), "%s/%s", run, SECRETD_ADMIN_SOCK);
	ck_assert_int_eq(lstat(sock, &st), -1); /* nothing was bound */
}
END_TEST

int unit_setup(void)
{
	base_setup();
	return 0;
}

void unit_teardown(void)
{
	base_teardown();
}

Suite *unit_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("routes");
	tcase_add_checked_fixture(tc, http_setup, http_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_healthz);
	tcase_add_test(tc, test_unknown_route_and_method);
	tcase_add_test(tc, test_bad_json);
	tcase_add_test(tc, test_bad_names);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_body_limits);
	tcase_add_test(tc, test_framing);
	tcase_add_test(tc, test_admin_roundtrip);
	tcase_add_test(tc, test_templates);
	tcase_add_test(tc, test_times);
	tcase_add_test(tc, test_workload_host_process);
	tcase_add_test(tc, test_start_needs_tables);
	suite_add_tcase(s, tc);
	return s;
}
