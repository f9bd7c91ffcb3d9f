#!/bin/sh
# test_cluster.sh: cluster mode, first slice (issue #18). A real 3-member etcd on loopback ports
# and 3 secretd nodes (own state and runtime dirs, one key file; nodes 1 and 2 --no-keeper, node 3
# with its keeper), each serving its own
# docker-shaped container (cgroup + pid/mount namespaces, self-mounted through its node's
# workload socket):
#  - a put on node 1 is read by the container on node 3; a grant made on node 1 reaches all;
#  - a rotation on node 2 and a revoke on node 1 reach every node's container;
#  - a value tampered in etcd directly (one ciphertext byte) is refused by every node (logged,
#    counted in secretd_cluster_rejected_total, not applied: containers keep the good value);
#  - etcd with 2 of 3 members down: containers still read, a put fails clearly (non-zero, says
#    etcd cannot be reached, nothing stored); members back: writes work again and converge;
#  - a node restarted while etcd is entirely down serves its local copy.
# shellcheck disable=SC2154,SC2034 # per-node variables are set and read through eval
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/cgroup_lib.sh
. "$(dirname "$0")/cgroup_lib.sh"
# shellcheck source=tests/integration/etcd_lib.sh
. "$(dirname "$0")/etcd_lib.sh"
EXTRA_CLEANUP="nodes_stop; cg_cleanup; etcd_cleanup"
need_root
need_cgroup2
need_fuse
need_etcd

KEY=$T/keys/cluster.key
CL=sdt$$
# Nodes 1 and 2 run without a keeper, node 3 with one (the default: a keeper process and the
# daemon process it supervises).
node_start() {
	mkdir -p "$T/n$1/run"
	nk=--no-keeper
	[ "$1" = 3 ] && nk=
	# shellcheck disable=SC2086 # $nk: one flag or none
	"$SECRETD" run $nk --state-dir "$T/n$1/state" --runtime-dir "$T/n$1/run" \
		--key-file "$KEY" --etcd "$ETCD_URLS" --cluster "$CL" --node-name "node-$1" \
		>>"$T/n$1.log" 2>&1 &
	eval "NODE_PID_$1=$!"
	poll_until 60 node_up "$1" || fail "node $1 did not start: $(tail -n 5 "$T/n$1.log")"
}

etcd_start_cluster
ok "etcd: 3 members healthy"
node_init 1
grep -q "^created cluster $CL" "$T/n1.init" || fail "node 1 did not create the cluster: $(cat "$T/n1.init")"
node_init 2
node_init 3
grep -q "^joined cluster $CL" "$T/n3.init" || fail "node 3 did not join: $(cat "$T/n3.init")"
ok "init: node 1 created the cluster, nodes 2 and 3 joined it (one key file)"
for n in 1 2 3; do node_start "$n"; done
watch_open() { ctlN "$1" cluster status | grep -q "watch: open"; }
for n in 1 2 3; do
	poll_until 30 watch_open "$n" || fail "node $n: no open watch: $(ctlN "$n" cluster status 2>&1)"
done
ctlN 2 cluster status | grep -q "^cluster $CL through $ETCD_URLS" || fail "cluster status: $(ctlN 2 cluster status)"
ok "secretctl cluster status: every node's watch is open"

# One docker-shaped container per node, its secrets self-mounted through its node.
for n in 1 2 3; do
	id=$(hex64)
	mk_cgroup "$CG2" "/docker/$id"
	eval "C_ID_$n=$id C_CG_$n=$CG"
done
# Grants made on node 1 (one per container) reach every node.
printf 'v1' | ctlN 1 put app/db >/dev/null || fail "put on node 1"
for n in 1 2 3; do
	eval "id=\$C_ID_$n"
	ctlN 1 grant app/db "id:$id" >/dev/null || fail "grant id:$id on node 1"
done
for n in 1 2 3; do
	eval "cg=\$C_CG_$n"
	start_container "$cg" || fail "container $n did not start"
	eval "C_PID_$n=$CPID"
done
mounted_on() {
	eval "p=\$C_PID_$1 cg=\$C_CG_$1"
	cexec "$p" "$cg" "$SECRETCTL" --socket "$T/n$1/run/workload.sock" mount /run/secrets 2>&1 | grep -q "mounted 1"
}
for n in 1 2 3; do
	poll_until 30 mounted_on "$n" || fail "container $n: no mount with app/db through node $n"
