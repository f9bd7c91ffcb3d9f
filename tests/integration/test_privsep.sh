#!/bin/sh
# The privilege split, first slice (issue #14 item 1): workload.sock is served by an unprivileged
# server process that holds no key and relays each request, with the client's connection, to the
# daemon process. Real daemon, a docker-shaped container (own cgroup, pid and mount namespaces).
#   privileges  the server's uid is not 0, CapEff/CapPrm 0, NoNewPrivs 1, no fd into the state
#               dir or to the key file
#   memory      after a container read its granted secret through the API, the server's memory
#               (/proc/PID/mem) holds neither the key file's bytes nor an ungranted value
#   kills       kill -9 of the server 10 times while the container reads in a loop: restarted
#               each time, reads resume, no wrong value, failed reads bounded
#   exec        a process reads through a keep-alive connection, execs another binary and reads
#               again on the same connection: identified once per connection, its second read
#               is audited with the new binary (never the identity cached from before the exec)
#   hostile     a hostile server (test hook) asks for an ungranted secret with a real client's
#               connection: refused, counted, logged; it names connections that are not open
#               (made-up handles, a connection whose client closed, one it reported closed, a
#               closed one's handle after its slot was reused): refused and counted; truncated /
#               oversized / wrong-version / wrong-direction / fd-less messages: refused, server
#               restarted, daemon alive
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_cgroup2
need_cmd unshare
need_cmd nsenter
need_cmd python3
need_cmd curl
EXTRA_CLEANUP='touch "$T/pub/stop" 2>/dev/null; [ -n "${LOOP:-}" ] && wait "$LOOP" 2>/dev/null; cg_cleanup'
PY3=python3
for p in /usr/bin/python3 /usr/local/bin/python3; do [ -x "$p" ] && { PY3=$p; break; }; done
D=$(cd "$(dirname "$0")" && pwd)

# shared with the unprivileged (hostile) server: its script and a directory it may write
chmod 0711 "$T"
mkdir -m 0777 "$T/pub"
cp "$D/privsep_hostile.py" "$T/pub/hostile.py"
sed -i "1s|.*|#!$PY3|" "$T/pub/hostile.py"
chmod 0755 "$T/pub/hostile.py"


sd_start
W=$SD_WORKLOAD
GRANTED="granted-$(hex64)"
one_mounted_container "$GRANTED"
UNGRANTED="ungranted-$(hex64)"
printf %s "$UNGRANTED" | ctl put other/x >/dev/null || fail "put other/x"
aread() { cexec "$PA" "$cgA" curl -s -m 10 --unix-socket "$W" "http://x/v1/self/secrets/$1"; }
[ "$(aread app/a)" = "$GRANTED" ] || fail "container A cannot read app/a through the API"
[ "$(aread other/x)" = '{"error":"no such secret"}' ] || fail "other/x is not refused to A"

