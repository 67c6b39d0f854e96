//! Error type shared by every function in the crate.

use age::DecryptError;

/// Errors from key handling and envelope encryption.
///
/// Messages are written for operators: they never contain secret key material, and
/// recipient inputs are truncated so a pasted blob cannot flood a log line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A recipient (public key) string could not be parsed or is not supported.
    #[error("invalid recipient {input:?}: {reason}")]
    InvalidRecipient {
        /// The offending input, truncated to 80 characters (redacted if it looked secret).
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An identity (private key) file could not be used. Never contains the secret text.
    #[error("invalid identity: {reason}")]
    InvalidIdentity {
        /// Why it was rejected.
        reason: String,
    },
    /// Encryption was requested with an empty recipient list.
    #[error("no recipients given: refusing to encrypt data nobody could decrypt")]
    NoRecipients,
    /// None of the given keys can decrypt the data.
    #[error("wrong key: none of the given identities can decrypt this data")]
    WrongKey,
    /// The ciphertext is damaged: bad header, MAC failure or truncation.
    #[error("corrupt ciphertext: {reason}")]
    Corrupt {
        /// What check failed.
        reason: String,
    },
    /// Reading an identity file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Convenience alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn corrupt(reason: impl Into<String>) -> Error {
    Error::Corrupt {
        reason: reason.into(),
    }
}

/// Maps age's decryption errors onto the two outcomes callers act on differently:
/// "you brought the wrong key" versus "the bytes are damaged".
///
/// Every input we decrypt is an in-memory slice, so an I/O error from age can only mean
/// the data ended early (truncation), never a real device error.
pub(crate) fn from_decrypt(e: DecryptError) -> Error {
    match e {
        DecryptError::NoMatchingKeys => Error::WrongKey,
        DecryptError::InvalidMac => corrupt("header MAC mismatch (header was modified)"),
        DecryptError::InvalidHeader => corrupt("malformed age header"),
        DecryptError::UnknownFormat => corrupt("not an age v1 file"),
        DecryptError::DecryptionFailed => corrupt("a recipient stanza failed to decrypt"),
        DecryptError::Io(e) => corrupt(format!("truncated or damaged data: {e}")),
        other => corrupt(other.to_string()),
    }
}

/// Truncates user input for error messages (char-boundary safe).
pub(crate) fn truncate_input(s: &str) -> String {
    s.chars().take(80).collect()
}
