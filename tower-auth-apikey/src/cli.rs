//! [`KeysCommand`]: the `keys` command line (feature `cli`), a clap subcommand to embed in your
//! application's own command line.
//!
//! ```
//! use clap::{Parser, Subcommand};
//! use tower_auth_apikey::cli::KeysCommand;
//! use tower_auth_apikey::{ApiKeys, MemoryStore};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(subcommand)]
//!     command: Command,
//! }
//!
//! #[derive(Subcommand)]
//! enum Command {
//!     /// Manage API keys.
//!     #[command(subcommand)]
//!     Keys(KeysCommand),
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Your application opens the store (`--db`, a config file...) and builds `ApiKeys`.
//! let keys = ApiKeys::builder(MemoryStore::new()).prefix("sk_test").build().unwrap();
//!
//! let cli = Cli::parse_from(["app", "keys", "create", "--owner", "alice", "--scopes", "read write", "--expires-in", "90d"]);
//! let Command::Keys(cmd) = cli.command;
//! let mut out = Vec::new();
//! cmd.run(&keys, &mut out).await.unwrap();
//! let out = String::from_utf8(out).unwrap();
//! let key = out.lines().last().unwrap();
//! assert!(key.starts_with("sk_test_"));
//! assert!(out.lines().next().unwrap().starts_with("id key_"));
//!
//! let cli = Cli::parse_from(["app", "keys", "list"]);
//! let Command::Keys(cmd) = cli.command;
//! let mut out = Vec::new();
//! cmd.run(&keys, &mut out).await.unwrap();
//! let out = String::from_utf8(out).unwrap();
//! let row: Vec<&str> = out.lines().nth(1).unwrap().split('\t').collect();
//! assert_eq!(&row[1..3], ["alice", "read write"]);
//! assert!(!out.contains(key), "listing never shows a key");
//! # }
//! ```
//!
//! # Output
//!
//! Made to be read by people and by scripts:
//!
//! - `create --owner NAME [--scopes "a b"] [--name N] [--expires-in DURATION] [--metadata JSON]`
//!   prints `id key_...`, `owner ...`, `name ...`, `scopes ...`, `created ...`, `expires ...`
//!   (one `field value` pair a line), then the key alone on the last line.
//! - `list`: a header line, then one tab-separated line per key: id, owner, scopes
//!   (space-separated), created, expires, revoked. Times are RFC 3339 (UTC, seconds); `-` when
//!   none.
//! - `revoke ID` prints `revoked ID`.
//! - `rotate ID [--grace DURATION]` (default `24h`) prints the new key's fields as `create`
//!   does, `old_expires ...` (when the old key stops working), and the new key last.
//!
//! Durations are humantime: `30s`, `15m`, `24h`, `90d`. An unknown id is an error
//! ([`CliError::NotFound`]); map errors to a non-zero exit code (1).

use std::fmt;
use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::record::format_time;
use crate::{AdminError, ApiKeys, CreatedKey, KeyRecord, NewKey};

/// The `keys` subcommands. Embed with `#[command(subcommand)] Keys(KeysCommand)`; run with
/// [`KeysCommand::run`] over an [`ApiKeys`] your application opened.
#[derive(Clone, Debug, clap::Subcommand)]
#[non_exhaustive]
pub enum KeysCommand {
    /// Create a key; prints its fields, then the key itself on the last line (shown once).
    Create(CreateArgs),
    /// List keys: a header, then one tab-separated line per key.
    List,
    /// Revoke a key at once.
    Revoke {
        /// The key id (`key_...`).
        id: String,
    },
    /// Replace a key with a new one; the old one keeps working for a grace period.
    Rotate {
        /// The key id (`key_...`).
        id: String,
        /// How long the old key keeps working (`30s`, `15m`, `24h`, `90d`).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        grace: Duration,
    },
}

