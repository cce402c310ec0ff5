#!/usr/bin/env bash
# `npm run soak`: builds if needed, starts the embedded server unless MONGODB_URI is set,
# and runs scripts/soak.mjs (arguments pass through).
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
node scripts/soak.mjs "$@"
