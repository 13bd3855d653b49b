//! Cross-crate integration tests of tower-auth, against real components (SQLite, Postgres, an
//! OpenID provider) over loopback. The tests are in `tests/`; this library holds what they share:
//! finding the test services (started by `scripts/test`) and talking to the OpenID provider.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::Full;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tower_auth_core::client::HttpClient;

/// The confidential client for client credentials (client_secret_basic).
pub const CC_CLIENT: (&str, &str) = ("tower-auth-cc", "tower-auth-cc-secret");
/// The resource server's introspection client.
pub const RS_CLIENT: (&str, &str) = ("tower-auth-rs", "tower-auth-rs-secret");

/// The base URL of the OpenID provider started by `scripts/test`; panics with instructions when
/// it is not there.
pub fn op_url() -> String {
    std::env::var("TOWER_AUTH_TEST_OP_URL").unwrap_or_else(|_| {
        panic!(
            "TOWER_AUTH_TEST_OP_URL is not set: this test needs the OpenID provider. \
             Run `scripts/test` (it starts one), or start one with \
             `scripts/test --services-only` and export the variables it prints"
        )
    })
}

/// The Postgres URL started by `scripts/test`; panics with instructions when it is not there.
pub fn pg_url() -> String {
    std::env::var("TOWER_AUTH_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "TOWER_AUTH_TEST_PG_URL is not set: this test needs PostgreSQL. \
             Run `scripts/test` (it starts a throwaway cluster), or point the variable at a \
             database you can write to"
        )
    })
}

/// An HTTP client allowed to talk plain http to loopback services.
pub fn loopback_client() -> HttpClient {
    HttpClient::builder()
        .insecure_allow_http(true)
        .build()
        .expect("valid client settings")
}

