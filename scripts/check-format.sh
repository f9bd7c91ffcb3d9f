#!/bin/sh
# Every C file in git is formatted by .clang-format (clang-format 14, Debian 12's). Run by
# scripts/test.sh (and so by CI). To fix: git ls-files '*.c' '*.h' | xargs clang-format -i
set -eu
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed" >&2; exit 1; }
git ls-files -z '*.c' '*.h' | xargs -0 clang-format --dry-run --Werror
