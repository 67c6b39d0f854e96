//! Golden CLI behaviour from docs/CLI.md: help, exit codes, empty listings.

use tests::*;

#[test]
fn help_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let tv = Tvault::new(dir.path().join("vault"));
    let cmds: [&[&str]; 13] = [
        &[],
        &["init"],
        &["keygen"],
        &["tables"],
        &["tenant"],
        &["tenant", "add"],
        &["tenant", "list"],
        &["tenant", "rotate-key"],
        &["backup"],
        &["snapshots"],
        &["restore"],
        &["verify"],
        &["help"],
    ];
    for c in cmds {
        let mut a: Vec<&str> = c.to_vec();
        if c != ["help"] {
            a.push("--help");
        }
        let out = tv.run(&a);
        out.assert_code(0, &format!("tvault {}", a.join(" ")));
        assert!(
            out.stdout.to_lowercase().contains("usage"),
            "`tvault {}` prints no usage:\n{}",
            a.join(" "),
            out.stdout
        );
    }
    // Help mentions the documented flags.
    let out = tv.run(&["restore", "--help"]);
    for flag in ["--snapshot", "--identity", "--target", "--json"] {
        assert!(
            out.stdout.contains(flag),
            "restore --help does not mention {flag}:\n{}",
            out.stdout
        );
    }
    let out = tv.run(&["init", "--help"]);
    for flag in [
        "--source",
        "--store",
        "--tenant-column",
        "--rls-tenant-setting",
        "--escrow-recipient",
        "--include-schema",
        "--exclude-table",
    ] {
        assert!(
            out.stdout.contains(flag),
            "init --help does not mention {flag}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let tv = Tvault::new(dir.path().join("vault"));
    for a in [
        &["no-such-subcommand"][..],
        &["backup"][..], // neither --all nor --tenant
        &["restore", "acme", "--snapshot", "latest"][..], // no --identity
        &["restore", "--identity", "k"][..], // no tenant
        &["init", "--bogus-flag"][..],
    ] {
        let out = tv.run(a);
        out.assert_code(2, &format!("tvault {}", a.join(" ")));
        assert!(
            !out.stderr.is_empty(),
            "usage error without message: tvault {}",
            a.join(" ")
        );
    }
}

#[test]
fn empty_and_uninitialised_vaults() {
    let env = Env::new("cli_empty", &["no_pk.sql"]);
    // Not initialised: not found (4).
    let out = env.tv.run(&["snapshots", "--json"]);
    out.assert_code(4, "snapshots on an uninitialised vault");
    assert!(
        out.stderr.contains("error"),
        "no error message: {:?}",
        out.stderr
    );

    env.tv.init(&env.db.url, &[]);
    let out = env.tv.ok(&["snapshots", "--json"]);
    assert_eq!(
        out.stdout.trim(),
        "[]",
        "snapshots --json on an empty vault"
    );
    let v = env.tv.json(&["tenant", "list"]);
    assert_eq!(v, serde_json::json!([]), "tenant list on an empty vault");
    // Global options after the subcommand and via the environment work the same.
    let cmd = std::process::Command::new(tvault_bin())
        .args(["snapshots", "--json", "--vault"])
        .arg(&env.tv.vault)
        .output()
        .unwrap();
    assert_eq!(
        (
            cmd.status.code(),
            String::from_utf8_lossy(&cmd.stdout).trim().to_string()
        ),
        (Some(0), "[]".into())
    );
    let cmd = std::process::Command::new(tvault_bin())
        .args(["snapshots", "--json"])
        .env("TVAULT_VAULT", &env.tv.vault)
        .output()
        .unwrap();
    assert_eq!(
        (
            cmd.status.code(),
            String::from_utf8_lossy(&cmd.stdout).trim().to_string()
        ),
        (Some(0), "[]".into())
    );
}

#[test]
fn unknown_tenant_and_snapshot_are_not_found() {
    let (env, key) = Env::with_tenants("cli_unknown", &["no_pk.sql"], &["acme"]);
    let snap = env.tv.backup_all();
    let before = checksum(&mut env.db.client(), "public.ledger", "true", None);

    let out = env.tv.run(&[
        "restore",
        "unknown-tenant",
        "--snapshot",
        "latest",
        "--identity",
        key.identity_str(),
    ]);
    out.assert_code(4, "restore of an unknown tenant");
    assert!(
        out.stderr.contains("error"),
        "no `error:` line: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unknown-tenant"),
        "message does not name the tenant: {:?}",
        out.stderr
    );

    // Well-formed but nonexistent snapshot id (the real one with its last char changed): not found.
    let last = snap.chars().last().unwrap();
    let missing = format!(
        "{}{}",
        &snap[..snap.len() - last.len_utf8()],
        if last == '0' { '1' } else { '0' }
    );
    let missing = missing.as_str();
    let out = env.tv.run(&[
        "restore",
        "acme",
        "--snapshot",
        missing,
        "--identity",
        key.identity_str(),
    ]);
    out.assert_code(4, "restore of an unknown snapshot");
    assert!(
        out.stderr.contains(missing),
        "message does not name the snapshot: {:?}",
        out.stderr
    );
    // Malformed snapshot id: refused (usage error or not found), never a success or a crash.
    let out = env.tv.run(&[
        "restore",
        "acme",
        "--snapshot",
        "../../x",
        "--identity",
        key.identity_str(),
    ]);
    assert!(
        out.code == 2 || out.code == 4,
        "malformed snapshot id: exit {} ({})",
        out.code,
        out.stderr
    );

    // The snapshot of acme exists but not for globex (registered after the backup).
    env.tv.tenant_add("globex", &key);
    let out = env.tv.run(&[
        "restore",
        "globex",
        "--snapshot",
        &snap,
        "--identity",
        key.identity_str(),
    ]);
    out.assert_code(4, "restore of a tenant absent from the snapshot");

    let out = env.tv.run(&["backup", "--tenant", "nobody"]);
    out.assert_code(4, "backup of an unregistered tenant");
    assert!(
        out.stderr.contains("nobody"),
        "message does not name the tenant: {:?}",
        out.stderr
    );

    assert_eq!(
        checksum(&mut env.db.client(), "public.ledger", "true", None),
        before,
        "failed commands changed data"
    );
    let list = env.tv.snapshots();
    assert_eq!(
        snapshot_ids(&list),
        vec![snap],
        "failed commands created snapshots: {list:#?}"
    );
}

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
