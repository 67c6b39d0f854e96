//! Tenant private keys (used only at restore / key rotation) and `tvault keygen`.

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use age::secrecy::ExposeSecret;
use age::{ssh, x25519};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::recipient::TenantRecipient;

enum Id {
    X25519(x25519::Identity),
    Ssh(ssh::Identity),
}

/// One or more tenant private keys, loaded from an age identity file or an unencrypted
/// OpenSSH private key.
///
/// There is no `Display`, and `Debug` prints only the number of keys.
pub struct TenantIdentities {
    ids: Vec<Id>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidIdentity {
        reason: reason.into(),
    }
}

impl TenantIdentities {
    /// Reads an identity file. The file contents are zeroized after parsing.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = Zeroizing::new(std::fs::read(path)?);
        let text =
            std::str::from_utf8(&bytes).map_err(|_| invalid("identity file is not UTF-8 text"))?;
        Self::from_str_secret(text)
    }

    /// Parses identity file text: either `AGE-SECRET-KEY-1...` lines (blank lines and
    /// `#` comments allowed, several keys allowed) or one OpenSSH/PEM private key.
    ///
    /// Errors cite line numbers, never line contents.
    pub fn from_str_secret(text: &str) -> Result<Self> {
        if let Some(start) = text.find("-----BEGIN ") {
            return parse_pem(&text[start..]);
        }

        let mut ids = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            let lineno = n + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line
                .get(..15)
                .is_some_and(|p| p.eq_ignore_ascii_case("AGE-SECRET-KEY-"))
            {
                let id = line.parse::<x25519::Identity>().map_err(|e| {
                    invalid(format!("line {lineno}: malformed AGE-SECRET-KEY ({e})"))
                })?;
                ids.push(Id::X25519(id));
            } else if line.starts_with("AGE-PLUGIN-") {
                return Err(invalid(format!(
                    "line {lineno}: age plugin identities are not supported"
                )));
            } else if line.starts_with("age1") || line.starts_with("ssh-") {
                return Err(invalid(format!(
                    "line {lineno} is a public key; restore needs the private identity file"
                )));
            } else {
                return Err(invalid(format!("line {lineno} is not an age identity")));
            }
        }
        if ids.is_empty() {
            return Err(invalid("no identities found"));
        }
        Ok(TenantIdentities { ids })
    }

    /// Number of keys loaded (always at least one).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Always `false`: construction fails when no key is found.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Public keys matching these identities, e.g. to confirm a tenant brought the key
    /// that is registered for it.
    pub fn recipients(&self) -> Vec<TenantRecipient> {
        self.ids
            .iter()
            .filter_map(|id| match id {
                Id::X25519(k) => Some(TenantRecipient::from_x25519(k.to_public())),
                Id::Ssh(k) => ssh::Recipient::try_from(k.clone())
                    .ok()
                    .map(TenantRecipient::from_ssh),
            })
            .collect()
    }

    pub(crate) fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.ids.iter().map(|id| -> &dyn age::Identity {
            match id {
                Id::X25519(k) => k,
                Id::Ssh(k) => k,
            }
        })
    }
}

fn parse_pem(pem: &str) -> Result<TenantIdentities> {
    if !(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        || pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"))
    {
        return Err(invalid(
            "unsupported key file; expected an age identity file or an OpenSSH \
             ed25519/rsa private key (passphrase-protected age identities are not supported)",
        ));
    }
    // age's own error strings here are generic ("invalid SSH identity") and safe to show.
    let id = ssh::Identity::from_buffer(pem.as_bytes(), None)
        .map_err(|e| invalid(format!("could not parse SSH private key: {e}")))?;
    use ssh::UnsupportedKey as U;
    // We have no way to prompt for a passphrase (the vault runs unattended), so an
    // encrypted key is rejected up front instead of failing later as "wrong key".
    let passphrase = "the SSH private key is passphrase-protected; tvault cannot prompt for \
                      passphrases, use an unencrypted copy (ssh-keygen -p -N '' -f COPY)";
    match id {
        ssh::Identity::Unencrypted(_) => Ok(TenantIdentities {
            ids: vec![Id::Ssh(id)],
        }),
        ssh::Identity::Encrypted(_) | ssh::Identity::Unsupported(U::EncryptedPem) => {
            Err(invalid(passphrase))
        }
        ssh::Identity::Unsupported(U::EncryptedSsh(cipher)) => Err(invalid(format!(
            "{passphrase} (it is also encrypted with unsupported cipher {cipher})"
        ))),
        ssh::Identity::Unsupported(U::Hardware(kind)) => Err(invalid(format!(
            "hardware-backed SSH key type {kind} is not supported"
        ))),
        ssh::Identity::Unsupported(U::Type(kind)) => Err(invalid(format!(
            "unsupported SSH key type {kind}; use ed25519 or rsa"
        ))),
    }
}

impl fmt::Debug for TenantIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantIdentities({} keys)", self.ids.len())
    }
}

/// Generates a new tenant X25519 identity for `tvault keygen`.
///
/// Returns the identity file text in `age-keygen` layout (`# created:` and
/// `# public key:` comments, then the `AGE-SECRET-KEY-1...` line) and the public
/// recipient. The text is zeroized when dropped.
pub fn generate_identity_file() -> (Zeroizing<String>, TenantRecipient) {
    let id = x25519::Identity::generate();
    let public = TenantRecipient::from_x25519(id.to_public());
    let secret = id.to_string();
    // Reserve enough up front that the String never reallocates: a reallocation would
    // leave an un-zeroized copy of the secret in freed memory.
    let mut text = Zeroizing::new(String::with_capacity(256));
    text.push_str("# created: ");
    text.push_str(&utc_now_rfc3339());
    text.push_str("\n# public key: ");
    text.push_str(public.as_str());
    text.push('\n');
    text.push_str(secret.expose_secret());
    text.push('\n');
    (text, public)
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SSZ`, without pulling in a date crate.
fn utc_now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, valid for all dates after 1970.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn timestamp_format() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(format_utc(1_735_689_600), "2025-01-01T00:00:00Z");
    }
}
