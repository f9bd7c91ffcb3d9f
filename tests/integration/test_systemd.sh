#!/bin/sh
# test_systemd.sh: what secretd does for systemd, checked without systemd as PID 1:
#  - the unit and the credentials drop-in pass `systemd-analyze verify` with no warning;
#  - Type=notify: READY=1 reaches $NOTIFY_SOCKET once both sockets answer, STOPPING=1 at SIGTERM;
#  - log lines carry journald priorities when stderr is the journal's stream ($JOURNAL_STREAM);
#  - the unit keeps the proc connector (AF_NETLINK allowed, no PrivateNetwork), and a daemon in
#    another network namespace, where the connector is missing, says so (log warning, metric 0).
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
need_root
need_fuse
need_cmd python3
need_cmd systemd-analyze
need_cmd unshare

# ---- the unit files, verified as systemd reads them (the unit + its drop-in directory) ----
U="$T/units"
mkdir -p "$U/secretd.service.d"
[ -f "$BUILD_ROOT/dist/secretd.service" ] || fail "no generated unit in $BUILD_ROOT/dist"
sbindir=$(sed -n 's#^ExecStart=\(/[^ ]*\)/secretd run.*#\1#p' "$BUILD_ROOT/dist/secretd.service")
[ -n "$sbindir" ] || fail "no ExecStart in the unit"
# verify checks that ExecStart's program exists: point it at the build's daemon.
sed "s#$sbindir/secretd #$SECRETD #" "$BUILD_ROOT/dist/secretd.service" >"$U/secretd.service"
sed "s#$sbindir/secretd #$SECRETD #" "$BUILD_ROOT/dist/credentials.conf" >"$U/secretd.service.d/credentials.conf"
systemd-analyze verify --man=no "$U/secretd.service" >"$T/verify" 2>&1 || fail "systemd-analyze verify: $(cat "$T/verify")"
[ ! -s "$T/verify" ] || fail "systemd-analyze verify warns: $(cat "$T/verify")"
grep -q '^Type=notify$' "$U/secretd.service" || fail "the unit is not Type=notify"
grep -q '^RestrictAddressFamilies=.*AF_NETLINK' "$U/secretd.service" || fail "the unit forbids AF_NETLINK (the proc connector)"
grep -q '^PrivateNetwork=yes' "$U/secretd.service" && fail "PrivateNetwork=yes turns the proc connector off"
grep -q '^ConditionPathExists=' "$U/secretd.service" && fail "a ConditionPathExists would skip passphrase or credential setups silently"
grep -q '^LoadCredentialEncrypted=secretd-master.key:' "$U/secretd.service.d/credentials.conf" || fail "drop-in lacks LoadCredentialEncrypted"
grep -q -- '--key-file %d/secretd-master.key' "$U/secretd.service.d/credentials.conf" || fail "drop-in does not read the key from the credentials directory"
ok "unit and credentials drop-in pass systemd-analyze verify with no warning; Type=notify; AF_NETLINK allowed; no PrivateNetwork; no ConditionPathExists"
# the cluster drop-in (docs/cluster.md), verified on its own: etcd is reached over TCP
U2="$T/units-cluster"
mkdir -p "$U2/secretd.service.d"
cp "$U/secretd.service" "$U2/secretd.service"
sed "s#$sbindir/secretd #$SECRETD #" "$BUILD_ROOT/dist/cluster.conf" >"$U2/secretd.service.d/cluster.conf"
systemd-analyze verify --man=no "$U2/secretd.service" >"$T/verify2" 2>&1 || fail "systemd-analyze verify (cluster drop-in): $(cat "$T/verify2")"
[ ! -s "$T/verify2" ] || fail "systemd-analyze verify warns (cluster drop-in): $(cat "$T/verify2")"
grep -q '^RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6$' "$U2/secretd.service.d/cluster.conf" ||
	fail "the cluster drop-in does not allow TCP to etcd (and keep AF_UNIX, AF_NETLINK)"
