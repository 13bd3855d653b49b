//! `quickstart`: serve (the default), manage API keys, or revoke tokens. See the library docs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use quickstart::config::{Config, ConfigError};
use quickstart::{BuiltIn, Prepared, StartError, api_keys, app_serving, built_in_issuer};
use tower_auth_apikey::cli::KeysCommand;

#[derive(Parser)]
#[command(
    version,
    about = "tower-auth quickstart server: API keys, JWT and OAuth 2.0 in one axum service",
    after_help = "The global options go before or after the command: `quickstart --listen \
                  127.0.0.1:3001`, `quickstart serve --config quickstart.toml`, `quickstart keys \
                  --db sqlite://other.db list`. Request logs go to stderr; tune them with RUST_LOG \
                  (default info; RUST_LOG=debug adds each rejection's reason)."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Options of every command.
#[derive(Args)]
struct Global {
    /// TOML configuration file (see the crate docs for its keys).
    #[arg(long, global = true, value_name = "FILE", env = "QUICKSTART_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, instead of the file's `listen` (default 127.0.0.1:3000). The
    /// built-in issuer's URL is `public_url` when configured, else http://<listen>, for the
    /// server and the `tokens` commands alike.
    #[arg(long, global = true, value_name = "ADDR", env = "QUICKSTART_LISTEN")]
    listen: Option<SocketAddr>,
    /// Database URL, instead of the file's `database` (default sqlite://quickstart.db; or
    /// postgres://...).
    #[arg(long, global = true, value_name = "URL", env = "QUICKSTART_DB")]
    db: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Revoke access tokens and sessions of the running server's built-in issuer (whose URL
    /// is `public_url`, else http://<listen>).
    #[command(subcommand)]
    Tokens(TokensCommand),
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Revoke one access token by its `jti` (kept on the list until every token the issuer
    /// could have signed until now has expired).
    Revoke {
        /// The token's `jti` claim (it may start with `-`, as a random base64url value can).
        #[arg(long, allow_hyphen_values = true)]
        jti: String,
        /// The token's issuer (default: the built-in issuer).
        #[arg(long)]
        issuer: Option<String>,
    },
    /// End every session of a user of the built-in issuer and every access token issued to it
    /// until now.
    LogoutEverywhere {
        /// The user (`sub`; it may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        subject: String,
    },
}

/// The configuration: the file (or the defaults), then the command-line options. Every error
/// names its origin, key and value.
fn configuration(global: &Global) -> Result<Config, ConfigError> {
    let (mut config, origin) = match &global.config {
        Some(path) => (Config::load(path)?, path.display().to_string()),
        None => (Config::default(), Config::ORIGIN.to_owned()),
    };
    if let Some(db) = &global.db {
        config.database.clone_from(db);
    }
    if let Some(listen) = global.listen {
        config.listen = listen;
    }
    // The options may meet the file's other keys (an `[[issuers]]` entry at the built-in URL).
    config.validate().map_err(|e| e.in_origin(origin))?;
    Ok(config)
}

/// Names where a configuration error's value came from: the command-line option that set it,
/// else the configuration file.
fn locate(e: ConfigError, global: &Global) -> ConfigError {
    let option = match e.key() {
        "listen" if global.listen.is_some() => Some("--listen"),
        "database" if global.db.is_some() => Some("--db"),
        _ => None,
    };
    match (option, &global.config) {
        (Some(option), _) => ConfigError::new(option, e.value().map(str::to_owned), e.reason())
            .in_origin("command line"),
        (None, Some(path)) if e.origin() == Config::ORIGIN => {
            e.in_origin(path.display().to_string())
        }
        (None, _) => e,
    }
}

fn fail(e: StartError, global: &Global) -> ExitCode {
    let e = match e {
        StartError::Config(e) => StartError::Config(locate(e, global)),
        other => other,
    };
    eprintln!("quickstart: {e}");
    match e {
        StartError::Config(_) => ExitCode::from(2),
        StartError::Listen(_) | StartError::Database(_) => ExitCode::from(1),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every command checks the whole configuration first.
    let (config, prepared) =
        match configuration(&cli.global).and_then(|c| Prepared::new(&c).map(|p| (c, p))) {
            Ok(checked) => checked,
            Err(e) => return fail(e.into(), &cli.global),
        };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config, prepared).await,
        Command::Tokens(command) => tokens(&config, command).await.map(|line| {
            println!("{line}");
            // On stderr: stdout stays the line scripts parse.
            eprintln!("{SEEN_BY_SERVERS}");
        }),
        Command::Keys(command) => {
            let keys = match api_keys(&config).await {
                Ok(k) => k.admin(),
                Err(e) => return fail(e, &cli.global),
            };
            let changes = !matches!(command, KeysCommand::List);
            let mut out = std::io::stdout().lock();
            return match command.run(&keys, &mut out).await {
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
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, &cli.global),
    }
}

/// When running servers apply a change made by `keys` or `tokens` (their change feeds: SQLite's
/// logs polled every 100 ms by default, PostgreSQL's notifications).
const SEEN_BY_SERVERS: &str = "seen by running servers within about 100 ms";

/// Runs a `tokens` subcommand; returns the line to print.
async fn tokens(config: &Config, command: TokensCommand) -> Result<String, StartError> {
    // One rule for the built-in issuer's URL, as the server applies it. With port 0 and no
    // `public_url`, only the running server knows its port: refuse rather than write
    // revocations for an issuer that does not exist.
    let url = config.built_in_issuer_url().ok_or_else(|| {
        ConfigError::new(
            "listen",
            Some(format!("\"{}\"", config.listen)),
            "with port 0 the built-in issuer's URL is the one the running server printed: \
             pass --listen with that address (or set public_url)",
        )
    })?;
    let BuiltIn {
        issuer,
        revocations,
    } = built_in_issuer(config, &url).await?;
    let failed = |e: &dyn std::fmt::Display| StartError::Database(format!("{e}"));
    match command {
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

/// Request logs on stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Binds (the configuration is checked), then opens the database and serves.
async fn serve(config: Config, prepared: Prepared) -> Result<(), StartError> {
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let mut other = config.listen;
            other.set_port(other.port().wrapping_add(1).max(1));
            return Err(StartError::Listen(format!(
                "cannot listen on {}: the address is already in use (another quickstart?). \
                 Choose another with --listen {other} (or `listen` in the configuration file; \
                 port 0 picks a free one)",
                config.listen
            )));
        }
        Err(e) => {
            return Err(ConfigError::new(
                "listen",
                Some(format!("\"{}\"", config.listen)),
                format!("cannot listen there: {e}"),
            )
            .into());
        }
    };
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Listen(format!("cannot read the listening address: {e}")))?;
    let url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let grpc = match config.forward_auth.as_ref().and_then(|f| f.grpc_listen) {
        None => None,
        Some(at) => Some(tokio::net::TcpListener::bind(at).await.map_err(|e| {
            ConfigError::new(
                "forward_auth.grpc_listen",
                Some(format!("\"{at}\"")),
                format!("cannot listen there: {e}"),
            )
        })?),
    };
    let grpc_addr = grpc.as_ref().and_then(|g| g.local_addr().ok());
    let router = app_serving(&config, prepared, &url, grpc).await?;
    print_welcome(&addr, &url, &config);
    if let Some(f) = &config.forward_auth {
        println!();
        println!("forward authentication on http://{addr}{}", f.path);
        if let Some(at) = grpc_addr {
            println!("Envoy gRPC Check API on {at}");
        }
    }
    init_logging();
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| StartError::Listen(format!("server error: {e}")))
}

