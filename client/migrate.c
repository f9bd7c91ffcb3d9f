/* migrate: secretctl scan / import-env / exec (see migrate.h, docs/migrating-from-env.md). */
#include "client/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "client/client.h"
#include "client/envfile.h"
#include "client/scan.h"
#include "common/limits.h"
#include "common/names.h"
#include "common/secret.h"

#define MIGRATE_ENV_STRING_MAX (128 * 1024) /* kernel MAX_ARG_STRLEN: "NAME=value" + NUL */
#define MIGRATE_EXEC_VARS_MAX 256           /* --env options to one exec */
#define MIGRATE_GRANTS_MAX 32               /* --grant options to one import-env */

/* An option "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past it. */
static bool opt_val(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);
	if (strncmp(argv[*i], name, n) != 0)
		return false;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return true;
	}
	if (argv[*i][n] != '\0')
		return false;
	if (*i + 1 >= argc) {
		*val = NULL;
		return true;
	}
	*val = argv[++*i];
	return true;
}

/* ---- scan ---- */

int migrate_scan_main(int argc, char **argv, const char *socket, bool json)
{
	bool proc = false, opts = true;
	int npaths = 0;
	for (int i = 1; i < argc; i++) {
		if (opts && !strcmp(argv[i], "--proc"))
			proc = true;
		else if (opts && !strcmp(argv[i], "--json"))
			json = true;
		else if (opts && !strcmp(argv[i], "--"))
			opts = false;
		else if (opts && argv[i][0] == '-' && argv[i][1])
			return client_fail(2, "unknown option '%s'; usage: secretctl %s", argv[i],
			                   MIGRATE_SCAN_USAGE);
		else
			npaths++;
	}
	if (!npaths && !proc)
		return client_fail(2, "usage: secretctl %s", MIGRATE_SCAN_USAGE);
	if (sodium_init() < 0)
		return client_fail(2, "libsodium failed to initialise");
	struct scan_report r = {0};
	int rc = 0;
	opts = true;
	for (int i = 1; i < argc && rc != -ENOMEM; i++) {
		if (opts && !strcmp(argv[i], "--"))
			opts = false;
		else if (!opts || argv[i][0] != '-' || !argv[i][1])
			rc = scan_path(&r, argv[i]);
	}
	if (proc && rc != -ENOMEM) {
		rc = scan_proc(&r, "/proc");
		if (rc < 0 && rc != -ENOMEM) {
			fprintf(stderr, "secretctl: scan: /proc: %s\n", strerror(-rc));
			r.io_error = true;
		}
	}
	if (rc == -ENOMEM) {
		scan_report_free(&r);
		return client_fail(2, "scan: out of memory");
	}
	scan_report_sort(&r);
	if (json) {
		json_t *a = scan_report_json(&r);
		char *s = a ? json_dumps(a, JSON_INDENT(2)) : NULL;
		if (!s) {
			json_decref(a);
			scan_report_free(&r);
			return client_fail(2, "scan: out of memory");
		}
		printf("%s\n", s);
		free(s);
		json_decref(a);
	} else {
		const char *group = NULL;
		char line[8192];
		for (size_t i = 0; i < r.n; i++) {
			const struct scan_finding *f = &r.f[i];
			if (f->pid && (!group || strcmp(group, f->cgroup))) {
				group = f->cgroup;
				if (f->container)
					printf("# container %s (cgroup %s)\n", f->container,
					       f->cgroup);
				else
					printf("# cgroup %s\n", f->cgroup);
			}
			printf("%s\n", scan_format(f, line, sizeof(line)));
		}
		if (r.n)
			fprintf(stderr, "secretctl: scan: %zu likely secret%s found\n", r.n,
			        r.n == 1 ? "" : "s");
	}
	int code = r.io_error ? 2 : r.n ? 1 : 0;
	scan_report_free(&r);
	(void)socket;
	return code;
}

/* ---- import-env ---- */

struct imp_var {
	char *name;   /* NUL-terminated */
	uint8_t *val; /* secret_bytes_alloc, vlen + 1 */
	size_t vlen;
	unsigned *lines;
	size_t nlines;
	bool map_form;
};

struct imp {
	struct imp_var *v;
	size_t n, cap;
	int err;
};

