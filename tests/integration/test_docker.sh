#!/bin/sh
# test_docker.sh: Docker Engine (docker.io 20.10, its own dockerd in $T: vfs, no iptables, no
# bridge) with secretd-runc as the runtime "secretd" in daemon.json. A container labelled
# io.secretd.name reads its secret as uid 1000; name: and label: grants match through Docker
# labels; a running container sees a rotation; the broker forgets it after `docker rm`; runtimeArgs
# work as well as dockerd's environment; a container without secretd labels starts while the
# broker is down and a labelled one does not (with the hook's reason in docker's error);
# docker-compose's `runtime:` and `labels:` work.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/runtime_lib.sh
. "$(dirname "$0")/runtime_lib.sh"
# shellcheck source=tests/integration/engine_lib.sh
. "$(dirname "$0")/engine_lib.sh"
need_root
need_fuse
need_cmd runc
[ -x /bin/busybox ] || skip_or_fail "needs busybox-static"
[ -x "${SECRETD_RUNC_WRAPPER:-}" ] || fail "SECRETD_RUNC_WRAPPER is not set (run through meson)"

# shellcheck disable=SC2119 # no extra daemon arguments
sd_start
docker_start
docker_import sdtest:1
IMG=sdtest:1
drun() { "$DOCKER" run --network none "$@"; }

# --- name: grant, uid 1000, mode, nothing else visible
rt_reader_setup # db/password granted to name:app; "other" to nobody
out=$(drun --rm --runtime secretd --user 1000:1000 --label io.secretd.name=app "$IMG" \
	sh -c 'cat /run/secrets/db/password; echo; id -u; stat -c "%u %a" /run/secrets/db/password;
		ls /run/secrets' 2>"$T/d1.err") || fail "docker run (name:app): $(cat "$T/d1.err")"
[ "$(echo "$out" | sed -n 1p)" = pw-one ] || fail "name grant: the container read: $out"
[ "$(echo "$out" | sed -n 2p)" = 1000 ] || fail "name grant: not uid 1000: $out"
[ "$(echo "$out" | sed -n 3p)" = "1000 400" ] || fail "name grant: owner/mode: $out"
[ "$(echo "$out" | sed -n 4p)" = db ] || fail "name grant: ls /run/secrets: $out"
ok "docker run --runtime secretd --user 1000:1000 --label io.secretd.name=app reads its secret as uid 1000 (0400)"

# --- "default-runtime": "secretd": no --runtime needed; --runtime runc bypasses the wrapper
out=$(drun --rm --user 1000:1000 --label io.secretd.name=app "$IMG" cat /run/secrets/db/password \
	2>"$T/d5.err") || fail "docker run (default runtime): $(cat "$T/d5.err")"
[ "$out" = pw-one ] || fail "default runtime: the container read: $out"
out=$(drun --rm --runtime runc --label io.secretd.name=app "$IMG" sh -c 'ls /run/secrets 2>&1; echo rc=$?' \
	2>"$T/d6.err") || fail "docker run --runtime runc: $(cat "$T/d6.err")"
case $out in *rc=0*) fail "--runtime runc got /run/secrets: $out" ;; esac
ok "with default-runtime secretd a labelled container needs no --runtime; --runtime runc has no hooks"

# --- label: grant through io.secretd.label.*; another container's grant stays invisible
printf 'pay-key' | ctl put team/key >/dev/null || fail "put team/key"
ctl grant team/key label:team=payments >/dev/null || fail "grant label:team=payments"
out=$(drun --rm --runtime secretd --user 1000:1000 --label io.secretd.label.team=payments "$IMG" \
	sh -c 'cat /run/secrets/team/key; echo; cat /run/secrets/db/password 2>&1 || echo denied' \
	2>"$T/d2.err") || fail "docker run (label): $(cat "$T/d2.err")"
[ "$(echo "$out" | sed -n 1p)" = pay-key ] || fail "label grant: the container read: $out"
case $out in *pw-one*) fail "label grant: the container read db/password: $out" ;; esac
ok "a label:team=payments grant matches --label io.secretd.label.team=payments; nothing else is visible"

