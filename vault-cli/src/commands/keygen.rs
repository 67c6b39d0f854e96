use crate::context::Global;
use crate::output;
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Generate a tenant key pair (age X25519).
///
/// The secret identity goes to a file only the tenant keeps; the public recipient is what
/// `tenant add --recipient` takes.
#[derive(Args, Debug)]
pub struct Keygen {
    /// Write the identity here (mode 0600; refuses to overwrite). Default: stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

impl Keygen {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let (secret, recipient) = keys::generate_identity_file();
        match &self.output {
            Some(path) => {
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts
                    .open(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                f.write_all(secret.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                f.sync_all()?;
            }
            None => print!("{}", secret.as_str()),
        }
        if g.json {
            output::json(&serde_json::json!({ "recipient": recipient.as_str() }))?;
        } else {
            eprintln!("Public key: {}", recipient.as_str());
        }
        Ok(ExitCode::SUCCESS)
    }
}
