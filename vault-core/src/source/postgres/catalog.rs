//! Reads the catalog into a table plan: which tables hold tenant rows (directly through the tenant
//! column, or through a chain of foreign keys), which are global, and how to read each one.

use crate::error::{DbContext, Error, Result};
use crate::VaultConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use tokio_postgres::Client;

/// One column as archived. Generated columns are recorded but not archived (the database
/// recomputes them on restore).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    /// `format_type()` of the column, e.g. `numeric(12,2)`.
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
}

/// A foreign key of a table (used for restore order and record restore with related rows).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub ref_schema: String,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

/// One join step from a table to the table its foreign key references.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Hop {
    pub columns: Vec<String>,
    pub ref_schema: String,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

/// How a table's rows are attributed to tenants.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Owner {
    /// The table has the tenant column itself.
    Column { column: String },
    /// Rows belong to the tenant of the row they reference, `path` hops away; the last hop's
    /// table has `column`.
    Parent { path: Vec<Hop>, column: String },
}

/// A tenant-owned table and how to read it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableDef {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Primary key columns; empty when the table has none (rows are then identified by content).
    pub primary_key: Vec<String>,
    pub owner: Owner,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
    /// Row-level security applies to the backup role on this table.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rls: bool,
}

impl TableDef {
    /// `schema.table` for messages.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Columns that are archived, in table order.
    pub fn archived_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| !c.generated)
    }
}

/// The table plan of a database.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    /// Tenant-owned tables in restore order (referenced tables before referencing ones).
    pub tables: Vec<TableDef>,
    /// Tables with no path to a tenant: reported, never put in tenant archives.
    pub global: Vec<String>,
}

struct RawTable {
    schema: String,
    name: String,
    rls_applies: bool,
    columns: Vec<ColumnDef>,
    primary_key: Vec<String>,
    fks: Vec<ForeignKey>,
}

const TABLES_SQL: &str = "
SELECT c.oid::int8, n.nspname::text, c.relname::text,
       c.relrowsecurity AND NOT r.rolsuper AND NOT r.rolbypassrls
         AND (c.relforcerowsecurity OR c.relowner <> r.oid) AS rls_applies
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_roles r ON r.rolname = current_user
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY n.nspname, c.relname";

const COLUMNS_SQL: &str = "
SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attgenerated <> ''
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
ORDER BY a.attrelid, a.attnum";

const CONSTRAINTS_SQL: &str = "
SELECT k.conrelid::int8, k.contype::text, k.conname::text,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       k.confrelid::int8,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)
FROM pg_constraint k
WHERE k.contype IN ('p', 'f')
ORDER BY k.conrelid, k.conname";