static int imp_var_cb(void *ctx, const char *file, unsigned line, const char *name, size_t nlen,
                      const char *val, size_t vlen, bool map_form)
{
	struct imp *im = ctx;
	if (!scan_judge(name, nlen, val, vlen, NULL))
		return 0;
	struct imp_var *v = NULL;
	for (size_t i = 0; i < im->n; i++)
		if (strlen(im->v[i].name) == nlen && !memcmp(im->v[i].name, name, nlen))
			v = &im->v[i];
	if (!v) {
		if (im->n == im->cap) {
			size_t nc = im->cap ? im->cap * 2 : 16;
			struct imp_var *nv = realloc(im->v, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			im->v = nv;
			im->cap = nc;
		}
		v = &im->v[im->n];
		memset(v, 0, sizeof(*v));
		if (!(v->name = strndup(name, nlen)))
			return -ENOMEM;
		im->n++;
	}
	/* the last definition wins, as in docker and shells */
	uint8_t *nv = secret_bytes_alloc(vlen + 1);
	if (!nv)
		return -ENOMEM;
	memcpy(nv, val, vlen);
	nv[vlen] = 0;
	if (v->val)
		secret_bytes_free(v->val);
	v->val = nv;
	v->vlen = vlen;
	v->map_form = map_form;
	unsigned *nl = realloc(v->lines, (v->nlines + 1) * sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	v->lines = nl;
	v->lines[v->nlines++] = line;
	(void)file;
	return 0;
}

static void imp_free(struct imp *im)
{
	for (size_t i = 0; i < im->n; i++) {
		free(im->v[i].name);
		if (im->v[i].val)
			secret_bytes_free(im->v[i].val);
		free(im->v[i].lines);
	}
	free(im->v);
	im->v = NULL;
	im->n = 0;
}

/* A printable copy of a variable name for messages. */
static void show_name(const char *n, char *out, size_t len)
{
	size_t i = 0;
	for (; n[i] && i + 1 < len; i++)
		out[i] = (n[i] < 0x20 || n[i] == 0x7f) ? '?' : n[i];
	out[i] = '\0';
}

enum imp_status { IMP_REFUSED, IMP_FAILED, IMP_STORED, IMP_UPDATED, IMP_UNCHANGED };

static const char *const imp_status_str[] = {"refused", "failed", "stored", "updated", "unchanged"};

/* GET the current value, PUT when it differs. */
static enum imp_status imp_store(const char *sock, const char *full, const struct imp_var *v,
                                 long long *version, char *msg, size_t mlen)
{
	char path[SECRETD_NAME_MAX + 32];
	snprintf(path, sizeof(path), "/v1/values/%s", full);
	struct client_resp resp = {0};
	const char *err = NULL;
	int r = client_request(sock, "GET", path, NULL, 0, NULL, &resp, &err);
	if (r < 0) {
		snprintf(msg, mlen, "cannot reach secretd at %s: %s", sock,
		         err ? err : strerror(-r));
		return IMP_FAILED;
	}
	bool exists = resp.status == 200;
	if (!exists && resp.status != 404) {
		client_error(&resp, msg, mlen);
		client_resp_free(&resp);
		return IMP_FAILED;
	}
	bool same = exists && resp.len == v->vlen && sodium_memcmp(resp.body, v->val, v->vlen) == 0;
	client_resp_free(&resp);
	if (same)
		return IMP_UNCHANGED;
	snprintf(path, sizeof(path), "/v1/secrets/%s", full);
	r = client_request(sock, "PUT", path, v->val, v->vlen, "application/octet-stream", &resp,
	                   &err);
	if (r < 0) {
		snprintf(msg, mlen, "cannot reach secretd at %s: %s", sock,
		         err ? err : strerror(-r));
		return IMP_FAILED;
	}
	if (resp.status < 200 || resp.status >= 300) {
		client_error(&resp, msg, mlen);
		client_resp_free(&resp);
		return IMP_FAILED;
	}
	json_t *j = json_loadb((const char *)resp.body, resp.len, 0, NULL);
	*version = (long long)json_integer_value(json_object_get(j, "version"));
	json_decref(j);
	client_resp_free(&resp);
	return exists ? IMP_UPDATED : IMP_STORED;
}

/* 0 granted, 1 already granted, -1 failed (msg). */
static int imp_grant(const char *sock, const char *full, const char *sel, char *msg, size_t mlen)
{
	json_t *body = json_pack("{s:s, s:s}", "secret", full, "selector", sel);
	if (!body) {
		snprintf(msg, mlen, "out of memory");
		return -1;
	}
	struct client_resp resp = {0};
	const char *err = NULL;
	int r = client_request_json(sock, "POST", "/v1/grants", body, &resp, NULL, &err);
	json_decref(body);
	if (r < 0) {
		snprintf(msg, mlen, "cannot reach secretd at %s: %s", sock,
		         err ? err : strerror(-r));
		return -1;
	}
	int rc = resp.status == 201 || resp.status == 200 ? 0 : resp.status == 409 ? 1 : -1;
	if (rc < 0)
		client_error(&resp, msg, mlen);
	client_resp_free(&resp);
	return rc;
}

/* The line to add in place of a variable, in the file's own syntax. */
static void imp_add_line(enum scan_file_kind kind, const struct imp_var *v, const char *full,
                         char *out, size_t len)
{
	const char *dir = SECRETD_MOUNT_DEFAULT;
	if (kind == SCAN_FILE_DOCKERFILE)
		snprintf(out, len, "ENV %s_FILE=%s/%s", v->name, dir, full);
	else if (kind == SCAN_FILE_COMPOSE && v->map_form)
		snprintf(out, len, "%s_FILE: %s/%s", v->name, dir, full);
	else if (kind == SCAN_FILE_COMPOSE)
		snprintf(out, len, "- %s_FILE=%s/%s", v->name, dir, full);
	else
		snprintf(out, len, "%s_FILE=%s/%s", v->name, dir, full);
}

int migrate_import_env_main(int argc, char **argv, const char *socket, bool json)
{
	const char *file = NULL, *compose = NULL, *service = NULL, *prefix = NULL;
	const char *grants[MIGRATE_GRANTS_MAX];
	size_t ngrants = 0;
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		if (opt_val(argc, argv, &i, "--prefix", &v))
			prefix = v ? v : "";
		else if (opt_val(argc, argv, &i, "--compose", &v))
			compose = v ? v : "";
		else if (opt_val(argc, argv, &i, "--service", &v))
			service = v ? v : "";
		else if (opt_val(argc, argv, &i, "--grant", &v)) {
			if (!v || !*v || ngrants == MIGRATE_GRANTS_MAX)
				return client_fail(2, "--grant needs a selector (at most %d)",
				                   MIGRATE_GRANTS_MAX);
			if (strlen(v) > SECRETD_SELECTOR_MAX)
				return client_fail(2, "--grant: selector longer than %d bytes",
				                   SECRETD_SELECTOR_MAX);
			grants[ngrants++] = v;
		} else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || file)
			return client_fail(2, "usage: secretctl %s", MIGRATE_IMPORT_USAGE);
		else
			file = argv[i];
	}
	if ((!file == !compose) || (compose && (!service || !*service)) || (file && service) ||
	    !prefix)
		return client_fail(2, "usage: secretctl %s", MIGRATE_IMPORT_USAGE);
	if (compose && !*compose)
		return client_fail(2, "--compose needs a file");
	char pfx[SECRETD_NAME_MAX + 1];
	size_t pl = strlen(prefix);
	while (pl > 1 && prefix[pl - 1] == '/')
		pl--;
	const char *why = NULL;
	if (pl == 0 || pl > SECRETD_NAME_MAX || names_check(prefix, pl, &why) < 0)
		return client_fail(2, "invalid --prefix '%.*s': %s", (int)(pl > 300 ? 300 : pl),
		                   prefix, why ? why : "empty or too long");
	memcpy(pfx, prefix, pl);
	pfx[pl] = '\0';
	if (sodium_init() < 0)
		return client_fail(2, "libsodium failed to initialise");

	const char *path = file ? file : compose;
	enum scan_file_kind kind = scan_file_kind(path);
	if (compose) {
		kind = SCAN_FILE_COMPOSE;
	} else if (kind == SCAN_FILE_COMPOSE || kind == SCAN_FILE_YAML) {
		return client_fail(2, "%s is YAML: use --compose %s --service NAME", file, file);
	} else if (kind == SCAN_FILE_NONE) {
		kind = SCAN_FILE_DOTENV;
	}
	char *buf = NULL;
	size_t len = 0;
	int r = scan_read_file(AT_FDCWD, path, false, &buf, &len);
	if (r < 0)
		return client_fail(2, "import-env: %s: %s", path,
		                   r == -EFBIG ? "file too large" : strerror(-r));
	struct imp im = {0};
	why = NULL;
	r = scan_buffer(kind, path, buf, len, service, imp_var_cb, &im, &why);
	secret_bytes_free(buf);
	if (r < 0) {
		imp_free(&im);
		if (r == -ENOENT)
			return client_fail(2, "import-env: %s: no service '%s'", path, service);
		return client_fail(2, "import-env: %s: cannot parse: %s", path,
		                   why ? why : strerror(-r));
	}

	const char *sock = client_socket(socket, false);
	int code = 0;
	json_t *jout = json ? json_pack("{s:s, s:s, s:[], s:[]}", "file", path, "prefix", pfx,
	                                "secrets", "refused")
	                    : NULL;
	if (json && !jout) {
		imp_free(&im);
		return client_fail(2, "out of memory");
	}
	bool *ok = calloc(im.n ? im.n : 1, sizeof(bool));
	if (!ok) {
		json_decref(jout);
		imp_free(&im);
		return client_fail(2, "out of memory");
	}
	for (size_t i = 0; i < im.n; i++) {
		struct imp_var *v = &im.v[i];
		char shown[SECRETD_NAME_MAX + 1], full[SECRETD_NAME_MAX + 2], msg[512];
		show_name(v->name, shown, sizeof(shown));
		size_t nl = strlen(v->name);
		why = NULL;
		if (memchr(v->name, '/', nl) || names_check(v->name, nl, &why) < 0 ||
		    pl + 1 + nl > SECRETD_NAME_MAX) {
			snprintf(msg, sizeof(msg), "not usable as a secret name segment: %s",
			         why                        ? why
			         : memchr(v->name, '/', nl) ? "contains '/'"
			                                    : "prefix/name too long");
			fprintf(stderr, "secretctl: import-env: %s:%u: %s: %s; not imported\n",
			        path, v->lines[0], shown, msg);
			if (jout)
				json_array_append_new(
				    json_object_get(jout, "refused"),
				    json_pack("{s:s, s:I, s:s}", "variable", shown, "line",
				              (json_int_t)v->lines[0], "reason", msg));
			code = 1;
			continue;
		}
		snprintf(full, sizeof(full), "%s/%s", pfx, v->name);
		long long version = 0;
		enum imp_status st = imp_store(sock, full, v, &version, msg, sizeof(msg));
		json_t *jv = NULL;
		if (jout) {
			jv = json_pack("{s:s, s:s, s:s, s:[], s:[]}", "variable", shown, "secret",
			               full, "status", imp_status_str[st], "lines", "granted");
			for (size_t k = 0; jv && k < v->nlines; k++)
				json_array_append_new(json_object_get(jv, "lines"),
				                      json_integer(v->lines[k]));
			if (jv && version)
				json_object_set_new(jv, "version", json_integer(version));
		}
		if (st == IMP_FAILED) {
			fprintf(stderr, "secretctl: import-env: %s: %s\n", full, msg);
			if (jv)
				json_object_set_new(jv, "error", json_string(msg));
			code = 1;
			if (!strncmp(msg, "cannot reach",
			             12)) { /* the next ones would fail alike */
				json_decref(jv);
				break;
			}
		} else if (!json) {
			if (version)
				printf("%s: %s (version %lld)\n", full, imp_status_str[st],
				       version);
			else
				printf("%s: %s\n", full, imp_status_str[st]);
		}
		bool granted_all = st != IMP_FAILED;
		for (size_t g = 0; st != IMP_FAILED && g < ngrants; g++) {
			int gr = imp_grant(sock, full, grants[g], msg, sizeof(msg));
			if (gr < 0) {
				fprintf(stderr, "secretctl: import-env: grant %s to %s: %s\n", full,
				        grants[g], msg);
				granted_all = false;
				code = 1;
				continue;
			}
			if (!json)
				printf("%s: %s %s\n", full,
				       gr == 0 ? "granted to" : "already granted to", grants[g]);
			if (jv)
				json_array_append_new(json_object_get(jv, "granted"),
				                      json_string(grants[g]));
		}
		if (jv) {
			char add[2 * SECRETD_NAME_MAX + 64];
			imp_add_line(kind, v, full, add, sizeof(add));
			json_object_set_new(jv, "add", json_string(add));
			json_array_append_new(json_object_get(jout, "secrets"), jv);
		}
		ok[i] = st != IMP_FAILED && granted_all;
	}

	if (jout) {
		char *s = json_dumps(jout, JSON_INDENT(2));
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(jout);
	} else if (im.n == 0) {
		printf("no secret-looking variables in %s%s%s\n", path, service ? " service " : "",
		       service ? service : "");
	} else {
		size_t nok = 0;
		for (size_t i = 0; i < im.n; i++)
			nok += ok[i];
		if (nok) {
			printf("\nNext, in %s%s%s:\n", path, service ? ", service " : "",
			       service ? service : "");
			for (size_t i = 0; i < im.n; i++) {
				if (!ok[i])
					continue;
				struct imp_var *v = &im.v[i];
				for (size_t k = 0; k < v->nlines; k++)
					printf("  delete line %u (%s)\n", v->lines[k], v->name);
			}
			printf("  add (for images that read NAME_FILE, like postgres, mysql, "
			       "mariadb):\n");
			for (size_t i = 0; i < im.n; i++) {
				if (!ok[i])
					continue;
				char full[SECRETD_NAME_MAX + 2], add[2 * SECRETD_NAME_MAX + 64];
				snprintf(full, sizeof(full), "%s/%s", pfx, im.v[i].name);
				imp_add_line(kind, &im.v[i], full, add, sizeof(add));
				printf("    %s\n", add);
			}
			printf("The container must be granted each secret (--grant SELECTOR or "
			       "'secretctl grant %s/NAME SELECTOR')\nand see them under %s. A "
			       "program that reads only NAME itself can run as\n  secretctl exec "
			       "--env NAME=%s/NAME -- CMD ARGS\n",
			       pfx, SECRETD_MOUNT_DEFAULT, pfx);
		}
	}
	free(ok);
	imp_free(&im);
	return code;
}

