//! Which live table each archived table is restored into, and with what definition.

use crate::archive::manifest::TenantManifest;
use crate::error::{Error, Result};
use crate::source::postgres::catalog::{self, Owner, Plan, TableDef};
use crate::source::postgres::load;

/// Matches every table of the manifest with its live table (after `map`; a bridge or silo
/// tenant's tables, relative to its schema in the archive, are mapped from the empty schema) in
/// the plan of the target database (of the source's rules and `bridge` schemas, or, with no
/// `bridge`, a database of the tenant's own), which is what the restore's SQL is built from: the live table must
/// still hold every archived column with its type, and the same rule must own it. Returns the
/// plan and, in restore order, each manifest table's index with the live definition restricted
/// to the archived columns in snapshot order.
pub(super) async fn restore_targets(
    client: &tokio_postgres::Client,
    config: &crate::VaultConfig,
    manifest: &TenantManifest,
    map: &[(String, String)],
    bridge: Option<&std::collections::BTreeSet<String>>,
    home: Option<&str>,
) -> Result<(Plan, Vec<(usize, TableDef)>)> {
    let mapped = |s: &str| {
        map.iter()
            .find(|(from, _)| from == s)
            .map_or_else(|| s.to_string(), |(_, to)| to.clone())
    };
    // Every table of the target counts (the mapped schema may be outside the backup's
    // selection); declared owners follow their tables into the mapped schemas.
    let mut config = config.clone();
    config.include_schemas.clear();
    config.exclude_schemas.clear();
    config.include_tables.clear();
    config.exclude_tables.clear();
    config.ownership = config
        .ownership
        .into_iter()
        .map(|(name, owner)| match name.split_once('.') {
            Some((s, t)) => (format!("{}.{t}", mapped(s)), owner),
            None => (name, owner),
        })
        .collect();
    // A database of the tenant's own (`bridge` is `None`) is its whole, relative to `home`.
    let plan = match (bridge, home) {
        (Some(bridge), _) => catalog::plan(client, &config, bridge).await?,
        (None, home) => catalog::whole_database(client, home.unwrap_or_default()).await?,
    };
    // Into the pool (no schema of the tenant's own): a table relative to the tenant's schema
    // in the archive (a bridge or silo tenant's, moving back into the pool) goes to the one
    // pooled table of its name.
    let into_pool = bridge.is_some() && home.is_none();
    let mut targets: Vec<(usize, usize, TableDef)> = vec![];
    for (mi, m) in manifest.tables.iter().enumerate() {
        let mut schema = mapped(&m.def.schema);
        if schema.is_empty() && into_pool {
            schema = pooled_home(&plan, &m.def.name)?;
        }
        if schema.is_empty() {
            return Err(Error::Invalid(format!(
                "table {} is relative to its tenant's own schema, and no schema was given to \
                 restore it into",
                m.def.name
            )));
        }
        let name = format!("{schema}.{}", m.def.name);
        let Some(pos) = plan
            .tables
            .iter()
            .position(|t| t.schema == schema && t.name == m.def.name)
        else {
            let reason = if plan.global.contains(&name) || plan.excluded.contains(&name) {
                format!(
                    "{name} is not a tenant table in the target database ({})",
                    plan.rules[&name]
                )
            } else {
                "the table does not exist in the target database".to_string()
            };
            return Err(Error::SchemaMismatch {
                table: name,
                reason,
            });
        };
        if let Some((_, other, _)) = targets.iter().find(|(p, _, _)| *p == pos) {
            return Err(Error::Invalid(format!(
                "--schema-map maps both {} and {} onto {name}",
                manifest.tables[*other].def.display_name(),
                m.def.display_name()
            )));
        }
        let live = &plan.tables[pos];
        // A bridge tenant's table is relative to its schema: placed in the target's.
        let archived = match (m.def.schema.is_empty(), plan.schemas.get(&schema)) {
            (true, Some(own)) => m.def.located_in(&own.home),
            _ => m.def.clone(),
        };
        load::check_schema(client, live, &archived).await?;
        let mut archived_owner = archived.owner.clone();
        if let Owner::Parent { path, .. } = &mut archived_owner {
            path.iter_mut()
                .for_each(|h| h.ref_schema = mapped(&h.ref_schema));
        }
        // The schema the tenant's tables go to whole takes its rows whatever rule found them
        // before (a pooled tenant moving into a schema of its own); any other table must have
        // the rule it had, or SQL built by the new one could reach other tenants' rows.
        // A table that was the tenant's whole (bridge, silo) may go back into a pooled table
        // with the tenant column, which its rows carry: the read-back after the load checks
        // that each of them names the tenant.
        let back_to_pool = into_pool
            && archived_owner == Owner::Schema
            && matches!(&live.owner, Owner::Column { column }
                if archived.archived_columns().any(|c| &c.name == column));
        if bridge.is_some() && home != Some(schema.as_str()) && !back_to_pool {
            same_owner(&archived_owner, &live.owner, &name)?;
        }
        let mut def = live.clone();
        def.columns = archived.archived_columns().cloned().collect();
        if !def
            .primary_key
            .iter()
            .all(|k| def.columns.iter().any(|c| &c.name == k))
        {
            def.primary_key.clear();
        }
        targets.push((pos, mi, def));
    }
    targets.sort_by_key(|(pos, _, _)| *pos);
    Ok((
        plan,
        targets.into_iter().map(|(_, mi, def)| (mi, def)).collect(),
    ))
}

/// The schema of the one pooled table named `name`, where a relative table goes back into the
/// pool.
fn pooled_home(plan: &Plan, name: &str) -> Result<String> {
    let found: Vec<&TableDef> = plan.tables[plan.pool_tables()]
        .iter()
        .filter(|t| t.name == name && matches!(t.owner, Owner::Column { .. }))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.schema.clone()),
        [] => Err(Error::SchemaMismatch {
            table: name.to_string(),
            reason: "no pooled table with the tenant column has this name: the table of the \
                     tenant's own schema has nowhere to go back to in the pool"
                .into(),
        }),
        many => Err(Error::Invalid(format!(
            "pooled tables {} all have the name {name}: restore with --schema-map =SCHEMA to \
             say which",
            many.iter()
                .map(|t| t.display_name())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Refuses when the live owner rule of a table differs from the archived one: SQL built by the
/// new rule could reach rows of other tenants.
pub(crate) fn same_owner(archived: &Owner, live: &Owner, name: &str) -> Result<()> {
    if archived == live {
        return Ok(());
    }
    Err(Error::SchemaMismatch {
        table: name.to_string(),
        reason: format!(
            "its owner was {} at backup time and is {} now; restoring by the new rule could \
             touch rows of other tenants",
            archived.describe(name),
            live.describe(name)
        ),
    })
}
