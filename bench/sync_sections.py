"""Sync-engine sections of `make bench` (imported by bench.py): latency, throughput, spec baseline,
scale. Stdlib only: SQL through psql, HTTP through urllib, process figures from /proc."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("ERP_SYNC_BIN", str(ROOT / "target/release/erp-sync"))


def env_int(name, default):
    return int(os.environ.get(name, str(default)))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Sim:
    def __init__(self, port, request_log=10_000):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.logf = tempfile.NamedTemporaryFile("w+", prefix="sim", suffix=".log", delete=False)
        self.proc = subprocess.Popen([BIN, "sim", "--port", str(port), "--user", "demo", "--password", "demo",
                                      "--request-log", str(request_log)],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while True:
            try:
                self.get("/_sim/stats")
                return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")

    def delete(self, path):
        req = urllib.request.Request(self.url + path, method="DELETE")
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        os.unlink(self.logf.name)


class Sidecar:
    """`erp-sync run` with the e2e tests' fast timings, rate limit off, concurrency 5."""

    def __init__(self, db_url, sim, worker, extra=None):
        env = dict(os.environ)
        env.update({
            "ERP_SYNC_DATABASE_URL": db_url, "ERP_SYNC_ERP_BASE_URL": sim.url,
            "ERP_SYNC_ERP_USERNAME": "demo", "ERP_SYNC_ERP_PASSWORD": "demo",
            "ERP_SYNC_ERP_CUSTOMER_CATEGORY": "11",
            "ERP_SYNC_ENGINE_WORKER_ID": worker, "ERP_SYNC_ENGINE_RATE_LIMIT_PER_S": "0",
            "ERP_SYNC_ENGINE_CONCURRENCY": "5", "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "info"),
        })
        env.update(extra or {})
        self.logf = tempfile.NamedTemporaryFile("w+", prefix="sidecar", suffix=".log", delete=False)
        self.proc = subprocess.Popen([BIN, "run"], env=env, stdout=self.logf, stderr=subprocess.STDOUT)

    def cpu_s(self):
        f = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return (int(f[11]) + int(f[12])) / tick  # utime + stime

    def hwm_kb(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.logf.name)


def make_db(cluster, db):
    cluster.psql("postgres", f"CREATE DATABASE {db}")
    cluster.psql(db, "CREATE EXTENSION erp_sync")
    cluster.psql(db, file=ROOT / "sql/middle_platform.sql")


def load_contacts(cluster, db, n, first=0):
    """n admissible personal contacts (mobiles 138xxxxxxxx from `first`), each with a thread, in one
    statement."""
    sql = f"""WITH c AS (
        INSERT INTO mp.contacts (type, name, phone, phone_verified, score, list_status, wechat_id)
        SELECT 'personal', '客户' || g, '138' || lpad(g::text, 8, '0'), true, 70, 'white', 'wx' || g
        FROM generate_series({first}, {first + n - 1}) g RETURNING id)
      INSERT INTO mp.threads (contact_id, score, summary) SELECT id, 70, '摘要' FROM c"""
    cluster.psql(db, sql)