done
reads() { eval "p=\$C_PID_$1 cg=\$C_CG_$1"; [ "$(cexec "$p" "$cg" cat /run/secrets/app/db 2>/dev/null)" = "$2" ]; }
cannot_read() { eval "p=\$C_PID_$1 cg=\$C_CG_$1"; ! cexec "$p" "$cg" cat /run/secrets/app/db >/dev/null 2>&1; }
for n in 1 2 3; do
	poll_until 30 reads "$n" v1 || fail "container on node $n does not read v1"
done
ok "a put and grants on node 1 are read by the containers of nodes 1, 2 and 3"

printf 'v2' | ctlN 2 put app/db >/dev/null || fail "rotation (put) on node 2"
for n in 1 2 3; do
	poll_until 30 reads "$n" v2 || fail "container on node $n does not read v2 after the rotation on node 2"
done
[ "$(ctlN 3 get app/db)" = v2 ] || fail "node 3's store does not hold v2"
ok "a rotation on node 2 reaches every node's container"

# Puts in a row on one node: the watch brings each back (an older one can arrive after the next
# put): no echo of the node's own write may be taken for a rollback and refused.
rej=$(metric 1 secretd_cluster_rejected_total)
i=0
while [ $i -lt 30 ]; do
	# four at once: the next put can be served before the echo of the last one is applied
	bp=""
	for j in 1 2 3; do
		printf 'x%s' "$j" | ctlN 1 put app/burst >/dev/null 2>&1 &
		bp="$bp $!"
	done
	printf 'r%s' "$i" | ctlN 1 put app/burst >/dev/null || fail "put $i of the burst on node 1"
	for p in $bp; do wait "$p" || true; done
	i=$((i + 1))
done
burst_seen() { [ "$(ctlN 3 get app/burst 2>/dev/null)" = "$(ctlN 1 get app/burst)" ]; }
poll_until 30 burst_seen || fail "node 3 does not hold the burst's last value"
[ "$(metric 1 secretd_cluster_rejected_total)" = "$rej" ] ||
	fail "node 1 refused echoes of its own writes: $(grep refused "$T/n1.log" | tail -n 2)"
ok "30 puts in a row on node 1: no echo of its own writes refused, node 3 holds the last"

# etcd's value of a key (base64) into a file; a value put into etcd directly (an etcd writer
# without the root key)
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
etcd_value() {
	curl -sf "$ETCD_URL_1/v3/kv/range" -d "{\"key\":\"$1\"}" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["kvs"][0]["value"])' >"$2"
}
etcd_putv() { curl -sf "$ETCD_URL_2/v3/kv/put" -d "{\"key\":\"$1\",\"value\":\"$(cat "$2")\"}" >/dev/null; }
etcd_del() { curl -sf "$ETCD_URL_3/v3/kv/deleterange" -d "{\"key\":\"$1\"}" >/dev/null; }
GKEY3=$(printf '/secretd/%s/g/%s/%s' "$CL" "$(hex app/db)" "$(hex "id:$C_ID_3")" | base64 -w0)
etcd_value "$GKEY3" "$T/grant3.b64" || fail "range node 3's grant row"
ctlN 1 revoke app/db "id:$C_ID_3" >/dev/null || fail "revoke on node 1"
poll_until 30 cannot_read 3 || fail "the container on node 3 still reads after the revoke on node 1"
{ reads 1 v2 && reads 2 v2; } || fail "the revoke of node 3's grant changed the other containers"
ok "a revoke on node 1 reaches node 3's container (the others keep reading)"

# The revoked grant's row (its MAC still good) put back into etcd by an etcd writer: every node
# refuses it (the row's generation is not newer than the one it revoked), node 3's container
# stays without it.
rej1=$(metric 1 secretd_cluster_rejected_total)
rej3=$(metric 3 secretd_cluster_rejected_total)
rejected_more() { [ "$(metric "$1" secretd_cluster_rejected_total)" -gt "$2" ]; }
etcd_putv "$GKEY3" "$T/grant3.b64" || fail "replay the revoked grant row into etcd"
poll_until 30 rejected_more 3 "$rej3" || fail "node 3 did not refuse the replayed grant row"
poll_until 30 rejected_more 1 "$rej1" || fail "node 1 did not refuse the replayed grant row"
grep -q "refused /secretd/$CL/g/.* from etcd: it was revoked or deleted here" "$T/n3.log" ||
	fail "node 3 did not log the refused replay: $(grep cluster "$T/n3.log" | tail -n 3)"
