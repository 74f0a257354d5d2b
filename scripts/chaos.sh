#!/usr/bin/env bash
# `make chaos`: the long reliability suite of issue 6 (tests/tests/sync_chaos.rs, `chaos_*` tests)
# against release binaries. Each scenario prints one `CHAOS <scenario>: written=… synced=…
# skipped=[…] dead=… lost=… dup_khid=… dup_mobile=… order_violations=… followup_resends=…` line;
# the test fails if anything is lost or duplicated or out of order. `make test` runs the same
# scenarios small (CHAOS_CONTACTS defaults to 40 there).
#
# Environment: CHAOS_CONTACTS (default 10000), CHAOS_FAULT_CONTACTS (mixed ERP faults, default
# 2000), CHAOS_KILLS (SIGKILLs per scenario, default 8),
# CHAOS_FILTER (test name filter, default chaos_).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p sidecar --bins
export ERP_SYNC_BIN="$target/release/erp-sync"
export CHAOS_CONTACTS="${CHAOS_CONTACTS:-10000}" CHAOS_KILLS="${CHAOS_KILLS:-8}"
# Under 20% 5xx + 5% hangs (1.5 s timeouts) a contact takes ~40x longer: fewer contacts there.
export CHAOS_FAULT_CONTACTS="${CHAOS_FAULT_CONTACTS:-2000}"
mkdir -p "$target/chaos"
log="$target/chaos/chaos.log"
set +e
cargo test -p e2e --test sync_chaos -- "${CHAOS_FILTER:-chaos_}" --test-threads=1 --nocapture 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
echo
echo "== chaos figures (CHAOS_CONTACTS=$CHAOS_CONTACTS) =="
grep '^CHAOS ' "$log" || echo "(no figures: see $log)"
exit "$rc"
