//! A table without a primary key keeps exact duplicate rows through backup/restore.

use tests::*;

fn acme(c: &mut Client) -> Vec<String> {
    rows_exact(c, "public.ledger", "r_.tenant_id = $1", Some("acme"))
}

#[test]
fn duplicate_rows_survive_restore() {
    let (env, key) = Env::with_tenants("no_pk", &["no_pk.sql"], &["acme", "globex"]);
    let mut c = env.db.client();
    let expected = acme(&mut c);
    assert_eq!(expected.len(), 6, "fixture sanity");
    let snap = env.tv.backup_all();

    // Lose one copy of each duplicate, add a third copy of the other: restore fixes both.
    c.batch_execute(
        "DELETE FROM ledger WHERE ctid IN (SELECT min(ctid) FROM ledger WHERE tenant_id = 'acme' GROUP BY ledger::text HAVING count(*) > 1);
         INSERT INTO ledger VALUES ('acme', 'bank', 10.0, 'coffee');",
    )
    .unwrap();
    assert_ne!(acme(&mut c), expected);
    let globex = rows_exact(&mut c, "public.ledger", "r_.tenant_id = 'globex'", None);
    let v = env.tv.restore("acme", &snap, &key, None);
    assert_rows_eq(
        "acme's ledger after in-place restore",
        &expected,
        &acme(&mut c),
    );
    let t = &v["tables"][0];
    assert_eq!(
        (t["rows_expected"].as_u64(), t["rows_restored"].as_u64()),
        (Some(6), Some(6)),
        "restore report: {v:#}"
    );
    assert_eq!(
        rows_exact(&mut c, "public.ledger", "r_.tenant_id = 'globex'", None),
        globex,
        "globex untouched"
    );

    // Into a fresh database too.
    let scratch = env.scratch_db("no_pk_scratch", &["no_pk.sql"]);
    scratch.exec("TRUNCATE ledger");
    env.tv.restore("acme", &snap, &key, Some(&scratch.url));
    assert_rows_eq(
        "acme's ledger in target",
        &expected,
        &acme(&mut scratch.client()),
    );
}
