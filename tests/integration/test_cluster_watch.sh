#!/bin/sh
# test_cluster_watch.sh: the watch progress check of cluster mode (issue #18). A real 3-member
# etcd on loopback ports, 2 secretd nodes; node 2 serves a docker-shaped container.
#  - the etcd member node 2's watch stream is on is frozen (SIGSTOP: its sockets stay open and
#    silent, as for a member cut off from the quorum); a put on node 1 reaches node 2's container
#    within 15 s all the same: node 2's election round sees the prefix's newer revision, cancels
#    the silent stream and reopens it on another member (counted, logged, in cluster status).
#  - --node-name: each node runs under the name it is given (cluster status); a bad name is
#    refused; a third node given node 1's name is refused at start while node 1 lives (clear
#    message, non-zero exit); node 2 killed (-9) and started again at once under its name starts
#    (its crashed run's claim expires with its lease).
#    A node started while etcd cannot be reached under a held name does not lead once it can.
# shellcheck disable=SC2154,SC2034 # per-node variables are set and read through eval
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/cgroup_lib.sh
. "$(dirname "$0")/cgroup_lib.sh"
# shellcheck source=tests/integration/etcd_lib.sh
. "$(dirname "$0")/etcd_lib.sh"
PAUSED=""
# shellcheck disable=SC2016 # expanded at cleanup
EXTRA_CLEANUP='[ -n "$PAUSED" ] && etcd_resume "$PAUSED"; nodes_stop; cg_cleanup; etcd_cleanup'
need_root
need_cgroup2
need_fuse
need_etcd

