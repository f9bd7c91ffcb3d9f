#!/bin/sh
# test_cluster_auth.sh: cluster mode against an etcd with client TLS and authentication (issue
# #18: --etcd-cacert/--etcd-cert/--etcd-key, --etcd-user with --etcd-password-file or the systemd
# credential). A real 1-member etcd on a loopback port serves https:// only, requires a client
# certificate signed by the test's CA, and has auth enabled: user root, a node user "sdn1" whose
# role grants readwrite on the cluster's prefix, and a user "sdro" with read only.
#  - a node with the right CA, client certificate, user and password inits, runs, puts and reads
#    (its password from a file, and from $CREDENTIALS_DIRECTORY/etcd-password as under systemd);
#  - refused with a clear message and a non-zero exit: no user (init and run), a wrong
#    password, a password file others can read, no CA (the system's CAs do not know etcd's);
#  - the read-only user's node starts and reads, but its put fails clearly (not permitted) and
#    changes nothing, neither in etcd nor on the node.
# shellcheck disable=SC2154,SC2034
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/etcd_lib.sh
. "$(dirname "$0")/etcd_lib.sh"
EXTRA_CLEANUP="nodes_stop; etcd_cleanup"
need_etcd
NODE_PIDS=""
node_run() { # node_run N ARGS...: starts node N in the background, waits until it answers
	n=$1
	shift
	# the subshell becomes secretd (exec): $! is its pid, which node_stop signals (a subshell
	# running the function would be killed instead, leaving secretd behind)
	(SD_CL_EXEC=1 && sd_cl run "$n" "$@") >>"$T/n$n.log" 2>&1 &
	eval "NODE_PID_$n=$!"
	NODE_PIDS="$NODE_PIDS $!"
	poll_until 60 node_up "$n" || fail "node $n did not start: $(tail -n 5 "$T/n$n.log")"
}
need_cmd openssl

# --- certificates: a CA, etcd's server certificate for 127.0.0.1, a client certificate
P=$T/pki
mkdir -p "$P"
ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$P/$1.key" \
	-out "$P/$1.csr" -subj "$2" 2>/dev/null; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$P/ca.key" \
	-out "$P/ca.pem" -days 2 -subj "/CN=sdt-ca-$$" 2>/dev/null || fail "openssl: CA"
ec server /CN=sdt-etcd-server
# no CN: etcd 3.4's gateway refuses a client certificate with one under --client-cert-auth
ec client /O=sdt-node
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$P/server.ext"
printf 'extendedKeyUsage=clientAuth\n' >"$P/client.ext"
for c in server client; do
	openssl x509 -req -in "$P/$c.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
		-out "$P/$c.pem" -days 2 -extfile "$P/$c.ext" 2>/dev/null || fail "openssl: $c"
