//! `tvault-server` in the test process: started on `127.0.0.1:0` over a vault directory whose
//! config has a `[server]` section, against the real PostgreSQL (its control database is a
//! throwaway one) and driven over HTTP with a blocking client.

use crate::{TestDb, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vault_server::{ManualClock, Options, Server, ServerConfig};

/// A running server and the runtime it runs on.
pub struct TestServer {
    rt: Option<tokio::runtime::Runtime>,
    server: Option<Server>,
    pub url: String,
    http: reqwest::blocking::Client,
}

/// Appends a `[server]` section to the vault's config file.
pub fn configure_server(vault_dir: &Path, control: &TestDb, extra: &str) {
    let path = vault_dir.join("config.toml");
    let mut text = std::fs::read_to_string(&path).expect("config.toml");
    text.push_str(&format!(
        "\n[server]\ncontrol = {:?}\nlease_seconds = 3\n{extra}\n",
        control.url
    ));
    std::fs::write(&path, text).expect("writing config.toml");
}

impl TestServer {
    /// Starts a server on `vault_dir` as node `node`, with `clock` (default: the system's).
    pub fn start(vault_dir: &Path, node: &str, clock: Option<Arc<ManualClock>>) -> TestServer {
        // TVAULT_TEST_LOG=filter shows the servers' logs on stderr.
        if let Ok(filter) = std::env::var("TVAULT_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = vault_dir.to_path_buf();
        let node = node.to_string();
        let server = rt.block_on(async move {
            let config = vault_core::Vault::load_config(&dir).expect("config");
            let mut server_config = ServerConfig::from_vault(&config).expect("[server]");
            server_config.node = node;
            let vault = vault_core::Vault::open_waiting(&dir, config, Duration::from_secs(20))
                .await
                .expect("opening the vault");
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let mut options = Options {
                tick: Duration::from_millis(100),
                ..Default::default()
            };
            if let Some(c) = clock {
                options.clock = c;
            }
            Server::start(vault, server_config, options, listener)
                .await
                .expect("starting tvault-server")
        });
        let url = format!("http://{}", server.addr());
        TestServer {
            rt: Some(rt),
            server: Some(server),
            url,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("http client"),
        }
    }

    /// Stops as a crash would: no job is ended, leases run out.
    pub fn kill(mut self) {
        if let Some(s) = self.server.take() {
            s.kill();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    /// Any HTTP request; returns the status and the JSON body (`Null` when not JSON).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let mut req = self.http.request(method.parse().expect("method"), &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request that must answer `expect`; returns its body.
    #[track_caller]
    pub fn expect(
        &self,
        expect: u16,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Value {
        let (status, v) = self.call(method, path, Some(token), body);
        assert_eq!(status, expect, "{method} {path}: {v:#}");
        v
    }

    /// Raw bytes of a GET (no token).
    pub fn download(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .expect("download");
        let status = resp.status().as_u16();
        (status, resp.bytes().map(|b| b.to_vec()).unwrap_or_default())
    }

    /// Waits for a job to end; returns it.
    #[track_caller]
    pub fn wait_job(&self, token: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.expect(200, "GET", &format!("/v1/jobs/{id}"), token, None);
            let state = job["state"].as_str().unwrap_or_default().to_string();
            if !["queued", "running"].contains(&state.as_str()) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not end: {job:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let (Some(server), Some(rt)) = (self.server.take(), self.rt.as_ref()) {
            rt.block_on(server.shutdown(Duration::from_secs(10)));
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// Makes a token with the server's own code path (`tvault-server token add`).
pub fn make_token(server: &TestServer, operator: &str, role: &str, tenants: &[&str]) -> String {
    let v = server.expect(
        201,
        "POST",
        "/v1/tokens",
        operator,
        Some(&serde_json::json!({ "role": role, "tenants": tenants, "label": role })),
    );
    v["token"].as_str().expect("token").to_string()
}

/// The first operator token of a vault, made as an operator would before starting the server.
pub fn bootstrap_operator(vault_dir: &Path) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = vault_core::Vault::load_config(vault_dir).expect("config");
        let server = ServerConfig::from_vault(&config).expect("[server]");
        let control = vault_server::control::Control::open(&server.control)
            .await
            .expect("control database");
        let vault = vault_core::Vault::open_waiting(vault_dir, config, Duration::from_secs(20))
            .await
            .expect("vault");
        let made = vault_server::routes::make_token(&control, &vault, "operator", &[], "bootstrap")
            .await
            .expect("token");
        made["token"].as_str().expect("token").to_string()
    })
}
