//! Fault injection for crash tests: with `TVAULT_CRASH_AT=<point>`, the process aborts at that
//! point, as a kill or a power loss would stop it (nothing is flushed, no destructor runs). The
//! points are named in docs/FORMAT.md's "Crash safety"; the tests in `tests/tests/e2e/crash.rs`
//! stop at each and check that the next run finds everything consistent.

/// Aborts the process when `TVAULT_CRASH_AT` names `point`.
pub(crate) fn crash_point(point: &str) {
    if std::env::var("TVAULT_CRASH_AT").is_ok_and(|p| p == point) {
        eprintln!("tvault: crash point {point} reached (TVAULT_CRASH_AT): aborting");
        std::process::abort();
    }
}
