#!/bin/sh
# Operator mistakes the daemon and secretctl must refuse or make visible: a loose or foreign
# passphrase file, an empty value stored by accident, an old expiry deleting a secret put again
# later, and uid: grants reaching into containers.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_cgroup2
need_cmd unshare
EXTRA_CLEANUP=cg_cleanup

# --- passphrase files get the key file's checks (regular, ours, no group/other bits) ---
# (run under timeout: a daemon that wrongly accepts the file would serve until killed)
export SECRETD_KDF_TEST=1
P="$T/pstate"
printf 'a long passphrase for tests\n' >"$T/pass"
chmod 0644 "$T/pass"
"$SECRETD" init --state-dir "$P" --passphrase-file "$T/pass" >/dev/null 2>"$T/err" &&
	fail "init accepted a 0644 passphrase file"
grep -q "passphrase file must be owned by the daemon's user and have no group or other" "$T/err" ||
	fail "init with a 0644 passphrase file: unclear message: $(cat "$T/err")"
[ -e "$P/secretd.db" ] && fail "init with a refused passphrase file created a store"
chmod 0600 "$T/pass"
"$SECRETD" init --state-dir "$P" --passphrase-file "$T/pass" >/dev/null || fail "init with a 0600 passphrase file"
for mode in 0644 0640 0604 0620; do
	chmod "$mode" "$T/pass"
	timeout 60 "$SECRETD" run --state-dir "$P" --runtime-dir "$T/prun" --passphrase-file "$T/pass" 2>"$T/err" &&
		fail "run accepted a $mode passphrase file"
	grep -q "passphrase file must be owned" "$T/err" || fail "run with a $mode passphrase file: $(cat "$T/err")"
done
chmod 0600 "$T/pass"
chown 65534 "$T/pass"
timeout 60 "$SECRETD" run --state-dir "$P" --runtime-dir "$T/prun" --passphrase-file "$T/pass" 2>"$T/err" &&
	fail "run accepted a passphrase file owned by another user"
grep -q "passphrase file must be owned" "$T/err" || fail "foreign passphrase file: $(cat "$T/err")"
chown 0 "$T/pass"
# rekey to a loose new passphrase file is refused too, and the old key still opens the store
sd_init
printf 'another passphrase\n' >"$T/pass2"
chmod 0640 "$T/pass2"
"$SECRETD" rekey --state-dir "$T/state" --key-file "$T/keys/master.key" --new-passphrase-file "$T/pass2" \
	>/dev/null 2>"$T/err" && fail "rekey accepted a 0640 new passphrase file"
grep -q "passphrase file must be owned" "$T/err" || fail "rekey to a loose passphrase: $(cat "$T/err")"
unset SECRETD_KDF_TEST
ok "passphrase files that are group/other accessible or not ours are refused by init, run and rekey"

sd_start
