//! Nothing waits without end: connecting (`connect_timeout`, default 30 s), a restore's locks and
//! statements (`[restore] lock_timeout_secs`, `statement_timeout_secs`), and a backup says how
//! long it held its snapshot of the source open.

use std::time::{Duration, Instant};
use tests::*;

#[test]
fn a_server_that_accepts_and_never_answers_times_out() {
    // A peer that completes the TCP handshake (the kernel's backlog) and then says nothing, as a
    // hung server or a black-holing proxy does.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let env = Env::new("timeout_connect", &["no_pk.sql"]);
    let source =
        format!("host=127.0.0.1 port={port} user=x dbname=y sslmode=disable connect_timeout=2");
    env.tv.init(&source, &[]);
    let started = Instant::now();
    let o = env.tv.run(&["tables", "--json"]);
    let took = started.elapsed();
    o.assert_code(1, "connecting to a silent server");
    assert!(
        o.stderr.contains("connect_timeout"),
        "the error should name the timeout: {}",
        o.stderr
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    drop(silent);
}

#[test]
fn a_restore_gives_up_on_a_held_lock_and_changes_nothing() {
    let (env, key) = Env::with_tenants("timeout_lock", &["no_pk.sql"], &["acme", "globex"]);
    let backup = env.tv.json(&["backup", "--all"]);
    let held = backup["snapshot_held_ms"]
        .as_u64()
        .expect("snapshot_held_ms");
    assert!(
        held <= backup["duration_ms"].as_u64().unwrap(),
        "{backup:#}"
    );
    let config = env.tv.vault.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[restore]\nlock_timeout_secs = 1\n");
    std::fs::write(&config, text).unwrap();
    env.db
        .exec("DELETE FROM ledger WHERE tenant_id = 'acme' AND account = 'bank'");
    let before = rows_exact(&mut env.db.client(), "ledger", "true", None);

    // The application holds the table: the restore must not queue behind it for long.
    let mut app = env.db.client();
    let mut tx = app.transaction().unwrap();
    tx.batch_execute("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let started = Instant::now();
    let o = env.tv.run(&[
        "restore",
        "acme",
        "--snapshot",
        "latest",
        "--identity",
        key.identity_str(),
    ]);
    let took = started.elapsed();
    o.assert_code(1, "restore against a held lock");
    assert!(o.stderr.contains("lock_timeout"), "{}", o.stderr);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    tx.rollback().unwrap();
    assert_rows_eq(
        "ledger after the refused restore",
        &before,
        &rows_exact(&mut env.db.client(), "ledger", "true", None),
    );
    // Once the lock is gone the same restore goes through.
    env.tv.restore("acme", "latest", &key, None);
    assert_eq!(
        env.db
            .count("FROM ledger WHERE tenant_id = 'acme' AND account = 'bank'"),
        1
    );
}
