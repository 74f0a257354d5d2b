#!/usr/bin/env python3
"""make bench: measurements reported as ratios against baselines measured in the same run.

Writes target/bench/report.md and target/bench/report.json. Never part of `make test`.
Sections (each runs in a fresh throwaway cluster started by scripts/pgcluster.sh):
  write_path   pgbench TPS of single-row INSERT / UPDATE of a tracked column / 100-row INSERT on
               mp.contacts, one database per variant in one cluster:
               (a) no trigger (every ratio's denominator);
               (b) erp_sync.track, measured twice: sidecar idle (one NOTIFY per transaction) and busy;
               (c) a hand-written PL/pgSQL outbox trigger: admission regexes, to_jsonb(NEW), NOTIFY
                   (bench/plain_trigger.sql);
               (d) PgQ (Debian's postgresql-15-pgq3, the queue behind Londiste): the C row trigger
                   pgq.logutriga('erp_sync_bench') URL-encodes each row into the queue's event table,
                   no ticker (bench/pgq_trigger.sql) -- what a mature C capture costs the writer;
               (e) the floor: one AFTER ... FOR EACH STATEMENT trigger per event with a transition
                   table, appending ONE row (txid, array of the changed ids) per statement to an
                   unindexed table (bench/floor_trigger.sql) -- the lower bound of any capture;
               (f) erp_sync.track with capture.mode = log: the capture log (one narrow row per
                   statement, expanded later by the sidecar's claim; no sidecar runs here, as for
                   (d) and (e) nothing consumes the log), idle and busy like (b).
               Reported: median TPS, ratios to (a), b/c, and issue 15's targets as measurements
               (b/e and f/e >= 0.9, b/d and f/d >= 1.3 on single-row and 100-row INSERT; no exit
               code).
               Method (issue 15's): release build, pgbench -c 4 (-j 2), BENCH_SECONDS (8) s x
               BENCH_ROUNDS (3) rounds, each round runs the variants one after another (a, b idle,
               b busy, c, d, e, f idle, f busy), median of the rounds; fsync and synchronous_commit on
               (BENCH_WP_FSYNC=off to change). BENCH_SECONDS/BENCH_ROUNDS apply to every variant alike
               (they are interleaved, so they share them); for short runs while developing,
               BENCH_WP_VARIANTS (e.g. a,b,e; (a) is always run) and BENCH_WP_WORKLOADS (e.g.
               insert_1,insert_100) pick a subset. Time: 8 runs x 3 workloads x rounds x seconds of
               pgbench (576 s at the defaults) plus ~20 s of setup. Without the pgq extension the
               report says so and (d) is left out.
  latency      COMMIT of a contact insert -> first ERP request arriving at the simulator, idle
               sidecar, p50/p99 (BENCH_LATENCY_SAMPLES, default 1000).
  throughput   contacts fully synced per second (release sidecar, real simulator): zero latency
               (BENCH_TP_CONTACTS) and 50 ms per call at concurrency 5 (BENCH_TP50_CONTACTS) with the
               ratio to concurrency / (calls per contact x latency); plus the spec's own design
               (bench/spec_baseline.py) on the same simulator at 50 ms (BENCH_SPEC_CONTACTS).
  scale        drain rate with 10,000 vs 1,000,000 finished rows in outbox and sync_log
               (BENCH_SCALE_SMALL/BENCH_SCALE_BIG/BENCH_SCALE_CONTACTS), peak RSS of the sidecar while
               draining BENCH_RSS_ROWS pending rows, CPU per synced contact.
Environment of the sync sections (not write_path): clusters run with PG_FSYNC=off like the e2e tests (BENCH_FSYNC=on
to change), sidecar log level RUST_LOG=info (its default), rate limit off, concurrency 5.
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sync_sections  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
OUT = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "bench"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Cluster:
    def __init__(self, fsync=None, sync_commit=None):
        self.dir = tempfile.mkdtemp(prefix="erp_sync_bench")
        self.port = free_port()
        env = dict(os.environ)
        if fsync is not None:
            env["PG_FSYNC"] = fsync
        if sync_commit is not None:
            env["PG_SYNC_COMMIT"] = sync_commit
        subprocess.run([ROOT / "scripts/pgcluster.sh", "start", self.dir, str(self.port)], check=True, env=env)

    def psql(self, db, sql=None, file=None):
        cmd = [PGBIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
               "-p", str(self.port), "-U", "postgres", "-d", db, "-At"]
        if sql is not None:
            cmd += ["-c", sql]
        if file is not None:
            cmd += ["-f", str(file)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"psql -d {db} {sql or file} failed (exit {done.returncode}):\n{done.stderr}")
        return done.stdout.strip()

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self):
        subprocess.run([ROOT / "scripts/pgcluster.sh", "stop", self.dir, "immediate"], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def pgbench(cluster, db, script_text, seconds, clients):
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script_text)
        path = f.name
    os.chmod(path, 0o644)
    cmd = [PGBIN / "pgbench", "-n", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
           "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), "-f", path, db]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    os.unlink(path)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if not m:
        raise RuntimeError("cannot parse pgbench output:\n" + out)
    return float(m.group(1))


INSERT_ONE = """\\set n random(1, 99999999)
INSERT INTO mp.contacts (type, name, company, phone, phone_verified, score, list_status, wechat_id)
VALUES ('personal', '张三丰' || :n, NULL, '138' || lpad((:n % 100000000)::text, 8, '0'), true, 75, 'white', 'wx_' || :n);
"""

UPDATE_ONE = """\\set id random(1, 20000)
UPDATE mp.contacts SET score = 60 + (:id + score) % 40, updated_at = now() WHERE id = :id;
"""

INSERT_100 = """\\set n random(1, 99999999)
INSERT INTO mp.contacts (type, name, company, phone, phone_verified, score, list_status, wechat_id)
SELECT 'personal', '张三丰' || (:n + g), NULL, '139' || lpad(((:n + g) % 100000000)::text, 8, '0'), true, 75, 'white', 'wx_' || g
FROM generate_series(1, 100) g;
"""


# The write-path variants: (a)-(c) as before, (d) PgQ and (e) the floor (issue 15). Each has a
# database of its own in one cluster; (b) is measured twice, with the sidecar idle and busy.
VARIANTS = {
    "a": "no trigger",
    "b": "erp_sync.track",
    "c": "PL/pgSQL outbox + NOTIFY (bench/plain_trigger.sql)",
    "d": "PgQ pgq.logutriga, C (bench/pgq_trigger.sql)",
    "e": "floor: statement trigger, one unindexed row of ids per statement (bench/floor_trigger.sql)",
    "f": "erp_sync.track, capture.mode = log (the capture log)",
}
# Variants measured with the sidecar idle and busy (the trigger reads erp_sync.workers).
SIDECAR_STATES = {"b": ["b_idle", "b_busy"], "f": ["f_idle", "f_busy"]}
WORKLOADS = {"insert_1": INSERT_ONE, "update_1": UPDATE_ONE, "insert_100": INSERT_100}


def csv_env(name, default, allowed):
    vals = [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]
    bad = [v for v in vals if v not in allowed]
    if bad or not vals:
        raise SystemExit(f"{name}={os.environ.get(name)!r}: expected a comma-separated subset of "
                         f"{','.join(allowed)}")
    return vals


def setup_variant(cluster, db, variant):
    cluster.psql("postgres", f"CREATE DATABASE {db}")
    cluster.psql(db, "CREATE EXTENSION erp_sync")
    cluster.psql(db, file=ROOT / "sql/middle_platform.sql")
    if variant not in ("b", "f"):
        cluster.psql(db, "SELECT erp_sync.untrack('mp.contacts')")
    if variant == "f":
        cluster.psql(db, "INSERT INTO erp_sync.settings (key, value) VALUES ('capture.mode', 'log')")
    if variant == "c":
        cluster.psql(db, file=ROOT / "bench/plain_trigger.sql")
    if variant == "d":
        cluster.psql(db, file=ROOT / "bench/pgq_trigger.sql")
    if variant == "e":
        cluster.psql(db, file=ROOT / "bench/floor_trigger.sql")
    # rows for the UPDATE workload
    cluster.psql(db, """INSERT INTO mp.contacts (type, name, phone, phone_verified, score, list_status)
                        SELECT 'personal', '李四光' || g, '137' || lpad(g::text, 8, '0'), true, 70, 'white'
                        FROM generate_series(1, 20000) g""")
    cluster.psql(db, "VACUUM ANALYZE")


def pgq_unavailable(cluster):
    """None when the pgq extension can be created in this cluster, else the reason it cannot."""
    if cluster.psql("postgres", "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgq'") == "0":
        return (f"PgQ not installed: no pgq extension in {PGBIN.parent} (Debian: apt-get install "
                "postgresql-15-pgq3, done by scripts/setup.sh; scripts/bench.sh copies its files into a "
                "relocated PostgreSQL named by PG_CONFIG)")
    return None


def set_worker_idle(cluster, db, idle):
    """Simulates the sidecar's state as the capture trigger sees it (erp_sync.workers)."""
    cluster.psql(db, "DELETE FROM erp_sync.workers")
    if idle is not None:
        cluster.psql(db, f"INSERT INTO erp_sync.workers (worker_id, idle, heartbeat_at, started_at) "
                         f"VALUES ('bench', {str(idle).lower()}, now() + interval '1 day', now())")