/* ---- exec ---- */

struct exec_var {
	char *name; /* points into argv */
	size_t nlen;
	const char *secret;
	uint8_t *val; /* secret_bytes_alloc, NUL-terminated */
	size_t vlen;
};

static bool env_name_ok(const char *n, size_t len)
{
	if (len == 0 ||
	    !((n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z') || n[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((n[i] >= 'A' && n[i] <= 'Z') || (n[i] >= 'a' && n[i] <= 'z') ||
		      (n[i] >= '0' && n[i] <= '9') || n[i] == '_'))
			return false;
	return true;
}

/* Reads dir/sname (a regular file of at most max bytes). 0 or -errno. */
static int exec_read_file(const char *dir, const char *sname, size_t max, uint8_t **out,
                          size_t *len)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, sname) >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	uint8_t *b = secret_bytes_alloc(max + 2);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, b + n, max + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			close(fd);
			secret_bytes_free(b);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			close(fd);
			secret_bytes_free(b);
			return -EFBIG;
		}
	}
	close(fd);
	b[n] = 0;
	*out = b;
	*len = n;
	return 0;
}

/* Asks the workload socket. 0, or -1 with msg. */
static int exec_read_broker(const char *socket, const char *sname, size_t max, uint8_t **out,
                            size_t *len, char *msg, size_t mlen)
{
	const char *sock = client_socket(socket, true);
	char path[SECRETD_NAME_MAX + 32];
	snprintf(path, sizeof(path), "/v1/self/secrets/%s", sname);
	struct client_resp resp = {0};
	const char *err = NULL;
	int r = client_request(sock, "GET", path, NULL, 0, NULL, &resp, &err);
	if (r < 0) {
		snprintf(msg, mlen, "secretd at %s: %s", sock, err ? err : strerror(-r));
		return -1;
	}
	if (resp.status != 200) {
		char eb[256];
		snprintf(msg, mlen, "secretd: %s", client_error(&resp, eb, sizeof(eb)));
		client_resp_free(&resp);
		return -1;
	}
	if (resp.len > max) {
		snprintf(msg, mlen, "value too large for an environment variable");
		client_resp_free(&resp);
		return -1;
	}
	uint8_t *b = secret_bytes_alloc(resp.len + 1);
	if (!b) {
		client_resp_free(&resp);
		snprintf(msg, mlen, "out of memory");
		return -1;
	}
	memcpy(b, resp.body, resp.len);
	b[resp.len] = 0;
	*out = b;
	*len = resp.len;
	client_resp_free(&resp);
	return 0;
}

