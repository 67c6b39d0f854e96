//! Key rotation that revokes (`tenant rotate-key --revoke`): later snapshots get a new data key,
//! so a leaked old tenant key reads nothing written afterwards, nor (once every wrapped key is
//! rewritten to the new recipients and old versions are deleted) anything in the store at all;
//! the new key reads every snapshot, old and new. Run on the local and the S3 store.

use super::retention::{change, mangle, rows_of, A, B, FIX};
use tests::*;

fn restore_with(env: &Env, snap: &str, key: &Key) -> Output {
    env.tv.run(&[
        "restore",
        A,
        "--snapshot",
        snap,
        "--identity",
        key.identity_str(),
    ])
}

fn revoking_rotation(backend: Backend, name: &str) {
    let (env, old) = Env::with_tenants_on(name, &FIX, &[A, B], backend);
    let mut c = env.db.client();
    let before = env.tv.backup_all();
    let rows_before = rows_of(&mut c, A);
    let new = env.keygen("new.txt");
    let v = env.tv.json(&[
        "tenant",
        "rotate-key",
        A,
        "--identity",
        old.identity_str(),
        "--recipient",
        &new.recipient,
        "--revoke",
    ]);
    assert_eq!(
        v["former_data_recipients"].as_array().map(Vec::len),
        Some(1),
        "{v:#}"
    );
    change(&env, A, 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = env.tv.json(&["backup", "--all"]);
    let after = snapshot_id(&b);
    let ours = b["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == A)
        .unwrap();
    assert_eq!(
        ours["blocks_reused"], 0,
        "no block sealed to the old key is reused: {b:#}"
    );
    let rows_after = rows_of(&mut c, A);

    // The old key reads nothing: neither the new snapshot nor, its wrapped keys gone, the old.
    mangle(&env, A);
    let damaged = rows_of(&mut c, A);
    for snap in [&after, &before] {
        restore_with(&env, snap, &old).assert_code(3, "restore with the revoked key");
        assert_eq!(
            rows_of(&mut c, A),
            damaged,
            "a refused restore changed rows"
        );
    }
    // The new key reads both.
    env.tv.restore(A, &before, &new, None);
    assert_eq!(rows_of(&mut c, A), rows_before);
    env.tv.restore(A, &after, &new, None);
    assert_eq!(rows_of(&mut c, A), rows_after);
    // Verify with the new key decrypts every snapshot; B was never touched.
    env.tv
        .ok(&["verify", "--tenant", A, "--identity", new.identity_str()]);
    env.tv.restore(B, "latest", &old, None);
    // On a versioned bucket no earlier version of a key object is left to unwrap with the old key.
    if let Some(bucket) = &env.bucket {
        let keys: Vec<ObjectVersion> = s3_admin()
            .versions(bucket, &format!("{S3_PREFIX}/"))
            .into_iter()
            .filter(|v| v.key.contains("/keys/"))
            .collect();
        let mut names: Vec<&str> = keys.iter().map(|v| v.key.as_str()).collect();
        names.sort();
        let unique = {
            let mut n = names.clone();
            n.dedup();
            n
        };
        assert_eq!(
            names, unique,
            "old versions of key objects remain: {keys:?}"
        );
    }
}

conformance! {
    revoking_rotation,
}
