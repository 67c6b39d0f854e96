//! Every built-in type family survives backup + restore byte for byte (text form of
//! every row plus per-column NULL flags), both in place and into another database.

use std::collections::BTreeMap;
use tests::*;

const SCHEMA: &str = "fidelity_schema.sql";
const DATA: &str = "fidelity_data.sql";
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const TABLE: &str = "public.everything";

fn rows(c: &mut Client, tenant: &str) -> Vec<String> {
    rows_exact(c, TABLE, "r_.tenant_id = $1", Some(tenant))
}

fn all_rows(c: &mut Client) -> BTreeMap<&'static str, Vec<String>> {
    TENANTS.iter().map(|t| (*t, rows(c, t))).collect()
}

/// Sanity: the fixture really holds the nasty values (so the test can fail).
fn check_fixture(c: &mut Client, before: &BTreeMap<&str, Vec<String>>) {
    assert_eq!(before["acme"].len(), 18, "fixture: acme rows");
    assert_eq!(before["globex"].len(), 2, "fixture: globex rows");
    assert_eq!(before["initech"].len(), 2001, "fixture: initech rows");
    let big: i64 = c
        .query_one(
            "SELECT octet_length(t_text) + octet_length(t_bytea) FROM everything WHERE label = 'big'",
            &[],
        )
        .unwrap()
        .get::<_, i32>(0)
        .into();
    assert!(big > 8_000_000, "fixture: big row is {big} bytes");
}

/// The per-table entry of a restore report.
fn restore_entry<'a>(v: &'a Value, table: &str) -> &'a Value {
    v["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("restore --json has no tables array: {v:#}"))
        .iter()
        .find(|t| t["table"].as_str().map(norm_table).as_deref() == Some(table))
        .unwrap_or_else(|| panic!("restore --json does not list {table}: {v:#}"))
}

fn check_report(v: &Value, tenant: &str, rows: usize) {
    assert_eq!(v["tenant"], tenant, "restore report tenant: {v:#}");
    let e = restore_entry(v, TABLE);
    assert_eq!(e["rows_expected"], rows as u64, "rows_expected: {v:#}");
    assert_eq!(e["rows_restored"], rows as u64, "rows_restored: {v:#}");
    assert_eq!(e["checksum_ok"], true, "checksum_ok: {v:#}");
}

#[test]
fn fidelity_restore_in_place() {
    let (env, key) = Env::with_tenants("fidelity_in_place", &[SCHEMA, DATA], &TENANTS);
    let mut c = env.db.client();
    let before = all_rows(&mut c);
    check_fixture(&mut c, &before);

    let backup = env.tv.json(&["backup", "--all"]);
    let snap = snapshot_id(&backup);
    let acme = backup["tenants"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["tenant"] == "acme"))
        .unwrap_or_else(|| panic!("backup report lacks tenant acme: {backup:#}"));
    assert_eq!(acme["rows"], 18, "backup report rows for acme: {backup:#}");

    // Lose acme's rows entirely, then restore them.
    c.execute("DELETE FROM everything WHERE tenant_id = 'acme'", &[])
        .unwrap();
    let v = env.tv.restore("acme", &snap, &key, None);
    check_report(&v, "acme", 18);
    assert_rows_eq(
        "acme after in-place restore",
        &before["acme"],
        &rows(&mut c, "acme"),
    );

    // Same through `--snapshot latest`, for a tenant whose rows were mangled instead.
    c.execute(
        "UPDATE everything SET t_text = 'mangled', t_float8 = 0 WHERE tenant_id = 'globex'",
        &[],
    )
    .unwrap();
    env.tv.restore("globex", "latest", &key, None);
    assert_tables_eq(
        "every tenant exactly as at backup time",
        &before,
        &all_rows(&mut c),
    );

    // The identity column still works for the application afterwards.
    c.execute(
        "INSERT INTO everything (tenant_id, label) VALUES ('acme', 'after')",
        &[],
    )
    .expect("insert after in-place restore (identity sequence broken?)");
}

#[test]
fn fidelity_restore_to_target_database() {
    let (env, key) = Env::with_tenants("fidelity_target", &[SCHEMA, DATA], &TENANTS);
    let mut c = env.db.client();
    let before = all_rows(&mut c);
    check_fixture(&mut c, &before);
    let snap = env.tv.backup_all();

    let scratch = env.scratch_db("fidelity_scratch", &[SCHEMA]);
    let v = env.tv.restore("acme", &snap, &key, Some(&scratch.url));
    check_report(&v, "acme", 18);
    let target = v["target"].as_str().unwrap_or_default();
    assert!(
        target.contains(&scratch.name),
        "restore report target {target:?} does not name {}",
        scratch.name
    );

    let mut s = scratch.client();
    assert_rows_eq(
        "acme restored into target",
        &before["acme"],
        &rows(&mut s, "acme"),
    );
    assert_eq!(
        scratch.count("FROM everything WHERE tenant_id <> 'acme'"),
        0,
        "only acme's rows in target"
    );

    env.tv
        .restore("initech", "latest", &key, Some(&scratch.url));
    assert_rows_eq(
        "initech restored into target",
        &before["initech"],
        &rows(&mut s, "initech"),
    );
    assert_rows_eq(
        "acme untouched by initech restore",
        &before["acme"],
        &rows(&mut s, "acme"),
    );

    // The live database was not touched by restores into another database.
    assert_tables_eq(
        "live database after restores --target elsewhere",
        &before,
        &all_rows(&mut c),
    );
}

#[test]
fn fidelity_target_identity_usable_after_restore() {
    // After restoring into a fresh database, the application can insert new rows:
    // the identity sequence must not hand out ids that the restored rows already use.
    let (env, key) = Env::with_tenants("fidelity_identity", &[SCHEMA, DATA], &TENANTS);
    let snap = env.tv.backup_all();
    let scratch = env.scratch_db("fidelity_ident_scratch", &[SCHEMA]);
    env.tv.restore("acme", &snap, &key, Some(&scratch.url));
    let mut s = scratch.client();
    for i in 0..20 {
        s.execute(
            "INSERT INTO everything (tenant_id, label) VALUES ('acme', $1)",
            &[&format!("new-{i}")],
        )
        .unwrap_or_else(|e| {
            panic!("insert #{i} after restore --target failed (identity not advanced?): {e:?}")
        });
    }
}
