//! Restoring into a database whose tables do not match the archive is refused
//! (exit 3, names the table) and writes nothing.

use tests::*;

const FIX: &str = "integrity.sql";

fn setup(name: &str) -> (Env, Key, String) {
    let (env, key) = Env::with_tenants(name, &[FIX], &["acme"]);
    let snap = env.tv.backup_all();
    (env, key, snap)
}

#[track_caller]
fn refused(env: &Env, key: &Key, snap: &str, target: Option<&TestDb>, what: &str) {
    let db = target.unwrap_or(&env.db);
    let before = checksum(&mut db.client(), "public.docs", "true", None);
    let mut a = vec![
        "restore",
        "acme",
        "--snapshot",
        snap,
        "--identity",
        key.identity_str(),
    ];
    if let Some(t) = target {
        a.extend_from_slice(&["--target", &t.url]);
    }
    let out = env.tv.run(&a);
    out.assert_code(3, what);
    assert!(
        out.stderr.contains("docs"),
        "{what}: message does not name the table: {:?}",
        out.stderr
    );
    assert_eq!(
        checksum(&mut db.client(), "public.docs", "true", None),
        before,
        "{what}: data changed"
    );
}

/// Target with the fixture's table, altered by `alter`, holding one acme and one other row.
fn target(env: &Env, suffix: &str, alter: &str) -> TestDb {
    let t = env.scratch_db(suffix, &[]);
    t.exec(
        "CREATE TABLE docs (id bigint PRIMARY KEY, tenant_id text NOT NULL, title text NOT NULL, body text, blob bytea);
         INSERT INTO docs VALUES (999999, 'acme', 'pre-existing', NULL, NULL), (999998, 'other', 'other', NULL, NULL);",
    );
    t.exec(alter);
    t
}

#[test]
fn target_missing_a_column_is_refused() {
    let (env, key, snap) = setup("schema_missing_col");
    let t = target(
        &env,
        "schema_tgt_missing",
        "ALTER TABLE docs DROP COLUMN blob",
    );
    refused(
        &env,
        &key,
        &snap,
        Some(&t),
        "target table lacks column blob",
    );
}

#[test]
fn target_with_other_column_type_is_refused() {
    let (env, key, snap) = setup("schema_type");
    let t = target(
        &env,
        "schema_tgt_type",
        "ALTER TABLE docs ALTER COLUMN body TYPE int USING NULL",
    );
    refused(
        &env,
        &key,
        &snap,
        Some(&t),
        "target column body has another type",
    );
}

#[test]
fn target_without_the_table_is_refused() {
    let (env, key, snap) = setup("schema_no_table");
    let t = env.scratch_db("schema_tgt_none", &[]);
    t.exec("CREATE TABLE unrelated (x int)");
    let out = env.tv.run(&[
        "restore",
        "acme",
        "--snapshot",
        &snap,
        "--identity",
        key.identity_str(),
        "--target",
        &t.url,
    ]);
    out.assert_code(3, "target database lacks table docs");
    assert!(
        out.stderr.contains("docs"),
        "message does not name the table: {:?}",
        out.stderr
    );
}

#[test]
fn live_schema_drift_is_refused() {
    let (env, key, snap) = setup("schema_drift");
    env.db.exec(
        "ALTER TABLE docs DROP COLUMN blob; UPDATE docs SET title = 'drifted' WHERE id % 3 = 0;",
    );
    refused(
        &env,
        &key,
        &snap,
        None,
        "live table lost a column since the backup",
    );
}

#[test]
fn constraint_failure_mid_restore_rolls_everything_back() {
    let (env, key, snap) = setup("schema_check");
    // A constraint added after the backup rejects some (not all) of acme's archived rows
    // ("doc 1000".."doc 4000" are too long, "doc 2".."doc 998" fit).
    env.db.exec(
        "UPDATE docs SET title = 'short' WHERE tenant_id = 'acme' AND id > 2000;
         ALTER TABLE docs ADD CONSTRAINT title_len CHECK (length(title) <= 7) NOT VALID;",
    );
    let before = checksum(&mut env.db.client(), "public.docs", "true", None);
    let out = env.tv.run(&[
        "restore",
        "acme",
        "--snapshot",
        &snap,
        "--identity",
        key.identity_str(),
    ]);
    assert!(
        out.code == 1 || out.code == 3,
        "restore violating a constraint: exit {}\n{}",
        out.code,
        out.stderr
    );
    assert!(
        out.stderr.contains("title_len"),
        "error does not name the violated constraint: {:?}",
        out.stderr
    );
    assert_eq!(
        checksum(&mut env.db.client(), "public.docs", "true", None),
        before,
        "partial restore left behind"
    );
}
