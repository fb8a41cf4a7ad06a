#!/usr/bin/env bash
# Starts chartvault on its embedded defaults: SQLite and blobs under ./data, listening on
# 127.0.0.1:8080, a dev key in ./chartvault.key (created 0600 on first start). On the first
# start it prints the token of the 'admin' user it creates. Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --bin chartvault --bin chartvault-decoder
# libgomp reads this once at load time: set it before the process starts.
export OMP_THREAD_LIMIT=1
exec "${CARGO_TARGET_DIR:-target}/debug/chartvault" serve "$@"
