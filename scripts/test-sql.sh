#!/usr/bin/env bash
# SQL-file tests of the user-visible views (pg_ext/tests/pg_regress: sql/*.sql vs expected/*.out) in a throwaway
# cluster. Needs the extension installed (make install-ext).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/erp_sync_sqltest.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'scripts/pgcluster.sh stop "$dir" immediate >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
PG_FSYNC=off scripts/pgcluster.sh start "$dir" "$port"
PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres pg_ext/tests/pg_regress/run.sh
