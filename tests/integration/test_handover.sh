#!/bin/sh
# FUSE connections handed to a new serving process (issue #14 items 2-3, fuse/ part): the test
# program tests/handover/sfs_handover.c plays keeper, server and readers on real mounts in a
# private mount namespace of its own.
. "$(dirname "$0")/lib.sh"
need_root
need_fuse
: "${SFS_HANDOVER:?SFS_HANDOVER must name the sfs_handover binary}"

run() {
	rc=0
	"$SFS_HANDOVER" "$@" || rc=$?
	[ "$rc" = 77 ] && skip_or_fail "sfs_handover $*: the machine lacks root or /dev/fuse"
	[ "$rc" = 0 ] || fail "sfs_handover $* (exit $rc)"
}

# A request the server had read when it was killed -9 is answered by the next one (RESEND).
run stall
# Without RESEND (kernels before 6.9) that request stays unanswered: what the fallback means.
run stall --no-resend --expect-hang --bound-ms 2000
# A path the kernel caches from the dead server that the new one does not serve: ESTALE, then the
# VFS's fresh lookup answers ENOENT (the caller never sees ESTALE).
run estale
# 20 mounts read in a loop, the server killed -9 10 times, view changes, a deliberate hand-over.
run full --mounts 20 --files 5 --kills 10
ok "FUSE hand-over"
