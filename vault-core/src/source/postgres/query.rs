//! The SQL text for reading, deleting and loading one tenant's rows of a table.
//!
//! Backup, restore and post-restore verification all read rows through [`select`], so the bytes
//! that are checksummed at restore time are produced exactly as they were at backup time.

use super::catalog::{Hop, Owner, TableDef};
use crate::sql::{ident, qualified};

/// Session settings that fix the text form of every type, so archives do not depend on the
/// server's or the role's defaults (the same list pg_dump pins). Rows must also come in the
/// same order each cycle, or they are cut into different blocks and nothing deduplicates
/// (measured: an unchanged 1 GB database stored 9 MB anew per cycle): a scan of a large table
/// would start wherever another scan of it is (`synchronize_seqscans`), and a parallel join
/// returns rows in whatever order its workers finish.
pub const SESSION_SETTINGS: &str = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; \
     SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex'; \
     SET client_encoding = 'UTF8'; SET standard_conforming_strings = on; \
     SET synchronize_seqscans = off; SET max_parallel_workers_per_gather = 0";

/// ` JOIN … AS {prefix}1 ON … JOIN … AS {prefix}2 …` following `path` from alias `t0`; returns
/// the joins and the alias of the last table.
fn path_joins(path: &[Hop], prefix: &str) -> (String, String) {
    let mut joins = String::new();
    let mut prev = "t0".to_string();
    for (i, hop) in path.iter().enumerate() {
        let alias = format!("{prefix}{}", i + 1);
        let on: Vec<String> = hop
            .columns
            .iter()
            .zip(&hop.ref_columns)
            .map(|(c, r)| format!("{prev}.{} = {alias}.{}", ident(c), ident(r)))
            .collect();
        joins.push_str(&format!(
            " JOIN {} AS {alias} ON {}",
            qualified(&hop.ref_schema, &hop.ref_table),
            on.join(" AND ")
        ));
        prev = alias;
    }
    (joins, prev)
}

/// `FROM` clause with the joins that reach the owning tenant, and the tenant's expression. A
/// table of a tenant's own schema has no owner in its rows: the tenant read for is its owner.
fn from_and_owner(t: &TableDef, tenant_literal: Option<&str>) -> (String, String) {
    let from = format!("{} AS t0", qualified(&t.schema, &t.name));
    match &t.owner {
        Owner::Column { column } => (from, format!("t0.{}", ident(column))),
        Owner::Parent { path, column } => {
            let (joins, last) = path_joins(path, "t");
            (
                format!("{from}{joins}"),
                format!("{last}.{}", ident(column)),
            )
        }
        // Operator-declared SQL (config, never the store); cast so COPY prints it as text.
        Owner::Expression { tenant } => (from, format!("({tenant})::text")),
        Owner::Schema => (from, tenant_literal.unwrap_or("NULL::text").to_string()),
    }
}

/// Rows of a child table whose chosen owner path and `other` path name different tenants: the
/// count of all such rows and the keys of the first five (`ARRAY[pk::text…]`, or the ctid).
pub fn disagreeing_owners(t: &TableDef, other: &[Hop], column: &str) -> String {
    let (from, owner) = from_and_owner(t, None);
    let (joins, last) = path_joins(other, "a");
    let key = if t.primary_key.is_empty() {
        "ARRAY[t0.ctid::text]".to_string()
    } else {
        crate::sql::as_text(&t.primary_key, "t0.")
    };
    format!(
        "SELECT count(*) OVER ()::int8, {key} FROM {from}{joins} WHERE {owner} <> {last}.{} LIMIT 5",
        ident(column)
    )
}

/// A range of heap pages `[start, end)` (`end` open when `None`), read with a TID range scan.
pub type Pages = (u32, Option<u32>);

/// `SELECT <tenant>, <archived columns> FROM …` optionally restricted to one tenant literal
/// (a literal quoted by the server, see [`crate::sql::literal`]) and to a range of pages.
pub fn select(t: &TableDef, tenant_literal: Option<&str>, pages: Option<Pages>) -> String {
    select_where(t, tenant_literal, pages, &[])
}

