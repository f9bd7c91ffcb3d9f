/* nsmount: puts a FUSE mount into (or takes it out of) another process's mount namespace. The
 * namespace work (setns, openat2, mount) runs in a short-lived child that shares the caller's
 * address space (clone CLONE_VM: no copy of the daemon's memory to make and tear down), never in
 * the caller's thread; the caller waits for its exit on a pidfd with every signal blocked (bounded
 * by NSMOUNT_TIMEOUT_MS, then the child is killed).
 * Functions return 0 or a negative errno. */
#pragma once
#include <sys/types.h>

#define NSMOUNT_TIMEOUT_MS 5000

/* Mounts the FUSE connection open on fuse_fd, with kernel mount data `data` (see sfs_mount_data)
 * and type "fuse.secretd", read-only, nosuid, nodev, noexec, at `target` in the mount namespace of
 * the process pidfd refers to.
 *  root:   the container's root as a path in that namespace (the OCI state's root at
 *          createRuntime, before pivot_root), or NULL for the process's own root (a running
 *          container; taken from /proc/PID/root).
 *  target: absolute path inside root (e.g. "/run/secrets"). Resolved beneath root without
 *          following any symlink or crossing into another root; missing directories are created
 *          (mode 0755). A symlink anywhere on the way gives -ELOOP and nothing is mounted. */
int nsmount_fuse(int pidfd, const char *root, const char *target, int fuse_fd, const char *data);
/* As nsmount_fuse, after lazily detaching every fuse.secretd mount already at target (a stale
 * one left by a daemon that was killed or stopped: it answers ENOTCONN, or nothing), resolved
 * the same way (no symlink followed). Only our own mounts are detached (fuse.secretd: source and
 * subtype "secretd" where the kernel reports them, Linux 6.15+; older kernels: any FUSE mount;
 * without statmount, Linux < 6.8: any dead FUSE mount, whose statfs answers ENOTCONN);
 * a non-empty real directory is still refused (-ENOTEMPTY). For restoring a running
 * container's mount after a restart. */
int nsmount_replace(int pidfd, const char *root, const char *target, int fuse_fd, const char *data);
/* Lazily unmounts target (same resolution rules) in the namespace of pidfd's process. -ENOENT if
 * nothing of ours is mounted there; -ESRCH if the process is gone. */
int nsmount_umount(int pidfd, const char *root, const char *target);
