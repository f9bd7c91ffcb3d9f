#!/bin/sh
# The README's main command: a real runc container (busybox, uid 1000) reads its secret from
# /run/secrets, the secret is rotated while it runs, and the container prints the new value.
# Installs what is missing, builds, runs everything in a scratch dir, cleans up. Run as root.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Installing what is missing and building"
sh scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
meson compile -C build >/dev/null
SECRETD=$ROOT/build/broker/secretd
SECRETCTL=$ROOT/build/client/secretctl
HOOK=$ROOT/build/client/secretd-oci-hook

D=$(mktemp -d /tmp/secretd-demo.XXXXXX)
PID=
cleanup() {
	runc delete -f secretd-demo >/dev/null 2>&1 || true
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

say "Initialising an encrypted store and starting secretd"
run "$SECRETD" init --state-dir "$D/state" --key-file "$D/keys/master.key"
"$SECRETD" run --state-dir "$D/state" --runtime-dir "$D/run" --key-file "$D/keys/master.key" \
	2>"$D/secretd.log" &
PID=$!
i=0
while [ ! -S "$D/run/admin.sock" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$D/secretd.log"; exit 1; }; sleep 0.05
done
export SECRETD_SOCKET="$D/run/admin.sock"
echo "secretd is running (pid $PID), sockets in $D/run"

say "Storing a secret and granting it to the container named 'web'"
printf 'correct-horse-1' | run "$SECRETCTL" put db/password
run "$SECRETCTL" grant db/password 'name:web'

say "Building a busybox root filesystem and a runc bundle (process runs as uid 1000)"
sh tests/integration/mkrootfs.sh "$D/rootfs" >/dev/null
mkdir -p "$D/bundle"
(cd "$D/bundle" && runc spec)
python3 - "$D/bundle/config.json" "$D/rootfs" "$HOOK" "$SECRETD_SOCKET" <<'PY'
import json, sys
path, rootfs, hook, sock = sys.argv[1:]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["user"] = {"uid": 1000, "gid": 1000}
c["process"]["args"] = ["sh", "-c",
    "echo \"container: $(ls -ln /run/secrets/db/password | awk '{print $1, \"uid=\" $3}') /run/secrets/db/password\"; "
    "echo \"container: my secret is $(cat /run/secrets/db/password)\"; "
    "grep -q correct-horse /proc/self/environ && echo 'container: LEAK in environment' || echo 'container: (not in my environment)'; "
    "old=$(cat /run/secrets/db/password); i=0; "
    "while [ $i -lt 100 ]; do v=$(cat /run/secrets/db/password); "
    "if [ \"$v\" != \"$old\" ]; then echo \"container: my secret is now $v\"; exit 0; fi; "
    "i=$((i+1)); sleep 0.1; done; echo 'container: no rotation seen'; exit 1"]
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
c.setdefault("annotations", {})["io.secretd.name"] = "web"
c["hooks"] = {
    "createRuntime": [{"path": hook, "args": ["secretd-oci-hook", "--socket", sock, "createRuntime"]}],
    "poststop": [{"path": hook, "args": ["secretd-oci-hook", "--socket", sock, "poststop"]}],
}
json.dump(c, open(path, "w"), indent=2)
PY
echo "bundle: $D/bundle (annotation io.secretd.name=web, hooks: secretd-oci-hook)"

say "Running the container; it prints its secret, then waits for it to change"
runc run --bundle "$D/bundle" secretd-demo >"$D/container.out" 2>&1 &
CPID=$!
i=0
while ! grep -q "not in my environment\|LEAK" "$D/container.out"; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$D/container.out"; exit 1; }; sleep 0.05
done
cat "$D/container.out"
"$SECRETCTL" containers

say "Crashing the daemon process (kill -9) while the container reads every 0.1 s"
W=$(pgrep -P "$PID" -x secretd | head -n 1)
echo "$ kill -9 $W    # secretd run ($PID) is its keeper: it holds the container's mount"
kill -9 "$W"
i=0
while ! grep -q "taken over from the keeper" "$D/secretd.log"; do
	i=$((i + 1)); [ $i -lt 200 ] || { cat "$D/secretd.log"; exit 1; }; sleep 0.05
done
W2=$(pgrep -P "$PID" -x secretd | head -n 1)
grep -E "keeper: daemon process $W died|taken over from the keeper" "$D/secretd.log" | sed 's/^[^ ]* secretd [a-z]*: /secretd: /'
echo "the container's reads went on: a new daemon process ($W2) took its mount over"

say "Rotating the secret while the container runs (no restart)"
printf 'correct-horse-2' | run "$SECRETCTL" put db/password
wait "$CPID" || { cat "$D/container.out"; echo "demo failed"; exit 1; }
tail -n 1 "$D/container.out"
# An empty or failed read across the crash would have shown here as a change to something else.
tail -n 1 "$D/container.out" | grep -qx 'container: my secret is now correct-horse-2' || { echo "demo failed"; exit 1; }

say "The container has exited: the broker unmounted and wiped its secrets"
sleep 0.2
"$SECRETCTL" containers
echo
echo "Done. The secret never touched the container's environment, image or disk."
