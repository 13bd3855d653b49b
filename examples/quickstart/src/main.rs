//! `quickstart`: serve (the default), manage API keys, or revoke tokens. See the library docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use quickstart::config::Config;
use quickstart::{BuiltIn, StartError, api_keys, app, built_in_issuer};
use tower_auth_apikey::cli::KeysCommand;

#[derive(Parser)]
#[command(version, about = "tower-auth quickstart server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage API keys.
    Keys(KeysArgs),
    /// Revoke access tokens and sessions.
    Tokens(TokensArgs),
}

#[derive(Args)]
struct TokensArgs {
    /// Database URL (default: the config's, else sqlite://quickstart.db).
    #[arg(long, global = true)]
    db: Option<String>,
    /// TOML configuration file (for the database and the listen address).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The built-in issuer's URL, as the running server printed it (default: http://<listen> of
    /// the configuration; required when that has port 0). Revocations are written for this
    /// `iss`: it must be the running server's.
    #[arg(long, global = true)]
    built_in_issuer: Option<String>,
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Revoke one access token by its `jti` (kept on the list until every token the issuer
    /// could have signed until now has expired).
    Revoke {
        /// The token's `jti` claim.
        #[arg(long)]
        jti: String,
        /// The token's issuer (default: the built-in issuer).
        #[arg(long)]
        issuer: Option<String>,
    },
    /// End every session of a user of the built-in issuer and every access token issued to it
    /// until now.
    LogoutEverywhere {
        /// The user (`sub`).
        #[arg(long)]
        subject: String,
    },
}

#[derive(Args)]
struct KeysArgs {
    /// Database URL (default: the config's, else sqlite://quickstart.db).
    #[arg(long, global = true)]
    db: Option<String>,
    /// TOML configuration file (for the database and the key prefix).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCommand,
}

fn load(path: Option<&PathBuf>) -> Result<Config, StartError> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

fn fail(e: &StartError) -> ExitCode {
    eprintln!("quickstart: {e}");
    match e {
        StartError::Config(_) => ExitCode::from(2),
        StartError::Database(_) => ExitCode::from(1),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::Serve { config } => {
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            match serve(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Tokens(args) => match tokens(args).await {
            Ok(line) => {
                println!("{line}");
                eprintln!("{SEEN_BY_SERVERS}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Keys(args) => {
            let mut config = match load(args.config.as_ref()) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            if let Some(db) = args.db {
                config.database = db;
            }
            let keys = match api_keys(&config).await {
                Ok(k) => k.admin(),
                Err(e) => return fail(&e),
            };
            let changes = !matches!(args.command, KeysCommand::List);
            let mut out = std::io::stdout().lock();
            match args.command.run(&keys, &mut out).await {
                Ok(()) => {
                    if changes {
                        // On stderr: stdout stays what scripts parse (the key on the last line).
                        eprintln!("{SEEN_BY_SERVERS}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("quickstart keys: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// When running servers apply a change made by `keys` or `tokens` (their change feeds: SQLite's
/// logs polled every 100 ms by default, PostgreSQL's notifications).
const SEEN_BY_SERVERS: &str = "seen by running servers within about 100 ms";

/// Runs a `tokens` subcommand; returns the line to print.
async fn tokens(args: TokensArgs) -> Result<String, StartError> {
    let mut config = load(args.config.as_ref())?;
    if let Some(db) = args.db {
        config.database = db;
    }
    // The built-in issuer's URL is the address the server listens on: it can only be derived
    // from the configuration when that names the port.
    let url = match args.built_in_issuer {
        Some(url) => url,
        None if config.listen.port() == 0 => {
            return Err(StartError::Config(format!(
                "invalid `listen` = \"{}\": with port 0 the built-in issuer's URL is the one the \
                 server printed when it started; pass it with --built-in-issuer",
                config.listen
            )));
        }
        None => format!("http://{}", config.listen),
    };
    let BuiltIn {
        issuer,
        revocations,
    } = built_in_issuer(&config, &url).await?;
    let failed = |e: &dyn std::fmt::Display| StartError::Database(format!("{e}"));
    match args.command {
        TokensCommand::Revoke { jti, issuer: None } => {
            issuer
                .revoke_access_token(&jti, None)
                .await
                .map_err(|e| failed(&e))?;
            Ok(format!("revoked token {jti} of {url}"))
        }
        TokensCommand::Revoke {
            jti,
            issuer: Some(other),
        } => {
            revocations
                .revoke_token(&other, &jti, None)
                .await
                .map_err(|e| failed(&e))?;
            Ok(format!("revoked token {jti} of {other}"))
        }
        TokensCommand::LogoutEverywhere { subject } => {
            let sessions = issuer
                .logout_everywhere(&subject)
                .await
                .map_err(|e| failed(&e))?;
            Ok(format!(
                "logged {subject} out everywhere: {sessions} session(s) revoked, access tokens of {url} issued until now refused"
            ))
        }
    }
}

async fn serve(config: Config) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            StartError::Config(format!("invalid `listen` = \"{}\": {e}", config.listen))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let router = app(&config, addr).await?;
    print_welcome(&addr.to_string(), &config);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| StartError::Database(format!("server error: {e}")))
}

fn print_welcome(addr: &str, config: &Config) {
    let db = &config.database;
    println!("quickstart listening on http://{addr} (database {db})");
    println!();
    println!("create an API key (the key is the last line printed):");
    println!(
        "  cargo run -p quickstart -- keys --db {db} create --owner me --scopes \"read:items write:items\""
    );
    println!("  KEY=<paste the key>");
    println!();
    println!("or log in as the demo user (the access token is in the JSON answer):");
    println!(
        "  curl -i -X POST -H 'content-type: application/json' -d '{{\"username\":\"demo\",\"password\":\"demo\"}}' http://{addr}/auth/login"
    );
    println!(
        "  TOKEN=<paste access_token>; curl -i -H \"Authorization: Bearer $TOKEN\" http://{addr}/me"
    );
    println!();
    println!("then:");
    println!("  curl -i http://{addr}/healthz");
    println!("  curl -i http://{addr}/metrics");
    println!("  curl -i -H \"Authorization: Bearer $KEY\" http://{addr}/me");
    println!("  curl -i -H \"X-API-Key: $KEY\" http://{addr}/items");
    println!("  curl -i -X POST -H \"X-API-Key: $KEY\" http://{addr}/items");
    println!(
        "  curl -i -H \"X-API-Key: $KEY\" http://{addr}/admin        # 403: the key lacks scope admin"
    );
}
