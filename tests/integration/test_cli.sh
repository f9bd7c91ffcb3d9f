#!/bin/sh
# secretctl's habits (issue #16 item 8) against a real daemon: one duration/time syntax on both
# sides (90s, 1h30m, 7d, RFC 3339, @UNIX, now+1h), consistent not-found messages and exit
# statuses, the warning for a grant that names no secret, per-command --help for every command
# in the table, and completions that name every command.
. "$(dirname "$0")/lib.sh"
need_root

# --- secretd run --audit-keep: common/timespec's durations; a bad value exits non-zero, says why ---
for bad in 90 1y 0s 1h1h soon 36600d; do
	rc=0
	"$SECRETD" run --state-dir "$T/none" --runtime-dir "$T/none-run" --audit-keep "$bad" \
		>"$T/o" 2>"$T/e" || rc=$?
	[ "$rc" != 0 ] || fail "secretd run --audit-keep $bad exited 0"
	grep -q -- "--audit-keep must be a duration" "$T/e" || fail "--audit-keep $bad: $(cat "$T/e")"
done
ok "secretd run --audit-keep refuses 90 (no unit), 1y, 0s, 1h1h, soon, 36600d with a clear error"
sd_start --audit-keep 1h30m # the whole test runs with it: compound durations are taken

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

# the daemon's own answers: KEY stays unix seconds; KEY_unix and KEY_rfc3339 come with it
curl -sf --unix-socket "$SECRETD_SOCKET" http://x/v1/secrets/t/at >"$T/o" || fail "GET t/at"
grep -q '"expires":253401645600' "$T/o" && grep -q '"expires_unix":253401645600' "$T/o" &&
	grep -q '"expires_rfc3339":"9999-12-24T10:00:00Z"' "$T/o" || fail "GET /v1/secrets/t/at times: $(cat "$T/o")"
curl -sf --unix-socket "$SECRETD_SOCKET" http://x/v1/secrets | python3 -c '
import json, re, sys
for s in json.load(sys.stdin)["secrets"]:
    for k in ("created", "updated", "expires"):
        assert isinstance(s[k], int) and s[k + "_unix"] == s[k], (k, s)
        r = s[k + "_rfc3339"]
        assert (r is None) if s[k] == 0 else re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", r), (k, s)
' || fail "GET /v1/secrets: times without their companions"
ok "the daemon's times: KEY (unix, unchanged), KEY_unix, KEY_rfc3339 (null for none)"

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
# the workload API's answer names nothing, and neither does secretctl read: test_identity
# compares the answers for a missing and an ungranted name byte for byte
nf "secretctl: no such secret" ctl --socket "$SD_WORKLOAD" read t/hm
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

# --- ls --filter and --format ---
printf 'v' | ctl put db/a >/dev/null
printf 'v' | ctl put db/b >/dev/null
printf 'v' | ctl put db/b >/dev/null
printf 'v' | ctl put web/x --expires 1h >/dev/null
ctl ls --filter 'name=db/*' --format '{{.Name}} {{.Version}}' >"$T/o" || fail "ls --filter --format"
[ "$(cat "$T/o")" = "$(printf 'db/a 1\ndb/b 2')" ] || fail "ls name=db/*: $(cat "$T/o")"
ctl ls --filter expires=true --filter 'name=web/*' --format '{{.Name}}\t{{ .Expires }}' >"$T/o"
grep -q "^web/x	20[0-9-]*T[0-9:]*Z$" "$T/o" && [ "$(wc -l <"$T/o")" = 1 ] ||
	fail "ls expires=true: $(cat "$T/o")"
ctl ls --filter expires=false --format '{{.Name}}' | grep -qx 'web/x' && fail "expires=false listed web/x"
ctl ls --filter 'name=db/b' --format '{{json .Name}} {{json .Version}} {{json .Expires}}' >"$T/o"
[ "$(cat "$T/o")" = '"db/b" 2 ""' ] || fail "ls {{json .Field}}: $(cat "$T/o")"
ctl ls --filter 'name=db/a' --format '{{json .}}' >"$T/o"
grep -q '^{"created":"20[^"]*Z","created_unix":[0-9]*,"current":1,"expires":null,"expires_unix":0,"labels":{},"name":"db/a","updated":"[^"]*","updated_unix":[0-9]*,"versions":1}$' "$T/o" ||
	fail "ls {{json .}}: $(cat "$T/o")"
