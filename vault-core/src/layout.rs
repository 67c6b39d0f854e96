//! Object names in the store (see `docs/FORMAT.md`, "Object layout").
//!
//! Raw tenant ids never appear in object names: each tenant lives under a directory named by a
//! keyed hash of its id (keyed with the vault's salt), so hostile ids (`../`, quotes, unicode) cannot
//! reach a path and a bucket listing reveals no tenant names.

pub use object_store::path::Path;
use rand::RngExt;

/// The vault's root descriptor.
pub fn vault_descriptor() -> Path {
    Path::from("vault.json")
}

/// Commit record of a snapshot (a backup cycle); written last, it makes the snapshot visible.
pub fn snapshot_record(snapshot: &str) -> Path {
    Path::from(format!("snapshots/{snapshot}.json"))
}

pub fn snapshots_prefix() -> Path {
    Path::from("snapshots")
}

pub fn tenants_prefix() -> Path {
    Path::from("tenants")
}

/// Directory of one tenant.
pub fn tenant_dir(tenant_path: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}"))
}

pub fn tenant_record(tenant_path: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/tenant.json"))
}

/// The tenant's data key, wrapped to its recipients. Never placed under object lock.
pub fn wrapped_data_key(tenant_path: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/keys/data-key.age"))
}

/// An earlier data key of the tenant (generation 0 is the first), wrapped to its current
/// recipients, for the snapshots sealed to it. Never placed under object lock.
pub fn former_data_key(tenant_path: &str, generation: usize) -> Path {
    Path::from(format!(
        "tenants/{tenant_path}/keys/data-key-g{generation}.age"
    ))
}

/// The tenant's id/checksum key, sealed to the tenant's data key.
pub fn sealed_id_key(tenant_path: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/keys/id-key.age"))
}

/// The tenant's retention policy (absent: the operator's default applies).
pub fn policy(tenant_path: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/policy.json"))
}

/// The tenant's legal hold (absent: none).
pub fn hold(tenant_path: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/hold.json"))
}

/// The tenant's erasure ledger: keyed hashes of erased records, applied by every later backup,
/// restore and record restore.
pub fn erasures(tenant_path: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/erasures.json"))
}

pub fn packs_prefix(tenant_path: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/packs"))
}

pub fn pack(tenant_path: &str, pack: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/packs/{pack}.pack"))
}

pub fn manifest(tenant_path: &str, snapshot: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/manifests/{snapshot}.json"))
}

/// True for archive objects (packs, manifests, key indexes): the objects written under object
/// lock. Keys, policies, holds, ledgers and the audit anchor never are.
pub fn is_archive(path: &Path) -> bool {
    let mut parts = path.parts();
    parts.next().is_some_and(|p| p.as_ref() == "tenants")
        && parts
            .nth(1)
            .is_some_and(|p| matches!(p.as_ref(), "packs" | "manifests"))
}

/// True for objects that carry a vault MAC (`archive::auth`): everything a vault reads back and
/// trusts, except packs (their blocks are authenticated on their own), wrapped data keys (plain
/// age files, checked against the tenant's recorded data recipient), table definitions (named by
/// their hash, which the authenticated manifests give), the descriptor, the audit anchors (which
/// have their chain) and the store lease (coordination, not data; its lock file on a local store).
pub fn is_authenticated(path: &Path) -> bool {
    let p = path.as_ref();
    !(p == "vault.json"
        || p.ends_with(".pack")
        || p.starts_with("schemas/")
        || (p.contains("/keys/data-key") && p.ends_with(".age"))
        || crate::audit::is_anchor(path)
        || p == crate::lease::path().as_ref()
        || p == "lease.lock")
}

/// A stored table definition (content-addressed, shared by every manifest that has it).
pub fn table_def(id: &str) -> Path {
    Path::from(format!("schemas/{id}.json"))
}

