/* mountfs: a container's FUSE session. Mounts its sfs into the container's mount namespace
 * (nsmount), serves it from the loop, checks every opener's cgroup (cached per process token),
 * reports opens for the audit trail, and tears the session down. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "broker/engine/mounts_int.h"
#include "broker/engine/fault.h"
#include "broker/os/nsmount.h"

static void mountfs_cache_clear(struct mcont *c)
{
	memset(c->cache, 0, sizeof(c->cache));
}

/* The keeper closes its duplicate before this process closes its own fd, so that a mount left
 * behind (an unmount that failed) ends (ENOTCONN) instead of waiting for a server. */
static void mountfs_conn_drop(struct mcont *c)
{
	if (!c->held || !c->m->cfg.on_conn)
		return;
	struct mounts_conn mc = {.id = c->id, .held = false, .fuse_fd = -1, .journal_fd = -1};
	c->m->cfg.on_conn(c->m->cfg.on_conn_ud, &mc);
}

/* Once the kernel's INIT has been served, hands the connection to the keeper. */
static void mountfs_conn_hold(struct mcont *c)
{
	if (c->held || !c->m->cfg.on_conn || !c->fs)
		return;
	uint8_t init[SFS_INIT_RECORD_MAX];
	ssize_t n = sfs_init_record(c->fs, init, sizeof(init));
	if (n <= 0)
		return; /* no INIT yet (or none adoptable: -E2BIG, kept unheld) */
	struct mounts_conn mc = {.id = c->id,
	                         .held = true,
	                         .fuse_fd = sfs_fd(c->fs),
	                         .journal_fd = sfs_journal_fd(c->fs),
	                         .init = init,
	                         .init_len = (size_t)n};
	c->held = true;
	c->m->cfg.on_conn(c->m->cfg.on_conn_ud, &mc);
}

int mountfs_unmount(struct mcont *c, bool in_namespace)
{
	return mountfs_unmount_from(c, in_namespace ? c->pidfd : -1);
}

int mountfs_unmount_from(struct mcont *c, int pidfd)
{
	int err = 0;
	if (!c->fs)
		return 0;
	if (pidfd >= 0 && pidfd_send_signal(pidfd, 0, NULL, 0) == 0) {
		err = engine_fault(ENGINE_FAULT_UNMOUNT);
		if (err == 0)
			err = nsmount_umount(pidfd, c->root, c->target);
		if (err < 0)
			c->m->st.unmount_failures++; /* the session below is destroyed either way */
	}
	loop_del(c->m->loop, sfs_fd(c->fs));
	if (c->m->releasing) {
		sfs_release(c->fs); /* the keeper keeps it for the next daemon process */
	} else {
		mountfs_conn_drop(c);
		sfs_destroy(c->fs);
	}
	c->held = false;
	c->fs = NULL;
	c->nfiles = 0;
	if (c->failed) {
		c->failed = false;
		c->m->nfailed--;
	}
	mountfs_cache_clear(c);
	return err;
}

/* Runs first for every request that checks (sfs calls it before .opened): its procwatch_sync
 * also serves mountfs_opened's procwatch_exe for the same request. */
static int mountfs_check(void *ud, pid_t pid, uid_t uid, gid_t gid)
{
	struct mcont *c = ud;
	if (c->m->cfg.open_gate && c->m->cfg.open_gate(c->m->cfg.on_open_ud) < 0)
		return -EACCES; /* the audit cannot record: fail closed */
	procwatch *pw = c->m->cfg.procwatch;
	uint64_t token = 0;
	/* After the sync, every exit that happened before this request was sent has been applied:
	 * a token procwatch still gives for pid names the very process that sent it (a reused pid
	 * gets a new token), so a decision cached under it needs no system call. */
	if (pw && procwatch_sync(pw) == 0)
		token = procwatch_track(pw, pid);
	if (token)
		for (size_t i = 0; i < MOUNTS_CHECK_CACHE; i++) {
			struct mcheck *e = &c->cache[i];
			if (e->token != token || e->pid != pid)
				continue;
			if (!e->ok)
				c->denied++;
			return e->ok ? 0 : -EACCES;
		}
	struct ident id;
	bool ok = false;
	if (ident_from_pid(pid, &id) == 0) {
		ok = cgroup_path_within(id.cg.path, c->cgroup);
		ident_clear(&id);
		/* Untracked (a thread's tid, no procwatch): decided afresh each time. */
		if (token)
			c->cache[c->cache_next++ % MOUNTS_CHECK_CACHE] =
			    (struct mcheck){.pid = pid, .token = token, .ok = ok};
	}
	if (!ok)
		c->denied++;
	return ok ? 0 : -EACCES;
}

static int mountfs_file_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct policy_file *)elem)->path);
}

