//! A third-party client: a command-line tool that acts for a user at an API it does not own.
//! It obtains the user's access token with the OAuth 2.0 authorization code flow and PKCE
//! (RFC 7636, RFC 8252 for native apps), then calls the API's `/me` with it.
//!
//! 1. It prints the authorization URL (with `state`, `nonce` and an S256 challenge, made by
//!    tower-auth-oauth's [`Login`]) for the user to open in a browser.
//! 2. It listens on the loopback redirect URI (`http://127.0.0.1:PORT/callback`) for the
//!    browser's redirect back, and answers it with a page saying the window can be closed.
//! 3. It exchanges the code with the verifier, checks the ID token, and calls
//!    `GET {api}/me` with `Authorization: Bearer <access token>`.
//!
//! The API is the quickstart (`examples/quickstart`), configured to accept the provider's
//! tokens. With the test provider of `tests/op`:
//!
//! ```text
//! # 1. the provider (panva's oidc-provider, Node.js 20 or later), with this client's loopback
//! #    redirect URI registered
//! (cd tests/op && npm ci)
//! PORT=9000 WEB_REDIRECT_URIS=http://127.0.0.1:8976/callback node tests/op/server.mjs &
//!
//! # 2. the quickstart, trusting the provider's JWT access tokens (audience = the provider's
//! #    default resource)
//! cat > /tmp/quickstart.toml <<'TOML'
//! listen = "127.0.0.1:3000"
//! database = "sqlite:///tmp/quickstart.db"
//! insecure_allow_http = true
//!
//! [[issuers]]
//! issuer = "http://127.0.0.1:9000"
//! audiences = ["urn:tower-auth:rs256"]
//! require_typ = "at+jwt"
//! TOML
//! cargo run -p quickstart -- serve --config /tmp/quickstart.toml &
//!
//! # 3. this client: open the printed URL, log in with any name and password, consent
//! cargo run -p third-party-client -- --issuer http://127.0.0.1:9000 \
//!     --client-id tower-auth-web --client-secret tower-auth-web-secret \
//!     --redirect-uri http://127.0.0.1:8976/callback \
//!     --resource urn:tower-auth:rs256 --api http://127.0.0.1:3000 --insecure-http
//! ```
//!
//! A real native app is a public client (no secret: leave `--client-secret` out; PKCE protects
//! the code) registered with a loopback redirect URI.

use std::error::Error;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower_auth_core::client::HttpClient;
use tower_auth_oauth::login::{LoggedIn, Login};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long to wait for the browser to come back.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(300);

/// What to log in to and what to call.
#[derive(Clone, Debug)]
pub struct Options {
    /// The authorization server's issuer URL.
    pub issuer: String,
    /// This client's id there.
    pub client_id: String,
    /// Its secret, for a confidential client; `None` for a public one.
    pub client_secret: Option<String>,
    /// The loopback redirect URI, as registered.
    pub redirect_uri: String,
    /// RFC 8707 resource indicators: the API the token is for.
    pub resources: Vec<String>,
    /// Extra scopes besides `openid`.
    pub scopes: Vec<String>,
    /// The API's base URL; `/me` is called on it.
    pub api: String,
    /// Plain http to the provider and the API (loopback development only).
    pub insecure_http: bool,
}

/// The result: who logged in, and what the API said.
#[derive(Debug)]
pub struct Outcome {
    /// The completed login (tokens included).
    pub login: LoggedIn,
    /// The status of `GET {api}/me`.
    pub me_status: u16,
    /// Its body.
    pub me_body: String,
}

/// Runs the flow: `open` gets the authorization URL (print it, or hand it to a browser), the
/// redirect back is awaited on `listener` (bound to the redirect URI's address).
pub async fn run(
    options: &Options,
    listener: TcpListener,
    open: impl FnOnce(&str),
) -> Result<Outcome, BoxError> {
    let mut builder = Login::builder(&options.issuer)
        .client_id(&options.client_id)
        .redirect_uri(&options.redirect_uri)
        .scopes(options.scopes.clone())
        .resources(options.resources.clone())
        .insecure_allow_http(options.insecure_http)
        .insecure_http_redirect_uri(options.insecure_http);
    if let Some(secret) = &options.client_secret {
        builder = builder.client_secret(secret);
    }
    let login = builder.discover().await?;
    let start = login.start().await?;
    // The login cookie holds the pending login's id; this process is its own "browser", so it
    // keeps the value instead of setting a cookie.
    let cookie = start
        .set_cookie()
        .to_str()?
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .ok_or("no login cookie")?;
    open(start.authorize_url());

    let path = redirect_path(&options.redirect_uri);
    let query = tokio::time::timeout(CALLBACK_WAIT, wait_for_callback(&listener, &path))
        .await
        .map_err(|_| "no callback within the time allowed")??;
    let user = login.callback(Some(&cookie), &query).await?;

    let http = HttpClient::builder()
        .insecure_allow_http(options.insecure_http)
        .build()?;
    let req = http::Request::get(format!("{}/me", options.api.trim_end_matches('/')))
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", user.access_token()),
        )
        .body(Full::new(Bytes::new()))?;
    let res = http.send(req).await?;
    Ok(Outcome {
        login: user,
        me_status: res.status.as_u16(),
        me_body: String::from_utf8_lossy(&res.body).into_owned(),
    })
}

/// The path of the redirect URI (`/callback`).
fn redirect_path(uri: &str) -> String {
    uri.parse::<http::Uri>()
        .ok()
        .map_or_else(|| "/".to_owned(), |u| u.path().to_owned())
}

/// Accepts connections until a `GET` for `path` arrives; answers it and returns its query.
/// Other requests (`/favicon.ico`) get 404.
async fn wait_for_callback(listener: &TcpListener, path: &str) -> Result<String, BoxError> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let (p, q) = target.split_once('?').unwrap_or((target, ""));
        if p == path {
            let body = "<!doctype html><title>Logged in</title>\
                        <p>Login complete: you can close this window and return to the terminal.</p>";
            let res = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                 cache-control: no-store\r\nreferrer-policy: no-referrer\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(res.as_bytes()).await?;
            stream.shutdown().await?;
            return Ok(q.to_owned());
        }
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    }
}
