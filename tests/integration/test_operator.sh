#!/bin/sh
# Operator mistakes the daemon and secretctl must refuse or make visible: a loose or foreign
# passphrase file, an empty value stored by accident, an old expiry deleting a secret put again
# later, and uid: grants reaching into containers.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_cgroup2
need_cmd unshare
EXTRA_CLEANUP=cg_cleanup

# --- passphrase files get the key file's checks (regular, ours, no group/other bits) ---
# (run under timeout: a daemon that wrongly accepts the file would serve until killed)
export SECRETD_KDF_TEST=1
P="$T/pstate"
printf 'a long passphrase for tests\n' >"$T/pass"
chmod 0644 "$T/pass"
"$SECRETD" init --state-dir "$P" --passphrase-file "$T/pass" >/dev/null 2>"$T/err" &&
	fail "init accepted a 0644 passphrase file"
grep -q "passphrase file must be owned by the daemon's user and have no group or other" "$T/err" ||
	fail "init with a 0644 passphrase file: unclear message: $(cat "$T/err")"
[ -e "$P/secretd.db" ] && fail "init with a refused passphrase file created a store"
chmod 0600 "$T/pass"
"$SECRETD" init --state-dir "$P" --passphrase-file "$T/pass" >/dev/null || fail "init with a 0600 passphrase file"
for mode in 0644 0640 0604 0620; do
	chmod "$mode" "$T/pass"
	timeout 60 "$SECRETD" run --state-dir "$P" --runtime-dir "$T/prun" --passphrase-file "$T/pass" 2>"$T/err" &&
		fail "run accepted a $mode passphrase file"
	grep -q "passphrase file must be owned" "$T/err" || fail "run with a $mode passphrase file: $(cat "$T/err")"
done
chmod 0600 "$T/pass"
chown 65534 "$T/pass"
timeout 60 "$SECRETD" run --state-dir "$P" --runtime-dir "$T/prun" --passphrase-file "$T/pass" 2>"$T/err" &&
	fail "run accepted a passphrase file owned by another user"
grep -q "passphrase file must be owned" "$T/err" || fail "foreign passphrase file: $(cat "$T/err")"
chown 0 "$T/pass"
# rekey to a loose new passphrase file is refused too, and the old key still opens the store
sd_init
printf 'another passphrase\n' >"$T/pass2"
chmod 0640 "$T/pass2"
"$SECRETD" rekey --state-dir "$T/state" --key-file "$T/keys/master.key" --new-passphrase-file "$T/pass2" \
	>/dev/null 2>"$T/err" && fail "rekey accepted a 0640 new passphrase file"
grep -q "passphrase file must be owned" "$T/err" || fail "rekey to a loose passphrase: $(cat "$T/err")"
unset SECRETD_KDF_TEST
ok "passphrase files that are group/other accessible or not ours are refused by init, run and rekey"

sd_start

# admin_put PATH [curl args]: a raw PUT on the admin socket; prints the HTTP status, body in $T/body
admin_put() {
	p=$1
	shift
	curl -s -o "$T/body" -w '%{http_code}' --unix-socket "$SECRETD_SOCKET" -X PUT \
		-H 'Content-Type: application/octet-stream' "$@" "http://x$p"
}
nversions() { ctl versions "$1" --json | grep -c '"version":'; }

# --- an empty value is refused unless asked for (client and server) ---
printf 'live-value' | ctl put app/empty >/dev/null || fail "put"
ctl put app/empty </dev/null >/dev/null 2>"$T/err" && fail "put with an empty stdin succeeded"
grep -q "refusing to store an empty value (use --allow-empty)" "$T/err" || fail "put empty: $(cat "$T/err")"
ctl rotate app/empty </dev/null >/dev/null 2>"$T/err" && fail "bare rotate with an empty stdin succeeded"
grep -q "refusing to store an empty value (use --allow-empty)" "$T/err" || fail "rotate empty: $(cat "$T/err")"
: >"$T/emptyfile"
ctl put app/empty --from-file "$T/emptyfile" >/dev/null 2>"$T/err" && fail "put of an empty file succeeded"
ctl put app/new </dev/null >/dev/null 2>&1 && fail "a new secret was created empty"
ctl ls | grep -q app/new && fail "a refused empty put created the secret"
code=$(admin_put /v1/secrets/app/empty --data-binary '')
[ "$code" = 400 ] || fail "the API stored an empty body: HTTP $code $(cat "$T/body")"
grep -q '"error": *"refusing to store an empty value' "$T/body" || fail "API error: $(cat "$T/body")"
[ "$(ctl get app/empty)" = live-value ] || fail "a refused empty put changed the value"
[ "$(nversions app/empty)" = 1 ] || fail "a refused empty put made a version"
ok "empty stdin, empty file and an empty API body are refused (400); value and versions unchanged"

ctl put app/empty --allow-empty </dev/null | grep -q "version 2" || fail "put --allow-empty"
[ "$(ctl get app/empty | wc -c)" = 0 ] || fail "put --allow-empty did not store an empty value"
ctl rotate app/empty --allow-empty </dev/null | grep -q "version 3" || fail "rotate --allow-empty"
code=$(admin_put '/v1/secrets/app/empty?allow_empty=1' --data-binary '')
[ "$code" = 201 ] || fail "allow_empty=1 refused: HTTP $code $(cat "$T/body")"
[ "$(nversions app/empty)" = 4 ] || fail "allowed empty puts: $(nversions app/empty) versions"
ok "--allow-empty (and ?allow_empty=1) store an empty value on purpose"

