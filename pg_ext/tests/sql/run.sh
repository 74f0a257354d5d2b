#!/usr/bin/env bash
# SQL-file tests of the user-visible views: for each pg_ext/tests/sql/NAME.sql, create a fresh
# database, run the file with psql (echoing statements) and diff against NAME.expected.
#
#   pg_ext/tests/sql/run.sh            # uses PGHOST/PGPORT/PGUSER from the environment
#   pg_ext/tests/sql/run.sh --update   # rewrite the .expected files from the actual output
#
# Needs: the extension installed (cargo pgrx install) into the server's pg_config, and a
# superuser connection (CREATE EXTENSION, SET ROLE).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
update=0
[[ "${1:-}" == "--update" ]] && update=1
status=0
for sql in "$here"/*.sql; do
    name="$(basename "$sql" .sql)"
    db="erp_sync_sqltest_${name}"
    export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${db}" -c "CREATE DATABASE ${db}" >/dev/null
    actual="$(mktemp)"
    # -a echoes every statement; errors keep running so they show up in the diff.
    (cd "$here" && psql -X -a -q -d "$db" -v ON_ERROR_STOP=0 -v VERBOSITY=terse \
        --pset=pager=off -f "$name.sql") >"$actual" 2>&1 || true
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS ${db}" >/dev/null
    if [[ $update == 1 ]]; then
        cp "$actual" "$here/$name.expected"
        echo "updated $name.expected"
    elif diff -u "$here/$name.expected" "$actual"; then
        echo "ok   $name"
    else
        echo "FAIL $name"
        status=1
    fi
    rm -f "$actual"
done
exit $status
