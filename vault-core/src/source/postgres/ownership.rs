//! Who owns each table: a declaration in `[ownership]`, the tenant column, the shortest
//! foreign-key path to a table that has it, or nobody (global). The rules are documented in
//! `docs/RESTORE.md`; this module is pure logic over the catalog that `catalog` read.

use super::catalog::{
    read_tables, Ambiguity, Home, Hop, OwnSchema, Owner, Plan, RawTable, Reference, TableDef,
};
use crate::config::{DeclaredOwner, OwnerKeyword};
use crate::error::{DbContext, Error, Result};
use crate::VaultConfig;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use tokio_postgres::Client;

/// Reads the catalog and builds the plan for `config`. Every table of a schema in `bridge` (the
/// bridge tenants' own schemas) is its tenant's; the others follow the pool's rules.
pub async fn plan(
    client: &Client,
    config: &VaultConfig,
    bridge: &BTreeSet<String>,
) -> Result<Plan> {
    let (own, pooled): (Vec<RawTable>, Vec<RawTable>) = read_tables(client)
        .await?
        .into_iter()
        .partition(|t| bridge.contains(&t.schema));
    let plan = decide(pooled, config)?;
    add_own(client, plan, own, |t| t.schema.clone()).await
}

/// The plan of a silo tenant's database: every table of every schema is the tenant's, under
/// one entry of `Plan::schemas` keyed by `home` (the schema its tables are relative to). The
/// pool's rules and `[ownership]` (which name the source's tables) do not apply.
pub async fn whole_database(client: &Client, home: &str) -> Result<Plan> {
    let own = read_tables(client).await?;
    add_own(client, Plan::default(), own, |_| home.to_string()).await
}

/// Adds tables that are one tenant's whole to `plan`, grouped by `group` (the schema they are
/// relative to), each group in restore order after the pooled tables.
async fn add_own(
    client: &Client,
    mut plan: Plan,
    own: Vec<RawTable>,
    group: impl Fn(&RawTable) -> String,
) -> Result<Plan> {
    let mut by_schema: BTreeMap<String, Vec<TableDef>> = BTreeMap::new();
    for t in own {
        plan.references.extend(t.fks.iter().map(|fk| Reference {
            schema: t.schema.clone(),
            table: t.name.clone(),
            fk: fk.clone(),
        }));
        let name = t.display_name();
        plan.rules.insert(name, "tenant schema: every row".into());
        by_schema.entry(group(&t)).or_default().push(TableDef {
            schema: t.schema,
            name: t.name,
            columns: t.columns,
            primary_key: t.primary_key,
            owner: Owner::Schema,
            foreign_keys: t.fks,
            rls: t.rls_applies,
        });
    }
    let names: Vec<&String> = by_schema.keys().collect();
    let quoted: Vec<String> = client
        .query(
            "SELECT quote_ident(s) FROM unnest($1::text[]) WITH ORDINALITY u(s, i) ORDER BY i",
            &[&names],
        )
        .await
        .db(|| "quoting the tenant schemas' names".into())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for ((name, tables), quoted) in by_schema.into_iter().zip(quoted) {
        let start = plan.tables.len();
        plan.tables.extend(restore_order(tables));
        let tables = start..plan.tables.len();
        let home = Home {
            name: name.clone(),
            quoted,
        };
        plan.schemas.insert(name, OwnSchema { home, tables });
    }
    Ok(plan)
}

/// What decided a table's fate before foreign-key paths are searched.
enum Fate {
    Owned(Owner, String),
    Global(String),
    Excluded,
    Undecided,
}

