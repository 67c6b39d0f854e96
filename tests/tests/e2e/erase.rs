//! Erasing one person inside a tenant: after `erase --cascade`, no kept snapshot brings the
//! person (or the rows hanging off them) back, every other row restores exactly, and a later
//! backup of a database that still holds the person does not archive them again.

use super::records::{fingerprint, A, B, FIX};
use tests::*;

/// Acme's customer 2 and everything below it (the fixture's numbering).
const TREE: [(&str, &str); 4] = [
    ("crm.customers", "r_.tenant_id = 'acme' AND r_.id = 2"),
    (
        "crm.invoices",
        "r_.tenant_id = 'acme' AND r_.customer_id = 2",
    ),
    ("crm.invoice_lines", "r_.invoice_id BETWEEN 1021 AND 1023"),
    ("crm.line_notes", "r_.line_id BETWEEN 10211 AND 10232"),
];

fn tree_rows(c: &mut Client) -> usize {
    TREE.iter()
        .map(|(t, w)| rows_exact(c, t, w, None).len())
        .sum()
}

/// Whether each snapshot holds acme's customer 2 (`find --json`, oldest first).
fn presence(env: &Env) -> Vec<bool> {
    let v = env
        .tv
        .json(&["find", A, "--table", "crm.customers", "--key", "id=2"]);
    v.as_array()
        .unwrap_or_else(|| panic!("find --json is not an array: {v}"))
        .iter()
        .map(|s| {
            s["present"]
                .as_bool()
                .unwrap_or_else(|| panic!("present is not a bool: {s}"))
        })
        .collect()
}

pub fn erase(env: &Env, key: &Key, extra: &[&str]) -> Output {
    let mut a = vec![
        "erase",
        A,
        "--table",
        "crm.customers",
        "--key",
        "id=2",
        "--cascade",
    ];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--identity", key.identity_str()]);
    env.tv.run(&a)
}

#[test]
fn erased_person_never_comes_back_and_everything_else_restores_exactly() {
    let (env, key) = Env::with_tenants("erase_person", &FIX, &[A, B]);
    let mut c = env.db.client();
    assert_eq!(tree_rows(&mut c), 22, "fixture: customer 2's tree");
    let s1 = env.tv.backup_all();
    let at_s1 = fingerprint(&mut c, &TREE);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.db
        .exec("UPDATE crm.customers SET name = 'second' WHERE tenant_id = 'acme' AND id = 3");
    let s2 = env.tv.backup_all();
    let at_s2 = fingerprint(&mut c, &TREE);
    let store_before = walk(&env.tv.vault.join("store")).len();

    // Dry run: says what would go, changes nothing.
    let out = erase(&env, &key, &["--dry-run", "--json"]);
    out.assert_code(0, "erase --dry-run");
    let plan: Value = serde_json::from_str(out.stdout.trim()).expect("erase --dry-run --json");
    let snaps = plan["snapshots"].as_array().expect("snapshots");
    assert_eq!(snaps.len(), 2, "both snapshots hold the person: {plan:#}");
    for s in snaps {
        let r = &s["rows_removed"];
        let got: Vec<u64> = [
            "crm.customers",
            "crm.invoices",
            "crm.invoice_lines",
            "crm.line_notes",
        ]
        .iter()
        .map(|t| r[*t].as_u64().unwrap_or(0))
        .collect();
        assert_eq!(got, vec![1, 3, 6, 12], "rows removed per table in {s}");
    }
    assert_eq!(
        walk(&env.tv.vault.join("store")).len(),
        store_before,
        "dry run wrote to the store"
    );
    let found = presence(&env);
    assert!(found.iter().all(|p| *p), "dry run erased: {found:?}");

    erase(&env, &key, &[]).assert_code(0, "erase");
    let found = presence(&env);
    assert!(found.iter().all(|p| !*p), "still found: {found:?}");
    let v = env
        .tv
        .json(&["verify", "--tenant", A, "--identity", key.identity_str()]);
    assert_eq!(v["ok"], true, "verify after erase: {v:#}");

    // A backup of a database that still holds the person does not archive them.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let s3 = env.tv.backup_all();
    assert_eq!(
        tree_rows(&mut c),
        22,
        "the live database still has the person"
    );

    for (snap, expected) in [(&s1, &at_s1), (&s2, &at_s2), (&s3, &at_s2)] {
        env.tv.restore(A, snap, &key, None);
        assert_eq!(
            tree_rows(&mut c),
            0,
            "snapshot {snap} brought the person back"
        );
        assert_eq!(
            &fingerprint(&mut c, &TREE),
            expected,
            "snapshot {snap}: other rows differ"
        );
    }
    // (The fingerprints cover every table of both tenants, so globex's rows, untouched since
    // the first backup, are checked by the comparisons above.)

    // Record restore refuses the erased person from every snapshot.
    for snap in [&s1, &s2, &s3] {
        let out = env.tv.run(&[
            "restore-records",
            A,
            "--table",
            "crm.customers",
            "--key",
            "id=2",
            "--snapshot",
            snap,
            "--identity",
            key.identity_str(),
        ]);
        assert_ne!(
            out.code, 0,
            "restore-records brought the person back from {snap}"
        );
        assert_eq!(tree_rows(&mut c), 0);
    }
    // The audit trail records the erasure without naming the person.
    let audit = env.tv.json(&["audit", "--tenant", A]);
    let last = audit
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["action"] == "erasure")
        .expect("erasure audited");
    assert!(
        !last["details"].to_string().contains("id=2"),
        "audit names the erased key: {last}"
    );
}

#[test]
fn erase_is_refused_under_legal_hold() {
    let (env, key) = Env::with_tenants("erase_hold", &FIX, &[A, B]);
    env.tv.backup_all();
    env.tv.ok(&["hold", "set", A, "--reason", "case 42"]);
    let out = erase(&env, &key, &[]);
    assert_ne!(out.code, 0, "erase under hold");
    assert!(
        out.stderr.contains("case 42"),
        "stderr names the hold: {}",
        out.stderr
    );
    let found = presence(&env);
    assert!(found.iter().all(|p| *p), "erased under hold: {found:?}");
}
