#!/bin/sh
# Versions, rollback, generated rotation, expiry, schedules (with --exec) and the audit trail:
# each action recorded once, FUSE opens recorded, the chain verifies, and tampering is caught.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd sqlite3
need_cmd unshare
need_cmd nsenter
EXTRA_CLEANUP=cg_cleanup

# audit_count ACTION SECRET: successful records with that action and secret
audit_count() { ctl audit --json | grep -c "\"action\":\"$1\".*\"result\":\"ok\",\"secret\":\"$2\"" || true; }

sd_start

# --- versions: keep N, pruning, rollback ---
for i in 1 2 3 4 5; do printf 'v%s' "$i" | ctl put app/db --keep 3 >/dev/null || fail "put $i"; done
n=$(ctl versions app/db --json | grep -c '"version":')
[ "$n" = 3 ] || fail "--keep 3 then 5 puts kept $n versions"
ctl get app/db --version 2 2>/dev/null && fail "a pruned version is still readable"
ctl rollback app/db 4 | grep -q "version 6" || fail "rollback did not make version 6"
[ "$(ctl get app/db)" = v4 ] || fail "rollback: current is not version 4's value"
ctl rollback app/db 1 2>"$T/err" && fail "rollback to a pruned version succeeded"
grep -qx "secretctl: app/db: no such version 1" "$T/err" || fail "rollback to a pruned version: unclear message"
ok "--keep 3 prunes to 3 versions; rollback makes an old value current as a new version"

# --- generated values ---
out=$(ctl rotate app/tok --generate --length 40 --charset hex)
echo "$out" | grep -q "version 1" || fail "rotate --generate: $out"
echo "$out" | grep -Eq '[0-9a-f]{40}' && fail "rotate printed the value without --print"
ctl get app/tok | grep -Eqx '[0-9a-f]{40}' || fail "hex value: $(ctl get app/tok | wc -c) bytes"
ctl rotate app/tok --generate --length 64 --charset alnum >/dev/null
ctl get app/tok | grep -Eqx '[A-Za-z0-9]{64}' || fail "alnum value"
ctl rotate app/tok --generate --charset base64 >/dev/null
ctl get app/tok | grep -Eqx '[A-Za-z0-9+/]{32}' || fail "base64 value (default length 32)"
p=$(ctl rotate app/tok --generate --length 50 --charset ascii --print)
[ "$(ctl get app/tok)" = "$p" ] || fail "--print did not print the stored value"
ctl get app/tok | LC_ALL=C grep -Eqx '[!-~]{50}' || fail "ascii value"
printf 'from-stdin' | ctl rotate app/tok >/dev/null || fail "rotate from stdin"
[ "$(ctl get app/tok)" = from-stdin ] || fail "rotate from stdin did not store the value"
ctl rotate app/tok --generate --charset emoji 2>/dev/null && fail "bad charset accepted"
ok "rotate --generate: asked length and charset, not printed unless --print; stdin = a put"

# --- the audit trail: each action once, never a value ---
[ "$(audit_count rollback app/db)" = 1 ] || fail "rollback not audited exactly once"
[ "$(audit_count put app/db)" = 5 ] || fail "puts not audited exactly once each"
[ "$(audit_count rotate app/tok)" = 3 ] || fail "rotations: $(audit_count rotate app/tok)"
[ "$(audit_count rotate+print app/tok)" = 1 ] || fail "rotate --print not audited"
ctl get app/db >/dev/null
[ "$(audit_count get app/db)" = 2 ] || fail "admin reads not audited: $(audit_count get app/db)"
ctl audit --json | grep -q '"actor":"uid:0".*"exe":"[^"]*secretctl"' || fail "actor/exe missing"
ctl audit --json | grep -q "$p" && fail "a value reached the audit trail"
ctl audit --since 3 --json | head -n 1 | grep -q '"seq":3' || fail "--since SEQ"
ctl audit verify | grep -q "audit chain ok" || fail "audit verify on an untouched chain"
ok "every action audited once (actor, pid, exe), no values; audit verify passes"

# --- a FUSE open and a workload read are audited ---
A=$(hex64)
mk_cgroup "$CG2" "/docker/$A"; cgA=$CG
ctl grant app/db "id:$A" >/dev/null
start_container "$cgA" || fail "container did not start"
PA=$CPID
cexec "$PA" "$cgA" "$SECRETCTL" --socket "$SD_WORKLOAD" mount /run/secrets >/dev/null || fail "mount"
[ "$(cexec "$PA" "$cgA" cat /run/secrets/app/db)" = v4 ] || fail "container cannot read"
cexec "$PA" "$cgA" "$SECRETCTL" --socket "$SD_WORKLOAD" read app/db >/dev/null || fail "workload read"
audit_settled
ctl audit --json | grep "\"action\":\"fuse-open\"" | grep "\"actor\":\"$A\"" |
	grep '"secret":"app/db"' | grep -q '"exe":"[^"]*cat"' || fail "FUSE open not audited: $(ctl audit | tail -n 5)"