/// [`select`] with extra conditions (already-quoted SQL over `t0`).
pub fn select_where(
    t: &TableDef,
    tenant_literal: Option<&str>,
    pages: Option<Pages>,
    extra: &[String],
) -> String {
    let (from, owner) = from_and_owner(t, tenant_literal);
    let cols: Vec<String> = t
        .archived_columns()
        .map(|c| format!("t0.{}", ident(&c.name)))
        .collect();
    let mut sql = format!("SELECT {owner}, {} FROM {from}", cols.join(", "));
    let mut conditions = extra.to_vec();
    if let (Some(lit), false) = (tenant_literal, t.owner == Owner::Schema) {
        conditions.push(format!("{owner} = {lit}"));
    }
    if let Some((start, end)) = pages {
        conditions.push(format!("t0.ctid >= '({start},0)'::tid"));
        if let Some(end) = end {
            conditions.push(format!("t0.ctid < '({end},0)'::tid"));
        }
    }
    if !conditions.is_empty() {
        sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    sql
}

/// `COPY (select) TO STDOUT`.
pub fn copy_out(t: &TableDef, tenant_literal: Option<&str>, pages: Option<Pages>) -> String {
    format!("COPY ({}) TO STDOUT", select(t, tenant_literal, pages))
}

/// `COPY table (archived columns) TO STDOUT`: every row of a plain table (not partitioned) that
/// is one tenant's whole, without the owner field [`copy_out`] puts first and without a plan.
pub fn copy_table(t: &TableDef) -> String {
    let cols: Vec<String> = t.archived_columns().map(|c| ident(&c.name)).collect();
    format!(
        "COPY {} ({}) TO STDOUT",
        qualified(&t.schema, &t.name),
        cols.join(", ")
    )
}

/// `COPY (select_where) TO STDOUT` of one tenant's rows.
pub fn copy_out_where(t: &TableDef, tenant_literal: &str, extra: &[String]) -> String {
    format!(
        "COPY ({}) TO STDOUT",
        select_where(t, Some(tenant_literal), None, extra)
    )
}

/// The owner of one row, found by `$1` = tableoid (oid) and `$2` = ctid (text); no row when
/// its owner path is broken (or the table is a tenant's own schema's: see [`Owner::Schema`]).
pub fn owner_of_row(t: &TableDef) -> String {
    let (from, owner) = from_and_owner(t, None);
    format!("SELECT ({owner})::text FROM {from} WHERE t0.tableoid = $1 AND t0.ctid = $2::text::tid")
}

/// Deletes one tenant's rows of a table (the target has alias `d`).
pub fn delete(t: &TableDef, tenant_literal: &str) -> String {
    match &t.owner {
        Owner::Column { column } => format!(
            "DELETE FROM {} AS d WHERE d.{} = {tenant_literal}",
            qualified(&t.schema, &t.name),
            ident(column)
        ),
        Owner::Schema => format!("DELETE FROM {} AS d", qualified(&t.schema, &t.name)),
        Owner::Parent { .. } | Owner::Expression { .. } => {
            // Row identity through (tableoid, ctid) keeps this correct for tables without a
            // primary key, and for partitioned tables, whose partitions repeat ctids.
            let (from, owner) = from_and_owner(t, None);
            format!(
                "DELETE FROM {} AS d WHERE (d.tableoid, d.ctid) IN \
                 (SELECT t0.tableoid, t0.ctid FROM {from} WHERE {owner} = {tenant_literal})",
                qualified(&t.schema, &t.name)
            )
        }
    }
}

/// `COPY table (archived columns) FROM STDIN`.
pub fn copy_in(t: &TableDef) -> String {
    let cols: Vec<String> = t.archived_columns().map(|c| ident(&c.name)).collect();
    format!(
        "COPY {} ({}) FROM STDIN",
        qualified(&t.schema, &t.name),
        cols.join(", ")
    )
}
