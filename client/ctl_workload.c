/* secretctl: the commands a container runs on the workload socket: whoami, read, mount. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "client/ctl.h"
#include "common/limits.h"

int ctl_cmd_whoami(struct ctl *c)
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

/* A template's name in grants and in the workload API's answers ("tmpl:NAME"). */
#define CTL_TMPL_PREFIX "tmpl:"

int ctl_cmd_read(struct ctl *c)
{
	c->argc--;
	c->argv++;
	/* tmpl:NAME: a rendered file (a template granted to this container), as grants name it */
	const size_t tl = strlen(CTL_TMPL_PREFIX);
	bool tmpl = c->argc >= 1 && strncmp(c->argv[0], CTL_TMPL_PREFIX, tl) == 0;
	if (tmpl)
		c->argv[0] += tl;
	if (ctl_need_name(c, 1, "read NAME | tmpl:NAME"))
		return 1;
	char path[300];
	snprintf(path, sizeof(path), "/v1/self/%s/%s", tmpl ? "templates" : "secrets", c->argv[0]);
	struct client_resp resp;
	if (ctl_call(c, true, "GET", path, NULL, 0, NULL, NULL, &resp, NULL))
		return 1;
	int rc = fwrite(resp.body, 1, resp.len, stdout) == resp.len ? 0 : 1;
	client_resp_free(&resp);
	return rc;
}

int ctl_cmd_mount(struct ctl *c)
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
