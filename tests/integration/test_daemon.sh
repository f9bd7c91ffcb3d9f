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
# Under umask 000 too, nothing in a new state dir is readable by group or others, from creation:
# the database is created 0600 before SQLite opens it, its -wal/-shm take its mode.
(umask 000 && "$SECRETD" init --state-dir "$T/su" --key-file "$T/ku/master.key" >/dev/null) ||
	fail "init under umask 000"
(umask 000 && "$SECRETD" run --no-keeper --state-dir "$T/su" --runtime-dir "$T/ru" \
	--key-file "$T/ku/master.key" >"$T/su.log" 2>&1) &
SU_PID=$!
su_up() { [ -S "$T/ru/admin.sock" ]; }
poll_until 60 su_up || fail "daemon under umask 000 did not start: $(cat "$T/su.log")"
printf 'x' | SECRETD_SOCKET="$T/ru/admin.sock" ctl put umask/probe >/dev/null || fail "put under umask 000"
loose=$(find "$T/su" "$T/ku" -perm /077 ! -type d -printf '%m %p\n')
kill -TERM "$SU_PID"
wait "$SU_PID" || fail "daemon under umask 000: exit status $?"
[ -z "$loose" ] || fail "files readable by group or others under umask 000: $loose"
ok "under umask 000 the key, the database and its -wal/-shm are private from creation"

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
sd_kill9
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
chmod 0600 "$T/pass" # a passphrase file is refused when group or others may read it
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

