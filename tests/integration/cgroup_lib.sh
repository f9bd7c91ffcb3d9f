# shellcheck shell=sh
# cgroup_lib.sh: make docker-, podman- and kubepods-shaped cgroups and "containers" (sourced
# after lib.sh). cgroup v2 is at /sys/fs/cgroup/unified on these machines (hybrid layout),
# /sys/fs/cgroup on a pure v2 host; v1 name=systemd at /sys/fs/cgroup/systemd.
CG2=
for d in /sys/fs/cgroup/unified /sys/fs/cgroup; do
	if [ -f "$d/cgroup.procs" ] && [ "$(stat -f -c %T "$d")" = cgroup2fs ]; then CG2=$d; break; fi
done
CG1=/sys/fs/cgroup/systemd
[ -f "$CG1/cgroup.procs" ] || CG1=
CG_MADE=""

need_cgroup2() { [ -n "$CG2" ] || skip_or_fail "needs a cgroup v2 hierarchy"; }
need_cgroup1_systemd() { [ -n "$CG1" ] || skip_or_fail "needs the v1 name=systemd hierarchy"; }

hex64() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

# mk_cgroup ROOT PATH: creates ROOT/PATH (remembered for cleanup) and sets CG to it. (Not for
# $(...): the subshell would forget it for cleanup.)
mk_cgroup() {
	mkdir -p "$1$2"
	CG_MADE="$1$2 $CG_MADE"
	CG=$1$2
}

# cg_cleanup: moves leftover processes out (killing them) and removes made cgroups, deepest first.
cg_cleanup() {
	for d in $CG_MADE; do
		[ -f "$d/cgroup.procs" ] || continue
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
	done
	sleep 0.1
	for d in $CG_MADE; do
		while [ -d "$d" ] && [ "$d" != "$CG2" ] && [ "$d" != "$CG1" ]; do
			rmdir "$d" 2>/dev/null || break
			d=$(dirname "$d")
		done
	done
}

# in_cgroup DIR CMD...: runs CMD inside the cgroup DIR (the shell moves itself, then execs).
in_cgroup() {
	d=$1
	shift
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$d" "$@"
}

# in_container DIR CMD...: like in_cgroup, plus new pid and mount namespaces and a private /run.
in_container() {
	d=$1
	shift
	sh -c 'echo $$ >"$0/cgroup.procs" && exec unshare --mount --pid --fork --mount-proc \
		sh -c "mount -t tmpfs -o mode=0755 tmpfs /run && exec \"\$@\"" sh "$@"' "$d" "$@"
}

# start_container DIR: a long-lived "container" (own cgroup DIR, pid and mount namespaces, a
# private /run). Sets CPID to the host pid of its init once it is up. (Not for $(...): a
# background job started in a command substitution runs the EXIT trap there.)
start_container() {
	in_container "$1" sleep 100000 >/dev/null 2>&1 &
	i=0
	CPID=
	while :; do
		for p in $(cat "$1/cgroup.procs"); do
			if [ "$(readlink "/proc/$p/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] &&
				[ "$(cat "/proc/$p/comm" 2>/dev/null)" = sleep ]; then
				CPID=$p
				return 0
			fi
		done
		i=$((i + 1))
		[ $i -gt 100 ] && return 1
		sleep 0.05
	done
}

# cexec PID DIR CMD...: runs CMD inside the container whose init is PID (its mount and pid
# namespaces) and in its cgroup DIR, as a process of that container would.
cexec() {
	p=$1
	d=$2
	shift 2
	nsenter -t "$p" -m -p -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$d" "$@"
}

# one_mounted_container VALUE: a docker-shaped container A whose secret app/a (VALUE, with
# backslash escapes such as \n interpreted) is granted
# and mounted at /run/secrets through the workload socket $SD_WORKLOAD. Sets A, cgA, PA and F
# (the file's path inside A). Needs a running daemon (sd_start).
one_mounted_container() {
	A=$(hex64)
	mk_cgroup "$CG2" "/docker/$A"; cgA=$CG
	printf '%b' "$1" | ctl put app/a >/dev/null || fail "put app/a"
	ctl grant app/a "id:$A" >/dev/null || fail "grant app/a"
	start_container "$cgA" || fail "container A did not start"
	PA=$CPID
	cexec "$PA" "$cgA" "$SECRETCTL" --socket "$SD_WORKLOAD" mount /run/secrets | grep -q "mounted 1" ||
		fail "mount in A"
	F=/run/secrets/app/a
}
