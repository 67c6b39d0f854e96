//! `tvault`: the command line of tenant-vault. Parses input, calls `vault-core`, renders output.

mod commands;
mod context;
mod output;

/// Exit code of a backup that backed up some tenants and not others.
pub const PARTIAL: u8 = 6;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    vault_core::memory::limit_arenas();
    let cli = commands::Cli::parse();
    init_tracing(cli.global.verbose);
    // Few blocking threads: sealing is CPU-bound, and every extra thread brings its own malloc
    // arena (measured: about 60 MB of peak memory in a 2,000-tenant backup).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Exit codes scripts can rely on (see `tvault --help`).
fn exit_code(e: &anyhow::Error) -> u8 {
    let of_keys = |k: &keys::Error| match k {
        keys::Error::WrongKey | keys::Error::Corrupt { .. } => 3,
        keys::Error::InvalidRecipient { .. }
        | keys::Error::InvalidIdentity { .. }
        | keys::Error::NoRecipients => 2,
        _ => 1,
    };
    if let Some(v) = e.downcast_ref::<vault_core::Error>() {
        return match v {
            v if v.is_integrity() => 3,
            v if v.is_not_found() => 4,
            vault_core::Error::Invalid(_) => 2,
            vault_core::Error::Busy(_) => 5,
            vault_core::Error::Keys(k) => of_keys(k),
            _ => 1,
        };
    }
    e.downcast_ref::<keys::Error>().map_or(1, of_keys)
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TVAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