done
chmod 600 "$P"/*.key

# --- etcd: https only, client certificates required
# shellcheck disable=SC2046
set -- $(etcd_free_ports 2)
EC=$1 EP=$2
URL=https://127.0.0.1:$EC
mkdir -p "$T/etcd"
etcd --name a --data-dir "$T/etcd/a" \
	--listen-client-urls "$URL" --advertise-client-urls "$URL" \
	--listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
	--initial-cluster "a=http://127.0.0.1:$EP" --initial-cluster-state new \
	--cert-file "$P/server.pem" --key-file "$P/server.key" \
	--trusted-ca-file "$P/ca.pem" --client-cert-auth >>"$T/etcd/a.log" 2>&1 &
ETCD_PIDS=$!
ectl() {
	ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=5s --endpoints="$URL" \
		--cacert "$P/ca.pem" --cert "$P/client.pem" --key "$P/client.key" "$@"
}
ehealthy() { ectl endpoint health >/dev/null 2>&1; }
poll_until 60 ehealthy || fail "etcd did not become healthy: $(tail -n 5 "$T/etcd/a.log")"
CL=sdt$$
PFX=/secretd/$CL/
ectl user add root:rootpw-$$ >/dev/null
ectl user grant-role root root >/dev/null
ectl role add sdt-rw >/dev/null
ectl role grant-permission sdt-rw --prefix=true readwrite "$PFX" >/dev/null
ectl role add sdt-ro >/dev/null
ectl role grant-permission sdt-ro --prefix=true read "$PFX" >/dev/null
ectl user add "sdn1:n1pw-$$" >/dev/null
ectl user grant-role sdn1 sdt-rw >/dev/null
ectl user add "sdro:ropw-$$" >/dev/null
ectl user grant-role sdro sdt-ro >/dev/null
ectl auth enable >/dev/null
rctl() { ectl --user "root:rootpw-$$" "$@"; }
rctl get --prefix "$PFX" --keys-only >/dev/null || fail "etcd with auth: root cannot read"
ok "etcd: https only, client certificates required, auth enabled (root, sdn1 readwrite, sdro read)"

KEY=$T/keys/cluster.key
printf 'n1pw-%s\n' "$$" >"$T/n1.pw"
printf 'wrong-%s\n' "$$" >"$T/bad.pw"
printf 'ropw-%s' "$$" >"$T/ro.pw"
chmod 600 "$T/n1.pw" "$T/bad.pw" "$T/ro.pw"
TLS="--etcd-cacert $P/ca.pem --etcd-cert $P/client.pem --etcd-key $P/client.key"
# sd_cl init|run N ARGS...: secretd with node N's dirs, the cluster's etcd and ARGS
sd_cl() {
	cmd=$1 n=$2
	shift 2
	if [ "$cmd" = run ]; then
		set -- --runtime-dir "$T/n$n/run" --no-keeper "$@"
		mkdir -p "$T/n$n/run"
	fi
	set -- "$cmd" --state-dir "$T/n$n/state" --key-file "$KEY" --etcd "$URL" --cluster "$CL" "$@"
	[ "${SD_CL_EXEC:-}" = 1 ] && exec "$SECRETD" "$@"
	"$SECRETD" "$@"
}

# --- init: refused without a user, with a wrong password, without the CA
rc=0
# shellcheck disable=SC2086
sd_cl init 9 $TLS >"$T/nouser.out" 2>&1 || rc=$?
refused "init without credentials" "$T/nouser.out" "etcd requires credentials"
rc=0
# shellcheck disable=SC2086
sd_cl init 8 $TLS --etcd-user sdn1 --etcd-password-file "$T/bad.pw" >"$T/badpw.out" 2>&1 || rc=$?
refused "init with a wrong password" "$T/badpw.out" "etcd refused the credentials for user sdn1"
grep -q "wrong-$$" "$T/badpw.out" && fail "the password was printed: $(cat "$T/badpw.out")"
rc=0
sd_cl init 7 --etcd-cert "$P/client.pem" --etcd-key "$P/client.key" --etcd-user sdn1 \
	--etcd-password-file "$T/n1.pw" >"$T/noca.out" 2>&1 || rc=$?
refused "init without the CA" "$T/noca.out" "TLS with etcd failed"
chmod 644 "$T/n1.pw"
rc=0
# shellcheck disable=SC2086
sd_cl init 6 $TLS --etcd-user sdn1 --etcd-password-file "$T/n1.pw" >"$T/loose.out" 2>&1 || rc=$?
refused "init with a world-readable password file" "$T/loose.out" "chmod 600"
chmod 600 "$T/n1.pw"
rc=0
sd_cl init 5 --etcd-user sdn1 --etcd-password-file "$T/n1.pw" --etcd-cacert "$P/ca.pem" \
	>"$T/nocert.out" 2>&1 || rc=$?
refused "init without a client certificate" "$T/nocert.out" "TLS with etcd failed"
[ -z "$(rctl get --prefix "$PFX" --keys-only)" ] || fail "a refused init wrote to etcd"
ok "init refused clearly (non-zero): no user, a wrong password, no CA, a loose password file, no client certificate"

# --- the right credentials: init (creates the cluster), run, put, read
# shellcheck disable=SC2086
sd_cl init 1 $TLS --etcd-user sdn1 --etcd-password-file "$T/n1.pw" >"$T/n1.init" 2>&1 ||
	fail "init node 1: $(cat "$T/n1.init")"
grep -q "^created cluster $CL" "$T/n1.init" || fail "node 1: $(cat "$T/n1.init")"
rctl get "${PFX}keyring" --keys-only | grep -q keyring || fail "no keyring in etcd"
# shellcheck disable=SC2086
node_run 1 $TLS --etcd-user sdn1 --etcd-password-file "$T/n1.pw"
watch_open() { ctlN "$1" cluster status | grep -q "watch: open"; }
poll_until 30 watch_open 1 || fail "node 1: no open watch: $(ctlN 1 cluster status 2>&1)"
printf 'v1' | ctlN 1 put app/db >/dev/null || fail "node 1: put: $(tail -n 5 "$T/n1.log")"
[ "$(ctlN 1 get app/db)" = v1 ] || fail "node 1: get"
rctl get --prefix "${PFX}s/" --keys-only | grep -q "app/db" || fail "the put did not reach etcd"
grep -q "n1pw-$$" "$T/n1.log" && fail "the password was logged"
ok "the right CA, client certificate, user and password: init, run, put and read"

# --- the tokens etcd gave out become invalid (a password change, here to the same password, drops
# the user's tokens): the next put re-authenticates once and succeeds
printf 'n1pw-%s\n' "$$" | rctl user passwd sdn1 --interactive=false >/dev/null || fail "etcdctl user passwd"
printf 'v1b' | ctlN 1 put app/db >"$T/reauth.out" 2>&1 || fail "put after the token was dropped: $(cat "$T/reauth.out")"
[ "$(ctlN 1 get app/db)" = v1b ] || fail "node 1: get after re-authentication"
ok "a token etcd dropped: the next put re-authenticates once and succeeds"

# --- node 2 as under systemd: LoadCredential=etcd-password:... ($CREDENTIALS_DIRECTORY)
# shellcheck disable=SC2086
sd_cl init 2 $TLS --etcd-user sdn1 --etcd-password-file "$T/n1.pw" >"$T/n2.init" 2>&1 ||
	fail "init node 2: $(cat "$T/n2.init")"
mkdir -p "$T/cred2"
cp "$T/n1.pw" "$T/cred2/etcd-password"
chmod 400 "$T/cred2/etcd-password"
# shellcheck disable=SC2086
CREDENTIALS_DIRECTORY=$T/cred2 node_run 2 $TLS --etcd-user sdn1
got2() { [ "$(ctlN 2 get app/db 2>/dev/null)" = "$1" ]; }
poll_until 30 got2 v1b || fail "node 2 (systemd credential) did not get app/db"
printf 'v2' | ctlN 2 put app/db >/dev/null || fail "node 2: put: $(tail -n 5 "$T/n2.log")"
got1() { [ "$(ctlN 1 get app/db 2>/dev/null)" = "$1" ]; }
poll_until 30 got1 v2 || fail "node 1 did not get node 2's put"
ok "a node with its password as a systemd credential (\$CREDENTIALS_DIRECTORY/etcd-password) reads and writes"

# --- run refused: no user, a wrong password, no CA (non-zero exit, clear message)
mkdir -p "$T/n3"
cp -a "$T/n2/state" "$T/n3/state"
for how in nouser badpw noca; do
	# shellcheck disable=SC2086 # $TLS: three options, split on purpose
	case $how in
	nouser) set -- $TLS ; want="etcd requires credentials" ;;
	badpw) set -- $TLS --etcd-user sdn1 --etcd-password-file "$T/bad.pw"; want="etcd refused the credentials for user sdn1" ;;
	noca) set -- --etcd-cert "$P/client.pem" --etcd-key "$P/client.key" --etcd-user sdn1 --etcd-password-file "$T/n1.pw"; want="TLS with etcd failed" ;;
	esac
	rc=0
	sd_cl run 3 "$@" >"$T/run.$how" 2>&1 || rc=$?
	refused "run ($how)" "$T/run.$how" "$want"
done
ok "run refused clearly (non-zero): no user, a wrong password, no CA"

# --- the read-only user: starts and reads, its put fails clearly and changes nothing
rm -rf "$T/n3"
# shellcheck disable=SC2086
sd_cl init 3 $TLS --etcd-user sdro --etcd-password-file "$T/ro.pw" >"$T/n3.init" 2>&1 ||
	fail "init node 3 (read-only user): $(cat "$T/n3.init")"
# shellcheck disable=SC2086
node_run 3 $TLS --etcd-user sdro --etcd-password-file "$T/ro.pw"
got3() { [ "$(ctlN 3 get app/db 2>/dev/null)" = "$1" ]; }
poll_until 30 got3 v2 || fail "node 3 (read-only user) did not get app/db"
before=$(rctl get "${PFX}s/app/db" -w json | sed -n 's/.*"mod_revision":\([0-9]*\).*/\1/p')
rc=0
printf 'v3' | ctlN 3 put app/db >"$T/ro.put" 2>&1 || rc=$?
refused "a put by the read-only user" "$T/ro.put" "not permitted"
[ "$(ctlN 3 get app/db)" = v2 ] || fail "the refused put changed node 3's value"
after=$(rctl get "${PFX}s/app/db" -w json | sed -n 's/.*"mod_revision":\([0-9]*\).*/\1/p')
[ -n "$before" ] || fail "no mod_revision of app/db in etcd"
[ "$before" = "$after" ] || fail "the refused put changed etcd ($before -> $after)"
[ "$(ctlN 1 get app/db)" = v2 ] || fail "node 1's value changed"
ctlN 3 cluster status | grep -q "permission denied" || fail "cluster status does not say why: $(ctlN 3 cluster status)"
ok "a read-only etcd user's node reads; its put fails clearly ($(head -c 120 "$T/ro.put")) and changes nothing"
