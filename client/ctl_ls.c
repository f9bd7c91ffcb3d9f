/* secretctl ls: the listing of secrets (admin socket) or of this container's names (--self),
 * with --filter (name=GLOB, expires=true|false; all must match) and --format (a template over
 * the fields below, ctl_format.c, or "json": an array in the JSON shape of docs/cli.md). */
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl.h"
#include "client/ctl_format.h"
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
	CTL_LS_NFIELDS
};
static const struct ctl_format_field ctl_ls_fields[CTL_LS_NFIELDS] = {
    {"Name", false},       {"Version", true},     {"Versions", true},
    {"Created", false},    {"Updated", false},    {"Expires", false},
    {"CreatedUnix", true}, {"UpdatedUnix", true}, {"ExpiresUnix", true},
};

struct ctl_ls_filter {
	bool by_name; /* name=GLOB, else expires=BOOL */
	const char *glob;
	bool expires;
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
	return json_pack("{s:O, s:O, s:O, s:s, s:I, s:s, s:I, s:s?, s:I}", "name",
	                 json_object_get(v, "name"), "current", json_object_get(v, "current"),
	                 "versions", json_object_get(v, "versions"), "created",
	                 ctl_time(cr, tc, sizeof(tc)), "created_unix", cr, "updated",
	                 ctl_time(up, tu, sizeof(tu)), "updated_unix", up, "expires",
	                 ex ? ctl_time(ex, te, sizeof(te)) : NULL, "expires_unix", ex);
}

static bool ctl_ls_match(json_t *row, const struct ctl_ls_filter *f, size_t nf)
{
	const char *name = json_string_value(json_object_get(row, "name"));
	for (size_t i = 0; i < nf; i++) {
		if (f[i].by_name && (!name || fnmatch(f[i].glob, name, 0) != 0))
			return false;
		if (!f[i].by_name &&
		    (json_integer_value(json_object_get(row, "expires_unix")) > 0) != f[i].expires)
			return false;
	}
	return true;
}

static int ctl_ls_filter_parse(const char *s, struct ctl_ls_filter *f)
{
	if (strncmp(s, "name=", 5) == 0 && s[5]) {
		*f = (struct ctl_ls_filter){.by_name = true, .glob = s + 5};
		return 0;
	}
	if (strcmp(s, "expires=true") == 0 || strcmp(s, "expires=false") == 0) {
		*f = (struct ctl_ls_filter){.expires = s[8] == 't'};
		return 0;
	}
	return -1;
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
	char *whole = json_dumps(row, JSON_COMPACT | JSON_SORT_KEYS);
	size_t n;
	int rc = ctl_format_render(fmt, vals, whole, line, CTL_LS_LINE_MAX, &n);
	free(whole);
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
                        const struct ctl_format *fmt)
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
	} else if (c->json) {
		json_t *j = json_pack("{s:O}", "secrets", kept);
		ctl_print_json(j);
		json_decref(j);
	} else if (o->self) {
		json_array_foreach(kept, i, v) printf("%s\n", json_string_value(v));
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
	const char *usage =
	    "usage: secretctl ls [--self] [--filter name=GLOB|expires=true|false]... "
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
			return ctl_fail(
			    "--filter must be name=GLOB, expires=true or expires=false");
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
			                "Updated, Expires, CreatedUnix, UpdatedUnix, ExpiresUnix)",
			                err);
		}
	}
	struct client_resp resp;
	json_t *j = NULL;
	int rc = 1;
	if (ctl_call(c, o.self, "GET", o.self ? "/v1/self/secrets" : "/v1/secrets", NULL, 0, NULL,
	             NULL, &resp, &j) == 0) {
		rc = ctl_ls_print(c, &o, json_object_get(j, "secrets"), fmt);
		json_decref(j);
		client_resp_free(&resp);
	}
	free(fmt);
	return rc;
}
