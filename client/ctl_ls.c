/* secretctl ls: the listing of secrets (admin socket) or of this container's names (--self),
 * with --filter (name=GLOB, expires=true|false, label=KEY, label=KEY=VALUE; all must match) and
 * --format (a template over the fields below, ctl_format.c, or "json": an array in the JSON
 * shape of docs/cli.md). */
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl.h"
#include "client/ctl_format.h"
#include "common/labels.h"
#include "common/timespec.h"

#define CTL_LS_FILTERS_MAX 16 /* --filter options to one ls */
#define CTL_LS_LINE_MAX 65536 /* bytes of one formatted line */

/* The fields a --format template may name, in the order of ctl_ls_values. */
enum {
	CTL_LS_NAME,
	CTL_LS_VERSION,
	CTL_LS_VERSIONS,
	CTL_LS_CREATED,
	CTL_LS_UPDATED,
	CTL_LS_EXPIRES,
	CTL_LS_CREATED_UNIX,
	CTL_LS_UPDATED_UNIX,
	CTL_LS_EXPIRES_UNIX,
	CTL_LS_LABELS,
	CTL_LS_NFIELDS
};
static const struct ctl_format_field ctl_ls_fields[CTL_LS_NFIELDS] = {
    {"Name", false, false},       {"Version", true, false},     {"Versions", true, false},
    {"Created", false, false},    {"Updated", false, false},    {"Expires", false, false},
    {"CreatedUnix", true, false}, {"UpdatedUnix", true, false}, {"ExpiresUnix", true, false},
    {"Labels", false, true},
};

enum ctl_ls_filter_kind { CTL_LS_BY_NAME, CTL_LS_BY_EXPIRES, CTL_LS_BY_LABEL };
struct ctl_ls_filter {
	enum ctl_ls_filter_kind kind;
	const char *glob; /* name=GLOB */
	bool expires;     /* expires=BOOL */
	char key[LABELS_KEY_MAX + 1];
	const char *value; /* label=KEY=VALUE, or NULL: label=KEY (any value) */
};

/* One row of the listing: an element of the API's "secrets" (an object, or a bare name with
 * --self) in the JSON shape convention. New reference. */
static json_t *ctl_ls_row(json_t *v)
{
	if (json_is_string(v))
		return json_pack("{s:O}", "name", v);
	json_int_t ex = json_integer_value(json_object_get(v, "expires"));
	json_int_t cr = json_integer_value(json_object_get(v, "created"));
	json_int_t up = json_integer_value(json_object_get(v, "updated"));
	char tc[TIMESPEC_FORMAT_LEN], tu[TIMESPEC_FORMAT_LEN], te[TIMESPEC_FORMAT_LEN];
	json_t *labels = json_object_get(v, "labels");
	return json_pack("{s:O, s:O, s:O, s:s, s:I, s:s, s:I, s:s?, s:I, s:o}", "name",
	                 json_object_get(v, "name"), "current", json_object_get(v, "current"),
	                 "versions", json_object_get(v, "versions"), "created",
	                 ctl_time(cr, tc, sizeof(tc)), "created_unix", cr, "updated",
	                 ctl_time(up, tu, sizeof(tu)), "updated_unix", up, "expires",
	                 ex ? ctl_time(ex, te, sizeof(te)) : NULL, "expires_unix", ex, "labels",
	                 json_is_object(labels) ? json_deep_copy(labels) : json_object());
}

static bool ctl_ls_match(json_t *row, const struct ctl_ls_filter *f, size_t nf)
{
	const char *name = json_string_value(json_object_get(row, "name"));
	json_t *labels = json_object_get(row, "labels");
	for (size_t i = 0; i < nf; i++) {
		const char *lv = json_string_value(json_object_get(labels, f[i].key));
		switch (f[i].kind) {
		case CTL_LS_BY_NAME:
			if (!name || fnmatch(f[i].glob, name, 0) != 0)
				return false;
			break;
		case CTL_LS_BY_EXPIRES:
			if ((json_integer_value(json_object_get(row, "expires_unix")) > 0) !=
			    f[i].expires)
				return false;
			break;
		case CTL_LS_BY_LABEL:
			if (!lv || (f[i].value && strcmp(lv, f[i].value) != 0))
				return false;
			break;
		}
	}
	return true;
}

/* name=GLOB, expires=true|false, label=KEY or label=KEY=VALUE (docker's filter syntax). */
static int ctl_ls_filter_parse(const char *s, struct ctl_ls_filter *f)
{
	memset(f, 0, sizeof(*f));
	if (strncmp(s, "name=", 5) == 0 && s[5]) {
		f->kind = CTL_LS_BY_NAME;
		f->glob = s + 5;
		return 0;
	}
	if (strcmp(s, "expires=true") == 0 || strcmp(s, "expires=false") == 0) {
		f->kind = CTL_LS_BY_EXPIRES;
		f->expires = s[8] == 't';
		return 0;
	}
	if (strncmp(s, "label=", 6) == 0) {
		const char *k = s + 6, *eq = strchr(k, '=');
		size_t klen = eq ? (size_t)(eq - k) : strlen(k);
		if (labels_key_check(k, klen, NULL) < 0 ||
		    (eq && labels_value_check(eq + 1, strlen(eq + 1), NULL) < 0))
			return -1;
		f->kind = CTL_LS_BY_LABEL;
		memcpy(f->key, k, klen);
		f->value = eq ? eq + 1 : NULL;
		return 0;
	}
	return -1;
}

