/* seccomp: the system-call allow-list of the unprivileged workload server process (docs/DESIGN.md,
 * "The server's sandbox"). Installed by the server once it is set up (its sockets, event loop and
 * libraries ready) and before it serves: from then on a system call outside the list, or from
 * another ABI than x86_64 (i386 through int 0x80, x32), kills the whole process with SIGSYS,
 * which the daemon process reports as a seccomp kill and restarts it. x86_64 only. Functions
 * return 0 or a negative errno. */
#pragma once
#include <stdbool.h>

/* Names the env variable that turns the filter off for the server (--no-seccomp: debugging). */
#define SECCOMP_ENV_OFF "SECRETD_SERVER_NO_SECCOMP"

/* Whether this build can install the filter: false in sanitizer builds (their runtimes open
 * /proc files, ptrace the process at exit and exec a symbolizer for a report: the documented
 * exception) and on other architectures than x86_64. */
bool seccomp_supported(void);
/* Installs the server's filter on the calling process (it must already have
 * PR_SET_NO_NEW_PRIVS and be single-threaded). The caller first loads what its libraries would
 * otherwise open lazily later (main_server.c: the time zone, jansson's hash seed): after this,
 * no file can be opened. 0; -EOPNOTSUPP when
 * !seccomp_supported(); another negative errno when libseccomp or the kernel refuse it. */
int seccomp_server_install(void);
/* Test hook: makes one system call the filter forbids, named by what: "execve", "openat",
 * "socket", "ptrace", "mount", "setuid", "kill" (signal 0 to init: another process), "mmap-exec",
 * "x32" (getpid through the x32 ABI), "i386" (getpid through int 0x80). Each is harmless if it
 * is let through (a missing file, the caller's own privileges). Under the filter it does not
 * return. -EINVAL for an unknown name; otherwise the call's result (0 or a negative errno)
 * when it was let through. */
int seccomp_try(const char *what);
