#!/bin/sh
# test_crun.sh: secrets reach crun containers through secretd-oci-hook: read, rotation seen by the
# running container, nothing ungranted or in the environment, forgotten on exit; broker down
# stops a container that asks for secrets. crun runs through the hybrid-cgroup wrapper
# (RUNTIMES.md); its hooks' stderr goes to the file named by annotation run.oci.hooks.stderr.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/runtime_lib.sh
. "$(dirname "$0")/runtime_lib.sh"
need_root
need_fuse
need_cmd crun
need_cmd unshare
[ -x /bin/busybox ] || skip_or_fail "needs busybox-static"

# shellcheck disable=SC2119 # no extra daemon arguments
sd_start
rt_reader_setup

ID=sdt-crun-$$-a
rt_out_dir "$T/oa"
BUNDLE_BINDS="$T/oa:/out:rw" BUNDLE_ANN="run.oci.hooks.stderr=$T/hook-a.err" \
	mk_bundle "$T/ba" app sh -c "$(rt_reader_script)"
start_crun_bg "$T/ba" "$ID"
rt_reader_check "$T/oa" "$ID" crun "$RT_PID"
if [ -s "$T/hook-a.err" ]; then fail "the hook complained: $(cat "$T/hook-a.err")"; fi

sd_stop
BUNDLE_ANN="run.oci.hooks.stderr=$T/hook-d.err" mk_bundle "$T/bd" app sh -c 'echo started'
if run_crun "$T/bd" "sdt-crun-$$-down"; then
	fail "a container with io.secretd.name started while the broker was down"
fi
grep -q 'secretd-oci-hook: cannot reach secretd at' "$T/hook-d.err" ||
	fail "the hook's reason is missing: $(cat "$T/bd/err" "$T/hook-d.err" 2>&1)"
if grep -q started "$T/bd/out"; then fail "the container's process ran"; fi
ok "broker down: crun does not start the container and the hook says why"
