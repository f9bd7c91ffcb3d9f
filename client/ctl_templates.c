/* secretctl template: rendered files' templates (issue 17):
 *   template put NAME [--from-file F]   store a new version (stdin without --from-file)
 *   template ls                          list templates
 *   template get NAME [--version N]      print a version's body (current by default)
 *   template versions NAME               list its versions
 *   template rm NAME                     delete it, its versions and its grants
 * A template is granted like a secret, as "tmpl:NAME": secretctl grant tmpl:NAME SELECTOR. A
 * body may hold literal secrets: it is read into locked memory and never taken from argv. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/ctl.h"
#include "common/limits.h"
#include "common/names.h"
#include "common/secret.h"

/* The largest body sent; the daemon refuses anything over its own template limit (64 KiB) with
 * the reason. */
#define CTL_TEMPLATE_READ_MAX (1024 * 1024)

static const char ctl_template_usage[] =
    "template put NAME [--from-file F] | ls | get NAME [--version N] | versions NAME | rm NAME";

static int ctl_template_name(const char *name)
{
	const char *why = NULL;
	if (names_check(name, strlen(name), &why) < 0)
		return ctl_fail("invalid template name '%s': %s", name, why);
	return 0;
}

/* template put NAME [--from-file F] */
static int ctl_template_put(struct ctl *c)
{
	static const struct option o[] = {{"from-file", required_argument, NULL, 'f'}, {0}};
	const char *file = NULL;
	int ch;
	optind = 1;
	while ((ch = getopt_long(c->argc, c->argv, "", o, NULL)) != -1) {
		if (ch != 'f')
			return ctl_fail("usage: secretctl %s", ctl_template_usage);
		file = optarg;
	}
	if (c->argc - optind != 1)
		return ctl_fail("usage: secretctl template put NAME [--from-file F]");
	const char *name = c->argv[optind];
	if (ctl_template_name(name))
		return 1;
	uint8_t *body = NULL;
	size_t len = 0;
	if (ctl_read_input(file, "template", CTL_TEMPLATE_READ_MAX, &body, &len))
		return 1;
	int r;
	char path[320];
	snprintf(path, sizeof(path), "/v1/templates/%s", name);
	struct client_resp resp;
	json_t *j = NULL;
	r = ctl_call(c, false, "PUT", path, body, len, "text/plain", NULL, &resp, &j);
	secret_bytes_free(body);
	if (r)
		return r;
	if (c->json)
		ctl_print_json(j);
	else
		printf("template %s: version %lld\n", name,
		       (long long)json_integer_value(json_object_get(j, "version")));
	ctl_check_applied(c, &resp, j);
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int ctl_template_ls(struct ctl *c)
{
	if (c->argc != 1)
		return ctl_fail("usage: secretctl template ls");
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "GET", "/v1/templates", NULL, 0, NULL, NULL, &resp, &j))
		return 1;
	if (c->json) {
		ctl_print_json(j);
	} else {
		size_t i;
		json_t *v;
		char tb[32];
		printf("%-40s %8s %8s  %s\n", "NAME", "VERSION", "KEPT", "UPDATED");
		json_array_foreach(json_object_get(j, "templates"), i, v)
		{
			printf("%-40s %8lld %8lld  %s\n",
			       json_string_value(json_object_get(v, "name")),
			       (long long)json_integer_value(json_object_get(v, "current")),
			       (long long)json_integer_value(json_object_get(v, "versions")),
			       ctl_time(json_integer_value(json_object_get(v, "updated")), tb,
			                sizeof(tb)));
		}
	}
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

/* template get NAME [--version N]: the body on stdout, as stored. */
static int ctl_template_get(struct ctl *c)
{
	static const struct option o[] = {{"version", required_argument, NULL, 'v'}, {0}};
	long long ver = 0;
	int ch;
	optind = 1;
	while ((ch = getopt_long(c->argc, c->argv, "", o, NULL)) != -1) {
		if (ch != 'v' || ctl_parse_uint(optarg, 10, INT64_MAX, &ver) < 0 || ver == 0)
			return ctl_fail(
			    "usage: secretctl template get NAME [--version N] (N >= 1)");
	}
	if (c->argc - optind != 1)
		return ctl_fail("usage: secretctl template get NAME [--version N]");
	const char *name = c->argv[optind];
	if (ctl_template_name(name))
		return 1;
	char path[340];
	if (ver)
		snprintf(path, sizeof(path), "/v1/templates/%s?body=1&version=%lld", name, ver);
	else
		snprintf(path, sizeof(path), "/v1/templates/%s?body=1", name);
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
			return ctl_fail("cannot write the template: %s", strerror(errno));
		}
		off += (size_t)w;
	}
	client_resp_free(&resp);
	return 0;
}

static int ctl_template_versions(struct ctl *c)
{
	if (c->argc != 2)
		return ctl_fail("usage: secretctl template versions NAME");
	if (ctl_template_name(c->argv[1]))
		return 1;
	char path[320];
	snprintf(path, sizeof(path), "/v1/templates/%s", c->argv[1]);
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
		printf("%8s %8s  %-20s\n", "VERSION", "SIZE", "CREATED");
		json_array_foreach(json_object_get(j, "versions"), i, v)
		{
			printf("%8lld %8lld  %-20s%s\n",
			       (long long)json_integer_value(json_object_get(v, "version")),
			       (long long)json_integer_value(json_object_get(v, "size")),
			       ctl_time(json_integer_value(json_object_get(v, "created")), tb,
			                sizeof(tb)),
			       json_is_true(json_object_get(v, "current")) ? "  current" : "");
		}
	}
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

static int ctl_template_rm(struct ctl *c)
{
	if (c->argc != 2)
		return ctl_fail("usage: secretctl template rm NAME");
	if (ctl_template_name(c->argv[1]))
		return 1;
	char path[320];
	snprintf(path, sizeof(path), "/v1/templates/%s", c->argv[1]);
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "DELETE", path, NULL, 0, NULL, NULL, &resp, &j))
		return 1;
	if (c->json)
		ctl_print_json(j);
	else
		printf("deleted template %s\n", c->argv[1]);
	ctl_check_applied(c, &resp, j);
	json_decref(j);
	client_resp_free(&resp);
	return 0;
}

int ctl_cmd_template(struct ctl *c)
{
	/* argv[0] is "template": the subcommand becomes the command */
	if (c->argc < 2)
		return ctl_fail("usage: secretctl %s", ctl_template_usage);
	c->argc--;
	c->argv++;
	const char *sub = c->argv[0];
	if (!strcmp(sub, "put"))
		return ctl_template_put(c);
	if (!strcmp(sub, "ls"))
		return ctl_template_ls(c);
	if (!strcmp(sub, "get"))
		return ctl_template_get(c);
	if (!strcmp(sub, "versions"))
		return ctl_template_versions(c);
	if (!strcmp(sub, "rm"))
		return ctl_template_rm(c);
	return ctl_fail("unknown template command '%s' (usage: secretctl %s)", sub,
	                ctl_template_usage);
}
