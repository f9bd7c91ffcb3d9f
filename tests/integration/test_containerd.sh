#!/bin/sh
# test_containerd.sh: containerd 1.6 (its own daemon in $T) runs containers through secretd-runc
# as the runc shim's binary (`ctr run --runc-binary`, the same BinaryName option a CRI
# RuntimeClass uses): an annotated container reads its secret, sees a rotation while it runs and
# is forgotten when it exits; with the broker down an annotated container does not start (ctr
# says why) and a plain one does.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/runtime_lib.sh
. "$(dirname "$0")/runtime_lib.sh"
# shellcheck source=tests/integration/engine_lib.sh
. "$(dirname "$0")/engine_lib.sh"
need_root
need_fuse
need_cmd runc
[ -x /bin/busybox ] || skip_or_fail "needs busybox-static"
[ -x "${SECRETD_RUNC_WRAPPER:-}" ] || fail "SECRETD_RUNC_WRAPPER is not set (run through meson)"

# shellcheck disable=SC2119 # no extra daemon arguments
sd_start
containerd_start
rt_reader_setup # db/password granted to name:app; "other" to nobody

rootfs_copy() {
	rm -rf "$1"
	cp -a "$(rt_rootfs)" "$1"
}
# crun_ctr ID ROOTFS "OPTIONS" CMD...: ctr run --rm through secretd-runc
crun_ctr() {
	_id=$1 _rf=$2 _opts=$3
	shift 3
	# shellcheck disable=SC2086 # CTR and _opts are word lists
	$CTR run --rm --runc-binary "$SECRETD_RUNC_WRAPPER" --env PATH=/usr/sbin:/usr/bin:/sbin:/bin $_opts --rootfs "$_rf" "$_id" "$@"
}

# --- an annotated container reads its secret; the broker records it as runc's
rootfs_copy "$T/r1"
out=$(crun_ctr "sdt-ctr-$$-1" "$T/r1" "--annotation io.secretd.name=app" \
	sh -c 'cat /run/secrets/db/password; echo; ls /run/secrets' 2>"$T/c1.err") ||
	fail "ctr run (io.secretd.name=app): $(cat "$T/c1.err")"
[ "$(echo "$out" | sed -n 1p)" = pw-one ] || fail "ctr: the container read: $out"
[ "$(echo "$out" | sed -n 2p)" = db ] || fail "ctr: ls /run/secrets: $out"
ok "ctr run --runc-binary secretd-runc --annotation io.secretd.name=app reads its secret"

# --- rotation while it runs; forgotten after it exits
rt_out_dir "$T/oa"
rootfs_copy "$T/r2"
crun_ctr "sdt-ctr-$$-2" "$T/r2" "--annotation io.secretd.name=app --mount type=bind,src=$T/oa,dst=/out,options=rbind:rw" \
	sh -c "$(rt_reader_script)" </dev/null >"$T/c2.out" 2>"$T/c2.err" &
pid=$!
rt_reader_check "$T/oa" "sdt-ctr-$$-2" containerd "$pid"

# --- broker down: opt-in per container
sd_stop
rootfs_copy "$T/r3"
out=$(crun_ctr "sdt-ctr-$$-3" "$T/r3" "" echo started 2>"$T/c3.err") ||
	fail "broker down: a container without annotations failed: $(cat "$T/c3.err")"
[ "$out" = started ] || fail "broker down: the plain container printed: $out"
ok "broker down: a container without io.secretd annotations starts"
rootfs_copy "$T/r4"
if out=$(crun_ctr "sdt-ctr-$$-4" "$T/r4" "--annotation io.secretd.name=app" echo started 2>"$T/c4.err"); then
	fail "broker down: an annotated container started: $out"
fi
grep -q 'secretd-oci-hook: cannot reach secretd at' "$T/c4.err" ||
	fail "broker down: ctr's error lacks the hook's reason: $(cat "$T/c4.err")"
ok "broker down: an annotated container does not start, and ctr says why"