ctl ls --filter 'name=db/*' --format json >"$T/o"
[ "$(grep -c '"name"' "$T/o")" = 2 ] && head -n 1 "$T/o" | grep -q '^\[' || fail "ls --format json: $(cat "$T/o")"
ctl ls --filter 'name=db/*' --json | grep -c '"name"' | grep -qx 2 || fail "ls --filter --json"
for bad in '{{.Nope}}' '{{.Name' '{{template "x"}}' '{{.}}'; do
	ctl ls --format "$bad" >"$T/o" 2>"$T/e" && fail "ls --format '$bad' accepted"
	grep -q "^secretctl: --format: " "$T/e" || fail "ls --format '$bad': $(cat "$T/e")"
	[ ! -s "$T/o" ] || fail "ls --format '$bad' printed: $(cat "$T/o")"
done
ctl ls --filter color=red 2>"$T/e" && fail "ls --filter color=red accepted"
grep -q "filter must be name=GLOB" "$T/e" || fail "ls --filter color=red: $(cat "$T/e")"
ok "ls --filter name=GLOB / expires=BOOL, --format {{.Field}}, {{json .F}}, {{json .}}, json; bad templates refused before any output"

# --- labels on secrets: put --label, label KEY=VALUE / KEY-, ls --filter label=, --format, inspect ---
printf 'v' | ctl put lab/a --label team=payments --label env=prod >/dev/null || fail "put --label"
printf 'v' | ctl put lab/b --label team=core >/dev/null || fail "put --label (lab/b)"
printf 'v' | ctl put lab/c >/dev/null
ctl label lab/c tier=cache >"$T/o" || fail "label lab/c tier=cache"
[ "$(cat "$T/o")" = "lab/c: labels tier=cache" ] || fail "label output: $(cat "$T/o")"
ctl label lab/a env- owner=ops >"$T/o" || fail "label lab/a env- owner=ops"
[ "$(cat "$T/o")" = "lab/a: labels owner=ops,team=payments" ] || fail "label set+remove: $(cat "$T/o")"
[ "$(ctl label lab/a)" = "lab/a: labels owner=ops,team=payments" ] || fail "label NAME (print)"
printf 'v2' | ctl put lab/a >/dev/null
ctl label --json lab/a | grep -q '"owner": "ops"' || fail "a put without --label dropped the labels"
[ "$(ctl ls --filter label=team --format '{{.Name}}' | tr '\n' ' ')" = "lab/a lab/b " ] ||
	fail "ls --filter label=team: $(ctl ls --filter label=team --format '{{.Name}}')"
ctl ls --filter label=team=payments --format '{{.Name}} {{index .Labels "owner"}}|{{index .Labels "nope"}}|{{.Labels}}' >"$T/o"
[ "$(cat "$T/o")" = "lab/a ops||owner=ops,team=payments" ] || fail "ls label=team=payments --format: $(cat "$T/o")"
[ "$(ctl ls --filter name=lab/c --format '{{json .Labels}}')" = '{"tier":"cache"}' ] ||
	fail "{{json .Labels}}: $(ctl ls --filter name=lab/c --format '{{json .Labels}}')"
[ -z "$(ctl ls --filter label=team=nope --format '{{.Name}}')" ] || fail "label=team=nope matched"
ctl inspect lab/a | python3 -c 'import json,sys; o=json.load(sys.stdin); assert o["labels"] == {"owner": "ops", "team": "payments"}, o' ||
	fail "inspect lab/a labels"
curl -sf --unix-socket "$SECRETD_SOCKET" http://x/v1/secrets/lab/c | grep -q '"labels":{"tier":"cache"}' ||
	fail "GET /v1/secrets/NAME lacks labels"
curl -sf --unix-socket "$SECRETD_SOCKET" http://x/v1/secrets | grep -q '"labels":{"tier":"cache"}' ||
	fail "GET /v1/secrets lacks labels"
ctl audit --json >"$T/o"
grep '"action":"label"' "$T/o" | grep -q '"detail":"labels set owner=ops remove env"' ||
	fail "the label change's audit record: $(grep '"label"' "$T/o")"
grep '"action":"put"' "$T/o" | grep -q '"detail":"labels set env=prod team=payments"' ||
	fail "put --label's audit record: $(grep '"lab/a"' "$T/o")"
curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics | grep -qx 'secretd_label_changes_total 2' ||
	fail "secretd_label_changes_total"
# refused, with the reason, nothing changed
ctl label lab/a -bad=1 2>"$T/e" && fail "label -bad=1 accepted"
grep -q "label '-bad=1': a label key must begin and end with a letter or digit" "$T/e" || fail "-bad=1: $(cat "$T/e")"
printf 'v' | ctl put lab/d --label novalue 2>"$T/e" && fail "put --label novalue accepted"
grep -q "label 'novalue': a label is KEY=VALUE" "$T/e" || fail "--label novalue: $(cat "$T/e")"
ctl versions lab/d >/dev/null 2>&1 && fail "a refused put --label stored lab/d"
nf "secretctl: nope: no such secret" ctl label nope k=v
big=$(python3 -c 'print(" ".join("--label k%d=%s" % (i, "%" * 250) for i in range(64)))')
# shellcheck disable=SC2086
printf 'v' | ctl put lab/big $big 2>"$T/e" && fail "a put with 48 KiB of encoded labels was sent"
grep -q "the labels are too long to go with a put: put the value, then set them with secretctl label lab/big" "$T/e" ||
	fail "put with long labels: $(cat "$T/e")"
ctl label lab/a k=v k- 2>"$T/e" && fail "label k=v k- accepted"
grep -q "a label is named twice" "$T/e" || fail "k=v k-: $(cat "$T/e")"
body=$(python3 -c 'import json; print(json.dumps({"set": {"k%d" % i: "" for i in range(63)}}))')
code=$(curl -s -o "$T/o" -w '%{http_code}' --unix-socket "$SECRETD_SOCKET" -X POST -d "$body" http://x/v1/labels/lab/a)
[ "$code" = 400 ] && grep -q "lab/a: more than 64 labels" "$T/o" || fail "65 labels: $code $(cat "$T/o")"
[ "$(ctl label lab/a)" = "lab/a: labels owner=ops,team=payments" ] || fail "a refused change changed labels"
ok "labels: put --label, label KEY=VALUE / KEY- (kubectl), kept by a put, ls --filter label=KEY[=VALUE], {{index .Labels}}, {{.Labels}}, {{json .Labels}}, inspect, API answers, audited, counted; bad keys, unknown secrets, 65 labels refused"

# --- inspect ---
ctl rotate db/b --every 2h --generate >/dev/null
ctl grant 'db/*' name:web --mode 0440 >/dev/null 2>&1
ctl grant db/b label:tier=api >/dev/null
ctl inspect db/b >"$T/o" || fail "inspect db/b"
python3 - "$T/o" <<'PY' || fail "inspect db/b: $(cat "$T/o")"
import json, re, sys
o = json.load(open(sys.argv[1]))
rfc = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
assert o["name"] == "db/b" and o["current"] == 2, o
assert [v["version"] for v in o["versions"]] == [1, 2] or [v["version"] for v in o["versions"]] == [2, 1], o
assert all(rfc.match(v["created"]) and isinstance(v["created_unix"], int) for v in o["versions"])
for k in ("created", "updated"):
    assert rfc.match(o[k]) and isinstance(o[k + "_unix"], int), k
assert o["expires"] is None and o["expires_unix"] == 0
s = o["schedule"]
assert s["every"] == "2h" and s["every_seconds"] == 7200 and rfc.match(s["next"]), s
sel = sorted(g["selector"] for g in o["grants"])
assert sel == ["label:tier=api", "name:web"], sel
assert [g["pattern"] for g in o["grants"] if g["selector"] == "name:web"] == ["db/*"]
for k in list(o) + [k for v in o["versions"] for k in v] + list(s):
    assert re.match(r"^[a-z][a-z0-9_]*$", k), "not snake_case: " + k
PY
nf "secretctl: nope: no such secret" ctl inspect nope
ok "inspect: one JSON object (versions, RFC 3339 + _unix times, schedule, matching grants, snake_case)"

# --- per-command --help, for every command in the table ---
ctl help --commands >"$T/cmds" || fail "help --commands"
[ "$(wc -l <"$T/cmds")" -ge 20 ] || fail "help --commands lists $(wc -l <"$T/cmds") commands"
ctl --help >"$T/overview"
while read -r cmd; do
	ctl "$cmd" --help >"$T/h" 2>"$T/e" || fail "$cmd --help exited non-zero: $(cat "$T/e")"
	head -n 1 "$T/h" | grep -q "^Usage: secretctl $cmd" || fail "$cmd --help: no Usage line"
	grep -q "^Flags:" "$T/h" || fail "$cmd --help: no Flags"
	grep -q "^Examples:" "$T/h" && grep -q "^  secretctl $cmd" "$T/h" || fail "$cmd --help: no example"
	grep -q "^Exit status:" "$T/h" || fail "$cmd --help: no exit status"
	# every flag of the command's synopsis (the overview's line) is explained
	for f in $(grep "^  $cmd " "$T/overview" | grep -o -- '--[a-z][a-z-]*'); do
		grep -q "^  $f\|^  --[a-z-]* [A-Z]*, $f" "$T/h" || fail "$cmd --help does not explain $f"
	done
	ctl help "$cmd" | cmp -s - "$T/h" || fail "help $cmd differs from $cmd --help"
done <"$T/cmds"
ctl grant --help >"$T/h"
for k in name: label: id: cgroup: runtime: uid:; do
	grep -q "^  $k" "$T/h" || fail "grant --help lacks the selector kind $k"
done
ctl help nope 2>"$T/e" && fail "help nope exited 0"
ok "--help for each of the $(wc -l <"$T/cmds") commands: usage, flags (each of the synopsis), examples, exit status; grant's selector kinds"

# --- completions made from the table: every command, valid syntax, the installed files ---
for sh in bash zsh fish; do
	ctl completion "$sh" >"$T/c.$sh" || fail "completion $sh"
	while read -r cmd; do
		case $sh in
		bash) grep -q "^        $cmd) flags=" "$T/c.$sh" && grep -q "commands=\".*\\b$cmd\\b" "$T/c.$sh" ;;
		zsh) grep -q "^    '$cmd:" "$T/c.$sh" ;;
		fish) grep -q "__fish_use_subcommand -a $cmd -d" "$T/c.$sh" ;;
		esac || fail "completion $sh lacks $cmd"
	done <"$T/cmds"
	command -v "$sh" >/dev/null 2>&1 && { "$sh" -n "$T/c.$sh" || fail "completion $sh: syntax"; }
