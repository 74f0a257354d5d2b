#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster in a directory of its own, run as the `postgres` OS user
# (initdb refuses root). Used by `make demo`, the end-to-end tests, bench and chaos.
#
#   scripts/pgcluster.sh start   DIR PORT   initdb (first time) + start, loopback only, trust auth
#   scripts/pgcluster.sh stop    DIR [MODE] stop (MODE: fast | immediate | smart; default fast)
#   scripts/pgcluster.sh restart DIR [MODE]
#   scripts/pgcluster.sh status  DIR
#
# Environment: PG_FSYNC=off makes test clusters faster (crash-safety of the OS is not under test).
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

# The server never inherits RUST_BACKTRACE: with it, pgrx puts a Rust backtrace into the DETAIL of
# every error raised inside the extension (clients would see internals).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$@"
  else env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$@"; fi
}

cmd=${1:?usage: pgcluster.sh start|stop|restart|status DIR [PORT|MODE]}
dir=${2:?cluster directory required}

case "$cmd" in
  start)
    port=${3:?port required}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
      cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
fsync = ${PG_FSYNC:-on}
synchronous_commit = ${PG_SYNC_COMMIT:-on}
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
CONF
    fi
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
      || { tail -n 30 "$dir/postgres.log" >&2; exit 1; }
    ;;
  stop)
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m "${3:-fast}" -w -t 60 stop >/dev/null
    ;;
  restart)
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m "${3:-fast}" -l "$dir/postgres.log" -w -t 60 restart >/dev/null
    ;;
  status)
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" status
    ;;
  *)
    echo "unknown command: $cmd" >&2; exit 2 ;;
esac
