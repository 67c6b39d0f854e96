//! Someone with write access to the store and nothing else (threat A of docs/SECURITY.md) edits,
//! swaps, rolls back, forges or deletes objects behind tvault's back. Every such change is an
//! integrity error (exit 3) for the operations that read it, the live database stays as it was,
//! and the other tenant is untouched. Run on the local and the S3 store.

use super::retention::{change, mangle, rows_of, A, B, FIX};
use tests::*;

/// The store key of one of `tenant`'s objects (`rel` below its directory, e.g. `hold.json`).
fn object_of(env: &Env, tenant: &str, rel: &str) -> String {
    format!("{}{rel}", env.tenant_dir(tenant))
}

/// A stored manifest's MAC line, and its JSON (the body is one zstd frame since store format 4).
fn manifest_json(stored: &[u8]) -> (&[u8], Vec<u8>) {
    let (line, body) = stored.split_at(stored.iter().position(|&b| b == b'\n').unwrap() + 1);
    (line, zstd::decode_all(body).expect("a compressed manifest"))
}

struct World {
    env: Env,
    key: Key,
    snaps: [String; 2],
}

/// Two tenants, two snapshots (A changed in between), and A's live rows damaged so that a
/// restore has work to do.
fn world(backend: Backend, name: &str) -> World {
    let (env, key) = Env::with_tenants_on(name, &FIX, &[A, B], backend);
    let first = env.tv.backup_all();
    change(&env, A, 1);
    change(&env, B, 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = env.tv.backup_all();
    mangle(&env, A);
    World {
        env,
        key,
        snaps: [first, second],
    }
}

/// `tvault ARGS` exits 3, says why, and changes no live row of either tenant.
#[track_caller]
fn refused(w: &World, args: &[&str], what: &str) {
    let mut c = w.env.db.client();
    let before = (rows_of(&mut c, A), rows_of(&mut c, B));
    let out = w.env.tv.run(args);
    out.assert_code(3, what);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        ["corrupt object", "vault MAC", "wrong key"]
            .iter()
            .any(|w| said.contains(w)),
        "{what}: {said}"
    );
    assert_eq!(
        (rows_of(&mut c, A), rows_of(&mut c, B)),
        before,
        "{what}: rows changed"
    );
}

fn restore_args<'a>(w: &'a World, tenant: &'a str, snap: &'a str) -> Vec<&'a str> {
    vec![
        "restore",
        tenant,
        "--snapshot",
        snap,
        "--identity",
        w.key.identity_str(),
    ]
}

/// B still restores exactly: nothing done to A's objects reaches it.
#[track_caller]
fn other_tenant_intact(w: &World) {
    let mut c = w.env.db.client();
    let b = rows_of(&mut c, B);
    mangle(&w.env, B);
    w.env.tv.restore(B, "latest", &w.key, None);
    assert_eq!(rows_of(&mut c, B), b);
}

