//! DDL of a tenant's tables, read from the live catalog: what an export's `schema.sql` carries so
//! that its data loads into an empty database (docs/EXPORT.md, "schema.sql").
//!
//! Every name is printed schema-qualified (the session's `search_path` is `pg_catalog` while the
//! catalog is read), so the script does not depend on the loader's search path. Emitted, in this
//! order: schemas, extensions and user-defined types the columns use (enums, domains with their
//! checks, composites, ranges), sequences that column defaults draw from, then each table with
//! its columns (types, defaults, identity, generated expressions, NOT NULL), primary key,
//! unique, check and exclusion constraints, and its indexes. A partitioned table keeps its
//! partition key and its partitions (each with its bounds, sub-partitions included), made after
//! the table's indexes so that they get them too. Foreign keys come separately ([`Ddl::foreign_keys`]): a tenant's rows may
//! reference rows that are not in its export (global tables, other tenants).

mod types;

use super::catalog::TableDef;
use crate::error::{DbContext, Result};
use crate::sql::{ident, qualified};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use tokio_postgres::GenericClient;
use types::Types;

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
    /// The foreign keys to tables outside the set (listed as comments in `foreign_keys`), as
    /// statements: a restore into the same database can add them back.
    pub external_keys: Vec<String>,
}

/// Reads the DDL of `tables` (in the order given: referenced tables first). A table whose live
/// archived columns differ from its [`TableDef`] (a snapshot older than a schema change), or
/// that no longer exists, is described from the definition alone.
///
/// Call it inside a transaction: it sets `search_path` for the transaction while it reads, and
/// puts it back (the text form of some types, such as `regclass`, depends on it).
pub async fn read(client: &impl GenericClient, tables: &[TableDef]) -> Result<Ddl> {
    Ok(read_sets(client, &[tables])
        .await?
        .pop()
        .unwrap_or_default())
}

/// [`read`] for several sets of tables at once (say, one per tenant schema), with a handful of
/// catalog queries whatever the number of tables: one DDL per set.
pub async fn read_sets(client: &impl GenericClient, sets: &[&[TableDef]]) -> Result<Vec<Ddl>> {
    let before: String = client
        .query_one(
            "SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog', true)",
            &[],
        )
        .await
        .db(|| "preparing to read table definitions".into())?
        .get(0);
    let ddl = read_all(client, sets).await;
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
        external_keys: vec![],
    }
}

async fn read_all(client: &impl GenericClient, sets: &[&[TableDef]]) -> Result<Vec<Ddl>> {
    let all: Vec<&TableDef> = sets.iter().flat_map(|s| s.iter()).collect();
    let live = live_tables(client, &all).await?;
    let oids: Vec<u32> = live.values().map(|t| t.oid).collect();
    let types = Types::read(client, &oids).await?;
    Ok(sets
        .iter()
        .map(|set| assemble(set, &live, &types))
        .collect())
}