async fn post_form(url: &str, client: (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
    use base64::Engine as _;
    let body = form_body(form);
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", client.0, client.1));
    let req = Request::post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(AUTHORIZATION, format!("Basic {basic}"))
        .body(Full::new(Bytes::from(body)))
        .expect("valid request");
    let res = loopback_client()
        .send(req)
        .await
        .expect("provider reachable");
    let doc = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
    (res.status.as_u16(), doc)
}

fn form_body(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&")
}

/// A client-credentials access token from the provider at `op` for `resource` with `scope`.
pub async fn client_credentials_token(op: &str, resource: &str, scope: &str) -> String {
    let (status, doc) = post_form(
        &format!("{op}/token"),
        CC_CLIENT,
        &[
            ("grant_type", "client_credentials"),
            ("resource", resource),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, 200, "token request failed: {doc}");
    doc["access_token"]
        .as_str()
        .expect("access_token in the token response")
        .to_owned()
}

/// Revokes `token` (RFC 7009) as the client it was issued to.
pub async fn revoke(op: &str, token: &str) {
    let (status, doc) = post_form(
        &format!("{op}/token/revocation"),
        CC_CLIENT,
        &[("token", token), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, 200, "revocation failed: {doc}");
}

/// An OpenID provider of the test's own, for tests that stop it. Killed on drop.
#[derive(Debug)]
pub struct OwnProvider {
    child: tokio::process::Child,
    /// Its base URL (also its issuer).
    pub url: String,
}

impl OwnProvider {
    /// Starts `tests/op/server.mjs` on a free loopback port (needs `TOWER_AUTH_TEST_OP_DIR`,
    /// set by `scripts/test`).
    pub async fn start() -> Self {
        let dir = std::env::var("TOWER_AUTH_TEST_OP_DIR").unwrap_or_else(|_| {
            panic!(
                "TOWER_AUTH_TEST_OP_DIR is not set: this test starts its own OpenID provider \
                 from tests/op. Run `scripts/test`"
            )
        });
        let mut child = tokio::process::Command::new("node")
            .arg(format!("{dir}/server.mjs"))
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        // Its error output, kept to explain a provider that does not come up.
        let errors = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let sink = std::sync::Arc::clone(&errors);
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut e = sink
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                e.push_str(&line);
                e.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Generous: node and the provider's key generation are slow on a loaded 2-core machine.
        let url = tokio::time::timeout(Duration::from_secs(90), async {
            while let Some(line) = lines.next_line().await.expect("provider output") {
                if let Some(url) = line.strip_prefix("listening on ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await;
        let Ok(Some(url)) = url else {
            let errors = errors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            panic!("the OpenID provider did not start within 90 s; its error output:\n{errors}");
        };
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url }
    }

    /// Stops the provider and waits until it has exited.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// `url` (a `postgres://` URL) pointing at database `database` instead.
pub fn pg_url_with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A name no other test of this run (or of a parallel run) uses: `prefix_<pid>_<nanos>_<n>`.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database of a test's own on a Postgres server, so tests run in parallel without seeing
/// each other's rows, notifications or connections.
#[derive(Debug)]
pub struct PgDatabase {
    /// The URL of the new database.
    pub url: String,
    /// Its name.
    pub name: String,
    server: sqlx::PgPool,
}

impl PgDatabase {
    /// Creates a fresh database on the server of `server_url` (any database there).
    pub async fn create_on(server_url: &str) -> Self {
        let server = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(server_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"));
        let name = unique_name("t");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        Self {
            url: pg_url_with_database(server_url, &name),
            name,
            server,
        }
    }

    /// Creates a fresh database on the shared test server ([`pg_url`]).
    pub async fn create() -> Self {
        Self::create_on(&pg_url()).await
    }

    /// A connection pool on the server's maintenance database, for looking at
    /// `pg_stat_activity` or terminating backends.
    pub fn server(&self) -> &sqlx::PgPool {
        &self.server
    }

    /// The backends connected to this database with `application_name` = `app`: their pids.
    pub async fn backends(&self, app: &str) -> Vec<i32> {
        sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 \
             ORDER BY pid",
        )
        .bind(&self.name)
        .bind(app)
        .fetch_all(&self.server)
        .await
        .expect("pg_stat_activity readable")
    }

    /// Waits (at most 10 s) until exactly `n` backends with `application_name` = `app` are
    /// connected to this database (a new listener takes a moment to connect, a dropped one to
    /// go); their pids.
    pub async fn wait_for_backends(&self, app: &str, n: usize) -> Vec<i32> {
        let start = std::time::Instant::now();
        loop {
            let pids = self.backends(app).await;
            if pids.len() == n {
                return pids;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "expected {n} connections of {app}, found {pids:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop_database(self) {
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&self.server)
        .await;
        self.server.close().await;
    }
}

/// A PostgreSQL cluster of a test's own (for tests that stop the server), run through
/// `$TOWER_AUTH_TEST_PG_CLUSTER` (`scripts/lib/pg-cluster`). Destroyed on drop.
#[derive(Debug)]
pub struct OwnPostgres {
    script: String,
    dir: String,
    /// The URL of its `postgres` database (the port stays the same across restarts).
    pub url: String,
}

impl OwnPostgres {
    /// Creates and starts a cluster on a free loopback port.
    pub fn start() -> Self {
        let script = std::env::var("TOWER_AUTH_TEST_PG_CLUSTER").unwrap_or_else(|_| {
            panic!(
                "TOWER_AUTH_TEST_PG_CLUSTER is not set: this test starts (and stops) a \
                 PostgreSQL cluster of its own with scripts/lib/pg-cluster. Run `scripts/test` \
                 (it sets it), or export TOWER_AUTH_TEST_PG_CLUSTER=$PWD/scripts/lib/pg-cluster \
                 with the PostgreSQL server binaries installed"
            )
        });
        let dir = run(&script, &["init"]);
        let mut this = Self {
            script,
            dir,
            url: String::new(),
        };
        this.url = this.pg_cluster(&["start"]);
        this
    }

    /// Starts the cluster again, on the same port.
    pub fn restart(&self) {
        self.pg_cluster(&["start"]);
    }

    /// Stops the cluster (`fast`: disconnects every client).
    pub fn stop(&self) {
        self.pg_cluster(&["stop", "fast"]);
    }

    fn pg_cluster(&self, args: &[&str]) -> String {
        let (command, rest) = args.split_first().expect("a command");
        let mut all = vec![*command, self.dir.as_str()];
        all.extend_from_slice(rest);
        run(&self.script, &all)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.script)
            .args(["destroy", &self.dir])
            .stdout(Stdio::null())
            .status();
    }
}

fn run(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(script)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {} failed ({})",
        args.join(" "),
        out.status
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .trim()
        .to_owned()
}

/// The provider's web client for the authorization code flow (PKCE required,
/// client_secret_basic).
pub const WEB_CLIENT: (&str, &str) = ("tower-auth-web", "tower-auth-web-secret");
/// The redirect URI the provider registers for [`WEB_CLIENT`] unless `WEB_REDIRECT_URIS` says
/// otherwise.
pub const WEB_REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// What the scripted user does at the provider's consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    /// Submits the consent form.
    Grant,
    /// Follows the page's cancel link (`/interaction/{uid}/abort`): the provider redirects back
    /// with `error=access_denied`.
    Abort,
}

/// A scripted browser for the provider's development interactions (login form, consent form),
/// over loopback: a cookie jar keyed by cookie name and redirects followed by hand.
#[derive(Debug, Default)]
pub struct Browser {
    cookies: Vec<(String, String)>,
}

/// A response seen by the [`Browser`].
#[derive(Debug)]
pub struct Page {
    /// The status code.
    pub status: u16,
    /// The `Location` header, resolved against the request URL.
    pub location: Option<String>,
    /// The body, as text.
    pub body: String,
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends a request with the jar's cookies and keeps the cookies the response sets.
    pub async fn request(
        &mut self,
        method: &str,
        url: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Page {
        use http_body_util::BodyExt as _;
        let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let mut req = Request::builder().method(method).uri(url);
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header(http::header::COOKIE, cookie);
        }
        let body = match form {
            Some(f) => {
                req = req.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
                form_urlencoded_body(f)
            }
            None => String::new(),
        };
        let res = client
            .request(
                req.body(Full::new(Bytes::from(body)))
                    .expect("valid request"),
            )
            .await
            .unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
        for v in res.headers().get_all(http::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let pair = v.split(';').next().unwrap_or_default();
            if let Some((k, val)) = pair.split_once('=') {
                self.cookies.retain(|(n, _)| n != k);
                if !val.is_empty() {
                    self.cookies.push((k.to_owned(), val.to_owned()));
                }
            }
        }
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(|l| resolve(url, l));
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        Page {
            status,
            location,
            body,
        }
    }

    /// Goes through the provider's authorization from `authorize_url`: logs in as `login` (any
    /// password), then grants or aborts at the consent page; returns the URL the provider
    /// finally redirects to (the client's redirect URI with `code` or `error`). Panics when the
    /// provider answers something else, showing its page.
    pub async fn authorize(
        &mut self,
        authorize_url: &str,
        login: &str,
        consent: Consent,
    ) -> String {
        let op_origin = origin(authorize_url);
        let mut url = authorize_url.to_owned();
        for _ in 0..20 {
            if origin(&url) != op_origin {
                return url;
            }
            let page = self.request("GET", &url, None).await;
            if let Some(next) = page.location {
                url = next;
                continue;
            }
            assert_eq!(page.status, 200, "unexpected page at {url}:\n{}", page.body);
            let next = if page.body.contains(r#"name="prompt" value="login""#) {
                self.request(
                    "POST",
                    &url,
                    Some(&[("prompt", "login"), ("login", login), ("password", "any")]),
                )
                .await
            } else if page.body.contains(r#"name="prompt" value="consent""#) {
                match consent {
                    Consent::Grant => {
                        self.request("POST", &url, Some(&[("prompt", "consent")]))
                            .await
                    }
                    Consent::Abort => self.request("GET", &format!("{url}/abort"), None).await,
                }
            } else {
                panic!(
                    "neither a login nor a consent page at {url}:\n{}",
                    page.body
                );
            };
            url = next
                .location
                .unwrap_or_else(|| panic!("no redirect after the form at {url}:\n{}", next.body));
        }
        panic!("too many redirects from {authorize_url}");
    }
}

fn form_urlencoded_body(form: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `scheme://host[:port]` of an absolute URL.
fn origin(url: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find('/').map_or(url.len(), |i| after + i);
    url[..end].to_owned()
}

/// `location` resolved against `base` (absolute URLs and absolute paths only).
fn resolve(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        location.to_owned()
    }
}

/// The query string of `url` (empty when it has none).
pub fn query_of(url: &str) -> &str {
    url.split_once('?').map_or("", |(_, q)| q)
}

/// The provider's public native client (no secret, `token_endpoint_auth_method` `none`, PKCE
/// required): its loopback redirect URIs `http://127.0.0.1/callback` and
/// `http://[::1]/callback` match on any port.
pub const NATIVE_CLIENT: &str = "tower-auth-native";
