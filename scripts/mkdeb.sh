#!/bin/sh
# mkdeb.sh [BUILD_DIR [OUT_DIR]]: builds a Debian package of everything `meson install` installs
# (daemon, clients, OCI hook, hooks.d files, systemd unit, tmpfiles.d, man pages, completions),
# with its library dependencies computed by dpkg-shlibdeps. Prints the .deb's path.
# BUILD_DIR (default build-deb) is configured with --prefix=/usr if it does not exist yet.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
build=${1:-build-deb}
out=${2:-.}
for t in meson dpkg-deb dpkg-shlibdeps dpkg-architecture; do
	command -v "$t" >/dev/null 2>&1 || { echo "mkdeb.sh: needs $t (apt-get install dpkg-dev meson)" >&2; exit 1; }
done
if [ ! -d "$build" ]; then
	meson setup "$build" --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
		--buildtype=release >/dev/null
fi
[ "$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')" = /usr ] ||
	{ echo "mkdeb.sh: $build is not configured with --prefix=/usr" >&2; exit 1; }
meson compile -C "$build" >/dev/null
version=$(meson introspect "$build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM
root="$stage/root"
DESTDIR="$root" meson install -C "$build" --no-rebuild --quiet >/dev/null

# Debian policy: man pages compressed, a copyright file, no unstripped binaries (release build).
find "$root/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} \;
mkdir -p "$root/usr/share/doc/secretd"
cat >"$root/usr/share/doc/secretd/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: secretd

Files: *
Copyright: secretd developers
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

# Library dependencies of every ELF file, as Debian computes them.
mkdir -p "$stage/debian"
printf 'Source: secretd\n\nPackage: secretd\nArchitecture: any\n' >"$stage/debian/control"
elves=$(find "$root" -type f -perm -u+x -exec sh -c 'head -c 4 "$1" | grep -q "ELF" && echo "$1"' sh {} \;)
# shellcheck disable=SC2086 # one argument per file
shlibs=$(cd "$stage" && dpkg-shlibdeps -O $elves 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "mkdeb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$root/DEBIAN"
size=$(du -sk "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: secretd
Version: $version
Architecture: $arch
Maintainer: secretd developers <secretd@localhost>
Installed-Size: $size
Depends: $shlibs, fuse3
Recommends: runc | crun
Section: admin
Priority: optional
Description: encrypted secrets broker for Linux containers
 secretd stores secrets encrypted at rest in SQLite (libsodium envelope
 encryption), identifies containers by the kernel (peer credentials, pidfd,
 cgroup) and hands each container its granted secrets as files in its own
 in-memory FUSE mount at /run/secrets. A rotated value reaches running
 containers in milliseconds.
 .
 This package has the daemon (secretd), the CLI (secretctl), the OCI hook,
 its hooks.d files, the static workload client (secretd-wl), the systemd
 unit, man pages and shell completions. Run \`secretd init\` once, then enable
 secretd.service.
EOF
# Configuration files the operator may edit are conffiles.
: >"$root/DEBIAN/conffiles"
for f in $(cd "$root" && find etc -type f 2>/dev/null); do echo "/$f" >>"$root/DEBIAN/conffiles"; done
[ -s "$root/DEBIAN/conffiles" ] || rm -f "$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
# Under DPKG_ROOT (an install into another root, chrootless) the host is not ours to touch.
if [ "$1" = configure ] && [ -z "${DPKG_ROOT:-}" ]; then
	# the user of the unprivileged process that serves workload.sock (secretd run --server-user)
	if ! getent passwd secretd >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin secretd
	fi
	if command -v systemd-tmpfiles >/dev/null 2>&1; then
		systemd-tmpfiles --create secretd.conf >/dev/null 2>&1 || true
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
fi
exit 0
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
# The store (/var/lib/secretd) and the key (/etc/secretd) are the operator's: never removed here.
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
mkdir -p "$out"
deb="$out/secretd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
