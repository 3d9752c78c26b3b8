#!/usr/bin/env bash
# Installs the third-party servers the interop tests run against. Idempotent and quiet; any
# failure stops the script with the failing step and its log.
#
#   etcd:   Debian package etcd-server (etcd 3.4)            -> /usr/bin/etcd
#   etcd's v3 API protos: Debian package golang-etcd-server-dev (etcd 3.4.23), unpacked, not
#           installed                                       -> <repo>/.deps/golang-etcd-server-dev/
#   Python: a venv with grpcio, grpcio-health-checking and grpcio-tools
#           at $GRPC_POOL_VENV (default: <repo>/.venv)        -> <venv>/bin/python
#
# Used by .ci/run; run it once locally too, then `cargo test -p etcd-tests -p python-interop-tests`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
VENV="${GRPC_POOL_VENV:-$REPO/.venv}"
WORK="$(mktemp -d -t grpc-pool-install.XXXXXX)"
LOG="$WORK/log"
trap 'rm -rf "$WORK"' EXIT

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

# --- etcd's v3 API protos ----------------------------------------------------------------
# The build scripts of etcd-tests and of the root package (examples/etcd.rs) compile etcd's
# rpc.proto, kv.proto and auth.proto; tests/etcd/etcd_protos.rs looks for them in
# $GRPC_POOL_ETCD_PROTO_ROOT, in /usr/share/gocode (golang-etcd-server-dev installed) and in
# .deps/golang-etcd-server-dev/ (unpacked here). Installing the package pulls ~150 Go source
# packages, so its .deb is downloaded and unpacked instead.
PROTO_PKG=golang-etcd-server-dev
PROTO_SUBDIR=usr/share/gocode/src/go.etcd.io/etcd
PROTO_DEST="$REPO/.deps/$PROTO_PKG"
has_etcd_protos() {
  local root="$1/$PROTO_SUBDIR" f
  for f in etcdserver/etcdserverpb/rpc.proto mvcc/mvccpb/kv.proto auth/authpb/auth.proto; do
    [ -f "$root/$f" ] || return 1
  done
}
in_dir() {
  local dir="$1"
  shift
  (cd "$dir" && "$@")
}
if has_etcd_protos ""; then
  echo "install-deps: etcd protos present in /$PROTO_SUBDIR (package $PROTO_PKG installed)"
elif has_etcd_protos "$PROTO_DEST"; then
  echo "install-deps: etcd protos present in .deps/$PROTO_PKG"
else
  mkdir -p "$WORK/deb"
  # Root may print "W: Download is performed unsandboxed as root ..." (_apt cannot read
  # $WORK): harmless.
  if ! in_dir "$WORK/deb" apt-get download -q "$PROTO_PKG" >"$LOG" 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    step "apt-get update" as_root apt-get update -q
    step "apt-get download $PROTO_PKG" in_dir "$WORK/deb" apt-get download -q "$PROTO_PKG"
  fi
  deb="$(ls "$WORK"/deb/"$PROTO_PKG"_*.deb)"
  rm -rf "$PROTO_DEST" "$PROTO_DEST.partial"
  mkdir -p "$REPO/.deps"
  step "dpkg-deb -x $(basename "$deb")" dpkg-deb -x "$deb" "$PROTO_DEST.partial"
  if ! has_etcd_protos "$PROTO_DEST.partial"; then
    echo "install-deps: FAILED: $(basename "$deb") lacks etcd's protos under $PROTO_SUBDIR" >&2
    exit 1
  fi
  mv "$PROTO_DEST.partial" "$PROTO_DEST"
  # Re-runs the build scripts that looked for the protos before they were here (they include
  # this file); a build script cannot watch a path that does not exist yet without re-running
  # on every build.
  touch "$REPO/tests/etcd/etcd_protos.rs"
  echo "install-deps: unpacked $PROTO_PKG $(dpkg-deb -f "$deb" Version) into .deps/$PROTO_PKG"
fi

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
