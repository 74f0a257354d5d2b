#!/usr/bin/env bash
# `make bench`: builds release binaries and the extension, then runs bench/bench.py (stdlib only).
# Report: target/bench/report.md and report.json. Sizes: see the docstrings of bench/bench.py and
# bench/sync_sections.py (BENCH_* environment variables); BENCH_SECTIONS picks sections.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd pg_ext && cargo pgrx install --release --pg-config "${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}")
cargo build --release -p sidecar --bins
ERP_SYNC_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/erp-sync" exec python3 bench/bench.py "$@"
