//! The `[server]` section of the vault's config file (docs/SERVER.md).

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (`host:port`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The control database (a postgres:// URL or libpq string): tokens, jobs, schedules and
    /// forget requests, shared by every server of the vault.
    pub control: String,
    /// This server's name in the job table (default: the host name); two servers of one vault
    /// need different names, and a server refuses to start under a name another one runs as.
    #[serde(default = "default_node")]
    pub node: String,
    /// TLS certificate chain and private key (PEM); without them the server speaks plain HTTP,
    /// which it allows on a loopback address only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) of client certificates: when set, every TLS client must present one it signed
    /// (in addition to its token).
    pub client_ca: Option<PathBuf>,
    /// The operator's escrow identity file, for support work on tenants that allowed escrow.
    pub escrow_identity: Option<PathBuf>,
    /// Jobs run at once by this server.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How long a job's lease lasts without renewal; a job whose lease ran out is taken over
    /// (or marked interrupted) by any server.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
    /// How long a job waits for the store lease held by another host (a cycle elsewhere, or a
    /// host that died in one, until its lease runs out) before it fails.
    #[serde(default = "default_busy")]
    pub busy_wait_seconds: u64,
    /// How long a signed download link stays valid.
    #[serde(default = "default_link")]
    pub link_seconds: u64,
    /// A tenant's request to be forgotten is carried out this many hours after it was made,
    /// unless cancelled. Without it, an operator must confirm each request.
    pub forget_grace_hours: Option<u64>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<ScheduleConfig>,
}

/// Per-tenant rate limits, counted over the last hour across every server.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_limit")]
    pub exports_per_hour: u32,
    /// Whole restores and confirmed record restores.
    #[serde(default = "default_limit")]
    pub restores_per_hour: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            exports_per_hour: default_limit(),
            restores_per_hour: default_limit(),
        }
    }
}

/// `[[server.schedule]]`: a job run on a cron schedule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    /// `backup`, `retention`, `verify` or `drill`.
    pub kind: String,
    /// Seconds, minutes, hours, day of month, month, day of week (UTC), e.g. `0 0 2 * * *`.
    pub cron: String,
    /// For `drill` and `verify`: one tenant (default: every tenant that allowed escrow for a
    /// drill, the whole store for verify).
    pub tenant: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8450".into()
}
fn default_node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tvault-server".into())
}
fn default_workers() -> usize {
    2
}
fn default_lease() -> u64 {
    30
}
fn default_busy() -> u64 {
    600
}
fn default_link() -> u64 {
    300
}
fn default_limit() -> u32 {
    10
}

impl ServerConfig {
    /// The `[server]` section of a vault config.
    pub fn from_vault(config: &vault_core::VaultConfig) -> Result<ServerConfig> {
        let table = config.server.clone().context(
            "the config has no [server] section (at least `control = \"postgres://…\"`)",
        )?;
        let parsed: ServerConfig = toml::Value::Table(table)
            .try_into()
            .context("parsing the [server] section")?;
        parsed.check()?;
        Ok(parsed)
    }

    fn check(&self) -> Result<()> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            anyhow::bail!("[server] tls_cert and tls_key go together");
        }
        if self.client_ca.is_some() && self.tls_cert.is_none() {
            anyhow::bail!("[server] client_ca needs tls_cert and tls_key");
        }
        if self.workers == 0 || self.lease_seconds < 3 {
            anyhow::bail!("[server] workers must be at least 1 and lease_seconds at least 3");
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.schedules {
            crate::schedule::parse(&s.cron)
                .with_context(|| format!("[[server.schedule]] {:?}: cron {:?}", s.name, s.cron))?;
            if !["backup", "retention", "verify", "drill"].contains(&s.kind.as_str()) {
                anyhow::bail!(
                    "[[server.schedule]] {:?}: kind must be backup, retention, verify or drill",
                    s.name
                );
            }
            if !names.insert(&s.name) {
                anyhow::bail!("[[server.schedule]] {:?} is named twice", s.name);
            }
        }
        Ok(())
    }

    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_seconds)
    }
}
