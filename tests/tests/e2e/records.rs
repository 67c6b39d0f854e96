//! Record-level work for support staff (find, show, diff, restore-records): the history of
//! one row across snapshots, putting back a deleted customer with everything that hung off
//! it (records_related.rs), keys of every type; schema drift and a rebuilt inventory:
//! records_inventory.rs.

use std::collections::{BTreeMap, BTreeSet};
use tests::*;

pub const FIX: [&str; 2] = ["records_schema.sql", "records_data.sql"];
pub const A: &str = "acme";
pub const B: &str = "globex";

/// Rows of the child tables (no tenant column) that do NOT belong to tenant $1.
pub const CHILD_FILTERS: [(&str, &str); 2] = [
    (
        "crm.invoice_lines",
        "r_.invoice_id NOT IN (SELECT id FROM crm.invoices WHERE tenant_id = $1)",
    ),
    (
        "crm.line_notes",
        "r_.line_id NOT IN (SELECT l.id FROM crm.invoice_lines l \
         JOIN crm.invoices i ON i.id = l.invoice_id WHERE i.tenant_id = $1)",
    ),
];

/// `tvault <cmd> TENANT --table T --key K [extra] --identity FILE`.
pub fn rec(env: &Env, key: &Key, cmd: &str, table: &str, k: &str, extra: &[&str]) -> Output {
    let mut a = vec![cmd, A, "--table", table, "--key", k];
    a.extend_from_slice(extra);
    if cmd != "find" {
        a.extend_from_slice(&["--identity", key.identity_str()]);
    }
    env.tv.run(&a)
}

/// As [`rec`] with `--json`, exit 0 required, stdout parsed.
#[track_caller]
pub fn rec_json(env: &Env, key: &Key, cmd: &str, table: &str, k: &str, extra: &[&str]) -> Value {
    let mut e = extra.to_vec();
    e.push("--json");
    let out = rec(env, key, cmd, table, k, &e);
    out.assert_code(0, &format!("{cmd} {table} --key {k} {extra:?}"));
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|err| panic!("{cmd} --json: invalid JSON ({err}): {}", out.stdout))
}

/// Exit `code`, stderr mentioning `word`.
#[track_caller]
pub fn refused(out: &Output, code: i32, word: &str, what: &str) {
    out.assert_code(code, what);
    assert!(
        out.stderr.to_lowercase().contains(&word.to_lowercase()),
        "{what}: stderr does not mention {word:?}:\n{}",
        out.stderr
    );
}

/// Each column of the rows of `table` matching `where_sql`, as PostgreSQL prints it with
/// TimeZone=UTC (what `show` is expected to print).
pub fn fields(c: &mut Client, table: &str, where_sql: &str) -> Vec<(String, Option<String>)> {
    c.batch_execute("SET TimeZone = 'UTC'").unwrap();
    let cols: Vec<String> = c
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass \
             AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let list: Vec<String> = cols.iter().map(|c| format!("r_.\"{c}\"::text")).collect();
    let sql = format!(
        "SELECT {} FROM {table} r_ WHERE {where_sql}",
        list.join(", ")
    );
    let row = c
        .query_one(&sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    cols.iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), row.get(i)))
        .collect()
}

