/* secretctl: the operator's and the workload's command line for secretd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "client/cdi.h"
#include "client/client.h"

#ifndef SECRETD_VERSION
#define SECRETD_VERSION "unknown"
#endif
#include "client/migrate.h"
#include "common/limits.h"
#include "common/names.h"
#include "common/secret.h"

struct ctl {
	const char *socket;
	bool json;
	int argc;
	char **argv;
	bool unapplied; /* a change was stored but did not reach every container */
};

/* Exit status when a change was stored but the daemon could not apply it to every running
 * container (those are failed closed until it can): the command's own output is printed. */
#define CTL_EXIT_UNAPPLIED 3

struct ctl_cmd {
	const char *name;
	const char *args;
	const char *help;
	bool workload;
	int (*run)(struct ctl *c);
};

/* Prints "secretctl: MESSAGE" on stderr; returns 1. */
#define ctl_fail(...) client_fail(1, __VA_ARGS__)

/* Sends a request and checks the answer; prints the reason and returns 1 on any failure. */
static int ctl_call(struct ctl *c, bool workload, const char *method, const char *path,
                    const void *body, size_t len, const char *ctype, json_t *jbody,
                    struct client_resp *resp, json_t **jout)
{
	const char *sock = client_socket(c->socket, workload);
	const char *err = NULL;
	int r = jbody ? client_request_json(sock, method, path, jbody, resp, jout, &err)
	              : client_request(sock, method, path, body, len, ctype, resp, &err);
	if (r < 0)
		return ctl_fail("cannot reach secretd at %s: %s", sock, err ? err : strerror(-r));
	if (resp->status < 200 || resp->status >= 300) {
		char buf[512];
		ctl_fail("%s", client_error(resp, buf, sizeof(buf)));
		client_resp_free(resp);
		if (jout && *jout) {
			json_decref(*jout);
			*jout = NULL;
		}
		return 1;
	}
	if (jout && !*jout && resp->len) {
		*jout = json_loadb((const char *)resp->body, resp->len, 0, NULL);
	}
	return 0;
}

/* After a change: when the answer (j, or the JSON body of resp when j is NULL) says it did not
 * reach every container, warns on stderr and remembers it for the exit status. */
static void ctl_check_applied(struct ctl *c, const struct client_resp *resp, json_t *j)
{
	json_t *own = NULL;
	if (!j && resp->len && resp->body[0] == '{')
		j = own = json_loadb((const char *)resp->body, resp->len, 0, NULL);
	const char *w = json_string_value(json_object_get(j, "warning"));
	if (w) {
		fprintf(stderr, "secretctl: warning: %s\n", w);
		c->unapplied = true;
	}
	json_decref(own);
}

static void ctl_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s)
		printf("%s\n", s);
	free(s);
}

static const char *ctl_time(json_int_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static int ctl_need_name(struct ctl *c, int nargs, const char *usage)
{
	if (c->argc != nargs)
		return ctl_fail("usage: secretctl %s", usage);
	const char *why = NULL;
	if (names_check(c->argv[0], strlen(c->argv[0]), &why) < 0)
		return ctl_fail("invalid secret name '%s': %s", c->argv[0], why);
	return 0;
}

/* Reads all of fd (at most max bytes) into locked secret memory (secret_bytes_alloc). */
static int ctl_read_value(int fd, size_t max, uint8_t **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	uint8_t *b = secret_bytes_alloc(cap);
	if (!b)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			if (cap > max)
				break;
			size_t nc = cap * 2;
			uint8_t *nb = secret_bytes_alloc(nc);
			if (!nb) {
				secret_bytes_free(b);
				return -ENOMEM;
			}
			memcpy(nb, b, n);
			secret_bytes_free(b);
			b = nb;
			cap = nc;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			secret_bytes_free(b);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			secret_bytes_free(b);
			return -EFBIG;
		}
	}
	*out = b;
	*len = n;
	return 0;
}