static int ctl_ls_strcmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A row's labels for ctl_format: {{index .Labels "KEY"}} and {{json .Labels}}. */
struct ctl_ls_lookup {
	json_t *labels;
	char *json; /* the object's JSON text, made on first use */
};

static const char *ctl_ls_lookup(void *ud, size_t field, const char *key)
{
	struct ctl_ls_lookup *l = ud;
	if (field != CTL_LS_LABELS)
		return NULL;
	if (key)
		return json_string_value(json_object_get(l->labels, key));
	if (!l->json)
		l->json = json_dumps(l->labels, JSON_COMPACT | JSON_SORT_KEYS);
	return l->json;
}

/* {{.Labels}}: "KEY=VALUE,KEY2=VALUE2", sorted by key (docker's form), into a malloc'd string. */
static char *ctl_ls_labels_text(json_t *labels)
{
	size_t size = 1, i = 0;
	const char *k;
	json_t *v;
	json_object_foreach(labels, k, v) size += strlen(k) + json_string_length(v) + 2;
	const char **keys = calloc(json_object_size(labels) + 1, sizeof(*keys));
	char *out = malloc(size);
	if (!keys || !out) {
		free(keys);
		free(out);
		return NULL;
	}
	json_object_foreach(labels, k, v) keys[i++] = k;
	qsort(keys, i, sizeof(*keys), ctl_ls_strcmp);
	size_t o = 0;
	out[0] = '\0';
	for (size_t j = 0; j < i; j++)
		o += (size_t)snprintf(out + o, size - o, "%s%s=%s", j ? "," : "", keys[j],
		                      json_string_value(json_object_get(labels, keys[j])));
	free(keys);
	return out;
}

/* Prints one row through the template. */
static int ctl_ls_print_format(const struct ctl_format *fmt, json_t *row, char *line)
{
	char nums[5][24]; /* the number fields' texts */
	const char *vals[CTL_LS_NFIELDS] = {0};
	vals[CTL_LS_NAME] = json_string_value(json_object_get(row, "name"));
	vals[CTL_LS_CREATED] = json_string_value(json_object_get(row, "created"));
	vals[CTL_LS_UPDATED] = json_string_value(json_object_get(row, "updated"));
	vals[CTL_LS_EXPIRES] = json_string_value(json_object_get(row, "expires"));
	static const struct {
		int field;
		const char *key;
	} num[] = {{CTL_LS_VERSION, "current"},
	           {CTL_LS_VERSIONS, "versions"},
	           {CTL_LS_CREATED_UNIX, "created_unix"},
	           {CTL_LS_UPDATED_UNIX, "updated_unix"},
	           {CTL_LS_EXPIRES_UNIX, "expires_unix"}};
	for (size_t i = 0; i < sizeof(num) / sizeof(num[0]); i++) {
		json_t *v = json_object_get(row, num[i].key);
		if (!json_is_integer(v))
			continue;
		snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)json_integer_value(v));
		vals[num[i].field] = nums[i];
	}
	struct ctl_ls_lookup lk = {.labels = json_object_get(row, "labels")};
	char *ltext = ctl_ls_labels_text(lk.labels);
	vals[CTL_LS_LABELS] = ltext;
	char *whole = json_dumps(row, JSON_COMPACT | JSON_SORT_KEYS);
	size_t n;
	int rc =
	    ctl_format_render_map(fmt, vals, ctl_ls_lookup, &lk, whole, line, CTL_LS_LINE_MAX, &n);
	free(whole);
	free(ltext);
	free(lk.json);
	if (rc < 0)
		return ctl_fail("--format: a line longer than %d bytes", CTL_LS_LINE_MAX);
	printf("%s\n", line);
	return 0;
}

static void ctl_ls_print_table(json_t *v)
{
	char tb[TIMESPEC_FORMAT_LEN], te[TIMESPEC_FORMAT_LEN];
	json_int_t ex = json_integer_value(json_object_get(v, "expires"));
	printf("%-40s %8lld %8lld  %-20s  %s\n", json_string_value(json_object_get(v, "name")),
	       (long long)json_integer_value(json_object_get(v, "current")),
	       (long long)json_integer_value(json_object_get(v, "versions")),
	       ctl_time(json_integer_value(json_object_get(v, "updated")), tb, sizeof(tb)),
	       ex > 0 ? ctl_time(ex, te, sizeof(te)) : "-");
}

struct ctl_ls_opts {
	bool self;
	const char *format; /* NULL, "json" or a template */
	struct ctl_ls_filter filters[CTL_LS_FILTERS_MAX];
	size_t nfilters;
};

