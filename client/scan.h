/* scan: finds likely secrets in environment variables written into Dockerfiles, compose files,
 * .env files, Kubernetes manifests and the environment of running processes.
 *
 * The judgement (scan_judge), in this order:
 *   not flagged: an empty value; a reference ($VAR, ${VAR}, ${VAR:-default} with the default
 *     itself judged); a *_FILE variable whose value is a path (starts with '/', './', '../' or
 *     '~/'); a placeholder: a value (case-insensitive) that equals or starts with changeme,
 *     change-me, change_me, changeit, example, dummy, todo, fixme, placeholder, replace-me,
 *     replace_me, replaceme, your_, your-, yourpassword, a value in <...>, or three or more of
 *     only 'x', '*' or '.' characters. Placeholders are IGNORED (not reported, no effect on the
 *     exit status, not imported): they hold no secret, and .env.example files exist to hold them.
 *   flagged by value, whatever the name (kind "format"): AWS access key ids (AKIA/ASIA + 16),
 *     GitHub tokens (ghp_ gho_ ghu_ ghs_ ghr_ + 36, github_pat_), Slack tokens (xoxa- xoxb- xoxp-
 *     xoxr- xoxs- xoxe-), PEM private keys (-----BEGIN ... PRIVATE KEY-----), JWTs
 *     (eyJ...x.y), Stripe live secret/restricted keys (sk_live_, rk_live_); kind "url": a URL with
 *     user:password@ credentials, a key=value connection string with password=...;
 *   flagged by name (kind "name"): a name holding PASSWORD, PASSWD, PASSPHRASE, SECRET, TOKEN,
 *     API_KEY, APIKEY, PRIVATE_KEY, ACCESS_KEY, SIGNING_KEY, ENCRYPTION_KEY, MASTER_KEY,
 *     CREDENTIAL(S), or the words AUTH, PWD, PASS, DSN (except PWD and OLDPWD themselves), unless
 *     the name ends in a setting-like suffix (_TTL _TIMEOUT _LENGTH _EXPIRY _URL _HOST _PORT
 *     _USER _USERNAME _NAME _PATH _DIR _ENABLED _TYPE _MODE _SOCKET ...) or the value is a
 *     boolean, a number of at most 5 digits or an absolute path without blanks (TOKEN_TTL=3600,
 *     AUTH_ENABLED=true, SECRETD=/usr/sbin/secretd);
 *   flagged by entropy (kind "entropy"): values of at least SCAN_ENTROPY_MIN_LEN bytes of
 *     [A-Za-z0-9+/=_-] with upper case, lower case and digits, not a path, and a Shannon
 *     entropy of at least SCAN_ENTROPY_BITS bits per byte.
 * Output never holds a value: scan_mask shows at most the first and last 2 characters of values
 * of at least SCAN_MASK_SHOW_MIN bytes, then a fixed number of stars. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define SCAN_FILE_MAX (4u * 1024 * 1024)     /* bytes read from one file; larger ones are skipped */
#define SCAN_DEPTH_MAX 32                    /* directory levels walked */
#define SCAN_YAML_VISITS_MAX 200000u         /* YAML nodes visited per document (alias bombs) */
#define SCAN_YAML_DEPTH_MAX 64               /* YAML nesting walked */
#define SCAN_FINDINGS_MAX 100000u            /* findings kept per run */
#define SCAN_MASK_SHOW_MIN 12                /* shortest value of which 2+2 characters show */
#define SCAN_MASK_MAX 16                     /* bytes of a masked value, NUL included */
#define SCAN_ENTROPY_MIN_LEN 24              /* shortest value judged by entropy */
#define SCAN_ENTROPY_BITS 4.0                /* Shannon entropy, bits per byte, to flag */
#define SCAN_PROC_ENVIRON_MAX (1024u * 1024) /* bytes read from one /proc/PID/environ */

enum scan_file_kind {
	SCAN_FILE_NONE = 0,
	SCAN_FILE_DOCKERFILE, /* Dockerfile*, Containerfile*, *.dockerfile */
	SCAN_FILE_COMPOSE,    /* docker-compose*.yml|yaml, compose*.yml|yaml */
	SCAN_FILE_DOTENV,     /* .env, .env.*, *.env */
	SCAN_FILE_YAML,       /* other *.yml|*.yaml: tried as Kubernetes manifests */
};