static int ctl_parse_uint(const char *s, int base, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, base);
	if (!*s || *end || errno || v < 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Parses a duration: N, Ns, Nm, Nh or Nd (N > 0) into seconds. */
static int ctl_parse_duration(const char *s, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || end == s || errno || v <= 0)
		return -EINVAL;
	long long mul = 1;
	if (*end == 's')
		end++;
	else if (*end == 'm')
		mul = 60, end++;
	else if (*end == 'h')
		mul = 3600, end++;
	else if (*end == 'd')
		mul = 86400, end++;
	if (*end || v > 100LL * 365 * 86400 / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* What a put asks for besides the value. */
struct ctl_put {
	const char *file; /* NULL = stdin */
	long long keep;   /* 0 = unchanged */
	long long ttl;    /* seconds, 0 = none */
	bool allow_empty;
	bool keep_expiry; /* without ttl: keep the expiry instead of clearing it */
};

/* " (expiry cleared)" / " (expires at T)" after a new version, from the daemon's answer: said when
 * the expiry changed or was kept, nothing when there is none and was none. */
static void ctl_expiry_note(json_t *j, bool asked, char *buf, size_t len)
{
	char tb[32];
	json_int_t ex = json_integer_value(json_object_get(j, "expires"));
	buf[0] = '\0';
	if (json_is_true(json_object_get(j, "expiry_cleared")))
		snprintf(buf, len, " (expiry cleared)");
	else if (ex > 0 && asked)
		snprintf(buf, len, " (expires at %s)", ctl_time(ex, tb, sizeof(tb)));
}

/* PUT /v1/secrets/NAME[?keep=&ttl=&keep_expiry=1&allow_empty=1] with the value from file (or
 * stdin). */
static int ctl_put_value(struct ctl *c, const char *name, const struct ctl_put *p)
{
	int fd = 0;
	if (p->file) {
		fd = open(p->file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return ctl_fail("cannot open %s: %s", p->file, strerror(errno));
	} else if (isatty(0)) {
		fprintf(stderr,
		        "secretctl: reading the value from the terminal; end with Ctrl-D\n");
	}
	uint8_t *val = NULL;
	size_t len = 0;
	int r = ctl_read_value(fd, SECRETD_VALUE_MAX_CEILING, &val, &len);
	if (p->file)
		close(fd);
	if (r < 0)
		return ctl_fail("cannot read the value: %s", strerror(-r));
	if (len == 0 && !p->allow_empty) {
		secret_bytes_free(val);
		return ctl_fail("refusing to store an empty value (use --allow-empty)");
	}
	char path[400];
	int n = snprintf(path, sizeof(path), "/v1/secrets/%s", name);
	const char *sep = "?";
	if (p->keep) {
		n += snprintf(path + n, sizeof(path) - (size_t)n, "%skeep=%lld", sep, p->keep);
		sep = "&";
	}
	if (p->ttl) {
		n += snprintf(path + n, sizeof(path) - (size_t)n, "%sttl=%lld", sep, p->ttl);
		sep = "&";
	}
	if (p->keep_expiry) {
		n += snprintf(path + n, sizeof(path) - (size_t)n, "%skeep_expiry=1", sep);
		sep = "&";
	}
	if (p->allow_empty)
		snprintf(path + n, sizeof(path) - (size_t)n, "%sallow_empty=1", sep);
	struct client_resp resp;
	json_t *j = NULL;
	r = ctl_call(c, false, "PUT", path, val, len, "application/octet-stream", NULL, &resp, &j);
	secret_bytes_free(val);
	if (r)
		return r;
	char note[64];
	ctl_expiry_note(j, p->ttl || p->keep_expiry, note, sizeof(note));
	if (c->json)
		ctl_print_json(j);
	else
		printf("%s: version %lld%s\n", name,
		       (long long)json_integer_value(json_object_get(j, "version")), note);
	ctl_check_applied(c, &resp, j);
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int cmd_put(struct ctl *c)
{
	static const struct option o[] = {
	    {"from-file", required_argument, NULL, 'f'}, {"keep", required_argument, NULL, 'k'},
	    {"expires", required_argument, NULL, 'e'},   {"allow-empty", no_argument, NULL, 'E'},
	    {"keep-expiry", no_argument, NULL, 'K'},     {0}};
	const char *usage = "put NAME [--from-file F] [--keep N] [--expires 1h | --keep-expiry] "
	                    "[--allow-empty]  (value on stdin, never in argv)";
	struct ctl_put p = {0};
	int ch;
	while ((ch = getopt_long(c->argc, c->argv, "", o, NULL)) != -1) {
		if (ch == 'f')
			p.file = optarg;
		else if (ch == 'E')
			p.allow_empty = true;
		else if (ch == 'K')
			p.keep_expiry = true;
		else if (ch == 'k' && ctl_parse_uint(optarg, 10, 1000, &p.keep) == 0 && p.keep > 0)
			continue;
		else if (ch == 'e' && ctl_parse_duration(optarg, &p.ttl) == 0)
			continue;
		else if (ch == 'k')
			return ctl_fail("--keep must be 1..1000");
		else if (ch == 'e')
			return ctl_fail("--expires must be a duration: N[s|m|h|d]");
		else
			return ctl_fail("usage: secretctl %s", usage);
	}
	c->argc -= optind;
	c->argv += optind;
	if (ctl_need_name(c, 1, usage))
		return 1;
	if (p.ttl && p.keep_expiry)
		return ctl_fail("give --expires (a new expiry) or --keep-expiry, not both");
	return ctl_put_value(c, c->argv[0], &p);
}

static int cmd_get(struct ctl *c)
{
	static const struct option o[] = {{"version", required_argument, NULL, 'v'}, {0}};
	const char *ver = NULL;
	int ch;
	while ((ch = getopt_long(c->argc, c->argv, "", o, NULL)) != -1) {
		if (ch != 'v')
			return ctl_fail("usage: secretctl get NAME [--version N]");
		ver = optarg;
	}
	c->argc -= optind;
	c->argv += optind;
	if (ctl_need_name(c, 1, "get NAME [--version N]"))
		return 1;
	char path[320];
	if (ver) {
		char *end;
		unsigned long long v = strtoull(ver, &end, 10);
		if (!*ver || *end || v == 0)
			return ctl_fail("--version must be a positive integer");
		snprintf(path, sizeof(path), "/v1/values/%s?version=%llu", c->argv[0], v);
	} else {
		snprintf(path, sizeof(path), "/v1/values/%s", c->argv[0]);
	}
	struct client_resp resp;
	if (ctl_call(c, false, "GET", path, NULL, 0, NULL, NULL, &resp, NULL))
		return 1;
	size_t off = 0;
	while (off < resp.len) {
		ssize_t w = write(1, resp.body + off, resp.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			client_resp_free(&resp);
			return ctl_fail("cannot write the value: %s", strerror(errno));
		}
		off += (size_t)w;
	}
	client_resp_free(&resp);
	return 0;
}

static int ctl_list_names(struct ctl *c, bool workload, const char *path)
{
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, workload, "GET", path, NULL, 0, NULL, NULL, &resp, &j))
		return 1;
	if (c->json) {
		ctl_print_json(j);
	} else if (workload) {
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(j, "secrets"), i, v)
		    printf("%s\n", json_string_value(v));
	} else {
		size_t i;
		json_t *v;
		char tb[32];
		char te[32];
		printf("%-40s %8s %8s  %-20s  %s\n", "NAME", "VERSION", "KEPT", "UPDATED",
		       "EXPIRES");
		json_array_foreach(json_object_get(j, "secrets"), i, v)
		{
			json_int_t ex = json_integer_value(json_object_get(v, "expires"));
			printf("%-40s %8lld %8lld  %-20s  %s\n",
			       json_string_value(json_object_get(v, "name")),
			       (long long)json_integer_value(json_object_get(v, "current")),
			       (long long)json_integer_value(json_object_get(v, "versions")),
			       ctl_time(json_integer_value(json_object_get(v, "updated")), tb,
			                sizeof(tb)),
			       ex > 0 ? ctl_time(ex, te, sizeof(te)) : "-");
		}
	}
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int cmd_ls(struct ctl *c)
{
	bool self = c->argc > 1 && strcmp(c->argv[1], "--self") == 0;
	if (c->argc > (self ? 2 : 1))
		return ctl_fail("usage: secretctl ls [--self]");
	return self ? ctl_list_names(c, true, "/v1/self/secrets")
	            : ctl_list_names(c, false, "/v1/secrets");
}

static int cmd_versions(struct ctl *c)
{
	c->argc--;
	c->argv++;
	if (ctl_need_name(c, 1, "versions NAME"))
		return 1;
	char path[300];
	snprintf(path, sizeof(path), "/v1/secrets/%s", c->argv[0]);
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "GET", path, NULL, 0, NULL, NULL, &resp, &j))
		return 1;
	if (c->json) {
		ctl_print_json(j);
	} else {
		size_t i;
		json_t *v;
		char tb[32];
		json_int_t ex = json_integer_value(json_object_get(j, "expires"));
		if (ex > 0)
			printf("%s expires at %s\n", c->argv[0], ctl_time(ex, tb, sizeof(tb)));
		printf("%8s %8s %4s  %-20s %s\n", "VERSION", "SIZE", "KEY", "CREATED", "");
		json_array_foreach(json_object_get(j, "versions"), i, v) printf(
		    "%8lld %8lld %4lld  %-20s %s\n",
		    (long long)json_integer_value(json_object_get(v, "version")),
		    (long long)json_integer_value(json_object_get(v, "size")),
		    (long long)json_integer_value(json_object_get(v, "kek")),
		    ctl_time(json_integer_value(json_object_get(v, "created")), tb, sizeof(tb)),
		    json_is_true(json_object_get(v, "current")) ? "current" : "");
	}
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int cmd_rm(struct ctl *c)
{
	c->argc--;
	c->argv++;
	if (ctl_need_name(c, 1, "rm NAME"))
		return 1;
	char path[300];
	snprintf(path, sizeof(path), "/v1/secrets/%s", c->argv[0]);
	struct client_resp resp;
	if (ctl_call(c, false, "DELETE", path, NULL, 0, NULL, NULL, &resp, NULL))
		return 1;
	if (!c->json)
		printf("%s: deleted\n", c->argv[0]);
	else
		printf("{\"name\": \"%s\", \"deleted\": true}\n", c->argv[0]);
	ctl_check_applied(c, &resp, NULL);
	client_resp_free(&resp);
	return 0;
}

static void ctl_key_status_print(json_t *j)
{
	printf("current generation %lld",
	       (long long)json_integer_value(json_object_get(j, "current")));
	if (json_is_true(json_object_get(j, "rotating")))
		printf("; rotation to %lld in progress, %lld data keys left",
		       (long long)json_integer_value(json_object_get(j, "target")),
		       (long long)json_integer_value(json_object_get(j, "remaining")));
	const char *err = json_string_value(json_object_get(j, "error"));
	if (err)
		printf(" (stopped: %s)", err);
	printf("\n");
	size_t i;
	json_t *g;
	json_array_foreach(json_object_get(j, "generations"), i, g)
	{
		char when[32];
		ctl_time(json_integer_value(json_object_get(g, "created")), when, sizeof(when));
		printf("  generation %-4lld created %s  %lld data keys\n",
		       (long long)json_integer_value(json_object_get(g, "id")), when,
		       (long long)json_integer_value(json_object_get(g, "data_keys")));
	}
}

/* Follows GET /v1/keys until the rotation ends (0), stops on an error (1), or the daemon goes. */
static int ctl_key_wait(struct ctl *c, json_t **last)
{
	for (;;) {
		struct client_resp resp;
		json_t *j = NULL;
		if (ctl_call(c, false, "GET", "/v1/keys", NULL, 0, NULL, NULL, &resp, &j))
			return 1;
		client_resp_free(&resp);
		if (!j)
			return ctl_fail("unreadable answer from secretd");
		json_decref(*last);
		*last = j;
		if (!json_is_true(json_object_get(j, "rotating")))
			return 0;
		const char *err = json_string_value(json_object_get(j, "error"));
		if (err)
			return ctl_fail("key rotation stopped: %s (the daemon retries; every value "
			                "stays readable)",
			                err);
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static int cmd_key(struct ctl *c)
{
	static const char usage[] = "usage: secretctl key rotate [--no-wait] | key status";
	if (c->argc < 2)
		return ctl_fail(usage);
	if (strcmp(c->argv[1], "status") == 0) {
		if (c->argc != 2)
			return ctl_fail(usage);
		struct client_resp resp;
		json_t *j = NULL;
		if (ctl_call(c, false, "GET", "/v1/keys", NULL, 0, NULL, NULL, &resp, &j))
			return 1;
		client_resp_free(&resp);
		if (c->json)
			ctl_print_json(j);
		else if (j)
			ctl_key_status_print(j);
		json_decref(j);
		return 0;
	}
	bool wait = true;
	if (strcmp(c->argv[1], "rotate") != 0)
		return ctl_fail(usage);
	for (int i = 2; i < c->argc; i++) {
		if (strcmp(c->argv[i], "--no-wait") == 0)
			wait = false;
		else
			return ctl_fail(usage);
	}
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "POST", "/v1/keys/rotate", "", 0, NULL, NULL, &resp, &j))
		return 1;
	client_resp_free(&resp);
	if (!j)
		return ctl_fail("unreadable answer from secretd");
	long long kek = (long long)json_integer_value(json_object_get(j, "kek_id"));
	long long todo = (long long)json_integer_value(json_object_get(j, "remaining"));
	bool resumed = json_is_true(json_object_get(j, "resumed"));
	int rc = 0;
	if (wait)
		rc = ctl_key_wait(c, &j);
	if (c->json) {
		ctl_print_json(j);
	} else if (rc == 0 && !wait) {
		printf("%s key generation %lld; %lld data keys to re-wrap in the background "
		       "(secretctl key status)\n",
		       resumed ? "unfinished" : "new", kek, todo);
	} else if (rc == 0) {
		printf("%s key generation %lld; %lld data keys re-wrapped\n",
		       resumed ? "completed the unfinished" : "new", kek, todo);
	}
	json_decref(j);
	return rc;
}

static int cmd_grant(struct ctl *c)
{
	static const struct option o[] = {{"path", required_argument, NULL, 'p'},
	                                  {"mode", required_argument, NULL, 'm'},
	                                  {"uid", required_argument, NULL, 'u'},
	                                  {"gid", required_argument, NULL, 'g'},
	                                  {"previous", no_argument, NULL, 'P'},
	                                  {"replace", no_argument, NULL, 'r'},
	                                  {0}};
	const char *usage = "grant NAME|PREFIX/*|* SELECTOR [--path P] [--mode 0400] [--uid U] "
	                    "[--gid G] [--previous] [--replace]";
	json_t *body = json_object();
	int ch;
	long long v;
	while ((ch = getopt_long(c->argc, c->argv, "", o, NULL)) != -1) {
		switch (ch) {
		case 'p':
			json_object_set_new(body, "path", json_string(optarg));
			break;
		case 'm':
			if (ctl_parse_uint(optarg, 8, 0777, &v) < 0) {
				json_decref(body);
				return ctl_fail("--mode must be octal, at most 0777");
			}
			json_object_set_new(body, "mode", json_integer(v));
			break;
		case 'u':
		case 'g':
			if (ctl_parse_uint(optarg, 10, 4294967294LL, &v) < 0) {
				json_decref(body);
				return ctl_fail("--%s must be a number", ch == 'u' ? "uid" : "gid");
			}
			json_object_set_new(body, ch == 'u' ? "uid" : "gid", json_integer(v));
			break;
		case 'P':
			json_object_set_new(body, "previous", json_true());
			break;
		case 'r':
			json_object_set_new(body, "replace", json_true());
			break;
		default:
			json_decref(body);
			return ctl_fail("usage: secretctl %s", usage);
		}
	}
	if (c->argc - optind != 2) {
		json_decref(body);
		return ctl_fail("usage: secretctl %s", usage);
	}
	const char *sname = c->argv[optind], *sel = c->argv[optind + 1];
	json_object_set_new(body, "secret", json_string(sname));
	json_object_set_new(body, "selector", json_string(sel));
	struct client_resp resp;
	int r = ctl_call(c, false, "POST", "/v1/grants", NULL, 0, NULL, body, &resp, NULL);
	json_decref(body);
	if (r)
		return r;
	if (!c->json)
		printf("granted %s to %s\n", sname, sel);
	else
		fwrite(resp.body, 1, resp.len, stdout);
	ctl_check_applied(c, &resp, NULL);
	client_resp_free(&resp);
	return 0;
}

static int cmd_revoke(struct ctl *c)
{
	if (c->argc != 3)
		return ctl_fail("usage: secretctl revoke NAME SELECTOR");
	json_t *body = json_pack("{s:s, s:s}", "secret", c->argv[1], "selector", c->argv[2]);
	struct client_resp resp;
	int r = ctl_call(c, false, "POST", "/v1/grants/revoke", NULL, 0, NULL, body, &resp, NULL);
	json_decref(body);
	if (r)
		return r;
	if (!c->json)
		printf("revoked %s from %s\n", c->argv[1], c->argv[2]);
	else
		fwrite(resp.body, 1, resp.len, stdout);
	ctl_check_applied(c, &resp, NULL);
	client_resp_free(&resp);
	return 0;
}

static int cmd_grants(struct ctl *c)
{
	if (c->argc != 1)
		return ctl_fail("usage: secretctl grants [--json]");
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "GET", "/v1/grants", NULL, 0, NULL, NULL, &resp, &j))
		return 1;
	if (c->json) {
		ctl_print_json(j);
	} else {
		size_t i;
		json_t *v;
		printf("%-30s %-30s %-20s %5s %6s %6s\n", "SECRET", "SELECTOR", "PATH", "MODE",
		       "UID", "GID");
		json_array_foreach(json_object_get(j, "grants"), i, v)
		{
			const char *p = json_string_value(json_object_get(v, "path"));
			long long uid = json_integer_value(json_object_get(v, "uid"));
			long long gid = json_integer_value(json_object_get(v, "gid"));
			char us[16], gs[16];
			snprintf(us, sizeof(us), "%lld", uid);
			snprintf(gs, sizeof(gs), "%lld", gid);
			printf("%-30s %-30s %-20s %5s %6s %6s%s\n",
			       json_string_value(json_object_get(v, "secret")),
			       json_string_value(json_object_get(v, "selector")), p ? p : "-",
			       json_string_value(json_object_get(v, "mode")), uid < 0 ? "-" : us,
			       gid < 0 ? "-" : gs,
			       json_is_true(json_object_get(v, "previous")) ? "  +previous" : "");
		}
	}
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int cmd_containers(struct ctl *c)
{
	if (c->argc != 1)
		return ctl_fail("usage: secretctl containers [--json]");
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "GET", "/v1/containers", NULL, 0, NULL, NULL, &resp, &j))
		return 1;
	if (c->json) {
		ctl_print_json(j);
	} else {
		size_t i;
		json_t *v;
		printf("%-16s %-10s %-16s %-8s %-16s %5s %7s\n", "ID", "RUNTIME", "NAME", "SOURCE",
		       "MOUNT", "FILES", "OPENS");
		json_array_foreach(json_object_get(j, "containers"), i, v)
		{
			const char *m = json_string_value(json_object_get(v, "mount"));
			/* a mount denied until the broker can apply its view says so */
			printf("%-16.16s %-10s %-16s %-8s %-16s %5lld %7lld%s\n",
			       json_string_value(json_object_get(v, "id")),
			       json_string_value(json_object_get(v, "runtime")),
			       json_string_value(json_object_get(v, "name")),
			       json_string_value(json_object_get(v, "source")), m ? m : "-",
			       (long long)json_integer_value(json_object_get(v, "files")),
			       (long long)json_integer_value(json_object_get(v, "opens")),
			       json_is_true(json_object_get(v, "failed_closed")) ? "  FAILED-CLOSED"
			                                                         : "");
		}
	}
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int cmd_whoami(struct ctl *c)
{
	if (c->argc != 1)
		return ctl_fail("usage: secretctl whoami [--json]");
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, true, "GET", "/v1/self", NULL, 0, NULL, NULL, &resp, &j))
		return 1;
	if (c->json) {
		ctl_print_json(j);
	} else {
		bool cont = json_is_true(json_object_get(j, "container"));
		printf("runtime:   %s\n", json_string_value(json_object_get(j, "runtime")));
		if (cont) {
			printf("container: %s\n", json_string_value(json_object_get(j, "id")));
			const char *n = json_string_value(json_object_get(j, "name"));
			if (n && *n)
				printf("name:      %s\n", n);
		}
		printf("cgroup:    %s\n", json_string_value(json_object_get(j, "cgroup")));
		printf("pid:       %lld\nuid:       %lld\n",
		       (long long)json_integer_value(json_object_get(j, "pid")),
		       (long long)json_integer_value(json_object_get(j, "uid")));
	}
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int cmd_read(struct ctl *c)
{
	c->argc--;
	c->argv++;
	if (ctl_need_name(c, 1, "read NAME"))
		return 1;
	char path[300];
	snprintf(path, sizeof(path), "/v1/self/secrets/%s", c->argv[0]);
	struct client_resp resp;
	if (ctl_call(c, true, "GET", path, NULL, 0, NULL, NULL, &resp, NULL))
		return 1;
	int rc = fwrite(resp.body, 1, resp.len, stdout) == resp.len ? 0 : 1;
	client_resp_free(&resp);
	return rc;
}

