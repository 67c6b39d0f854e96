//! What every subcommand gets: global options and the layered configuration.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use vault_core::{Vault, VaultConfig};

/// Options shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The vault: a directory (config, inventory, local key copies and, by default, the object
    /// store), or a store URL such as s3://bucket/prefix, whose local state then lives in
    /// --state-dir.
    #[arg(
        long,
        global = true,
        env = "TVAULT_VAULT",
        default_value = "./vault-data"
    )]
    pub vault: String,
    /// Local state (config, inventory, audit log, key copies) of a vault given by URL.
    /// Default: $XDG_STATE_HOME/tvault/<bucket and prefix> (~/.local/state/tvault/...).
    #[arg(long, global = true, env = "TVAULT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Config file to use instead of <vault>/config.toml.
    #[arg(long, global = true, env = "TVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Override the source database of the config: a postgres:// URL or a libpq key=value
    /// string; PG* variables and ~/.pgpass fill what it leaves out (docs/CONNECTIONS.md).
    #[arg(long, global = true, env = "TVAULT_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
    /// Wait up to this many seconds for another tvault process using this state directory, or
    /// holding the store's lease (a backup, retention, erase or forget elsewhere), instead of
    /// failing at once with exit code 5.
    #[arg(
        long,
        global = true,
        env = "TVAULT_WAIT",
        default_value_t = 0,
        value_name = "SECONDS"
    )]
    pub wait: u64,
    /// Who the audit trail names for this run's operations (default: the OS user, $USER).
    #[arg(long, global = true, env = "TVAULT_ACTOR")]
    pub actor: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log output on stderr (-v info, -vv debug; or TVAULT_LOG=filter).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    fn location(&self) -> vault_core::location::Location {
        vault_core::location::Location {
            vault: self.vault.clone(),
            state_dir: self.state_dir.clone(),
            config: self.config.clone(),
        }
    }

    /// The store URL, when `--vault` is one (`file://` URLs are directories).
    pub fn store_url(&self) -> Option<&str> {
        vault_core::location::Location::store_url_of(&self.vault)
    }

    /// The vault's local directory.
    pub fn dir(&self) -> PathBuf {
        self.location().dir()
    }

    /// The config: file, then `TVAULT_*` environment (through clap), then flags.
    pub fn config(&self) -> Result<VaultConfig> {
        let mut config = self.location().config()?;
        if let Some(source) = &self.source {
            config.source = source.clone();
        }
        Ok(config)
    }

    pub async fn open(&self) -> Result<Vault> {
        let config = self.config()?;
        let wait = std::time::Duration::from_secs(self.wait);
        let mut vault = Vault::open_waiting(&self.dir(), config, wait).await?;
        if let Some(actor) = &self.actor {
            vault.set_actor(actor.clone());
        }
        Ok(vault)
    }

    pub fn progress(&self) -> bool {
        !self.quiet && !self.json
    }
}
