//! The third-party client CLI. See the crate docs (`cargo doc -p third-party-client --open`).

use clap::Parser;
use third_party_client::{Options, loopback_addr, run};

/// Gets your access token at the authorization server (authorization code + PKCE) and calls the
/// API's `/me` with it.
// No `Debug`: the arguments hold the client secret.
#[derive(Parser)]
struct Args {
    /// The authorization server's issuer URL.
    #[arg(long)]
    issuer: String,
    /// This client's id.
    #[arg(long)]
    client_id: String,
    /// This client's secret (leave out for a public client).
    #[arg(long, env = "THIRD_PARTY_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// The loopback redirect URI, as registered (`http://127.0.0.1:PORT/callback`); only
    /// loopback addresses are accepted.
    #[arg(long)]
    redirect_uri: String,
    /// The API the token is for (RFC 8707 resource indicator); repeatable.
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// Extra scopes besides `openid`; repeatable.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// The API's base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    api: String,
    /// Plain http to the provider and the API (loopback development only). The loopback
    /// redirect URI is plain http without this flag.
    #[arg(long)]
    insecure_http: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(loopback_addr(&args.redirect_uri)?).await?;
    let options = Options {
        issuer: args.issuer,
        client_id: args.client_id,
        client_secret: args.client_secret,
        redirect_uri: args.redirect_uri,
        resources: args.resources,
        scopes: args.scopes,
        api: args.api,
        insecure_allow_http: args.insecure_http,
    };
    let outcome = run(&options, listener, |url| {
        println!("Open this URL in your browser to log in:\n\n  {url}\n");
        println!(
            "Waiting for the redirect back to {} ...",
            options.redirect_uri
        );
    })
    .await?;
    println!("Logged in as {}", outcome.login.subject());
    println!("GET {}/me -> {}", options.api, outcome.me_status);
    println!("{}", outcome.me_body);
    Ok(())
}
