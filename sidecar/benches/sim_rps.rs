//! Simulator throughput and ERP-client overhead (not part of `cargo test`).
//!
//! `cargo bench -p sidecar --bench sim_rps` (env: `SIM_BENCH_SECS` (default 5), `SIM_BENCH_CONC`
//! (default 64), `SIM_BENCH_CUSTOMERS` (default 10000), `SIM_BENCH_THREADS`: simulator worker threads (default 2)).
//! The load generator runs in the same process and shares the cores with the simulator, so the
//! numbers are a lower bound of what the simulator alone can serve.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sidecar::erp::{CustomerFields, CustomerKind, ErpClient, ErpConfig, ListFilter};
use sidecar::sim::{self, SimConfig};

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> R {
    // The simulator runs on its own runtime ("sim-worker" threads) so that its CPU time can be told
    // apart from the load generator's (/proc/self/task/*/stat).
    let threads = env("SIM_BENCH_THREADS", 2) as usize;
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("sim-worker")
        .enable_all()
        .build()?;
    let gen_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load-gen")
        .enable_all()
        .build()?;
    let res = gen_rt.block_on(run(sim_rt.handle().clone()));
    sim_rt.shutdown_background();
    res
}

/// CPU seconds (user + system) used so far by the simulator's threads.
fn sim_cpu_secs() -> f64 {
    thread_cpu_secs("sim-worker")
}

/// CPU seconds used so far by the threads whose name starts with `prefix`.
fn thread_cpu_secs(prefix: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0u64;
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if rest.len() > 12 {
            ticks += rest[11].parse::<u64>().unwrap_or(0) + rest[12].parse::<u64>().unwrap_or(0);
        }
    }
    ticks as f64 / 100.0
}

fn report(label: &str, n: u64, e: u64, d: Duration, cpu: f64) {
    let rps = n as f64 / d.as_secs_f64();
    let us = cpu * 1e6 / n.max(1) as f64;
    println!("  {label:<44}: {rps:>8.0} req/s with the generator in-process ({n} ok, {e} err); simulator CPU {us:.1} µs/req → ~{:.0} req/s per core", 1e6 / us.max(0.001));
}

async fn login(
    base: &str,
    http: &reqwest::Client,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let v: Value = http
        .post(format!("{base}/webapi/v3/ov1/login"))
        .json(&json!({"datas":[{"id":"user","val":"txt:demo"},{"id":"password","val":"txt:demo"},{"id":"serialnum","val":"txt:bench"}]}))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["header"]["session"]
        .as_str()
        .ok_or("no session")?
        .to_string())
}

/// `conc` tasks posting `body` to `path` for `secs`; returns (requests, errors, elapsed).
async fn hammer(
    base: &str,
    path: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    conc: usize,
    secs: u64,
) -> (u64, u64, Duration) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default();
    let url = Arc::new(format!("{base}{path}"));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let err = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..conc {
        let (http, url, stop, ok, err, bodies) = (
            http.clone(),
            url.clone(),
            stop.clone(),
            ok.clone(),
            err.clone(),
            bodies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[i % bodies.len()].clone();
                i += conc;
                let r = http
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => err.fetch_add(1, Ordering::Relaxed),
                    },
                    _ => err.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if let Err(e) = t.await {
            eprintln!("task failed: {e}");
        }
    }
    (
        ok.load(Ordering::Relaxed),
        err.load(Ordering::Relaxed),
        started.elapsed(),
    )
}

