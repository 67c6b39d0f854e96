//! DDL of a tenant's tables, read from the live catalog: what an export's `schema.sql` carries so
//! that its data loads into an empty database (docs/EXPORT.md, "schema.sql").
//!
//! Every name is printed schema-qualified (the session's `search_path` is `pg_catalog` while the
//! catalog is read), so the script does not depend on the loader's search path. Emitted, in this
//! order: schemas, extensions and user-defined types the columns use (enums, domains with their
//! checks, composites, ranges), sequences that column defaults draw from, then each table with
//! its columns (types, defaults, identity, generated expressions, NOT NULL), primary key,
//! unique, check and exclusion constraints, and its indexes. A partitioned table becomes one
//! plain table. Foreign keys come separately ([`Ddl::foreign_keys`]): a tenant's rows may
//! reference rows that are not in its export (global tables, other tenants).

use super::catalog::TableDef;
use crate::error::{DbContext, Result};
use crate::sql::{ident, qualified};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use tokio_postgres::GenericClient;

/// The DDL of a set of tables.
#[derive(Clone, Debug, Default)]
pub struct Ddl {
    /// Schemas, types, sequences, tables, constraints other than foreign keys, indexes.
    pub schema: String,
    /// `ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY` between the tables of the set; references
    /// to tables outside it are listed as comments.
    pub foreign_keys: String,
    /// Tables whose live definition differs from the one given (or that are gone): they are
    /// described from the given definition alone (columns, types, primary key).
    pub from_archive: Vec<String>,
}

/// Reads the DDL of `tables` (in the order given: referenced tables first). A table whose live
/// archived columns differ from its [`TableDef`] (a snapshot older than a schema change), or
/// that no longer exists, is described from the definition alone.
///
/// Call it inside a transaction: it sets `search_path` for the transaction while it reads, and
/// puts it back (the text form of some types, such as `regclass`, depends on it).
pub async fn read(client: &impl GenericClient, tables: &[TableDef]) -> Result<Ddl> {
    let before: String = client
        .query_one(
            "SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog', true)",
            &[],
        )
        .await
        .db(|| "preparing to read table definitions".into())?
        .get(0);
    let ddl = read_ddl(client, tables).await;
    client
        .query_one("SELECT set_config('search_path', $1, true)", &[&before])
        .await
        .db(|| "restoring search_path".into())?;
    ddl
}

/// The DDL of `tables` from their definitions alone (columns, types, primary keys).
pub fn from_definitions(tables: &[TableDef]) -> Ddl {
    let schemas: BTreeSet<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
    let mut schema: String = schemas
        .iter()
        .map(|s| format!("CREATE SCHEMA IF NOT EXISTS {};\n", ident(s)))
        .collect();
    for t in tables {
        schema.push_str(&from_definition(t));
    }
    Ddl {
        schema,
        foreign_keys: String::new(),
        from_archive: tables.iter().map(|t| t.display_name()).collect(),
    }
}

