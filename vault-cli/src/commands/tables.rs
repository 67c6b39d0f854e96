use crate::context::Global;
use crate::output;
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use vault_core::source::postgres::catalog::{self, Owner};

/// Show the table plan: which tables each tenant's archive holds, and why.
///
/// Every table with the rule that decided its owner: the tenant column, a foreign-key path to a
/// table that has it (the shortest; when several exist, the others are listed and each backup
/// counts the rows on which they disagree), a declaration in [ownership] of config.toml, or
/// none (global). Partitioned tables are one table; their partitions are not listed.
#[derive(Args, Debug)]
pub struct Tables {}

impl Tables {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        let plan = vault.plan().await?;
        let rule = |name: &str| plan.rules.get(name).cloned().unwrap_or_default();
        let mut tenant_tables = vec![];
        let mut child_tables = vec![];
        for t in &plan.tables[plan.pool_tables()] {
            let name = t.display_name();
            match &t.owner {
                // Listed per schema below.
                Owner::Schema => {}
                Owner::Column { column } => tenant_tables.push(
                    json!({ "table": name, "tenant_column": column, "rls": t.rls, "rule": rule(&name) }),
                ),
                Owner::Expression { tenant } => tenant_tables.push(
                    json!({ "table": name, "tenant_expression": tenant, "rls": t.rls, "rule": rule(&name) }),
                ),
                Owner::Parent { path, column } => {
                    let hops = catalog::hops(&name, path);
                    let others: Vec<String> = plan
                        .ambiguous
                        .iter()
                        .filter(|a| a.schema == t.schema && a.table == t.name)
                        .map(|a| {
                            Owner::Parent { path: a.other.clone(), column: column.clone() }
                                .describe(&name)
                        })
                        .collect();
                    child_tables.push(json!({
                        "table": name, "path": hops, "tenant_column": column,
                        "rule": rule(&name), "other_paths": others,
                    }));
                }
            }
        }
        let global: Vec<_> = plan
            .global
            .iter()
            .map(|t| json!({ "table": t, "rule": rule(t) }))
            .collect();
        let schemas: Vec<_> = plan
            .schemas
            .iter()
            .map(|(schema, own)| {
                let tables: Vec<&str> = plan.tables[own.tables.clone()]
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect();
                json!({ "schema": schema, "tables": tables })
            })
            .collect();
        if g.json {
            output::json(&json!({
                "tenant_schemas": schemas,
                "tenant_tables": tenant_tables, "child_tables": child_tables,
                "global_tables": plan.global, "global": global, "excluded_tables": plan.excluded,
            }))?;
            return Ok(ExitCode::SUCCESS);
        }
        let show =
            |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
        println!("Tenant tables:");
        for t in &tenant_tables {
            println!("  {}  ({})", show(t, "table"), show(t, "rule"));
        }
        println!("Child tables (owned through foreign keys):");
        for t in &child_tables {
            println!("  {}  ({})", show(t, "table"), show(t, "rule"));
            for o in t["other_paths"].as_array().into_iter().flatten() {
                println!("      also: {}", o.as_str().unwrap_or_default());
            }
        }
        if !schemas.is_empty() {
            println!("Tenant schemas (bridge: every table is its tenant's):");
            for s in &schemas {
                let tables = s["tables"].as_array().map_or(0, Vec::len);
                println!("  {}  ({tables} tables)", show(s, "schema"));
            }
        }
        println!("Global tables (not in tenant archives):");
        for t in &global {
            println!("  {}  ({})", show(t, "table"), show(t, "rule"));
        }
        if !plan.excluded.is_empty() {
            println!("Excluded tables (declared):");
            for t in &plan.excluded {
                println!("  {t}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
