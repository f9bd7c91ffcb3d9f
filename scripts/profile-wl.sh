#!/bin/sh
# profile-wl.sh: counts what one workload-API read and one `secretctl mount`/`whoami` cost, in
# instructions (callgrind: the same under load) and system calls (strace -c), for issue #15.
# usage: sh scripts/profile-wl.sh [--build DIR] [N]   (root, /dev/fuse, cgroup v2)
# The container has bench/s64 mounted, as in bench.sh (UNMOUNTED=1: not, so that every read
# decrypts from the store). Prints instructions per store read (tests/bench/bench_wlpath: the
# difference between N and 0 reads, divided by N), the daemon's (run with --no-keeper) system calls per keep-alive
# GET /v1/self/secrets/NAME, and the instructions and system calls of one `secretctl whoami` and
# one `secretctl mount` in a container.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build
if [ "${1:-}" = --build ]; then BUILD=$2; shift 2; fi
N=${1:-200}
SECRETD=$BUILD/broker/secretd
SECRETCTL=$BUILD/client/secretctl
export SECRETD SECRETCTL
# shellcheck source=tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"
# shellcheck source=tests/integration/cgroup_lib.sh
. "$ROOT/tests/integration/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd valgrind
need_cmd strace
DPID=""
prof_cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null
	cg_cleanup
}
# shellcheck disable=SC2034
EXTRA_CLEANUP=prof_cleanup

# run_daemon: starts secretd --no-keeper in $T/d with bench/s64 granted to the container.
run_daemon() {
	rm -rf "$T/d"
	mkdir -p "$T/d/run"
	"$SECRETD" init --state-dir "$T/d/state" --key-file "$T/d/key" >/dev/null
	"$SECRETD" run --no-keeper --state-dir "$T/d/state" --runtime-dir "$T/d/run" \
		--key-file "$T/d/key" >>"$T/d.log" 2>&1 &
	DPID=$!
	W=$T/d/run/workload.sock
	A=$T/d/run/admin.sock
	i=0
	while ! curl -sf --unix-socket "$W" http://x/healthz >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt 1200 ] && fail "daemon did not start"; sleep 0.1
	done
	head -c 64 /dev/zero | tr '\0' x | "$SECRETCTL" --socket "$A" put bench/s64 >/dev/null
	"$SECRETCTL" --socket "$A" grant 'bench/*' "id:$CID" >/dev/null
	# as in bench.sh, the container has its secrets mounted (UNMOUNTED=1: not)
	if [ -z "${UNMOUNTED:-}" ]; then
		cexec "$CP" "$CCG" "$SECRETCTL" --socket "$W" mount /run/secrets >/dev/null ||
			fail "mount"
	fi
}
unmount() { [ -n "${UNMOUNTED:-}" ] || cexec "$CP" "$CCG" umount /run/secrets; }
stop_daemon() {
	kill -TERM "$DPID"
	i=0
	while kill -0 "$DPID" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 600 ] && fail "daemon did not stop"; sleep 0.1
	done
	wait "$DPID" 2>/dev/null || true
	DPID=""
}
# gets K: K keep-alive GETs of bench/s64 on one connection from inside the container
gets() {
	k=$1
	set --
	j=0
	while [ $j -lt "$k" ]; do set -- "$@" http://x/v1/self/secrets/bench/s64; j=$((j + 1)); done
	[ "$k" = 0 ] && return 0
	cexec "$CP" "$CCG" curl -sf --unix-socket "$W" "$@" >/dev/null || fail "GET"
}
# instructions in callgrind output file $1 (the daemon's)
ir() { sed -n 's/^summary: //p; s/^totals: //p' "$1" | head -1; }

CID=$(hex64)
mk_cgroup "$CG2" "/docker/$CID"; CCG=$CG
start_container "$CCG" || fail "the container did not start"
CP=$CPID

say() { echo "$*"; }
# -- instructions per read in the store (bench_wlpath under callgrind: the daemon itself cannot
# run under valgrind 3.19, which lacks pidfd_send_signal)
for k in 0 "$N"; do
	mkdir -p "$T/wp$k"
	valgrind --tool=callgrind --callgrind-out-file="$T/cg.$k" "$BUILD/tests/bench/bench_wlpath" \
		"$T/wp$k" "$k" >/dev/null 2>&1 || fail "bench_wlpath"
