# shellcheck shell=sh
# etcd_lib.sh: a real 3-member etcd cluster on loopback ports for a test (sourced after
# lib.sh). Data dirs under $T/etcd, ports chosen free, members started by the test and killed
# by pid at cleanup (add etcd_cleanup to EXTRA_CLEANUP).
#   etcd_start_cluster     starts members 1..3 and waits until all are healthy
#   etcd_kill N / etcd_start N   kills member N (-9, by pid) / starts it again (same data dir)
#   ETCD_URLS              http://127.0.0.1:C1,...  (client URLs of the three members)
#   ETCD_URL_N             one member's client URL
#   etcd_ctl ARGS...       etcdctl against every member
# and the secretd nodes of a cluster test (node N: $T/nN/state, $T/nN/run, log $T/nN.log; the
# test sets KEY and CL, starts its nodes its own way and records each pid in NODE_PID_N):
#   node_init N            secretd init of node N with $KEY into cluster $CL on $ETCD_URLS
#   node_up N / ctlN N ARGS...   node N answers / secretctl against node N's admin socket
#   metric N NAME          a metric of node N (replaces lib.sh's metric in cluster tests)
#   node_stop N / nodes_stop     SIGTERM (SIGKILL after 10 s), waited for
#   refused WHAT OUT PATTERN     the command (exit status in $rc) failed and OUT says PATTERN
need_etcd() {
	need_cmd etcd
	need_cmd etcdctl
}

# etcd_free_ports N: N free TCP ports on 127.0.0.1 (bound and released at once by the kernel's
# choice).
etcd_free_ports() {
	python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

ETCD_PIDS=""
etcd_start_cluster() {
	# shellcheck disable=SC2046 # six numbers, split on purpose
	set -- $(etcd_free_ports 6)
	ETCD_C1=$1 ETCD_C2=$2 ETCD_C3=$3 ETCD_P1=$4 ETCD_P2=$5 ETCD_P3=$6
	ETCD_URL_1=http://127.0.0.1:$ETCD_C1
	ETCD_URL_2=http://127.0.0.1:$ETCD_C2
	ETCD_URL_3=http://127.0.0.1:$ETCD_C3
	ETCD_URLS=$ETCD_URL_1,$ETCD_URL_2,$ETCD_URL_3
	ETCD_INITIAL="m1=http://127.0.0.1:$ETCD_P1,m2=http://127.0.0.1:$ETCD_P2,m3=http://127.0.0.1:$ETCD_P3"
	mkdir -p "$T/etcd"
	for n in 1 2 3; do etcd_start "$n"; done
	poll_until 60 etcd_healthy || fail "etcd did not become healthy: $(tail -n 5 "$T/etcd/m1.log")"
}

etcd_start() {
	c='' p=''
	eval "c=\$ETCD_C$1 p=\$ETCD_P$1"
	etcd --name "m$1" --data-dir "$T/etcd/m$1" \
		--listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
		--listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
		--initial-cluster "$ETCD_INITIAL" --initial-cluster-token "sdt-$$" \
		--initial-cluster-state new >>"$T/etcd/m$1.log" 2>&1 &
	eval "ETCD_PID_$1=$!"
	ETCD_PIDS="$ETCD_PIDS $!"
}

etcd_kill() {
	eval "pid=\$ETCD_PID_$1"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

etcd_ctl() { ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=3s --endpoints="$ETCD_URLS" "$@"; }
etcd_healthy() { etcd_ctl endpoint health >/dev/null 2>&1; }

etcd_cleanup() {
	for pid in $ETCD_PIDS; do kill -KILL "$pid" 2>/dev/null || true; done
	for pid in $ETCD_PIDS; do wait "$pid" 2>/dev/null || true; done
}

# etcd_pause N / etcd_resume N: SIGSTOP / SIGCONT member N (a member frozen or cut off from its
# peers: its sockets stay open, TCP keepalive still answered by the kernel, nothing served)
etcd_pause() { eval "pid=\$ETCD_PID_$1"; kill -STOP "$pid"; }
etcd_resume() { eval "pid=\$ETCD_PID_$1"; kill -CONT "$pid" 2>/dev/null || true; }
# etcd_member URL: the number N of the member whose client URL is URL (empty when none)
etcd_member() {
	for n in 1 2 3; do
		u=""
		eval "u=\$ETCD_URL_$n"
		[ "$u" = "$1" ] && { echo "$n"; return 0; }
	done
}

node_init() {
	"$SECRETD" init --state-dir "$T/n$1/state" --key-file "$KEY" --etcd "$ETCD_URLS" \
		--cluster "$CL" >"$T/n$1.init" 2>&1 || fail "init node $1: $(cat "$T/n$1.init")"
}
node_up() { curl -sf --unix-socket "$T/n$1/run/admin.sock" http://x/healthz >/dev/null 2>&1; }
ctlN() { n=$1; shift; SECRETD_SOCKET="$T/n$n/run/admin.sock" "$SECRETCTL" "$@"; }
metric() { curl -sf --unix-socket "$T/n$1/run/admin.sock" http://x/metrics | awk -v m="$2" '$1 == m { print $2 }'; }
node_stop() {
	eval "pid=\${NODE_PID_$1:-}"
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && { kill -KILL "$pid" 2>/dev/null; break; }
		sleep 0.05
	done
	wait "$pid" 2>/dev/null || true
	eval "NODE_PID_$1="
}
nodes_stop() { for n in 1 2 3; do node_stop "$n"; done; }
refused() {
	[ "$rc" != 0 ] || fail "$1: exit 0: $(cat "$2")"
	grep -q "$3" "$2" || fail "$1: no clear message (want '$3'): $(cat "$2")"
}
