//! A small WebDriver client: Debian's headless Chromium driven through `chromedriver` over its
//! HTTP protocol (W3C WebDriver), for the UI tests. No browser is downloaded; the test script
//! installs the `chromium` and `chromium-driver` packages.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{free_port, Process, TempDir};

/// The W3C key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Keys as WebDriver encodes them in text.
pub const ENTER: &str = "\u{E007}";
pub const TAB: &str = "\u{E004}";

/// A headless Chromium session.
pub struct Browser {
    _driver: Process,
    base: String,
    session: String,
    _profile: TempDir,
}

/// A reference to an element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile and no background
    /// networking (this machine's network is closed).
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Process::quiet("chromedriver", &[format!("--port={port}")]);
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !crate::http_get(&format!("{base}/status")).is_ok_and(|(s, _)| s == 200) {
            assert!(Instant::now() < deadline, "chromedriver did not start within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = TempDir::new("chromium");
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.0.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let answer = post(&format!("{base}/session"), &capabilities);
        let session =
            answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_string();
        Browser { _driver: driver, base, session, _profile: profile }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn command(&self, path: &str, body: &Value) -> Value {
        let answer = post(&self.url(path), body);
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!("webdriver {path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.command("/url", &json!({ "url": url }));
    }

    /// The elements matching a CSS selector now.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.command("/elements", &json!({"using": "css selector", "value": css}));
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.into())))
            .collect()
    }

    /// Waits up to `limit` for `check` to return Some, polling every 100 ms.
    pub fn wait<T>(&self, what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
        crate::eventually(limit, &mut check).unwrap_or_else(|| panic!("waited {limit:?} for {what}"))
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub fn element(&self, css: &str) -> Element {
        self.wait(css, Duration::from_secs(10), || self.find_all(css).into_iter().next())
    }

    pub fn type_into(&self, e: &Element, text: &str) {
        self.command(&format!("/element/{}/value", e.0), &json!({ "text": text }));
    }

    pub fn click(&self, e: &Element) {
        self.command(&format!("/element/{}/click", e.0), &json!({}));
    }

    pub fn text(&self, e: &Element) -> String {
        let answer = get(&self.url(&format!("/element/{}/text", e.0)));
        answer["value"].as_str().unwrap_or("").to_string()
    }

    /// Runs JavaScript in the page; `arguments` holds `args`.
    pub fn script(&self, js: &str, args: Value) -> Value {
        self.command("/execute/sync", &json!({ "script": js, "args": args }))
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&self, path: &std::path::Path) {
        let answer = get(&self.url("/screenshot"));
        let png = base64_decode(answer["value"].as_str().expect("a base64 screenshot"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create screenshot directory");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ =
            ureq::delete(&format!("{}/session/{}", self.base, self.session)).timeout(Duration::from_secs(10)).call();
    }
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> Value {
    let text = match r {
        Ok(resp) => resp.into_string(),
        Err(ureq::Error::Status(_, resp)) => resp.into_string(),
        Err(e) => panic!("webdriver request: {e}"),
    }
    .expect("webdriver answer");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("webdriver answer is not JSON ({e}): {text}"))
}

fn post(url: &str, body: &Value) -> Value {
    let request = ureq::post(url).timeout(Duration::from_secs(60)).set("Content-Type", "application/json");
    answer(request.send_string(&body.to_string()))
}

fn get(url: &str) -> Value {
    answer(ureq::get(url).timeout(Duration::from_secs(60)).call())
}

/// Standard base64 (with padding) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = text.bytes().filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &c)| n | (u32::from(value(c)) << (18 - 6 * i)));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
        assert_eq!(super::base64_decode("YWJj"), b"abc");
        assert_eq!(super::base64_decode("YWI="), b"ab");
    }
}
