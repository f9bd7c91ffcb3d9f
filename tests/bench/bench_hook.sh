#!/bin/sh
# bench_hook.sh N: runc container start+exit time with and without secretd-oci-hook (3 secrets
# granted to the container), interleaved, N runs each after 3 warm-up runs of each. Prints
# "hook.with n=N p50=X p99=Y max=Z" and "hook.without ..." in microseconds (for table.awk).
# Needs $SECRETD $SECRETCTL $SECRETD_OCI_HOOK $SOURCE_ROOT, root and runc.
. "$SOURCE_ROOT/tests/integration/lib.sh"
. "$SOURCE_ROOT/tests/integration/runtime_lib.sh"
N=${1:-30}
need_root
need_fuse
need_cmd runc
sd_start
for s in db/password api/token tls/key; do printf 'value-of-%s' "$s" | ctl put "$s" >/dev/null; done
for s in db/password api/token tls/key; do ctl grant "$s" name:bench >/dev/null; done
mk_bundle "$T/with" bench true
BUNDLE_HOOKS=0 mk_bundle "$T/without" "" true
now_us() { echo $(($(date +%s%N) / 1000)); }
i=0
: >"$T/with.us"
: >"$T/without.us"
while [ $i -lt $((N + 3)) ]; do
	for kind in with without; do
		t0=$(now_us)
		run_runc "$T/$kind" "hb-$kind-$i" || fail "runc run ($kind): $(cat "$T/$kind/err")"
		t1=$(now_us)
		rt_runc delete -f "hb-$kind-$i" >/dev/null 2>&1 || true
		[ $i -ge 3 ] && echo $((t1 - t0)) >>"$T/$kind.us"
	done
	i=$((i + 1))
done
ctl containers --json | grep -q '"mounted": true' && fail "a container's mount outlived it"
for kind in with without; do
	sort -n "$T/$kind.us" | awk -v k="hook.$kind" '{ v[NR] = $1 }
		END { p50 = v[int(NR * 0.5) + 1]; p99 = v[int(NR * 0.99) + 1]; if (!p99) p99 = v[NR]
		      printf "%s n=%d p50=%d p99=%d max=%d\n", k, NR, p50, p99, v[NR] }'
done
