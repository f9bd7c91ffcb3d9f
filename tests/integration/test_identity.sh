#!/bin/sh
# Workload identity and grants: real cgroups shaped as docker, podman and kubepods would make
# them, processes in their own pid and mount namespaces, the workload socket, pid-reuse cases.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_cgroup2
need_cgroup1_systemd
need_cmd unshare
need_cmd python3
EXTRA_CLEANUP=cg_cleanup

sd_start
W="$SD_WORKLOAD"
wctl() { "$SECRETCTL" --socket "$W" "$@"; }

printf 'docker-db-pass' | ctl put db/password >/dev/null
printf 'podman-api' | ctl put api/token >/dev/null
printf 'kube-cert' | ctl put kube/cert >/dev/null
printf 'nobody-gets-this' | ctl put other >/dev/null

D=$(hex64); P=$(hex64); K=$(hex64); S=$(hex64)
KPOD=0a1b2c3d-1111-2222-3333-444455556666
mk_cgroup "$CG2" "/docker/$D"; cg_d=$CG
mk_cgroup "$CG2" "/libpod_parent/libpod-$P"; cg_p=$CG
mk_cgroup "$CG2" "/kubepods/burstable/pod$KPOD/$K"; cg_k=$CG
mk_cgroup "$CG1" "/docker/$S"; cg_s=$CG

# --- who am I, for each runtime shape (in own pid + mount namespaces) ---
in_container "$cg_d" "$SECRETCTL" --socket "$W" --json whoami >"$T/who" || fail "whoami docker"
grep -q '"runtime": "docker"' "$T/who" && grep -q "\"id\": \"$D\"" "$T/who" || fail "docker identity: $(cat "$T/who")"
in_container "$cg_p" "$SECRETCTL" --socket "$W" --json whoami >"$T/who" || fail "whoami podman"
grep -q '"runtime": "podman"' "$T/who" && grep -q "\"id\": \"$P\"" "$T/who" || fail "podman identity: $(cat "$T/who")"
in_container "$cg_k" "$SECRETCTL" --socket "$W" --json whoami >"$T/who" || fail "whoami kubepods"
grep -q '"runtime": "kubernetes"' "$T/who" && grep -q "\"id\": \"$K\"" "$T/who" || fail "kubepods identity: $(cat "$T/who")"
# v1 name=systemd only (the v2 line stays "/"): the fallback the issue asks for
in_cgroup "$cg_s" "$SECRETCTL" --socket "$W" --json whoami >"$T/who" || fail "whoami v1"
grep -q '"runtime": "docker"' "$T/who" && grep -q "\"id\": \"$S\"" "$T/who" || fail "v1 name=systemd identity: $(cat "$T/who")"
wctl --json whoami >"$T/who" || fail "whoami host"
grep -q '"container": false' "$T/who" || fail "a host process was taken for a container: $(cat "$T/who")"
ok "whoami: docker, podman, kubepods (v2) and docker (v1 name=systemd) shapes, and the host"

# --- grants by id prefix, runtime, cgroup glob ---
ctl grant db/password "id:$(echo "$D" | cut -c1-12)" >/dev/null || fail "grant id:"
ctl grant 'api/*' runtime:podman >/dev/null || fail "grant runtime:"
ctl grant kube/cert 'cgroup:/kubepods/*' >/dev/null || fail "grant cgroup:"
ctl grants | grep -q "runtime:podman" || fail "grants listing"

[ "$(in_container "$cg_d" "$SECRETCTL" --socket "$W" read db/password)" = docker-db-pass ] || fail "docker container cannot read its grant"
[ "$(in_container "$cg_p" "$SECRETCTL" --socket "$W" read api/token)" = podman-api ] || fail "podman container cannot read its subtree grant"
[ "$(in_container "$cg_k" "$SECRETCTL" --socket "$W" read kube/cert)" = kube-cert ] || fail "kubepods container cannot read its grant"
in_container "$cg_d" "$SECRETCTL" --socket "$W" ls --self | grep -qx db/password || fail "ls --self"
in_container "$cg_d" "$SECRETCTL" --socket "$W" ls --self | grep -q other && fail "ls --self shows an ungranted secret"
ok "each container reads exactly its grants (id prefix, runtime + subtree, cgroup glob)"

# --- ungranted and nonexistent answer the same ---
in_container "$cg_d" "$SECRETCTL" --socket "$W" read other 2>"$T/e1" && fail "ungranted secret readable"
in_container "$cg_d" "$SECRETCTL" --socket "$W" read no/such 2>"$T/e2" && fail "nonexistent secret readable"
cmp -s "$T/e1" "$T/e2" || fail "ungranted and nonexistent differ: $(cat "$T/e1") / $(cat "$T/e2")"
in_container "$cg_p" "$SECRETCTL" --socket "$W" read db/password 2>/dev/null && fail "podman container read docker's secret"
wctl read db/password 2>/dev/null && fail "a host process read a container's secret"
ok "ungranted secrets are 404 exactly like missing ones; no cross-container reads"

