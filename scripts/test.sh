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
# The Rust side of the cross-language tracing test (__test__/tracing.test.mjs), and
# the metrics as OpenTelemetry instruments in Rust.
cargo build --quiet --example traced --features opentelemetry
cargo test --quiet --features opentelemetry --test otel_metrics
node --test __test__/

# The Rust examples, as the README runs them: a worker, and a producer enqueueing
# 5 + 1 unique + 1 delayed + 3 batched jobs; the worker exits after all 10 complete.
export MONQUE_DATABASE=monque_examples_$$
cargo build --quiet --examples
"$CARGO_TARGET_DIR/debug/examples/worker" --exit-after 10 > /tmp/monque-worker.$$.log &
WORKER=$!
"$CARGO_TARGET_DIR/debug/examples/producer" 5
if ! timeout 60 tail --pid=$WORKER -f /dev/null; then cat /tmp/monque-worker.$$.log; exit 1; fi
wait $WORKER || { cat /tmp/monque-worker.$$.log; exit 1; }
grep -c '^completed' /tmp/monque-worker.$$.log | grep -qx 10 || { cat /tmp/monque-worker.$$.log; exit 1; }
echo "test: Rust examples: the worker completed the producer's 10 jobs"
rm -f /tmp/monque-worker.$$.log

# Install the packed tarballs into a fresh project with no Rust toolchain on the PATH.
bash scripts/install-test.sh