fn edited_manifest(backend: Backend, name: &str) {
    let w = world(backend, name);
    let path = object_of(&w.env, A, &format!("manifests/{}.json", w.snaps[1]));
    let stored = w.env.read_object(&path);
    let (line, json) = manifest_json(&stored);
    let text = String::from_utf8(json).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let def = |i: usize| json["tables"][i]["def"].as_str().unwrap().to_string();
    let (first, second) = (def(0), def(1));
    // Swap the definitions of two tables: every row would load into the other table.
    let edited = text
        .replacen(&first, "tv_tmp", 1)
        .replacen(&second, &first, 1)
        .replacen("tv_tmp", &second, 1);
    assert_ne!(edited, text, "the manifest names its definitions");
    let mut forged = line.to_vec();
    forged.extend(zstd::encode_all(edited.as_bytes(), 3).unwrap());
    w.env.write_object(&path, forged);
    refused(
        &w,
        &restore_args(&w, A, &w.snaps[1]),
        "restore from a manifest with swapped definitions",
    );
    let id = w.key.identity_str();
    refused(&w, &["verify", "--tenant", A, "--identity", id], "verify");
    refused(
        &w,
        &[
            "restore-records",
            A,
            "--table",
            "public.customers",
            "--key",
            "id=1",
            "--snapshot",
            &w.snaps[1],
            "--identity",
            id,
        ],
        "record restore",
    );
    w.env.write_object(&path, stored.clone());

    // The definition itself, shared by every manifest: swap two column names, the attack that
    // put every email into the name column. The local copy is trusted until the inventory is
    // rebuilt from the store; then the edit is caught by the definition's digest.
    let schema = format!("schemas/{first}.json");
    let def_text = String::from_utf8(w.env.read_object(&schema)).unwrap();
    let edited = def_text
        .replacen("\"name\":\"id\"", "\"name\":\"tv_tmp\"", 1)
        .replacen("\"name\":\"tenant_id\"", "\"name\":\"id\"", 1)
        .replacen("\"name\":\"tv_tmp\"", "\"name\":\"tenant_id\"", 1);
    assert_ne!(edited, def_text, "the definition names its columns");
    w.env.write_object(&schema, edited.into_bytes());
    w.env
        .tv
        .run(&["inventory", "rebuild"])
        .assert_code(3, "rebuild over an edited table definition");
    w.env.write_object(&schema, def_text.into_bytes());
    w.env.tv.json(&["inventory", "rebuild"]);
    other_tenant_intact(&w);
}

fn swapped_and_rolled_back_manifests(backend: Backend, name: &str) {
    let w = world(backend, name);
    let newer = object_of(&w.env, A, &format!("manifests/{}.json", w.snaps[1]));
    let older = object_of(&w.env, A, &format!("manifests/{}.json", w.snaps[0]));
    let original = w.env.read_object(&newer);
    // Rollback: the older snapshot's (authentic) manifest put in place of the newer one.
    w.env.write_object(&newer, w.env.read_object(&older));
    refused(
        &w,
        &restore_args(&w, A, &w.snaps[1]),
        "restore from a rolled-back manifest",
    );
    // Swap: B's manifest of the same snapshot put in place of A's.
    let theirs = object_of(&w.env, B, &format!("manifests/{}.json", w.snaps[1]));
    w.env.write_object(&newer, w.env.read_object(&theirs));
    refused(
        &w,
        &restore_args(&w, A, &w.snaps[1]),
        "restore from another tenant's manifest",
    );
    // Put back, everything restores again.
    w.env.write_object(&newer, original);
    w.env.tv.restore(A, &w.snaps[1], &w.key, None);
    other_tenant_intact(&w);
}

fn forged_and_swapped_keys(backend: Backend, name: &str) {
    let w = world(backend, name);
    let ours = object_of(&w.env, A, "keys/id-key.age");
    let original = w.env.read_object(&ours);
    // B's id key (sealed to B's data key, with B's MAC) in A's place, then plain garbage.
    w.env.write_object(
        &ours,
        w.env.read_object(&object_of(&w.env, B, "keys/id-key.age")),
    );
    refused(
        &w,
        &restore_args(&w, A, "latest"),
        "restore with a swapped id key",
    );
    w.env
        .write_object(&ours, b"age-encryption.org/v1 forged".to_vec());
    refused(
        &w,
        &restore_args(&w, A, "latest"),
        "restore with a forged id key",
    );
    w.env.write_object(&ours, original);
    // B's wrapped data key in A's place: it does not unwrap to A's data recipient.
    let wrapped = object_of(&w.env, A, "keys/data-key.age");
    w.env.write_object(
        &wrapped,
        w.env
            .read_object(&object_of(&w.env, B, "keys/data-key.age")),
    );
    refused(
        &w,
        &restore_args(&w, A, "latest"),
        "restore with B's wrapped data key",
    );
    other_tenant_intact(&w);
}

