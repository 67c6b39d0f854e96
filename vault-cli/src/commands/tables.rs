use crate::context::Global;
use crate::output;
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use vault_core::source::postgres::catalog::Owner;

/// Show the table plan: tenant, child and global tables.
///
/// Which tables are archived per tenant (directly or through foreign keys) and which are global.
#[derive(Args, Debug)]
pub struct Tables {}

impl Tables {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let plan = vault.plan().await?;
        let mut tenant_tables = vec![];
        let mut child_tables = vec![];
        for t in &plan.tables {
            match &t.owner {
                Owner::Column { column } => tenant_tables.push(
                    json!({ "table": t.display_name(), "tenant_column": column, "rls": t.rls }),
                ),
                Owner::Parent { path, column } => {
                    let mut from = t.display_name();
                    let mut hops = vec![];
                    for h in path {
                        let to = format!("{}.{}", h.ref_schema, h.ref_table);
                        hops.push(format!(
                            "{from}({}) -> {to}({})",
                            h.columns.join(","),
                            h.ref_columns.join(",")
                        ));
                        from = to;
                    }
                    child_tables.push(
                        json!({ "table": t.display_name(), "path": hops, "tenant_column": column }),
                    );
                }
            }
        }
        if g.json {
            output::json(&json!({
                "tenant_tables": tenant_tables, "child_tables": child_tables, "global_tables": plan.global
            }))?;
            return Ok(ExitCode::SUCCESS);
        }
        println!("Tenant tables (tenant column):");
        for t in &tenant_tables {
            println!(
                "  {}  ({})",
                t["table"].as_str().unwrap_or_default(),
                t["tenant_column"].as_str().unwrap_or_default()
            );
        }
        println!("Child tables (owned through foreign keys):");
        for t in &child_tables {
            let path: Vec<&str> = t["path"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            println!(
                "  {}  via {}",
                t["table"].as_str().unwrap_or_default(),
                path.join("; ")
            );
        }
        println!("Global tables (not in tenant archives):");
        for t in &plan.global {
            println!("  {t}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