/// Reads the catalog and builds the plan for `config`.
pub async fn plan(client: &Client, config: &VaultConfig) -> Result<Plan> {
    let raw = read_tables(client).await?;
    let wanted = |t: &RawTable| selected(config, &t.schema, &t.name);
    let by_name: HashMap<(String, String), usize> = raw
        .values()
        .enumerate()
        .map(|(i, t)| ((t.schema.clone(), t.name.clone()), i))
        .collect();
    let list: Vec<&RawTable> = raw.values().collect();
    let has_tenant_col = |t: &RawTable| {
        t.columns
            .iter()
            .any(|c| c.name == config.tenant_column && !c.generated)
    };

    let mut owners: Vec<Option<Owner>> = vec![None; list.len()];
    for (i, t) in list.iter().enumerate() {
        if has_tenant_col(t) {
            owners[i] = Some(Owner::Column {
                column: config.tenant_column.clone(),
            });
        }
    }
    // Shortest foreign-key path to a table with the tenant column, breadth first; ties go to the
    // first foreign key by constraint name, so the plan is deterministic.
    for i in 0..list.len() {
        if owners[i].is_some() {
            continue;
        }
        let mut seen = vec![false; list.len()];
        let mut queue = VecDeque::from([(i, Vec::<Hop>::new())]);
        seen[i] = true;
        while let Some((at, path)) = queue.pop_front() {
            if at != i && has_tenant_col(list[at]) {
                owners[i] = Some(Owner::Parent {
                    path,
                    column: config.tenant_column.clone(),
                });
                break;
            }
            for fk in &list[at].fks {
                let Some(&next) = by_name.get(&(fk.ref_schema.clone(), fk.ref_table.clone()))
                else {
                    continue;
                };
                if !seen[next] {
                    seen[next] = true;
                    let mut p = path.clone();
                    p.push(Hop {
                        columns: fk.columns.clone(),
                        ref_schema: fk.ref_schema.clone(),
                        ref_table: fk.ref_table.clone(),
                        ref_columns: fk.ref_columns.clone(),
                    });
                    queue.push_back((next, p));
                }
            }
        }
    }

    let mut plan = Plan::default();
    let mut tables = vec![];
    for (t, owner) in list.iter().zip(owners) {
        if !wanted(t) {
            continue;
        }
        match owner {
            None => plan.global.push(format!("{}.{}", t.schema, t.name)),
            Some(owner) => {
                // A join through a parent with row-level security hides rows just as well.
                let rls = t.rls_applies
                    || matches!(&owner, Owner::Parent { path, .. } if path.iter().any(|h| {
                        by_name
                            .get(&(h.ref_schema.clone(), h.ref_table.clone()))
                            .is_some_and(|&j| list[j].rls_applies)
                    }));
                tables.push(TableDef {
                    schema: t.schema.clone(),
                    name: t.name.clone(),
                    columns: t.columns.clone(),
                    primary_key: t.primary_key.clone(),
                    owner,
                    foreign_keys: t.fks.clone(),
                    rls,
                })
            }
        }
    }
    plan.tables = restore_order(tables);
    Ok(plan)
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

async fn read_tables(client: &Client) -> Result<BTreeMap<i64, RawTable>> {
    let mut tables = BTreeMap::new();
    let mut names = HashMap::new();
    for row in client
        .query(TABLES_SQL, &[])
        .await
        .db(|| "reading the table catalog".into())?
    {
        let oid: i64 = row.get(0);
        let (schema, name): (String, String) = (row.get(1), row.get(2));
        names.insert(oid, (schema.clone(), name.clone()));
        tables.insert(
            oid,
            RawTable {
                schema,
                name,
                rls_applies: row.get(3),
                columns: vec![],
                primary_key: vec![],
                fks: vec![],
            },
        );
    }
    for row in client
        .query(COLUMNS_SQL, &[])
        .await
        .db(|| "reading the column catalog".into())?
    {
        if let Some(t) = tables.get_mut(&row.get::<_, i64>(0)) {
            t.columns.push(ColumnDef {
                name: row.get(1),
                type_name: row.get(2),
                generated: row.get(3),
            });
        }
    }
    let constraints = client
        .query(CONSTRAINTS_SQL, &[])
        .await
        .db(|| "reading the constraint catalog".into())?;
    for row in constraints {
        let Some(t) = tables.get_mut(&row.get::<_, i64>(0)) else {
            continue;
        };
        let kind: String = row.get(1);
        let columns: Vec<String> = row.get(3);
        if kind == "p" {
            t.primary_key = columns;
        } else if let Some((s, n)) = names.get(&row.get::<_, i64>(4)) {
            t.fks.push(ForeignKey {
                columns,
                ref_schema: s.clone(),
                ref_table: n.clone(),
                ref_columns: row.get(5),
            });
        }
    }
    Ok(tables)
}

/// Fails when a table's row-level security would hide rows from the backup role and no tenant
/// setting is configured to read it tenant by tenant.
pub fn check_rls(plan: &Plan, config: &VaultConfig, role: &str) -> Result<()> {
    if config.rls_tenant_setting.is_some() {
        return Ok(());
    }
    match plan.tables.iter().find(|t| t.rls) {
        Some(t) => Err(Error::RowLevelSecurity {
            table: t.display_name(),
            role: role.to_string(),
        }),
        None => Ok(()),
    }
}