static void exec_free(struct exec_var *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].val)
			secret_bytes_free(v[i].val);
}

int migrate_exec_main(int argc, char **argv, const char *socket)
{
	static struct exec_var vars[MIGRATE_EXEC_VARS_MAX];
	size_t n = 0;
	const char *dir = SECRETD_MOUNT_DEFAULT;
	int cmd = -1;
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		if (!strcmp(argv[i], "--")) {
			cmd = i + 1;
			break;
		}
		if (opt_val(argc, argv, &i, "--dir", &v)) {
			if (!v || !*v)
				return client_fail(2, "--dir needs a directory");
			dir = v;
		} else if (opt_val(argc, argv, &i, "--env", &v)) {
			const char *eq = v ? strchr(v, '=') : NULL;
			if (!eq)
				return client_fail(2,
				                   "--env needs NAME=SECRET; usage: secretctl %s",
				                   MIGRATE_EXEC_USAGE);
			if (n == MIGRATE_EXEC_VARS_MAX)
				return client_fail(2, "at most %d --env options",
				                   MIGRATE_EXEC_VARS_MAX);
			size_t nl = (size_t)(eq - v);
			const char *why = NULL;
			if (!env_name_ok(v, nl))
				return client_fail(
				    2, "--env %.*s: not a valid environment variable name",
				    (int)(nl > 200 ? 200 : nl), v);
			if (names_check(eq + 1, strlen(eq + 1), &why) < 0)
				return client_fail(2, "--env %.*s: invalid secret name: %s",
				                   (int)(nl > 200 ? 200 : nl), v, why);
			vars[n++] =
			    (struct exec_var){.name = (char *)v, .nlen = nl, .secret = eq + 1};
		} else if (argv[i][0] == '-') {
			return client_fail(2, "unknown option '%s'; usage: secretctl %s", argv[i],
			                   MIGRATE_EXEC_USAGE);
		} else {
			cmd = i;
			break;
		}
	}
	if (cmd < 0 || cmd >= argc)
		return client_fail(2, "usage: secretctl %s", MIGRATE_EXEC_USAGE);
	if (sodium_init() < 0)
		return client_fail(1, "libsodium failed to initialise");
	for (size_t i = 0; i < n; i++) {
		struct exec_var *v = &vars[i];
		size_t max = MIGRATE_ENV_STRING_MAX - v->nlen - 2;
		int r = exec_read_file(dir, v->secret, max, &v->val, &v->vlen);
		if (r < 0) {
			char msg[512];
			if (exec_read_broker(socket, v->secret, max, &v->val, &v->vlen, msg,
			                     sizeof(msg)) < 0) {
				exec_free(vars, n);
				return client_fail(
				    1, "exec: cannot read secret %s for %.*s (%s/%s: %s; %s)",
				    v->secret, (int)v->nlen, v->name, dir, v->secret,
				    r == -EFBIG ? "too large" : strerror(-r), msg);
			}
		}
		if (memchr(v->val, 0, v->vlen)) {
			exec_free(vars, n);
			return client_fail(1,
			                   "exec: secret %s holds a NUL byte, which an environment "
			                   "variable cannot carry",
			                   v->secret);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct exec_var *v = &vars[i];
		char *name = strndup(v->name, v->nlen);
		if (!name || setenv(name, (const char *)v->val, 1) < 0) {
			exec_free(vars, n);
			int rc = client_fail(1, "exec: cannot set %.*s: %s", (int)v->nlen, v->name,
			                     strerror(errno));
			free(name);
			return rc;
		}
		free(name);
	}
	exec_free(vars, n);
	fflush(NULL);
	execvp(argv[cmd], argv + cmd);
	int e = errno;
	for (size_t i = 0; i < n; i++) {
		char *name = strndup(vars[i].name, vars[i].nlen);
		if (name)
			unsetenv(name);
		free(name);
	}
	if (e == ENOENT)
		return client_fail(127, "exec: %s: command not found", argv[cmd]);
	return client_fail(126, "exec: %s: %s", argv[cmd], strerror(e));
}