/// The DDL of one set of tables from what the catalog said.
fn assemble(
    tables: &[TableDef],
    live: &HashMap<(String, String), LiveTable>,
    types: &Types,
) -> Ddl {
    let mut out = Ddl::default();
    let found = |def: &TableDef| live.get(&(def.schema.clone(), def.name.clone()));
    let mut schemas: BTreeSet<String> = tables.iter().map(|t| t.schema.clone()).collect();
    // Partitions may live in other schemas than their table.
    schemas.extend(
        tables
            .iter()
            .filter_map(found)
            .flat_map(|t| t.partitions.iter().map(|(schema, _)| schema.clone())),
    );
    let oids: Vec<u32> = tables
        .iter()
        .filter_map(|d| found(d).map(|t| t.oid))
        .collect();
    let types = types.for_tables(&oids);
    schemas.extend(types.iter().map(|t| t.schema.clone()));
    let s = &mut out.schema;
    for name in &schemas {
        let _ = writeln!(s, "CREATE SCHEMA IF NOT EXISTS {};", ident(name));
    }
    for t in &types {
        let _ = writeln!(s, "{}", t.ddl);
    }
    let in_set: HashSet<u32> = oids.iter().copied().collect();
    for def in tables {
        let Some(t) = found(def) else {
            out.from_archive.push(def.display_name());
            s.push_str(&from_definition(def));
            continue;
        };
        for (seq, _) in &t.sequences {
            let _ = writeln!(s, "CREATE SEQUENCE IF NOT EXISTS {seq};");
        }
        let qualified = qualified(&def.schema, &def.name);
        let _ = writeln!(s, "CREATE TABLE {qualified} (");
        let mut lines: Vec<String> = t.columns.clone();
        lines.extend(
            t.constraints
                .iter()
                .map(|(name, def)| format!("CONSTRAINT {} {def}", ident(name))),
        );
        let partitioned = match &t.partitioned_by {
            Some(key) => format!(" PARTITION BY {key}"),
            None => String::new(),
        };
        let _ = writeln!(s, "    {}\n){partitioned};", lines.join(",\n    "));
        for index in &t.indexes {
            let _ = writeln!(s, "{index};");
        }
        for (_, partition) in &t.partitions {
            let _ = writeln!(s, "{partition};");
        }
        for (seq, column) in &t.sequences {
            if let Some(column) = column {
                let _ = writeln!(s, "ALTER SEQUENCE {seq} OWNED BY {qualified}.{column};");
            }
        }
        for (name, target, def) in &t.foreign_keys {
            let _ = match in_set.contains(target) {
                true => writeln!(
                    out.foreign_keys,
                    "ALTER TABLE {qualified} ADD CONSTRAINT {} {def};",
                    ident(name)
                ),
                false => {
                    out.external_keys.push(format!(
                        "ALTER TABLE {qualified} ADD CONSTRAINT {} {def};",
                        ident(name)
                    ));
                    writeln!(
                        out.foreign_keys,
                        "-- {} {}: {} (references a table outside this export)",
                        one_line(&qualified),
                        one_line(&ident(name)),
                        one_line(def)
                    )
                }
            };
        }
    }
    out
}

/// A table as the live catalog has it.
#[derive(Default)]
struct LiveTable {
    oid: u32,
    columns: Vec<String>,
    /// Names of the columns a backup archives (not generated ones), in table order.
    archived: Vec<String>,
    constraints: Vec<(String, String)>,
    /// (name, referenced table oid, definition).
    foreign_keys: Vec<(String, u32, String)>,
    indexes: Vec<String>,
    /// Sequences its column defaults draw from, each with the column that owns it (serial).
    sequences: Vec<(String, Option<String>)>,
    partitioned_by: Option<String>,
    /// Its partitions, parents before children: (schema, `CREATE TABLE … PARTITION OF …`).
    partitions: Vec<(String, String)>,
}

const WHAT: fn() -> String = || "reading table definitions".to_string();

