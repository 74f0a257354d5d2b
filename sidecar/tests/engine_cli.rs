//! The `erp-sync` command line as a user meets it: configuration errors, redaction, exit codes,
//! and `login` against a real simulator process.

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_erp-sync"));
    // A clean environment: only what each test sets (an inherited ERP_SYNC_* would change results).
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c.current_dir(std::env::temp_dir());
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("run erp-sync")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_config_prints_effective_config_with_secrets_redacted() {
    let o = run(bin()
        .arg("check-config")
        .env(
            "ERP_SYNC_DATABASE_URL",
            "postgres://worker:db-s3cret@db.example/erp",
        )
        .env("ERP_SYNC_ERP_PASSWORD", "erp-s3cret")
        .env("ERP_SYNC_ERP_CUSTOMER_CATEGORY", "11")
        .env("ERP_SYNC_ENGINE_CONCURRENCY", "3"));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("customer_category = \"11\""), "{t}");
    assert!(t.contains("concurrency = 3"), "{t}");
    assert!(t.contains("postgres://worker:***@db.example/erp"), "{t}");
    assert!(!t.contains("db-s3cret") && !t.contains("erp-s3cret"), "{t}");
}

/// The vendor requires 客户分类 on every customer save and the platform has none: without
/// `erp.customer_category` neither `check-config` nor `run` starts, and both say which key and
/// which vendor field.
#[test]
fn a_missing_customer_category_is_named_at_start_up() {
    for args in [&["check-config"][..], &["run", "--once"][..]] {
        let o = run(bin()
            .args(args)
            .env("ERP_SYNC_DATABASE_URL", "postgres://worker@127.0.0.1:1/erp"));
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(
            t.contains("erp.customer_category")
                && t.contains("sort1")
                && t.contains("login --fields"),
            "{args:?}: {t}"
        );
    }
    let o = run(bin()
        .arg("check-config")
        .env("ERP_SYNC_ERP_CUSTOMER_CATEGORY", "11")
        .env("ERP_SYNC_ERP_UPDATE_MODE", "webapi"));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("erp.follow_level"), "{t}");
}

#[test]
fn config_errors_exit_2_and_name_the_problem() {
    let o = run(bin()
        .arg("check-config")
        .env("ERP_SYNC_ENGINE_CONCURENCY", "3"));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("concurency"), "{}", text(&o));

    let o = run(bin()
        .arg("check-config")
        .env("ERP_SYNC_ENGINE_CONCURRENCY", "many"));
    assert_eq!(o.status.code(), Some(2));

    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("erp-sync.toml");
    std::fs::write(&f, "[engine]\nconcurrency = 4\nbogus = 1\n").expect("write");
    let o = run(bin().arg("--config").arg(&f).arg("check-config"));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("bogus"), "{}", text(&o));

    let o = run(bin()
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .arg("run"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn config_file_then_environment_and_password_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "from-file\n").expect("write");
    let f = dir.path().join("erp-sync.toml");
    std::fs::write(
        &f,
        format!(
            "[engine]\nconcurrency = 4\nbatch_size = 9\n[erp]\ncustomer_category = \"11\"\npassword_file = {:?}\n",
            pw.display().to_string()
        ),
    )
    .expect("write");
    let o = run(bin()
        .arg("check-config")
        .env("ERP_SYNC_CONFIG", &f)
        .env("ERP_SYNC_ENGINE_BATCH_SIZE", "11"));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("concurrency = 4") && t.contains("batch_size = 11"),
        "{t}"
    );
    assert!(!t.contains("from-file"), "{t}");
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            eprintln!("kill sim: {e}");
        }
        if let Err(e) = self.0.wait() {
            eprintln!("wait sim: {e}");
        }
    }
}

#[test]
fn login_tests_the_connection_like_the_spec() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let sim = Kill(
        bin()
            .args([
                "sim",
                "--port",
                &port.to_string(),
                "--user",
                "demo",
                "--password",
                "demo",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sim"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sim did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = run(bin()
        .arg("login")
        .env("ERP_SYNC_ERP_BASE_URL", &url)
        .env("ERP_SYNC_ERP_USERNAME", "demo")
        .env("ERP_SYNC_ERP_PASSWORD", "demo"));
    let t = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{t}");
    assert!(t.contains("客户数量: 0"), "{t}");
    // `--fields` shows the customer form, with the category ids to configure.
    let fields = run(bin()
        .args(["login", "--fields"])
        .env("ERP_SYNC_ERP_BASE_URL", &url)
        .env("ERP_SYNC_ERP_USERNAME", "demo")
        .env("ERP_SYNC_ERP_PASSWORD", "demo"));
    let t = text(&fields);
    assert_eq!(fields.status.code(), Some(0), "{t}");
    assert!(t.contains("intsort=1") && t.contains("intsort=2"), "{t}");
    let sort1 = t
        .lines()
        .find(|l| l.starts_with("sort1 "))
        .unwrap_or_default();
    assert!(sort1.contains("是") && sort1.contains("11=微信客户"), "{t}");
    let bad = run(bin()
        .arg("login")
        .env("ERP_SYNC_ERP_BASE_URL", &url)
        .env("ERP_SYNC_ERP_USERNAME", "demo")
        .env("ERP_SYNC_ERP_PASSWORD", "nope"));
    assert_eq!(bad.status.code(), Some(3), "{}", text(&bad));
    assert!(!text(&bad).contains("nope"));
    drop(sim);
}
