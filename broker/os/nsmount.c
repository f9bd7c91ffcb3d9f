/* nsmount: the namespace work runs in a child that shares the daemon's address space (clone with
 * CLONE_VM, its own stack, its own copy of the fd table and of the working directory/root, all
 * signals blocked) and only makes system calls (no malloc, no stdio, no static buffers: other
 * threads of the daemon run on meanwhile). It stores one int (0 or -errno) in the job, which the
 * parent reads after the child's exit. Sharing the address space is what makes this cheap: a
 * forked child copied the daemon's page tables and tore them down again at its exit (0.5-4 ms
 * per mount, growing with the daemon's memory); the parent still waits on a pidfd with a
 * deadline and kills a child that hangs.
 *
 * Finding the container's root for a running container (root == NULL): the parent reads the pid
 * behind the pidfd from /proc/self/fdinfo, opens /proc/PID/root, then checks with a 0 signal that
 * the pidfd's process is still alive: while it lives the pid cannot have been reused, so the fd is
 * that process's root. The child inherits the fd and uses it after setns. */
#include "broker/os/nsmount.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif
#ifndef SYS_statmount
#define SYS_statmount 457
#endif
#define NS_STATMOUNT_SB_BASIC 0x1ULL
#define NS_STATMOUNT_FS_SUBTYPE 0x100ULL
#define NS_STATMOUNT_SB_SOURCE 0x200ULL
#define NS_STATMOUNT_STR 512  /* where struct statmount's strings start */
#define NS_STATMOUNT_BUF 4096 /* the struct and its strings (mount options included) */
#define NS_OUR_NAME "secretd" /* our mounts' source and subtype */
#define NS_REPLACE_MAX 16     /* stale mounts of ours detached at one target, at most */
#define NS_NAME_MAX 256
/* the child's stack (its deepest frame: a 4 KiB statmount buffer) */
#define NS_STACK (128 * 1024)
#define NS_NO_RESULT INT32_MIN /* job.result before the child has answered */

/* ---- helpers usable in the child ---- */

static int open_beneath(int dirfd, const char *name, int flags)
{
	struct open_how how;
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	long r = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	return r < 0 ? -errno : (int)r;
}

/* Next path component of *p into name (no allocation). 0 at the end, 1 with a component,
 * -EINVAL for "..", an over-long component. */
static int next_comp(const char **p, char name[NS_NAME_MAX])
{
	for (;;) {
		while (**p == '/')
			(*p)++;
		if (!**p)
			return 0;
		size_t n = strcspn(*p, "/");
		if (n >= NS_NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(name, *p, n);
		name[n] = '\0';
		*p += n;
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, ".."))
			return -EINVAL;
		return 1;
	}
}

/* One step down from dirfd to the directory `name`, without following symlinks; creates it
 * (0755) when missing and create is set. Returns the new O_PATH fd or -errno (-ELOOP for a
 * symlink, -ENOTDIR for a non-directory). */
static int step(int dirfd, const char *name, bool create)
{
	int fd = open_beneath(dirfd, name, O_PATH | O_DIRECTORY);
	if (fd == -ENOENT && create) {
		if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
			return -errno;
		fd = open_beneath(dirfd, name, O_PATH | O_DIRECTORY);
	}
	return fd;
}

/* Resolves target beneath rootfd. With parent_only, stops before the last component, which is
 * copied to base. Returns an O_PATH directory fd or -errno. */
static int resolve(int rootfd, const char *target, bool create, bool parent_only,
                   char base[NS_NAME_MAX])
{
	char name[NS_NAME_MAX], next[NS_NAME_MAX];
	const char *p = target;
	int r = next_comp(&p, name);
	if (r <= 0)
		return r < 0 ? r : -EINVAL; /* the root itself is not a target */
	int cur = dup(rootfd);
	if (cur < 0)
		return -errno;
	for (;;) {
		r = next_comp(&p, next);
		if (r < 0)
			goto fail;
		if (r == 0 && parent_only) {
			memcpy(base, name, NS_NAME_MAX);
			return cur;
		}
		int fd = step(cur, name, create);
		close(cur);
		if (fd < 0)
			return fd;
		cur = fd;
		if (r == 0)
			return cur;
		memcpy(name, next, NS_NAME_MAX);
	}
fail:
	close(cur);
	return r;
}