def ratio(med, x, y):
    return med[x] / med[y] if x in med and y in med and med[y] else None


def write_path(args):
    # The method: fsync (and synchronous_commit) on, whatever PG_FSYNC the caller exported.
    fsync = os.environ.get("BENCH_WP_FSYNC", "on")
    cluster = Cluster(fsync=fsync, sync_commit=fsync)
    try:
        wanted = csv_env("BENCH_WP_VARIANTS", ",".join(VARIANTS), list(VARIANTS))
        if "a" not in wanted:
            wanted.insert(0, "a")   # every ratio is against (a) of the same run
        workloads = csv_env("BENCH_WP_WORKLOADS", ",".join(WORKLOADS), list(WORKLOADS))
        skipped = {}
        if "d" in wanted:
            why = pgq_unavailable(cluster)
            if why:
                skipped["d"] = why
        variants = []
        for v in VARIANTS:
            if v not in wanted or v in skipped:
                continue
            try:
                setup_variant(cluster, f"bench_{v}", v)
                variants.append(v)
            except subprocess.CalledProcessError as e:
                if v != "d":
                    raise
                skipped["d"] = "PgQ setup failed: " + (e.stderr or "").strip()
        for v, why in skipped.items():
            print(f"[write_path] variant ({v}) skipped: {why}", file=sys.stderr)
        # (b) and (f) twice per round: idle sidecar (one NOTIFY per transaction), busy sidecar (none)
        runs = [(k, v) for v in variants for k in SIDECAR_STATES.get(v, [v])]
        results = {}
        for wname in workloads:
            script = WORKLOADS[wname]
            samples = {k: [] for k, _ in runs}
            for _ in range(args.rounds):
                # interleave the variants so machine noise hits them alike
                for key, v in runs:
                    if key.endswith("_idle"):
                        set_worker_idle(cluster, f"bench_{v}", True)
                    elif key.endswith("_busy"):
                        set_worker_idle(cluster, f"bench_{v}", False)
                    samples[key].append(pgbench(cluster, f"bench_{v}", script, args.seconds, args.clients))
            med = {k: statistics.median(v) for k, v in samples.items()}
            r = {"tps_median": med, "samples": samples}
            for x in ("b_idle", "b_busy", "c", "d", "e", "f_idle", "f_busy"):
                r[f"ratio_{x}_over_a"] = ratio(med, x, "a")
            for b in ("b_idle", "b_busy", "f_idle", "f_busy"):
                for y in ("c", "d", "e"):
                    r[f"ratio_{b}_over_{y}"] = ratio(med, b, y)
            for state in ("idle", "busy"):
                r[f"ratio_f_{state}_over_b_{state}"] = ratio(med, f"f_{state}", f"b_{state}")
            results[wname] = r
            print(f"[write_path] {wname}: " + ", ".join(f"{k}={v:.0f} tps" for k, v in med.items()),
                  file=sys.stderr)
        results["params"] = {"clients": args.clients, "threads": min(args.clients, 2),
                             "seconds": args.seconds, "rounds": args.rounds, "fsync": fsync,
                             "synchronous_commit": fsync, "variants": variants, "workloads": workloads}
        results["variants"] = {v: VARIANTS[v] for v in variants}
        results["skipped"] = skipped
        # What each capture wrote, to show it fired (counts over all workloads and rounds).
        written = {}
        if "b" in variants:
            written["b_outbox_rows"] = int(cluster.psql("bench_b", "SELECT count(*) FROM erp_sync.outbox"))
        if "c" in variants:
            written["c_plain_outbox_rows"] = int(cluster.psql("bench_c", "SELECT count(*) FROM mp.plain_outbox"))
        if "d" in variants:
            written["d_pgq_events"] = int(cluster.psql("bench_d", "SELECT count(*) FROM pgq.event_template"))
        if "e" in variants:
            rows, ids = cluster.psql("bench_e", "SELECT count(*), coalesce(sum(cardinality(ids)), 0) "
                                                "FROM mp.floor_log").split("|")
            written["e_floor_rows"], written["e_floor_ids"] = int(rows), int(ids)
        if "f" in variants:
            rows, keys = cluster.psql("bench_f", "SELECT count(*), coalesce(sum(cardinality(keys)), 0) "
                                                 "FROM erp_sync.capture_log").split("|")
            written["f_capture_log_rows"], written["f_capture_log_keys"] = int(rows), int(keys)
            written["f_outbox_rows"] = int(cluster.psql("bench_f", "SELECT count(*) FROM erp_sync.outbox"))
        results["rows_written"] = written
        if "b_outbox_rows" in written:
            results["outbox_rows_written_b"] = written["b_outbox_rows"]
        return results
    finally:
        cluster.stop()


