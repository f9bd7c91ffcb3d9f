#!/bin/sh
# Names a mount reserves are refused with a clear error, and nothing is stored: a first segment
# ".version" (every mount's root shows its change counter there) and a name ending in
# ".previous" (a --previous grant shows NAME.previous), as secret names and as grant paths.
. "$(dirname "$0")/lib.sh"
need_root

sd_start
printf 'a-1' | ctl put app/a >/dev/null
for n in .version .version/x app/a.previous a.previous; do
	printf 'v' | ctl put "$n" >/dev/null 2>"$T/err" && fail "put $n was accepted"
	grep -q "reserved" "$T/err" || fail "put $n: unclear error: $(cat "$T/err")"
	code=$(printf 'v' | curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SECRETD_SOCKET" -X PUT --data-binary @- "http://x/v1/secrets/$n")
	[ "$code" = 400 ] || fail "PUT $n answered $code, not 400"
done
ctl ls | grep -Eq '\.version|\.previous' && fail "a reserved name was stored: $(ctl ls)"
ok "secret names .version, .version/x, *.previous are refused (400, 'reserved'), nothing stored"

for p in .version .version/x app/b.previous; do
	ctl grant app/a name:web --path "$p" >/dev/null 2>"$T/err" && fail "grant --path $p was accepted"
	grep -q "reserved" "$T/err" || fail "grant --path $p: unclear error: $(cat "$T/err")"
done
ctl grants | grep -q name:web && fail "a grant with a reserved path was stored: $(ctl grants)"
ok "grant paths .version, .version/x, *.previous are refused, nothing stored"

for n in app/.versions app/x.version app/a.previous2 app/previous; do
	printf 'v' | ctl put "$n" >/dev/null || fail "put $n (not reserved) was refused"
done
ctl grant app/a name:web --path app/a-previous >/dev/null || fail "grant --path app/a-previous refused"
ok "names that only look alike are still accepted"
