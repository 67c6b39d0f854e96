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
