//! Authenticated objects (format 2, `docs/FORMAT.md` and `docs/SECURITY.md`).
//!
//! Every object that a restore, record restore, verify, export or rebuild trusts (manifests, key
//! indexes, erasure ledgers, policies, holds, tenant records, sealed id keys, snapshot records,
//! pending markers) starts with one line `tvault-mac-v2 <64 hex>\n`: a keyed BLAKE3 MAC under the
//! vault key of the object's path and body. Someone who can write to the store but does not hold
//! the vault key can neither change such an object, nor move it to another path (another tenant,
//! snapshot or kind), nor forge one. Replaying an older version at the same path is caught by the
//! inventory, which remembers the MAC of the version this vault wrote last.
//!
//! The vault key is the trust anchor: 32 random bytes kept owner-only in the state directory
//! (`vault.key`) and shown once by `init` as a recovery code to keep offline; a rebuild of lost
//! local state asks for it. Pack objects are not MACed: their blocks are authenticated by age and
//! by block ids and sealed hashes listed in the (authenticated) manifest.

use zeroize::Zeroize;

/// The first bytes of an authenticated object.
pub const PREFIX: &[u8] = b"tvault-mac-v2 ";
/// Length of the MAC line: prefix, 64 hex digits, newline.
const LINE: usize = PREFIX.len() + 64 + 1;
/// How a recovery code starts.
const CODE_PREFIX: &str = "tvk1-";

/// The vault key. No `Debug` or `Display`: it never reaches a log.
pub struct VaultKey([u8; 32]);

impl Drop for VaultKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl VaultKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::fill(&mut k);
        VaultKey(k)
    }

    /// The recovery code: `tvk1-` and 64 hex digits.
    pub fn code(&self) -> String {
        format!("{CODE_PREFIX}{}", hex::encode(self.0))
    }

    /// Parses a recovery code (surrounding white space allowed).
    pub fn from_code(code: &str) -> Option<Self> {
        let hex = code.trim().strip_prefix(CODE_PREFIX)?;
        let raw: [u8; 32] = hex::decode(hex).ok()?.try_into().ok()?;
        Some(VaultKey(raw))
    }

    /// A public fingerprint of the key (safe to print, to compare keys).
    pub fn fingerprint(&self) -> String {
        let h = blake3::keyed_hash(&self.0, b"tenant-vault v2 vault key fingerprint");
        h.to_hex()[..16].to_string()
    }

    fn mac(&self, path: &str, body: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(b"tenant-vault v2 object\0");
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(body);
        h.finalize()
    }

    /// The authenticated form of `body` stored at `path`, and its MAC (hex).
    pub fn seal(&self, path: &str, body: &[u8]) -> (Vec<u8>, String) {
        let mac = self.mac(path, body).to_hex().to_string();
        let mut out = Vec::with_capacity(LINE + body.len());
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(mac.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(body);
        (out, mac)
    }

    /// Checks an authenticated object read from `path`; returns its body and MAC (hex), or why
    /// it is not authentic.
    pub fn open<'a>(&self, path: &str, bytes: &'a [u8]) -> Result<(&'a [u8], String), String> {
        if bytes.len() < LINE || !bytes.starts_with(PREFIX) || bytes[LINE - 1] != b'\n' {
            return Err(
                "it carries no vault MAC (written without the vault key, or truncated)".into(),
            );
        }
        let given = &bytes[PREFIX.len()..LINE - 1];
        let body = &bytes[LINE..];
        let want = self.mac(path, body);
        // Constant-time comparison of the MACs (blake3::Hash's equality is constant-time).
        let parsed = std::str::from_utf8(given)
            .ok()
            .and_then(|s| blake3::Hash::from_hex(s).ok());
        match parsed {
            Some(h) if h == want => Ok((body, want.to_hex().to_string())),
            _ => Err(
                "its vault MAC does not match: it was changed, moved from another path, or forged"
                    .into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_bound_to_key_path_and_body() {
        let k = VaultKey::generate();
        let (sealed, mac) = k.seal("tenants/t1/tenant.json", b"{\"a\":1}");
        let (body, again) = k.open("tenants/t1/tenant.json", &sealed).unwrap();
        assert_eq!((body, again), (&b"{\"a\":1}"[..], mac));
        assert!(k.open("tenants/t2/tenant.json", &sealed).is_err(), "moved");
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(
            k.open("tenants/t1/tenant.json", &flipped).is_err(),
            "changed"
        );
        assert!(
            VaultKey::generate()
                .open("tenants/t1/tenant.json", &sealed)
                .is_err(),
            "other key"
        );
        assert!(
            k.open("x", b"{}").is_err() && k.open("x", b"").is_err(),
            "unsealed"
        );
        let code = k.code();
        assert_eq!(
            VaultKey::from_code(&code).unwrap().fingerprint(),
            k.fingerprint()
        );
        assert!(VaultKey::from_code("tvk1-zz").is_none());
    }
}
