//! Record-level restore when the table changed shape since the backup, and record lookups
//! after the local inventory was lost and rebuilt from the object store.

use super::records::{counts, fields, fingerprint, rec, refused, A, B, FIX};
use tests::*;

const CUST: &str = "crm.customers";
/// acme's customers 4 (deleted after the backup) and 5 (changed after it); both have a
/// non-NULL note and score.
const W: [&str; 2] = [
    "r_.tenant_id = 'acme' AND r_.id = 4",
    "r_.tenant_id = 'acme' AND r_.id = 5",
];

type Fields = Vec<(String, Option<String>)>;

/// Backup; then customer 4 is deleted (with its tree), customer 5 renamed, and `ddl` alters
/// the table. Returns both customers' fields at backup time.
fn drift(name: &str, ddl: &str) -> (Env, Key, Vec<Fields>) {
    let (env, key) = Env::with_tenants(name, &FIX, &[A, B]);
    let mut c = env.db.client();
    let before: Vec<Fields> = W.iter().map(|w| fields(&mut c, CUST, w)).collect();
    assert_eq!(
        before[0][4],
        ("note".into(), Some("note 4".into())),
        "fixture"
    );
    env.tv.backup_all();
    env.db.exec(
        "DELETE FROM crm.customers WHERE tenant_id = 'acme' AND id = 4;
         UPDATE crm.customers SET name = 'renamed' WHERE tenant_id = 'acme' AND id = 5;",
    );
    env.db.exec(ddl);
    (env, key, before)
}

#[test]
fn added_columns_are_left_null_or_default() {
    let (env, key, before) = drift(
        "records_drift_added",
        "ALTER TABLE crm.customers ADD COLUMN phone text, \
         ADD COLUMN tier text NOT NULL DEFAULT 'basic'",
    );
    let extra = ["--key", "id=5", "--json"];
    let out = rec(&env, &key, "restore-records", CUST, "id=4", &extra);
    out.assert_code(0, "restore-records after columns were added");
    let r: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(counts(&r), (1, 1, 0), "{r:#}");
    for (w, mut want) in W.iter().zip(before) {
        want.push(("phone".into(), None));
        want.push(("tier".into(), Some("basic".into())));
        assert_eq!(
            fields(&mut env.db.client(), CUST, w),
            want,
            "restored row {w}"
        );
    }
}

/// restore-records of the deleted and of the changed customer must be refused with exit 3
/// naming `column`, and change nothing.
#[track_caller]
fn refused_unchanged(env: &Env, key: &Key, column: &str) {
    let mut c = env.db.client();
    let whole = fingerprint(&mut c, &[]);
    for (k, extra) in [
        ("id=4", &[][..]),
        ("id=4", &["--with-related"][..]),
        ("id=5", &[][..]),
    ] {
        let out = rec(env, key, "restore-records", CUST, k, extra);
        let what = format!("restore-records --key {k} {extra:?} across drift of {column}");
        assert_eq!(
            fingerprint(&mut c, &[]),
            whole,
            "{what} changed data (exit {}, stderr {:?})",
            out.code,
            out.stderr
        );
        refused(&out, 3, column, &what);
    }
}

#[test]
fn dropped_column_with_a_value_is_refused() {
    let (env, key, _) = drift(
        "records_drift_dropped",
        "ALTER TABLE crm.customers DROP COLUMN note",
    );
    refused_unchanged(&env, &key, "note");
}

#[test]
fn changed_column_type_is_refused() {
    let (env, key, _) = drift(
        "records_drift_type",
        "ALTER TABLE crm.customers ALTER COLUMN score TYPE text",
    );
    refused_unchanged(&env, &key, "score");
}

/// (tenant, table, key) looked up before and after the rebuild.
const PROBES: [(&str, &str, &str); 10] = [
    (A, "crm.customers", "id=1"),
    (A, "crm.customers", "tenant_id=acme,id=2"),
    (A, "crm.customers", "id=999"),
    (A, "crm.invoice_lines", "id=10111"),
    (A, "crm.line_notes", "id=102112"),
    (A, "crm.tags", "code=acme-new"),
    (
        A,
        "crm.documents",
        "id=0b7e4f4c-5a7d-4c59-9a38-3f1f2f6a0001",
    ),
    (A, "crm.events", "at=2024-01-02 03:04:05.123456+00"),
    (B, "crm.customers", "id=1"),
    (B, "crm.events", "at=2024-01-02 03:04:05+00"),
];

fn find_all(tv: &Tvault) -> Vec<Value> {
    PROBES
        .iter()
        .map(|(t, table, k)| tv.json(&["find", t, "--table", table, "--key", k]))
        .collect()
}

fn listing(tv: &Tvault) -> Vec<String> {
    let mut v: Vec<String> = tv.snapshots().iter().map(Value::to_string).collect();
    v.sort();
    v
}

