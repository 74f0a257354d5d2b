#!/usr/bin/env bash
# `make demo`: the whole loop on an embedded default, then the sync status.
# Throwaway PostgreSQL cluster in a temp dir + CREATE EXTENSION erp_sync + reference schema +
# ERP simulator + erp-sync sidecar + sample WeChat contacts. Everything is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${ERP_SYNC_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/erp-sync}
KEEP=${DEMO_KEEP:-0}     # DEMO_KEEP=1 leaves everything running for you to explore

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

WORK=$(mktemp -d /tmp/erp_sync_demo.XXXXXX)
chmod 755 "$WORK"   # the postgres OS user runs the cluster inside it
PGPORT=$(free_port); SIMPORT=$(free_port)
PSQL=(psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1)
pids=()
cleanup() {
  if [ "$KEEP" = 1 ]; then
    echo; echo "Left running (DEMO_KEEP=1): psql -h 127.0.0.1 -p $PGPORT -U postgres erp ; simulator http://127.0.0.1:$SIMPORT/_sim/customers"
    echo "Stop with: kill ${pids[*]}; scripts/pgcluster.sh stop $WORK/pg"
    return
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/pgcluster.sh stop "$WORK/pg" fast 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "PostgreSQL 15 cluster in $WORK/pg (port $PGPORT)"
scripts/pgcluster.sh start "$WORK/pg" "$PGPORT"
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE erp'
"${PSQL[@]}" -d erp -c 'CREATE EXTENSION erp_sync' -f sql/middle_platform.sql
# The sidecar's own login, granted erp_sync_worker only (least privilege, pg_ext/sql/SECURITY.md).
"${PSQL[@]}" -d erp -c 'CREATE ROLE erp_sync_sidecar LOGIN IN ROLE erp_sync_worker'

step "ERP simulator on 127.0.0.1:$SIMPORT (account demo/demo, vendor-strict: the vendor's required fields, fuzzy list filters, no result flag)"
"$BIN" sim --port "$SIMPORT" --user demo --password demo >"$WORK/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$SIMPORT/_sim/stats" >/dev/null 2>&1 && break; sleep 0.1; done

step "erp-sync sidecar"
ERP_SYNC_DATABASE_URL="postgres://erp_sync_sidecar@127.0.0.1:$PGPORT/erp" \
ERP_SYNC_ERP_BASE_URL="http://127.0.0.1:$SIMPORT" \
ERP_SYNC_ERP_USERNAME=demo ERP_SYNC_ERP_PASSWORD=demo ERP_SYNC_ERP_CUSTOMER_CATEGORY=11 \
  "$BIN" run >"$WORK/sidecar.log" 2>&1 &
pids+=($!)

step "Sample WeChat contacts written with ordinary SQL (sql/demo_data.sql)"
"${PSQL[@]}" -d erp -f sql/demo_data.sql
"${PSQL[@]}" -d erp -c "SELECT id, type, name, phone, score, list_status FROM mp.contacts ORDER BY id"

step "Waiting for the outbox to drain"
for _ in $(seq 1 150); do
  left=$("${PSQL[@]}" -d erp -At -c "SELECT count(*) FROM erp_sync.outbox WHERE status IN ('pending','running')")
  [ "$left" = 0 ] && break
  sleep 0.2
done
echo "rows still pending or running: $left"

step "Sync status per contact (erp_sync.contact_status)"
"${PSQL[@]}" -d erp -c "SELECT * FROM erp_sync.contact_status ORDER BY contact_id"

step "Queue (erp_sync.queue)"
"${PSQL[@]}" -d erp -c "SELECT * FROM erp_sync.queue"

step "Sync log (masked)"
"${PSQL[@]}" -d erp -c "SELECT id, contact_id, action, erp_ord, outcome, left(coalesce(error,''),60) AS error, duration_ms FROM erp_sync.sync_log ORDER BY id"

step "What the simulated ERP holds"
curl -fsS "http://127.0.0.1:$SIMPORT/_sim/customers" | python3 -c '
import json,sys
d=json.load(sys.stdin)
for c in d:
    f=c.get("fields",{})
    m=f.get("mobile") or ""
    m=m[:3]+"****"+m[-4:] if len(m)>=8 else m
    print("  ord=%-6s %s khid=%-7s sort1=%-3s jz=%-4s mobile=%s weixinAcc=%-10s person=%s name=%s" % (c.get("ord"),
          "company " if c.get("intsort")==1 else "personal", f.get("khid"), f.get("sort1"), f.get("jz"),
          m, f.get("weixinAcc"), f.get("person_name"), f.get("name")))
' || echo "(simulator did not answer)"
for what in followups assignments persons; do
  printf '  %s: ' "$what"; curl -fsS "http://127.0.0.1:$SIMPORT/_sim/$what" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d) if isinstance(d,list) else d)' || echo "?"
done

step "Sidecar log (last lines)"
tail -n 15 "$WORK/sidecar.log" || true
