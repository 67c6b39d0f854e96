//! End-to-end tests of the public API. Each test asserts a specific outcome, so a
//! regression in error classification or key handling fails loudly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use keys::{
    generate_identity_file, open, seal, unwrap, wrap, DataKey, DataRecipient, Error,
    TenantIdentities, TenantRecipient,
};

// ---------- helpers ----------

/// Temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "keys-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Generates an OpenSSH key with `ssh-keygen`; returns (private key path, public key line).
/// Fails (does not skip) when ssh-keygen is missing, so SSH support is never silently untested.
fn ssh_keygen(dir: &Path, kind: &str, passphrase: &str) -> (PathBuf, String) {
    let path = dir.join(format!("id_{kind}"));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        "tenant@test",
        "-f",
    ])
    .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    let status = cmd
        .status()
        .expect("ssh-keygen must be installed on PATH to test SSH recipients");
    assert!(status.success(), "ssh-keygen failed: {status}");
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

fn x25519_tenant() -> (TenantIdentities, TenantRecipient) {
    let (secret, public) = generate_identity_file();
    (TenantIdentities::from_str_secret(&secret).unwrap(), public)
}

/// Index of the first payload byte: after the "--- MAC" line and the 16-byte nonce.
fn payload_start(age_file: &[u8]) -> usize {
    let mac = age_file
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("age header footer");
    let eol = mac
        + 1
        + age_file[mac + 1..]
            .iter()
            .position(|&b| b == b'\n')
            .unwrap();
    eol + 1 + 16
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Asserts that `key` is the same data key as `expected` (same public half, and it opens
/// a block sealed to `expected`).
fn assert_same_key(key: &DataKey, expected: &DataRecipient) {
    assert_eq!(&key.recipient(), expected);
    let block = seal(expected, b"probe").unwrap();
    assert_eq!(open(key, &block).unwrap(), b"probe");
}

// ---------- wrap / unwrap ----------

#[test]
fn wrap_unwrap_x25519() {
    let (ids, public) = x25519_tenant();
    assert_eq!(public.kind(), "x25519");
    assert!(public.as_str().starts_with("age1"));
    let key = DataKey::generate();
    let wrapped = wrap(&key, std::slice::from_ref(&public)).unwrap();
    assert!(wrapped.starts_with(b"age-encryption.org/v1\n"));
    assert_same_key(&unwrap(&wrapped, &ids).unwrap(), &key.recipient());
    assert_eq!(ids.recipients(), vec![public]);
}

#[test]
fn wrap_unwrap_ssh_ed25519() {
    let dir = TempDir::new();
    let (private, public_line) = ssh_keygen(&dir.0, "ed25519", "");
    let public = TenantRecipient::parse(&public_line).unwrap();
    assert_eq!(public.kind(), "ssh-ed25519");
    // Canonical form drops the comment.
    assert!(public_line.starts_with(public.as_str()));
    assert!(!public.as_str().contains("tenant@test"));

    let ids = TenantIdentities::from_file(&private).unwrap();
    assert_eq!(ids.recipients(), vec![public.clone()]);
    let key = DataKey::generate();
    let wrapped = wrap(&key, &[public]).unwrap();
    assert_same_key(&unwrap(&wrapped, &ids).unwrap(), &key.recipient());
}

#[test]
fn wrap_unwrap_ssh_rsa() {
    let dir = TempDir::new();
    let (private, public_line) = ssh_keygen(&dir.0, "rsa", "");
    let public: TenantRecipient = public_line.parse().unwrap();
    assert_eq!(public.kind(), "ssh-rsa");
    let ids = TenantIdentities::from_file(&private).unwrap();
    let key = DataKey::generate();
    let wrapped = wrap(&key, &[public]).unwrap();
    assert_same_key(&unwrap(&wrapped, &ids).unwrap(), &key.recipient());
}

#[test]
fn multiple_recipients_each_unwraps() {
    let dir = TempDir::new();
    let (ssh_private, ssh_public) = ssh_keygen(&dir.0, "ed25519", "");
    let (a_ids, a_pub) = x25519_tenant();
    let (escrow_ids, escrow_pub) = x25519_tenant();
    let ssh_pub = TenantRecipient::parse(&ssh_public).unwrap();
    let ssh_ids = TenantIdentities::from_file(&ssh_private).unwrap();

    let key = DataKey::generate();
    let wrapped = wrap(&key, &[a_pub, ssh_pub, escrow_pub]).unwrap();
    for ids in [&a_ids, &ssh_ids, &escrow_ids] {
        assert_same_key(&unwrap(&wrapped, ids).unwrap(), &key.recipient());
    }
}

#[test]
fn identity_file_with_several_keys_and_comments() {
    let (wrong_secret, _) = generate_identity_file();
    let (right_secret, right_pub) = generate_identity_file();
    let text = format!("# two keys\n\n{}\r\n{}", &*wrong_secret, &*right_secret);
    let ids = TenantIdentities::from_str_secret(&text).unwrap();
    assert_eq!(ids.len(), 2);

    let key = DataKey::generate();
    let wrapped = wrap(&key, &[right_pub]).unwrap();
    assert_same_key(&unwrap(&wrapped, &ids).unwrap(), &key.recipient());
}

#[test]
fn wrong_identity_is_wrong_key() {
    let (_, public) = x25519_tenant();
    let (other_ids, _) = x25519_tenant();
    let wrapped = wrap(&DataKey::generate(), &[public]).unwrap();
    assert!(matches!(unwrap(&wrapped, &other_ids), Err(Error::WrongKey)));

    // An SSH identity against an x25519-wrapped key is also just the wrong key.
    let dir = TempDir::new();
    let (ssh_private, _) = ssh_keygen(&dir.0, "ed25519", "");
    let ssh_ids = TenantIdentities::from_file(&ssh_private).unwrap();
    assert!(matches!(unwrap(&wrapped, &ssh_ids), Err(Error::WrongKey)));
}

#[test]
fn no_recipients() {
    assert!(matches!(
        wrap(&DataKey::generate(), &[]),
        Err(Error::NoRecipients)
    ));
}

#[test]
fn rotation() {
    let (a_ids, a_pub) = x25519_tenant();
    let (b_ids, b_pub) = x25519_tenant();
    let key = DataKey::generate();
    let data_recipient = key.recipient();
    let block = seal(&data_recipient, b"old backup").unwrap();
    let wrapped_a = wrap(&key, &[a_pub]).unwrap();
    drop(key);

    let unwrapped = unwrap(&wrapped_a, &a_ids).unwrap();
    let wrapped_b = wrap(&unwrapped, &[b_pub]).unwrap();
    drop(unwrapped);

    let via_b = unwrap(&wrapped_b, &b_ids).unwrap();
    assert_eq!(via_b.recipient(), data_recipient);
    // Existing blocks open without re-encryption.
    assert_eq!(open(&via_b, &block).unwrap(), b"old backup");
    assert!(matches!(unwrap(&wrapped_b, &a_ids), Err(Error::WrongKey)));
}

// ---------- corruption ----------

#[test]
fn flipped_payload_byte_is_corrupt() {
    let (ids, public) = x25519_tenant();
    let wrapped = wrap(&DataKey::generate(), &[public]).unwrap();
    let start = payload_start(&wrapped);
    for i in [start, wrapped.len() - 1] {
        let mut bad = wrapped.clone();
        bad[i] ^= 0x01;
        assert!(
            matches!(unwrap(&bad, &ids), Err(Error::Corrupt { .. })),
            "flip at {i}"
        );
    }

    let key = DataKey::generate();
    let block = seal(&key.recipient(), &pseudo_random(200_000)).unwrap();
    for i in [payload_start(&block) + 10, block.len() / 2, block.len() - 1] {
        let mut bad = block.clone();
        bad[i] ^= 0x80;
        assert!(
            matches!(open(&key, &bad), Err(Error::Corrupt { .. })),
            "flip at {i}"
        );
    }
}

#[test]
fn tampered_header_mac_is_corrupt() {
    let key = DataKey::generate();
    let block = seal(&key.recipient(), b"data").unwrap();
    let mac_pos = block.windows(4).position(|w| w == b"--- ").unwrap() + 4;
    let mut bad = block.clone();
    // Swap one base64 MAC character for another valid one.
    bad[mac_pos] = if bad[mac_pos] == b'A' { b'B' } else { b'A' };
    assert!(matches!(open(&key, &bad), Err(Error::Corrupt { .. })));
}

#[test]
fn truncation_is_corrupt() {
    let (ids, public) = x25519_tenant();
    let wrapped = wrap(&DataKey::generate(), &[public]).unwrap();
    for len in [0, 10, payload_start(&wrapped), wrapped.len() - 1] {
        assert!(
            matches!(unwrap(&wrapped[..len], &ids), Err(Error::Corrupt { .. })),
            "truncated to {len}"
        );
    }

    let key = DataKey::generate();
    let block = seal(&key.recipient(), &pseudo_random(300_000)).unwrap();
    let start = payload_start(&block);
    // Cutting exactly at a 64 KiB chunk boundary must still be detected (STREAM's
    // last-chunk flag), as must cutting mid-chunk or dropping the whole payload.
    let chunk_boundary = start + 2 * (64 * 1024 + 16);
    for len in [start, start + 5, chunk_boundary, block.len() - 1] {
        assert!(
            matches!(open(&key, &block[..len]), Err(Error::Corrupt { .. })),
            "truncated to {len}"
        );
    }
}

#[test]
fn garbage_is_corrupt() {
    let key = DataKey::generate();
    assert!(matches!(
        open(&key, b"not an age file at all\n"),
        Err(Error::Corrupt { .. })
    ));
}

// ---------- seal / open ----------

#[test]
fn seal_open_empty_and_3mb() {
    let key = DataKey::generate();
    let to = key.recipient();
    let empty = seal(&to, b"").unwrap();
    assert_eq!(open(&key, &empty).unwrap(), b"");

    let big = pseudo_random(3 * 1024 * 1024);
    let sealed = seal(&to, &big).unwrap();
    assert!(sealed.len() > big.len());
    assert_ne!(&sealed[sealed.len() - 1000..], &big[big.len() - 1000..]);
    assert!(open(&key, &sealed).unwrap() == big);
}

#[test]
fn open_with_other_data_key_is_wrong_key() {
    let a = DataKey::generate();
    let b = DataKey::generate();
    let block = seal(&a.recipient(), b"tenant a").unwrap();
    assert!(matches!(open(&b, &block), Err(Error::WrongKey)));
}

// ---------- identities ----------

#[test]
fn keygen_file_layout() {
    let (secret, public) = generate_identity_file();
    let lines: Vec<&str> = secret.lines().collect();
    assert_eq!(lines.len(), 3, "{}", lines.len());
    assert!(lines[0].starts_with("# created: "));
    assert_eq!(lines[1], format!("# public key: {}", public.as_str()));
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
}

#[test]
fn identity_file_from_disk() {
    let dir = TempDir::new();
    let (secret, public) = generate_identity_file();
    let path = dir.0.join("tenant.key");
    std::fs::write(&path, secret.as_bytes()).unwrap();
    let ids = TenantIdentities::from_file(&path).unwrap();
    assert_eq!(ids.recipients(), vec![public]);
    assert!(matches!(
        TenantIdentities::from_file(&dir.0.join("missing")),
        Err(Error::Io(_))
    ));
}

#[test]
fn encrypted_ssh_key_is_rejected_clearly() {
    let dir = TempDir::new();
    let (private, _) = ssh_keygen(&dir.0, "ed25519", "hunter22");
    match TenantIdentities::from_file(&private) {
        Err(Error::InvalidIdentity { reason }) => {
            assert!(reason.contains("passphrase"), "{reason}")
        }
        other => panic!("expected InvalidIdentity, got {other:?}"),
    }
}

#[test]
fn bad_identity_text_never_echoes_secret() {
    let (secret, public) = generate_identity_file();
    let key_line = secret.lines().last().unwrap().to_string();
    // Damaged key: change the last character.
    let mut damaged = key_line.clone();
    let last = damaged.pop().unwrap();
    damaged.push(if last == 'Q' { 'P' } else { 'Q' });
    let cases = [
        format!("{damaged}\n"),
        format!("{key_line}\nsomething else {key_line}\n"),
        String::new(),
        "# only comments\n".to_string(),
        format!("{}\n", public.as_str()),
        "-----BEGIN AGE ENCRYPTED FILE-----\nxyz\n".to_string(),
        "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n"
            .to_string(),
    ];
    for text in &cases {
        match TenantIdentities::from_str_secret(text) {
            Err(e @ Error::InvalidIdentity { .. }) => {
                let msg = format!("{e} {e:?}");
                assert!(!msg.contains(&key_line[20..]), "leaked: {msg}");
                assert!(!msg.contains(&damaged[20..]), "leaked: {msg}");
            }
            Err(other) => panic!("expected InvalidIdentity, got {other:?}"),
            Ok(ids) => panic!("accepted bad identity text: {ids:?}"),
        }
    }
}

#[test]
fn debug_output_is_redacted() {
    let (secret, _) = generate_identity_file();
    let ids = TenantIdentities::from_str_secret(&secret).unwrap();
    let dbg = format!("{ids:?}");
    assert_eq!(dbg, "TenantIdentities(1 keys)");

    let key = DataKey::generate();
    let dbg = format!("{key:?} {key:#?}");
    assert!(!dbg.to_uppercase().contains("AGE-SECRET-KEY"), "{dbg}");
    assert!(dbg.contains(key.recipient().as_str()), "{dbg}");
}

// ---------- recipients ----------

#[test]
fn invalid_recipients() {
    let long = format!("age1{}", "q".repeat(500));
    let cases = [
        "",
        "   ",
        "age1notvalid",
        "age1yubikey1qwerty",
        "hello",
        "ssh-ed25519 AAAAnotbase64!!",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHFliOyIZs1gxGF3fmDxFykQhE88wy6AKDGFBfn0R6ZuvRmENABZQa9+pj9hMki+LX0qDJbmHTiWDbYv/cmFt/Q=",
        &long,
    ];
    for s in cases {
        match TenantRecipient::parse(s) {
            Err(Error::InvalidRecipient { input, reason }) => {
                assert!(input.chars().count() <= 80, "{input}");
                assert!(!reason.is_empty());
            }
            other => panic!("{s:?}: expected InvalidRecipient, got {other:?}"),
        }
    }
    assert!(matches!(
        DataRecipient::parse("age1nope"),
        Err(Error::InvalidRecipient { .. })
    ));
}

#[test]
fn secret_pasted_as_recipient_is_redacted() {
    let (secret, _) = generate_identity_file();
    let key_line = secret.lines().last().unwrap();
    for s in [key_line.to_string(), key_line.to_lowercase()] {
        let err = TenantRecipient::parse(&s).unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains(&key_line[16..40]), "{msg}");
        assert!(!msg.contains(&key_line.to_lowercase()[16..40]), "{msg}");
    }
}

#[test]
fn recipient_string_forms_and_serde() {
    let (_, public) = generate_identity_file();
    let padded = format!("  {}\n", public.as_str());
    assert_eq!(TenantRecipient::parse(&padded).unwrap(), public);
    assert_eq!(public.to_string(), public.as_str());
    assert!(format!("{public:?}").contains(public.as_str()));

    let json = serde_json::to_string(&public).unwrap();
    assert_eq!(json, format!("\"{}\"", public.as_str()));
    let back: TenantRecipient = serde_json::from_str(&json).unwrap();
    assert_eq!(back, public);
    assert!(serde_json::from_str::<TenantRecipient>("\"age1bogus\"").is_err());

    let dr = DataKey::generate().recipient();
    let json = serde_json::to_string(&dr).unwrap();
    assert_eq!(json, format!("\"{}\"", dr.as_str()));
    let back: DataRecipient = serde_json::from_str(&json).unwrap();
    assert_eq!(back, dr);
    assert_eq!(dr.as_str().parse::<DataRecipient>().unwrap(), dr);
    assert!(format!("{dr:?}").contains(dr.as_str()));
}
