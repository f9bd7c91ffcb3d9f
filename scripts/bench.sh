#!/bin/sh
# bench.sh: runs every benchmark of tests/bench/ against the real daemon (root, /dev/fuse,
# cgroup v2), prints a table and writes it to docs/BENCHMARKS.md with machine, kernel, date and
# commit. Every figure is set against a reference measured in the same run (the machine may be
# shared and noisy): read latency against tmpfs and a minimal FUSE filesystem (tests/bench/minfs.c),
# the workload API against a raw unix-socket server, durable puts against raw write+fsync.
# usage: sh scripts/bench.sh [--build DIR] [--no-build] [--quick] [--no-doc] [--only LIST]
#                             [--scales "N..."]
#   --quick     fewer iterations and containers (a smoke run of the benchmarks themselves)
#   --no-doc    print the table only, leave docs/BENCHMARKS.md alone
#   --no-build  use DIR's binaries as they are (e.g. an older build, for a before/after pair)
#   --only LIST comma-separated parts: read (per-open latency), first (first read after a
#               rotation), http, store, scale (rotation seen by N containers, secretctl
#               mount), hook;
#               implies --no-doc
#   --scales    the container counts of the scale part (default "1 100 1000")
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-bench
QUICK=0
DOC=1
ONLY=read,first,http,store,scale,hook
SCALES_ARG=""
NO_BUILD=0
USAGE='usage: sh scripts/bench.sh [--build DIR] [--no-build] [--quick] [--no-doc] [--only LIST] [--scales "N..."]'
while [ $# -gt 0 ]; do
	case $1 in
	--build) BUILD=$2; shift 2 ;;
	--no-build) NO_BUILD=1; shift ;;
	--quick) QUICK=1; shift ;;
	--no-doc) DOC=0; shift ;;
	--only) ONLY=$2; DOC=0; shift 2 ;;
	--scales) SCALES_ARG=$2; shift 2 ;;
	*) echo "$USAGE" >&2; exit 2 ;;
	esac
done
# want PART: is PART in --only's list?
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }
if [ $NO_BUILD = 0 ]; then
	if [ ! -f "$BUILD/build.ninja" ]; then
		meson setup "$BUILD" "$ROOT" >/dev/null
	fi
	ninja -C "$BUILD" >/dev/null
fi
# BENCH_TOOLS=DIR: the benchmark programs from another build (the same tools for a before/after
# pair of daemons)
B=${BENCH_TOOLS:-$BUILD/tests/bench}
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
	R_ITERS=300; R_WARM=50; R_ROUNDS=2; ROT_ITERS=40; H_N=200; H_ROUNDS=2; S_N=100; KR_S=10; KR_V=50
	SCALES="1 20"; P_ROUNDS=2
else
	R_ITERS=4000; R_WARM=200; R_ROUNDS=5; ROT_ITERS=300; H_N=1000; H_ROUNDS=5; S_N=500; KR_S=10; KR_V=1000
	SCALES="1 100 1000"; P_ROUNDS=5
fi
[ -n "$SCALES_ARG" ] && SCALES=$SCALES_ARG

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

# worker PID: the daemon process that serves (`secretd run` is the keeper, which execs it as its
# child, docs/DESIGN.md); PID itself with --no-keeper
worker() {
	w=$(pgrep -P "$1" 2>/dev/null | head -1 || true)
	echo "${w:-$1}"
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

if want read || want first || want http || want store; then
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
	case ${m#*:} in
	mkc) PID_mkc=$! ;;
	mno) PID_mno=$! ;;
	*) PID_munc=$! ;;
	esac
	FUSE_MNTS="$FUSE_MNTS $T/${m#*:}"
	i=0
	while ! grep -q ready "$T/minfs.${m#*:}.out" 2>/dev/null; do
		i=$((i + 1)); [ $i -gt 100 ] && fail "minfs ${m%%:*} did not start"; sleep 0.05
	done
done

CID=$(hex64)
daemon d1
D1_ADMIN=$D_ADMIN; D1_WORK=$D_WORK; PID_sd=$(worker "$D_PID")
daemon d2 --no-open
D2_ADMIN=$D_ADMIN; D2_WORK=$D_WORK; PID_sdno=$(worker "$D_PID")
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

