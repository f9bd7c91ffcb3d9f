/* secretctl's private header: the state of one run (struct ctl), the helpers every command shares
 * (ctl_common.c) and the commands, one file per job:
 *   ctl_secrets.c   put, get, versions, rm, label, rollback, rotate, schedules
 *   ctl_ls.c        ls (its filters, --format templates through ctl_format.c)
 *   ctl_grants.c    grant, revoke, grants
 *   ctl_ops.c       key (rotate, status), containers
 *   ctl_audit.c     audit (print, --follow, verify)
 *   ctl_templates.c template put, ls, get, versions, rm (rendered files' templates)
 *   ctl_workload.c  whoami, read, mount (in a container, on the workload socket)
 *   ctl_help.c      each command's long help (COMMAND --help, help COMMAND)
 *   ctl_completion.c  bash, zsh and fish completions made from the command table
 *   ctl_inspect.c   inspect (one secret as one JSON object)
 *   secretctl.c     main: global options, the command table, usage, dispatch
 * A command returns its exit status: 0, 1 on a failure it has already printed (ctl_fail), 2 for a
 * usage error where said. Only secretctl links these files. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "client/client.h"

struct ctl {
	const char *socket; /* --socket, or NULL (client_socket picks) */
	bool json;          /* --json */
	int argc;           /* the command's arguments, argv[0] its name, global options removed */
	char **argv;
	bool unapplied; /* a change was stored but did not reach every container */
};

/* Exit status when a change was stored but the daemon could not apply it to every running
 * container (those are failed closed until it can): the command's own output is printed. */
#define CTL_EXIT_UNAPPLIED 3

/* Prints "secretctl: MESSAGE" on stderr; returns 1. */
#define ctl_fail(...) client_fail(1, __VA_ARGS__)

/* ---- shared helpers (ctl_common.c) ---- */

/* Sends a request (a raw body of len bytes and content type ctype, or jbody as JSON when jbody is
 * not NULL) on the admin or the workload socket and checks the answer. 0 with *resp filled (the
 * caller frees it with client_resp_free) and, when jout is not NULL, *jout the JSON answer or
 * NULL (the caller json_decref's it); on any failure prints the reason, frees what it got and
 * returns 1. */
int ctl_call(struct ctl *c, bool workload, const char *method, const char *path, const void *body,
             size_t len, const char *ctype, json_t *jbody, struct client_resp *resp, json_t **jout);
/* After a change: prints the answer's "warning" (j, or the JSON body of resp when j is NULL) on
 * stderr; when it says the change did not reach every container ("unapplied"), also sets
 * c->unapplied (exit CTL_EXIT_UNAPPLIED). */
void ctl_check_applied(struct ctl *c, const struct client_resp *resp, json_t *j);
/* Reads what a command stores (a value, a template body) from file, or from stdin when file is
 * NULL (saying so on stderr when stdin is a terminal), at most max bytes, into locked memory:
 * 0 with *out (free with secret_bytes_free, common/secret.h) and *len; 1 after printing "cannot
 * open F: ..." or "cannot read the WHAT: ..." (EFBIG past max). */
int ctl_read_input(const char *file, const char *what, size_t max, uint8_t **out, size_t *len);
/* Label arguments (common/labels: KEY=VALUE, and KEY- when remove_ok) into *set, a new object
 * of the keys to set, and (remove_ok) *remove, a new array of the keys to remove (NULL when
 * none). 0, or 1 after printing which argument is wrong and why (nothing allocated then). */
int ctl_labels_args(const char *const *args, size_t n, bool remove_ok, json_t **set,
                    json_t **remove);
/* Prints j indented, keys sorted, and a newline on stdout. */
void ctl_print_json(json_t *j);
/* Formats t (seconds since the epoch) as YYYY-MM-DDTHH:MM:SSZ into buf (at least
 * TIMESPEC_FORMAT_LEN bytes); returns buf. */
const char *ctl_time(json_int_t t, char *buf, size_t len);
/* Formats secs as a duration (1h30m, 7d, 0s) into buf (at least TIMESPEC_DURATION_FORMAT_LEN
 * bytes); returns buf. */
