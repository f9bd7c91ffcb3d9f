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
#  - 20 runc containers reading their secret in a loop while the daemon process is killed -9 ten
#    times, then upgraded (SIGHUP): no read fails, none waits 1 s or more (each read timed by the
#    container's own clock), the containers are never re-mounted (the new daemon process adopts
#    each held connection and answers what was in flight through FUSE_NOTIFY_RESEND), and a
#    rotation afterwards reaches every one;
#  - --no-keeper runs one process.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/runtime_lib.sh
. "$(dirname "$0")/runtime_lib.sh"
need_root
need_fuse
need_cmd runc
[ -x /bin/busybox ] || skip_or_fail "needs busybox-static"

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

# --- upgrades under a stream of requests: none fails (the old daemon process answers what it
# accepted before handing off, the new one what waited in the backlog)
(
	n=0 f=0
	while [ ! -e "$T/stop-req" ]; do
		if v=$(ctl get k/a 2>>"$T/req.err") && [ "$v" = v2 ]; then n=$((n + 1)); else f=$((f + 1)); fi
	done
	echo "$n $f" >"$T/req.count"
) &
REQ=$!
for u in 1 2 3 4 5; do
	old=$(sd_worker_pid)
	kill -HUP "$SD_PID"
	poll_until 30 worker_changed "$old" || fail "upgrade $u under requests: no new daemon process"
	poll_until 30 grep -q "keeper: daemon process $(sd_worker_pid) serves" "$SD_LOG" || fail "upgrade $u: the new daemon process does not serve"
done
: >"$T/stop-req"
wait "$REQ"
read -r n f <"$T/req.count"
[ "$f" = 0 ] || fail "upgrades under requests: $f of $((n + f)) requests failed: $(tail -n 3 "$T/req.err")"
[ "$n" -gt 5 ] || fail "upgrades under requests: only $n requests made"
ok "five upgrades under a stream of requests: $n answered, none failed"

# --- 20 containers reading while the daemon process is killed -9 ten times, then upgraded
N=${KEEPER_CONTAINERS:-20}
printf 'pw-1' | ctl put db/password >/dev/null || fail "put db/password"
ctl grant db/password name:app >/dev/null || fail "grant"
rt_loop_start "$N" "sdt-keeper-$$"
poll_until 120 rt_loop_all_read pw-1 || fail "the $N containers do not all read pw-1"
mounts0=$(grep -c 'restored container .* mounted again' "$SD_LOG" || true)
# Rotations all along (the same value, a new version each: every mount's inode invalidated), so
# that kills land in the middle of invalidations too: a killed daemon process whose notifier
# thread is stuck behind a read only its successor can answer lingers, and must not hold the
# keeper back (it watches the main thread) nor keep the store's lock (the keeper holds it).
( while [ ! -e "$T/stop-rotating" ]; do printf 'pw-1' | ctl put db/password >/dev/null 2>&1 || true; done ) &
ROT=$!
for kill_n in 1 2 3 4 5 6 7 8 9 10; do
	rt_loop_mark
	old=$(sd_worker_pid)
	kill -9 "$old"
	poll_until 60 worker_changed "$old" || fail "containers, kill $kill_n: no new daemon process"
	# Every container reads again before the next kill, so that each kill meets live readers.
	poll_until 60 rt_loop_all_read pw-1 || fail "containers, kill $kill_n: not every container reads again"
done
: >"$T/stop-rotating"
wait "$ROT" || true
echo "# daemon processes that lingered after a kill (a thread stuck in the kernel until the next one answered): $(grep -c 'has not exited yet' "$SD_LOG" || true)"
ok "$N containers read through ten kills of the daemon process, with rotations all along"
rt_loop_mark
old=$(sd_worker_pid)
kill -HUP "$SD_PID"
poll_until 60 worker_changed "$old" || fail "containers, upgrade: no new daemon process"
poll_until 60 rt_loop_all_read pw-1 || fail "containers, upgrade: not every container reads again"
# The same through the CLI: it waits for the new daemon process and names both.
rt_loop_mark
old=$(sd_worker_pid)
out=$(ctl daemon upgrade 2>&1) || fail "secretctl daemon upgrade: $out"
new=$(sd_worker_pid)
[ "$out" = "upgraded: daemon process $old handed every mount to $new" ] || fail "daemon upgrade said: $out (old $old, now $new)"
poll_until 60 rt_loop_all_read pw-1 || fail "containers, secretctl daemon upgrade: not every container reads again"
ctl audit | grep -q 'daemon-upgrade' || fail "the upgrade is not in the audit trail"
printf 'pw-2' | ctl put db/password >/dev/null || fail "put pw-2"
rt_loop_mark
poll_until 60 rt_loop_all_read pw-2 || fail "the rotation after the kills and the upgrade does not reach every container"
rt_loop_stop 1
rt_loop_verdict pw-1 pw-2
reads=$RT_LOOP_READS
longest=$RT_LOOP_LONGEST
awk -v m="$longest" 'BEGIN { exit !(m < 1) }' || fail "a read waited $longest s (>= 1 s)"
adopted=$(grep -c 'taken over from the keeper' "$SD_LOG" || true)
[ "$adopted" -ge $((12 * N)) ] || fail "only $adopted adoptions logged for 12 hand-overs of $N containers"
[ "$(grep -c 'restored container .* mounted again' "$SD_LOG" || true)" = "$mounts0" ] ||
	fail "a container was mounted afresh instead of adopted: $(grep 'mounted again' "$SD_LOG" | tail -n 3)"
ok "$N containers, 10 kills and two upgrades (SIGHUP, secretctl daemon upgrade): $reads reads, none failed, longest $longest s, every connection adopted, rotation reaches all"

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
# 1: the daemon process's own status for a store it cannot open (never a crash: 139 is SIGSEGV)
[ "$rc" = 1 ] || fail "a wrong key: exit status $rc (want 1): $(cat "$T/wrong.log")"
grep -q "keeper: the daemon process exited before it served" "$T/wrong.log" ||
	fail "the keeper does not say why: $(cat "$T/wrong.log")"
[ "$(grep -c 'daemon process [0-9]* started' "$T/wrong.log")" = 1 ] || fail "restarted in a loop"
ok "a daemon process that cannot start: secretd run exits $rc, once, saying why"

# --- --no-keeper: one process
sd_start --no-keeper
[ "$(sd_worker_pid)" = "$SD_PID" ] || fail "--no-keeper still has a child daemon process"
[ "$(ctl get k/a)" = v2 ] || fail "--no-keeper: read"
[ "$(metric secretd_keeper)" = 0 ] || fail "--no-keeper: secretd_keeper is not 0"
out=$(ctl daemon upgrade 2>&1) && fail "--no-keeper: daemon upgrade succeeded: $out"
case $out in *"no keeper: this daemon runs with --no-keeper"*) ;; *) fail "--no-keeper: daemon upgrade said: $out" ;; esac
ok "--no-keeper: one process"
