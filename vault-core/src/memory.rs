//! The process allocator, tuned for long backup cycles (glibc only; elsewhere these do nothing).
//!
//! glibc gives each thread that allocates an arena of its own (up to 8 per core) and keeps
//! what is freed for reuse by that arena. A 2,000-tenant cycle peaked at 419 MB resident for
//! 277 MB of heap; with two arenas and the freed memory of the reading stage returned before
//! the commit, the 20,000-tenant cycle stays near its heap.

/// Limits malloc to two arenas, unless the environment sets `MALLOC_ARENA_MAX`. Call it first
/// thing in `main`, before any other thread exists.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Returns the free pages of every arena to the system: after a stage that freed much, so
/// that the next one does not grow the resident set on top of it.
pub fn return_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
