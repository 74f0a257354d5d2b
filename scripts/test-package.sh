#!/usr/bin/env bash
# `make test-package` (the last step of `make test`): the packages of `make package`, installed
# with dpkg -i, used, and purged again.
#
#   1. dpkg -i postgresql-15-erp-sync and erp-sync; check files, modes, the system user, the unit;
#   2. a throwaway cluster (scripts/pgcluster.sh): CREATE EXTENSION erp_sync, and in a second
#      database CREATE EXTENSION erp_sync VERSION '0.1.0' + ALTER EXTENSION erp_sync UPDATE;
#      the reference schema (sql/middle_platform.sql) and the sample contacts (sql/demo_data.sql);
#   3. the installed /usr/bin/erp-sync: `sim` (the ERP simulator), `check-config` (the shipped
#      /etc/erp-sync/erp-sync.toml must refuse to start without erp.customer_category; the test's
#      config must pass, its password masked), `run` as the unprivileged user erp-sync with the
#      credentials in an EnvironmentFile-style file, until every admitted contact is synced (bounded),
#      /healthz, then SIGTERM (must exit 0); every admitted contact's khid must be in the simulator;
#   4. dpkg --purge both; their files must be gone.
# The machine is left as it was found: the extension files that existed before (`make install-ext`
# of the e2e step) are saved and put back, a system user erp-sync that this test's install created
# is deleted (the package itself keeps it on purge, as Debian packages do). A trap does all of it
# on failure too.
#
# Where the extension goes follows PG_CONFIG (default: the system PostgreSQL 15, what CI uses): its
# sharedir must be <ROOT>/usr/share/postgresql/15; with ROOT=/ the package is installed with plain
# `dpkg -i`, otherwise (a relocated PostgreSQL copy such as /opt/pgB while developing) with
# `dpkg --instdir=ROOT --admindir=<scratch copy of /var/lib/dpkg>`, so the system PostgreSQL is not
# touched. PGBIN (default `$PG_CONFIG --bindir`) runs the cluster. The sidecar package is always
# installed into the real root. Needs root (dpkg, runuser).
#
# Environment: PG_CONFIG, PGBIN, PKG_OUT_DIR (default target/package), PKG_TEST_SYNC_TIMEOUT_S (90).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=${PGBIN:-$("$PG_CONFIG" --bindir)}
export PGBIN
OUT=${PKG_OUT_DIR:-$ROOT/target/package}
SYNC_TIMEOUT_S=${PKG_TEST_SYNC_TIMEOUT_S:-90}
EXT_PKG=postgresql-15-erp-sync
SC_PKG=erp-sync
DAEMON_USER=erp-sync
T0=$(( $(date +%s%N) / 1000000 ))

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(now_ms) - $1 )); printf '%d.%ds' $((d / 1000)) $((d % 1000 / 100)); }
elapsed() { printf '%7s' "$(secs_since "$T0")"; }
step() { printf '\n[test-package %s] == %s\n' "$(elapsed)" "$*"; }
pass() { printf '[test-package %s] PASS %s\n' "$(elapsed)" "$*"; }
fail() { printf '[test-package %s] FAIL %s\n' "$(elapsed)" "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i, runuser); CI runs make test as root"
for tool in dpkg dpkg-deb dpkg-query curl psql setpriv python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (scripts/setup.sh)"
done

shopt -s nullglob
ext_debs=("$OUT/${EXT_PKG}"_*.deb)
sc_debs=("$OUT/${SC_PKG}"_*.deb)
shopt -u nullglob
if [ ${#ext_debs[@]} != 1 ] || [ ${#sc_debs[@]} != 1 ]; then
  fail "expected one $EXT_PKG and one $SC_PKG .deb in $OUT (run make package)"
fi
EXT_DEB=${ext_debs[0]}
SC_DEB=${sc_debs[0]}
EXT_VERSION=$(dpkg-deb -f "$EXT_DEB" Version)
SC_VERSION=$(dpkg-deb -f "$SC_DEB" Version)

# --- where the extension package goes --------------------------------------------------------
SHAREDIR=$("$PG_CONFIG" --sharedir)
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
case "$SHAREDIR" in
  */usr/share/postgresql/15) INSTDIR=${SHAREDIR%/usr/share/postgresql/15} ;;
  *) fail "PG_CONFIG=$PG_CONFIG: sharedir $SHAREDIR is not <root>/usr/share/postgresql/15, the package's layout" ;;
esac
[ "$PKGLIBDIR" = "$INSTDIR/usr/lib/postgresql/15/lib" ] \
  || fail "PG_CONFIG=$PG_CONFIG: pkglibdir $PKGLIBDIR is not $INSTDIR/usr/lib/postgresql/15/lib"
EXTDIR=$SHAREDIR/extension

WORK=$(mktemp -d /tmp/erp_sync_pkgtest.XXXXXX)
chmod 755 "$WORK"   # the postgres and erp-sync OS users read inside it
if [ -z "$INSTDIR" ]; then
  MODE="system (dpkg -i into /)"
  EXT_DPKG=(dpkg)
  EXT_QUERY=(dpkg-query)
else
  MODE="development (extension: dpkg --instdir=$INSTDIR with a scratch admindir; sidecar: /)"
  ADMIN=$WORK/dpkg-admin
  mkdir -p "$ADMIN/info" "$ADMIN/updates" "$ADMIN/triggers"
  cp /var/lib/dpkg/status "$ADMIN/status"   # so Depends: postgresql-15 is checked against this system
  touch "$ADMIN/available"
  EXT_DPKG=(dpkg --instdir="$INSTDIR" --admindir="$ADMIN")
  EXT_QUERY=(dpkg-query --admindir="$ADMIN")
fi
# A package's dpkg status unless it is absent or purged ("" then).
pkg_state() {
  local s; s=$("$@" 2>/dev/null) || s=""
  case "$s" in *not-installed) s="" ;; esac
  echo "$s"
}
# shellcheck disable=SC2016  # ${Status} is dpkg-query's, not the shell's
ext_query() { pkg_state "${EXT_QUERY[@]}" -W -f='${Status}' "$EXT_PKG"; }
# shellcheck disable=SC2016
sc_query() { pkg_state dpkg-query -W -f='${Status}' "$SC_PKG"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PGPORT=$(free_port); SIMPORT=$(free_port); HTTPPORT=$(free_port)
PSQL=(psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1)
SIMPW="pkgtest-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"   # must never show in any output

# --- state before, for the cleanup -----------------------------------------------------------
[ -z "$(sc_query)" ] || fail "package $SC_PKG is on this machine ($(sc_query)): dpkg --purge $SC_PKG first (the test leaves the machine as it finds it)"
[ -z "$(ext_query)" ] || fail "package $EXT_PKG is on this machine ($(ext_query)): dpkg --purge $EXT_PKG first"
[ -e /usr/bin/erp-sync ] && fail "/usr/bin/erp-sync exists but belongs to no package; remove it first"
USER_EXISTED=0
getent passwd "$DAEMON_USER" >/dev/null && USER_EXISTED=1
SAVED=""
if [ -f "$EXTDIR/erp_sync.control" ]; then
  SAVED=$WORK/saved-ext
  mkdir -p "$SAVED/ext" "$SAVED/lib"
  cp -a "$EXTDIR"/erp_sync.control "$EXTDIR"/erp_sync--*.sql "$SAVED/ext/"
  [ -f "$PKGLIBDIR/erp_sync.so" ] && cp -a "$PKGLIBDIR/erp_sync.so" "$SAVED/lib/"
fi

SIM_PID=""; RUN_PID=""; CLUSTER=""
cleanup() {
  local rc=$?
  set +e
  for p in $RUN_PID $SIM_PID; do kill "$p" 2>/dev/null; done
  for p in $RUN_PID $SIM_PID; do wait "$p" 2>/dev/null; done
  [ -n "$CLUSTER" ] && scripts/pgcluster.sh stop "$CLUSTER" fast >/dev/null 2>&1
  case "$(sc_query)" in ?*) dpkg --purge "$SC_PKG" >/dev/null 2>&1 || echo "cleanup: dpkg --purge $SC_PKG failed" >&2;; esac
  case "$(ext_query)" in ?*) "${EXT_DPKG[@]}" --purge "$EXT_PKG" >/dev/null 2>&1 || echo "cleanup: dpkg --purge $EXT_PKG failed" >&2;; esac
  if [ -n "$SAVED" ]; then
    cp -a "$SAVED"/ext/* "$EXTDIR/" && { [ -z "$(ls -A "$SAVED/lib")" ] || cp -a "$SAVED"/lib/* "$PKGLIBDIR/"; } \
      && echo "[test-package] restored the extension files that were installed before ($EXTDIR/erp_sync*, $PKGLIBDIR/erp_sync.so)" \
      || echo "cleanup: could not restore the extension files: run make install-ext" >&2
  fi
  if [ "$USER_EXISTED" = 0 ] && getent passwd "$DAEMON_USER" >/dev/null; then
    userdel "$DAEMON_USER" || echo "cleanup: userdel $DAEMON_USER failed (a process of it still running?)" >&2
    getent group "$DAEMON_USER" >/dev/null && groupdel "$DAEMON_USER"
  fi
  if [ "$rc" != 0 ]; then
    for f in sim.log run.log; do
      [ -s "$WORK/$f" ] && { echo "--- $f (last lines)"; tail -n 20 "$WORK/$f"; } >&2
    done
    printf '[test-package %s] FAIL (exit %s)\n' "$(elapsed)" "$rc" >&2
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

step "mode: $MODE"
for deb in "$EXT_DEB" "$SC_DEB"; do
  printf '  %s  %s bytes  (%s %s %s, Installed-Size %s KiB)\n' "${deb#"$ROOT"/}" "$(stat -c %s "$deb")" \
    "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" "$(dpkg-deb -f "$deb" Architecture)" \
    "$(dpkg-deb -f "$deb" Installed-Size)"
done

if command -v lintian >/dev/null 2>&1; then
  step "lintian (errors fail)"
  lintian --tag-display-limit 0 "$EXT_DEB" "$SC_DEB" >"$WORK/lintian.txt" 2>&1 || true
  sed 's/^/  /' "$WORK/lintian.txt"
  grep -q '^E:' "$WORK/lintian.txt" && fail "lintian reports errors"
  pass "lintian: no errors"
fi
if command -v shellcheck >/dev/null 2>&1; then
  dpkg-deb -e "$SC_DEB" "$WORK/control"
  shellcheck "$WORK/control/postinst" "$WORK/control/prerm" "$WORK/control/postrm" \
    || fail "shellcheck: maintainer scripts"
  pass "shellcheck: maintainer scripts"
fi

# --- 1. install ------------------------------------------------------------------------------
step "dpkg -i $EXT_PKG"
"${EXT_DPKG[@]}" -i "$EXT_DEB" >"$WORK/dpkg-ext.log" 2>&1 || { cat "$WORK/dpkg-ext.log" >&2; fail "dpkg -i $EXT_DEB"; }
for f in "$PKGLIBDIR/erp_sync.so" "$EXTDIR/erp_sync.control" "$EXTDIR/erp_sync--$EXT_VERSION.sql" \
         "$EXTDIR/erp_sync--0.1.0.sql" "$EXTDIR/erp_sync--0.1.0--$EXT_VERSION.sql"; do
  [ -f "$f" ] || fail "$EXT_PKG did not install $f"
done
pass "$EXT_PKG $EXT_VERSION installed: $("${EXT_QUERY[@]}" -L "$EXT_PKG" | grep -c '/erp_sync') extension files"

step "dpkg -i $SC_PKG"
dpkg -i "$SC_DEB" >"$WORK/dpkg-sc.log" 2>&1 || { cat "$WORK/dpkg-sc.log" >&2; fail "dpkg -i $SC_DEB"; }
[ -x /usr/bin/erp-sync ] || fail "no /usr/bin/erp-sync"
/usr/bin/erp-sync --version | grep -qF "$SC_VERSION" || fail "erp-sync --version is not $SC_VERSION"
getent passwd "$DAEMON_USER" >/dev/null || fail "postinst did not create the user $DAEMON_USER"
uid=$(id -u "$DAEMON_USER")
shell=$(getent passwd "$DAEMON_USER" | cut -d: -f7)
[ "$uid" -lt 1000 ] || fail "$DAEMON_USER is not a system user (uid $uid)"
case "$shell" in */nologin|*/false) ;; *) fail "$DAEMON_USER has a login shell ($shell)";; esac
for f in /etc/erp-sync/env /etc/erp-sync/erp-sync.toml; do
  [ "$(stat -c '%a %U:%G' "$f")" = "640 root:$DAEMON_USER" ] \
    || fail "$f is $(stat -c '%a %U:%G' "$f"), expected 640 root:$DAEMON_USER"
