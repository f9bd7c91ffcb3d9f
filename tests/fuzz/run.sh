#!/bin/sh
# run.sh BUILDDIR SECONDS: runs every libFuzzer target built in BUILDDIR (meson -Dfuzz=true, clang)
# for SECONDS each on a temporary copy of its seed corpus (tests/fuzz/corpus/NAME). Exits non-zero
# when a target crashes, leaks or finds a timeout; reproducers are kept in BUILDDIR/fuzz-artifacts.
set -eu
if [ $# -ne 2 ]; then
	echo "usage: $0 BUILDDIR SECONDS" >&2
	exit 2
fi
build=$1
secs=$2
[ -d "$build" ] || { echo "$0: no build directory $build" >&2; exit 2; }
case $secs in '' | *[!0-9]*) echo "$0: SECONDS must be a number" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
artifacts=$(cd "$artifacts" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

found=0
failed=0
for src in "$here"/fuzz_*.c; do
	name=$(basename "$src" .c)
	bin="$build/tests/fuzz/$name-libfuzzer"
	if [ ! -x "$bin" ]; then
		echo "$name: $bin not built (meson setup with CC=clang -Dfuzz=true)" >&2
		failed=1
		continue
	fi
	found=$((found + 1))
	corpus="$tmp/${name#fuzz_}"
	mkdir -p "$corpus"
	cp "$here/corpus/${name#fuzz_}/"* "$corpus/" 2>/dev/null || true
	echo "== $name: ${secs}s"
	if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$artifacts/$name-" -print_final_stats=1 "$corpus" \
		>"$tmp/$name.log" 2>&1; then
		grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$tmp/$name.log" || true
	else
		echo "$name FAILED:" >&2
		tail -n 60 "$tmp/$name.log" >&2
		failed=1
	fi
done
[ "$found" -gt 0 ] || { echo "no libFuzzer targets in $build" >&2; exit 1; }
exit "$failed"
