#!/bin/sh
# The daemon end to end: store, admin API, CLI, durability, refusal of bad input.
. "$(dirname "$0")/lib.sh"
need_root
need_cmd sqlite3
need_cmd curl

admin() { curl -s --unix-socket "$SECRETD_SOCKET" "$@"; }

# --- init ---
sd_init
[ "$(stat -c %a "$T/keys/master.key")" = 400 ] || fail "key file mode is not 0400"
[ "$(stat -c %s "$T/keys/master.key")" = 32 ] || fail "key file is not 32 bytes"
"$SECRETD" init --state-dir "$T/state" --key-file "$T/keys/master.key" 2>"$T/err" && fail "init overwrote a store"
grep -q "refusing to overwrite" "$T/err" || fail "init overwrite: unclear message: $(cat "$T/err")"
"$SECRETD" init --state-dir "$T/s2" --key-file "$T/s2/inside.key" 2>"$T/err" && fail "key file inside the state dir accepted"
ok "init creates a 0400 key, refuses overwrite and a key inside the state dir"

sd_start
CANARY="canary-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"

# --- put / get / ls / versions ---
printf '%s' "$CANARY" | ctl put db/password >/dev/null || fail "put"
[ "$(ctl get db/password)" = "$CANARY" ] || fail "get did not return the value"
printf 'v2-%s' "$CANARY" | ctl put db/password | grep -q "version 2" || fail "second put is not version 2"
[ "$(ctl get db/password)" = "v2-$CANARY" ] || fail "get after update"
[ "$(ctl get db/password --version 1)" = "$CANARY" ] || fail "get --version 1"
ctl ls | grep -q "db/password" || fail "ls"
ctl ls --json | grep -q '"current": 2' || fail "ls --json"
ctl versions db/password | grep -q current || fail "versions"
ok "put, get, get --version, ls, versions"

# binary-safe values, from a file
head -c 4096 /dev/urandom >"$T/bin"
printf '\000\001\000' >>"$T/bin"
ctl put tls/key --from-file "$T/bin" >/dev/null || fail "put --from-file"
ctl get tls/key >"$T/bin.out"
cmp -s "$T/bin" "$T/bin.out" || fail "binary value changed in a round trip"
ok "binary values round-trip byte for byte"

# --- bad input is refused and changes nothing ---
for bad in "/abs" "a//b" "a/../b" "." "a b" "trailing/"; do
	printf x | ctl put "$bad" 2>"$T/err" && fail "bad name '$bad' accepted"
	grep -q "invalid secret name" "$T/err" || fail "bad name '$bad': unclear message"