fn ledger_rollback_and_deletion(backend: Backend, name: &str) {
    let w = world(backend, name);
    let id = w.key.identity_str();
    let erase = |key: &str| {
        w.env.tv.json(&[
            "erase",
            A,
            "--table",
            "public.customers",
            "--key",
            key,
            "--identity",
            id,
        ])
    };
    erase("id=5");
    let ledger = object_of(&w.env, A, "erasures.json");
    let one_entry = w.env.read_object(&ledger);
    erase("id=6");
    // The older ledger (id=6 not in it) would bring person 6 back.
    w.env.write_object(&ledger, one_entry);
    refused(
        &w,
        &restore_args(&w, A, "latest"),
        "restore with a rolled-back ledger",
    );
    // A deleted ledger would bring both back.
    w.env.delete_object(&ledger);
    refused(
        &w,
        &restore_args(&w, A, "latest"),
        "restore with the ledger deleted",
    );
    other_tenant_intact(&w);
}

fn swapped_data_recipient_and_hold(backend: Backend, name: &str) {
    let w = world(backend, name);
    // A data recipient swapped in the store is never encrypted to: backups use the vault's own
    // record, and what they wrote restores with the tenant's real key.
    let record = object_of(&w.env, A, "tenant.json");
    let stranger = w.env.keygen("stranger.txt");
    let text = String::from_utf8(w.env.read_object(&record)).unwrap();
    let v = store_json(text.as_bytes()).unwrap();
    let ours = v["data_recipient"].as_str().unwrap().to_string();
    w.env.write_object(
        &record,
        text.replace(&ours, &stranger.recipient).into_bytes(),
    );
    let snap = w.env.tv.backup_all();
    let mut c = w.env.db.client();
    let rows = rows_of(&mut c, A);
    mangle(&w.env, A);
    w.env.tv.restore(A, &snap, &w.key, None);
    assert_eq!(
        rows_of(&mut c, A),
        rows,
        "the new snapshot restores with A's own key"
    );
    // A hold released behind the vault's back is not believed.
    w.env.tv.ok(&["hold", "set", A, "--reason", "litigation 7"]);
    let hold = object_of(&w.env, A, "hold.json");
    let held = String::from_utf8(w.env.read_object(&hold)).unwrap();
    w.env.write_object(
        &hold,
        held.replace("litigation 7", "released!!!").into_bytes(),
    );
    let out = w.env.tv.run(&["forget-tenant", A, "--yes"]);
    out.assert_code(3, "forget-tenant with an edited hold");
    assert_eq!(rows_of(&mut c, A), rows);
    other_tenant_intact(&w);
}

conformance! {
    edited_manifest,
    swapped_and_rolled_back_manifests,
    forged_and_swapped_keys,
    ledger_rollback_and_deletion,
    swapped_data_recipient_and_hold,
    key_index_and_snapshot_record,
}

