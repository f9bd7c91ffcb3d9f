#!/bin/sh
# test_wl.sh: secretd-wl, the static workload client, inside a busybox container (runc) whose
# rootfs holds no shared library at all: read from the mount and from the API, ls, exec with an
# environment variable, wait for a rotation, and the refusals (ungranted, bad name, no socket).
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/runtime_lib.sh
. "$(dirname "$0")/runtime_lib.sh"
need_root
need_fuse
need_cmd runc
[ -x /bin/busybox ] || skip_or_fail "needs busybox-static"
[ -x "${SECRETD_WL:-}" ] || fail "SECRETD_WL is not set to the built secretd-wl"

# No shared library: no program interpreter, no NEEDED entry.
if command -v readelf >/dev/null 2>&1; then
	readelf -l "$SECRETD_WL" | grep -q 'program interpreter' && fail "secretd-wl asks for a dynamic loader"
	readelf -d "$SECRETD_WL" | grep -q NEEDED && fail "secretd-wl needs shared libraries: $(readelf -d "$SECRETD_WL" | grep NEEDED)"
fi
ok "secretd-wl is statically linked"

sd_start
printf 'pw-one' | ctl put db/password >/dev/null
printf 'tok-1' | ctl put api/token >/dev/null
printf 'not-yours' | ctl put other >/dev/null
ctl grant db/password name:app >/dev/null
ctl grant api/token name:app >/dev/null

rootfs=$(rt_rootfs)
[ -e "$rootfs/lib" ] || [ -e "$rootfs/lib64" ] || [ -e "$rootfs/usr/lib" ] && fail "the test rootfs has a lib directory"
rt_out_dir "$T/o"
mkdir -p "$T/wlbin"
cp "$SECRETD_WL" "$T/wlbin/secretd-wl"
# shellcheck disable=SC2016 # expanded inside the container
script='export PATH=/wl:$PATH
secretd-wl read db/password >/out/read.mount 2>&1; echo $? >>/out/rc
secretd-wl read --dir /nowhere db/password >/out/read.api 2>&1; echo $? >>/out/rc
secretd-wl ls >/out/ls 2>&1; echo $? >>/out/rc
secretd-wl exec --env PW=db/password --env TOK=api/token -- sh -c "echo \$PW:\$TOK" >/out/exec 2>&1; echo $? >>/out/rc
secretd-wl read --dir /nowhere other >/out/other 2>&1; echo $? >/out/other.rc
secretd-wl read "../etc/passwd" >/out/bad 2>&1; echo $? >/out/bad.rc
secretd-wl read --dir /nowhere --socket /nowhere.sock db/password >/out/nosock 2>&1; echo $? >/out/nosock.rc
secretd-wl wait --timeout 0.2 >/out/wait0 2>&1; echo $? >/out/wait0.rc
v=$(cat /run/secrets/.version)
{ secretd-wl wait --since "$v" --timeout 60 >/out/wait 2>&1; echo $? >/out/wait.rc; } &
w=$!
: >/out/ready
wait $w
secretd-wl read db/password >/out/read2 2>&1
: >/out/done'
BUNDLE_BINDS="$T/o:/out:rw
$T/wlbin:/wl:ro
$T/run/workload.sock:/run/secretd/workload.sock:ro" mk_bundle "$T/b" app sh -c "$script"
ID=sdt-wl-$$
start_runc_bg "$T/b" "$ID"
rt_wait_file "$T/o/ready" 300 || fail "the container did not get ready: $(cat "$T/b/err" "$T/o/"* 2>/dev/null)"

[ "$(cat "$T/o/rc" | tr '\n' ' ')" = "0 0 0 0 " ] || fail "exit statuses: $(cat "$T/o/rc" | tr '\n' ' ') ($(cat "$T/o/read.mount" "$T/o/read.api" "$T/o/ls" "$T/o/exec"))"
[ "$(cat "$T/o/read.mount")" = pw-one ] || fail "read from the mount: $(cat "$T/o/read.mount")"
[ "$(cat "$T/o/read.api")" = pw-one ] || fail "read through the API: $(cat "$T/o/read.api")"
ok "read: from /run/secrets and through the workload API, as uid 1000 in a busybox container"
[ "$(cat "$T/o/ls" | tr '\n' ' ')" = "api/token db/password " ] || fail "ls: $(cat "$T/o/ls")"
ok "ls: exactly the granted names"
[ "$(cat "$T/o/exec")" = "pw-one:tok-1" ] || fail "exec: $(cat "$T/o/exec")"
ok "exec: the command gets the values in the variables it asked for"
[ "$(cat "$T/o/other.rc")" = 1 ] || fail "ungranted read: rc $(cat "$T/o/other.rc")"
grep -q 'no such secret' "$T/o/other" || fail "ungranted read: $(cat "$T/o/other")"
grep -q not-yours "$T/o/other" && fail "the ungranted value leaked"
[ "$(cat "$T/o/bad.rc")" = 2 ] && grep -q 'invalid secret name' "$T/o/bad" || fail "bad name: rc $(cat "$T/o/bad.rc"): $(cat "$T/o/bad")"
[ "$(cat "$T/o/nosock.rc")" = 1 ] && grep -q 'no socket there' "$T/o/nosock" || fail "no socket: rc $(cat "$T/o/nosock.rc"): $(cat "$T/o/nosock")"
[ "$(cat "$T/o/wait0.rc")" = 124 ] || fail "wait with nothing changing: rc $(cat "$T/o/wait0.rc")"
ok "refusals: ungranted (1, 'no such secret'), invalid name (2), no socket (1), wait timeout (124)"

# The background wait counts from the .version read before /out/ready: a rotation now must wake
# it, however late the wait itself starts.
printf 'pw-two' | ctl put db/password >/dev/null
rt_wait_file "$T/o/done" 300 || fail "wait did not wake on the rotation: $(cat "$T/o/wait" 2>/dev/null)"
[ "$(cat "$T/o/wait.rc")" = 0 ] || fail "wait: rc $(cat "$T/o/wait.rc"): $(cat "$T/o/wait")"
[ "$(cat "$T/o/read2")" = pw-two ] || fail "read after the rotation: $(cat "$T/o/read2")"
[ -s "$T/o/wait" ] || fail "wait printed no new version"
ok "wait: wakes on a rotation; the next read has the new value"
wait "$RT_PID" || fail "runc: $(cat "$T/b/err")"
