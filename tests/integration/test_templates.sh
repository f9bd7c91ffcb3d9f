#!/bin/sh
# Rendered files (issue 17): templates stored with versions, refused at put when they name a
# missing secret (with the position); a container sees a rendered file only when granted the
# template and every secret it references; rotating an input re-renders while the container
# reads in a loop (every read a whole old or a whole new rendering), .version moves; revoking
# one input removes the file (ENOENT); every open is audited naming the template.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd unshare
need_cmd nsenter
need_cmd python3
EXTRA_CLEANUP=cg_cleanup

sd_start
W="$SD_WORKLOAD"
printf 'app' | ctl put db/user >/dev/null
printf 'p@ss:w/rd-0' | ctl put db/pass >/dev/null
printf 'tok' | ctl put api/token >/dev/null

# --- stored templates: put, refusals with the position, versions, get ---
cat >"$T/db.url" <<'TPL'
postgres://{{ secret "db/user" | urlquery }}:{{ secret "db/pass" | urlquery }}@db:5432/app?sslmode=require
TPL
cat >"$T/pgpass" <<'TPL'
db:5432:app:{{ secret "db/user" }}:{{ secret "db/pass" }}
TPL
cat >"$T/config.json" <<'TPL'
{"user": {{ secret "db/user" | json }}, "password": {{ secret "db/pass" | json }}, "token_version": {{ version "api/token" }}}
TPL
printf 'host=db\nuser={{ secret "db/user" }}\npassword={{ secret "db/nope" }}\n' >"$T/bad"
ctl template put app/db-url --from-file "$T/db.url" | grep -q "version 1" || fail "template put"
ctl template put app/pgpass --from-file "$T/pgpass" >/dev/null || fail "template put pgpass"
ctl template put app/config.json <"$T/config.json" >/dev/null || fail "template put from stdin"
ctl template put app/bad --from-file "$T/bad" 2>"$T/err" && fail "a template naming a missing secret was stored"
grep -q 'line 3, column 20: secret "db/nope" does not exist' "$T/err" || fail "refusal without the position: $(cat "$T/err")"
printf '{{ secret "db/user" | upper }}' | ctl template put app/bad 2>"$T/err" && fail "an unknown filter was stored"
grep -q 'line 1, column 23: unknown filter "upper"' "$T/err" || fail "filter refusal: $(cat "$T/err")"
ctl template ls | grep -q "^app/db-url " || fail "template ls"
ctl template ls | grep -q "app/bad" && fail "a refused template is listed"
ctl template get app/db-url | cmp -s - "$T/db.url" || fail "template get is not the body stored"
ctl template put app/db-url --from-file "$T/db.url" >/dev/null
ctl template versions app/db-url | grep -c current | grep -qx 1 || fail "template versions"
ctl template get app/db-url --version 1 | cmp -s - "$T/db.url" || fail "template get --version"
ok "templates: put (file or stdin), ls, get, versions; refused at put with line, column and reason"

# --- the access rule ---
A=$(hex64)
mk_cgroup "$CG2" "/docker/$A"; cgA=$CG
ctl grant tmpl:app/db-url "id:$A" --path db.url --mode 0440 >/dev/null || fail "grant a template"
ctl grant tmpl:app/pgpass "id:$A" --path .pgpass >/dev/null
ctl grant tmpl:app/config.json "id:$A" --path config.json >/dev/null
ctl grant db/user "id:$A" >/dev/null
start_container "$cgA" || fail "container A did not start"
PA=$CPID
cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" mount /run/secrets >/dev/null || fail "mount in A"
cexec "$PA" "$cgA" cat /run/secrets/db.url 2>"$T/err" && fail "rendered with an input not granted"
grep -q "No such file" "$T/err" || fail "not ENOENT: $(cat "$T/err")"
ctl grant db/pass "id:$A" >/dev/null
URL0='postgres://app:p%40ss%3Aw%2Frd-0@db:5432/app?sslmode=require'
[ "$(cexec "$PA" "$cgA" cat /run/secrets/db.url)" = "$URL0" ] || fail "db.url: $(cexec "$PA" "$cgA" cat /run/secrets/db.url)"
[ "$(cexec "$PA" "$cgA" cat /run/secrets/.pgpass)" = "db:5432:app:app:p@ss:w/rd-0" ] || fail ".pgpass"
[ "$(cexec "$PA" "$cgA" stat -c %a /run/secrets/db.url)" = 440 ] || fail "the grant's mode"
cexec "$PA" "$cgA" cat /run/secrets/config.json 2>/dev/null && fail "config.json without api/token granted"
ctl grant api/token "id:$A" >/dev/null
[ "$(cexec "$PA" "$cgA" cat /run/secrets/config.json)" = '{"user": "app", "password": "p@ss:w/rd-0", "token_version": 1}' ] ||
	fail "config.json: $(cexec "$PA" "$cgA" cat /run/secrets/config.json)"