/// Every table of `defs` that exists with the archived columns of its definition, by
/// (schema, name). One query per kind of object for all of them.
async fn live_tables(
    client: &impl GenericClient,
    defs: &[&TableDef],
) -> Result<HashMap<(String, String), LiveTable>> {
    let schemas: Vec<&str> = defs.iter().map(|d| d.schema.as_str()).collect();
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    let mut by_oid: HashMap<u32, ((String, String), LiveTable)> = HashMap::new();
    for r in client
        .query(
            "SELECT c.oid, u.s, u.t, CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END \
             FROM unnest($1::text[], $2::text[]) u(s, t) \
             JOIN pg_namespace n ON n.nspname = u.s \
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = u.t \
                 AND c.relkind IN ('r', 'p')",
            &[&schemas, &names],
        )
        .await
        .db(WHAT)?
    {
        let oid: u32 = r.get(0);
        let table = LiveTable {
            oid,
            partitioned_by: r.get(3),
            ..Default::default()
        };
        by_oid.insert(oid, ((r.get(1), r.get(2)), table));
    }
    let oids: Vec<u32> = by_oid.keys().copied().collect();
    let roots: Vec<u32> = by_oid
        .values()
        .filter(|(_, t)| t.partitioned_by.is_some())
        .map(|(_, t)| t.oid)
        .collect();
    if !roots.is_empty() {
        for r in client
            .query(
                "WITH RECURSIVE tree AS ( \
                     SELECT i.inhrelid AS part, i.inhparent AS parent, i.inhparent AS root, 1 AS depth \
                     FROM pg_inherits i WHERE i.inhparent = ANY($1) \
                     UNION ALL \
                     SELECT i.inhrelid, i.inhparent, t.root, t.depth + 1 \
                     FROM pg_inherits i JOIN tree t ON i.inhparent = t.part) \
                 SELECT t.root, n.nspname::text, 'CREATE TABLE ' || t.part::regclass::text \
                        || ' PARTITION OF ' || t.parent::regclass::text || ' ' \
                        || pg_get_expr(c.relpartbound, c.oid) \
                        || coalesce(' PARTITION BY ' || pg_get_partkeydef(c.oid), '') \
                 FROM tree t JOIN pg_class c ON c.oid = t.part \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relispartition ORDER BY t.root, t.depth, t.part",
                &[&roots],
            )
            .await
            .db(WHAT)?
        {
            if let Some((_, t)) = by_oid.get_mut(&r.get::<_, u32>(0)) {
                t.partitions.push((r.get(1), r.get(2)));
            }
        }
    }
    for r in client
        .query(
            "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    a.attnotnull, a.attidentity::text, a.attgenerated::text, \
                    pg_get_expr(d.adbin, d.adrelid), \
                    CASE WHEN a.attcollation <> t.typcollation \
                         THEN quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END \
             FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .db(WHAT)?
    {
        let Some((_, t)) = by_oid.get_mut(&r.get::<_, u32>(0)) else {
            continue;
        };
        let name: String = r.get(1);
        let ty: String = r.get(2);
        let (not_null, identity, generated): (bool, String, String) =
            (r.get(3), r.get(4), r.get(5));
        let default: Option<String> = r.get(6);
        let collation: Option<String> = r.get(7);
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
        t.columns.push(col);
        if generated.is_empty() {
            t.archived.push(name);
        }
    }
    for r in client
        .query(
            "SELECT conrelid, conname::text, contype::text, pg_get_constraintdef(oid), confrelid \
             FROM pg_constraint WHERE conrelid = ANY($1) AND contype IN ('p', 'u', 'c', 'x', 'f') \
             AND conislocal ORDER BY conrelid, contype = 'f', contype <> 'p', conname",
            &[&oids],
        )
        .await
        .db(WHAT)?
    {
        let Some((_, t)) = by_oid.get_mut(&r.get::<_, u32>(0)) else {
            continue;
        };
        let (name, kind, text): (String, String, String) = (r.get(1), r.get(2), r.get(3));
        match kind.as_str() {
            "f" => t.foreign_keys.push((name, r.get(4), text)),
            _ => t.constraints.push((name, text)),
        }
    }
    for r in client
        .query(
            "SELECT i.indrelid, pg_get_indexdef(i.indexrelid) FROM pg_index i \
             WHERE i.indrelid = ANY($1) AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                 WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid \
                 AND c.contype IN ('p', 'u', 'x')) \
             ORDER BY i.indrelid, i.indexrelid",
            &[&oids],
        )
        .await
        .db(WHAT)?
    {
        if let Some((_, t)) = by_oid.get_mut(&r.get::<_, u32>(0)) {
            t.indexes
                .push(r.get::<_, String>(1).replace(" ON ONLY ", " ON "));
        }
    }
    for r in client
        .query(
            "SELECT DISTINCT ad.adrelid, quote_ident(n.nspname) || '.' || quote_ident(s.relname), \
                    (SELECT quote_ident(a.attname) FROM pg_depend own \
                     JOIN pg_attribute a ON a.attrelid = own.refobjid AND a.attnum = own.refobjsubid \
                     WHERE own.classid = 'pg_class'::regclass AND own.objid = s.oid \
                       AND own.refobjid = ad.adrelid AND own.deptype = 'a') \
             FROM pg_attrdef ad \
             JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = ad.oid \
                 AND dep.refclassid = 'pg_class'::regclass \
             JOIN pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S' \
             JOIN pg_namespace n ON n.oid = s.relnamespace \
             WHERE ad.adrelid = ANY($1) ORDER BY 1, 2",
            &[&oids],
        )
        .await
        .db(WHAT)?
    {
        if let Some((_, t)) = by_oid.get_mut(&r.get::<_, u32>(0)) {
            t.sequences.push((r.get(1), r.get(2)));
        }
    }
    let wanted: HashMap<(&str, &str), &TableDef> = defs
        .iter()
        .map(|d| ((d.schema.as_str(), d.name.as_str()), *d))
        .collect();
    Ok(by_oid
        .into_values()
        .filter(|((schema, name), t)| {
            let def = wanted[&(schema.as_str(), name.as_str())];
            let same = def.archived_columns().map(|c| &c.name).eq(t.archived.iter());
            if !same {
                tracing::warn!(table = %def.display_name(), "the live table's columns differ from the archived ones: its DDL is made from the archive");
            }
            same
        })
        .collect())
}

impl Ddl {
    /// The same DDL relative to `home` (a bridge tenant's schema), as archives keep it: names
    /// in `home` are qualified by `""` instead (which PostgreSQL never prints; see
    /// [`requalify`]), and `home` itself is not created.
    pub fn relative_to(&self, home: &super::catalog::Home) -> Ddl {
        let from = [
            format!("{}.", home.quoted),
            format!("{}.", ident(&home.name)),
        ];
        let create = format!("CREATE SCHEMA IF NOT EXISTS {};\n", ident(&home.name));
        let move_ = |s: &str| requalify(s, &from, "\"\".");
        Ddl {
            schema: move_(&self.schema.replace(&create, "")),
            foreign_keys: move_(&self.foreign_keys),
            from_archive: self.from_archive.clone(),
            external_keys: self.external_keys.iter().map(|k| move_(k)).collect(),
        }
    }
}

/// Whether schema `name` exists.
pub async fn schema_exists(client: &impl GenericClient, name: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&name],
        )
        .await
        .db(|| format!("looking for schema {name:?}"))?
        .get(0))
}