/// A stored DDL of a tenant's tables (content-addressed like table definitions).
pub fn tenant_ddl(id: &str) -> Path {
    Path::from(format!("schemas/{id}.ddl.json"))
}

/// Table definition ids are 32 lowercase hex digits.
pub fn is_def_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The sealed record-key index of a tenant snapshot.
pub fn key_index(tenant_path: &str, snapshot: &str) -> Path {
    Path::from(format!("tenants/{tenant_path}/manifests/{snapshot}.keys"))
}

/// Directory name of a tenant: hex of a keyed BLAKE3 hash of its id.
pub fn tenant_path(salt: &[u8; 32], tenant: &str) -> String {
    let mut h = blake3::Hasher::new_keyed(salt);
    h.update(b"tenant-vault v1 tenant path\0");
    h.update(tenant.as_bytes());
    format!("t{}", &h.finalize().to_hex()[..32])
}

/// A new snapshot id: UTC time (sortable) plus randomness, e.g. `20261122T010203Z-3fa9c1`.
pub fn new_snapshot_id(now: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now
        .to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default();
    let r: u32 = rand::rng().random();
    format!("{stamp}-{:06x}", r & 0xff_ffff)
}

/// A key epoch (revoking key rotation): sorts after the name of every pack made in or before
/// the current second (their ids end in hex digits; `g` sorts after them) and before every pack
/// of a later second. Packs of the same second made after the rotation sort before it too,
/// which only costs their reuse.
pub fn key_epoch(now: time::OffsetDateTime) -> String {
    let id = new_snapshot_id(now);
    format!("{}-g", &id[..16])
}

/// Snapshot ids are generated by [`new_snapshot_id`]; anything else is refused before it can
/// reach an object path.
pub fn is_snapshot_id(s: &str) -> bool {
    s.len() == 23
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            16 => b == b'-',
            17.. => b.is_ascii_hexdigit(),
            _ => b.is_ascii_digit(),
        })
}

/// Checks that a tenant id is usable: the tenant column holds it as text, so it may contain
/// quotes, slashes or any unicode, but not control characters (which cannot be shown safely).
pub fn validate_tenant_id(tenant: &str) -> crate::Result<()> {
    if tenant.is_empty() {
        return Err(crate::Error::Invalid("tenant id must not be empty".into()));
    }
    if tenant.len() > 1024 {
        return Err(crate::Error::Invalid(format!(
            "tenant id is {} bytes long; at most 1024 are allowed",
            tenant.len()
        )));
    }
    if tenant.chars().any(char::is_control) {
        return Err(crate::Error::Invalid(format!(
            "tenant id {tenant:?} contains control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_paths_hide_hostile_ids() {
        let salt = [7u8; 32];
        for id in ["../../etc", "t'; DROP TABLE x; --", "ünïcødé-租户", "a/b"] {
            let p = tenant_path(&salt, id);
            assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()), "{p}");
            assert_eq!(p.len(), 33);
        }
        assert_ne!(tenant_path(&salt, "a"), tenant_path(&[8u8; 32], "a"));
    }

    #[test]
    fn snapshot_ids_are_recognised() {
        let id = new_snapshot_id(time::OffsetDateTime::now_utc());
        assert!(is_snapshot_id(&id), "{id}");
        let now = time::OffsetDateTime::now_utc();
        let epoch = key_epoch(now);
        for _ in 0..50 {
            let pack = format!("{}-00000", new_snapshot_id(now));
            assert!(pack < epoch, "{pack} must sort before the epoch {epoch}");
        }
        let later = new_snapshot_id(now + time::Duration::seconds(1));
        assert!(later > epoch, "{later} must sort after the epoch {epoch}");
        assert!(!is_snapshot_id("../../etc/passwd-xxxxxx"));
        assert!(validate_tenant_id("").is_err());
        assert!(validate_tenant_id("a\nb").is_err());
        assert!(validate_tenant_id("o'brien & co").is_ok());
    }
}
