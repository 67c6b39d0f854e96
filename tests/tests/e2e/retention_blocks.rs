//! Deleting old snapshots must not take blocks that kept snapshots still use (deduplication
//! shares them across snapshots), and must really free the space of blocks nobody uses.

use super::retention::*;
use tests::*;

#[test]
fn deduplicated_blocks_survive_deleting_the_snapshot_that_stored_them() {
    let (env, key) = Env::with_tenants("retention_shared", &FIX, &[A, B]);
    let mut c = env.db.client();
    let first = backup(&env);
    let mut snaps = vec![snapshot_id(&first)];
    for step in 0..2 {
        // Only some customers change: every other block of the later snapshots is the first's.
        change(&env, A, step);
        change(&env, B, step);
        let b = backup(&env);
        let a = backup_of(&b, A);
        assert!(a["blocks_reused"].as_u64().unwrap_or(0) > 0, "{b:#}");
        snaps.push(snapshot_id(&b));
    }
    let at = rows_of(&mut c, A);
    let packs_before: Vec<String> = pack_names(&env, A);
    assert_eq!(
        packs_before.len(),
        3,
        "one pack per snapshot: {packs_before:?}"
    );

    policy(&env.tv, A, &["--keep-last", "1"]);
    let r = apply(&env.tv, &[]);
    assert_keeps(
        &decisions(&r, A),
        &snaps,
        &snaps[2..],
        "keep-last 1, shared blocks",
    );
    assert_eq!(snaps_of(&env.tv, A), snaps[2..], "A after keep-last 1");

    // The kept snapshot's unchanged blocks live in the first snapshot's pack, which stays;
    // the second snapshot's pack held only blocks nobody uses any more.
    let packs_after = pack_names(&env, A);
    assert_eq!(
        packs_after,
        [packs_before[0].clone(), packs_before[2].clone()],
        "packs after keep-last 1"
    );
    verify_ok(&env.tv, &[]);
    verify_ok(&env.tv, &["--tenant", A, "--identity", key.identity_str()]);
    restore_exact(&env, &key, A, &snaps[2], &at);
    assert_eq!(snaps_of(&env.tv, B).len(), 3, "B untouched");
}

/// Pack object names (file names) of `tenant`.
fn pack_names(env: &Env, tenant: &str) -> Vec<String> {
    let dir = tenant_dir(&env.tv.vault, tenant).join("packs");
    let mut v: Vec<String> = files(&dir)
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn blocks_only_old_snapshots_used_are_freed() {
    let (env, key) = Env::with_tenants("retention_unique", &FIX, &[A, B]);
    let mut c = env.db.client();
    // s1: customers v1 + notes; s2: customers v2 (notes shared with s1); s3: customers v3.
    let mut snaps = vec![snapshot_id(&backup(&env))];
    for step in 2..=3 {
        change(&env, A, step);
        let b = backup(&env);
        let a = backup_of(&b, A);
        assert!(
            a["blocks_new"].as_u64().unwrap_or(0) > 0,
            "changed customers but no new block: {b:#}"
        );
        assert!(
            a["blocks_reused"].as_u64().unwrap_or(0) > 0,
            "notes unchanged but no block reused: {b:#}"
        );
        snaps.push(snapshot_id(&b));
    }
    let at3 = rows_of(&mut c, A);
    let dir = tenant_dir(&env.tv.vault, A);
    let rel_dir = dir.strip_prefix(env.tv.vault.join("store")).unwrap();
    let packs = pack_names(&env, A);
    let of_s2: Vec<&String> = packs.iter().filter(|p| p.starts_with(&snaps[1])).collect();
    assert!(
        !of_s2.is_empty(),
        "the second snapshot wrote no pack: {packs:?}"
    );
    let s2_pack_bytes: u64 = files(&dir.join("packs"))
        .iter()
        .filter(|(p, _)| p.to_string_lossy().starts_with(&snaps[1]))
        .map(|(_, s)| s)
        .sum();
    policy(&env.tv, A, &["--keep-last", "1"]);
    let before = store_objects(&env.tv.vault);
    let r = apply(&env.tv, &[]);
    assert_keeps(&decisions(&r, A), &snaps, &snaps[2..], "keep-last 1");
    assert_eq!(snaps_of(&env.tv, A), snaps[2..]);

    // s2's pack held only s2's customers block, which no kept snapshot uses: it must go.
    let after = store_objects(&env.tv.vault);
    let left = pack_names(&env, A);
    assert!(
        left.iter().all(|p| !p.starts_with(&snaps[1])),
        "a pack only deleted snapshots used survived: {left:?}"
    );
    // Nothing of s1/s2 stays in A's manifests.
    for s in &snaps[..2] {
        let stale: Vec<_> = after
            .keys()
            .filter(|p| p.starts_with(rel_dir) && p.to_string_lossy().contains(s.as_str()))
            .filter(|p| !p.to_string_lossy().contains("/packs/"))
            .collect();
        assert!(stale.is_empty(), "objects of deleted {s} remain: {stale:?}");
    }
    let freed = total(&before) - total(&after);
    assert!(
        freed >= s2_pack_bytes,
        "store shrank by {freed} bytes, less than the {s2_pack_bytes} of s2's packs"
    );
    assert_eq!(
        r["objects_deleted"].as_u64(),
        Some(before.keys().filter(|k| !after.contains_key(*k)).count() as u64),
        "objects_deleted vs objects that left the store: {r:#}"
    );
    // B's objects are all still there.
    let b_rel = tenant_dir(&env.tv.vault, B);
    let b_rel = b_rel.strip_prefix(env.tv.vault.join("store")).unwrap();
    for (p, s) in before.iter().filter(|(p, _)| p.starts_with(b_rel)) {
        assert_eq!(after.get(p), Some(s), "B's object {} changed", p.display());
    }

    // s3 still restores exactly, including the notes block that s1's pack stored.
    verify_ok(&env.tv, &[]);
    verify_ok(&env.tv, &["--tenant", A, "--identity", key.identity_str()]);
    restore_exact(&env, &key, A, &snaps[2], &at3);

    // The report tells the operator how much space was freed: every deleted object counts.
    assert_eq!(
        r["bytes_freed"].as_u64(),
        Some(freed),
        "bytes_freed vs the bytes that left the store ({} objects before, {} after): {r:#}",
        before.len(),
        after.len()
    );
}
