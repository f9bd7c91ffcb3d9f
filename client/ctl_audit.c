/* secretctl: the audit trail: print it (--since, --follow) and check its hash chain (audit verify).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/ctl.h"

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
	const char *origin = json_string_value(json_object_get(rec, "origin"));
	if (origin)
		printf("%-16s ", origin);
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

int ctl_cmd_audit(struct ctl *c)
{
	static const struct option o[] = {{"since", required_argument, NULL, 's'},
	                                  {"follow", no_argument, NULL, 'f'},
	                                  {"cluster", no_argument, NULL, 'c'},
	                                  {0}};
	const char *usage =
	    "audit [verify] [--json] [--since SEQ|DURATION|TIME] [--follow] [--cluster]";
	const char *since = NULL;
	bool follow = false, cluster = false;
	int ch;
	while ((ch = getopt_long(c->argc, c->argv, "", o, NULL)) != -1) {
		if (ch == 's')
			since = optarg;
		else if (ch == 'f')
			follow = true;
		else if (ch == 'c')
			cluster = true;
		else
			return ctl_fail("usage: secretctl %s", usage);
	}
	c->argc -= optind;
	c->argv += optind;
	if (c->argc == 1 && strcmp(c->argv[0], "verify") == 0 && !since && !follow && !cluster)
		return ctl_audit_verify(c);
	if (c->argc != 0)
		return ctl_fail("usage: secretctl %s", usage);
	char arg[3 * 64 + 1] = "";
	if (since) {
		/* A plain number is a sequence number; a duration means "that long ago"; a time
		 * (RFC 3339, @UNIX, now-1h) is a time. The daemon resolves the text itself. */
		bool seq = *since && strspn(since, "0123456789") == strlen(since);
		if (!seq && ctl_parse_since(since) < 0)
			return ctl_fail(
			    "--since must be a sequence number, a duration ago (10m, "
			    "1h30m, 7d) or a time (2026-12-24T10:00:00Z, @UNIX, now-1h)");
		if (ctl_query_escape(since, arg, sizeof(arg)) < 0)
			return ctl_fail("--since is too long");
	}
	if (!c->json) {
		if (cluster)
			printf("%-16s ", "ORIGIN");
		printf("%6s %-20s %-20s %7s %-24s %-12s %-32s %s\n", "SEQ", "TIME", "ACTOR", "PID",
		       "EXE", "ACTION", "SECRET@VERSION", "RESULT");
	}
	for (;;) {
		char path[128];
		snprintf(path, sizeof(path), "/v1/audit%s%s%s", *arg ? "?since=" : "", arg,
		         !cluster ? ""
		         : *arg   ? "&cluster=1"
		                  : "?cluster=1");
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
