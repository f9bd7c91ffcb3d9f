#include "broker/os/cgroup.h"

#include <errno.h>
#include <string.h>

#define CGROUP_HEX_ID_LEN 64 /* docker, podman, containerd and CRI-O container ids */
#define CGROUP_HIER_DIGITS                                                                         \
	10 /* hierarchy ids are small decimals; bounds the line's first field                      \
	    */
#define CGROUP_POD_UID_MAX (sizeof(((struct cgroup_info *)0)->pod_uid) - 1)

/* A borrowed byte range. */
struct cg_str {
	const char *p;
	size_t n;
};

/* What one path says about a container: the innermost recognised id, or none. */
struct cg_match {
	enum cgroup_runtime rt;
	char id[CGROUP_ID_MAX];
	char pod_uid[CGROUP_POD_UID_MAX + 1];
};

static bool cg_eq(struct cg_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n == n && memcmp(s.p, lit, n) == 0;
}

static bool cg_prefix(struct cg_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n >= n && memcmp(s.p, lit, n) == 0;
}

static bool cg_suffix(struct cg_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n >= n && memcmp(s.p + s.n - n, lit, n) == 0;
}

static struct cg_str cg_skip(struct cg_str s, size_t n)
{
	return (struct cg_str){s.p + n, s.n - n};
}

static struct cg_str cg_cut(struct cg_str s, size_t n)
{
	return (struct cg_str){s.p, s.n - n};
}

/* Exactly 64 lowercase hex digits: the strong signal of a container id. */
static bool cg_hex64(struct cg_str s)
{
	if (s.n != CGROUP_HEX_ID_LEN)
		return false;
	for (size_t i = 0; i < s.n; i++) {
		char c = s.p[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

/* "kubepods", "kubepods.slice", "kubepods-burstable.slice", ...: the Kubernetes root or a QoS
 * level under it. */
static bool cg_kubepods(struct cg_str s)
{
	return cg_eq(s, "kubepods") || cg_prefix(s, "kubepods.") || cg_prefix(s, "kubepods-");
}

static bool cg_uid_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '-' || c == '_';
}

/* A pod's cgroup: "pod<uid>" (cgroupfs driver) or "kubepods[-qos]-pod<uid_with_underscores>.slice"
 * (systemd driver, where systemd escaping turned the uid's dashes into underscores). On a match
 * writes the uid, dashes restored, into uid (CGROUP_POD_UID_MAX + 1 bytes). */
static bool cg_pod(struct cg_str s, char *uid)
{
	struct cg_str u;
	bool systemd = false;
	if (cg_prefix(s, "pod")) {
		u = cg_skip(s, 3);
	} else if (cg_prefix(s, "kubepods") && cg_suffix(s, ".slice")) {
		s = cg_cut(s, strlen(".slice"));
		size_t i = s.n;
		while (i >= 4 && memcmp(s.p + i - 4, "-pod", 4) != 0)
			i--;
		if (i < 4)
			return false;
		u = cg_skip(s, i);
		systemd = true;
	} else {
		return false;
	}
	if (u.n == 0 || u.n > CGROUP_POD_UID_MAX)
		return false;
	for (size_t i = 0; i < u.n; i++) {
		if (!cg_uid_char(u.p[i]))
			return false;
		uid[i] = systemd && u.p[i] == '_' ? '-' : u.p[i];
	}
	uid[u.n] = '\0';
	return true;
}

/* Undoes systemd's unit name escaping ("\x2d" for '-') of an nspawn machine name. The result must
 * be a printable, '/'-free name; false otherwise (the segment is then not taken as a machine). */
static bool cg_unescape(struct cg_str s, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < s.n; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c == '\\') {
			if (i + 3 >= s.n || s.p[i + 1] != 'x')
				return false;
			unsigned v = 0;
			for (size_t k = i + 2; k < i + 4; k++) {
				char h = s.p[k];
				v <<= 4;
				if (h >= '0' && h <= '9')
					v |= (unsigned)(h - '0');
				else if (h >= 'a' && h <= 'f')
					v |= (unsigned)(h - 'a' + 10);
				else if (h >= 'A' && h <= 'F')
					v |= (unsigned)(h - 'A' + 10);
				else
					return false;
			}
			c = (unsigned char)v;
			i += 3;
		}
		if (c <= ' ' || c >= 0x7f || c == '/' || o + 1 >= size)
			return false;
		out[o++] = (char)c;
	}
	if (o == 0)
		return false;
	out[o] = '\0';
	return true;
}