struct scan_verdict {
	const char *reason; /* static English reason */
	const char *kind;   /* "name", "format", "url" or "entropy" */
};

struct scan_finding {
	char *file; /* path, or /proc/PID/environ */
	unsigned line;
	char *variable;
	const char *reason;
	const char *kind;
	char masked[SCAN_MASK_MAX];
	/* --proc only (pid 0 otherwise): */
	int pid;
	char *comm;
	char *cgroup;    /* cgroup path of the process */
	char *container; /* a 64-hex id found in the cgroup path, or NULL */
	unsigned also;   /* other processes in the same cgroup with the same variable and value */
	unsigned char vhash[16]; /* keyed (per run) hash of the value, for grouping; never shown */
	size_t seq;              /* order found, for a stable sort */
};

struct scan_report {
	struct scan_finding *f;
	size_t n, cap;
	unsigned warnings; /* files skipped (unparsable, too large, unreadable while walking) */
	bool io_error;     /* an explicitly named path could not be read */
	bool quiet;        /* no warnings on stderr */
};

/* Judges one variable: true (a likely secret, *v filled) or false. Pure; val need not be
 * NUL-terminated. */
bool scan_judge(const char *name, size_t nlen, const char *val, size_t vlen,
                struct scan_verdict *v);

/* Writes the masked form of val into out: "ab********yz" for vlen >= SCAN_MASK_SHOW_MIN,
 * "********" otherwise (non-printable bytes shown as '?'). */
void scan_mask(const char *val, size_t vlen, char out[SCAN_MASK_MAX]);

/* The kind of file by its base name (see enum scan_file_kind). */
enum scan_file_kind scan_file_kind(const char *path);

/* Called for every variable found; val is valid only during the call (wiped afterwards) and is
 * NUL-terminated at vlen; map_form tells a compose `KEY: value` entry. Negative stops. */
typedef int (*scan_var_fn)(void *ctx, const char *file, unsigned line, const char *name,
                           size_t nlen, const char *val, size_t vlen, bool map_form);

/* Extracts the variables of buf[0..len) of the given kind (YAML kinds: compose
 * services.*.environment and build.args, and every Kubernetes `env:` list of {name, value},
 * all documents of a stream). only_service (may be NULL) restricts compose files to one service.
 * 0, -EINVAL with *why (may be NULL) for unparsable input, -ENOENT when only_service is in no
 * document, -EFBIG, -ENOMEM, or fn's value. */
int scan_buffer(enum scan_file_kind kind, const char *file, const char *buf, size_t len,
                const char *only_service, scan_var_fn fn, void *ctx, const char **why);

/* Reads a regular file (at most SCAN_FILE_MAX bytes) into locked secret memory (secret_bytes_alloc)
 * (*out, *len; free with secret_bytes_free). 0, -EFBIG or -errno. */
int scan_read_file(int dirfd, const char *path, bool nofollow, char **out, size_t *len);

/* Scans a file or walks a directory (no symlinks followed below it; .git, node_modules and
 * other VCS directories skipped; files of unknown kind skipped). An explicitly named regular
 * file of unknown kind is read as a .env file. Adds to r; 0 or -errno when path is unreadable
 * (r->io_error set). */
int scan_path(struct scan_report *r, const char *path);

/* Scans the environment of every process under proc_root ("/proc") except the caller's own,
 * grouping by cgroup; processes that cannot be read are skipped. 0 or -errno. */
int scan_proc(struct scan_report *r, const char *proc_root);

/* One finding as "file:line: VARIABLE: reason: masked" (no newline) into buf; returns buf. */
const char *scan_format(const struct scan_finding *f, char *buf, size_t len);

/* The findings as a JSON array of {file, line, variable, reason, kind, masked} (+ pid, comm,
 * cgroup, container for processes). NULL on ENOMEM. */
json_t *scan_report_json(const struct scan_report *r);

/* Sorts the findings (proc findings by cgroup, then pid) for stable output. */
void scan_report_sort(struct scan_report *r);

void scan_report_free(struct scan_report *r);
