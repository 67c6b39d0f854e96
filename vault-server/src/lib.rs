//! `tvault-server`: tenants, support staff and schedules over an authenticated HTTP API.
//!
//! The server is a front end of `vault-core`, as the CLI is: it parses requests, checks who
//! may make them ([`auth`]), runs long operations as jobs ([`jobs`]) on a schedule or on
//! request ([`schedule`]), and renders JSON. What it shares with other servers of the same
//! vault (tokens, jobs, schedules, forget requests) lives in a PostgreSQL control database
//! ([`control`]). The API is specified in docs/SERVER.md and served at `/v1/openapi.json`.

pub mod auth;
pub mod config;
pub mod console;
pub mod control;
pub mod jobs;
pub mod metrics;
pub mod routes;
pub mod schedule;

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use vault_core::Vault;

pub use config::ServerConfig;
pub use schedule::{Clock, ManualClock, SystemClock};

/// What every handler and job of one server shares (cheap to clone).
#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub vault: Vault,
    pub control: Arc<control::Control>,
    pub config: ServerConfig,
    /// Signs download links and record-restore confirmations (shared by the vault's servers).
    pub secret: [u8; 32],
    /// The operator's escrow identity, for support work on tenants that allowed escrow.
    pub escrow: Option<keys::TenantIdentities>,
    pub metrics: metrics::Metrics,
    pub clock: Arc<dyn Clock>,
    /// Keys sent with requests, held in memory for the job they were sent for, by job id:
    /// taken (and dropped, which zeroizes them) when the job runs.
    pub keys: std::sync::Mutex<HashMap<String, keys::TenantIdentities>>,
    /// The operation handles of the jobs running here, by job id (to cancel them).
    pub running: std::sync::Mutex<HashMap<String, Vault>>,
    /// Wakes the workers when a job is submitted here.
    pub wake: tokio::sync::Notify,
    /// Where finished exports wait for their download (owner-only).
    pub exports: PathBuf,
    pub stopping: AtomicBool,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// How a server is started beyond its config (tests inject a clock and a faster tick).
pub struct Options {
    pub clock: Arc<dyn Clock>,
    /// How often the scheduler and the lease reaper look.
    pub tick: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            tick: Duration::from_secs(1),
        }
    }
}

/// A running server.
pub struct Server {
    app: App,
    addr: std::net::SocketAddr,
    handle: axum_server::Handle<std::net::SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Starts serving on `listener` with workers, the scheduler and the lease reaper.
    pub async fn start(
        vault: Vault,
        config: ServerConfig,
        options: Options,
        listener: std::net::TcpListener,
    ) -> Result<Server> {
        let tls = tls_config(&config)?;
        let addr = listener.local_addr()?;
        if tls.is_none() && !addr.ip().is_loopback() {
            anyhow::bail!(
                "refusing to serve plain HTTP on {addr}: set [server] tls_cert and tls_key, or \
                 listen on a loopback address"
            );
        }
        let control = Arc::new(control::Control::open(&config.control).await?);
        let secret = control.secret().await?;
        control.register_node(&config.node, config.lease()).await?;
        let interrupted = control.interrupt_node(&config.node).await?;
        if interrupted > 0 {
            tracing::warn!(interrupted, node = %config.node, "jobs interrupted by the last stop");
        }
        // The servers of the vault share the memory of the versions last written, so that
        // each takes what another wrote (a policy, a hold, a rotated key).
        vault.share_digests(Arc::new(control::Digests(control.clone())));
        let escrow = match &config.escrow_identity {
            Some(path) => Some(
                keys::TenantIdentities::from_file(path)
                    .with_context(|| format!("[server] escrow_identity {}", path.display()))?,
            ),
            None => None,
        };
        let exports = vault.dir().join("server-exports");
        std::fs::create_dir_all(&exports)
            .with_context(|| format!("creating {}", exports.display()))?;
        restrict(&exports)?;
        let app = App(Arc::new(Inner {
            vault,
            control,
            config,
            secret,
            escrow,
            metrics: metrics::Metrics::new(),
            clock: options.clock,
            keys: Default::default(),
            running: Default::default(),
            wake: Default::default(),
            exports,
            stopping: AtomicBool::new(false),
        }));
        listener.set_nonblocking(true)?;
        let handle = axum_server::Handle::new();
        let router = routes::router(app.clone());
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let mut tasks = vec![];
        match tls {
            Some(tls) => {
                let server = axum_server::from_tcp_rustls(listener, tls)?.handle(handle.clone());
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = server.serve(service).await {
                        tracing::error!("serving: {e}");
                    }
                }));
            }
            None => {
                let server = axum_server::from_tcp(listener)?.handle(handle.clone());
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = server.serve(service).await {
                        tracing::error!("serving: {e}");
                    }
                }));
            }
        }
        for _ in 0..app.config.workers {
            tasks.push(tokio::spawn(jobs::worker(app.clone())));
        }
        tasks.push(tokio::spawn(jobs::reaper(app.clone(), options.tick)));
        tasks.push(tokio::spawn(schedule::scheduler(app.clone(), options.tick)));
        tracing::info!(%addr, node = %app.config.node, "tvault-server listening");
        Ok(Server {
            app,
            addr,
            handle,
            tasks,
        })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Stops taking requests and jobs, waits up to `grace` for the running jobs to finish (open
    /// connections get up to 5 s of it) and stops; a job still running then is reported
    /// interrupted when this server starts again.
    pub async fn shutdown(self, grace: Duration) {
        self.app
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.app.wake.notify_waiters();
        // Open connections get a few seconds; running jobs get `grace`.
        self.handle
            .graceful_shutdown(Some(grace.min(Duration::from_secs(5))));
        let deadline = tokio::time::Instant::now() + grace;
        while !self
            .app
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Err(e) = self
            .app
            .control
            .unregister_node(&self.app.config.node)
            .await
        {
            tracing::warn!("unregistering this server: {e:#}");
        }
        self.kill();
    }

    /// Stops at once, as a crash would: jobs are left running in the control database until
    /// their lease runs out (tests use it to stand for a dead server).
    pub fn kill(self) {
        self.handle.shutdown();
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn restrict(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

/// The rustls config of `[server]`: its certificate, and client certificates required when
/// `client_ca` is set.
fn tls_config(config: &ServerConfig) -> Result<Option<axum_server::tls_rustls::RustlsConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading {}", ca.display()))?
            {
                roots.add(c.with_context(|| format!("parsing {}", ca.display()))?)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .context("[server] client_ca")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder
        .with_single_cert(chain, key)
        .context("[server] tls_cert and tls_key")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(tls),
    )))
}
