#!/usr/bin/env bash
# `make package`: Debian packages of the extension and of the sidecar, built with plain
# `dpkg-deb --build --root-owner-group` from trees staged here (no cargo-deb, no debhelper).
#
#   target/package/postgresql-15-erp-sync_<ext version>_<arch>.deb
#       the extension for PostgreSQL 15, from `cargo pgrx package` (release build): erp_sync.so in
#       /usr/lib/postgresql/15/lib, erp_sync.control + erp_sync--<version>.sql and every upgrade
#       path (erp_sync--A--B.sql) in /usr/share/postgresql/15/extension, plus the install scripts of
#       released versions (pg_ext/sql/released/), so CREATE EXTENSION erp_sync VERSION '0.1.0' and
#       ALTER EXTENSION erp_sync UPDATE work from a package install as from `make install-ext`.
#   target/package/erp-sync_<sidecar version>_<arch>.deb
#       /usr/bin/erp-sync, /etc/erp-sync/erp-sync.toml (the example config) and /etc/erp-sync/env
#       (credential placeholders), both conffiles, mode 0640 root:erp-sync; the systemd unit
#       /lib/systemd/system/erp-sync.service (user erp-sync, EnvironmentFile=/etc/erp-sync/env);
#       maintainer scripts that create the system user and talk to systemd only when it runs.
#
# Environment: PG_CONFIG (the PostgreSQL 15 to build against; default the system one),
# CARGO_TARGET_DIR (where cargo builds), PKG_OUT_DIR (default <repo>/target/package),
# PKG_MAINTAINER (the Maintainer field, "Name <address>").
# The packages always install into Debian's PostgreSQL 15 paths, whatever prefix PG_CONFIG has.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${PKG_OUT_DIR:-$ROOT/target/package}
STAGE=$TARGET/package-stage
# Debian's PostgreSQL 15 layout (postgresql-15): what the extension package installs into.
DEB_PKGLIBDIR=/usr/lib/postgresql/15/lib
DEB_EXTDIR=/usr/share/postgresql/15/extension
MAINTAINER=${PKG_MAINTAINER:-erp_sync maintainers <erp-sync@example.org>}

log() { printf '[package] %s\n' "$*" >&2; }
die() { printf '[package] error: %s\n' "$*" >&2; exit 1; }

for tool in dpkg-deb dpkg-shlibdeps strip gzip cargo; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/setup.sh installs dpkg-dev; cargo from rustup)"
done
[ -x "$PG_CONFIG" ] || die "PG_CONFIG=$PG_CONFIG is not an executable pg_config"
case "$("$PG_CONFIG" --version)" in
  "PostgreSQL 15."*) ;;
  *) die "PG_CONFIG=$PG_CONFIG is not PostgreSQL 15 ($("$PG_CONFIG" --version))" ;;
esac