/* State carried down the path while its segments are read from the root. */
struct cg_walk {
	struct cg_str parent; /* the previous segment, empty at the root */
	bool kube;            /* a kubepods segment was seen above */
	bool have_pod;        /* pod_uid holds the nearest pod's uid above */
	char pod_uid[CGROUP_POD_UID_MAX + 1];
};

static void cg_set(struct cg_match *m, enum cgroup_runtime rt, struct cg_str id, const char *pod)
{
	m->rt = rt;
	memcpy(m->id, id.p, id.n);
	m->id[id.n] = '\0';
	size_t n = pod ? strnlen(pod, sizeof(m->pod_uid) - 1) : 0;
	memcpy(m->pod_uid, pod ? pod : "", n);
	m->pod_uid[n] = '\0';
}

/* The systemd driver's "slice:prefix:name" form (as containerd with SystemdCgroup writes it). */
static bool cg_colon_form(struct cg_str seg, const struct cg_walk *w, struct cg_match *m)
{
	const char *c1 = memchr(seg.p, ':', seg.n);
	if (!c1)
		return false;
	struct cg_str slice = {seg.p, (size_t)(c1 - seg.p)};
	struct cg_str rest = cg_skip(seg, slice.n + 1);
	const char *c2 = memchr(rest.p, ':', rest.n);
	if (!c2)
		return false;
	struct cg_str prefix = {rest.p, (size_t)(c2 - rest.p)};
	struct cg_str id = cg_skip(rest, prefix.n + 1);
	if (!cg_hex64(id))
		return false;
	char uid[CGROUP_POD_UID_MAX + 1];
	bool pod = cg_pod(slice, uid);
	bool kube = w->kube || cg_kubepods(slice);
	const char *pu = pod ? uid : w->have_pod ? w->pod_uid : NULL;
	if (kube)
		cg_set(m, CGROUP_RT_KUBERNETES, id, pu);
	else if (cg_eq(prefix, "cri-containerd"))
		cg_set(m, CGROUP_RT_CONTAINERD, id, NULL);
	else if (cg_eq(prefix, "crio"))
		cg_set(m, CGROUP_RT_CRIO, id, NULL);
	else if (cg_eq(prefix, "docker"))
		cg_set(m, CGROUP_RT_DOCKER, id, NULL);
	else
		return false;
	return true;
}

/* Recognises one segment as a container's cgroup. */
static bool cg_segment(struct cg_str seg, const struct cg_walk *w, struct cg_match *m)
{
	const char *pu = w->have_pod ? w->pod_uid : NULL;
	if (memchr(seg.p, ':', seg.n))
		return cg_colon_form(seg, w, m);
	/* Bare id: docker's cgroupfs driver, or a container of a pod (kubelet's cgroupfs driver).
	 */
	if (cg_hex64(seg)) {
		char uid[CGROUP_POD_UID_MAX + 1];
		if (w->kube && cg_pod(w->parent, uid)) {
			cg_set(m, CGROUP_RT_KUBERNETES, seg, uid);
			return true;
		}
		if (cg_eq(w->parent, "docker")) {
			cg_set(m, CGROUP_RT_DOCKER, seg, NULL);
			return true;
		}
		return false;
	}
	bool scope = cg_suffix(seg, ".scope");
	struct cg_str core = scope ? cg_cut(seg, strlen(".scope")) : seg;
	/* conmon, podman's and CRI-O's monitor, is a host process in a cgroup of its own. */
	if (cg_prefix(core, "libpod-conmon-") || cg_prefix(core, "crio-conmon-"))
		return false;
	struct cg_str id;
	enum cgroup_runtime rt;
	if (scope && cg_prefix(core, "docker-")) {
		id = cg_skip(core, strlen("docker-"));
		rt = CGROUP_RT_DOCKER;
	} else if (cg_prefix(core, "libpod-")) {
		id = cg_skip(core, strlen("libpod-"));
		rt = CGROUP_RT_PODMAN;
	} else if (scope && cg_prefix(core, "cri-containerd-")) {
		id = cg_skip(core, strlen("cri-containerd-"));
		rt = CGROUP_RT_CONTAINERD;
	} else if (scope && cg_prefix(core, "crio-")) {
		id = cg_skip(core, strlen("crio-"));
		rt = CGROUP_RT_CRIO;
	} else if (scope && cg_prefix(core, "machine-") && cg_eq(w->parent, "machine.slice")) {
		char name[CGROUP_ID_MAX];
		if (!cg_unescape(cg_skip(core, strlen("machine-")), name, sizeof(name)))
			return false;
		cg_set(m, CGROUP_RT_NSPAWN, (struct cg_str){name, strlen(name)}, NULL);
		return true;
	} else {
		return false;
	}
	if (!cg_hex64(id))
		return false;
	cg_set(m, w->kube ? CGROUP_RT_KUBERNETES : rt, id, w->kube ? pu : NULL);
	return true;
}

