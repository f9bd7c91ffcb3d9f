#!/bin/sh
# test_runc.sh: secrets reach runc containers through secretd-oci-hook (createRuntime/poststop):
# a granted secret is readable by the container user, rotation shows in the running container,
# nothing ungranted is visible, nothing lands in the environment, the broker forgets the
# container when it exits, two containers see only their own grants, and a container that
# asks for secrets does not start while the broker is down.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/runtime_lib.sh
. "$(dirname "$0")/runtime_lib.sh"
need_root
need_fuse
need_cmd runc
[ -x /bin/busybox ] || skip_or_fail "needs busybox-static"

# shellcheck disable=SC2119 # no extra daemon arguments
sd_start
rt_reader_setup

# --- read, ungranted, environment, rotation, forget on exit
ID=sdt-runc-$$-a
rt_out_dir "$T/oa"
BUNDLE_BINDS="$T/oa:/out:rw" mk_bundle "$T/ba" app sh -c "$(rt_reader_script)"
start_runc_bg "$T/ba" "$ID"
rt_reader_check "$T/oa" "$ID" runc "$RT_PID"

# --- two containers at once, each with its own grant
printf 'web-token' | ctl put web/token >/dev/null || fail "put web/token"
ctl grant web/token name:web >/dev/null || fail "grant web/token name:web"
# shellcheck disable=SC2016 # expanded inside the container
two='ls -R /run/secrets >/out/ls 2>&1
cat /run/secrets/db/password >/out/db 2>&1 || echo "rc=$?" >>/out/db
cat /run/secrets/web/token >/out/web 2>&1 || echo "rc=$?" >>/out/web
: >/out/ready
i=0
while [ ! -e /out/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done'
for n in app web; do
	rt_out_dir "$T/o2$n"
	BUNDLE_BINDS="$T/o2$n:/out:rw" mk_bundle "$T/b2$n" "$n" sh -c "$two"
done
start_runc_bg "$T/b2app" "sdt-runc-$$-app"
pid_app=$RT_PID
start_runc_bg "$T/b2web" "sdt-runc-$$-web"
pid_web=$RT_PID
for n in app web; do
	rt_wait_file "$T/o2$n/ready" 150 || fail "two containers: $n did not get ready"
done
# Both are running now: each must see only its own secret.
[ "$(cat "$T/o2app/db")" = "pw-two" ] || fail "two: app reads db/password: $(cat "$T/o2app/db")"
if grep -q 'web-token' "$T/o2app/web"; then fail "two: app reads web/token"; fi
if grep -q 'token' "$T/o2app/ls"; then fail "two: app lists web/token: $(cat "$T/o2app/ls")"; fi
[ "$(cat "$T/o2web/web")" = "web-token" ] || fail "two: web reads web/token: $(cat "$T/o2web/web")"
if grep -q 'pw-' "$T/o2web/db"; then fail "two: web reads db/password"; fi
if grep -q 'password' "$T/o2web/ls"; then fail "two: web lists db/password: $(cat "$T/o2web/ls")"; fi
ok "two running containers each see only their own grants"
: >"$T/o2app/go"
: >"$T/o2web/go"
wait "$pid_app" || fail "two: runc (app) failed: $(cat "$T/b2app/err")"
wait "$pid_web" || fail "two: runc (web) failed: $(cat "$T/b2web/err")"
for n in app web; do
	rt_wait_gone_from_broker "sdt-runc-$$-$n" || fail "two: the broker still lists $n"
done
ok "both containers are forgotten after they exit"

# --- a container that asks for nothing starts (and has no /run/secrets) with the broker up
rt_out_dir "$T/on"
BUNDLE_BINDS="$T/on:/out:rw" mk_bundle "$T/bn" "" sh -c 'ls /run/secrets >/out/ls 2>&1; echo $? >/out/rc'
run_runc "$T/bn" "sdt-runc-$$-none" || fail "plain container: $(cat "$T/bn/err")"
[ "$(cat "$T/on/rc")" != 0 ] || fail "plain container got /run/secrets: $(cat "$T/on/ls")"
ok "a container without grants or annotations starts without a mount"

# --- broker down: a container that asks for secrets must not start; others still do
sd_stop
mk_bundle "$T/bd" app sh -c 'echo started'
if run_runc "$T/bd" "sdt-runc-$$-down"; then
	fail "a container with io.secretd.name started while the broker was down"
fi
grep -q 'secretd-oci-hook: cannot reach secretd at' "$T/bd/err" ||
	fail "runc's error lacks the hook's reason: $(cat "$T/bd/err")"
if grep -q started "$T/bd/out"; then fail "the container's process ran"; fi
ok "broker down: the container does not start and runc reports the hook's reason"
mk_bundle "$T/bd2" "" sh -c 'echo started'
run_runc "$T/bd2" "sdt-runc-$$-down2" || fail "broker down: a plain container failed: $(cat "$T/bd2/err")"
grep -q started "$T/bd2/out" || fail "broker down: the plain container did not run"
ok "broker down: a container that asks for nothing still starts"
