#!/bin/sh
# Moving ENV secrets into secretd: secretctl scan (files and /proc), import-env (round trip,
# idempotence, refused names, grants) and exec (the child sees the variable; no argv holds it).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cgroup_lib.sh"
need_root
need_cmd python3
EXTRA_CLEANUP=cg_cleanup

FIX="$SOURCE_ROOT/tests/fixtures/env"
[ -d "$FIX/project" ] || fail "no fixtures at $FIX"

# Every value written in the fixtures: none may ever show in any output.
CANARIES="tokCanary0123456789abcdef dbpwCanary-Hunter2-xyz apikeyCanary AKIAQWERTYUIOPASDFGH
sharedCanary-4f9a2b7c1d pgCanary-S3cr3t-Passw0rd urlCanaryPw99 ghp_abcdefghijklmnopqrstuvwxyz0123456789
envCanary MIIEcanaryPEMbody singleCanary Zx8Qp2Lm9Rt4Vb7Nc1Kd6Hf3Js5Wg0Ya k8sInitCanary-pw-5521
eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ nodeModulesCanary123 readmeCanary-pw-000
brokenCanary-pw-111 importCanary-db-pw-771 importCanary-db-pw-772 importCanary composeCanary-pw-123
badnameCanary-pw-456 otherCanary-tok-789"
no_canary() { # no_canary FILE...: fails if any canary (or $EXTRA_CANARY) is in FILE
	for f in "$@"; do
		for c in $CANARIES ${EXTRA_CANARY:-}; do
			grep -qF -- "$c" "$f" && fail "a secret value ($c) appeared in $(basename "$f")"
		done
	done
	return 0
}
run() { # run OUT ERR CMD...: sets RC
	o=$1 e=$2
	shift 2
	RC=0
	"$@" >"$o" 2>"$e" || RC=$?
}

sd_start

# ---------------------------------------------------------------- scan: files
run "$T/out" "$T/err" ctl scan "$FIX/project"
[ "$RC" = 1 ] || fail "scan of the fixtures exited $RC (want 1): $(cat "$T/err")"
no_canary "$T/out" "$T/err"
[ "$(wc -l <"$T/out")" -eq 14 ] || fail "scan found $(wc -l <"$T/out") findings, want 14"
grep -qx "$FIX/project/docker-compose.yml:8: POSTGRES_PASSWORD: name suggests a secret: pg\*\{8\}rd" "$T/out" ||
	fail "compose finding not in the expected form"
grep -q "/Dockerfile:10: AWS_KEY_ID: AWS access key id: AK\*\{8\}GH$" "$T/out" || fail "Dockerfile finding"
grep -q "/.env:3: PRIVATE_KEY: private key (PEM): " "$T/out" || fail ".env finding"
grep -q "/k8s/deployment.yaml:26: AUTH_TOKEN: JSON web token: " "$T/out" || fail "k8s finding"
for skipped in node_modules README LOG_LEVEL PORT DB_PASSWORD_FILE SESSION_SECRET ADMIN_PASSWORD; do
	grep -q "$skipped" "$T/out" && fail "scan flagged $skipped"
done
grep -q "broken/values.yaml: cannot parse" "$T/err" || fail "unparsable YAML not warned about"
ok "scan finds the fixtures' 14 secrets (Dockerfile, compose, .env, k8s), masked, exit 1"

run "$T/json" "$T/err" ctl --json scan "$FIX/project"
[ "$RC" = 1 ] || fail "scan --json exited $RC"
no_canary "$T/json"
python3 - "$T/json" <<'PY' || fail "scan --json output"
import json, sys
a = json.load(open(sys.argv[1]))
assert len(a) == 14, len(a)
for f in a:
    assert set(f) >= {"file", "line", "variable", "reason", "kind", "masked"}, f
    assert f["kind"] in ("name", "format", "url", "entropy"), f
    assert "********" in f["masked"] and len(f["masked"]) <= 12, f
PY
ok "scan --json: an array of {file, line, variable, reason, kind, masked}"

run "$T/out" "$T/err" ctl scan "$FIX/clean"
[ "$RC" = 0 ] || fail "scan of a clean tree exited $RC: $(cat "$T/out" "$T/err")"
[ ! -s "$T/out" ] || fail "scan of a clean tree printed findings"
mkdir -p "$T/links"
ln -s "$FIX/project/.env" "$T/links/.env"
ln -s "$FIX/project" "$T/links/project"
run "$T/out" "$T/err" ctl scan "$T/links"
[ "$RC" = 0 ] || fail "scan followed a symlink ($RC)"
run "$T/out" "$T/err" ctl scan "$T/no-such-dir"
[ "$RC" = 2 ] || fail "scan of a missing path exited $RC (want 2)"
run "$T/out" "$T/err" ctl scan
[ "$RC" = 2 ] || fail "scan without a path exited $RC (want 2)"
run "$T/out" "$T/err" ctl scan --bogus "$FIX/clean"
[ "$RC" = 2 ] || fail "scan with an unknown option exited $RC (want 2)"
ok "scan: clean tree and symlinks exit 0; missing path, no path, bad option exit 2"