/* Reads path (starting with '/') root to leaf; *m gets the innermost container. Two containers
 * with different ids on one path (nesting, e.g. docker in docker) are refused: which of them a
 * process belongs to is a policy question the parser cannot answer. */
static int cg_recognise(struct cg_str path, struct cg_match *m)
{
	struct cg_walk w = {.parent = {path.p, 0}};
	*m = (struct cg_match){.rt = CGROUP_RT_NONE};
	size_t i = 1;
	while (i < path.n) {
		const char *slash = memchr(path.p + i, '/', path.n - i);
		size_t end = slash ? (size_t)(slash - path.p) : path.n;
		struct cg_str seg = {path.p + i, end - i};
		struct cg_match cur;
		if (seg.n > 0 && cg_segment(seg, &w, &cur)) {
			if (m->rt != CGROUP_RT_NONE && strcmp(m->id, cur.id) != 0)
				return -ENOTUNIQ;
			*m = cur;
		}
		if (cg_kubepods(seg))
			w.kube = true;
		char uid[CGROUP_POD_UID_MAX + 1];
		if (w.kube && cg_pod(seg, uid)) {
			memcpy(w.pod_uid, uid, sizeof(uid));
			w.have_pod = true;
		}
		w.parent = seg;
		i = end + 1;
	}
	return 0;
}

/* One line of /proc/PID/cgroup, split. */
struct cg_line {
	struct cg_str ctrl;
	struct cg_str path;
	bool v2;
	bool systemd;
};

static bool cg_has_controller(struct cg_str list, const char *name)
{
	size_t i = 0;
	while (i <= list.n) {
		const char *comma = memchr(list.p + i, ',', list.n - i);
		size_t end = comma ? (size_t)(comma - list.p) : list.n;
		if (cg_eq((struct cg_str){list.p + i, end - i}, name))
			return true;
		i = end + 1;
	}
	return false;
}

/* "ID:controllers:path"; the path may itself hold ':' (systemd driver form). */
static int cg_split(struct cg_str s, struct cg_line *l)
{
	const char *c1 = memchr(s.p, ':', s.n);
	if (!c1)
		return -EINVAL;
	struct cg_str hier = {s.p, (size_t)(c1 - s.p)};
	struct cg_str rest = cg_skip(s, hier.n + 1);
	const char *c2 = memchr(rest.p, ':', rest.n);
	if (!c2)
		return -EINVAL;
	if (hier.n == 0 || hier.n > CGROUP_HIER_DIGITS)
		return -EINVAL;
	for (size_t i = 0; i < hier.n; i++)
		if (hier.p[i] < '0' || hier.p[i] > '9')
			return -EINVAL;
	l->ctrl = (struct cg_str){rest.p, (size_t)(c2 - rest.p)};
	l->path = cg_skip(rest, l->ctrl.n + 1);
	if (l->path.n == 0 || l->path.p[0] != '/')
		return -EINVAL;
	if (l->path.n >= CGROUP_PATH_MAX)
		return -E2BIG;
	l->v2 = cg_eq(hier, "0") && l->ctrl.n == 0;
	l->systemd = !l->v2 && cg_has_controller(l->ctrl, "name=systemd");
	return 0;
}

