#!/usr/bin/env bash
# `npm run example:tsed`: compiles examples/tsed/app.mts (the README's Ts.ED snippet)
# into examples/tsed/build and runs it; starts the embedded server unless MONGODB_URI
# is set. The monque addon and dist/ must be built (`npm run build`).
set -euo pipefail
cd "$(dirname "$0")/.."

ls monque.*.node >/dev/null 2>&1 && [ -f dist/tsed/index.mjs ] || npm run --silent build
npx tsc -p examples/tsed/tsconfig.json --noEmit false --declaration false --outDir examples/tsed/build

if [ -z "${MONGODB_URI:-}" ]; then
  eval "$(scripts/test-server.sh start)"
  if [ "$MONQUE_SERVER_STARTED" = 1 ]; then trap 'scripts/test-server.sh stop' EXIT; fi
fi
# The app's database goes in the URI's path (Mongoose reads it from there).
export MONGODB_URI="${MONGODB_URI/\/\?//monque_example_tsed?}"
node examples/tsed/build/app.mjs
