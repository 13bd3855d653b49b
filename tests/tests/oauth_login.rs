//! Authorization code + PKCE against the real OpenID provider (panva's oidc-provider from
//! tests/op), its login and consent forms driven over loopback by a scripted browser: the
//! `tower_auth_oauth::login` helper, the `web-login` example, and the `third-party-client`
//! example calling the quickstart's `/me` with the user's access token.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use tower::{Layer, ServiceExt, service_fn};
use tower_auth_core::clock::ManualClock;
use tower_auth_core::{AuthenticateLayer, Principal};
use tower_auth_oauth::login::{
    LoggedIn, Login, LoginBuilder, LoginError, MemoryStore, PendingLogin, PendingLoginStore,
    StoreFuture,
};
use tower_auth_oauth::resource_server::ResourceServer;
use tower_auth_tests::{
    Browser, Consent, NATIVE_CLIENT, WEB_CLIENT, WEB_REDIRECT_URI, op_url, query_of,
};

async fn login_with(op: &str, f: impl FnOnce(LoginBuilder) -> LoginBuilder) -> Login {
    f(Login::builder(op)
        .client_id(WEB_CLIENT.0)
        .client_secret(WEB_CLIENT.1)
        .redirect_uri(WEB_REDIRECT_URI)
        .scopes(["email"])
        .insecure_allow_http(true)
        .insecure_http_redirect_uri(true))
    .discover()
    .await
    .unwrap()
}

/// Starts a login and takes the browser through the provider as `user`: the login cookie's
/// value and the URL the provider redirects back to.
async fn through_provider(login: &Login, user: &str, consent: Consent) -> (String, String) {
    let start = login.start().await.unwrap();
    let cookie = start.login_id().to_owned();
    let back = Browser::new()
        .authorize(start.authorize_url(), user, consent)
        .await;
    assert!(
        back.starts_with(&format!("{WEB_REDIRECT_URI}?")),
        "redirected to {back}"
    );
    (cookie, back)
}

/// `query` with parameter `name` set to `value`.
fn with_param(query: &str, name: &str, value: &str) -> String {
    query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k == name => format!("{k}={value}"),
            _ => p.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn login_succeeds_and_the_access_token_is_usable() {
    let op = op_url();
    let login = login_with(&op, |b| b).await;
    let (cookie, back) = through_provider(&login, "alice", Consent::Grant).await;
    let user: LoggedIn = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap();
    assert_eq!(user.subject(), "alice");
    assert_eq!(user.issuer(), op);
    assert_eq!(user.email(), Some("alice@example.test"));
    assert_eq!(user.claims()["email_verified"], true);
    assert_eq!(user.id_token().split('.').count(), 3);

    // The access token (a JWT for the provider's default resource) is accepted by a resource
    // server of that audience, for the same user.
    let rs = ResourceServer::builder(&op)
        .audiences(["urn:tower-auth:rs256"])
        .insecure_allow_http(true)
        .discover()
        .await
        .unwrap();
    let svc = AuthenticateLayer::required(rs).layer(service_fn(|req: Request<()>| async move {
        let p = req.extensions().get::<Principal>().cloned().unwrap();
        Ok::<_, Infallible>(Response::new(p.subject().to_owned()))
    }));
    let req = Request::get("/me")
        .header("authorization", format!("Bearer {}", user.access_token()))
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "alice");
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn wrong_state_is_refused_and_the_genuine_callback_still_completes() {
    let op = op_url();
    let login = login_with(&op, |b| b).await;
    let (cookie, back) = through_provider(&login, "alice", Consent::Grant).await;
    // A forged callback carrying the real code but another state (the victim's cookie rides
    // along on a cross-site navigation): refused, and it consumes nothing.
    let forged = with_param(query_of(&back), "state", "not-the-state");
    assert_ne!(forged, query_of(&back));
    let e = login.callback(Some(&cookie), &forged).await.unwrap_err();
    assert!(matches!(e, LoginError::UnknownLogin), "{e:?}");
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    // The genuine callback still completes the login: the forgery did not use up the code
    // either (it was never sent to the token endpoint).
    let user = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap();
    assert_eq!(user.subject(), "alice");
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn discovery_requires_the_issuer_in_the_callback() {
    // oidc-provider advertises authorization_response_iss_parameter_supported, so discover()
    // turns the requirement on: a real callback with its `iss` removed is refused.
    let op = op_url();
    let login = login_with(&op, |b| b).await;
    let (cookie, back) = through_provider(&login, "alice", Consent::Grant).await;
    let query = query_of(&back);
    assert!(query.split('&').any(|p| p.starts_with("iss=")), "{query}");
    let without_iss = query
        .split('&')
        .filter(|p| !p.starts_with("iss="))
        .collect::<Vec<_>>()
        .join("&");
    let e = login
        .callback(Some(&cookie), &without_iss)
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::IssuerMismatch), "{e:?}");
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn offline_access_with_prompt_consent_returns_a_refresh_token() {
    let op = op_url();
    let login = login_with(&op, |b| {
        b.scopes(["email", "offline_access"])
            .authorize_param("prompt", "consent")
    })
    .await;
    let (cookie, back) = through_provider(&login, "alice", Consent::Grant).await;
    let user = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap();
    let refresh = user.refresh_token().expect("a refresh token");
    assert!(!refresh.is_empty());

    // Without prompt=consent, oidc-provider drops offline_access: no refresh token.
    let login = login_with(&op, |b| b.scopes(["email", "offline_access"])).await;
    let (cookie, back) = through_provider(&login, "alice", Consent::Grant).await;
    let user = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap();
    assert_eq!(user.refresh_token(), None);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn replayed_callback_is_refused() {
    let op = op_url();
    let login = login_with(&op, |b| b).await;
    let (cookie, back) = through_provider(&login, "alice", Consent::Grant).await;
    let _user = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap();
    let e = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::UnknownLogin), "{e:?}");
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);

    // The same callback replayed into another pending login (an attacker's fresh login cookie)
    // finds nothing: that login's state is another.
    let other = login.start().await.unwrap();
    let e = login
        .callback(Some(other.login_id()), query_of(&back))
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::UnknownLogin), "{e:?}");
}

