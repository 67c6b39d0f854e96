//! The archive format: blocks, packs, manifests (see `docs/FORMAT.md`).

pub mod auth;
pub mod block;
#[cfg(test)]
mod fuzz;
pub mod keyindex;
pub mod manifest;
