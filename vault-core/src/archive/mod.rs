//! The archive format: blocks, packs, manifests (see `docs/FORMAT.md`).

pub mod auth;
pub mod block;
pub mod keyindex;
pub mod manifest;
