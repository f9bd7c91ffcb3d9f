#!/bin/sh
# bench.sh: runs every benchmark of tests/bench/ against the real daemon (root, /dev/fuse,
# cgroup v2), prints a table and writes it to docs/BENCHMARKS.md with machine, kernel, date and
# commit. Every figure is set against a reference measured in the same run (the machine may be
# shared and noisy): read latency against tmpfs and a minimal FUSE filesystem (tests/bench/minfs.c),
# the workload API against a raw unix-socket server, durable puts against raw write+fsync.
# usage: sh scripts/bench.sh [--build DIR] [--quick] [--no-doc]
#   --quick   fewer iterations and containers (a smoke run of the benchmarks themselves)
#   --no-doc  print the table only, leave docs/BENCHMARKS.md alone
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-bench
QUICK=0
DOC=1
while [ $# -gt 0 ]; do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--no-doc) DOC=0; shift ;;
	*) echo "usage: sh scripts/bench.sh [--build DIR] [--quick] [--no-doc]" >&2; exit 2 ;;
	esac
done
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" "$ROOT" >/dev/null
fi
ninja -C "$BUILD" >/dev/null
B=$BUILD/tests/bench
SECRETD=$BUILD/broker/secretd
SECRETCTL=$BUILD/client/secretctl
SECRETD_OCI_HOOK=$BUILD/client/secretd-oci-hook
export SECRETD SECRETCTL SECRETD_OCI_HOOK
START=$(date +%s)

# lib.sh: scratch dir $T removed on exit, skip/fail helpers; cgroup_lib.sh: "containers".
# shellcheck source=tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"
# shellcheck source=tests/integration/cgroup_lib.sh
. "$ROOT/tests/integration/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd nsenter
need_cmd unshare

if [ $QUICK = 1 ]; then
	R_ITERS=300; R_ROUNDS=2; ROT_ITERS=40; H_N=200; H_ROUNDS=2; S_N=100; KR_S=10; KR_V=50
	SCALES="1 20"; P_ROUNDS=2
else
	R_ITERS=2000; R_ROUNDS=5; ROT_ITERS=300; H_N=1000; H_ROUNDS=5; S_N=500; KR_S=10; KR_V=1000
	SCALES="1 100 1000"; P_ROUNDS=5
fi

BG=""           # background processes we started (killed at exit, by pid)
FUSE_MNTS=""    # reference FUSE/tmpfs mounts on the host
DAEMONS=""      # secretd pids
bench_cleanup() {
	for p in $BG $DAEMONS; do kill "$p" 2>/dev/null || true; done
	cg_cleanup
	for m in $FUSE_MNTS; do umount -l "$m" 2>/dev/null || true; done
	for p in $DAEMONS; do
		i=0
		while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	done
}
# shellcheck disable=SC2034 # used by lib.sh's cleanup
EXTRA_CLEANUP=bench_cleanup
RES=$T/results
: >"$RES"
say() { echo "$*" >&2; }

# daemon NAME [run args]: starts a secretd with its own state in $T/NAME; sets D_ADMIN, D_WORK,
# D_PID.
daemon() {
	dn=$1
	shift
	"$SECRETD" init --state-dir "$T/$dn/state" --key-file "$T/$dn/key" >/dev/null
	mkdir -p "$T/$dn/run"
	"$SECRETD" run --state-dir "$T/$dn/state" --runtime-dir "$T/$dn/run" \
		--key-file "$T/$dn/key" "$@" >>"$T/$dn.log" 2>&1 &
	D_PID=$!
	DAEMONS="$DAEMONS $D_PID"
	D_ADMIN=$T/$dn/run/admin.sock
	D_WORK=$T/$dn/run/workload.sock
	i=0
	while ! curl -sf --unix-socket "$D_ADMIN" http://x/healthz >/dev/null 2>&1 ||
		! curl -sf --unix-socket "$D_WORK" http://x/healthz >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 400 ] && fail "daemon $dn did not start"
		sleep 0.05
	done
}

# stop_daemon PID
stop_daemon() {
	kill -TERM "$1" 2>/dev/null || true
	i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && { kill -KILL "$1" 2>/dev/null; break; }
		sleep 0.05
	done
	wait "$1" 2>/dev/null || true
}

