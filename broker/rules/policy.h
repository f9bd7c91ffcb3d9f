/* policy: grant selectors and the view of secrets a container gets. Pure, no I/O.
 * Selectors: id:PREFIX  name:GLOB  label:KEY=VALUE  cgroup:GLOB  runtime:NAME  uid:N
 * (GLOB is fnmatch(3) without FNM_PATHNAME; KEY/VALUE exact). uid:N matches host processes (no
 * container) running as uid N, never a container; every other selector matches containers only. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_LABELS_MAX 64
/* Grant flag: also show NAME.previous. Equals STORE_GRANT_PREVIOUS (policy does not include
 * store.h; grants pass their store flags through unchanged). */
#define POLICY_GRANT_PREVIOUS 0x1
#define POLICY_MODE_DEFAULT 0400 /* file mode when a grant gives none (0) */

struct policy_label {
	const char *key;
	const char *value;
};

/* Who is asking, as ident resolved it. Strings may be "" but not NULL. */
struct policy_identity {
	bool container;      /* false: a host process (only uid: selectors match it, and only it) */
	const char *runtime; /* cgroup_runtime_name() or the hook's runtime */
	const char *id;      /* container id */
	const char *name;    /* container name, "" if unknown */
	const struct policy_label *labels;
	size_t nlabels;
	const char *cgroup; /* cgroup path */
	uint32_t uid;       /* uid of the process (the container's init for mounts) */
	uint32_t gid;
};

/* One grant as stored (see store_grant). */
struct policy_grant {
	const char *secret; /* name, "prefix/\*" or "*" */
	const char *selector;
	const char *path; /* NULL = default */
	uint32_t mode;
	int64_t uid, gid; /* -1 = the identity's uid/gid */
	uint32_t flags;   /* STORE_GRANT_* */
};

/* One file in a container's view. */
struct policy_file {
	const char *secret; /* points into the secrets array given to policy_view */
	char path[256]; /* relative path inside the mount, '/'-separated, valid per names_check */
	uint32_t mode, uid, gid;
	bool previous; /* serve the version before current (NAME.previous) */
};

/* Checks a selector's syntax. 0 or -EINVAL with *why a static reason. */
int policy_selector_check(const char *sel, size_t len, const char **why);
/* True when the (valid) selector matches who. */
bool policy_selector_match(const char *sel, const struct policy_identity *who);
/* True when some grant gives who the secret `name`. */
bool policy_allows(const struct policy_grant *g, size_t ng, const struct policy_identity *who,
                   const char *name);
/* Computes who's view over the existing secrets (sorted names). Grants are taken in order; when two
 * map to the same path the first wins. A grant with --path for a subtree places the subtree under
 * that path. *out is malloc'd (free()), *nout its length, sorted by path; 0 or -ENOMEM.
 * A .previous file (POLICY_GRANT_PREVIOUS) never takes the path of a secret itself; a computed
 * path that is no valid name (names_check, SECRETD_PATH_MAX) is left out; mode keeps 0777 bits. */
int policy_view(const struct policy_grant *g, size_t ng, const char *const *secrets, size_t ns,
                const struct policy_identity *who, struct policy_file **out, size_t *nout);