/* Mount with the new API; -EOPNOTSUPP-ish failures before move_mount make the caller fall
 * back to mount(2). *before_attach tells whether the failure happened before move_mount. */
static int mount_new_api(int tfd, int fuse_fd, const char *data, bool *before_attach)
{
	*before_attach = true;
	int fsfd = fsopen("fuse", FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return -errno;
	int r = 0;
	bool have_subtype = false;
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "source", "secretd", 0) < 0)
		goto err;
	const char *p = data;
	while (*p) {
		char opt[NS_NAME_MAX];
		size_t n = strcspn(p, ",");
		if (n >= sizeof(opt)) {
			r = -EINVAL;
			goto out;
		}
		memcpy(opt, p, n);
		opt[n] = '\0';
		p += n;
		if (*p == ',')
			p++;
		if (!n)
			continue;
		char *eq = strchr(opt, '=');
		if (!eq) {
			if (fsconfig(fsfd, FSCONFIG_SET_FLAG, opt, NULL, 0) < 0)
				goto err;
			continue;
		}
		*eq = '\0';
		const char *val = eq + 1;
		if (!strcmp(opt, "fd")) {
			char *end;
			long v = strtol(val, &end, 10);
			if (*end || v != fuse_fd) {
				r = -EINVAL; /* the data must describe the fd we were given */
				goto out;
			}
			/* The kernel takes the fd number as a string (looked up in our fd table,
			 * inherited from the parent); newer kernels also take FSCONFIG_SET_FD. */
			if (fsconfig(fsfd, FSCONFIG_SET_STRING, "fd", val, 0) < 0 &&
			    fsconfig(fsfd, FSCONFIG_SET_FD, "fd", NULL, fuse_fd) < 0)
				goto err;
			continue;
		}
		if (!strcmp(opt, "subtype"))
			have_subtype = true;
		if (fsconfig(fsfd, FSCONFIG_SET_STRING, opt, val, 0) < 0)
			goto err;
	}
	if (!have_subtype && fsconfig(fsfd, FSCONFIG_SET_STRING, "subtype", "secretd", 0) < 0)
		goto err;
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto err;
	int mfd =
	    fsmount(fsfd, FSMOUNT_CLOEXEC,
	            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (mfd < 0)
		goto err;
	*before_attach = false;
	if (move_mount(mfd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
		r = -errno;
	close(mfd);
	goto out;
err:
	r = -errno;
out:
	close(fsfd);
	return r;
}

/* mount(2) needs a path: "." after fchdir to the directory we resolved safely names exactly that
 * directory, so no component can be swapped for a symlink between the check and the mount. */
static int mount_classic(int tfd, const char *data)
{
	if (fchdir(tfd) < 0)
		return -errno;
	if (mount("secretd", ".", "fuse.secretd", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	          data) < 0)
		return -errno;
	return 0;
}

struct job {
	int pidfd;
	int rootfd; /* pre-opened /proc/PID/root, or -1 */
	const char *root, *target, *data;
	int fuse_fd;
	bool umount;
	bool replace; /* detach stale fuse.secretd mounts at target before mounting */
	int result;   /* the child's answer (NS_NO_RESULT until it gives one) */
};

static int child_root(const struct job *j)
{
	if (j->rootfd >= 0)
		return j->rootfd;
	int fd = open(j->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int is_fuse_mount_root(int fd);
static int fuse_mount_root_kind(int fd, bool ours_only);

/* 0 if the directory is empty or already one of our FUSE mounts, -ENOTEMPTY if it holds
 * anything: a mount over it would hide what the runtime put there (podman --secret bind-mounts
 * each secret at /run/secrets/NAME; a volume). Our own FUSE mounts are never read: their server
 * is our caller, blocked until we finish. */
static int target_free(int tfd)
{
	int f = is_fuse_mount_root(tfd);
	if (f == 0)
		return 0;
	int dfd = openat(tfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* getdents64 into the stack, not readdir: opendir would malloc in the shared address space
	 */
	char buf[2048] __attribute__((aligned(8)));
	int r = 0;
	while (r == 0) {
		ssize_t n = getdents64(dfd, buf, sizeof(buf));
		if (n < 0)
			r = -errno;
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n && r == 0;) {
			struct dirent64 *e = (struct dirent64 *)(void *)(buf + off);
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				r = -ENOTEMPTY;
			off += e->d_reclen;
		}
	}
	close(dfd);
	return r;
}

/* Lazily detaches every fuse.secretd mount stacked at target (beneath rootfd, no symlink
 * followed): the mounts a killed or stopped daemon left (without statmount: every dead FUSE
 * mount there). Anything else at target is left
 * alone (target_free then judges it). 0 or -errno. */
static int detach_stale(int rootfd, const char *target)
{
	char base[NS_NAME_MAX];
	int pfd = resolve(rootfd, target, true, true, base);
	if (pfd < 0)
		return pfd;
	int r = 0;
	for (int n = 0; r == 0; n++) {
		/* O_NOFOLLOW|O_PATH on a symlink gives the link itself: not a mount root. */
		int tfd = open_beneath(pfd, base, O_PATH | O_NOFOLLOW);
		if (tfd == -ENOENT)
			break;
		if (tfd < 0) {
			r = tfd;
			break;
		}
		int k = fuse_mount_root_kind(tfd, true);
		if (k == -ENOSYS) {
			/* No statmount (Linux < 6.8): a mount root whose file system answers
			 * ENOTCONN is a dead FUSE connection, nobody's to keep; a live one is left
			 * to target_free. */
			struct statfs sf;
			k = fstatfs(tfd, &sf) < 0 && errno == ENOTCONN ? 0 : -ENOENT;
		}
		close(tfd);
		if (k == -ENOENT)
			break; /* not ours (or no mount): left to target_free */
		if (k < 0) {
			r = k;
			break;
		}
		if (n >= NS_REPLACE_MAX) {
			r = -ELOOP;
			break;
		}
		if (fchdir(pfd) < 0 || umount2(base, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			r = -errno;
	}
	close(pfd);
	return r;
}

static int child_mount(const struct job *j)
{
	if (setns(j->pidfd, CLONE_NEWNS) < 0)
		return -errno;
	int rootfd = child_root(j);
	if (rootfd < 0)
		return rootfd;
	if (j->replace) {
		int rd = detach_stale(rootfd, j->target);
		if (rd < 0)
			return rd;
	}
	int tfd = resolve(rootfd, j->target, true, false, NULL);
	if (tfd < 0)
		return tfd;
	int r0 = target_free(tfd);
	if (r0 < 0)
		return r0;
	bool before;
	int r = mount_new_api(tfd, j->fuse_fd, j->data, &before);
	if (r < 0 && before) {
		int r2 = mount_classic(tfd, j->data);
		if (r2 == 0)
			r = 0;
	}
	return r;
}

/* Is the O_PATH fd the root of a FUSE mount? With ours_only, of a fuse.secretd one: source
 * "secretd" and subtype "secretd", where the kernel reports them (STATMOUNT_SB_SOURCE and
 * STATMOUNT_FS_SUBTYPE, Linux 6.15+; older kernels: any FUSE mount). Asks the mount table
 * (statmount), never the filesystem: the FUSE daemon is our own caller, blocked until we finish,
 * or a dead one (a killed daemon's mount answers ENOTCONN). 0, -ENOENT (not such a mount root),
 * -ENOSYS (no statmount). */
static int fuse_mount_root_kind(int fd, bool ours_only)
{
	struct statx stx;
	memset(&stx, 0, sizeof(stx));
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC,
	          STATX_MNT_ID_UNIQUE, &stx) < 0)
		return -errno;
	if (!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
		return -ENOENT;
	uint64_t mnt_id;
	_Static_assert(sizeof(stx) >= 152, "struct statx layout");
	memcpy(&mnt_id, (const char *)&stx + 144, sizeof(mnt_id)); /* stx_mnt_id */
	if (!(stx.stx_mask & STATX_MNT_ID_UNIQUE))
		return -ENOSYS;
	struct {
		uint32_t size, spare;
		uint64_t mnt_id, param;
	} req = {.size = 24,
	         .mnt_id = mnt_id,
	         .param = NS_STATMOUNT_SB_BASIC | NS_STATMOUNT_FS_SUBTYPE | NS_STATMOUNT_SB_SOURCE};
	uint64_t buf[NS_STATMOUNT_BUF / 8]; /* on the child's stack: the address space is shared */
	memset(buf, 0, sizeof(buf));
	if (syscall(SYS_statmount, &req, buf, sizeof(buf), 0) < 0)
		return -errno;
	/* struct statmount: u32 size, u32 mnt_opts, u64 mask, u32 dev major/minor, u64 sb_magic;
	 * u32 fs_subtype at 120, u32 sb_source at 124 (offsets into the strings at 512) */
	if (!(buf[1] & NS_STATMOUNT_SB_BASIC))
		return -ENOSYS;
	if (buf[3] != FUSE_SUPER_MAGIC)
		return -ENOENT;
	if (!ours_only)
		return 0;
	const char *b = (const char *)buf;
	uint32_t size, off;
	memcpy(&size, b, sizeof(size));
	if (size > sizeof(buf))
		return -ENOENT;
	static const struct {
		uint64_t bit;
		size_t at;
	} want[] = {{NS_STATMOUNT_FS_SUBTYPE, 120}, {NS_STATMOUNT_SB_SOURCE, 124}};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!(buf[1] & want[i].bit))
			continue; /* not reported by this kernel */
		memcpy(&off, b + want[i].at, sizeof(off));
		if ((size_t)off + NS_STATMOUNT_STR + sizeof(NS_OUR_NAME) > size ||
		    memcmp(b + NS_STATMOUNT_STR + off, NS_OUR_NAME, sizeof(NS_OUR_NAME)) != 0)
			return -ENOENT;
	}
	return 0;
}

static int is_fuse_mount_root(int fd)
{
	return fuse_mount_root_kind(fd, false);
}

static int child_umount(const struct job *j)
{
	if (setns(j->pidfd, CLONE_NEWNS) < 0)
		return -errno;
	int rootfd = child_root(j);
	if (rootfd < 0)
		return rootfd;
	char base[NS_NAME_MAX];
	int pfd = resolve(rootfd, j->target, false, true, base);
	if (pfd < 0)
		return pfd;
	/* O_NOFOLLOW|O_PATH on a symlink gives the link itself: not a mount root, -ENOENT. */
	int tfd = open_beneath(pfd, base, O_PATH | O_NOFOLLOW);
	if (tfd < 0)
		return tfd;
	int r = is_fuse_mount_root(tfd);
	if (r == -ENOSYS) /* no statmount: settle for "a mount root" */
		r = 0;
	if (r < 0)
		return r;
	if (fchdir(pfd) < 0)
		return -errno;
	if (umount2(base, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
		return errno == EINVAL ? -ENOENT : -errno;
	return 0;
}

/* ---- parent ---- */

static int pidfd_pid(int pidfd)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -EBADF : -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	const char *p = strstr(buf, "\nPid:");
	if (!p)
		return -EBADF; /* not a pidfd */
	long pid = strtol(p + 5, NULL, 10);
	if (pid <= 0)
		return -ESRCH; /* gone (-1) or outside our pid namespace (0) */
	return (int)pid;
}

static int open_proc_root(int pidfd)
{
	int pid = pidfd_pid(pidfd);
	if (pid < 0)
		return pid;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root", pid);
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	if (pidfd_send_signal(pidfd, 0, NULL, 0) < 0) {
		int e = errno;
		close(fd);
		return e == ESRCH ? -ESRCH : -e;
	}
	return fd;
}

static int child_main(void *arg)
{
	struct job *j = arg;
	int r = j->umount ? child_umount(j) : child_mount(j);
	__atomic_store_n(&j->result, r, __ATOMIC_RELEASE);
	return 0;
}

static int run_job(struct job *j)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = NS_STACK + (size_t)page;
	void *stk =
	    mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stk == MAP_FAILED)
		return -errno;
	int r = 0;
	if (mprotect(stk, (size_t)page, PROT_NONE) < 0) { /* guard page below the stack */
		r = -errno;
		goto out_stack;
	}
	j->result = NS_NO_RESULT;
	/* Every signal blocked in the child (which inherits the mask): no handler may run on its
	 * stack in the shared address space. Restored in this thread once the child is gone. */
	sigset_t all, old;
	sigfillset(&all);
	int e = pthread_sigmask(SIG_BLOCK, &all, &old);
	if (e) {
		r = -e;
		goto out_stack;
	}
	int cfd = -1;
	pid_t pid = clone(child_main, (char *)stk + len, CLONE_VM | CLONE_PIDFD | SIGCHLD, j, &cfd);
	if (pid < 0) {
		r = -errno;
		goto out_mask;
	}
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += NSMOUNT_TIMEOUT_MS / 1000;
	bool timed_out = true;
	for (;;) {
		struct timespec now, left;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = deadline.tv_sec - now.tv_sec;
		left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_nsec += 1000000000L;
			left.tv_sec--;
		}
		if (left.tv_sec < 0)
			break;
		/* the pidfd turns readable when the child has exited */
		struct pollfd pf = {.fd = cfd, .events = POLLIN};
		int n = ppoll(&pf, 1, &left, &all);
		if (n > 0) {
			timed_out = false;
			break;
		}
		if (n < 0 && errno != EINTR) {
			timed_out = false; /* cannot wait with a deadline: wait without one */
			break;
		}
	}
	if (timed_out)
		kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	close(cfd);
	if (timed_out) {
		r = -ETIMEDOUT;
	} else {
		r = __atomic_load_n(&j->result, __ATOMIC_ACQUIRE);
		if (r == NS_NO_RESULT)
			r = -EIO; /* the child died without a word */
	}
out_mask:
	e = pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e && r == 0)
		r = -e;
out_stack:
	if (munmap(stk, len) < 0 && r == 0)
		r = -errno;
	return r;
}

