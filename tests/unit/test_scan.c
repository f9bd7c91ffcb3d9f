/* Tests of client/scan: the judgement, masking, file kinds, the fixtures under
 * tests/fixtures/env (true positives and look-alikes per kind of file), /proc grouping, and
 * that no output string ever holds a whole value. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "client/scan.h"
#include "tests/unit/runner.h"

static char fixtures[PATH_MAX];

/* tests/fixtures/env: $ENV_FIXTURES, else found from __FILE__ (relative to the build root, the
 * directory three levels above this executable). */
static void find_fixtures(void)
{
	const char *e = getenv("ENV_FIXTURES");
	if (e) {
		snprintf(fixtures, sizeof(fixtures), "%s", e);
		return;
	}
	char src[PATH_MAX];
	if (__FILE__[0] == '/') {
		snprintf(src, sizeof(src), "%s", __FILE__);
	} else {
		char exe[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0)
			n = 0;
		exe[n] = '\0';
		char *root = dirname(dirname(dirname(exe)));
		snprintf(src, sizeof(src), "%s/%s", root, __FILE__);
	}
	snprintf(fixtures, sizeof(fixtures), "%s/../fixtures/env", dirname(src));
}

static bool judged(const char *name, const char *val, const char **kind)
{
	struct scan_verdict v = {0};
	size_t vl = strlen(val);
	char *copy = malloc(vl ? vl : 1); /* exactly sized: ASan catches an overread */
	memcpy(copy, val, vl);
	bool r = scan_judge(name, strlen(name), copy, vl, &v);
	free(copy);
	if (r) {
		ck_assert_ptr_nonnull(v.reason);
		ck_assert_ptr_nonnull(v.kind);
	}
	if (kind)
		*kind = r ? v.kind : NULL;
	return r;
}

START_TEST(test_judge_positive)
{
	static const struct {
		const char *name, *val, *kind;
	} pos[] = {
	    {"DB_PASSWORD", "hunter2", "name"},
	    {"MYSQL_ROOT_PASSWD", "rootpw", "name"},
	    {"GPG_PASSPHRASE", "correct horse", "name"},
	    {"CLIENT_SECRET", "s3cr3t", "name"},
	    {"GITLAB_TOKEN", "glpat-123456", "name"},
	    {"API_KEY", "k-123", "name"},
	    {"STRIPEAPIKEY", "abc", "name"},
	    {"JWT_PRIVATE_KEY", "abc", "name"},
	    {"AWS_SECRET_ACCESS_KEY", "abc/def", "name"},
	    {"GOOGLE_CREDENTIALS", "{\"type\":\"x\"}", "name"},
	    {"BASIC_AUTH", "user:pw", "name"},
	    {"REDIS_PASS", "pw", "name"},
	    {"DB_PWD", "pw", "name"},
	    {"SECRET", "1234567", "name"},
	    {"ANYTHING", "AKIAQWERTYUIOPASDFGH", "format"},
	    {"X", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "format"},
	    {"X", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "format"},
	    {"X", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
	     "format"},
	    {"X", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJl", "format"},
	    {"DATABASE_URL", "postgres://app:pw@db:5432/app", "url"},
	    {"BROKER", "amqp://guest:guest@rabbit/", "url"},
	    {"CONN", "Server=db;User Id=sa;Password=Pa55w0rd;", "url"},
	    {"PGCONN", "host=db user=app password=pw dbname=x", "url"},
	    {"BLOB", "Zx8Qp2Lm9Rt4Vb7Nc1Kd6Hf3Js5Wg0Ya", "entropy"},
	    {"DB_PASSWORD", "${DB_PASSWORD:-hunter2}", "name"},
	    {"PASSWORD_FILE", "hunter2", "name"}, /* _FILE but not a path */
	};
	for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
		const char *kind = NULL;
		if (!judged(pos[i].name, pos[i].val, &kind))
			ck_abort_msg("not flagged: %s", pos[i].name);
		ck_assert_msg(!strcmp(kind, pos[i].kind), "%s: kind %s, want %s", pos[i].name, kind,
		              pos[i].kind);
	}
	/* Slack and Stripe: built at run time so that no token-shaped literal sits in the tree */
	char buf[128];
	snprintf(buf, sizeof(buf), "%s-%s", "xoxb", "1234567890-abcdefghij");
	const char *kind = NULL;
	ck_assert(judged("X", buf, &kind));
	ck_assert_str_eq(kind, "format");
	snprintf(buf, sizeof(buf), "%s_%s_%s", "sk", "live", "abcdefghijklmnop1234");
	ck_assert(judged("X", buf, &kind));
	ck_assert_str_eq(kind, "format");
}
END_TEST

