//! Tenant public keys: the recipients a data key is wrapped to.

use std::fmt;
use std::str::FromStr;

use age::{ssh, x25519};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{truncate_input, Error, Result};

#[derive(Clone)]
enum Inner {
    X25519(x25519::Recipient),
    Ssh(ssh::Recipient),
}

/// A tenant's public key: an X25519 `age1...` recipient or an `ssh-ed25519` / `ssh-rsa`
/// OpenSSH public key.
///
/// The string form is canonical (as age prints it): SSH comments such as `user@host`
/// are dropped, so the same key always compares equal however it was pasted.
#[derive(Clone)]
pub struct TenantRecipient {
    inner: Inner,
    canonical: String,
}

impl TenantRecipient {
    /// Parses a recipient string. Surrounding whitespace is ignored.
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.trim();
        let invalid = |reason: String| Error::InvalidRecipient {
            input: truncate_input(s),
            reason,
        };

        // Someone pasting a private key where a public key belongs must not end up with
        // that secret in an error message (and from there in logs).
        if looks_secret(s) {
            return Err(Error::InvalidRecipient {
                input: "<redacted>".into(),
                reason: "this is a private key; give the public key (age1... or ssh-...)".into(),
            });
        }
        if s.is_empty() {
            return Err(invalid("empty recipient".into()));
        }

        if s.starts_with("age1") {
            // Bech32's separator is the last '1'; native X25519 keys have HRP "age", so
            // any other position means a plugin or post-quantum recipient.
            if s.rfind('1') != Some(3) {
                return Err(invalid(
                    "only native X25519 age recipients are supported, not plugin/other types"
                        .into(),
                ));
            }
            return s
                .parse::<x25519::Recipient>()
                .map(Self::from_x25519)
                .map_err(|e| invalid(format!("not a valid X25519 age recipient ({e})")));
        }

        if s.contains(' ') {
            return match s.parse::<ssh::Recipient>() {
                Ok(r) => Ok(Self::from_ssh(r)),
                Err(e) => Err(invalid(ssh_reason(e))),
            };
        }

        Err(invalid(
            "unrecognised key; expected age1..., ssh-ed25519 ... or ssh-rsa ...".into(),
        ))
    }

    pub(crate) fn from_x25519(r: x25519::Recipient) -> Self {
        TenantRecipient {
            canonical: r.to_string(),
            inner: Inner::X25519(r),
        }
    }

    pub(crate) fn from_ssh(r: ssh::Recipient) -> Self {
        TenantRecipient {
            canonical: r.to_string(),
            inner: Inner::Ssh(r),
        }
    }

    /// The canonical public key string.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// `"x25519"`, `"ssh-ed25519"` or `"ssh-rsa"`.
    pub fn kind(&self) -> &'static str {
        match &self.inner {
            Inner::X25519(_) => "x25519",
            Inner::Ssh(ssh::Recipient::SshEd25519(..)) => "ssh-ed25519",
            Inner::Ssh(ssh::Recipient::SshRsa(..)) => "ssh-rsa",
        }
    }

    pub(crate) fn as_age(&self) -> &dyn age::Recipient {
        match &self.inner {
            Inner::X25519(r) => r,
            Inner::Ssh(r) => r,
        }
    }
}

fn ssh_reason(e: ssh::ParseRecipientKeyError) -> String {
    use ssh::ParseRecipientKeyError as P;
    match e {
        P::Unsupported(kind) => {
            format!("unsupported SSH key type {kind:?}; use ssh-ed25519 or ssh-rsa")
        }
        P::RsaModulusTooSmall => "ssh-rsa key is smaller than 2048 bits".into(),
        P::RsaModulusTooLarge => "ssh-rsa key is larger than supported".into(),
        P::Invalid(why) => why.into(),
        _ => "not a valid SSH public key".into(),
    }
}

/// Case-insensitive check for private-key markers, without copying the input.
pub(crate) fn looks_secret(s: &str) -> bool {
    const MARKERS: [&[u8]; 3] = [b"AGE-SECRET-KEY-", b"AGE-PLUGIN-", b"PRIVATE KEY"];
    MARKERS.iter().any(|m| {
        s.as_bytes()
            .windows(m.len())
            .any(|w| w.eq_ignore_ascii_case(m))
    })
}

impl FromStr for TenantRecipient {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl PartialEq for TenantRecipient {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}
impl Eq for TenantRecipient {}

impl std::hash::Hash for TenantRecipient {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.canonical.hash(state)
    }
}

impl fmt::Display for TenantRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl fmt::Debug for TenantRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantRecipient({})", self.canonical)
    }
}

impl Serialize for TenantRecipient {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical)
    }
}

impl<'de> Deserialize<'de> for TenantRecipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}
