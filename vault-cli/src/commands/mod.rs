//! One file per subcommand; each holds its `Args` and a `run`.

mod audit;
mod backup;
mod doctor;
mod erase;
mod export;
mod forget;
mod hold;
mod init;
mod inventory;
mod keygen;
mod policy;
mod records;
mod restore;
mod retention;
mod snapshots;
mod tables;
mod tenant;
mod upgrade;
mod verify;

use crate::context::Global;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  operational error (database or store unreachable, I/O)
  2  usage error (bad flags, invalid tenant id or key)
  3  integrity error (wrong key, corrupt or truncated object, checksum or schema mismatch,
     or `verify` found problems)
  4  not found (unknown tenant or snapshot, vault not initialised)
  5  busy: another tvault process uses this state directory, or another host holds the store's
     lease (a backup, retention, erase or forget); try again, or pass --wait SECONDS
  6  partial backup: some tenants failed (each named, with why), the others were backed up

Environment: TVAULT_VAULT, TVAULT_STATE_DIR, TVAULT_CONFIG, TVAULT_SOURCE, TVAULT_WAIT override the config;
TVAULT_LOG sets the log filter. An s3:// vault (--vault s3://bucket/prefix) reads region,
endpoint and credentials from the standard AWS variables and files (AWS_REGION,
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_PROFILE, ...) and `[s3]` in config.toml. Quick start:
  tvault init --source postgres://backup@localhost/app
  tvault keygen -o acme.key                       # (the tenant does this and sends the public key)
  tvault tenant add acme --recipient age1...
  tvault backup --all
  tvault restore acme --snapshot latest --identity acme.key
  tvault export acme -o acme.tvx                  # sealed: only acme's key opens it
  tvault open acme.tvx --identity acme.key -o acme/";

/// tenant-vault: per-tenant encrypted backups of multi-tenant PostgreSQL databases.
///
/// Each backup cycle reads every tenant's rows from one consistent snapshot and writes one
/// archive per tenant, compressed with zstd and encrypted to keys the tenant supplies (age).
#[derive(Parser, Debug)]
#[command(name = "tvault", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    Init(init::Init),
    Keygen(keygen::Keygen),
    Tables(tables::Tables),
    #[command(subcommand)]
    Tenant(tenant::TenantCmd),
    Backup(backup::Backup),
    Snapshots(snapshots::Snapshots),
    Restore(restore::Restore),
    Verify(verify::Verify),
    Doctor(doctor::Doctor),
    Find(records::Find),
    Show(records::Show),
    Diff(records::Diff),
    RestoreRecords(records::RestoreRecords),
    #[command(subcommand)]
    Inventory(inventory::InventoryCmd),
    Audit(audit::Audit),
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    #[command(subcommand)]
    Hold(hold::HoldCmd),
    #[command(subcommand)]
    Retention(retention::RetentionCmd),
    ForgetTenant(forget::ForgetTenant),
    Erase(erase::Erase),
    Upgrade(upgrade::Upgrade),
    Export(export::Export),
    Open(export::Open),
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let g = &self.global;
        match self.cmd {
            Cmd::Init(c) => c.run(g).await,
            Cmd::Keygen(c) => c.run(g).await,
            Cmd::Tables(c) => c.run(g).await,
            Cmd::Tenant(c) => c.run(g).await,
            Cmd::Backup(c) => c.run(g).await,
            Cmd::Snapshots(c) => c.run(g).await,
            Cmd::Restore(c) => c.run(g).await,
            Cmd::Verify(c) => c.run(g).await,
            Cmd::Doctor(c) => c.run(g).await,
            Cmd::Find(c) => c.run(g).await,
            Cmd::Show(c) => c.run(g).await,
            Cmd::Diff(c) => c.run(g).await,
            Cmd::RestoreRecords(c) => c.run(g).await,
            Cmd::Inventory(c) => c.run(g).await,
            Cmd::Audit(c) => c.run(g).await,
            Cmd::Policy(c) => c.run(g).await,
            Cmd::Hold(c) => c.run(g).await,
            Cmd::Retention(c) => c.run(g).await,
            Cmd::ForgetTenant(c) => c.run(g).await,
            Cmd::Erase(c) => c.run(g).await,
            Cmd::Upgrade(c) => c.run(g).await,
            Cmd::Export(c) => c.run(g).await,
            Cmd::Open(c) => c.run(g).await,
        }
    }
}
