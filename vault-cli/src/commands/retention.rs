use crate::context::Global;
use crate::output;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use time::OffsetDateTime;

/// Apply retention policies.
#[derive(Subcommand, Debug)]
pub enum RetentionCmd {
    Apply(Apply),
}

fn instant(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())
}

/// Delete the snapshots each tenant's policy lets go (with the rule that keeps or drops each),
/// then the packs no kept snapshot references. Tenants under legal hold lose nothing.
#[derive(Args, Debug)]
pub struct Apply {
    #[arg(long)]
    tenant: Option<String>,
    /// Show the decisions; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Evaluate at this instant (RFC 3339) instead of now; min-age still uses the real clock.
    #[arg(long, value_parser = instant)]
    now: Option<OffsetDateTime>,
}

impl RetentionCmd {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let RetentionCmd::Apply(a) = self;
        let vault = g.open().await?;
        let report = vault
            .apply_retention(a.tenant.as_deref(), a.dry_run, a.now)
            .await?;
        if g.json {
            output::json(&report)?;
            return Ok(ExitCode::SUCCESS);
        }
        for t in &report.tenants {
            match &t.held {
                Some(reason) => println!("{}: legal hold ({reason}), nothing deleted", t.tenant),
                None => println!("{}:", t.tenant),
            }
            for d in &t.decisions {
                let verb = if d.keep {
                    "keep  "
                } else if report.dry_run {
                    "would delete"
                } else {
                    "delete"
                };
                println!("  {verb} {}  {}", d.snapshot, d.reasons.join("; "));
            }
        }
        println!(
            "{} {} objects, {} freed",
            if report.dry_run {
                "dry run, nothing deleted; counted"
            } else {
                "deleted"
            },
            report.objects_deleted,
            output::human_bytes(report.bytes_freed)
        );
        output::deferred(&report.deferred);
        Ok(ExitCode::SUCCESS)
    }
}