/// A store that changes one field of each pending login it hands back, as an attacker who
/// swapped it (or a bug) would.
struct Tamper {
    inner: MemoryStore,
    field: &'static str,
    value: &'static str,
}

impl PendingLoginStore for Tamper {
    fn put(&self, id: String, login: PendingLogin) -> StoreFuture<'_, ()> {
        self.inner.put(id, login)
    }

    fn take<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<PendingLogin>> {
        Box::pin(async move {
            let found = self.inner.take(id).await?;
            Ok(found.map(|p| {
                let mut v = serde_json::to_value(&p).unwrap();
                assert!(v.get(self.field).is_some(), "no field {}", self.field);
                v[self.field] = serde_json::Value::String(self.value.to_owned());
                serde_json::from_value(v).unwrap()
            }))
        })
    }
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn tampered_verifier_is_rejected_by_the_provider() {
    let op = op_url();
    let login = login_with(&op, |b| {
        b.store(Tamper {
            inner: MemoryStore::new(),
            field: "verifier",
            // Well-formed (43 unreserved characters), but not the one the challenge came from.
            value: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        })
    })
    .await;
    let (cookie, back) = through_provider(&login, "alice", Consent::Grant).await;
    let e = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LoginError::CodeRejected(code) if code.as_str() == "invalid_grant"),
        "{e:?}"
    );
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn id_token_with_another_nonce_is_refused() {
    let op = op_url();
    // The provider puts the nonce of the authorization request into the ID token; the pending
    // login expects another one. The exchange succeeds and the ID token passes its signature,
    // issuer, audience and time checks (they come first); only the nonce check refuses it.
    let login = login_with(&op, |b| {
        b.store(Tamper {
            inner: MemoryStore::new(),
            field: "nonce",
            value: "a-nonce-of-another-login",
        })
    })
    .await;
    let (cookie, back) = through_provider(&login, "alice", Consent::Grant).await;
    let e = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::NonceMismatch), "{e:?}");
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn access_denied_at_consent() {
    let op = op_url();
    let login = login_with(&op, |b| b).await;
    let (cookie, back) = through_provider(&login, "alice", Consent::Abort).await;
    assert!(back.contains("error=access_denied"), "{back}");
    let e = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::AccessDenied), "{e:?}");
    let res: Response<String> = login.error_response(&e);
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!res.body().contains("access_denied"));
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn expired_pending_login_is_refused() {
    let op = op_url();
    let clock = ManualClock::new(SystemTime::now());
    let store = MemoryStore::builder().clock(clock.clone()).build().unwrap();
    let login = login_with(&op, |b| {
        b.store(store)
            .clock(clock.clone())
            .pending_ttl(Duration::from_secs(120))
    })
    .await;
    let start = login.start().await.unwrap();
    let cookie = start.login_id().to_owned();
    assert!(start.set_cookie().to_str().unwrap().contains("Max-Age=120"));
    clock.advance(Duration::from_secs(121));
    let back = Browser::new()
        .authorize(start.authorize_url(), "alice", Consent::Grant)
        .await;
    let e = login
        .callback(Some(&cookie), query_of(&back))
        .await
        .unwrap_err();
    assert!(matches!(e, LoginError::Expired), "{e:?}");
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}

