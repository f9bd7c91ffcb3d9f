#!/bin/sh
# test_wl_cached.sh (#15): the workload API serves a mounted container the value its mount already
# holds decrypted; the answer stays the store's current value through a rotation, a delete and a
# new secret of the same name (versions restart at 1), a revoke, and for a container without a
# mount (read from the store).
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/cgroup_lib.sh
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd unshare
need_cmd nsenter
# shellcheck disable=SC2034
EXTRA_CLEANUP=cg_cleanup

sd_start
one_mounted_container one
# api PID CGROUP: the API's answer for app/a in that container (status line on failure)
api() { cexec "$1" "$2" curl -s --unix-socket "$SD_WORKLOAD" http://x/v1/self/secrets/app/a; }
cached() {
	curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics |
		awk '$1 == "secretd_workload_cached_reads_total" { print $2 }'
}
file() { cexec "$PA" "$cgA" cat "$F"; }
file_is() { [ "$(file 2>/dev/null)" = "$1" ]; }

c0=$(cached)
[ "$(api "$PA" "$cgA")" = one ] || fail "API read: $(api "$PA" "$cgA")"
[ "$(cached)" -gt "$c0" ] || fail "the mounted container's read did not come from the mount's value"
ok "a mounted container's API read is served from the value its mount holds"

printf two | ctl put app/a >/dev/null
[ "$(api "$PA" "$cgA")" = two ] || fail "after a put: $(api "$PA" "$cgA")"
poll_until 60 file_is two ||
	fail "the file after a put: $(file)"
ok "after a rotation the API answers the new value"

ctl rm app/a >/dev/null || fail "rm app/a"
printf three | ctl put app/a >/dev/null
ctl grant app/a "id:$A" >/dev/null
[ "$(api "$PA" "$cgA")" = three ] || fail "a new app/a (version 1 again) answered: $(api "$PA" "$cgA")"
poll_until 60 file_is three ||
	fail "the file of the new app/a: $(file)"
ok "a deleted secret's value is not served for a new secret of the same name"

ctl revoke app/a "id:$A" >/dev/null
out=$(api "$PA" "$cgA")
echo "$out" | grep -q "no such secret" || fail "after the revoke the API answered: $out"
ok "after a revoke the API refuses"

# a container without a mount: its read comes from the store
B=$(hex64)
mk_cgroup "$CG2" "/docker/$B"; cgB=$CG
start_container "$cgB" || fail "container B did not start"
PB=$CPID
ctl grant app/a "id:$B" >/dev/null
c1=$(cached)
[ "$(api "$PB" "$cgB")" = three ] || fail "B's read: $(api "$PB" "$cgB")"
[ "$(cached)" = "$c1" ] || fail "a container without a mount was served from the cache"
ok "a container without a mount reads from the store"