done
for f in /etc/erp-sync/env /etc/erp-sync/erp-sync.toml; do
  dpkg-query --control-show "$SC_PKG" conffiles | grep -qx "$f" || fail "$f is not a conffile"
done
grep -v '^#' /etc/erp-sync/env | grep -q . && fail "/etc/erp-sync/env sets variables (it must hold commented placeholders only)"
unit=/lib/systemd/system/erp-sync.service
[ -f "$unit" ] || fail "no $unit"
for line in "User=$DAEMON_USER" "EnvironmentFile=/etc/erp-sync/env" \
            "ExecStart=/usr/bin/erp-sync run --config /etc/erp-sync/erp-sync.toml" "KillSignal=SIGTERM" \
            "Restart=on-failure" "NoNewPrivileges=yes" "ProtectSystem=strict" "ProtectHome=yes" "PrivateTmp=yes"; do
  grep -qxF "$line" "$unit" || fail "$unit lacks $line"
done
if command -v systemd-analyze >/dev/null 2>&1; then
  if systemd-analyze verify "$unit" >"$WORK/verify.log" 2>&1; then pass "systemd-analyze verify $unit"
  else echo "  (systemd-analyze verify could not check the unit here: $(head -n 1 "$WORK/verify.log"))"; fi
fi
pass "$SC_PKG $SC_VERSION installed: /usr/bin/erp-sync, conffiles 0640 root:$DAEMON_USER, system user $DAEMON_USER (uid $uid, $shell), $unit"
# The upgrade path of the maintainer scripts (postinst configure <old version>): idempotent.
dpkg -i "$SC_DEB" >"$WORK/dpkg-sc2.log" 2>&1 || { cat "$WORK/dpkg-sc2.log" >&2; fail "dpkg -i $SC_DEB a second time"; }
[ "$(id -u "$DAEMON_USER")" = "$uid" ] || fail "reinstalling changed the uid of $DAEMON_USER"
[ "$(stat -c '%a %U:%G' /etc/erp-sync/env)" = "640 root:$DAEMON_USER" ] || fail "reinstalling changed /etc/erp-sync/env's mode"
pass "dpkg -i again (postinst configure $SC_VERSION): same user, same modes"

