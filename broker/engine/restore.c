/* restore: at start, re-attaches the containers of the persisted registry (store_containers_*)
 * that still run, so that a daemon killed (-9, OOM) or stopped and started again serves them
 * again without restarting them. See mounts_restore in mounts.h for the rules. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "broker/engine/mounts_int.h"
#include "common/decimal.h"

/* The process a row names, found again: its pidfd, alive after its start time was read. */
struct restore_proc {
	struct ident id; /* pidfd owned */
};

/* 0 with p filled when pid runs with start time start and its cgroup lies within cgroup;
 * -ESRCH (gone), -ESTALE (another process has the pid now), -EXDEV (it left the cgroup). */
static int restore_find(pid_t pid, uint64_t start, const char *cgroup, struct restore_proc *p)
{
	int r = ident_from_pid(pid, &p->id);
	if (r < 0)
		return r == -ESRCH || r == -ENOENT ? -ESRCH : r;
	uint64_t now = 0;
	r = ident_start_time(pid, &now);
	if (r == 0 && ident_alive(&p->id) < 0)
		r = -ESRCH; /* gone while we read: the start time may be another's */
	if (r == 0 && (p->id.pid != pid || now != start))
		r = -ESTALE;
	if (r == 0 && !cgroup_path_within(p->id.cg.path, cgroup))
		r = -EXDEV;
	if (r < 0)
		ident_clear(&p->id);
	return r;
}

/* The process whose mount namespace holds a self-mount: the requester of the row, else (it
 * has exited: `secretctl mount` does at once) any process of the container's cgroup in the
 * same mount namespace (row->mount_ns), found in /proc. 0 with p, *pid, *start; else
 * restore_find's error for the requester, or -ESRCH when no such process runs. */
static int restore_find_self(const struct store_container *row, struct restore_proc *p, pid_t *pid,
                             uint64_t *start)
{
	int r = restore_find((pid_t)row->mount_pid, row->mount_start, row->cgroup, p);
	if (r == 0) {
		*pid = (pid_t)row->mount_pid;
		*start = row->mount_start;
		return 0;
	}
	if (!row->mount_ns || (r != -ESRCH && r != -ESTALE && r != -EXDEV))
		return r;
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	int found = -ESRCH;
	struct dirent *e;
	while (found < 0 && (e = readdir(d))) {
		uint64_t v, ns = 0, st = 0;
		if (decimal_parse_u64(e->d_name, strlen(e->d_name), 1, INT32_MAX, &v) < 0 ||
		    ident_mnt_ns((pid_t)v, &ns) < 0 || ns != row->mount_ns ||
		    ident_start_time((pid_t)v, &st) < 0 ||
		    restore_find((pid_t)v, st, row->cgroup, p) < 0)
			continue;
		/* the namespace again, now that the pidfd pins the process */
		if (ident_mnt_ns((pid_t)v, &ns) < 0 || ns != row->mount_ns ||
		    ident_alive(&p->id) < 0) {
			ident_clear(&p->id);
			continue;
		}
		*pid = (pid_t)v;
		*start = st;
		found = 0;
	}
	closedir(d);
	return found;
}

static const char *restore_why(int err)
{
	switch (err) {
	case -ESRCH:
		return "its process is gone";
	case -ESTALE:
		return "its pid belongs to another process now (start time differs)";
	case -EXDEV:
		return "its process is no longer in the container's cgroup";
	default:
		return "its process cannot be checked";
	}
}

