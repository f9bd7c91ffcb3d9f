#!/bin/sh
# test_fdstore.sh: under systemd the keeper also keeps every connection in systemd's fd store, so
# that even a crash of the keeper (the whole daemon) leaves running containers' mounts alive
# (#14 item 4). No systemd here: tests/integration/fake_systemd.py plays its notify socket, fd
# store and restart (LISTEN_FDS). Checks: both sockets and each container's three fds (/dev/fuse,
# inode journal, INIT record) are stored; `kill -9` of the keeper, twice, with containers reading in
# a loop: no read fails, the new keeper takes everything back from the store and its daemon process
# adopts every connection (none re-mounted), a rotation reaches them; a container that exits has
# its entries removed from the store; a stop leaves the store empty.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/runtime_lib.sh
. "$(dirname "$0")/runtime_lib.sh"
need_root
need_fuse
need_cmd runc
need_cmd python3
[ -x /bin/busybox ] || skip_or_fail "needs busybox-static"

sd_init
mkdir -p "$T/run" "$T/sd"
SD_LOG="$T/secretd.log"
python3 "$(dirname "$0")/fake_systemd.py" "$T/sd/notify.sock" "$T/sd" -- \
	"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --key-file "$T/keys/master.key" \
	>>"$SD_LOG" 2>&1 &
SD_PID=$! # sd_stop (at cleanup) sends it SIGTERM: it stops the daemon and exits
export SECRETD_SOCKET="$T/run/admin.sock"
up() { curl -sf --unix-socket "$SECRETD_SOCKET" http://x/healthz >/dev/null 2>&1; }
poll_until 60 up || fail "the daemon did not start: $(cat "$SD_LOG")"
stored() { grep -qx "$1" "$T/sd/store" 2>/dev/null; }
poll_until 30 stored l-admin || fail "the admin socket is not in the fd store: $(cat "$T/sd/store" 2>&1)"
stored l-workload || fail "the workload socket is not in the fd store"
ok "both listening sockets are in the fd store"

N=5
printf 'pw-1' | ctl put db/password >/dev/null || fail "put"
ctl grant db/password name:app >/dev/null || fail "grant"
rt_loop_start "$N" "sdt-fds-$$"
poll_until 120 rt_loop_all_read pw-1 || fail "the containers do not all read pw-1"
all_stored() {
	j=1
	while [ "$j" -le "$N" ]; do
		for p in d j i; do stored "f-sdt-fds-$$-$j-$p" || return 1; done
		j=$((j + 1))
	done
}
poll_until 30 all_stored || fail "the containers' connections are not in the fd store: $(cat "$T/sd/store")"
ok "each container's /dev/fuse fd, inode journal and INIT record are in the fd store"

taken_back() { [ "$(grep -c "taken back from systemd's fd store" "$SD_LOG")" -ge "$1" ]; }
serving() { [ "$(grep -c 'keeper: daemon process [0-9]* serves' "$SD_LOG")" -ge "$1" ]; }
for round in 1 2; do
	old=$(cat "$T/sd/pid")
	kill -USR1 "$SD_PID" # kill -9 of the keeper, then a start with LISTEN_FDS
	new_keeper() { p=$(cat "$T/sd/pid"); [ "$p" != "$old" ] && kill -0 "$p" 2>/dev/null; }
	poll_until 60 new_keeper || fail "round $round: no new keeper"
	# The new keeper's own word, then its daemon process serving: only reads after that show
	# that the containers read through it (reads between the kill and the pid file count not).
	poll_until 60 taken_back "$round" || fail "round $round: the new keeper did not take the store back: $(grep keeper: "$SD_LOG" | tail -n 5)"
	[ "$(grep -c "taken back from systemd's fd store" "$SD_LOG")" = "$round" ] ||
		fail "round $round: the store was taken back more than once: $(grep keeper: "$SD_LOG" | tail -n 5)"
	poll_until 60 serving $((round + 1)) || fail "round $round: the new daemon process does not serve"
	rt_loop_mark
	poll_until 60 rt_loop_all_read pw-1 || fail "round $round: not every container reads again"
done
printf 'pw-2' | ctl put db/password >/dev/null || fail "put pw-2"
rt_loop_mark
poll_until 60 rt_loop_all_read pw-2 || fail "the rotation after the keeper's crashes does not reach every container"
adopted=$(grep -c 'taken over from the keeper' "$SD_LOG" || true)
[ "$adopted" -ge $((2 * N)) ] || fail "only $adopted adoptions for 2 keeper crashes of $N containers"
if grep -q 'mounted again at' "$SD_LOG"; then fail "a container was re-mounted: $(grep 'mounted again' "$SD_LOG")"; fi

# container 1 exits: its entries leave the store
: >"$T/o1/stop"
wait "$RUNC_1" || fail "container 1: runc failed"
gone() { ! stored "f-sdt-fds-$$-1-d" && ! stored "f-sdt-fds-$$-1-j" && ! stored "f-sdt-fds-$$-1-i"; }
poll_until 60 gone || fail "an exited container's connection stays in the fd store: $(cat "$T/sd/store")"
rt_loop_stop 2
rt_loop_verdict pw-1 pw-2
longest=$RT_LOOP_LONGEST
ok "keeper killed -9 twice under systemd's fd store: $RT_LOOP_READS reads, none failed (longest $longest s), every connection adopted, rotation reaches all, an exited container leaves the store"

kill -TERM "$SD_PID"
rc=0
wait "$SD_PID" || rc=$?
SD_PID=
[ "$rc" = 0 ] || fail "stop: status $rc"
only_sockets() { [ "$(grep -c '^f-' "$T/sd/store" || true)" = 0 ]; }
only_sockets || fail "connections left in the fd store after stop: $(cat "$T/sd/store")"
ok "stop: status 0, no connection left in the fd store"