# value SIZE: SIZE bytes of 'x' on stdout
value() { head -c "$1" /dev/zero | tr '\0' x; }

# spin_start / spin_stop: two busy loops (one per core of this 2-vCPU machine)
SPIN=""
spin_start() {
	n=0
	while [ $n -lt "$(nproc)" ]; do
		sh -c 'while :; do :; done' &
		SPIN="$SPIN $!"
		BG="$BG $!"
		n=$((n + 1))
	done
}
spin_stop() {
	for p in $SPIN; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	SPIN=""
}

# ---------------------------------------------------------------- 1. read latency
say "== read latency"
mkdir -p "$T/tmpfs" "$T/mkc" "$T/mno" "$T/munc"
mount -t tmpfs -o size=1m tmpfs "$T/tmpfs"
FUSE_MNTS="$T/tmpfs"
value 64 >"$T/tmpfs/s64"
value 4096 >"$T/tmpfs/s4k"
for m in keep_cache:mkc noopen:mno uncached:munc; do
	"$B/minfs" "$T/${m#*:}" "${m%%:*}" >"$T/minfs.${m#*:}.out" 2>&1 &
	BG="$BG $!"
	FUSE_MNTS="$FUSE_MNTS $T/${m#*:}"
	i=0
	while ! grep -q ready "$T/minfs.${m#*:}.out"; do
		i=$((i + 1)); [ $i -gt 100 ] && fail "minfs ${m%%:*} did not start"; sleep 0.05
	done
done

CID=$(hex64)
daemon d1
D1_ADMIN=$D_ADMIN; D1_WORK=$D_WORK
daemon d2 --no-open
D2_ADMIN=$D_ADMIN; D2_WORK=$D_WORK
for s in "$D1_ADMIN" "$D2_ADMIN"; do
	value 64 | "$SECRETCTL" --socket "$s" put bench/s64 >/dev/null
	value 4096 | "$SECRETCTL" --socket "$s" put bench/s4k >/dev/null
	"$SECRETCTL" --socket "$s" grant 'bench/*' "id:$CID" >/dev/null
done
mk_cgroup "$CG2" "/docker/$CID"; CCG=$CG
start_container "$CCG" || fail "the container did not start"
CP=$CPID
cexec "$CP" "$CCG" "$SECRETCTL" --socket "$D1_WORK" mount /run/secrets >/dev/null ||
	fail "mount (per-open)"
cexec "$CP" "$CCG" "$SECRETCTL" --socket "$D2_WORK" mount /run/secrets-noopen >/dev/null ||
	fail "mount (no-open)"

read_files() {
	for z in 64 4k; do
		printf ' tmpfs%s=%s minkc%s=%s minno%s=%s minunc%s=%s sd%s=%s sdno%s=%s' \
			"$z" "$T/tmpfs/s$z" "$z" "$T/mkc/s$z" "$z" "$T/mno/s$z" "$z" "$T/munc/s$z" \
			"$z" "/run/secrets/bench/s$z" "$z" "/run/secrets-noopen/bench/s$z"
	done
}
# add PREFIX: appends $T/out to the results, each line prefixed
add() { sed "s/^/$1./" "$T/out" >>"$RES"; }
# shellcheck disable=SC2046 # one word per LABEL=PATH
cexec "$CP" "$CCG" "$B/bench_read" cached "$R_ITERS" 200 "$R_ROUNDS" $(read_files) >"$T/out" ||
	fail "bench_read (idle)"
add read.idle
spin_start
# shellcheck disable=SC2046
cexec "$CP" "$CCG" "$B/bench_read" cached "$R_ITERS" 200 "$R_ROUNDS" $(read_files) >"$T/out" ||
	fail "bench_read (busy)"
add read.busy
spin_stop
for z in 64:64 4096:4k; do
	cexec "$CP" "$CCG" "$B/bench_read" rotate "$ROT_ITERS" 20 "$D1_ADMIN" "bench/s${z#*:}" \
		"${z%%:*}" "/run/secrets/bench/s${z#*:}" "$T/munc/s${z#*:}" >"$T/out" ||
		fail "bench_read rotate ${z%%:*}"
	add "rot${z#*:}"