/* A container record from row (not linked). NULL on ENOMEM. */
static struct mcont *restore_cont(mounts *m, const struct store_container *row)
{
	struct mcont *c = registry_cont_new(m, row->id, row->runtime, row->name);
	if (!c)
		return NULL;
	c->hook = row->hook;
	c->wants = row->wants;
	c->created = row->created;
	c->uid = row->uid;
	c->gid = row->gid;
	snprintf(c->cgroup, sizeof(c->cgroup), "%s", row->cgroup);
	c->target = strdup(row->target);
	c->root = NULL; /* running now: its /proc/PID/root, not the bundle path of createRuntime */
	c->labels = calloc(row->nlabels ? row->nlabels : 1, sizeof(*c->labels));
	if (!c->target || !c->labels) {
		registry_cont_free(c);
		return NULL;
	}
	for (size_t i = 0; i < row->nlabels; i++) {
		c->labels[i].key = strdup(row->labels[i].key);
		c->labels[i].value = strdup(row->labels[i].value);
		c->nlabels++;
		if (!c->labels[i].key || !c->labels[i].value) {
			registry_cont_free(c);
			return NULL;
		}
	}
	return c;
}

/* Adopting a held FUSE connection is a later step (a keeper process): until then a held fd is
 * closed and the container mounted afresh. */
static int restore_adopt(struct mcont *c, int fuse_fd)
{
	close(fuse_fd);
	return -EOPNOTSUPP;
}

/* Makes c's mount again in the namespace of the process behind pidfd. */
static int restore_mount(struct mcont *c, int pidfd, const struct mounts_restore_ops *ops)
{
	if (ops && ops->take_held) {
		int fd = -1;
		int r = ops->take_held(ops->ud, c->id, &fd);
		if (r == 0 && restore_adopt(c, fd) == 0)
			return 0;
		if (r < 0 && r != -ENOENT)
			return r;
	}
	return mountfs_mount(c, pidfd, true);
}

static void restore_report(mounts_restore_cb cb, void *ud, struct mounts_restore_event *ev,
                           struct mounts_restore_counts *n)
{
	if (ev->outcome == MOUNTS_RESTORE_RESTORED)
		n->restored++;
	else if (ev->outcome == MOUNTS_RESTORE_FORGOTTEN)
		n->forgotten++;
	else
		n->failed++;
	if (cb)
		cb(ud, ev);
}