# --- an image's io.secretd.* labels are not the container's: an image must not pick its secrets
# (the image says name=app, which has db/password, and team=ops)
tar -C "$(rt_rootfs)" -c . | "$DOCKER" import --change 'LABEL io.secretd.name=app' \
	--change 'LABEL io.secretd.label.team=ops' - sdtest:labelled >/dev/null ||
	fail "docker import (labelled image)"
out=$(drun --rm --runtime secretd sdtest:labelled sh -c \
	'cat /run/secrets/db/password 2>&1; ls /run/secrets 2>&1; echo end' 2>"$T/d7.err") ||
	fail "docker run (labelled image): $(cat "$T/d7.err")"
case $out in *pw-one*) fail "an image's io.secretd.name gave its container secrets: $out" ;; esac
out=$(drun --rm --runtime secretd --label io.secretd.label.team=payments sdtest:labelled sh -c \
	'cat /run/secrets/team/key; echo; cat /run/secrets/db/password 2>&1 || echo denied' \
	2>"$T/d8.err") || fail "docker run (labelled image, --label): $(cat "$T/d8.err")"
[ "$(echo "$out" | sed -n 1p)" = pay-key ] || fail "the container's own label was not taken: $out"
case $out in *pw-one*) fail "the image's io.secretd.name was taken: $out" ;; esac
ok "io.secretd.* labels set by the image are ignored; the container's own --label (other value) is used"

# --- the same through runtimeArgs (--secretd-hook=, --secretd-socket=) instead of the environment
out=$(drun --rm --runtime secretd-args --user 1000:1000 --label io.secretd.name=app "$IMG" \
	cat /run/secrets/db/password 2>"$T/d3.err") || fail "docker run (secretd-args): $(cat "$T/d3.err")"
[ "$out" = pw-one ] || fail "runtimeArgs: the container read: $out"
ok "daemon.json runtimeArgs --secretd-hook= / --secretd-socket= work too"

# --- a wrapper that cannot add the hooks refuses the container, and docker run says why
if out=$(drun --rm --runtime secretd-nohook "$IMG" echo started 2>"$T/d4.err"); then
	fail "secretd-runc with a missing hook let a container start: $out"
fi
grep -q "secretd-runc: cannot run the hook $T/no-such-hook" "$T/d4.err" ||
	fail "docker's error lacks secretd-runc's reason: $(cat "$T/d4.err")"
ok "secretd-runc without its hook refuses the container; docker run shows its reason"

# --- rotation seen by a running container; the broker forgets it when it exits
rt_out_dir "$T/oa"
"$DOCKER" run --network none --runtime secretd --cidfile "$T/cid" --user 1000:1000 \
	--label io.secretd.name=app -v "$T/oa:/out:rw" "$IMG" sh -c "$(rt_reader_script)" \
	</dev/null >"$T/ra.out" 2>"$T/ra.err" &
pid=$!
# docker creates the cidfile first and writes the id into it after the create
ENG_WAIT=300 eng_wait test -s "$T/cid" || fail "docker did not create the container: $(cat "$T/ra.err")"
rt_reader_check "$T/oa" "$(cat "$T/cid")" docker "$pid"

# --- a detached container: listed with its mount while it runs, gone after docker rm -f
cid=$("$DOCKER" run -d --network none --runtime secretd --user 1000:1000 \
	--label io.secretd.name=app "$IMG" sleep 600) || fail "docker run -d"
# shellcheck disable=SC2016 # for docker inspect
cpid=$("$DOCKER" inspect -f '{{.State.Pid}}' "$cid") || fail "docker inspect"
grep -q ' /run/secrets ' "/proc/$cpid/mountinfo" || fail "no /run/secrets mount in the container"
case $(ctl containers --json) in *"\"$cid\""*) ;; *) fail "docker -d: the broker does not list $cid" ;; esac
"$DOCKER" rm -f "$cid" >/dev/null || fail "docker rm -f"
rt_wait_gone_from_broker "$cid" || fail "the broker still lists $cid after docker rm"
ok "a detached container has its /run/secrets mount; after docker rm -f the broker has forgotten it"

