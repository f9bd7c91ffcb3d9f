/* ident: who is on the other end: peer credentials (SO_PEERCRED), a pidfd (SO_PEERPIDFD, else
 * pidfd_open), and the cgroup parsed from /proc/PID/cgroup, checked through the pidfd to still be
 * the process that connected (pid reuse). Functions return 0 or a negative errno. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/os/cgroup.h"

struct ident {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int pidfd; /* owned: ident_clear closes it */
	struct cgroup_info cg;
};

/* From a connected unix socket. -EPERM for pid 0 or the overflow uid/gid (a peer outside our
 * namespaces), -ESRCH when the connector is gone (or was replaced) by the time its cgroup is read,
 * -EINVAL/-ENOTUNIQ/-E2BIG from the cgroup parser. */
int ident_from_socket(int fd, struct ident *out);
/* The same for a pid (FUSE requests, OCI hook state), which may be a thread's id: the pidfd is
 * its thread group's, then /proc/PID/cgroup, then the liveness check (and, for a thread, that it
 * still belongs to that group). */
int ident_from_pid(pid_t pid, struct ident *out);
/* 0 while the process behind id->pidfd is alive, -ESRCH once it exited. */
int ident_alive(const struct ident *id);
/* Closes the pidfd; the struct may be reused. */
void ident_clear(struct ident *id);
/* /proc/PID/stat is read up to IDENT_STAT_MAX bytes (comm is at most 64 bytes with its
 * parentheses; the 50-odd numeric fields fit in well under 1 KiB). */
#define IDENT_STAT_MAX 4096
/* Field 22 of a /proc/PID/stat text buf[0..len) (starttime: clock ticks after boot), found after
 * the last ')' (comm may hold spaces and parentheses). Pure. 0 with *start, -EINVAL for text that
 * is not such a line (*start untouched). */
int ident_parse_start(const char *buf, size_t len, uint64_t *start);
/* The start time of pid (a process, not a thread id) from /proc/PID/stat. Together with a pidfd
 * opened before and found alive after, it names one process for good: a reused pid has another
 * start time. -ESRCH when the pid is gone, -EINVAL, -E2BIG. */
int ident_start_time(pid_t pid, uint64_t *start);
/* The inode of pid's mount namespace (/proc/PID/ns/mnt): it names the namespace while it
 * lives. -ESRCH when the pid is gone. Check the pid's pidfd afterwards. */
int ident_mnt_ns(pid_t pid, uint64_t *ino);
/* Reads /proc/PID/exe's target into buf (for audit); 0 or -errno. */
int ident_exe(pid_t pid, char *buf, size_t len);
