//! Property tests over the parsers of untrusted bytes: every object read from the store, and
//! COPY text from the database. Whatever the input, they return an error or a value, never
//! panic, and never allocate what an unchecked length asks for. Bounded (proptest's default
//! case count), so they run with every `cargo test`, in CI too.

use super::auth::VaultKey;
use super::block::{self, IdKey};
use super::keyindex;
use super::manifest::{BlockRef, StoredManifest};
use crate::copytext;
use crate::ledger::Ledger;
use proptest::prelude::*;

fn block_ref(raw_length: u64) -> BlockRef {
    BlockRef {
        id: "00".repeat(24),
        pack: "p".into(),
        offset: 0,
        length: 0,
        raw_length,
        rows: 1,
        sealed_hash: String::new(),
    }
}

const MANIFEST: &str = r#"{"format":1,"snapshot":"20261130T000000Z-000000","tenant":"a","tenant_path":"t0",
"created":"2026-11-30T00:00:00Z","source":{"database":"d","server_version":"15"},"data_recipient":"age1x",
"tables":[{"schema":"s","name":"t","columns":[{"name":"id","type":"bigint"}],"primary_key":["id"],
"owner":{"kind":"column","column":"tenant_id"},"rows":1,"checksum":"00","blocks":[{"id":"aa","pack":"p",
"offset":0,"length":1,"raw_length":1,"rows":1,"sealed_hash":"bb"}]}]}"#;

proptest! {
    #[test]
    fn key_sets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = keyindex::decode_set(&bytes);
        // Well-formed zstd around hostile contents reaches the record parser itself.
        let framed = zstd::bulk::compress(&bytes, 1).unwrap();
        let _ = keyindex::decode_set(&framed);
        let _ = keyindex::parse_index(&bytes);
    }

    #[test]
    fn manifests_and_ledgers_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        at in 0usize..MANIFEST.len(),
        with in any::<u8>(),
    ) {
        let _ = StoredManifest::parse(&bytes);
        let _ = serde_json::from_slice::<Ledger>(&bytes);
        let mut m = MANIFEST.as_bytes().to_vec();
        m[at] = with;
        if let Ok(m) = StoredManifest::parse(&m) {
            let _ = m.resolve(|_| None);
        }
        // Compressed (store format 4), then damaged.
        let mut z = zstd::bulk::compress(MANIFEST.as_bytes(), 3).unwrap();
        let i = at % z.len();
        z[i] = with;
        if let Ok(m) = StoredManifest::parse(&z) {
            let _ = m.resolve(|_| None);
        }
        let _ = block::Checksum::from_manifest(1, &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn macs_reject_anything_not_sealed(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let key = VaultKey::generate();
        prop_assert!(key.open("tenants/t/tenant.json", &bytes).is_err());
        let mut prefixed = super::auth::PREFIX.to_vec();
        prefixed.extend_from_slice(&bytes);
        prop_assert!(key.open("tenants/t/tenant.json", &prefixed).is_err());
    }

    #[test]
    fn blocks_never_panic_nor_trust_their_length(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        raw_length in any::<u64>(),
    ) {
        let (key, id) = (keys::DataKey::generate(), IdKey::generate());
        let r = block::open(&key, &id, &bytes, "s.t", &block_ref(raw_length), "pack");
        prop_assert!(r.is_err());
        // A genuine block whose manifest claims an absurd length is refused before decompressing.
        let sealed = keys::seal(&key.recipient(), &block::compress(b"1\tx\n").unwrap()).unwrap();
        let big = block::open(&key, &id, &sealed, "s.t", &block_ref(block::MAX_BLOCK + 1 + raw_length % 1024), "pack");
        prop_assert!(big.is_err());
    }

    #[test]
    fn sealed_packs_never_panic_nor_trust_their_offsets(
        head in proptest::collection::vec(any::<u8>(), 0..300),
        window in proptest::collection::vec(any::<u8>(), 0..1024),
        (offset, length, total) in (any::<u64>(), any::<u64>(), any::<u64>()),
        flip in any::<usize>(),
    ) {
        let (key, id) = (keys::DataKey::generate(), IdKey::generate());
        let mut b = block_ref(4);
        (b.offset, b.length) = (offset, length % (1 << 20));
        let part = |head: &[u8], window: &[u8], total| block::PackPart {
            head: head.to_vec().into(), window: window.to_vec().into(), total,
        };
        prop_assert!(block::open_in_pack(&key, &id, &part(&head, &window, total), "s.t", &b, "pack").is_err());
        // A genuine pack with one bit flipped, or read at the wrong place, is refused.
        let compressed = block::compress(b"1\tx\n").unwrap();
        let (sealed, pref) = block::seal_pack(&key.recipient(), "p", [&compressed]).unwrap();
        let (h, w) = sealed.split_at(pref.start as usize);
        let mut w = w.to_vec();
        let at = flip % w.len();
        w[at] ^= 1;
        (b.length, b.offset, b.raw_length) = (compressed.len() as u64, 0, 4);
        b.id = id.block_id("s.t", b"1\tx\n");
        let genuine = part(h, &sealed[pref.start as usize..], pref.length);
        prop_assert_eq!(block::open_in_pack(&key, &id, &genuine, "s.t", &b, "pack").unwrap(), b"1\tx\n");
        prop_assert!(block::open_in_pack(&key, &id, &part(h, &w, pref.length), "s.t", &b, "pack").is_err());
        b.offset = 1 + offset % 64;
        prop_assert!(block::open_in_pack(&key, &id, &part(h, &sealed[pref.start as usize..], pref.length), "s.t", &b, "pack").is_err());
    }

    #[test]
    fn copy_text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for f in copytext::fields(&bytes) {
            let _ = copytext::unescape(f);
            let _ = copytext::display(f);
        }
        let mut out = vec![];
        copytext::pick(&bytes, &[3, 0, 1], &mut out);
        let _ = copytext::split_first(&bytes);
        let _ = block::rows(&bytes).count();
    }
}
