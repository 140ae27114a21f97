#!/usr/bin/env bash
# Runs an edgemux binary for real before it is published:
#   scripts/smoke.sh BINARY
# 1. `BINARY version` (and --version) answer; with SMOKE_TARGET / SMOKE_COMMIT set, they must
#    report that target / commit;
# 2. `BINARY check` accepts config.example.yaml;
# 3. `BINARY run` serves a config on loopback: a TCP forward, TLS ended at edgemux (an edge route
#    with a certificate made here) and an http->https redirect, each used by curl against a
#    python3 web server; then SIGTERM must stop it with exit status 0.
# SMOKE_WORKERS=N runs it with N worker processes (the binary must then be installed at the path
# its --allow-run names, /usr/bin/edgemux). Needs curl, openssl and python3.
# The release workflow runs this on each architecture; tests/release_test.ts runs it here.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BINARY" >&2; exit 2; }
bin=$1
root=$(cd "$(dirname "$0")/.." && pwd)
for tool in curl openssl python3; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool is missing (Debian package $tool)" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "smoke: FAILED: $*" >&2
  [ -f "$work/edgemux.log" ] && { echo "--- edgemux output:" >&2; cat "$work/edgemux.log" >&2; }
  exit 1
}
step() { echo "smoke: $*"; }

step "version"
for arg in version --version; do
  out=$("$bin" "$arg") || fail "$bin $arg exited $?"
  echo "$out" | sed 's/^/  /'
  grep -Eq '^edgemux [0-9]+\.[0-9]+\.[0-9]+' <<<"$out" || fail "$arg: no 'edgemux X.Y.Z' line"
  for key in commit deno target; do
    grep -Eq "^$key +[^ ]+\$" <<<"$out" || fail "$arg: no '$key' line"
  done
  if [ -n "${SMOKE_TARGET:-}" ]; then
    grep -Eq "^target +$SMOKE_TARGET\$" <<<"$out" || fail "$arg: target is not $SMOKE_TARGET"
  fi
  if [ -n "${SMOKE_COMMIT:-}" ]; then
    grep -Eq "^commit +$SMOKE_COMMIT\$" <<<"$out" || fail "$arg: commit is not $SMOKE_COMMIT"
  fi
done

step "check config.example.yaml"
"$bin" check -c "$root/config.example.yaml" || fail "check rejected config.example.yaml"

step "run"
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
mkdir "$work/www"
token="edgemux smoke $RANDOM$RANDOM"
echo "$token" >"$work/www/hello.txt"
backend_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$backend_port" \
  >"$work/backend.log" 2>&1 &
pids+=($!)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj /CN=smoke.test -addext subjectAltName=DNS:smoke.test \
  -addext basicConstraints=critical,CA:FALSE \
  -keyout "$work/smoke.key" -out "$work/smoke.pem" 2>/dev/null || fail "openssl req"

started=""
for attempt in 1 2 3; do
  tcp=$(free_port) https=$(free_port) http=$(free_port)
  cat >"$work/edgemux.yaml" <<YAML
version: 1
shutdown_timeout: 5s
workers: ${SMOKE_WORKERS:-1}
certificates:
  files: [{ cert: smoke.pem, key: smoke.key }]
backends:
  web: { servers: ["127.0.0.1:$backend_port"] }
listeners:
  tcp: { bind: "127.0.0.1:$tcp", routes: [{ forward: web }] }
  https: { bind: "127.0.0.1:$https", routes: [{ sni: smoke.test, edge: web }] }
  http: { bind: "127.0.0.1:$http", routes: [{ redirect: https }] }
YAML
  "$bin" run -c "$work/edgemux.yaml" >"$work/edgemux.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do
    grep -q "edgemux started" "$work/edgemux.log" && { started=yes; break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$started" ] && break
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  grep -qi "in use" "$work/edgemux.log" || break # another process took a port: pick again
done
[ -n "$started" ] || fail "edgemux did not start within 30 s"
# With workers, the supervisor logs "edgemux started" once all of them are serving.

step "a TCP forward"
got=$(curl -fsS --max-time 10 "http://127.0.0.1:$tcp/hello.txt") || fail "curl through the forward"
[ "$got" = "$token" ] || fail "the forward answered '$got'"

step "TLS ended at edgemux (edge route)"
got=$(curl -fsS --max-time 10 --cacert "$work/smoke.pem" --resolve "smoke.test:$https:127.0.0.1" \
  "https://smoke.test:$https/hello.txt") || fail "curl through the edge route"
[ "$got" = "$token" ] || fail "the edge route answered '$got'"

step "http -> https redirect"
location=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{redirect_url}' \
  --resolve "smoke.test:$http:127.0.0.1" "http://smoke.test:$http/a?b=1") || fail "curl redirect"
[ "$location" = "308 https://smoke.test:$https/a?b=1" ] || fail "the redirect was '$location'"

step "SIGTERM"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || fail "edgemux exited $status after SIGTERM"
grep -q "stopped" "$work/edgemux.log" || fail "no 'stopped' in the log after SIGTERM"
step "passed"
