#!/bin/sh
# The whole test suite: installs what is missing, builds, runs unit, integration and fuzz-corpus
# tests, then the unit and daemon tests again under AddressSanitizer + UBSan, then each fuzz
# target for a bounded time, then clang-format --dry-run --Werror over every C file. Prints
# "N passed, N failed" last. Run as root.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-15}

total_pass=0
total_fail=0
count() { # count BUILD_DIR: adds meson's results from testlog.json
	python3 - "$1/meson-logs/testlog.json" <<'PY' >"$1/.counts"
import json, os, sys
p = f = s = 0
if not os.path.exists(sys.argv[1]):
    sys.exit(0)
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
	[ -s "$1/.counts" ] || { total_fail=$((total_fail + 1)); return 0; }
	read -r p f s <"$1/.counts"
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f + s))
}

status=0
[ -d build ] || meson setup build >/dev/null
meson compile -C build
meson test -C build --print-errorlogs --suite unit --suite integration --suite fuzz || status=1
count build

[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
meson compile -C build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
meson test -C build-asan --print-errorlogs --suite unit --suite fuzz || status=1
count build-asan
meson test -C build-asan --print-errorlogs daemon identity restart cluster cluster_auth cluster_slow || status=1
count build-asan
unset ASAN_OPTIONS UBSAN_OPTIONS

if [ -x tests/fuzz/run.sh ]; then
	[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzz=true >/dev/null
	meson compile -C build-fuzz
	if sh tests/fuzz/run.sh build-fuzz "$FUZZ_SECONDS"; then
		total_pass=$((total_pass + 1))
	else
		total_fail=$((total_fail + 1)); status=1
	fi
fi

# Formatting (.clang-format, clang-format 14) is part of the suite, so CI refuses unformatted code.
if sh scripts/check-format.sh; then
	total_pass=$((total_pass + 1))
else
	echo "check-format: run: git ls-files '*.c' '*.h' | xargs clang-format -i" >&2
	total_fail=$((total_fail + 1)); status=1
fi

# Nothing a test started may outlive it: an orphaned process of this checkout's builds (a
# daemon a test failed to stop) counts as a failure, named with its command line.
here=$(pwd -P)
left=$(ps -eo pid=,ppid=,args= | awk -v d="$here/build" '$2 == 1 && index($0, d) { print }')
if [ -z "$left" ]; then
	total_pass=$((total_pass + 1))
else
	echo "processes left behind by the tests:" >&2
	echo "$left" >&2
	total_fail=$((total_fail + 1)); status=1
fi

echo "$total_pass passed, $total_fail failed"
exit $status
