#!/bin/sh
# bench_cluster.sh: the cluster benchmark of issue #18 (docs/BENCHMARKS.md, "Cluster"). A real
# 3-member etcd on loopback ports and 3 secretd nodes (--no-keeper), N benchmark "containers"
# per node (tests/bench/bench_watch.c: a cgroup under /docker/ and a mount namespace, the
# secret self-mounted through its own node's workload socket, blocked in poll(2) on .version).
# Each round: a rotation (PUT, tests/bench/bench_ctl.c) on node 1; every container records when
# it first read the new value. Set against etcd's own watch latency measured in the same run
# (a put on member 1 seen by a watch on member 3, tests/bench/etcd_watch_lat.py).
# usage: sh tests/bench/bench_cluster.sh [--build DIR] [--containers N] [--rounds R]
#   (root, /dev/fuse, cgroup v2, etcd). Prints the figures; writes nothing else.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/build
N=100
ROUNDS=10
while [ $# -gt 0 ]; do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--containers) N=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	*) echo "usage: sh tests/bench/bench_cluster.sh [--build DIR] [--containers N] [--rounds R]" >&2; exit 2 ;;
	esac
done
B=$BUILD/tests/bench
SECRETD=$BUILD/broker/secretd
SECRETCTL=$BUILD/client/secretctl
export SECRETD SECRETCTL
# shellcheck source=tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"
# shellcheck source=tests/integration/cgroup_lib.sh
. "$ROOT/tests/integration/cgroup_lib.sh"
# shellcheck source=tests/integration/etcd_lib.sh
. "$ROOT/tests/integration/etcd_lib.sh"
need_root
need_fuse
need_cgroup2
need_etcd
need_cmd unshare

NODES=""
BG=""
bench_cleanup() {
	for p in $BG; do kill "$p" 2>/dev/null || true; done
	for p in $NODES; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $NODES; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
		kill -KILL "$p" 2>/dev/null || true
	done
	cg_cleanup
	etcd_cleanup
}
# shellcheck disable=SC2034 # used by lib.sh's cleanup
EXTRA_CLEANUP=bench_cleanup
say() { echo "$*" >&2; }
KEY=$T/keys/cluster.key
CL=bench$$

etcd_start_cluster
say "== etcd: 3 members on $ETCD_URLS"
for n in 1 2 3; do
	"$SECRETD" init --state-dir "$T/n$n/state" --key-file "$KEY" --etcd "$ETCD_URLS" \
		--cluster "$CL" >/dev/null
	mkdir -p "$T/n$n/run"
	"$SECRETD" run --no-keeper --state-dir "$T/n$n/state" --runtime-dir "$T/n$n/run" \
		--key-file "$KEY" --etcd "$ETCD_URLS" --cluster "$CL" >>"$T/n$n.log" 2>&1 &
	NODES="$NODES $!"
done
node_up() {
	curl -sf --unix-socket "$T/n$1/run/admin.sock" http://x/healthz >/dev/null 2>&1 &&
		SECRETD_SOCKET="$T/n$1/run/admin.sock" "$SECRETCTL" cluster status | grep -q "watch: open"
}
for n in 1 2 3; do poll_until 60 node_up "$n" || fail "node $n did not start"; done
ctl1() { SECRETD_SOCKET="$T/n1/run/admin.sock" "$SECRETCTL" "$@"; }
head -c 64 /dev/urandom | ctl1 put bench/rot >/dev/null
ctl1 grant bench/rot 'cgroup:/docker/*' >/dev/null
has_grant() { SECRETD_SOCKET="$T/n$1/run/admin.sock" "$SECRETCTL" grants | grep -q 'cgroup:/docker/'; }
for n in 2 3; do poll_until 30 has_grant "$n" || fail "node $n did not get the grant"; done

W=$T/watch
: >"$W"
t0=$(date +%s)
for n in 1 2 3; do
	c=0
	while [ $c -lt "$N" ]; do
		mk_cgroup "$CG2" "/docker/$(printf 'b%d%06d%056d' "$n" "$c" 0)"
		in_cgroup "$CG" unshare --mount sh -c 'mount -t tmpfs tmpfs /run && exec "$@"' sh \
			"$B/bench_watch" "$SECRETCTL" "$T/n$n/run/workload.sock" /run/secrets bench/rot \
			"$W" >/dev/null 2>&1 &
		BG="$BG $!"
		c=$((c + 1))
		want=$(((n - 1) * N + c))
		i=0
		while [ "$(grep -c -e '^ready' -e 'fail' "$W" || true)" -lt $want ] && [ $i -lt 2000 ]; do
			sleep 0.005
			i=$((i + 1))
		done
	done
done
ready=$(grep -c '^ready' "$W" || true)
say "== $ready of $((3 * N)) containers mounted ($(grep -c fail "$W" || true) failed) in $(($(date +%s) - t0)) s"

say "== etcd's own watch latency (member 1 put -> member 3 watch)"
python3 "$ROOT/tests/bench/etcd_watch_lat.py" "$ETCD_URL_1" "$ETCD_URL_3" 200 >"$T/etcd.out" ||
	fail "etcd_watch_lat.py"

say "== $ROUNDS rotations on node 1"
: >"$T/lat"
r=1
while [ "$r" -le "$ROUNDS" ]; do
	sleep 0.5
	pt=$("$B/bench_ctl" put "$T/n1/run/admin.sock" bench/rot 64 "$r") || fail "put round $r"
	i=0
	while [ "$(grep -c "^seen $r " "$W" || true)" -lt "$ready" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	grep "^seen $r " "$W" | awk -v pt="$pt" -v r="$r" -v want="$ready" '
		BEGIN { split(pt, p, " ") }
		{ print r, $3 - p[2], $3 - p[3] }
		END { if (NR < want) printf "round %d: %d of %d containers saw it\n", r, NR, want > "/dev/stderr" }' >>"$T/lat"
	r=$((r + 1))
done
# p50 / p99 / max of a column (ns) in ms
pct() {
	awk -v c="$1" '{ print $c }' "$T/lat" | sort -n | awk '
		{ v[NR] = $1 }
		END { j = int(NR * 0.99) + 1; if (j > NR) j = NR
			printf "%.1f / %.1f / %.1f ms (%d reads)", v[int(NR * 0.5) + 1] / 1e6, v[j] / 1e6, v[NR] / 1e6, NR }'
}
echo "containers: $N per node x 3 nodes ($ready mounted), $ROUNDS rotations on node 1"
echo "new value read in every container, from before the PUT was sent: p50 / p99 / max $(pct 2)"
echo "new value read in every container, after the PUT returned: p50 / p99 / max $(pct 3)"
echo "etcd watch (put on member 1 -> event on member 3, same run): $(cat "$T/etcd.out")"
