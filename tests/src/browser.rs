//! A real browser for the console's tests: Debian's headless Chromium, driven over WebDriver by
//! `chromedriver` (started here on a free loopback port, stopped on drop). Missing either is a
//! failure with the command that installs them, never a skipped test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Browser {
    driver: Child,
    pub url: String,
    profile: tempfile::TempDir,
}

fn find(env: &str, names: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    for name in names {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = PathBuf::from(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} not found (or set {env}): the console tests need Debian's chromium and \
         chromium-driver (apt-get install chromium chromium-driver; scripts/test.sh does)",
        names.join(" or ")
    );
}

impl Browser {
    pub fn start() -> Browser {
        let driver_bin = find("TVAULT_TEST_CHROMEDRIVER", &["chromedriver"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver_bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start on {url}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Browser {
            driver,
            url,
            profile: tempfile::tempdir().expect("profile dir"),
        }
    }

    /// A new browser session (its own profile: no cookies of another).
    pub async fn session(&self) -> fantoccini::Client {
        let chromium = find("TVAULT_TEST_CHROMIUM", &["chromium", "chromium-browser"]);
        let profile = tempfile::Builder::new()
            .tempdir_in(self.profile.path())
            .expect("profile");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.keep().display()),
                ],
            }),
        );
        fantoccini::ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("a Chromium session through {}: {e}", self.url))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
