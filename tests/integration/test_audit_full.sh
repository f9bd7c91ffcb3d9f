#!/bin/sh
# The audit fails closed on a full disk (issue #12 item 5). The state dir is a small tmpfs; a
# "container" opens its secret in a loop after the disk was filled: once a batch of open records
# cannot be written, opens are refused (EACCES) instead of served unrecorded; every served open
# is in the chain (counts summed); the refusals are recorded (coalesced, counted) when space is
# back; /metrics and audit verify say what happened; the log has one line per condition per
# interval, not one per open; key rotate still works on the full disk (the reserve); and after
# space is freed, opens work again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd nsenter
need_cmd python3

SMALL="$T/state"
mkdir -p "$SMALL"
mount -t tmpfs -o size=8m,mode=0700 secretd-test-small "$SMALL" || skip_or_fail "cannot mount a tmpfs"
EXTRA_CLEANUP='cg_cleanup; umount -l "$SMALL" 2>/dev/null'

sd_init
sd_start
W="$SD_WORKLOAD"
A=$(hex64)
mk_cgroup "$CG2" "/docker/$A"; cgA=$CG
printf 'alpha\n' | ctl put app/a >/dev/null
ctl grant app/a "id:$A" >/dev/null
start_container "$cgA" || fail "container A did not start"
PA=$CPID
cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" mount /run/secrets | grep -q "mounted 1" || fail "mount in A"
F=/run/secrets/app/a

# opens N: opens (and reads) F up to N times in A (one process, host pid namespace); prints
# "SERVED STATUS" where STATUS is "all" or the open's error after SERVED successful ones.
opens() {
	nsenter -t "$PA" -m -- sh -c '
		echo $$ >"$0/cgroup.procs" || exit 99
		n=0
		while [ $n -lt "$2" ]; do
			if ! read v 2>"$3" <"$1"; then
				echo "$n $(tr " " _ <"$3")"
				exit 0
			fi
			[ "$v" = alpha ] || { echo "$n bad-value"; exit 0; }
			n=$((n + 1))
		done
		echo "$n all"' "$cgA" "$F" "$1" "$T/open.err"
}
# tryopens N: N open attempts in A, going on after failures; prints "SERVED REFUSED"
tryopens() {
	nsenter -t "$PA" -m -- sh -c '
		echo $$ >"$0/cgroup.procs" || exit 99
		n=0 ok=0 bad=0
		while [ $n -lt "$2" ]; do
			if read v 2>/dev/null <"$1"; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
			n=$((n + 1))
		done
		echo "$ok $bad"' "$cgA" "$F" "$1"
}
# metric NAME: its value
metric() { curl -sf --unix-socket "$SECRETD_SOCKET" http://x/metrics | awk -v n="$1" '$1 == n {print $2}'; }
# okopens: the sum of the counts of the "fuse-open ... ok" records in the chain
okopens() {
	ctl audit --json | python3 -c '
import json, sys
print(sum(r.get("count", 1) for r in map(json.loads, sys.stdin)
          if r["action"] == "fuse-open" and r["result"] == "ok"))'
}
wait_written() { # wait_written WANT: polls until okopens reaches WANT (bounded)
	i=0
	while [ "$(okopens)" -lt "$1" ]; do
		i=$((i + 1))
		[ $i -gt 300 ] && fail "served opens not all in the chain: $(okopens) of $1"
		sleep 0.1
	done
}

set -- $(opens 100)
[ "$1 $2" = "100 all" ] || fail "baseline opens: $*"
served=100
wait_written $served
ok "100 opens served and recorded on a disk with room"

# Fill the disk (the daemon's reserve was made at start; this takes the rest).
dd if=/dev/zero of="$SMALL/filler" bs=64k 2>/dev/null || true
[ "$(df --output=avail -B1 "$SMALL" | tail -n 1)" -lt 65536 ] || fail "the tmpfs is not full"

set -- $(opens 30000)
served=$((served + $1))
[ "$2" != all ] || fail "30000 opens all served on a full disk: the audit fails open"
case "$2" in *Permission_denied*) ;; *) fail "open on a full disk: '$2', want EACCES" ;; esac
ok "full disk: opens refused (EACCES) after $1 more were served"

