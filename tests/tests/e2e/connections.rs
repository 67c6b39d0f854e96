//! Connections follow libpq (docs/CONNECTIONS.md): conninfo strings and URLs, the `PG*`
//! environment, the password file, and TLS in every `sslmode`, against a second real cluster
//! that only accepts TLS (`secure_cluster`), signed by a test CA for the name `localhost` only.

use tests::*;

/// A vault whose commands see no password and no `~/.pgpass` or `~/.postgresql` but the ones a
/// test gives them (HOME is the test's own directory).
fn secure_env(name: &str) -> (Env, &'static SecureCluster) {
    let sc = secure_cluster();
    let db = TestDb::on_cluster(&sc.admin_url, name);
    db.exec(&fixture("no_pk.sql"));
    let dir = tempfile::Builder::new()
        .prefix("tvault-e2e-")
        .tempdir()
        .expect("tempdir");
    let mut tv = Tvault::new(dir.path().join("vault"));
    tv.envs
        .push(("HOME".into(), dir.path().to_string_lossy().into_owned()));
    (
        Env {
            db,
            dir,
            tv,
            bucket: None,
        },
        sc,
    )
}

fn conninfo(sc: &SecureCluster, db: &TestDb, host: &str, extra: &str) -> String {
    format!(
        "host={host} port={} dbname={} user=tvault {extra}",
        sc.port, db.name
    )
}

fn root(sc: &SecureCluster, name: &str) -> String {
    sc.tls_dir.join(name).to_string_lossy().into_owned()
}

