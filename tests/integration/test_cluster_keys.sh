#!/bin/sh
# test_cluster_keys.sh: key rotation across the cluster (#18; docs/cluster.md, "Key rotation
# across the cluster"). A real 3-member etcd on loopback ports and 3 secretd nodes:
#  - secrets put on nodes 1 and 3 (one of 400 kB); `key rotate` on node 2 re-wraps through etcd; every node then
#    reads every value and its key status shows only the new generation with every data key;
#  - a put on node 3 afterwards is read on node 1;
#  - the old keyring and a row from before the re-wrap written back into etcd are refused by the
#    nodes (counted in secretd_cluster_rejected_total);
#  - `key rotate` on two nodes at once: one wins, the other is answered 409;
#  - a node restarted after the rotations starts (its keyring is etcd's).
# shellcheck disable=SC2154,SC2034 # per-node variables are set and read through eval
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/etcd_lib.sh
. "$(dirname "$0")/etcd_lib.sh"
EXTRA_CLEANUP="nodes_stop; etcd_cleanup"
need_root
need_etcd

KEY=$T/keys/cluster.key
CL=sdk$$
node_start() {
	mkdir -p "$T/n$1/run"
	# node 2 re-wraps one data key a batch: its rotations last long enough to lose etcd midway
	rb=128
	[ "$1" = 2 ] && rb=1
	"$SECRETD" run --no-keeper --rotate-batch "$rb" --state-dir "$T/n$1/state" --runtime-dir "$T/n$1/run" \
		--key-file "$KEY" --etcd "$ETCD_URLS" --cluster "$CL" --node-name "node-$1" \
		>>"$T/n$1.log" 2>&1 &
	eval "NODE_PID_$1=$!"
	poll_until 60 node_up "$1" || fail "node $1 did not start: $(tail -n 5 "$T/n$1.log")"
}
metricN() {
	curl -sf --unix-socket "$T/n$1/run/admin.sock" http://x/metrics |
		awk -v m="$2" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'
}
# etcd's value of a key (base64, key given in base64) into a file; a value put back directly
# (an etcd writer without the root key)
etcd_value() {
	curl -sf "$ETCD_URL_1/v3/kv/range" -d "{\"key\":\"$1\"}" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["kvs"][0]["value"])' >"$2"
}
etcd_putv() { curl -sf "$ETCD_URL_2/v3/kv/put" -d "{\"key\":\"$1\",\"value\":\"$(cat "$2")\"}" >/dev/null; }
b64() { printf '%s' "$1" | base64 -w0; }

etcd_start_cluster
for n in 1 2 3; do node_init "$n"; done
for n in 1 2 3; do node_start "$n"; done
watch_open() { ctlN "$1" cluster status | grep -q "watch: open"; }
for n in 1 2 3; do
	poll_until 30 watch_open "$n" || fail "node $n: no open watch: $(ctlN "$n" cluster status 2>&1)"
done
ok "etcd (3 members) and 3 nodes up, watches open"

# 40 secrets: 20 put on node 1 (three versions each), 20 on node 3 (one version)
i=0
while [ $i -lt 20 ]; do
	for v in a b c; do
		printf 'one-%s-%s' "$i" "$v" | ctlN 1 put "app/one$i" >/dev/null || fail "put app/one$i on node 1"
	done
	printf 'three-%s' "$i" | ctlN 3 put "app/three$i" >/dev/null || fail "put app/three$i on node 3"
	i=$((i + 1))
done
# one large secret: its rows before and after do not fit one batch's txn (a batch of its own,
# compared on its mod_revision)
head -c 400000 /dev/urandom >"$T/big"
ctlN 1 put app/big <"$T/big" >/dev/null || fail "put app/big (400 kB) on node 1"
KEYS=81 # data keys: 20 x 3 + 20 + 1
all_read() {
	ctlN "$1" get app/big 2>/dev/null | cmp -s - "$T/big" || return 1
	i=0
	while [ $i -lt 20 ]; do
		[ "$(ctlN "$1" get "app/one$i" 2>/dev/null)" = "one-$i-c" ] || return 1
		[ "$(ctlN "$1" get "app/three$i" 2>/dev/null)" = "three-$i" ] || return 1
		i=$((i + 1))
	done
}
for n in 1 2 3; do poll_until 60 all_read "$n" || fail "node $n does not read every value"; done
ok "41 secrets (81 data keys, one of 400 kB) put on nodes 1 and 3, read on every node"