async fn read_ddl(client: &impl GenericClient, tables: &[TableDef]) -> Result<Ddl> {
    let mut out = Ddl::default();
    let mut live = Vec::new();
    let mut schemas: BTreeSet<String> = tables.iter().map(|t| t.schema.clone()).collect();
    for def in tables {
        match live_table(client, def).await? {
            Some(t) => live.push(t),
            None => out.from_archive.push(def.display_name()),
        }
    }
    let types = user_types(client, live.iter().map(|t| t.oid).collect()).await?;
    for t in &types {
        schemas.insert(t.schema.clone());
    }
    let s = &mut out.schema;
    for name in &schemas {
        let _ = writeln!(s, "CREATE SCHEMA IF NOT EXISTS {};", ident(name));
    }
    for t in &types {
        let _ = writeln!(s, "{}", t.ddl);
    }
    let in_set: HashSet<u32> = live.iter().map(|t| t.oid).collect();
    for def in tables {
        let Some(t) = live.iter().find(|t| t.name == def.display_name()) else {
            s.push_str(&from_definition(def));
            continue;
        };
        for seq in &t.sequences {
            let _ = writeln!(s, "CREATE SEQUENCE IF NOT EXISTS {seq};");
        }
        if let Some(key) = &t.partitioned_by {
            let _ = writeln!(
                s,
                "-- partitioned in the source database (PARTITION BY {key}); one table here"
            );
        }
        let _ = writeln!(s, "CREATE TABLE {} (", t.qualified);
        let mut lines: Vec<String> = t.columns.clone();
        lines.extend(
            t.constraints
                .iter()
                .map(|(name, def)| format!("CONSTRAINT {} {def}", ident(name))),
        );
        let _ = writeln!(s, "    {}\n);", lines.join(",\n    "));
        for index in &t.indexes {
            let _ = writeln!(s, "{index};");
        }
        for (name, target, def) in &t.foreign_keys {
            if in_set.contains(target) {
                let _ = writeln!(
                    out.foreign_keys,
                    "ALTER TABLE {} ADD CONSTRAINT {} {def};",
                    t.qualified,
                    ident(name)
                );
            } else {
                let _ = writeln!(
                    out.foreign_keys,
                    "-- {} {}: {def} (references a table outside this export)",
                    t.qualified,
                    ident(name)
                );
            }
        }
    }
    Ok(out)
}

/// A table as the live catalog has it.
struct LiveTable {
    oid: u32,
    /// `schema.table`, unquoted (to match definitions).
    name: String,
    qualified: String,
    columns: Vec<String>,
    constraints: Vec<(String, String)>,
    /// (name, referenced table oid, definition).
    foreign_keys: Vec<(String, u32, String)>,
    indexes: Vec<String>,
    sequences: Vec<String>,
    partitioned_by: Option<String>,
}

async fn live_table(client: &impl GenericClient, def: &TableDef) -> Result<Option<LiveTable>> {
    let what = || format!("reading the definition of {}", def.display_name());
    let Some(row) = client
        .query_opt(
            "SELECT c.oid, CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
            &[&def.schema, &def.name],
        )
        .await
        .db(what)?
    else {
        return Ok(None);
    };
    let oid: u32 = row.get(0);
    let partitioned_by: Option<String> = row.get(1);
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                    a.attidentity::text, a.attgenerated::text, pg_get_expr(d.adbin, d.adrelid), \
                    CASE WHEN a.attcollation <> t.typcollation \
                         THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END \
             FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .db(what)?;
    let mut columns = vec![];
    let mut archived = vec![];
    for r in &rows {
        let name: String = r.get(0);
        let ty: String = r.get(1);
        let not_null: bool = r.get(2);
        let identity: String = r.get(3);
        let generated: String = r.get(4);
        let default: Option<String> = r.get(5);
        let collation: Option<String> = r.get(6);
        let mut col = format!("{} {ty}", ident(&name));
        if let Some(c) = collation {
            let _ = write!(col, " COLLATE {c}");
        }
        match (identity.as_str(), generated.as_str(), default) {
            ("a", _, _) => col.push_str(" GENERATED ALWAYS AS IDENTITY"),
            ("d", _, _) => col.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
            (_, "s", Some(expr)) => {
                let _ = write!(col, " GENERATED ALWAYS AS ({expr}) STORED");
            }
            (_, _, Some(expr)) => {
                let _ = write!(col, " DEFAULT {expr}");
            }
            _ => {}
        }
        if not_null {
            col.push_str(" NOT NULL");
        }
        columns.push(col);
        if generated.is_empty() {
            archived.push(name);
        }
    }
    let expected: Vec<&str> = def.archived_columns().map(|c| c.name.as_str()).collect();
    if archived != expected {
        tracing::warn!(table = %def.display_name(), "the live table's columns differ from the archived ones: schema.sql describes it from the archive");
        return Ok(None);
    }
    let mut constraints = vec![];
    let mut foreign_keys = vec![];
    for r in client
        .query(
            "SELECT conname::text, contype::text, pg_get_constraintdef(oid), confrelid \
             FROM pg_constraint WHERE conrelid = $1 AND contype IN ('p', 'u', 'c', 'x', 'f') \
             AND conislocal ORDER BY contype = 'f', contype <> 'p', conname",
            &[&oid],
        )
        .await
        .db(what)?
    {
        let (name, kind, text): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if kind == "f" {
            foreign_keys.push((name, r.get(3), text));
        } else {
            constraints.push((name, text));
        }
    }
    let indexes = client
        .query(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
             WHERE i.indrelid = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                 WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid \
                 AND c.contype IN ('p', 'u', 'x')) \
             ORDER BY i.indexrelid",
            &[&oid],
        )
        .await
        .db(what)?
        .iter()
        .map(|r| r.get::<_, String>(0).replace(" ON ONLY ", " ON "))
        .collect();
    let sequences = client
        .query(
            "SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(s.relname) \
             FROM pg_attrdef ad \
             JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = ad.oid \
                 AND dep.refclassid = 'pg_class'::regclass \
             JOIN pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S' \
             JOIN pg_namespace n ON n.oid = s.relnamespace \
             WHERE ad.adrelid = $1 ORDER BY 1",
            &[&oid],
        )
        .await
        .db(what)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some(LiveTable {
        oid,
        name: def.display_name(),
        qualified: qualified(&def.schema, &def.name),
        columns,
        constraints,
        foreign_keys,
        indexes,
        sequences,
        partitioned_by,
    }))
}

