//! `--snapshot latest` means the most recent committed snapshot, even when several
//! backups run within the same second.

use tests::*;

fn acme(c: &mut Client) -> Vec<String> {
    rows_exact(c, "public.ledger", "r_.tenant_id = 'acme'", None)
}

#[test]
fn latest_is_the_most_recent_snapshot() {
    let (env, key) = Env::with_tenants("latest", &["no_pk.sql"], &["acme"]);
    let mut c = env.db.client();
    let mut snaps: Vec<String> = Vec::new();
    c.execute(
        "INSERT INTO ledger VALUES ('acme', 'marker', 0, 'none')",
        &[],
    )
    .unwrap();
    // After every backup (several per second), `latest` must be that backup.
    for i in 0..8 {
        c.execute(
            "UPDATE ledger SET memo = $1 WHERE account = 'marker'",
            &[&format!("backup #{i}")],
        )
        .unwrap();
        let want = acme(&mut c);
        snaps.push(env.tv.backup_all());
        c.execute("DELETE FROM ledger WHERE tenant_id = 'acme'", &[])
            .unwrap();
        let v = env.tv.restore("acme", "latest", &key, None);
        assert_eq!(
            v["snapshot"].as_str(),
            snaps.last().map(String::as_str),
            "`latest` is not the newest snapshot; backups in order: {snaps:?}"
        );
        assert_rows_eq("acme after restoring latest", &want, &acme(&mut c));
    }
    let mut distinct = snaps.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        snaps.len(),
        "every backup gets its own snapshot id: {snaps:?}"
    );

    // `snapshots` lists them all, with RFC 3339 times.
    let list = env.tv.snapshots();
    assert_eq!(snapshot_ids(&list), distinct, "snapshots --json: {list:#?}");
    for s in &list {
        let t = s["time"]
            .as_str()
            .unwrap_or_else(|| panic!("snapshot entry without time: {s}"));
        assert!(
            t.len() >= 20 && t.as_bytes()[10] == b'T',
            "time is not RFC 3339: {t:?}"
        );
    }
}