async fn run(sim_rt: tokio::runtime::Handle) -> R {
    let secs = env("SIM_BENCH_SECS", 5);
    let conc = env("SIM_BENCH_CONC", 64) as usize;
    let customers = env("SIM_BENCH_CUSTOMERS", 10_000);
    let h = sim_rt
        .spawn(sim::spawn(SimConfig {
            port: 0,
            seed: Some(1),
            ..SimConfig::default()
        }))
        .await??;
    let base = h.base_url();
    let http = reqwest::Client::new();

    // Seed customers through the admin endpoint.
    let seeds: Vec<Value> = (0..customers)
        .map(|i| json!({"intsort": 1, "fields": {"name": format!("客户{i}"), "khid": format!("WX{i}"), "ly": "171", "mobile": format!("138{i:08}")}}))
        .collect();
    for chunk in seeds.chunks(5_000) {
        http.post(format!("{base}/_sim/customers"))
            .json(&chunk)
            .send()
            .await?
            .error_for_status()?;
    }
    let session = login(&base, &http).await?;
    println!("simulator bench: {secs}s per scenario, concurrency {conc}, {customers} customers, cores {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));

    // 1. khid lookup (list.asp refresh, 1 row).
    let bodies: Vec<Vec<u8>> = (0..1000u64)
        .map(|i| serde_json::to_vec(&json!({"session": session, "cmdkey": "refresh",
            "datas": [{"id":"khid","val": format!("WX{}", (i * 7919) % customers.max(1))},{"id":"pagesize","val":20}]})).unwrap_or_default())
        .collect();
    let c0 = sim_cpu_secs();
    let (n, e, d) = hammer(
        &base,
        "/sysa/mobilephone/salesmanage/custom/list.asp",
        Arc::new(bodies),
        conc,
        secs,
    )
    .await;
    report("list.asp khid lookup", n, e, d, sim_cpu_secs() - c0);

    // 2. allocate (custom/add.asp without cmdkey).
    let bodies = vec![serde_json::to_vec(
        &json!({"session": session, "datas": [{"id":"intsort","val":1}]}),
    )?];
    let c0 = sim_cpu_secs();
    let (n, e, d) = hammer(
        &base,
        "/sysa/mobilephone/salesmanage/custom/add.asp",
        Arc::new(bodies),
        conc,
        secs,
    )
    .await;
    report("add.asp allocate", n, e, d, sim_cpu_secs() - c0);

    // 3. A 20-row page of the whole table filtered by ly (pull-style).
    let bodies = vec![serde_json::to_vec(
        &json!({"session": session, "cmdkey": "refresh", "datas": [{"id":"ly","val":"171"},{"id":"pageindex","val":3}]}),
    )?];
    let c0 = sim_cpu_secs();
    let (n, e, d) = hammer(
        &base,
        "/sysa/mobilephone/salesmanage/custom/list.asp",
        Arc::new(bodies),
        conc.min(16),
        secs,
    )
    .await;
    report(
        &format!("list.asp ly filter, page 3 of {customers}"),
        n,
        e,
        d,
        sim_cpu_secs() - c0,
    );

    // 4. Client overhead per call: sequential ErpClient::find_by_khid vs raw POST of the same request.
    let client = ErpClient::new(ErpConfig {
        base_url: base.clone(),
        username: "demo".into(),
        password: "demo".into(),
        ..ErpConfig::default()
    })?;
    client.login().await?;
    let iters = 2_000u64;
    let raw_body = serde_json::to_vec(
        &json!({"session": session, "cmdkey": "refresh", "datas": [{"id":"khid","val":"WX1"},{"id":"pagesize","val":50},{"id":"pageindex","val":1}]}),
    )?;
    let url = format!("{base}/sysa/mobilephone/salesmanage/custom/list.asp");
    let traced = client.traced();
    // Interleaved blocks so that load changes on the machine hit all three alike; block 0 is warm-up.
    let (mut raw_t, mut cl_t, mut tr_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut raw_c, mut cl_c, mut tr_c) = (0.0f64, 0.0f64, 0.0f64);
    let blocks = 11u64;
    let per = iters / (blocks - 1);
    for block in 0..blocks {
        let c0 = thread_cpu_secs("load-gen");
        let t0 = Instant::now();
        for _ in 0..per {
            let b = http
                .post(&url)
                .header("content-type", "application/json")
                .body(raw_body.clone())
                .send()
                .await?
                .bytes()
                .await?;
            if b.is_empty() {
                return Err("empty".into());
            }
        }
        let t1 = Instant::now();
        let c1 = thread_cpu_secs("load-gen");
        for _ in 0..per {
            if client.find_by_khid("WX1").await?.is_none() {
                return Err("WX1 not found".into());
            }
        }
        let t2 = Instant::now();
        let c2 = thread_cpu_secs("load-gen");
        for _ in 0..per {
            traced.find_by_khid("WX1").await?;
            if traced.take_exchanges().len() != 1 {
                return Err("exchange not recorded".into());
            }
        }
        let t3 = Instant::now();
        let c3 = thread_cpu_secs("load-gen");
        if block > 0 {
            raw_c += c1 - c0;
            cl_c += c2 - c1;
            tr_c += c3 - c2;
            raw_t += t1 - t0;
            cl_t += t2 - t1;
            tr_t += t3 - t2;
        }
    }
    let n = (per * (blocks - 1)) as f64;
    let (raw_us, cl_us, tr_us) = (
        raw_t.as_secs_f64() * 1e6 / n,
        cl_t.as_secs_f64() * 1e6 / n,
        tr_t.as_secs_f64() * 1e6 / n,
    );
    println!("  sequential round trip: raw POST {raw_us:.1} µs, ErpClient::find_by_khid {cl_us:.1} µs, traced {tr_us:.1} µs");
    println!(
        "  client overhead per call (wall, noisy): {:.1} µs (traced: {:.1} µs)",
        cl_us - raw_us,
        tr_us - raw_us
    );
    let (rc, cc, tc) = (raw_c * 1e6 / n, cl_c * 1e6 / n, tr_c * 1e6 / n);
    println!("  caller CPU per call: raw POST {rc:.1} µs, ErpClient {cc:.1} µs, traced {tc:.1} µs → client overhead {:.1} µs CPU (traced {:.1} µs)", cc - rc, tc - rc);

    // 5. A create through the client (allocate + save + verify = 3 requests).
    let t0 = Instant::now();
    let n_create = 500u64;
    for i in 0..n_create {
        let f = CustomerFields {
            name: format!("B{i}"),
            khid: Some(format!("BENCH{i}")),
            mobile: Some(format!("139{i:08}")),
            ..CustomerFields::default()
        };
        client.save_customer(CustomerKind::Personal, &f).await?;
    }
    println!(
        "  ErpClient::save_customer (allocate+save+verify): {:.1} µs per create (sequential)",
        t0.elapsed().as_secs_f64() * 1e6 / n_create as f64
    );
    let p = client.list_customers(&ListFilter::default()).await?;
    println!("  customers in simulator: {}", p.page.recordcount);
    h.shutdown().await?;
    Ok(())
}
