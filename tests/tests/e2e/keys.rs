//! Tenant keys: multiple recipients, rotation (old key stops working, old snapshots stay
//! readable with the new key), escrow only when the tenant allows it.

use tests::*;

const FIX: [&str; 1] = ["no_pk.sql"];

fn acme(c: &mut Client) -> Vec<String> {
    rows_exact(c, "public.ledger", "r_.tenant_id = 'acme'", None)
}

#[track_caller]
fn restore_refused(tv: &Tvault, key: &Key, what: &str) {
    let out = tv.run(&[
        "restore",
        "acme",
        "--snapshot",
        "latest",
        "--identity",
        key.identity_str(),
    ]);
    out.assert_code(3, what);
}

#[test]
fn any_recipient_restores_and_rotation_revokes_the_old_key() {
    let env = Env::new("keys_rotate", &FIX);
    env.tv.init(&env.db.url, &[]);
    let (k1, k2, k3, stranger) = (
        env.keygen("k1"),
        env.keygen("k2"),
        env.keygen("k3"),
        env.keygen("stranger"),
    );
    env.tv.ok(&[
        "tenant",
        "add",
        "acme",
        "--recipient",
        &k1.recipient,
        "--recipient",
        &k2.recipient,
    ]);
    let mut c = env.db.client();
    let want = acme(&mut c);
    let snap = env.tv.backup_all();

    let list = env.tv.json(&["tenant", "list"]);
    let rec = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "acme")
        .cloned()
        .unwrap();
    let mut r: Vec<&str> = rec["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    r.sort();
    let mut exp = vec![k1.recipient.as_str(), k2.recipient.as_str()];
    exp.sort();
    assert_eq!(r, exp, "tenant list recipients: {list:#}");
    assert_eq!(rec["escrow"], false, "{list:#}");

    for k in [&k1, &k2] {
        c.execute("DELETE FROM ledger WHERE tenant_id = 'acme'", &[])
            .unwrap();
        env.tv.restore("acme", &snap, k, None);
        assert_rows_eq("restore with one of the recipients", &want, &acme(&mut c));
    }
    restore_refused(
        &env.tv,
        &stranger,
        "restore with a key that is not a recipient",
    );

    // Rotation needs a current identity.
    let out = env.tv.run(&[
        "tenant",
        "rotate-key",
        "acme",
        "--identity",
        stranger.identity_str(),
        "--recipient",
        &k3.recipient,
    ]);
    out.assert_code(3, "rotate-key with a foreign identity");
    env.tv.ok(&[
        "tenant",
        "rotate-key",
        "acme",
        "--identity",
        k1.identity_str(),
        "--recipient",
        &k3.recipient,
    ]);
    restore_refused(&env.tv, &k1, "restore with the rotated-out key k1");
    restore_refused(&env.tv, &k2, "restore with the rotated-out key k2");
    c.execute("DELETE FROM ledger WHERE tenant_id = 'acme'", &[])
        .unwrap();
    env.tv.restore("acme", &snap, &k3, None);
    assert_rows_eq(
        "old snapshot restored with the new key",
        &want,
        &acme(&mut c),
    );

    // New backups after rotation are readable with the new key only.
    c.execute(
        "INSERT INTO ledger VALUES ('acme', 'after', 1, 'rotation')",
        &[],
    )
    .unwrap();
    let want2 = acme(&mut c);
    let snap2 = env.tv.backup_all();
    restore_refused(&env.tv, &k1, "restore of a post-rotation snapshot with k1");
    env.tv.restore("acme", &snap2, &k3, Some(&env.db.url));
    assert_rows_eq("post-rotation snapshot", &want2, &acme(&mut c));
}

#[test]
fn escrow_only_when_allowed() {
    let env = Env::new("keys_escrow", &FIX);
    let escrow = env.keygen("escrow");
    env.tv
        .init(&env.db.url, &["--escrow-recipient", &escrow.recipient]);
    let tenant_key = env.keygen("tenant");
    env.tv.ok(&[
        "tenant",
        "add",
        "acme",
        "--recipient",
        &tenant_key.recipient,
        "--allow-escrow",
    ]);
    env.tv.ok(&[
        "tenant",
        "add",
        "globex",
        "--recipient",
        &tenant_key.recipient,
    ]);
    let list = env.tv.json(&["tenant", "list"]);
    let flag = |t: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|x| x["tenant"] == t)
            .map(|x| x["escrow"].clone())
    };
    assert_eq!(flag("acme"), Some(Value::Bool(true)), "{list:#}");
    assert_eq!(flag("globex"), Some(Value::Bool(false)), "{list:#}");

    let mut c = env.db.client();
    let want = acme(&mut c);
    let snap = env.tv.backup_all();
    c.execute("DELETE FROM ledger", &[]).unwrap();
    env.tv.restore("acme", &snap, &escrow, None);
    assert_rows_eq("acme restored with the escrow key", &want, &acme(&mut c));
    let out = env.tv.run(&[
        "restore",
        "globex",
        "--snapshot",
        &snap,
        "--identity",
        escrow.identity_str(),
    ]);
    out.assert_code(3, "escrow key used for a tenant that did not allow escrow");
    assert_eq!(
        env.db.count("FROM ledger WHERE tenant_id = 'globex'"),
        0,
        "failed restore wrote rows"
    );
}