ctlN 3 grants 2>/dev/null | grep -q "id:$C_ID_3" && fail "node 3 holds the replayed grant"
cannot_read 3 || fail "node 3's container reads again after the revoked grant was replayed"
etcd_del "$GKEY3" || fail "delete the replayed row"
ok "a revoked grant row replayed into etcd is refused by the nodes, node 3's container stays without it"

# The same for a deleted secret: its last rows put back after an rm are refused.
printf 'gone' | ctlN 1 put app/gone >/dev/null || fail "put app/gone"
SKEY=$(printf '/secretd/%s/s/app/gone' "$CL" | base64 -w0)
has_gone() { ctlN 3 get app/gone >/dev/null 2>&1; }
poll_until 30 has_gone || fail "node 3 did not get app/gone"
etcd_value "$SKEY" "$T/gone.b64" || fail "range app/gone"
ctlN 2 rm app/gone >/dev/null || fail "rm app/gone on node 2"
no_gone() { ! has_gone; }
poll_until 30 no_gone || fail "node 3 still holds app/gone after the rm on node 2"
rej3=$(metric 3 secretd_cluster_rejected_total)
etcd_putv "$SKEY" "$T/gone.b64" || fail "replay app/gone's rows into etcd"
poll_until 30 rejected_more 3 "$rej3" || fail "node 3 did not refuse the deleted secret's rows"
has_gone && fail "node 3 holds app/gone again after its rows were replayed"
# (its log line is rate-limited behind the grant's: one per kind of refusal and 10 s)
etcd_del "$SKEY" || fail "delete the replayed rows"
ok "a deleted secret's rows replayed into etcd are refused"
# Node 3's audit chain records what the cluster changed in its store, and still verifies.
ctlN 3 audit >"$T/audit3" || fail "audit on node 3"
grep -q "cluster-put.*app/db" "$T/audit3" || fail "node 3's audit has no cluster-put of app/db: $(tail -n 5 "$T/audit3")"
grep -q "cluster-revoke.*app/db" "$T/audit3" || fail "node 3's audit has no cluster-revoke"
grep -q "cluster-grant.*app/db" "$T/audit3" || fail "node 3's audit has no cluster-grant"
ctlN 3 audit verify >/dev/null || fail "node 3's audit chain does not verify"
ok "every change applied from etcd is in the node's audit chain (cluster-put, -grant, -revoke), which verifies"

# Every node's audit names the origin of each cluster change: a put on node 1 by uid 0 shows in
# node 3's `secretctl audit --cluster` with origin node-1 (its origin record, MAC'd, travels in
# the put's own etcd txn); node 1 lists its own put with its own name; nothing else is listed.
printf 'o1' | ctlN 1 put app/origin >/dev/null || fail "put app/origin on node 1"
origin_on() {
	ctlN "$1" --json audit --cluster | python3 -c '
import json, sys
node, want, action = sys.argv[1], sys.argv[2], sys.argv[3]
recs = [json.loads(l) for l in sys.stdin if l.strip()]
changes = {"put", "generate", "rotate", "rotate+print", "rollback", "delete", "expire", "schedule",
           "unschedule", "grant", "revoke", "cluster-undo", "cluster-put", "cluster-delete",
           "cluster-grant", "cluster-revoke"}
assert recs and all(r["action"] in changes and r.get("origin") for r in recs), recs[-3:]
hit = [r for r in recs if r["secret"] == "app/origin" and r["action"] == action and r["origin"] == want]
assert hit, [r for r in recs if r["secret"] == "app/origin"]
if action.startswith("cluster-"):
    assert " origin=%s actor=uid:0 action=put" % want in hit[-1]["detail"], hit[-1]
' "$1" "$2" "$3"
}
poll_until 30 origin_on 3 node-1 cluster-put || fail "node 3's audit --cluster has no cluster-put of app/origin from node-1: $(ctlN 3 audit --cluster | tail -n 3)"
origin_on 1 node-1 put || fail "node 1's audit --cluster does not list its own put: $(ctlN 1 audit --cluster | tail -n 3)"
ctlN 3 audit --cluster | grep -q "^node-1 .*cluster-put .*app/origin.*origin=node-1 actor=uid:0 action=put" ||
	fail "secretctl audit --cluster's text: $(ctlN 3 audit --cluster | grep app/origin)"
