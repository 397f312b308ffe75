#!/bin/sh
# Compiles app.ts into app.js (committed, embedded by src/assets.rs).
# `build.sh --check` fails if the committed app.js is not what the
# TypeScript source compiles to (CI runs it).
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --silent
if [ "${1:-}" = "--check" ]; then
  cp app.js app.js.committed
  npx tsc -p tsconfig.json
  if ! cmp -s app.js app.js.committed; then
    mv app.js.committed app.js
    echo "web/app.js differs from what web/app.ts compiles to: run crates/custos-dashboard/web/build.sh and commit" >&2
    exit 1
  fi
  rm app.js.committed
else
  npx tsc -p tsconfig.json
fi