grep -q -- '--etcd https://.* --cluster ' "$U2/secretd.service.d/cluster.conf" || fail "the cluster drop-in runs no cluster node"
ok "the cluster drop-in passes systemd-analyze verify with no warning and allows AF_INET/AF_INET6 for etcd"

# ---- sd_notify: a listener on a datagram socket, as systemd's ----
cat >"$T/notify.py" <<'PY'
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(out + ".armed", "w").close()
s.settimeout(120)
with open(out, "a") as f:
    while True:
        msg = s.recv(4096).decode()
        f.write(msg.replace("\n", "|") + "\n")
        f.flush()
        if "STOPPING=1" in msg:
            break
PY
python3 "$T/notify.py" "$T/notify.sock" "$T/notify.log" &
NPID=$!
EXTRA_CLEANUP="kill $NPID 2>/dev/null || true"
i=0
while [ ! -e "$T/notify.log.armed" ]; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "notify listener did not start"
	sleep 0.05
done
NOTIFY_SOCKET="$T/notify.sock" sd_start
i=0
while ! grep -q 'READY=1' "$T/notify.log" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "no READY=1 after the sockets answered: $(cat "$T/notify.log" 2>/dev/null)"
	sleep 0.05
done
grep 'READY=1' "$T/notify.log" | grep -q 'STATUS=serving' || fail "READY without a STATUS: $(cat "$T/notify.log")"
curl -sf --unix-socket "$T/run/admin.sock" http://x/metrics | grep -qx 'secretd_proc_connector 1' ||
	fail "the proc connector is not reported as working"
sd_stop
wait "$NPID" || fail "the listener saw no STOPPING=1: $(cat "$T/notify.log")"
grep -q 'STOPPING=1' "$T/notify.log" || fail "no STOPPING=1: $(cat "$T/notify.log")"
ok "sd_notify: READY=1 with STATUS once serving, STOPPING=1 at SIGTERM"

# ---- journald priorities when stderr is the journal's stream ----
SD_LOG="$T/journal.log"
: >"$SD_LOG"
jstream=$(stat -c '%d:%i' "$SD_LOG")
JOURNAL_STREAM=$jstream "$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" \
	--key-file "$T/keys/master.key" >>"$SD_LOG" 2>&1 &
SD_PID=$!
i=0
while ! grep -q 'ready:' "$SD_LOG"; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "daemon did not start (journal mode)"
	sleep 0.05
done
sd_stop
grep -q '^<6>info: ready: admin' "$SD_LOG" || fail "no <6> priority on an info line: $(head -3 "$SD_LOG")"
grep -v '^<[0-7]>' "$SD_LOG" | grep -q . && fail "a line without a priority: $(grep -v '^<[0-7]>' "$SD_LOG" | head -2)"
grep -q 'Z secretd' "$SD_LOG" && fail "journal lines still carry their own timestamp"
ok "journald: every line starts with its syslog priority (<6> for info), no timestamp of its own"

# ---- without the proc connector (another network namespace), the daemon says so ----
SD_LOG="$T/nonet.log"
unshare --net "$SECRETD" run --state-dir "$T/state" --runtime-dir "$T/run" \
	--key-file "$T/keys/master.key" >>"$SD_LOG" 2>&1 &
SD_PID=$!
i=0
while ! curl -sf --unix-socket "$T/run/admin.sock" http://x/healthz >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 600 ] && fail "daemon did not start in a network namespace: $(cat "$SD_LOG")"
	kill -0 "$SD_PID" 2>/dev/null || fail "daemon exited: $(cat "$SD_LOG")"
	sleep 0.05
done
grep -q 'warn: proc connector unavailable' "$SD_LOG" || fail "no warning without the connector: $(cat "$SD_LOG")"
curl -sf --unix-socket "$T/run/admin.sock" http://x/metrics | grep -qx 'secretd_proc_connector 0' ||
	fail "metrics do not show the missing connector"
sd_stop
ok "in another network namespace the missing proc connector is a warning and secretd_proc_connector 0"