# --- kill -9 in the middle of a key rotation: all still decrypts, it resumes by itself ---
n=0
while [ $n -lt 300 ]; do printf 'v%s' $n | ctl put "bulk/s$((n % 30))" >/dev/null; n=$((n + 1)); done
sd_run_pass() { # (re)starts the daemon on the passphrase store with extra options
	"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --passphrase-file "$T/pass" "$@" >>"$SD_LOG" 2>&1 &
	SD_PID=$!
	i=0
	until curl -sf --unix-socket "$T/run/admin.sock" http://x/healthz >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt 400 ] && fail "daemon did not start on the passphrase store"; sleep 0.05
	done
}
kill -TERM "$SD_PID"; wait "$SD_PID" 2>/dev/null || true
sd_run_pass --rotate-batch 1
admin -X POST http://x/v1/keys/rotate >"$T/rot.json"
grep -q '"rotating": *true' "$T/rot.json" || fail "key rotate did not answer with a running rotation: $(cat "$T/rot.json")"
TARGET=$(sed -n 's/.*"kek_id": *\([0-9]*\).*/\1/p' "$T/rot.json")
[ -n "$TARGET" ] || fail "no kek_id in $(cat "$T/rot.json")"
# Batches of one data key each, one transaction each: kill once some (not all) are done.
i=0
while :; do
	left=$(admin http://x/v1/keys | sed -n 's/.*"remaining": *\([0-9]*\).*/\1/p')
	[ -n "$left" ] && [ "$left" -lt 290 ] && break
	i=$((i + 1)); [ $i -gt 2000 ] && fail "the rotation made no progress"
done
sd_kill9
[ "$(sqlite3 "$T/state/secretd.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check after kill -9 in key rotate"
done_rows=$(sqlite3 "$T/state/secretd.db" "SELECT count(*) FROM versions WHERE kek_id = $TARGET")
old_rows=$(sqlite3 "$T/state/secretd.db" "SELECT count(*) FROM versions WHERE kek_id <> $TARGET")
[ "$done_rows" -gt 0 ] && [ "$old_rows" -gt 0 ] || fail "not killed mid-rotation (done $done_rows, left $old_rows)"
[ "$(sqlite3 "$T/state/secretd.db" 'SELECT count(*) FROM keks')" -ge 2 ] || fail "an old generation was dropped while rows used it"
sd_run_pass
[ "$(ctl get bulk/s7)" = "v277" ] || fail "a value is unreadable after kill -9 in key rotate"
grep -q "resuming the unfinished key rotation to generation $TARGET" "$SD_LOG" || fail "the restarted daemon did not resume the rotation"
i=0
until ctl key status | grep -q "^current generation $TARGET\$"; do
	i=$((i + 1)); [ $i -gt 400 ] && fail "the resumed rotation did not complete: $(ctl key status)"; sleep 0.05
done
[ "$(sqlite3 "$T/state/secretd.db" "SELECT count(*) FROM versions WHERE kek_id <> $TARGET")" = 0 ] || fail "rows left under an old generation"
[ "$(sqlite3 "$T/state/secretd.db" 'SELECT count(*) FROM keks')" = 1 ] || fail "the unused old generation was kept"
[ "$(ctl get bulk/s7 --version 10)" = "v277" ] || fail "value after the completed rotation"
[ "$(ctl get bulk/s0 --version 1)" = "v0" ] || fail "oldest value after the completed rotation"
ctl audit --json | grep -q '"key-rotate-done"' || fail "the completed rotation is not in the audit trail"
ctl audit verify >/dev/null || fail "audit verify after the resumed rotation"
ok "kill -9 during key rotate (batches of 1): everything decrypts after restart and the rotation completes by itself"

# --- while a rotation runs, the daemon answers; asking again starts no second generation ---
kill -TERM "$SD_PID"; wait "$SD_PID" 2>/dev/null || true
sd_run_pass --rotate-batch 1
admin -X POST http://x/v1/keys/rotate >"$T/rot.json"
T2=$(sed -n 's/.*"kek_id": *\([0-9]*\).*/\1/p' "$T/rot.json")
[ "$(ctl get bulk/s3)" = "v273" ] || fail "a read during a rotation"
ctl key rotate >"$T/rot2" || fail "key rotate while one runs: $(cat "$T/rot2")"
grep -q "completed the unfinished key generation $T2" "$T/rot2" || fail "second key rotate: $(cat "$T/rot2")"
[ "$(sqlite3 "$T/state/secretd.db" 'SELECT count(*) FROM keks')" = 1 ] || fail "generations after the rotation"
all=$(sqlite3 "$T/state/secretd.db" 'SELECT count(*) FROM versions')
ctl key status | grep -q "generation $T2 .* $all data keys" || fail "key status ($all versions): $(ctl key status)"
ok "requests are served during a rotation; a second request waits for the unfinished one"

# --- a tampered secret: a rotation does not start over it; one already running stops at it,
# changing nothing, says why, and every other value stays readable ---
kill -TERM "$SD_PID"; wait "$SD_PID" 2>/dev/null || true
cp "$T/state/secretd.db" "$T/before-tamper.db"
sqlite3 "$T/state/secretd.db" "UPDATE secrets SET keep = keep + 1 WHERE name = 'bulk/s29'"
sd_run_pass --rotate-batch 1
gens=$(sqlite3 "$T/state/secretd.db" 'SELECT count(*) FROM keks')
ctl key rotate >"$T/out" 2>&1 && fail "key rotate started over a tampered secret"
grep -q "integrity check failed" "$T/out" || fail "refused rotation: unclear message: $(cat "$T/out")"
[ "$(sqlite3 "$T/state/secretd.db" 'SELECT count(*) FROM keks')" = "$gens" ] || fail "a refused rotation added a generation"
# Now with the rotation already running when the row is altered (daemon killed mid-way).
kill -TERM "$SD_PID"; wait "$SD_PID" 2>/dev/null || true
cp "$T/before-tamper.db" "$T/state/secretd.db"
rm -f "$T/state/secretd.db-wal" "$T/state/secretd.db-shm"
sd_run_pass --rotate-batch 1
admin -X POST http://x/v1/keys/rotate >"$T/rot.json"
T3=$(sed -n 's/.*"kek_id": *\([0-9]*\).*/\1/p' "$T/rot.json")
sd_kill9
[ "$(sqlite3 "$T/state/secretd.db" "SELECT count(*) FROM versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = 'bulk/s29' AND v.kek_id <> $T3")" -gt 0 ] ||
	fail "bulk/s29 was already re-wrapped before the kill: the test needs it pending"
sqlite3 "$T/state/secretd.db" "UPDATE secrets SET keep = keep + 1 WHERE name = 'bulk/s29'"
sd_run_pass --rotate-batch 1
i=0
until ctl key status | grep -q "stopped: integrity check failed"; do
	i=$((i + 1)); [ $i -gt 200 ] && fail "a rotation over a tampered secret did not stop: $(ctl key status)"; sleep 0.05
done
ctl key rotate >"$T/out" 2>&1 && fail "key rotate reported success over a tampered secret"
grep -q "key rotation stopped: integrity check failed" "$T/out" || fail "stopped rotation: $(cat "$T/out")"
left=$(sqlite3 "$T/state/secretd.db" "SELECT count(*) FROM versions WHERE kek_id <> $T3")
sleep 0.3
[ "$(sqlite3 "$T/state/secretd.db" "SELECT count(*) FROM versions WHERE kek_id <> $T3")" = "$left" ] || fail "the stopped rotation went on changing rows"
[ "$(ctl get bulk/s3)" = "v273" ] || fail "a value is unreadable while the rotation is stopped"
[ "$(grep -c "key rotation to generation $T3 stopped" "$SD_LOG")" = 1 ] || fail "the stop is not logged exactly once"
ok "a tampered secret: a rotation does not start over it; a running one stops there, changes nothing, says why"
