#include "broker/rules/policy.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/names.h"

#define POLICY_UID_MAX 4294967294u /* (uid_t)-1 means "no uid" to the kernel */
#define POLICY_MODE_MASK 0777      /* permission bits only: no setuid/setgid/sticky in a view */
#define POLICY_PREVIOUS_SUFFIX ".previous"

enum policy_kind {
	POLICY_SEL_ID,
	POLICY_SEL_NAME,
	POLICY_SEL_LABEL,
	POLICY_SEL_CGROUP,
	POLICY_SEL_RUNTIME,
	POLICY_SEL_UID,
};

static const struct {
	const char *prefix; /* with its ':' */
	enum policy_kind kind;
} policy_kinds[] = {
    {"id:", POLICY_SEL_ID},         {"name:", POLICY_SEL_NAME},       {"label:", POLICY_SEL_LABEL},
    {"cgroup:", POLICY_SEL_CGROUP}, {"runtime:", POLICY_SEL_RUNTIME}, {"uid:", POLICY_SEL_UID},
};

static int policy_fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -EINVAL;
}

static bool policy_runtime_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Decimal uid without sign, spaces or overflow. */
static int policy_parse_uid(const char *s, size_t n, uint32_t *uid)
{
	if (n == 0 || n > 10)
		return -EINVAL;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > POLICY_UID_MAX)
		return -EINVAL;
	*uid = (uint32_t)v;
	return 0;
}

/* Splits a selector into its kind and argument; the caller has checked the bytes. */
static int policy_split(const char *sel, size_t len, enum policy_kind *kind, const char **arg,
                        size_t *argn)
{
	for (size_t i = 0; i < sizeof(policy_kinds) / sizeof(policy_kinds[0]); i++) {
		size_t pn = strlen(policy_kinds[i].prefix);
		if (len >= pn && memcmp(sel, policy_kinds[i].prefix, pn) == 0) {
			*kind = policy_kinds[i].kind;
			*arg = sel + pn;
			*argn = len - pn;
			return 0;
		}
	}
	return -EINVAL;
}

int policy_selector_check(const char *sel, size_t len, const char **why)
{
	if (!sel || len == 0)
		return policy_fail(why, "selector is empty");
	if (len > SECRETD_SELECTOR_MAX)
		return policy_fail(why, "selector is longer than 512 bytes");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)sel[i] < 0x20 || (unsigned char)sel[i] > 0x7e)
			return policy_fail(why, "selector may only hold printable ASCII");
	enum policy_kind kind;
	const char *arg;
	size_t n;
	if (policy_split(sel, len, &kind, &arg, &n) < 0)
		return policy_fail(why, "selector kind must be one of id: name: label: cgroup: "
		                        "runtime: uid:");
	if (n == 0)
		return policy_fail(why, "selector has nothing after its kind");
	switch (kind) {
	case POLICY_SEL_LABEL: {
		const char *eq = memchr(arg, '=', n);
		if (!eq)
			return policy_fail(why, "label selector must be label:KEY=VALUE");
		if (eq == arg)
			return policy_fail(why, "label selector has an empty KEY");
		break;
	}
	case POLICY_SEL_RUNTIME:
		for (size_t i = 0; i < n; i++)
			if (!policy_runtime_char(arg[i]))
				return policy_fail(why, "runtime selector may only hold a-z 0-9 -");
		break;
	case POLICY_SEL_UID: {
		uint32_t uid;
		if (policy_parse_uid(arg, n, &uid) < 0)
			return policy_fail(why,
			                   "uid selector must be a decimal uid up to 4294967294");
		break;
	}
	case POLICY_SEL_ID:
	case POLICY_SEL_NAME:
	case POLICY_SEL_CGROUP:
		break;
	}
	return 0;
}

static const char *policy_str(const char *s)
{
	return s ? s : "";
}

bool policy_selector_match(const char *sel, const struct policy_identity *who)
{
	if (!sel || !who)
		return false;
	size_t len = strlen(sel);
	if (policy_selector_check(sel, len, NULL) < 0)
		return false;
	enum policy_kind kind;
	const char *arg;
	size_t n;
	if (policy_split(sel, len, &kind, &arg, &n) < 0)
		return false;
	if (kind == POLICY_SEL_UID) {
		/* uid: names host processes only. A container's processes have uids of their own
		 * choosing (most run as 0): "uid:0" must not reach every root container. */
		uint32_t uid;
		return !who->container && policy_parse_uid(arg, n, &uid) == 0 && who->uid == uid;
	}
	/* Every other selector describes a container: a host process never matches one. */
	if (!who->container)
		return false;
	switch (kind) {
	case POLICY_SEL_ID: {
		const char *id = policy_str(who->id);
		return id[0] != '\0' && strncmp(id, arg, n) == 0;
	}
	case POLICY_SEL_NAME: {
		const char *name = policy_str(who->name);
		return name[0] != '\0' && fnmatch(arg, name, 0) == 0;
	}
	case POLICY_SEL_CGROUP: {
		const char *cg = policy_str(who->cgroup);
		return cg[0] != '\0' && fnmatch(arg, cg, 0) == 0;
	}
	case POLICY_SEL_RUNTIME:
		return strcmp(policy_str(who->runtime), arg) == 0;
	case POLICY_SEL_LABEL: {
		const char *eq = memchr(arg, '=', n);
		size_t kn = (size_t)(eq - arg);
		for (size_t i = 0; i < who->nlabels && who->labels; i++) {
			const char *k = policy_str(who->labels[i].key);
			if (strlen(k) == kn && memcmp(k, arg, kn) == 0 &&
			    strcmp(policy_str(who->labels[i].value), eq + 1) == 0)
				return true;
		}
		return false;
	}
	case POLICY_SEL_UID:
		break;
	}
	return false;
}

