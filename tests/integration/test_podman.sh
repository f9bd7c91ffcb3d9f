#!/bin/sh
# test_podman.sh: secrets reach podman containers (podman --runtime runc, hooks from a hooks.d
# directory): read, rotation seen by the running container, nothing ungranted or in the
# environment, forgotten on exit; podman --secret's /run/secrets is never hidden; broker down
# stops a container that asks for secrets.
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
rt_reader_setup
mk_hooks_dir "$T/hooks.d"
RT_HOOKS_DIR="$T/hooks.d"

# podman writes into --rootfs (etc/hosts, run/.containerenv): each run gets its own copy.
rootfs_copy() {
	rm -rf "$1"
	cp -a "$(rt_rootfs)" "$1"
}

NAME=sdt-podman-$$-a
rt_cleanup_add "podman rm -f '$NAME' >/dev/null 2>&1"
rt_out_dir "$T/oa"
rootfs_copy "$T/rfa"
podman_run --name "$NAME" --cidfile "$T/cid" --user 1000:1000 --annotation io.secretd.name=app \
	-v "$T/oa:/out:rw" --rootfs "$T/rfa" /bin/sh -c "$(rt_reader_script)" \
	</dev/null >"$T/pa.out" 2>"$T/pa.err" &
pid=$!
rt_wait_file "$T/cid" 150 || fail "podman did not create the container: $(cat "$T/pa.err")"
rt_reader_check "$T/oa" "$(cat "$T/cid")" podman "$pid"

# Coexistence with podman --secret: podman bind-mounts each of its secrets at /run/secrets/NAME;
# secretd must not hide them beneath its own mount. It refuses, saying why and what to do, and
# mounts where it is told to (io.secretd.mount) beside them.
PSEC=sdt-psec-$$
printf 'from-podman' | podman secret create "$PSEC" - >/dev/null || fail "podman secret create"
rt_cleanup_add "podman secret rm '$PSEC' >/dev/null 2>&1"
printf 'from-secretd' | ctl put coexist/v >/dev/null || fail "put coexist/v"
ctl grant coexist/v name:app >/dev/null || fail "grant coexist/v"
NAME=sdt-podman-$$-sec
rt_cleanup_add "podman rm -f '$NAME' >/dev/null 2>&1"
rootfs_copy "$T/rfs"
if podman_run --name "$NAME" --secret "$PSEC" --annotation io.secretd.name=app --rootfs "$T/rfs" \
	/bin/sh -c "cat /run/secrets/$PSEC; echo; ls /run/secrets" </dev/null >"$T/ps.out" 2>"$T/ps.err"; then
	fail "secretd's mount went over podman's secrets at /run/secrets: $(cat "$T/ps.out")"
fi
grep -q "already holds files in the container" "$T/ps.err" ||
	fail "podman's error lacks the reason: $(cat "$T/ps.err")"
grep -q "io.secretd.mount=/run/secretd" "$T/ps.err" || fail "the error does not say what to do: $(cat "$T/ps.err")"
ok "podman --secret: secretd refuses to hide the runtime's /run/secrets and says what to do"
rootfs_copy "$T/rfs2"
podman_run --name "$NAME" --secret "$PSEC" --annotation io.secretd.name=app \
	--annotation io.secretd.mount=/run/secretd --rootfs "$T/rfs2" \
	/bin/sh -c "cat /run/secrets/$PSEC; echo; cat /run/secretd/coexist/v; echo" </dev/null \
	>"$T/ps2.out" 2>"$T/ps2.err" || fail "podman --secret with io.secretd.mount: $(cat "$T/ps2.err")"
[ "$(sed -n 1p "$T/ps2.out")" = from-podman ] || fail "podman's secret not readable: $(cat "$T/ps2.out")"
[ "$(sed -n 2p "$T/ps2.out")" = from-secretd ] || fail "secretd's secret not readable: $(cat "$T/ps2.out")"
ok "podman --secret with io.secretd.mount=/run/secretd: both the runtime's and secretd's secrets are read"

sd_stop
NAME=sdt-podman-$$-down
rt_cleanup_add "podman rm -f '$NAME' >/dev/null 2>&1"
rootfs_copy "$T/rfd"
if podman_run --name "$NAME" --annotation io.secretd.name=app --rootfs "$T/rfd" \
	/bin/sh -c 'echo started' </dev/null >"$T/pd.out" 2>"$T/pd.err"; then
	fail "a container with io.secretd.name started while the broker was down"
fi
grep -q 'secretd-oci-hook: cannot reach secretd at' "$T/pd.err" ||
	fail "podman's error lacks the hook's reason: $(cat "$T/pd.err")"
if grep -q started "$T/pd.out"; then fail "the container's process ran"; fi
ok "broker down: podman does not start the container and reports the hook's reason"
rootfs_copy "$T/rfd2"
podman_run --rootfs "$T/rfd2" /bin/sh -c 'echo started' </dev/null >"$T/pd2.out" 2>"$T/pd2.err" ||
	fail "broker down: a plain podman container failed: $(cat "$T/pd2.err")"
grep -q started "$T/pd2.out" || fail "broker down: the plain container did not run"
ok "broker down: a podman container that asks for nothing still starts"
