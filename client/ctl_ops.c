/* secretctl: the operator's view of the daemon itself: master key generations (key rotate, key
 * status) and the containers it knows. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/ctl.h"

static void ctl_key_status_print(json_t *j)
{
	printf("current generation %lld",
	       (long long)json_integer_value(json_object_get(j, "current")));
	if (json_is_true(json_object_get(j, "rotating")))
		printf("; rotation to %lld in progress, %lld data keys left",
		       (long long)json_integer_value(json_object_get(j, "target")),
		       (long long)json_integer_value(json_object_get(j, "remaining")));
	else if (json_is_string(json_object_get(j, "rewrapping")))
		printf("; another node re-wraps (%lld data keys here under an older generation)",
		       (long long)json_integer_value(json_object_get(j, "remaining")));
	const char *err = json_string_value(json_object_get(j, "error"));
	const char *paused = json_string_value(json_object_get(j, "paused"));
	if (err)
		printf(" (stopped: %s)", err);
	else if (paused)
		printf(" (paused, resumes by itself: %s)", paused);
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

int ctl_cmd_key(struct ctl *c)
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

/* The pid of the daemon process answering the admin socket's /healthz, or 0 (no answer yet:
 * a hand-off in progress). Quiet: used while polling. */
static long long ctl_daemon_pid(struct ctl *c)
{
	struct client_resp resp = {0};
	json_t *j = NULL;
	long long pid = 0;
	if (client_request_json(client_socket(c->socket, false), "GET", "/healthz", NULL, &resp, &j,
	                        NULL) == 0 &&
	    resp.status == 200 && j)
		pid = (long long)json_integer_value(json_object_get(j, "pid"));
	json_decref(j);
	client_resp_free(&resp);
	return pid;
}

#define CTL_UPGRADE_WAIT_MS 60000

int ctl_cmd_daemon(struct ctl *c)
{
	static const char usage[] = "usage: secretctl daemon upgrade [--no-wait]";
	if (c->argc < 2 || strcmp(c->argv[1], "upgrade") != 0 || c->argc > 3)
		return ctl_fail(usage);
	bool wait = true;
	if (c->argc == 3) {
		if (strcmp(c->argv[2], "--no-wait") != 0)
			return ctl_fail(usage);
		wait = false;
	}
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "POST", "/v1/daemon/upgrade", "", 0, NULL, NULL, &resp, &j))
		return 1;
	client_resp_free(&resp);
	long long old = j ? (long long)json_integer_value(json_object_get(j, "pid")) : 0;
	json_decref(j);
	long long now = 0;
	if (wait) {
		for (int ms = 0; ms < CTL_UPGRADE_WAIT_MS; ms += 50) {
			now = ctl_daemon_pid(c);
			if (now > 0 && now != old)
				break;
			struct timespec ts = {0, 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (now <= 0 || now == old)
			return ctl_fail(
			    "the daemon accepted the upgrade, but no new daemon process "
			    "answered within %d s (see its log)",
			    CTL_UPGRADE_WAIT_MS / 1000);
	}
	if (c->json) {
		json_t *o =
		    json_pack("{s:b, s:I, s:o}", "upgraded", wait, "old_pid", (json_int_t)old,
		              "new_pid", wait ? json_integer(now) : json_null());
		ctl_print_json(o);
		json_decref(o);
	} else if (wait) {
		printf("upgraded: daemon process %lld handed every mount to %lld\n", old, now);
	} else {
		printf("upgrade accepted by daemon process %lld\n", old);
	}
	return 0;
}

int ctl_cmd_containers(struct ctl *c)
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

int ctl_cmd_cluster(struct ctl *c)
{
	if (c->argc != 2 || strcmp(c->argv[1], "status") != 0)
		return ctl_fail("usage: secretctl cluster status");
	struct client_resp resp;
	json_t *j = NULL;
	if (ctl_call(c, false, "GET", "/v1/cluster", NULL, 0, NULL, NULL, &resp, &j))
		return 1;
	client_resp_free(&resp);
	if (!j)
		return ctl_fail("unreadable answer from secretd");
	if (c->json) {
		ctl_print_json(j);
	} else if (!json_is_true(json_object_get(j, "cluster"))) {
		printf("not in cluster mode (a single node)\n");
	} else {
		const char *err = json_string_value(json_object_get(j, "last_error"));
		printf("cluster %s through %s\n", json_string_value(json_object_get(j, "name")),
		       json_string_value(json_object_get(j, "etcd")));
		const char *wep = json_string_value(json_object_get(j, "watch_endpoint"));
		printf("  watch: %s%s%s; applied revision %lld, etcd at %lld (lag %lld)\n",
		       json_is_true(json_object_get(j, "watching")) ? "open" : "NOT OPEN",
		       wep && *wep ? " on " : "", wep && *wep ? wep : "",
		       (long long)json_integer_value(json_object_get(j, "revision")),
		       (long long)json_integer_value(json_object_get(j, "etcd_revision")),
		       (long long)json_integer_value(json_object_get(j, "lag")));
		const char *leader = json_string_value(json_object_get(j, "leader"));
		const char *eerr = json_string_value(json_object_get(j, "election_error"));
		printf("  node %s; leader: %s%s\n", json_string_value(json_object_get(j, "node")),
		       json_is_true(json_object_get(j, "is_leader")) ? "this node"
		       : leader && *leader                           ? leader
		                                                     : "unknown",
		       json_is_true(json_object_get(j, "elected")) ? "" : " (as last seen)");
		if (eerr && *eerr)
			printf("  election error: %s\n", eerr);
		json_t *ms = json_object_get(j, "members");
		const char *merr = json_string_value(json_object_get(j, "members_error"));
		if (merr && *merr)
			printf("  etcd members: cannot be read: %s\n", merr);
		else
			printf("  etcd members: %lld\n",
			       (long long)json_integer_value(json_object_get(j, "members_total")));
		for (size_t i = 0; i < json_array_size(ms); i++) {
			json_t *m = json_array_get(ms, i);
			const char *mn = json_string_value(json_object_get(m, "name"));
			printf("    %s %s %s%s\n", json_string_value(json_object_get(m, "id")),
			       mn && *mn ? mn : "(not started)",
			       json_string_value(json_object_get(m, "client_url")),
			       json_is_true(json_object_get(m, "raft_leader")) ? "  (raft leader)"
			                                                       : "");
		}
		printf("  applied %lld, refused %lld; writes refused: %lld unreachable, %lld "
		       "conflicts; watch errors %lld, stalls %lld\n",
		       (long long)json_integer_value(json_object_get(j, "applied")),
		       (long long)json_integer_value(json_object_get(j, "rejected")),
		       (long long)json_integer_value(json_object_get(j, "write_failures")),
		       (long long)json_integer_value(json_object_get(j, "conflicts")),
		       (long long)json_integer_value(json_object_get(j, "watch_errors")),
		       (long long)json_integer_value(json_object_get(j, "watch_stalls")));
		if (err && *err)
			printf("  last error: %s\n", err);
	}
	json_decref(j);
	return 0;
}