START_TEST(test_judge_negative)
{
	static const struct {
		const char *name, *val;
	} neg[] = {
	    {"DB_PASSWORD", ""},
	    {"DB_PASSWORD", "   "},
	    {"DB_PASSWORD_FILE", "/run/secrets/db"},
	    {"PASSWORD_FILE", "./secrets/pw"},
	    {"DB_PASSWORD", "${DB_PASSWORD}"},
	    {"DB_PASSWORD", "$DB_PASSWORD"},
	    {"DB_PASSWORD", "${DB_PASSWORD:?must be set}"},
	    {"DB_PASSWORD", "${DB_PASSWORD:-}"},
	    {"DB_PASSWORD", "changeme"},
	    {"DB_PASSWORD", "CHANGE-ME"},
	    {"API_KEY", "<your api key>"},
	    {"API_KEY", "xxxxxxxx"},
	    {"API_KEY", "***"},
	    {"MAIL_PASSWORD", "your_password_here"},
	    {"TOKEN", "TODO"},
	    {"TOKEN", "dummy"},
	    {"TOKEN", "example-token"},
	    {"LOG_LEVEL", "debug"},
	    {"PORT", "8080"},
	    {"TOKEN_TTL", "3600"},
	    {"AUTH_ENABLED", "true"},
	    {"PASSWORD_MIN_LENGTH", "12"},
	    {"SECRET_NAME", "db-password"},
	    {"AUTH_URL", "https://auth.example.com/login"},
	    {"DATABASE_URL", "postgres://app@db:5432/app"},
	    {"DATABASE_URL", "postgres://app:${DB_PW}@db/app"},
	    {"AUTHOR", "Jane Doe"},
	    {"PWD", "/home/jane"},
	    {"OLDPWD", "/tmp"},
	    {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"},
	    {"IMAGE", "registry.example.com/team/app:1.2.3"},
	    {"GIT_SHA", "3f786850e387550fdab836ed7e6dc881de23001b"},
	    {"REQUEST_ID", "123e4567-e89b-12d3-a456-426614174000"},
	    {"JAVA_OPTS", "-Xmx512m -Dfile.encoding=UTF-8"},
	    {"SECRETD", "/usr/sbin/secretd"},
	    {"SECRETD_SOCKET", "/run/secretd/admin.sock"},
	    {"TLS_PRIVATE_KEY", "/etc/ssl/private/key.pem"},
	};
	for (size_t i = 0; i < sizeof(neg) / sizeof(neg[0]); i++)
		ck_assert_msg(!judged(neg[i].name, neg[i].val, NULL), "flagged: %s=%s", neg[i].name,
		              neg[i].val);
}
END_TEST

START_TEST(test_mask)
{
	char m[SCAN_MASK_MAX];
	scan_mask("short", 5, m);
	ck_assert_str_eq(m, "********");
	scan_mask("elevenchars", 11, m);
	ck_assert_str_eq(m, "********");
	scan_mask("twelve-chars", 12, m);
	ck_assert_str_eq(m, "tw********rs");
	char big[4096];
	memset(big, 'q', sizeof(big));
	big[0] = 'A';
	big[sizeof(big) - 1] = 'Z';
	scan_mask(big, sizeof(big), m);
	ck_assert_str_eq(m, "Aq********qZ"); /* same width whatever the length */
	scan_mask("\n\x01middle-part\xff\t", 15, m);
	ck_assert_str_eq(m, "??********??");
	scan_mask("", 0, m);
	ck_assert_str_eq(m, "********");
}
END_TEST

START_TEST(test_file_kind)
{
	ck_assert_int_eq(scan_file_kind("Dockerfile"), SCAN_FILE_DOCKERFILE);
	ck_assert_int_eq(scan_file_kind("a/b/Dockerfile.prod"), SCAN_FILE_DOCKERFILE);
	ck_assert_int_eq(scan_file_kind("x/api.dockerfile"), SCAN_FILE_DOCKERFILE);
	ck_assert_int_eq(scan_file_kind("Containerfile"), SCAN_FILE_DOCKERFILE);
	ck_assert_int_eq(scan_file_kind("docker-compose.yml"), SCAN_FILE_COMPOSE);
	ck_assert_int_eq(scan_file_kind("docker-compose.prod.yaml"), SCAN_FILE_COMPOSE);
	ck_assert_int_eq(scan_file_kind("d/compose.yaml"), SCAN_FILE_COMPOSE);
	ck_assert_int_eq(scan_file_kind("compose.override.yml"), SCAN_FILE_COMPOSE);
	ck_assert_int_eq(scan_file_kind(".env"), SCAN_FILE_DOTENV);
	ck_assert_int_eq(scan_file_kind("x/.env.local"), SCAN_FILE_DOTENV);
	ck_assert_int_eq(scan_file_kind("prod.env"), SCAN_FILE_DOTENV);
	ck_assert_int_eq(scan_file_kind("k8s/deploy.yaml"), SCAN_FILE_YAML);
	ck_assert_int_eq(scan_file_kind("values.yml"), SCAN_FILE_YAML);
	ck_assert_int_eq(scan_file_kind("README.md"), SCAN_FILE_NONE);
	ck_assert_int_eq(scan_file_kind("environment.c"), SCAN_FILE_NONE);
}
END_TEST

struct want {
	const char *file; /* suffix */
	unsigned line;
	const char *variable, *kind;
};

/* Every value in the fixtures that must never show in output (flagged or not). */
static const char *const canaries[] = {
    "tokCanary0123456789abcdef",
    "dbpwCanary-Hunter2-xyz",
    "apikeyCanary 0987654321",
    "AKIAQWERTYUIOPASDFGH",
    "notavariableCanary",
    "sharedCanary-4f9a2b7c1d",
    "pgCanary-S3cr3t-Passw0rd",
    "urlCanaryPw99",
    "postgres://app:urlCanaryPw99@db:5432/app",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "envCanary\"Quoted\"Value",
    "MIIEcanaryPEMbody",
    "singleCanary token with # hash",
    "Zx8Qp2Lm9Rt4Vb7Nc1Kd6Hf3Js5Wg0Ya",
    "k8sInitCanary-pw-5521",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlY2FuYXJ5",
    "nodeModulesCanary123",
    "readmeCanary-pw-000",
    "brokenCanary-pw-111",
};

static void no_canary(const char *out)
{
	for (size_t i = 0; i < sizeof(canaries) / sizeof(canaries[0]); i++)
		ck_assert_msg(!strstr(out, canaries[i]), "value '%s' in output: %s", canaries[i],
		              out);
}

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

START_TEST(test_fixtures_project)
{
	static const struct want want[] = {
	    {"project/.env", 2, "APP_SECRET_KEY", "name"},
	    {"project/.env", 3, "PRIVATE_KEY", "format"},
	    {"project/.env", 4, "SESSION_TOKEN", "name"},
	    {"project/.env", 5, "RANDOM_BLOB", "entropy"},
	    {"project/Dockerfile", 3, "BUILD_TOKEN", "name"},
	    {"project/Dockerfile", 7, "DB_PASSWORD", "name"},
	    {"project/Dockerfile", 9, "API_KEY", "name"},
	    {"project/Dockerfile", 10, "AWS_KEY_ID", "format"},
	    {"project/docker-compose.yml", 8, "POSTGRES_PASSWORD", "name"},
	    {"project/docker-compose.yml", 13, "DATABASE_URL", "url"},
	    {"project/docker-compose.yml", 16, "GITHUB_TOKEN", "format"},
	    {"project/docker-compose.yml", 2, "SHARED_SECRET", "name"},
	    {"project/k8s/deployment.yaml", 18, "MIGRATE_DB_PASSWORD", "name"},
	    {"project/k8s/deployment.yaml", 26, "AUTH_TOKEN", "format"},
	};
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/project", fixtures);
	struct scan_report r = {.quiet = true};
	ck_assert_int_eq(scan_path(&r, path), 0);
	scan_report_sort(&r);
	ck_assert(!r.io_error);
	ck_assert_uint_eq(r.warnings, 1); /* broken/values.yaml */
	ck_assert_uint_eq(r.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < r.n; i++) {
		const struct scan_finding *f = &r.f[i];
		ck_assert_msg(ends_with(f->file, want[i].file), "%zu: %s", i, f->file);
		ck_assert_uint_eq(f->line, want[i].line);
		ck_assert_str_eq(f->variable, want[i].variable);
		ck_assert_str_eq(f->kind, want[i].kind);
		char line[1024];
		scan_format(f, line, sizeof(line));
		no_canary(line);
		ck_assert(strstr(line, "********"));
	}
	char line[1024], exp[PATH_MAX + 128];
	snprintf(exp, sizeof(exp), "%s/.env:5: RANDOM_BLOB: high-entropy value: Zx********Ya",
	         path);
	ck_assert_str_eq(scan_format(&r.f[3], line, sizeof(line)), exp);
	snprintf(exp, sizeof(exp),
	         "%s/Dockerfile:7: DB_PASSWORD: name suggests a secret: "
	         "db********yz",
	         path);
	ck_assert_str_eq(scan_format(&r.f[5], line, sizeof(line)), exp);
	json_t *j = scan_report_json(&r);
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(json_array_size(j), r.n);
	json_t *o = json_array_get(j, 0);
	ck_assert_str_eq(json_string_value(json_object_get(o, "variable")), "APP_SECRET_KEY");
	ck_assert_str_eq(json_string_value(json_object_get(o, "kind")), "name");
	ck_assert_str_eq(json_string_value(json_object_get(o, "masked")), "en********ue");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "line")), 2);
	ck_assert_ptr_nonnull(json_object_get(o, "reason"));
	ck_assert_ptr_nonnull(json_object_get(o, "file"));
	char *s = json_dumps(j, 0);
	no_canary(s);
	free(s);
	json_decref(j);
	scan_report_free(&r);
}
END_TEST