done
code=$(admin -o "$T/out" -w '%{http_code}' -X PUT --data-binary x "http://x/v1/secrets/a%2F..%2Fb")
[ "$code" = 400 ] || fail "encoded bad name over HTTP gave $code"
head -c $((1024 * 1024 + 1)) /dev/zero >"$T/big"
ctl put big --from-file "$T/big" 2>"$T/err" && fail "oversize value accepted"
grep -q "larger than the limit" "$T/err" || fail "oversize: unclear message: $(cat "$T/err")"
head -c $((1024 * 1024)) /dev/zero >"$T/max"
ctl put max --from-file "$T/max" >/dev/null || fail "a value of exactly 1 MiB was refused"
code=$(admin -o "$T/out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"secret": ' http://x/v1/grants)
[ "$code" = 400 ] && grep -q '"error"' "$T/out" || fail "malformed JSON gave $code $(cat "$T/out")"
code=$(admin -o "$T/out" -w '%{http_code}' http://x/v1/nope)
[ "$code" = 404 ] || fail "unknown route gave $code"
ctl ls --json | grep -q '"big"' && fail "oversize value was stored"
[ "$(ctl get db/password)" = "v2-$CANARY" ] || fail "bad input changed a stored value"
ok "bad names, oversize values and malformed JSON refused with clear errors; nothing changed"

# --- metrics, healthz ---
admin http://x/healthz | grep -q '"ok"' || fail "healthz"
admin http://x/metrics >"$T/metrics"
grep -q '^secretd_secrets 3' "$T/metrics" || fail "metrics secrets gauge: $(grep secrets "$T/metrics")"
grep -q '^secretd_requests_total{api="admin"}' "$T/metrics" || fail "metrics requests"
ok "healthz and Prometheus metrics"

# --- key rotation keeps everything readable ---
ctl key rotate | grep -q "re-wrapped" || fail "key rotate"
[ "$(ctl get db/password)" = "v2-$CANARY" ] || fail "value after key rotation"
[ "$(ctl get db/password --version 1)" = "$CANARY" ] || fail "old version after key rotation"
ok "master key rotation keeps every version readable"

# --- a second daemon on the same state dir is refused ---
mkdir -p "$T/run2"
if "$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run2" --key-file "$T/keys/master.key" 2>"$T/err2"; then
	fail "second daemon started"
fi
grep -q "another secretd" "$T/err2" || fail "second daemon: unclear message: $(cat "$T/err2")"
ok "a second daemon on the same state dir is refused"

# --- delete, then no plaintext anywhere on disk ---
ctl rm tls/key >/dev/null || fail "rm"
ctl get tls/key 2>/dev/null && fail "deleted secret still readable"
sync
for f in "$T/state"/secretd.db*; do
	if grep -a -q "$CANARY" "$f"; then fail "plaintext canary found in $f"; fi
done
ok "the plaintext canary is in none of secretd.db, -wal, -shm"

# --- kill -9 right after a put returned: the value survives ---
printf 'durable-%s' "$CANARY" | ctl put durable >/dev/null || fail "put durable"
kill -9 "$SD_PID"
wait "$SD_PID" 2>/dev/null || true
SD_PID=
[ "$(sqlite3 "$T/state/secretd.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check after kill -9"
sd_start
[ "$(ctl get durable)" = "durable-$CANARY" ] || fail "value lost after kill -9"
ok "kill -9 after a put: value there after restart, integrity_check ok"

# --- wrong master key: refuses to start, store unchanged ---
sd_stop
sum_before=$(cat "$T/state/secretd.db" | sha256sum)
head -c 32 /dev/urandom >"$T/wrong.key"
chmod 0400 "$T/wrong.key"
mkdir -p "$T/run3"
if "$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run3" --key-file "$T/wrong.key" 2>"$T/err3"; then
	fail "daemon started with a wrong key"
fi
grep -q "wrong master key" "$T/err3" || fail "wrong key: unclear message: $(cat "$T/err3")"
[ "$(cat "$T/state/secretd.db" | sha256sum)" = "$sum_before" ] || fail "wrong key changed the database"
ok "a wrong master key: exit non-zero, clear message, database unchanged"

# --- the daemon exits cleanly on SIGTERM ---
sd_start
kill -TERM "$SD_PID"
rc=0
wait "$SD_PID" || rc=$?
SD_PID=
[ "$rc" = 0 ] || fail "SIGTERM exit code $rc"
[ ! -e "$T/run/admin.sock" ] || fail "admin socket left behind"
ok "clean exit on SIGTERM"

# --- rekey: a new key file, then a passphrase; the old key stops working, values stay ---
sd_stop
"$SECRETD" rekey --state-dir "$T/state" --key-file "$T/keys/master.key" --new-key-file "$T/keys/new.key" >/dev/null ||
	fail "rekey to a new key file"
[ "$(stat -c %a "$T/keys/new.key")" = 400 ] || fail "new key file mode"
mkdir -p "$T/run4"
"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run4" --key-file "$T/keys/master.key" 2>"$T/err4" &&
	fail "the old key still opens the store after rekey"
grep -q "wrong master key" "$T/err4" || fail "old key after rekey: unclear message"
printf 'a long passphrase for tests\n' >"$T/pass"
SECRETD_KDF_TEST=1 "$SECRETD" rekey --state-dir "$T/state" --key-file "$T/keys/new.key" --new-passphrase-file "$T/pass" >/dev/null ||
	fail "rekey to a passphrase"
SD_LOG="$T/secretd.log"
"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --passphrase-file "$T/pass" >>"$SD_LOG" 2>&1 &
SD_PID=$!
i=0
until curl -sf --unix-socket "$T/run/admin.sock" http://x/healthz >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "daemon did not start with the passphrase"; sleep 0.05
done
[ "$(ctl get durable)" = "durable-$CANARY" ] || fail "value lost across rekey"
[ "$(ctl get db/password --version 1)" = "$CANARY" ] || fail "old version lost across rekey"
ok "rekey to a new key file and to a passphrase: old key refused, every version readable"

# --- kill -9 during a key rotation over many versions: all still decrypts, rotation re-runs ---
n=0
while [ $n -lt 300 ]; do printf 'v%s' $n | ctl put "bulk/s$((n % 30))" >/dev/null; n=$((n + 1)); done
ctl key rotate >/dev/null &
ROT=$!
sleep 0.01
kill -9 "$SD_PID"
wait "$ROT" 2>/dev/null || true
wait "$SD_PID" 2>/dev/null || true
SD_PID=
[ "$(sqlite3 "$T/state/secretd.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check after kill -9 in key rotate"
"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --passphrase-file "$T/pass" >>"$SD_LOG" 2>&1 &
SD_PID=$!
i=0
until curl -sf --unix-socket "$T/run/admin.sock" http://x/healthz >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "daemon did not restart after kill -9 in key rotate"; sleep 0.05
done
[ "$(ctl get bulk/s7)" = "v277" ] || fail "a value is unreadable after kill -9 in key rotate"
ctl key rotate | grep -q "re-wrapped" || fail "key rotate after the crash"
[ "$(ctl get bulk/s7 --version 10)" = "v277" ] || fail "value after the completed rotation"
ok "kill -9 during key rotate: everything decrypts after restart and the rotation completes"
