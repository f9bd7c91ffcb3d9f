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

# --- one not-found wording ("secretctl: SUBJECT: no such KIND"), exit status 1 ---
nf() { # nf WANT CMD...: CMD exits 1 and prints exactly WANT on stderr
	_want=$1
	shift
	rc=0
	"$@" >"$T/o" 2>"$T/e" </dev/null || rc=$?
	[ "$rc" = 1 ] || fail "$* exited $rc (want 1): $(cat "$T/e")"
	[ "$(cat "$T/e")" = "$_want" ] || fail "$*: '$(cat "$T/e")', want '$_want'"
}
nf "secretctl: nope: no such secret" ctl get nope
nf "secretctl: nope: no such secret" ctl get nope --version 3
nf "secretctl: t/hm: no such version 99" ctl get t/hm --version 99
nf "secretctl: nope: no such secret" ctl versions nope
nf "secretctl: nope: no such secret" ctl rm nope
nf "secretctl: t/hm: no such version 99" ctl rollback t/hm 99
nf "secretctl: nope: no such secret" ctl rollback nope 1
nf "secretctl: nope: no such secret (put or rotate it first)" ctl rotate nope --every 1h --generate
nf "secretctl: t/hm to name:web: no such grant" ctl revoke t/hm name:web
# the workload API's answer names nothing (existence is not disclosed); secretctl names the
# secret the caller asked for
nf "secretctl: t/hm: no such secret" ctl --socket "$SD_WORKLOAD" read t/hm
code=$(curl -s -o "$T/o" -w '%{http_code}' --unix-socket "$SECRETD_SOCKET" -X DELETE \
	http://x/v1/containers/nope)
[ "$code" = 404 ] && [ "$(cat "$T/o")" = '{"error":"nope: no such container"}' ] ||
	fail "detach of an unknown container: $code $(cat "$T/o")"
ok "not found: secret, version, grant, container in one wording, exit 1"

# --- a grant that names no secret: stored, warned about, exit 0 ---
rc=0
ctl grant 'later/*' name:web >"$T/o" 2>"$T/e" || rc=$?
[ "$rc" = 0 ] || fail "grant later/* exited $rc: $(cat "$T/e")"
grep -qx "secretctl: warning: no secret matches later/\* yet: the grant is stored and applies once one is put" "$T/e" ||
	fail "grant later/*: no warning: '$(cat "$T/e")'"
grep -q "granted later/\* to name:web" "$T/o" || fail "grant later/*: $(cat "$T/o")"
ctl grants | grep -q "^later/\* " || fail "the warned grant was not stored"
ctl grant t/typo name:web 2>"$T/e" || fail "grant t/typo"
grep -q "no secret is named t/typo yet" "$T/e" || fail "grant t/typo: '$(cat "$T/e")'"
ctl grant --json t/typo name:api 2>/dev/null | grep -q '"warning"' || fail "grant --json lacks the warning"
ctl grant t/hm name:web 2>"$T/e" || fail "grant t/hm"
[ ! -s "$T/e" ] || fail "a grant of an existing secret warned: $(cat "$T/e")"
ok "grant of a name or pattern that matches no secret: stored, warning on stderr, exit 0"
