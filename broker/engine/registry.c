/* registry: the containers the broker knows. Registered by the OCI hook (attach, detach, the
 * init's pidfd watched for exit) or seen on the workload socket (remembered up to
 * MOUNTS_SEEN_MAX); lookup by id and by cgroup; a peer resolved to its policy identity. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <time.h>
#include <unistd.h>

#include "broker/engine/fault.h"
#include "broker/engine/mounts_int.h"
#include "common/limits.h"
#include "common/names.h"

static int64_t registry_now(void)
{
	return (int64_t)time(NULL);
}

void registry_identity(const struct mcont *c, struct policy_identity *who)
{
	*who = (struct policy_identity){.container = true,
	                                .runtime = c->runtime,
	                                .id = c->id,
	                                .name = c->name,
	                                .labels = c->labels,
	                                .nlabels = c->nlabels,
	                                .cgroup = c->cgroup,
	                                .uid = c->uid,
	                                .gid = c->gid};
}

void registry_cont_free(struct mcont *c)
{
	if (!c)
		return;
	mountfs_unmount(c, false);
	if (c->pidfd >= 0) {
		loop_del(c->m->loop, c->pidfd);
		close(c->pidfd);
	}
	for (size_t i = 0; i < c->nlabels; i++) {
		free((char *)c->labels[i].key);
		free((char *)c->labels[i].value);
	}
	free(c->labels);
	free(c->files);
	free(c->id);
	free(c->runtime);
	free(c->name);
	free(c->target);
	free(c->root);
	free(c);
}

void registry_unlink(mounts *m, struct mcont *c)
{
	for (struct mcont **p = &m->conts; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			m->ncont--;
			return;
		}
}

static struct mcont *registry_find_id(mounts *m, const char *id)
{
	for (struct mcont *c = m->conts; c; c = c->next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

/* The most specific known container whose cgroup holds path. */
static struct mcont *registry_find_cgroup(mounts *m, const char *path)
{
	struct mcont *best = NULL;
	for (struct mcont *c = m->conts; c; c = c->next)
		if (strcmp(c->cgroup, "/") != 0 && cgroup_path_within(path, c->cgroup) &&
		    (!best || strlen(c->cgroup) > strlen(best->cgroup)))
			best = c;
	return best;
}

static void registry_on_exit(loop *l, int fd, uint32_t events, void *ud)
{
	struct mcont *c = ud;
	registry_unpersist(c);
	registry_unlink(c->m, c);
	registry_cont_free(c);
}

int registry_persist(struct mcont *c)
{
	bool self = c->fs && c->mount_kind == STORE_CONT_MOUNT_SELF;
	if (!c->hook && !self)
		return 0; /* a seen-only container without a mount of its own: nothing to restore */
	struct store_cont_label *labels = NULL;
	if (c->nlabels) {
		labels = calloc(c->nlabels, sizeof(*labels));
		if (!labels)
			return -ENOMEM;
		for (size_t i = 0; i < c->nlabels; i++) /* only read by the store */
			labels[i] = (struct store_cont_label){.key = (char *)c->labels[i].key,
			                                      .value = (char *)c->labels[i].value};
	}
	struct store_container row = {.id = c->id,
	                              .hook = c->hook,
	                              .runtime = c->runtime,
	                              .name = c->name,
	                              .labels = labels,
	                              .nlabels = c->nlabels,
	                              .cgroup = c->cgroup,
	                              .pid = c->hook ? c->pid : c->mount_pid,
	                              .start_time = c->hook ? c->start_time : c->mount_start,
	                              .mount = c->fs ? c->mount_kind : STORE_CONT_UNMOUNTED,
	                              .mount_pid = self ? c->mount_pid : 0,
	                              .mount_start = self ? c->mount_start : 0,
	                              .mount_ns = self ? c->mount_ns : 0,
	                              .root = c->root,
	                              .target =
	                                  c->target ? c->target : (char *)SECRETD_MOUNT_DEFAULT,
	                              .uid = c->uid,
	                              .gid = c->gid,
	                              .wants = c->wants,
	                              .created = c->created};
	int r = engine_fault(ENGINE_FAULT_REGISTRY_WRITE);
	if (r == 0)
		r = store_containers_put(c->m->store, &row);
	free(labels);
	return r;
}

void registry_unpersist(struct mcont *c)
{
	if (!c->hook && c->mount_kind != STORE_CONT_MOUNT_SELF)
		return;
	int r = store_containers_del(c->m->store, c->id);
	if (r < 0 && r != -ENOENT)
		c->m->st.registry_write_failures++;
}

int registry_link(mounts *m, struct mcont *c)
{
	if (c->hook && c->pidfd >= 0) {
		int r = loop_add(m->loop, c->pidfd, EPOLLIN, registry_on_exit, c);
		if (r < 0)
			return r;
	}
	c->next = m->conts;
	m->conts = c;
	m->ncont++;
	return 0;
}

