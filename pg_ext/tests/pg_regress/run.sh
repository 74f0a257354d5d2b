#!/usr/bin/env bash
# SQL-file tests of the user-visible views, in the layout of `cargo pgrx regress`
# (sql/setup.sql once, then sql/NAME.sql compared with expected/NAME.out), run by this script:
# cargo-pgrx 0.18.1's `regress` runs initdb as the calling user even with --runas, and initdb
# refuses root (this machine's CI user), so it cannot run here. Each test gets a fresh database:
# setup.sql, then the test, echoed by psql (-a, as pg_regress does), diffed against its .out.
#
#   pg_ext/tests/pg_regress/run.sh            # uses PGHOST/PGPORT/PGUSER from the environment
#   pg_ext/tests/pg_regress/run.sh --update   # rewrite expected/*.out from the actual output
#
# Needs: the extension installed (cargo pgrx install) into the server's pg_config, and a
# superuser connection (CREATE EXTENSION, SET ROLE).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
update=0
[[ "${1:-}" == "--update" ]] && update=1
status=0
for sql in "$here"/sql/*.sql; do
    name="$(basename "$sql" .sql)"
    [[ $name == setup ]] && continue
    db="erp_sync_regress_${name}"
    export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${db}" -c "CREATE DATABASE ${db}" >/dev/null
    (cd "$here/sql" && psql -X -q -d "$db" -v ON_ERROR_STOP=1 -f setup.sql) >/dev/null
    actual="$(mktemp)"
    # -a echoes every statement; errors keep running so they show up in the diff.
    (cd "$here/sql" && psql -X -a -q -d "$db" -v ON_ERROR_STOP=0 -v VERBOSITY=terse \
        --pset=pager=off -f "$name.sql") >"$actual" 2>&1 || true
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${db}" >/dev/null
    if [[ $update == 1 ]]; then
        cp "$actual" "$here/expected/$name.out"
        echo "updated expected/$name.out"
    elif diff -u "$here/expected/$name.out" "$actual"; then
        echo "ok   $name"
    else
        echo "FAIL $name"
        status=1
    fi
    rm -f "$actual"
done
exit $status
