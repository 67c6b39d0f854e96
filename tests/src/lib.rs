//! Harness for the end-to-end tests of `tvault` (docs/CLI.md), driven as a black box.
//!
//! * PostgreSQL: `TVAULT_TEST_PG` (a superuser URL such as
//!   `postgres://tvault@127.0.0.1:54329/postgres`), or else the URL printed by
//!   `scripts/pg-local.sh start`. Neither available -> panic (never skip silently).
//! * S3: `TVAULT_TEST_S3` (an endpoint URL), or else `scripts/s3-local.sh start` (see `s3.rs`).
//! * Every test gets its own throwaway database ([`TestDb`]) and its own temp dir.
//! * The binary is (re)built once per test run with `$CARGO build -p vault-cli --bin tvault`
//!   and taken from `<target>/<profile>/tvault` (override with `TVAULT_BIN`).

use std::path::{Path, PathBuf};

pub use postgres::Client;
pub use serde_json::Value;

mod browser;
mod faultproxy;
mod fingerprint;
mod pg;
mod s3;
mod server;
mod tvault;

pub use browser::*;
pub use faultproxy::*;
pub use fingerprint::*;
pub use pg::*;
pub use s3::*;
pub use server::*;
pub use tvault::*;

/// Workspace root (`tests/..`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Absolute path of a SQL fixture in `tests/sql/`.
pub fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read fixture {}: {e}", p.display()))
}
