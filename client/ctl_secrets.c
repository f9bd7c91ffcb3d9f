/* secretctl: the commands on secrets and their versions: put, get, versions, rm, rollback,
 * rotate (a generated value, now or on a schedule) and schedules (ls: ctl_ls.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/ctl.h"
#include "common/labels.h"
#include "common/limits.h"
#include "common/secret.h"
#include "common/timespec.h"

/* The longest request path a put sends (its labels travel in the query). */
#define CTL_PUT_URL_MAX (16 * 1024)

/* What a put asks for besides the value. */
struct ctl_put {
	const char *file;    /* NULL = stdin */
	long long keep;      /* 0 = unchanged */
	const char *expires; /* a time or a duration from now (common/timespec), NULL = none */
	bool allow_empty;
	bool keep_expiry; /* without ttl: keep the expiry instead of clearing it */
	json_t *labels;   /* --label KEY=VALUE..., an object, or NULL */
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
	uint8_t *val = NULL;
	size_t len = 0;
	if (ctl_read_input(p->file, "value", SECRETD_VALUE_MAX_CEILING, &val, &len))
		return 1;
	int r;
	if (len == 0 && !p->allow_empty) {
		secret_bytes_free(val);
		return ctl_fail("refusing to store an empty value (use --allow-empty)");
	}
	/* ?labels= is the object as JSON, percent-encoded: room for every byte encoded */
	char *ljson = p->labels ? json_dumps(p->labels, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	size_t cap = 600 + (ljson ? 3 * strlen(ljson) + 16 : 0);
	char *path = malloc(cap);
	if (!path || (p->labels && !ljson)) {
		free(ljson);
		free(path);
		secret_bytes_free(val);
		return ctl_fail("out of memory");
	}
	int n = snprintf(path, cap, "/v1/secrets/%s", name);
	const char *sep = "?";
	if (p->keep) {
		n += snprintf(path + n, cap - (size_t)n, "%skeep=%lld", sep, p->keep);
		sep = "&";
	}
	if (p->expires) {
		/* the text as given: the daemon resolves it against its own clock */
		char esc[3 * TIMESPEC_TEXT_MAX + 1];
		if (ctl_query_escape(p->expires, esc, sizeof(esc)) < 0) {
			free(ljson);
			free(path);
			secret_bytes_free(val);
			return ctl_fail("--expires is too long");
		}
		n += snprintf(path + n, cap - (size_t)n, "%sexpires=%s", sep, esc);
		sep = "&";
	}
	if (p->keep_expiry) {
		n += snprintf(path + n, cap - (size_t)n, "%skeep_expiry=1", sep);
		sep = "&";
	}
	if (p->allow_empty) {
		n += snprintf(path + n, cap - (size_t)n, "%sallow_empty=1", sep);
		sep = "&";
	}
	if (ljson) {
		n += snprintf(path + n, cap - (size_t)n, "%slabels=", sep);
		ctl_query_escape(ljson, path + n, cap - (size_t)n); /* fits: cap counted it */
		free(ljson);
		/* the request line must fit the daemon's per-connection memory (64 KiB) */
		if (strlen(path) > CTL_PUT_URL_MAX) {
			free(path);
			secret_bytes_free(val);
			return ctl_fail(
			    "the labels are too long to go with a put: put the value, then "
			    "set them with secretctl label %s KEY=VALUE...",
			    name);
		}
	}
	struct client_resp resp;
	json_t *j = NULL;
	r = ctl_call(c, false, "PUT", path, val, len, "application/octet-stream", NULL, &resp, &j);
	secret_bytes_free(val);
	free(path);
	if (r)
		return r;
	char note[64];
	ctl_expiry_note(j, p->expires || p->keep_expiry, note, sizeof(note));
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

int ctl_cmd_put(struct ctl *c)
{
	static const struct option o[] = {{"from-file", required_argument, NULL, 'f'},
	                                  {"keep", required_argument, NULL, 'k'},
	                                  {"expires", required_argument, NULL, 'e'},
	                                  {"allow-empty", no_argument, NULL, 'E'},
	                                  {"keep-expiry", no_argument, NULL, 'K'},
	                                  {"label", required_argument, NULL, 'l'},
	                                  {0}};
	const char *usage =
	    "put NAME [--from-file F] [--keep N] [--expires WHEN | --keep-expiry] "
	    "[--allow-empty] [--label KEY=VALUE]...  (value on stdin, never in argv)";
	struct ctl_put p = {0};
	const char *largs[LABELS_MAX];
	size_t nl = 0;
	int ch, rc;
	while ((ch = getopt_long(c->argc, c->argv, "", o, NULL)) != -1) {
		if (ch == 'l' && nl == LABELS_MAX)
			return ctl_fail("at most %d labels on a secret", LABELS_MAX);
		else if (ch == 'l')
			largs[nl++] = optarg;
		else if (ch == 'f')
			p.file = optarg;
		else if (ch == 'E')
			p.allow_empty = true;
		else if (ch == 'K')
			p.keep_expiry = true;
		else if (ch == 'k' && ctl_parse_uint(optarg, 10, 1000, &p.keep) == 0 && p.keep > 0)
			continue;
		else if (ch == 'e' && ctl_parse_expires(optarg) == 0)
			p.expires = optarg;
		else if (ch == 'k')
			return ctl_fail("--keep must be 1..1000");
		else if (ch == 'e')
			return ctl_fail(
			    "--expires must be a duration from now (90s, 15m, 1h30m, 7d) "
			    "or a time (2026-12-24T10:00:00Z, @UNIX, now+1h)");
		else
			return ctl_fail("usage: secretctl %s", usage);
	}
	c->argc -= optind;
	c->argv += optind;
	if (ctl_need_name(c, 1, usage))
		return 1;
	if (p.expires && p.keep_expiry)
		return ctl_fail("give --expires (a new expiry) or --keep-expiry, not both");
	if (nl && (rc = ctl_labels_args(largs, nl, false, &p.labels, NULL)) != 0)
		return rc;
	rc = ctl_put_value(c, c->argv[0], &p);
	json_decref(p.labels);
	return rc;
}

int ctl_cmd_get(struct ctl *c)
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

int ctl_cmd_versions(struct ctl *c)
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

/* "KEY=VALUE,KEY2=VALUE2" (sorted, docker's form) or "(none)" for an answer's labels. */
static void ctl_labels_print(const char *name, json_t *labels)
{
	const char *k;
	json_t *v;
	size_t i = 0;
	printf("%s: labels ", name);
	/* the daemon's objects keep the store's order: sorted by key */
	json_object_foreach(labels, k, v)
	    printf("%s%s=%s", i++ ? "," : "", k, json_string_value(v));
	printf("%s\n", i ? "" : "(none)");
}

/* label NAME [KEY=VALUE | KEY-]...: POST /v1/labels/NAME; with no pair, prints the labels. */
int ctl_cmd_label(struct ctl *c)
{
	c->argc--;
	c->argv++;
	if (c->argc < 1)
		return ctl_fail("usage: secretctl label NAME [KEY=VALUE | KEY-]...");
	if (ctl_need_name(c, c->argc, "label NAME [KEY=VALUE | KEY-]..."))
		return 1;
	char path[320];
	struct client_resp resp;
	json_t *j = NULL;
	if (c->argc == 1) {
		snprintf(path, sizeof(path), "/v1/secrets/%s", c->argv[0]);
		if (ctl_call(c, false, "GET", path, NULL, 0, NULL, NULL, &resp, &j))
			return 1;
	} else {
		if ((size_t)c->argc - 1 > 2 * LABELS_MAX)
			return ctl_fail("at most %d labels on a secret", LABELS_MAX);
		json_t *set = NULL, *remove = NULL;
		if (ctl_labels_args((const char *const *)c->argv + 1, (size_t)c->argc - 1, true,
		                    &set, &remove))
			return 1;
		json_t *body = json_pack("{s:o, s:o}", "set", set, "remove", remove);
		if (!body)
			return ctl_fail("out of memory");
		snprintf(path, sizeof(path), "/v1/labels/%s", c->argv[0]);
		int r = ctl_call(c, false, "POST", path, NULL, 0, NULL, body, &resp, &j);
		json_decref(body);
		if (r)
			return r;
	}
	json_t *labels = json_object_get(j, "labels");
	if (c->json) {
		json_t *o = json_pack("{s:O, s:O}", "name", json_object_get(j, "name"), "labels",
		                      json_is_object(labels) ? labels : json_null());
		ctl_print_json(o);
		json_decref(o);
	} else
		ctl_labels_print(c->argv[0], labels);
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

int ctl_cmd_rm(struct ctl *c)
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

int ctl_cmd_rollback(struct ctl *c)
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

int ctl_cmd_rotate(struct ctl *c)
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
				return ctl_fail("--every must be a duration (90s, 15m, 1h30m, 7d; "
				                "0: remove)");
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
		char tb[32], db[TIMESPEC_DURATION_FORMAT_LEN];
		printf("%s: rotates every %s, next at %s\n", name,
		       ctl_duration(every, db, sizeof(db)),
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

int ctl_cmd_schedules(struct ctl *c)
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
		char t1[32], t2[32], db[TIMESPEC_DURATION_FORMAT_LEN];
		printf("%-30s %-20s %8s %-20s %s\n", "NAME", "EXPIRES", "EVERY", "NEXT", "EXEC");
		json_array_foreach(json_object_get(j, "schedules"), i, v)
		{
			json_int_t ex = json_integer_value(json_object_get(v, "expires"));
			json_int_t ev = json_integer_value(json_object_get(v, "every"));
			const char *x = json_string_value(json_object_get(v, "exec"));
			printf("%-30s %-20s %8s %-20s %s\n",
			       json_string_value(json_object_get(v, "name")),
			       ex ? ctl_time(ex, t1, sizeof(t1)) : "-",
			       ev ? ctl_duration(ev, db, sizeof(db)) : "-",
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
