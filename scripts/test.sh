#!/usr/bin/env bash
# `npm test`: builds the addon (debug) and the TS wrapper, starts the embedded test
# server unless MONGODB_URI is set, runs the Rust tests and the JS tests, stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/monque/target}

[ -d node_modules ] || npm install --no-audit --no-fund
npm run --silent build

if [ -z "${MONGODB_URI:-}" ]; then
  eval "$(scripts/test-server.sh start)"
  if [ "$MONQUE_SERVER_STARTED" = 1 ]; then trap 'scripts/test-server.sh stop' EXIT; fi
  echo "test: embedded server at $MONGODB_URI"
else
  echo "test: using MONGODB_URI from the environment"
fi
export MONGODB_URI
# Tests that stop and restart a server run their own copy of the embedded one.
MONQUE_SERVER_BIN=$(scripts/test-server.sh bin)
export MONQUE_SERVER_BIN

cargo test --quiet
node --test __test__/