/// Creates schema `home` (unless it exists: the `public` schema of a silo tenant's new database)
/// and the tables of an archived DDL in it, in one transaction: names
/// qualified by one of `from` (each with its dot, as [`requalify`] takes them) are placed in
/// `home`. Foreign keys to tables outside the tenant's are added where they can be (each in
/// a savepoint); those that cannot are returned, for the restore's warnings.
pub async fn replay(
    client: &mut tokio_postgres::Client,
    ddl: &crate::archive::manifest::ArchivedDdl,
    from: &[String],
    home: &super::catalog::Home,
) -> Result<Vec<String>> {
    let to = format!("{}.", home.quoted);
    let what = || format!("creating schema {:?} from the archive's DDL", home.name);
    let tx = client.transaction().await.db(what)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        ident(&home.name)
    ))
    .await
    .db(what)?;
    // Other schemas' statements stay (types may live elsewhere); the tenant's own are moved.
    // A type of another schema may exist already (shared by other tenants): made if missing.
    let mut rest = String::new();
    for line in requalify(&ddl.tables, from, &to).lines() {
        if from
            .iter()
            .any(|f| line == format!("CREATE SCHEMA IF NOT EXISTS {};", &f[..f.len() - 1]))
        {
            continue;
        }
        let makes_type = ["CREATE TYPE ", "CREATE DOMAIN "]
            .iter()
            .any(|p| line.starts_with(p));
        if !makes_type || line.starts_with(&format!("CREATE TYPE {to}")) {
            rest.push_str(line);
            rest.push('\n');
            continue;
        }
        // In order: the statements before it may make its schema.
        tx.batch_execute(&std::mem::take(&mut rest))
            .await
            .db(what)?;
        tx.batch_execute("SAVEPOINT shared_type").await.db(what)?;
        match tx.batch_execute(line).await {
            Ok(()) => tx.batch_execute("RELEASE SAVEPOINT shared_type").await,
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT shared_type").await
            }
            Err(e) => Err(e),
        }
        .db(what)?;
    }
    tx.batch_execute(&rest).await.db(what)?;
    tx.batch_execute(&requalify(&ddl.foreign_keys, from, &to))
        .await
        .db(what)?;
    let mut skipped = vec![];
    for key in &ddl.external_keys {
        let key = requalify(key, from, &to);
        tx.batch_execute("SAVEPOINT external_key").await.db(what)?;
        match tx.batch_execute(&key).await {
            Ok(()) => tx.batch_execute("RELEASE SAVEPOINT external_key").await,
            Err(e) => {
                skipped.push(format!(
                    "not added ({}): {key}",
                    crate::error::with_causes(&e)
                ));
                tx.batch_execute("ROLLBACK TO SAVEPOINT external_key").await
            }
        }
        .db(what)?;
    }
    tx.commit().await.db(what)?;
    Ok(skipped)
}

