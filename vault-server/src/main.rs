//! `tvault-server`: serves the vault's HTTP API (docs/SERVER.md).

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vault_server::{Options, Server, ServerConfig};

/// Serve a tenant-vault over HTTPS: tenants serving themselves, support staff restoring
/// records, operators running scheduled cycles. Configured by the `[server]` section of the
/// vault's config file (listen address, TLS, control database, schedules, limits).
///
/// First run: `tvault-server token add --role operator` prints an operator token (once); then
/// `tvault-server` serves, and the operator makes the other tokens through the API.
#[derive(Parser, Debug)]
#[command(name = "tvault-server", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug)]
struct Global {
    /// The vault: a directory, or a store URL (s3://bucket/prefix) with --state-dir.
    #[arg(
        long,
        global = true,
        env = "TVAULT_VAULT",
        default_value = "./vault-data"
    )]
    vault: String,
    /// Local state of a vault given by URL.
    #[arg(long, global = true, env = "TVAULT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Config file to use instead of <vault>/config.toml.
    #[arg(long, global = true, env = "TVAULT_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines (one object per event, with the request id) instead of text.
    #[arg(long, global = true)]
    log_json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API (the default).
    Serve(Serve),
    /// Make, list and revoke API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Args, Debug, Default)]
struct Serve {
    /// Listen here instead of [server] listen.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
}

#[derive(Subcommand, Debug)]
enum TokenCmd {
    /// Make a token and print it; it is shown this once, and only its hash is kept.
    Add {
        /// operator, support or tenant.
        #[arg(long)]
        role: String,
        /// The tenant of a tenant token; the tenants a support token is limited to
        /// (repeatable; none: every tenant).
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// A name for people reading the token list and the audit trail.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by its id.
    Revoke { id: String },
}

fn main() -> ExitCode {
    vault_core::memory::limit_arenas();
    let cli = Cli::parse();
    init_tracing(cli.global.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let location = vault_core::location::Location {
        vault: cli.global.vault.clone(),
        state_dir: cli.global.state_dir.clone(),
        config: cli.global.config.clone(),
    };
    let vault_config = location.config()?;
    let mut config = ServerConfig::from_vault(&vault_config)?;
    match cli.command.unwrap_or(Command::Serve(Serve::default())) {
        Command::Serve(s) => {
            if let Some(listen) = s.listen {
                config.listen = listen;
            }
            let vault = vault_core::Vault::open(&location.dir(), vault_config).await?;
            let listener = std::net::TcpListener::bind(&config.listen)
                .with_context(|| format!("listening on {}", config.listen))?;
            let server = Server::start(vault, config, Options::default(), listener).await?;
            eprintln!("tvault-server listening on {}", server.addr());
            shutdown_signal().await;
            eprintln!("stopping: waiting up to 30 s for running jobs");
            server.shutdown(std::time::Duration::from_secs(30)).await;
            Ok(())
        }
        Command::Token(t) => {
            let control = vault_server::control::Control::open(&config.control).await?;
            match t {
                TokenCmd::Add {
                    role,
                    tenants,
                    label,
                } => {
                    let vault = vault_core::Vault::open(&location.dir(), vault_config).await?;
                    let made =
                        vault_server::routes::make_token(&control, &vault, &role, &tenants, &label)
                            .await?;
                    println!("{}", serde_json::to_string_pretty(&made)?);
                }
                TokenCmd::List => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&control.tokens().await?)?
                    )
                }
                TokenCmd::Revoke { id } => {
                    if !control.revoke_token(&id).await? {
                        anyhow::bail!("no token {id:?} to revoke");
                    }
                    println!("revoked {id}");
                }
            }
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TVAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match json {
        true => builder.json().init(),
        false => builder.init(),
    }
}
