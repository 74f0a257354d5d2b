//! Headless Chromium (Debian's `chromium`, installed by scripts/setup.sh) driven over the
//! DevTools protocol: one WebSocket to a page target, JSON commands. Enough for the operator page
//! test: navigate, evaluate JavaScript, click an element with real mouse events, type text, take
//! a screenshot. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The chromium binary, or a clear error.
pub fn chromium() -> Result<String> {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(c).exists() {
            return Ok(c.to_string());
        }
    }
    bail!("headless Chromium is required but /usr/bin/chromium is missing: run scripts/setup.sh (apt-get install -y chromium)")
}

/// Flags of every headless run here: no sandbox (tests run as root), no GPU, nothing fetched from
/// the network but the page under test.
pub const HEADLESS_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start chromium on a free DevTools port and attach to its first page.
    pub fn launch() -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mut child = Command::new(chromium()?)
            .args(HEADLESS_ARGS)
            .args([
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,1400",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting chromium")?;
        let stderr = child.stderr.take().context("chromium stderr")?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    if let Err(e) = child.kill() {
                        eprintln!("cannot stop chromium: {e}");
                    }
                    bail!(
                        "chromium did not print its DevTools address within 30 s: {}",
                        seen.join("\n")
                    )
                }
            };
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                break rest.split('/').next().unwrap_or("").parse::<u16>()?;
            }
            seen.push(line);
        };
        // Keep draining chromium's stderr so it never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        let list: Value =
            reqwest::blocking::get(format!("http://127.0.0.1:{port}/json/list"))?.json()?;
        let ws_url = list
            .as_array()
            .and_then(|l| l.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .context("chromium has no page target")?
            .to_string();
        let (ws, _) = tungstenite::connect(ws_url.as_str()).context("DevTools WebSocket")?;
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
        }
        let mut b = Browser {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        };
        b.call("Page.enable", json!({}))?;
        b.call("Runtime.enable", json!({}))?;
        Ok(b)
    }

    /// One DevTools command; its `result` (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let m = self
                .ws
                .read()
                .with_context(|| format!("DevTools reply to {method}"))?;
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    bail!("DevTools {method} failed: {e}");
                }
                return Ok(v["result"].clone());
            }
        }
        bail!("no DevTools reply to {method} within 30 s")
    }

    /// Evaluate `expr` in the page (promises awaited); its JSON value.
    pub fn eval(&mut self, expr: &str) -> Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            bail!("JavaScript failed: {expr}: {ex}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// Poll `expr` until it is truthy (bounded); false on timeout.
    pub fn wait_for(&mut self, expr: &str, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let v = self.eval(expr)?;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(false)
    }

    pub fn navigate(&mut self, url: &str) -> Result<()> {
        self.call("Page.navigate", json!({"url": url}))?;
        if !self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(20),
        )? {
            bail!("{url} did not finish loading");
        }
        Ok(())
    }

    /// Click the element matching `selector` with real mouse events at its centre.
    pub fn click(&mut self, selector: &str) -> Result<()> {
        let sel = serde_json::to_string(selector)?;
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null;
               e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
               return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ))?;
        let (Some(x), Some(y)) = (at[0].as_f64(), at[1].as_f64()) else {
            bail!("nothing to click: no element matches {selector}");
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )?;
        }
        Ok(())
    }

    /// Click the input matching `selector` and type `text` into it.
    pub fn type_into(&mut self, selector: &str, text: &str) -> Result<()> {
        self.click(selector)?;
        self.call("Input.insertText", json!({"text": text}))?;
        Ok(())
    }

    /// The text of the element matching `selector` (None when there is none).
    pub fn text(&mut self, selector: &str) -> Result<Option<String>> {
        let sel = serde_json::to_string(selector)?;
        let v = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); return e ? e.textContent : null; }})()"
        ))?;
        Ok(v.as_str().map(str::to_string))
    }

    /// A PNG of the whole page, written to `path`; its size in bytes.
    pub fn screenshot(&mut self, path: &Path) -> Result<usize> {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )?;
        let data = r["data"].as_str().context("screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        std::fs::write(path, &png)?;
        Ok(png.len())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill().and_then(|()| self.child.wait().map(drop)) {
            eprintln!("cannot stop chromium: {e}");
        }
    }
}
