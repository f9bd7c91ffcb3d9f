#!/bin/sh
# The shared value cache across containers: mounting one container must not make another's
# unchanged files look changed. Before the fix, a mount swept every cache entry the new container
# did not use, so the next refresh (any change, even of a secret nobody else sees) decrypted the
# other containers' values again into new buffers, invalidated their unchanged files and bumped
# their .version, waking every poller for nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd unshare
need_cmd nsenter
EXTRA_CLEANUP=cg_cleanup

metric() { curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics | awk -v m="$1" '$1 == m { print $2 }'; }

sd_start
W="$SD_WORKLOAD"
A=$(hex64)
B=$(hex64)
mk_cgroup "$CG2" "/docker/$A"; cgA=$CG
mk_cgroup "$CG2" "/docker/$B"; cgB=$CG
printf 'a-1' | ctl put app/a >/dev/null
printf 'b-1' | ctl put app/b >/dev/null
ctl grant app/a "id:$A" >/dev/null
ctl grant app/b "id:$B" >/dev/null

start_container "$cgA" || fail "container A did not start"
PA=$CPID
cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" mount /run/secrets | grep -q "mounted 1" || fail "mount in A"
[ "$(cexec "$PA" "$cgA" cat /run/secrets/app/a)" = a-1 ] || fail "A cannot read app/a"
va=$(cexec "$PA" "$cgA" cat /run/secrets/.version)

start_container "$cgB" || fail "container B did not start"
PB=$CPID
cexec "$PB" "$cgB" "$SECRETCTL" --socket "$W" mount /run/secrets | grep -q "mounted 1" || fail "mount in B"
[ "$(cexec "$PB" "$cgB" cat /run/secrets/app/b)" = b-1 ] || fail "B cannot read app/b"

# A change A does not see: A's view is recomputed but nothing in it changed.
printf 'b-2' | ctl put app/b >/dev/null
[ "$(cexec "$PB" "$cgB" cat /run/secrets/app/b)" = b-2 ] || fail "B did not see its rotation"
va2=$(cexec "$PA" "$cgA" cat /run/secrets/.version)
[ "$va2" = "$va" ] || fail "A's .version moved from $va to $va2 on a change it does not see (after B's mount)"
[ "$(cexec "$PA" "$cgA" cat /run/secrets/app/a)" = a-1 ] || fail "A's value changed"
ok "another container's mount does not make A's unchanged files change on the next refresh"

# and A's own change still reaches it
printf 'a-2' | ctl put app/a >/dev/null
[ "$(cexec "$PA" "$cgA" cat /run/secrets/app/a)" = a-2 ] || fail "A did not see its rotation"
[ "$(cexec "$PA" "$cgA" cat /run/secrets/.version)" != "$va" ] || fail "A's .version did not move on its own change"
ok "A's own change still moves its .version"
sd_stop
