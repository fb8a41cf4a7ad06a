#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate and the end-to-end tests (real
# server, real Tesseract, real SQLite, ../shared/fixtures when present).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OMP_THREAD_LIMIT=1
# The benchmarks are the project's performance record: they must keep compiling.
cargo build --workspace --benches
cargo test --workspace --no-fail-fast "$@"
