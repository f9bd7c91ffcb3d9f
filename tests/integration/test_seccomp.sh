#!/bin/sh
# The workload server's seccomp allow-list (issue #14; broker/os/seccomp.c). Real daemon, real
# server process, a docker-shaped container (own cgroup, pid and mount namespaces).
#   installed   the server's /proc/PID/status: Seccomp 2 (filter), NoNewPrivs 1, CapEff 0; the
#               container's reads, list and identity answer through it
#   kills       a daemon in test mode runs the real server with SECRETD_TEST_SERVER_SYSCALL:
#               on SIGUSR2 the serving server makes that forbidden call. It dies by SIGSYS; the
#               daemon logs it as seccomp, counts it (secretd_server_seccomp_kills_total),
#               restarts it, and the container reads again. Each forbidden call: execve,
#               openat, socket, ptrace, mount, setuid, kill (another process), mmap-exec, and
#               the other ABIs (x32 numbers, i386 int 0x80)
#               A log line under the filter does not kill it.
#   --no-seccomp  the server has no filter (Seccomp 0): the same call is let through
#               (it exits 3 saying so), nothing is counted
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_cgroup2
need_cmd unshare
need_cmd nsenter
need_cmd curl
EXTRA_CLEANUP='cg_cleanup'
SECCOMP_KILLS_EXPECTED=1 # (lib.sh fails any other test whose server its filter killed)

