//! Reads the catalog into a table plan: which tables hold tenant rows (directly through the tenant
//! column, or through a chain of foreign keys), which are global, and how to read each one.

use crate::error::{DbContext, Error, Result};
use crate::VaultConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::Client;

pub use super::ownership::{plan, whole_database};

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
    /// Declared in `[ownership]`: a SQL expression over the row (alias `t0`) yields the tenant.
    Expression { tenant: String },
    /// Bridge model: every row is the tenant's whose own schema holds the table.
    Schema,
}

impl Owner {
    /// How the rule reads in `tvault tables` and in messages.
    pub fn describe(&self, table: &str) -> String {
        match self {
            Owner::Column { column } => format!("column {column}"),
            Owner::Parent { path, column } => {
                let last = path.last().map_or(table.to_string(), |h| {
                    format!("{}.{}", h.ref_schema, h.ref_table)
                });
                format!("{}; {last}.{column}", hops(table, path).join("; "))
            }
            Owner::Expression { tenant } => format!("expression {tenant}"),
            Owner::Schema => "the tenant's own schema".into(),
        }
    }
}

/// Each hop of a foreign-key path as `from(columns) -> to(columns)`, starting at `table`.
pub fn hops(table: &str, path: &[Hop]) -> Vec<String> {
    let mut from = table.to_string();
    let mut out = vec![];
    for h in path {
        let to = format!("{}.{}", h.ref_schema, h.ref_table);
        out.push(format!(
            "{from}({}) -> {to}({})",
            h.columns.join(","),
            h.ref_columns.join(",")
        ));
        from = to;
    }
    out
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
    /// `schema.table` for messages; a table of a bridge tenant's own schema is relative to it
    /// in archives (empty schema), and named alone.
    pub fn display_name(&self) -> String {
        match self.schema.is_empty() {
            true => self.name.clone(),
            false => format!("{}.{}", self.schema, self.name),
        }
    }

    /// The definition relative to `home`, the tenant's own schema, as archives hold it: the
    /// schema of the table, of the tables its foreign keys reference there and of the types
    /// its columns use from there becomes empty (types are then written `"".name`, which
    /// PostgreSQL never prints). `quoted` is `home` as PostgreSQL quotes it (`quote_ident`).
    pub fn relative_to(&self, home: &Home) -> TableDef {
        self.moved(&home.name, "", &format!("{}.", home.quoted), "\"\".")
    }

    /// A definition relative to the tenant's own schema ([`TableDef::relative_to`]) placed in
    /// schema `home`.
    pub fn located_in(&self, home: &Home) -> TableDef {
        self.moved("", &home.name, "\"\".", &format!("{}.", home.quoted))
    }

    /// The definition placed in `home` when it is relative to one (a bridge tenant's), else as
    /// it is.
    pub fn placed(&self, home: Option<&Home>) -> TableDef {
        home.map_or_else(|| self.clone(), |h| self.located_in(h))
    }

    fn moved(&self, from: &str, to: &str, type_from: &str, type_to: &str) -> TableDef {
        let mut def = self.clone();
        let at = |s: &mut String| {
            if s == from {
                *s = to.to_string();
            }
        };
        at(&mut def.schema);
        def.foreign_keys
            .iter_mut()
            .for_each(|fk| at(&mut fk.ref_schema));
        for c in &mut def.columns {
            if let Some(rest) = c.type_name.strip_prefix(type_from) {
                c.type_name = format!("{type_to}{rest}");
            }
        }
        def
    }

    /// Columns that are archived, in table order.
    pub fn archived_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| !c.generated)
    }

    /// Positions of the primary key columns among the archived columns.
    pub fn key_positions(&self) -> Vec<usize> {
        let archived: Vec<&str> = self.archived_columns().map(|c| c.name.as_str()).collect();
        self.primary_key
            .iter()
            .filter_map(|k| archived.iter().position(|c| c == k))
            .collect()
    }
}

/// A bridge tenant's own schema: its name, and its name as PostgreSQL quotes it in type names.
#[derive(Clone, Debug, PartialEq)]
pub struct Home {
    pub name: String,
    pub quoted: String,
}

impl Home {
    /// `schema` quoted by tvault itself (always in double quotes): as good in SQL as the
    /// server's form, for when no server is at hand.
    pub fn quoted_here(schema: &str) -> Home {
        Home {
            name: schema.to_string(),
            quoted: crate::sql::ident(schema),
        }
    }

    /// `schema` with its quoted form, as the server quotes it.
    pub async fn of(client: &Client, schema: &str) -> Result<Home> {
        let quoted = client
            .query_one("SELECT quote_ident($1)", &[&schema])
            .await
            .db(|| format!("quoting schema name {schema:?}"))?
            .get(0);
        Ok(Home {
            name: schema.to_string(),
            quoted,
        })
    }
}

/// A bridge tenant's own schema in a plan.
#[derive(Clone, Debug)]
pub struct OwnSchema {
    pub home: Home,
    /// Its tables: a range of `Plan::tables`.
    pub tables: std::ops::Range<usize>,
}