def fmt_tps(m, k):
    return f"{m[k]:,.0f}" if k in m else "—"


def fmt_ratio(x):
    return f"{x:.2f}" if x is not None else "—"


def render_write_path(wp, params):
    p = wp.get("params", params)
    lines = ["## 1. Write-path cost of capture (pgbench, "
             f"{p['clients']} clients, {p['seconds']} s × "
             f"{p['rounds']} interleaved rounds, median TPS, fsync {p.get('fsync', 'on')})", "",
             "| workload | (a) no trigger | (b) erp_sync idle sidecar | (b) busy sidecar | (c) PL/pgSQL + NOTIFY | b/a idle | b/a busy | b/c idle | b/c busy |",
             "|---|---|---|---|---|---|---|---|---|"]
    ws = [w for w in ("insert_1", "update_1", "insert_100") if w in wp]
    for w in ws:
        r = wp[w]
        m = r["tps_median"]
        lines.append(f"| {w} | {fmt_tps(m, 'a')} | {fmt_tps(m, 'b_idle')} | {fmt_tps(m, 'b_busy')} | "
                     f"{fmt_tps(m, 'c')} | {fmt_ratio(r.get('ratio_b_idle_over_a'))} | "
                     f"{fmt_ratio(r.get('ratio_b_busy_over_a'))} | {fmt_ratio(r.get('ratio_b_idle_over_c'))} | "
                     f"{fmt_ratio(r.get('ratio_b_busy_over_c'))} |")
    lines += ["", "Targets: b/a ≥ 0.85, b/c ≥ 1.6. TPS of insert_100 counts transactions of 100 rows.",
              "Idle/busy is the sidecar state the trigger reads from erp_sync.workers (idle ⇒ one NOTIFY per transaction).", ""]
    if "params" not in wp or "variants" not in wp:
        return lines   # a report.json written before the PgQ and floor variants existed
    lines += ["### Against PgQ and the floor (issue 15's layout: median TPS, ratio to (a) in brackets)", "",
              "| workload | (a) no trigger | (b) erp_sync.track idle | (b) busy | (c) PL/pgSQL outbox + NOTIFY | (d) PgQ `pgq.logutriga` (C) | (e) floor: statement trigger, one unindexed row of ids per statement | (f) erp_sync, capture log, idle | (f) busy |",
              "|---|---|---|---|---|---|---|---|---|"]
    for w in ws:
        r = wp[w]
        m = r["tps_median"]

        def cell(k):
            if k not in m:
                return "—"
            return fmt_tps(m, k) + ("" if k == "a" else f" ({fmt_ratio(r.get(f'ratio_{k}_over_a'))})")
        lines.append(f"| {w} | " + " | ".join(cell(k) for k in ("a", "b_idle", "b_busy", "c", "d", "e", "f_idle", "f_busy")) + " |")
    lines += ["", "Spread of the rounds, max/min TPS per variant: how much the shared machine moved during this "
              "run; differences between variants smaller than this are not resolved by it.", "",
              "| workload | (a) | (b) idle | (b) busy | (c) | (d) | (e) | (f) idle | (f) busy |", "|---|---|---|---|---|---|---|---|---|"]
    for w in ws:
        smp = wp[w].get("samples", {})
        lines.append(f"| {w} | " + " | ".join(
            fmt_ratio(max(smp[k]) / min(smp[k])) if smp.get(k) and min(smp[k]) > 0 else "—"
            for k in ("a", "b_idle", "b_busy", "c", "d", "e", "f_idle", "f_busy")) + " |")
    lines += ["", "Issue 15's targets, as measured in this run (a measurement, not a pass/fail): "
              "erp_sync ≥ 0.9 × the floor (/e) and ≥ 1.3 × PgQ (/d), on single-row and 100-row INSERT; "
              "(b) direct capture, (f) the capture log.", "",
              "| workload | b/e idle | b/e busy | f/e idle | f/e busy | target /e | b/d idle | b/d busy | f/d idle | f/d busy | target /d | f/b idle | f/b busy |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in ws:
        r = wp[w]
        g = lambda k: fmt_ratio(r.get(k))  # noqa: E731
        lines.append(f"| {w} | {g('ratio_b_idle_over_e')} | {g('ratio_b_busy_over_e')} | {g('ratio_f_idle_over_e')} | "
                     f"{g('ratio_f_busy_over_e')} | {'0.9' if w != 'update_1' else '—'} | {g('ratio_b_idle_over_d')} | "
                     f"{g('ratio_b_busy_over_d')} | {g('ratio_f_idle_over_d')} | {g('ratio_f_busy_over_d')} | "
                     f"{'1.3' if w != 'update_1' else '—'} | {g('ratio_f_idle_over_b_idle')} | {g('ratio_f_busy_over_b_busy')} |")
    lines.append("")
    for v, why in wp.get("skipped", {}).items():
        lines += [f"**Variant ({v}) not measured:** {why}", ""]
    unselected = [v for v in VARIANTS if v not in p["variants"] and v not in wp.get("skipped", {})]
    if unselected:
        lines += [f"Variants not selected in this run (BENCH_WP_VARIANTS): {', '.join(unselected)}.", ""]
    wr = wp.get("rows_written", {})
    if wr:
        lines += ["Rows the captures wrote over the whole section (they fired): "
                  + ", ".join(f"{k} {v:,}" for k, v in wr.items()) + ".", ""]
    return lines


def render(report):
    lines = ["# erp_sync benchmark report", "",
             "All figures from one run on a shared machine: compare the ratios, not absolute times.", "",
             f"Machine: {os.cpu_count()} cores; run at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.", ""]
    wp = report.get("write_path")
    if wp:
        lines += render_write_path(wp, report["params"])
    lines += sync_sections.render(report)
    return "\n".join(lines)


def sync_cluster():
    return Cluster(fsync=os.environ.get("BENCH_FSYNC", "off"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=os.environ.get("BENCH_SECTIONS", "write_path,latency,throughput,scale"))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "8")))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    # Sections not run now keep their figures from the last run (several people may run sections
    # separately); BENCH_FRESH=1 starts an empty report.
    report = {}
    if os.environ.get("BENCH_FRESH") != "1" and (OUT / "report.json").exists():
        try:
            report = json.loads((OUT / "report.json").read_text())
        except ValueError:
            report = {}
    report["params"] = vars(args)
    for section in args.sections.split(","):
        run = {"write_path": write_path,
               "latency": lambda a: sync_sections.latency(sync_cluster, a),
               "throughput": lambda a: sync_sections.throughput(sync_cluster, a),
               "scale": lambda a: sync_sections.scale(sync_cluster, a)}[section]
        report[section] = run(args)
        # Written after every section, so a long run that fails later keeps what it measured.
        (OUT / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (OUT / "report.md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
