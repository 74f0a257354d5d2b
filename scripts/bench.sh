#!/usr/bin/env bash
# `make bench`: builds release binaries and the extension, then runs bench/bench.py (stdlib only).
# Report: target/bench/report.md and report.json. Sizes: see the docstrings of bench/bench.py and
# bench/sync_sections.py (BENCH_* environment variables); BENCH_SECTIONS picks sections.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
(cd pg_ext && cargo pgrx install --release --pg-config "$PG_CONFIG")
cargo build --release -p sidecar --bins

# The write-path section's PgQ variant needs the pgq extension (Debian: postgresql-15-pgq3, which
# scripts/setup.sh installs into the system PostgreSQL 15). When PG_CONFIG points at another copy
# of PostgreSQL 15 (a relocated one), the package's files are copied into it; without the package
# the section reports PgQ as not installed and runs the other variants.
sys_lib=/usr/lib/postgresql/15/lib
pkglib=$("$PG_CONFIG" --pkglibdir)
extdir="$("$PG_CONFIG" --sharedir)/extension"
if [ "$(realpath -m "$pkglib")" != "$(realpath -m "$sys_lib")" ] \
   && dpkg-query -W -f='${Status}' postgresql-15-pgq3 2>/dev/null | grep -q 'install ok installed'; then
  n=0
  while IFS= read -r f; do
    case "$f" in
      "$sys_lib"/pgq*.so) cp -p "$f" "$pkglib/" ; n=$((n + 1)) ;;
      /usr/share/postgresql/15/extension/pgq*) cp -p "$f" "$extdir/" ; n=$((n + 1)) ;;
    esac
  done < <(dpkg -L postgresql-15-pgq3)
  echo "[bench] copied $n files of postgresql-15-pgq3 into $pkglib and $extdir" >&2
fi

ERP_SYNC_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/erp-sync" exec python3 bench/bench.py "$@"
