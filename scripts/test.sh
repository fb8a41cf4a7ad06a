#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate and the end-to-end tests (real
# server, real Tesseract, real SQLite, ../shared/fixtures when present).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OMP_THREAD_LIMIT=1
cargo test --workspace --no-fail-fast "$@"