done
# A rendered file (issue 17): template bench-t/s64 is '{{ secret "bench/s64" }}' (its rendering
# is the value itself, so bench_read checks it as is). Each iteration puts bench/s64, then times
# the first read of the rendered file, then the plain secret's first read after the same put.
printf '{{ secret "bench/s64" }}' | "$SECRETCTL" --socket "$D1_ADMIN" template put bench-t/s64 \
	>/dev/null || fail "template put"
"$SECRETCTL" --socket "$D1_ADMIN" grant tmpl:bench-t/s64 "id:$CID" --path tmpl/s64 >/dev/null ||
	fail "template grant"
cexec "$CP" "$CCG" "$B/bench_read" rotate "$ROT_ITERS" 20 "$D1_ADMIN" bench/s64 64 \
	/run/secrets/tmpl/s64 /run/secrets/bench/s64 >"$T/out" || fail "bench_read rotate (rendered)"
add rott64

# ---------------------------------------------------------------- 4. workload API
say "== workload API"
"$B/bench_ctl" rawsrv "$T/raw.sock" 64 >"$T/rawsrv.out" 2>&1 &
BG="$BG $!"
i=0
while ! grep -q ready "$T/rawsrv.out"; do
	i=$((i + 1)); [ $i -gt 100 ] && fail "raw server did not start"; sleep 0.05
done
cexec "$CP" "$CCG" "$B/bench_ctl" http "$H_ROUNDS" "$H_N" "$D1_WORK" "$T/raw.sock" bench/s64 \
	>"$T/out" || fail "bench_ctl http"
add http

# ---------------------------------------------------------------- 5. store
say "== store"
"$B/bench_ctl" store "$D2_ADMIN" "$T/d2/state" "$S_N" 64 >"$T/out" || fail "bench_ctl store"
add store
"$B/bench_ctl" keyrot "$D2_ADMIN" "$KR_S" "$KR_V" >"$T/out" || fail "bench_ctl keyrot"
add store

kill -9 "$CP" 2>/dev/null || true
for p in $DAEMONS; do stop_daemon "$p"; done
DAEMONS=""

