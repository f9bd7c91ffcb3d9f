#!/bin/sh
# Installs what secretd needs to build, test and run its demo on Debian 12 (as root), only when
# something is missing. Idempotent.
set -eu
PKGS="build-essential meson ninja-build pkg-config python3 libsodium-dev libfuse3-dev fuse3
libsqlite3-dev sqlite3 libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev check curl
clang libclang-rt-14-dev runc crun podman busybox-static util-linux iproute2 procps"
PKGS="$PKGS libyaml-dev libsystemd-dev systemd clang-format"
# libseccomp: the workload server's system-call allow-list (broker/os/seccomp.c); strace finds
# what it must allow (docs/DESIGN.md, "The server's sandbox").
PKGS="$PKGS libseccomp-dev strace"
# Docker Engine 20.10 (its own /usr/bin/docker client), containerd 1.6 and docker-compose 1.29:
# test_docker.sh and test_containerd.sh start private engines with secretd-runc.
PKGS="$PKGS docker.io containerd docker-compose"
# etcd 3.4 (server and etcdctl): the cluster tests start a private 3-member cluster (etcd_lib.sh).
PKGS="$PKGS etcd-server etcd-client"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$(id -u)" = 0 ] || { echo "deps.sh: run as root to install:$missing" >&2; exit 1; }
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The user of the unprivileged server process that serves workload.sock (secretd run
# --server-user, default secretd; without it the server runs as 65534 and the daemon says so).
if ! getent passwd secretd >/dev/null 2>&1; then
	[ "$(id -u)" = 0 ] || { echo "deps.sh: run as root to create the user secretd" >&2; exit 1; }
	useradd --system --no-create-home --shell /usr/sbin/nologin secretd
fi
