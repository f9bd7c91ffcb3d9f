#!/bin/sh
# The layer rule, checked: a source file may include only headers of its own folder and of the
# folders below it. Run by meson at configure time (the build refuses an upward include) and as
# the "layers" test. Usage: check-layers.sh [SOURCE_ROOT]. Prints each violation; exit 1 if any.
#
#   common                                   (names, fileio, decimal, cleanup, limits)
#   broker/crypto  -> common
#   broker/store   -> crypto, schema, common
#   broker/os      -> common
#   broker/rules   -> common
#   fuse           -> common
#   broker/cluster -> store, os, crypto, schema, common   (etcd client, cluster node)
#   broker/engine  -> cluster, store, os, rules, fuse, crypto, schema, common
#   broker/http    -> engine and everything engine may include, privsep
#   broker/keeper  -> common
#   broker/privsep -> common                  (the workload server's messages)
#   broker/main.c  -> every broker layer, fuse, common
#   schema         (the SQL, embedded; includes nothing)
#   client         -> common
set -eu
cd "${1:-$(dirname "$0")/..}"

allowed() { # $1 = the including file's layer
	case "$1" in
	common) echo "common" ;;
	crypto) echo "common crypto" ;;
	store) echo "common crypto schema store" ;;
	os) echo "common os" ;;
	rules) echo "common rules" ;;
	keeper) echo "common keeper" ;;
	privsep) echo "common privsep" ;;
	fuse) echo "common fuse" ;;
	cluster) echo "common crypto schema store os cluster" ;;
	engine) echo "common crypto schema store os rules fuse cluster engine" ;;
	http) echo "common crypto schema store os rules fuse cluster engine privsep http" ;;
	main) echo "common crypto schema store os rules fuse cluster engine http keeper privsep main" ;;
	client) echo "common client" ;;
	schema) echo "schema" ;;
	*) echo "" ;;
	esac
}

layer_of() { # a path relative to the root -> its layer name
	case "$1" in
	common/*) echo common ;;
	schema/*) echo schema ;;
	fuse/*) echo fuse ;;
	client/*) echo client ;;
	broker/main.c | broker/main_*.[ch]) echo main ;;
	broker/*/*) p=${1#broker/}; echo "${p%%/*}" ;;
	tests/*) echo tests ;;
	*) echo unknown ;;
	esac
}

bad=0
for f in $(find common broker fuse client schema -name '*.[ch]' | sort); do
	from=$(layer_of "$f")
	ok=$(allowed "$from")
	if [ -z "$ok" ]; then
		echo "check-layers: $f is in no layer (put it in one of the folders above)" >&2
		bad=1
		continue
	fi
	for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
		case "$inc" in
		*/*) ;;
		*)
			echo "check-layers: $f includes \"$inc\": include headers by their path from the root" >&2
			bad=1
			continue
			;;
		esac
		to=$(layer_of "$inc")
		case " $ok " in
		*" $to "*) ;;
		*)
			echo "check-layers: $f ($from) includes $inc ($to): a $from file may include only: $ok" >&2
			bad=1
			;;
		esac
	done
done
exit $bad