static int cmd_mount(struct ctl *c)
{
	if (c->argc > 2)
		return ctl_fail("usage: secretctl mount [PATH]");
	json_t *body =
	    json_pack("{s:s}", "path", c->argc == 2 ? c->argv[1] : SECRETD_MOUNT_DEFAULT);
	struct client_resp resp;
	json_t *j = NULL;
	int r = ctl_call(c, true, "POST", "/v1/self/mount", NULL, 0, NULL, body, &resp, &j);
	json_decref(body);
	if (r)
		return r;
	if (c->json)
		ctl_print_json(j);
	else
		printf("mounted %lld secret file(s) at %s\n",
		       (long long)json_integer_value(json_object_get(j, "files")),
		       json_string_value(json_object_get(j, "mount")));
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int cmd_rollback(struct ctl *c)
{
	c->argc--;
	c->argv++;
	if (ctl_need_name(c, 2, "rollback NAME VERSION"))
		return 1;
	long long v;
	if (ctl_parse_uint(c->argv[1], 10, INT64_MAX, &v) < 0 || v == 0)
		return ctl_fail("VERSION must be a positive integer");
	char path[340];
	snprintf(path, sizeof(path), "/v1/rollback/%s?version=%lld", c->argv[0], v);
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "POST", path, "", 0, NULL, NULL, &resp, &j))
		return 1;
	if (c->json)
		ctl_print_json(j);
	else
		printf("%s: version %lld (the value of version %lld)\n", c->argv[0],
		       (long long)json_integer_value(json_object_get(j, "version")), v);
	ctl_check_applied(c, &resp, j);
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int cmd_rotate(struct ctl *c)
{
	static const struct option o[] = {
	    {"generate", no_argument, NULL, 'g'},        {"length", required_argument, NULL, 'l'},
	    {"charset", required_argument, NULL, 'c'},   {"print", no_argument, NULL, 'p'},
	    {"every", required_argument, NULL, 'e'},     {"exec", required_argument, NULL, 'x'},
	    {"from-file", required_argument, NULL, 'f'}, {"allow-empty", no_argument, NULL, 'E'},
	    {"keep-expiry", no_argument, NULL, 'K'},     {0}};
	const char *usage = "rotate NAME (--generate [--length N] [--charset alnum|hex|base64|"
	                    "ascii] [--print] | [--from-file F] [--allow-empty]) [--keep-expiry] "
	                    "[--every DUR [--exec CMD]]";
	bool gen = false, print = false, allow_empty = false, keep_expiry = false;
	long long length = 32, every = -1;
	const char *charset = NULL, *exec = NULL, *file = NULL;
	int ch;
	while ((ch = getopt_long(c->argc, c->argv, "", o, NULL)) != -1) {
		switch (ch) {
		case 'g':
			gen = true;
			break;
		case 'l':
			if (ctl_parse_uint(optarg, 10, 4096, &length) < 0 || length == 0)
				return ctl_fail("--length must be 1..4096");
			break;
		case 'c':
			charset = optarg;
			break;
		case 'p':
			print = true;
			break;
		case 'e':
			if (strcmp(optarg, "0") == 0)
				every = 0;
			else if (ctl_parse_duration(optarg, &every) < 0)
				return ctl_fail(
				    "--every must be a duration: N[s|m|h|d] (0: remove)");
			break;
		case 'x':
			exec = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'E':
			allow_empty = true;
			break;
		case 'K':
			keep_expiry = true;
			break;
		default:
			return ctl_fail("usage: secretctl %s", usage);
		}
	}
	c->argc -= optind;
	c->argv += optind;
	if (ctl_need_name(c, 1, usage))
		return 1;
	const char *name = c->argv[0];
	if (every >= 0) {
		if (every > 0 && !gen)
			return ctl_fail(
			    "a schedule (--every) needs --generate: the daemon makes the "
			    "values");
		if (print || file || keep_expiry)
			return ctl_fail("--every cannot be combined with --print, --from-file or "
			                "--keep-expiry");
	} else if (exec) {
		return ctl_fail("--exec is only for scheduled rotations (--every)");
	}
	if (!gen && every < 0) {
		struct ctl_put p = {
		    .file = file, .allow_empty = allow_empty, .keep_expiry = keep_expiry};
		return ctl_put_value(c, name, &p);
	}
	if (gen && file)
		return ctl_fail("give --generate or --from-file, not both");
	if (allow_empty)
		return ctl_fail("--allow-empty is for a value from stdin or --from-file");
	json_t *body = json_pack("{s:b, s:I, s:b}", "generate", gen, "length", (json_int_t)length,
	                         "print", print);
	if (charset)
		json_object_set_new(body, "charset", json_string(charset));
	if (every >= 0)
		json_object_set_new(body, "every", json_integer(every));
	if (exec)
		json_object_set_new(body, "exec", json_string(exec));
	if (keep_expiry)
		json_object_set_new(body, "keep_expiry", json_true());
	char path[320];
	snprintf(path, sizeof(path), "/v1/rotate/%s", name);
	struct client_resp resp;
	json_t *j = NULL;
	int r = ctl_call(c, false, "POST", path, NULL, 0, NULL, body, &resp, print ? NULL : &j);
	json_decref(body);
	if (r)
		return r;
	if (print) {
		r = fwrite(resp.body, 1, resp.len, stdout) == resp.len ? 0 : 1;
		client_resp_free(&resp);
		return r;
	}
	if (c->json) {
		ctl_print_json(j);
	} else if (every > 0) {
		char tb[32];
		printf("%s: rotates every %llds, next at %s\n", name, every,
		       ctl_time(json_integer_value(json_object_get(j, "next")), tb, sizeof(tb)));
	} else if (every == 0) {
		printf("%s: schedule removed\n", name);
	} else {
		char note[64];
		ctl_expiry_note(j, keep_expiry, note, sizeof(note));
		printf("%s: version %lld (generated, %lld %s characters)%s\n", name,
		       (long long)json_integer_value(json_object_get(j, "version")), length,
		       charset ? charset : "alnum", note);
	}
	ctl_check_applied(c, &resp, j);
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int cmd_schedules(struct ctl *c)
{
	if (c->argc != 1)
		return ctl_fail("usage: secretctl schedules [--json]");
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "GET", "/v1/schedules", NULL, 0, NULL, NULL, &resp, &j))
		return 1;
	if (c->json) {
		ctl_print_json(j);
	} else {
		size_t i;
		json_t *v;
		char t1[32], t2[32];
		printf("%-30s %-20s %8s %-20s %s\n", "NAME", "EXPIRES", "EVERY", "NEXT", "EXEC");
		json_array_foreach(json_object_get(j, "schedules"), i, v)
		{
			json_int_t ex = json_integer_value(json_object_get(v, "expires"));
			json_int_t ev = json_integer_value(json_object_get(v, "every"));
			const char *x = json_string_value(json_object_get(v, "exec"));
			printf("%-30s %-20s %7llds %-20s %s\n",
			       json_string_value(json_object_get(v, "name")),
			       ex ? ctl_time(ex, t1, sizeof(t1)) : "-", (long long)ev,
			       ev ? ctl_time(json_integer_value(json_object_get(v, "next")), t2,
			                     sizeof(t2))
			          : "-",
			       x ? x : "-");
		}
	}
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static void ctl_audit_print(struct ctl *c, json_t *rec)
{
	if (c->json) {
		char *s = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
		if (s)
			printf("%s\n", s);
		free(s);
		return;
	}
	char tb[32];
	const char *sname = json_string_value(json_object_get(rec, "secret"));
	long long ver = json_integer_value(json_object_get(rec, "version"));
	char sv[300];
	if (sname && ver)
		snprintf(sv, sizeof(sv), "%s@%lld", sname, ver);
	else
		snprintf(sv, sizeof(sv), "%s", sname ? sname : "-");
	const char *exe = json_string_value(json_object_get(rec, "exe"));
	const char *detail = json_string_value(json_object_get(rec, "detail"));
	long long count = json_integer_value(json_object_get(rec, "count"));
	char res[64];
	snprintf(res, sizeof(res), count > 1 ? "%s x%lld" : "%s",
	         json_string_value(json_object_get(rec, "result")), count);
	printf("%6lld %s %-20s %7lld %-24s %-12s %-32s %s%s%s\n",
	       (long long)json_integer_value(json_object_get(rec, "seq")),
	       ctl_time(json_integer_value(json_object_get(rec, "time")), tb, sizeof(tb)),
	       json_string_value(json_object_get(rec, "actor")),
	       (long long)json_integer_value(json_object_get(rec, "pid")), exe && *exe ? exe : "-",
	       json_string_value(json_object_get(rec, "action")), sv, res, detail ? "  " : "",
	       detail ? detail : "");
}

