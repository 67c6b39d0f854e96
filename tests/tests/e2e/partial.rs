//! One tenant's failure does not cancel the others: a cycle commits the tenants that succeeded,
//! names the ones that failed (a damaged erasure ledger, a failed upload) with why, exits 6, and
//! the next cycle backs them up.

use tests::*;

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

#[test]
fn a_failing_tenant_is_reported_and_the_others_are_backed_up() {
    let (env, key) = Env::with_tenants("partial", &["interrupted.sql"], &TENANTS);
    let first = env.tv.backup_all();
    env.db.exec("UPDATE events SET kind = kind || '+'");
    let mut c = env.db.client();
    let live: Vec<(i64, String)> = TENANTS
        .iter()
        .map(|t| tenant_checksum(&mut c, "public.events", t))
        .collect();

    // globex: its erasure ledger in the store is damaged (it fails authentication).
    let ledger = format!("{}erasures.json", env.tenant_dir("globex"));
    env.write_object(&ledger, b"{\"not\": \"a ledger\"}".to_vec());
    // initech: its packs cannot be written (a file stands where its pack directory goes).
    let store = env.tv.vault.join("store");
    let packs = store.join(format!("{}packs", env.tenant_dir("initech")));
    let aside = env.path("initech-packs");
    std::fs::rename(&packs, &aside).unwrap();
    std::fs::write(&packs, b"in the way").unwrap();

    let o = env.tv.run(&["backup", "--all", "--json"]);
    o.assert_code(6, "a cycle in which two of three tenants failed");
    let report: Value = serde_json::from_str(o.stdout.trim()).unwrap();
    let done: Vec<&str> = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(done, ["acme"], "{report:#}");
    let failed: Vec<(String, String)> = report["failed_tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["tenant"].as_str().unwrap().to_string(),
                f["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(failed.len(), 2, "{report:#}");
    let why = |t: &str| {
        failed
            .iter()
            .find(|(f, _)| f == t)
            .map(|(_, e)| e.clone())
            .unwrap()
    };
    assert!(why("globex").contains("erasures.json"), "{failed:?}");
    assert!(why("initech").contains("pack"), "{failed:?}");
    assert!(
        report["unregistered_tenants"]
            .as_array()
            .unwrap()
            .is_empty(),
        "failed tenants are not unregistered: {report:#}"
    );
    let second = snapshot_id(&report);

    // The text form names them too.
    let text = env.tv.run(&["backup", "--all"]);
    text.assert_code(6, "the same cycle, as text");
    assert!(
        text.stderr.contains("\"globex\"") && text.stderr.contains("\"initech\""),
        "{}",
        text.stderr
    );

    // acme's new version restores; the cycle does not stand for the others' old versions,
    // and it left nothing of initech behind.
    c.execute("DELETE FROM events WHERE tenant_id = 'acme'", &[])
        .unwrap();
    env.tv.restore("acme", &second, &key, None);
    assert_eq!(tenant_checksum(&mut c, "public.events", "acme"), live[0]);
    env.tv
        .run(&[
            "restore",
            "globex",
            "--snapshot",
            &second,
            "--identity",
            key.identity_str(),
        ])
        .assert_code(4, "the failed cycle's id for a tenant it did not back up");
    assert!(
        !env.objects()
            .keys()
            .any(|k| k.starts_with(&env.tenant_dir("initech")) && k.contains(&second)),
        "objects of the failed tenant's cycle were left behind"
    );

    // Repaired, the next cycle backs them up.
    env.delete_object(&ledger);
    std::fs::remove_file(&packs).unwrap();
    std::fs::rename(&aside, &packs).unwrap();
    let third = env.tv.json(&["backup", "--all"]);
    assert!(
        third["failed_tenants"].as_array().unwrap().is_empty(),
        "{third:#}"
    );
    let third = snapshot_id(&third);
    for (i, t) in TENANTS.iter().enumerate().skip(1) {
        c.execute("DELETE FROM events WHERE tenant_id = $1", &[t])
            .unwrap();
        env.tv.restore(t, &third, &key, None);
        assert_eq!(tenant_checksum(&mut c, "public.events", t), live[i], "{t}");
    }
    assert_ne!(first, third);
    env.tv.ok(&["verify"]);
}
