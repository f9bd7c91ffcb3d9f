# shellcheck shell=sh
# runtime_lib.sh: helpers to run real containers (runc, crun, podman) with secretd's OCI hook.
# Sourced after lib.sh (uses $T, fail, $SECRETD_OCI_HOOK, $SECRETD_SOCKET, $SOURCE_ROOT).
#
#   rt_rootfs                     -> path of a busybox rootfs shared by this test (built once)
#   mk_bundle DIR NAME CMD...     -> DIR/config.json + DIR/rootfs (a throwaway copy)
#       NAME "" means no io.secretd.name annotation. Knobs (environment, read at call time):
#       BUNDLE_UID/BUNDLE_GID (1000), BUNDLE_ANN ("k=v" lines: more annotations),
#       BUNDLE_BINDS ("HOSTDIR:CTRDIR:ro|rw" lines), BUNDLE_HOOKS (1; 0 = no secretd hook),
#       BUNDLE_SOCKET (default $SECRETD_SOCKET, else $T/run/admin.sock).
#   run_runc BUNDLE ID            -> runc run in the foreground; stdio in BUNDLE/{out,err}
#   run_runc_detached BUNDLE ID   -> runc run -d (stdio redirected to BUNDLE/{out,err})
#   crun_wrap ARGS...             -> crun create/run/delete through the hybrid-cgroup wrapper
#   run_crun BUNDLE ID            -> crun run through the wrapper, stdio in BUNDLE/{out,err}
#   mk_hooks_dir DIR              -> podman hooks.d with secretd's createRuntime/poststop hooks
#   podman_run ARGS...            -> podman --runtime runc --hooks-dir ... run --rm (flags that work)
#   start_runc_bg / start_crun_bg BUNDLE ID -> same in the background (RT_PID)
#   rt_out_dir DIR                -> a host dir the container user can write (bind it at /out)
#   rt_reader_script / rt_reader_setup / rt_reader_check -> the read + rotation scenario
#   rt_wait_file FILE [TENTHS]    -> waits for FILE to exist (default 100 = 10 s)
#   rt_wait_gone_from_broker ID   -> waits until `secretctl containers --json` lacks ID
#   rt_cleanup_add CMD            -> appends CMD to EXTRA_CLEANUP
#   json_str S                    -> S as a JSON string literal

RT_RUNC_ROOT="$T/runc-state"
RT_CRUN_ROOT="$T/crun-state"

rt_cleanup_add() {
	EXTRA_CLEANUP="${EXTRA_CLEANUP:-}${EXTRA_CLEANUP:+; }$1"
}

# JSON string literal of $1 (escapes backslash, quote, tab and newline; other control
# characters are not expected in tests).
json_str() {
	printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g; s/	/\\t/g' | awk '
		BEGIN { ORS = ""; printf "%s", "\"" }
		NR > 1 { printf "%s", "\\n" }
		{ printf "%s", $0 }
		END { printf "%s", "\"" }'
}

rt_rootfs() {
	if [ ! -x "$T/rootfs/bin/busybox" ]; then
		"$SOURCE_ROOT/tests/integration/mkrootfs.sh" "$T/rootfs" >&2 ||
			fail "mkrootfs.sh failed"
	fi
	echo "$T/rootfs"
}

rt_hook_socket() {
	echo "${BUNDLE_SOCKET:-${SECRETD_SOCKET:-$T/run/admin.sock}}"
}