# ---------------------------------------------------------------- 2+3. rotation and scale
# daemon_stat PID: "rss_kib fds threads"
daemon_stat() {
	echo "$(awk '/^VmRSS/ {print $2}' "/proc/$1/status") $(find "/proc/$1/fd" -mindepth 1 \
		-maxdepth 1 | wc -l) $(awk '/^Threads/ {print $2}' "/proc/$1/status")"
}
for N in $SCALES; do
	say "== rotation and scale: $N containers"
	daemon "s$N"
	SP=$D_PID
	value 64 | "$SECRETCTL" --socket "$D_ADMIN" put bench/rot >/dev/null
	"$SECRETCTL" --socket "$D_ADMIN" grant bench/rot 'cgroup:/docker/*' >/dev/null
	echo "scale.$N.idle $(daemon_stat "$SP")" >>"$RES"
	W=$T/watch.$N
	: >"$W"
	c=0
	t0=$(date +%s.%N)
	while [ $c -lt "$N" ]; do
		mk_cgroup "$CG2" "/docker/$(printf 'be%06d%056d' "$N" "$c")"
		in_cgroup "$CG" unshare --mount sh -c 'mount -t tmpfs tmpfs /run && exec "$@"' sh \
			"$B/bench_watch" "$SECRETCTL" "$D_WORK" /run/secrets bench/rot "$W" \
			>/dev/null 2>&1 &
		c=$((c + 1))
		# one at a time: the time of a mount, not of a queue of them
		i=0
		while [ "$(grep -c -e '^ready' -e 'fail' "$W" || true)" -lt $c ] && [ $i -lt 1000 ]; do
			sleep 0.005
			i=$((i + 1))
		done
	done
	t1=$(date +%s.%N)
	ready=$(grep -c '^ready' "$W" || true)
	echo "scale.$N.ready $ready $(grep -c fail "$W" || true) $(echo "$t0 $t1" |
		awk '{printf "%.1f", $2 - $1}')" >>"$RES"
	echo "scale.$N.mounted $(daemon_stat "$SP")" >>"$RES"
	for k in whoami mount; do
		awk -v k="$k" '$1 == k {print $2}' "$W" | sort -n | awk -v n="$N" -v k="$k" '
			{ v[NR] = $1 }
			END { if (NR) { j = int(NR * 0.99) + 1; if (j > NR) j = NR
				printf "scale.%s.%s_ms %.2f %.2f %.2f\n", n, k, v[int(NR * 0.5) + 1] / 1e6,
					v[j] / 1e6, v[NR] / 1e6 } }' >>"$RES"
	done
	r=1
	while [ "$r" -le "$P_ROUNDS" ]; do
		sleep 0.3
		pt=$("$B/bench_ctl" put "$D_ADMIN" bench/rot 64 "$r") || fail "put round $r"
		i=0
		while [ "$(grep -c "^seen $r " "$W" || true)" -lt "$ready" ] && [ $i -lt 100 ]; do
			sleep 0.1; i=$((i + 1))
		done
		# latencies (ns) of this round from before the PUT was sent and after it returned
		grep "^seen $r " "$W" | awk -v pt="$pt" -v n="$N" -v r="$r" -v want="$ready" '
			BEGIN { split(pt, p, " ") }
			{ b[NR] = $3 - p[2]; a[NR] = $3 - p[3] }
			END { printf "prop.%s.round %s seen %d of %d put_ms %.2f\n", n, r, NR, want,
				(p[3] - p[2]) / 1e6
				for (i = 1; i <= NR; i++) printf "prop.%s.before %d\nprop.%s.after %d\n",
					n, b[i], n, a[i] }' >>"$RES"
		r=$((r + 1))
	done
	echo "scale.$N.after $(daemon_stat "$SP")" >>"$RES"
	stop_daemon "$SP"
	DAEMONS=""
	cg_cleanup
	# shellcheck disable=SC2034 # cgroup_lib.sh's list, all removed now
	CG_MADE=""
done

# ---------------------------------------------------------------- hook overhead (runc)
echo "== hook overhead: runc start with and without secretd-oci-hook" >&2
HOOK_N=30
[ $QUICK = 1 ] && HOOK_N=5
SOURCE_ROOT=$ROOT sh "$ROOT/tests/bench/bench_hook.sh" "$HOOK_N" >>"$RES" ||
	echo "bench_hook.sh failed" >&2

# ---------------------------------------------------------------- table
END=$(date +%s)
COMMIT=$(cd "$ROOT" && git rev-parse HEAD 2>/dev/null || echo unknown)
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
TABLE=$T/table.md
awk -v quick="$QUICK" -f "$ROOT/tests/bench/table.awk" "$RES" >"$TABLE"
{
	echo "# secretd benchmarks"
	echo
	echo "Generated by \`sh scripts/bench.sh\`$([ $QUICK = 1 ] && echo ' --quick (smoke run: few iterations)')."
	echo
	echo "- machine: $(uname -m), $(nproc) vCPU, $CPU, $MEM"
	echo "- kernel: $(uname -r)"
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), run time $((END - START)) s"
	echo "- commit: $COMMIT"
	echo
	cat "$TABLE"
} >"$T/BENCHMARKS.md"
cat "$T/BENCHMARKS.md"
cp "$RES" "$BUILD/bench-results.txt"
if [ $DOC = 1 ]; then
	# keep the hand-written analysis below the generated part
	if [ -f "$ROOT/docs/BENCHMARKS.md" ] && grep -q '^<!-- analysis -->' "$ROOT/docs/BENCHMARKS.md"; then
		sed -n '/^<!-- analysis -->/,$p' "$ROOT/docs/BENCHMARKS.md" >"$T/analysis"
		{ cat "$T/BENCHMARKS.md"; echo; cat "$T/analysis"; } >"$ROOT/docs/BENCHMARKS.md"
	else
		cp "$T/BENCHMARKS.md" "$ROOT/docs/BENCHMARKS.md"
	fi
fi
