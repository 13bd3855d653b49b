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
//! - `create --owner NAME [--scopes "a b"] [--name N] [--expires-in DURATION] [--metadata JSON]
//!   [--rate 100/1s [--burst 200]] [--credits 10000] [--refill 10000/30d]`
//!   prints `id key_...`, `owner ...`, `name ...`, `scopes ...`, `created ...`, `expires ...`,
//!   `limits ...` (one `field value` pair a line), then the key alone on the last line.
//! - `list`: a header line, then one tab-separated line per key: id, owner, scopes
//!   (space-separated), created, expires, revoked, limits. Times are RFC 3339 (UTC, seconds);
//!   `-` when none. Limits are space-separated fields, those the key has:
//!   `rate=100/1s burst=200 credits=9876 refill=10000/30days` (the credits left as the store
//!   knows them: a running server writes spending back in batches).
//! - `update ID [--rate 100/1s|none] [--burst 200|none] [--credits N|none] [--refill N/PERIOD|none]`
//!   changes what is given (`none` removes it; `--burst none` goes back to the rate's count;
//!   `--credits N` sets the remaining count) and prints `updated ID` and the limits. Running
//!   servers see the change like a revocation.
//! - `revoke ID` prints `revoked ID`.
//! - `rotate ID [--grace DURATION]` (default `24h`) prints the new key's fields as `create`
//!   does, `old_expires ...` (when the old key stops working), and the new key last.
//!
//! Durations are humantime: `30s`, `15m`, `24h`, `90d`; rates are `COUNT/PERIOD`. An unknown
//! id is an error ([`CliError::NotFound`]), a bad value names the flag and the value (from
//! clap, or [`CliError::Invalid`]); map errors to a non-zero exit code (1).

use std::fmt;
use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::limit::{KeyLimits, LimitsUpdate, Rate, RateLimit};
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
    /// Change the rate limit and credits of a key (`none` removes one).
    Update(UpdateArgs),
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
    /// A rate limit, COUNT/PERIOD (`100/1s`, `5000/1h`).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<Rate>,
    /// How many requests may come at once (default: the rate's count).
    #[arg(long, requires = "rate")]
    pub burst: Option<u32>,
    /// Usage credits: how many requests the key may make.
    #[arg(long)]
    pub credits: Option<u64>,
    /// Reset the credits to COUNT every PERIOD, counted from creation (`10000/30d`).
    #[arg(long, value_parser = parse_rate)]
    pub refill: Option<Rate>,
}

/// Arguments of `keys update`: each limit given is changed, `none` removes it, the others are
/// kept.
#[derive(Clone, Debug, clap::Args)]
#[non_exhaustive]
pub struct UpdateArgs {
    /// The key id (`key_...`).
    pub id: String,
    /// The rate limit, COUNT/PERIOD, or `none`.
    #[arg(long, value_parser = parse_setting::<Rate>)]
    pub rate: Option<Setting<Rate>>,
    /// The burst, or `none` for the rate's count; needs a rate (given or already set).
    #[arg(long, value_parser = parse_setting::<u32>)]
    pub burst: Option<Setting<u32>>,
    /// The remaining credits, or `none` to remove credits (and their refill).
    #[arg(long, value_parser = parse_setting::<u64>)]
    pub credits: Option<Setting<u64>>,
    /// The refill, COUNT/PERIOD, or `none`.
    #[arg(long, value_parser = parse_setting::<Rate>)]
    pub refill: Option<Setting<Rate>>,
}

/// A value given to `keys update`: a new value, or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting<T> {
    /// Set to this.
    Set(T),
    /// `none`: remove.
    Remove,
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    s.parse::<Rate>().map_err(|e| e.to_string())
}

