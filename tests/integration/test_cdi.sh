#!/bin/sh
# test_cdi.sh: `secretctl cdi generate` writes a CDI spec (kind secretd.io/secrets) that podman
# reads from /var/run/cdi: `podman run --device secretd.io/secrets=NAME` runs secretd-oci-hook
# with no hooks directory at all (an empty --hooks-dir), names the container NAME for name:
# grants, and the device "any" works with label annotations. A container without the device gets
# no hook; with the broker down a container with the device does not start, one without does.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/runtime_lib.sh
. "$(dirname "$0")/runtime_lib.sh"
need_root
need_fuse
need_cmd podman
need_cmd runc
[ -x /bin/busybox ] || skip_or_fail "needs busybox-static"

# shellcheck disable=SC2119 # no extra daemon arguments
sd_start
NAME="sdt-web-$$"
mkdir -p /var/run/cdi
SPEC="/var/run/cdi/secretd-test-$$.json"
rt_cleanup_add "rm -f '$SPEC'"

# --- generate: refuses bad input and writes nothing; then a valid spec
if ctl cdi generate --name 'bad name' --hook "$SECRETD_OCI_HOOK" --output "$SPEC" 2>"$T/g.err"; then
	fail "cdi generate accepted the device name 'bad name'"
fi
grep -q 'not a CDI device name' "$T/g.err" || fail "cdi generate (bad name): $(cat "$T/g.err")"
if ctl cdi generate --hook "$T/no-such-hook" --output "$SPEC" 2>"$T/g.err"; then
	fail "cdi generate accepted a hook that does not exist"
fi
grep -q 'cannot be run' "$T/g.err" || fail "cdi generate (no hook): $(cat "$T/g.err")"
[ ! -e "$SPEC" ] || fail "a refused cdi generate wrote $SPEC"
ok "cdi generate refuses a bad device name and a missing hook, and writes nothing"
ctl cdi generate --name "$NAME" --hook "$SECRETD_OCI_HOOK" --output "$SPEC" 2>"$T/g.err" ||
	fail "cdi generate: $(cat "$T/g.err")"
python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["kind"] == "secretd.io/secrets" and s["cdiVersion"] == "0.5.0", s
names = [d["name"] for d in s["devices"]]
assert names == ["any", sys.argv[2]], names
for d in s["devices"]:
    hs = d["containerEdits"]["hooks"]
    assert [h["hookName"] for h in hs] == ["createRuntime", "poststop"], hs
    assert all(h["path"] == sys.argv[3] and sys.argv[4] in h["args"] for h in hs), hs
' "$SPEC" "$NAME" "$SECRETD_OCI_HOOK" "$SECRETD_SOCKET" || fail "the spec is not what was asked: $(cat "$SPEC")"
ok "cdi generate writes a spec with the devices any and $NAME, each with both hooks"

# podman with an empty hooks directory: only CDI can bring the hook in.
RT_HOOKS_DIR="$T/nohooks"
mkdir -p "$RT_HOOKS_DIR"
rootfs_copy() {
	rm -rf "$1"
	cp -a "$(rt_rootfs)" "$1"
}

printf 'pw-cdi' | ctl put db/password >/dev/null || fail "put db/password"
ctl grant db/password "name:$NAME" >/dev/null || fail "grant name:$NAME"
printf 'pay-key' | ctl put team/key >/dev/null || fail "put team/key"
ctl grant team/key label:team=payments >/dev/null || fail "grant label:team=payments"

# --- the named device: the container is NAME, reads its secret as uid 1000
rootfs_copy "$T/r1"
out=$(podman_run --device "secretd.io/secrets=$NAME" --user 1000:1000 --rootfs "$T/r1" \
	/bin/sh -c 'cat /run/secrets/db/password; echo; id -u; ls /run/secrets' 2>"$T/p1.err") ||
	fail "podman run --device secretd.io/secrets=$NAME: $(cat "$T/p1.err")"
[ "$(echo "$out" | sed -n 1p)" = pw-cdi ] || fail "named device: the container read: $out"
[ "$(echo "$out" | sed -n 2p)" = 1000 ] || fail "named device: not uid 1000: $out"
[ "$(echo "$out" | sed -n 3p)" = db ] || fail "named device: ls /run/secrets: $out"
ok "podman run --device secretd.io/secrets=$NAME (no hooks dir) reads its name: grant as uid 1000"

# --- the device "any" with a label annotation: label grants, not the name grant
rootfs_copy "$T/r2"
out=$(podman_run --device secretd.io/secrets=any --annotation io.secretd.label.team=payments \
	--user 1000:1000 --rootfs "$T/r2" /bin/sh -c \
	'cat /run/secrets/team/key; echo; cat /run/secrets/db/password 2>&1 || echo denied' \
	2>"$T/p2.err") || fail "podman run --device secretd.io/secrets=any: $(cat "$T/p2.err")"
[ "$(echo "$out" | sed -n 1p)" = pay-key ] || fail "device any: the container read: $out"
case $out in *pw-cdi*) fail "device any: the container read the name grant: $out" ;; esac
ok "the device any with --annotation io.secretd.label.team=payments gets the label grant only"

# --- no device, no hooks dir: no hook, no mount
rootfs_copy "$T/r3"
out=$(podman_run --user 1000:1000 --rootfs "$T/r3" /bin/sh -c 'ls /run/secrets 2>&1; echo rc=$?' \
	2>"$T/p3.err") || fail "podman run without the device: $(cat "$T/p3.err")"
case $out in *rc=0*) fail "a container without the device got /run/secrets: $out" ;; esac
ok "a container without the device gets no hook and no /run/secrets"

# --- broker down
sd_stop
rootfs_copy "$T/r4"
if out=$(podman_run --device "secretd.io/secrets=$NAME" --rootfs "$T/r4" /bin/sh -c 'echo started' \
	2>"$T/p4.err"); then
	fail "broker down: a container with the device started: $out"
fi
grep -q 'secretd-oci-hook: cannot reach secretd at' "$T/p4.err" ||
	fail "broker down: podman's error lacks the hook's reason: $(cat "$T/p4.err")"
ok "broker down: a container with the device does not start, and podman says why"
rootfs_copy "$T/r5"
if out=$(podman_run --device secretd.io/secrets=any --rootfs "$T/r5" /bin/sh -c 'echo started' \
	2>"$T/p5.err"); then
	fail "broker down: a container with the device any started: $out"
fi
grep -q 'secretd-oci-hook: cannot reach secretd at' "$T/p5.err" ||
	fail "broker down (any): podman's error lacks the hook's reason: $(cat "$T/p5.err")"
rootfs_copy "$T/r6"
out=$(podman_run --rootfs "$T/r6" /bin/sh -c 'echo started' 2>"$T/p6.err") ||
	fail "broker down: a container without the device failed: $(cat "$T/p6.err")"
[ "$out" = started ] || fail "broker down: the plain container printed: $out"
ok "broker down: the device any does not start either; a container without a device does"