def unfinished(cluster, db):
    """Rows pending or running. Retries for up to 60 s: the server may be in crash recovery (e.g.
    erp_sync.so replaced under running backends by a concurrent `cargo pgrx install`)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return int(cluster.psql(db, "SELECT (SELECT count(*) FROM erp_sync.outbox WHERE status IN ('pending', 'running')) "
                                        "+ (SELECT count(*) FROM erp_sync.captured)"))
        except subprocess.CalledProcessError as e:
            if time.monotonic() > deadline:
                raise
            log(f"[bench] psql failed ({(e.stderr or '').strip()[:200]}); retrying")
            time.sleep(1)


def drain(cluster, db, sim, worker, n_contacts, extra=None, timeout=1800):
    """Start a sidecar on a loaded outbox, wait until nothing is pending or running.
    Returns rate, seconds, CPU and RSS figures, ERP calls per contact."""
    rows = unfinished(cluster, db)
    before = sim.get("/_sim/stats").get("requests", 0)
    t0 = time.monotonic()
    sc = Sidecar(cluster.url(db), sim, worker, extra)
    try:
        hwm = 0
        cpu = 0.0
        while True:
            hwm = max(hwm, sc.hwm_kb() or 0)
            cpu = sc.cpu_s()
            left = unfinished(cluster, db)
            if left == 0:
                break
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"drain timed out with {left} rows left")
            time.sleep(0.05)
        secs = time.monotonic() - t0
    finally:
        sc.stop()
    calls = sim.get("/_sim/stats").get("requests", 0) - before
    bad = cluster.psql(db, "SELECT count(*) FROM erp_sync.outbox WHERE status NOT IN ('done')")
    return {"contacts": n_contacts, "outbox_rows": rows, "seconds": secs, "contacts_per_s": n_contacts / secs,
            "erp_calls": calls, "calls_per_contact": calls / n_contacts, "sidecar_cpu_s": cpu,
            "cpu_ms_per_contact": 1000 * cpu / n_contacts, "peak_rss_kb": hwm, "rows_not_done": int(bad)}


def latency(cluster_cls, args):
    """Direct capture's figures at the top level (as before); capture.mode = log's under "log"
    (its COMMIT -> first ERP request includes the expansion the commit's NOTIFY triggers)."""
    out = latency_of(cluster_cls, "direct")
    if os.environ.get("BENCH_LATENCY_LOG", "1") != "0":
        out["log"] = latency_of(cluster_cls, "log")
    return out


def latency_of(cluster_cls, mode):
    n = env_int("BENCH_LATENCY_SAMPLES", 1000)
    gap = float(os.environ.get("BENCH_LATENCY_GAP_S", "0.03"))
    cluster = cluster_cls()
    sim = Sim(free_port_local(), request_log=max(10_000, n * 10))
    try:
        make_db(cluster, "lat")
        cluster.psql("lat", f"INSERT INTO erp_sync.settings (key, value) VALUES ('capture.mode', '{mode}')")
        cluster.psql("lat", "CREATE TABLE public.bench_commit (contact_id bigint, ts timestamptz)")
        sc = Sidecar(cluster.url("lat"), sim, "lat", {"ERP_SYNC_ENGINE_POLL_INTERVAL_MS": "5000"})
        try:
            time.sleep(2)  # login, go idle
            sim.delete("/_sim/requests")
            lines = []
            for i in range(n):
                lines.append(
                    "BEGIN;\nWITH c AS (INSERT INTO mp.contacts (type, name, phone, phone_verified, score, list_status, wechat_id) "
                    f"VALUES ('personal', '延迟{i}', '139{i:08d}', true, 70, 'white', 'wxl{i}') RETURNING id) "
                    "INSERT INTO public.bench_commit SELECT id, clock_timestamp() FROM c;\nCOMMIT;\n"
                    f"SELECT pg_sleep({gap});\n")
            with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
                f.write("".join(lines))
                path = f.name
            os.chmod(path, 0o644)
            cluster.psql("lat", file=path)
            os.unlink(path)
            deadline = time.time() + 120
            while unfinished(cluster, "lat") and time.time() < deadline:
                time.sleep(0.2)
        finally:
            sc.stop()
        commits = {}
        for line in cluster.psql("lat", "SELECT contact_id, extract(epoch FROM ts) * 1000 FROM public.bench_commit").splitlines():
            cid, ms = line.split("|")
            commits[f"WX{cid}"] = float(ms)
        first = {}
        for r in sim.get("/_sim/requests"):
            blob = json.dumps([r.get("datas"), r.get("body"), r.get("path")], ensure_ascii=False)
            for khid in khids_in(blob):
                if khid in commits and khid not in first:
                    first[khid] = r["at_us"] / 1000.0
        lat = sorted(first[k] - commits[k] for k in first)
        if not lat:
            raise RuntimeError("no latency samples matched")
        q = statistics.quantiles(lat, n=100, method="inclusive")
        return {"samples": len(lat), "expected": n, "p50_ms": statistics.median(lat), "p99_ms": q[98],
                "max_ms": lat[-1], "min_ms": lat[0], "gap_s": gap,
                "clock": "commit: clock_timestamp() as the last statement before COMMIT (server clock); "
                         "arrival: simulator at_us (unix µs, same host clock)"}
    finally:
        sim.stop()
        cluster.stop()


def khids_in(blob):
    out = []
    i = blob.find("WX")
    while i >= 0:
        j = i + 2
        while j < len(blob) and blob[j].isdigit():
            j += 1
        if j > i + 2:
            out.append(blob[i:j])
        i = blob.find("WX", j)
    return out


def free_port_local():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def throughput(cluster_cls, args):
    n0 = env_int("BENCH_TP_CONTACTS", 5000)
    n50 = env_int("BENCH_TP50_CONTACTS", 300)
    nspec = env_int("BENCH_SPEC_CONTACTS", 100)
    batch = os.environ.get("BENCH_BATCH_SIZE", "64")
    cluster = cluster_cls()
    out = {}
    try:
        for name, lat_ms, n in (("zero_latency", 0, n0), ("latency_50ms", 50, n50)):
            sim = Sim(free_port_local())
            try:
                db = f"tp_{name}"
                make_db(cluster, db)
                sim.post("/_sim/faults", {"latency_ms": lat_ms})
                load_contacts(cluster, db, n)
                r = drain(cluster, db, sim, name, n, {"ERP_SYNC_ENGINE_BATCH_SIZE": batch})
                if lat_ms:
                    limit = 5 / (r["calls_per_contact"] * lat_ms / 1000)
                    r["theoretical_limit"] = limit
                    r["ratio_to_limit"] = r["contacts_per_s"] / limit
                out[name] = r
                log(f"[throughput] {name}: {r['contacts_per_s']:.1f} contacts/s, {r['calls_per_contact']:.2f} calls/contact")
            finally:
                sim.stop()
        sim = Sim(free_port_local())
        try:
            sim.post("/_sim/faults", {"latency_ms": 50})
            res = subprocess.run([sys.executable, str(ROOT / "bench/spec_baseline.py"), sim.url, str(nspec)],
                                 check=True, capture_output=True, text=True)
            spec = json.loads(res.stdout)
            out["spec_baseline_50ms"] = spec
            out["ours_over_spec_50ms"] = out["latency_50ms"]["contacts_per_s"] / spec["contacts_per_s"]
            log(f"[throughput] spec baseline: {spec['contacts_per_s']:.2f} contacts/s")
        finally:
            sim.stop()
        return out
    finally:
        cluster.stop()


def scale(cluster_cls, args):
    small = env_int("BENCH_SCALE_SMALL", 10_000)
    big = env_int("BENCH_SCALE_BIG", 1_000_000)
    n = env_int("BENCH_SCALE_CONTACTS", 3000)
    rss_rows = env_int("BENCH_RSS_ROWS", 100_000)
    batch = os.environ.get("BENCH_BATCH_SIZE", "64")
    cluster = cluster_cls()
    out = {}
    try:
        filled = {"small": small, "big": big}
        for label, rows in filled.items():
            db = f"scale_{label}"
            make_db(cluster, db)
            cluster.psql(db, f"""INSERT INTO erp_sync.outbox (contact_id, kind, status, finished_at, created_at)
                SELECT -g, 'customer', 'done', now(), now() FROM generate_series(1, {rows}) g""")
            cluster.psql(db, f"""INSERT INTO erp_sync.sync_log (outbox_id, contact_id, action, erp_ord, request, response,
                                  outcome, duration_ms, worker)
                SELECT g, -g, 'create', g, '{{"fields": {{"name": "x"}}}}', '{{"ok": true}}', 'success', 3, 'old'
                FROM generate_series(1, {rows}) g""")
            cluster.psql(db, "VACUUM ANALYZE")
        # Interleaved rounds (small, big, small, big, ...) so machine noise hits both alike.
        runs = {"small": [], "big": []}
        for rnd in range(env_int("BENCH_SCALE_ROUNDS", 2)):
            for label in ("small", "big"):
                db = f"scale_{label}"
                load_contacts(cluster, db, n, first=rnd * n)
                sim = Sim(free_port_local())
                try:
                    # Retention off: its hourly run (first at start-up) scans every finished row
                    # once (~4 s at 1,000,000 rows), a cost of its own, not of claiming.
                    r = drain(cluster, db, sim, f"scale_{label}", n, {"ERP_SYNC_ENGINE_BATCH_SIZE": batch,
                                                                      "ERP_SYNC_RETENTION_INTERVAL_MS": "0"})
                finally:
                    sim.stop()
                runs[label].append(r)
                log(f"[scale] {filled[label]} finished rows, round {rnd}: {r['contacts_per_s']:.1f} contacts/s")
        for label in ("small", "big"):
            rs = sorted(runs[label], key=lambda r: r["contacts_per_s"])
            med = rs[len(rs) // 2]
            med["finished_rows_before"] = filled[label]
            med["rounds_contacts_per_s"] = [r["contacts_per_s"] for r in runs[label]]
            med["contacts_per_s"] = statistics.median(med["rounds_contacts_per_s"])
            out[label] = med
            cluster.psql("postgres", f"DROP DATABASE scale_{label}")
        out["ratio_big_over_small"] = out["big"]["contacts_per_s"] / out["small"]["contacts_per_s"]
        # Peak RSS: contacts with a thread, i.e. two pending rows each (customer + assign).
        db = "scale_rss"
        make_db(cluster, db)
        load_contacts(cluster, db, rss_rows // 2)
        sim = Sim(free_port_local(), request_log=1000)
        try:
            r = drain(cluster, db, sim, "rss", rss_rows // 2, {"ERP_SYNC_ENGINE_BATCH_SIZE": batch}, timeout=3600)
        finally:
            sim.stop()
        out["rss"] = r
        log(f"[scale] {rss_rows} pending rows: peak RSS {r['peak_rss_kb'] / 1024:.1f} MB")
        return out
    finally:
        cluster.stop()


def render(report):
    lines = []
    lat = report.get("latency")
    if lat:
        lines += ["## 2. Latency COMMIT → first ERP request at the simulator (idle sidecar)", "",
                  "| samples | p50 ms | p99 ms | max ms | target |", "|---|---|---|---|---|",
                  f"| {lat['samples']} / {lat['expected']} | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | {lat['max_ms']:.1f} | p50 ≤ 2, p99 ≤ 7 (graphile-worker) |"]
        lg = lat.get("log")
        if lg:
            lines.append(f"| capture.mode = log: {lg['samples']} / {lg['expected']} | {lg['p50_ms']:.2f} | "
                         f"{lg['p99_ms']:.2f} | {lg['max_ms']:.1f} | (the expansion the NOTIFY triggers included) |")
        lines += ["", f"Clocks: {lat['clock']}. Samples {lat['gap_s'] * 1000:.0f} ms apart.", ""]
    tp = report.get("throughput")
    if tp:
        z, f = tp["zero_latency"], tp["latency_50ms"]
        lines += ["## 3–4. Throughput (contacts fully synced per second; release sidecar, concurrency 5, rate limit off)", "",
                  "| case | contacts | outbox rows | ERP calls/contact | contacts/s | sidecar CPU ms/contact | note |",
                  "|---|---|---|---|---|---|---|",
                  f"| zero latency | {z['contacts']} | {z['outbox_rows']} | {z['calls_per_contact']:.2f} | {z['contacts_per_s']:.1f} | {z['cpu_ms_per_contact']:.2f} | target ≥ 1,000 |",
                  f"| 50 ms/call | {f['contacts']} | {f['outbox_rows']} | {f['calls_per_contact']:.2f} | {f['contacts_per_s']:.2f} | {f['cpu_ms_per_contact']:.2f} | limit 5/(calls×0.05) = {f['theoretical_limit']:.2f}; ratio {f['ratio_to_limit']:.2f} (target ≥ 0.9) |"]
        sp = tp.get("spec_baseline_50ms")
        if sp:
            lines.append(f"| spec design (bench/spec_baseline.py), 50 ms/call | {sp['contacts']} | – | {sp['calls_per_contact']:.2f} | {sp['contacts_per_s']:.2f} | – | ours ÷ spec = {tp['ours_over_spec_50ms']:.2f} |")
        lines += ["", "Each contact has one thread: outbox rows = customer + assign. Calls per contact counted "
                  "from the simulator's stats (khid lookup, mobile lookup, allocate, save, verify read-back, assign, logins).", ""]
    sc = report.get("scale")
    if sc:
        s, b, r = sc["small"], sc["big"], sc["rss"]
        lines += ["## 5. Scale", "",
                  "| case | contacts/s | ratio | sidecar CPU ms/contact | peak RSS MB |", "|---|---|---|---|---|",
                  f"| {s['finished_rows_before']:,} finished rows in outbox + sync_log (rounds: {', '.join(f'{x:.0f}' for x in s['rounds_contacts_per_s'])}) | {s['contacts_per_s']:.1f} | 1.00 | {s['cpu_ms_per_contact']:.2f} | {s['peak_rss_kb'] / 1024:.1f} |",
                  f"| {b['finished_rows_before']:,} finished rows in outbox + sync_log (rounds: {', '.join(f'{x:.0f}' for x in b['rounds_contacts_per_s'])}) | {b['contacts_per_s']:.1f} | {sc['ratio_big_over_small']:.2f} (target ≥ 0.8) | {b['cpu_ms_per_contact']:.2f} | {b['peak_rss_kb'] / 1024:.1f} |",
                  f"| drain {r['outbox_rows']:,} pending rows | {r['contacts_per_s']:.1f} | – | {r['cpu_ms_per_contact']:.2f} | {r['peak_rss_kb'] / 1024:.1f} (target ≤ 50) |",
                  "", "The two filled drains run with the retention job off: its hourly run (the first at start-up) "
                  "reads every finished row once, a cost of its own and not of claiming.", ""]
    return lines
