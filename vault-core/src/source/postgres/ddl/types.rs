//! The user-defined types that tables' columns use, read in bulk: a few catalog queries whatever
//! the number of tables and types (a database of 2,000 tenant schemas has 2,000 enums of the
//! same name).

use crate::error::{DbContext, Result};
use crate::sql::ident;
use std::collections::{BTreeSet, HashMap, HashSet};
use tokio_postgres::GenericClient;

/// A user-defined type (or extension) that tables need, with the statement that makes it.
pub(super) struct UserType {
    pub schema: String,
    pub ddl: String,
}

/// One type the columns reach, and what it needs first.
struct TypeInfo {
    schema: String,
    /// `None` for types that need no statement (built in, arrays) or come from an extension.
    ddl: Option<String>,
    extension: Option<String>,
    deps: Vec<u32>,
}

/// The types the columns of a set of tables use, directly or through arrays, domains,
/// composites and ranges.
pub(super) struct Types {
    /// Table oid -> the types of its columns.
    by_table: HashMap<u32, Vec<u32>>,
    info: HashMap<u32, TypeInfo>,
}

const WHAT: fn() -> String = || "reading the types the tables use".to_string();

impl Types {
    /// Reads the types of the columns of `tables` (oids) and everything they depend on.
    pub(super) async fn read(client: &impl GenericClient, tables: &[u32]) -> Result<Types> {
        let mut by_table: HashMap<u32, Vec<u32>> = HashMap::new();
        for r in client
            .query(
                "SELECT DISTINCT attrelid, atttypid FROM pg_attribute \
                 WHERE attrelid = ANY($1) AND attnum > 0 AND NOT attisdropped",
                &[&tables],
            )
            .await
            .db(WHAT)?
        {
            by_table.entry(r.get(0)).or_default().push(r.get(1));
        }
        let mut info: HashMap<u32, TypeInfo> = HashMap::new();
        let mut pending: Vec<u32> = by_table.values().flatten().copied().collect();
        pending.sort_unstable();
        pending.dedup();
        // Level by level: each round reads the types found in the previous one.
        while !pending.is_empty() {
            let found = describe(client, &pending).await?;
            pending = found
                .iter()
                .flat_map(|(_, t)| t.deps.iter().copied())
                .filter(|d| !info.contains_key(d))
                .collect::<BTreeSet<u32>>()
                .into_iter()
                .collect();
            info.extend(found);
            pending.retain(|d| !info.contains_key(d));
        }
        let user: Vec<u32> = info
            .iter()
            .filter(|(_, t)| t.ddl.is_some())
            .map(|(&oid, _)| oid)
            .collect();
        for (oid, ddl) in statements(client, &user).await? {
            if let Some(t) = info.get_mut(&oid) {
                t.ddl = Some(ddl);
            }
        }
        Ok(Types { by_table, info })
    }

    /// The statements that make the types `tables` need, dependencies first: extensions, then
    /// the types, each with its schema.
    pub(super) fn for_tables(&self, tables: &[u32]) -> Vec<UserType> {
        let mut order = vec![];
        let mut done = HashSet::new();
        let mut roots: Vec<u32> = tables
            .iter()
            .flat_map(|t| self.by_table.get(t).into_iter().flatten().copied())
            .collect();
        roots.sort_unstable();
        for oid in roots {
            self.visit(oid, &mut done, &mut order);
        }
        let extensions: BTreeSet<&String> = order
            .iter()
            .filter_map(|o| self.info[o].extension.as_ref())
            .collect();
        let mut out: Vec<UserType> = extensions
            .into_iter()
            .map(|e| UserType {
                schema: "public".into(),
                ddl: format!("CREATE EXTENSION IF NOT EXISTS {};", ident(e)),
            })
            .collect();
        out.extend(order.iter().filter_map(|o| {
            let t = &self.info[o];
            t.ddl.clone().map(|ddl| UserType {
                schema: t.schema.clone(),
                ddl,
            })
        }));
        out
    }

    fn visit(&self, oid: u32, done: &mut HashSet<u32>, out: &mut Vec<u32>) {
        if !done.insert(oid) {
            return;
        }
        if let Some(t) = self.info.get(&oid) {
            for &d in &t.deps {
                self.visit(d, done, out);
            }
            out.push(oid);
        }
    }
}