# --- 2. a cluster with the packaged extension ------------------------------------------------
step "PostgreSQL cluster in $WORK/pg (port $PGPORT, $PGBIN)"
CLUSTER=$WORK/pg
scripts/pgcluster.sh start "$CLUSTER" "$PGPORT"
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE erp' -c 'CREATE DATABASE erp_upgrade'
"${PSQL[@]}" -d erp -c 'CREATE EXTENSION erp_sync' -f sql/middle_platform.sql >/dev/null
v=$("${PSQL[@]}" -d erp -At -c "SELECT extversion FROM pg_extension WHERE extname = 'erp_sync'")
[ "$v" = "$EXT_VERSION" ] || fail "CREATE EXTENSION erp_sync gave version $v, expected $EXT_VERSION"
"${PSQL[@]}" -d erp -c 'CREATE ROLE erp_sync_sidecar LOGIN IN ROLE erp_sync_worker'
pass "CREATE EXTENSION erp_sync ($v) + sql/middle_platform.sql; login role erp_sync_sidecar IN ROLE erp_sync_worker"
"${PSQL[@]}" -d erp_upgrade -c "CREATE EXTENSION erp_sync VERSION '0.1.0'" -c 'ALTER EXTENSION erp_sync UPDATE'
v=$("${PSQL[@]}" -d erp_upgrade -At -c "SELECT extversion FROM pg_extension WHERE extname = 'erp_sync'")
[ "$v" = "$EXT_VERSION" ] || fail "ALTER EXTENSION erp_sync UPDATE from 0.1.0 gave $v"
pass "CREATE EXTENSION erp_sync VERSION '0.1.0' + ALTER EXTENSION erp_sync UPDATE → $v"

