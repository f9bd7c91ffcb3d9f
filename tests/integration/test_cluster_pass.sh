#!/bin/sh
# test_cluster_pass.sh: a cluster whose root key is a passphrase (issue #18: "the same root key
# file or passphrase"). A real 1-member etcd on a loopback port.
#  - the first node, initialised with --passphrase-file, creates the cluster; a second node with
#    the same passphrase joins it (its own init drew another KDF salt: the cluster's keyring
#    carries the first node's, and the joining node derives the same root key with it);
#  - refused with a clear message and a non-zero exit: a wrong passphrase, a key file's store
#    joining a passphrase cluster;
#  - both nodes run with their passphrase: a put on node 1 is read on node 2; node 2 restarted
#    (its root key derived again from the adopted salt) still reads it.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/etcd_lib.sh
. "$(dirname "$0")/etcd_lib.sh"
EXTRA_CLEANUP="nodes_stop; etcd_cleanup"
need_etcd
export SECRETD_KDF_TEST=1 # the smallest Argon2id limits: the test is about who holds which salt
NODE_PIDS=""

# shellcheck disable=SC2046
set -- $(etcd_free_ports 2)
URL=http://127.0.0.1:$1
mkdir -p "$T/etcd"
etcd --name a --data-dir "$T/etcd/a" \
	--listen-client-urls "$URL" --advertise-client-urls "$URL" \
	--listen-peer-urls "http://127.0.0.1:$2" --initial-advertise-peer-urls "http://127.0.0.1:$2" \
	--initial-cluster "a=http://127.0.0.1:$2" --initial-cluster-state new >>"$T/etcd/a.log" 2>&1 &
ETCD_PIDS=$!
ectl() { ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=5s --endpoints="$URL" "$@"; }
ehealthy() { ectl endpoint health >/dev/null 2>&1; }
poll_until 60 ehealthy || fail "etcd did not become healthy: $(tail -n 5 "$T/etcd/a.log")"
CL=sdp$$

printf 'correct horse battery staple\n' >"$T/pass"
printf 'another passphrase\n' >"$T/wrong"
chmod 600 "$T/pass" "$T/wrong"
# sd_cl init|run N PASSFILE ARGS...
sd_cl() {
	cmd=$1 n=$2 pf=$3
	shift 3
	if [ "$cmd" = run ]; then
		set -- --runtime-dir "$T/n$n/run" --no-keeper "$@"
		mkdir -p "$T/n$n/run"
	fi
	set -- "$cmd" --state-dir "$T/n$n/state" --passphrase-file "$pf" --etcd "$URL" --cluster "$CL" "$@"
	[ "${SD_CL_EXEC:-}" = 1 ] && exec "$SECRETD" "$@"
	"$SECRETD" "$@"
}
node_run() { # node_run N: runs node N with the right passphrase, waits until it answers
	(SD_CL_EXEC=1 && sd_cl run "$1" "$T/pass") >>"$T/n$1.log" 2>&1 &
	eval "NODE_PID_$1=$!"
	poll_until 60 node_up "$1" || fail "node $1 did not start: $(tail -n 5 "$T/n$1.log")"
}

sd_cl init 1 "$T/pass" >"$T/init1.out" 2>&1 || fail "init node 1: $(cat "$T/init1.out")"
grep -q "created cluster $CL" "$T/init1.out" || fail "node 1 did not create the cluster: $(cat "$T/init1.out")"
sd_cl init 2 "$T/pass" >"$T/init2.out" 2>&1 || fail "init node 2: $(cat "$T/init2.out")"
grep -q "joined cluster $CL" "$T/init2.out" || fail "node 2 did not join: $(cat "$T/init2.out")"
ok "a passphrase cluster: node 1 creates it, node 2 with the same passphrase joins"

rc=0
sd_cl init 3 "$T/wrong" >"$T/init3.out" 2>&1 || rc=$?
refused "a wrong passphrase" "$T/init3.out" "not this store's"
grep -q "another passphrase" "$T/init3.out" && fail "the passphrase was printed: $(cat "$T/init3.out")"
rc=0
"$SECRETD" init --state-dir "$T/n4/state" --key-file "$T/keys/n4.key" --etcd "$URL" --cluster "$CL" \
	>"$T/init4.out" 2>&1 || rc=$?
refused "a key file's store joining a passphrase cluster" "$T/init4.out" "every node needs what the first one was made with"
ok "refused with a clear message: a wrong passphrase, a key file's store"

node_run 1
node_run 2
printf 'pass-v1' | ctlN 1 put app/db >/dev/null || fail "put on node 1"
got2() { [ "$(ctlN 2 get app/db 2>/dev/null)" = pass-v1 ]; }
poll_until 30 got2 || fail "node 2 does not read node 1's put: $(tail -n 5 "$T/n2.log")"
node_stop 2
node_run 2
[ "$(ctlN 2 get app/db)" = pass-v1 ] || fail "node 2 restarted does not read the value"
printf 'pass-v2' | ctlN 2 put app/db >/dev/null || fail "put on node 2"
got1() { [ "$(ctlN 1 get app/db 2>/dev/null)" = pass-v2 ]; }
poll_until 30 got1 || fail "node 1 does not read node 2's put: $(tail -n 5 "$T/n1.log")"
ok "both nodes run with the passphrase: puts on either are read on the other, also after a restart"