static int ctl_ls_print(struct ctl *c, const struct ctl_ls_opts *o, json_t *secrets,
                        json_t *templates, const struct ctl_format *fmt)
{
	bool json_out = o->format && strcmp(o->format, "json") == 0;
	json_t *kept = json_array(), *rows = json_array();
	char *line = fmt ? malloc(CTL_LS_LINE_MAX) : NULL;
	int rc = 0;
	if (!kept || !rows || (fmt && !line)) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	size_t i;
	json_t *v;
	json_array_foreach(secrets, i, v)
	{
		json_t *row = ctl_ls_row(v);
		if (!row || !ctl_ls_match(row, o->filters, o->nfilters)) {
			json_decref(row);
			continue;
		}
		json_array_append(kept, v);
		json_array_append_new(rows, row);
	}
	if (json_out) {
		ctl_print_json(rows);
	} else if (fmt) {
		json_array_foreach(rows, i,
		                   v) if ((rc = ctl_ls_print_format(fmt, v, line)) != 0) break;
	} else if (c->json && o->self) {
		json_t *j = json_pack("{s:O, s:o}", "secrets", kept, "templates",
		                      templates ? json_incref(templates) : json_array());
		ctl_print_json(j);
		json_decref(j);
	} else if (c->json) {
		json_t *j = json_pack("{s:O}", "secrets", kept);
		ctl_print_json(j);
		json_decref(j);
	} else if (o->self) {
		json_array_foreach(kept, i, v) printf("%s\n", json_string_value(v));
		/* the rendered files this container is shown, as grants name them (read tmpl:NAME)
		 */
		json_array_foreach(templates, i, v)
		    printf("tmpl:%s\n", json_string_value(json_object_get(v, "name")));
	} else {
		printf("%-40s %8s %8s  %-20s  %s\n", "NAME", "VERSION", "KEPT", "UPDATED",
		       "EXPIRES");
		json_array_foreach(kept, i, v) ctl_ls_print_table(v);
	}
out:
	free(line);
	json_decref(kept);
	json_decref(rows);
	return rc;
}

int ctl_cmd_ls(struct ctl *c)
{
	static const struct option opts[] = {{"self", no_argument, NULL, 's'},
	                                     {"filter", required_argument, NULL, 'f'},
	                                     {"format", required_argument, NULL, 'F'},
	                                     {0}};
	const char *usage = "usage: secretctl ls [--self] "
	                    "[--filter name=GLOB|expires=true|false|label=KEY[=VALUE]]... "
	                    "[--format TEMPLATE|json]";
	struct ctl_ls_opts o = {0};
	int ch;
	while ((ch = getopt_long(c->argc, c->argv, "", opts, NULL)) != -1) {
		if (ch == 's')
			o.self = true;
		else if (ch == 'F')
			o.format = optarg;
		else if (ch == 'f' && o.nfilters == CTL_LS_FILTERS_MAX)
			return ctl_fail("at most %d --filter options", CTL_LS_FILTERS_MAX);
		else if (ch == 'f' && ctl_ls_filter_parse(optarg, &o.filters[o.nfilters]) == 0)
			o.nfilters++;
		else if (ch == 'f')
			return ctl_fail("--filter must be name=GLOB, expires=true, expires=false, "
			                "label=KEY or label=KEY=VALUE");
		else
			return ctl_fail("%s", usage);
	}
	if (optind != c->argc)
		return ctl_fail("%s", usage);
	struct ctl_format *fmt = NULL;
	if (o.format && strcmp(o.format, "json") != 0) {
		fmt = malloc(sizeof(*fmt));
		char err[CTL_FORMAT_ERR_MAX];
		if (!fmt)
			return ctl_fail("out of memory");
		if (ctl_format_parse(o.format, strlen(o.format), ctl_ls_fields, CTL_LS_NFIELDS, fmt,
		                     err) < 0) {
			free(fmt);
			return ctl_fail("--format: %s (fields: Name, Version, Versions, Created, "
			                "Updated, Expires, CreatedUnix, UpdatedUnix, ExpiresUnix, "
			                "Labels)",
			                err);
		}
	}
	struct client_resp resp;
	json_t *j = NULL;
	int rc = 1;
	if (ctl_call(c, o.self, "GET", o.self ? "/v1/self/secrets" : "/v1/secrets", NULL, 0, NULL,
	             NULL, &resp, &j) == 0) {
		/* in a container, the rendered files too; a daemon without them (404) lists none */
		json_t *t = NULL;
		struct client_resp tr;
		if (o.self && client_request_json(client_socket(c->socket, true), "GET",
		                                  "/v1/self/templates", NULL, &tr, &t, NULL) == 0) {
			if (tr.status != 200) {
				json_decref(t);
				t = NULL;
			}
			client_resp_free(&tr);
		}
		rc = ctl_ls_print(c, &o, json_object_get(j, "secrets"),
		                  json_object_get(t, "templates"), fmt);
		json_decref(t);
		json_decref(j);
		client_resp_free(&resp);
	}
	free(fmt);
	return rc;
}
