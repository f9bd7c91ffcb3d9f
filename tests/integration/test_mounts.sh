#!/bin/sh
# Per-container FUSE mounts: real mounts in real namespaces, the per-open cgroup check,
# rotation and revocation seen at once, poll(2) on .version, symlink refusal, scale, exit.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd unshare
need_cmd nsenter
need_cmd setpriv
need_cmd python3
EXTRA_CLEANUP=cg_cleanup

sd_start
W="$SD_WORKLOAD"
A=$(hex64); B=$(hex64)
mk_cgroup "$CG2" "/docker/$A"; cgA=$CG
mk_cgroup "$CG2" "/docker/$B"; cgB=$CG
printf 'alpha-1' | ctl put app/alpha >/dev/null
printf 'beta-1' | ctl put app/beta >/dev/null
printf 'user-file' | ctl put app/user >/dev/null
ctl grant app/alpha "id:$A" >/dev/null
ctl grant app/user "id:$A" --uid 1000 --gid 1000 --mode 0400 >/dev/null
ctl grant app/beta "id:$B" >/dev/null

start_container "$cgA" || fail "container A did not start"
PA=$CPID
start_container "$cgB" || fail "container B did not start"
PB=$CPID
cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" mount /run/secrets | grep -q "mounted 2" || fail "mount in A"
cexec "$PB" "$cgB" "$SECRETCTL" --socket "$W" mount /run/secrets | grep -q "mounted 1" || fail "mount in B"
grep -q " /run/secrets " /proc/self/mountinfo && fail "a container's mount leaked into the host namespace"

[ "$(cexec "$PA" "$cgA" cat /run/secrets/app/alpha)" = alpha-1 ] || fail "A cannot read its secret"
[ "$(cexec "$PB" "$cgB" cat /run/secrets/app/beta)" = beta-1 ] || fail "B cannot read its secret"
cexec "$PA" "$cgA" ls /run/secrets/app | grep -q beta && fail "A sees B's secret"
cexec "$PA" "$cgA" cat /run/secrets/app/beta 2>/dev/null && fail "A reads B's secret"
ok "two containers, each reads exactly its grants"

mode=$(cexec "$PA" "$cgA" stat -c '%a %u' /run/secrets/app/user)
[ "$mode" = "400 1000" ] || fail "grant mode/uid not applied: $mode"
[ "$(cexec "$PA" "$cgA" setpriv --reuid 1000 --regid 1000 --clear-groups cat /run/secrets/app/user)" = user-file ] || fail "uid 1000 cannot read its file"
cexec "$PA" "$cgA" setpriv --reuid 1000 --regid 1000 --clear-groups cat /run/secrets/app/alpha 2>/dev/null && fail "uid 1000 read a root-owned 0400 file"
ok "a non-root uid reads its file (mode and owner from the grant), not root's"

for op in "echo x >/run/secrets/app/alpha" "touch /run/secrets/new" "mv /run/secrets/app/alpha /run/secrets/app/x" \
	"chmod 0777 /run/secrets/app/alpha" "mkdir /run/secrets/d" "rm /run/secrets/app/alpha" \
	"python3 -c 'import os; os.setxattr(\"/run/secrets/app/alpha\", \"user.x\", b\"1\")'"; do
	cexec "$PA" "$cgA" sh -c "$op" 2>/dev/null && fail "write operation succeeded: $op"
done
[ "$(cexec "$PA" "$cgA" cat /run/secrets/app/alpha)" = alpha-1 ] || fail "a write attempt changed the file"
ok "write, create, rename, chmod, mkdir, unlink, setxattr all fail"

# B (or the host) reaching A's mount through /proc/PID/root or a bind mount is refused per open
in_cgroup "$cgB" cat "/proc/$PA/root/run/secrets/app/alpha" 2>/dev/null && fail "B read A's file through /proc/PID/root"
cat "/proc/$PA/root/run/secrets/app/alpha" 2>/dev/null && fail "a host process read A's file"
# A's mount carried into a namespace of B's (a copy of A's mount namespace holds A's mount, as
# a bind mount into B would): a process of B's cgroup there is still refused.
nsenter -t "$PA" -m -- sh -c 'echo $$ >"$0/cgroup.procs" && exec unshare --mount cat /run/secrets/app/alpha' "$cgB" 2>/dev/null &&
	fail "B read A's file through a copy of A's mount"
