# shellcheck shell=sh
# lib.sh: shared helpers for integration tests (sourced). POSIX sh + a few Linux tools.
# Binaries come from meson's env: $SECRETD $SECRETCTL $SECRETD_OCI_HOOK; sources at $SOURCE_ROOT.
set -eu

# need_root / need_dev_fuse / ...: skip (77) where the machine truly lacks it; fail under CI.
skip_or_fail() {
	if [ "${CI:-}" = "true" ]; then
		echo "FAIL (CI must not skip): $*" >&2
		exit 1
	fi
	echo "SKIP: $*" >&2
	exit 77
}
need_root() { [ "$(id -u)" = 0 ] || skip_or_fail "needs root"; }
need_fuse() { [ -c /dev/fuse ] || skip_or_fail "needs /dev/fuse"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || skip_or_fail "needs $1"; }

fail() {
	echo "FAIL: $*" >&2
	[ -n "${SD_LOG:-}" ] && [ -f "$SD_LOG" ] && { echo "--- daemon log:" >&2; tail -n 30 "$SD_LOG" >&2; }
	exit 1
}
ok() { echo "ok - $*"; }

# Scratch space, removed on exit (with the daemon stopped first).
T=$(mktemp -d /tmp/secretd-test.XXXXXX)
SD_PID=
cleanup() {
	rc=$?
	sd_stop || true
	# The workload server's seccomp filter killing it in a test that does not provoke it is a
	# system call missing from its allow-list (broker/os/seccomp.c): the test fails.
	if [ -z "${SECCOMP_KILLS_EXPECTED:-}" ] &&
		_k=$(cat "${SD_LOG:-/dev/null}" "$T"/*.log 2>/dev/null | grep 'killed by its seccomp filter'); then
		echo "FAIL: the server process was killed by its seccomp filter:" >&2
		echo "$_k" | head -n 5 >&2
		rc=1
	fi
	[ -n "${EXTRA_CLEANUP:-}" ] && eval "$EXTRA_CLEANUP" || true
	rm -rf "$T" 2>/dev/null || true
	exit $rc
}
trap cleanup EXIT INT TERM

# sd_init [extra init args]: a fresh store in $T/state with key $T/keys/master.key
sd_init() {
	"$SECRETD" init --state-dir "$T/state" --key-file "$T/keys/master.key" "$@" >/dev/null
}

# sd_start [extra run args]: starts the daemon in the background, waits for its sockets.
# Sets SECRETD_SOCKET (admin), SD_WORKLOAD (workload socket path), SD_LOG, SD_PID (the keeper)
# and SD_WPID (the daemon process it runs).
sd_start() {
	[ -d "$T/state" ] || sd_init
	SD_LOG="$T/secretd.log"
	mkdir -p "$T/run"
	"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" \
		--key-file "$T/keys/master.key" "$@" >>"$SD_LOG" 2>&1 &
	SD_PID=$!
	i=0
	# A socket file may be left from a killed daemon: wait until this one answers.
	while ! curl -sf --unix-socket "$T/run/admin.sock" http://x/healthz >/dev/null 2>&1 ||
		! curl -sf --unix-socket "$T/run/workload.sock" http://x/healthz >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 400 ] && fail "daemon did not start"
		kill -0 "$SD_PID" 2>/dev/null || fail "daemon exited at start"
		sleep 0.05
	done
	export SECRETD_SOCKET="$T/run/admin.sock"
	SD_WORKLOAD="$T/run/workload.sock"
	SD_WPID=$(sd_worker_pid)
}

# sd_kill9: kill -9 of the whole daemon, as a crash or the OOM killer would do it: the keeper
# ($SD_PID), whose daemon process dies with it (PR_SET_PDEATHSIG, asynchronously); returns once
# both are gone (a zombie counts as gone: its files are closed), so that the store is free.
sd_kill9() {
	_w=$(sd_worker_pid)
	kill -9 "$SD_PID" 2>/dev/null || true
	wait "$SD_PID" 2>/dev/null || true
	_i=0
	while ! pid_gone "$_w"; do
		_i=$((_i + 1))
		[ $_i -gt 1200 ] && fail "daemon process $_w outlived its keeper by 60 s"
		sleep 0.05
	done
	SD_PID=
}
pid_gone() { _s=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null); [ -z "$_s" ] || [ "$_s" = Z ]; }

# sd_worker_pid: the daemon process serving now. `secretd run` ($SD_PID) is the keeper; the
# daemon proper is its child (the same process when started with --no-keeper).
sd_worker_pid() {
	_w=$(pgrep -P "$SD_PID" -x secretd 2>/dev/null | head -n 1)
	echo "${_w:-$SD_PID}"
}

# sd_server_pid: the unprivileged server process serving workload.sock (a child of the daemon
# process; empty with --no-privsep). Waits for it (it is restarted asynchronously).
sd_server_pid() {
	_i=0
	while :; do
		_s=$(pgrep -P "$(sd_worker_pid)" -x secretd-server 2>/dev/null | head -n 1)
		[ -n "$_s" ] && { echo "$_s"; return 0; }
		_i=$((_i + 1))
		[ $_i -gt 200 ] && return 0
		sleep 0.05
	done
}

sd_stop() {
	[ -n "${SD_PID:-}" ] || return 0
	kill -TERM "$SD_PID" 2>/dev/null || true
	i=0
	while kill -0 "$SD_PID" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && { kill -KILL "$SD_PID" 2>/dev/null; break; }
		sleep 0.05
	done
	wait "$SD_PID" 2>/dev/null || true
	SD_PID=
}

ctl() { "$SECRETCTL" "$@"; }

# sqlite3 on a running daemon's store: the daemon writes it at any moment (audit batches, key
# rotation batches), and the CLI's default is to fail at once with "database is locked" (seen
# under load in test_views). Wait for the lock up to 30 s (the daemon waits 5 s for its own).
sqlite3() { command sqlite3 -cmd ".timeout 30000" "$@"; }

# poll_until SECONDS CMD...: runs CMD until it succeeds, at most SECONDS (no fixed sleeps).
poll_until() {
	lim=$(($1 * 20)); shift
	k=0
	until "$@" >/dev/null 2>&1; do
		k=$((k + 1)); [ $k -gt $lim ] && return 1
		sleep 0.05
	done
}

# audit_settled: waits (bounded) until the audit batcher holds nothing unwritten, so that every
# FUSE open and workload read answered so far is in the trail. The daemon serves one request at a
# time: an open answered before this call has had its record buffered by then.
audit_pending_zero() {
	[ "$(curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics | awk '$1 == "secretd_audit_pending" { print $2 }')" = 0 ]
}
audit_settled() { poll_until 60 audit_pending_zero || fail "audit records still pending after 60 s"; }