fn parse_setting<T>(s: &str) -> Result<Setting<T>, String>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    if s == "none" {
        return Ok(Setting::Remove);
    }
    s.parse()
        .map(Setting::Set)
        .map_err(|e| format!("{e} (or none)"))
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
                if let Some(rate) = args.rate {
                    new = new.rate_limit(rate_limit("--burst", rate, args.burst)?);
                }
                if let Some(n) = args.credits {
                    new = new.credits(n);
                }
                if let Some(refill) = args.refill {
                    new = new.refill(refill);
                }
                let created = keys.create(new).await?;
                print_created(out, &created, None)?;
            }
            Self::List => {
                writeln!(out, "id\towner\tscopes\tcreated\texpires\trevoked\tlimits")?;
                let now = SystemTime::now();
                for r in keys.list().await? {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.id,
                        r.owner,
                        r.scopes.to_space_separated(),
                        format_time(r.created_at),
                        time_or_dash(r.expires_at),
                        time_or_dash(r.revoked_at),
                        limits_fields(&r, now),
                    )?;
                }
            }
            Self::Update(args) => {
                let update = update_of(keys, args).await?;
                let r = keys.update_limits(&args.id, update).await?;
                writeln!(
                    out,
                    "updated {} {}",
                    r.id,
                    limits_fields(&r, SystemTime::now())
                )?;
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

/// A rate limit from the command line; a bad burst names `flag`.
fn rate_limit(flag: &'static str, rate: Rate, burst: Option<u32>) -> Result<RateLimit, CliError> {
    RateLimit::new(rate, burst).map_err(|e| CliError::Invalid {
        flag,
        value: burst.map_or_else(String::new, |b| b.to_string()),
        reason: e.to_string(),
    })
}

/// The update `keys update` asks for; `--burst` alone keeps the key's rate.
async fn update_of(keys: &ApiKeys, args: &UpdateArgs) -> Result<LimitsUpdate, CliError> {
    let mut update = LimitsUpdate::new();
    let burst = match args.burst {
        None => None,
        Some(Setting::Remove) => Some(None),
        Some(Setting::Set(b)) => Some(Some(b)),
    };
    match (args.rate, burst) {
        (Some(Setting::Remove), Some(b)) => {
            return Err(CliError::Invalid {
                flag: "--burst",
                value: b.map_or_else(|| "none".to_owned(), |b| b.to_string()),
                reason: "a burst needs a rate, and --rate is none".to_owned(),
            });
        }
        (Some(Setting::Remove), None) => update = update.no_rate(),
        (Some(Setting::Set(rate)), burst) => {
            update = update.rate(rate_limit("--burst", rate, burst.flatten())?);
        }
        (None, Some(b)) => {
            let record = keys
                .get(&args.id)
                .await?
                .ok_or_else(|| CliError::NotFound(args.id.clone()))?;
            let Some(current) = record.limits.rate else {
                return Err(CliError::Invalid {
                    flag: "--burst",
                    value: b.map_or_else(|| "none".to_owned(), |b| b.to_string()),
                    reason: "the key has no rate limit: give --rate too".to_owned(),
                });
            };
            update = update.rate(rate_limit("--burst", current.rate(), b)?);
        }
        (None, None) => {}
    }
    match args.credits {
        Some(Setting::Set(n)) => update = update.credits(n),
        Some(Setting::Remove) => update = update.no_credits(),
        None => {}
    }
    match args.refill {
        Some(Setting::Set(r)) => update = update.refill(r),
        Some(Setting::Remove) => update = update.no_refill(),
        None => {}
    }
    if update.is_empty() {
        return Err(CliError::Invalid {
            flag: "--rate",
            value: String::new(),
            reason: "nothing to update: give --rate, --burst, --credits or --refill".to_owned(),
        });
    }
    Ok(update)
}

/// `rate=100/1s burst=200 credits=9876 refill=10000/30days`, the parts a key has; `-` for
/// none. The credits are those left at `now` as the store knows them.
fn limits_fields(r: &KeyRecord, now: SystemTime) -> String {
    let KeyLimits { rate, credits } = &r.limits;
    let mut fields = Vec::new();
    if let Some(rate) = rate {
        fields.push(format!("rate={} burst={}", rate.rate(), rate.burst()));
    }
    if let Some(c) = credits {
        fields.push(format!("credits={}", c.remaining_at(r.created_at, now)));
        if let Some(refill) = c.refill {
            fields.push(format!("refill={refill}"));
        }
    }
    if fields.is_empty() {
        "-".to_owned()
    } else {
        fields.join(" ")
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
    writeln!(out, "limits {}", limits_fields(r, r.created_at))?;
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
    /// A flag's value was refused.
    Invalid {
        /// The flag (`--burst`).
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
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
            Self::Invalid {
                flag,
                value,
                reason,
            } => write!(f, "invalid value {value:?} for {flag}: {reason}"),
            Self::Admin(e) => e.fmt(f),
            Self::Io(e) => write!(f, "cannot write output: {e}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::NotFound(_) | Self::Invalid { .. } => None,
            Self::Admin(e) => Some(e),
            Self::Io(e) => Some(e),
        }
    }
}