# LABEL=PATH@fd:N for bench_read: fd N holds /proc/PID/stat of the filesystem's serving thread
# (the daemons' and minfs's main thread; opened here, outside the container's pid namespace), so
# that each read is classified by where reader and server ran
exec 3<"/proc/$PID_mkc/stat" 4<"/proc/$PID_mno/stat" 5<"/proc/$PID_munc/stat" \
	6<"/proc/$PID_sd/stat" 7<"/proc/$PID_sdno/stat"
read_files() {
	for z in 64 4k; do
		printf ' tmpfs%s=%s minkc%s=%s@fd:3 minno%s=%s@fd:4 minunc%s=%s@fd:5 sd%s=%s@fd:6' \
			"$z" "$T/tmpfs/s$z" "$z" "$T/mkc/s$z" "$z" "$T/mno/s$z" "$z" "$T/munc/s$z" \
			"$z" "/run/secrets/bench/s$z"
		printf ' sdno%s=%s@fd:7' "$z" "/run/secrets-noopen/bench/s$z"
	done
}
# add PREFIX: appends $T/out to the results, each line prefixed
add() { sed "s/^/$1./" "$T/out" >>"$RES"; }
# The servers' system calls during a read run (perf's tracepoint, when available): syscalls_start
# starts one counter per server, syscalls_stop RUN appends "sys.RUN.LABEL CALLS OPENS".
SC_PIDS=""
syscalls_start() {
	SC_PIDS=""
	command -v perf >/dev/null 2>&1 || return 0
	for l in mkc mno munc sd sdno; do
		eval "p=\$PID_$l"
		perf stat -x, -o "$T/sc.$l" -e raw_syscalls:sys_enter -p "$p" >/dev/null 2>&1 &
		SC_PIDS="$SC_PIDS $!"
		BG="$BG $!"
	done
	sleep 0.5
}
syscalls_stop() {
	[ -n "$SC_PIDS" ] || return 0
	for p in $SC_PIDS; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	# opens per server: its two files (64 B and 4 KiB), warm-up included
	opens=$((2 * (R_ITERS + R_WARM) * R_ROUNDS))
	for l in mkc mno munc sd sdno; do
		c=$(awk -F, '$3 ~ /raw_syscalls/ {print $1 + 0}' "$T/sc.$l" 2>/dev/null)
		echo "sys.$1.$l ${c:-0} $opens" >>"$RES"
	done
}
# pin_servers CPUS: every thread of the servers (daemons, minfs) on CPUS
pin_servers() {
	for l in mkc mno munc sd sdno; do
		eval "p=\$PID_$l"
		taskset -a -pc "$1" "$p" >/dev/null
	done
}
if want read; then
ALL_CPUS=0-$(($(nproc) - 1))
# unpinned, idle: every read classified by where reader and server ran
syscalls_start
# shellcheck disable=SC2046 # one word per LABEL=PATH
cexec "$CP" "$CCG" "$B/bench_read" cached "$R_ITERS" "$R_WARM" "$R_ROUNDS" $(read_files) \
	>"$T/out" || fail "bench_read (idle)"
syscalls_stop idle
add read.idle
# pinned: reader and servers on CPU 0 (the same-CPU state by construction)
pin_servers 0
syscalls_start
# shellcheck disable=SC2046
cexec "$CP" "$CCG" taskset -c 0 "$B/bench_read" cached "$R_ITERS" "$R_WARM" "$R_ROUNDS" \
	$(read_files) >"$T/out" || fail "bench_read (pinned)"
syscalls_stop pinned
add read.pinned
# pinned apart: servers on CPU 0, reader on CPU 1 (the split state by construction)
if [ "$(nproc)" -gt 1 ]; then
	# shellcheck disable=SC2046
	cexec "$CP" "$CCG" taskset -c 1 "$B/bench_read" cached "$R_ITERS" "$R_WARM" "$R_ROUNDS" \
		$(read_files) >"$T/out" || fail "bench_read (pinned apart)"
	add read.apart
fi
pin_servers "$ALL_CPUS"
spin_start
# shellcheck disable=SC2046
cexec "$CP" "$CCG" "$B/bench_read" cached "$R_ITERS" "$R_WARM" "$R_ROUNDS" $(read_files) \
	>"$T/out" || fail "bench_read (busy)"
add read.busy
spin_stop
fi # read
if want first; then
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

