use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::client_credentials::DestinationError;
use crate::introspection::ClientAuth;

/// The last token request: whether it used HTTP Basic, and its form.
type LastRequest = Arc<std::sync::Mutex<Option<(bool, HashMap<String, String>)>>>;

#[derive(Clone)]
struct Endpoint {
    /// Answer `expires_in` as a JSON string (which the token response type does not accept).
    string_expiry: bool,
    issued: Arc<AtomicU64>,
    expires_in: u64,
    last_form: LastRequest,
}

/// A loopback token endpoint: accepts `cc` / `cc-secret` by Basic or in the body, and issues
/// `tok-1`, `tok-2`, ...
async fn token_endpoint(
    State(ep): State<Endpoint>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let basic = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some("Basic Y2M6Y2Mtc2VjcmV0");
    let post = form.get("client_id").map(String::as_str) == Some("cc")
        && form.get("client_secret").map(String::as_str) == Some("cc-secret");
    *ep.last_form.lock().unwrap() = Some((basic, form.clone()));
    if !(basic || post) || form.get("grant_type").map(String::as_str) != Some("client_credentials")
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client"})),
        );
    }
    let n = ep.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let expires_in = if ep.string_expiry {
        serde_json::json!(ep.expires_in.to_string())
    } else {
        serde_json::json!(ep.expires_in)
    };
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({
            "access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": expires_in,
        })),
    )
}

async fn start(expires_in: u64) -> (String, Endpoint) {
    start_with(expires_in, false).await
}

async fn start_with(expires_in: u64, string_expiry: bool) -> (String, Endpoint) {
    let ep = Endpoint {
        string_expiry,
        issued: Arc::new(AtomicU64::new(0)),
        expires_in,
        last_form: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token_endpoint))
        .with_state(ep.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/token"), ep)
}

fn tokens(url: &str) -> ClientCredentialsBuilder {
    ClientCredentials::builder(url)
        .client_id("cc")
        .client_secret("cc-secret")
        .insecure_allow_http(true)
}

/// The called API: records the Authorization header of each call; answers 401 to the tokens in
/// `refused`.
fn api(
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    refused: &'static [&'static str],
) -> impl Service<Request<Full<Bytes>>, Response = Response<()>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(move |req: Request<Full<Bytes>>| {
        let seen = Arc::clone(&seen);
        async move {
            let auth = req.headers().get(AUTHORIZATION).unwrap();
            assert!(auth.is_sensitive());
            let auth = auth.to_str().unwrap().to_owned();
            let mut res = Response::new(());
            if refused.iter().any(|t| auth == format!("Bearer {t}")) {
                *res.status_mut() = StatusCode::UNAUTHORIZED;
            }
            seen.lock().unwrap().push(auth);
            Ok::<_, Infallible>(res)
        }
    })
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://api.test/items")
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn one_token_request_for_many_concurrent_calls() {
    let (url, ep) = start(300).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let svc = ClientCredentialsLayer::new(tokens(&url).build().unwrap())
        .insecure_allow_http(true)
        .layer(api(Arc::clone(&seen), &[]));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(get()).await.unwrap().status() })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(ep.issued.load(Ordering::SeqCst), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 50);
    assert!(seen.iter().all(|a| a == "Bearer tok-1"));
}

