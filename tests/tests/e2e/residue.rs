//! No residue after erasure and forgetting: a marker value in an erased record is found nowhere
//! afterwards, neither in the store (every pack of the tenant opened with its keys, as docs/
//! FORMAT.md says), nor in the state directory, nor in the old pack files themselves (a reader
//! that held one open sees zeros: the bytes were overwritten in place, not left in a deleted
//! inode), and no temporary file is left behind.

use std::io::Read;
use std::str::FromStr;
use tests::*;

pub const MARKER: &str = "Residue-Marker-59021-grace@example.org";

pub const SCHEMA: &str = "
CREATE TABLE people (tenant_id text NOT NULL, id int NOT NULL UNIQUE, email text PRIMARY KEY, note text);
INSERT INTO people SELECT 'acme', i, 'person' || i || '@example.org', repeat('n', i % 50)
FROM generate_series(1, 400) i;
UPDATE people SET email = 'Residue-Marker-59021-grace@example.org' WHERE id = 77;
INSERT INTO people VALUES ('globex', 1000, 'g@example.org', 'globex');
";

/// The tenant's data key (an age identity), unwrapped with its identity file.
pub fn data_key(env: &Env, tenant: &str, key: &Key) -> age::x25519::Identity {
    let text = std::fs::read_to_string(&key.identity).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let id = age::x25519::Identity::from_str(line).unwrap();
    let wrapped = env.read_object(&format!("{}keys/data-key.age", env.tenant_dir(tenant)));
    let secret = open(&wrapped, &id).expect("the tenant's identity opens its data key");
    age::x25519::Identity::from_str(String::from_utf8(secret).unwrap().trim()).unwrap()
}

pub fn open(ciphertext: &[u8], id: &age::x25519::Identity) -> Option<Vec<u8>> {
    let d = age::Decryptor::new(ciphertext).ok()?;
    let mut r = d.decrypt(std::iter::once(id as &dyn age::Identity)).ok()?;
    let mut out = vec![];
    r.read_to_end(&mut out).ok()?;
    Some(out)
}

/// Every zstd frame in a pack's plaintext, decompressed (erased ranges are zeros, no frame).
pub fn frames(plain: &[u8]) -> Vec<u8> {
    const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    let mut out = vec![];
    let mut at = 0;
    while at + 4 <= plain.len() {
        if plain[at..at + 4] == MAGIC {
            let mut d = zstd::stream::Decoder::new(&plain[at..])
                .unwrap()
                .single_frame();
            let mut block = vec![];
            if d.read_to_end(&mut block).is_ok() {
                out.extend(block);
            }
        }
        at += 1;
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every file under `dir`, with the temporary and leftover ones named.
fn check_no_marker_and_no_temp(dir: &std::path::Path) {
    for f in walk(dir) {
        let path = dir.join(&f);
        let name = f.to_string_lossy();
        assert!(
            !name.contains('#')
                && !name.ends_with(".tmp")
                && !name.contains(".compacting")
                && !name.contains(".retired"),
            "a temporary file was left: {name}"
        );
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !contains(&bytes, MARKER),
                "{} holds the marker",
                path.display()
            );
        }
    }
}

#[test]
fn an_erased_record_leaves_nothing_in_the_store_the_state_or_the_old_files() {
    let env = Env::new("residue", &[]);
    env.db.exec(SCHEMA);
    env.tv.init(&env.db.url, &[]);
    let key = env.keygen("key.txt");
    for t in ["acme", "globex"] {
        env.tv.tenant_add(t, &key);
    }
    env.tv.backup_all();
    let store = env.tv.vault.join("store");
    let dk = data_key(&env, "acme", &key);
    let packs = |env: &Env| -> Vec<String> {
        env.objects()
            .into_keys()
            .filter(|k| k.starts_with(&env.tenant_dir("acme")) && k.ends_with(".pack"))
            .collect()
    };
    let before: Vec<(String, std::fs::File)> = packs(&env)
        .into_iter()
        .map(|p| {
            let f = std::fs::File::open(store.join(&p)).unwrap();
            (p, f)
        })
        .collect();
    // The marker is there to be found: the check below can fail.
    let found: Vec<u8> = before
        .iter()
        .flat_map(|(p, _)| frames(&open(&env.read_object(p), &dk).unwrap()))
        .collect();
    assert!(
        contains(&found, MARKER),
        "the fixture's marker is not in the packs"
    );

    env.tv.ok(&[
        "erase",
        "acme",
        "--table",
        "public.people",
        "--key",
        &format!("email={MARKER}"),
        "--identity",
        key.identity_str(),
    ]);
    // Every pack of the tenant, opened with its keys: the record is gone.
    for p in packs(&env) {
        let plain = open(&env.read_object(&p), &dk).expect("a pack opens");
        assert!(
            !contains(&frames(&plain), MARKER),
            "{p} still holds the record"
        );
    }
    // The old files, as a reader that held them open sees them: zeros, or without the record.
    for (p, mut f) in before {
        let mut bytes = vec![];
        f.read_to_end(&mut bytes).unwrap();
        if bytes.iter().all(|b| *b == 0) {
            continue;
        }
        let plain = open(&bytes, &dk).expect("an old pack still readable opens");
        assert!(
            !contains(&frames(&plain), MARKER),
            "the old bytes of {p} still hold the erased record"
        );
    }
    check_no_marker_and_no_temp(&env.tv.vault);
    // Everything else restores; the erased person, still live here, is not brought back (the
    // snapshot no longer has them, so the restore removes them).
    env.tv.restore("acme", "latest", &key, None);
    assert_eq!(env.db.count("FROM people WHERE tenant_id = 'acme'"), 399);
    assert_eq!(env.db.count("FROM people WHERE id = 77"), 0);

    // Forgetting the tenant: nothing of it stays, in the store or the state directory.
    env.tv.ok(&["forget-tenant", "acme", "--yes"]);
    let dir = env.tenant_dir("globex");
    assert!(
        env.objects()
            .keys()
            .all(|k| !k.starts_with("tenants/") || k.starts_with(&dir)),
        "objects of the forgotten tenant remain: {:?}",
        env.objects().keys().collect::<Vec<_>>()
    );
    check_no_marker_and_no_temp(&env.tv.vault);
    let state = serde_json::to_string(&env.tv.json(&["snapshots"])).unwrap();
    assert!(!state.contains("acme"), "{state}");
}
