//! What every subcommand gets: global options and the layered configuration.

use anyhow::{Context as _, Result};
use clap::Args;
use std::path::PathBuf;
use vault_core::{Vault, VaultConfig};

/// Options shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Vault directory: config, inventory, local key copies and (by default) the object store.
    #[arg(
        long,
        global = true,
        env = "TVAULT_VAULT",
        default_value = "./vault-data"
    )]
    pub vault: PathBuf,
    /// Config file to use instead of <vault>/config.toml.
    #[arg(long, global = true, env = "TVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Override the source database URL of the config.
    #[arg(long, global = true, env = "TVAULT_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
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
    /// The config: file, then `TVAULT_*` environment (through clap), then flags.
    pub fn config(&self) -> Result<VaultConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Vault::load_config(&self.vault)?,
        };
        if let Some(source) = &self.source {
            config.source = source.clone();
        }
        Ok(config)
    }

    pub async fn open(&self) -> Result<Vault> {
        let config = self.config()?;
        Ok(Vault::open(&self.vault, config).await?)
    }

    pub fn progress(&self) -> bool {
        !self.quiet && !self.json
    }
}