/* Prints what the daemon holds unwritten; true when the audit is not writable now. */
static bool ctl_audit_live(json_t *live)
{
	if (!json_is_object(live) || json_is_true(json_object_get(live, "writable")))
		return false;
	const char *err = json_string_value(json_object_get(live, "error"));
	printf("audit NOT WRITABLE now%s%s: %lld records buffered, %lld events refused since the "
	       "daemon started (FUSE opens and workload reads are refused until it can write)\n",
	       err ? " (" : "", err ? err : "",
	       (long long)json_integer_value(json_object_get(live, "pending")),
	       (long long)json_integer_value(json_object_get(live, "refused_since_start")));
	return true;
}

static int ctl_audit_verify(struct ctl *c)
{
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "POST", "/v1/audit/verify", "", 0, NULL, NULL, &resp, &j))
		return 1;
	bool ok = json_is_true(json_object_get(j, "ok"));
	json_t *live = json_object_get(j, "live");
	bool failing = json_is_object(live) && !json_is_true(json_object_get(live, "writable"));
	if (c->json) {
		ctl_print_json(j);
	} else if (ok) {
		long long records = json_integer_value(json_object_get(j, "records"));
		long long events = json_integer_value(json_object_get(j, "events"));
		printf("audit chain ok: %lld records", records);
		if (events && events != records)
			printf(" (%lld events, identical ones coalesced)", events);
		printf("\n");
		json_t *cp = json_object_get(j, "checkpoint");
		if (json_is_object(cp)) {
			char tb[32];
			printf("%lld records pruned before seq %lld (signed checkpoint, last prune "
			       "%s)\n",
			       (long long)json_integer_value(json_object_get(cp, "pruned")),
			       (long long)json_integer_value(json_object_get(cp, "seq")) + 1,
			       ctl_time(json_integer_value(json_object_get(cp, "time")), tb,
			                sizeof(tb)));
		}
		long long refused = json_integer_value(json_object_get(j, "refused"));
		if (refused)
			printf("%lld events refused while the audit could not be written (records "
			       "with "
			       "result refused-audit)\n",
			       refused);
		ctl_audit_live(live);
	} else {
		printf("audit chain BROKEN at record %lld: %s\n",
		       (long long)json_integer_value(json_object_get(j, "bad_seq")),
		       json_string_value(json_object_get(j, "reason")));
		json_t *rec = json_object_get(j, "record");
		if (rec)
			ctl_audit_print(c, rec);
		ctl_audit_live(live);
	}
	json_decref(j);
	client_resp_free(&resp);
	return ok && !failing ? 0 : 1;
}