KRKEY=$(b64 "/secretd/$CL/keyring")
ROWKEY=$(b64 "/secretd/$CL/s/app/one0")
etcd_value "$KRKEY" "$T/keyring.old"
etcd_value "$ROWKEY" "$T/row.old"

t0=$(date +%s%N)
out=$(ctlN 2 key rotate 2>&1) || fail "key rotate on node 2: $out"
t1=$(date +%s%N)
echo "$out" | grep -q "^new key generation 2" || fail "key rotate on node 2 said: $out"
# every node: only generation 2, holding every data key; nobody re-wrapping
only_gen() {
	ctlN "$1" key status --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
g = j["generations"]
ok = (len(g) == 1 and g[0]["id"] == int(sys.argv[1]) and g[0]["data_keys"] == int(sys.argv[2])
      and not j["rotating"] and "rewrapping" not in j)
sys.exit(0 if ok else 1)' "$2" "$3"
}
for n in 1 2 3; do
	poll_until 60 only_gen "$n" 2 "$KEYS" || fail "node $n key status after the rotation: $(ctlN "$n" key status)"
done
t2=$(date +%s%N)
echo "# key rotate on node 2 (a batch per data key): answered after $(((t1 - t0) / 1000000)) ms, every node only on the new generation after $(((t2 - t0) / 1000000)) ms"
for n in 1 2 3; do all_read "$n" || fail "node $n does not read every value after the rotation"; done
etcd_value "$KRKEY" "$T/keyring.new"
cmp -s "$T/keyring.old" "$T/keyring.new" && fail "etcd's keyring did not change"
for n in 1 3; do
	ctlN "$n" audit --cluster | grep -q "cluster-key-rotate" || fail "node $n: no cluster-key-rotate record"
done
ok "key rotate on node 2: every node reads every value, holds only generation 2 with all $KEYS data keys (audited cluster-key-rotate)"

printf 'after' | ctlN 3 put app/after >/dev/null || fail "put on node 3 after the rotation"
after_read() { [ "$(ctlN 1 get app/after 2>/dev/null)" = after ]; }
poll_until 30 after_read || fail "node 1 does not read the put made on node 3 after the rotation"
ok "a put on node 3 after the rotation is read on node 1"

# replays into etcd: the keyring from before, then a row wrapped by the dropped generation
rejected_more() { [ "$(metricN "$1" secretd_cluster_rejected_total)" -gt "$2" ]; }
r1=$(metricN 1 secretd_cluster_rejected_total)
r3=$(metricN 3 secretd_cluster_rejected_total)
etcd_putv "$KRKEY" "$T/keyring.old" || fail "put the old keyring back into etcd"
poll_until 30 rejected_more 1 "$r1" || fail "node 1 did not refuse the old keyring"
poll_until 30 rejected_more 3 "$r3" || fail "node 3 did not refuse the old keyring"
only_gen 1 2 $((KEYS + 1)) || fail "node 1 changed its keys after the old keyring: $(ctlN 1 key status)"
etcd_putv "$KRKEY" "$T/keyring.new" || fail "put the keyring back"
r1=$(metricN 1 secretd_cluster_rejected_total)
r3=$(metricN 3 secretd_cluster_rejected_total)
etcd_value "$ROWKEY" "$T/row.new"
etcd_putv "$ROWKEY" "$T/row.old" || fail "put the old-wrap row back into etcd"
poll_until 30 rejected_more 1 "$r1" || fail "node 1 did not refuse the row from before the re-wrap"
poll_until 30 rejected_more 3 "$r3" || fail "node 3 did not refuse the row from before the re-wrap"
for n in 1 2 3; do all_read "$n" || fail "node $n lost a value after the replays"; done
grep -q "refused /secretd/$CL/keyring" "$T/n1.log" || fail "node 1 did not log the refused keyring"
ok "the old keyring and a row from before the re-wrap put back into etcd: refused and counted, values intact"
printf 'one-0-d' | ctlN 2 put app/one0 >/dev/null 2>&1 &&
	fail "a put over the replayed row succeeded on node 2 (etcd holds a row no node holds)"
