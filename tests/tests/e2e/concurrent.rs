//! Two backups started at once on the same vault, and a backup whose database is gone:
//! each either succeeds or fails cleanly, and the vault stays consistent.

use tests::*;

#[test]
fn two_simultaneous_backups() {
    let (env, key) = Env::with_tenants(
        "concurrent",
        &["interrupted.sql"],
        &["acme", "globex", "initech"],
    );
    let mut c = env.db.client();
    let sums: Vec<(i64, String)> = ["acme", "globex", "initech"]
        .iter()
        .map(|t| tenant_checksum(&mut c, "public.events", t))
        .collect();
    let (tv1, tv2) = (env.tv.clone(), env.tv.clone());
    let h1 = std::thread::spawn(move || tv1.run(&["backup", "--all", "--json"]));
    let h2 = std::thread::spawn(move || tv2.run(&["backup", "--all", "--json"]));
    let outs = [h1.join().unwrap(), h2.join().unwrap()];
    for o in &outs {
        assert!(
            o.code == 0 || (o.code == 5 && o.stderr.contains("in use")),
            "concurrent backup: exit {} (want 0, or 5: busy, with a clear error)\n{}",
            o.code,
            o.stderr
        );
        if o.code != 0 {
            assert!(
                o.stderr.contains("error"),
                "no error message: {:?}",
                o.stderr
            );
        }
    }
    let ok: Vec<String> = outs
        .iter()
        .filter(|o| o.code == 0)
        .map(|o| snapshot_id(&serde_json::from_str(o.stdout.trim()).unwrap()))
        .collect();
    assert!(
        !ok.is_empty(),
        "neither concurrent backup succeeded:\n{outs:#?}"
    );

    let mut listed = snapshot_ids(&env.tv.snapshots());
    let mut want = ok.clone();
    want.sort();
    listed.sort();
    assert_eq!(
        listed, want,
        "snapshots listed = the backups that reported success"
    );
    let out = env.tv.run(&["verify"]);
    assert_eq!(
        out.code, 0,
        "verify after concurrent backups: {}\n{}",
        out.stdout, out.stderr
    );
    for snap in &ok {
        c.execute("DELETE FROM events WHERE tenant_id = 'globex'", &[])
            .unwrap();
        env.tv.restore("globex", snap, &key, None);
        assert_eq!(
            tenant_checksum(&mut c, "public.events", "globex"),
            sums[1],
            "globex from {snap}"
        );
    }
}

#[test]
fn backup_of_a_vanished_database_fails_cleanly() {
    let (env, _key) = Env::with_tenants("vanished", &["no_pk.sql"], &["acme"]);
    connect(admin_url())
        .batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", env.db.name))
        .unwrap();
    let out = env.tv.run(&["backup", "--all"]);
    out.assert_code(1, "backup when the source database does not exist");
    assert!(
        out.stderr.contains("error"),
        "no error message: {:?}",
        out.stderr
    );
    assert!(env.tv.snapshots().is_empty(), "a snapshot was recorded");
}