# --- revoke takes effect at once ---
ctl revoke db/password "id:$(echo "$D" | cut -c1-12)" >/dev/null || fail "revoke"
in_container "$cg_d" "$SECRETCTL" --socket "$W" read db/password 2>/dev/null && fail "revoked secret still readable"
ok "revoke takes effect on the next request"

# --- the pid-reuse family ---
ctl grant db/password "id:$D" >/dev/null
cat >"$T/peer.py" <<'PY'
import os, socket, sys, time
mode, path = sys.argv[1], sys.argv[2]
req = b"GET /v1/self HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
def answer(s):
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            return data.decode(errors="replace")
        data += b
if mode == "orphan":
    # connect, fork, exit: the child inherits the socket and asks once the connector is gone
    s = socket.socket(socket.AF_UNIX); s.connect(path)
    me = os.getpid()
    pid = os.fork()
    if pid:
        os._exit(0)
    while os.path.exists("/proc/%d" % me):  # gone: exited and reaped (no fixed wait)
        time.sleep(0.01)
    s.sendall(req); print(answer(s))
elif mode == "pass":
    # the connector (in cgroup argv[3]) hands the socket to a process in another cgroup
    a, b = socket.socketpair(socket.AF_UNIX)
    pid = os.fork()
    if pid == 0:
        open(sys.argv[3] + "/cgroup.procs", "w").write(str(os.getpid()))
        s = socket.socket(socket.AF_UNIX); s.connect(path)
        socket.send_fds(a, [b"x"], [s.fileno()])
        a.recv(1)  # alive until the receiver has its answer (no fixed wait)
        os._exit(0)
    msg, fds, _, _ = socket.recv_fds(b, 1, 1)
    s = socket.socket(fileno=fds[0])
    s.sendall(req); print(answer(s))
    b.send(b"x")
    os.waitpid(pid, 0)
PY
python3 "$T/peer.py" orphan "$W" >"$T/orphan" || fail "orphan peer script"
# the orphaned child answers after its parent has gone: wait for its line (bounded)
orphan_answered() { [ -s "$T/orphan" ]; }
poll_until 60 orphan_answered || fail "the orphaned child never got an answer"
head -1 "$T/orphan" | grep -q " 403 " || fail "a socket left to a child after the connector exited was served: $(head -1 "$T/orphan")"
in_cgroup "$cg_p" python3 "$T/peer.py" pass "$W" "$cg_d" >"$T/pass" || fail "pass peer script"
grep -q "\"id\":\"$D\"" "$T/pass" || fail "a socket passed with SCM_RIGHTS was not attributed to its connector: $(tail -1 "$T/pass")"
ok "pid reuse family: orphaned socket refused, SCM_RIGHTS-passed socket attributed to the connector"

# --- per-uid connection limit: the 33rd open connection of one uid is refused ---
cat >"$T/many.py" <<'PY'
import socket, sys
# keep-alive connections stay open (and counted) after their first answer
socks, codes = [], []
for i in range(40):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); socks.append(s)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    codes.append(s.recv(100).split(b" ")[1].decode())
print(" ".join(codes))
PY
python3 "$T/many.py" "$W" >"$T/codes"
grep -q 429 "$T/codes" || fail "no connection was limited: $(cat "$T/codes")"
grep -q 200 "$T/codes" || fail "every connection was refused"
# and others are still served
wctl whoami >/dev/null || fail "the daemon stopped serving after the flood"
ok "per-uid connection limit answers 429 and others keep being served"

# a cgroup in a delegated subtree (owned by a user) that copies a real container's name is not
# taken for that container
mk_cgroup "$CG2" "/delegated/docker/$D"; cg_x=$CG
chown 1000 "$CG2/delegated" "$cg_x"
in_cgroup "$cg_x" "$SECRETCTL" --socket "$W" --json whoami >"$T/who" || fail "whoami delegated"
grep -q '"container": false' "$T/who" || fail "a user-owned cgroup was trusted as docker $D: $(cat "$T/who")"
in_cgroup "$cg_x" "$SECRETCTL" --socket "$W" read db/password 2>/dev/null && fail "a spoofed cgroup read the container's secret"
ok "a user-owned (delegated) cgroup cannot pose as a container"

ctl containers | grep -q "$(echo "$D" | cut -c1-16)" || fail "containers does not list the docker container"
ok "secretctl containers lists the containers seen"