ok "a rendered file shows only with the template and every input granted (else ENOENT): a Postgres URL, .pgpass, JSON"

# --- the workload API (issue 17): lists and serves the rendered files the container is shown ---
wl() { cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" "$@"; }
wl ls --self >"$T/o" || fail "ls --self in A"
for t in app/db-url app/pgpass app/config.json; do
	grep -qx "tmpl:$t" "$T/o" || fail "ls --self lacks tmpl:$t: $(cat "$T/o")"
done
grep -qx "db/user" "$T/o" || fail "ls --self lacks db/user"
wl --json ls --self | python3 -c '
import json, sys
t = json.load(sys.stdin)["templates"]
assert {"name": "app/db-url", "path": "db.url"} in t and {"name": "app/pgpass", "path": ".pgpass"} in t, t' ||
	fail "ls --self --json: templates"
[ "$(wl read tmpl:app/db-url)" = "$URL0" ] || fail "read tmpl:app/db-url: $(wl read tmpl:app/db-url 2>&1)"
[ "$(wl read tmpl:app/pgpass)" = "db:5432:app:app:p@ss:w/rd-0" ] || fail "read tmpl:app/pgpass"
rc=0
wl read tmpl:app/nope >"$T/o" 2>"$T/e" || rc=$?
[ "$rc" = 1 ] && [ "$(cat "$T/e")" = "secretctl: no such template" ] || fail "read tmpl:app/nope: $rc $(cat "$T/e")"
# a template that exists but is not granted answers the same, byte for byte
printf 'x={{ secret "db/user" }}' | ctl template put app/other >/dev/null
code1=$(cexec "$PA" "$cgA" curl -s -o "$T/b1" -w '%{http_code}' --unix-socket "$W" http://x/v1/self/templates/app/other)
code2=$(cexec "$PA" "$cgA" curl -s -o "$T/b2" -w '%{http_code}' --unix-socket "$W" http://x/v1/self/templates/app/nope)
[ "$code1" = 404 ] && [ "$code2" = 404 ] && cmp -s "$T/b1" "$T/b2" || fail "ungranted vs missing template: $code1 $code2"
curl -sf --unix-socket "$W" http://x/v1/self/templates/app/db-url >/dev/null 2>&1 && fail "a host process read a container's rendering"
audit_settled
ctl audit --json | grep '"action":"read"' | grep "\"actor\":\"$A\"" | grep -q '"secret":"tmpl:app/db-url"' ||
	fail "the workload read of a rendering is not audited as tmpl:NAME"
ok "workload API: ls --self lists tmpl:NAME (and --json its path), read tmpl:NAME serves the rendering; missing and ungranted answer alike; audited"

# --- the hook's attach: its file count includes the rendered files ---
B=$(hex64)
mk_cgroup "$CG2" "/docker/$B"; cgB=$CG
ctl grant tmpl:app/pgpass "id:$B" --path .pgpass >/dev/null
ctl grant 'db/*' "id:$B" >/dev/null
start_container "$cgB" || fail "container B did not start"
PB=$CPID
curl -sf -X POST --unix-socket "$SECRETD_SOCKET" -H 'Content-Type: application/json' \
	-d "{\"id\":\"$B\",\"pid\":$PB,\"runtime\":\"runc\"}" http://x/v1/containers >"$T/att" ||
	fail "attach of B: $(cat "$T/att")"
grep -q '"files":3' "$T/att" || fail "attach files (db/user, db/pass, .pgpass): $(cat "$T/att")"
[ "$(cexec "$PB" "$cgB" cat /run/secrets/.pgpass)" = "db:5432:app:app:p@ss:w/rd-0" ] || fail ".pgpass in B"
curl -sf -X DELETE --unix-socket "$SECRETD_SOCKET" "http://x/v1/containers/$B" >/dev/null || fail "detach of B"
ok "the attach answer counts the rendered files (3: two secrets and .pgpass)"

# --- live: rotate an input while the container reads in a loop ---
cat >"$T/reader.py" <<'PY'
import os, sys
d, path = sys.argv[1], sys.argv[2]
seen = {}
open(d + "/rd-armed", "w").write("1")
while not os.path.exists(d + "/rd-stop"):
    with open(path, "rb") as f:
        b = f.read()
    seen[b] = seen.get(b, 0) + 1
for b, c in sorted(seen.items()):
    sys.stdout.write("%d %s" % (c, b.decode()))
PY
v0=$(cexec "$PA" "$cgA" cat /run/secrets/.version)
cexec "$PA" "$cgA" python3 "$T/reader.py" "$T" /run/secrets/db.url >"$T/reads" 2>"$T/reader.err" &
READER=$!
poll_until 60 test -s "$T/rd-armed" || fail "reader did not start: $(cat "$T/reader.err")"
for i in 1 2 3 4 5; do
	printf 'p@ss:w/rd-%s' "$i" | ctl put db/pass >/dev/null || fail "rotate $i"
	want="postgres://app:p%40ss%3Aw%2Frd-$i@db:5432/app?sslmode=require"
	rendered() { [ "$(cexec "$PA" "$cgA" cat /run/secrets/db.url)" = "$want" ]; }
	poll_until 30 rendered || fail "rotation $i not rendered: $(cexec "$PA" "$cgA" cat /run/secrets/db.url)"
done
touch "$T/rd-stop"
wait $READER || fail "reader failed: $(cat "$T/reader.err")"
reads=$(awk '{ n += $1 } END { print n }' "$T/reads")
[ "${reads:-0}" -gt 0 ] || fail "no reads"
while read -r count body; do
	echo "$body" | grep -Eqx 'postgres://app:p%40ss%3Aw%2Frd-[0-5]@db:5432/app\?sslmode=require' ||
		fail "a read gave a rendering that is neither old nor new ($count times): $body"
done <"$T/reads"
[ "$(cexec "$PA" "$cgA" cat /run/secrets/.pgpass)" = "db:5432:app:app:p@ss:w/rd-5" ] || fail ".pgpass not re-rendered"
[ "$(cexec "$PA" "$cgA" cat /run/secrets/.version)" != "$v0" ] || fail ".version did not move"
ok "5 rotations of an input while A read db.url $reads times: every read a whole rendering ($(wc -l <"$T/reads") distinct); .version moved"

# --- a change no rendering uses renders nothing again (the cache keys by input versions) ---
renders() { curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics | awk '$1 == "secretd_renders_total" { print $2 }'; }
r0=$(renders)
[ -n "$r0" ] || fail "no secretd_renders_total"
printf 'x' | ctl put unrelated >/dev/null
ctl grant unrelated "id:$A" >/dev/null
[ "$(cexec "$PA" "$cgA" cat /run/secrets/unrelated)" = x ] || fail "unrelated not mounted"
[ "$(renders)" = "$r0" ] || fail "an unrelated change rendered again ($r0 -> $(renders))"
printf 'tok2' | ctl put api/token >/dev/null
[ "$(renders)" = $((r0 + 1)) ] || fail "a change of one input: $r0 -> $(renders) renderings (want one)"
ok "an unrelated change renders nothing; a change of one input renders only the template using it"

# --- revoke one input: the file is gone; the audit names the template ---
ctl revoke db/user "id:$A" >/dev/null
cexec "$PA" "$cgA" cat /run/secrets/db.url 2>"$T/err" && fail "rendered after an input was revoked"
grep -q "No such file" "$T/err" || fail "not ENOENT after revoke: $(cat "$T/err")"
cexec "$PA" "$cgA" cat /run/secrets/.pgpass 2>/dev/null && fail ".pgpass after an input was revoked"
audit_settled
ctl audit --json | grep '"action":"fuse-open"' | grep "\"actor\":\"$A\"" |
	grep -q '"secret":"tmpl:app/db-url"' || fail "opens of the rendered file not audited naming the template"
ctl audit --json | grep '"action":"template-put"' | grep -q '"secret":"tmpl:app/db-url"' || fail "template put not audited"
ctl audit --json | grep '"action":"template-put"' | grep '"secret":"tmpl:app/bad"' | grep -q '"result":"invalid"' ||
	fail "a refused put not audited"
ok "revoking one input removes the rendered files (ENOENT); opens audited as tmpl:NAME"

# --- delete: the file and the grants go ---
ctl grant db/user "id:$A" >/dev/null
[ "$(cexec "$PA" "$cgA" cat /run/secrets/config.json)" = '{"user": "app", "password": "p@ss:w/rd-5", "token_version": 2}' ] ||
	fail "config.json after re-grant"
ctl template rm app/config.json | grep -q "deleted" || fail "template rm"
cexec "$PA" "$cgA" cat /run/secrets/config.json 2>/dev/null && fail "a deleted template still renders"
ctl grants | grep -q "tmpl:app/config.json" && fail "a deleted template's grant is left"
ctl audit verify | grep -q "audit chain ok" || fail "audit verify"
ok "template rm removes the file and its grants"
