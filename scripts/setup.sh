#!/usr/bin/env bash
# Installs what erp_sync needs on a fresh Debian 12 machine, idempotently:
# PostgreSQL 15 server + headers, PgQ (postgresql-15-pgq3, a bench baseline), libclang (bindgen), sudo, dpkg-dev, cargo-pgrx =0.18.1, `cargo pgrx init`.
# Every step is skipped when its result is already there, so `make test` / `make demo` can call it always.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
[ -f /usr/include/postgresql/15/server/postgres.h ] || missing+=(postgresql-server-dev-15)
command -v sudo >/dev/null 2>&1 || missing+=(sudo)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev clang)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-contrib)
[ -f /usr/share/postgresql/15/extension/pgq.control ] || missing+=(postgresql-15-pgq3)   # make bench: the PgQ variant of write_path
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)   # make package: the debs' library Depends
command -v chromium >/dev/null 2>&1 || missing+=(chromium)   # status page test (headless)
[ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || missing+=(fonts-wqy-zenhei)   # CJK glyphs in the status page screenshot
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

if cargo pgrx --version 2>/dev/null | grep -q " ${PGRX_VERSION}\$"; then
  log "cargo-pgrx ${PGRX_VERSION} present"
else
  log "installing cargo-pgrx ${PGRX_VERSION} (takes ~9 minutes once)"
  cargo install cargo-pgrx --version "${PGRX_VERSION}" --locked
fi

PGRX_CONFIG="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if grep -qs "^pg15 *= *\"${PG_CONFIG}\"" "$PGRX_CONFIG"; then
  log "cargo pgrx already initialised for pg15"
else
  log "cargo pgrx init --pg15 ${PG_CONFIG}"
  cargo pgrx init --pg15 "${PG_CONFIG}"
fi