#[track_caller]
fn rebuild(tv: &Tvault, ids: &[String], without_keys: &[&str]) -> Value {
    let mut a = vec!["inventory", "rebuild"];
    for i in ids {
        a.extend_from_slice(&["--identity", i]);
    }
    let r = tv.json(&a);
    assert_eq!(r["tenants"], 2, "rebuild {ids:?}: {r:#}");
    let mut nk: Vec<&str> = r["tenants_without_keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no tenants_without_keys: {r:#}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    nk.sort();
    assert_eq!(nk, without_keys, "rebuild {ids:?}: {r:#}");
    r
}

#[track_caller]
fn find_needs_identity(tv: &Tvault, tenant: &str) {
    let out = tv.run(&["find", tenant, "--table", CUST, "--key", "id=1"]);
    refused(
        &out,
        4,
        "--identity",
        &format!("find for {tenant} before its key set is rebuilt"),
    );
}

fn acme_rows(c: &mut Client) -> Vec<Vec<String>> {
    vec![
        rows_exact(c, "crm.customers", "r_.tenant_id = 'acme'", None),
        rows_exact(c, "crm.invoices", "r_.tenant_id = 'acme'", None),
        rows_exact(
            c,
            "crm.line_notes",
            "r_.line_id BETWEEN 10000 AND 19999",
            None,
        ),
    ]
}

#[test]
fn inventory_rebuild_gives_the_same_answers() {
    let (env, key) = Env::with_tenants("records_inventory", &FIX, &[A, B]);
    env.tv.backup_all();
    env.db.exec(
        "UPDATE crm.customers SET name = 'v2' WHERE tenant_id = 'acme' AND id = 1;
         DELETE FROM crm.customers WHERE tenant_id = 'acme' AND id = 2;
         UPDATE crm.invoice_lines SET amount = 0 WHERE id = 10111;
         INSERT INTO crm.tags VALUES ('acme-new', 'acme', 'new');
         UPDATE crm.customers SET email = 'b1@globex.example' WHERE tenant_id = 'globex' AND id = 1;",
    );
    env.tv.backup_all();
    env.db.exec(
        "DELETE FROM crm.line_notes WHERE id = 102112;
         DELETE FROM crm.events WHERE what LIKE 'fractional%';",
    );
    let last = env.tv.backup_all();
    let recorded = find_all(&env.tv);
    assert_eq!(
        recorded[0].as_array().map(Vec::len),
        Some(3),
        "{:#}",
        recorded[0]
    );
    let snapshots = listing(&env.tv);

    let inv = env.tv.vault.join("inventory");
    assert!(inv.is_dir(), "no inventory dir: {:#?}", walk(&env.tv.vault));
    std::fs::remove_dir_all(&inv).unwrap();

    // Without keys: listing and whole-tenant restore work, record lookups say what to do.
    rebuild(&env.tv, &[], &[A, B]);
    assert_eq!(
        listing(&env.tv),
        snapshots,
        "snapshots after a keyless rebuild"
    );
    find_needs_identity(&env.tv, A);
    find_needs_identity(&env.tv, B);
    let scratch = env.scratch_db("records_inventory_scratch", &FIX[..1]);
    env.tv.restore(A, &last, &key, Some(&scratch.url));
    let live = acme_rows(&mut env.db.client());
    assert_eq!(
        acme_rows(&mut scratch.client()),
        live,
        "whole-tenant restore after rebuild"
    );

    // With acme's key: acme's answers are back, exactly; globex still needs its key.
    let id_a = format!("{A}={}", key.identity_str());
    let id_b = format!("{B}={}", key.identity_str());
    let r = rebuild(&env.tv, std::slice::from_ref(&id_a), &[B]);
    assert!(
        r["key_sets"].as_u64().unwrap_or(0) > 0,
        "no key sets rebuilt: {r:#}"
    );
    find_needs_identity(&env.tv, B);
    let n_a = PROBES.iter().filter(|p| p.0 == A).count();
    assert_eq!(
        find_all_of(&env.tv, A),
        recorded[..n_a],
        "acme's find after rebuild"
    );

    rebuild(&env.tv, &[id_a, id_b], &[]);
    assert_eq!(
        find_all(&env.tv),
        recorded,
        "find answers after the full rebuild"
    );
    assert_eq!(
        listing(&env.tv),
        snapshots,
        "snapshots after the full rebuild"
    );

    // Backups go on, deduplicated against the rebuilt inventory: nothing changed, so the
    // cycle finds every tenant unchanged and adds no version.
    let b = env.tv.json(&["backup", "--all"]);
    for t in b["tenants"].as_array().unwrap() {
        assert_eq!(
            t["blocks_new"], 0,
            "nothing changed, new blocks stored: {b:#}"
        );
        assert!(
            t["blocks_reused"].as_u64().unwrap_or(0) > 0,
            "no blocks reused: {b:#}"
        );
        assert_eq!(t["unchanged"], true, "{b:#}");
    }
    let v = env.tv.json(&["find", A, "--table", CUST, "--key", "id=1"]);
    assert_eq!(v.as_array().map(Vec::len), Some(3), "{v:#}");
    // A change after the rebuild is a new version that find tells apart.
    env.db.exec(&format!(
        "UPDATE {CUST} SET name = 'after rebuild' WHERE tenant_id = '{A}' AND id = 1"
    ));
    env.tv.json(&["backup", "--all"]);
    let v = env.tv.json(&["find", A, "--table", CUST, "--key", "id=1"]);
    assert_eq!(v.as_array().map(Vec::len), Some(4), "{v:#}");
    assert_eq!(v[3]["change"], "changed", "{v:#}");
}

fn find_all_of(tv: &Tvault, tenant: &str) -> Vec<Value> {
    PROBES
        .iter()
        .filter(|p| p.0 == tenant)
        .map(|(t, table, k)| tv.json(&["find", t, "--table", table, "--key", k]))
        .collect()
}
