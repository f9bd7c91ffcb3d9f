#!/bin/sh
# The exe in FUSE-open audit records, now cached per process (broker/procwatch): a process that
# execs another binary is audited with the new one from its first open on, and a pid reused by
# another process neither inherits the old process's exe nor its cached open decision.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd unshare
need_cmd nsenter
need_cmd python3
EXTRA_CLEANUP=cg_cleanup

sd_start
grep -q "proc connector: exes of FUSE openers cached" "$SD_LOG" ||
	skip_or_fail "the daemon runs without the proc connector: $(grep -i connector "$SD_LOG")"
W="$SD_WORKLOAD"
one_mounted_container alpha

# opens PID: "exe result" of each fuse-open record of host pid PID, in order (once every record
# answered so far is written)
opens() {
	audit_settled
	ctl audit --json | python3 -c '
import json, os, sys
for line in sys.stdin:
    r = json.loads(line)
    if r["action"] == "fuse-open" and r["pid"] == int(sys.argv[1]):
        for _ in range(r.get("count", 1)):  # identical opens are coalesced into one record
            print(os.path.basename(r["exe"]) or "-", r["result"])' "$1"
}

SH=$(basename "$(readlink -f /bin/sh)")
# Debian's python, by path: a python3 found in PATH may be a wrapper script (pyenv) that execs
# the real one, which the audit rightly names instead
PYBIN=/usr/bin/python3
[ -x "$PYBIN" ] || skip_or_fail "needs $PYBIN"
PY=$(basename "$(readlink -f "$PYBIN")")

# --- one process, three images: sh reads twice (the second from the cache), then execs python,
# which reads twice and execs cat, which reads twice. Host pid namespace (nsenter -m does not
# fork): $$ is the pid the daemon sees.
i=0
while [ $i -lt 5 ]; do
	nsenter -t "$PA" -m -- sh -c '
		echo $$ >"$0/cgroup.procs" || exit 1
		echo $$ >"$1.pid"
		read x <"$2"; read y <"$2"
		exec "$3" -c "