/// Runs `tables` with `--source`, returning the output.
fn tables(env: &Env, source: &str, envs: &[(&str, &str)]) -> Output {
    let mut tv = env.tv.clone();
    tv.envs
        .extend(envs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    tv.run(&["tables", "--json", "--source", source])
}

#[test]
fn verify_full_connects_over_tls_and_refuses_a_certificate_for_another_name() {
    let (env, sc) = secure_env("conn_full");
    let pw = [("PGPASSWORD", SecureCluster::PASSWORD)];
    let ca = root(sc, "root.crt");
    let full = conninfo(
        sc,
        &env.db,
        "localhost",
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    // The whole cycle over TLS: the cluster refuses role tvault without it.
    let mut tv = env.tv.clone();
    tv.envs.push((pw[0].0.into(), pw[0].1.into()));
    tv.init(&full, &[]);
    let key = env.keygen("key.txt");
    tv.tenant_add("acme", &key);
    let backup = tv.json(&["backup", "--all"]);
    let acme = backup["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "acme")
        .cloned()
        .unwrap_or_default();
    assert_eq!(acme["rows"], 6, "{backup:#}");

    // The certificate names localhost, not 127.0.0.1.
    let by_address = conninfo(
        sc,
        &env.db,
        "127.0.0.1",
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    let o = tables(&env, &by_address, &pw);
    o.assert_code(1, "verify-full against a certificate for another name");
    assert!(
        o.stderr.contains("certificate") && o.stderr.contains("127.0.0.1"),
        "the error should say the certificate does not match the host: {}",
        o.stderr
    );
    // verify-ca checks the chain only.
    let ca_only = conninfo(
        sc,
        &env.db,
        "127.0.0.1",
        &format!("sslmode=verify-ca sslrootcert={ca}"),
    );
    tables(&env, &ca_only, &pw).assert_code(0, "verify-ca by address");
    // A root that signed nothing of this server's.
    let other = conninfo(
        sc,
        &env.db,
        "localhost",
        &format!(
            "sslmode=verify-ca sslrootcert={}",
            root(sc, "other-root.crt")
        ),
    );
    let o = tables(&env, &other, &pw);
    o.assert_code(1, "verify-ca with another CA");
    assert!(
        o.stderr.contains("certificate"),
        "the error should name the certificate: {}",
        o.stderr
    );
    // require encrypts without checking (libpq's rule when there is no root certificate).
    let require = conninfo(sc, &env.db, "127.0.0.1", "sslmode=require");
    tables(&env, &require, &pw).assert_code(0, "require without a root certificate");
    // A verifying mode without any root certificate is a clear configuration error.
    let o = tables(
        &env,
        &conninfo(sc, &env.db, "localhost", "sslmode=verify-full"),
        &pw,
    );
    o.assert_code(2, "verify-full without sslrootcert");
    assert!(o.stderr.contains("sslrootcert"), "{}", o.stderr);
    // disable: the server refuses role tvault without TLS, and says so.
    let o = tables(
        &env,
        &conninfo(sc, &env.db, "localhost", "sslmode=disable"),
        &pw,
    );
    o.assert_code(1, "sslmode=disable against a TLS-only server");
    assert!(o.stderr.contains("no encryption"), "{}", o.stderr);
}

#[test]
fn require_against_a_server_without_tls_fails_with_a_clear_message() {
    let env = Env::new("conn_notls", &["no_pk.sql"]);
    let source = format!("{}?sslmode=require", env.db.url);
    env.tv.init(&env.db.url, &[]);
    let o = env.tv.run(&["tables", "--json", "--source", &source]);
    o.assert_code(1, "sslmode=require against a server without TLS");
    assert!(
        o.stderr.contains("does not support TLS"),
        "the error should say the server has no TLS: {}",
        o.stderr
    );
    // prefer (libpq's default) falls back to a plain connection.
    let prefer = format!("{}?sslmode=prefer", env.db.url);
    env.tv
        .run(&["tables", "--json", "--source", &prefer])
        .assert_code(0, "sslmode=prefer against a server without TLS");
}

#[test]
fn passwords_come_from_the_environment_the_password_file_or_a_client_certificate() {
    let (env, sc) = secure_env("conn_pw");
    let ca = root(sc, "root.crt");
    let source = conninfo(
        sc,
        &env.db,
        "localhost",
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    env.tv.init(&source, &[]);
    // No password anywhere: the message says where one can come from.
    let o = tables(&env, &source, &[]);
    o.assert_code(1, "no password");
    assert!(
        o.stderr.contains("PGPASSWORD") && o.stderr.contains("pgpass"),
        "{}",
        o.stderr
    );
    // The password file, found through PGPASSFILE, with libpq's escapes and wildcards.
    let file = env.path("pgpass");
    sc.password_file(&file);
    use std::os::unix::fs::PermissionsExt;
    let passfile = file.to_string_lossy().into_owned();
    tables(&env, &source, &[("PGPASSFILE", &passfile)]).assert_code(0, "password from PGPASSFILE");
    // ~/.pgpass, as libpq finds it.
    std::fs::copy(&file, env.path(".pgpass")).unwrap();
    std::fs::set_permissions(env.path(".pgpass"), std::fs::Permissions::from_mode(0o600)).unwrap();
    tables(&env, &source, &[]).assert_code(0, "password from ~/.pgpass");
    // libpq ignores a password file that others can read.
    std::fs::set_permissions(env.path(".pgpass"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = tables(&env, &source, &[]);
    o.assert_code(1, "a world-readable ~/.pgpass is ignored");
    assert!(o.stderr.contains("0600"), "{}", o.stderr);
    // A wrong password is the server's refusal, named.
    let o = tables(&env, &source, &[("PGPASSWORD", "not-it")]);
    o.assert_code(1, "wrong password");
    assert!(
        o.stderr.contains("password authentication failed"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("not-it"), "{}", o.stderr);

    // Everything from the environment, and a URL with nothing but the database.
    let port = sc.port.to_string();
    let url = format!("postgresql:///{}", env.db.name);
    tables(
        &env,
        &url,
        &[
            ("PGHOST", "localhost"),
            ("PGPORT", &port),
            ("PGUSER", "tvault"),
            ("PGPASSWORD", SecureCluster::PASSWORD),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", &ca),
            ("PGAPPNAME", "nightly-backup"),
        ],
    )
    .assert_code(0, "a URL completed from PG* variables");

    // A client certificate instead of a password (role tvault_cert: `cert` authentication).
    let cert = format!(
        "host=localhost port={} dbname={} user=tvault_cert sslmode=verify-full sslrootcert={ca} sslcert={} sslkey={}",
        sc.port,
        env.db.name,
        root(sc, "client.crt"),
        root(sc, "client.key"),
    );
    tables(&env, &cert, &[]).assert_code(0, "client certificate");
    let no_cert = format!(
        "host=localhost port={} dbname={} user=tvault_cert sslmode=verify-full sslrootcert={ca}",
        sc.port, env.db.name,
    );
    tables(&env, &no_cert, &[]).assert_code(1, "no client certificate");
}

#[test]
fn a_password_given_in_the_connection_string_is_never_written_or_shown() {
    let (env, sc) = secure_env("conn_marker");
    let ca = root(sc, "root.crt");
    let with_pw = conninfo(
        sc,
        &env.db,
        "localhost",
        &format!(
            "sslmode=verify-full sslrootcert={ca} password='{}'",
            SecureCluster::PASSWORD
        ),
    );
    let init = env.tv.run(&["init", "--source", &with_pw]);
    init.assert_code(0, "init");
    assert!(
        init.stderr.contains("not written"),
        "init should say the password was not kept: {}",
        init.stderr
    );
    let key = env.keygen("key.txt");
    env.tv.tenant_add("acme", &key);
    let scratch = TestDb::on_cluster(&sc.admin_url, "conn_marker_target");
    scratch.exec(&fixture("no_pk.sql"));
    let target = conninfo(
        sc,
        &scratch,
        "localhost",
        &format!(
            "sslmode=verify-full sslrootcert={ca} password={}",
            SecureCluster::PASSWORD
        ),
    );
    let url = format!(
        "postgres://tvault:{}@localhost:{}/{}?sslmode=verify-full&sslrootcert={ca}",
        SecureCluster::PASSWORD,
        sc.port,
        env.db.name
    );
    let id = key.identity_str();
    let runs = [
        env.tv
            .run(&["backup", "--all", "--json", "--source", &with_pw]),
        env.tv.run(&["backup", "--all", "--source", &url]),
        env.tv.run(&["tables", "--source", &with_pw]),
        env.tv.run(&["snapshots", "--json"]),
        env.tv.run(&[
            "restore",
            "acme",
            "--snapshot",
            "latest",
            "--identity",
            id,
            "--target",
            &target,
            "--json",
        ]),
        env.tv.run(&[
            "restore",
            "acme",
            "--snapshot",
            "latest",
            "--identity",
            id,
            "--target",
            &target,
        ]),
        env.tv.run(&[
            "restore",
            "acme",
            "--snapshot",
            "latest",
            "--identity",
            id,
            "--target",
            &target.replace(&scratch.name, "no_such_db_e2e"),
        ]),
        env.tv.run(&[
            "tables",
            "--source",
            &with_pw.replace("localhost", "127.0.0.1"),
        ]),
        env.tv.run(&["audit", "--json"]),
        env.tv.run(&["-vv", "backup", "--all", "--source", &url]),
    ];
    assert_eq!(runs[0].code, 0, "{:?}", runs[0]);
    assert_eq!(runs[4].code, 0, "{:?}", runs[4]);
    assert_ne!(runs[6].code, 0, "{:?}", runs[6]);
    assert_ne!(runs[7].code, 0, "{:?}", runs[7]);
    for (i, o) in runs.iter().enumerate() {
        assert!(
            !o.stdout.contains(SecureCluster::PASSWORD)
                && !o.stderr.contains(SecureCluster::PASSWORD),
            "run #{i} printed the password:\n{o:?}"
        );
    }
    let vault = env.dir.path().join("vault");
    let files: Vec<std::path::PathBuf> = walk(&vault)
        .into_iter()
        .map(|p| vault.join(p))
        .filter(|p| p.is_file())
        .collect();
    assert!(files.len() > 5, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(SecureCluster::PASSWORD.len())
                .any(|w| w == SecureCluster::PASSWORD.as_bytes()),
            "{} holds the password",
            f.display()
        );
    }
}