async fn body_text(res: Response<Body>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn set_cookies(res: &Response<Body>) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn web_login_example_logs_in_and_out() {
    let op = op_url();
    let login = login_with(&op, |b| b).await;
    let app = web_login::app(login);
    let get = |uri: String, cookie: Option<String>| {
        let mut req = Request::get(uri);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };

    let home = body_text(get("/".into(), None).await.unwrap()).await;
    assert!(home.contains("Log in with the provider"), "{home}");

    let res = get("/login".into(), None).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let authorize = res.headers()["location"].to_str().unwrap().to_owned();
    let login_cookie = set_cookies(&res)[0].split(';').next().unwrap().to_owned();
    assert!(login_cookie.starts_with("tower_auth_login="));
    let back = Browser::new()
        .authorize(&authorize, "bob", Consent::Grant)
        .await;
    let callback = format!("/callback?{}", query_of(&back));

    let res = get(callback.clone(), Some(login_cookie.clone()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/");
    let cookies = set_cookies(&res);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("tower_auth_login=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );

    let home = body_text(get("/".into(), Some(session.clone())).await.unwrap()).await;
    assert!(home.contains("<b id=\"subject\">bob</b>"), "{home}");
    assert!(home.contains("bob@example.test"), "{home}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");

    // The callback URL replayed (back button, history): refused, no second session.
    let res = get(callback, Some(login_cookie)).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookies(&res).iter().all(|c| !c.starts_with("session=")));

    // Logging in again in the same browser replaces its session: the old id stops working.
    let res = get("/login".into(), None).await.unwrap();
    let authorize = res.headers()["location"].to_str().unwrap().to_owned();
    let login_cookie = set_cookies(&res)[0].split(';').next().unwrap().to_owned();
    let back = Browser::new()
        .authorize(&authorize, "bob", Consent::Grant)
        .await;
    let res = get(
        format!("/callback?{}", query_of(&back)),
        Some(format!("{login_cookie}; {session}")),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let old_session = session;
    let session = set_cookies(&res)
        .iter()
        .find(|c| c.starts_with("session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(session, old_session);
    let home = body_text(get("/".into(), Some(old_session)).await.unwrap()).await;
    assert!(home.contains("Not logged in"), "{home}");
    let home = body_text(get("/".into(), Some(session.clone())).await.unwrap()).await;
    assert!(home.contains("<b id=\"subject\">bob</b>"), "{home}");

    let logout = Request::post("/logout")
        .header("cookie", &session)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(logout).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let home = body_text(get("/".into(), Some(session)).await.unwrap()).await;
    assert!(home.contains("Not logged in"), "{home}");
}

#[tokio::test]
#[ignore = "needs the OpenID provider: run scripts/test"]
async fn third_party_client_calls_the_quickstart_as_the_user() {
    // A public native client: no secret, a loopback redirect URI on a port of its own (the
    // provider matches loopback redirect URIs of native clients on any port, RFC 8252).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
    let op = op_url();

    // The quickstart, trusting the provider's JWT access tokens.
    let dir = tempfile::tempdir().unwrap();
    let config = quickstart::config::Config::parse(&format!(
        r#"
database = "sqlite://{}"
insecure_allow_http = true

[[issuers]]
issuer = "{op}"
audiences = ["urn:tower-auth:rs256"]
require_typ = "at+jwt"
"#,
        dir.path().join("quickstart.db").display()
    ))
    .unwrap();
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api_listener.local_addr().unwrap();
    let app = quickstart::app(&config, api_addr).await.unwrap();
    tokio::spawn(async move { axum::serve(api_listener, app).await });

    let options = third_party_client::Options {
        issuer: op.clone(),
        client_id: NATIVE_CLIENT.to_owned(),
        client_secret: None,
        redirect_uri: redirect_uri.clone(),
        resources: vec!["urn:tower-auth:rs256".to_owned()],
        scopes: Vec::new(),
        api: format!("http://{api_addr}"),
        insecure_allow_http: true,
    };
    // The user: opens the printed URL, logs in as carol, consents, and the browser follows the
    // redirect to the client's loopback listener.
    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    let user = tokio::spawn(async move {
        let url = url_rx.await.unwrap();
        let mut browser = Browser::new();
        let back = browser.authorize(&url, "carol", Consent::Grant).await;
        assert!(back.starts_with(&redirect_uri), "{back}");
        // Before the browser comes back: a local connection that sends nothing, another
        // path, and a forged callback. The client answers or drops each and keeps waiting.
        let addr = redirect_uri
            .trim_start_matches("http://")
            .trim_end_matches("/callback")
            .to_owned();
        let _silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let favicon = format!("http://{addr}/favicon.ico");
        assert_eq!(browser.request("GET", &favicon, None).await.status, 404);
        let forged = format!("{redirect_uri}?code=forged&state=forged");
        assert_eq!(browser.request("GET", &forged, None).await.status, 400);
        browser.request("GET", &back, None).await
    });
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        third_party_client::run(&options, listener, |url| {
            url_tx.send(url.to_owned()).unwrap();
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let page = user.await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Login complete"), "{}", page.body);

    assert_eq!(outcome.login.subject(), "carol");
    assert_eq!(outcome.me_status, 200, "{}", outcome.me_body);
    let me: serde_json::Value = serde_json::from_str(&outcome.me_body).unwrap();
    assert_eq!(me["subject"], "carol");
    assert_eq!(me["kind"], "user");
    assert_eq!(me["scheme"], "jwt");
    assert_eq!(me["issuer"], op.as_str());
}
