#!/usr/bin/env bash
# Rebuilds tests/frameworks/dist: the framework test apps (src/) bundled with the npm packages
# pinned by package-lock.json. The bundles are committed, so the tests need neither npm nor the
# network; run this after changing src/ or the lockfile, and commit dist/.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
# Apps for Node (Node's modules stay imports; CommonJS reaches them through the createRequire
# banner esbuild's ESM output needs) and for the browser-like default.
for_node=(--platform=node '--banner:js=import { createRequire } from "node:module"; const require = createRequire("/");')
bundle() {
  local app=$1; shift
  node_modules/.bin/esbuild "src/$app.js" --bundle --format=esm --log-level=warning "$@" --outfile="dist/$app.js"
}
bundle hono-app
bundle itty-app
bundle hono-storage-app "${for_node[@]}"
bundle jwt-app "${for_node[@]}"
# What the bundles were made from: the test refuses bundles older than the lockfile or src/.
sha256sum package-lock.json src/*.js > dist/SOURCES.sha256
