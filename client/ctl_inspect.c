/* secretctl inspect NAME: one JSON object about a secret, assembled from the admin API (its
 * versions, the listing's times, the schedules, the grants whose pattern matches it), in the
 * JSON shape convention of docs/cli.md: snake_case keys; a time as an RFC 3339 string KEY plus
 * KEY_unix (seconds), null / 0 when there is none; a duration as "1h30m" plus KEY_seconds. */
#include <stdio.h>
#include <string.h>

#include "client/ctl.h"
#include "common/names.h"
#include "common/timespec.h"

/* Sets KEY (RFC 3339, or null when t is 0 and none_null) and KEY_unix on o. */
static void ctl_inspect_time(json_t *o, const char *key, json_int_t t, bool none_null)
{
	char b[TIMESPEC_FORMAT_LEN], k[64];
	json_object_set_new(o, key,
	                    t || !none_null ? json_string(ctl_time(t, b, sizeof(b))) : json_null());
	snprintf(k, sizeof(k), "%s_unix", key);
	json_object_set_new(o, k, json_integer(t));
}

/* GET path into *j (the caller json_decref's): 0, or 1 after ctl_call printed why. */
static int ctl_inspect_get(struct ctl *c, const char *path, json_t **j)
{
	struct client_resp resp;
	*j = NULL;
	if (ctl_call(c, false, "GET", path, NULL, 0, NULL, NULL, &resp, j))
		return 1;
	client_resp_free(&resp);
	if (!*j)
		return ctl_fail("unreadable answer from secretd for %s", path);
	return 0;
}

static json_t *ctl_inspect_versions(json_t *vs)
{
	json_t *a = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(vs, i, v)
	{
		json_t *o = json_pack(
		    "{s:O, s:O, s:O, s:b}", "version", json_object_get(v, "version"), "size",
		    json_object_get(v, "size"), "key_generation", json_object_get(v, "kek"),
		    "current", json_is_true(json_object_get(v, "current")));
		if (!o)
			continue;
		ctl_inspect_time(o, "created", json_integer_value(json_object_get(v, "created")),
		                 false);
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *ctl_inspect_schedule(json_t *scheds, const char *name)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(scheds, "schedules"), i, v)
	{
		json_int_t every = json_integer_value(json_object_get(v, "every"));
		if (strcmp(json_string_value(json_object_get(v, "name")) ?: "", name) != 0 ||
		    !every)
			continue;
		char d[TIMESPEC_DURATION_FORMAT_LEN];
		json_t *o = json_pack("{s:s, s:I, s:O, s:O, s:O}", "every",
		                      ctl_duration(every, d, sizeof(d)), "every_seconds", every,
		                      "length", json_object_get(v, "length"), "charset",
		                      json_object_get(v, "charset"), "exec",
		                      json_object_get(v, "exec") ?: json_null());
		if (o)
			ctl_inspect_time(o, "next", json_integer_value(json_object_get(v, "next")),
			                 false);
		return o;
	}
	return json_null();
}

static json_t *ctl_inspect_grants(json_t *grants, const char *name)
{
	json_t *a = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(grants, "grants"), i, v)
	{
		const char *pat = json_string_value(json_object_get(v, "secret"));
		const char *why;
		if (!pat || names_check_pattern(pat, strlen(pat), &why) < 0 ||
		    !names_pattern_match(pat, name))
			continue;
		json_t *p = json_object_get(v, "path");
		json_int_t uid = json_integer_value(json_object_get(v, "uid"));
		json_int_t gid = json_integer_value(json_object_get(v, "gid"));
		json_t *o = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:b}", "pattern", pat,
		                      "selector", json_object_get(v, "selector"), "path",
		                      p ? p : json_null(), "mode", json_object_get(v, "mode"),
		                      "uid", uid < 0 ? json_null() : json_integer(uid), "gid",
		                      gid < 0 ? json_null() : json_integer(gid), "previous",
		                      json_is_true(json_object_get(v, "previous")));
		if (o)
			json_array_append_new(a, o);
	}
	return a;
}

int ctl_cmd_inspect(struct ctl *c)
{
	c->argc--;
	c->argv++;
	if (ctl_need_name(c, 1, "inspect NAME"))
		return 1;
	const char *name = c->argv[0];
	char path[320];
	snprintf(path, sizeof(path), "/v1/secrets/%s", name);
	json_t *sec = NULL, *list = NULL, *scheds = NULL, *grants = NULL;
	int rc = 1;
	if (ctl_inspect_get(c, path, &sec) || ctl_inspect_get(c, "/v1/secrets", &list) ||
	    ctl_inspect_get(c, "/v1/schedules", &scheds) ||
	    ctl_inspect_get(c, "/v1/grants", &grants))
		goto out;
	json_t *row = NULL;
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(list, "secrets"), i, v)
	{
		if (strcmp(json_string_value(json_object_get(v, "name")) ?: "", name) == 0)
			row = v;
	}
	if (!row) {
		rc = ctl_fail("%s: no such secret", name); /* deleted between the two calls */
		goto out;
	}
	json_t *o =
	    json_pack("{s:s, s:O, s:o}", "name", name, "current", json_object_get(sec, "current"),
	              "versions", ctl_inspect_versions(json_object_get(sec, "versions")));
	if (!o) {
		rc = ctl_fail("out of memory");
		goto out;
	}
	ctl_inspect_time(o, "created", json_integer_value(json_object_get(row, "created")), false);
	ctl_inspect_time(o, "updated", json_integer_value(json_object_get(row, "updated")), false);
	ctl_inspect_time(o, "expires", json_integer_value(json_object_get(sec, "expires")), true);
	json_t *labels = json_object_get(sec, "labels");
	json_object_set_new(o, "labels",
	                    json_is_object(labels) ? json_deep_copy(labels) : json_object());
	json_object_set_new(o, "schedule", ctl_inspect_schedule(scheds, name));
	json_object_set_new(o, "grants", ctl_inspect_grants(grants, name));
	ctl_print_json(o);
	json_decref(o);
	rc = 0;
out:
	json_decref(sec);
	json_decref(list);
	json_decref(scheds);
	json_decref(grants);
	return rc;
}
