#!/bin/sh
# /healthz reflects the store (issue #12 item 12): the state dir on a small tmpfs that fills up,
# then the database file replaced under the daemon. Both sockets answer 503 {"error": ...}
# while the store cannot be used, and 200 again once it can.
. "$(dirname "$0")/lib.sh"
need_root
need_cmd mount
need_cmd curl

mkdir -m 0700 "$T/state"
mount -t tmpfs -o size=8m,mode=0700 tmpfs "$T/state" || skip_or_fail "cannot mount a tmpfs"
EXTRA_CLEANUP='umount "$T/state"'
sd_init
sd_start
W="$SD_WORKLOAD"
A="$SECRETD_SOCKET"
printf 'v' | ctl put h/one >/dev/null

# health SOCK: sets CODE and BODY
health() {
	BODY=$(curl -s -m 10 -w '\n%{http_code}' --unix-socket "$1" http://x/healthz) || BODY="
000"
	CODE=$(printf '%s\n' "$BODY" | tail -n 1)
	BODY=$(printf '%s\n' "$BODY" | sed '$d')
}
# wait_health SOCK CODE: polls until /healthz answers CODE (bounded)
wait_health() {
	i=0
	while health "$1" && [ "$CODE" != "$2" ]; do
		i=$((i + 1)); [ $i -gt 200 ] && fail "$1: /healthz answers $CODE $BODY, not $2"
		sleep 0.05
	done
}

wait_health "$A" 200
wait_health "$W" 200
ok "healthy store: 200 on both sockets"

# A full file system: every write (secrets, audit records) fails.
dd if=/dev/zero of="$T/state/filler" bs=64k 2>/dev/null || true
[ "$(stat -f -c %a "$T/state")" = 0 ] || fail "the tmpfs did not fill up"
wait_health "$A" 503
printf '%s' "$BODY" | grep -q '"error":"store unavailable: No space left on device"' ||
	fail "admin /healthz body: $BODY"
wait_health "$W" 503
printf '%s' "$BODY" | grep -q '"error":"store unavailable"' || fail "workload /healthz body: $BODY"
curl -s --unix-socket "$A" http://x/metrics | grep -q '^secretd_health_failures_total [1-9]' ||
	fail "the failed health checks are not counted"
ok "full file system: 503 {\"error\": ...} on both sockets, counted"

rm -f "$T/state/filler"
wait_health "$A" 200
wait_health "$W" 200
ok "room again: 200"

# /healthz must leave SQLite's locks alone. It used to open and close the database file itself,
# which drops every POSIX lock the process holds on it: a sqlite3 run by the operator (a backup,
# a look at the tables) then took itself for the last user, checkpointed and deleted the WAL the
# daemon still wrote to, and acknowledged puts were gone after the next restart.
for i in 1 2 3; do health "$A"; [ "$CODE" = 200 ] || fail "/healthz before the sqlite3 look: $CODE $BODY"; done
[ "$(sqlite3 "$T/state/secretd.db" 'SELECT count(*) FROM secrets')" -ge 1 ] || fail "sqlite3 cannot read the store"
[ -e "$T/state/secretd.db-wal" ] || fail "a sqlite3 reader deleted the WAL under the running daemon"
printf 'kept-2' | ctl put h/one >/dev/null
printf 'kept-new' | ctl put h/two >/dev/null
sd_kill9
sd_start
[ "$(ctl get h/one)" = kept-2 ] || fail "an acknowledged put was lost after /healthz + sqlite3 + kill -9: h/one is '$(ctl get h/one)'"
[ "$(ctl get h/two)" = kept-new ] || fail "an acknowledged put was lost after /healthz + sqlite3 + kill -9: no h/two"
ok "/healthz keeps SQLite's locks: an outside sqlite3 reader neither deletes the WAL nor loses acknowledged puts"

# The database replaced under the daemon (restored from a copy, moved away): what it writes
# now would be lost, so it is not healthy.
cp "$T/state/secretd.db" "$T/state/copy.db"
mv "$T/state/copy.db" "$T/state/secretd.db"
wait_health "$A" 503
printf '%s' "$BODY" | grep -q '"error":"store unavailable: ' || fail "admin /healthz body: $BODY"
wait_health "$W" 503
ok "database file replaced under the daemon: 503"