START_TEST(test_fixtures_clean)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/clean", fixtures);
	struct scan_report r = {.quiet = true};
	ck_assert_int_eq(scan_path(&r, path), 0);
	for (size_t i = 0; i < r.n; i++)
		ck_abort_msg("clean fixture flagged: %s:%u %s", r.f[i].file, r.f[i].line,
		             r.f[i].variable);
	ck_assert_uint_eq(r.warnings, 0);
	scan_report_free(&r);
}
END_TEST

START_TEST(test_explicit_and_symlinks)
{
	char tmp[] = "/tmp/test_scan.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	char p[PATH_MAX + 64], q[PATH_MAX + 64];
	/* a symlinked file and a symlinked directory below a walked directory: not followed */
	snprintf(p, sizeof(p), "%s/project/.env", fixtures);
	snprintf(q, sizeof(q), "%s/.env", tmp);
	ck_assert_int_eq(symlink(p, q), 0);
	snprintf(p, sizeof(p), "%s/project", fixtures);
	snprintf(q, sizeof(q), "%s/linked", tmp);
	ck_assert_int_eq(symlink(p, q), 0);
	struct scan_report r = {.quiet = true};
	ck_assert_int_eq(scan_path(&r, tmp), 0);
	ck_assert_uint_eq(r.n, 0);
	/* an explicitly named file of unknown kind is read as .env */
	snprintf(q, sizeof(q), "%s/settings.txt", tmp);
	FILE *f = fopen(q, "w");
	fputs("DB_PASSWORD=txtCanary-pw\nLOG_LEVEL=info\n", f);
	fclose(f);
	ck_assert_int_eq(scan_path(&r, q), 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_str_eq(r.f[0].variable, "DB_PASSWORD");
	ck_assert_uint_eq(r.f[0].line, 1);
	/* ...but not while walking */
	scan_report_free(&r);
	ck_assert_int_eq(scan_path(&r, tmp), 0);
	ck_assert_uint_eq(r.n, 0);
	/* a missing path is an I/O error */
	snprintf(q, sizeof(q), "%s/missing", tmp);
	ck_assert_int_eq(scan_path(&r, q), -ENOENT);
	ck_assert(r.io_error);
	scan_report_free(&r);
	snprintf(q, sizeof(q), "rm -rf '%s'", tmp);
	ck_assert_int_eq(system(q), 0);
}
END_TEST

static int count_var(void *ctx, const char *file, unsigned line, const char *name, size_t nlen,
                     const char *val, size_t vlen, bool map_form)
{
	(*(int *)ctx)++;
	return 0;
}

START_TEST(test_compose_service)
{
	static const char y[] = "services:\n"
	                        "  a:\n"
	                        "    environment: {A_PASSWORD: x1}\n"
	                        "  b:\n"
	                        "    environment: [B_PASSWORD=x2, B2=y]\n"
	                        "    build: {args: {C_TOKEN: x3}}\n";
	int n = 0;
	ck_assert_int_eq(
	    scan_buffer(SCAN_FILE_COMPOSE, "c.yml", y, sizeof(y) - 1, NULL, count_var, &n, NULL),
	    0);
	ck_assert_int_eq(n, 4);
	n = 0;
	ck_assert_int_eq(
	    scan_buffer(SCAN_FILE_COMPOSE, "c.yml", y, sizeof(y) - 1, "b", count_var, &n, NULL), 0);
	ck_assert_int_eq(n, 3);
	const char *why = NULL;
	ck_assert_int_eq(
	    scan_buffer(SCAN_FILE_COMPOSE, "c.yml", y, sizeof(y) - 1, "zz", count_var, &n, &why),
	    -ENOENT);
	/* a YAML file with services: is read as compose too */
	n = 0;
	ck_assert_int_eq(
	    scan_buffer(SCAN_FILE_YAML, "x.yml", y, sizeof(y) - 1, NULL, count_var, &n, NULL), 0);
	ck_assert_int_eq(n, 4);
}
END_TEST

START_TEST(test_yaml_hostile)
{
	/* billion laughs: aliases multiply the nodes to visit; the budget stops it */
	char *b = malloc(8192);
	size_t n = (size_t)sprintf(b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 12; i++)
		n += (size_t)sprintf(b + n,
		                     "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, "
		                     "*a%d, *a%d, *a%d]\n",
		                     i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
		                     i - 1, i - 1);
	int cnt = 0;
	const char *why = NULL;
	ck_assert_int_eq(
	    scan_buffer(SCAN_FILE_YAML, "bomb.yaml", b, n, NULL, count_var, &cnt, &why), -EINVAL);
	ck_assert_ptr_nonnull(why);
	free(b);
	/* deep nesting */
	size_t depth = 20000;
	b = malloc(2 * depth + 1);
	memset(b, '[', depth);
	memset(b + depth, ']', depth);
	cnt = 0;
	int r = scan_buffer(SCAN_FILE_YAML, "deep.yaml", b, 2 * depth, NULL, count_var, &cnt, &why);
	ck_assert(r == 0 || r == -EINVAL);
	free(b);
	/* invalid YAML and binary junk */
	static const char junk[] = "a: [\n\x01\xff: {";
	ck_assert_int_eq(scan_buffer(SCAN_FILE_YAML, "j.yaml", junk, sizeof(junk) - 1, NULL,
	                             count_var, &cnt, &why),
	                 -EINVAL);
}
END_TEST

static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void fake_proc(const char *root, int pid, const char *env, size_t elen, const char *cg,
                      const char *comm)
{
	char d[PATH_MAX];
	snprintf(d, sizeof(d), "%s/%d", root, pid);
	ck_assert_int_eq(mkdir(d, 0700), 0);
	if (env)
		write_file(d, "environ", env, elen);
	write_file(d, "cgroup", cg, strlen(cg));
	write_file(d, "comm", comm, strlen(comm));
}

START_TEST(test_proc)
{
	char tmp[] = "/tmp/test_scan_proc.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	static const char env1[] = "PATH=/usr/bin\0POSTGRES_PASSWORD=procCanary-pw-1\0HOME=/\0";
	static const char env2[] = "POSTGRES_PASSWORD=procCanary-pw-1\0";
	static const char env3[] = "A=1\0API_TOKEN=procCanary-tok-3\0";
	const char *id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char cg[256];
	snprintf(cg, sizeof(cg), "0::/system.slice/docker-%s.scope\n", id);
	fake_proc(tmp, 100, env1, sizeof(env1) - 1, cg, "postgres\n");
	fake_proc(tmp, 101, env2, sizeof(env2) - 1, cg, "postgres\n");
	fake_proc(tmp, 102, env3, sizeof(env3) - 1, "0::/user.slice/user-0.slice\n", "app\n");
	fake_proc(tmp, 103, NULL, 0, "0::/x\n", "gone\n"); /* no environ: skipped */
	char junk[PATH_MAX + 16];
	snprintf(junk, sizeof(junk), "%s/self", tmp);
	ck_assert_int_eq(mkdir(junk, 0700), 0);
	struct scan_report r = {.quiet = true};
	ck_assert_int_eq(scan_proc(&r, tmp), 0);
	scan_report_sort(&r);
	ck_assert_uint_eq(r.n, 2);
	/* sorted by cgroup: /system.slice... before /user.slice... */
	ck_assert_str_eq(r.f[0].variable, "POSTGRES_PASSWORD");
	ck_assert_int_eq(r.f[0].pid == 100 || r.f[0].pid == 101, 1);
	ck_assert_uint_eq(r.f[0].also, 1);
	ck_assert_str_eq(r.f[0].container, id);
	ck_assert_str_eq(r.f[0].comm, "postgres");
	ck_assert_str_eq(r.f[1].variable, "API_TOKEN");
	ck_assert_int_eq(r.f[1].pid, 102);
	ck_assert_uint_eq(r.f[1].line, 2);
	ck_assert_ptr_null(r.f[1].container);
	ck_assert_str_eq(r.f[1].cgroup, "/user.slice/user-0.slice");
	char line[1024];
	for (size_t i = 0; i < r.n; i++) {
		scan_format(&r.f[i], line, sizeof(line));
		ck_assert(!strstr(line, "procCanary"));
	}
	scan_format(&r.f[1], line, sizeof(line));
	char exp[PATH_MAX + 128];
	snprintf(exp, sizeof(exp),
	         "%s/102/environ:2: API_TOKEN: name suggests a secret: "
	         "pr********-3 (app)",
	         tmp);
	ck_assert_str_eq(line, exp);
	json_t *j = scan_report_json(&r);
	char *s = json_dumps(j, 0);
	ck_assert(!strstr(s, "procCanary"));
	ck_assert(strstr(s, id));
	free(s);
	json_decref(j);
	scan_report_free(&r);
	snprintf(junk, sizeof(junk), "rm -rf '%s'", tmp);
	ck_assert_int_eq(system(junk), 0);
}
END_TEST

int unit_setup(void)
{
	if (sodium_init() < 0)
		return -1;
	find_fixtures();
	return 0;
}

Suite *unit_suite(void)
{
	Suite *s = suite_create("scan");
	TCase *tc = tcase_create("scan");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_judge_positive);
	tcase_add_test(tc, test_judge_negative);
	tcase_add_test(tc, test_mask);
	tcase_add_test(tc, test_file_kind);
	tcase_add_test(tc, test_fixtures_project);
	tcase_add_test(tc, test_fixtures_clean);
	tcase_add_test(tc, test_explicit_and_symlinks);
	tcase_add_test(tc, test_compose_service);
	tcase_add_test(tc, test_yaml_hostile);
	tcase_add_test(tc, test_proc);
	suite_add_tcase(s, tc);
	return s;
}
