#!/usr/bin/env bash
# `npm run bench`: builds a release addon (thin LTO, quicker than the published fat-LTO
# build), starts the embedded server unless MONGODB_URI is set, runs the side-by-side
# benchmark (bench/run.mjs; arguments pass through) and writes bench/RESULTS.md and
# bench/results.png from its results. `npm run bench:groups` (first argument `groups`)
# runs bench/groups.mjs instead, which writes bench/groups.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/monque/target-rel}

[ -d node_modules ] || npm install --no-audit --no-fund
CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 npm run --silent build:native:release
npm run --silent build:ts

if [ -z "${MONGODB_URI:-}" ]; then
  eval "$(scripts/test-server.sh start)"
  if [ "$MONQUE_SERVER_STARTED" = 1 ]; then trap 'scripts/test-server.sh stop' EXIT; fi
fi
export MONGODB_URI
if [ "${1:-}" = groups ]; then
  shift
  node bench/groups.mjs "$@"
  exit 0
fi
node bench/run.mjs "$@"
# The chart is drawn with matplotlib from a venv kept outside the repo.
VENV=$HOME/.cache/monque/venv
if [ -z "${MONQUE_BENCH_PYTHON:-}" ] && [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q matplotlib || echo "no matplotlib: the chart will not be redrawn"
fi
node bench/report.mjs
