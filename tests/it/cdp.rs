//! Headless Chromium driven over the Chrome DevTools Protocol, for the browser test: the few
//! commands it sends (open a page, evaluate an expression, click with a real mouse event, take a
//! screenshot), over the WebSocket Chromium opens with `--remote-debugging-port`.
//!
//! Why not a CDP crate: the maintained ones (chromiumoxide) compile bindings for the whole
//! protocol, which took 63 s of the CI machine's 466 s of compilation (a third of a minute of
//! CI's wall time on its 2 cores) for the nine methods used here. The protocol's own
//! documentation is the reference for every method and field below (chromedevtools.github.io/
//! devtools-protocol, tip-of-tree: domains Target, Page, Runtime, Input, Emulation, Browser).
//!
//! Every wait has a limit (the caller's, from the timeout table); Chromium is killed when the
//! [`Chromium`] is dropped, so a failed assertion leaves nothing running.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

type Replies = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A running headless Chromium and its DevTools connection.
pub(crate) struct Chromium {
    child: tokio::process::Child,
    outgoing: mpsc::UnboundedSender<String>,
    replies: Replies,
    next_id: AtomicU64,
    limit: Duration,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

/// One tab, attached to through its own session (`Target.attachToTarget` with `flatten`).
pub(crate) struct Page<'a> {
    browser: &'a Chromium,
    session: String,
}

impl Chromium {
    /// Starts `executable` headless with a window of `width`×`height` CSS pixels and its
    /// profile in `profile`, and connects to it; `limit` bounds the start and every command.
    pub(crate) async fn launch(
        executable: &Path,
        profile: &Path,
        (width, height): (u32, u32),
        limit: Duration,
    ) -> Result<Self, String> {
        // `--no-sandbox`: root in CI has no user namespaces for Chromium's sandbox;
        // `--remote-debugging-port=0`: a free port, announced on stderr as
        // "DevTools listening on ws://…" (chromium content/browser/devtools/
        // devtools_http_handler.cc).
        let mut child = tokio::process::Command::new(executable)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", executable.display()))?;
        let stderr = child.stderr.take().ok_or("Chromium's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut said = Vec::new();
        let announced = timeout(limit, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    return Some(line[at..].trim().to_string());
                }
                said.push(line);
            }
            None
        })
        .await;
        let ws_url = match announced {
            Ok(Some(url)) => url,
            Ok(None) => {
                return Err(format!(
                    "{} exited before announcing its DevTools address; it said:\n{}",
                    executable.display(),
                    said.join("\n")
                ));
            }
            Err(_) => {
                return Err(format!(
                    "{} announced no DevTools address within {limit:?} \
                     (HAPPY_TIMEOUT_BROWSER); it said:\n{}",
                    executable.display(),
                    said.join("\n")
                ));
            }
        };
        // Chromium keeps writing to stderr; reading it on keeps a full pipe from blocking it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let parsed = url::Url::parse(&ws_url)
            .map_err(|e| format!("Chromium's DevTools address {ws_url:?}: {e}"))?;
        let authority = match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => return Err(format!("no host and port in {ws_url:?}")),
        };
        let tcp = timeout(limit, tokio::net::TcpStream::connect(&authority))
            .await
            .map_err(|_| format!("connecting to {authority}: not within {limit:?}"))?
            .map_err(|e| format!("connecting to {authority}: {e}"))?;
        let (socket, _) = timeout(limit, tokio_tungstenite::client_async(ws_url.as_str(), tcp))
            .await
            .map_err(|_| format!("the WebSocket handshake with {ws_url}: not within {limit:?}"))?
            .map_err(|e| format!("the WebSocket handshake with {ws_url}: {e}"))?;
        let (mut sink, mut stream) = socket.split();

        let (outgoing, mut queue) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(text) = queue.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let replies: Replies = Arc::default();
        let pending = replies.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                // Events carry no id; only replies to commands are awaited here.
                let Some(id) = value["id"].as_u64() else {
                    continue;
                };
                if let Some(reply) = pending.lock().await.remove(&id) {
                    let result = match value.get("error") {
                        Some(error) => Err(error.to_string()),
                        None => Ok(value["result"].clone()),
                    };
                    let _ = reply.send(result);
                }
            }
            // The connection ended: every command still waiting fails rather than hangs.
            for (_, reply) in pending.lock().await.drain() {
                let _ = reply.send(Err("the DevTools connection closed".to_string()));
            }
        });
        Ok(Self {
            child,
            outgoing,
            replies,
            next_id: AtomicU64::new(1),
            limit,
            reader,
            writer,
        })
    }

    /// Sends `method` with `params` (to `session`, or to the browser) and waits for its result.
    async fn send(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            command["sessionId"] = session.into();
        }
        let (tx, rx) = oneshot::channel();
        self.replies.lock().await.insert(id, tx);
        self.outgoing
            .send(command.to_string())
            .map_err(|_| format!("{method}: the DevTools connection is closed"))?;
        match timeout(self.limit, rx).await {
            Ok(Ok(result)) => result.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(format!("{method}: the DevTools connection closed")),
            Err(_) => {
                self.replies.lock().await.remove(&id);
                Err(format!(
                    "{method}: no answer within {:?} (HAPPY_TIMEOUT_BROWSER)",
                    self.limit
                ))
            }
        }
    }

    /// Opens `url` in a new tab of `width`×`height` CSS pixels.
    pub(crate) async fn open(
        &self,
        url: &str,
        (width, height): (u32, u32),
    ) -> Result<Page<'_>, String> {
        let target = self
            .send(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target_id = target["targetId"]
            .as_str()
            .ok_or_else(|| format!("Target.createTarget answered no targetId: {target}"))?;
        let attached = self
            .send(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| format!("Target.attachToTarget answered no sessionId: {attached}"))?
            .to_string();
        let page = Page {
            browser: self,
            session,
        };
        page.send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        page.send("Page.navigate", json!({"url": url})).await?;
        Ok(page)
    }

    /// Asks Chromium to close (`Browser.close`) and waits for it to exit, within the limit;
    /// otherwise it is killed.
    pub(crate) async fn close(mut self) {
        let _ = self.send(None, "Browser.close", json!({})).await;
        if timeout(self.limit, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
        self.reader.abort();
        self.writer.abort();
    }
}

