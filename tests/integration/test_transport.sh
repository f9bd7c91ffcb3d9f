#!/bin/sh
# The HTTP transport under misuse (issue #12 items 7-10): bad request bytes, the timing of a
# refused read, a socket that must keep accepting after a flood, fairness between containers
# and host users, the global cap, client retries and slow senders. Real daemon, real cgroups.
# TRANSPORT_PARTS (space-separated) runs a subset: input timing wedge fds fairness cap retry slow.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_cgroup2
need_cmd unshare
need_cmd nsenter
need_cmd setpriv
need_cmd python3
# Holders outside a container leave when the release file appears (also on failure).
EXTRA_CLEANUP='touch "$T/pub/release" 2>/dev/null; for p in ${HOLDERS:-}; do wait "$p" 2>/dev/null; done; cg_cleanup'
PARTS=${TRANSPORT_PARTS:-input timing wedge fds fairness cap retry slow}
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# Shared with unprivileged holders: the helper, ready/release files, the socket's directory.
chmod 0711 "$T"
mkdir -m 0777 "$T/pub"
cp "$(dirname "$0")/httpraw.py" "$T/pub/httpraw.py"
chmod 0755 "$T/pub/httpraw.py"
# A python3 any user can run (root's may be a shim under /root).
PY3=python3
for p in /usr/bin/python3 /usr/local/bin/python3; do [ -x "$p" ] && { PY3=$p; break; }; done
RAW="$PY3 $T/pub/httpraw.py"

sd_start
W="$SD_WORKLOAD"
A="$SECRETD_SOCKET"
chmod 0755 "$T/run"

# metric NAME_AND_LABELS: its value (0 if absent)
metric() { curl -s --unix-socket "$A" http://x/metrics | awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'; }
# send SOCK 'printf-format': sends the raw request, sets ANS to "STATUS BODY"
send() {
	printf "$2" >"$T/req"
	ANS=$($RAW send "$1" "$T/req" 10) || fail "connection left open after the answer: $ANS"
}
# hold NAME SOCK N [as ...]: N idle connections kept until release_all; waits until they are open
HOLDERS=""
hold() {
	_n=$1 _s=$2 _c=$3
	shift 3
	rm -f "$T/pub/ready.$_n"
	"$@" $RAW hold "$_s" "$_c" "$T/pub/ready.$_n" "$T/pub/release" >/dev/null 2>&1 &
	HOLDERS="$HOLDERS $!"
	i=0
	until [ -s "$T/pub/ready.$_n" ]; do
		i=$((i + 1)); [ $i -gt 1200 ] && fail "holder $_n did not connect"
		sleep 0.05
	done
}
release_all() {
	touch "$T/pub/release"
	for p in $HOLDERS; do wait "$p" 2>/dev/null || true; done
	HOLDERS=""
	rm -f "$T/pub/release"
}
# cexec_within S PID DIR CMD...: cexec, killed after S seconds (the bound a test allows)
cexec_within() {
	_s=$1 _p=$2 _d=$3
	shift 3
	timeout "$_s" nsenter -t "$_p" -m -p -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$_d" "$@"
}

printf 'alpha' | ctl put fair/a >/dev/null
printf 'bravo' | ctl put fair/b >/dev/null
mk_cgroup "$CG2" "/docker/$(hex64)"; cgA=$CG
mk_cgroup "$CG2" "/docker/$(hex64)"; cgB=$CG
start_container "$cgA" || fail "container A did not start"; PA=$CPID
start_container "$cgB" || fail "container B did not start"; PB=$CPID
IDA=$(basename "$cgA"); IDB=$(basename "$cgB")
ctl grant fair/a "id:$IDA" >/dev/null
ctl grant fair/b "id:$IDB" >/dev/null
readB() { cexec_within "$1" "$PB" "$cgB" "$SECRETCTL" --socket "$W" read fair/b 2>"$T/errB"; }

# --- item 10: request bytes ---
if part input; then
	send "$A" 'PUT /v1/secrets/in%%00jected HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi'
	case $ANS in 400*NUL*) ;; *) fail "PUT with %%00 in the name: $ANS" ;; esac
	ctl ls | grep -q '^in ' && fail "PUT .../in%00jected stored secret 'in'"
	send "$W" 'GET /v1/self/secrets/fair%%00x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	case $ANS in 400*) ;; *) fail "workload GET with %%00: $ANS" ;; esac
	# raw NUL bytes, also one followed by a fake version
	send "$A" 'PUT /v1/secrets/raw\000x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi'
	case $ANS in 400*NUL*) ;; *) fail "PUT with a raw NUL in the name: $ANS" ;; esac
	send "$A" 'PUT /v1/secrets/raw\000HTTP/1.1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi'
	case $ANS in 400*NUL*) ;; *) fail "PUT with a raw NUL and a fake version: $ANS" ;; esac
	send "$A" 'PUT /v1/secrets/raw?keep=1\000x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi'
	case $ANS in 400*NUL*) ;; *) fail "PUT with a raw NUL in an argument: $ANS" ;; esac
	ctl ls | grep -q '^raw ' && fail "a raw NUL in the URL stored secret 'raw'"
	send "$A" 'GET /v1/values/fair/a?version=1%%00x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	case $ANS in 400*) ;; *) fail "version=1%%00x: $ANS" ;; esac
	for v in -1 %%201 +1 1x 0 18446744073709551616 99999999999999999999999 ''; do
		send "$A" "GET /v1/values/fair/a?version=$v HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
		case $ANS in 400*version*) ;; *) fail "version=$v: $ANS" ;; esac
	done
	send "$A" 'GET /v1/values/fair/a?version=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	[ "$ANS" = "200 alpha" ] || fail "version=1: $ANS"
	send "$A" 'PUT /v1/secrets/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'
	case $ANS in 400*Content-Length*Transfer-Encoding*) ;; *) fail "CL + TE: $ANS" ;; esac
	ctl ls | grep -q '^smuggled ' && fail "a request with CL and TE stored its body"
	# A chunk size of 2^64-1: answered and closed at once, not after the idle timeout.
	send "$A" 'PUT /v1/secrets/huge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabcdefgh'
	case $ANS in 4??*) ;; *) fail "chunk size 2^64-1: $ANS" ;; esac
	ctl ls | grep -q '^huge ' && fail "the huge chunk stored something"
	ok "%00 or a raw NUL in a URL, a loose version, CL+TE and a 2^64-1 chunk are refused (400/411), nothing stored"