ctlN 3 audit | grep -q " open " && ctlN 3 audit --cluster | grep -q " open " && fail "audit --cluster lists a container's open"
ok "a put on node 1 by uid 0 shows in node 3's audit --cluster with origin node-1 ($(ctlN 3 audit --cluster | grep -o 'origin=node-1 actor=uid:0 action=put' | head -n 1))"

# An origin record forged in etcd (an etcd writer without the key: node-1's record with its node
# changed, its MAC kept) is refused by every node (counted) and never shown; the next real
# change from node 2 is shown with node-2.
OKEY=$(python3 -c 'import hashlib,sys; print(sys.argv[1] + "o/" + hashlib.blake2b(b"s/app/origin", digest_size=16).hexdigest())' "/secretd/$CL/")
REAL=$(etcd_ctl get --print-value-only "$OKEY") || fail "read the origin record of app/origin"
printf '%s' "$REAL" | grep -q '"node":"node-1"' || fail "the origin record in etcd: $REAL"
FORGED=$(printf '%s' "$REAL" | sed 's/"node":"node-1"/"node":"evil-node"/')
rej3=$(metric 3 secretd_cluster_rejected_total)
rej2=$(metric 2 secretd_cluster_rejected_total)
etcd_ctl put "$OKEY" "$FORGED" >/dev/null || fail "etcdctl put the forged origin record"
poll_until 30 rejected_more 3 "$rej3" || fail "node 3 did not refuse the forged origin record"
poll_until 30 rejected_more 2 "$rej2" || fail "node 2 did not refuse the forged origin record"
printf 'o2' | ctlN 2 put app/origin >/dev/null || fail "put app/origin on node 2"
poll_until 30 origin_on 3 node-2 cluster-put || fail "node 3 does not show node 2's put of app/origin: $(ctlN 3 audit --cluster | tail -n 3)"
for n in 1 2 3; do
	ctlN "$n" audit | grep -q "evil-node" && fail "node $n's audit shows the forged origin"
done
ok "a forged origin record written with etcdctl is refused (counted) and never shown; node 2's next put shows with node-2"

# A secret whose kept versions together exceed what one etcd value holds is refused, undone
head -c 400000 /dev/urandom >"$T/big"
ctlN 1 put app/big --from-file "$T/big" >/dev/null || fail "a 400 KB value on node 1"
ctlN 1 put app/big --from-file "$T/big" >/dev/null || fail "a second 400 KB version"
if ctlN 1 put app/big --from-file "$T/big" >"$T/big.out" 2>&1; then
	fail "a third 400 KB version (1.2 MB of rows) was accepted"
fi
grep -q "kept versions together" "$T/big.out" || fail "the refusal does not say why: $(cat "$T/big.out")"
[ "$(ctlN 1 --json versions app/big | grep -c '"version"')" = 2 ] || fail "the refused version stayed on node 1"
ok "a secret whose kept versions exceed one etcd value is refused and undone ($(head -c 100 "$T/big.out"))"

# --- concurrent rotations of one secret from two nodes: each put is stored everywhere or
# refused with a conflict; no two puts get the same version (a lost update), and every node ends
# with the same value
printf 'c0' | ctlN 1 put app/race >/dev/null || fail "put app/race"
synced() { [ "$(ctlN 2 get app/race 2>/dev/null)" = "$1" ]; }
poll_until 30 synced c0 || fail "node 2 did not get app/race"
i=0
: >"$T/race.ok"
while [ $i -lt 10 ]; do
	printf 'a%s' "$i" | ctlN 1 put app/race >"$T/race1.out" 2>&1 &
	p1=$!
	printf 'b%s' "$i" | ctlN 2 put app/race >"$T/race2.out" 2>&1 &
	p2=$!
	r1=0 r2=0
	wait "$p1" || r1=$?
	wait "$p2" || r2=$?
	for nd in 1 2; do
		eval "rk=\$r$nd"
		if [ "$rk" = 0 ]; then
			sed -n 's/^app\/race: version \([0-9]*\).*/\1/p' "$T/race$nd.out" >>"$T/race.ok"
		else
			grep -q "conflict" "$T/race$nd.out" || fail "round $i: node $nd's put failed without a conflict: $(cat "$T/race$nd.out")"
		fi
	done
	# let every node catch up before the next round (a node behind is refused as a conflict too).
	# Both nodes are read again on every try: node 1 may not have applied node 2's winning put
	# yet (its watch is behind under load), so one read of node 1 is no target to wait for.
	agree12() { v1=$(ctlN 1 get app/race) && v2=$(ctlN 2 get app/race) && [ "$v1" = "$v2" ]; }
	poll_until 30 agree12 || fail "round $i: nodes 1 and 2 did not converge (node 1: $(ctlN 1 get app/race), node 2: $(ctlN 2 get app/race))"
	i=$((i + 1))