static int cmd_audit(struct ctl *c)
{
	static const struct option o[] = {
	    {"since", required_argument, NULL, 's'}, {"follow", no_argument, NULL, 'f'}, {0}};
	const char *usage = "audit [verify] [--json] [--since SEQ|DURATION|YYYY-MM-DDTHH:MM:SSZ] "
	                    "[--follow]";
	const char *since = NULL;
	bool follow = false;
	int ch;
	while ((ch = getopt_long(c->argc, c->argv, "", o, NULL)) != -1) {
		if (ch == 's')
			since = optarg;
		else if (ch == 'f')
			follow = true;
		else
			return ctl_fail("usage: secretctl %s", usage);
	}
	c->argc -= optind;
	c->argv += optind;
	if (c->argc == 1 && strcmp(c->argv[0], "verify") == 0 && !since && !follow)
		return ctl_audit_verify(c);
	if (c->argc != 0)
		return ctl_fail("usage: secretctl %s", usage);
	char arg[64] = "";
	long long d;
	if (since) {
		/* A plain number is a sequence number; a duration means "that long ago". */
		if (strspn(since, "0123456789") == strlen(since) && *since)
			snprintf(arg, sizeof(arg), "%s", since);
		else if (ctl_parse_duration(since, &d) == 0)
			snprintf(arg, sizeof(arg), "@%lld", (long long)time(NULL) - d);
		else if (strlen(since) < 40 && strspn(since, "0123456789-T:Z") == strlen(since))
			snprintf(arg, sizeof(arg), "%s", since);
		else
			return ctl_fail("--since must be a sequence number, a duration (10m) or "
			                "YYYY-MM-DDTHH:MM:SSZ");
	}
	if (!c->json)
		printf("%6s %-20s %-20s %7s %-24s %-12s %-32s %s\n", "SEQ", "TIME", "ACTOR", "PID",
		       "EXE", "ACTION", "SECRET@VERSION", "RESULT");
	for (;;) {
		char path[128];
		snprintf(path, sizeof(path), "/v1/audit%s%s", *arg ? "?since=" : "", arg);
		struct client_resp resp;
		json_t *j = NULL;
		if (ctl_call(c, false, "GET", path, NULL, 0, NULL, NULL, &resp, &j))
			return 1;
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(j, "records"), i, v) ctl_audit_print(c, v);
		long long last = json_integer_value(json_object_get(j, "last"));
		json_decref(j);
		client_resp_free(&resp);
		if (!follow)
			return 0;
		fflush(stdout);
		if (last > 0)
			snprintf(arg, sizeof(arg), "%lld", last + 1);
		usleep(500 * 1000);
	}
}