# mk_bundle DIR NAME CMD...
mk_bundle() {
	_dir=$1 _name=$2
	shift 2
	[ $# -gt 0 ] || fail "mk_bundle: no command"
	_src=$(rt_rootfs)
	mkdir -p "$_dir"
	_dir=$(cd "$_dir" && pwd -P) # root.path must be absolute and free of symlinks
	rm -rf "$_dir/rootfs"
	cp -a "$_src" "$_dir/rootfs"

	_args=
	for _a in "$@"; do
		_args="$_args${_args:+, }$(json_str "$_a")"
	done

	_ann=
	[ -n "$_name" ] && _ann="$(json_str io.secretd.name): $(json_str "$_name")"
	if [ -n "${BUNDLE_ANN:-}" ]; then
		_ann=$(printf '%s\n' "$BUNDLE_ANN" | {
			_acc=$_ann
			while IFS= read -r _l; do
				[ -n "$_l" ] || continue
				_acc="$_acc${_acc:+, }$(json_str "${_l%%=*}"): $(json_str "${_l#*=}")"
			done
			printf '%s' "$_acc"
		})
	fi

	_mounts=
	if [ -n "${BUNDLE_BINDS:-}" ]; then
		_mounts=$(printf '%s\n' "$BUNDLE_BINDS" | {
			_acc=
			while IFS=: read -r _hs _cd _mode; do
				[ -n "$_hs" ] || continue
				_acc="$_acc,
		{\"destination\": $(json_str "$_cd"), \"type\": \"bind\", \"source\": $(json_str "$_hs"),
		 \"options\": [\"rbind\", \"${_mode:-ro}\", \"nosuid\", \"nodev\"]}"
			done
			printf '%s' "$_acc"
		})
	fi

	_hooks=
	if [ "${BUNDLE_HOOKS:-1}" = 1 ]; then
		_hook=$(json_str "$SECRETD_OCI_HOOK")
		_sock=$(json_str "$(rt_hook_socket)")
		_hooks="\"hooks\": {
		\"createRuntime\": [{\"path\": $_hook,
			\"args\": [\"secretd-oci-hook\", \"--socket\", $_sock, \"createRuntime\"]}],
		\"poststop\": [{\"path\": $_hook,
			\"args\": [\"secretd-oci-hook\", \"--socket\", $_sock, \"poststop\"]}]
	},"
	fi

	cat >"$_dir/config.json" <<JSON
{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": false,
		"user": {"uid": ${BUNDLE_UID:-1000}, "gid": ${BUNDLE_GID:-1000}},
		"args": [$_args],
		"env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp"],
		"cwd": "/",
		"capabilities": {
			"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
		},
		"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
		"noNewPrivileges": true
	},
	"root": {"path": $(json_str "$_dir/rootfs"), "readonly": false},
	"hostname": "secretd-test",
	"annotations": {$_ann},
	$_hooks
	"mounts": [
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
		 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
		 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
		 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
		{"destination": "/sys", "type": "sysfs", "source": "sysfs",
		 "options": ["nosuid", "noexec", "nodev", "ro"]}$_mounts
	],
	"linux": {
		"resources": {"devices": [{"allow": false, "access": "rwm"}]},
		"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
			{"type": "mount"}],
		"maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
		"readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
	}
}
JSON
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$_dir/config.json" ||
			fail "mk_bundle wrote invalid JSON in $_dir/config.json"
	fi
}

# runc with a state directory of its own, so tests never see the host's containers.
rt_runc() { runc --root "$RT_RUNC_ROOT" "$@"; }

run_runc() {
	rt_cleanup_add "rt_runc delete -f '$2' >/dev/null 2>&1"
	rt_runc run --bundle "$1" "$2" <"/dev/null" >"$1/out" 2>"$1/err"
}

run_runc_detached() {
	rt_cleanup_add "rt_runc delete -f '$2' >/dev/null 2>&1"
	rt_runc run -d --bundle "$1" "$2" <"/dev/null" >"$1/out" 2>"$1/err"
}

# crun refuses the hybrid cgroup layout: run create/run/delete in a mount namespace without
# the cgroup2 mount (hooks then run in that namespace too).
crun_wrap() {
	unshare -m --propagation slave sh -c \
		'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun \
		--root "$RT_CRUN_ROOT" "$@"
}

run_crun() {
	rt_cleanup_add "crun_wrap delete -f '$2' >/dev/null 2>&1"
	crun_wrap run --bundle "$1" "$2" <"/dev/null" >"$1/out" 2>"$1/err"
}

# mk_hooks_dir DIR: podman hooks.d calling secretd-oci-hook for both stages (one file each: the
# hook's args are fixed per file, and an explicit stage is clearer than guessing from status).
mk_hooks_dir() {
	mkdir -p "$1"
	_hook=$(json_str "$SECRETD_OCI_HOOK")
	_sock=$(json_str "$(rt_hook_socket)")
	for _st in createRuntime poststop; do
		cat >"$1/secretd-$_st.json" <<JSON
{
	"version": "1.0.0",
	"hook": {"path": $_hook, "args": ["secretd-oci-hook", "--socket", $_sock, "$_st"]},
	"when": {"always": true},
	"stages": ["$_st"]
}
JSON
	done
}