pub(super) fn decide(raw: Vec<RawTable>, config: &VaultConfig) -> Result<Plan> {
    let index: HashMap<(String, String), usize> = raw
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.schema.clone(), t.name.clone()), i))
        .collect();
    for name in config.ownership.keys() {
        let known = name
            .split_once('.')
            .is_some_and(|(s, t)| index.contains_key(&(s.to_string(), t.to_string())));
        if !known {
            return Err(Error::Invalid(format!(
                "[ownership] names {name:?}, which is not a table of the database (write schema.table)"
            )));
        }
    }
    let has_tenant_col = |t: &RawTable| {
        t.columns
            .iter()
            .any(|c| c.name == config.tenant_column && !c.generated)
    };
    let mut fates = Vec::with_capacity(raw.len());
    for t in &raw {
        let fate = match config.ownership.get(&t.display_name()) {
            Some(DeclaredOwner::Keyword(OwnerKeyword::Global)) => {
                Fate::Global("declared global".into())
            }
            Some(DeclaredOwner::Keyword(OwnerKeyword::Excluded)) => Fate::Excluded,
            Some(DeclaredOwner::Expression(e)) => Fate::Owned(
                Owner::Expression {
                    tenant: e.tenant.clone(),
                },
                "declared expression".into(),
            ),
            Some(DeclaredOwner::Via(v)) => {
                let owner = declared_path(&raw, &index, t, &v.via, config)?;
                Fate::Owned(owner, "declared foreign-key path".into())
            }
            None if has_tenant_col(t) => Fate::Owned(
                Owner::Column {
                    column: config.tenant_column.clone(),
                },
                "tenant".into(),
            ),
            None => Fate::Undecided,
        };
        fates.push(fate);
    }
    // Paths end at tables that hold the tenant column and were not declared otherwise.
    let endpoint: Vec<bool> = fates
        .iter()
        .map(|f| matches!(f, Fate::Owned(Owner::Column { .. }, _)))
        .collect();

    let mut plan = Plan::default();
    let mut tables = vec![];
    for (i, (t, fate)) in raw.iter().zip(fates).enumerate() {
        let name = t.display_name();
        let fate = match fate {
            Fate::Undecided => {
                let mut paths = candidate_paths(&raw, &index, &endpoint, i);
                if paths.is_empty() {
                    Fate::Global("no foreign-key path to a table with the tenant column".into())
                } else {
                    // Shortest first; equal lengths keep foreign-key order (the tie-break).
                    paths.sort_by_key(|p| p.len());
                    let chosen = paths.remove(0);
                    let rule = if paths.is_empty() {
                        "foreign-key path".to_string()
                    } else {
                        format!("shortest of {} foreign-key paths", paths.len() + 1)
                    };
                    if selected(config, &t.schema, &t.name) {
                        for other in paths {
                            plan.ambiguous.push(Ambiguity {
                                schema: t.schema.clone(),
                                table: t.name.clone(),
                                chosen: chosen.clone(),
                                other,
                            });
                        }
                    }
                    Fate::Owned(
                        Owner::Parent {
                            path: chosen,
                            column: config.tenant_column.clone(),
                        },
                        rule,
                    )
                }
            }
            f => f,
        };
        if !selected(config, &t.schema, &t.name) {
            continue;
        }
        match fate {
            Fate::Excluded => {
                plan.rules.insert(name.clone(), "declared excluded".into());
                plan.excluded.push(name);
            }
            Fate::Global(rule) => {
                plan.rules.insert(name.clone(), rule);
                plan.global.push(name);
            }
            Fate::Owned(owner, rule) => {
                // A join through a parent with row-level security hides rows just as well.
                let rls = t.rls_applies
                    || matches!(&owner, Owner::Parent { path, .. } if path.iter().any(|h| {
                        index
                            .get(&(h.ref_schema.clone(), h.ref_table.clone()))
                            .is_some_and(|&j| raw[j].rls_applies)
                    }));
                plan.rules
                    .insert(name.clone(), format!("{rule}: {}", owner.describe(&name)));
                tables.push(TableDef {
                    schema: t.schema.clone(),
                    name: t.name.clone(),
                    columns: t.columns.clone(),
                    primary_key: t.primary_key.clone(),
                    owner,
                    foreign_keys: t.fks.clone(),
                    rls,
                });
            }
            Fate::Undecided => unreachable!("decided above"),
        }
    }
    plan.references = raw
        .iter()
        .flat_map(|t| {
            t.fks.iter().map(|fk| Reference {
                schema: t.schema.clone(),
                table: t.name.clone(),
                fk: fk.clone(),
            })
        })
        .collect();
    plan.tables = restore_order(tables);
    Ok(plan)
}

fn hop(fk: &super::catalog::ForeignKey) -> Hop {
    Hop {
        columns: fk.columns.clone(),
        ref_schema: fk.ref_schema.clone(),
        ref_table: fk.ref_table.clone(),
        ref_columns: fk.ref_columns.clone(),
    }
}

