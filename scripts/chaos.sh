#!/usr/bin/env bash
# `make chaos`: the long reliability suite of issue 6 against release binaries:
#  - tests/tests/sync_chaos.rs (`chaos_*`): crashes, restarts, ERP faults, several sidecars. Each
#    scenario prints one `CHAOS <scenario>: written=… synced=… skipped=[…] dead=… lost=… dup_khid=…
#    dup_mobile=… order_violations=… followup_resends=…` line; the test fails if anything is lost or
#    duplicated or out of order.
#  - tests/tests/sync_concurrent_edits.rs (`chaos_concurrent_edits_*`): `CHAOS concurrent_edits: …
#    lost_updates=…`: four platform sessions edit contacts while three sidecars drain; the ERP
#    must end with every contact's final state.
#  - tests/tests/chaos_input.rs (`chaos_*`): `CHAOS bad_input: …` (hostile platform rows, a
#    text-only tracked table; no failed platform write, nothing lost, no ERP duplicate, the sidecar
#    survives) and `CHAOS log_retention: …` (outbox + sync_log size stays bounded by the sidecar's
#    retention job; pending/running/dead rows are kept).
# `make test` runs the same scenarios small (CHAOS_CONTACTS 40, CHAOS_BAD_INPUT_ROWS 500,
# CHAOS_LOG_EVENTS 20000 there).
#
# Environment: CHAOS_CONTACTS (default 10000), CHAOS_FAULT_CONTACTS (mixed ERP faults, default
# 2000), CHAOS_KILLS (SIGKILLs per scenario, default 8), CHAOS_BAD_INPUT_ROWS (platform rows of
# the bad-input scenario, default 10000; a quarter as many go to the text-only table),
# CHAOS_LOG_EVENTS (finished syncs the retention scenario writes, default 1000000), CHAOS_LOG_BATCH
# (events per batch, default CHAOS_LOG_EVENTS/20 capped at 20000), CHAOS_LOG_REAL_CONTACTS (real
# contacts synced during it, default 200), CHAOS_LOG_PAUSE_MS (pause between batches, default
# 500), CHAOS_LOG_RETENTION_MS (the sidecar's retention.interval_ms, default 500; 0 turns the job
# off and must make the scenario fail), CHAOS_EDIT_CONTACTS / CHAOS_EDIT_SECS (concurrent edits,
# default 4000 contacts for 30 s), CHAOS_FILTER (test name filter, default chaos_), E2E_CAPTURE_MODE
# (log or direct: the capture mode every scenario's database starts in; default the extension's,
# direct).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p sidecar --bins
export ERP_SYNC_BIN="$target/release/erp-sync"
export CHAOS_CONTACTS="${CHAOS_CONTACTS:-10000}" CHAOS_KILLS="${CHAOS_KILLS:-8}"
# Under 20% 5xx + 5% hangs (1.5 s timeouts) a contact takes ~40x longer: fewer contacts there.
export CHAOS_FAULT_CONTACTS="${CHAOS_FAULT_CONTACTS:-2000}"
export CHAOS_BAD_INPUT_ROWS="${CHAOS_BAD_INPUT_ROWS:-10000}" CHAOS_LOG_EVENTS="${CHAOS_LOG_EVENTS:-1000000}"
export CHAOS_EDIT_CONTACTS="${CHAOS_EDIT_CONTACTS:-4000}" CHAOS_EDIT_SECS="${CHAOS_EDIT_SECS:-30}"
mkdir -p "$target/chaos"
log="$target/chaos/chaos.log"
: >"$log"
rc=0
set +e
for suite in sync_chaos sync_concurrent_edits chaos_input; do
  cargo test -p e2e --test "$suite" -- "${CHAOS_FILTER:-chaos_}" --test-threads=1 --nocapture 2>&1 | tee -a "$log"
  st=${PIPESTATUS[0]}
  [ "$st" -ne 0 ] && rc=$st
done
set -e
echo
echo "== chaos figures (CHAOS_CONTACTS=$CHAOS_CONTACTS CHAOS_BAD_INPUT_ROWS=$CHAOS_BAD_INPUT_ROWS CHAOS_LOG_EVENTS=$CHAOS_LOG_EVENTS) =="
grep '^CHAOS \|^test chaos_.* CHAOS ' "$log" | sed 's/^test chaos_[a-z_]* \.\.\. //' || echo "(no figures: see $log)"
exit "$rc"
