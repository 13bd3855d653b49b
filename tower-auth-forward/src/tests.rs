//! The forward-authentication endpoint, request by request (`oneshot`, no server).

use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{ServiceExt, service_fn};
use tower_auth_core::credential::{Found, Location, bearer_token, header_value};
use tower_auth_core::{
    AuthError, Authenticator, BoxAuthFuture, OnRejection, Principal, ProblemRejection, Scheme,
    from_fn,
};

use crate::{ForwardAuth, ForwardBody, Rule};

const READER: &str = "key-reader";
const ADMIN: &str = "key-admin";
const EVIL: &str = "key-evil";
const DOWN: &str = "key-down";
const JWT: &str = "eyJ.jwt.token";
const SLOW: &str = "slow-writer";

/// API keys in `X-API-Key`, JWTs as Bearer tokens: two schemes composed with `or`.
fn schemes() -> impl Authenticator<Credential = impl Send> + Clone + Send + Sync + 'static {
    let x_api_key = HeaderName::from_static("x-api-key");
    let api_key = from_fn(Location::Header(x_api_key.clone()), move |parts| {
        let Some(key) = header_value(&parts.headers, &x_api_key)? else {
            return Ok(None);
        };
        let p = |subject: &str| Principal::builder(subject, Scheme::ApiKey);
        Ok(Some(match key {
            READER => p("reader").scopes(["read:items"]).tenant("acme").build(),
            ADMIN => p("root")
                .scopes(["read:items", "write:items"])
                .roles(["admin", "ops"])
                .build(),
            EVIL => p("eve\r\nX-Auth-Roles: admin")
                .scopes(["read:items", "x\ny", "50%"])
                .roles(["ad min", "r\u{f4}le"])
                .tenant("t e\u{0}n")
                .build(),
            DOWN => return Err(AuthError::unavailable("key store unavailable")),
            _ => return Err(AuthError::invalid_token("unknown api key")),
        }))
    });
    let jwt = from_fn(Location::Authorization, |parts| {
        Ok(match bearer_token(&parts.headers)? {
            Some(JWT) => Some(
                Principal::builder("jay", Scheme::Jwt)
                    .scopes(["read:items"])
                    .build(),
            ),
            Some(t) if t.starts_with("eyJ") => {
                return Err(AuthError::invalid_token("bad signature"));
            }
            _ => None,
        })
    });
    api_key.or(jwt)
}

/// A scheme that decides asynchronously, to exercise the pending path of the response future.
#[derive(Clone)]
struct Slow;

impl Authenticator for Slow {
    type Credential = String;
    type Future = BoxAuthFuture;

    fn extract(&self, parts: &Parts) -> Result<Option<Found<String>>, AuthError> {
        Ok(parts.headers.get("x-slow").map(|v| {
            Found::new(
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                Location::Custom("x-slow"),
                Scheme::Custom("slow"),
            )
        }))
    }

    fn authenticate(&self, credential: String) -> BoxAuthFuture {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if credential == SLOW {
                Ok(Principal::builder("sloth", Scheme::Custom("slow"))
                    .scopes(["write:items"])
                    .build())
            } else {
                Err(AuthError::invalid_token("unknown slow token"))
            }
        })
    }
}

fn rules() -> Vec<Rule> {
    vec![
        Rule::path_prefix("/api/")
            .methods(["GET", "HEAD"])
            .schemes([Scheme::ApiKey, Scheme::Jwt])
            .scopes(["read:items"]),
        Rule::path("/api/items")
            .methods(["POST"])
            .scopes(["write:items"]),
        Rule::path_prefix("/admin").roles(["admin"]),
        Rule::path_prefix("/static/").anonymous(true),
        Rule::path("/public").anonymous(true),
        Rule::path_prefix("/jwt-only").schemes([Scheme::Jwt]),
        Rule::path_prefix("/slow").scopes(["write:items"]),
    ]
}

fn service() -> ForwardAuth<impl Authenticator + Clone> {
    ForwardAuth::builder(schemes().or(Slow))
        .rules(rules())
        .envoy_prefix("/forward-auth/envoy/")
        .build()
        .unwrap()
}