/// One path per foreign key of table `from` that leads to an endpoint: that key, then the
/// shortest way on (breadth first, foreign keys in their sorted order).
fn candidate_paths(
    raw: &[RawTable],
    index: &HashMap<(String, String), usize>,
    endpoint: &[bool],
    from: usize,
) -> Vec<Vec<Hop>> {
    let target = |fk: &super::catalog::ForeignKey| {
        index
            .get(&(fk.ref_schema.clone(), fk.ref_table.clone()))
            .copied()
    };
    let mut out = vec![];
    for first in &raw[from].fks {
        let Some(start) = target(first) else { continue };
        if start == from {
            continue;
        }
        let mut seen = vec![false; raw.len()];
        seen[from] = true;
        seen[start] = true;
        let mut queue = VecDeque::from([(start, vec![hop(first)])]);
        while let Some((at, path)) = queue.pop_front() {
            if endpoint[at] {
                out.push(path);
                break;
            }
            for fk in &raw[at].fks {
                if let Some(next) = target(fk) {
                    if !seen[next] {
                        seen[next] = true;
                        let mut p = path.clone();
                        p.push(hop(fk));
                        queue.push_back((next, p));
                    }
                }
            }
        }
    }
    out
}

/// Resolves `via = ["a", "b,c"]`: from `t`, follow the foreign key on columns `a`, then from
/// there the one on `b,c`, and so on; the last table must hold the tenant column.
fn declared_path(
    raw: &[RawTable],
    index: &HashMap<(String, String), usize>,
    t: &RawTable,
    via: &[String],
    config: &VaultConfig,
) -> Result<Owner> {
    let bad = |why: String| {
        Error::Invalid(format!(
            "[ownership] {:?} = {{ via = {via:?} }}: {why}",
            t.display_name()
        ))
    };
    if via.is_empty() {
        return Err(bad("the path is empty".into()));
    }
    let mut at = t;
    let mut path = vec![];
    for step in via {
        let columns: Vec<String> = step.split(',').map(|c| c.trim().to_string()).collect();
        let fk = at
            .fks
            .iter()
            .find(|fk| fk.columns == columns)
            .ok_or_else(|| {
                bad(format!(
                    "{} has no foreign key on ({})",
                    at.display_name(),
                    columns.join(", ")
                ))
            })?;
        path.push(hop(fk));
        at = index
            .get(&(fk.ref_schema.clone(), fk.ref_table.clone()))
            .map(|&j| &raw[j])
            .ok_or_else(|| bad(format!("{}.{} is not a table", fk.ref_schema, fk.ref_table)))?;
    }
    if !at.columns.iter().any(|c| c.name == config.tenant_column) {
        return Err(bad(format!(
            "the path ends at {}, which has no column {}",
            at.display_name(),
            config.tenant_column
        )));
    }
    Ok(Owner::Parent {
        path,
        column: config.tenant_column.clone(),
    })
}

fn selected(config: &VaultConfig, schema: &str, table: &str) -> bool {
    let full = format!("{schema}.{table}");
    (config.include_schemas.is_empty() || config.include_schemas.iter().any(|s| s == schema))
        && !config.exclude_schemas.iter().any(|s| s == schema)
        && (config.include_tables.is_empty() || config.include_tables.contains(&full))
        && !config.exclude_tables.contains(&full)
}

