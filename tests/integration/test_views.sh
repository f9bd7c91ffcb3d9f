#!/bin/sh
# Views past the old 4,096-entry cap, and failing closed: a container mounted near the old cap
# and pushed past it still sees every put, rm and revoke; a 5,155-entry view mounts; when a
# refresh cannot be applied (a grant row tampered in SQLite: its MAC no longer verifies) every
# mounted container is denied (EIO), the operator's command exits 3 with a warning, /metrics
# and the log say so, and the containers serve again once the row is repaired (the broker
# retries on its own).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd unshare
need_cmd nsenter
need_cmd python3
need_cmd sqlite3
EXTRA_CLEANUP=cg_cleanup
BULK="$(dirname "$0")/bulk_put.py"

sd_start
W="$SD_WORKLOAD"
A=$(hex64); B=$(hex64)
mk_cgroup "$CG2" "/docker/$A"; cgA=$CG
mk_cgroup "$CG2" "/docker/$B"; cgB=$CG

# poll_until SECONDS CMD...: runs CMD until it succeeds, at most SECONDS (no fixed sleeps).
poll_until() {
	lim=$(($1 * 20)); shift
	k=0
	until "$@" >/dev/null 2>&1; do
		k=$((k + 1)); [ $k -gt $lim ] && return 1
		sleep 0.05
	done
}
reads() { [ "$(cexec "$1" "$2" cat "/run/secrets/$3" 2>/dev/null)" = "$4" ]; }
metric() { curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics | awk -v m="$1" '$1 == m { print $2 }'; }

# Large views from few secrets (each put re-reads every name, so thousands of puts would be
# slow): a subtree grant with --path shows big/* once more under each path. A gets big/* under
# q1..q4 (distinct selectors: prefixes of its id) plus app/x.
python3 "$BULK" "$SECRETD_SOCKET" big/s 0 1012 || fail "bulk put"
printf 'x-1' | ctl put app/x >/dev/null
for k in 1 2 3 4; do
	ctl grant 'big/*' "id:$(echo "$A" | cut -c1-$((60 + k)))" --path "q$k" >/dev/null || fail "grant q$k"
done
ctl grant app/x "id:$A" >/dev/null
start_container "$cgA" || fail "container A did not start"
PA=$CPID
cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" mount /run/secrets >"$T/mountA" 2>&1 ||
	fail "mount in A: $(cat "$T/mountA")"
grep -q "mounted 4049" "$T/mountA" || fail "A: $(cat "$T/mountA")" # just under the old cap
reads "$PA" "$cgA" q1/s00000 v1-00000 || fail "A cannot read q1/s00000"

# 20 more puts push the view to 4,129 files, past 4,096; every later change must still reach A
python3 "$BULK" "$SECRETD_SOCKET" big/s 1012 20 || fail "bulk put past the cap"
poll_until 60 reads "$PA" "$cgA" q4/s01031 v1-01031 || fail "a secret added past the old cap is not in A's view"
printf 'v2-00000' | ctl put big/s00000 >/dev/null || fail "put exited non-zero"
reads "$PA" "$cgA" q3/s00000 v2-00000 || fail "put past the old cap: A reads '$(cexec "$PA" "$cgA" cat /run/secrets/q3/s00000 2>&1)'"
ctl rm big/s00001 >/dev/null || fail "rm exited non-zero"
cexec "$PA" "$cgA" test -e /run/secrets/q2/s00001 && fail "rm past the old cap: file still in A"
ctl revoke app/x "id:$A" >/dev/null || fail "revoke exited non-zero"
cexec "$PA" "$cgA" test -e /run/secrets/app/x && fail "revoke past the old cap: file still in A"
files=$(ctl containers --json | python3 -c 'import json,sys; print([c["files"] for c in json.load(sys.stdin)["containers"] if c["mounted"]][0])')
[ "$files" = 4124 ] || fail "A shows $files files, not 4124"
ok "a view pushed past the old 4,096 cap (4,129 files) follows put, rm and revoke"

# a fresh mount of more than 5,000 files: big/* under five paths for B
for k in 1 2 3 4 5; do
	ctl grant 'big/*' "id:$(echo "$B" | cut -c1-$((59 + k)))" --path "r$k" >/dev/null || fail "grant r$k"
done
start_container "$cgB" || fail "container B did not start"
PB=$CPID
cexec "$PB" "$cgB" "$SECRETCTL" --socket "$W" mount /run/secrets >"$T/mountB" 2>&1 ||
	fail "mount of 5,155 files in B: $(cat "$T/mountB")"
grep -q "mounted 5155" "$T/mountB" || fail "B: $(cat "$T/mountB")"
reads "$PB" "$cgB" r5/s01031 v1-01031 || fail "B cannot read r5/s01031"
ok "a view of 5,155 files mounts and reads"