/// `show --json` fields as (column, value).
#[track_caller]
pub fn shown(v: &Value) -> Vec<(String, Option<String>)> {
    v["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("show --json has no fields array: {v:#}"))
        .iter()
        .map(|f| {
            let col = f["column"].as_str().expect("field column").to_string();
            (col, f["value"].as_str().map(str::to_string))
        })
        .collect()
}

/// Checksum of every table of the database, whole (every tenant), except the rows that
/// `exclude` selects (table, WHERE clause with alias `r_`).
pub fn fingerprint(c: &mut Client, exclude: &[(&str, &str)]) -> BTreeMap<String, (i64, String)> {
    user_tables(c)
        .into_iter()
        .map(|(t, _)| {
            let w = match exclude.iter().find(|(x, _)| *x == t) {
                Some((_, w)) => format!("NOT ({w})"),
                None => "true".to_string(),
            };
            let cs = checksum(c, &t, &w, None);
            (t, cs)
        })
        .collect()
}

/// (table, key without spaces, action) of a restore-records report.
pub fn report_rows(v: &Value) -> BTreeSet<(String, String, String)> {
    v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("restore-records --json has no rows array: {v:#}"))
        .iter()
        .map(|r| {
            (
                norm_table(r["table"].as_str().unwrap_or_default()),
                r["key"].as_str().unwrap_or_default().replace(' ', ""),
                r["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// (inserted, updated, unchanged) of a restore-records report.
#[track_caller]
pub fn counts(v: &Value) -> (u64, u64, u64) {
    let n = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("no {k} count: {v:#}"))
    };
    (n("inserted"), n("updated"), n("unchanged"))
}

fn customer(c: &mut Client, t: &str, id: i32) -> Vec<String> {
    let w = format!("r_.tenant_id = '{t}' AND r_.id = {id}");
    rows_exact(c, "crm.customers", &w, None)
}

#[test]
fn find_show_diff_follow_a_row_through_snapshots() {
    let (env, key) = Env::with_tenants("records_versions", &FIX, &[A, B]);
    let mut c = env.db.client();
    let cust = "crm.customers";
    let w1 = "r_.tenant_id = 'acme' AND r_.id = 1";
    let original = customer(&mut c, A, 1);
    let original_fields = fields(&mut c, cust, w1);
    assert_eq!(
        (
            original_fields[3].1.as_deref(),
            original_fields[4].1.as_deref()
        ),
        (None, Some("")),
        "fixture: email NULL, note empty"
    );
    let other = customer(&mut c, B, 1);
    let s1 = env.tv.backup_all();
    env.db.exec(
        "UPDATE crm.customers SET name = 'Renamed', email = 'new@acme.example', note = NULL \
         WHERE tenant_id = 'acme' AND id = 1",
    );
    let second = customer(&mut c, A, 1);
    let s2 = env.tv.backup_all();
    env.db
        .exec("INSERT INTO crm.customers VALUES ('acme', 100, 'late', NULL, NULL, NULL)");
    let s3 = env.tv.backup_all();

    // The live row differs from the first snapshot in exactly the three changed fields...
    let d = rec_json(&env, &key, "diff", cust, "id=1", &["--snapshot", &s1]);
    assert_eq!(d["live"], "present", "diff: {d:#}");
    let diffs: Vec<(String, Value, Value)> = d["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("diff without differences: {d:#}"))
        .iter()
        .map(|x| {
            (
                x["column"].as_str().unwrap().into(),
                x["snapshot"].clone(),
                x["live"].clone(),
            )
        })
        .collect();
    let s = |x: &str| Value::String(x.into());
    let want = vec![
        ("name".to_string(), s("Acme customer 1"), s("Renamed")),
        ("email".to_string(), Value::Null, s("new@acme.example")),
        ("note".to_string(), s(""), Value::Null),
    ];
    assert_eq!(diffs, want, "diff against the first snapshot: {d:#}");
    // ... and from the second in none.
    let d2 = rec_json(&env, &key, "diff", cust, "id=1", &["--snapshot", &s2]);
    assert_eq!(
        d2["differences"],
        Value::Array(vec![]),
        "diff vs 2nd: {d2:#}"
    );

    env.db
        .exec("DELETE FROM crm.customers WHERE tenant_id = 'acme' AND id = 1");
    let s4 = env.tv.backup_all();
    let snaps = [&s1, &s2, &s3, &s4];
    let history = |k: &str| -> Vec<(String, bool, String)> {
        let v = rec_json(&env, &key, "find", cust, k, &[]);
        v.as_array()
            .unwrap_or_else(|| panic!("find --json is not an array: {v:#}"))
            .iter()
            .map(|e| {
                let p = e["present"]
                    .as_bool()
                    .unwrap_or_else(|| panic!("present: {e}"));
                let ch = e["change"].as_str().unwrap_or_default().to_string();
                (
                    e["snapshot"].as_str().unwrap_or_default().to_string(),
                    p,
                    ch,
                )
            })
            .collect()
    };
    let expect = |changes: [&str; 4]| -> Vec<(String, bool, String)> {
        snaps
            .iter()
            .zip(changes)
            .map(|(s, ch)| {
                (
                    s.to_string(),
                    !matches!(ch, "deleted" | "absent"),
                    ch.to_string(),
                )
            })
            .collect()
    };
    let cases = [
        ("id=1", ["added", "changed", "unchanged", "deleted"]),
        (
            "tenant_id=acme,id=1",
            ["added", "changed", "unchanged", "deleted"],
        ),
        ("id=100", ["absent", "absent", "added", "unchanged"]),
        ("id=5", ["added", "unchanged", "unchanged", "unchanged"]),
        ("id=999", ["absent", "absent", "absent", "absent"]),
    ];
    for (k, changes) in cases {
        assert_eq!(history(k), expect(changes), "find --key {k}");
    }

    // show: the original values, NULL and empty string kept apart; the deleted row is gone
    // from the latest snapshot.
    let v = rec_json(&env, &key, "show", cust, "id=1", &["--snapshot", &s1]);
    assert_eq!(
        shown(&v),
        original_fields,
        "show of the first version: {v:#}"
    );
    assert_eq!(
        (v["tenant"].as_str(), v["snapshot"].as_str()),
        (Some(A), Some(s1.as_str()))
    );
    let out = rec(&env, &key, "show", cust, "id=1", &["--snapshot", "latest"]);
    out.assert_code(4, "show of a record deleted in the latest snapshot");
    let d = rec_json(&env, &key, "diff", cust, "id=1", &["--snapshot", &s1]);
    assert_eq!(d["live"], "deleted", "diff after delete: {d:#}");

    // restore-records of the first version: exactly the original row, once.
    let r = rec_json(
        &env,
        &key,
        "restore-records",
        cust,
        "id=1",
        &["--snapshot", &s1],
    );
    assert_eq!(
        (counts(&r), &r["dry_run"]),
        ((1, 0, 0), &Value::Bool(false)),
        "{r:#}"
    );
    assert_eq!(
        customer(&mut c, A, 1),
        original,
        "row after restoring version 1"
    );
    let r = rec_json(
        &env,
        &key,
        "restore-records",
        cust,
        "id=1",
        &["--snapshot", &s1],
    );
    assert_eq!(counts(&r), (0, 0, 1), "again: {r:#}");
    // The second version over the first: an update.
    let r = rec_json(
        &env,
        &key,
        "restore-records",
        cust,
        "id=1",
        &["--snapshot", &s2],
    );
    assert_eq!(counts(&r), (0, 1, 0), "version 2: {r:#}");
    assert_eq!(
        customer(&mut c, A, 1),
        second,
        "row after restoring version 2"
    );
    assert_eq!(
        customer(&mut c, B, 1),
        other,
        "globex's customer 1 untouched"
    );
}

#[test]
fn keys_of_every_type() {
    let (env, key) = Env::with_tenants("records_key_types", &FIX, &[A, B]);
    let mut c = env.db.client();
    // (table, --key, the row in SQL)
    let cases = [
        (
            "crm.customers",
            "tenant_id=acme,id=3",
            "r_.tenant_id = 'acme' AND r_.id = 3",
        ),
        (
            "crm.customers",
            "id=4",
            "r_.tenant_id = 'acme' AND r_.id = 4",
        ),
        ("crm.tags", "code=acme-vip", "r_.code = 'acme-vip'"),
        (
            "crm.tags",
            "code=acme:with spaces, and comma",
            "r_.code = 'acme:with spaces, and comma'",
        ),
        (
            "crm.documents",
            "id=0b7e4f4c-5a7d-4c59-9a38-3f1f2f6a0002",
            "r_.title = ''",
        ),
        (
            "crm.events",
            "at=2024-01-02 03:04:05+00",
            "r_.tenant_id = 'acme' AND r_.what = 'signed up'",
        ),
        (
            "crm.events",
            "at=2024-01-02 03:04:05.123456+00",
            "r_.what LIKE 'fractional%'",
        ),
    ];
    let before: Vec<_> = cases.iter().map(|(t, _, w)| fields(&mut c, t, w)).collect();
    let snap = env.tv.backup_all();
    let others = snapshot_except(&mut c, A, &CHILD_FILTERS);
    for ((t, k, w), want) in cases.iter().zip(&before) {
        let what = format!("{t} --key {k}");
        let f = rec_json(&env, &key, "find", t, k, &[]);
        let first = (f[0]["snapshot"].as_str(), f[0]["change"].as_str());
        assert_eq!(first, (Some(snap.as_str()), Some("added")), "{what}: {f:#}");
        let v = rec_json(&env, &key, "show", t, k, &[]);
        assert_eq!(&shown(&v), want, "{what}: show");
        env.db.exec(&format!("DELETE FROM {t} r_ WHERE {w}"));
        let r = rec_json(&env, &key, "restore-records", t, k, &[]);
        assert_eq!(counts(&r), (1, 0, 0), "{what}: {r:#}");
        assert_eq!(&fields(&mut c, t, w), want, "{what}: restored row");
    }
    assert_eq!(
        snapshot_except(&mut c, A, &CHILD_FILTERS),
        others,
        "globex's rows changed"
    );

    // No primary key: no record-level access, whole-tenant restore still works.
    let acts = |c: &mut Client| rows_exact(c, "crm.activity", "r_.tenant_id = 'acme'", None);
    let acme_activity = acts(&mut c);
    for cmd in ["find", "show", "diff", "restore-records"] {
        let out = rec(&env, &key, cmd, "crm.activity", "what=login", &[]);
        refused(
            &out,
            2,
            "primary key",
            &format!("{cmd} on a table without primary key"),
        );
    }
    env.db
        .exec("DELETE FROM crm.activity WHERE tenant_id = 'acme' AND what IS NULL");
    env.tv.restore(A, &snap, &key, None);
    assert_rows_eq(
        "acme's crm.activity after restore",
        &acme_activity,
        &acts(&mut c),
    );
}