# While the audit cannot be written, refusals go on (no open is served unrecorded) ...
set -- $(tryopens 2000)
[ "$1" = 0 ] || fail "$1 opens served while the audit cannot be written"
[ "$2" = 2000 ] || fail "2000 opens while failing: $2 refused"
[ "$(metric secretd_audit_writable)" = 0 ] || fail "metrics: audit_writable $(metric secretd_audit_writable), want 0"
refused=$(metric secretd_audit_refused_total)
[ "${refused:-0}" -ge 2001 ] || fail "metrics: audit_refused_total '$refused', want >= 2001"
ok "refusals counted in /metrics: secretd_audit_refused_total $refused, writable 0"

# A workload read over the API is refused too (its record cannot be written).
if out=$(cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" read app/a 2>&1); then
	fail "workload read served while the audit cannot be written: $out"
fi
echo "$out" | grep -q alpha && fail "workload read printed the value: $out"
ok "workload read refused: $out"

# ... and the operator is told: verify does not say "ok" while records wait unwritten.
if out=$(ctl audit verify 2>&1); then fail "audit verify exit 0 while the audit cannot be written: $out"; fi
echo "$out" | grep -qi "not writable\|cannot be written\|no space" || fail "audit verify does not say the audit is failing: $out"
ok "audit verify while failing: $(echo "$out" | head -n 1)"

# Key operations still work on the full disk: the reserve was released for them.
ctl key rotate >"$T/rot.out" 2>&1 || fail "key rotate on a full disk: $(cat "$T/rot.out")"
grep -q "disk reserve" "$SD_LOG" || fail "no log line about the disk reserve"
ok "key rotate completes on the full disk (reserve released)"

# Rate-limited logging: while the disk stays full, one line per condition per 10 s, with the
# count of those suppressed, not one per refused open or per retry.
t0=$(date +%s)
i=0
until grep -q "audit: the disk is still full" "$SD_LOG"; do
	i=$((i + 1))
	[ $i -gt 300 ] && fail "no log line while the disk stays full"
	sleep 0.1
done
w=0
while [ "$(metric secretd_audit_refused_total)" -lt $((refused + 6000)) ]; do
	set -- $(tryopens 2000)
	[ "$1" = 0 ] || fail "$1 opens served while the disk stays full"
	w=$((w + 1))
	[ $w -gt 20 ] && fail "refusals not counted"
done
n=$(grep -c "audit" "$SD_LOG" || true)
max=$(( ($(date +%s) - t0) / 10 * 2 + 8 ))
[ "$n" -le "$max" ] || { grep audit "$SD_LOG" | head -n 20 >&2; fail "$n audit log lines for 8000 refused opens in $(( $(date +%s) - t0 ))s (max $max)"; }
ok "log rate-limited: $n audit lines for $(metric secretd_audit_refused_total) refused opens"

# Space back: opens work again, every served open is in the chain, the refusals are recorded.
rm -f "$SMALL/filler"
i=0
while :; do
	set -- $(opens 1)
	[ "$2" = all ] && break
	i=$((i + 1))
	[ $i -gt 300 ] && fail "opens still refused after space was freed: $*"
	sleep 0.1
done
served=$((served + 1))
[ "$(metric secretd_audit_writable)" = 1 ] || fail "audit_writable not 1 after recovery"
wait_written $served
[ "$(okopens)" = "$served" ] || fail "chain holds $(okopens) served opens, $served were served"
ok "space freed: opens served again; the chain holds all $served served opens"
[ "$(cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" read app/a)" = alpha ] || fail "workload read after recovery"

rrec=$(ctl audit --json | python3 -c '
import json, sys
print(sum(r.get("count", 1) for r in map(json.loads, sys.stdin) if r["result"] == "refused-audit"))')
refused=$(metric secretd_audit_refused_total)
[ "$rrec" = "$refused" ] || fail "refused opens recorded: $rrec, counted in metrics: $refused"
out=$(ctl audit verify) || fail "audit verify after recovery: $out"
echo "$out" | grep -q "refused" || fail "audit verify does not report the refused events: $out"
ok "refusals recorded ($rrec, as metrics say); verify: $(echo "$out" | tr '\n' ' ')"
