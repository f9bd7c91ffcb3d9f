/* main_keeper.c: `secretd run` as the keeper process (broker/keeper), and its log lines. The
 * daemon's top level, like main.c: the only other file that logs. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/keeper/keeper.h"
#include "broker/main_int.h"
#include "broker/os/log.h"

static void main_keeper_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st),
		         strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "wait status %#x", st);
}

static void main_keeper_report(void *ud, const struct keeper_event *ev)
{
	struct log_rl *bad = ud;
	char st[96];
	main_keeper_status(ev->status, st, sizeof(st));
	switch (ev->kind) {
	case KEEPER_EV_STARTED:
		if (ev->restarts)
			log_info("keeper: daemon process %d started (restart %u), holding %zu "
			         "connection(s) for it",
			         (int)ev->pid, ev->restarts, ev->held);
		else
			log_info("keeper: daemon process %d started", (int)ev->pid);
		break;
	case KEEPER_EV_READY:
		log_info("keeper: daemon process %d serves", (int)ev->pid);
		break;
	case KEEPER_EV_DIED:
		log_error("keeper: daemon process %d died (%s): restarting it %s, its %zu held "
		          "connection(s) wait meanwhile",
		          (int)ev->pid, st, ev->backoff_ms ? "after a pause" : "now", ev->held);
		break;
	case KEEPER_EV_EXITED:
		log_info("keeper: daemon process %d exited (%s)", (int)ev->pid, st);
		break;
	case KEEPER_EV_GAVE_UP:
		log_error("keeper: the daemon process exited before it served (%s): not restarting "
		          "it",
		          st);
		break;
	case KEEPER_EV_BAD_MSG:
		log_ratelimited(bad, LOG_LVL_ERROR,
		                "keeper: refused a malformed message from the daemon process (%s)",
		                strerror(-ev->err));
		break;
	case KEEPER_EV_HELD_FULL:
		log_ratelimited(bad, LOG_LVL_ERROR,
		                "keeper: already holds %d connections: refused one more (it will "
		                "not survive a daemon crash)",
		                KEEPER_HELD_MAX);
		break;
	case KEEPER_EV_UPGRADE:
		log_info("keeper: upgrade: daemon process %d hands off, then the keeper re-execs",
		         (int)ev->pid);
		break;
	case KEEPER_EV_UPGRADE_FAILED:
		log_error("keeper: upgrade failed (%s): going on with the running binary",
		          strerror(-ev->err));
		break;
	case KEEPER_EV_RESUMED:
		if (ev->err < 0)
			log_error(
			    "keeper: after the upgrade's exec, the held connections could not "
			    "all be taken over (%s): %zu kept",
			    strerror(-ev->err), ev->held);
		else
			log_info("keeper: upgraded in place, %zu held connection(s) kept",
			         ev->held);
		break;
	case KEEPER_EV_ERROR:
		log_error("keeper: cannot %s: %s", ev->what ? ev->what : "go on",
		          strerror(-ev->err));
		break;
	}
}

int main_keeper(char **argv)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0 || (size_t)n >= sizeof(exe) - 1) {
		log_error("keeper: cannot find its own binary (/proc/self/exe): %s",
		          n < 0 ? strerror(errno) : "path too long");
		return 1;
	}
	exe[n] = '\0';
	/* Replaced on disk (an upgrade installs a new file): the kernel's name ends " (deleted)";
	 * the path names the new binary, which is the point. */
	const char *del = " (deleted)";
	size_t dl = strlen(del);
	if ((size_t)n > dl && !strcmp(exe + n - dl, del))
		exe[n - dl] = '\0';
	struct log_rl bad = {0};
	struct keeper_config kc = {
	    .exe = exe, .argv = argv, .report = main_keeper_report, .report_ud = &bad};
	return keeper_run(&kc);
}
