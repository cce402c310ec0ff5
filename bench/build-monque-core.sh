#!/usr/bin/env bash
# Builds the peer @monque/core (ueberBrot/monque, packages/core) from its sources into a
# directory outside this repository, for the benchmark only: its npm package is not on
# the registry this machine reaches. Nothing of it is copied into monque.
#
#   bench/build-monque-core.sh <checkout or bare git dir of ueberBrot/monque> [out dir]
#   MONQUE_CORE_PATH=<out dir>/dist/index.mjs npm run bench
#
# The out dir (default ~/.cache/monque/monque-core) gets the package's sources, its own
# dependencies (cron-parser, the mongodb driver 7 it peers on) and an ESM bundle made by
# esbuild with the package's tsconfig (its `@/` path alias).
set -euo pipefail
src=${1:?usage: bench/build-monque-core.sh <ueberBrot/monque checkout or git dir> [out dir]}
out=${2:-$HOME/.cache/monque/monque-core}
mkdir -p "$out"

if [ -d "$src/packages/core" ]; then
  cp -r "$src/packages/core/." "$out/"
  commit=$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)
else
  git --git-dir "$src" archive HEAD packages/core | tar -x -C "$out" --strip-components=2
  commit=$(git --git-dir "$src" rev-parse HEAD)
fi

cd "$out"
version=$(node -p 'require("./package.json").version')
# Its own dependency and peer, nothing from its dev toolchain (bun, tsdown, vitest).
cat > package.json <<EOF
{ "name": "monque-core-bench-build", "private": true, "type": "module",
  "dependencies": { "cron-parser": "^5.5.0", "mongodb": "^7.5.0", "esbuild": "^0.25.0" } }
EOF
npm install --no-audit --no-fund --loglevel=error
npx esbuild src/index.ts --bundle --platform=node --format=esm --target=node20 \
  --tsconfig=tsconfig.json --external:mongodb --external:cron-parser \
  --outfile=dist/index.mjs --log-level=warning
printf '{ "package": "@monque/core", "version": "%s", "commit": "%s" }\n' "$version" "$commit" > dist/build.json
echo "built @monque/core $version ($commit) -> $out/dist/index.mjs"