static int nsmount_run(struct job *j)
{
	if (j->pidfd < 0 || !j->target)
		return -EINVAL;
	_cleanup_close_ int rootfd = -1;
	if (!j->root) {
		rootfd = open_proc_root(j->pidfd);
		if (rootfd < 0)
			return rootfd;
	} else if (pidfd_send_signal(j->pidfd, 0, NULL, 0) < 0) {
		return errno == ESRCH ? -ESRCH : -errno;
	}
	j->rootfd = rootfd;
	return run_job(j);
}

int nsmount_fuse(int pidfd, const char *root, const char *target, int fuse_fd, const char *data)
{
	if (fuse_fd < 0 || !data)
		return -EINVAL;
	struct job j = {.pidfd = pidfd,
	                .root = root,
	                .target = target,
	                .data = data,
	                .fuse_fd = fuse_fd,
	                .umount = false};
	return nsmount_run(&j);
}

int nsmount_replace(int pidfd, const char *root, const char *target, int fuse_fd, const char *data)
{
	if (fuse_fd < 0 || !data)
		return -EINVAL;
	struct job j = {.pidfd = pidfd,
	                .root = root,
	                .target = target,
	                .data = data,
	                .fuse_fd = fuse_fd,
	                .replace = true};
	return nsmount_run(&j);
}

int nsmount_umount(int pidfd, const char *root, const char *target)
{
	struct job j = {
	    .pidfd = pidfd, .root = root, .target = target, .fuse_fd = -1, .umount = true};
	return nsmount_run(&j);
}