KEY=$T/keys/cluster.key
CL=sdw$$
node_start() {
	mkdir -p "$T/n$1/run"
	"$SECRETD" run --no-keeper --state-dir "$T/n$1/state" --runtime-dir "$T/n$1/run" \
		--key-file "$KEY" --etcd "$ETCD_URLS" --cluster "$CL" --node-name "node-$1" \
		>>"$T/n$1.log" 2>&1 &
	eval "NODE_PID_$1=$!"
	poll_until 60 node_up "$1" || fail "node $1 did not start: $(tail -n 5 "$T/n$1.log")"
}
cstat() { ctlN "$1" --json cluster status | python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$2"; }

etcd_start_cluster
for n in 1 2; do node_init "$n"; done
for n in 1 2; do node_start "$n"; done
watch_open() { [ "$(cstat "$1" watching)" = True ] && [ -n "$(cstat "$1" watch_endpoint)" ]; }
for n in 1 2; do
	poll_until 30 watch_open "$n" || fail "node $n: no open watch: $(ctlN "$n" cluster status 2>&1)"
done
for n in 1 2; do [ "$(cstat "$n" node)" = "node-$n" ] || fail "node $n runs as $(cstat "$n" node), not node-$n"; done
ctlN 1 cluster status | grep -q "node node-1;" || fail "cluster status does not name node-1: $(ctlN 1 cluster status)"
ok "2 nodes, each watch open, each under its --node-name"

# --node-name: a bad name is refused; a name a live node holds is refused at start
mkdir -p "$T/n3/run"
for bad in "Web-1" "a/b" "" "$(printf '%065d' 0)"; do
	if "$SECRETD" run --no-keeper --state-dir "$T/n3/state" --runtime-dir "$T/n3/run" --key-file "$KEY" \
		--etcd "$ETCD_URLS" --cluster "$CL" --node-name "$bad" >"$T/bad.out" 2>&1; then
		fail "--node-name '$bad' was accepted"
	fi
	grep -q "node-name must be 1-64 of a-z 0-9" "$T/bad.out" || fail "--node-name '$bad': $(cat "$T/bad.out")"
done
node_init 3
if "$SECRETD" run --no-keeper --state-dir "$T/n3/state" --runtime-dir "$T/n3/run" --key-file "$KEY" \
	--etcd "$ETCD_URLS" --cluster "$CL" --node-name node-1 >"$T/dup.out" 2>&1; then
	fail "a second live node named node-1 started"
fi
grep -q "name (--node-name) is held by another live node" "$T/dup.out" || fail "the refusal does not say why: $(cat "$T/dup.out")"
{ [ "$(cstat 1 node)" = node-1 ] && [ "$(cstat 1 watching)" = True ]; } || fail "node 1 changed after the refused start"
ok "--node-name: bad names refused; a second live node-1 refused at start ($(grep -o "cluster.*held by another live node" "$T/dup.out" | head -n 1))"

CID=$(hex64)
mk_cgroup "$CG2" "/docker/$CID"
CCG=$CG
printf 'v1' | ctlN 1 put app/w >/dev/null || fail "put on node 1"
ctlN 1 grant app/w "id:$CID" >/dev/null || fail "grant on node 1"
start_container "$CCG" || fail "the container did not start"
CP=$CPID
mounted() { cexec "$CP" "$CCG" "$SECRETCTL" --socket "$T/n2/run/workload.sock" mount /run/secrets 2>&1 | grep -q "mounted 1"; }
poll_until 30 mounted || fail "no mount with app/w through node 2"
reads() { [ "$(cexec "$CP" "$CCG" cat /run/secrets/app/w 2>/dev/null)" = "$1" ]; }
poll_until 30 reads v1 || fail "the container on node 2 does not read v1"
ok "a put and a grant on node 1 are read in node 2's container"

# Freeze the member node 2's watch stream is on. Its stream stays open (TCP keepalive is
# answered by the kernel) and silent.
WEP=$(cstat 2 watch_endpoint)
M=$(etcd_member "$WEP")
[ -n "$M" ] || fail "node 2's watch endpoint $WEP is no member's"
stalls0=$(metric 2 secretd_cluster_watch_stalls_total)
etcd_pause "$M"
PAUSED=$M
# A put on node 1 (its own calls fail over to another member; a frozen Raft leader is replaced
# after etcd's election timeout: retried until etcd takes it)
put_v2() { printf 'v2' | ctlN 1 put app/w >/dev/null 2>&1; }
poll_until 60 put_v2 || fail "the put on node 1 with member $M frozen: $(printf 'v2' | ctlN 1 put app/w 2>&1)"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(now_ms)
poll_until 15 reads v2 || fail "node 2's container does not read v2 within 15 s with its watch's member $M frozen: $(ctlN 2 cluster status)"
t1=$(now_ms)
[ "$(metric 2 secretd_cluster_watch_stalls_total)" -gt "$stalls0" ] || fail "no stall counted on node 2"
ctlN 2 cluster status | grep -q "stalls [1-9]" || fail "cluster status shows no stall: $(ctlN 2 cluster status)"
grep -q "cluster: the watch stream on $WEP delivered nothing past revision" "$T/n2.log" ||
	fail "node 2 did not log the stall: $(grep cluster "$T/n2.log" | tail -n 3)"
[ "$(cstat 2 watch_endpoint)" != "$WEP" ] || fail "node 2's watch is still on the frozen member"
ok "member $M (node 2's watch) frozen: node 2's container read the put of node 1 after $((t1 - t0)) ms (stall detected, stream reopened on $(cstat 2 watch_endpoint))"

# A node that starts while etcd cannot be reached (its only endpoint is the frozen member) under
# node 1's name: it starts (it serves its local copy), and once etcd answers, its election finds
# the name held by node 1's lease: it does not lead, says why (status, log); node 1 unchanged.
"$SECRETD" run --no-keeper --state-dir "$T/n3/state" --runtime-dir "$T/n3/run" --key-file "$KEY" \
	--etcd "$WEP" --cluster "$CL" --node-name node-1 >>"$T/n3.log" 2>&1 &
NODE_PID_3=$!
poll_until 60 node_up 3 || fail "node 3 (etcd unreachable) did not start: $(tail -n 5 "$T/n3.log")"
etcd_resume "$M"
PAUSED=""
clash_seen() { cstat 3 election_error | grep -q "name node-1 is held by another live node"; }
poll_until 60 clash_seen || fail "node 3 does not see that node-1 is held: $(ctlN 3 cluster status)"
grep -q "cluster: this node's name node-1 is held by another live node" "$T/n3.log" || fail "node 3 did not log the clash: $(grep cluster "$T/n3.log" | tail -n 3)"
[ "$(cstat 3 is_leader)" = False ] || fail "node 3 leads under a name node 1 holds"
{ [ "$(cstat 1 node)" = node-1 ] && [ "$(cstat 1 election_error)" = "" ]; } || fail "node 1 changed: $(ctlN 1 cluster status)"
node_stop 3
ok "a node started without etcd under node 1's name: once etcd answers it does not lead and says why"
poll_until 60 etcd_healthy || fail "etcd did not recover after member $M resumed"
put_v3() { printf 'v3' | ctlN 1 put app/w >/dev/null 2>&1; }
poll_until 60 put_v3 || fail "writes after member $M resumed"
poll_until 30 reads v3 || fail "node 2's container does not read v3 after member $M resumed"
ok "member $M resumed: writes reach node 2 as before"

# node 2 crashes (-9) and is started again at once under its name: its crashed run's claim goes
# with that run's lease (TTL 6 s), the new run waits for it and starts
eval "p2=\$NODE_PID_2"
kill -KILL "$p2"
wait "$p2" 2>/dev/null || true
NODE_PID_2=
node_start 2
poll_until 30 watch_open 2 || fail "node 2 restarted under its name: no open watch: $(ctlN 2 cluster status)"
[ "$(cstat 2 node)" = node-2 ] || fail "node 2 restarted as $(cstat 2 node)"
ok "node 2 killed and started again at once under its name node-2: it starts"
nodes_stop
for n in 1 2 3; do
	if grep -q "AddressSanitizer\|LeakSanitizer\|runtime error:" "$T/n$n.log"; then
		fail "node $n: a sanitizer reported: $(grep -m 3 "Sanitizer\|runtime error:" "$T/n$n.log")"
	fi
done
ok "every node stopped cleanly"
