#include "broker/os/ident.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/decimal.h"
#include "common/fileio.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5; Debian 12's headers predate it */
#endif
#define IDENT_OVERFLOW_ID 65534

static int ident_read_cgroup(pid_t pid, struct cgroup_info *cg)
{
	char path[64];
	char buf[CGROUP_INPUT_MAX + 1];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	size_t len = 0;
	int r = fileio_read_upto(fd, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	if (len == sizeof(buf))
		return -E2BIG;
	return cgroup_parse(buf, len, cg);
}

int ident_alive(const struct ident *id)
{
	if (id->pidfd < 0)
		return -ESRCH;
	if (pidfd_send_signal(id->pidfd, 0, NULL, 0) < 0)
		return errno == EPERM ? 0 : -ESRCH;
	return 0;
}

/* A runtime's container cgroups are made by root. A cgroup owned by anyone else lies in a
 * delegated subtree, where its owner could name a directory docker/<someone else's id>: such a
 * path is not trusted to name a container (the peer is then a host process). */
static void ident_distrust_delegated(struct cgroup_info *cg)
{
	static const char *const roots[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup",
	                                    "/sys/fs/cgroup/systemd"};
	if (cg->runtime == CGROUP_RT_NONE)
		return;
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		char path[CGROUP_PATH_MAX + 64];
		struct stat st;
		snprintf(path, sizeof(path), "%s%s", roots[i], cg->path);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid != 0) {
			cg->runtime = CGROUP_RT_NONE;
			cg->id[0] = '\0';
			cg->pod_uid[0] = '\0';
			return;
		}
	}
}

static int ident_finish(struct ident *out)
{
	if (out->pid <= 0 || out->uid == IDENT_OVERFLOW_ID || out->gid == IDENT_OVERFLOW_ID)
		return -EPERM;
	int r = ident_read_cgroup(out->pid, &out->cg);
	if (r < 0)
		return r;
	ident_distrust_delegated(&out->cg);
	/* The pidfd pins the process we were told about: if it is still alive after we read
	 * /proc/PID/cgroup, that file was its own and not a reused pid's. */
	return ident_alive(out);
}

int ident_from_socket(int fd, struct ident *out)
{
	memset(out, 0, sizeof(*out));
	out->pidfd = -1;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	out->pid = cred.pid;
	out->uid = cred.uid;
	out->gid = cred.gid;
	if (cred.pid <= 0)
		return -EPERM;
	int pidfd = -1;
	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
		if (errno != ENOPROTOOPT && errno != EINVAL)
			return errno == ESRCH ? -ESRCH : -errno;
		/* Older kernel: pidfd_open races with pid reuse, ident_finish narrows it. */
		pidfd = pidfd_open(cred.pid, 0);
		if (pidfd < 0)
			return -ESRCH;
	}
	out->pidfd = pidfd; /* close-on-exec: both SO_PEERPIDFD and pidfd_open make it so */
	int r = ident_finish(out);
	if (r < 0)
		ident_clear(out);
	return r;
}

int ident_from_pid(pid_t pid, struct ident *out)
{
	memset(out, 0, sizeof(*out));
	out->pidfd = -1;
	if (pid <= 0)
		return -EPERM;
	out->pid = pid;
	/* pid may be a thread's id (FUSE names the calling thread): its status gives the thread
	 * group, and the pidfd pins that (pidfd_open refuses a non-leader tid before Linux 6.9). */
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	bool got_uid = false, got_gid = false;
	long tgid = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned a, b;
		if (sscanf(line, "Tgid:\t%ld", &tgid) == 1)
			continue;
		if (sscanf(line, "Uid:\t%u\t%u", &a, &b) == 2) {
			out->uid = b; /* effective uid: what the kernel checks */
			got_uid = true;
		} else if (sscanf(line, "Gid:\t%u\t%u", &a, &b) == 2) {
			out->gid = b;
			got_gid = true;
		}
	}
	if (!got_uid || !got_gid || tgid <= 0 || tgid > INT_MAX)
		return -ESRCH;
	int pidfd = pidfd_open((pid_t)tgid, 0);
	if (pidfd < 0)
		return -ESRCH;
	out->pidfd = pidfd;
	int r = ident_finish(out);
	if (r == 0 && tgid != pid) {
		/* The thread group is alive (ident_finish): the tid must still be one of its
		 * threads, so the status and cgroup read above were that thread's and not a reused
		 * id's. */
		snprintf(path, sizeof(path), "/proc/%ld/task/%d", tgid, (int)pid);
		if (access(path, F_OK) < 0)
			r = -ESRCH;
	}
	if (r < 0)
		ident_clear(out);
	return r;
}

void ident_clear(struct ident *id)
{
	if (id->pidfd >= 0)
		close(id->pidfd);
	id->pidfd = -1;
}

int ident_exe(pid_t pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(path, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

int ident_parse_start(const char *buf, size_t len, uint64_t *start)
{
	if (!buf || len > IDENT_STAT_MAX)
		return -EINVAL;
	size_t i = len;
	while (i > 0 && buf[i - 1] != ')')
		i--;
	if (i == 0)
		return -EINVAL;
	/* after ")": " S ppid ..." — field 3 (state) is the first; starttime is field 22 */
	int field = 2;
	size_t p = i;
	while (p < len) {
		if (buf[p] != ' ')
			return -EINVAL;
		p++;
		size_t q = p;
		while (q < len && buf[q] != ' ' && buf[q] != '\n')
			q++;
		field++;
		if (field == 22)
			return decimal_parse_u64(buf + p, q - p, 0, INT64_MAX, start) < 0 ? -EINVAL
			                                                                  : 0;
		if (q == p || q >= len || buf[q] == '\n')
			return -EINVAL;
		p = q;
	}
	return -EINVAL;
}

int ident_start_time(pid_t pid, uint64_t *start)
{
	if (pid <= 0)
		return -EINVAL;
	char path[64];
	char buf[IDENT_STAT_MAX + 1];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	size_t len = 0;
	int r = fileio_read_upto(fd, buf, sizeof(buf), &len);
	if (r < 0)
		return r == -ESRCH || r == -ENOENT ? -ESRCH : r;
	if (len == sizeof(buf))
		return -E2BIG;
	return ident_parse_start(buf, len, start);
}

int ident_mnt_ns(pid_t pid, uint64_t *ino)
{
	if (pid <= 0)
		return -EINVAL;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	struct stat st;
	if (stat(path, &st) < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	*ino = (uint64_t)st.st_ino;
	return 0;
}