static void mountfs_opened(void *ud, pid_t pid, uid_t uid, const char *path, uint64_t version,
                           int result)
{
	struct mcont *c = ud;
	c->opens++;
	c->m->st.opens++;
	if (result < 0)
		c->m->st.opens_denied++;
	if (!c->m->cfg.on_open)
		return;
	const char *secret = path;
	if (c->files_gen == c->m->in.gen && c->nfiles_view) {
		/* policy_view sorts files by path */
		const struct policy_file *f =
		    bsearch(path, c->files, c->nfiles_view, sizeof(*c->files), mountfs_file_cmp);
		if (f)
			secret = f->secret;
	}
	const char *exe = NULL;
	if (c->m->cfg.procwatch) {
		/* mountfs_check synced procwatch for this request (sfs calls it first). */
		exe = procwatch_exe(c->m->cfg.procwatch, pid);
		if (!exe)
			exe = "";
	}
	struct mounts_open_event ev = {.actor = c->name && *c->name ? c->name : c->id,
	                               .pid = pid,
	                               .exe = exe,
	                               .uid = uid,
	                               .secret = secret,
	                               .path = path,
	                               .version = version,
	                               .result = result};
	c->m->cfg.on_open(c->m->cfg.on_open_ud, &ev);
}

static void mountfs_on_fuse(loop *l, int fd, uint32_t events, void *ud)
{
	struct mcont *c = ud;
	int r = sfs_dispatch_ready(c->fs, events);
	if (r == 0 && !c->held)
		mountfs_conn_hold(c);
	if (r == -ENODEV) {
		/* Unmounted, or the mount namespace is gone: the container has left. */
		mountfs_unmount(c, false);
		if (!c->hook) {
			mounts *m = c->m;
			registry_unpersist(c);
			registry_unlink(m, c);
			registry_cont_free(c);
		} else if (registry_persist(c) < 0) {
			/* its row still says mounted: the next start looks at the target (harmless:
			 * only a stale mount of ours is replaced) */
			c->m->st.registry_write_failures++;
		}
	}
}

/* The session's configuration and callbacks, the same for a new mount and an adopted one. */
static void mountfs_session_config(const struct mcont *c, struct sfs_config *cfg,
                                   struct sfs_ops *ops)
{
	*cfg =
	    (struct sfs_config){.no_open = c->m->cfg.no_open, .dir_uid = c->uid, .dir_gid = c->gid};
	*ops = (struct sfs_ops){.check = mountfs_check, .opened = mountfs_opened};
}

/* The end of a mount or adoption: on success the session is served from the loop; on failure it
 * is destroyed and c holds no session. Either way the blobs no session holds are dropped.
 * Returns r, or loop_add's error. */
static int mountfs_finish(struct mcont *c, int r)
{
	if (r == 0)
		r = loop_add(c->m->loop, sfs_fd(c->fs), EPOLLIN, mountfs_on_fuse, c);
	if (r < 0) {
		/* An adopted connection not served: the keeper lets go of it first, and the
		 * caller mounts afresh over it (nsmount_replace detaches this one). */
		mountfs_conn_drop(c);
		c->held = false;
		sfs_destroy(c->fs);
		c->fs = NULL;
		c->nfiles = 0;
	}
	blobcache_sweep_unshared(&c->m->blobs);
	return r;
}

int mountfs_mount(struct mcont *c, int pidfd, bool replace)
{
	struct sfs_config cfg;
	struct sfs_ops ops;
	mountfs_session_config(c, &cfg, &ops);
	int r = views_inputs_fresh(c->m);
	if (r < 0)
		return r;
	r = sfs_new(&c->fs, &cfg, &ops, c);
	if (r < 0) {
		c->fs = NULL;
		return r;
	}
	r = views_apply(c);
	char data[256];
	if (r == 0)
		r = sfs_mount_data(c->fs, data, sizeof(data));
	if (r == 0)
		r = replace ? nsmount_replace(pidfd, c->root, c->target, sfs_fd(c->fs), data)
		            : nsmount_fuse(pidfd, c->root, c->target, sfs_fd(c->fs), data);
	return mountfs_finish(c, r);
}

int mountfs_adopt(struct mcont *c, struct mounts_held *h)
{
	struct sfs_config cfg;
	struct sfs_ops ops;
	mountfs_session_config(c, &cfg, &ops);
	sfs *fs = NULL;
	int r = views_inputs_fresh(c->m);
	if (r == 0)
		r = sfs_adopt(&fs, &cfg, &ops, c, h->fuse_fd, h->init, h->init_len, h->journal_fd,
		              0);
	close(h->fuse_fd); /* sfs_adopt took duplicates */
	close(h->journal_fd);
	h->fuse_fd = h->journal_fd = -1;
	if (r < 0)
		return r;
	c->fs = fs;
	c->held = true;     /* the keeper holds it already */
	r = views_apply(c); /* the first view also sends FUSE_NOTIFY_RESEND */
	if (r == 0 && sfs_resend_status(fs) < 0)
		/* A kernel without RESEND (< 6.9): what the dead process had read is never
		 * answered and may hold a directory lock; abandon the connection (its waiting
		 * callers get ENOTCONN) and mount afresh. */
		r = sfs_resend_status(fs);
	return mountfs_finish(c, r);
}
