#!/bin/sh
# The service layer's failures on a real daemon, injected (SECRETD_TEST_FAULTS=1 and a fault
# directory: a file view_inputs there makes every view refresh fail, audit_record every record
# the service writes of its own):
# - a revoke whose refresh fails is stored, answered with exit 3 and a warning, and the
#   container's mount fails closed: the revoked secret is NOT served from the old view (EIO),
#   nor anything else, until the broker's own retries apply the new view;
# - the record of a failed change that cannot be written is said in the answer, counted and
#   logged; an attach whose record cannot be written is undone;
# - a detach whose unmount inside the live container fails is said and counted, and the stale
#   mount serves nothing;
# - an attach whose registry row cannot be written fails closed: the hook gets an error, nothing
#   is registered or left mounted (registry_write);
# - without SECRETD_TEST_FAULTS=1 the fault directory is ignored.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd unshare
need_cmd nsenter
EXTRA_CLEANUP=cg_cleanup

metric() { curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics | awk -v m="$1" '$1 == m { print $2 }'; }
reads() { [ "$(cexec "$1" "$2" cat "/run/secrets/$3" 2>/dev/null)" = "$4" ]; }

F="$T/faults"
mkdir -m 0700 "$F"
export SECRETD_TEST_FAULTS=1 SECRETD_TEST_FAULT_DIR="$F"
sd_start
unset SECRETD_TEST_FAULTS SECRETD_TEST_FAULT_DIR
grep -q "TEST MODE (SECRETD_TEST_FAULTS=1)" "$SD_LOG" || fail "test mode not announced in the log"
W="$SD_WORKLOAD"
A=$(hex64)
mk_cgroup "$CG2" "/docker/$A"; cgA=$CG
printf 'revoked-1' | ctl put app/r >/dev/null
printf 'keep-1' | ctl put app/k >/dev/null
ctl grant app/r "id:$A" >/dev/null
ctl grant app/k "id:$A" >/dev/null
start_container "$cgA" || fail "container A did not start"
PA=$CPID
cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" mount /run/secrets | grep -q "mounted 2" || fail "mount in A"
reads "$PA" "$cgA" app/r revoked-1 || fail "A cannot read app/r before the revoke"

# the refresh after the revoke fails
: >"$F/view_inputs"
set +e
ctl revoke app/r "id:$A" >"$T/out" 2>"$T/err"
rc=$?
set -e
[ $rc = 3 ] || fail "revoke with a failed refresh exited $rc, not 3: $(cat "$T/out" "$T/err")"
grep -q "warning:.*1 running container" "$T/err" || fail "no warning on stderr: $(cat "$T/err")"
cexec "$PA" "$cgA" cat /run/secrets/app/r >"$T/readA" 2>&1 && fail "the revoked secret is served from the old view: $(cat "$T/readA")"
grep -q "Input/output error" "$T/readA" || fail "A's read of the revoked secret did not fail with EIO: $(cat "$T/readA")"
cexec "$PA" "$cgA" cat /run/secrets/app/k >/dev/null 2>&1 && fail "A still reads its stale view"
[ "$(metric secretd_containers_failed_closed)" = 1 ] || fail "failed_closed gauge: $(metric secretd_containers_failed_closed)"
[ "$(metric secretd_refresh_failures_total)" = 1 ] || fail "refresh failure not counted: $(metric secretd_refresh_failures_total)"
grep -q "revoke app/r: stored, but the views could not be recomputed" "$SD_LOG" || fail "the failed refresh is not logged"
ctl grants | grep -q "app/r" && fail "the revoke was not stored"
ok "a revoke whose refresh fails is stored, exits 3 with a warning, and the revoked secret is not served (EIO)"

rm "$F/view_inputs"
poll_until 60 reads "$PA" "$cgA" app/k keep-1 || fail "A did not recover: $(cexec "$PA" "$cgA" cat /run/secrets/app/k 2>&1)"
cexec "$PA" "$cgA" test -e /run/secrets/app/r && fail "the revoked secret is back after the recovery"
[ "$(metric secretd_containers_failed_closed)" = 0 ] || fail "failed_closed gauge did not drop"
ok "the broker's retries apply the new view: app/k serves again, app/r is gone"

# a failed change whose own record cannot be written either
: >"$F/audit_record"
set +e
ctl rm nope/none >"$T/out" 2>"$T/err"
rc=$?
set -e
[ $rc != 0 ] || fail "rm of a missing secret succeeded"
grep -q "audit record could not be written" "$T/err" || fail "the lost record is not said: $(cat "$T/err")"
[ "$(metric secretd_audit_record_failures_total)" = 1 ] || fail "lost record not counted: $(metric secretd_audit_record_failures_total)"
grep -q "audit: the record of delete nope/none could not be written" "$SD_LOG" || fail "the lost record is not logged"
rm "$F/audit_record"
ok "a failed change whose record cannot be written says so, is counted and logged"