# ---------------------------------------------------------------- scan: processes
PROC_CANARY="procCanary-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
EXTRA_CANARY="$PROC_CANARY"
# (no shell function before '&': $! must be the process itself, sh exec'ing sleep)
if [ -n "$CG2" ]; then
	PID_CG=$(hex64)
	mk_cgroup "$CG2" "/docker/$PID_CG"; cg=$CG
else
	PID_CG= cg=
fi
DB_PASSWORD="$PROC_CANARY" sh -c '[ -z "$0" ] || echo $$ >"$0/cgroup.procs"; exec sleep 60' "$cg" \
	>/dev/null 2>&1 &
SLEEPER=$!
i=0
until [ "$(cat "/proc/$SLEEPER/comm" 2>/dev/null)" = sleep ] &&
	tr '\0' '\n' <"/proc/$SLEEPER/environ" 2>/dev/null | grep -q '^DB_PASSWORD=procCanary'; do
	i=$((i + 1))
	[ $i -gt 100 ] && fail "the process with a secret in its environment did not start"
	sleep 0.05
done
run "$T/out" "$T/err" ctl scan --proc
[ "$RC" = 1 ] || fail "scan --proc exited $RC"
no_canary "$T/out" "$T/err"
grep -q "^/proc/$SLEEPER/environ:[0-9]*: DB_PASSWORD: name suggests a secret: pr\*\{8\}[0-9a-f][0-9a-f] (sleep" "$T/out" ||
	fail "scan --proc did not report the process's DB_PASSWORD"
if [ -n "$PID_CG" ]; then
	grep -q "^# container $PID_CG (cgroup .*/docker/$PID_CG)" "$T/out" ||
		fail "scan --proc did not group the process under its container"
fi
run "$T/json" "$T/err" ctl --json scan --proc
no_canary "$T/json"
python3 - "$T/json" "$SLEEPER" "$PID_CG" <<'PY' || fail "scan --proc --json"
import json, sys
a = json.load(open(sys.argv[1]))
f = [x for x in a if x.get("pid") == int(sys.argv[2]) and x["variable"] == "DB_PASSWORD"]
assert len(f) == 1, f
assert "cgroup" in f[0] and "comm" in f[0]
if sys.argv[3]:
    assert f[0]["container"] == sys.argv[3], f[0]
PY
kill "$SLEEPER" 2>/dev/null || true
wait "$SLEEPER" 2>/dev/null || true
ok "scan --proc reports a process's environment, masked, grouped by cgroup/container"

# ---------------------------------------------------------------- import-env
cp "$FIX/import/app.env" "$T/app.env"
versions() { ctl versions "$1" | awk 'NR > 1' | wc -l; }
run "$T/out" "$T/err" ctl import-env "$T/app.env" --prefix app/web
[ "$RC" = 0 ] || fail "import-env exited $RC: $(cat "$T/err")"
no_canary "$T/out" "$T/err"
[ "$(ctl get app/web/DB_PASSWORD)" = "importCanary-db-pw-771" ] || fail "DB_PASSWORD not stored as in the file"
[ "$(ctl get app/web/API_TOKEN)" = "importCanary tok 882" ] || fail "API_TOKEN (quoted) not stored as in the file"
ctl get app/web/LOG_LEVEL >/dev/null 2>&1 && fail "a non-secret variable was imported"
grep -qx "app/web/DB_PASSWORD: stored (version 1)" "$T/out" || fail "import-env did not say stored"
grep -qx "  delete line 2 (DB_PASSWORD)" "$T/out" || fail "import-env did not name the line to delete"
grep -qx "  delete line 3 (API_TOKEN)" "$T/out" || fail "import-env did not name the line to delete"
grep -qx "    DB_PASSWORD_FILE=/run/secrets/app/web/DB_PASSWORD" "$T/out" || fail "import-env did not give the _FILE line"
grep -q "secretctl exec --env NAME=app/web/NAME" "$T/out" || fail "import-env did not mention exec"
ok "import-env stores the secret-looking variables as P/NAME, byte for byte, and says what to change"

