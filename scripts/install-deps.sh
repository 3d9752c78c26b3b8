#!/usr/bin/env bash
# Installs the third-party servers the interop tests run against. Idempotent and quiet; any
# failure stops the script with the failing step and its log.
#
#   etcd:   Debian package etcd-server (etcd 3.4)            -> /usr/bin/etcd
#   Python: a venv with grpcio, grpcio-health-checking and grpcio-tools
#           at $GRPC_POOL_VENV (default: <repo>/.venv)        -> <venv>/bin/python
#
# Used by .ci/run; run it once locally too, then `cargo test -p etcd-tests -p python-interop-tests`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
VENV="${GRPC_POOL_VENV:-$REPO/.venv}"
LOG="$(mktemp -t grpc-pool-install.XXXXXX)"
trap 'rm -f "$LOG"' EXIT

step() {
  local what="$1"
  shift
  if ! "$@" >"$LOG" 2>&1; then
    echo "install-deps: FAILED: $what" >&2
    echo "install-deps: command: $*" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# --- etcd -------------------------------------------------------------------------------
if command -v etcd >/dev/null 2>&1; then
  echo "install-deps: etcd present: $(etcd --version | head -n 1)"
else
  export DEBIAN_FRONTEND=noninteractive
  step "apt-get update" as_root apt-get update -q
  step "apt-get install etcd-server" as_root apt-get install -y -q --no-install-recommends etcd-server
  echo "install-deps: installed $(etcd --version | head -n 1)"
fi
# The package may start a system etcd on 127.0.0.1:2379 where an init system runs; the tests
# never use that one (they start their own on free ports), so it is left alone.

# --- Python grpcio --------------------------------------------------------------------------
PYTHON_BIN="${PYTHON:-python3}"
if ! command -v "$PYTHON_BIN" >/dev/null 2>&1; then
  echo "install-deps: FAILED: $PYTHON_BIN not found (needed for the grpcio interop server)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON_BIN" -m venv "$VENV" >"$LOG" 2>&1; then
    # Debian's python3 lacks ensurepip until python3-venv is installed.
    export DEBIAN_FRONTEND=noninteractive
    step "apt-get install python3-venv" as_root apt-get install -y -q python3-venv
    rm -rf "$VENV"
    step "python -m venv $VENV" "$PYTHON_BIN" -m venv "$VENV"
  fi
fi
if "$VENV/bin/python" -c 'import grpc, grpc_health.v1.health, grpc_tools.protoc' >/dev/null 2>&1; then
  echo "install-deps: grpcio present in $VENV"
else
  step "pip install grpcio grpcio-health-checking grpcio-tools" \
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    grpcio grpcio-health-checking grpcio-tools
  step "import grpcio modules" \
    "$VENV/bin/python" -c 'import grpc, grpc_health.v1.health, grpc_tools.protoc'
  echo "install-deps: installed grpcio $("$VENV/bin/python" -c 'import grpc; print(grpc.__version__)') in $VENV"
fi
