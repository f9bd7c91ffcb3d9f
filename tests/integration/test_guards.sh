#!/bin/sh
# Guards that no other test could catch being removed (safety review #12, items 14-16). Each case
# here was checked by breaking the guard it names: the test then fails.
#  - "missing" and "not granted" answer alike on the workload API: status AND body, for a name that
#    exists but is not granted, one that is granted (by a subtree grant) but does not exist, and one
#    that is neither.
#  - the admin socket is protected twice: its mode (0600) and the peer-uid check. Each layer is
#    tested alone, as uid 1000.
#  - a mount target that is a relative symlink, or that crosses a symlinked parent, is refused, the
#    error says why, and nothing is mounted anywhere in the container.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_fuse
need_cgroup2
need_cmd unshare
need_cmd nsenter
need_cmd setpriv
need_cmd curl
EXTRA_CLEANUP=cg_cleanup

sd_start
W="$SD_WORKLOAD"

# ---- 14: missing, ungranted, and granted-but-missing answer byte for byte alike ----
printf 'v-exists' | ctl put app/exists >/dev/null
printf 'v-other' | ctl put other/secret >/dev/null
D=$(hex64)
mk_cgroup "$CG2" "/docker/$D"; cgD=$CG
ctl grant 'app/*' "id:$D" >/dev/null || fail "grant app/*"
# wget: status line + body of one workload GET, from inside the container
wget_self() {
	in_container "$cgD" curl -s --unix-socket "$W" -o "$T/body.$2" -w '%{http_code}' \
		"http://x/v1/self/secrets/$1" >"$T/code.$2" || fail "curl $1"
}
wget_self app/exists granted
[ "$(cat "$T/code.granted")" = 200 ] && [ "$(cat "$T/body.granted")" = v-exists ] ||
	fail "the granted secret is not readable: $(cat "$T/code.granted") $(cat "$T/body.granted")"
wget_self other/secret ungranted        # exists, not granted
wget_self app/missing granted_missing   # granted by app/*, does not exist
wget_self nope/missing missing          # neither
for k in granted_missing missing; do
	[ "$(cat "$T/code.$k")" = "$(cat "$T/code.ungranted")" ] ||
		fail "status differs: ungranted $(cat "$T/code.ungranted"), $k $(cat "$T/code.$k")"
	cmp -s "$T/body.$k" "$T/body.ungranted" ||
		fail "body differs: ungranted '$(cat "$T/body.ungranted")', $k '$(cat "$T/body.$k")'"
done
[ "$(cat "$T/code.ungranted")" = 404 ] || fail "ungranted answer is not 404: $(cat "$T/code.ungranted")"
# The body must say nothing more than "no such secret" (a hint such as "not granted" would tell).
[ "$(cat "$T/body.ungranted")" = '{"error":"no such secret"}' ] ||
	fail "the ungranted answer's body says more than 'no such secret': $(cat "$T/body.ungranted")"
ok "workload read: ungranted, granted-but-missing and missing: same status (404) and same body"

# ---- 15: the admin socket, each layer alone, as uid 1000 ----
# Let uid 1000 reach the socket file, so only the socket's own protections stand in the way.
chmod 0755 "$T" "$T/run"
as1000() { setpriv --reuid 1000 --regid 1000 --clear-groups "$@"; }
mode=$(stat -c %a "$T/run/admin.sock")
[ "$mode" = 600 ] || fail "admin.sock mode is $mode, not 600"
rc=0
as1000 curl -s -o /dev/null --unix-socket "$T/run/admin.sock" http://x/v1/secrets 2>"$T/err" || rc=$?
[ "$rc" = 7 ] || fail "uid 1000 was not refused the connection by the socket's mode (curl rc $rc)"
as1000 "$SECRETCTL" --socket "$T/run/admin.sock" get app/exists >"$T/out" 2>"$T/err" &&
	fail "uid 1000 read a secret through the admin socket: $(cat "$T/out")"
grep -q v-exists "$T/out" && fail "the value reached uid 1000"
grep -q 'permission denied on the socket' "$T/err" ||
	fail "secretctl does not say the socket refused uid 1000: $(cat "$T/err")"
ok "layer 1: admin.sock is 0600, uid 1000 cannot connect (and secretctl says permission denied)"
# Layer 2 alone: the socket as if bind-mounted somewhere with other permissions.
chmod 0666 "$T/run/admin.sock"
# (uid 1000 cannot write into $T: the body comes back on stdout, the status on the last line)
as1000 curl -s -w '\n%{http_code}' --unix-socket "$T/run/admin.sock" \
	http://x/v1/values/app/exists >"$T/body" || fail "uid 1000 could not connect to a 0666 admin socket"