const char *ctl_duration(json_int_t secs, char *buf, size_t len);
/* Percent-encodes s for a query argument's value into buf (len bytes, with its NUL): 0 or
 * -ENAMETOOLONG. */
int ctl_query_escape(const char *s, char *buf, size_t len);
/* Checks that the command has nargs arguments and that the first is a valid secret name; 0, or
 * 1 after printing the usage or the reason. */
int ctl_need_name(struct ctl *c, int nargs, const char *usage);
/* Parses a whole string as an unsigned number in base, at most max: 0 or -EINVAL. */
int ctl_parse_uint(const char *s, int base, long long max, long long *out);
/* The longest duration a command takes (the daemon's limit: 100 years of 365 days). */
#define CTL_DURATION_MAX (100LL * 365 * 86400)
/* Parses a duration in common/timespec's syntax (N seconds, 90s, 15m, 1h30m, 7d) into seconds,
 * 1..CTL_DURATION_MAX: 0, -EINVAL (not a duration) or -ERANGE. */
int ctl_parse_duration(const char *s, long long *out);
/* Checks an expiry (put --expires): a time (RFC 3339, @UNIX, now+1h) or a duration from now,
 * relative ones 1..CTL_DURATION_MAX seconds ahead: 0, -EINVAL or -ERANGE. The daemon resolves
 * the text itself. */
int ctl_parse_expires(const char *s);
/* Checks a "since" (audit --since): a time or a duration ago: 0 or -EINVAL. */
int ctl_parse_since(const char *s);

/* One command of secretctl's table (secretctl.c). */
struct ctl_cmd {
	const char *name;
	const char *args; /* the synopsis after the name */
	const char *help; /* one line */
	bool workload;    /* runs on the workload socket */
	int (*run)(struct ctl *c);
};

/* Prints the completion script for shell ("bash", "zsh" or "fish") for the n commands of cmds
 * (their names, and the --flags of their synopsis and long help) on stdout: 0, or 2 after a
 * message for another shell (ctl_completion.c). */
int ctl_completion(const char *shell, const struct ctl_cmd *cmds, size_t n);

/* ---- long help (ctl_help.c) ---- */

struct ctl_help {
	const char *name; /* the command, as in secretctl.c's table */
	const char *text; /* usage, description, flags, examples, exit status */
};
/* The long help of command name, or NULL when it has none. Static text. */
const char *ctl_help_text(const char *name);

/* ---- the commands: each returns the exit status ---- */

int ctl_cmd_put(struct ctl *c);        /* ctl_secrets.c */
int ctl_cmd_get(struct ctl *c);        /* ctl_secrets.c */
int ctl_cmd_ls(struct ctl *c);         /* ctl_ls.c */
int ctl_cmd_versions(struct ctl *c);   /* ctl_secrets.c */
int ctl_cmd_rm(struct ctl *c);         /* ctl_secrets.c */
int ctl_cmd_label(struct ctl *c);      /* ctl_secrets.c */
int ctl_cmd_rollback(struct ctl *c);   /* ctl_secrets.c */
int ctl_cmd_rotate(struct ctl *c);     /* ctl_secrets.c */
int ctl_cmd_schedules(struct ctl *c);  /* ctl_secrets.c */
int ctl_cmd_grant(struct ctl *c);      /* ctl_grants.c */
int ctl_cmd_revoke(struct ctl *c);     /* ctl_grants.c */
int ctl_cmd_grants(struct ctl *c);     /* ctl_grants.c */
int ctl_cmd_key(struct ctl *c);        /* ctl_ops.c */
int ctl_cmd_daemon(struct ctl *c);     /* ctl_ops.c */
int ctl_cmd_cluster(struct ctl *c);    /* ctl_ops.c */
int ctl_cmd_containers(struct ctl *c); /* ctl_ops.c */
int ctl_cmd_audit(struct ctl *c);      /* ctl_audit.c */
int ctl_cmd_whoami(struct ctl *c);     /* ctl_workload.c */
int ctl_cmd_read(struct ctl *c);       /* ctl_workload.c */
int ctl_cmd_mount(struct ctl *c);      /* ctl_workload.c */
int ctl_cmd_template(struct ctl *c);   /* ctl_templates.c */
int ctl_cmd_inspect(struct ctl *c);    /* ctl_inspect.c */
