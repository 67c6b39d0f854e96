use crate::context::Global;
use crate::output;
use clap::Args;
use std::process::ExitCode;

/// Check the store: versioning, object lock, deferred deletions, and what they mean.
///
/// Works before `init` too (`tvault --vault s3://bucket/prefix doctor`), to check a bucket
/// before the first backup goes into it. Exits 1 when a finding is a problem (such as a bucket default retention that would lock
/// wrapped keys and keep `forget-tenant` from destroying them).
#[derive(Args, Debug)]
pub struct Doctor {}

impl Doctor {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let report = match (g.open().await, g.store_url()) {
            (Ok(vault), _) => vault.doctor().await?,
            // Not initialised yet: the bucket alone.
            (Err(e), Some(url)) if is_not_initialised(&e) => {
                let mut config = vault_core::VaultConfig::new("");
                config.store = Some(url.to_string());
                let store = vault_core::store::Store::open(&g.dir(), &config).await?;
                store.doctor(0, 0, vec![]).await?
            }
            (Err(e), _) => return Err(e),
        };
        if g.json {
            output::json(&report)?;
        } else {
            println!("store: {} ({})", report.store, report.kind);
            if let Some(b) = &report.bucket {
                println!(
                    "bucket: versioning {}, object lock {}{}",
                    b.versioning,
                    if b.object_lock { "enabled" } else { "off" },
                    b.default_retention
                        .as_deref()
                        .map(|d| format!(", default retention {d}"))
                        .unwrap_or_default()
                );
            }
            for f in &report.findings {
                println!("{:>8}: {}", f.level, f.message);
            }
            for d in &report.deferred_deletions {
                println!(
                    "deferred: {} ({}) since {}: {}",
                    d.locked.object,
                    d.reason,
                    d.since,
                    d.locked.why()
                );
            }
        }
        Ok(if report.has_problems() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}

fn is_not_initialised(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<vault_core::Error>(),
        Some(vault_core::Error::NotInitialised { .. })
    )
}
