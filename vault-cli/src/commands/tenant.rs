use crate::context::Global;
use crate::output;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Register tenants, list them, rotate their keys.
#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    Add(Add),
    Import(Import),
    List(List),
    Place(Place),
    RotateKey(RotateKey),
}

/// Register a tenant with its public key(s). Its archives are encrypted to a data key that is
/// wrapped to these recipients; the vault keeps no key that can read them.
#[derive(Args, Debug)]
pub struct Add {
    /// Tenant id: the value of the tenant column.
    id: String,
    /// Public key: age1... (X25519) or an ssh-ed25519 / ssh-rsa public key line (repeatable).
    #[arg(long, required = true)]
    recipient: Vec<String>,
    /// Also wrap the data key to the operator's escrow recipient (support restores without the
    /// tenant's key).
    #[arg(long)]
    allow_escrow: bool,
    /// Bridge model: the tenant owns this schema, and every table in it is its own (no tenant
    /// column needed). Without it the tenant is pooled: its rows are found by tenant column.
    #[arg(long, value_name = "SCHEMA", conflicts_with = "database")]
    schema: Option<String>,
    /// Silo model: the tenant owns this database, and every table in it is its own. A database
    /// name on the source's server, or a connection string without a password (which comes
    /// from PGPASSWORD or a password file).
    #[arg(long, value_name = "DATABASE")]
    database: Option<String>,
}

/// Register many tenants at once from a file (one process instead of one per tenant).
///
/// One tenant per line: `TENANT<TAB>RECIPIENT[<TAB>RECIPIENT…]`, plus a field `schema=NAME` for
/// a tenant of the bridge model or `database=NAME` (or a connection string) for one of the silo
/// model; blank lines and lines starting with `#` are skipped. Tenants already registered are reported and left as they are; any other
/// bad line stops the import at that line (the tenants before it stay registered).
#[derive(Args, Debug)]
pub struct Import {
    /// The file (`-` for standard input).
    file: PathBuf,
}

/// Change where later cycles read a tenant's rows from, once its tables have moved (for
/// example with `restore --into-schema` or `--into-database`): a schema of its own (bridge), a
/// database of its own (silo) or the pooled tables.
/// Its snapshots stay; each restores into the new place.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("place").required(true))]
pub struct Place {
    id: String,
    /// The schema whose every table is the tenant's.
    #[arg(long, value_name = "SCHEMA", group = "place")]
    schema: Option<String>,
    /// The database whose every table is the tenant's (a name on the source's server, or a
    /// connection string without a password).
    #[arg(long, value_name = "DATABASE", group = "place")]
    database: Option<String>,
    /// The pooled tables (found by tenant column).
    #[arg(long, group = "place")]
    pool: bool,
}

/// List registered tenants.
#[derive(Args, Debug)]
pub struct List {}

/// Re-wrap a tenant's data key to new recipients (needs a current identity). Archives are not
/// re-encrypted; old identities stop working.
#[derive(Args, Debug)]
pub struct RotateKey {
    id: String,
    /// A current identity file of the tenant.
    #[arg(long)]
    identity: PathBuf,
    /// New public key(s) (repeatable).
    #[arg(long, required = true)]
    recipient: Vec<String>,
    /// Also give later snapshots a new data key, so that the old tenant key (if it leaked)
    /// reads nothing written from now on. Earlier snapshots stay readable with the new key.
    #[arg(long)]
    revoke: bool,
    /// With --revoke: keep wrapping the data keys to the operator's escrow recipient (dropped
    /// by default: a revocation starts from the tenant's keys alone).
    #[arg(long, requires = "revoke")]
    keep_escrow: bool,
}