fi # first
if want http; then
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

fi # http
if want store; then
# ---------------------------------------------------------------- 5. store
say "== store"
"$B/bench_ctl" store "$D2_ADMIN" "$T/d2/state" "$S_N" 64 >"$T/out" || fail "bench_ctl store"
add store
"$B/bench_ctl" keyrot "$D2_ADMIN" "$KR_S" "$KR_V" >"$T/out" || fail "bench_ctl keyrot"
add store

fi # store
exec 3<&- 4<&- 5<&- 6<&- 7<&-
kill -9 "$CP" 2>/dev/null || true
for p in $DAEMONS; do stop_daemon "$p"; done
DAEMONS=""

fi # read, first, http, store
if want scale; then
# ---------------------------------------------------------------- 2+3. rotation and scale
# daemon_stat PID: "rss_kib fds threads"
daemon_stat() {
	echo "$(awk '/^VmRSS/ {print $2}' "/proc/$1/status") $(find "/proc/$1/fd" -mindepth 1 \
		-maxdepth 1 | wc -l) $(awk '/^Threads/ {print $2}' "/proc/$1/status")"
}
# daemon_cpu PID: CPU time of all its threads so far, in ns
daemon_cpu() {
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'
}
for N in $SCALES; do
	say "== rotation and scale: $N containers"
	daemon "s$N"
	SP=$(worker "$D_PID") # the serving process (stop_daemon stops the keeper: $D_PID)
	KP=$D_PID
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
	# the daemon's CPU (every thread, schedstat ns) and system calls (perf's tracepoints, when
	# available) over the rounds, per container and round
	cpu0=$(daemon_cpu "$SP")
	PERF_OUT=$T/perf.$N
	PERFP=""
	if command -v perf >/dev/null 2>&1; then
		perf stat -x, -o "$PERF_OUT" -e raw_syscalls:sys_enter,syscalls:sys_enter_read \
			-e syscalls:sys_enter_writev -p "$SP" >/dev/null 2>&1 &
		PERFP=$!
		BG="$BG $PERFP"
		sleep 0.5
	fi
	# BENCH_PERF=DIR: also a perf profile (call graphs) of the daemon over the rounds
	RECP=""
	if [ -n "${BENCH_PERF:-}" ]; then
		perf record -q -g -o "$BENCH_PERF/perf.$N.data" -p "$SP" >/dev/null 2>&1 &
		RECP=$!
		BG="$BG $RECP"
		sleep 0.5
	fi
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
				for (i = 1; i <= NR; i++) printf "prop.%s.before %.0f\nprop.%s.after %.0f\n",
					n, b[i], n, a[i] }' >>"$RES"
		r=$((r + 1))
	done
	cpu1=$(daemon_cpu "$SP")
	if [ -n "$RECP" ]; then
		kill -INT "$RECP" 2>/dev/null || true
		wait "$RECP" 2>/dev/null || true
	fi
	sys="- - -"
	if [ -n "$PERFP" ]; then
		kill -INT "$PERFP" 2>/dev/null || true
		wait "$PERFP" 2>/dev/null || true
		# "all read writev" system calls of the daemon over the rounds
		sys=$(awk -F, '$3 ~ /raw_syscalls/ {a = $1} $3 ~ /enter_read$/ {r = $1}
			$3 ~ /enter_writev$/ {w = $1} END {print a + 0, r + 0, w + 0}' "$PERF_OUT")
	fi
	echo "prop.$N.cost $P_ROUNDS $((cpu1 - cpu0)) $sys" >>"$RES"
	echo "scale.$N.after $(daemon_stat "$SP")" >>"$RES"
	stop_daemon "$KP"
	DAEMONS=""
	cg_cleanup
	# shellcheck disable=SC2034 # cgroup_lib.sh's list, all removed now
	CG_MADE=""
done

fi # scale
if want hook; then
# ---------------------------------------------------------------- hook overhead (runc)
echo "== hook overhead: runc start with and without secretd-oci-hook" >&2
HOOK_N=30
[ $QUICK = 1 ] && HOOK_N=5
SOURCE_ROOT=$ROOT sh "$ROOT/tests/bench/bench_hook.sh" "$HOOK_N" >>"$RES" ||
	echo "bench_hook.sh failed" >&2

fi # hook
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