run "$T/out" "$T/err" ctl import-env "$T/app.env" --prefix app/web
[ "$RC" = 0 ] || fail "second import-env exited $RC"
grep -qx "app/web/DB_PASSWORD: unchanged" "$T/out" || fail "second run did not say unchanged"
[ "$(versions app/web/DB_PASSWORD)" = 1 ] || fail "second run made a new version of DB_PASSWORD"
[ "$(versions app/web/API_TOKEN)" = 1 ] || fail "second run made a new version of API_TOKEN"
sed -i 's/importCanary-db-pw-771/importCanary-db-pw-772/' "$T/app.env"
run "$T/out" "$T/err" ctl import-env "$T/app.env" --prefix app/web
[ "$RC" = 0 ] || fail "third import-env exited $RC"
no_canary "$T/out" "$T/err"
grep -qx "app/web/DB_PASSWORD: updated (version 2)" "$T/out" || fail "changed value not updated"
[ "$(versions app/web/DB_PASSWORD)" = 2 ] || fail "a changed value did not make exactly one new version"
[ "$(versions app/web/API_TOKEN)" = 1 ] || fail "an unchanged value got a new version"
[ "$(ctl get app/web/DB_PASSWORD)" = "importCanary-db-pw-772" ] || fail "updated value"
ok "import-env is idempotent: unchanged values make no version, a changed one makes one"

run "$T/out" "$T/err" ctl import-env "$T/app.env" --prefix app/web --grant runtime:docker
[ "$RC" = 0 ] || fail "import-env --grant exited $RC: $(cat "$T/err")"
grep -qx "app/web/DB_PASSWORD: granted to runtime:docker" "$T/out" || fail "--grant did not grant"
ctl grants | grep "app/web/DB_PASSWORD" | grep -q "runtime:docker" || fail "grant not listed"
run "$T/out" "$T/err" ctl import-env "$T/app.env" --prefix app/web --grant runtime:docker
[ "$RC" = 0 ] || fail "a repeated grant failed ($RC): $(cat "$T/err")"
grep -qx "app/web/DB_PASSWORD: already granted to runtime:docker" "$T/out" || fail "repeated grant not reported as done"
ok "import-env --grant grants each secret; an existing grant counts as done"

run "$T/out" "$T/err" ctl import-env --compose "$FIX/import/compose.yml" --service app --prefix app/c
[ "$RC" = 1 ] || fail "import-env with an invalid name exited $RC (want 1)"
no_canary "$T/out" "$T/err"
grep -q "BAD NAME_PASSWORD: not usable as a secret name segment" "$T/err" || fail "invalid name: unclear message: $(cat "$T/err")"
[ "$(ctl get app/c/APP_PASSWORD)" = "composeCanary-pw-123" ] || fail "compose map value not stored"
ctl ls | grep -q "BAD" && fail "an invalid name was stored"
ctl ls | grep -q "OTHER_TOKEN" && fail "another service's variable was imported"
grep -qx "    APP_PASSWORD_FILE: /run/secrets/app/c/APP_PASSWORD" "$T/out" || fail "compose _FILE line"
run "$T/out" "$T/err" ctl import-env --compose "$FIX/import/compose.yml" --service nope --prefix app/c
[ "$RC" = 2 ] || fail "unknown service exited $RC (want 2)"
run "$T/out" "$T/err" ctl import-env "$T/app.env" --prefix ../x
[ "$RC" = 2 ] || fail "invalid prefix exited $RC (want 2)"
run "$T/out" "$T/err" ctl import-env "$T/app.env"
[ "$RC" = 2 ] || fail "missing --prefix exited $RC (want 2)"
run "$T/out" "$T/err" ctl import-env "$FIX/import/compose.yml" --prefix x
[ "$RC" = 2 ] || fail "a YAML file without --compose/--service exited $RC (want 2)"
ok "import-env refuses invalid names (others imported), unknown services, bad prefixes"

# ---------------------------------------------------------------- exec
EXEC_CANARY="execCanary-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
EXTRA_CANARY="$PROC_CANARY $EXEC_CANARY"
mkdir -p "$T/secrets/app" "$T/empty"
printf '%s' "$EXEC_CANARY" >"$T/secrets/app/db"
export SECRETD_WORKLOAD_SOCKET="$SD_WORKLOAD"
out=$(ctl exec --dir "$T/secrets" --env DB_PASSWORD=app/db -- sh -c 'echo "$DB_PASSWORD"') ||
	fail "exec failed"