fi

# --- item 9: a refused read costs the same for a missing and an existing secret ---
if part timing; then
	printf 'v' | ctl put timing/exists >/dev/null
	python3 - "$A" <<'PY' || fail "could not add 2000 grants"
import json, sys
sys.path.insert(0, sys.argv[1].rsplit("/run/", 1)[0] + "/pub")
from httpraw import connect, read_answer
s = connect(sys.argv[1], 60)
for i in range(2000):
    b = json.dumps({"secret": "timing/exists", "selector": "id:%064x" % (i + 1)}).encode()
    s.sendall(b"POST /v1/grants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(b) + b)
    st, body = read_answer(s)
    if st not in (200, 201):
        sys.exit("grant %d: %s %s" % (i, st, body))
PY
	# 3000 each, interleaved on one connection (load hits both alike); medians in microseconds.
	set -- $($RAW timing "$W" /v1/self/secrets/timing/exists /v1/self/secrets/timing/missing 3000)
	echo "# medians with 2000 grants: existing-ungranted $1 us, missing $2 us"
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < 2 * b && b < 2 * a) }' ||
		fail "existence shows in the time of a refusal: existing $1 us vs missing $2 us"
	ok "a refused read costs the same for an existing and a missing name (2000 grants)"
fi

# --- item 7: a flood of connections from a process that then dies does not wedge the socket ---
if part wedge; then
	(ulimit -n 4096; exec $RAW hold "$W" 1000 "$T/pub/ready.flood") >/dev/null 2>&1 &
	FP=$!
	i=0
	until [ -s "$T/pub/ready.flood" ]; do
		i=$((i + 1)); [ $i -gt 1200 ] && fail "flood holder did not connect"
		sleep 0.05
	done
	# All its connections end while the daemon is stopped: it then sees them all at once.
	kill -STOP "$SD_WPID"
	kill -9 "$FP"; wait "$FP" 2>/dev/null || true
	kill -CONT "$SD_WPID"
	t0=$(date +%s)
	i=0
	until curl -sf -m 2 --unix-socket "$W" http://x/healthz >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt 60 ] && fail "workload.sock wedged after a flood: $(ss -xl | grep "$W" | awk '{ print "accept queue " $3 "/" $4 }')"
		sleep 0.1
	done
	[ "$(readB 15)" = bravo ] ||
		fail "a container cannot read after the flood: $(cat "$T/errB" 2>/dev/null)"
	ok "$(cat "$T/pub/ready.flood") connections from a process that died: the socket keeps accepting ($(($(date +%s) - t0)) s)"
fi