/// Every credential used in these tests, none of which may ever appear in a response.
const SECRETS: [&str; 6] = [READER, ADMIN, EVIL, DOWN, JWT, SLOW];

async fn call<A, R>(svc: &ForwardAuth<A, R>, req: Request<()>) -> Response<ForwardBody>
where
    A: Authenticator,
    R: OnRejection<ForwardBody>,
{
    let res = svc.clone().oneshot(req).await.unwrap();
    for (name, value) in res.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        for secret in SECRETS {
            assert!(
                !value.contains(secret),
                "{name}: {value} leaks a credential"
            );
        }
    }
    res
}

/// A Traefik ForwardAuth request for `method uri` with extra headers.
fn traefik(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get("/forward-auth")
        .header("x-forwarded-method", method)
        .header("x-forwarded-host", "app.example")
        .header("x-forwarded-uri", uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

/// An nginx `auth_request` subrequest.
fn nginx(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get("/forward-auth")
        .header("x-original-method", method)
        .header("x-original-uri", uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn key(k: &str) -> [(&str, &str); 1] {
    [("x-api-key", k)]
}

fn www(res: &Response<ForwardBody>) -> Option<&str> {
    res.headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap())
}

fn identity_names(res: &Response<ForwardBody>) -> Vec<&str> {
    res.headers()
        .keys()
        .map(HeaderName::as_str)
        .filter(|n| n.starts_with("x-auth-"))
        .collect()
}

async fn body(res: Response<ForwardBody>) -> bytes::Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn allowed_is_200_with_identity_headers_and_an_empty_body() {
    let svc = service();
    for req in [
        traefik("GET", "/api/items?page=2", &key(READER)),
        nginx("HEAD", "/api/items", &key(READER)),
        Request::get("/forward-auth/envoy/api/items?page=2")
            .header("x-api-key", READER)
            .body(())
            .unwrap(),
    ] {
        let res = call(&svc, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert_eq!(h["x-auth-subject"], "reader");
        assert_eq!(h["x-auth-scheme"], "api_key");
        assert_eq!(h["x-auth-scopes"], "read:items");
        assert_eq!(h["x-auth-tenant"], "acme");
        // No roles: the header is left out rather than sent empty.
        assert!(!h.contains_key("x-auth-roles"));
        assert!(body(res).await.is_empty());
    }
    let res = call(&svc, nginx("GET", "/admin/users", &key(ADMIN))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-auth-roles"], "admin ops");
    assert_eq!(res.headers()["x-auth-scopes"], "read:items write:items");
    let res = call(
        &svc,
        traefik(
            "GET",
            "/jwt-only",
            &[("authorization", &format!("Bearer {JWT}"))],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-auth-scheme"], "jwt");
}

#[tokio::test]
async fn identity_header_names_are_configurable() {
    let svc = ForwardAuth::builder(schemes())
        .rule(Rule::path_prefix("/"))
        .subject_header("X-User")
        .scheme_header("x-user-scheme")
        .scopes_header("x-user-scopes")
        .roles_header("x-user-roles")
        .tenant_header("x-user-tenant")
        .build()
        .unwrap();
    let res = call(&svc, traefik("GET", "/admin", &key(ADMIN))).await;
    assert_eq!(res.headers()["x-user"], "root");
    assert_eq!(res.headers()["x-user-roles"], "admin ops");
    assert!(identity_names(&res).is_empty());
}

#[tokio::test]
async fn refusals_follow_the_response_contract() {
    let svc = service();
    // No credential: 401 with the bare challenge for the proxy to pass on.
    let res = call(&svc, traefik("GET", "/api/items", &[])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www(&res), Some("Bearer realm=\"api\""));
    // Bad credential: 401 invalid_token.
    let res = call(&svc, traefik("GET", "/api/items", &key("key-unknown"))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(www(&res).unwrap().contains("error=\"invalid_token\""));
    // Credentials in two places: 400.
    let res = call(
        &svc,
        traefik(
            "GET",
            "/api/items",
            &[
                ("x-api-key", READER),
                ("authorization", &format!("Bearer {JWT}")),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(www(&res).unwrap().contains("error=\"invalid_request\""));
    // Store down: 503 with Retry-After, no challenge.
    let res = call(&svc, traefik("GET", "/api/items", &key(DOWN))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[RETRY_AFTER], "5");
    assert_eq!(www(&res), None);
    assert!(identity_names(&res).is_empty());
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope_and_missing_role_a_bare_403() {
    let svc = service();
    let res = call(&svc, traefik("POST", "/api/items", &key(READER))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(www(&res).unwrap().ends_with("error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"write:items\""));
    assert!(identity_names(&res).is_empty());

    let res = call(&svc, traefik("GET", "/admin", &key(READER))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(www(&res), None, "roles are not scopes: no scope attribute");
    assert!(identity_names(&res).is_empty());
}

#[tokio::test]
async fn most_specific_rule_allowing_the_method_wins() {
    let svc = service();
    // The exact POST rule needs write:items; GET falls to the prefix rule (read:items).
    assert_eq!(
        call(&svc, traefik("GET", "/api/items", &key(READER)))
            .await
            .status(),
        200
    );
    assert_eq!(
        call(&svc, traefik("POST", "/api/items", &key(READER)))
            .await
            .status(),
        403
    );
    assert_eq!(
        call(&svc, traefik("POST", "/api/items", &key(ADMIN)))
            .await
            .status(),
        200
    );
    // A covered path with no rule for the method: 403, even with a strong credential.
    let res = call(&svc, traefik("DELETE", "/api/items", &key(ADMIN))).await;
    assert_eq!((res.status(), www(&res)), (StatusCode::FORBIDDEN, None));
    let res = call(&svc, traefik("PUT", "/api/other", &[])).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Whole segments: `/apix` is not under `/api/`, so no rule covers it.
    assert_eq!(
        call(&svc, traefik("GET", "/apix", &key(READER)))
            .await
            .status(),
        403
    );
    assert_eq!(
        call(&svc, traefik("GET", "/api", &key(READER)))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn no_rule_is_403_with_or_without_a_credential() {
    let svc = service();
    for headers in [&[][..], &key(ADMIN)[..], &key("key-unknown")[..]] {
        let res = call(&svc, traefik("GET", "/nowhere", headers)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(www(&res), None);
    }
}

#[tokio::test]
async fn a_credential_of_a_scheme_the_rule_does_not_accept_is_invalid_token() {
    let svc = service();
    let res = call(&svc, traefik("GET", "/jwt-only/x", &key(ADMIN))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(www(&res).unwrap().contains("error=\"invalid_token\""));
    // The slow scheme is not among /api/'s schemes either: refused before it is checked, so
    // a credential that would be valid is still 401.
    let res = call(&svc, traefik("GET", "/api/items", &[("x-slow", SLOW)])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(www(&res).unwrap().contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn anonymous_rules_treat_a_present_credential_as_optional_mode_does() {
    let svc = service();
    let res = call(&svc, traefik("GET", "/public", &[])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        identity_names(&res).is_empty(),
        "no identity headers on an anonymous pass"
    );
    let res = call(&svc, traefik("GET", "/static/app.js", &key(READER))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-auth-subject"], "reader");
    let res = call(&svc, traefik("GET", "/public", &key("key-unknown"))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(www(&res).unwrap().contains("error=\"invalid_token\""));
    let res = call(&svc, traefik("GET", "/public", &key(DOWN))).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Exact: `/public/x` is not `/public`.
    assert_eq!(
        call(&svc, traefik("GET", "/public/x", &[])).await.status(),
        403
    );
}

#[tokio::test]
async fn paths_are_normalised_before_matching() {
    let svc = service();
    // Each would match the anonymous `/static/` prefix if read raw; normalised, each is
    // `/admin`, which needs a credential.
    for uri in [
        "/static/../admin",
        "/static/%2e%2e/admin",
        "/static/%2E./admin",
        "/static/./../admin/",
        "/static/x/../../admin",
    ] {
        let res = call(&svc, nginx("GET", uri, &[])).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
    // Decoding: `/%61pi/items` is `/api/items`.
    let res = call(&svc, nginx("GET", "/%61pi/items", &[])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The query is not part of the path.
    let res = call(&svc, nginx("GET", "/static/app.js?next=/../admin", &[])).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn ambiguous_paths_are_400_invalid_request() {
    let svc = service();
    for uri in [
        "/static/..%2fadmin",
        "/static%2F..%2Fadmin",
        "/static/..%5cadmin",
        "/static\\..\\admin",
        "/static/..;/admin",
        "/static/%3b/admin",
        "/static//admin",
        "//static/x",
        "/static/%00",
        "/static/%0d%0a",
        "/static/%zz",
        "/static/%c3%28",
        "static/x",
        "*",
    ] {
        for req in [nginx("GET", uri, &[]), traefik("GET", uri, &[])] {
            let res = call(&svc, req).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{uri}");
            assert!(
                www(&res).unwrap().contains("error=\"invalid_request\""),
                "{uri}"
            );
        }
    }
}

#[tokio::test]
async fn the_original_request_must_be_given_once_and_whole() {
    let svc = service();
    let bad = [
        // Nothing forwarded.
        Request::get("/forward-auth").body(()).unwrap(),
        // A path without a method, in either style.
        Request::get("/forward-auth")
            .header("x-original-uri", "/public")
            .body(())
            .unwrap(),
        Request::get("/forward-auth")
            .header("x-forwarded-uri", "/public")
            .body(())
            .unwrap(),
        // A method without a path.
        Request::get("/forward-auth")
            .header("x-forwarded-method", "GET")
            .body(())
            .unwrap(),
        // Two styles at once: a client can add the one its proxy does not set.
        nginx(
            "GET",
            "/admin",
            &[
                ("x-forwarded-uri", "/public"),
                ("x-forwarded-method", "GET"),
            ],
        ),
        traefik("GET", "/admin", &[("x-original-uri", "/public")]),
        Request::get("/forward-auth/envoy/admin")
            .header("x-forwarded-uri", "/public")
            .body(())
            .unwrap(),
        // A header given twice.
        traefik("GET", "/admin", &[("x-forwarded-uri", "/public")]),
        nginx("GET", "/public", &[("x-original-method", "POST")]),
        // A malformed method.
        nginx("G T", "/public", &[]),
        // The Envoy prefix alone carries no path.
        Request::get("/forward-auth/envoy").body(()).unwrap(),
    ];
    for req in bad {
        let what = format!("{} {:?}", req.uri(), req.headers());
        let res = call(&svc, req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    // The Envoy prefix matches whole segments.
    let res = call(
        &svc,
        Request::get("/forward-auth/envoyx/public")
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = call(
        &svc,
        Request::get("/forward-auth/envoy/public").body(()).unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // In Envoy's mode the request's own method is the original one.
    let res = call(
        &svc,
        Request::delete("/forward-auth/envoy/api/items")
            .header("x-api-key", ADMIN)
            .body(())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn claims_cannot_inject_or_split_identity_headers() {
    let svc = service();
    let res = call(&svc, traefik("GET", "/api/items", &key(EVIL))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["x-auth-subject"], "eve%0D%0AX-Auth-Roles:%20admin");
    assert_eq!(h["x-auth-scopes"], "50%25 read:items x%0Ay");
    assert_eq!(h["x-auth-roles"], "ad%20min r%C3%B4le");
    assert_eq!(h["x-auth-tenant"], "t%20e%00n");
    assert_eq!(h.get_all("x-auth-roles").iter().count(), 1);
    for (name, value) in h {
        assert!(
            value
                .as_bytes()
                .iter()
                .all(|b| (0x21..=0x7e).contains(b) || *b == b' '),
            "{name}: {value:?}"
        );
    }
    // Split on single spaces, each list gives back exactly its items.
    let roles: Vec<&str> = h["x-auth-roles"].to_str().unwrap().split(' ').collect();
    assert_eq!(roles, ["ad%20min", "r%C3%B4le"]);
}

#[tokio::test]
async fn asynchronous_schemes_get_the_same_rules() {
    let svc = service();
    let res = call(&svc, traefik("GET", "/slow/x", &[("x-slow", SLOW)])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-auth-subject"], "sloth");
    let res = call(&svc, traefik("GET", "/slow/x", &[("x-slow", "nope")])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Scopes are checked once the future resolves.
    let svc = ForwardAuth::builder(Slow)
        .rule(Rule::path_prefix("/").scopes(["admin"]))
        .build()
        .unwrap();
    let res = call(&svc, traefik("GET", "/x", &[("x-slow", SLOW)])).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(www(&res).unwrap().contains("scope=\"admin\""));
}

#[tokio::test]
async fn schemes_see_the_original_method_and_uri() {
    // A scheme reading the query (API keys in a query parameter, when enabled) or the method
    // (a proof bound to them) must see the client's request, not the subrequest's.
    let auth = from_fn(Location::Query("token".into()), |parts| {
        Ok(
            (parts.method == http::Method::PATCH && parts.uri == "/api/x?token=q")
                .then(|| Principal::builder("q", Scheme::Custom("query")).build()),
        )
    });
    let svc = ForwardAuth::builder(auth)
        .rule(Rule::path_prefix("/api"))
        .envoy_prefix("/ext")
        .build()
        .unwrap();
    assert_eq!(
        call(&svc, nginx("PATCH", "/api/x?token=q", &[]))
            .await
            .status(),
        200
    );
    let req = Request::patch("/ext/api/x?token=q").body(()).unwrap();
    assert_eq!(call(&svc, req).await.status(), 200);
    assert_eq!(
        call(&svc, nginx("GET", "/api/x?token=q", &[]))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn problem_documents_are_available() {
    let svc = ForwardAuth::builder(schemes())
        .rule(Rule::path_prefix("/"))
        .rejection(ProblemRejection::new())
        .build()
        .unwrap();
    let res = call(&svc, traefik("GET", "/x", &[])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(!body(res).await.is_empty());
}

#[tokio::test]
async fn bad_settings_name_the_key_and_value() {
    let e = ForwardAuth::builder(schemes()).build().unwrap_err();
    assert_eq!(e.setting(), "rules");
    for (prefix, value) in [("/", "\"/\""), ("fa", "\"fa\""), ("/a//b", "\"/a//b\"")] {
        let e = ForwardAuth::builder(schemes())
            .rule(Rule::path("/"))
            .envoy_prefix(prefix)
            .build()
            .unwrap_err();
        assert_eq!((e.setting(), e.value()), ("envoy_prefix", value));
    }
    let e = ForwardAuth::builder(schemes())
        .rule(Rule::path("/"))
        .tenant_header("bad header")
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "tenant_header");
}

#[tokio::test]
async fn serves_behind_a_proxy_made_of_services() {
    // A toy proxy: ask the endpoint, then call the upstream with the identity headers, as
    // nginx's `auth_request` + `proxy_set_header` do.
    let auth = service();
    let upstream = service_fn(|req: Request<()>| async move {
        let who = req.headers().get("x-auth-subject").cloned();
        Ok::<_, std::convert::Infallible>(Response::new(who))
    });
    let proxy = |req: Request<()>| {
        let auth = auth.clone();
        async move {
            let mut sub = nginx(req.method().as_str(), &req.uri().to_string(), &[]);
            *sub.headers_mut() = {
                let mut h = req.headers().clone();
                h.extend(sub.headers().clone());
                h
            };
            let decision = auth.oneshot(sub).await.unwrap();
            if decision.status() != StatusCode::OK {
                return Err(decision.status());
            }
            let mut req = req;
            req.headers_mut().remove("x-auth-subject");
            if let Some(v) = decision.headers().get("x-auth-subject") {
                req.headers_mut().insert("x-auth-subject", v.clone());
            }
            Ok(upstream.oneshot(req).await.unwrap().into_body())
        }
    };
    let forged = Request::get("/static/x")
        .header("x-auth-subject", "root")
        .body(())
        .unwrap();
    assert_eq!(proxy(forged).await, Ok(None));
    let keyed = Request::get("/api/x")
        .header("x-api-key", READER)
        .body(())
        .unwrap();
    assert_eq!(
        proxy(keyed).await,
        Ok(Some(http::HeaderValue::from_static("reader")))
    );
    let none = Request::get("/api/x").body(()).unwrap();
    assert_eq!(proxy(none).await, Err(StatusCode::UNAUTHORIZED));
}