static int cmd_scan(struct ctl *c)
{
	return migrate_scan_main(c->argc, c->argv, c->socket, c->json);
}

static int cmd_import_env(struct ctl *c)
{
	return migrate_import_env_main(c->argc, c->argv, c->socket, c->json);
}

static int cmd_exec(struct ctl *c)
{
	return migrate_exec_main(c->argc, c->argv, c->socket);
}

static int cmd_cdi(struct ctl *c)
{
	return cdi_main(c->argc, c->argv, c->socket);
}

static const struct ctl_cmd ctl_cmds[] = {
    {"put", "NAME [--from-file F] [--keep N] [--expires DUR | --keep-expiry] [--allow-empty]",
     "store a new version (value from stdin or a file; never empty unless --allow-empty)", false,
     cmd_put},
    {"get", "NAME [--version N]", "print a value (current or version N)", false, cmd_get},
    {"ls", "[--self]", "list secrets (--self: those granted to this container)", false, cmd_ls},
    {"versions", "NAME", "list a secret's versions", false, cmd_versions},
    {"rm", "NAME", "delete a secret, its versions and its exact grants", false, cmd_rm},
    {"key", "rotate [--no-wait] | status",
     "add a master key generation and re-wrap every data key (in batches); show generations", false,
     cmd_key},
    {"rollback", "NAME VERSION", "make an old version's value current (as a new version)", false,
     cmd_rollback},
    {"rotate",
     "NAME --generate [--length N] [--charset C] [--print] [--every DUR [--exec CMD]] "
     "[--keep-expiry]",
     "a new random value made by the daemon, now or on a schedule (or a put from a file)", false,
     cmd_rotate},
    {"schedules", "", "list expiries and rotation schedules", false, cmd_schedules},
    {"audit", "[verify] [--since T] [--follow]",
     "print the audit trail, or check its hash chain (exit 1 when broken)", false, cmd_audit},
    {"grant", "NAME SELECTOR [--path P] [--mode M] [--uid U] [--gid G] [--previous]",
     "give containers matching SELECTOR a secret (or PREFIX/*)", false, cmd_grant},
    {"revoke", "NAME SELECTOR", "take a grant back (mounts update at once)", false, cmd_revoke},
    {"grants", "", "list grants", false, cmd_grants},
    {"containers", "", "list the containers the broker knows", false, cmd_containers},
    {"whoami", "", "(in a container) the identity the broker sees", true, cmd_whoami},
    {"read", "NAME", "(in a container) print a granted secret", true, cmd_read},
    {"mount", "[PATH]", "(in a container) mount my secrets at PATH (/run/secrets)", true,
     cmd_mount},
    {"scan", "PATH... [--proc]", MIGRATE_SCAN_HELP, false, cmd_scan},
    {"import-env", "(FILE | --compose F --service S) --prefix P [--grant SEL]", MIGRATE_IMPORT_HELP,
     false, cmd_import_env},
    {"exec", "[--dir D] [--env NAME=SECRET]... -- CMD [ARGS]", MIGRATE_EXEC_HELP, true, cmd_exec},
    {"cdi", CDI_ARGS, CDI_HELP, false, cmd_cdi},
};