static bool registry_id_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

static int registry_target_ok(const char *t)
{
	if (!t || t[0] != '/' || strlen(t) > SECRETD_PATH_MAX)
		return -EINVAL;
	return names_check(t + 1, strlen(t + 1), NULL);
}

struct mcont *registry_cont_new(mounts *m, const char *id, const char *runtime, const char *name)
{
	struct mcont *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->m = m;
	c->pidfd = -1;
	c->id = strdup(id);
	c->runtime = strdup(runtime ? runtime : "oci");
	c->name = strdup(name ? name : "");
	c->created = c->last_seen = registry_now();
	if (!c->id || !c->runtime || !c->name) {
		registry_cont_free(c);
		return NULL;
	}
	return c;
}

int mounts_attach(mounts *m, const struct mounts_attach_req *r, bool *mounted, size_t *files)
{
	*mounted = false;
	*files = 0;
	if (!r->id || !registry_id_ok(r->id, MOUNTS_ID_MAX) || r->pid <= 0)
		return -EINVAL;
	if (r->name && *r->name && !registry_id_ok(r->name, MOUNTS_NAME_MAX))
		return -EINVAL;
	const char *target = r->target && *r->target ? r->target : SECRETD_MOUNT_DEFAULT;
	if (registry_target_ok(target) < 0 || (r->root && r->root[0] != '/'))
		return -EINVAL;
	if (r->nlabels > POLICY_LABELS_MAX)
		return -E2BIG;
	struct mcont *old = registry_find_id(m, r->id);
	if (old) {
		if (old->hook)
			return -EEXIST;
		registry_unlink(m, old); /* seen before on the workload socket: now registered */
		registry_cont_free(old);
	}
	struct ident id;
	int rc = ident_from_pid(r->pid, &id);
	if (rc < 0)
		return rc;
	struct mcont *c = registry_cont_new(m, r->id, r->runtime, r->name);
	if (!c) {
		ident_clear(&id);
		return -ENOMEM;
	}
	c->hook = true;
	c->wants = r->wants;
	c->pid = r->pid;
	c->pidfd = id.pidfd;
	id.pidfd = -1;
	/* The init's start time, read while its pidfd shows it alive: the pid was not reused. */
	rc = ident_start_time(r->pid, &c->start_time);
	if (rc == 0 && pidfd_send_signal(c->pidfd, 0, NULL, 0) < 0)
		rc = -ESRCH;
	if (rc < 0) {
		registry_cont_free(c);
		return rc;
	}
	snprintf(c->cgroup, sizeof(c->cgroup), "%s", id.cg.path);
	c->uid = r->uid >= 0 ? (uint32_t)r->uid : id.uid;
	c->gid = r->gid >= 0 ? (uint32_t)r->gid : id.gid;
	c->target = strdup(target);
	c->root = r->root ? strdup(r->root) : NULL;
	c->labels = calloc(r->nlabels ? r->nlabels : 1, sizeof(*c->labels));
	if (!c->target || (r->root && !c->root) || !c->labels) {
		registry_cont_free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->nlabels; i++) {
		c->labels[i].key = strdup(r->labels[i].key);
		c->labels[i].value = strdup(r->labels[i].value);
		c->nlabels++;
		if (!c->labels[i].key || !c->labels[i].value) {
			registry_cont_free(c);
			return -ENOMEM;
		}
	}
	rc = views_inputs_fresh(m);
	if (rc < 0) {
		registry_cont_free(c);
		return rc;
	}
	size_t want_files = views_count(c);
	if ((want_files > 0 || r->wants) && strcmp(c->cgroup, "/") == 0) {
		/* Every host process shares this cgroup: opens could not be told apart. A container
		 * that wants nothing may still start without a cgroup of its own. */
		registry_cont_free(c);
		return -EPERM;
	}
	if (want_files > 0 || r->wants) {
		c->mount_kind = STORE_CONT_MOUNT_HOOK;
		rc = mountfs_mount(c, c->pidfd, false);
		if (rc < 0) {
			registry_cont_free(c);
			return rc;
		}
	}
	/* Persisted before the hook is answered: no row, no attach. */
	rc = registry_persist(c);
	if (rc < 0) {
		/* out of its namespace too (a failed unmount is counted): the container will not
		 * start, but a workload attach's process lives on */
		mountfs_unmount(c, true);
		registry_cont_free(c);
		return rc;
	}
	rc = registry_link(m, c);
	if (rc < 0) {
		registry_unpersist(c);
		registry_cont_free(c);
		return rc;
	}
	*mounted = c->fs != NULL;
	*files = c->nfiles;
	return 0;
}