ctl audit --json | grep '"action":"read"' | grep -q "\"actor\":\"$A\"" || fail "workload read not audited"
ctl audit --json | grep '"action":"grant"' | grep '"secret":"app/db"' |
	grep -q "\"detail\":\"selector=id:$A path=app/db mode=0400 uid=-1 gid=-1\"" ||
	fail "grant not audited with its selector: $(ctl audit --json | grep '"grant"')"
ctl grant app/db "uid:4242" >/dev/null
ctl revoke app/db "uid:4242" >/dev/null
ctl audit --json | grep '"action":"revoke"' | grep -q '"detail":"selector=uid:4242"' ||
	fail "revoke not audited with its selector"
ctl audit | grep -q "revoke .*selector=uid:4242" || fail "secretctl audit does not show the selector"
ok "FUSE opens and workload reads are audited with the container, pid and exe; grants and revokes with their selector"

# --- rotation reaches a running container's mount ---
ctl rotate app/db --generate --length 12 >/dev/null
cexec "$PA" "$cgA" cat /run/secrets/app/db | grep -Eqx '[A-Za-z0-9]{12}' || fail "mount did not see the rotation"
ok "a running container sees the rotated value at once"

# --- expiry ---
printf 'short-lived' | ctl put app/tmp --expires 2s >/dev/null
ctl grant app/tmp "id:$A" >/dev/null
[ "$(cexec "$PA" "$cgA" cat /run/secrets/app/tmp)" = short-lived ] || fail "expiring secret not mounted"
expired() { ! ctl get app/tmp; }
poll_until 60 expired || fail "expired secret still readable over the API after 60 s"
ctl ls | grep -q app/tmp && fail "expired secret still listed"
cexec "$PA" "$cgA" cat /run/secrets/app/tmp 2>/dev/null && fail "expired secret still in the mount"
[ "$(audit_count expire app/tmp)" = 1 ] || fail "expiry not audited"
ok "--expires 2s: gone from the API, the listing and the mount; audited"

# --- schedules: fire, survive a restart; --exec gets the value; a failing --exec keeps the old ---
printf 'start' | ctl put app/sched >/dev/null
ctl rotate app/sched --every 2s --generate --length 20 --charset hex \
	--exec "cat >$T/exec.out" >/dev/null || fail "schedule"
ctl schedules | grep -q app/sched || fail "schedule not listed"
rotated() { ctl get app/sched | grep -Eqx '[0-9a-f]{20}'; }
poll_until 60 rotated || fail "scheduled rotation did not fire within 60 s: $(ctl get app/sched)"
v1=$(ctl get app/sched)
echo "$v1" | grep -Eqx '[0-9a-f]{20}' || fail "scheduled rotation did not fire: $v1"
[ "$(cat "$T/exec.out")" = "$(ctl get app/sched)" ] || [ "$(ctl versions app/sched --json | grep -c '"version":')" -gt 2 ] ||
	fail "--exec did not get the new value on stdin"
sd_stop
sd_start
cur=$(ctl versions app/sched --json | grep '"current":' | tr -dc 0-9)
moved_on() { [ "$(ctl versions app/sched --json | grep '"current":' | tr -dc 0-9)" -gt "$cur" ]; }
poll_until 60 moved_on || true
now=$(ctl versions app/sched --json | grep '"current":' | tr -dc 0-9)
[ "$now" -gt "$cur" ] || fail "the schedule did not survive a restart ($cur -> $now)"
ok "--every 2s rotates, hands the value to --exec, and survives a daemon restart"

printf 'keep-me' | ctl put app/fail >/dev/null
ctl rotate app/fail --every 1s --generate --exec 'cat >/dev/null; exit 3' >/dev/null
exec_failed() { audit_settled; ctl audit --json | grep '"action":"rotate"' | grep '"secret":"app/fail"' | grep -q '"result":"exec failed"'; }
poll_until 60 exec_failed || fail "a failing --exec was not audited within 60 s"
[ "$(ctl get app/fail)" = keep-me ] || fail "a failing --exec replaced the value"
ctl audit --json | grep '"action":"rotate"' | grep '"secret":"app/fail"' | grep -q '"result":"exec failed"' ||
	fail "failing --exec not audited"
grep -q "app/fail: scheduled change failed.*status 3" "$SD_LOG" || fail "failing --exec not logged"
ctl rotate app/fail --every 0 >/dev/null
ctl rotate app/sched --every 0 >/dev/null
ok "a failing --exec keeps the old value, and is audited and logged"