/// Describes each of `oids`: whether it needs a statement and what it depends on.
async fn describe(client: &impl GenericClient, oids: &[u32]) -> Result<Vec<(u32, TypeInfo)>> {
    let rows = client
        .query(
            "SELECT t.oid, n.nspname::text, t.typelem, t.typbasetype, \
                    (SELECT e.extname::text FROM pg_depend d JOIN pg_extension e \
                        ON e.oid = d.refobjid WHERE d.classid = 'pg_type'::regclass \
                        AND d.objid = t.oid AND d.deptype = 'e'), \
                    (SELECT rngsubtype FROM pg_range WHERE rngtypid = t.oid), \
                    t.typcategory::text, \
                    ARRAY(SELECT atttypid FROM pg_attribute WHERE attrelid = t.typrelid \
                          AND t.typrelid <> 0 AND attnum > 0 AND NOT attisdropped) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.oid = ANY($1)",
            &[&oids],
        )
        .await
        .db(WHAT)?;
    Ok(rows
        .iter()
        .map(|r| {
            let schema: String = r.get(1);
            let (elem, base): (u32, u32) = (r.get(2), r.get(3));
            let extension: Option<String> = r.get(4);
            let subtype: Option<u32> = r.get(5);
            let category: String = r.get(6);
            let attributes: Vec<u32> = r.get(7);
            let array = category == "A";
            let builtin = schema == "pg_catalog" || schema == "information_schema";
            let mut deps = vec![];
            if array && elem != 0 {
                deps.push(elem);
            }
            if !array && !builtin && extension.is_none() {
                deps.extend((base != 0).then_some(base));
                deps.extend(subtype);
                deps.extend(attributes);
            }
            let needs = !array && !builtin && extension.is_none();
            let info = TypeInfo {
                schema,
                ddl: needs.then(String::new),
                extension,
                deps,
            };
            (r.get(0), info)
        })
        .collect())
}

/// The statement that makes each user-defined type of `oids`.
async fn statements(client: &impl GenericClient, oids: &[u32]) -> Result<Vec<(u32, String)>> {
    let by_oid = |sql: &'static str| async move {
        client.query(sql, &[&oids]).await.db(WHAT).map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r.get::<_, u32>(0),
                        r.get::<_, Option<String>>(1).unwrap_or_default(),
                    )
                })
                .collect::<HashMap<u32, String>>()
        })
    };
    let kinds = by_oid("SELECT oid, typtype::text FROM pg_type WHERE oid = ANY($1)").await?;
    let names =
        by_oid("SELECT oid, format_type(oid, NULL) FROM pg_type WHERE oid = ANY($1)").await?;
    let labels = by_oid(
        "SELECT enumtypid, string_agg(quote_literal(enumlabel), ', ' ORDER BY enumsortorder) \
         FROM pg_enum WHERE enumtypid = ANY($1) GROUP BY 1",
    )
    .await?;
    let domains = by_oid(
        "SELECT oid, format_type(typbasetype, typtypmod) \
             || CASE WHEN typdefault IS NOT NULL THEN ' DEFAULT ' || typdefault ELSE '' END \
             || CASE WHEN typnotnull THEN ' NOT NULL' ELSE '' END \
         FROM pg_type WHERE oid = ANY($1) AND typtype = 'd'",
    )
    .await?;
    let checks = by_oid(
        "SELECT contypid, string_agg(' CONSTRAINT ' || quote_ident(conname) || ' ' \
             || pg_get_constraintdef(oid), '' ORDER BY conname) \
         FROM pg_constraint WHERE contypid = ANY($1) GROUP BY 1",
    )
    .await?;
    let composites = by_oid(
        "SELECT t.oid, string_agg(quote_ident(a.attname) || ' ' \
             || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) \
         FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid \
         WHERE t.oid = ANY($1) AND t.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped \
         GROUP BY t.oid",
    )
    .await?;
    let ranges = by_oid(
        "SELECT rngtypid, format_type(rngsubtype, NULL) FROM pg_range WHERE rngtypid = ANY($1)",
    )
    .await?;
    let get = |m: &HashMap<u32, String>, oid: &u32| m.get(oid).cloned().unwrap_or_default();
    Ok(oids
        .iter()
        .map(|oid| {
            let name = get(&names, oid);
            let ddl = match kinds.get(oid).map(String::as_str) {
                Some("e") => format!("CREATE TYPE {name} AS ENUM ({});", get(&labels, oid)),
                Some("d") => format!(
                    "CREATE DOMAIN {name} AS {}{};",
                    get(&domains, oid),
                    get(&checks, oid)
                ),
                Some("c") => format!("CREATE TYPE {name} AS ({});", get(&composites, oid)),
                Some("r") => format!(
                    "CREATE TYPE {name} AS RANGE (SUBTYPE = {});",
                    get(&ranges, oid)
                ),
                _ => format!(
                    "-- type {}: a base type of its own; create it before loading",
                    super::one_line(&name)
                ),
            };
            (*oid, ddl)
        })
        .collect())
}
