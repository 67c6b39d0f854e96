//! Envelope encryption for tenant-vault, built on [age](https://age-encryption.org).
//!
//! Each tenant registers public keys ([`TenantRecipient`]: X25519 `age1...`,
//! `ssh-ed25519` or `ssh-rsa`). The vault generates a per-tenant [`DataKey`] and
//! encrypts backup blocks to its public half ([`DataRecipient`]) with [`seal`], so
//! backing up never needs the tenant's private key. The data key's secret is
//! [`wrap`]ped to the tenant's recipients (plus an optional operator escrow key) and
//! then forgotten: only the wrapped blob is stored.
//!
//! Restore: the tenant supplies its identity file ([`TenantIdentities`]), [`unwrap`]
//! recovers the data key, and [`open`] decrypts blocks. Rotating the tenant's key
//! means unwrap with the old identity and wrap again to the new recipients; blocks
//! are never re-encrypted, because they are bound to the data key, not the tenant key.
//!
//! ```
//! use keys::{generate_identity_file, open, seal, unwrap, wrap, DataKey, TenantIdentities};
//!
//! // Tenant side (`tvault keygen`): keep `secret`, register `public`.
//! let (secret, public) = generate_identity_file();
//!
//! // Vault side: new data key, wrap it, seal data, drop the key.
//! let key = DataKey::generate();
//! let data_recipient = key.recipient();
//! let wrapped = wrap(&key, &[public])?;
//! drop(key);
//! let block = seal(&data_recipient, b"compressed rows")?;
//!
//! // Restore: the tenant's identity unlocks the data key.
//! let ids = TenantIdentities::from_str_secret(&secret)?;
//! let key = unwrap(&wrapped, &ids)?;
//! assert_eq!(open(&key, &block)?, b"compressed rows");
//! # Ok::<(), keys::Error>(())
//! ```
//!
//! Secrets are never printed: [`DataKey`] and [`TenantIdentities`] have only redacting
//! `Debug` impls, and error messages never echo private key text.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod datakey;
mod envelope;
mod error;
mod identity;
mod recipient;
mod stream;

pub use datakey::{DataKey, DataRecipient};
pub use envelope::{
    chunk_range, open, open_range, payload_start, seal, sealed_capacity, unwrap, wrap,
};
pub use error::{Error, Result};
pub use identity::{generate_identity_file, TenantIdentities};
pub use recipient::TenantRecipient;
pub use stream::{
    open_stream, open_stream_with_data_key, seal_stream, seal_stream_to_data_key, SealWriter,
};
