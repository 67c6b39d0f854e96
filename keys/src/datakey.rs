//! The per-tenant data key and its public half.

use std::fmt;
use std::str::FromStr;

use age::secrecy::SecretString;
use age::x25519;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{truncate_input, Error, Result};

/// The per-tenant data key: an age X25519 identity that decrypts backup blocks.
///
/// It only exists in memory between `generate`/[`unwrap`](crate::unwrap) and the end
/// of a backup or restore. age keeps the scalar in a `StaticSecret`, which is zeroized
/// on drop. There is deliberately no `Clone`, `Display` or `Serialize`; the `Debug`
/// impl prints only the public recipient.
pub struct DataKey {
    id: x25519::Identity,
}

impl DataKey {
    /// Generates a fresh random data key.
    pub fn generate() -> Self {
        DataKey {
            id: x25519::Identity::generate(),
        }
    }

    /// The public recipient blocks are sealed to.
    pub fn recipient(&self) -> DataRecipient {
        DataRecipient::from_age(self.id.to_public())
    }

    pub(crate) fn identity(&self) -> &x25519::Identity {
        &self.id
    }

    /// The `AGE-SECRET-KEY-1...` encoding, kept inside a zeroizing `SecretString`.
    pub(crate) fn secret_string(&self) -> SecretString {
        self.id.to_string()
    }

    /// Parses the plaintext of a wrapped key. `None` rather than an error message so
    /// nothing about the (secret) input can leak.
    pub(crate) fn from_secret_str(s: &str) -> Option<Self> {
        s.trim()
            .parse::<x25519::Identity>()
            .ok()
            .map(|id| DataKey { id })
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({}, secret redacted)", self.recipient())
    }
}

/// Public half of a [`DataKey`]: an `age1...` X25519 recipient. Safe to store and log.
#[derive(Clone)]
pub struct DataRecipient {
    r: x25519::Recipient,
    s: String,
}

impl DataRecipient {
    fn from_age(r: x25519::Recipient) -> Self {
        DataRecipient {
            s: r.to_string(),
            r,
        }
    }

    /// Parses an `age1...` string.
    pub fn parse(input: &str) -> Result<Self> {
        let s = input.trim();
        s.parse::<x25519::Recipient>()
            .map(Self::from_age)
            .map_err(|e| Error::InvalidRecipient {
                input: truncate_input(s),
                reason: format!("not a valid X25519 age recipient ({e})"),
            })
    }

    /// The `age1...` string.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    pub(crate) fn as_age(&self) -> &x25519::Recipient {
        &self.r
    }
}

impl FromStr for DataRecipient {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl PartialEq for DataRecipient {
    fn eq(&self, other: &Self) -> bool {
        self.s == other.s
    }
}
impl Eq for DataRecipient {}

impl std::hash::Hash for DataRecipient {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.s.hash(state)
    }
}

impl fmt::Display for DataRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}

impl fmt::Debug for DataRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataRecipient({})", self.s)
    }
}

impl Serialize for DataRecipient {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.s)
    }
}

impl<'de> Deserialize<'de> for DataRecipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}
