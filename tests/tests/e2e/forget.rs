//! Erasure (`forget-tenant`): the certificate says what was destroyed, and afterwards nothing
//! of the tenant is left in the vault, nothing of it can be restored, even from an offline copy
//! of its packs and manifests, and the other tenant is unaffected.

use super::retention::*;
use super::retention_hold::audit_entries;
use std::path::{Path, PathBuf};
use tests::*;

/// Copies `from` to `to` recursively, leaving out the relative paths in `skip` (and what is
/// under them).
pub fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    for rel in walk(from) {
        if skip.iter().any(|s| rel.starts_with(s)) {
            continue;
        }
        let (src, dst) = (from.join(&rel), to.join(&rel));
        if src.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
        } else {
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
        }
    }
}

/// Files under `root` (relative) whose bytes contain `needle`, except those named `except`.
pub fn files_containing(root: &Path, needle: &[u8], except: &[&str]) -> Vec<PathBuf> {
    files(root)
        .into_keys()
        .filter(|p| !except.iter().any(|x| p.as_os_str() == *x))
        .filter(|p| {
            let b = std::fs::read(root.join(p)).unwrap_or_default();
            b.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

#[test]
fn forget_tenant_destroys_everything_of_it_and_nothing_else() {
    let (env, key) = Env::with_tenants("forget_tenant", &FIX, &[A, B]);
    let mut c = env.db.client();
    backup(&env);
    change(&env, A, 1);
    change(&env, B, 1);
    let last = snapshot_id(&backup(&env));
    let (at_a, at_b) = (rows_of(&mut c, A), rows_of(&mut c, B));
    let snaps = snaps_of(&env.tv, A);
    assert_eq!(snaps.len(), 2);
    let find = ["find", A, "--table", "public.customers", "--key", "id=1"];
    let found = env.tv.json(&find);
    assert_eq!(
        found.as_array().map(Vec::len),
        Some(2),
        "find before: {found:#}"
    );

    let dir = tenant_dir(&env.tv.vault, A);
    let store = env.tv.vault.join("store");
    let rel_dir = dir.strip_prefix(&store).unwrap().to_path_buf();
    let objects = files(&dir);
    assert!(
        objects.contains_key(Path::new("keys/data-key.age")),
        "no wrapped data key where FORMAT.md puts it: {objects:#?}"
    );
    // An offline copy of everything of A but its wrapped data key (packs, manifests, key
    // indexes, tenant record, even the id key, which is sealed to the data key), and, for the
    // control below only, the wrapped data key on its own.
    let aside = env.path("offline-copy");
    copy_tree(&dir, &aside, &["keys/data-key.age"]);
    let wrapped_key = std::fs::read(dir.join("keys/data-key.age")).unwrap();

    // Without --yes: usage error, nothing deleted.
    let out = env.tv.run(&["forget-tenant", A]);
    out.assert_code(2, "forget-tenant without --yes");
    assert!(
        out.stderr.contains("--yes"),
        "the refusal does not say that --yes is needed: {}",
        out.stderr
    );
    assert_eq!(files(&dir), objects, "forget-tenant without --yes deleted");
    assert_eq!(snaps_of(&env.tv, A), snaps);

    let cert = env.tv.json(&["forget-tenant", A, "--yes"]);
    let log = audit_entries(&env.tv);

    // The certificate.
    assert_eq!(cert["tenant"], A, "certificate: {cert:#}");
    assert!(
        cert["time"]
            .as_str()
            .is_some_and(|t| t.len() >= 20 && t.as_bytes()[4] == b'-' && t.contains('T')),
        "certificate time is not RFC 3339: {cert:#}"
    );
    let deleted = cert["objects_deleted"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!deleted.is_empty(), "no objects_deleted: {cert:#}");
    let keys = cert["keys_destroyed"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        keys.iter().any(|k| k.to_string().contains("data-key")),
        "keys_destroyed does not list the wrapped data key: {cert:#}"
    );
    for (rel, size) in &objects {
        let name = rel_dir.join(rel).to_string_lossy().replace('\\', "/");
        let listed = deleted
            .iter()
            .find(|o| o["object"].as_str().is_some_and(|s| s.ends_with(&name)));
        match listed {
            Some(o) => assert_eq!(o["size"], *size, "size of {name} in the certificate"),
            None => assert!(
                rel.starts_with("keys") && keys.iter().any(|k| k.to_string().contains(&name)),
                "{name} ({size} bytes) is missing from the certificate: {cert:#}"
            ),
        }
    }
    // audit_head: the chain head when the certificate was issued: the erasure's own entry,
    // or the entry just before it.
    let head = &cert["audit_head"];
    let hash = head["hash"].as_str().unwrap_or("");
    assert!(
        hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "audit_head.hash is not 64 lowercase hex: {cert:#}"
    );
    let last_entry = log.last().expect("audit trail is empty");
    assert!(
        last_entry["action"] == "erasure"
            && last_entry["tenant"] == A
            && last_entry["outcome"] == "ok",
        "the last audit entry is not A's erasure: {last_entry:#}"
    );
    let at_head = log.iter().find(|e| e["seq"] == head["seq"]);
    assert!(
        at_head.is_some_and(|e| e["hash"] == hash)
            && head["seq"].as_u64().is_some_and(|s| {
                let l = last_entry["seq"].as_u64().unwrap();
                s == l || s + 1 == l
            }),
        "audit_head {head} is neither the erasure's entry nor the one before it: {last_entry:#}"
    );

    // Nothing of A is left in the vault (the audit trail names it, by design).
    assert!(
        !dir.exists() || files(&dir).is_empty(),
        "objects remain under A's dir: {:#?}",
        files(&dir)
    );
    let named = files_containing(&env.tv.vault, A.as_bytes(), &["audit.log"]);
    assert!(named.is_empty(), "files still naming {A:?}: {named:#?}");
    for args in [
        &["restore", A, "--identity", key.identity_str()][..],
        &[
            "restore",
            A,
            "--snapshot",
            &last,
            "--identity",
            key.identity_str(),
        ][..],
        &find[..],
        &["snapshots", "--tenant", A][..],
    ] {
        env.tv
            .run(args)
            .assert_code(4, &format!("{args:?} after forgetting"));
    }
    assert!(
        env.tv.snapshots().iter().all(|s| s["tenant"] != A),
        "snapshots still lists {A}"
    );
    let tenants = env.tv.json(&["tenant", "list"]);
    assert!(
        !tenants.to_string().contains(A),
        "tenant list still names {A}: {tenants:#}"
    );

    // B: unaffected.
    verify_ok(&env.tv, &[]);
    verify_ok(&env.tv, &["--tenant", B, "--identity", key.identity_str()]);
    restore_exact(&env, &key, B, &last, &at_b);

    // Crypto-shredding. Blocks are sealed to A's data key, whose secret existed only wrapped
    // (keys/data-key.age) to A's recipients; A's own identity decrypts nothing else. So once
    // every copy of the wrapped key is gone, a surviving copy of packs and manifests (an
    // offline backup, an undeletable bucket version) is unreadable even with A's identity.
    // Shown on clones of the vault with the offline copy put back, restoring into scratch
    // databases; the control with the wrapped key also put back proves the copy itself is
    // intact, i.e. that the key, and nothing else, is what forgetting destroyed.
    let attempt = |name: &str, with_key: bool| -> (Output, Vec<Vec<String>>) {
        let clone = env.path(name);
        copy_tree(&env.tv.vault, &clone, &["inventory"]);
        let cfg = std::fs::read_to_string(clone.join("config.toml")).unwrap_or_default();
        assert!(
            !cfg.contains(&*env.tv.vault.to_string_lossy()),
            "the clone's config points at the original vault: {cfg}"
        );
        let back = clone.join("store").join(&rel_dir);
        copy_tree(&aside, &back, &[]);
        if with_key {
            std::fs::create_dir_all(back.join("keys")).unwrap();
            std::fs::write(back.join("keys/data-key.age"), &wrapped_key).unwrap();
        }
        let tv = Tvault::new(&clone);
        let id = format!("{A}={}", key.identity_str());
        let rebuilt = tv.run(&["inventory", "rebuild", "--identity", &id, "--json"]);
        let scratch = env.scratch_db(name, &FIX[..1]);
        let out = tv.run(&[
            "restore",
            A,
            "--identity",
            key.identity_str(),
            "--target",
            &scratch.url,
        ]);
        eprintln!(
            "{name}: rebuild exit {} {} {}; restore exit {} {}",
            rebuilt.code, rebuilt.stdout, rebuilt.stderr, out.code, out.stderr
        );
        (out, rows_of(&mut scratch.client(), A))
    };
    let (out, rows) = attempt("attack-without-key", false);
    assert_ne!(
        out.code, 0,
        "restored A from an offline copy after forgetting"
    );
    assert!(
        rows.iter().all(Vec::is_empty),
        "A's rows came back from the offline copy: {rows:?}"
    );
    let (out, rows) = attempt("control-with-key", true);
    out.assert_code(
        0,
        "control: offline copy + the wrapped key (must be readable)",
    );
    assert_eq!(rows, at_a, "control: restored rows");
}
