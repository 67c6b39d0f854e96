//! Legal hold: while a tenant is on hold, neither retention nor erasure removes anything of it,
//! every refusal is in the audit trail with the hold's reason, and after the release both
//! work as usual.

use super::retention::*;
use tests::*;

pub const REASON: &str = "litigation 2026-114";

/// `audit --json` entries (all tenants).
#[track_caller]
pub fn audit_entries(tv: &Tvault) -> Vec<Value> {
    let v = tv.json(&["audit"]);
    v.as_array()
        .unwrap_or_else(|| panic!("audit --json is not an array: {v:#}"))
        .clone()
}

/// Entries of `tenant` with `action`.
pub fn entries_of(all: &[Value], tenant: &str, action: &str) -> Vec<Value> {
    all.iter()
        .filter(|e| e["tenant"] == tenant && e["action"] == action)
        .cloned()
        .collect()
}

#[test]
fn legal_hold_blocks_retention_and_erasure_until_released() {
    let (env, key) = Env::with_tenants("retention_hold", &FIX, &[A, B]);
    let mut snaps = Vec::new();
    for i in 0..3 {
        change(&env, A, i);
        change(&env, B, i);
        snaps.push(snapshot_id(&backup(&env)));
    }
    policy(&env.tv, A, &["--keep-last", "1"]);
    env.tv.ok(&["hold", "set", A, "--reason", REASON]);
    let dir = tenant_dir(&env.tv.vault, A);
    let objects = files(&dir);

    // Retention: the policy would delete two snapshots; the hold keeps everything.
    let r = apply(&env.tv, &[]);
    let t = report_of(&r, A);
    assert!(
        t["held"].as_str().is_some_and(|h| h.contains(REASON)),
        "report does not show the hold: {t:#}"
    );
    assert_eq!(t["deleted_snapshots"], 0, "{r:#}");
    let d = decisions(&r, A);
    assert_keeps(&d, &snaps, &snaps, "held tenant");
    for x in &d {
        assert!(
            x.says("legal hold") && x.says(REASON),
            "decision does not name the hold: {x:?}"
        );
    }
    assert_eq!(snaps_of(&env.tv, A), snaps, "retention deleted under hold");
    assert_eq!(
        files(&dir),
        objects,
        "retention touched A's objects under hold"
    );

    // Erasure is refused (exit 1), naming the hold, and changes nothing.
    let out = env.tv.run(&["forget-tenant", A, "--yes"]);
    out.assert_code(1, "forget-tenant under a legal hold");
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("hold") && out.stderr.contains(REASON),
        "refusal does not name the hold: {}",
        out.stderr
    );
    assert_eq!(files(&dir), objects, "refused erasure touched A's objects");
    assert_eq!(snaps_of(&env.tv, A), snaps);
    verify_ok(&env.tv, &["--tenant", A, "--identity", key.identity_str()]);

    // The audit trail has the hold, and each refusal with the hold's reason.
    let all = audit_entries(&env.tv);
    let holds = entries_of(&all, A, "hold");
    assert!(
        holds
            .iter()
            .any(|e| e["outcome"] == "ok" && e.to_string().contains(REASON)),
        "no audit entry for `hold set` with its reason: {holds:#?}"
    );
    let erasures = entries_of(&all, A, "erasure");
    assert!(
        erasures.iter().any(|e| e["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("refused: ") && o.contains(REASON))),
        "no refused erasure with the hold's reason in the audit trail: {erasures:#?}"
    );
    let deletions = entries_of(&all, A, "deletion");
    assert!(
        deletions.iter().any(|e| e.to_string().contains(REASON)),
        "the deletion retention wanted and the hold refused is not in the audit trail \
         with the hold's reason: {deletions:#?}"
    );
    assert!(
        !entries_of(&all, A, "policy-change").is_empty(),
        "policy set is not audited"
    );

    // Released: retention deletes what the policy says, and erasure works.
    env.tv.ok(&["hold", "release", A]);
    let all = audit_entries(&env.tv);
    assert!(
        entries_of(&all, A, "hold-release")
            .iter()
            .any(|e| e["outcome"] == "ok"),
        "hold release is not audited: {all:#?}"
    );
    let r = apply(&env.tv, &[]);
    let t = report_of(&r, A);
    assert!(t["held"].is_null(), "still held after release: {t:#}");
    assert_keeps(&decisions(&r, A), &snaps, &snaps[2..], "after release");
    assert_eq!(t["deleted_snapshots"], 2, "{r:#}");
    assert_eq!(snaps_of(&env.tv, A), snaps[2..], "after release");
    assert!(
        entries_of(&audit_entries(&env.tv), A, "deletion")
            .iter()
            .any(|e| e["outcome"] == "ok"
                && snaps[..2]
                    .iter()
                    .all(|s| e.to_string().contains(s.as_str()))),
        "the deletion of {:?} is not audited",
        &snaps[..2]
    );

    env.tv.ok(&["forget-tenant", A, "--yes"]);
    env.tv
        .run(&["snapshots", "--tenant", A])
        .assert_code(4, "snapshots of a forgotten tenant");
    assert!(
        !dir.exists() || files(&dir).is_empty(),
        "A's objects remain"
    );
    assert_eq!(snaps_of(&env.tv, B), snaps, "B untouched");
}