/// Orders tables so that every referenced table comes before the tables referencing it
/// (self-references and cycles fall back to name order).
fn restore_order(tables: Vec<TableDef>) -> Vec<TableDef> {
    let key = |t: &TableDef| (t.schema.clone(), t.name.clone());
    let index: HashMap<_, _> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (key(t), i))
        .collect();
    let mut done = vec![false; tables.len()];
    let mut order = Vec::with_capacity(tables.len());
    fn visit(
        i: usize,
        tables: &[TableDef],
        index: &HashMap<(String, String), usize>,
        done: &mut [bool],
        on_stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) {
        if done[i] || on_stack.contains(&i) {
            return;
        }
        on_stack.push(i);
        for fk in &tables[i].foreign_keys {
            if let Some(&j) = index.get(&(fk.ref_schema.clone(), fk.ref_table.clone())) {
                visit(j, tables, index, done, on_stack, order);
            }
        }
        on_stack.pop();
        done[i] = true;
        order.push(i);
    }
    for i in 0..tables.len() {
        visit(i, &tables, &index, &mut done, &mut Vec::new(), &mut order);
    }
    let mut slots: Vec<Option<TableDef>> = tables.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Of `tables` (a tenant's own schema), the first that holds a row whose `column` names another
/// tenant than `literal` (the tenant's id, quoted by the server): such a schema is shared, and
/// making every row of it one tenant's would take the others' rows. Each statement checks a
/// few tables and ends, so no lock outlives it.
pub async fn shared_table(
    client: &Client,
    tables: &[TableDef],
    column: &str,
    literal: &str,
) -> Result<Option<String>> {
    let with_column: Vec<&TableDef> = tables
        .iter()
        .filter(|t| t.columns.iter().any(|c| c.name == column && !c.generated))
        .collect();
    for chunk in with_column.chunks(16) {
        let probes: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "SELECT {i} WHERE EXISTS (SELECT 1 FROM {} WHERE {}::text <> {literal})",
                    crate::sql::qualified(&t.schema, &t.name),
                    crate::sql::ident(column)
                )
            })
            .collect();
        let found = client
            .query(&format!("{} LIMIT 1", probes.join(" UNION ALL ")), &[])
            .await
            .db(|| "checking that a tenant's schema holds no other tenant's rows".into())?;
        if let Some(row) = found.first() {
            return Ok(Some(chunk[row.get::<_, i32>(0) as usize].display_name()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::postgres::catalog::{ColumnDef, ForeignKey};

    fn table(name: &str, cols: &[&str], fks: &[(&str, &str)]) -> RawTable {
        RawTable {
            schema: "app".into(),
            name: name.into(),
            rls_applies: false,
            columns: cols
                .iter()
                .map(|c| ColumnDef {
                    name: c.to_string(),
                    type_name: "text".into(),
                    generated: false,
                })
                .collect(),
            primary_key: vec!["id".into()],
            fks: fks
                .iter()
                .map(|(c, to)| ForeignKey {
                    columns: vec![c.to_string()],
                    ref_schema: "app".into(),
                    ref_table: to.to_string(),
                    ref_columns: vec!["id".into()],
                })
                .collect(),
        }
    }

    /// store(tenant_id) <- inventory(store_id) <- rental(inventory_id, customer_id) -> customer(tenant_id)
    fn rental_schema() -> Vec<RawTable> {
        vec![
            table("customer", &["id", "tenant_id"], &[]),
            table("film", &["id"], &[]),
            table(
                "inventory",
                &["id", "store_id", "film_id"],
                &[("film_id", "film"), ("store_id", "store")],
            ),
            table(
                "rental",
                &["id", "customer_id", "inventory_id"],
                &[("customer_id", "customer"), ("inventory_id", "inventory")],
            ),
            table("store", &["id", "tenant_id"], &[]),
        ]
    }

    fn rule<'a>(p: &'a Plan, t: &str) -> &'a str {
        p.rules[t].as_str()
    }

    #[test]
    fn shortest_path_wins_and_the_other_is_reported() {
        let p = decide(rental_schema(), &VaultConfig::new("x")).unwrap();
        let rental = p.tables.iter().find(|t| t.name == "rental").unwrap();
        match &rental.owner {
            Owner::Parent { path, .. } => {
                assert_eq!(path.len(), 1);
                assert_eq!(path[0].ref_table, "customer");
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(p.ambiguous.len(), 1);
        assert_eq!(p.ambiguous[0].other.len(), 2, "inventory -> store");
        assert!(rule(&p, "app.rental").starts_with("shortest of 2"));
        assert_eq!(p.global, vec!["app.film".to_string()]);
        // Referenced tables come first.
        let pos = |n: &str| p.tables.iter().position(|t| t.name == n).unwrap();
        assert!(pos("store") < pos("inventory") && pos("inventory") < pos("rental"));
    }

    #[test]
    fn declarations_override_the_catalog() {
        let mut c = VaultConfig::new("x");
        c.ownership = toml::from_str(
            r#"
            "app.rental" = { via = ["inventory_id", "store_id"] }
            "app.film" = "excluded"
            "app.customer" = "global"
            "app.store" = { tenant = "t0.tenant_id" }
            "#,
        )
        .unwrap();
        let p = decide(rental_schema(), &c).unwrap();
        let rental = p.tables.iter().find(|t| t.name == "rental").unwrap();
        assert!(matches!(&rental.owner, Owner::Parent { path, .. } if path.len() == 2));
        assert!(p.ambiguous.is_empty(), "declared paths are not ambiguous");
        assert_eq!(p.excluded, vec!["app.film".to_string()]);
        // inventory's only path ended at store, which is no longer a tenant-column endpoint.
        assert_eq!(
            p.global,
            vec!["app.customer".to_string(), "app.inventory".to_string()]
        );
        let store = p.tables.iter().find(|t| t.name == "store").unwrap();
        assert!(matches!(store.owner, Owner::Expression { .. }));

        c.ownership = toml::from_str(r#""app.rental" = { via = ["film_id"] }"#).unwrap();
        let e = decide(rental_schema(), &c).unwrap_err().to_string();
        assert!(e.contains("no foreign key on (film_id)"), "{e}");
        c.ownership = toml::from_str(r#""app.nope" = "global""#).unwrap();
        assert!(decide(rental_schema(), &c).is_err());
    }
}