/// A table described from its archived definition alone.
fn from_definition(def: &TableDef) -> String {
    // Types were named as the backup's search path showed them.
    let mut lines: Vec<String> = def
        .archived_columns()
        .map(|c| format!("{} {}", ident(&c.name), c.type_name))
        .collect();
    if !def.primary_key.is_empty() {
        let key: Vec<String> = def.primary_key.iter().map(|c| ident(c)).collect();
        lines.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!(
        "-- {}: as archived (the live table differs or is gone): columns and primary key only\n\
         CREATE TABLE {} (\n    {}\n);\n",
        def.display_name(),
        qualified(&def.schema, &def.name),
        lines.join(",\n    ")
    )
}

/// A user-defined type (or extension) that the tables need, with the statement that makes it.
struct UserType {
    schema: String,
    ddl: String,
}

/// The user-defined types the columns of `tables` use, directly or through arrays, domains,
/// composites and ranges, in an order that creates dependencies first. Types of an extension
/// become `CREATE EXTENSION IF NOT EXISTS`.
async fn user_types(client: &impl GenericClient, tables: Vec<u32>) -> Result<Vec<UserType>> {
    let what = || "reading the types the tables use".to_string();
    let mut pending: Vec<u32> = client
        .query(
            "SELECT DISTINCT atttypid FROM pg_attribute \
             WHERE attrelid = ANY($1) AND attnum > 0 AND NOT attisdropped",
            &[&tables],
        )
        .await
        .db(what)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Depth-first, so a type's dependencies are emitted before it.
    let mut info: HashMap<u32, (String, String, Vec<u32>)> = HashMap::new();
    let mut order: Vec<u32> = vec![];
    let mut seen: HashSet<u32> = HashSet::new();
    let mut extensions: BTreeSet<String> = BTreeSet::new();
    while let Some(oid) = pending.pop() {
        if !seen.insert(oid) {
            continue;
        }
        let row = client
            .query_one(
                "SELECT n.nspname::text, t.typtype::text, t.typelem, t.typbasetype, \
                        (SELECT e.extname::text FROM pg_depend d JOIN pg_extension e \
                            ON e.oid = d.refobjid WHERE d.classid = 'pg_type'::regclass \
                            AND d.objid = t.oid AND d.deptype = 'e'), \
                        t.typrelid, (SELECT rngsubtype FROM pg_range WHERE rngtypid = t.oid), \
                        t.typcategory::text \
                 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1",
                &[&oid],
            )
            .await
            .db(what)?;
        let schema: String = row.get(0);
        let kind: String = row.get(1);
        let elem: u32 = row.get(2);
        let base: u32 = row.get(3);
        let extension: Option<String> = row.get(4);
        let relid: u32 = row.get(5);
        let subtype: Option<u32> = row.get(6);
        let category: String = row.get(7);
        if let Some(e) = extension {
            extensions.insert(e);
            continue;
        }
        let mut deps = vec![];
        if category == "A" && elem != 0 {
            deps.push(elem);
        }
        if schema == "pg_catalog" || schema == "information_schema" || category == "A" {
            pending.extend(deps);
            continue;
        }
        if base != 0 {
            deps.push(base);
        }
        if let Some(s) = subtype {
            deps.push(s);
        }
        if relid != 0 {
            deps.extend(
                client
                    .query(
                        "SELECT atttypid FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 \
                         AND NOT attisdropped",
                        &[&relid],
                    )
                    .await
                    .db(what)?
                    .iter()
                    .map(|r| r.get::<_, u32>(0)),
            );
        }
        pending.extend(deps.iter().copied());
        info.insert(oid, (schema, kind, deps));
        order.push(oid);
    }
    let mut emitted: Vec<u32> = vec![];
    let mut done: HashSet<u32> = HashSet::new();
    fn visit(
        oid: u32,
        info: &HashMap<u32, (String, String, Vec<u32>)>,
        done: &mut HashSet<u32>,
        out: &mut Vec<u32>,
    ) {
        if !done.insert(oid) {
            return;
        }
        if let Some((_, _, deps)) = info.get(&oid) {
            for d in deps {
                visit(*d, info, done, out);
            }
            out.push(oid);
        }
    }
    order.sort_unstable();
    for oid in order {
        visit(oid, &info, &mut done, &mut emitted);
    }
    let mut out: Vec<UserType> = extensions
        .into_iter()
        .map(|e| UserType {
            schema: "public".into(),
            ddl: format!("CREATE EXTENSION IF NOT EXISTS {};", ident(&e)),
        })
        .collect();
    for oid in emitted {
        let (schema, kind, _) = &info[&oid];
        let ddl = type_ddl(client, oid, kind).await?;
        out.push(UserType {
            schema: schema.clone(),
            ddl,
        });
    }
    Ok(out)
}

async fn type_ddl(client: &impl GenericClient, oid: u32, kind: &str) -> Result<String> {
    let what = || "reading a type definition".to_string();
    let one = |sql: &'static str| async move {
        client
            .query_one(sql, &[&oid])
            .await
            .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
            .db(what)
    };
    let name = one("SELECT format_type($1, NULL)").await?;
    Ok(match kind {
        "e" => format!(
            "CREATE TYPE {name} AS ENUM ({});",
            one(
                "SELECT string_agg(quote_literal(enumlabel), ', ' ORDER BY enumsortorder) \
                 FROM pg_enum WHERE enumtypid = $1"
            )
            .await?
        ),
        "d" => {
            let head = one(
                "SELECT format_type(typbasetype, typtypmod) \
                     || CASE WHEN typdefault IS NOT NULL THEN ' DEFAULT ' || typdefault ELSE '' END \
                     || CASE WHEN typnotnull THEN ' NOT NULL' ELSE '' END \
                 FROM pg_type WHERE oid = $1",
            )
            .await?;
            let checks = one(
                "SELECT string_agg(' CONSTRAINT ' || quote_ident(conname) || ' ' \
                     || pg_get_constraintdef(oid), '' ORDER BY conname) \
                 FROM pg_constraint WHERE contypid = $1",
            )
            .await?;
            format!("CREATE DOMAIN {name} AS {head}{checks};")
        }
        "c" => format!(
            "CREATE TYPE {name} AS ({});",
            one("SELECT string_agg(quote_ident(attname) || ' ' \
                     || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
                 FROM pg_attribute WHERE attrelid = (SELECT typrelid FROM pg_type WHERE oid = $1) \
                 AND attnum > 0 AND NOT attisdropped")
            .await?
        ),
        "r" => format!(
            "CREATE TYPE {name} AS RANGE (SUBTYPE = {});",
            one("SELECT format_type(rngsubtype, NULL) FROM pg_range WHERE rngtypid = $1").await?
        ),
        _ => format!("-- type {name}: a base type of its own; create it before loading"),
    })
}
