//! Where a vault is, as front ends are told: `--vault` (a directory, or a store URL whose
//! local state lives elsewhere), `--state-dir` and `--config`. The CLI and the server resolve
//! them the same way here.

use crate::error::{Error, Result};
use crate::{Vault, VaultConfig};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Location {
    /// A directory (`file://` allowed), or a store URL such as `s3://bucket/prefix`.
    pub vault: String,
    /// The local state of a vault given by URL (default: under `$XDG_STATE_HOME/tvault/`).
    pub state_dir: Option<PathBuf>,
    /// A config file to use instead of `<state>/config.toml`.
    pub config: Option<PathBuf>,
}

impl Location {
    /// The store URL, when `vault` is one (`file://` URLs are directories).
    pub fn store_url(&self) -> Option<&str> {
        Location::store_url_of(&self.vault)
    }

    /// [`Location::store_url`] of a `--vault` value.
    pub fn store_url_of(vault: &str) -> Option<&str> {
        (vault.contains("://") && !vault.starts_with("file://")).then_some(vault)
    }

    /// The vault's local state directory.
    pub fn dir(&self) -> PathBuf {
        if let Some(url) = self.store_url() {
            if let Some(d) = &self.state_dir {
                return d.clone();
            }
            let base = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .unwrap_or_else(|| PathBuf::from("."));
            let name: String = url
                .chars()
                .map(
                    |c| match c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        true => c,
                        false => '_',
                    },
                )
                .collect();
            return base.join("tvault").join(name);
        }
        PathBuf::from(self.vault.strip_prefix("file://").unwrap_or(&self.vault))
    }

    /// The config file (`--config`, or the state directory's), checked against the store URL.
    pub fn config(&self) -> Result<VaultConfig> {
        let config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Invalid(format!("reading the config {}: {e}", path.display()))
                })?;
                toml::from_str(&text)
                    .map_err(|e| Error::Invalid(format!("parsing {}: {e}", path.display())))?
            }
            None => Vault::load_config(&self.dir())?,
        };
        if let Some(url) = self.store_url() {
            if config.store.as_deref() != Some(url) {
                return Err(Error::Invalid(format!(
                    "the state directory {} belongs to the vault at {}, not {url}: pass --state-dir",
                    self.dir().display(),
                    config.store.as_deref().unwrap_or("its own store/ directory"),
                )));
            }
        }
        Ok(config)
    }
}
