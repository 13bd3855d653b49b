//! A third-party client: a command-line tool that acts for a user at an API it does not own.
//! It obtains the user's access token with the OAuth 2.0 authorization code flow and PKCE
//! (RFC 7636, RFC 8252 for native apps), then calls the API's `/me` with it.
//!
//! 1. It prints the authorization URL (with `state`, `nonce` and an S256 challenge, made by
//!    tower-auth-oauth's [`Login`]) for the user to open in a browser.
//! 2. It listens on the loopback redirect URI (`http://127.0.0.1:PORT/callback`; only a
//!    loopback address is accepted, and plain http there is right for a native app, RFC 8252
//!    section 7.3) for the browser's redirect back, and answers it with a page saying the
//!    window can be closed. Other requests to the port (a favicon, a callback that is not for
//!    this login, a connection that sends nothing) are answered or dropped, and it keeps
//!    waiting.
//! 3. It exchanges the code with the verifier, checks the ID token, and calls
//!    `GET {api}/me` with `Authorization: Bearer <access token>`.
//!
//! The API is the quickstart (`examples/quickstart`), configured to accept the provider's
//! tokens. With the test provider of `tests/op`:
//!
//! ```text
//! # 1. the provider (panva's oidc-provider, Node.js 20 or later); its public native client
//! #    `tower-auth-native` accepts http://127.0.0.1/callback on any port
//! (cd tests/op && npm ci)
//! PORT=9000 node tests/op/server.mjs &
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
//!     --client-id tower-auth-native \
//!     --redirect-uri http://127.0.0.1:8976/callback \
//!     --resource urn:tower-auth:rs256 --api http://127.0.0.1:3000 --insecure-http
//! ```
//!
//! `--insecure-http` allows plain http to the provider and the API (the local test set-up);
//! the loopback redirect URI is plain http in every set-up and needs no flag.
//!
//! A real native app is a public client (no secret; PKCE protects the code) registered with a
//! loopback redirect URI, as `tower-auth-native` is. `--client-secret` is there for providers
//! that register every client as confidential.

use std::error::Error;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_auth_core::client::HttpClient;
use tower_auth_oauth::login::{LoggedIn, Login, LoginError};

type BoxError = Box<dyn Error + Send + Sync>;

/// How long to wait for the browser to come back.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(300);

/// How long one connection to the loopback listener may take to send its request head.
pub const CONNECTION_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What to log in to and what to call. `Debug` does not show the client secret.
#[derive(Clone)]
pub struct Options {
    /// The authorization server's issuer URL.
    pub issuer: String,
    /// This client's id there.
    pub client_id: String,
    /// Its secret, for a confidential client; `None` for a public one.
    pub client_secret: Option<String>,
    /// The loopback redirect URI, as registered: `http://127.0.0.1:PORT/path` (or `[::1]`,
    /// `localhost`).
    pub redirect_uri: String,
    /// RFC 8707 resource indicators: the API the token is for.
    pub resources: Vec<String>,
    /// Extra scopes besides `openid`.
    pub scopes: Vec<String>,
    /// The API's base URL; `/me` is called on it.
    pub api: String,
    /// Plain http to the provider and the API (loopback development only). The loopback
    /// redirect URI is plain http whatever this says.
    pub insecure_allow_http: bool,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_uri", &self.redirect_uri)
            .field("resources", &self.resources)
            .field("scopes", &self.scopes)
            .field("api", &self.api)
            .field("insecure_allow_http", &self.insecure_allow_http)
            .finish()
    }
}

/// The result: who logged in, and what the API said.
#[derive(Debug)]
pub struct Outcome {
    /// The completed login (tokens included; `Debug` shows none).
    pub login: LoggedIn,
    /// The status of `GET {api}/me`.
    pub me_status: u16,
    /// Its body.
    pub me_body: String,
}

/// The loopback address to listen on for `redirect_uri`: an `http` URI whose host is a
/// loopback IP literal (`127.0.0.1`, `[::1]`) or `localhost` (then `127.0.0.1`), with an
/// explicit port. Anything else is refused: the listener must never be reachable from the
/// network.
pub fn loopback_addr(redirect_uri: &str) -> Result<SocketAddr, BoxError> {
    let uri: http::Uri = redirect_uri.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err("the redirect URI must be http://<loopback address>:<port>/...".into());
    }
    let host = uri.host().ok_or("the redirect URI has no host")?;
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .map_err(|_| "the redirect URI's host must be a loopback address")?
    };
    if !ip.is_loopback() {
        return Err("the redirect URI's host must be a loopback address".into());
    }
    let port = uri
        .port_u16()
        .ok_or("the redirect URI needs an explicit port")?;
    Ok(SocketAddr::new(ip, port))
}

