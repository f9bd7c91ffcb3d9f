/* seccomp: the workload server's system-call allow-list (see seccomp.h). The list was taken from
 * strace of the server through test_privsep, test_wl, test_wl_cached, test_templates,
 * test_transport and test_health (docs/DESIGN.md, "The server's sandbox", says why each group is
 * there); any other call kills the process (SCMP_ACT_KILL_PROCESS), as does a call through
 * another ABI. */
#include "broker/os/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* SECRETD_SANITIZED: meson's b_sanitize is set (ASan, UBSan); clang says ASan itself */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SECRETD_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(SECRETD_SANITIZED)
#define SECCOMP_BUILD_OK 0
#elif defined(__x86_64__) && !defined(__ILP32__)
#define SECCOMP_BUILD_OK 1
#else
#define SECCOMP_BUILD_OK 0
#endif

#define SECCOMP_X32_BIT 0x40000000L /* __X32_SYSCALL_BIT */
#define SECCOMP_I386_GETPID 20      /* getpid in the i386 table */

bool seccomp_supported(void)
{
	return SECCOMP_BUILD_OK;
}

#if SECCOMP_BUILD_OK
/* Allowed whatever their arguments. */
static const int seccomp_plain[] = {
    /* the event loop and the channel: epoll, poll while a request waits for its answer, the
     * signalfd's and the channel's reads, stderr (the server's log lines) */
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl), SCMP_SYS(poll),
    SCMP_SYS(ppoll), SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(writev), SCMP_SYS(close),
    /* workload.sock: accept on the inherited socket, the HTTP exchange (libmicrohttpd: recv,
     * send/sendmsg, TCP_NODELAY/CORK attempts that fail on a unix socket, shutdown), the
     * channel's SCM_RIGHTS messages (sendmsg/recvmsg) */
    SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(recvmsg), SCMP_SYS(sendto), SCMP_SYS(sendmsg),
    SCMP_SYS(shutdown), SCMP_SYS(setsockopt), SCMP_SYS(getsockopt), SCMP_SYS(getsockname),
    SCMP_SYS(getpeername),
    /* memory: glibc's allocator and libsodium's locked, guarded buffers (mmap, mprotect to
     * PROT_NONE guard pages, madvise DONTDUMP, mlock); mmap/mprotect are below (no PROT_EXEC) */
    SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(mlock), SCMP_SYS(munlock),
    SCMP_SYS(brk),
    /* time (vDSO first; the syscall where it falls back), identity of itself, locks (glibc's
     * internals), randomness (libsodium) */
    SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(getpid), SCMP_SYS(gettid),
    SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(futex),
    SCMP_SYS(getrandom),
    /* signals: its mask, abort()'s own handler reset and return; exit */
    SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigreturn),
    SCMP_SYS(restart_syscall), SCMP_SYS(exit), SCMP_SYS(exit_group)};

/* fcntl commands libmicrohttpd and the accept path use: flags, and F_DUPFD_CLOEXEC (the spare
 * fd kept for running out of fds is taken back as a duplicate, not by opening a file). */
static const int seccomp_fcntl_cmds[] = {F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_DUPFD_CLOEXEC};

static int seccomp_rules(scmp_filter_ctx ctx)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < sizeof(seccomp_plain) / sizeof(seccomp_plain[0]); i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_plain[i], 0);
	for (size_t i = 0; r == 0 && i < sizeof(seccomp_fcntl_cmds) / sizeof(seccomp_fcntl_cmds[0]);
	     i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
		                     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)seccomp_fcntl_cmds[i], 0));
	/* no executable memory: new code cannot be mapped or made executable */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
		                     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
		                     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* signals to itself only (abort, raise) */
	scmp_datum_t self = (scmp_datum_t)getpid();
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
		                     SCMP_A0(SCMP_CMP_EQ, self, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
		                     SCMP_A0(SCMP_CMP_EQ, self, 0));
	return r;
}
#endif

int seccomp_server_install(void)
{
#if SECCOMP_BUILD_OK
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return -ENOMEM;
	/* Only the native ABI: the context holds x86_64 alone, so an i386 call (int 0x80) is a
	 * bad architecture and libseccomp's x86_64 filter sends x32 numbers there too; both kill.
	 */
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r == 0)
		r = seccomp_arch_exist(ctx, SCMP_ARCH_X86_64);
	/* no_new_privs is the caller's (relay sets it before the exec; the server checks it) */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r == 0)
		r = seccomp_rules(ctx);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r > 0 ? -r : r;
#else
	return -EOPNOTSUPP;
#endif
}

int seccomp_try(const char *what)
{
	long r;
	if (!what)
		return -EINVAL;
	if (!strcmp(what, "execve")) {
		char *argv[] = {(char *)"secretd-seccomp-probe", NULL};
		r = syscall(SYS_execve, "/nonexistent/secretd-seccomp-probe", argv, argv + 1);
	} else if (!strcmp(what, "openat")) {
		r = syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
		if (r >= 0)
			r = close((int)r);
	} else if (!strcmp(what, "socket")) {
		r = syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (r >= 0)
			r = close((int)r);
	} else if (!strcmp(what, "ptrace")) {
		r = syscall(SYS_ptrace, PTRACE_PEEKDATA, 0, 0, 0); /* pid 0: none */
	} else if (!strcmp(what, "mount")) {
		r = syscall(SYS_mount, "none", "/nonexistent/secretd", "tmpfs", 0, NULL);
	} else if (!strcmp(what, "setuid")) {
		r = syscall(SYS_setresuid, -1, -1, -1); /* changes nothing */
	} else if (!strcmp(what, "kill")) {
		r = syscall(SYS_kill, 1, 0); /* to init; signal 0: a probe, nothing sent */
	} else if (!strcmp(what, "mmap-exec")) {
		long p = syscall(SYS_mmap, NULL, 4096, PROT_READ | PROT_EXEC,
		                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		r = p == -1 ? -1 : syscall(SYS_munmap, p, 4096);
	} else if (!strcmp(what, "x32")) {
		r = syscall(SECCOMP_X32_BIT | SYS_getpid);
	} else if (!strcmp(what, "i386")) {
#if defined(__x86_64__)
		long ret;
		__asm__ volatile("int $0x80"
		                 : "=a"(ret)
		                 : "a"((long)SECCOMP_I386_GETPID)
		                 : "memory", "r8", "r9", "r10", "r11");
		return ret < 0 ? (int)ret : 0;
#else
		return -EOPNOTSUPP;
#endif
	} else {
		return -EINVAL;
	}
	return r < 0 ? -errno : 0;
}