metric() { curl -s --unix-socket "$SECRETD_SOCKET" http://x/metrics | awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'; }
poll_for() { # poll_for SECONDS CMD...: true once CMD succeeds
	_n=$(($1 * 20))
	shift
	while ! "$@"; do
		_n=$((_n - 1))
		[ $_n -le 0 ] && return 1
		sleep 0.05
	done
}
field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$2/status"; }

sd_start
grep -q 'no seccomp filter in this build' "$SD_LOG" &&
	skip_or_fail "a sanitizer build: the server installs no seccomp filter (docs/DESIGN.md)"
W=$SD_WORKLOAD
GRANTED="granted-$(hex64)"
one_mounted_container "$GRANTED"
aread() { cexec "$PA" "$cgA" curl -s -m 10 --unix-socket "$W" "http://x/v1/self/secrets/$1"; }
[ "$(aread app/a)" = "$GRANTED" ] || fail "container A cannot read app/a through the API"

# --- installed ---
SP=$(sd_server_pid)
[ -n "$SP" ] || fail "no server process"
[ "$(field Seccomp "$SP")" = 2 ] || fail "the server's Seccomp: $(field Seccomp "$SP") (2: a filter)"
[ "$(field NoNewPrivs "$SP")" = 1 ] || fail "NoNewPrivs: $(field NoNewPrivs "$SP")"
[ "$(field CapEff "$SP")" = 0000000000000000 ] || fail "CapEff: $(field CapEff "$SP")"
cexec "$PA" "$cgA" curl -s -m 10 --unix-socket "$W" http://x/v1/self | grep -q "$A" ||
	fail "/v1/self through the filtered server"
cexec "$PA" "$cgA" curl -s -m 10 --unix-socket "$W" http://x/v1/self/secrets | grep -q 'app/a' ||
	fail "the list through the filtered server"
[ "$(field Seccomp "$SP")" = 2 ] && [ "$(sd_server_pid)" = "$SP" ] || fail "the server died serving"
[ "$(metric secretd_server_seccomp_kills_total)" = 0 ] || fail "seccomp kills counted at rest"
ok "the server process $SP: Seccomp 2 (filter), NoNewPrivs 1, CapEff 0; reads, list and identity answered through it"

# --- kills: the real server, made to call what the list forbids ---
sd_stop
mkdir -m 0700 "$T/faults"
# sd_start_probe CALL [run args]: a daemon in test mode whose server makes CALL on SIGUSR2
sd_start_probe() {
	_call=$1
	shift
	export SECRETD_TEST_FAULTS=1 SECRETD_TEST_FAULT_DIR="$T/faults" SECRETD_TEST_SERVER_EXEC="$SECRETD" \
		SECRETD_TEST_SERVER_SYSCALL="$_call"
	sd_start "$@"
	unset SECRETD_TEST_FAULTS SECRETD_TEST_FAULT_DIR SECRETD_TEST_SERVER_EXEC SECRETD_TEST_SERVER_SYSCALL
}
server_serving() { _s=$(sd_server_pid) && [ -n "$_s" ] && [ "$_s" != "$old" ] && [ "$(field Seccomp "$_s")" = 2 ]; }
logged() { [ "$(grep -c 'killed by its seccomp filter (SIGSYS' "$SD_LOG")" -ge "$1" ]; }
counted() { [ "$(metric secretd_server_seccomp_kills_total)" -ge "$1" ]; }
reads_again() { [ "$(aread app/a)" = "$GRANTED" ]; }
# a log line of the server under its filter (the time zone, the journal check: loaded before)
sd_start_probe log
SP=$(sd_server_pid)
[ "$(field Seccomp "$SP")" = 2 ] || fail "log: no filtered server"
kill -USR2 "$SP"
logline() { grep -q 'server: test: a log line under the seccomp filter' "$SD_LOG"; }
poll_for 30 logline || fail "the server's log line under the filter did not come"
[ "$(aread app/a)" = "$GRANTED" ] || fail "no read after the server's log line"
[ "$(sd_server_pid)" = "$SP" ] && [ "$(metric secretd_server_seccomp_kills_total)" = 0 ] ||
	fail "the server died writing a log line under its filter"
sd_stop
ok "the filtered server writes a log line and serves on"

kills=0
for call in execve openat socket ptrace mount setuid kill mmap-exec x32 i386; do
	sd_start_probe "$call"
	logs0=$(grep -c 'killed by its seccomp filter (SIGSYS' "$SD_LOG" || true)
	old=
	poll_for 30 server_serving || fail "$call: no filtered server"
	old=$(sd_server_pid)
	r0=$(metric secretd_server_restarts_total)
	kill -USR2 "$old"
	poll_for 30 counted 1 || fail "$call: the server was not killed by its filter (secretd_server_seccomp_kills_total $(metric secretd_server_seccomp_kills_total); $(grep "'$call'" "$SD_LOG" | tail -n 1))"
	poll_for 30 logged $((logs0 + 1)) || fail "$call: the seccomp kill is not logged"
	grep -q "process $old killed by its seccomp filter" "$SD_LOG" || fail "$call: the log does not name process $old"
	poll_for 30 server_serving || fail "$call: the server was not restarted"
	[ "$(metric secretd_server_restarts_total)" -gt "$r0" ] || fail "$call: the restart is not counted"
	poll_for 30 reads_again || fail "$call: the container cannot read after the restart"
	grep -q "the system call '$call' was let through" "$SD_LOG" && fail "$call was let through"
	kills=$((kills + 1))
	sd_stop
done
ok "$kills forbidden calls (execve, openat, socket, ptrace, mount, setuid, kill, mmap-exec, x32, i386): each killed the server by SIGSYS, logged as seccomp, counted, restarted; the container read again"

# --- --no-seccomp: no filter, the same call goes through (and nothing is counted) ---
sd_start_probe openat --no-seccomp
SP=$(sd_server_pid)
[ "$(field Seccomp "$SP")" = 0 ] || fail "--no-seccomp: the server's Seccomp is $(field Seccomp "$SP")"
grep -q 'server: no seccomp filter (--no-seccomp)' "$SD_LOG" || fail "--no-seccomp is not logged"
kill -USR2 "$SP"
through() { grep -q "the system call 'openat' was let through" "$SD_LOG"; }
poll_for 30 through || fail "--no-seccomp: the call was not let through"
old=$SP
newpid() { _s=$(sd_server_pid); [ -n "$_s" ] && [ "$_s" != "$old" ]; }
poll_for 30 newpid || fail "--no-seccomp: no new server"
[ "$(metric secretd_server_seccomp_kills_total)" = 0 ] || fail "--no-seccomp: a seccomp kill counted"
ok "--no-seccomp: the server runs unfiltered (Seccomp 0, logged); the call it was made to make went through"
