//! tenant-vault core: per-tenant encrypted backups of multi-tenant PostgreSQL databases.
//!
//! Every operation lives here (backup, restore, verify, tenant keys); the `tvault` CLI and the
//! server only parse input and render output. A backup cycle reads every tenant's rows out of a
//! pooled database from one consistent snapshot and writes one archive per tenant: blocks of COPY
//! text rows, zstd-compressed and age-encrypted to a data key wrapped to the tenant's own keys.
//!
//! ```no_run
//! # async fn demo() -> vault_core::Result<()> {
//! use vault_core::{tenant::Placement, BackupOptions, Vault, VaultConfig};
//! let dir = std::path::Path::new("./vault-data");
//! let vault = Vault::init(dir, VaultConfig::new("postgres://backup@localhost/app")).await?;
//! vault.add_tenant("acme", &["age1…".to_string()], false, Placement::Pool).await?;
//! let report = vault.backup(BackupOptions::default()).await?;
//! println!("snapshot {}", report.snapshot);
//! # Ok(()) }
//! ```

pub mod archive;
pub mod audit;
pub mod backup;
pub mod config;
pub mod copytext;
pub mod drill;
pub mod erase;
pub mod error;
pub mod export;
mod faults;
pub mod forget;
pub mod inventory;
pub mod layout;
pub mod lease;
pub mod ledger;
pub mod location;
mod locks;
pub mod memory;
pub mod policy;
pub mod prune;
pub mod records;
pub mod restore;
pub mod retention;
pub mod source;
pub mod sql;
pub mod store;
pub mod tenant;
pub mod vault;
pub mod verify;

pub use backup::{BackupOptions, BackupReport, Progress, ProgressFn};
pub use config::VaultConfig;
pub use error::{Error, Result};
pub use tenant::TenantRecord;
pub use vault::Vault;
