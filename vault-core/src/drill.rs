//! Restore drills: proof that a tenant's latest snapshot restores, made without touching its
//! live rows. The snapshot is restored into a new scratch schema of the source (made from the
//! snapshot's DDL), checked row by row against the manifest's counts and checksums as every
//! restore is, and the scratch schema is dropped again, whether the restore worked or not.

use crate::error::Result;
use crate::restore::RestoreOptions;
use crate::source::postgres::{self as pg, ddl};
use crate::Vault;
use serde::Serialize;

/// Scratch schemas of drills are named with this prefix and a random suffix.
pub const SCRATCH_PREFIX: &str = "tvault_drill_";

#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub tenant: String,
    pub snapshot: String,
    /// The scratch schema the snapshot was restored into (dropped since).
    pub scratch: String,
    pub tables: usize,
    pub rows: u64,
    /// Every table's row count and checksum matched the manifest.
    pub ok: bool,
    pub duration_ms: u64,
}

impl Vault {
    /// Restores `tenant`'s latest snapshot into a scratch schema, checks it against the
    /// manifest, and drops the scratch schema. An `Err` is a drill that failed; the live rows
    /// of every tenant are left alone either way.
    pub async fn restore_drill(
        &self,
        tenant: &str,
        identity: &keys::TenantIdentities,
    ) -> Result<DrillReport> {
        let started = std::time::Instant::now();
        self.tenant(tenant)?;
        let mut suffix = [0u8; 6];
        rand::fill(&mut suffix);
        let scratch = format!("{SCRATCH_PREFIX}{}", hex::encode(suffix));
        let opts = RestoreOptions {
            tenant: tenant.to_string(),
            snapshot: "latest".into(),
            into_schema: Some(scratch.clone()),
            ..Default::default()
        };
        let restored = self.restore(&opts, identity).await;
        // The scratch schema goes, whatever happened; the restore's own result comes first.
        // `into_schema` without `into_database` restores into the source, whatever the
        // tenant's model: the scratch schema is there.
        let client = pg::connect(&self.config().source).await?;
        let dropped = ddl::drop_created(&client, &scratch).await;
        let report = restored?;
        dropped?;
        Ok(DrillReport {
            tenant: report.tenant,
            snapshot: report.snapshot,
            scratch,
            tables: report.tables.len(),
            rows: report.tables.iter().filter_map(|t| t.rows_restored).sum(),
            ok: report.ok && report.tables.iter().all(|t| t.checksum_ok.unwrap_or(false)),
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
}
