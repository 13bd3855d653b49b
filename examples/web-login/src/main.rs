//! The web-login example server. See the crate docs (`cargo doc -p web-login --open`) for how
//! to run it against the test provider.

use std::net::SocketAddr;

use clap::Parser;
use tower_auth_oauth::login::Login;

/// "Log in with the provider": an axum app using tower-auth-oauth's authorization code + PKCE
/// login helper.
// No `Debug`: the arguments hold the client secret.
#[derive(Parser)]
#[command(after_help = TEST_PROVIDER)]
struct Args {
    /// The provider's issuer URL (its OpenID Connect discovery document is read from it).
    #[arg(long, env = "WEB_LOGIN_ISSUER")]
    issuer: String,
    /// The client id registered at the provider.
    #[arg(long, env = "WEB_LOGIN_CLIENT_ID")]
    client_id: String,
    /// The client secret (leave out for a public client).
    #[arg(long, env = "WEB_LOGIN_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// The redirect URI, exactly as registered (`http(s)://<this app>/callback`).
    #[arg(long, env = "WEB_LOGIN_REDIRECT_URI")]
    redirect_uri: String,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// Development over plain http: an http provider, an http loopback redirect URI, cookies
    /// without `Secure`.
    #[arg(long)]
    insecure_http: bool,
}

/// How to try it against the repository's test provider, shown by `--help`.
const TEST_PROVIDER: &str = "\
Try it against the repository's test OpenID provider (tests/op: panva's oidc-provider; its
client tower-auth-web accepts any login name and password). From the repository root:

  (cd tests/op && npm ci)
  PATH=$PWD/tests/op/node_modules/.bin:$PATH   # the Node.js 22 the lock file pins, on Linux
  PORT=9000 WEB_REDIRECT_URIS=http://127.0.0.1:3001/callback node tests/op/server.mjs &
  cargo run -p web-login -- --issuer http://127.0.0.1:9000 \\
      --client-id tower-auth-web --client-secret tower-auth-web-secret \\
      --redirect-uri http://127.0.0.1:3001/callback --insecure-http
  # then open http://127.0.0.1:3001/ and log in with any name and password

Against a real provider, register https://your.app/callback as the redirect URI, drop
--insecure-http, and serve the app over https.";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut builder = Login::builder(&args.issuer)
        .client_id(&args.client_id)
        .redirect_uri(&args.redirect_uri)
        .scopes(["email"])
        .insecure_allow_http(args.insecure_http)
        .insecure_http_redirect_uri(args.insecure_http);
    if let Some(secret) = &args.client_secret {
        builder = builder.client_secret(secret);
    }
    let login = builder.discover().await?;
    login.warm_up().await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("web-login listening on http://{}", listener.local_addr()?);
    axum::serve(listener, web_login::app(login))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
