//! End-to-end tests of the `tvault` binary against a real PostgreSQL (see docs/CLI.md).
//! One test binary; each module is one concern. Harness: the `tests` crate (src/lib.rs);
//! SQL fixtures: tests/sql/. PostgreSQL: `TVAULT_TEST_PG=<superuser URL>` or, unset,
//! `scripts/pg-local.sh start`.

/// `conformance! { fn_name, ... }`: a `local` and an `s3` test of each body (the bodies take the
/// backend and a test name). Defined before the modules, so that every suite can use it.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[test]
            fn $name() {
                super::$name(tests::Backend::Local, concat!("conf_local_", stringify!($name)));
            })*
        }
        mod s3 {
            $(#[test]
            fn $name() {
                super::$name(
                    tests::Backend::S3(tests::BucketKind::Versioned),
                    concat!("conf_s3_", stringify!($name)),
                );
            })*
        }
    };
}

#[path = "e2e/audit_trail.rs"]
mod audit_trail;
#[path = "e2e/bridge.rs"]
mod bridge;
#[path = "e2e/child_tables.rs"]
mod child_tables;
#[path = "e2e/cli.rs"]
mod cli;
#[path = "e2e/concurrent.rs"]
mod concurrent;
#[path = "e2e/conformance.rs"]
mod conformance;
#[path = "e2e/connections.rs"]
mod connections;
#[path = "e2e/consistency.rs"]
mod consistency;
#[path = "e2e/console.rs"]
mod console;
#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/edge_tables.rs"]
mod edge_tables;
#[path = "e2e/erase.rs"]
mod erase;
#[path = "e2e/export.rs"]
mod export;
#[path = "e2e/fidelity.rs"]
mod fidelity;
#[path = "e2e/forget.rs"]
mod forget;
#[path = "e2e/forget_audit.rs"]
mod forget_audit;
#[path = "e2e/graph.rs"]
mod graph;
#[path = "e2e/hardening.rs"]
mod hardening;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/hostile_ids.rs"]
mod hostile_ids;
#[path = "e2e/hostile_store.rs"]
mod hostile_store;
#[path = "e2e/import.rs"]
mod import;
#[path = "e2e/in_process.rs"]
mod in_process;
#[path = "e2e/integrity.rs"]
mod integrity;
#[path = "e2e/interrupted.rs"]
mod interrupted;
#[path = "e2e/isolation.rs"]
mod isolation;
#[path = "e2e/keys.rs"]
mod keys;
#[path = "e2e/latest.rs"]
mod latest;
#[path = "e2e/leases.rs"]
mod leases;
#[path = "e2e/many_tenants.rs"]
mod many_tenants;
#[path = "e2e/models.rs"]
mod models;
#[path = "e2e/no_pk.rs"]
mod no_pk;
#[path = "e2e/options.rs"]
mod options;
#[path = "e2e/output.rs"]
mod output;
#[path = "e2e/partial.rs"]
mod partial;
#[path = "e2e/real_schema.rs"]
mod real_schema;
#[path = "e2e/records.rs"]
mod records;
#[path = "e2e/records_inventory.rs"]
mod records_inventory;
#[path = "e2e/records_related.rs"]
mod records_related;
#[path = "e2e/residue.rs"]
mod residue;
#[path = "e2e/retention.rs"]
mod retention;
#[path = "e2e/retention_ages.rs"]
mod retention_ages;
#[path = "e2e/retention_blocks.rs"]
mod retention_blocks;
#[path = "e2e/retention_hold.rs"]
mod retention_hold;
#[path = "e2e/rls.rs"]
mod rls;
#[path = "e2e/rotation.rs"]
mod rotation;
#[path = "e2e/s3.rs"]
mod s3;
#[path = "e2e/schema.rs"]
mod schema;
#[path = "e2e/server.rs"]
mod server;
#[path = "e2e/silo.rs"]
mod silo;
#[path = "e2e/timeouts.rs"]
mod timeouts;
#[path = "e2e/triggers.rs"]
mod triggers;