# a detach whose unmount inside the live container fails: detached anyway, said, counted, and
# the stale mount serves nothing (B is attached as the OCI hook does: the broker knows its init)
B=$(hex64)
mk_cgroup "$CG2" "/docker/$B"; cgB=$CG
ctl grant app/k "id:$B" >/dev/null
start_container "$cgB" || fail "container B did not start"
PB=$CPID
curl -sf -X POST --unix-socket "$SECRETD_SOCKET" -H 'Content-Type: application/json' \
	-d "{\"id\":\"$B\",\"pid\":$PB,\"runtime\":\"runc\"}" http://x/v1/containers >"$T/att" ||
	fail "attach of B failed: $(cat "$T/att")"
poll_until 30 reads "$PB" "$cgB" app/k keep-1 || fail "B cannot read app/k after the attach"
: >"$F/unmount"
curl -sf -X DELETE --unix-socket "$SECRETD_SOCKET" "http://x/v1/containers/$B" >"$T/det" || fail "detach of B failed"
grep -q '"detached": *true' "$T/det" || fail "B not detached: $(cat "$T/det")"
grep -q '"warning": *"the mount could not be removed from the running container' "$T/det" || fail "the failed unmount is not said: $(cat "$T/det")"
[ "$(metric secretd_unmount_failures_total)" = 1 ] || fail "failed unmount not counted: $(metric secretd_unmount_failures_total)"
cexec "$PB" "$cgB" cat /run/secrets/app/k >"$T/readB" 2>&1 && fail "the stale mount still serves: $(cat "$T/readB")"
rm "$F/unmount"
ok "a detach whose unmount fails says so, is counted, and the stale mount serves nothing"

# an attach whose registry row cannot be written: no row, no attach (the hook's error stops the
# container), and no mount left in its namespace
mounts_b() { awk '$5 == "/run/secrets" && / - fuse.secretd /' "/proc/$PB/mountinfo" | wc -l; }
n0=$(mounts_b) # the stale one of the failed unmount above
: >"$F/registry_write"
curl -s -o "$T/att2" -w '%{http_code}' -X POST --unix-socket "$SECRETD_SOCKET" \
	-H 'Content-Type: application/json' -d "{\"id\":\"$B\",\"pid\":$PB,\"runtime\":\"runc\"}" \
	http://x/v1/containers >"$T/code" || true
case $(cat "$T/code") in
2*) fail "an attach whose registry row failed succeeded: $(cat "$T/att2")" ;;
esac
ctl containers --json | grep -q "\"$B\"" && fail "B is registered without its row"
[ "$(mounts_b)" = "$n0" ] || fail "a mount is left in B ($n0 before, $(mounts_b) after)"
# the same for a workload self-mount: refused, and nothing left in the requester's namespace
C=$(hex64)
mk_cgroup "$CG2" "/docker/$C"; cgC=$CG
ctl grant app/k "id:$C" >/dev/null
start_container "$cgC" || fail "container C did not start"
PC=$CPID
cexec "$PC" "$cgC" "$SECRETCTL" --socket "$W" mount /run/secrets >"$T/mc" 2>&1 &&
	fail "a self-mount whose registry row failed succeeded: $(cat "$T/mc")"
grep -q " - fuse.secretd " "/proc/$PC/mountinfo" && fail "a mount is left in C after the refused self-mount"
rm "$F/registry_write"
curl -sf -X POST --unix-socket "$SECRETD_SOCKET" -H 'Content-Type: application/json' \
	-d "{\"id\":\"$B\",\"pid\":$PB,\"runtime\":\"runc\"}" http://x/v1/containers >"$T/att3" ||
	fail "attach of B without the fault failed: $(cat "$T/att3")"
poll_until 30 reads "$PB" "$cgB" app/k keep-1 || fail "B cannot read app/k after the attach"
cexec "$PC" "$cgC" "$SECRETCTL" --socket "$W" mount /run/secrets | grep -q "mounted 1" ||
	fail "C's self-mount without the fault"
ok "an attach or self-mount whose registry row cannot be written fails closed ($(cat "$T/code")), nothing registered or left mounted"
sd_stop

# without SECRETD_TEST_FAULTS=1 the directory means nothing
: >"$F/view_inputs"
n=$(grep -c "TEST MODE" "$SD_LOG")
export SECRETD_TEST_FAULT_DIR="$F" SECRETD_TEST_FAULTS=yes
sd_start
unset SECRETD_TEST_FAULTS SECRETD_TEST_FAULT_DIR
[ "$(grep -c "TEST MODE" "$SD_LOG")" = "$n" ] || fail "test mode without SECRETD_TEST_FAULTS=1"
ctl revoke app/k "id:$A" >/dev/null || fail "revoke without the test mode exited non-zero"
[ "$(metric secretd_refresh_failures_total)" = 0 ] || fail "a fault was injected without the test mode"
ok "without SECRETD_TEST_FAULTS=1 no fault is injected"
