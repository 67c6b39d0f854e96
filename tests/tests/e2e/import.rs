//! `tenant import`: many tenants registered in one process, existing ones left alone, and a
//! bad line stopping the import with exit 2 and a message naming the line.

use tests::*;

#[test]
fn import_registers_many_tenants_and_reports_bad_lines() {
    let env = Env::new("tenant_import", &["no_pk.sql"]);
    env.tv.init(&env.db.url, &[]);
    let key = env.keygen("key.txt");
    env.tv.tenant_add("acme", &key);
    let mut list = String::from("# tenants of the pool\n\n");
    for i in 0..50 {
        list.push_str(&format!("bulk-{i:02}\t{}\n", key.recipient));
    }
    list.push_str(&format!(
        "acme\t{}\nglobex\t{}\n",
        key.recipient, key.recipient
    ));
    let file = env.path("tenants.tsv");
    std::fs::write(&file, list).unwrap();

    let v = env.tv.json(&["tenant", "import", file.to_str().unwrap()]);
    assert_eq!(v["added"].as_array().map(Vec::len), Some(51), "{v:#}");
    assert_eq!(
        v["already_registered"],
        serde_json::json!(["acme"]),
        "{v:#}"
    );
    let listed = env.tv.json(&["tenant", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(52), "{listed:#}");

    // Imported tenants are real tenants: globex's rows are backed up and restore.
    let mut c = env.db.client();
    let before = tenant_checksum(&mut c, "public.ledger", "globex");
    let snap = env.tv.backup_all();
    env.db.exec("DELETE FROM ledger WHERE tenant_id = 'globex'");
    env.tv.restore("globex", &snap, &key, None);
    assert_eq!(tenant_checksum(&mut c, "public.ledger", "globex"), before);

    let bad = env.path("bad.tsv");
    std::fs::write(
        &bad,
        format!(
            "ok-1\t{}\nbroken\tnot-a-key\nok-2\t{}\n",
            key.recipient, key.recipient
        ),
    )
    .unwrap();
    let out = env.tv.run(&["tenant", "import", bad.to_str().unwrap()]);
    out.assert_code(2, "import with a bad recipient");
    assert!(
        out.stderr.contains(":2:") && out.stderr.contains("broken"),
        "names the line: {}",
        out.stderr
    );
    let names: Vec<String> = env
        .tv
        .json(&["tenant", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"ok-1".to_string()) && !names.contains(&"ok-2".to_string()),
        "{names:?}"
    );
}
