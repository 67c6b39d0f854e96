use crate::context::Global;
use crate::output;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Manage the local inventory (an index of the object store).
#[derive(Subcommand, Debug)]
pub enum InventoryCmd {
    Rebuild(Rebuild),
}

/// Rebuild the inventory from the object store. Without keys: tenants, snapshots and block
/// locations (enough to list, verify and restore whole tenants). With a tenant's identity: also
/// its record index (for find/show/restore-records) and its id key (for further backups).
#[derive(Args, Debug)]
pub struct Rebuild {
    /// TENANT=FILE: unlock the record-level part of this tenant (repeatable).
    #[arg(long, value_name = "TENANT=FILE")]
    identity: Vec<String>,
}

impl InventoryCmd {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let InventoryCmd::Rebuild(r) = self;
        let mut ids = BTreeMap::new();
        for spec in &r.identity {
            let (tenant, file) = spec
                .rsplit_once('=')
                .with_context(|| format!("--identity {spec:?}: expected TENANT=FILE"))?;
            ids.insert(
                tenant.to_string(),
                keys::TenantIdentities::from_file(&PathBuf::from(file))?,
            );
        }
        let vault = g.open().await?;
        let report = vault.rebuild_inventory(&ids).await?;
        if g.json {
            output::json(&report)?;
        } else {
            println!(
                "rebuilt: {} tenants, {} tenant snapshots, {} record key sets",
                report.tenants, report.snapshots, report.key_sets
            );
            if !report.tenants_without_keys.is_empty() {
                println!(
                    "{} tenant(s) need their identity for record lookups and further backups: {}",
                    report.tenants_without_keys.len(),
                    report.tenants_without_keys.join(", ")
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
