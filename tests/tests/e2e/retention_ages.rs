//! min-age (compliance floor: nothing younger is deleted, whatever `--now` says) and max-age
//! (privacy ceiling: everything older goes, whatever keep rules say); a policy where the
//! two contradict each other is refused and leaves the previous one in force.

use super::retention::*;
use tests::*;

#[test]
fn min_age_keeps_young_snapshots_and_max_age_deletes_old_ones() {
    let (env, _key) = Env::with_tenants("retention_ages", &FIX, &[A, B]);
    let mut snaps = Vec::new();
    for i in 0..3 {
        change(&env, A, i);
        change(&env, B, i);
        snaps.push(snapshot_id(&backup(&env)));
    }

    // keep-last 1 alone would delete two; min-age 1d keeps them: they were taken just now.
    policy(&env.tv, A, &["--keep-last", "1", "--min-age", "1d"]);
    let r = apply(&env.tv, &[]);
    let d = decisions(&r, A);
    assert_keeps(&d, &snaps, &snaps, "keep-last 1, min-age 1d");
    for x in &d[..2] {
        assert!(x.says("min-age"), "kept, but not for min-age: {x:?}");
    }
    assert_eq!(report_of(&r, A)["deleted_snapshots"], 0, "{r:#}");
    assert_eq!(snaps_of(&env.tv, A), snaps, "min-age 1d: nothing may go");

    // `--now` two days ahead makes them look old enough, but min-age is also checked against
    // the real clock: a real run still deletes nothing.
    let later = now_plus(&env, "2 days");
    let r = apply(&env.tv, &["--now", &later]);
    let d = decisions(&r, A);
    assert_keeps(
        &d,
        &snaps,
        &snaps,
        &format!("min-age 1d at --now {later} (real clock: just taken)"),
    );
    for x in &d[..2] {
        assert!(x.says("min-age"), "kept, but not for min-age: {x:?}");
    }
    assert_eq!(snaps_of(&env.tv, A), snaps, "--now bypassed min-age");

    // max-age 1d overrides keep-last 5 two days from now.
    policy(&env.tv, A, &["--keep-last", "5", "--max-age", "1d"]);
    let now = apply(&env.tv, &["--dry-run"]);
    assert_keeps(
        &decisions(&now, A),
        &snaps,
        &snaps,
        "keep-last 5, max-age 1d, now",
    );
    let r = apply(&env.tv, &["--dry-run", "--now", &later]);
    let d = decisions(&r, A);
    assert_keeps(&d, &snaps, &[], &format!("max-age 1d at --now {later}"));
    for x in &d {
        assert!(x.says("max-age"), "deleted, but not for max-age: {x:?}");
    }
    assert_eq!(snaps_of(&env.tv, A), snaps, "a dry run deleted snapshots");
    assert_eq!(snaps_of(&env.tv, B), snaps, "B has no policy");

    // max-age shorter than min-age: refused (usage error), previous policy stays.
    let shown = env.tv.json(&["policy", "show", A]);
    assert_eq!(shown["tenant"], A, "{shown:#}");
    assert_eq!(shown["policy"]["keep_last"], 5, "policy show: {shown:#}");
    assert_eq!(shown["policy"]["max_age"], "1d", "policy show: {shown:#}");
    let bad = env
        .tv
        .run(&["policy", "set", A, "--max-age", "1d", "--min-age", "30d"]);
    bad.assert_code(2, "policy with max-age 1d < min-age 30d");
    assert!(
        bad.stderr.contains("max") && bad.stderr.contains("min"),
        "refusal does not say which rules conflict: {}",
        bad.stderr
    );
    assert_eq!(
        env.tv.json(&["policy", "show", A]),
        shown,
        "a refused policy replaced the previous one"
    );
    let r = apply(&env.tv, &["--dry-run", "--now", &later]);
    assert_keeps(&decisions(&r, A), &snaps, &[], "previous policy in force");
}
