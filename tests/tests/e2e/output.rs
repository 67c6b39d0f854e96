//! What tvault prints: the JSON documents of docs/CLI.md, key generation output, and
//! never a database password.

use tests::*;

/// Keys of a JSON object, sorted.
fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// Records (instead of panicking at the first) every document lacking a stable key.
fn has_keys(problems: &mut Vec<String>, what: &str, v: &Value, want: &[&str]) {
    let k = keys_of(v);
    let missing: Vec<&&str> = want.iter().filter(|w| !k.iter().any(|x| x == *w)).collect();
    if !missing.is_empty() {
        problems.push(format!("{what}: missing stable keys {missing:?}; got {v}"));
    }
}

#[test]
fn json_shapes_match_the_contract() {
    let mut p = Vec::new();
    let db_fix = ["isolation.sql"];
    let (env, key) = Env::with_tenants("cli_json", &db_fix, &["acme", "globex"]);
    let b = env.tv.json(&["backup", "--all"]);
    has_keys(
        &mut p,
        "backup",
        &b,
        &[
            "snapshot",
            "tenants",
            "unregistered_tenants",
            "global_tables",
            "unowned_rows",
            "duration_ms",
        ],
    );
    for t in b["tenants"].as_array().unwrap() {
        has_keys(
            &mut p,
            "backup.tenants[]",
            t,
            &[
                "tenant",
                "tables",
                "rows",
                "blocks_new",
                "blocks_reused",
                "bytes_stored",
            ],
        );
    }
    let un = b["unregistered_tenants"].as_array().unwrap();
    assert!(!un.is_empty(), "fixture has unregistered tenants: {b:#}");
    for u in un {
        has_keys(
            &mut p,
            "backup.unregistered_tenants[]",
            u,
            &["tenant", "rows"],
        );
    }
    let uo = b["unowned_rows"].as_array().unwrap();
    assert!(
        !uo.is_empty(),
        "fixture has a row with a NULL tenant: {b:#}"
    );
    for u in uo {
        has_keys(&mut p, "backup.unowned_rows[]", u, &["table", "rows"]);
    }
    for s in env.tv.snapshots() {
        has_keys(
            &mut p,
            "snapshots[]",
            &s,
            &["snapshot", "tenant", "time", "tables", "rows", "bytes"],
        );
    }
    let scratch = env.scratch_db("cli_json_scratch", &db_fix);
    scratch.exec("TRUNCATE order_items, orders, users, audit"); // keep the global `plans`
    let r = env.tv.restore("acme", "latest", &key, Some(&scratch.url));
    has_keys(
        &mut p,
        "restore",
        &r,
        &["tenant", "snapshot", "target", "tables", "ok"],
    );
    for t in r["tables"].as_array().unwrap() {
        has_keys(
            &mut p,
            "restore.tables[]",
            t,
            &["table", "rows_expected", "rows_restored", "checksum_ok"],
        );
    }
    let v = env.tv.json(&["verify"]);
    has_keys(&mut p, "verify", &v, &["ok", "checked"]);
    for c in v["checked"].as_array().unwrap() {
        has_keys(
            &mut p,
            "verify.checked[]",
            c,
            &["tenant", "snapshot", "blocks", "decrypted", "problems"],
        );
    }
    for t in env.tv.json(&["tenant", "list"]).as_array().unwrap() {
        has_keys(
            &mut p,
            "tenant list[]",
            t,
            &["tenant", "recipients", "escrow"],
        );
    }
    let plan = env.tv.json(&["tables"]);
    has_keys(
        &mut p,
        "tables",
        &plan,
        &["tenant_tables", "child_tables", "global_tables"],
    );
    assert!(
        p.is_empty(),
        "JSON documents differ from docs/CLI.md:\n{}",
        p.join("\n")
    );
}

#[test]
fn keygen_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let tv = Tvault::new(dir.path().join("vault"));
    // To stdout: the secret on stdout, the public key on stderr.
    let out = tv.ok(&["keygen"]);
    assert!(
        out.stdout.contains("AGE-SECRET-KEY-1"),
        "keygen prints no identity on stdout: {:?}",
        out.stdout
    );
    assert!(
        out.stderr.contains("age1"),
        "keygen prints no recipient on stderr: {:?}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("AGE-SECRET-KEY"),
        "keygen leaks the secret on stderr"
    );
    // To a file: 0600, JSON with the matching recipient.
    let f = dir.path().join("id.txt");
    let k = tv.keygen(&f);
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(
        text.contains("AGE-SECRET-KEY-1"),
        "identity file content: {text:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "identity file mode {mode:o}");
    let k2 = tv.keygen(&dir.path().join("id2.txt"));
    assert_ne!(k.recipient, k2.recipient, "two keygens gave the same key");
}

#[test]
fn database_passwords_are_never_printed() {
    const PW: &str = "s3cret-Pw-e2e";
    let env = Env::new("cli_pw", &["no_pk.sql"]);
    // The test cluster trusts local connections, so any password is accepted.
    let src = url_with_user(&env.db.url, "tvault", Some(PW));
    env.tv.init(&src, &[]);
    let key = env.keygen("key.txt");
    env.tv.tenant_add("acme", &key);
    let scratch = env.scratch_db("cli_pw_scratch", &["no_pk.sql"]);
    let tgt = url_with_user(&scratch.url, "tvault", Some(PW));
    let runs = [
        env.tv.run(&["backup", "--all", "--json"]),
        env.tv.run(&["backup", "--all"]),
        env.tv.run(&["tables", "--json"]),
        env.tv.run(&["snapshots", "--json"]),
        env.tv.run(&[
            "restore",
            "acme",
            "--snapshot",
            "latest",
            "--identity",
            key.identity_str(),
            "--target",
            &tgt,
            "--json",
        ]),
        env.tv.run(&[
            "restore",
            "acme",
            "--snapshot",
            "latest",
            "--identity",
            key.identity_str(),
            "--target",
            &tgt,
        ]),
        env.tv.run(&[
            "restore",
            "nobody",
            "--snapshot",
            "latest",
            "--identity",
            key.identity_str(),
            "--target",
            &tgt,
        ]),
        env.tv.run(&["verify", "--json"]),
    ];
    for (i, o) in runs.iter().enumerate() {
        assert!(
            !o.stdout.contains(PW) && !o.stderr.contains(PW),
            "run #{i} printed the password:\n{o:?}"
        );
    }
    assert_eq!(runs[0].code, 0, "{:?}", runs[0]);
    assert_eq!(runs[4].code, 0, "{:?}", runs[4]);
    // A target that cannot be reached: the error names the problem, not the password.
    let bad = url_with_user(
        &url_with_db(&scratch.url, "no_such_db_e2e"),
        "tvault",
        Some(PW),
    );
    let o = env.tv.run(&[
        "restore",
        "acme",
        "--snapshot",
        "latest",
        "--identity",
        key.identity_str(),
        "--target",
        &bad,
    ]);
    o.assert_code(1, "restore into an unreachable database");
    assert!(
        !o.stderr.contains(PW),
        "error message leaks the password: {}",
        o.stderr
    );
}
