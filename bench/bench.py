#!/usr/bin/env python3
"""make bench: measurements reported as ratios against baselines measured in the same run.

Writes target/bench/report.md and target/bench/report.json. Never part of `make test`.
Sections (each runs in a fresh throwaway cluster started by scripts/pgcluster.sh):
  write_path   pgbench TPS of single-row INSERT / UPDATE and 100-row INSERT on mp.contacts:
               (a) no trigger, (b) erp_sync.track, (c) a hand-written PL/pgSQL outbox trigger.
  latency      COMMIT of a contact insert -> first ERP request arriving at the simulator, idle
               sidecar, p50/p99 (BENCH_LATENCY_SAMPLES, default 1000).
  throughput   contacts fully synced per second (release sidecar, real simulator): zero latency
               (BENCH_TP_CONTACTS) and 50 ms per call at concurrency 5 (BENCH_TP50_CONTACTS) with the
               ratio to concurrency / (calls per contact x latency); plus the spec's own design
               (bench/spec_baseline.py) on the same simulator at 50 ms (BENCH_SPEC_CONTACTS).
  scale        drain rate with 10,000 vs 1,000,000 finished rows in outbox and sync_log
               (BENCH_SCALE_SMALL/BENCH_SCALE_BIG/BENCH_SCALE_CONTACTS), peak RSS of the sidecar while
               draining BENCH_RSS_ROWS pending rows, CPU per synced contact.
Environment of the sync sections: clusters run with PG_FSYNC=off like the e2e tests (BENCH_FSYNC=on
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
    def __init__(self, fsync=None):
        self.dir = tempfile.mkdtemp(prefix="erp_sync_bench")
        self.port = free_port()
        env = dict(os.environ)
        if fsync is not None:
            env["PG_FSYNC"] = fsync
        subprocess.run([ROOT / "scripts/pgcluster.sh", "start", self.dir, str(self.port)], check=True, env=env)

    def psql(self, db, sql=None, file=None):
        cmd = [PGBIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
               "-p", str(self.port), "-U", "postgres", "-d", db, "-At"]
        if sql is not None:
            cmd += ["-c", sql]
        if file is not None:
            cmd += ["-f", str(file)]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

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


def setup_variant(cluster, db, variant):
    cluster.psql("postgres", f"CREATE DATABASE {db}")
    cluster.psql(db, "CREATE EXTENSION erp_sync")
    cluster.psql(db, file=ROOT / "sql/middle_platform.sql")
    if variant in ("a", "c"):
        cluster.psql(db, "SELECT erp_sync.untrack('mp.contacts')")
    if variant == "c":
        cluster.psql(db, file=ROOT / "bench/plain_trigger.sql")
    # rows for the UPDATE workload
    cluster.psql(db, """INSERT INTO mp.contacts (type, name, phone, phone_verified, score, list_status)
                        SELECT 'personal', '李四光' || g, '137' || lpad(g::text, 8, '0'), true, 70, 'white'
                        FROM generate_series(1, 20000) g""")
    cluster.psql(db, "VACUUM ANALYZE")


def set_worker_idle(cluster, db, idle):
    """Simulates the sidecar's state as the capture trigger sees it (erp_sync.workers)."""
    cluster.psql(db, "DELETE FROM erp_sync.workers")
    if idle is not None:
        cluster.psql(db, f"INSERT INTO erp_sync.workers (worker_id, idle, heartbeat_at, started_at) "
                         f"VALUES ('bench', {str(idle).lower()}, now() + interval '1 day', now())")


def write_path(args):
    cluster = Cluster()
    try:
        variants = {"a": "bench_a", "b": "bench_b", "c": "bench_c"}
        for v, db in variants.items():
            setup_variant(cluster, db, v)
        workloads = {"insert_1": (INSERT_ONE, args.clients), "update_1": (UPDATE_ONE, args.clients),
                     "insert_100": (INSERT_100, args.clients)}
        results = {}
        for wname, (script, clients) in workloads.items():
            samples = {"a": [], "b_idle": [], "b_busy": [], "c": []}
            for _ in range(args.rounds):
                # interleave the variants so machine noise hits them alike
                samples["a"].append(pgbench(cluster, "bench_a", script, args.seconds, clients))
                set_worker_idle(cluster, "bench_b", True)
                samples["b_idle"].append(pgbench(cluster, "bench_b", script, args.seconds, clients))
                set_worker_idle(cluster, "bench_b", False)
                samples["b_busy"].append(pgbench(cluster, "bench_b", script, args.seconds, clients))
                samples["c"].append(pgbench(cluster, "bench_c", script, args.seconds, clients))
            med = {k: statistics.median(v) for k, v in samples.items()}
            results[wname] = {
                "tps_median": med,
                "samples": samples,
                "ratio_b_idle_over_a": med["b_idle"] / med["a"],
                "ratio_b_busy_over_a": med["b_busy"] / med["a"],
                "ratio_b_idle_over_c": med["b_idle"] / med["c"],
                "ratio_b_busy_over_c": med["b_busy"] / med["c"],
            }
            print(f"[write_path] {wname}: " + ", ".join(f"{k}={v:.0f} tps" for k, v in med.items()),
                  file=sys.stderr)
        results["params"] = {"clients": args.clients, "seconds": args.seconds, "rounds": args.rounds}
        outbox = int(cluster.psql("bench_b", "SELECT count(*) FROM erp_sync.outbox"))
        results["outbox_rows_written_b"] = outbox
        return results
    finally:
        cluster.stop()


def render(report):
    lines = ["# erp_sync benchmark report", "",
             "All figures from one run on a shared machine: compare the ratios, not absolute times.", "",
             f"Machine: {os.cpu_count()} cores; run at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.", ""]
    wp = report.get("write_path")
    if wp:
        p = wp.get("params", report["params"])
        lines += ["## 1. Write-path cost of capture (pgbench, "
                  f"{p['clients']} clients, {p['seconds']} s × "
                  f"{p['rounds']} interleaved rounds, median TPS)", "",
                  "| workload | (a) no trigger | (b) erp_sync idle sidecar | (b) busy sidecar | (c) PL/pgSQL + NOTIFY | b/a idle | b/a busy | b/c idle | b/c busy |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for w in ("insert_1", "update_1", "insert_100"):
            r = wp[w]
            m = r["tps_median"]
            lines.append(f"| {w} | {m['a']:.0f} | {m['b_idle']:.0f} | {m['b_busy']:.0f} | {m['c']:.0f} | "
                         f"{r['ratio_b_idle_over_a']:.2f} | {r['ratio_b_busy_over_a']:.2f} | "
                         f"{r['ratio_b_idle_over_c']:.2f} | {r['ratio_b_busy_over_c']:.2f} |")
        lines += ["", "Targets: b/a ≥ 0.85, b/c ≥ 1.6. TPS of insert_100 counts transactions of 100 rows.",
                  "Idle/busy is the sidecar state the trigger reads from erp_sync.workers (idle ⇒ one NOTIFY per transaction).", ""]
    lines += sync_sections.render(report)
    return "\n".join(lines)


def sync_cluster():
    return Cluster(fsync=os.environ.get("BENCH_FSYNC", "off"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=os.environ.get("BENCH_SECTIONS", "write_path,latency,throughput,scale"))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
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