done
IR0=$(ir "$T/cg.0")
IRN=$(ir "$T/cg.$N")
say "store_get instructions per read: $(((IRN - IR0) / N)) ($N reads)"
# -- daemon system calls per request
run_daemon
gets 1
strace -c -f -p "$DPID" -o "$T/st" &
SP=$!
sleep 1
gets "$N"
sleep 0.5
kill -INT "$SP"; wait "$SP" || true
calls=$(awk '$NF == "total" {print $(NF-2)}' "$T/st")
say "daemon system calls per keep-alive GET: $(echo "$calls $N" | awk '{printf "%.1f", $1 / $2}') ($calls for $N)"
[ -n "${KEEP_ST:-}" ] && cp "$T/st" "$KEEP_ST"
# -- where the daemon's time goes (KEEP_PERF=FILE: perf's cpu-clock samples, wall-clock based)
if [ -n "${KEEP_PERF:-}" ]; then
	perf record -q -g -e cpu-clock -p "$DPID" -o "$KEEP_PERF" >/dev/null 2>&1 &
	PP=$!
	sleep 1
	gets "$N"
	gets "$N"
	kill -INT "$PP"
	wait "$PP" || true
fi
# -- wall-clock (BENCH_HTTP=ROUNDS: bench_ctl http against the raw server, N requests a round)
if [ -n "${BENCH_HTTP:-}" ]; then
	"$BUILD/tests/bench/bench_ctl" rawsrv "$T/raw.sock" 64 >"$T/rawsrv.out" 2>&1 &
	RP=$!
	i=0
	while ! grep -q ready "$T/rawsrv.out"; do
		i=$((i + 1)); [ $i -gt 100 ] && fail "raw server did not start"; sleep 0.05
	done
	cexec "$CP" "$CCG" "$BUILD/tests/bench/bench_ctl" http "$BENCH_HTTP" "$N" "$W" \
		"$T/raw.sock" bench/s64 || fail "bench_ctl http"
	kill "$RP"
	unmount
	# secretctl whoami and mount, 30 runs each from inside the container (python's
	# subprocess: fork+exec+wait timed), p50 and max in ms
	cexec "$CP" "$CCG" python3 -c '
import subprocess, sys, time
ctl, w = sys.argv[1], sys.argv[2]
def t(args, after=None):
    v = []
    for _ in range(30):
        a = time.monotonic()
        subprocess.run([ctl, "--socket", w] + args, check=True, stdout=subprocess.DEVNULL)
        v.append((time.monotonic() - a) * 1000)
        if after:
            subprocess.run(after, check=True)
    v.sort()
    return "p50 %.2f ms, max %.2f ms" % (v[len(v) // 2], v[-1])
print("secretctl whoami (wall):", t(["whoami"]))
print("secretctl mount (wall):", t(["mount", "/run/secrets"], ["umount", "/run/secrets"]))
' "$SECRETCTL" "$W" || fail "secretctl timing"
fi
# -- the daemon's side of one mount (STRACE_MOUNT=FILE: strace -f -tt -T of the daemon)
if [ -n "${STRACE_MOUNT:-}" ]; then
	unmount
	UNMOUNTED=1
	strace -f -tt -T -p "$DPID" -o "$STRACE_MOUNT" 2>/dev/null &
	SP=$!
	sleep 1
	cexec "$CP" "$CCG" "$SECRETCTL" --socket "$W" mount /run/secrets >/dev/null || fail "mount"
	sleep 0.5
	kill -INT "$SP"; wait "$SP" || true
	cexec "$CP" "$CCG" umount /run/secrets
fi
# -- client: whoami and mount
for c in whoami "mount /run/secrets"; do
	# shellcheck disable=SC2086
	cexec "$CP" "$CCG" valgrind --tool=callgrind --callgrind-out-file="$T/cc" \
		"$SECRETCTL" --socket "$W" $c >/dev/null 2>&1 || fail "secretctl $c"
	[ "$c" = whoami ] || cexec "$CP" "$CCG" umount /run/secrets
	# shellcheck disable=SC2086
	cexec "$CP" "$CCG" strace -f -c -o "$T/cs" "$SECRETCTL" --socket "$W" $c >/dev/null 2>&1 ||
		fail "secretctl $c (strace)"
	calls=$(awk '$NF == "total" {print $(NF-2)}' "$T/cs")
	say "secretctl $c: $(ir "$T/cc") instructions, $calls system calls"
done
stop_daemon
