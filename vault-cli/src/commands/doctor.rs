use crate::context::Global;
use crate::output;
use clap::Args;
use std::process::ExitCode;

/// Check the store: versioning, object lock, deferred deletions, and what they mean.
///
/// Exits 1 when a finding is a problem (such as a bucket default retention that would lock
/// wrapped keys and keep `forget-tenant` from destroying them).
#[derive(Args, Debug)]
pub struct Doctor {}

impl Doctor {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let report = vault.doctor().await?;
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