/* A path that names a cgroup below the root. */
static bool cg_below_root(const struct cg_line *l)
{
	return l && !(l->path.n == 1 && l->path.p[0] == '/');
}

int cgroup_parse(const char *buf, size_t len, struct cgroup_info *out)
{
	if (!out || (!buf && len))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (len > CGROUP_INPUT_MAX)
		return -E2BIG;
	if (len == 0 || memchr(buf, '\0', len))
		return -EINVAL;
	struct cg_line lines[2 + 1]; /* the v2 line, name=systemd, the first recognised v1 line */
	struct cg_match matches[3];
	struct cg_line *v2 = NULL, *sd = NULL, *v1 = NULL;
	const char *seen_id = NULL; /* the first container id found on any line */
	char seen[CGROUP_ID_MAX];
	size_t nlines = 0, i = 0;
	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - buf) : len;
		if (++nlines > CGROUP_LINES_MAX)
			return -E2BIG;
		struct cg_line l;
		int r = cg_split((struct cg_str){buf + i, end - i}, &l);
		if (r < 0)
			return r;
		struct cg_match m;
		r = cg_recognise(l.path, &m);
		if (r < 0)
			return r;
		if (m.rt != CGROUP_RT_NONE) {
			if (!seen_id) {
				memcpy(seen, m.id, sizeof(seen));
				seen_id = seen;
			} else if (strcmp(seen_id, m.id) != 0) {
				return -ENOTUNIQ;
			}
		}
		/* One line per hierarchy: a repeated v2 or name=systemd line is not the kernel's.
		 */
		if ((l.v2 && v2) || (l.systemd && sd))
			return -EINVAL;
		if (l.v2) {
			lines[0] = l, matches[0] = m, v2 = &lines[0];
		} else if (l.systemd) {
			lines[1] = l, matches[1] = m, sd = &lines[1];
		} else if (!v1 && m.rt != CGROUP_RT_NONE) {
			lines[2] = l, matches[2] = m, v1 = &lines[2];
		}
		i = end + 1;
	}
	const struct cg_line *pick = NULL;
	const struct cg_match *pm = NULL;
	if (cg_below_root(v2))
		pick = v2, pm = &matches[0];
	else if (cg_below_root(sd))
		pick = sd, pm = &matches[1];
	else if (v1)
		pick = v1, pm = &matches[2];
	if (!pick) {
		out->runtime = CGROUP_RT_NONE;
		out->path[0] = '/';
		return 0;
	}
	memcpy(out->path, pick->path.p, pick->path.n);
	out->path[pick->path.n] = '\0';
	out->runtime = pm->rt;
	if (pm->rt != CGROUP_RT_NONE) {
		memcpy(out->id, pm->id, sizeof(out->id));
		memcpy(out->pod_uid, pm->pod_uid, sizeof(out->pod_uid));
	}
	return 0;
}

static const char *const cg_names[] = {
    [CGROUP_RT_NONE] = "host",
    [CGROUP_RT_DOCKER] = "docker",
    [CGROUP_RT_PODMAN] = "podman",
    [CGROUP_RT_CONTAINERD] = "containerd",
    [CGROUP_RT_KUBERNETES] = "kubernetes",
    [CGROUP_RT_CRIO] = "crio",
    [CGROUP_RT_NSPAWN] = "nspawn",
};

const char *cgroup_runtime_name(enum cgroup_runtime rt)
{
	if ((unsigned)rt >= sizeof(cg_names) / sizeof(cg_names[0]))
		return "host";
	return cg_names[rt];
}

int cgroup_runtime_from_name(const char *name, enum cgroup_runtime *rt)
{
	if (!name || !rt)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(cg_names) / sizeof(cg_names[0]); i++) {
		if (strcmp(name, cg_names[i]) == 0) {
			*rt = (enum cgroup_runtime)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool cgroup_path_within(const char *path, const char *ancestor)
{
	if (!path || !ancestor || path[0] != '/' || ancestor[0] != '/')
		return false;
	size_t n = strlen(ancestor);
	while (n > 1 && ancestor[n - 1] == '/')
		n--; /* "/a/" is the cgroup "/a" */
	if (n == 1)
		return true; /* everything is within the root */
	if (strncmp(path, ancestor, n) != 0)
		return false;
	return path[n] == '\0' || path[n] == '/';
}