# --- item 7: out of file descriptors, the socket still moves and recovers ---
if part fds && command -v prlimit >/dev/null 2>&1; then
	# the process that accepts workload.sock's connections: the server process (privsep)
	# (unprivileged: prlimit as its own uid, which needs no CAP_SYS_RESOURCE)
	AP=$(sd_server_pid)
	AP=${AP:-$SD_WPID}
	APU=$(stat -c %u "/proc/$AP")
	plim() { setpriv --reuid "$APU" --regid "$(stat -c %g "/proc/$AP")" --clear-groups prlimit "$@"; }
	soft=$(plim --pid "$AP" --nofile --output SOFT --noheadings | tr -d ' ')
	lim=$(($(ls "/proc/$AP/fd" | wc -l) + 16))
	plim --pid "$AP" --nofile="$lim:" || fail "prlimit"
	for u in 1011 1012 1013 1014; do
		hold "fd$u" "$W" 10 setpriv --reuid "$u" --regid "$u" --clear-groups
	done
	ans=$(curl -s -m 10 --unix-socket "$W" http://x/healthz) || true
	release_all
	i=0
	until curl -sf -m 2 --unix-socket "$W" http://x/healthz >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt 60 ] && fail "workload.sock did not recover after running out of fds (first answer: $ans)"
		sleep 0.1
	done
	[ "$(metric 'secretd_connections_dropped_total{reason="accept_error"}')" -ge 1 ] ||
		fail "running out of fds is not counted"
	plim --pid "$AP" --nofile="$soft:" || fail "prlimit (restore)"
	ok "out of fds: the waiting peer is refused (${ans:-no answer}), accepting resumes"
fi

# --- item 8: limits per identity (container, else uid), not per uid ---
if part fairness; then
	hold A "$W" 40 cexec "$PA" "$cgA"
	[ "$(readB 15)" = bravo ] || fail "container A's idle connections lock out container B: $(cat "$T/errB")"
	release_all
	hold U "$W" 300 setpriv --reuid 1000 --regid 1000 --clear-groups
	[ "$(readB 15)" = bravo ] || fail "uid 1000's 300 idle connections lock out container B: $(cat "$T/errB")"
	[ "$(metric 'secretd_connections{api="workload"}')" -le 40 ] || fail "uid 1000 holds more than its share"
	release_all
	ok "a container's or a host user's idle connections do not lock out another container"
fi

# --- item 8: the global cap closes the largest holder's oldest idle connection ---
if part cap; then
	for u in 1001 1002 1003 1004 1005 1006 1007 1008; do
		hold "cap$u" "$W" 32 setpriv --reuid "$u" --regid "$u" --clear-groups
	done
	[ "$(readB 15)" = bravo ] || fail "8 host users x 32 idle connections lock out container B: $(cat "$T/errB")"
	[ "$(metric 'secretd_connections_dropped_total{reason="evicted_idle"}')" -ge 1 ] ||
		fail "no idle connection was closed for room"
	release_all
	ok "a full socket closes an idle connection of the largest holder for a new one"
fi

# --- item 8: clients retry 429 with backoff ---
if part retry; then
	hold R "$W" 32 cexec "$PA" "$cgA"
	before=$(metric 'secretd_connections_dropped_total{reason="identity_limit"}')
	cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" read fair/a >"$T/retry.out" 2>"$T/retry.err" &
	RP=$!
	i=0
	while [ "$(metric 'secretd_connections_dropped_total{reason="identity_limit"}')" -le "$before" ]; do
		i=$((i + 1)); [ $i -gt 300 ] && fail "container A's 33rd connection was not refused"
		sleep 0.05
	done
	release_all
	wait "$RP" || fail "secretctl did not retry the 429: $(cat "$T/retry.err")"
	[ "$(cat "$T/retry.out")" = alpha ] || fail "retried read: $(cat "$T/retry.out")"
	ok "a connection over the per-container limit gets 429 at once; secretctl retries and succeeds"
fi

# --- item 8: slow senders are bounded by the request deadline ---
if part slow; then
	sd_stop
	sd_start --request-timeout 3
	chmod 0755 "$T/run"
	t=$($RAW slow "$W" 0.2 30) || fail "a slow sender kept its connection: $t"
	awk -v t="$t" 'BEGIN { exit !(t >= 2.5) }' || fail "the slow sender was closed too early ($t s)"
	[ "$(metric 'secretd_connections_dropped_total{reason="request_deadline"}')" -ge 1 ] ||
		fail "the deadline close is not counted"
	ok "a sender trickling a request is closed at the request deadline ($t s, limit 3 s)"
fi