# --- 3. the installed daemon ------------------------------------------------------------------
step "erp-sync sim on 127.0.0.1:$SIMPORT"
/usr/bin/erp-sync sim --port "$SIMPORT" --user pkgtest --password "$SIMPW" >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
up=0
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$SIMPORT/_sim/stats" >/dev/null 2>&1 && { up=1; break; }
  kill -0 "$SIM_PID" 2>/dev/null || break
  sleep 0.1
done
[ "$up" = 1 ] || fail "the simulator did not come up within 10 s"
pass "simulator up (the installed /usr/bin/erp-sync sim)"

# The daemon as the unit runs it: user erp-sync, environment from an EnvironmentFile-style file
# (root-readable, group erp-sync), the config file, working directory /.
cat >"$WORK/erp-sync.toml" <<EOF
[database]
url = "postgres://erp_sync_sidecar@127.0.0.1:$PGPORT/erp"

[erp]
base_url = "http://127.0.0.1:$SIMPORT"
username = "pkgtest"
customer_category = "11"

[http]
listen_addr = "127.0.0.1:$HTTPPORT"
EOF
chmod 644 "$WORK/erp-sync.toml"
install -m 640 -o root -g "$DAEMON_USER" /dev/null "$WORK/env"
printf 'ERP_SYNC_ERP_PASSWORD=%s\n' "$SIMPW" >"$WORK/env"
# Replaces the calling shell: run it as `(daemon_exec ...)`, or `daemon_exec ... &` so that $! is
# the daemon itself (setpriv execs too; runuser would stay in between and answer SIGTERM itself).
daemon_exec() {   # env file → environment, as systemd's EnvironmentFile= does, then drop to the user
  set -a
  # shellcheck disable=SC1091
  . "$WORK/env"
  set +a
  cd /
  exec setpriv --reuid="$DAEMON_USER" --regid="$DAEMON_USER" --init-groups -- "$@"
}