/* Restores one valid row; fills ev. */
static void restore_one(mounts *m, const struct store_container *row,
                        const struct mounts_restore_ops *ops, struct mounts_restore_event *ev)
{
	struct restore_proc p = {.id = {.pidfd = -1}}, mp = {.id = {.pidfd = -1}};
	pid_t self_pid = 0;
	uint64_t self_start = 0;
	int r = row->hook ? restore_find((pid_t)row->pid, row->start_time, row->cgroup, &p)
	                  : restore_find_self(row, &p, &self_pid, &self_start);
	if (r < 0) {
		ev->outcome = MOUNTS_RESTORE_FORGOTTEN;
		ev->why = restore_why(r);
		if (store_containers_del(m->store, row->id) < 0)
			m->st.registry_write_failures++;
		return;
	}
	struct mcont *c = restore_cont(m, row);
	if (!c) {
		ident_clear(&p.id);
		*ev = (struct mounts_restore_event){.outcome = MOUNTS_RESTORE_FAILED,
		                                    .id = row->id,
		                                    .name = row->name,
		                                    .why = "no memory",
		                                    .err = -ENOMEM,
		                                    .row_kept = true};
		return;
	}
	int mount_pidfd = p.id.pidfd;
	if (row->hook) {
		c->pid = (pid_t)row->pid;
		c->start_time = row->start_time;
		c->pidfd = p.id.pidfd; /* watched for exit from now on */
		p.id.pidfd = -1;
		mount_pidfd = c->pidfd;
	}
	c->mount_kind = row->mount;
	if (row->mount == STORE_CONT_MOUNT_SELF) {
		c->mount_ns = row->mount_ns;
		if (!row->hook) {
			mount_pidfd = p.id.pidfd; /* found by restore_find_self above */
		} else {
			r = restore_find_self(row, &mp, &self_pid, &self_start);
			mount_pidfd = r == 0 ? mp.id.pidfd : -1;
		}
		/* the process found is the one the row names from now on */
		c->mount_pid = self_pid;
		c->mount_start = self_start;
	}
	int mr = 0;
	if (row->mount != STORE_CONT_UNMOUNTED && mount_pidfd >= 0)
		mr = restore_mount(c, mount_pidfd, ops);
	else if (row->mount != STORE_CONT_UNMOUNTED)
		mr = -ESRCH; /* a self-mount whose requester is gone: nothing to mount into */
	ident_clear(&p.id);
	ident_clear(&mp.id);
	if (mr == -ESRCH && row->hook) {
		/* The self-mount's namespace is gone with its requester: registered without it. */
		c->mount_kind = STORE_CONT_UNMOUNTED;
		mr = 0;
		if (registry_persist(c) < 0)
			m->st.registry_write_failures++;
	}
	if (mr < 0 && !row->hook) {
		/* a seen-only container is its mount: nothing left to register */
		registry_cont_free(c);
		*ev = (struct mounts_restore_event){.outcome = MOUNTS_RESTORE_FAILED,
		                                    .id = row->id,
		                                    .name = row->name,
		                                    .why = "its mount cannot be made again",
		                                    .err = mr,
		                                    .row_kept = true};
		return;
	}
	r = registry_link(m, c);
	if (r < 0) {
		registry_cont_free(c);
		*ev = (struct mounts_restore_event){.outcome = MOUNTS_RESTORE_FAILED,
		                                    .id = row->id,
		                                    .name = row->name,
		                                    .why = "cannot watch its process",
		                                    .err = r,
		                                    .row_kept = true};
		return;
	}
	ev->id = c->id;
	ev->name = c->name;
	ev->target = c->target;
	if (mr < 0) {
		/* Registered (its name and labels count on the workload socket) without its mount;
		 * the row keeps saying mounted, so the next start tries again. */
		ev->outcome = MOUNTS_RESTORE_FAILED;
		ev->why = "registered again, but its mount cannot be made again";
		ev->err = mr;
		ev->row_kept = true;
		return;
	}
	if (c->mount_kind == STORE_CONT_MOUNT_SELF &&
	    (c->mount_pid != (pid_t)row->mount_pid || c->mount_start != row->mount_start) &&
	    registry_persist(c) < 0)
		m->st.registry_write_failures++; /* the next start searches the namespace again */
	ev->outcome = MOUNTS_RESTORE_RESTORED;
	ev->mounted = c->fs != NULL;
	ev->files = c->nfiles;
}

int mounts_restore(mounts *m, const struct mounts_restore_ops *ops, mounts_restore_cb cb,
                   void *cb_ud, struct mounts_restore_counts *out)
{
	struct mounts_restore_counts n = {0};
	if (out)
		*out = n;
	struct store_container *rows = NULL;
	size_t nrows = 0;
	int r = store_containers_list(m->store, &rows, &nrows);
	if (r < 0) {
		m->st.restore_failures++;
		if (out)
			out->failed = 1;
		return r;
	}
	for (size_t i = 0; i < nrows; i++) {
		const struct store_container *row = &rows[i];
		struct mounts_restore_event ev = {.id = row->id, .name = row->name};
		bool known = false;
		for (struct mcont *c = m->conts; c; c = c->next)
			known = known || strcmp(c->id, row->id) == 0;
		if (row->integrity < 0) {
			/* Not written by this store's key (edited, added, swapped): never trusted,
			 * never retried; the log line is the evidence. */
			ev.outcome = MOUNTS_RESTORE_FAILED;
			ev.why = "integrity check failed on its registry row (row deleted)";
			ev.err = row->integrity;
			if (store_containers_del(m->store, row->id) < 0) {
				m->st.registry_write_failures++;
				ev.row_kept = true;
			}
		} else if (known) {
			ev.outcome = MOUNTS_RESTORE_FAILED;
			ev.why = "already registered";
			ev.err = -EEXIST;
		} else {
			restore_one(m, row, ops, &ev);
		}
		if (ev.outcome == MOUNTS_RESTORE_FAILED)
			m->st.restore_failures++;
		restore_report(cb, cb_ud, &ev, &n);
	}
	store_containers_free(rows, nrows);
	if (out)
		*out = n;
	return 0;
}