import os, sys
f = sys.argv[1]
open(f).read(); open(f).read()
os.execv(\"/bin/cat\", [\"cat\", f, f])" "$2"' "$cgA" "$T/chain.$i" "$F" "$PYBIN" >"$T/chain.$i.out" ||
		fail "exec chain $i failed"
	[ "$(cat "$T/chain.$i.out")" = alphaalpha ] || fail "cat read: $(cat "$T/chain.$i.out")"
	i=$((i + 1))
done
i=0
while [ $i -lt 5 ]; do
	p=$(cat "$T/chain.$i.pid")
	got=$(opens "$p" | tr '\n' ' ')
	want="$SH ok $SH ok $PY ok $PY ok cat ok cat ok "
	[ "$got" = "$want" ] || fail "pid $p: audited as '$got', want '$want'"
	i=$((i + 1))
done
ok "exec: every open is audited with the exe that made it (sh, then python3, then cat; 5 times)"

# --- threads: FUSE names the calling thread; an open from a thread other than the main one
# (Go, Java, any thread pool) is checked through its thread group and allowed, and audited with
# the thread's id and the process's exe.
nsenter -t "$PA" -m -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$1" -c "
import sys, threading
out = []
def rd():
    out.append((threading.get_native_id(), open(sys.argv[1]).read()))
ts = [threading.Thread(target=rd) for _ in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
for tid, v in out: print(tid, v)" "$2"' "$cgA" "$PYBIN" "$F" >"$T/threads.out" 2>&1 || fail "threaded opens: $(cat "$T/threads.out")"
[ "$(awk '{print $2}' "$T/threads.out" | sort -u)" = alpha ] || fail "a thread could not read: $(cat "$T/threads.out")"
for tid in $(awk '{print $1}' "$T/threads.out"); do
	[ "$(opens "$tid")" = "$PY ok" ] || fail "thread $tid: audited as '$(opens "$tid")', want '$PY ok'"
done
ok "opens from non-main threads are allowed and audited with the thread id and the process's exe"

# --- a reused pid: X (sh, in A's cgroup) opens and exits; Y, forked with X's pid (via
# ns_last_pid), enters A's mount namespace but stays in a host cgroup, never execs, and opens the
# same file: it must be refused (X's cached "yes" is not Y's) and audited with its own exe.
cat >"$T/reuse.py" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
pa, cg, f = sys.argv[1], sys.argv[2], sys.argv[3]
nsfd = os.open(f"/proc/{pa}/ns/mnt", os.O_RDONLY)

def x():
    pid = os.fork()
    if pid == 0:
        with open(f"{cg}/cgroup.procs", "w") as c:
            c.write(str(os.getpid()))
        if libc.setns(nsfd, CLONE_NEWNS) != 0:
            os._exit(3)
        os.execv("/bin/sh", ["sh", "-c", 'read v <"$0"; [ "$v" = alpha ]', f])
    _, st = os.waitpid(pid, 0)
    return pid, os.waitstatus_to_exitcode(st)

def y(want):
    with open("/proc/sys/kernel/ns_last_pid", "w") as n:
        n.write(str(want - 1))
    pid = os.fork()
    if pid == 0:
        if os.getpid() != want:
            os._exit(9)
        if libc.setns(nsfd, CLONE_NEWNS) != 0:
            os._exit(3)
        try:
            open(f).read()
            os._exit(0)
        except PermissionError:
            os._exit(13)
        except OSError:
            os._exit(4)
    _, st = os.waitpid(pid, 0)
    return pid, os.waitstatus_to_exitcode(st)

for attempt in range(50):
    xp, xs = x()
    if xs != 0:
        sys.exit(f"X could not read: {xs}")
    yp, ys = y(xp)
    if yp == xp:
        print(xp, ys)
        sys.exit(0)
sys.exit("no pid reused in 50 attempts")
PY
out=$("$PYBIN" "$T/reuse.py" "$PA" "$cgA" "$F") || fail "pid reuse: $out"
xp=${out% *}
ys=${out#* }
[ "$ys" = 13 ] || fail "pid $xp reused by a process outside the container: open gave exit $ys, want EACCES (13)"
got=$(opens "$xp" | tr '\n' ' ')
want="$SH ok $PY denied "
[ "$got" = "$want" ] || fail "pid $xp: audited as '$got', want '$want'"
ok "a reused pid gets neither the old process's open decision nor its exe"

# --- the workload API (#15): a read's record names the caller's exe, now from procwatch too: a
# process reads on one keep-alive connection, execs sh, which reads on the same connection; the
# two records name python3, then sh.
reads() {
	audit_settled
	ctl audit --json | python3 -c '
import json, os, sys
for line in sys.stdin:
    r = json.loads(line)
    if r["action"] == "read" and r["pid"] == int(sys.argv[1]):
        for _ in range(r.get("count", 1)):
            print(os.path.basename(r["exe"]) or "-", r["result"])' "$1"
}
cat >"$T/wlexec.py" <<'PY'
import os, socket, sys
sock, cg = sys.argv[1], sys.argv[2]
with open(f"{cg}/cgroup.procs", "w") as c:
    c.write(str(os.getpid()))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock)
s.sendall(b"GET /v1/self/secrets/app/a HTTP/1.1\r\nHost: x\r\n\r\n")
got = b""
while b"alpha" not in got:
    b = s.recv(4096)
    if not b:
        sys.exit("closed before the first answer")
    got += b
os.set_inheritable(s.fileno(), True)
os.dup2(s.fileno(), 3)
os.execv("/bin/sh", ["sh", "-c", 'printf "GET /v1/self/secrets/app/a HTTP/1.0\r\nHost: x\r\n\r\n" >&3 && cat <&3'])
PY
nsenter -t "$PA" -m -- "$PYBIN" "$T/wlexec.py" "$W" "$cgA" >"$T/wlexec.out" 2>&1 &
WP=$!
wait $WP || fail "workload read, exec, read: $(cat "$T/wlexec.out")"
grep -q alpha "$T/wlexec.out" || fail "the read after exec got: $(cat "$T/wlexec.out")"
got=$(reads "$WP" | tr '\n' ' ')
want="$PY ok $SH ok "
[ "$got" = "$want" ] || fail "workload reads of pid $WP: audited as '$got', want '$want'"
ok "workload API: reads on one connection across an exec are audited with each exe ($PY, then $SH)"

# --- the cache is used: 200 opens by one process, one read of /proc/PID/exe (the daemon counts
# them and logs the counts when it stops)
nsenter -t "$PA" -m -- sh -c 'echo $$ >"$0/cgroup.procs" && echo $$ >"$1" && i=0 &&
	while [ $i -lt 200 ]; do read v <"$2"; i=$((i + 1)); done' "$cgA" "$T/many.pid" "$F" ||
	fail "200 opens"
[ "$(opens "$(cat "$T/many.pid")" | sort | uniq -c | awk '{print $1, $2, $3}')" = "200 $SH ok" ] ||
	fail "200 opens by one sh not all audited as $SH"
sd_stop
line=$(grep "procwatch: opener exes" "$SD_LOG") || fail "no procwatch counts logged at stop"
hits=$(echo "$line" | sed -n 's/.*opener exes \([0-9]*\) from cache.*/\1/p')
[ "${hits:-0}" -ge 199 ] || fail "the exe cache was not used: $line"
ok "200 opens by one process, all audited with its exe, $hits exes from the cache ($line)"
