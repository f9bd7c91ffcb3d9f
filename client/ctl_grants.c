/* secretctl: the commands on grants: grant, revoke, grants. */
#include <getopt.h>
#include <stdio.h>

#include "client/ctl.h"

int ctl_cmd_grant(struct ctl *c)
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

int ctl_cmd_revoke(struct ctl *c)
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

int ctl_cmd_grants(struct ctl *c)
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