ctl audit verify >/dev/null || fail "chain broken before tampering"

# --- tampering with the database is found, naming the record ---
sd_stop
cp "$T/state/secretd.db" "$T/pristine.db"
seq=$(sqlite3 "$T/state/secretd.db" "SELECT seq FROM audit WHERE action = 'rollback' AND result = 'ok'")
sqlite3 "$T/state/secretd.db" "UPDATE audit SET actor = 'nobody' WHERE seq = $seq"
sd_start
ctl audit verify >"$T/verify" && fail "verify passed on an edited record"
grep -q "BROKEN at record $seq" "$T/verify" || fail "edit: wrong record: $(cat "$T/verify")"
grep -q "rollback" "$T/verify" || fail "verify did not print the record"
sd_stop
cp "$T/pristine.db" "$T/state/secretd.db"
rm -f "$T/state/secretd.db-wal" "$T/state/secretd.db-shm"
sqlite3 "$T/state/secretd.db" "DELETE FROM audit WHERE seq = 5"
sd_start
ctl audit verify >"$T/verify" && fail "verify passed with a record deleted"
grep -q "BROKEN at record 5" "$T/verify" || fail "delete: $(cat "$T/verify")"
ok "audit verify exits 1 naming the edited or deleted record"

# --- the audit anchor: a database put back to an older copy is refused and fails verify ---
sd_stop
cp "$T/pristine.db" "$T/state/secretd.db"
rm -f "$T/state/secretd.db-wal" "$T/state/secretd.db-shm"
mkdir -p "$T/anchor"
AN="$T/anchor/audit.anchor"
sd_start --audit-anchor "$AN"
[ -s "$AN" ] || fail "no anchor written at start"
grep -q '^secretd-audit-anchor 1 [0-9]* [0-9a-f]\{64\} [0-9a-f]\{64\}$' "$AN" || fail "anchor format: $(cat "$AN")"
sd_stop
cp "$T/state/secretd.db" "$T/older.db"
sd_start --audit-anchor "$AN"
printf 'newer' | ctl put app/newer >/dev/null
ctl audit verify | grep -q "audit chain ok" || fail "verify with a current anchor"
head_seq=$(sqlite3 "$T/state/secretd.db" "SELECT max(seq) FROM audit")
i=0
until [ "$(cut -d' ' -f3 "$AN")" = "$head_seq" ]; do
	i=$((i + 1)); [ $i -gt 100 ] && fail "anchor not moved to $head_seq: $(cat "$AN")"; sleep 0.02
done
sd_stop
cp "$T/state/secretd.db" "$T/newer.db"
cp "$T/older.db" "$T/state/secretd.db" # put the older copy back
"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --key-file "$T/keys/master.key" \
	--audit-anchor "$AN" 2>"$T/err" && fail "started on a database older than its anchor"
grep -q "older than its audit anchor" "$T/err" || fail "rollback refused without a clear message: $(cat "$T/err")"
# Without the anchor it starts; records written then fork the history: still found.
sd_start
for n in 1 2 3 4 5; do ctl ls >/dev/null; done
ctl audit verify | grep -q "audit chain ok" || fail "the older copy's own chain is whole"
sd_stop
"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --key-file "$T/keys/master.key" \
	--audit-anchor "$AN" 2>"$T/err" && fail "started on an older copy that went on"
grep -q "older than its audit anchor" "$T/err" || fail "forked history: $(cat "$T/err")"
# An anchor edited without the key is refused too.
cp "$T/newer.db" "$T/state/secretd.db"
cp "$AN" "$T/anchor.good"
sed -i 's/^\(secretd-audit-anchor 1 \)[0-9]*/\11/' "$AN"
"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --key-file "$T/keys/master.key" \
	--audit-anchor "$AN" 2>"$T/err" && fail "started with an edited anchor"
grep -q "not written with this store's key" "$T/err" || fail "edited anchor: $(cat "$T/err")"
cp "$T/anchor.good" "$AN"
sd_start --audit-anchor "$AN"
ctl audit verify | grep -q "audit chain ok" || fail "verify on the right database"
# A running daemon's verify compares too (the anchor file edited while it runs).
printf 'secretd-audit-anchor 1 999999 %064d %064d\n' 0 0 >"$AN.x"
cp "$AN" "$T/anchor.good"
mv "$AN.x" "$AN"
ctl audit verify >"$T/verify" && fail "verify passed with a foreign anchor"
grep -q "not written with this store's key" "$T/verify" || fail "verify: $(cat "$T/verify")"
cp "$T/anchor.good" "$AN"
ok "the audit anchor: an older copy of the database (as is, or gone on) is refused at start; an edited anchor too"