ok "a put over the replayed row is refused as a conflict (the nodes keep etcd's last good row)"
# etcd back to what the nodes hold (a rotation's batch compares every row it re-wraps)
etcd_putv "$ROWKEY" "$T/row.new" || fail "put the good row back"

# two rotations at once: one wins, the other 409 (a conflict, or the other's unfinished)
try_two() {
	ctlN 1 key rotate >"$T/kr1.out" 2>&1 &
	p1=$!
	ctlN 3 key rotate >"$T/kr3.out" 2>&1 &
	p3=$!
	rc1=0 rc3=0
	wait "$p1" || rc1=$?
	wait "$p3" || rc3=$?
}
try_two
[ "$rc1" = 0 ] || [ "$rc3" = 0 ] || fail "neither rotation won: $(cat "$T/kr1.out" "$T/kr3.out")"
if [ "$rc1" = 0 ] && [ "$rc3" = 0 ]; then
	echo "# both rotations ran one after the other (no overlap): not the case under test here"
else
	lost=$T/kr3.out
	[ "$rc1" = 0 ] || lost=$T/kr1.out
	grep -q "409\|conflict\|not finished" "$lost" || fail "the losing rotation did not say conflict: $(cat "$lost")"
	ok "key rotate on nodes 1 and 3 at once: one wins, the other is refused ($(head -c 120 "$lost"))"
fi
gen=$(ctlN 1 key status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["current"])')
for n in 1 2 3; do
	poll_until 60 only_gen "$n" "$gen" $((KEYS + 1)) || fail "node $n after the two rotations: $(ctlN "$n" key status)"
done
for n in 1 2 3; do all_read "$n" || fail "node $n does not read every value after the second rotation"; done
ok "after the second rotation every node holds only generation $gen"

# etcd without quorum in the middle of a rotation (node 2, a batch per data key): it pauses
# (key status says so), nothing is re-wrapped that etcd does not hold, and it resumes
out=$(ctlN 2 key rotate --no-wait 2>&1) || fail "key rotate --no-wait on node 2: $out"
etcd_pause 1
etcd_pause 2
paused() { ctlN 2 key status | grep -q "paused, resumes by itself: the cluster's etcd cannot be reached"; }
if poll_until 30 paused; then
	left=$(ctlN 2 key status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["remaining"])')
	etcd_resume 1
	etcd_resume 2
	ok "etcd without quorum midway: node 2's rotation paused ($left data keys left) and says so"
else
	etcd_resume 1
	etcd_resume 2
	ctlN 2 key status | grep -q "rotation" &&
		fail "node 2's rotation did not say it paused: $(ctlN 2 key status)"
	echo "# node 2's rotation finished before etcd lost its quorum: not the case under test here"
fi
# the new generation is the current one since the rotation began
gen=$(ctlN 2 key status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["current"])')
for n in 1 2 3; do
	poll_until 120 only_gen "$n" "$gen" $((KEYS + 1)) || fail "node $n after the paused rotation: $(ctlN "$n" key status)"
done
for n in 1 2 3; do all_read "$n" || fail "node $n does not read every value after the paused rotation"; done
ok "etcd back: the rotation resumed and finished; every node holds only generation $gen and reads every value"

node_stop 1
node_start 1
poll_until 30 watch_open 1 || fail "node 1 after its restart: $(ctlN 1 cluster status 2>&1)"
all_read 1 || fail "node 1 does not read every value after its restart"
grep -q "keyring is not this store's" "$T/n1.log" && fail "node 1 found etcd's keyring foreign"
ctlN 1 audit --cluster | grep "cluster-key-rotate" | grep -q "at start" &&
	fail "node 1's keyring was behind etcd's at its restart"
ok "node 1 restarted after the rotations starts (its keyring is etcd's) and reads every value"
