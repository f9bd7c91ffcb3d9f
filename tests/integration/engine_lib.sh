# shellcheck shell=sh
# engine_lib.sh: a private Docker Engine or containerd for a test, in $T, with secretd-runc.
# Sourced after lib.sh and runtime_lib.sh (uses $T, fail, rt_cleanup_add, rt_rootfs).
#
#   eng_wait CMD... [bounded]   -> polls CMD (0.1 s steps, ENG_WAIT tenths, default 600) until it
#                                  succeeds; 1 when it never does
#   docker_start                -> dockerd with data/exec roots, pidfile and socket under $T/dk,
#                                  no iptables/bridge, vfs; runtime "secretd" = secretd-runc,
#                                  also the default runtime.
#                                  Sets DOCKER (the docker.io client), DOCKER_HOST, DOCKERD_PID
#   docker_import IMAGE         -> the busybox rootfs as IMAGE (docker import, no registry)
#   containerd_start            -> containerd with root/state/socket under $T/ctd; sets CTR
#   eng_teardown                -> (registered by the starters) stops what they started, by pid:
#                                  the engine, then any process whose command line names $T
#                                  (shims, managed containerd), then unmounts what is left in $T

# The engines (and a broker a test stops with SIGSTOP) share the test's process group: should the
# group be orphaned with a stopped member, the kernel sends it SIGHUP. Clean up then too.
trap cleanup EXIT HUP INT TERM

# The docker.io package's client: a newer docker CLI elsewhere in $PATH may not speak to 20.10.
DOCKER_CLI=${DOCKER_CLI:-/usr/bin/docker}
ENG_PIDS=

eng_wait() {
	_i=0
	while ! "$@" >/dev/null 2>&1; do
		_i=$((_i + 1))
		[ "$_i" -gt "${ENG_WAIT:-600}" ] && return 1
		sleep 0.1
	done
	return 0
}

# Pids of processes whose command line contains $T (what our engines started: shims, the
# managed containerd). The test's own shell and its children never name $T in argv[0..1] with
# "containerd", so the match is on that too.
eng_our_pids() {
	for _p in /proc/[0-9]*; do
		_c=$({ tr '\0' ' ' <"$_p/cmdline"; } 2>/dev/null) || continue
		case $_c in
		*containerd*"$T/"* | *dockerd*"$T/"*) echo "${_p#/proc/}" ;;
		esac
	done
}

eng_kill_wait() {
	_pid=$1
	kill -TERM "$_pid" 2>/dev/null || return 0
	_i=0
	while kill -0 "$_pid" 2>/dev/null; do
		_i=$((_i + 1))
		[ "$_i" -gt 200 ] && { kill -KILL "$_pid" 2>/dev/null || true; break; }
		sleep 0.05
	done
}

eng_teardown() {
	if [ -n "${DOCKERD_PID:-}" ]; then
		_ids=$("$DOCKER_CLI" ps -aq 2>/dev/null) || _ids=
		# shellcheck disable=SC2086 # a list of ids
		[ -n "$_ids" ] && "$DOCKER_CLI" rm -f $_ids >/dev/null 2>&1
		eng_kill_wait "$DOCKERD_PID"
		wait "$DOCKERD_PID" 2>/dev/null || true
		DOCKERD_PID=
	fi
	for _p in $ENG_PIDS; do
		eng_kill_wait "$_p"
		wait "$_p" 2>/dev/null || true
	done
	ENG_PIDS=
	for _p in $(eng_our_pids); do
		[ "$_p" = "$$" ] || eng_kill_wait "$_p"
	done
	# Mounts the engines left under $T (rootfs binds, netns files), deepest first.
	awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r _m; do umount -l "$_m" 2>/dev/null || true; done
}

docker_start() {
	[ -x "$DOCKER_CLI" ] || skip_or_fail "needs the docker.io client at $DOCKER_CLI"
	need_cmd dockerd
	need_cmd containerd
	DK="$T/dk"
	mkdir -p "$DK/data" "$DK/exec" "$DK/cli"
	cat >"$DK/daemon.json" <<JSON
{
	"iptables": false, "ip-forward": false, "ip-masq": false, "bridge": "none",
	"storage-driver": "vfs", "data-root": "$DK/data", "exec-root": "$DK/exec",
	"pidfile": "$DK/docker.pid", "hosts": ["unix://$DK/docker.sock"],
	"default-runtime": "secretd",
	"runtimes": {
		"secretd": {"path": "$SECRETD_RUNC_WRAPPER"},
		"secretd-args": {"path": "$SECRETD_RUNC_WRAPPER",
			"runtimeArgs": ["--secretd-hook=$SECRETD_OCI_HOOK", "--secretd-socket=$T/run/admin.sock"]},
		"secretd-nohook": {"path": "$SECRETD_RUNC_WRAPPER",
			"runtimeArgs": ["--secretd-hook=$T/no-such-hook"]}
	}
}
JSON
	rt_cleanup_add eng_teardown
	# The wrapper finds the broker and the hook through dockerd's environment (containerd and
	# its shims inherit it); secretd-args passes them as runtimeArgs instead.
	env SECRETD_SOCKET="$T/run/admin.sock" SECRETD_OCI_HOOK="$SECRETD_OCI_HOOK" \
		dockerd --config-file "$DK/daemon.json" >"$DK/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	export DOCKER_HOST="unix://$DK/docker.sock" DOCKER_CONFIG="$DK/cli"
	_i=0
	while ! "$DOCKER_CLI" version >/dev/null 2>&1; do
		kill -0 "$DOCKERD_PID" 2>/dev/null || fail "dockerd exited: $(tail -n 20 "$DK/dockerd.log")"
		_i=$((_i + 1))
		[ "$_i" -gt 900 ] && fail "dockerd did not answer in 90 s: $(tail -n 20 "$DK/dockerd.log")"
		sleep 0.1
	done
	DOCKER=$DOCKER_CLI
}

docker_import() {
	tar -C "$(rt_rootfs)" -c . | "$DOCKER" import - "$1" >/dev/null || fail "docker import $1"
}

containerd_start() {
	need_cmd containerd
	need_cmd ctr
	CTD="$T/ctd"
	mkdir -p "$CTD/root" "$CTD/state"
	cat >"$CTD/config.toml" <<TOML
version = 2
root = "$CTD/root"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
state = "$CTD/state"
[grpc]
  address = "$CTD/containerd.sock"
[ttrpc]
  address = "$CTD/containerd.sock.ttrpc"
[debug]
  address = "$CTD/debug.sock"
[metrics]
  address = ""
TOML
	rt_cleanup_add eng_teardown
	env SECRETD_SOCKET="$T/run/admin.sock" SECRETD_OCI_HOOK="$SECRETD_OCI_HOOK" \
		containerd --config "$CTD/config.toml" >"$CTD/containerd.log" 2>&1 &
	ENG_PIDS="$ENG_PIDS $!"
	# The runc shim keeps runc's state in /run/containerd/runc/NAMESPACE: one of our own.
	CTR_NS="sdt-$$"
	rt_cleanup_add "rm -rf '/run/containerd/runc/$CTR_NS'"
	CTR="ctr --address $CTD/containerd.sock --namespace $CTR_NS"
	_i=0
	# shellcheck disable=SC2086 # CTR is a command with arguments
	while ! $CTR version >/dev/null 2>&1; do
		_i=$((_i + 1))
		[ "$_i" -gt 600 ] && fail "containerd did not answer in 60 s: $(tail -n 20 "$CTD/containerd.log")"
		sleep 0.1
	done
}