/// Drops a schema [`replay`] created: after the restore into it failed, or a drill.
pub async fn drop_created(client: &impl GenericClient, home: &str) -> Result<()> {
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", ident(home)))
        .await
        .db(|| format!("dropping schema {home:?}, which the failed restore created"))
}

/// The user schemas, and the tables, sequences and types in them, of the connected database
/// (kind, qualified name): taken before [`replay`] into a database of a tenant's own, so that
/// [`drop_new`] drops only what the replay made.
pub async fn user_objects(client: &impl GenericClient) -> Result<BTreeSet<(String, String)>> {
    let rows = client
        .query(
            "WITH n AS (SELECT oid, nspname FROM pg_namespace \
                 WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema') \
             SELECT 'schema', quote_ident(nspname) FROM n \
             UNION ALL \
             SELECT CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END, c.oid::regclass::text \
             FROM pg_class c JOIN n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'S') AND NOT c.relispartition \
             UNION ALL \
             SELECT 'type', t.oid::regtype::text FROM pg_type t JOIN n ON n.oid = t.typnamespace \
             WHERE t.typtype IN ('e', 'c', 'd', 'r') \
               AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')",
            &[],
        )
        .await
        .db(|| "listing the database's schemas, tables and types".to_string())?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Drops what a failed restore made in a database since `before` ([`user_objects`]): new
/// schemas whole, then new tables (with their sequences), sequences and types in the others.
pub async fn drop_new(
    client: &impl GenericClient,
    before: &BTreeSet<(String, String)>,
) -> Result<()> {
    let now = user_objects(client).await?;
    let what = || "dropping what the failed restore made".to_string();
    // A plain Vec and loop (no iterator adaptor held across the awaits) keeps the future Send.
    let made: Vec<(String, String)> = now.difference(before).cloned().collect();
    for kind in ["schema", "table", "sequence", "type"] {
        for (k, name) in &made {
            if k != kind {
                continue;
            }
            let sql = match k.as_str() {
                "schema" => format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
                other => format!("DROP {} IF EXISTS {name} CASCADE", other.to_uppercase()),
            };
            // An object of a schema dropped before it is gone already: IF EXISTS.
            match client.batch_execute(&sql).await {
                Ok(()) => {}
                Err(e)
                    if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_SCHEMA_NAME) => {}
                Err(e) => return Err(e).db(what),
            }
        }
    }
    Ok(())
}

/// Moves every sequence that a column of a table in `schema` owns (serial and identity
/// columns) past the column's largest value, as after a load: the next row gets a new key.
pub async fn advance_sequences(client: &impl GenericClient, schema: &str) -> Result<()> {
    let what = || format!("advancing the sequences of schema {schema:?}");
    let owned = client
        .query(
            "SELECT s.seq, c.relname::text, a.attname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped, \
             LATERAL (SELECT pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS seq) s \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND s.seq IS NOT NULL",
            &[&schema],
        )
        .await
        .db(what)?;
    for r in owned {
        let (seq, table, column): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        client
            .query_one(
                &format!(
                    "SELECT setval($1::text::regclass, coalesce((SELECT max({}) FROM {}), 0) + 1, false)",
                    ident(&column),
                    qualified(schema, &table)
                ),
                &[&seq],
            )
            .await
            .db(what)?;
    }
    Ok(())
}

