#!/bin/sh
# secretctl's habits (issue #16 item 8) against a real daemon: one duration/time syntax on both
# sides (90s, 1h30m, 7d, RFC 3339, @UNIX, now+1h), consistent not-found messages and exit
# statuses, the warning for a grant that names no secret, per-command --help for every command
# in the table, and completions that name every command.
. "$(dirname "$0")/lib.sh"
need_root
sd_start

# --- one duration/time syntax: put --expires, rotate --every, audit --since ---
now=$(date +%s)
printf 'v' | ctl put t/hm --expires 1h30m --json >"$T/o" || fail "put --expires 1h30m"
ex=$(sed -n 's/.*"expires": \([0-9]*\).*/\1/p' "$T/o")
[ -n "$ex" ] && [ "$ex" -ge $((now + 5400)) ] && [ "$ex" -le $(($(date +%s) + 5400)) ] ||
	fail "--expires 1h30m set expires=$ex (now $now): $(cat "$T/o")"
printf 'v' | ctl put t/abs --expires 2026-12-24T10:00:00Z --json >"$T/o" 2>"$T/e"
if [ "$now" -lt 1798106400 ]; then
	grep -q '"expires": 1798106400' "$T/o" || fail "--expires RFC 3339: $(cat "$T/o" "$T/e")"
fi
printf 'v' | ctl put t/off --expires 9999-12-24T11:30:00+01:30 --json >"$T/o" ||
	fail "put --expires with an offset"
grep -q '"expires": 253401645600' "$T/o" || fail "--expires with +01:30: $(cat "$T/o")"
printf 'v' | ctl put t/at --expires @253401645600 --json >"$T/o" || fail "put --expires @UNIX"
grep -q '"expires": 253401645600' "$T/o" || fail "--expires @UNIX: $(cat "$T/o")"
printf 'v' | ctl put t/now --expires now+7d --json >"$T/o" || fail "put --expires now+7d"
ex=$(sed -n 's/.*"expires": \([0-9]*\).*/\1/p' "$T/o")
[ "$ex" -ge $((now + 604800)) ] && [ "$ex" -le $(($(date +%s) + 604800)) ] || fail "now+7d: $ex"
printf 'v' | ctl put t/secs --expires 3600 --json >"$T/o" || fail "put --expires 3600 (old form)"
ex=$(sed -n 's/.*"expires": \([0-9]*\).*/\1/p' "$T/o")
[ "$ex" -ge $((now + 3600)) ] && [ "$ex" -le $(($(date +%s) + 3600)) ] || fail "3600: $ex"
ok "put --expires: 1h30m, RFC 3339 (Z and +01:30), @UNIX, now+7d, 3600 (old form)"

for bad in 1h1h 1y soon now-1h 0 2026-02-30T00:00:00Z 36600d; do
	printf 'v' | ctl put t/bad --expires "$bad" >"$T/o" 2>"$T/e" && fail "--expires $bad accepted"
	grep -q -- "--expires must be" "$T/e" || fail "--expires $bad: $(cat "$T/e")"
done
printf 'v' | ctl put t/bad --expires 2001-01-01T00:00:00Z 2>"$T/e" && fail "an expiry in the past accepted"
grep -q "expires must be in the future" "$T/e" || fail "expiry in the past: $(cat "$T/e")"
ctl versions t/bad >/dev/null 2>&1 && fail "a refused put stored t/bad"
# the daemon takes the same syntax from any client
curl -sf --unix-socket "$SECRETD_SOCKET" -X PUT --data-binary v \
	"http://x/v1/secrets/t/raw?ttl=2d12h" >"$T/o" || fail "PUT ?ttl=2d12h"
ex=$(sed -n 's/.*"expires":\([0-9]*\).*/\1/p' "$T/o")
[ "$ex" -ge $((now + 216000)) ] || fail "?ttl=2d12h: $(cat "$T/o")"
code=$(curl -s -o "$T/o" -w '%{http_code}' --unix-socket "$SECRETD_SOCKET" -X PUT \
	--data-binary v "http://x/v1/secrets/t/raw?ttl=1h1h")
[ "$code" = 400 ] && grep -q "ttl must be a duration" "$T/o" || fail "?ttl=1h1h: $code $(cat "$T/o")"
ok "refused: 1h1h, 1y, soon, now-1h, 0, Feb 30, over 100 years, a time in the past; the API takes ?ttl=2d12h"

ctl rotate t/hm --generate >/dev/null
ctl rotate t/hm --every 1h30m --generate >"$T/o" || fail "rotate --every 1h30m"
grep -q "rotates every 1h30m, next at" "$T/o" || fail "rotate --every output: $(cat "$T/o")"
ctl schedules >"$T/o"
grep -q "^t/hm .* 1h30m " "$T/o" || fail "schedules does not show 1h30m: $(cat "$T/o")"
ctl schedules --json | grep -q '"every": 5400' || fail "schedules --json every"
ctl rotate t/hm --every 0 >/dev/null
ok "rotate --every 1h30m; schedules shows 1h30m"

ctl audit --since 10m --json >"$T/o" || fail "audit --since 10m"
grep -q '"secret":"t/hm"' "$T/o" || fail "audit --since 10m lacks recent records"
ctl audit --since now-1h --json | grep -q '"secret":"t/hm"' || fail "audit --since now-1h"
ctl audit --since "$(date -u -d @$((now - 60)) +%Y-%m-%dT%H:%M:%SZ)" --json |
	grep -q '"secret":"t/hm"' || fail "audit --since RFC 3339"
ctl audit --since now+1h --json >"$T/o" || fail "audit --since now+1h"
[ ! -s "$T/o" ] || fail "audit --since now+1h printed records: $(head -n 2 "$T/o")"
ctl audit --since 1 --json | head -n 1 | grep -q '"seq":1' || fail "audit --since SEQ (old form)"
ctl audit --since later 2>"$T/e" && fail "audit --since later accepted"
grep -q -- "--since must be" "$T/e" || fail "audit --since later: $(cat "$T/e")"
ok "audit --since 10m, now-1h, RFC 3339, now+1h (nothing), SEQ; junk refused"
