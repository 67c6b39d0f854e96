//! Exact row texts and checksums of live data.

use std::collections::BTreeMap;

use crate::Client;

/// Exact text form of every row of `table` matching `where_sql` (may reference the row
/// alias `r_`; `$1` is bound to `param` when given), each suffixed with per-column
/// `IS NULL` flags. Sorted (byte order), duplicates kept.
pub fn rows_exact(
    c: &mut Client,
    table: &str,
    where_sql: &str,
    param: Option<&str>,
) -> Vec<String> {
    let flags: String = c
        .query_one(
            "SELECT coalesce(string_agg(format('(r_.%I IS NULL)::int::text', attname), ' || ' ORDER BY attnum), '''''') \
             FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&table],
        )
        .unwrap_or_else(|e| panic!("columns of {table}: {e:?}"))
        .get(0);
    let sql = format!("SELECT r_::text || ' #nulls=' || {flags} FROM {table} r_ WHERE {where_sql}");
    let rows = match param {
        Some(p) => c.query(&sql, &[&p]),
        None => c.query(&sql, &[]),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let mut v: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    v.sort();
    v
}

/// (row count, md5 of all rows' text) of `table` rows matching `where_sql` (`$1` = param).
pub fn checksum(
    c: &mut Client,
    table: &str,
    where_sql: &str,
    param: Option<&str>,
) -> (i64, String) {
    let sql = format!(
        "SELECT count(*)::bigint, coalesce(md5(string_agg(r_::text, E'\\n' ORDER BY r_::text COLLATE \"C\")), '') \
         FROM {table} r_ WHERE {where_sql}"
    );
    let row = match param {
        Some(p) => c.query_one(&sql, &[&p]),
        None => c.query_one(&sql, &[]),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    (row.get(0), row.get(1))
}

/// Per-tenant checksum of one tenant's rows in a table with a `tenant_id` column.
pub fn tenant_checksum(c: &mut Client, table: &str, tenant: &str) -> (i64, String) {
    checksum(c, table, "r_.tenant_id = $1", Some(tenant))
}

/// All ordinary/partitioned user tables as `schema.table` (quoted as needed),
/// with whether they have a `tenant_id` column.
pub fn user_tables(c: &mut Client) -> Vec<(String, bool)> {
    c.query(
        "SELECT format('%I.%I', n.nspname, cl.relname), \
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = cl.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
         FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace \
         WHERE cl.relkind IN ('r','p') AND NOT cl.relispartition \
           AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
         ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Every row of every user table of the database (partitioned tables through their root), by
/// `schema.table`.
pub fn whole_db(c: &mut Client) -> BTreeMap<String, Vec<String>> {
    user_tables(c)
        .into_iter()
        .map(|(t, _)| {
            let rows = rows_exact(c, &t, "true", None);
            (t, rows)
        })
        .collect()
}

/// Fingerprint of everything in the database except tenant `tenant`'s rows:
/// tables with `tenant_id` -> one checksum per *other* tenant (NULL tenant included);
/// tables without -> whole-table checksum, unless `child_filters` gives a WHERE clause
/// (alias `r_`, `$1` = tenant) selecting the rows that do NOT belong to `tenant`.
pub fn snapshot_except(
    c: &mut Client,
    tenant: &str,
    child_filters: &[(&str, &str)],
) -> BTreeMap<String, (i64, String)> {
    let mut out = BTreeMap::new();
    for (table, has_tenant) in user_tables(c) {
        if has_tenant {
            let tenants: Vec<Option<String>> = c
                .query(
                    &format!("SELECT DISTINCT tenant_id::text FROM {table} WHERE tenant_id::text IS DISTINCT FROM $1"),
                    &[&tenant],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            for t in tenants {
                let key = format!("{table} [tenant {t:?}]");
                let cs = match &t {
                    Some(t) => checksum(c, &table, "r_.tenant_id::text = $1", Some(t)),
                    None => checksum(c, &table, "r_.tenant_id IS NULL", None),
                };
                out.insert(key, cs);
            }
        } else if let Some((_, w)) = child_filters.iter().find(|(t, _)| *t == table) {
            out.insert(
                format!("{table} [not {tenant:?}]"),
                checksum(c, &table, w, Some(tenant)),
            );
        } else {
            out.insert(
                format!("{table} [whole]"),
                checksum(c, &table, "true", None),
            );
        }
    }
    out
}

/// assert_eq for big row lists with a readable message (first differences, truncated).
#[track_caller]
pub fn assert_rows_eq(what: &str, expected: &[String], actual: &[String]) {
    if expected == actual {
        return;
    }
    let cut = |s: &str| -> String {
        if s.len() > 300 {
            format!(
                "{}… ({} bytes)",
                &s[..s.char_indices().nth(300).map_or(s.len(), |x| x.0)],
                s.len()
            )
        } else {
            s.to_string()
        }
    };
    let missing: Vec<String> = expected
        .iter()
        .filter(|r| !actual.contains(r))
        .take(5)
        .map(|s| cut(s))
        .collect();
    let extra: Vec<String> = actual
        .iter()
        .filter(|r| !expected.contains(r))
        .take(5)
        .map(|s| cut(s))
        .collect();
    panic!(
        "{what}: rows differ: expected {} rows, got {}.\n missing (first 5): {missing:#?}\n unexpected (first 5): {extra:#?}",
        expected.len(),
        actual.len()
    );
}

/// [`assert_rows_eq`] for every key of two maps of row lists (e.g. per table or tenant).
#[track_caller]
pub fn assert_tables_eq<K: Ord + std::fmt::Debug>(
    what: &str,
    expected: &BTreeMap<K, Vec<String>>,
    actual: &BTreeMap<K, Vec<String>>,
) {
    let ek: Vec<&K> = expected.keys().collect();
    let ak: Vec<&K> = actual.keys().collect();
    assert_eq!(ek, ak, "{what}: different tables/keys");
    for (k, rows) in expected {
        assert_rows_eq(&format!("{what}: {k:?}"), rows, &actual[k]);
    }
}