/* A grant whose pattern is valid and covers name, and whose selector picks who. */
static bool policy_grant_applies(const struct policy_grant *g, const struct policy_identity *who,
                                 const char *name)
{
	return g->secret && names_check_pattern(g->secret, strlen(g->secret), NULL) == 0 &&
	       names_pattern_match(g->secret, name) && policy_selector_match(g->selector, who);
}

bool policy_allows(const struct policy_grant *g, size_t ng, const struct policy_identity *who,
                   const char *name)
{
	if (!g || !who || !name || names_check(name, strlen(name), NULL) < 0)
		return false;
	for (size_t i = 0; i < ng; i++)
		if (policy_grant_applies(&g[i], who, name))
			return true;
	return false;
}

/* A candidate file; order = (pass, grant, secret) so that sorting by (path, order) leaves the
 * winner of each path first. */
struct policy_cand {
	struct policy_file f;
	size_t order;
};

/* Where grant g puts secret name (matched by g's pattern); false when the result is no valid
 * name of at most SECRETD_PATH_MAX bytes. */
static bool policy_path(const struct policy_grant *g, const char *name, bool previous, char *out)
{
	const char *parts[4];
	size_t np = 0;
	bool star = strcmp(g->secret, "*") == 0;
	if (g->path && g->path[0]) {
		parts[np++] = g->path;
		const char *rest = names_pattern_rest(g->secret, name);
		if (star || rest != name) { /* "*" or a subtree: the subtree goes under path */
			parts[np++] = "/";
			parts[np++] = rest;
		}
	} else {
		parts[np++] = name;
	}
	if (previous)
		parts[np++] = POLICY_PREVIOUS_SUFFIX;
	size_t len = 0;
	for (size_t i = 0; i < np; i++) {
		size_t n = strlen(parts[i]);
		if (n > SECRETD_PATH_MAX - len)
			return false;
		memcpy(out + len, parts[i], n);
		len += n;
	}
	out[len] = '\0';
	return names_check(out, len, NULL) == 0;
}

static int policy_cand_cmp(const void *a, const void *b)
{
	const struct policy_cand *x = a, *y = b;
	int c = strcmp(x->f.path, y->f.path);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* The owner a grant asks for, or who's when it says -1; false when out of range. */
static bool policy_owner(int64_t want, uint32_t dflt, uint32_t *out)
{
	if (want == -1) {
		*out = dflt;
		return true;
	}
	if (want < 0 || want > (int64_t)POLICY_UID_MAX)
		return false;
	*out = (uint32_t)want;
	return true;
}

int policy_view(const struct policy_grant *g, size_t ng, const char *const *secrets, size_t ns,
                const struct policy_identity *who, struct policy_file **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	if (!who || (ng && !g) || (ns && !secrets))
		return 0;
	struct policy_cand *c = NULL;
	size_t nc = 0, cap = 0, order = 0;
	/* Pass 0 places the secrets themselves, pass 1 the .previous files: a real secret's path is
	 * never taken by another's previous version, whatever the grant order. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t gi = 0; gi < ng; gi++) {
			const struct policy_grant *gr = &g[gi];
			if (pass == 1 && !(gr->flags & POLICY_GRANT_PREVIOUS))
				continue;
			uint32_t uid, gid;
			if (!policy_owner(gr->uid, who->uid, &uid) ||
			    !policy_owner(gr->gid, who->gid, &gid))
				continue;
			for (size_t si = 0; si < ns; si++) {
				const char *name = secrets[si];
				if (!name || names_check(name, strlen(name), NULL) < 0 ||
				    !policy_grant_applies(gr, who, name))
					continue;
				struct policy_cand cd = {.order = order++};
				if (!policy_path(gr, name, pass == 1, cd.f.path))
					continue;
				cd.f.secret = name;
				cd.f.mode =
				    gr->mode ? (gr->mode & POLICY_MODE_MASK) : POLICY_MODE_DEFAULT;
				cd.f.uid = uid;
				cd.f.gid = gid;
				cd.f.previous = pass == 1;
				if (nc == cap) {
					size_t ncap = cap ? cap * 2 : 16;
					struct policy_cand *nw = reallocarray(c, ncap, sizeof(*c));
					if (!nw) {
						free(c);
						return -ENOMEM;
					}
					c = nw;
					cap = ncap;
				}
				c[nc++] = cd;
			}
		}
	}
	if (nc == 0) {
		free(c);
		return 0;
	}
	qsort(c, nc, sizeof(*c), policy_cand_cmp);
	struct policy_file *f = calloc(nc, sizeof(*f));
	if (!f) {
		free(c);
		return -ENOMEM;
	}
	size_t nf = 0;
	for (size_t i = 0; i < nc; i++)
		if (i == 0 || strcmp(c[i].f.path, c[i - 1].f.path) != 0)
			f[nf++] = c[i].f;
	free(c);
	*out = f;
	*nout = nf;
	return 0;
}