impl TenantCmd {
    pub async fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let vault = g.open().await?;
        match self {
            TenantCmd::Add(a) => {
                let t = vault
                    .add_tenant(
                        &a.id,
                        &a.recipient,
                        a.allow_escrow,
                        placement(a.schema, a.database),
                    )
                    .await?;
                if g.json {
                    output::json(&t)?;
                } else {
                    println!("registered tenant {:?}", t.id);
                }
            }
            TenantCmd::Import(i) => {
                let text = if i.file.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())?
                } else {
                    std::fs::read_to_string(&i.file)
                        .with_context(|| format!("reading {}", i.file.display()))?
                };
                let (mut added, mut existing) = (vec![], vec![]);
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim_end_matches('\r');
                    if line.trim().is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let mut parts = line.split('\t');
                    let id = parts.next().unwrap_or_default();
                    let (places, recipients): (Vec<&str>, Vec<&str>) =
                        parts.partition(|p| p.starts_with("schema=") || p.starts_with("database="));
                    let recipients: Vec<String> =
                        recipients.into_iter().map(str::to_string).collect();
                    let (schema, database) = match places.as_slice() {
                        [] => (None, None),
                        [one] => match one.split_once('=') {
                            Some(("schema", s)) => (Some(s.to_string()), None),
                            Some((_, d)) => (None, Some(d.to_string())),
                            None => (None, None),
                        },
                        _ => anyhow::bail!(
                            "{}:{}: tenant {id:?} names more than one schema or database",
                            i.file.display(),
                            n + 1
                        ),
                    };
                    if vault.inventory().tenant(id)?.is_some() {
                        existing.push(id.to_string());
                        continue;
                    }
                    vault
                        .add_tenant(id, &recipients, false, placement(schema, database))
                        .await
                        .with_context(|| {
                            format!("{}:{}: tenant {id:?}", i.file.display(), n + 1)
                        })?;
                    added.push(id.to_string());
                }
                if g.json {
                    output::json(
                        &serde_json::json!({ "added": added, "already_registered": existing }),
                    )?;
                } else {
                    println!(
                        "registered {} tenant(s); {} were already registered",
                        added.len(),
                        existing.len()
                    );
                }
            }
            TenantCmd::List(_) => {
                let tenants = vault.tenants()?;
                if g.json {
                    let list: Vec<_> = tenants
                        .iter()
                        .map(|t| serde_json::json!({"tenant": t.id, "model": t.placement.model(), "schema": t.placement.schema(), "database": t.placement.database().map(vault_core::source::postgres::conninfo::show_database), "recipients": t.recipients, "escrow": t.escrow}))
                        .collect();
                    output::json(&list)?;
                } else {
                    for t in &tenants {
                        let place = match t.placement.location() {
                            Some(l) => format!("{} {l}", t.placement.model()),
                            None => t.placement.model().into(),
                        };
                        println!(
                            "{}\t{place}\t{} key(s){}",
                            t.id,
                            t.recipients.len(),
                            if t.escrow { "\tescrow" } else { "" }
                        );
                    }
                }
            }
            TenantCmd::Place(p) => {
                let t = vault
                    .place_tenant(&p.id, placement(p.schema, p.database))
                    .await?;
                if g.json {
                    output::json(&t)?;
                } else {
                    match (t.placement.schema(), t.placement.location()) {
                        (Some(s), _) => println!("tenant {:?} now lives in schema {s:?}", t.id),
                        (None, Some(d)) => println!("tenant {:?} now lives in database {d}", t.id),
                        (None, None) => {
                            println!("tenant {:?} now lives in the pooled tables", t.id)
                        }
                    }
                }
            }
            TenantCmd::RotateKey(r) => {
                let identity = keys::TenantIdentities::from_file(&r.identity)?;
                let t = vault
                    .rotate_tenant_key(&r.id, &identity, &r.recipient, r.revoke, r.keep_escrow)
                    .await?;
                if g.json {
                    output::json(&t)?;
                } else {
                    println!(
                        "re-wrapped the data key(s) of {:?} to {} recipient(s){}",
                        t.id,
                        t.recipients.len(),
                        if r.revoke {
                            "; later snapshots use a new data key that the old tenant key cannot read"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The placement `--schema` or `--database` (or `schema=`, `database=`) names: bridge or silo,
/// else pool.
fn placement(schema: Option<String>, database: Option<String>) -> vault_core::tenant::Placement {
    use vault_core::tenant::Placement;
    match (schema, database) {
        (Some(schema), _) => Placement::Bridge { schema },
        (None, Some(database)) => Placement::Silo { database },
        (None, None) => Placement::Pool,
    }
}
