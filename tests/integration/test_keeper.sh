#!/bin/sh
# test_keeper.sh: `secretd run` runs as a keeper and the daemon process it supervises (#14).
#  - the daemon process killed -9, ten times: the keeper starts a new one at once, which takes over
#    the listening sockets: a request made while no daemon process runs waits in the socket's
#    backlog and is answered (never "connection refused"), and the store is intact;
#  - SIGHUP upgrades in place: the keeper's pid stays, a new daemon process serves, nothing is
#    unmounted or refused;
#  - SIGTERM stops both with status 0 and removes the sockets;
#  - a daemon process that cannot start (a wrong key) is not restarted in a loop: `secretd run`
#    exits non-zero, saying why;
#  - --no-keeper runs one process.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
need_root

# shellcheck disable=SC2119 # no extra daemon arguments
sd_start
printf 'v1' | ctl put k/a >/dev/null || fail "put"
[ "$(sd_worker_pid)" != "$SD_PID" ] || fail "no daemon process under the keeper"
grep -q "keeper: daemon process $SD_WPID serves" "$SD_LOG" || fail "keeper did not log the daemon process: $(cat "$SD_LOG")"
ok "secretd run is a keeper ($SD_PID) and a daemon process ($SD_WPID)"

# --- the daemon process killed -9, ten times
worker_changed() { w=$(sd_worker_pid); [ -n "$w" ] && [ "$w" != "$1" ] && [ "$w" != "$SD_PID" ]; }
for i in 1 2 3 4 5 6 7 8 9 10; do
	old=$(sd_worker_pid)
	kill -9 "$old"
	# At once, whether or not the next daemon process runs yet: the keeper holds the socket.
	v=$(ctl get k/a 2>"$T/err") || fail "kill $i: a request after the kill failed: $(cat "$T/err")"
	[ "$v" = v1 ] || fail "kill $i: read '$v'"
	poll_until 30 worker_changed "$old" || fail "kill $i: no new daemon process"
	kill -0 "$SD_PID" || fail "kill $i: the keeper died"
done
[ "$(grep -c 'keeper: daemon process [0-9]* died (killed by signal 9' "$SD_LOG")" -eq 10 ] ||
	fail "ten deaths not logged: $(grep keeper: "$SD_LOG")"
printf 'v2' | ctl put k/a >/dev/null || fail "put after the kills"
[ "$(ctl get k/a)" = v2 ] || fail "read after the kills"
metric() { curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics | awk -v n="$1" '$1 == n {print $2}'; }
[ "$(metric secretd_keeper)" = 1 ] || fail "secretd_keeper is not 1"
[ "$(metric secretd_daemon_restarts_total)" = 10 ] || fail "secretd_daemon_restarts_total: $(metric secretd_daemon_restarts_total)"
ok "daemon process killed -9 ten times: every request answered, the keeper restarted it each time"

# --- SIGHUP: upgrade in place
old=$(sd_worker_pid)
kill -HUP "$SD_PID"
v=$(ctl get k/a 2>"$T/err") || fail "upgrade: a request during the upgrade failed: $(cat "$T/err")"
[ "$v" = v2 ] || fail "upgrade: read '$v'"
poll_until 30 worker_changed "$old" || fail "upgrade: no new daemon process"
poll_until 30 grep -q "keeper: upgraded in place" "$SD_LOG" || fail "upgrade not logged: $(grep keeper: "$SD_LOG")"
grep -q "hand-off (upgrade): stopping without unmounting" "$SD_LOG" || fail "the old daemon process did not hand off"
kill -0 "$SD_PID" || fail "the keeper's pid changed"
[ "$(ctl get k/a)" = v2 ] || fail "read after the upgrade"
ok "SIGHUP: upgraded in place (keeper pid $SD_PID kept, new daemon process), requests answered"

# --- SIGTERM: both stop, status 0, sockets gone
w=$(sd_worker_pid)
kill -TERM "$SD_PID"
rc=0
wait "$SD_PID" || rc=$?
SD_PID=
[ "$rc" = 0 ] || fail "SIGTERM: exit status $rc"
! kill -0 "$w" 2>/dev/null || fail "the daemon process outlived the keeper"
[ ! -e "$T/run/admin.sock" ] && [ ! -e "$T/run/workload.sock" ] || fail "sockets left after stop"
ok "SIGTERM: keeper and daemon process exit 0, sockets removed"

# --- a daemon process that cannot start: not restarted in a loop
head -c 32 /dev/urandom >"$T/wrong.key"
chmod 0400 "$T/wrong.key"
rc=0
timeout 60 "$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --key-file "$T/wrong.key" \
	>"$T/wrong.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "a wrong key: exit status $rc: $(cat "$T/wrong.log")"
grep -q "keeper: the daemon process exited before it served" "$T/wrong.log" ||
	fail "the keeper does not say why: $(cat "$T/wrong.log")"
[ "$(grep -c 'daemon process [0-9]* started' "$T/wrong.log")" = 1 ] || fail "restarted in a loop"
ok "a daemon process that cannot start: secretd run exits $rc, once, saying why"

# --- --no-keeper: one process
sd_start --no-keeper
[ "$(sd_worker_pid)" = "$SD_PID" ] || fail "--no-keeper still has a child daemon process"
[ "$(ctl get k/a)" = v2 ] || fail "--no-keeper: read"
[ "$(metric secretd_keeper)" = 0 ] || fail "--no-keeper: secretd_keeper is not 0"
ok "--no-keeper: one process"
