/* secretctl: what every command shares: the request and its failure message, the "not applied
 * everywhere" warning, JSON and time output, and the parsing of names, numbers and durations. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/ctl.h"
#include "common/names.h"

/* Sends a request and checks the answer; prints the reason and returns 1 on any failure. */
int ctl_call(struct ctl *c, bool workload, const char *method, const char *path, const void *body,
             size_t len, const char *ctype, json_t *jbody, struct client_resp *resp, json_t **jout)
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
void ctl_check_applied(struct ctl *c, const struct client_resp *resp, json_t *j)
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

void ctl_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s)
		printf("%s\n", s);
	free(s);
}

const char *ctl_time(json_int_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

int ctl_need_name(struct ctl *c, int nargs, const char *usage)
{
	if (c->argc != nargs)
		return ctl_fail("usage: secretctl %s", usage);
	const char *why = NULL;
	if (names_check(c->argv[0], strlen(c->argv[0]), &why) < 0)
		return ctl_fail("invalid secret name '%s': %s", c->argv[0], why);
	return 0;
}

int ctl_parse_uint(const char *s, int base, long long max, long long *out)
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
int ctl_parse_duration(const char *s, long long *out)
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