step "erp-sync check-config"
set +e
(daemon_exec /usr/bin/erp-sync check-config --config /etc/erp-sync/erp-sync.toml) >"$WORK/cc-shipped.out" 2>&1
rc=$?
set -e
if [ "$rc" != 2 ] || ! grep -q customer_category "$WORK/cc-shipped.out"; then
  cat "$WORK/cc-shipped.out" >&2
  fail "check-config of the shipped /etc/erp-sync/erp-sync.toml: expected exit 2 naming erp.customer_category, got $rc"
fi
pass "shipped /etc/erp-sync/erp-sync.toml refuses to start until configured: $(head -n 1 "$WORK/cc-shipped.out")"
(daemon_exec /usr/bin/erp-sync check-config --config "$WORK/erp-sync.toml") >"$WORK/cc.out" 2>&1 \
  || { cat "$WORK/cc.out" >&2; fail "check-config of the test config"; }
grep -qF "$SIMPW" "$WORK/cc.out" && fail "check-config printed the ERP password"
grep -qE '^password = "\*\*\*"' "$WORK/cc.out" || fail "check-config does not show the password as masked"
grep -qF "base_url = \"http://127.0.0.1:$SIMPORT\"" "$WORK/cc.out" || fail "check-config does not show the test's erp.base_url"
pass "check-config (as $DAEMON_USER, password from the env file, printed masked)"

step "sample contacts (sql/demo_data.sql)"
"${PSQL[@]}" -d erp -f sql/demo_data.sql
N=$("${PSQL[@]}" -d erp -At -c "SELECT count(*) FROM erp_sync.contact_status WHERE admission_passed")
[ "$N" -ge 1 ] || fail "no admitted sample contact"
echo "  $N admitted contacts to sync, $("${PSQL[@]}" -d erp -At -c "SELECT count(*) FROM erp_sync.contact_status WHERE NOT admission_passed") rejected by admission"