done
cmp -s "$T/c.bash" "$BUILD_ROOT/dist/completions/secretctl" || fail "the built bash completion is stale"
cmp -s "$T/c.zsh" "$BUILD_ROOT/dist/completions/_secretctl" || fail "the built zsh completion is stale"
cmp -s "$T/c.fish" "$BUILD_ROOT/dist/completions/secretctl.fish" || fail "the built fish completion is stale"
# bash, run: commands, flags, sub-words, selector kinds, names from the broker
cat >"$T/comp.bash" <<'SH'
_init_completion() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
compopt() { :; }
_filedir() { COMPREPLY=(FILES); }
. "$1"
t() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _secretctl; echo "${COMPREPLY[*]}"; }
t secretctl ro
t secretctl rotate x --ev
t secretctl key ""
t secretctl grant db/a na
t secretctl inspect db/
t secretctl put --from-file ""
SH
PATH="$(dirname "$SECRETCTL"):$PATH" bash "$T/comp.bash" "$T/c.bash" >"$T/o"
[ "$(cat "$T/o")" = "$(printf 'rollback rotate\n--every\nrotate status\nname:\ndb/a db/b\nFILES')" ] ||
	fail "bash completion: $(cat "$T/o")"
if command -v fish >/dev/null 2>&1; then
	PATH="$(dirname "$SECRETCTL"):$PATH" fish -c "source $T/c.fish; complete -C 'secretctl ro'" >"$T/o"
	grep -q "^rotate" "$T/o" && grep -q "^rollback" "$T/o" || fail "fish completion: $(cat "$T/o")"
	PATH="$(dirname "$SECRETCTL"):$PATH" fish -c "source $T/c.fish; complete -C 'secretctl get db/'" >"$T/o"
	grep -qx "db/a" "$T/o" || fail "fish names: $(cat "$T/o")"
fi
ok "completion bash|zsh|fish: every command of the table, valid syntax, same as the installed files; bash and fish complete commands, flags, sub-words, selectors, names"
