#!/bin/sh
# Revocation reaches open handles: a file descriptor and an mmap opened before a revoke stop
# giving the value (read fails with EACCES, touching the mapping raises SIGBUS), also in the
# kernel's page cache; a handle open across a rotation keeps reading the version it opened.
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
W="$SD_WORKLOAD"
A=$(hex64)
mk_cgroup "$CG2" "/docker/$A"; cgA=$CG
printf 'revoked-1' | ctl put app/r >/dev/null
printf 'keep-1' | ctl put app/k >/dev/null
ctl grant app/r "id:$A" >/dev/null
ctl grant app/k "id:$A" >/dev/null
start_container "$cgA" || fail "container A did not start"
PA=$CPID
cexec "$PA" "$cgA" "$SECRETCTL" --socket "$W" mount /run/secrets | grep -q "mounted 2" || fail "mount in A"

# Inside A: open app/r (read once, so its pages are cached) and mmap it; open app/k. Then wait
# for "go", and report what the old handles give, polling (bounded) for the revocation to land.
cat >"$T/hold.py" <<'PY'
import errno, mmap, os, sys, time
d = sys.argv[1]
fd = os.open("/run/secrets/app/r", os.O_RDONLY)
assert os.pread(fd, 64, 0) == b"revoked-1"
mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
assert mm[:] == b"revoked-1"
fk = os.open("/run/secrets/app/k", os.O_RDONLY)
assert os.pread(fk, 64, 0) == b"keep-1"
open(d + "/armed", "w").write("1")
for _ in range(2400):
    if os.path.exists(d + "/go"):
        break
    time.sleep(0.05)
else:
    print("no go"); sys.exit(2)
out = []
def read_r():
    try:
        return "value:" + os.pread(fd, 64, 0).decode()
    except OSError as e:
        return "error:" + errno.errorcode[e.errno]
def touch_map():
    pid = os.fork()
    if pid == 0:
        x = mm[0]
        os._exit(0 if x else 1)
    _, st = os.waitpid(pid, 0)
    return "signal:%d" % os.WTERMSIG(st) if os.WIFSIGNALED(st) else "exit:%d" % os.WEXITSTATUS(st)
for _ in range(600):  # up to 30 s for the invalidation to be delivered
    r, m = read_r(), touch_map()
    if r.startswith("error") and m.startswith("signal"):
        break
    time.sleep(0.05)
out += ["read=" + r, "mmap=" + m]
out.append("kept=" + os.pread(fk, 64, 0).decode())
with open("/run/secrets/app/k") as f:
    out.append("reopened=" + f.read())
print(" ".join(out))
PY
cexec "$PA" "$cgA" python3 "$T/hold.py" "$T" >"$T/held" 2>&1 &
HOLDER=$!
i=0; while [ ! -s "$T/armed" ]; do
	i=$((i + 1)); [ $i -gt 1200 ] && fail "holder did not start: $(cat "$T/held")"
	kill -0 $HOLDER 2>/dev/null || fail "holder exited: $(cat "$T/held")"
	sleep 0.05
done
ctl revoke app/r "id:$A" >/dev/null || fail "revoke"
printf 'keep-2' | ctl put app/k >/dev/null || fail "rotate"
touch "$T/go"
wait $HOLDER || fail "holder failed: $(cat "$T/held")"
res=$(cat "$T/held")
# EACCES from the broker's read, or ENOENT when the kernel first revalidates the (gone) inode
case "$res" in *"read=error:EACCES"* | *"read=error:ENOENT"*) ;; *) fail "a handle opened before the revoke still reads: $res" ;; esac
case "$res" in *"mmap=signal:7"*) ;; *) fail "an mmap made before the revoke still reads (no SIGBUS): $res" ;; esac
ok "after revoke, an open fd's read fails ($(echo "$res" | sed 's/.*read=error:\([A-Z]*\).*/\1/')) and its mmap faults (SIGBUS)"
case "$res" in *"kept=keep-1"*) ;; *) fail "a handle open across a rotation does not read its version: $res" ;; esac
case "$res" in *"reopened=keep-2"*) ;; *) fail "a new open after the rotation does not read the new value: $res" ;; esac
ok "a handle open across a rotation reads the version it opened; a new open the new one"
cexec "$PA" "$cgA" test -e /run/secrets/app/r && fail "revoked file still listed"
ok "the revoked file is gone for new opens"