done
[ -s "$T/race.ok" ] || fail "no put of the race succeeded"
[ "$(sort "$T/race.ok" | uniq -d | wc -l)" = 0 ] || fail "two puts made the same version (a lost update): $(sort "$T/race.ok" | tr '\n' ' ')"
final=$(ctlN 1 get app/race)
same3() { [ "$(ctlN 3 get app/race 2>/dev/null)" = "$final" ] && [ "$(ctlN 2 get app/race)" = "$final" ]; }
poll_until 30 same3 || fail "the nodes do not agree on app/race after the race"
ok "concurrent rotations from nodes 1 and 2: $(wc -l <"$T/race.ok") stored, the rest refused as conflicts, no version made twice, all nodes agree"

# --- schedules fire on exactly one node: the leader of an etcd lease election
cstat() { ctlN "$1" --json cluster status | python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$2"; }
one_leader() {
	nl=0
	for n in 1 2 3; do [ "$(cstat "$n" is_leader)" = True ] && nl=$((nl + 1)) && LEADER=$n; done
	[ "$nl" = 1 ] || return 1
	lname=$(cstat "$LEADER" node)
	for n in 1 2 3; do [ "$(cstat "$n" leader)" = "$lname" ] || return 1; done
}
poll_until 60 one_leader || fail "no single leader: $(for n in 1 2 3; do ctlN "$n" cluster status; done)"
# cluster status names etcd's members, with exactly one Raft leader among them
members_ok() {
	ctlN 2 --json cluster status | python3 -c '
import json, sys
j = json.load(sys.stdin)
ms = j["members"]
assert j["members_total"] == 3 and j["members_error"] == "", j
assert sorted(m["name"] for m in ms) == ["m1", "m2", "m3"], ms
assert sum(m["raft_leader"] for m in ms) == 1, ms
assert all(m["client_url"].startswith("http://127.0.0.1:") and len(m["id"]) == 16 for m in ms), ms'
}
poll_until 30 members_ok || fail "cluster status does not list etcd's 3 members: $(ctlN 2 cluster status)"
ctlN 2 cluster status | grep -q '(raft leader)' || fail "cluster status's text does not name the raft leader: $(ctlN 2 cluster status)"
ctlN "$LEADER" cluster status | grep -q "leader: this node" || fail "cluster status does not name the leader: $(ctlN "$LEADER" cluster status)"
ok "one leader elected through an etcd lease (node $LEADER), every node names it"
# the schedule is set on a node that is not the leader: it reaches the leader through etcd
SN=1
[ "$LEADER" = 1 ] && SN=2
printf 's0' | ctlN "$SN" put app/sched >/dev/null || fail "put app/sched"
ctlN "$SN" rotate app/sched --every 2s --generate >/dev/null || fail "schedule app/sched on node $SN"
cur() { ctlN "$1" --json versions app/sched | python3 -c 'import json,sys; print(max(v["version"] for v in json.load(sys.stdin)["versions"]))'; }
rotated() { [ "$(cur 3)" -ge 4 ]; }
poll_until 60 rotated || fail "app/sched was not rotated 3 times: $(grep -i "sched\|rotat" "$T/n$LEADER.log" | tail -n 3)"
# (a conflict is possible: the leader may have just fired, not yet applied on node $SN)
unsched() { ctlN "$SN" rotate app/sched --every 0 >/dev/null 2>&1; }
poll_until 30 unsched || fail "unschedule app/sched: $(ctlN "$SN" rotate app/sched --every 0 2>&1)"
final=$(cur "$SN")
same_sched() { for n in 1 2 3; do [ "$(cur "$n")" = "$final" ] || return 1; done; }
poll_until 30 same_sched || fail "the nodes do not agree on app/sched's versions"
rots() { ctlN "$1" --json audit | python3 -c '
import json, sys
print(sum(1 for l in sys.stdin if l.strip() and (lambda r: r.get("action") == "rotate" and r.get("secret") == "app/sched" and r.get("result") == "ok")(json.loads(l))))'; }
total=0 nodes=""
for n in 1 2 3; do
	k=$(rots "$n")
	total=$((total + k))
	[ "$k" -gt 0 ] && nodes="$nodes $n"
done
[ "$total" = $((final - 1)) ] || fail "$total scheduled rotations recorded for $((final - 1)) new versions"
[ "$nodes" = " $LEADER" ] || fail "scheduled rotations fired on nodes$nodes, not only on the leader $LEADER"
ok "a schedule set on node $SN fired on the leader only: $total rotations, one version each, seen by all nodes"

# --- failover: the leader frozen (SIGSTOP: a hung or partitioned node) loses its lease, another
# node takes over and fires; the old leader, woken, fires nothing more (its lease had run out)
OLD=$LEADER
SP=$(eval "echo \$NODE_PID_$OLD")
[ "$OLD" = 3 ] && SP=$(pgrep -P "$SP" -x secretd | head -n 1) # node 3 runs under its keeper
before_old=$(rots "$OLD")
kill -STOP "$SP"
new_leader() {
	for n in 1 2 3; do
		[ "$n" = "$OLD" ] && continue
		[ "$(cstat "$n" is_leader)" = True ] && NEWL=$n && return 0
	done
	return 1
}
if ! poll_until 60 new_leader; then
	kill -CONT "$SP"
	fail "no node took over from the frozen leader $OLD"
fi
v0=$(cur "$NEWL")
ctlN "$NEWL" rotate app/sched --every 2s --generate >/dev/null || { kill -CONT "$SP"; fail "schedule on the new leader $NEWL"; }
grew() { [ "$(cur "$NEWL")" -ge $((v0 + 2)) ]; }
poll_until 60 grew || { kill -CONT "$SP"; fail "the new leader $NEWL did not fire"; }
kill -CONT "$SP"
old_follows() { [ "$(cstat "$OLD" is_leader)" = False ] && [ "$(cstat "$OLD" leader)" = "$(cstat "$NEWL" node)" ]; }
poll_until 60 old_follows || fail "the old leader $OLD does not follow $NEWL after waking: $(ctlN "$OLD" cluster status)"
unsched2() { ctlN "$NEWL" rotate app/sched --every 0 >/dev/null 2>&1; }
poll_until 30 unsched2 || fail "unschedule app/sched on $NEWL"
final=$(cur "$NEWL")
poll_until 30 same_sched || fail "the nodes do not agree on app/sched's versions after the failover"
[ "$(rots "$OLD")" = "$before_old" ] || fail "the frozen leader $OLD fired after waking ($(rots "$OLD") rotations, $before_old before)"
all=0
for n in 1 2 3; do all=$((all + $(rots "$n"))); done
[ "$all" = $((final - 1)) ] || fail "$all scheduled rotations recorded for $((final - 1)) new versions after the failover"
ok "failover: leader $OLD frozen, node $NEWL took over and fired ($((final - v0)) versions), $OLD woke as a follower and fired nothing more; one version per rotation"

# --- tampering in etcd directly: flip one byte of the current ciphertext
KEYB64=$(printf '/secretd/%s/s/app/db' "$CL" | base64 -w0)
curl -sf "$ETCD_URL_1/v3/kv/range" -d "{\"key\":\"$KEYB64\"}" >"$T/range.json" || fail "range from etcd"
python3 - "$T/range.json" "$T/good.b64" "$T/bad.b64" <<'PY'
import base64, json, sys
kv = json.load(open(sys.argv[1]))["kvs"][0]
v = bytearray(base64.b64decode(kv["value"]))
open(sys.argv[2], "w").write(base64.b64encode(bytes(v)).decode())
v[-20] ^= 0x01  # inside the last version's ciphertext (the last field is its created time)
open(sys.argv[3], "w").write(base64.b64encode(bytes(v)).decode())
PY
rej1=$(metric 1 secretd_cluster_rejected_total)
rej3=$(metric 3 secretd_cluster_rejected_total)
curl -sf "$ETCD_URL_2/v3/kv/put" -d "{\"key\":\"$KEYB64\",\"value\":\"$(cat "$T/bad.b64")\"}" >/dev/null ||
	fail "put the tampered value into etcd"
poll_until 30 rejected_more 1 "$rej1" || fail "node 1 did not refuse the tampered value"
poll_until 30 rejected_more 3 "$rej3" || fail "node 3 did not refuse the tampered value"
grep -q "refused /secretd/$CL/s/app/db from etcd: integrity check failed" "$T/n3.log" ||
	fail "node 3 did not log the refusal: $(grep cluster "$T/n3.log" | tail -n 3)"
{ reads 1 v2 && reads 2 v2; } || fail "a container read something else than v2 after the tampering"
ok "a value tampered in etcd is refused by the nodes (logged, counted), containers keep v2"
# Put the good rows back (what an operator restores): the nodes already hold them.
curl -sf "$ETCD_URL_2/v3/kv/put" -d "{\"key\":\"$KEYB64\",\"value\":\"$(cat "$T/good.b64")\"}" >/dev/null ||
	fail "put the good value back"

# A tampered grant row (its last MAC byte) is refused too; container 1 keeps its grant.
GKEY=$(printf '/secretd/%s/g/%s/%s' "$CL" "$(hex app/db)" "$(hex "id:$C_ID_1")" | base64 -w0)
curl -sf "$ETCD_URL_1/v3/kv/range" -d "{\"key\":\"$GKEY\"}" >"$T/grange.json" || fail "range the grant"
python3 - "$T/grange.json" "$T/ggood.b64" "$T/gbad.b64" <<'PY'
import base64, json, sys
v = bytearray(base64.b64decode(json.load(open(sys.argv[1]))["kvs"][0]["value"]))
open(sys.argv[2], "w").write(base64.b64encode(bytes(v)).decode())
v[-1] ^= 0x01
open(sys.argv[3], "w").write(base64.b64encode(bytes(v)).decode())
PY
rej2=$(metric 2 secretd_cluster_rejected_total)
curl -sf "$ETCD_URL_3/v3/kv/put" -d "{\"key\":\"$GKEY\",\"value\":\"$(cat "$T/gbad.b64")\"}" >/dev/null ||
	fail "put the tampered grant into etcd"
poll_until 30 rejected_more 2 "$rej2" || fail "node 2 did not refuse the tampered grant"
reads 1 v2 || fail "container 1 lost its grant after the tampered row"
curl -sf "$ETCD_URL_3/v3/kv/put" -d "{\"key\":\"$GKEY\",\"value\":\"$(cat "$T/ggood.b64")\"}" >/dev/null ||
	fail "put the good grant back"
ok "a grant row tampered in etcd is refused (counted), the container keeps reading"

# --- 2 of 3 etcd members down
etcd_kill 2
etcd_kill 3
{ reads 1 v2 && reads 2 v2; } || fail "containers do not read with 2 of 3 etcd members down"
if printf 'v3' | ctlN 1 put app/db >"$T/put.out" 2>&1; then
	fail "a put succeeded with 2 of 3 etcd members down"
fi
grep -q "etcd cannot be reached" "$T/put.out" || fail "the put's error does not say why: $(cat "$T/put.out")"
reads 1 v2 || fail "the refused put changed node 1's value"
[ "$(ctlN 1 get app/db)" = v2 ] || fail "the refused put left another value on node 1"
[ "$(ctlN 1 --json versions app/db | grep -c '"version"')" = 2 ] ||
	fail "the refused put left a version on node 1: $(ctlN 1 --json versions app/db)"
ctlN 1 cluster status | grep -q "last error: write: " || fail "cluster status shows no write error: $(ctlN 1 cluster status)"
[ "$(ctlN 1 --json cluster status | python3 -c 'import json,sys; print(json.load(sys.stdin)["write_failures"] > 0)')" = True ] ||
	fail "cluster status --json counts no write failure"
ok "2 of 3 etcd members down: containers read, a put fails clearly ($(head -c 120 "$T/put.out"))"
# Once the node knows etcd has no quorum (its election round failed), a write is refused at
# once: no etcd call holds the loop, so puts in flight do not hold up a container's read or an
# admin GET (bound: 1 s each, where one write attempt used to hold the loop 1.5 s).
now_ms() { echo $(($(date +%s%N) / 1000000)); }
elect_failed() { [ -n "$(cstat 1 election_error)" ]; }
poll_until 30 elect_failed || fail "node 1's election does not see that etcd has no quorum"
# and no node fires schedules any more: the leader's keep-alive fails, it stops leading
no_leader() { for n in 1 2 3; do [ "$(cstat "$n" is_leader)" = False ] || return 1; done; }
poll_until 30 no_leader || fail "a node still leads without quorum: $(for n in 1 2 3; do cstat "$n" is_leader; done)"
ok "without quorum no node leads (schedules and expiry wait)"
t0=$(now_ms)
printf 'x' | ctlN 1 put app/db >"$T/put2.out" 2>&1 && fail "a put succeeded without quorum"
t1=$(now_ms)
grep -q "etcd cannot be reached" "$T/put2.out" || fail "the fast refusal does not say why: $(cat "$T/put2.out")"
[ $((t1 - t0)) -lt 1000 ] || fail "a put without quorum took $((t1 - t0)) ms to be refused"
bp=""
for j in 1 2 3 4; do
	printf 'x%s' "$j" | ctlN 1 put app/db >/dev/null 2>&1 &
	bp="$bp $!"
done
t2=$(now_ms)
[ "$(ctlN 1 get app/db)" = v2 ] || fail "an admin GET during refused puts"
t3=$(now_ms)
reads 1 v2 || fail "container 1 during refused puts"
t4=$(now_ms)
for p in $bp; do
	if wait "$p"; then fail "a put in flight succeeded without quorum"; fi
done
[ $((t3 - t2)) -lt 1000 ] || fail "an admin GET took $((t3 - t2)) ms while puts were refused"
[ $((t4 - t3)) -lt 1000 ] || fail "a container's read took $((t4 - t3)) ms while puts were refused"
ok "without quorum a put is refused in $((t1 - t0)) ms; with 4 puts in flight an admin GET took $((t3 - t2)) ms, a container read $((t4 - t3)) ms"

etcd_start 2
etcd_start 3
poll_until 60 etcd_healthy || fail "etcd did not recover"
put_v3() { printf 'v3' | ctlN 1 put app/db >/dev/null 2>&1; }
poll_until 60 put_v3 || fail "writes do not work again after etcd recovered"
for n in 1 2; do
	poll_until 30 reads "$n" v3 || fail "container on node $n does not read v3 after etcd recovered"
done
ok "etcd back: writes work again and every node converges"

# An older, validly sealed copy put back into etcd (a rollback by an etcd writer) is refused.
curl -sf "$ETCD_URL_1/v3/kv/range" -d "{\"key\":\"$KEYB64\"}" >"$T/range3.json" || fail "range v3"
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kvs"][0]["value"])' "$T/range3.json" >"$T/v3.b64"
rej1=$(metric 1 secretd_cluster_rejected_total)
curl -sf "$ETCD_URL_2/v3/kv/put" -d "{\"key\":\"$KEYB64\",\"value\":\"$(cat "$T/good.b64")\"}" >/dev/null ||
	fail "put the old rows into etcd"
poll_until 30 rejected_more 1 "$rej1" || fail "node 1 did not refuse the rollback"
grep -q "refused /secretd/$CL/s/app/db from etcd: a newer version is held here" "$T/n1.log" ||
	fail "node 1 did not log the rollback"
{ reads 1 v3 && reads 2 v3; } || fail "a container went back to v2"
curl -sf "$ETCD_URL_2/v3/kv/put" -d "{\"key\":\"$KEYB64\",\"value\":\"$(cat "$T/v3.b64")\"}" >/dev/null ||
	fail "put the v3 rows back"
ok "an older sealed copy put into etcd (a rollback) is refused, containers keep v3"

# --- a node restarted while etcd is entirely down serves its local copy
node_stop 2
etcd_kill 1
etcd_kill 2
etcd_kill 3
node_start 2
poll_until 30 reads 2 v3 || fail "node 2 restarted without etcd does not serve v3"
ok "a node restarted while etcd is down serves its local copy"

# Every node stopped cleanly (SIGTERM): under AddressSanitizer + UBSan (scripts/test.sh runs this
# test in build-asan too) a report in any node's log fails the test.
etcd_start 1
etcd_start 2
etcd_start 3
poll_until 60 etcd_healthy || fail "etcd did not come back for the end"
put_v4() { printf 'v4' | ctlN 1 put app/db >/dev/null 2>&1; }
poll_until 60 put_v4 || fail "writes do not work again after etcd restarted"
poll_until 30 reads 2 v4 || fail "node 2 (restarted while etcd was down) does not follow: $(tail -n 3 "$T/n2.log")"
ok "etcd back: the node restarted meanwhile resumes its watch from its stored revision"
nodes_stop
for n in 1 2 3; do
	if grep -q "AddressSanitizer\|LeakSanitizer\|runtime error:" "$T/n$n.log"; then
		fail "node $n: a sanitizer reported: $(grep -m 3 "Sanitizer\|runtime error:" "$T/n$n.log")"
	fi
done
ok "every node stopped cleanly, no sanitizer report"
