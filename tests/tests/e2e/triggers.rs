//! A restore reproduces the backed-up rows even when the table has user triggers that
//! rewrite inserted rows or write elsewhere (as `pg_restore --disable-triggers` would).

use tests::*;

#[test]
fn user_triggers_do_not_alter_restored_rows() {
    let (env, key) = Env::with_tenants("triggers", &["triggers.sql"], &["acme", "globex"]);
    let mut c = env.db.client();
    let want = rows_exact(&mut c, "public.orders", "r_.tenant_id = 'acme'", None);
    assert!(
        want.iter().all(|r| r.contains("legacy import")),
        "fixture sanity"
    );
    let snap = env.tv.backup_all();
    let log_before = checksum(&mut c, "public.order_log", "true", None);

    // Restore over the unchanged live rows, then after losing them.
    env.tv.restore("acme", &snap, &key, None);
    let got = rows_exact(&mut c, "public.orders", "r_.tenant_id = 'acme'", None);
    assert_rows_eq(
        "acme's orders after restore (triggers must not rewrite them)",
        &want,
        &got,
    );
    assert_eq!(
        checksum(&mut c, "public.order_log", "true", None),
        log_before,
        "restore fired user triggers that wrote into the global table order_log"
    );

    // Into another database with the same triggers.
    let scratch = env.scratch_db("triggers_scratch", &["triggers.sql"]);
    scratch.exec("ALTER TABLE orders DISABLE TRIGGER USER; DELETE FROM orders; ALTER TABLE orders ENABLE TRIGGER USER; TRUNCATE order_log;");
    env.tv.restore("acme", &snap, &key, Some(&scratch.url));
    let got = rows_exact(
        &mut scratch.client(),
        "public.orders",
        "r_.tenant_id = 'acme'",
        None,
    );
    assert_rows_eq("acme's orders in target", &want, &got);
}