/// A format-1 store (no MACs) is refused with the upgrade step, and `tvault upgrade` seals it.
#[test]
fn format_1_vaults_are_upgraded() {
    let (env, key) = Env::with_tenants("hostile_upgrade", &FIX, &[A, B]);
    let snap = env.tv.backup_all();
    // Turn the store back into format 1: no MAC lines, no key fingerprint, no vault key.
    let store = env.tv.vault.join("store");
    for rel in walk(&store) {
        let p = store.join(&rel);
        if !p.is_file() {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        if let Some(rest) = bytes.strip_prefix(b"tvault-mac-v2 ".as_slice()) {
            let body = &rest[rest.iter().position(|&b| b == b'\n').unwrap() + 1..];
            std::fs::write(&p, body).unwrap();
        }
    }
    let mut d = store_json(&std::fs::read(store.join("vault.json")).unwrap()).unwrap();
    d["format"] = 1.into();
    d.as_object_mut().unwrap().remove("key_fingerprint");
    std::fs::write(store.join("vault.json"), d.to_string()).unwrap();
    std::fs::remove_file(env.tv.vault.join("vault.key")).unwrap();

    let out = env.tv.run(&["snapshots"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("tvault upgrade"), "{}", out.stderr);
    let v = env.tv.json(&["upgrade"]);
    assert!(
        v["recovery_code"].as_str().unwrap().starts_with("tvk1-"),
        "{v}"
    );
    let mut c = env.db.client();
    let rows = rows_of(&mut c, A);
    mangle(&env, A);
    env.tv.restore(A, &snap, &key, None);
    assert_eq!(rows_of(&mut c, A), rows);
    // Sealed now: an edit is caught.
    let record = object_of(&env, A, "tenant.json");
    let text = String::from_utf8(env.read_object(&record)).unwrap();
    assert!(text.starts_with("tvault-mac-v2 "), "{text}");
    let (line, body) = text.split_at(text.find('\n').unwrap() + 1);
    let mut v: Value = serde_json::from_str(body).unwrap();
    v["escrow"] = true.into();
    env.write_object(&record, format!("{line}{v}").into_bytes());
    env.tv
        .run(&["inventory", "rebuild"])
        .assert_code(3, "rebuild with an edited tenant record");
}

/// Stores of format 2 and 3 are refused with the upgrade step; `tvault upgrade` only rewrites
/// their descriptor (with the vault's own key: a state directory with another key is refused),
/// and their archives, whose manifests are plain JSON, restore as they are.
#[test]
fn format_2_and_3_vaults_are_upgraded_in_place() {
    let (env, key) = Env::with_tenants("hostile_upgrade2", &FIX, &[A, B]);
    let snap = env.tv.backup_all();
    let store = env.tv.vault.join("store");
    let vault_key = env.tv.vault.join("vault.key");
    let code = std::fs::read(&vault_key).unwrap();

    // Manifests as stores before format 4 held them: the JSON itself after the MAC line.
    let sealer =
        vault_core::archive::auth::VaultKey::from_code(std::str::from_utf8(&code).unwrap())
            .unwrap();
    let manifests: Vec<String> = env
        .objects()
        .into_keys()
        .filter(|k| k.contains("/manifests/") && k.ends_with(".json"))
        .collect();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    for m in &manifests {
        let (_, json) = manifest_json(&env.read_object(m));
        assert!(json.starts_with(b"{"));
        env.write_object(m, sealer.seal(m, &json).0);
    }

    for old in [3, 2] {
        let mut d = store_json(&std::fs::read(store.join("vault.json")).unwrap()).unwrap();
        d["format"] = old.into();
        std::fs::write(store.join("vault.json"), d.to_string()).unwrap();
        let out = env.tv.run(&["snapshots"]);
        assert_ne!(out.code, 0, "format {old}");
        assert!(out.stderr.contains("tvault upgrade"), "{}", out.stderr);
    }
    std::fs::write(&vault_key, format!("tvk1-{}", "ab".repeat(32))).unwrap();
    let out = env.tv.run(&["upgrade"]);
    assert_ne!(out.code, 0, "upgrade with another vault key");
    assert!(out.stderr.contains("fingerprint"), "{}", out.stderr);
    std::fs::write(&vault_key, &code).unwrap();
    env.tv.json(&["upgrade"]);
    let d = store_json(&std::fs::read(store.join("vault.json")).unwrap()).unwrap();
    assert_eq!(d["format"], 4, "{d}");
    // The inventory remembers the compressed versions this vault wrote; a rebuild accepts the
    // store's authentic ones, as after restoring an older store.
    env.tv.json(&["inventory", "rebuild"]);

    let mut c = env.db.client();
    let (rows_a, rows_b) = (rows_of(&mut c, A), rows_of(&mut c, B));
    mangle(&env, A);
    env.tv.restore(A, &snap, &key, None);
    assert_eq!(rows_of(&mut c, A), rows_a);
    assert_eq!(rows_of(&mut c, B), rows_b);
}

/// The state directory (inventory, wrapped keys, vault key) is the owner's alone, and the vault
/// key never reaches the store.
#[test]
fn state_directory_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (env, _key) = Env::with_tenants("hostile_state", &FIX, &[A]);
    env.tv.backup_all();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.tv.vault), 0o700);
    assert_eq!(mode(&env.tv.vault.join("vault.key")), 0o600);
    let code = std::fs::read_to_string(env.tv.vault.join("vault.key")).unwrap();
    let secret = code.trim().trim_start_matches("tvk1-").to_string();
    for (object, _) in env.objects() {
        let bytes = env.read_object(&object);
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&secret),
            "the vault key is in {object}"
        );
    }
}

