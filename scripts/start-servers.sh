#!/usr/bin/env bash
# Starts the shared third-party servers for the interop tests. SOURCE it (.ci/run does):
#
#   source scripts/start-servers.sh
#
# It exports, for the tests:
#   GRPC_POOL_ETCD_ENDPOINT  http://127.0.0.1:PORT of a fresh etcd (temp data dir, 127.0.0.1
#                            only) used by the non-fault etcd tests. Fault tests (SIGKILL,
#                            SIGSTOP) always start their own etcd.
#   GRPC_POOL_ETCD_BIN       the etcd binary those fault tests run.
#   GRPC_POOL_PYTHON         the venv python with grpcio (the Python tests spawn
#                            scripts/python/echo_server.py with it, one server per test).
# and stops etcd and removes its data dir when the sourcing shell exits (trap EXIT).
#
# Without this script the tests still run: they look for etcd on PATH and for <repo>/.venv.
# With CI=true a missing server is an error here and in the tests.

_gp_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_gp_fail() {
  echo "start-servers: $*" >&2
  return 1
}

_gp_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_gp_stop_servers() {
  if [ -n "${_GP_ETCD_PID:-}" ]; then
    kill "$_GP_ETCD_PID" 2>/dev/null || true
    wait "$_GP_ETCD_PID" 2>/dev/null || true
    _GP_ETCD_PID=""
  fi
  if [ -n "${_GP_ETCD_DIR:-}" ]; then
    rm -rf "$_GP_ETCD_DIR"
    _GP_ETCD_DIR=""
  fi
}

_gp_start_etcd() {
  local etcd_bin client peer i
  etcd_bin="$(command -v etcd || true)"
  if [ -z "$etcd_bin" ]; then
    if [ "${CI:-}" = "true" ]; then
      _gp_fail "etcd not found on PATH (CI=true): run scripts/install-deps.sh"
      return 1
    fi
    echo "start-servers: WARNING: etcd not installed; the etcd tests will skip (scripts/install-deps.sh installs it)" >&2
    return 0
  fi
  _GP_ETCD_DIR="$(mktemp -d -t grpc-pool-etcd.XXXXXX)"
  client="$(_gp_free_port)"
  peer="$(_gp_free_port)"
  # --grpc-keepalive-min-time: etcd's default policy answers client pings more frequent than
  # every 5 s with GOAWAY(too_many_pings); pools in tests ping faster than that.
  "$etcd_bin" \
    --name default \
    --data-dir "$_GP_ETCD_DIR/data" \
    --listen-client-urls "http://127.0.0.1:$client" \
    --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" \
    --initial-cluster-state new \
    --grpc-keepalive-min-time=10ms \
    --log-level warn \
    >"$_GP_ETCD_DIR/etcd.log" 2>&1 &
  _GP_ETCD_PID=$!
  for i in $(seq 1 100); do
    if python3 - "$client" <<'PY' 2>/dev/null; then
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1) as r:
    sys.exit(0 if json.load(r).get("health") == "true" else 1)
PY
      export GRPC_POOL_ETCD_ENDPOINT="http://127.0.0.1:$client"
      export GRPC_POOL_ETCD_BIN="$etcd_bin"
      echo "start-servers: etcd $("$etcd_bin" --version | head -n 1 | awk '{print $3}') on $GRPC_POOL_ETCD_ENDPOINT (pid $_GP_ETCD_PID)"
      return 0
    fi
    if ! kill -0 "$_GP_ETCD_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  tail -n 30 "$_GP_ETCD_DIR/etcd.log" >&2 || true
  _gp_stop_servers
  _gp_fail "etcd did not become healthy on 127.0.0.1:$client within 10 s"
}

_gp_find_python() {
  local py="${GRPC_POOL_PYTHON:-${GRPC_POOL_VENV:-$_gp_repo/.venv}/bin/python}"
  if [ -x "$py" ] && "$py" -c 'import grpc, grpc_health.v1.health, grpc_tools.protoc' 2>/dev/null; then
    export GRPC_POOL_PYTHON="$py"
    echo "start-servers: python grpcio $("$py" -c 'import grpc; print(grpc.__version__)') at $py"
    return 0
  fi
  if [ "${CI:-}" = "true" ]; then
    _gp_fail "no python with grpcio at $py (CI=true): run scripts/install-deps.sh"
    return 1
  fi
  echo "start-servers: WARNING: no python with grpcio at $py; the Python interop tests will skip" >&2
}

trap _gp_stop_servers EXIT
_gp_start_etcd
_gp_find_python