ok "another container's process or a host process is refused on open (EACCES)"

# rotation: a cached reader sees the new value on its next open+read
cexec "$PA" "$cgA" cat /run/secrets/app/alpha >/dev/null
printf 'alpha-2' | ctl put app/alpha >/dev/null
[ "$(cexec "$PA" "$cgA" cat /run/secrets/app/alpha)" = alpha-2 ] || fail "rotation not seen on the next read"
ok "rotation: the next open+read sees the new value"

# poll(2) on .version wakes on a change
cat >"$T/poll.py" <<'PY'
import select, sys, os
fd = os.open("/run/secrets/.version", os.O_RDONLY)
os.read(fd, 64)
p = select.poll(); p.register(fd, select.POLLIN | select.POLLPRI)
open(sys.argv[1], "w").write("armed")
ev = p.poll(10000)
print("woke" if ev else "timeout")
PY
cexec "$PA" "$cgA" python3 "$T/poll.py" "$T/armed" >"$T/polled" &
POLLER=$!
i=0; while [ ! -s "$T/armed" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.2
printf 'alpha-3' | ctl put app/alpha >/dev/null
wait $POLLER || true
grep -q woke "$T/polled" || fail "poll on .version did not wake: $(cat "$T/polled")"
ok "a process blocked in poll() on .version wakes on a change"

# revoke: the file vanishes at once
ctl revoke app/alpha "id:$A" >/dev/null
cexec "$PA" "$cgA" test -e /run/secrets/app/alpha && fail "revoked file still there"
ok "revoke makes the file vanish"

# a symlinked /run/secrets is refused and nothing is mounted where it points
C=$(hex64)
mk_cgroup "$CG2" "/docker/$C"; cgC=$CG
ctl grant app/beta "id:$C" >/dev/null
start_container "$cgC" || fail "container C did not start"
PC=$CPID
cexec "$PC" "$cgC" sh -c 'mkdir -p /run/elsewhere && ln -s /run/elsewhere /run/secrets'
cexec "$PC" "$cgC" "$SECRETCTL" --socket "$W" mount /run/secrets 2>"$T/err" && fail "mounted over a symlink"
grep -qi symlink "$T/err" || fail "symlink refusal: unclear message: $(cat "$T/err")"
# (by file system type: other mounts may have "secretd" in their paths)
grep -q " fuse.secretd " "/proc/$PC/mountinfo" && fail "something was mounted in C"
ok "a symlinked /run/secrets is refused, nothing mounted"

# container exit: mount gone, memory freed
kill -9 "$PA"
i=0
while ctl containers --json | grep -q "\"id\": \"$A\""; do
	i=$((i + 1)); [ $i -gt 100 ] && fail "container A still listed after exit"
	sleep 0.05
done
ok "container exit: its mount is torn down and forgotten"

# 200 containers at once in one daemon
N=200
ctl grant app/beta 'cgroup:/docker/*' >/dev/null
n=0
while [ $n -lt $N ]; do
	mk_cgroup "$CG2" "/docker/$(hex64)"; d=$CG
	in_cgroup "$d" unshare --mount sh -c "mount -t tmpfs tmpfs /run && $SECRETCTL --socket $W mount /run/secrets >/dev/null && cat /run/secrets/app/beta >'$T/scale.$n' && exec sleep 100000" >/dev/null 2>&1 &
	n=$((n + 1))
done
i=0
while [ "$(ctl containers --json | grep -c '"mounted": true')" -lt $((N + 1)) ]; do
	i=$((i + 1)); [ $i -gt 1800 ] && fail "only $(ctl containers --json | grep -c '"mounted": true') mounts after 90 s"
	sleep 0.05
done
sleep 0.5
n=0; good=0
while [ $n -lt $N ]; do [ "$(cat "$T/scale.$n" 2>/dev/null)" = beta-1 ] && good=$((good + 1)); n=$((n + 1)); done
[ $good = $N ] || fail "only $good of $N containers read their secret"
ok "$N containers mounted at once in one daemon, each reads its secret"