[ "$out" = "$EXEC_CANARY" ] || fail "the child did not see DB_PASSWORD"
out=$(ctl exec --dir "$T/secrets" --env A=app/db --env B=app/db -- sh -c 'echo "$A$B"')
[ "$out" = "$EXEC_CANARY$EXEC_CANARY" ] || fail "two --env options"
ok "exec puts the secret into the child's environment"

# While the child runs: secretctl exec'd into it (same pid, so $! is the child). Its argv is
# CMD ARGS only; secretctl's own argv held "DB_PASSWORD=app/db" (a name, never the value), and
# setenv() before execvp() changes no /proc-visible environment of secretctl itself. The value
# is in the exec'd program's environment, which is the point; it is in no environment or argv
# of the shell that started secretctl.
"$SECRETCTL" exec --dir "$T/secrets" --env DB_PASSWORD=app/db -- \
	sh -c 'echo "$DB_PASSWORD" >"$0.tmp" && mv "$0.tmp" "$0" && exec sleep 60' "$T/child.out" \
	>/dev/null 2>"$T/exec.err" &
CHILD=$!
i=0
until [ -s "$T/child.out" ]; do
	i=$((i + 1))
	[ $i -gt 200 ] && fail "the exec'd child did not start: $(cat "$T/exec.err")"
	sleep 0.05
done
[ "$(cat "$T/child.out")" = "$EXEC_CANARY" ] || fail "child output"
[ "$(cat "/proc/$CHILD/comm")" = sleep ] || fail "the child is not the exec'd program"
tr '\0' '\n' <"/proc/$CHILD/cmdline" >"$T/cmdline"
no_canary "$T/cmdline"
grep -qx sleep "$T/cmdline" || fail "unexpected child argv"
tr '\0' '\n' <"/proc/$CHILD/environ" | grep -qxF "DB_PASSWORD=$EXEC_CANARY" ||
	fail "the exec'd child's environment lacks DB_PASSWORD"
tr '\0' '\n' <"/proc/$$/environ" >"$T/self.env"
tr '\0' '\n' <"/proc/$$/cmdline" >"$T/self.cmdline"
no_canary "$T/self.env" "$T/self.cmdline" "$T/exec.err"
kill "$CHILD" 2>/dev/null || true
wait "$CHILD" 2>/dev/null || true
ok "exec: the value is in no argv (secretctl's, the child's) and not in the parent's environment"

run "$T/out" "$T/err" ctl exec --dir "$T/empty" --env X=app/missing -- true
[ "$RC" = 1 ] || fail "exec with an unreadable secret exited $RC (want 1)"
[ "$(wc -l <"$T/err")" = 1 ] || fail "exec's error is not one line: $(cat "$T/err")"
grep -q "cannot read secret app/missing" "$T/err" || fail "exec: unclear message: $(cat "$T/err")"
run "$T/out" "$T/err" ctl exec --dir "$T/secrets" --env DB_PASSWORD=app/db -- /nonexistent/cmd
[ "$RC" = 127 ] || fail "exec of a missing command exited $RC (want 127)"
no_canary "$T/out" "$T/err"
run "$T/out" "$T/err" ctl exec --dir "$T/secrets" --env BAD-NAME=app/db -- true
[ "$RC" = 2 ] || fail "exec with an invalid variable name exited $RC (want 2)"
run "$T/out" "$T/err" ctl exec --dir "$T/secrets" --env X=../etc/passwd -- true
[ "$RC" = 2 ] || fail "exec with an invalid secret name exited $RC (want 2)"
run "$T/out" "$T/err" ctl exec --env X=app/db
[ "$RC" = 2 ] || fail "exec without a command exited $RC (want 2)"
ok "exec: unreadable secret 1 (one line), missing command 127, bad arguments 2"

# Without the file, exec asks the workload socket (needs a container-shaped cgroup).
if [ -n "$CG2" ]; then
	ID=$(hex64)
	mk_cgroup "$CG2" "/docker/$ID"; cg=$CG
	printf '%s' "$EXEC_CANARY" | ctl put app/fallback >/dev/null
	ctl grant app/fallback "id:$(echo "$ID" | cut -c1-12)" >/dev/null || fail "grant for the fallback"
	out=$(in_cgroup "$cg" "$SECRETCTL" --socket "$SD_WORKLOAD" exec --dir "$T/empty" \
		--env V=app/fallback -- sh -c 'echo "$V"') || fail "exec over the workload socket failed"
	[ "$out" = "$EXEC_CANARY" ] || fail "exec over the workload socket: wrong value"
	ok "exec falls back to the workload socket when the file is not there"
fi
