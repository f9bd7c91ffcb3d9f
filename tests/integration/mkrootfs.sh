#!/bin/sh
# mkrootfs.sh DIR: a minimal container rootfs from busybox-static (idempotent).
# DIR gets /bin/busybox with its applet links, /etc/passwd with root and user 1000 "app",
# /etc/group, and empty /tmp /proc /sys /dev /run /etc mount points.
set -eu

[ $# -eq 1 ] || { echo "usage: mkrootfs.sh DIR" >&2; exit 2; }
dir=$1
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "mkrootfs.sh: $bb not found (apt-get install busybox-static)" >&2; exit 1; }
# A dynamically linked busybox would need the host's libraries inside the rootfs.
if command -v file >/dev/null 2>&1 && file -L "$bb" | grep -q 'dynamically linked'; then
	echo "mkrootfs.sh: $bb is not static (apt-get install busybox-static)" >&2
	exit 1
fi

mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin" "$dir/etc" "$dir/tmp" \
	"$dir/proc" "$dir/sys" "$dir/dev" "$dir/run" "$dir/home/app" "$dir/root"
chmod 1777 "$dir/tmp"
if ! cmp -s "$bb" "$dir/bin/busybox"; then
	cp "$bb" "$dir/bin/busybox.new"
	chmod 0755 "$dir/bin/busybox.new"
	mv -f "$dir/bin/busybox.new" "$dir/bin/busybox"
fi
# `busybox --list-full` gives the install path of each applet (bin/sh, usr/bin/env, ...).
"$bb" --list-full | while read -r applet; do
	case $applet in
	bin/busybox | '' | */*/*/* | [!a-z]*) continue ;;
	*/*) ;;
	*) continue ;;
	esac
	[ -e "$dir/$applet" ] || [ -L "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
done
# Make sure the applets the tests use exist even if --list-full is missing some path.
for a in sh cat ls sleep echo test env id; do
	[ -e "$dir/bin/$a" ] || [ -L "$dir/bin/$a" ] || ln -s busybox "$dir/bin/$a"
done

cat >"$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$dir/etc/group" <<'GROUP'
root:x:0:
app:x:1000:
nogroup:x:65534:
GROUP
chown 1000:1000 "$dir/home/app"
chmod 0700 "$dir/root"