# A process in A waits in poll(2) on .version: it must wake when the mount is denied, then
# block (not spin on EIO) until the denial ends.
cat >"$T/poll.py" <<'PY'
import errno, os, select, sys
fd = os.open("/run/secrets/.version", os.O_RDONLY)
os.read(fd, 64)
p = select.poll()
p.register(fd, select.POLLIN | select.POLLPRI)
open(sys.argv[1], "w").write("armed")
out = []
for _ in range(2):
    out.append("woke" if p.poll(180000) else "timeout")
    try:
        os.pread(fd, 64, 0)
        out.append("read")
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(" ".join(out))
PY
cexec "$PA" "$cgA" python3 "$T/poll.py" "$T/armed" >"$T/polled" 2>&1 &
POLLER=$!
i=0; while [ ! -s "$T/armed" ]; do
	i=$((i + 1)); [ $i -gt 1200 ] && fail "poller did not start: $(cat "$T/polled")"
	sleep 0.05
done

# fail closed: a tampered grant row makes every refresh fail
[ "$(metric secretd_containers_failed_closed)" = 0 ] || fail "failed_closed gauge not 0 at start"
DB="$T/state/secretd.db"
sqlite3 "$DB" "UPDATE grants SET mode = 511 WHERE secret = 'big/*' AND path = 'q1'" ||
	fail "cannot tamper the grant row"
set +e
printf 'y-1' | ctl put app/y >"$T/out" 2>"$T/err"
rc=$?
set -e
[ $rc = 3 ] || fail "put with a failed refresh exited $rc, not 3: $(cat "$T/err")"
grep -q "version 1" "$T/out" || fail "put did not print its version: $(cat "$T/out")"
grep -q "warning:.*2 running container" "$T/err" || fail "no warning on stderr: $(cat "$T/err")"
cexec "$PA" "$cgA" cat /run/secrets/q1/s00000 >"$T/readA" 2>&1 && fail "A still reads its stale view: $(cat "$T/readA")"
grep -q "Input/output error" "$T/readA" || fail "A's read did not fail with EIO: $(cat "$T/readA")"
cexec "$PB" "$cgB" cat /run/secrets/r1/s01031 >/dev/null 2>&1 && fail "B still reads its stale view"
cexec "$PA" "$cgA" ls /run/secrets >/dev/null 2>&1 && fail "A can still list its mount"
[ "$(metric secretd_containers_failed_closed)" = 2 ] || fail "failed_closed gauge: $(metric secretd_containers_failed_closed)"
[ "$(metric secretd_view_failures_total)" -ge 2 ] || fail "view failures not counted"
grep -q "failed closed" "$SD_LOG" || fail "no log line for the failed view"
ctl containers --json | grep -q '"failed_closed": true' || fail "containers --json does not show failed_closed"
[ "$(ctl containers | grep -c FAILED-CLOSED)" = 2 ] || fail "containers does not mark the denied mounts: $(ctl containers)"
# grant, revoke and rm report the same while it lasts
set +e
ctl rm app/y >/dev/null 2>"$T/err"; rc=$?
set -e
[ $rc = 3 ] || fail "rm with a failed refresh exited $rc: $(cat "$T/err")"
# an expiry (the scheduler's own change) while it lasts is logged as not applied
set +e
printf 'e-1' | ctl put app/e --expires 1s >/dev/null 2>&1; rc=$?
set -e
[ $rc = 3 ] || fail "put --expires with a failed refresh exited $rc"
poll_until 60 grep -q "app/e: scheduled change stored, but not applied" "$SD_LOG" ||
	fail "the expiry's failed refresh was not logged"
ok "a refresh that cannot be applied fails every mount closed (EIO), exit 3 + warning, metrics, log (expiry too)"

# repaired: the broker's own retries bring the mounts back
sqlite3 "$DB" "UPDATE grants SET mode = 256 WHERE secret = 'big/*' AND path = 'q1'" ||
	fail "cannot repair the grant row"
poll_until 60 reads "$PA" "$cgA" q1/s00000 v2-00000 || fail "A did not recover: $(cexec "$PA" "$cgA" cat /run/secrets/q1/s00000 2>&1)"
poll_until 60 reads "$PB" "$cgB" r1/s01031 v1-01031 || fail "B did not recover"
[ "$(metric secretd_containers_failed_closed)" = 0 ] || fail "failed_closed gauge did not drop"
ctl containers | grep -q FAILED-CLOSED && fail "containers still marks a mount after recovery"
grep -q "serves again" "$SD_LOG" || fail "no log line for the recovery"
wait $POLLER || true
[ "$(cat "$T/polled")" = "woke EIO woke read" ] ||
	fail "poll on .version across the denial: '$(cat "$T/polled")' (want: woke EIO woke read)"
printf 'v3-00000' | ctl put big/s00000 >/dev/null || fail "put after recovery exited non-zero"
reads "$PA" "$cgA" q4/s00000 v3-00000 || fail "A does not follow changes after recovery"
ok "after the repair the retries apply the views again, without any new change; .version pollers wake on both"
