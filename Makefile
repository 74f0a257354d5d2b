# erp_sync — every target installs what it is missing (scripts/setup.sh is idempotent).
#
#   make demo    throwaway cluster + extension + reference schema + ERP simulator + sidecar + sample data
#   make test    the whole suite (unit, pgrx, SQL-file, end-to-end); .ci/run calls this
#   make bench   long measurements → target/bench/report.md (never part of make test)
#   make chaos   reliability suite (long version)
#   make package target/package/*.deb: the extension for PostgreSQL 15 and the erp-sync daemon
#   make test-package  dpkg -i both packages, CREATE EXTENSION, a short sync, dpkg --purge (in make test)

SHELL      := /bin/bash
PG_CONFIG  ?= /usr/lib/postgresql/15/bin/pg_config
PGRX_DATA  ?= /tmp/erp_sync-pgrx-data
export CARGO_TERM_COLOR ?= never

.PHONY: setup build install-ext test test-unit test-pgrx test-sql test-e2e test-package package demo bench chaos

setup:
	@scripts/setup.sh

build: setup
	cargo build -p sidecar --bins

# Installs the extension (erp_sync.control, SQL, .so) into the system PostgreSQL 15, with the
# install scripts of released versions (pg_ext/sql/released/, scripts/released-sql.sh) so that
# `CREATE EXTENSION erp_sync VERSION '0.1.0'` + `ALTER EXTENSION erp_sync UPDATE` can be tested.
install-ext: setup
	cd pg_ext && cargo pgrx install --pg-config $(PG_CONFIG)
	install -m 644 pg_ext/sql/released/erp_sync--*.sql "$$($(PG_CONFIG) --sharedir)/extension/"

test-unit: setup
	cargo test -p erp_sync_rules -p sidecar

test-pgrx: setup
	mkdir -p $(PGRX_DATA) && chown postgres: $(PGRX_DATA)
	cargo pgrx test pg15 -p pg_ext --runas postgres --pgdata $(PGRX_DATA)

# pgrx test installs a build with test-only objects; install the plain extension afterwards.
test-sql: install-ext
	scripts/test-sql.sh

test-e2e: build install-ext
	cargo test -p e2e --no-fail-fast -- --test-threads=2

# Debian packages (scripts/package.sh): release builds of the extension (cargo pgrx package) and of
# erp-sync, staged and built with dpkg-deb → target/package/.
package: setup
	PG_CONFIG=$(PG_CONFIG) scripts/package.sh

# dpkg -i both packages, CREATE EXTENSION + a short sync with the installed binary, dpkg --purge.
# Last in `make test`: it leaves the extension files of install-ext as it found them. The
# extension goes where PG_CONFIG's sharedir is (the system PostgreSQL unless PG_CONFIG says otherwise).
test-package: package
	PG_CONFIG=$(PG_CONFIG) scripts/test-package.sh

test: test-unit test-pgrx test-sql test-e2e
	$(MAKE) test-package

demo: build install-ext
	@scripts/demo.sh

bench: setup
	@scripts/bench.sh

chaos: setup
	@scripts/chaos.sh