ARCH=$(dpkg --print-architecture)
crate_version() { local id; id=$(cargo pkgid -p "$1"); echo "${id##*[#@]}"; }
SIDECAR_VERSION=$(crate_version sidecar)
EXT_VERSION=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" pg_ext/erp_sync.control)
# pgrx fills @CARGO_VERSION@ with the pg_ext crate's version.
[ "$EXT_VERSION" = "@CARGO_VERSION@" ] && EXT_VERSION=$(crate_version pg_ext)
[[ $EXT_VERSION =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "cannot read the extension version (got '$EXT_VERSION')"
[[ $SIDECAR_VERSION =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "cannot read the sidecar version (got '$SIDECAR_VERSION')"
EXT_PKG=postgresql-15-erp-sync
SIDECAR_PKG=erp-sync

# ---------------------------------------------------------------------------------------------
log "building the extension (cargo pgrx package, release, PG_CONFIG=$PG_CONFIG)"
rm -rf "$STAGE"
mkdir -p "$STAGE" "$OUT"
(cd pg_ext && cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$STAGE/pgrx")
log "building erp-sync (cargo build --release)"
cargo build --release --locked -p sidecar --bin erp-sync
BIN=$TARGET/release/erp-sync
[ -x "$BIN" ] || die "no $BIN after the build"

# Runtime library dependencies, as dpkg-shlibdeps computes them for real Debian packages. It wants
# a debian/control next to it; the server's own symbols (the extension's) are resolved at load time.
shlibs_depends() {
  local dir; dir=$(mktemp -d "$STAGE/shlibs.XXXXXX")
  mkdir -p "$dir/debian"
  printf 'Source: erp-sync\n\nPackage: erp-sync\nArchitecture: any\n' >"$dir/debian/control"
  (cd "$dir" && dpkg-shlibdeps -O --ignore-missing-info "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
  rm -rf "$dir"
}

# md5sums, control, the .deb; prints the file name.
build_deb() {
  local tree=$1 name=$2 version=$3 deb
  (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$tree/DEBIAN/md5sums"
  printf 'Installed-Size: %s\n' "$(du -sk --exclude=DEBIAN "$tree" | cut -f1)" >>"$tree/DEBIAN/control"
  deb=$OUT/${name}_${version}_${ARCH}.deb
  rm -f "$OUT/${name}"_*.deb
  dpkg-deb --build --root-owner-group -Zxz "$tree" "$deb" >/dev/null
  echo "$deb"
}

doc_files() {   # copyright + changelog, as every Debian package carries them
  local tree=$1 name=$2 version=$3 doc
  doc=$tree/usr/share/doc/$name
  local year; year=$(git log -1 --format=%cd --date=format:%Y 2>/dev/null || date +%Y)
  install -d -m 755 "$doc"
  cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: erp_sync

Files: *
Copyright: $year erp_sync contributors
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 and associated documentation files (the "Software"), to deal in the Software without
 restriction, including without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
 BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
 NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
 DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
EOF
  local date; date=$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
  printf '%s (%s) unstable; urgency=medium\n\n  * Built from %s by scripts/package.sh.\n\n -- %s  %s\n' \
    "$name" "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree')" "$MAINTAINER" "$date" \
    | gzip -9n >"$doc/changelog.gz"
  chmod 644 "$doc/copyright" "$doc/changelog.gz"
}

# ---------------------------------------------------------------------------------------------
log "staging $EXT_PKG $EXT_VERSION"
ext=$STAGE/$EXT_PKG
install -d -m 755 "$ext/DEBIAN" "$ext$DEB_PKGLIBDIR" "$ext$DEB_EXTDIR"
# cargo pgrx package writes under PG_CONFIG's own prefix (…/usr/lib/postgresql/15/lib, …/extension);
# take the files from wherever that is and put them at Debian's paths.
raw_lib=$STAGE/pgrx$("$PG_CONFIG" --pkglibdir)
raw_ext=$STAGE/pgrx$("$PG_CONFIG" --sharedir)/extension
[ -f "$raw_lib/erp_sync.so" ] || die "cargo pgrx package produced no $raw_lib/erp_sync.so"
[ -f "$raw_ext/erp_sync.control" ] || die "cargo pgrx package produced no $raw_ext/erp_sync.control"
[ -f "$raw_ext/erp_sync--$EXT_VERSION.sql" ] || die "cargo pgrx package produced no erp_sync--$EXT_VERSION.sql"
install -m 644 "$raw_lib/erp_sync.so" "$ext$DEB_PKGLIBDIR/"
strip --strip-unneeded "$ext$DEB_PKGLIBDIR/erp_sync.so"
install -m 644 "$raw_ext"/erp_sync* "$ext$DEB_EXTDIR/"
# Upgrade paths (pgrx copies pg_ext/sql/erp_sync--A--B.sql; make sure of it) and released versions.
for f in pg_ext/sql/erp_sync--*--*.sql pg_ext/sql/released/erp_sync--*.sql; do
  [ -f "$f" ] && install -m 644 "$f" "$ext$DEB_EXTDIR/"
done
doc_files "$ext" "$EXT_PKG" "$EXT_VERSION"
ext_depends=$(shlibs_depends -e"$ext$DEB_PKGLIBDIR/erp_sync.so")
cat >"$ext/DEBIAN/control" <<EOF
Package: $EXT_PKG
Version: $EXT_VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Section: database
Priority: optional
Depends: postgresql-15${ext_depends:+, $ext_depends}
Description: erp_sync extension for PostgreSQL 15 (WeChat platform to Zhibang ERP)
 CREATE EXTENSION erp_sync adds the admission and mapping rules as SQL
 functions, a capture trigger (erp_sync.track()) that turns INSERT/UPDATE on
 the platform's tables into rows of a transactional outbox, and status views.
 The erp-sync daemon drains the outbox into the ERP. Carries the install
 scripts of released versions and the upgrade paths, so ALTER EXTENSION
 erp_sync UPDATE works. No shared_preload_libraries needed.
EOF
ext_deb=$(build_deb "$ext" "$EXT_PKG" "$EXT_VERSION")

# ---------------------------------------------------------------------------------------------
log "staging $SIDECAR_PKG $SIDECAR_VERSION"
sc=$STAGE/$SIDECAR_PKG
install -d -m 755 "$sc/DEBIAN" "$sc/usr/bin" "$sc/etc/erp-sync" "$sc/lib/systemd/system"
install -m 755 "$BIN" "$sc/usr/bin/erp-sync"
strip --strip-unneeded "$sc/usr/bin/erp-sync"
{
  cat <<'EOF'
# /etc/erp-sync/erp-sync.toml: the configuration of erp-sync.service
# (ExecStart=/usr/bin/erp-sync run --config /etc/erp-sync/erp-sync.toml).
# Credentials do not belong here: put them in /etc/erp-sync/env (ERP_SYNC_ERP_PASSWORD, ...) or in
# files named by erp.password_file / database.password_file. Set at least database.url,
# erp.base_url, erp.username and erp.customer_category (`erp-sync login --fields` lists the ids);
# `erp-sync check-config --config /etc/erp-sync/erp-sync.toml` names whatever is still missing.
#
EOF
  cat sidecar/erp-sync.example.toml
} >"$sc/etc/erp-sync/erp-sync.toml"
cat >"$sc/etc/erp-sync/env" <<'EOF'
# /etc/erp-sync/env: environment of erp-sync.service (systemd EnvironmentFile=, one KEY=value a
# line, no quotes needed). Mode 0640 root:erp-sync, because this is where credentials go.
# Every ERP_SYNC_<SECTION>_<KEY> overrides that key of /etc/erp-sync/erp-sync.toml; a name that is
# no key is an error. The daemon never logs these values; `erp-sync check-config` masks them.
# Leave a line commented rather than empty: ERP_SYNC_ERP_PASSWORD= would set an empty password.
#
# Database: a login role granted only erp_sync_worker (README, "Install from packages").
#ERP_SYNC_DATABASE_URL=postgres://erp_sync_sidecar@localhost/platform
#ERP_SYNC_DATABASE_PASSWORD_FILE=/etc/erp-sync/db-password
#
# The ERP account of the sidecars (their own account: the ERP keeps one session per user).
#ERP_SYNC_ERP_BASE_URL=http://erp.example.com:46088
#ERP_SYNC_ERP_USERNAME=api_user
#ERP_SYNC_ERP_PASSWORD=change-me
#ERP_SYNC_ERP_PASSWORD_FILE=/etc/erp-sync/erp-password
#ERP_SYNC_ERP_CUSTOMER_CATEGORY=11
#
# The operator page's actions (sync now, retry, ...): a token of at least 16 characters.
#ERP_SYNC_HTTP_ADMIN_TOKEN=change-me-to-a-long-random-token
EOF
chmod 640 "$sc/etc/erp-sync/erp-sync.toml" "$sc/etc/erp-sync/env"   # group set by postinst
cat >"$sc/lib/systemd/system/erp-sync.service" <<'EOF'
[Unit]
Description=erp-sync: WeChat middle platform to Zhibang ERP sync daemon
Documentation=file:///usr/share/doc/erp-sync/README.md
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
Type=simple
User=erp-sync
Group=erp-sync
EnvironmentFile=/etc/erp-sync/env
ExecStart=/usr/bin/erp-sync run --config /etc/erp-sync/erp-sync.toml
# SIGTERM: in-flight rows get engine.shutdown_deadline_ms (10 s) before they are released.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=5
# Exit 2 is a configuration error: restarting does not help (journalctl -u erp-sync says which key).
RestartPreventExitStatus=2
UMask=0027
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
CapabilityBoundingSet=

[Install]
WantedBy=multi-user.target
EOF
chmod 644 "$sc/lib/systemd/system/erp-sync.service"
printf '/etc/erp-sync/erp-sync.toml\n/etc/erp-sync/env\n' >"$sc/DEBIAN/conffiles"

cat >"$sc/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# erp-sync postinst: the system user, the credentials' group, systemd's view of the unit.
set -e
if [ "$1" = configure ]; then
  if ! getent passwd erp-sync >/dev/null; then
    if command -v adduser >/dev/null 2>&1; then
      if getent group erp-sync >/dev/null; then group_opt="--ingroup erp-sync"; else group_opt="--group"; fi
      # shellcheck disable=SC2086
      adduser --system --quiet $group_opt --no-create-home --home /nonexistent \
        --shell /usr/sbin/nologin --gecos "erp-sync daemon" erp-sync
    else
      getent group erp-sync >/dev/null || groupadd --system erp-sync
      useradd --system --gid erp-sync --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "erp-sync daemon" erp-sync
    fi
  fi
  # The daemon reads its config and env as group erp-sync; nobody else may (credentials).
  for f in /etc/erp-sync/env /etc/erp-sync/erp-sync.toml; do
    if [ -e "$f" ] && ! dpkg-statoverride --list "$f" >/dev/null 2>&1; then
      chown root:erp-sync "$f"
      chmod 0640 "$f"
    fi
  done
  # Not enabled or started here: it needs a database URL, ERP credentials and customer_category
  # first (systemctl enable --now erp-sync). An upgrade restarts a running unit.
  if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || true
    if [ -n "$2" ] && command -v deb-systemd-invoke >/dev/null 2>&1; then
      deb-systemd-invoke try-restart erp-sync.service >/dev/null 2>&1 || true
    fi
  fi
fi
exit 0
EOF
cat >"$sc/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# erp-sync prerm: stop the unit on removal, when systemd runs (an upgrade restarts it in postinst).
set -e
case "$1" in
  remove|deconfigure)
    if [ -d /run/systemd/system ] && command -v deb-systemd-invoke >/dev/null 2>&1; then
      deb-systemd-invoke stop erp-sync.service >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
EOF
cat >"$sc/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# erp-sync postrm. purge: dpkg deletes the conffiles; this removes the unit's enablement links.
# The system user erp-sync is kept (Debian practice: files elsewhere may still belong to its uid);
# `deluser --system erp-sync` removes it.
set -e
case "$1" in
  purge)
    rm -f /etc/systemd/system/multi-user.target.wants/erp-sync.service
    rmdir /etc/erp-sync 2>/dev/null || true
    ;;
esac
case "$1" in
  remove|purge)
    if [ -d /run/systemd/system ]; then
      systemctl --system daemon-reload >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
EOF
chmod 755 "$sc/DEBIAN/postinst" "$sc/DEBIAN/prerm" "$sc/DEBIAN/postrm"
install -d -m 755 "$sc/usr/share/doc/$SIDECAR_PKG" "$sc/usr/share/lintian/overrides" "$sc/usr/share/man/man1"
# erp-sync(1), from the binary's own --help texts (no help2man needed).
man_text() {   # roff-escape: backslashes, and a leading dot or quote
  sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\&\1/"
}
{
  printf '.TH ERP-SYNC 1 "%s" "erp-sync %s" "User Commands"\n' "$(date -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" +%Y-%m-%d)" "$SIDECAR_VERSION"
  printf '.SH NAME\nerp-sync \\- sync the erp_sync outbox into Zhibang ERP\n'
  printf '.SH SYNOPSIS\n.B erp-sync\n[\\fB\\-\\-config\\fR \\fIFILE\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]\n'
  printf '.SH DESCRIPTION\n.nf\n'; "$BIN" --help | man_text; printf '.fi\n'
  for c in run sim login check-config pull reconcile; do
    printf '.SS %s\n.nf\n' "$c"; "$BIN" "$c" --help | man_text; printf '.fi\n'
  done
  printf '.SH FILES\n.TP\n/etc/erp-sync/erp-sync.toml\nconfiguration of erp-sync.service\n'
  printf '.TP\n/etc/erp-sync/env\nits environment: credentials, ERP_SYNC_<SECTION>_<KEY> overrides\n'
  printf '.SH SEE ALSO\n/usr/share/doc/erp-sync/README.md\n'
} | gzip -9n >"$sc/usr/share/man/man1/erp-sync.1.gz"
chmod 644 "$sc/usr/share/man/man1/erp-sync.1.gz"
# The config and env files hold credentials: 0640 root:erp-sync on purpose.
printf '%s: non-standard-file-perm 0640 != 0644 [etc/erp-sync/%s]\n' \
  "$SIDECAR_PKG" env "$SIDECAR_PKG" erp-sync.toml >"$sc/usr/share/lintian/overrides/$SIDECAR_PKG"
chmod 644 "$sc/usr/share/lintian/overrides/$SIDECAR_PKG"
install -m 644 README.md "$sc/usr/share/doc/$SIDECAR_PKG/README.md"
doc_files "$sc" "$SIDECAR_PKG" "$SIDECAR_VERSION"
sc_depends=$(shlibs_depends -e"$sc/usr/bin/erp-sync")
cat >"$sc/DEBIAN/control" <<EOF
Package: $SIDECAR_PKG
Version: $SIDECAR_VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Section: database
Priority: optional
Depends: ${sc_depends:-libc6}, adduser
Recommends: $EXT_PKG
Description: sync daemon from the erp_sync outbox to Zhibang ERP
 Drains the erp_sync extension's outbox into Zhibang International ERP
 (per-contact order, exact khid lookups before every create, read-back of
 every save, backoff, rate and concurrency limits) and writes the results
 back. Also pulls and reconciles ERP customers on a schedule and serves
 /healthz, /metrics and a status page on loopback. "erp-sync sim" is a
 vendor-strict ERP simulator for staging.
 .
 The systemd unit erp-sync.service runs as the system user erp-sync with
 /etc/erp-sync/erp-sync.toml and the credentials in /etc/erp-sync/env; it
 is not enabled by the package.
EOF
sc_deb=$(build_deb "$sc" "$SIDECAR_PKG" "$SIDECAR_VERSION")

for deb in "$ext_deb" "$sc_deb"; do
  printf '%s\t%s bytes\n' "${deb#"$ROOT"/}" "$(stat -c %s "$deb")"
done
