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
# shellcheck disable=SC2016 # expanded inside the container
reader='while [ ! -e /out/stop ]; do
	read a _ </proc/uptime
	v=$(cat /run/secrets/db/password 2>&1); rc=$?
	read b _ </proc/uptime
	echo "$a $b $rc $v" >>/out/log
	sleep 0.05
done'
i=1
while [ "$i" -le "$N" ]; do
	rt_out_dir "$T/o$i"
	BUNDLE_BINDS="$T/o$i:/out:rw" mk_bundle "$T/b$i" app sh -c "$reader"
	start_runc_bg "$T/b$i" "sdt-fds-$$-$i"
	eval "RUNC_$i=\$RT_PID"
	i=$((i + 1))
done
reads_since() { tail -n +"$(($2 + 1))" "$T/o$1/log" 2>/dev/null | grep -q " 0 $3\$"; }
mark() { j=1; while [ "$j" -le "$N" ]; do eval "L_$j=\$(wc -l <'$T/o$j/log' 2>/dev/null || echo 0)"; j=$((j + 1)); done; }
all_read() {
	j=1
	while [ "$j" -le "$N" ]; do
		eval "l=\${L_$j:-0}"
		reads_since "$j" "$l" "$1" || return 1
		j=$((j + 1))
	done
}
poll_until 120 all_read pw-1 || fail "the containers do not all read pw-1"
all_stored() {
	j=1
	while [ "$j" -le "$N" ]; do
		for p in d j i; do stored "f-sdt-fds-$$-$j-$p" || return 1; done
		j=$((j + 1))
	done
}
poll_until 30 all_stored || fail "the containers' connections are not in the fd store: $(cat "$T/sd/store")"
ok "each container's /dev/fuse fd, inode journal and INIT record are in the fd store"

for round in 1 2; do
	mark
	old=$(cat "$T/sd/pid")
	kill -USR1 "$SD_PID" # kill -9 of the keeper, then a start with LISTEN_FDS
	new_keeper() { p=$(cat "$T/sd/pid"); [ "$p" != "$old" ] && kill -0 "$p" 2>/dev/null; }
	poll_until 60 new_keeper || fail "round $round: no new keeper"
	poll_until 60 all_read pw-1 || fail "round $round: not every container reads again"
	[ "$(grep -c "taken back from systemd's fd store" "$SD_LOG")" = "$round" ] ||
		fail "round $round: the new keeper did not take the store back: $(grep keeper: "$SD_LOG" | tail -n 5)"
done
printf 'pw-2' | ctl put db/password >/dev/null || fail "put pw-2"
mark
poll_until 60 all_read pw-2 || fail "the rotation after the keeper's crashes does not reach every container"
adopted=$(grep -c 'taken over from the keeper' "$SD_LOG" || true)
[ "$adopted" -ge $((2 * N)) ] || fail "only $adopted adoptions for 2 keeper crashes of $N containers"
if grep -q 'mounted again at' "$SD_LOG"; then fail "a container was re-mounted: $(grep 'mounted again' "$SD_LOG")"; fi

# container 1 exits: its entries leave the store
: >"$T/o1/stop"
wait "$RUNC_1" || fail "container 1: runc failed"
gone() { ! stored "f-sdt-fds-$$-1-d" && ! stored "f-sdt-fds-$$-1-j" && ! stored "f-sdt-fds-$$-1-i"; }
poll_until 60 gone || fail "an exited container's connection stays in the fd store: $(cat "$T/sd/store")"
i=2
while [ "$i" -le "$N" ]; do : >"$T/o$i/stop"; i=$((i + 1)); done
i=2
while [ "$i" -le "$N" ]; do
	eval "p=\$RUNC_$i"
	wait "$p" || fail "container $i: runc failed"
	i=$((i + 1))
done
cat "$T"/o*/log >"$T/all.log"
bad=$(awk '$3 != 0 || ($4 != "pw-1" && $4 != "pw-2")' "$T/all.log" | head -n 5)
[ -z "$bad" ] || fail "failed or wrong reads: $bad"
longest=$(awk '{ d = $2 - $1; if (d > m) m = d } END { printf "%.2f\n", m + 0 }' "$T/all.log")
ok "keeper killed -9 twice under systemd's fd store: $(wc -l <"$T/all.log") reads, none failed (longest $longest s), every connection adopted, rotation reaches all, an exited container leaves the store"

kill -TERM "$SD_PID"
rc=0
wait "$SD_PID" || rc=$?
SD_PID=
[ "$rc" = 0 ] || fail "stop: status $rc"
only_sockets() { [ "$(grep -c '^f-' "$T/sd/store" || true)" = 0 ]; }
only_sockets || fail "connections left in the fd store after stop: $(cat "$T/sd/store")"
ok "stop: status 0, no connection left in the fd store"