/// Text for a `--` comment: names from the catalog may hold line breaks (quoted identifiers),
/// which would end the comment and make the rest of the name a statement of the script.
pub(super) fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Rewrites schema-qualified names in SQL text: every name qualified by one of `from` (each a
/// schema as PostgreSQL prints it, with the dot: `app.` or `"My App".`) is qualified by `to`
/// instead. String literals and names that merely end in a schema's name are left alone, so
/// `'app.x'` and `myapp.t` stay as they are.
pub fn requalify(sql: &str, from: &[String], to: &str) -> String {
    let b = sql.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(sql.len());
    // Whether the byte before `i` continues a name (an identifier, a quoted one, or a dot).
    let mut in_name = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            let escapes = out.last().is_some_and(|&p| p == b'E' || p == b'e');
            let start = i;
            i += 1;
            while i < b.len() {
                match b[i] {
                    b'\\' if escapes => i += 2,
                    b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            let literal = &b[start..i.min(b.len())];
            // A relation named in a literal (a default's `nextval('s.seq'::regclass)`) moves too.
            let moved = b[i.min(b.len())..].starts_with(b"::regclass") && !escapes;
            match from
                .iter()
                .find(|f| moved && literal[1..].starts_with(f.as_bytes()))
            {
                Some(f) => {
                    out.push(b'\'');
                    out.extend_from_slice(to.replace('\'', "''").as_bytes());
                    out.extend_from_slice(&literal[1 + f.len()..]);
                }
                None => out.extend_from_slice(literal),
            }
            in_name = false;
            continue;
        }
        if !in_name {
            if let Some(f) = from.iter().find(|f| b[i..].starts_with(f.as_bytes())) {
                out.extend_from_slice(to.as_bytes());
                i += f.len();
                in_name = true;
                continue;
            }
        }
        if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.extend_from_slice(&b[start..i.min(b.len())]);
            in_name = true;
            continue;
        }
        in_name = c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.' || c >= 0x80;
        out.push(c);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| sql.to_string())
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
        one_line(&def.display_name()),
        qualified(&def.schema, &def.name),
        lines.join(",\n    ")
    )
}

#[cfg(test)]
mod tests {
    use super::requalify;

    #[test]
    fn requalify_moves_names_and_leaves_literals_alone() {
        let from = ["t_9.".to_string(), "\"t_9\".".to_string()];
        let sql = "CREATE TABLE \"t_9\".\"c\" (m t_9.mood DEFAULT 't_9.mood'::t_9.mood, \
                   x myt_9.y, z \"a\"\"t_9\".w, e text DEFAULT E'it\\'s t_9.x');";
        assert_eq!(
            requalify(sql, &from, "\"\"."),
            "CREATE TABLE \"\".\"c\" (m \"\".mood DEFAULT 't_9.mood'::\"\".mood, \
             x myt_9.y, z \"a\"\"t_9\".w, e text DEFAULT E'it\\'s t_9.x');"
        );
        let back = requalify(
            "CREATE TABLE \"\".c (m \"\".mood[])",
            &["\"\".".to_string()],
            "\"new one\".",
        );
        assert_eq!(back, "CREATE TABLE \"new one\".c (m \"new one\".mood[])");
        // Sequences named in defaults move with their schema; other literals stay.
        let seq = "id bigint DEFAULT nextval('t_9.c_id_seq'::regclass), n text DEFAULT 't_9.x'";
        let relative = requalify(seq, &from, "\"\".");
        assert_eq!(
            relative,
            "id bigint DEFAULT nextval('\"\".c_id_seq'::regclass), n text DEFAULT 't_9.x'"
        );
        assert_eq!(
            requalify(&relative, &["\"\".".to_string()], "\"it's\"."),
            "id bigint DEFAULT nextval('\"it''s\".c_id_seq'::regclass), n text DEFAULT 't_9.x'"
        );
    }
}
