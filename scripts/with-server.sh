#!/usr/bin/env bash
# Runs `node <script> [args…]` against a server: builds the addon and dist/ if needed,
# starts the embedded server unless MONGODB_URI is set, stops it after.
#   npm run example   -> examples/quickstart.mjs
#   npm run soak      -> scripts/soak.mjs (arguments pass through: npm run soak -- --jobs 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/monque/target}

[ -d node_modules ] || npm install --no-audit --no-fund
ls monque.*.node >/dev/null 2>&1 && [ -f dist/index.js ] || npm run --silent build

if [ -z "${MONGODB_URI:-}" ]; then
  eval "$(scripts/test-server.sh start)"
  if [ "$MONQUE_SERVER_STARTED" = 1 ]; then trap 'scripts/test-server.sh stop' EXIT; fi
fi
export MONGODB_URI
node "$@"
