#!/bin/sh
# test_deb.sh: scripts/mkdeb.sh builds a .deb from the tree; dpkg installs it (into a scratch root,
# chrootless, with its own database, so the host's packages are untouched); the installed daemon
# and CLI work; every dependency it declares is a Debian 12 package present on this machine; dpkg
# removes it cleanly.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
need_root
need_cmd dpkg
need_cmd dpkg-deb
need_cmd dpkg-shlibdeps

out=$(sh "$SOURCE_ROOT/scripts/mkdeb.sh" "$T/build-deb" "$T/deb") || fail "mkdeb.sh failed"
deb=$out
[ -f "$deb" ] || fail "mkdeb.sh printed no package: $out"
dpkg-deb -I "$deb" >"$T/info" || fail "dpkg-deb -I"
dpkg-deb -c "$deb" | awk '{print $6}' >"$T/files"
for f in ./usr/sbin/secretd ./usr/bin/secretctl ./usr/bin/secretd-wl \
	./usr/libexec/secretd/secretd-oci-hook ./usr/lib/systemd/system/secretd.service \
	./usr/lib/tmpfiles.d/secretd.conf ./usr/share/containers/oci/hooks.d/secretd-createruntime.json \
	./usr/share/man/man8/secretd.8.gz ./usr/share/man/man1/secretctl.1.gz \
	./usr/share/bash-completion/completions/secretctl ./usr/share/doc/secretd/copyright \
	./usr/share/zsh/vendor-completions/_secretctl \
	./usr/share/fish/vendor_completions.d/secretctl.fish; do
	grep -qx "$f" "$T/files" || fail "the package lacks $f"
done
ok "the package holds the daemon, the clients, the hook, the unit, man pages, completions"

# Every declared dependency is a package this Debian has installed (so apt can satisfy it).
deps=$(sed -n 's/^ Depends: //p' "$T/info")
[ -n "$deps" ] || fail "no Depends: $(cat "$T/info")"
echo "$deps" | tr ',' '\n' | sed 's/([^)]*)//; s/ //g' | while read -r p; do
	[ -n "$p" ] || continue
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		fail "dependency $p is not an installed Debian package"
done
ok "Depends ($deps) are all installed Debian packages"

# Install into a scratch root with its own dpkg database; maintainer scripts see DPKG_ROOT.
R="$T/root"
A="$T/dpkg"
mkdir -p "$R" "$A/info" "$A/updates" "$A/triggers"
: >"$A/status"
: >"$A/available"
dpk() { dpkg --instdir="$R" --admindir="$A" --force-script-chrootless --force-depends "$@"; }
dpk -i "$deb" >"$T/dpkg.log" 2>&1 || fail "dpkg -i: $(cat "$T/dpkg.log")"
[ "$(dpkg-query --admindir="$A" -W -f '${Status}' secretd)" = "install ok installed" ] ||
	fail "dpkg does not list secretd as installed"
ok "dpkg installs the package"

# The installed programs work: a daemon from the package, the packaged CLI against it.
"$R/usr/sbin/secretd" --version | grep -q '^secretd ' || fail "installed secretd --version"
"$R/usr/bin/secretctl" --version | grep -q '^secretctl ' || fail "installed secretctl --version"
SECRETD="$R/usr/sbin/secretd"
SECRETCTL="$R/usr/bin/secretctl"
sd_start
printf 'from-the-package' | ctl put deb/check >/dev/null || fail "installed secretctl put"
[ "$(ctl get deb/check)" = from-the-package ] || fail "installed secretctl get"
sd_stop
"$R/usr/bin/secretd-wl" --version | grep -q '^secretd-wl ' || fail "installed secretd-wl"
grep -q "ExecStart=/usr/sbin/secretd" "$R/usr/lib/systemd/system/secretd.service" ||
	fail "the unit does not start /usr/sbin/secretd"
grep -q '"/usr/libexec/secretd/secretd-oci-hook"' "$R/usr/share/containers/oci/hooks.d/secretd-createruntime.json" ||
	fail "hooks.d does not point at the installed hook"
for m in "$R"/usr/share/man/man*/*.gz; do gzip -t "$m" || fail "bad man page $m"; done
ok "the installed daemon and CLI store and read a secret; unit and hooks.d point at the installed paths"

dpk -r secretd >"$T/dpkg.log" 2>&1 || fail "dpkg -r: $(cat "$T/dpkg.log")"
[ -e "$R/usr/sbin/secretd" ] && fail "dpkg -r left /usr/sbin/secretd"
ok "dpkg removes it"