/// A key index or a snapshot record changed in the store: the rebuild that reads them refuses.
fn key_index_and_snapshot_record(backend: Backend, name: &str) {
    let w = world(backend, name);
    // The record key sets of a rebuild come from the blocks: an edited pack stops it.
    let pack = w
        .env
        .objects()
        .into_keys()
        .find(|k| k.starts_with(&w.env.tenant_dir(A)) && k.ends_with(".pack"))
        .unwrap();
    let original = w.env.read_object(&pack);
    let mut flipped = original.clone();
    let at = flipped.len() - 3;
    flipped[at] ^= 0x01;
    w.env.write_object(&pack, flipped);
    let id = format!("{A}={}", w.key.identity_str());
    refused(
        &w,
        &["inventory", "rebuild", "--identity", &id],
        "rebuild with an edited pack",
    );
    w.env.write_object(&pack, original);
    w.env.tv.json(&["inventory", "rebuild", "--identity", &id]);
    let record = format!("snapshots/{}.json", w.snaps[0]);
    let text = String::from_utf8(w.env.read_object(&record)).unwrap();
    w.env.write_object(
        &record,
        text.replace("\"tenants\": 2", "\"tenants\": 3")
            .into_bytes(),
    );
    refused(
        &w,
        &["inventory", "rebuild"],
        "rebuild with an edited snapshot record",
    );
}

/// After losing its local state, a vault comes back from the store with the recovery code that
/// `init` showed once: a wrong code is refused, the right one rebuilds, and every tenant restores.
#[test]
fn lost_local_state_comes_back_with_the_recovery_code() {
    let (env, key) = Env::with_tenants_on(
        "hostile_recover",
        &FIX,
        &[A, B],
        Backend::S3(BucketKind::Versioned),
    );
    env.tv.backup_all();
    let code = std::fs::read_to_string(env.tv.vault.join("vault.key")).unwrap();
    let mut other = Tvault::new(env.path("second-state"));
    other.store_url = env.tv.store_url.clone();
    other.envs = env.tv.envs.clone();
    // Without the code, or with another one, the store's vault is not joined.
    let out = other.run(&["init", "--source", &env.db.url]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--vault-key"), "{}", out.stderr);
    let wrong = format!("tvk1-{}", "ab".repeat(32));
    other
        .run(&["init", "--source", &env.db.url, "--vault-key", &wrong])
        .assert_code(3, "init with another vault's key");
    let v = other.json(&["init", "--source", &env.db.url, "--vault-key", code.trim()]);
    assert!(
        v.get("recovery_code").is_none(),
        "a joined vault does not show the code: {v}"
    );
    let id = |t: &str| format!("{t}={}", key.identity_str());
    other.ok(&[
        "inventory",
        "rebuild",
        "--identity",
        &id(A),
        "--identity",
        &id(B),
    ]);
    // The rebuilt state sees every snapshot, every block checks out, and record lookups answer
    // from it; the new state directory keeps an audit trail of its own (docs/AUDIT.md).
    assert_eq!(other.snapshots().len(), 2);
    other.ok(&["verify"]);
    let found = other.json(&["find", A, "--table", "public.customers", "--key", "id=1"]);
    assert_eq!(found[0]["present"], true, "{found}");
    other.backup_all();
    other.ok(&["audit", "verify"]);
}