#[tokio::test]
async fn an_expired_token_is_replaced() {
    let (url, ep) = start(1).await;
    let t = tokens(&url).build().unwrap();
    let first = t.token().await.unwrap();
    assert_eq!(first.authorization(), "Bearer tok-1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = t.token().await.unwrap();
    assert_eq!(second.authorization(), "Bearer tok-2");
    assert_eq!(ep.issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refresh_ahead_keeps_callers_from_waiting() {
    let (url, ep) = start(4).await;
    let t = tokens(&url).expiry_skew(Duration::ZERO).build().unwrap();
    assert_eq!(t.token().await.unwrap().authorization(), "Bearer tok-1");
    // Past three quarters of the lifetime: the current token is still handed out at once and a
    // refresh starts in the background.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(t.token().await.unwrap().authorization(), "Bearer tok-1");
    for _ in 0..50 {
        if ep.issued.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ep.issued.load(Ordering::SeqCst), 2);
    assert_eq!(t.token().await.unwrap().authorization(), "Bearer tok-2");
}

#[tokio::test]
async fn no_token_no_request() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let svc =
        ClientCredentialsLayer::new(tokens(&format!("http://{closed}/token")).build().unwrap())
            .insecure_allow_http(true)
            .layer(api(Arc::clone(&seen), &[]));
    let err = svc.oneshot(get()).await.unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<TokenError>(),
            Some(TokenError::Endpoint(_))
        ),
        "{err:?}"
    );
    assert!(seen.lock().unwrap().is_empty());

    let (url, _) = start(300).await;
    let svc = ClientCredentialsLayer::new(tokens(&url).client_secret("wrong").build().unwrap())
        .insecure_allow_http(true)
        .layer(api(Arc::clone(&seen), &[]));
    let err = svc.oneshot(get()).await.unwrap_err();
    match err.downcast_ref::<TokenError>() {
        Some(TokenError::Refused(code)) => assert_eq!(code, "invalid_client"),
        other => panic!("{other:?}"),
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries_an_empty_body_request() {
    let (url, ep) = start(300).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let svc = ClientCredentialsLayer::new(tokens(&url).build().unwrap())
        .insecure_allow_http(true)
        .layer(api(Arc::clone(&seen), &["tok-1"]));
    let res = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(ep.issued.load(Ordering::SeqCst), 2);
    assert_eq!(*seen.lock().unwrap(), ["Bearer tok-1", "Bearer tok-2"]);

    // A token refused again is not retried a second time.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (url, ep) = start(300).await;
    let svc = ClientCredentialsLayer::new(tokens(&url).build().unwrap())
        .insecure_allow_http(true)
        .layer(api(Arc::clone(&seen), &["tok-1", "tok-2"]));
    let res = svc.oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(ep.issued.load(Ordering::SeqCst), 2);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_request_with_a_body_is_not_replayed() {
    let (url, ep) = start(300).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let svc = ClientCredentialsLayer::new(tokens(&url).build().unwrap())
        .insecure_allow_http(true)
        .layer(api(Arc::clone(&seen), &["tok-1"]));
    let req = Request::post("http://api.test/items")
        .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(ep.issued.load(Ordering::SeqCst), 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn scopes_resources_and_client_authentication_are_sent() {
    let (url, ep) = start(300).await;
    let t = tokens(&url)
        .scopes(["read:items", "write:items"])
        .resources(["urn:api"])
        .build()
        .unwrap();
    t.token().await.unwrap();
    let (basic, form) = ep.last_form.lock().unwrap().clone().unwrap();
    assert!(basic);
    assert_eq!(form["scope"], "read:items write:items");
    assert_eq!(form["resource"], "urn:api");
    assert!(!form.contains_key("client_secret"));

    let t = tokens(&url)
        .client_auth(ClientAuth::ClientSecretPost)
        .build()
        .unwrap();
    t.token().await.unwrap();
    let (basic, form) = ep.last_form.lock().unwrap().clone().unwrap();
    assert!(!basic);
    assert_eq!(form["client_secret"], "cc-secret");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let (url, _) = start(300).await;
    let b = tokens(&url).client_secret("hunter2-secret");
    assert!(!format!("{b:?}").contains("hunter2"));
    let t = b.build().unwrap();
    assert!(!format!("{t:?}").contains("hunter2"));
    let token = tokens(&url).build().unwrap().token().await.unwrap();
    assert!(!format!("{token:?}").contains("tok-1"));
}

#[test]
fn configuration_is_validated() {
    let e = ClientCredentials::builder("http://as.example/token")
        .client_id("a")
        .client_secret("b")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "token_endpoint");
    let e = ClientCredentials::builder("https://as.example/token")
        .client_id("a")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "client_secret");
}

#[tokio::test]
async fn tokens_go_to_https_and_allowed_origins_only() {
    let (url, ep) = start(300).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    // The default: https only.
    let svc = ClientCredentialsLayer::new(tokens(&url).build().unwrap())
        .layer(api(Arc::clone(&seen), &[]));
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<DestinationError>(),
        Some(&DestinationError::InsecureScheme)
    );

    let svc = ClientCredentialsLayer::new(tokens(&url).build().unwrap())
        .allowed_origins(["https://api.test"])
        .layer(api(Arc::clone(&seen), &[]));
    let to = |uri: &str| Request::get(uri).body(Full::default()).unwrap();
    let res = svc
        .clone()
        .oneshot(to("https://api.test/items"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let err = svc
        .clone()
        .oneshot(to("https://attacker.test/collect"))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<DestinationError>(),
        Some(&DestinationError::NotAllowed)
    );
    let err = svc
        .clone()
        .oneshot(to("https://api.test:8443/items"))
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<DestinationError>(),
        Some(&DestinationError::NotAllowed)
    );
    // A path-only URI goes where the client is bound (tonic's Channel): not checked.
    let res = svc.clone().oneshot(to("/items")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Only the allowed calls reached the API; the refused ones did not even fetch a token.
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(ep.issued.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn callers_queued_behind_a_failed_request_share_its_failure() {
    // A token endpoint that takes 200 ms to fail: 20 concurrent callers must not each wait for
    // their own failed request in turn.
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let t = tokens(&format!("http://{addr}/token")).build().unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move { t.token().await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    // The first request fails; everyone who queued behind it shares that failure. (A caller that
    // arrives after a failure tries again.)
    assert!(
        calls.load(Ordering::SeqCst) <= 2,
        "{} token requests",
        calls.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn an_unreadable_token_response_keeps_nothing_of_the_body() {
    // `expires_in` as a string: the response cannot be read, and the error must not carry the
    // body, which holds the token.
    let (url, _) = start_with(300, true).await;
    let err = tokens(&url).build().unwrap().token().await.unwrap_err();
    assert!(matches!(err, TokenError::Malformed), "{err:?}");
    assert!(!format!("{err:?}").contains("tok-"));
    assert!(!err.to_string().contains("tok-"));
}
