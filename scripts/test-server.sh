#!/usr/bin/env bash
# The embedded MongoDB-compatible test server (SecantusDB's secantusd-rs, GPL-2.0, run as
# a separate process only). Built once into a cache outside the repo.
#
#   scripts/test-server.sh install   build the server into $MONQUE_CACHE (once, ~10 min cold)
#   scripts/test-server.sh start     start it on a free port; prints `export MONGODB_URI=...`
#   scripts/test-server.sh stop      stop the server this script started
#   scripts/test-server.sh uri       print the running server's URI
#   scripts/test-server.sh bin       print the server binary's path (tests that restart a server)
set -euo pipefail

VERSION=0.5.3-beta.196
CACHE=${MONQUE_CACHE:-$HOME/.cache/monque}
ROOT=$CACHE/secantus-$VERSION
BIN=$ROOT/bin/secantusd-rs
STATE=${MONQUE_SERVER_STATE:-${TMPDIR:-/tmp}/monque-server-$(id -u)}

install() {
  if [ -x "$BIN" ]; then return 0; fi
  command -v cmake >/dev/null || {
    echo "test-server: installing cmake (needed to build the server)" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq cmake >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq cmake >/dev/null; fi
  }
  echo "test-server: building secantus-mdb $VERSION into $ROOT (once; about 10 minutes)" >&2
  # The crate declares rust-version 1.98 but builds with older toolchains.
  cargo install secantus-mdb --version "$VERSION" --locked --ignore-rust-version --root "$ROOT" >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  install
  mkdir -p "$STATE"
  if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
    # Already running (started by someone else): reuse it, and leave stopping it to them.
    echo "export MONGODB_URI=$(cat "$STATE/uri") MONQUE_SERVER_STARTED=0"; return 0
  fi
  local port data
  port=$(free_port)
  data=$(mktemp -d "${TMPDIR:-/tmp}/monque-db.XXXXXX")
  "$BIN" --host 127.0.0.1 --port "$port" --storage-path "$data" --cache-size 256M \
    >"$STATE/server.log" 2>&1 &
  echo $! >"$STATE/pid"
  echo "$data" >"$STATE/data"
  echo "mongodb://127.0.0.1:$port/?directConnection=true" >"$STATE/uri"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "export MONGODB_URI=$(cat "$STATE/uri") MONQUE_SERVER_STARTED=1"; return 0
    fi
    kill -0 "$(cat "$STATE/pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "test-server: failed to start; log:" >&2; cat "$STATE/server.log" >&2; exit 1
}

stop() {
  [ -f "$STATE/pid" ] || return 0
  local pid; pid=$(cat "$STATE/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  [ -f "$STATE/data" ] && rm -rf "$(cat "$STATE/data")"
  rm -f "$STATE/pid" "$STATE/uri" "$STATE/data"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  uri) cat "$STATE/uri" ;;
  bin) install; echo "$BIN" ;;
  *) echo "usage: $0 install|start|stop|uri|bin" >&2; exit 2 ;;
esac