static void ctl_usage(FILE *f)
{
	fprintf(f, "usage: secretctl [--socket PATH] [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		fprintf(f, "  %-10s %-28s %s\n", ctl_cmds[i].name, ctl_cmds[i].args,
		        ctl_cmds[i].help);
	fprintf(f, "\nThe socket is --socket, else $SECRETD_SOCKET, else /run/secretd/admin.sock\n"
	           "(workload commands: $SECRETD_WORKLOAD_SOCKET, $SECRETD_SOCKET, then\n"
	           "/run/secretd/workload.sock). Values are never taken from the command line.\n"
	           "'secretctl COMMAND --help' shows one command.\n");
}

int main(int argc, char **argv)
{
	struct ctl c = {0};
	int i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			c.socket = argv[++i];
		else if (!strncmp(argv[i], "--socket=", 9))
			c.socket = argv[i] + 9;
		else if (!strcmp(argv[i], "--json"))
			c.json = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			ctl_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("secretctl %s\n", SECRETD_VERSION);
			return 0;
		} else
			break;
	}
	if (i >= argc) {
		ctl_usage(stderr);
		return 2;
	}
	/* Options after the command: --json and --socket anywhere, --help for the command. */
	char **args = calloc((size_t)(argc - i) + 1, sizeof(char *));
	if (!args)
		return ctl_fail("out of memory");
	int n = 0;
	bool help = false;
	for (int k = i; k < argc; k++) {
		if (!strcmp(argv[k], "--")) {
			/* Everything after "--" belongs to the command (exec's CMD ARGS). */
			while (k < argc)
				args[n++] = argv[k++];
			break;
		}
		if (!strcmp(argv[k], "--json"))
			c.json = true;
		else if (!strcmp(argv[k], "--socket") && k + 1 < argc)
			c.socket = argv[++k];
		else if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h"))
			help = true;
		else
			args[n++] = argv[k];
	}
	c.argc = n;
	c.argv = args;
	for (size_t k = 0; k < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); k++) {
		if (strcmp(args[0], ctl_cmds[k].name) != 0)
			continue;
		if (help) {
			printf("usage: secretctl %s %s\n  %s\n", ctl_cmds[k].name, ctl_cmds[k].args,
			       ctl_cmds[k].help);
			free(args);
			return 0;
		}
		if (sodium_init() < 0)
			return ctl_fail("libsodium failed to initialise");
		int rc = ctl_cmds[k].run(&c);
		free(args);
		return rc == 0 && c.unapplied ? CTL_EXIT_UNAPPLIED : rc;
	}
	int rc = ctl_fail("unknown command '%s' (see secretctl --help)", args[0]);
	free(args);
	return rc == 1 ? 2 : rc;
}