impl Page<'_> {
    async fn send(&self, method: &str, params: Value) -> Result<Value, String> {
        self.browser.send(Some(&self.session), method, params).await
    }

    /// The value of a JavaScript expression (awaited if it is a promise), as JSON.
    pub(crate) async fn evaluate<T: serde::de::DeserializeOwned>(
        &self,
        expression: &str,
    ) -> Result<T, String> {
        let answer = self
            .send(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = answer.get("exceptionDetails") {
            return Err(format!("evaluating {expression:?} threw: {exception}"));
        }
        // `undefined` has no `value`: read as null.
        let value = answer["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null);
        serde_json::from_value(value.clone())
            .map_err(|e| format!("evaluating {expression:?} gave {value}: {e}"))
    }

    /// The address the tab shows.
    pub(crate) async fn url(&self) -> Result<String, String> {
        self.evaluate("location.href").await
    }

    /// A left click with the mouse (`Input.dispatchMouseEvent`: moved, pressed, released) at
    /// the centre of the first element `selector` matches, scrolled into view first, as a
    /// reader's click lands; not a scripted `click()`.
    pub(crate) async fn click(&self, selector: &str) -> Result<(), String> {
        let selector_js = serde_json::to_string(selector).map_err(|e| e.to_string())?;
        let centre: Option<(f64, f64)> = self
            .evaluate(&format!(
                "(() => {{ const e = document.querySelector({selector_js}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center', inline: 'center'}}); \
                 const r = e.getBoundingClientRect(); \
                 return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
            ))
            .await?;
        let (x, y) = centre.ok_or_else(|| format!("no element matches {selector}"))?;
        for (kind, buttons) in [("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 0)] {
            self.send(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons,
                       "clickCount": 1}),
            )
            .await?;
        }
        Ok(())
    }

    /// A PNG of the whole page (`full_page`: the content's size, from `Page.getLayoutMetrics`,
    /// captured beyond the window) or of what the window shows where it is scrolled to.
    pub(crate) async fn screenshot(&self, path: &Path, full_page: bool) -> Result<(), String> {
        let mut params = json!({"format": "png"});
        if full_page {
            let metrics = self.send("Page.getLayoutMetrics", json!({})).await?;
            let size = &metrics["cssContentSize"];
            let (Some(width), Some(height)) = (size["width"].as_f64(), size["height"].as_f64())
            else {
                return Err(format!(
                    "Page.getLayoutMetrics gave no cssContentSize: {metrics}"
                ));
            };
            params["captureBeyondViewport"] = true.into();
            params["clip"] = json!({"x": 0, "y": 0, "width": width, "height": height, "scale": 1});
        }
        let shot = self.send("Page.captureScreenshot", params).await?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| "Page.captureScreenshot gave no data".to_string())?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("the screenshot's base64: {e}"))?;
        std::fs::write(path, png).map_err(|e| format!("writing {}: {e}", path.display()))
    }
}