int mounts_detach(mounts *m, const char *id, int *unmount_err)
{
	if (unmount_err)
		*unmount_err = 0;
	struct mcont *c = registry_find_id(m, id);
	if (!c)
		return -ENOENT;
	int ue = mountfs_unmount(c, true);
	if (unmount_err)
		*unmount_err = ue;
	registry_unpersist(c);
	registry_unlink(m, c);
	registry_cont_free(c);
	return 0;
}

/* Makes room for one more seen-only container: forgets the least recently seen unmounted ones
 * (by sight order, not by last_seen, which has whole seconds: many sights share one). */
static void registry_seen_trim(mounts *m)
{
	for (;;) {
		struct mcont *oldest = NULL;
		size_t nseen = 0;
		for (struct mcont *c = m->conts; c; c = c->next)
			if (!c->hook && !c->fs) {
				nseen++;
				if (!oldest || c->seen_seq < oldest->seen_seq)
					oldest = c;
			}
		if (nseen < MOUNTS_SEEN_MAX || !oldest)
			return;
		registry_unlink(m, oldest);
		registry_cont_free(oldest);
	}
}

/* The record for an unregistered well-known container, created on first sight. */
static struct mcont *registry_seen(mounts *m, const struct ident *who)
{
	const char *rt = cgroup_runtime_name(who->cg.runtime);
	struct mcont *c = registry_find_id(m, who->cg.id);
	if (c) {
		c->last_seen = registry_now();
		c->seen_seq = ++m->seen_seq;
		return c;
	}
	registry_seen_trim(m);
	c = registry_cont_new(m, who->cg.id, rt, "");
	if (!c)
		return NULL;
	snprintf(c->cgroup, sizeof(c->cgroup), "%s", who->cg.path);
	c->seen_seq = ++m->seen_seq;
	c->uid = who->uid;
	c->gid = who->gid;
	c->next = m->conts;
	m->conts = c;
	m->ncont++;
	return c;
}

void mounts_identify(mounts *m, const struct ident *who, struct policy_identity *out)
{
	struct mcont *c = registry_find_cgroup(m, who->cg.path);
	if (!c && who->cg.runtime != CGROUP_RT_NONE)
		c = registry_seen(m, who);
	if (c) {
		c->last_seen = registry_now();
		c->seen_seq = ++m->seen_seq;
		registry_identity(c, out);
		/* The peer's own uid, not the container's default file owner. */
		out->uid = who->uid;
		out->gid = who->gid;
		return;
	}
	*out = (struct policy_identity){.container = false,
	                                .runtime = "host",
	                                .id = "",
	                                .name = "",
	                                .cgroup = who->cg.path,
	                                .uid = who->uid,
	                                .gid = who->gid};
}

int mounts_mount_self(mounts *m, const struct ident *who, const char *target, size_t *files)
{
	*files = 0;
	target = target && *target ? target : SECRETD_MOUNT_DEFAULT;
	if (registry_target_ok(target) < 0)
		return -EINVAL;
	struct mcont *c = registry_find_cgroup(m, who->cg.path);
	if (!c && who->cg.runtime != CGROUP_RT_NONE)
		c = registry_seen(m, who);
	if (!c)
		return -EPERM;
	if (c->fs)
		return -EEXIST;
	char *t = strdup(target);
	if (!t)
		return -ENOMEM;
	free(c->target);
	c->target = t;
	free(c->root);
	c->root = NULL;
	if (!c->hook) {
		c->uid = who->uid;
		c->gid = who->gid;
	}
	/* The requester's start time, read while its pidfd shows it alive (restore finds its
	 * namespace through it). */
	uint64_t start = 0, ns = 0;
	int r = ident_start_time(who->pid, &start);
	if (r == 0)
		r = ident_mnt_ns(who->pid, &ns);
	if (r == 0 && ident_alive(who) < 0)
		r = -ESRCH;
	if (r < 0)
		return r;
	enum store_cont_mount old_kind = c->mount_kind;
	pid_t old_pid = c->mount_pid;
	uint64_t old_start = c->mount_start, old_ns = c->mount_ns;
	c->mount_kind = STORE_CONT_MOUNT_SELF;
	c->mount_pid = who->pid;
	c->mount_start = start;
	c->mount_ns = ns;
	r = mountfs_mount(c, who->pidfd, false);
	if (r == 0) {
		r = registry_persist(c);
		if (r < 0) /* no row, no mount: out of the requester's namespace again */
			mountfs_unmount_from(c, who->pidfd);
	}
	if (r < 0) {
		c->mount_kind = old_kind;
		c->mount_pid = old_pid;
		c->mount_start = old_start;
		c->mount_ns = old_ns;
		return r;
	}
	*files = c->nfiles;
	return 0;
}