/// Arguments of `keys create`.
#[derive(Clone, Debug, clap::Args)]
#[non_exhaustive]
pub struct CreateArgs {
    /// Who the key belongs to (the authenticated subject).
    #[arg(long)]
    pub owner: String,
    /// Space-separated scopes, such as "read:items write:items".
    #[arg(long, default_value = "")]
    pub scopes: String,
    /// A human-readable label.
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime of the key (`30s`, `15m`, `24h`, `90d`); none by default.
    #[arg(long, value_parser = parse_duration)]
    pub expires_in: Option<Duration>,
    /// JSON metadata kept with the key.
    #[arg(long, value_parser = parse_json)]
    pub metadata: Option<serde_json::Value>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 15m, 24h, 90d)"))
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

impl KeysCommand {
    /// Runs the command against `keys`, writing its output to `out` (stdout in a real CLI).
    pub async fn run<W: Write + ?Sized>(
        &self,
        keys: &ApiKeys,
        out: &mut W,
    ) -> Result<(), CliError> {
        match self {
            Self::Create(args) => {
                let mut new = NewKey::new(&args.owner)
                    .scopes(args.scopes.split(' ').filter(|s| !s.is_empty()));
                if let Some(n) = &args.name {
                    new = new.name(n);
                }
                if let Some(d) = args.expires_in {
                    new = new.expires_in(d);
                }
                if let Some(m) = &args.metadata {
                    new = new.metadata(m.clone());
                }
                let created = keys.create(new).await?;
                print_created(out, &created, None)?;
            }
            Self::List => {
                writeln!(out, "id\towner\tscopes\tcreated\texpires\trevoked")?;
                for r in keys.list().await? {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        r.id,
                        r.owner,
                        r.scopes.to_space_separated(),
                        format_time(r.created_at),
                        time_or_dash(r.expires_at),
                        time_or_dash(r.revoked_at),
                    )?;
                }
            }
            Self::Revoke { id } => {
                let r = keys.revoke(id).await?;
                writeln!(out, "revoked {}", r.id)?;
            }
            Self::Rotate { id, grace } => {
                let created = keys.rotate(id, *grace).await?;
                let old: Option<KeyRecord> = keys.get(id).await?;
                let old_expires = old.and_then(|o| o.expires_at);
                print_created(out, &created, Some(old_expires))?;
            }
        }
        Ok(())
    }
}

fn time_or_dash(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "-".to_owned(), format_time)
}

fn print_created<W: Write + ?Sized>(
    out: &mut W,
    created: &CreatedKey,
    old_expires: Option<Option<SystemTime>>,
) -> std::io::Result<()> {
    let r = &created.record;
    writeln!(out, "id {}", r.id)?;
    writeln!(out, "owner {}", r.owner)?;
    writeln!(out, "name {}", r.name.as_deref().unwrap_or("-"))?;
    writeln!(out, "scopes {}", r.scopes.to_space_separated())?;
    writeln!(out, "created {}", format_time(r.created_at))?;
    writeln!(out, "expires {}", time_or_dash(r.expires_at))?;
    if let Some(old) = old_expires {
        writeln!(out, "old_expires {}", time_or_dash(old))?;
    }
    writeln!(out, "{}", created.key.expose_secret())?;
    out.flush()
}

/// Why a `keys` command failed. Map it to exit code 1 and print it to stderr.
#[derive(Debug)]
#[non_exhaustive]
pub enum CliError {
    /// No key has this id.
    NotFound(String),
    /// Any other administration failure.
    Admin(AdminError),
    /// Writing the output failed.
    Io(std::io::Error),
}

impl From<AdminError> for CliError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(id) => Self::NotFound(id),
            e => Self::Admin(e),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound(id) => write!(f, "no api key with id {id}"),
            Self::Admin(e) => e.fmt(f),
            Self::Io(e) => write!(f, "cannot write output: {e}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NotFound(_) => None,
            Self::Admin(e) => Some(e),
            Self::Io(e) => Some(e),
        }
    }
}
