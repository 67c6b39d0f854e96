//! The audit trail of retention, holds and erasure is intact after all of it, and tampering
//! with it afterwards (hiding a refused erasure, removing or reordering entries) is detected.

use super::retention::*;
use super::retention_hold::{audit_entries, REASON};
use tests::*;

/// `audit verify --json`: (exit code, report).
fn audit_verify(tv: &Tvault) -> (i32, Value) {
    let out = tv.run(&["audit", "verify", "--json"]);
    let v = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "audit verify --json printed invalid JSON ({e}), exit {}:\n{}\n{}",
            out.code, out.stdout, out.stderr
        )
    });
    (out.code, v)
}

/// Does the verify report name `seq` (a problem with that seq)?
fn names_seq(report: &Value, seq: u64) -> bool {
    report["problems"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["seq"] == seq || p.to_string().contains(&format!("seq {seq}")))
    })
}

#[test]
fn audit_trail_of_retention_and_erasure_detects_tampering() {
    let (env, _key) = Env::with_tenants("forget_audit", &FIX, &[A, B]);
    for i in 0..3 {
        change(&env, A, i);
        backup(&env);
    }
    policy(&env.tv, A, &["--keep-last", "1"]);
    env.tv.ok(&["hold", "set", A, "--reason", REASON]);
    apply(&env.tv, &[]);
    env.tv
        .run(&["forget-tenant", A, "--yes"])
        .assert_code(1, "forget-tenant under hold");
    env.tv.ok(&["hold", "release", A]);
    apply(&env.tv, &[]);
    env.tv.ok(&["forget-tenant", A, "--yes"]);
    env.tv.ok(&["backup", "--all"]);

    let (code, v) = audit_verify(&env.tv);
    assert_eq!(code, 0, "audit verify after retention and erasure: {v:#}");
    assert_eq!(v["ok"], true, "{v:#}");

    let entries = audit_entries(&env.tv);
    let actions: Vec<&str> = entries
        .iter()
        .filter(|e| e["tenant"] == A)
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "policy-change",
        "hold",
        "deletion",
        "erasure",
        "hold-release",
    ] {
        assert!(actions.contains(&a), "no {a:?} entry for A: {actions:?}");
    }
    let refused = entries
        .iter()
        .find(|e| {
            e["action"] == "erasure"
                && e["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("refused"))
        })
        .unwrap_or_else(|| panic!("no refused erasure in {entries:#?}"))
        .clone();
    let refused_seq = refused["seq"].as_u64().unwrap();
    let log = env.tv.vault.join("audit.log");
    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert_eq!(
        lines.len(),
        entries.len(),
        "audit.log lines vs audit --json"
    );
    assert!(
        lines.len() >= 6,
        "too few entries to tamper with: {lines:#?}"
    );
    let last_seq = entries.last().unwrap()["seq"].as_u64().unwrap();
    assert!(
        refused_seq < last_seq,
        "the refused erasure is the last entry"
    );

    let tamper = |what: &str, edited: Vec<String>, seq: Option<u64>| {
        std::fs::write(&log, edited.join("\n") + "\n").unwrap();
        let (code, v) = audit_verify(&env.tv);
        std::fs::write(&log, &original).unwrap();
        assert_eq!(code, 3, "audit verify after {what}: {v:#}");
        assert_eq!(v["ok"], false, "audit verify after {what}: {v:#}");
        if let Some(s) = seq {
            assert!(
                names_seq(&v, s),
                "{what}: the report does not name seq {s}: {v:#}"
            );
        }
        let (code, v) = audit_verify(&env.tv);
        assert_eq!(code, 0, "original log put back after {what}: {v:#}");
    };

    // Hide the refusal: its outcome becomes "ok" (still valid JSON, same fields).
    let i = (refused_seq - 1) as usize;
    let outcome = serde_json::to_string(&refused["outcome"]).unwrap();
    let from = format!("\"outcome\":{outcome}");
    assert!(
        lines[i].contains(&from),
        "line {i} is not the refused erasure"
    );
    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    edited[i] = lines[i].replace(&from, "\"outcome\":\"ok\"");
    let parsed: Value = serde_json::from_str(&edited[i]).expect("edited line is valid JSON");
    assert_eq!(parsed["outcome"], "ok");
    tamper(
        "editing a refused erasure into ok",
        edited,
        Some(refused_seq),
    );

    // Remove a middle line.
    let mid = lines.len() / 2;
    let mut removed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    removed.remove(mid);
    tamper(&format!("removing line {}", mid + 1), removed, None);

    // Swap two middle lines.
    let mut swapped: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    swapped.swap(mid - 1, mid);
    tamper(
        &format!("swapping lines {mid} and {}", mid + 1),
        swapped,
        None,
    );
}
