//! Self-checks of the harness (no tvault needed): fixtures load, and the fingerprints
//! used by the other tests really tell different data apart.

use tests::*;

#[test]
fn every_fixture_loads() {
    for set in [
        &["fidelity_schema.sql", "fidelity_data.sql"][..],
        &["child_tables_schema.sql", "child_tables_data.sql"][..],
        &["isolation.sql"][..],
        &["hostile_ids.sql"][..],
        &["integrity.sql"][..],
        &["rls_schema.sql", "rls_data.sql"][..],
        &["no_pk.sql"][..],
        &["interrupted.sql"][..],
        &["options.sql"][..],
        &["consistency.sql"][..],
        &["edge_tables.sql"][..],
        &["graph.sql"][..],
        &["triggers.sql"][..],
        &["real_schema.sql", "real_data.sql"][..],
        &["many_tenants.sql"][..],
        &["retention_schema.sql", "retention_data.sql"][..],
    ] {
        let db = TestDb::with_fixture("harness_fixture", set);
        assert!(
            !user_tables(&mut db.client()).is_empty(),
            "{set:?} created no table"
        );
    }
}

#[test]
fn fingerprints_tell_data_apart() {
    let db = TestDb::new("harness_fp");
    db.exec(
        "CREATE TABLE t (tenant_id text, a text, b int);
         CREATE TABLE g (x int);
         INSERT INTO t VALUES ('x', NULL, 1), ('x', '', 1), ('y', 'v', 2);
         INSERT INTO g VALUES (1);",
    );
    let mut c = db.client();
    let r = rows_exact(&mut c, "public.t", "r_.tenant_id = $1", Some("x"));
    assert_eq!(r.len(), 2);
    assert_ne!(r[0], r[1], "NULL and '' must differ: {r:?}");
    assert!(
        r.iter().any(|s| s.ends_with("#nulls=010")),
        "null flags: {r:?}"
    );
    let cs = tenant_checksum(&mut c, "public.t", "x");
    let snap = snapshot_except(&mut c, "x", &[]);
    assert_eq!(snap.len(), 2, "{snap:?}");

    // A duplicate row changes both fingerprints; x's changes don't touch snapshot_except(x).
    c.batch_execute("INSERT INTO t VALUES ('x', NULL, 1)")
        .unwrap();
    assert_eq!(
        rows_exact(&mut c, "public.t", "r_.tenant_id = $1", Some("x")).len(),
        3
    );
    assert_ne!(tenant_checksum(&mut c, "public.t", "x"), cs);
    assert_eq!(snapshot_except(&mut c, "x", &[]), snap);
    c.batch_execute("UPDATE t SET b = 3 WHERE tenant_id = 'y'")
        .unwrap();
    assert_ne!(snapshot_except(&mut c, "x", &[]), snap);
    c.batch_execute("UPDATE t SET b = 2 WHERE tenant_id = 'y'; INSERT INTO g VALUES (2)")
        .unwrap();
    assert_ne!(
        snapshot_except(&mut c, "x", &[]),
        snap,
        "global table change must show"
    );
}

#[test]
fn url_helpers() {
    assert_eq!(
        url_with_db("postgres://u@h:1/postgres", "d"),
        "postgres://u@h:1/d"
    );
    assert_eq!(
        url_with_db("postgres://u:p@h:1/postgres?sslmode=disable", "d"),
        "postgres://u:p@h:1/d?sslmode=disable"
    );
    assert_eq!(
        url_with_user("postgres://u@h:1/d", "r", Some("pw")),
        "postgres://r:pw@h:1/d"
    );
}