# podman_run ARGS...: `podman run --rm` with the flags this machine needs (RUNTIMES.md).
podman_run() {
	[ -n "${RT_HOOKS_DIR:-}" ] || { RT_HOOKS_DIR="$T/hooks.d" && mk_hooks_dir "$RT_HOOKS_DIR"; }
	podman --runtime runc --hooks-dir "$RT_HOOKS_DIR" run --rm --network=none \
		--ulimit nofile=1024:1024 --ulimit nproc=4096:4096 "$@"
}

# start_runc_bg / start_crun_bg BUNDLE ID: as run_runc / run_crun, in the background; RT_PID is
# the runtime's pid (wait for it). The cleanup is registered here, in the caller's shell.
start_runc_bg() {
	rt_cleanup_add "rt_runc delete -f '$2' >/dev/null 2>&1"
	rt_runc run --bundle "$1" "$2" <"/dev/null" >"$1/out" 2>"$1/err" &
	# shellcheck disable=SC2034 # for the caller
	RT_PID=$!
}

start_crun_bg() {
	rt_cleanup_add "crun_wrap delete -f '$2' >/dev/null 2>&1"
	crun_wrap run --bundle "$1" "$2" <"/dev/null" >"$1/out" 2>"$1/err" &
	# shellcheck disable=SC2034 # for the caller
	RT_PID=$!
}

# rt_out_dir DIR: an empty host directory the container user (1000) can write: the channel
# between a test and its container (bind-mounted at /out).
rt_out_dir() {
	rm -rf "$1"
	mkdir -p "$1"
	chown "${BUNDLE_UID:-1000}:${BUNDLE_GID:-1000}" "$1"
}

# The container side of the read/rotate check (run by sh inside the container, /out bound):
# first read, listing, an ungranted read, the environment; then /out/ready; then it waits
# (bounded) for the test to rotate and create /out/go, reads again and creates /out/done.
rt_reader_script() {
	cat <<'SCRIPT'
cat /run/secrets/db/password >/out/first 2>/out/first.err
ls -R /run/secrets >/out/ls 2>&1
cat /run/secrets/other >/out/other 2>&1; echo $? >/out/other.rc
tr '\0' '\n' </proc/1/environ >/out/environ
id -u >/out/uid
: >/out/ready
i=0
while [ ! -e /out/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
cat /run/secrets/db/password >/out/second 2>/out/second.err
: >/out/done
SCRIPT
}

# rt_reader_setup: the secrets and grants rt_reader_script expects (daemon running).
rt_reader_setup() {
	printf 'pw-one' | ctl put db/password >/dev/null || fail "put db/password"
	printf 'other-value' | ctl put other >/dev/null || fail "put other"
	ctl grant db/password name:app >/dev/null || fail "grant db/password name:app"
}

# rt_reader_check OUTDIR ID WHAT PID: drives rt_reader_script in container ID (runtime process
# PID, listed by the broker as ID) through the first read, the rotation and the second read.
rt_reader_check() {
	_o=$1 _id=$2 _what=$3 _pid=$4
	rt_wait_file "$_o/ready" 150 || fail "$_what: the container did not get ready"
	[ "$(cat "$_o/first")" = "pw-one" ] ||
		fail "$_what: first read: '$(cat "$_o/first" "$_o/first.err")'"
	ok "$_what: the container (uid $(cat "$_o/uid")) reads its granted secret"
	grep -qx 'password' "$_o/ls" || fail "$_what: ls /run/secrets: $(cat "$_o/ls")"
	if grep -q 'other' "$_o/ls"; then fail "$_what: ungranted secret listed: $(cat "$_o/ls")"; fi
	[ "$(cat "$_o/other.rc")" != 0 ] || fail "$_what: ungranted secret readable"
	if grep -q 'other-value' "$_o/other"; then fail "$_what: ungranted value leaked"; fi
	ok "$_what: an ungranted secret is neither listed nor readable"
	if grep -q 'pw-one\|other-value' "$_o/environ"; then fail "$_what: secret in environment"; fi
	ok "$_what: no secret in the container's environment"
	_l=$(ctl containers --json) || fail "$_what: secretctl containers"
	case $_l in
	*"\"$_id\""*) ok "$_what: the broker lists the running container" ;;
	*) fail "$_what: container $_id not listed: $_l" ;;
	esac
	printf 'pw-two' | ctl put db/password >/dev/null || fail "$_what: rotate db/password"
	: >"$_o/go"
	rt_wait_file "$_o/done" 150 || fail "$_what: the container did not finish"
	[ "$(cat "$_o/second")" = "pw-two" ] ||
		fail "$_what: after rotation: '$(cat "$_o/second" "$_o/second.err")'"
	ok "$_what: the running container sees the rotated value"
	wait "$_pid" || fail "$_what: the runtime failed"
	rt_wait_gone_from_broker "$_id" || fail "$_what: the broker still lists $_id after exit"
	ok "$_what: the broker forgets the container after it exits"
}