/// The table plan of a database.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    /// Tenant-owned tables in restore order (referenced tables before referencing ones).
    pub tables: Vec<TableDef>,
    /// Tables with no path to a tenant, or declared global: reported, never put in tenant archives.
    pub global: Vec<String>,
    /// Tables declared `excluded` in `[ownership]`: neither archived nor reported as global.
    pub excluded: Vec<String>,
    /// Per table (`schema.table`), the rule that decided its owner, for `tvault tables`.
    pub rules: BTreeMap<String, String>,
    /// Child tables with more than one foreign-key path to a tenant table: the path chosen and
    /// each other one. Backups count the rows whose paths name different tenants.
    pub ambiguous: Vec<Ambiguity>,
    /// Every foreign key of the database, declared on a partition or on its root alike (folded
    /// onto the root), global tables included: restores check references against these.
    #[serde(skip)]
    pub references: Vec<Reference>,
    /// Bridge tenants' own schemas (those the plan was asked for and found), each with the
    /// range of `tables` it holds; the pooled tables come first, before every range.
    #[serde(skip)]
    pub schemas: BTreeMap<String, OwnSchema>,
}

impl Plan {
    /// The pooled tables: those read for every pool tenant.
    pub fn pool_tables(&self) -> std::ops::Range<usize> {
        0..self
            .schemas
            .values()
            .map(|s| s.tables.start)
            .min()
            .unwrap_or(self.tables.len())
    }

    /// The tables a tenant placed in `schema` (bridge) or pooled (`None`) owns.
    pub fn tables_of(&self, schema: Option<&str>) -> std::ops::Range<usize> {
        match schema {
            None => self.pool_tables(),
            Some(s) => self.schemas.get(s).map_or(0..0, |s| s.tables.clone()),
        }
    }
}

/// A child table with several owner paths.
#[derive(Clone, Debug, Serialize)]
pub struct Ambiguity {
    pub schema: String,
    pub table: String,
    pub chosen: Vec<Hop>,
    pub other: Vec<Hop>,
}

/// One foreign key of the database: `schema.table (fk.columns)` references `fk.ref_*`.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub schema: String,
    pub table: String,
    pub fk: ForeignKey,
}

/// A table as the catalog describes it, before owners are decided.
pub(super) struct RawTable {
    pub schema: String,
    pub name: String,
    pub rls_applies: bool,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<String>,
    /// Its foreign keys, including those declared on its partitions only.
    pub fks: Vec<ForeignKey>,
}

impl RawTable {
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Ordinary and partitioned tables, without partitions: a partitioned table is one logical table.
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

/// Every partition (at any depth) with the root of its tree.
const PARTITIONS_SQL: &str = "
WITH RECURSIVE tree(child, root) AS (
    SELECT i.inhrelid, i.inhparent FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
    WHERE c.relispartition AND NOT p.relispartition
  UNION ALL
    SELECT i.inhrelid, t.root FROM pg_inherits i JOIN tree t ON i.inhparent = t.child
)
SELECT child::int8, root::int8 FROM tree";

const COLUMNS_SQL: &str = "
SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attgenerated <> ''
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY a.attrelid, a.attnum";

/// Primary keys and foreign keys. Constraints that PostgreSQL clones onto partitions from a
/// constraint of their parent (`conparentid <> 0`) are the parent's, already listed.
const CONSTRAINTS_SQL: &str = "
SELECT k.conrelid::int8, k.contype::text, k.conname::text,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       k.confrelid::int8,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)
FROM pg_constraint k
WHERE k.contype IN ('p', 'f') AND k.conparentid = 0
ORDER BY k.conrelid, k.conname";

/// Reads every table of the database, with foreign keys declared on partitions folded onto the
/// partitioned table they belong to (and references to a partition onto its root).
pub(super) async fn read_tables(client: &Client) -> Result<Vec<RawTable>> {
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
    let root: HashMap<i64, i64> = client
        .query(PARTITIONS_SQL, &[])
        .await
        .db(|| "reading the partition catalog".into())?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let root_of = |oid: i64| root.get(&oid).copied().unwrap_or(oid);
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
        let own: i64 = row.get(0);
        let kind: String = row.get(1);
        let columns: Vec<String> = row.get(3);
        if kind == "p" {
            // A partition's own primary key is not the partitioned table's.
            if let Some(t) = tables.get_mut(&own) {
                t.primary_key = columns;
            }
            continue;
        }
        let Some(t) = tables.get_mut(&root_of(own)) else {
            continue;
        };
        let Some((s, n)) = names.get(&root_of(row.get::<_, i64>(4))) else {
            continue;
        };
        let fk = ForeignKey {
            columns,
            ref_schema: s.clone(),
            ref_table: n.clone(),
            ref_columns: row.get(5),
        };
        // Every partition usually declares the same key: keep one.
        if !t.fks.contains(&fk) {
            t.fks.push(fk);
        }
    }
    let mut list: Vec<RawTable> = tables.into_values().collect();
    list.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    for t in &mut list {
        // The documented tie-break between owner paths: by referencing columns, then target.
        t.fks.sort_by(|a, b| {
            (&a.columns, &a.ref_schema, &a.ref_table).cmp(&(
                &b.columns,
                &b.ref_schema,
                &b.ref_table,
            ))
        });
    }
    Ok(list)
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