step "erp-sync run (as $DAEMON_USER), until $N contacts are synced (at most ${SYNC_TIMEOUT_S}s)"
t_run=$(now_ms)
daemon_exec /usr/bin/erp-sync run --config "$WORK/erp-sync.toml" >"$WORK/run.log" 2>&1 &
RUN_PID=$!
for _ in $(seq 1 20); do [ "$(ps -o comm= -p "$RUN_PID")" = erp-sync ] && break; sleep 0.1; done
[ "$(ps -o comm= -p "$RUN_PID")" = erp-sync ] || fail "pid $RUN_PID is not the daemon ($(ps -o args= -p "$RUN_PID"))"
synced=0; left=1
deadline=$((SECONDS + SYNC_TIMEOUT_S))
while [ "$SECONDS" -lt "$deadline" ]; do
  kill -0 "$RUN_PID" 2>/dev/null || fail "erp-sync run exited early"
  counts=$("${PSQL[@]}" -d erp -At -F ' ' -c "
    SELECT (SELECT count(*) FROM erp_sync.contact_status WHERE admission_passed AND sync_state = 'synced'),
           (SELECT count(*) FROM erp_sync.outbox WHERE status IN ('pending', 'running'))") || counts="0 1"
  read -r synced left <<<"$counts"
  [ "$synced" = "$N" ] && [ "$left" = 0 ] && break
  sleep 0.5
done
if [ "$synced" != "$N" ] || [ "$left" != 0 ]; then
  "${PSQL[@]}" -d erp -c "SELECT contact_id, sync_state, last_error FROM erp_sync.contact_status ORDER BY 1" >&2
  fail "after ${SYNC_TIMEOUT_S}s: $synced of $N contacts synced, $left outbox rows pending or running"
fi
pass "$synced/$N admitted contacts synced (sync_state synced, outbox drained) in $(secs_since "$t_run")"
curl -fsS "http://127.0.0.1:$HTTPPORT/healthz" >/dev/null || fail "/healthz of the running daemon"
pass "/healthz answers on 127.0.0.1:$HTTPPORT"

# Read back from the ERP side: every admitted contact's khid (WX<id>) is a customer of the simulator.
"${PSQL[@]}" -d erp -At -c "SELECT khid FROM erp_sync.contact_status WHERE admission_passed ORDER BY 1" >"$WORK/expected.txt"
curl -fsS "http://127.0.0.1:$SIMPORT/_sim/customers" >"$WORK/customers.json" || fail "cannot read the simulator's customers"
grep -o '"khid": *"[^"]*"' "$WORK/customers.json" | sed 's/.*"\([^"]*\)"$/\1/' | sort -u >"$WORK/erp.txt"
missing=$(comm -23 "$WORK/expected.txt" "$WORK/erp.txt" | tr '\n' ' ')
[ -z "$missing" ] || fail "not in the simulated ERP: $missing"
pass "all $N khids are customers of the simulated ERP ($(tr '\n' ' ' <"$WORK/expected.txt"))"

step "SIGTERM the daemon (KillSignal=SIGTERM of the unit)"
kill -TERM "$RUN_PID"
rc=""
for _ in $(seq 1 200); do
  kill -0 "$RUN_PID" 2>/dev/null || { set +e; wait "$RUN_PID"; rc=$?; set -e; break; }
  sleep 0.1
done
RUN_PID_DONE=$RUN_PID; RUN_PID=""
[ -n "$rc" ] || { kill -KILL "$RUN_PID_DONE" 2>/dev/null; fail "erp-sync run did not stop within 20 s of SIGTERM"; }
[ "$rc" = 0 ] || fail "erp-sync run exited $rc after SIGTERM (expected 0, a graceful shutdown)"
grep -qF "$SIMPW" "$WORK/run.log" "$WORK/sim.log" && fail "the ERP password appears in a log"
pass "graceful shutdown (exit 0); the password is in no log"

kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=""
scripts/pgcluster.sh stop "$CLUSTER" fast; CLUSTER=""

# --- 4. remove -------------------------------------------------------------------------------
step "dpkg --purge $SC_PKG $EXT_PKG"
dpkg --purge "$SC_PKG" >"$WORK/purge-sc.log" 2>&1 || { cat "$WORK/purge-sc.log" >&2; fail "dpkg --purge $SC_PKG"; }
"${EXT_DPKG[@]}" --purge "$EXT_PKG" >"$WORK/purge-ext.log" 2>&1 || { cat "$WORK/purge-ext.log" >&2; fail "dpkg --purge $EXT_PKG"; }
for f in /usr/bin/erp-sync /etc/erp-sync /lib/systemd/system/erp-sync.service /usr/share/doc/erp-sync \
         "$PKGLIBDIR/erp_sync.so" "$EXTDIR/erp_sync.control" "$EXTDIR/erp_sync--$EXT_VERSION.sql" \
         "$EXTDIR/erp_sync--0.1.0.sql" "$INSTDIR/usr/share/doc/$EXT_PKG"; do
  [ -e "$f" ] && fail "$f is still there after dpkg --purge"
done
if [ -n "$(sc_query)" ] || [ -n "$(ext_query)" ]; then fail "dpkg still lists a package after --purge"; fi
user_note="kept by the package (Debian practice)"
[ "$USER_EXISTED" = 0 ] && user_note="$user_note; the cleanup deletes it (this test created it)"
pass "both packages purged, their files are gone; system user $DAEMON_USER $user_note"
printf '[test-package %s] PASS packages: %s, %s\n' "$(elapsed)" "${EXT_DEB##*/}" "${SC_DEB##*/}"