# --- uid:N is for host processes: a container running as that uid is not one ---
W="$SD_WORKLOAD"
printf 'host-only' | ctl put hostonly/key >/dev/null
ctl grant 'hostonly/*' uid:0 >/dev/null || fail "grant uid:0"
D=$(hex64)
mk_cgroup "$CG2" "/docker/$D"
cg_d=$CG
in_container "$cg_d" "$SECRETCTL" --socket "$W" --json whoami >"$T/who" || fail "whoami in the container"
grep -q '"container": true' "$T/who" && grep -q '"uid": 0' "$T/who" ||
	fail "the test container is not a root container: $(cat "$T/who")"
in_container "$cg_d" "$SECRETCTL" --socket "$W" read hostonly/key >"$T/out" 2>"$T/err" &&
	fail "uid:0 reached a root container: $(cat "$T/out")"
grep -q "no such secret" "$T/err" || fail "root container read: unexpected error: $(cat "$T/err")"
in_container "$cg_d" "$SECRETCTL" --socket "$W" ls --self >"$T/out" || fail "ls --self in the container"
grep -q hostonly "$T/out" && fail "uid:0 grant listed in a root container"
[ "$("$SECRETCTL" --socket "$W" read hostonly/key)" = host-only ] || fail "a host process of uid 0 cannot read its uid:0 grant"
ok "uid:0 matches a host process of uid 0, not a container running as root"

# --- a plain put clears an old expiry (it used to delete the secret put again later) ---
expires_of() { # the expiry (unix seconds) the daemon holds for $1, empty when none
	ctl schedules --json | python3 -c 'import json,sys
for s in json.load(sys.stdin)["schedules"]:
    if s["name"] == sys.argv[1] and s["expires"]: print(s["expires"])' "$1"
}
printf 'temporary' | ctl put app/exp --expires 2s >/dev/null || fail "put --expires"
ctl grant app/exp name:web >/dev/null || fail "grant"
old=$(expires_of app/exp)
[ -n "$old" ] || fail "put --expires 2s set no expiry"
ctl ls | grep "^app/exp " | grep -q "$(date -u -d "@$old" +%Y-%m-%dT%H:%M:%SZ)" || fail "ls does not show the expiry: $(ctl ls)"
ctl versions app/exp | grep -q "expires at $(date -u -d "@$old" +%Y-%m-%dT%H:%M:%SZ)" || fail "versions does not show the expiry"
ctl versions app/exp --json | grep -q "\"expires\": $old" || fail "versions --json does not show the expiry"
ctl ls --json | grep -q "\"expires\": $old" || fail "ls --json does not show the expiry"
printf 'for good' | ctl put app/exp >"$T/out" || fail "plain put"
grep -q "app/exp: version 2 (expiry cleared)" "$T/out" || fail "a plain put did not say it cleared the expiry: $(cat "$T/out")"
[ -z "$(expires_of app/exp)" ] || fail "a plain put kept the old expiry"
ctl ls | grep "^app/exp " | grep -q "Z.*Z" && fail "ls shows an expiry after it was cleared: $(ctl ls)"
ctl versions app/exp | grep -q "expires at" && fail "versions shows an expiry after it was cleared"
# A canary that expires strictly after the old expiry: once the scheduler has deleted it, it has
# also passed the old expiry of app/exp (one thread, deletions in time order). Poll, no sleep-and-hope.
printf 'canary' | ctl put zz/canary --expires 3s >/dev/null
[ "$(expires_of zz/canary)" -gt "$old" ] || fail "the canary does not expire after the old expiry"
i=0
while ctl ls | grep -q '^zz/canary '; do
	i=$((i + 1))
	[ $i -gt 600 ] && fail "the canary did not expire within 120 s"
	sleep 0.2
done
[ "$(ctl get app/exp 2>/dev/null)" = "for good" ] || fail "the secret put again was deleted at its old expiry"
[ "$(nversions app/exp)" = 2 ] || fail "versions lost: $(nversions app/exp)"
ctl grants | grep -q "app/exp.*name:web" || fail "the grant was deleted at the old expiry"
ok "put --expires then a plain put: expiry cleared (said so); after the old expiry the secret, its versions and grant remain"

# --keep-expiry keeps it and says so; rotate --generate clears it like a put
printf 'a' | ctl put app/keep --expires 1h >/dev/null
old=$(expires_of app/keep)
printf 'b' | ctl put app/keep --keep-expiry >"$T/out" || fail "put --keep-expiry"
grep -q "app/keep: version 2 (expires at $(date -u -d "@$old" +%Y-%m-%dT%H:%M:%SZ))" "$T/out" || fail "--keep-expiry output: $(cat "$T/out")"
[ "$(expires_of app/keep)" = "$old" ] || fail "--keep-expiry changed the expiry"
printf 'c' | ctl put app/keep --keep-expiry --expires 2h >/dev/null 2>&1 && fail "--keep-expiry with --expires accepted"
code=$(admin_put '/v1/secrets/app/keep?keep_expiry=1&ttl=60' --data-binary 'x')
[ "$code" = 400 ] || fail "keep_expiry with ttl: HTTP $code"
ctl rotate app/keep --generate >"$T/out" || fail "rotate --generate"
grep -q "expiry cleared" "$T/out" || fail "rotate --generate did not clear the expiry: $(cat "$T/out")"
[ -z "$(expires_of app/keep)" ] || fail "rotate --generate kept the expiry"
printf 'd' | ctl put app/keep >"$T/out"
grep -q "expir" "$T/out" && fail "a put with no expiry before or after mentions one: $(cat "$T/out")"
ok "--keep-expiry keeps the expiry and says so; rotate --generate clears it; ls/versions show it"