/// Runs the flow: `open` gets the authorization URL (print it, or hand it to a browser), the
/// redirect back is awaited on `listener` (bound to the redirect URI's loopback address; a
/// listener on any other address is refused).
pub async fn run(
    options: &Options,
    listener: TcpListener,
    open: impl FnOnce(&str),
) -> Result<Outcome, BoxError> {
    if !listener.local_addr()?.ip().is_loopback() {
        return Err("the callback listener must be bound to a loopback address".into());
    }
    loopback_addr(&options.redirect_uri)?;
    let mut builder = Login::builder(&options.issuer)
        .client_id(&options.client_id)
        .redirect_uri(&options.redirect_uri)
        .scopes(options.scopes.clone())
        .resources(options.resources.clone())
        .insecure_allow_http(options.insecure_allow_http)
        // A native app's loopback redirect URI is plain http (RFC 8252 section 7.3); the
        // builder accepts http on loopback hosts only.
        .insecure_http_redirect_uri(true);
    if let Some(secret) = &options.client_secret {
        builder = builder.client_secret(secret);
    }
    let login = builder.discover().await?;
    let start = login.start().await?;
    // This process is its own "browser": it keeps the pending login's id instead of a cookie.
    let login_id = start.login_id().to_owned();
    open(start.authorize_url());

    let path = redirect_path(&options.redirect_uri);
    let user = tokio::time::timeout(
        CALLBACK_WAIT,
        wait_for_callback(&listener, &path, &login, &login_id),
    )
    .await
    .map_err(|_| "no callback within the time allowed")??;

    let http = HttpClient::builder()
        .insecure_allow_http(options.insecure_allow_http)
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

/// Reads a request head from `stream` (at most 16 KiB) and returns its `GET` target, or
/// `None` for anything else.
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    head.lines()
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .map(str::to_owned)
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let res = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
         cache-control: no-store\r\nreferrer-policy: no-referrer\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(res.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Accepts connections until the callback of this login arrives on `path`, completes the
/// login with it and answers the browser. Each connection gets [`CONNECTION_READ_TIMEOUT`] to
/// send its request head (a silent one is dropped); other paths get 404; a callback that is
/// not for this login (no or another `state`: it finds no pending login, and consumes
/// nothing) gets 400 and the wait goes on.
async fn wait_for_callback(
    listener: &TcpListener,
    path: &str,
    login: &Login,
    login_id: &str,
) -> Result<LoggedIn, BoxError> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let Ok(Some(target)) =
            tokio::time::timeout(CONNECTION_READ_TIMEOUT, read_target(&mut stream)).await
        else {
            continue;
        };
        let (p, q) = target.split_once('?').unwrap_or((&target, ""));
        if p != path {
            respond(&mut stream, "404 Not Found", "").await;
            continue;
        }
        match login.callback(Some(login_id), q).await {
            Ok(user) => {
                respond(
                    &mut stream,
                    "200 OK",
                    "<!doctype html><title>Logged in</title>\
                     <p>Login complete: you can close this window and return to the terminal.</p>",
                )
                .await;
                return Ok(user);
            }
            Err(
                LoginError::UnknownLogin
                | LoginError::StateMismatch
                | LoginError::MalformedCallback,
            ) => {
                respond(
                    &mut stream,
                    "400 Bad Request",
                    "<!doctype html><title>Not this login</title>\
                     <p>This is not the login the terminal is waiting for.</p>",
                )
                .await;
            }
            Err(e) => {
                respond(
                    &mut stream,
                    "400 Bad Request",
                    "<!doctype html><title>Login failed</title>\
                     <p>The login failed: see the terminal.</p>",
                )
                .await;
                return Err(e.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_loopback_redirect_uris() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:8976/callback").unwrap(),
            "127.0.0.1:8976".parse().unwrap()
        );
        assert_eq!(
            loopback_addr("http://[::1]:8976/callback").unwrap(),
            "[::1]:8976".parse().unwrap()
        );
        assert_eq!(
            loopback_addr("http://localhost:8976/callback").unwrap(),
            "127.0.0.1:8976".parse().unwrap()
        );
        for bad in [
            "http://0.0.0.0:8976/callback",
            "http://192.168.1.10:8976/callback",
            "http://example.com:8976/callback",
            "https://127.0.0.1:8976/callback",
            "http://127.0.0.1/callback",
        ] {
            assert!(loopback_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_redacts_the_secret() {
        let o = Options {
            issuer: "https://idp.example".into(),
            client_id: "cli".into(),
            client_secret: Some("hunter2-secret".into()),
            redirect_uri: "http://127.0.0.1:8976/callback".into(),
            resources: Vec::new(),
            scopes: Vec::new(),
            api: "https://api.example".into(),
            insecure_allow_http: false,
        };
        let d = format!("{o:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
    }

    #[tokio::test]
    async fn a_listener_off_loopback_is_refused() {
        let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
        let o = Options {
            issuer: "http://127.0.0.1:9".into(),
            client_id: "cli".into(),
            client_secret: None,
            redirect_uri: "http://127.0.0.1:8976/callback".into(),
            resources: Vec::new(),
            scopes: Vec::new(),
            api: "http://127.0.0.1:9".into(),
            insecure_allow_http: true,
        };
        let e = run(&o, listener, |_| {}).await.unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
