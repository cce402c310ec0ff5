#!/usr/bin/env bash
# Installs monque the way a user does and runs it, with no Rust toolchain on the PATH:
# packs the main package and the linux-x64-gnu platform package, installs both
# tarballs into a fresh project, then runs an ESM script and a CJS script that enqueue
# and process a job, and `tsc --noEmit` on a TypeScript file using the public types.
# A second project installs the main package alone and must get a clear error naming
# the platform. Prints the tarball sizes.
#
# Needs: a built addon (`npm run build`; MONQUE_ADDON picks another .node file, e.g. a
# release build) and MONGODB_URI (scripts/test.sh sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
: "${MONGODB_URI:?set MONGODB_URI (scripts/test-server.sh start prints it)}"
ADDON=${MONQUE_ADDON:-$REPO/monque.linux-x64-gnu.node}
[ -f "$ADDON" ] || { echo "install-test: no addon at $ADDON (run npm run build)" >&2; exit 1; }
[ -f dist/index.js ] || { echo "install-test: no dist/ (run npm run build:ts)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/monque-install.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
NODE_DIR=$(dirname "$(command -v node)")
NPM_DIR=$(dirname "$(command -v npm)")

# The platform package, as the release workflow fills it: its package.json and the
# binary. Debug symbols are stripped (a debug build is 170 MB); the code is the same.
mkdir -p "$WORK/platform"
cp npm/linux-x64-gnu/package.json npm/linux-x64-gnu/README.md "$WORK/platform/"
cp "$ADDON" "$WORK/platform/monque.linux-x64-gnu.node"
strip --strip-debug "$WORK/platform/monque.linux-x64-gnu.node" 2>/dev/null || true

pack() { # dir → prints the tarball path; records name, size, unpacked size and file count
  (cd "$1" && npm pack --silent --json --pack-destination "$WORK" 2>/dev/null) > "$WORK/pack.json"
  node -e '
    const [p] = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
    const mb = (n) => (n / 1048576).toFixed(2) + " MB"
    console.error(`install-test: ${p.filename}: ${mb(p.size)} packed, ${mb(p.unpackedSize)} unpacked, ${p.entryCount} files`)
    console.log(require("path").join(process.argv[2], p.filename))
  ' "$WORK/pack.json" "$WORK"
}
MAIN_TGZ=$(pack "$REPO")
PLATFORM_TGZ=$(pack "$WORK/platform")

# Nothing but the build output (with the dashboard's page and styles), the loader and
# the docs may ship in the main tarball.
tar -tzf "$MAIN_TGZ" | sed 's|^package/||' | sort > "$WORK/main-files.txt"
if grep -vE '^(dist/.*\.(js|mjs|d\.ts|d\.mts)|dist/http/assets/(index\.html|app\.css)|index\.js|index\.d\.ts|package\.json|README\.md|LICENSE)$' "$WORK/main-files.txt"; then
  echo "install-test: unexpected files in the main tarball (above)" >&2
  exit 1
fi

# A user's machine: node and npm, no cargo, no rustc.
USER_PATH="$NODE_DIR:$NPM_DIR:/usr/bin:/bin"
as_user() { env -i HOME="$HOME" PATH="$USER_PATH" MONGODB_URI="$MONGODB_URI" "$@"; }
if as_user bash -c 'command -v cargo || command -v rustc' > /dev/null; then
  echo "install-test: cargo or rustc is still on the user PATH ($USER_PATH)" >&2
  exit 1
fi

new_project() { # dir
  mkdir -p "$1"
  printf '{ "name": "monque-user", "version": "1.0.0", "private": true }\n' > "$1/package.json"
}

# (a)-(c): both tarballs, plus what a TypeScript user adds.
APP=$WORK/app
new_project "$APP"
cp "$REPO"/__test__/install/* "$APP/"
(cd "$APP" && as_user npm install --no-audit --no-fund --prefer-offline --loglevel=error \
  "$MAIN_TGZ" "$PLATFORM_TGZ" typescript@5 @types/node@20 > /dev/null)
[ ! -e "$APP/node_modules/monque/src" ] || { echo "install-test: Rust sources were installed" >&2; exit 1; }
(cd "$APP" && as_user node esm.mjs && as_user node cjs.cjs && as_user npx --no-install tsc --noEmit -p tsconfig.json)
echo "install-test: ESM, CJS and tsc --noEmit pass in a project without cargo"

# The main package without its platform package: a clear, coded error.
BARE=$WORK/bare
new_project "$BARE"
cp "$REPO"/__test__/install/missing-binary.cjs "$BARE/"
(cd "$BARE" && as_user npm install --no-audit --no-fund --prefer-offline --loglevel=error "$MAIN_TGZ" > /dev/null)
(cd "$BARE" && as_user node missing-binary.cjs)