# --- docker-compose: runtime: and labels:
if command -v docker-compose >/dev/null 2>&1; then
	mkdir -p "$T/compose"
	rt_out_dir "$T/oc"
	cat >"$T/compose/docker-compose.yml" <<YAML
version: "2.4"
services:
  app:
    image: $IMG
    runtime: secretd
    network_mode: none
    user: "1000:1000"
    labels:
      io.secretd.name: app
    volumes:
      - $T/oc:/out:rw
    command: ["sh", "-c", "cat /run/secrets/db/password >/out/pw 2>/out/err; id -u >/out/uid"]
YAML
	docker-compose -p "sdt$$" -f "$T/compose/docker-compose.yml" up --no-color \
		--abort-on-container-exit >"$T/compose.out" 2>&1 ||
		fail "docker-compose up: $(tail -n 20 "$T/compose.out")"
	docker-compose -p "sdt$$" -f "$T/compose/docker-compose.yml" down >/dev/null 2>&1 ||
		fail "docker-compose down"
	[ "$(cat "$T/oc/pw")" = pw-two ] || fail "compose: the service read '$(cat "$T/oc/pw" "$T/oc/err")'"
	[ "$(cat "$T/oc/uid")" = 1000 ] || fail "compose: not uid 1000"
	ok "docker-compose with runtime: secretd and labels: io.secretd.name reads the secret"
else
	skip_or_fail "needs docker-compose"
fi

# --- broker hung (stopped, its socket still accepting): a container without secretd labels
# starts, and so does docker rm of a labelled one; a labelled container does not start
cid=$("$DOCKER" run -d --network none --runtime secretd --label io.secretd.name=app "$IMG" \
	sleep 600) || fail "docker run -d (before the hang)"
kill -STOP "$SD_WPID"
rt_cleanup_add "kill -CONT $SD_WPID 2>/dev/null"
out=$(drun --rm --runtime secretd "$IMG" echo started 2>"$T/dh.err") ||
	fail "broker hung: a container without secretd labels failed: $(cat "$T/dh.err")"
[ "$out" = started ] || fail "broker hung: the plain container printed: $out"
ok "broker hung: a container without secretd labels starts"
"$DOCKER" rm -f "$cid" >/dev/null 2>"$T/dh2.err" || fail "broker hung: docker rm -f: $(cat "$T/dh2.err")"
ok "broker hung: docker rm -f of a labelled container works"
if out=$(drun --rm --runtime secretd --label io.secretd.name=app "$IMG" echo started 2>"$T/dh3.err"); then
	fail "broker hung: a labelled container started: $out"
fi
grep -q 'secretd-oci-hook: cannot reach secretd at' "$T/dh3.err" ||
	fail "broker hung: docker's error lacks the hook's reason: $(cat "$T/dh3.err")"
ok "broker hung: a labelled container does not start, and docker run says why"
kill -CONT "$SD_WPID"

# --- broker down: opt-in per container
sd_stop
out=$(drun --rm --runtime secretd "$IMG" echo started 2>"$T/dn.err") ||
	fail "broker down: a container without secretd labels failed: $(cat "$T/dn.err")"
[ "$out" = started ] || fail "broker down: the plain container printed: $out"
ok "broker down: a container without secretd labels starts"
if out=$(drun --rm --runtime secretd --label io.secretd.name=app "$IMG" echo started 2>"$T/dl.err"); then
	fail "broker down: a container labelled io.secretd.name started: $out"
fi
grep -q 'secretd-oci-hook: cannot reach secretd at' "$T/dl.err" ||
	fail "broker down: docker's error lacks the hook's reason: $(cat "$T/dl.err")"
case $out in *started*) fail "broker down: the labelled container's process ran" ;; esac
ok "broker down: a labelled container does not start, and docker run says why"