code=$(tail -n 1 "$T/body")
[ "$code" = 403 ] || fail "layer 2: uid 1000 got HTTP $code from the admin socket: $(cat "$T/body")"
grep -q v-exists "$T/body" && fail "layer 2: the value reached uid 1000"
as1000 "$SECRETCTL" --socket "$T/run/admin.sock" get app/exists >"$T/out" 2>"$T/err" &&
	fail "layer 2: secretctl get worked as uid 1000"
grep -q v-exists "$T/out" && fail "layer 2: the value reached uid 1000 through secretctl"
for route in /v1/secrets /v1/grants /v1/audit /metrics; do
	code=$(as1000 curl -s -o /dev/null -w '%{http_code}' --unix-socket "$T/run/admin.sock" "http://x$route")
	[ "$code" = 403 ] || fail "layer 2: uid 1000 got HTTP $code on $route"
done
code=$(printf 'x' | as1000 curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @- \
	--unix-socket "$T/run/admin.sock" http://x/v1/secrets/app/exists)
[ "$code" = 403 ] || fail "layer 2: uid 1000 got HTTP $code on a PUT"
[ "$(ctl get app/exists)" = v-exists ] || fail "layer 2: the value changed"
chmod 0600 "$T/run/admin.sock"
ok "layer 2: with the socket opened to everyone, the peer-uid check still refuses uid 1000 (403), nothing read or changed"

# ---- 16: symlinks in the mount target, relative and in a parent component ----
C=$(hex64)
mk_cgroup "$CG2" "/docker/$C"; cgC=$CG
ctl grant app/exists "id:$C" >/dev/null
start_container "$cgC" || fail "container C did not start"
PC=$CPID
# A secretd mount in C: a FUSE mount of type fuse.secretd (only C's own: the host has none, and
# other tests' paths that merely contain "secretd" do not count).
mounted_in_c() { grep -q ' - fuse\.secretd ' "/proc/$PC/mountinfo"; }
# (a) a relative link /run/secrets -> elsewhere (resolves inside the container's root)
cexec "$PC" "$cgC" sh -c 'mkdir -p /run/elsewhere && ln -s elsewhere /run/secrets'
cexec "$PC" "$cgC" "$SECRETCTL" --socket "$W" mount /run/secrets 2>"$T/err" && fail "mounted over a relative symlink"
grep -qi symlink "$T/err" || fail "relative symlink: the error does not say why: $(cat "$T/err")"
mounted_in_c && fail "relative symlink: something was mounted in C: $(grep secretd "/proc/$PC/mountinfo")"
ok "a relative symlink as the mount target is refused (the error says symlink), nothing mounted"
# (b) a symlinked parent: /run/data -> real (relative), target /run/data/secrets (exists through it)
cexec "$PC" "$cgC" sh -c 'mkdir -p /run/real/secrets && ln -s real /run/data'
cexec "$PC" "$cgC" "$SECRETCTL" --socket "$W" mount /run/data/secrets 2>"$T/err" && fail "mounted through a symlinked parent"
grep -qi symlink "$T/err" || fail "symlinked parent: the error does not say why: $(cat "$T/err")"
mounted_in_c && fail "symlinked parent: something was mounted in C: $(grep secretd "/proc/$PC/mountinfo")"
# (c) the same with an absolute link in the parent
cexec "$PC" "$cgC" sh -c 'ln -s /run/real /run/abs'
cexec "$PC" "$cgC" "$SECRETCTL" --socket "$W" mount /run/abs/secrets 2>"$T/err" && fail "mounted through an absolute symlinked parent"
grep -qi symlink "$T/err" || fail "absolute symlinked parent: the error does not say why: $(cat "$T/err")"
mounted_in_c && fail "absolute symlinked parent: something was mounted in C"
ok "a symlinked parent component (relative or absolute) is refused (the error says symlink), nothing mounted"
# and a plain target still works in the same container, so the refusals above were not for another reason
cexec "$PC" "$cgC" "$SECRETCTL" --socket "$W" mount /run/real/secrets >/dev/null || fail "a plain target was refused"
[ "$(cexec "$PC" "$cgC" cat /run/real/secrets/app/exists)" = v-exists ] || fail "the plain mount does not serve the secret"
ok "the same container mounts at a plain path and reads its secret"