fn print_welcome(addr: &SocketAddr, url: &str, config: &Config) {
    let db = &config.database;
    println!("quickstart listening on http://{addr} (database {db}; built-in issuer {url})");
    println!(
        "  choose the address with --listen ADDR, the database with --db URL, the file with --config FILE"
    );
    println!("  (before or after the command); request logs on stderr, tuned by RUST_LOG");
    println!();
    println!("try it (README.md has the whole session):");
    println!("  BASE=http://{addr}");
    let mut options = String::new();
    if db != "sqlite://quickstart.db" {
        options.push_str(&format!(" --db {db}"));
    }
    println!(
        "  KEY=$(cargo run -q -p quickstart --{options} keys create --owner me --scopes \"read:items write:items\" | tail -n 1)"
    );
    println!("  curl -i -H \"X-API-Key: $KEY\" $BASE/items               # 200");
    println!(
        "  curl -i -H \"X-API-Key: $KEY\" $BASE/admin               # 403: the key lacks scope admin"
    );
    println!(
        "  curl -i -X POST -H 'content-type: application/json' -d '{{\"username\":\"demo\",\"password\":\"demo\"}}' $BASE/auth/login"
    );
    println!("  curl -i $BASE/healthz; curl -i $BASE/metrics");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, TokensCommand};

    /// A random `jti` (base64url) may start with `-`: still the value of `--jti`, not a flag.
    #[test]
    fn a_jti_or_subject_starting_with_a_hyphen_is_a_value() {
        let cli =
            Cli::try_parse_from(["quickstart", "tokens", "revoke", "--jti", "-fQx9"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Tokens(TokensCommand::Revoke { ref jti, .. })) if jti == "-fQx9"
        ));
        let cli = Cli::try_parse_from([
            "quickstart",
            "tokens",
            "logout-everywhere",
            "--subject",
            "-u",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Tokens(TokensCommand::LogoutEverywhere { ref subject })) if subject == "-u"
        ));
    }
}