# Readers in a loop, for the crash/restart tests: rt_loop_start N PREFIX starts N runc
# containers named app (granted db/password by the caller), container I logging one line per read
# of /run/secrets/db/password to $T/oI/log: "START END RC VALUE" (START and END from
# /proc/uptime, 10 ms steps), every 0.05 s until $T/oI/stop exists. RUNC_I is its runtime's pid.
# shellcheck disable=SC2016 # expanded inside the container
RT_LOOP_READER='while [ ! -e /out/stop ]; do
	read a _ </proc/uptime
	v=$(cat /run/secrets/db/password 2>&1); rc=$?
	read b _ </proc/uptime
	echo "$a $b $rc $v" >>/out/log
	sleep 0.05
done'
rt_loop_start() {
	RT_LOOP_N=$1
	_i=1
	while [ "$_i" -le "$RT_LOOP_N" ]; do
		rt_out_dir "$T/o$_i"
		BUNDLE_BINDS="$T/o$_i:/out:rw" mk_bundle "$T/b$_i" app sh -c "$RT_LOOP_READER"
		start_runc_bg "$T/b$_i" "$2-$_i"
		eval "RUNC_$_i=\$RT_PID"
		_i=$((_i + 1))
	done
}
# rt_loop_read_since I LINE V: container I logged a good read of V after line LINE of its log.
rt_loop_read_since() { tail -n +"$(($2 + 1))" "$T/o$1/log" 2>/dev/null | grep -q " 0 $3\$"; }
# rt_loop_mark: remembers each log's length; rt_loop_all_read V: every container read V since.
rt_loop_mark() {
	_j=1
	while [ "$_j" -le "$RT_LOOP_N" ]; do
		eval "RT_LOOP_L_$_j=\$(wc -l <'$T/o$_j/log' 2>/dev/null || echo 0)"
		_j=$((_j + 1))
	done
}
rt_loop_all_read() {
	_j=1
	while [ "$_j" -le "$RT_LOOP_N" ]; do
		eval "_l=\${RT_LOOP_L_$_j:-0}"
		rt_loop_read_since "$_j" "$_l" "$1" || return 1
		_j=$((_j + 1))
	done
}
# rt_loop_stop FIRST: stops containers FIRST..N and waits for their runtimes (fails on an error).
rt_loop_stop() {
	_j=$1
	while [ "$_j" -le "$RT_LOOP_N" ]; do : >"$T/o$_j/stop"; _j=$((_j + 1)); done
	_j=$1
	while [ "$_j" -le "$RT_LOOP_N" ]; do
		eval "_p=\$RUNC_$_j"
		wait "$_p" || fail "container $_j: runc failed: $(cat "$T/b$_j/err")"
		_j=$((_j + 1))
	done
}
# rt_loop_verdict V...: after rt_loop_stop, every logged read succeeded with one of the values V;
# sets RT_LOOP_READS (how many) and RT_LOOP_LONGEST (the slowest read, seconds).
rt_loop_verdict() {
	cat "$T"/o*/log >"$T/all.log"
	_want=" $* "
	_bad=$(awk -v w="$_want" '$3 != 0 || index(w, " " $4 " ") == 0' "$T/all.log" | head -n 5)
	[ -z "$_bad" ] || fail "failed or wrong reads: $_bad"
	RT_LOOP_READS=$(wc -l <"$T/all.log")
	RT_LOOP_LONGEST=$(awk '{ d = $2 - $1; if (d > m) m = d } END { printf "%.2f\n", m + 0 }' "$T/all.log")
}

rt_wait_file() {
	_i=0
	while [ ! -e "$1" ]; do
		_i=$((_i + 1))
		[ "$_i" -gt "${2:-100}" ] && return 1
		sleep 0.1
	done
	return 0
}

rt_wait_gone_from_broker() {
	_i=0
	while :; do
		_o=$(ctl containers --json) || return 1
		case $_o in
		*"\"$1\""*) ;;
		*) return 0 ;;
		esac
		_i=$((_i + 1))
		[ "$_i" -gt 50 ] && return 1
		sleep 0.1
	done
}
