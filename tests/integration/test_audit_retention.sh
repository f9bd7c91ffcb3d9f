#!/bin/sh
# Audit growth (issue #12 item 5): a container's open loop is coalesced (identical opens within a
# flush window become one record with a count), and --audit-keep prunes old records behind a
# signed checkpoint: the rest still verifies, verify says how many were pruned before which seq,
# the audit anchor keeps working, and a tampered or deleted checkpoint is found.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd nsenter
need_cmd python3
EXTRA_CLEANUP=cg_cleanup

ANCHOR="$T/audit.anchor"
sd_start --audit-anchor "$ANCHOR"
W="$SD_WORKLOAD"
one_mounted_container 'alpha\n'

# opens N: N opens of F by one process in A; prints how many read the value
opens() {
	nsenter -t "$PA" -m -- sh -c '
		echo $$ >"$0/cgroup.procs" || exit 99
		n=0 ok=0
		while [ $n -lt "$2" ]; do
			read v <"$1" && [ "$v" = alpha ] && ok=$((ok + 1))
			n=$((n + 1))
		done
		echo $ok' "$cgA" "$F" "$1"
}
# openrecs: "ROWS EVENTS" of the fuse-open records in the chain
openrecs() {
	ctl audit --json | python3 -c '
import json, sys
rs = [r for r in map(json.loads, sys.stdin) if r["action"] == "fuse-open" and r["result"] == "ok"]
print(len(rs), sum(r.get("count", 1) for r in rs))'
}
metric() { curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics | awk -v n="$1" '$1 == n {print $2}'; }

# --- coalescing: 10,000 identical opens
[ "$(opens 10000)" = 10000 ] || fail "10000 opens did not all read the value"
i=0
while set -- $(openrecs) && [ "$2" -lt 10000 ]; do
	i=$((i + 1))
	[ $i -gt 300 ] && fail "10000 opens not in the chain: $*"
	sleep 0.1
done
[ "$2" = 10000 ] || fail "the chain counts $2 opens, 10000 were made"
[ $(($1 * 10)) -le 10000 ] || fail "10000 identical opens took $1 records (want at most 1000)"
rows=$1
out=$(ctl audit verify) || fail "verify after coalescing: $out"
ok "10000 identical opens: $rows records, counts summing to 10000; $(echo "$out" | head -n 1)"
[ "$(metric secretd_audit_coalesced_total)" -ge $((10000 - rows)) ] || fail "coalesced metric: $(metric secretd_audit_coalesced_total)"

# --- retention: a restart with --audit-keep 2s prunes what is older, in batches, behind a
# checkpoint (the anchor from before is accepted)
sd_stop
sd_start --audit-anchor "$ANCHOR" --audit-keep 2s
i=0
while ! out=$(ctl audit verify) || ! echo "$out" | grep -q "pruned before seq"; do
	i=$((i + 1))
	[ $i -gt 300 ] && fail "nothing pruned with --audit-keep 2s: $out"
	sleep 0.1
done
ok "pruned: $(echo "$out" | tr '\n' ' ')"
[ "$(metric secretd_audit_pruned_total)" -gt 0 ] || fail "pruned metric: $(metric secretd_audit_pruned_total)"
grep -q "audit retention: pruned" "$SD_LOG" || fail "no log line for pruning"
first=$(ctl audit --json | head -n 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["seq"])')
cps=$(echo "$out" | sed -n 's/.*pruned before seq \([0-9]*\).*/\1/p')
[ "$first" = "$cps" ] || fail "the first record left is $first, verify says pruned before $cps"
# the restarted daemon restored A's mount (issue #14): the same file reads again
reads_once() { [ "$(opens 1)" = 1 ]; }
poll_until 30 reads_once || fail "A's mount was not restored after the restart"
[ "$(opens 10)" = 10 ] || fail "opens after pruning"
out=$(ctl audit verify) || fail "verify after more opens: $out"

# the anchor still checks after pruning: a restart is accepted
sd_stop
sd_start --audit-anchor "$ANCHOR"
out=$(ctl audit verify) || fail "verify after a restart with the anchor: $out"
ok "after pruning: opens recorded, restart with the anchor accepted, verify ok"

# --- tampering with the checkpoint is found
sd_stop
DB="$T/state/secretd.db"
python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
v = bytearray(db.execute("SELECT value FROM meta WHERE key = 'audit.checkpoint'").fetchone()[0])
v[47] ^= 0x01  # the pruned count
db.execute("UPDATE meta SET value = ? WHERE key = 'audit.checkpoint'", (bytes(v),))
db.commit()
PY
sd_start
if out=$(ctl audit verify); then fail "verify ok with an edited checkpoint: $out"; fi
echo "$out" | grep -q "checkpoint" || fail "verify does not name the checkpoint: $out"
ok "edited checkpoint: $(echo "$out" | head -n 1)"
sd_stop
python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("DELETE FROM meta WHERE key = 'audit.checkpoint'")
db.commit()
PY
sd_start
if out=$(ctl audit verify); then fail "verify ok without the checkpoint: $out"; fi
echo "$out" | grep -q "BROKEN at record 1:" || fail "deleted checkpoint: $out"
ok "deleted checkpoint: $(echo "$out" | head -n 1)"
