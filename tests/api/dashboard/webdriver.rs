//! A small W3C WebDriver client: Debian's `chromedriver` driving headless `chromium`, so that
//! dashboard tests click, type and read the page as a person's browser does.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The key WebDriver names element references by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Browser tests run one at a time: each starts a Chromium, and the machine has two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: awc::Client,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` × `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (scripts/test installs chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match client.get(format!("{base}/status")).send().await {
                Ok(mut r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!("footfall-wd-{}", uuid::Uuid::new_v4()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // The viewport as a device of this size shows it (a window has a minimum width).
                "mobileEmulation": {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0}},
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update",
                         "--no-first-run", "--hide-scrollbars",
                         format!("--window-size={width},{height}"),
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            client,
            _turn: turn,
        };
        let created = browser.call("POST", "/session", Some(caps)).await;
        browser.session = created["sessionId"].as_str().unwrap().to_owned();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self.client.post(url),
        };
        let mut res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .unwrap();
        let out: Value = res.json().limit(50 * 1024 * 1024).await.unwrap();
        assert!(
            res.status().is_success(),
            "WebDriver {method} {path}: {out}"
        );
        out["value"].clone()
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await;
    }

    /// Runs JavaScript in the page and returns its result.
    pub async fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Runs JavaScript that ends by calling `arguments[0](result)`.
    pub async fn js_async(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/async"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn element(&self, css: &str) -> Option<String> {
        let found = self
            .call(
                "POST",
                &self.at("/elements"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found.as_array()?.first()?[ELEMENT]
            .as_str()
            .map(str::to_owned)
    }

    /// Clicks the first element matching `css`, as a pointer would (it must be visible).
    pub async fn click(&self, css: &str) {
        let id = self
            .element(css)
            .await
            .unwrap_or_else(|| panic!("no element {css}"));
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/click")),
            Some(json!({})),
        )
        .await;
    }

    /// Types into the first element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self
            .element(css)
            .await
            .unwrap_or_else(|| panic!("no element {css}"));
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/value")),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Waits (up to 30 s) until `script` returns something other than null or false.
    pub async fn until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.js(script).await;
            if !v.is_null() && v != false {
                return v;
            }
            if Instant::now() > deadline {
                let state = self
                    .js("return document.querySelector('main')?.outerHTML?.slice(0, 3000)")
                    .await;
                panic!("timed out waiting for {what}; page: {state}");
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the dashboard says every part of the current view is loaded.
    pub async fn ready(&self) {
        self.until(
            "the dashboard to be ready",
            "return document.querySelector('main[data-state=ready]') !== null",
        )
        .await;
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let b64 = self.call("GET", &self.at("/screenshot"), None).await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap()
    }
}

impl Browser {
    /// Ends the session and its Chromium.
    pub async fn quit(self) {
        self.call("DELETE", &self.at(""), None).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending chromedriver ends its Chromium.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