# --- privileges ---
SP=$(sd_server_pid)
[ -n "$SP" ] || fail "no server process under the daemon process $SD_WPID"
st=/proc/$SP/status
awk '/^Uid:/ { for (i = 2; i <= 5; i++) if ($i == 0) exit 1 }' "$st" || fail "server uid: $(grep Uid "$st")"
awk '/^Gid:/ { for (i = 2; i <= 5; i++) if ($i == 0) exit 1 }' "$st" || fail "server gid: $(grep Gid "$st")"
[ "$(awk '/^CapEff:/ { print $2 }' "$st")" = 0000000000000000 ] || fail "CapEff: $(grep CapEff "$st")"
[ "$(awk '/^CapPrm:/ { print $2 }' "$st")" = 0000000000000000 ] || fail "CapPrm: $(grep CapPrm "$st")"
[ "$(awk '/^NoNewPrivs:/ { print $2 }' "$st")" = 1 ] || fail "NoNewPrivs: $(grep NoNewPrivs "$st")"
STATE=$(realpath "$T/state")
KEY=$(realpath "$T/keys/master.key")
for l in /proc/"$SP"/fd/*; do
	t=$(readlink "$l") || continue
	case "$t" in
	"$STATE" | "$STATE"/* | "$KEY" | "$T/keys"*) fail "the server holds $t open ($l)" ;;
	esac
done
hz=$(curl -s --unix-socket "$SECRETD_SOCKET" http://x/healthz)
[ "$(printf %s "$hz" | $PY3 -c 'import json,sys; s=json.load(sys.stdin)["server"]; print(s["running"], s["pid"])')" = "True $SP" ] ||
	fail "admin /healthz does not name the running server $SP: $hz"
ok "the server process $SP: uid $(awk '/^Uid:/ { print $2 }' "$st"), CapEff/CapPrm 0, NoNewPrivs 1, no fd into the state dir or to the key file"

# --- memory ---
# A marker the server must hold (it parsed it from a request) proves the scan reads its memory.
MARK="marker-$(hex64)"
aread "$MARK" >/dev/null
hexof() { od -An -tx1 -v | tr -d ' \n'; }
KEYHEX=$(hexof <"$KEY")
[ ${#KEYHEX} -ge 64 ] || fail "key file unreadable"
res=$($PY3 "$D/memscan.py" "$SP" "$(printf %s "$MARK" | hexof)" "$KEYHEX" \
	"$(printf %s "$UNGRANTED" | hexof)" "$(printf %s "$GRANTED" | hexof)" 2>"$T/scan.err") ||
	fail "cannot read the server's memory: $(cat "$T/scan.err")"
set -- $res
[ "$1" = found ] || fail "the scan does not see the server's memory (the request's marker is absent)"
[ "$2" = absent ] || fail "the server's memory holds the master key"
[ "$3" = absent ] || fail "the server's memory holds a value granted to no container"
ok "the server's memory ($(cat "$T/scan.err")): no master key, no ungranted value (the granted value read through it: $4)"

# --- kill -9 of the server, 10 times, while the container reads through the API ---
rm -f "$T/pub/reads" "$T/pub/stop"
cexec "$PA" "$cgA" sh -c 'while [ ! -e "$1/stop" ]; do
	v=$(curl -s -m 10 --unix-socket "$2" -w " %{http_code}" http://x/v1/self/secrets/app/a)
	echo "$v" >>"$1/reads"
done' sh "$T/pub" "$W" &
LOOP=$!
nreads() { [ -f "$T/pub/reads" ] && wc -l <"$T/pub/reads" || echo 0; }
more_reads() { [ "$(nreads)" -ge "$1" ]; }
poll_for 30 more_reads 5 || fail "the reader does not read"
restarts0=$(metric secretd_server_restarts_total)
for i in 1 2 3 4 5 6 7 8 9 10; do
	old=$(sd_server_pid)
	kill -9 "$old"
	newpid() { _s=$(sd_server_pid); [ -n "$_s" ] && [ "$_s" != "$old" ]; }
	poll_for 30 newpid || fail "kill $i: no new server process"
	n=$(nreads)
	poll_for 30 more_reads $((n + 3)) || fail "kill $i: reads did not resume"
done
touch "$T/pub/stop"
wait "$LOOP" || true
LOOP=
total=$(nreads)
good=$(grep -c -x -F "$GRANTED 200" "$T/pub/reads" || true)
wrong=$(grep ' 200$' "$T/pub/reads" | grep -v -x -F "$GRANTED 200" | wc -l)
failed=$((total - good - wrong))
[ "$wrong" -eq 0 ] || fail "$wrong read(s) returned a wrong value: $(grep ' 200$' "$T/pub/reads" | grep -v -x -F "$GRANTED 200" | head -3)"
[ "$failed" -le 20 ] || fail "$failed of $total reads failed across 10 kills (bound: 2 per kill)"
restarts=$(($(metric secretd_server_restarts_total) - restarts0))
[ "$restarts" -ge 10 ] || fail "secretd_server_restarts_total grew by $restarts, not 10"
ok "server killed -9 ten times during $total reads: restarted each time, $failed read(s) failed (a request in flight at the kill: connection reset), none returned a wrong value"

# --- exec on a keep-alive connection: the daemon keeps the connection's identity (from its
# CONNKEY), never a stale one: the process behind it is checked per request and its exe is the
# one it runs now. Host pid namespace (nsenter -m does not fork): $$ is the pid the daemon sees.
PYBIN=/usr/bin/python3
[ -x "$PYBIN" ] || PYBIN=$PY3
PYX=$(basename "$(readlink -f "$PYBIN")")
SHX=$(basename "$(readlink -f /bin/sh)")
[ "$PYX" != "$SHX" ] || fail "python3 and sh are the same binary"
cat >"$T/execread.py" <<'EOF'
import os, socket, sys
REQ = b"GET /v1/self/secrets/app/a HTTP/1.1\r\nHost: x\r\n\r\n"
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(REQ)
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, body = buf.split(b"\r\n\r\n", 1)
lines = head.split(b"\r\n")
n = [int(l.split(b":")[1]) for l in lines if l.lower().startswith(b"content-length:")][0]
while len(body) < n:
    body += s.recv(4096)
print(lines[0].decode(), body.decode(), flush=True)
# the same connection, kept by another binary: sh writes the same request on fd 3
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)  # dup2 onto itself (the socket may be fd 3) keeps close-on-exec
os.execv("/bin/sh", ["sh", sys.argv[2]])
EOF
printf 'printf "GET /v1/self/secrets/app/a HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" >&3 && read -r l <&3 && echo "$l"\n' >"$T/execread.sh"
nsenter -t "$PA" -m -- sh -c 'echo $$ >"$0/cgroup.procs" || exit 1
	echo $$ >"$1/exec.pid"
	exec "$2" "$1/execread.py" "$3" "$1/execread.sh"' "$cgA" "$T" "$PYBIN" "$W" >"$T/exec.out" 2>&1 ||
	fail "the exec chain failed: $(cat "$T/exec.out")"
[ "$(sed -n 1p "$T/exec.out")" = "HTTP/1.1 200 OK $GRANTED" ] || fail "the read before the exec: $(cat "$T/exec.out")"
case "$(sed -n 2p "$T/exec.out")" in "HTTP/1.1 200 OK"*) ;; *) fail "the read after the exec: $(cat "$T/exec.out")" ;; esac
EP=$(cat "$T/exec.pid")
audit_settled
got=$(ctl audit --json | $PY3 -c '
import json, os, sys
for line in sys.stdin:
    r = json.loads(line)
    if r["action"] == "read" and r["pid"] == int(sys.argv[1]):
        for _ in range(r.get("count", 1)):
            print(os.path.basename(r["exe"]) or "-", r["result"])' "$EP" | tr '\n' ' ')
[ "$got" = "$PYX ok $SHX ok " ] || fail "pid $EP's two reads on one connection audited as '$got', want '$PYX ok $SHX ok '"
ok "exec on a keep-alive connection: both reads answered, audited as $PYX then $SHX (the identity kept per connection, the process checked per request)"

# --- a hostile server, over the real channel ---
sd_stop
mkdir -m 0700 "$T/faults"
export SECRETD_TEST_FAULTS=1 SECRETD_TEST_FAULT_DIR="$T/faults" SECRETD_TEST_SERVER_EXEC="$T/pub/hostile.py" SECRETD_TEST_PUB="$T/pub"
# (not sd_start: it waits for workload.sock's /healthz, which this server never answers)
"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --key-file "$T/keys/master.key" \
	>>"$SD_LOG" 2>&1 &
SD_PID=$!
admin_up() { curl -sf --unix-socket "$SECRETD_SOCKET" http://x/healthz >/dev/null 2>&1; }
poll_for 30 admin_up || fail "the daemon did not start with the hostile server"
SD_WPID=$(sd_worker_pid)
unset SECRETD_TEST_FAULTS SECRETD_TEST_FAULT_DIR SECRETD_TEST_SERVER_EXEC SECRETD_TEST_PUB
# a real client of container A (granted app/a, not other/x) whose connection the hostile server uses
cexec "$PA" "$cgA" curl -s -m 20 --unix-socket "$W" http://x/v1/self >/dev/null 2>&1 &
CURL=$!
have_read() { [ -s "$T/pub/hostile.read" ]; }
poll_for 30 have_read || fail "the hostile server did not get its answers: $(ls -la "$T/pub"; cat "$T/pub/hostile.err" 2>/dev/null)"
wait "$CURL" 2>/dev/null || true
first=$(sed -n 1p "$T/pub/hostile.read")
[ "$first" = '404 {"error":"no such secret"}' ] || fail "ungranted read through the channel answered: $first"
grep -q -F "$UNGRANTED" "$T/pub/hostile.read" && fail "the daemon gave the hostile server an ungranted value"
[ "$(sed -n 2p "$T/pub/hostile.read")" = "200 $GRANTED" ] ||
	fail "the granted read through the channel: $(sed -n 2p "$T/pub/hostile.read")"
# made up (2), open (200), its client closed, reported closed, the closed one's handle after its
# slot was reused, the new one's (200), the real client's after its CLOSE
[ "$(sed -n 3p "$T/pub/hostile.read")" = "403 403 200 403 403 403 200 403" ] ||
	fail "handles of connections not open were answered: $(sed -n 3p "$T/pub/hostile.read")"
at_step() { [ "$(cat "$T/pub/step" 2>/dev/null || echo 0)" -ge "$1" ]; }
poll_for 60 at_step 6 || fail "the daemon did not restart the hostile server after each bad message (step $(cat "$T/pub/step"))"
curl -sf --unix-socket "$SECRETD_SOCKET" http://x/healthz >/dev/null || fail "the daemon process is not serving"
[ "$(sd_worker_pid)" = "$SD_WPID" ] || fail "the daemon process was restarted"
refused=$(metric secretd_server_refused_total)
[ "$refused" -ge 12 ] || fail "secretd_server_refused_total is $refused (1 ungranted read + 6 handles of connections not open + 5 bad messages)"
bad=$(metric secretd_server_bad_handles_total)
[ "$bad" -eq 6 ] || fail "secretd_server_bad_handles_total is $bad, not 6"
hostile=$(grep -c "broke the protocol" "$SD_LOG" || true)
[ "$hostile" -ge 5 ] || fail "$hostile bad messages logged, not 5"
grep -q "refused 1 request" "$SD_LOG" || fail "the ungranted read is not logged"
ok "hostile server: an ungranted read with a real client's connection is refused (404, no value), logged and counted; 6 requests naming connections not open (made-up handles, a client that closed, a reported close, a reused slot) are refused (403) and counted; truncated, oversized, wrong-version, REPLY and fd-less messages are refused and the server restarted ($hostile times); the daemon process kept serving"

# --- a server that cannot start: admin /healthz says so (503), it is retried with back-off ---
sd_stop
export SECRETD_TEST_FAULTS=1 SECRETD_TEST_FAULT_DIR="$T/faults" SECRETD_TEST_SERVER_EXEC=/bin/false
"$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" --key-file "$T/keys/master.key" \
	>>"$SD_LOG" 2>&1 &
SD_PID=$!
unset SECRETD_TEST_FAULTS SECRETD_TEST_FAULT_DIR SECRETD_TEST_SERVER_EXEC
admin_503() {
	hz=$(curl -s -w ' %{http_code}' --unix-socket "$SECRETD_SOCKET" http://x/healthz) &&
		case $hz in *'workload server unavailable: not running'*' 503') ;; *) return 1 ;; esac
}
poll_for 30 admin_503 || fail "admin /healthz with a server that cannot start: $hz"
restarts_grow() { [ "$(metric secretd_server_restarts_total)" -ge 3 ]; }
poll_for 30 restarts_grow || fail "the server that cannot start is not retried: $(metric secretd_server_restarts_total)"
grep -q 'server: process [0-9]* exited with status 1' "$SD_LOG" || fail "the server's exit is not logged"
ok "a server process that cannot start: admin /healthz answers 503 naming it, it is retried with back-off and logged"

# --- an answer larger than the server's receive buffer (bug found here: the server could not
# take it, died, and the client saw its connection closed) is answered 500, the server lives ---
sd_stop
sd_start --max-value 1024
W=$SD_WORKLOAD
# 300 names of ~240 bytes: a LIST answer of ~72 KiB, over --max-value + 64 KiB
P="big/$(printf '%0240d' 0)-"
$PY3 "$D/bulk_put.py" "$SECRETD_SOCKET" "$P" 0 300 >/dev/null || fail "bulk put"
ctl grant 'big/*' "id:$A" >/dev/null || fail "grant big/*"
SP=$(sd_server_pid)
r0=$(metric secretd_server_restarts_total)
ans=$(cexec "$PA" "$cgA" curl -s -m 20 --unix-socket "$W" -w ' %{http_code}' http://x/v1/self/secrets) || true
case "$ans" in
*'too large'*' 500') ;;
*) fail "a LIST over the relay's limit answered: $(printf %s "$ans" | cut -c1-200)" ;;
esac
[ "$(metric secretd_server_restarts_total)" = "$r0" ] && [ "$(sd_server_pid)" = "$SP" ] ||
	fail "the server died on a large answer"
[ "$(aread app/a)" = "$GRANTED" ] || fail "A cannot read after the large answer"
ok "an answer over the relay's limit (a list of 300 long names, --max-value 1024) is answered 500 with the reason; the server lives"

# --- the daemon's table of the server's connections is emptied by the server's CLOSEs: with
# --max-conns 2 it holds 9 (4 x 2 + 1); 60 connections one after another, some closed by the
# client before the server answered, are all served (a missing CLOSE fills it in 9) ---
sd_stop
sd_start --max-conns 2 --max-conns-per-ident 2
W=$SD_WORKLOAD
i=0
while [ $i -lt 60 ]; do
	if [ $((i % 3)) = 0 ]; then
		# a client that connects and goes away at once
		$PY3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.close()' "$W" ||
			fail "connect $i"
	else
		[ "$(aread app/a)" = "$GRANTED" ] || fail "read $i of 60 with a table of 9 connections: $(aread app/a)"
	fi
	i=$((i + 1))
done
[ "$(metric secretd_server_bad_handles_total)" = 0 ] || fail "bad handles counted for an honest server: $(metric secretd_server_bad_handles_total)"
ok "60 connections one after another with --max-conns 2 (a table of 9): every read served, the server's CLOSEs empty the table"
