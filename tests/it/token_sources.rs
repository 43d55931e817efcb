//! Where the token comes from, through the real layer: the Bearer header (the default), a named
//! cookie guarded against CSRF, both, and a custom resolver. Real RSA-2048 tokens from the local
//! JWKS server; each refusal asserts the status, the exact challenge and the `AuthError`.
//!
//! Every source is tried twice per token where it matters: the first request verifies the token
//! afresh (the token is read again from the request inside the verifying future), the second
//! hits the cache of verified tokens.

use crate::support;

use std::convert::Infallible;

use http::header::{AUTHORIZATION, COOKIE, ORIGIN};
use http::request::Parts;
use http::{HeaderName, Method, Request, Response};
use support::{access_claims, challenge, key, local_config, mint, JwksServer};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt as _};
use tower_cognito::{
    AuthError, CognitoAuthLayer, ConfigError, CsrfRule, InvalidRequest, InvalidToken, TokenSource,
    TokenUse, Verified, Verifier,
};

const POOL: &str = "us-east-1_SrcTest1";
const CLIENT: &str = "source0client0id0for0tests";
const COOKIE_NAME: &str = "__Host-access_token";
const NO_CLAIMS: &str = "NO CLAIMS";
const BARE: &str = "Bearer realm=\"cognito\"";
const CROSS_SITE: &str = "Bearer realm=\"cognito\", error=\"invalid_request\", error_description=\"The cookie credentials lack the CSRF header or an allowed Origin\"";
const TWO: &str = "Bearer realm=\"cognito\", error=\"invalid_request\", error_description=\"More than one credential was presented\"";

type App = BoxCloneService<Request<()>, Response<String>, Infallible>;

/// What the handler saw: the `sub` of the verified claims (or `NO CLAIMS`), and what it read
/// back from the request (method, path, a header, an extension) to show nothing was lost.
async fn handler(request: Request<()>) -> Result<Response<String>, Infallible> {
    let who = match request.extensions().get::<Verified>() {
        Some(v) => v.claims().sub.clone(),
        None => NO_CLAIMS.to_owned(),
    };
    let marker = request.extensions().get::<Marker>().map_or("-", |m| m.0);
    let header = request
        .headers()
        .get("x-kept")
        .map_or("-", |v| v.to_str().unwrap());
    Ok(Response::new(format!(
        "{who} {} {} {header} {marker}",
        request.method(),
        request.uri().path()
    )))
}

#[derive(Clone)]
struct Marker(&'static str);

fn app(server: &JwksServer, layer: impl FnOnce(CognitoAuthLayer) -> CognitoAuthLayer) -> App {
    let verifier = Verifier::new(local_config(server, TokenUse::Access, CLIENT)).unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer(CognitoAuthLayer::new(verifier)))
        .service_fn(handler);
    BoxCloneService::new(svc)
}

fn token(server: &JwksServer) -> String {
    mint(key(0), &access_claims(&server.issuer(), CLIENT))
}

fn csrf_header() -> CsrfRule {
    CsrfRule::require_header(HeaderName::from_static("x-csrf")).unwrap()
}

/// The answer, reduced to what the tests compare.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    challenge: Option<String>,
    error: Option<AuthError>,
    body: String,
}

async fn send(app: &App, request: Request<()>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    Answer {
        status: response.status().as_u16(),
        challenge: challenge(&response),
        error: response.extensions().get::<AuthError>().cloned(),
        body: response.into_body(),
    }
}

fn request(method: Method, headers: &[(HeaderName, String)]) -> Request<()> {
    let mut builder = Request::builder().method(method).uri("/orders");
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(()).unwrap()
}

fn cookie(value: &str) -> (HeaderName, String) {
    (COOKIE, format!("theme=dark; {COOKIE_NAME}={value}"))
}

fn bearer(token: &str) -> (HeaderName, String) {
    (AUTHORIZATION, format!("Bearer {token}"))
}

fn header(name: &'static str, value: &str) -> (HeaderName, String) {
    (HeaderName::from_static(name), value.to_owned())
}

#[track_caller]
fn assert_accepted(answer: &Answer, method: &str) {
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer
            .body
            .starts_with(&format!("{} {method} /orders", support::SUB)),
        "{answer:?}"
    );
}

#[track_caller]
fn assert_refused(answer: &Answer, status: u16, challenge: &str, error: AuthError) {
    assert_eq!(
        (
            answer.status,
            answer.challenge.as_deref(),
            answer.error.as_ref()
        ),
        (status, Some(challenge), Some(&error)),
        "{answer:?}"
    );
    assert_ne!(answer.body.split(' ').next(), Some(support::SUB));
}

fn cross_site() -> AuthError {
    AuthError::InvalidRequest(InvalidRequest::CrossSiteRequest)
}

fn two_credentials() -> AuthError {
    AuthError::InvalidRequest(InvalidRequest::MultipleCredentials)
}

#[tokio::test]
async fn the_default_source_is_the_bearer_header_only() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let app = app(&server, |l| l);
    let token = token(&server);
    for _ in 0..2 {
        assert_accepted(
            &send(&app, request(Method::GET, &[bearer(&token)])).await,
            "GET",
        );
    }
    // A cookie of any name is not a token to the default source.
    let answer = send(&app, request(Method::GET, &[cookie(&token)])).await;
    assert_refused(&answer, 401, BARE, AuthError::MissingToken);
}

#[tokio::test]
async fn a_cookie_token_is_taken_on_safe_methods() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let source = TokenSource::cookie(COOKIE_NAME, csrf_header()).unwrap();
    let app = app(&server, |l| l.token_source(source));
    let token = token(&server);
    // Fresh, then from the cache.
    for _ in 0..2 {
        assert_accepted(
            &send(&app, request(Method::GET, &[cookie(&token)])).await,
            "GET",
        );
    }
    for method in [Method::HEAD, Method::OPTIONS, Method::TRACE] {
        let name = method.to_string();
        assert_accepted(&send(&app, request(method, &[cookie(&token)])).await, &name);
    }
    // In double quotes, in a second `Cookie` header (HTTP/2 splits them), with spaces.
    let quoted = (COOKIE, format!("{COOKIE_NAME}=\"{token}\""));
    assert_accepted(&send(&app, request(Method::GET, &[quoted])).await, "GET");
    let split = [
        (COOKIE, "theme=dark".to_owned()),
        (COOKIE, format!("lang=en;  {COOKIE_NAME}={token} ")),
    ];
    assert_accepted(&send(&app, request(Method::GET, &split)).await, "GET");
}

#[tokio::test]
async fn a_cookie_only_source_does_not_read_the_header() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let source = TokenSource::cookie(COOKIE_NAME, csrf_header()).unwrap();
    let app = app(&server, |l| l.token_source(source));
    let token = token(&server);
    let answer = send(&app, request(Method::GET, &[bearer(&token)])).await;
    assert_refused(&answer, 401, BARE, AuthError::MissingToken);
    // The header beside the cookie changes nothing: the cookie is the token.
    let both = [bearer("garbage"), cookie(&token)];
    assert_accepted(&send(&app, request(Method::GET, &both)).await, "GET");
}

#[tokio::test]
async fn an_unsafe_request_with_a_cookie_needs_the_csrf_header() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let source = TokenSource::cookie(COOKIE_NAME, csrf_header()).unwrap();
    let app = app(&server, |l| l.token_source(source));
    let token = token(&server);
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let name = method.to_string();
        let forged = send(&app, request(method.clone(), &[cookie(&token)])).await;
        assert_refused(&forged, 400, CROSS_SITE, cross_site());
        let empty = [cookie(&token), header("x-csrf", "")];
        let forged = send(&app, request(method.clone(), &empty)).await;
        assert_refused(&forged, 400, CROSS_SITE, cross_site());
        let genuine = [cookie(&token), header("x-csrf", "1")];
        assert_accepted(&send(&app, request(method, &genuine)).await, &name);
    }
    // The rule is checked before the token: a forged request with a bad token is still 400.
    let forged = send(&app, request(Method::POST, &[cookie("a.b.c")])).await;
    assert_refused(&forged, 400, CROSS_SITE, cross_site());
}

#[tokio::test]
async fn an_unsafe_request_with_a_cookie_needs_an_allowed_origin() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let rule = CsrfRule::allowed_origins(["https://app.example.com", "http://localhost:5173"]);
    let source = TokenSource::cookie(COOKIE_NAME, rule.unwrap()).unwrap();
    let app = app(&server, |l| l.token_source(source));
    let token = token(&server);
    for origin in ["https://app.example.com", "http://localhost:5173"] {
        let genuine = [cookie(&token), (ORIGIN, origin.to_owned())];
        assert_accepted(&send(&app, request(Method::POST, &genuine)).await, "POST");
    }
    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "null",
    ] {
        let forged = [cookie(&token), (ORIGIN, origin.to_owned())];
        let answer = send(&app, request(Method::POST, &forged)).await;
        assert_refused(&answer, 400, CROSS_SITE, cross_site());
    }
    let answer = send(&app, request(Method::DELETE, &[cookie(&token)])).await;
    assert_refused(&answer, 400, CROSS_SITE, cross_site());
    // A safe method needs no Origin.
    assert_accepted(
        &send(&app, request(Method::GET, &[cookie(&token)])).await,
        "GET",
    );
}

#[tokio::test]
async fn the_loud_opt_out_takes_the_cookie_on_every_method() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let source = TokenSource::cookie(COOKIE_NAME, CsrfRule::allow_cross_site_forgery()).unwrap();
    let app = app(&server, |l| l.token_source(source));
    let token = token(&server);
    assert_accepted(
        &send(&app, request(Method::POST, &[cookie(&token)])).await,
        "POST",
    );
    assert_accepted(
        &send(&app, request(Method::DELETE, &[cookie(&token)])).await,
        "DELETE",
    );
}

#[tokio::test]
async fn bearer_or_cookie_takes_either_and_refuses_both() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let source = TokenSource::bearer_or_cookie(COOKIE_NAME, csrf_header()).unwrap();
    let app = app(&server, |l| l.token_source(source));
    let token = token(&server);
    assert_accepted(
        &send(&app, request(Method::GET, &[bearer(&token)])).await,
        "GET",
    );
    assert_accepted(
        &send(&app, request(Method::GET, &[cookie(&token)])).await,
        "GET",
    );
    // A Bearer header needs no CSRF rule: no other site can make a browser send one.
    assert_accepted(
        &send(&app, request(Method::POST, &[bearer(&token)])).await,
        "POST",
    );
    let answer = send(&app, request(Method::POST, &[cookie(&token)])).await;
    assert_refused(&answer, 400, CROSS_SITE, cross_site());
    // Both, even the same token: 400 (RFC 6750 section 2: one method per request).
    let both = [bearer(&token), cookie(&token)];
    assert_refused(
        &send(&app, request(Method::GET, &both)).await,
        400,
        TWO,
        two_credentials(),
    );
    // Another scheme is not a Bearer token: the cookie is used.
    let basic = [
        (AUTHORIZATION, "Basic dXNlcjpwYXNz".to_owned()),
        cookie(&token),
    ];
    assert_accepted(&send(&app, request(Method::GET, &basic)).await, "GET");
}

#[tokio::test]
async fn bad_cookie_tokens_get_their_rfc_6750_answers() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let source = TokenSource::cookie(COOKIE_NAME, csrf_header()).unwrap();
    let app = app(&server, |l| l.token_source(source));
    let token = token(&server);

    let mut expired = access_claims(&server.issuer(), CLIENT);
    expired["iat"] = serde_json::json!(support::now() - 7200);
    expired["exp"] = serde_json::json!(support::now() - 3600);
    let answer = send(
        &app,
        request(Method::GET, &[cookie(&mint(key(0), &expired))]),
    )
    .await;
    assert_refused(
        &answer,
        401,
        "Bearer realm=\"cognito\", error=\"invalid_token\", error_description=\"The token has expired\"",
        InvalidToken::Expired.into(),
    );
    let malformed = send(&app, request(Method::GET, &[cookie("a%2Eb")])).await;
    assert_refused(
        &malformed,
        400,
        "Bearer realm=\"cognito\", error=\"invalid_request\", error_description=\"The bearer credentials are malformed\"",
        AuthError::InvalidRequest(InvalidRequest::MalformedCredentials),
    );
    let twice = (
        COOKIE,
        format!("{COOKIE_NAME}={token}; {COOKIE_NAME}={token}"),
    );
    assert_refused(
        &send(&app, request(Method::GET, &[twice])).await,
        400,
        TWO,
        two_credentials(),
    );
    // An empty (cleared) cookie is no token.
    let cleared = send(&app, request(Method::GET, &[cookie("")])).await;
    assert_refused(&cleared, 401, BARE, AuthError::MissingToken);
}

#[tokio::test]
async fn an_optional_layer_with_a_cookie_source() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let source = TokenSource::cookie(COOKIE_NAME, csrf_header()).unwrap();
    let app = app(&server, |l| l.token_source(source).optional());
    let anonymous = send(&app, request(Method::POST, &[])).await;
    assert_eq!(anonymous.status, 200);
    assert!(anonymous.body.starts_with(NO_CLAIMS), "{anonymous:?}");
    // A forged request is refused, not let through as anonymous.
    let forged = send(&app, request(Method::POST, &[cookie(&token(&server))])).await;
    assert_refused(&forged, 400, CROSS_SITE, cross_site());
}

#[tokio::test]
async fn never_the_query_string() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let token = token(&server);
    let sources = [
        TokenSource::bearer(),
        TokenSource::cookie(COOKIE_NAME, csrf_header()).unwrap(),
        TokenSource::bearer_or_cookie(COOKIE_NAME, csrf_header()).unwrap(),
    ];
    for source in sources {
        let app = app(&server, |l| l.token_source(source.clone()));
        for query in ["access_token", COOKIE_NAME] {
            let request = Request::get(format!("/orders?{query}={token}"))
                .body(())
                .unwrap();
            let answer = send(&app, request).await;
            assert_refused(&answer, 401, BARE, AuthError::MissingToken);
        }
    }
}

/// A proxy in front passes the token in a header of its own; an outer layer marks the request.
fn from_proxy(parts: &Parts) -> Result<Option<Vec<u8>>, InvalidRequest> {
    if parts.extensions.get::<Marker>().map(|m| m.0) == Some("two") {
        return Err(InvalidRequest::MultipleCredentials);
    }
    let mut values = parts.headers.get_all("x-forwarded-access-token").iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(Some(value.as_bytes().to_vec())),
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(InvalidRequest::MultipleCredentials),
    }
}

#[tokio::test]
async fn a_custom_resolver_reads_the_request_head() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let app = app(&server, |l| l.token_source(TokenSource::custom(from_proxy)));
    let token = token(&server);
    let proxied = || {
        let mut r = request(
            Method::POST,
            &[
                header("x-forwarded-access-token", &token),
                header("x-kept", "yes"),
            ],
        );
        r.extensions_mut().insert(Marker("kept"));
        r
    };
    // Fresh, then cached; the request reaches the handler whole (method, path, headers,
    // extensions).
    for _ in 0..2 {
        let answer = send(&app, proxied()).await;
        assert_eq!(
            answer.body,
            format!("{} POST /orders yes kept", support::SUB),
            "{answer:?}"
        );
    }
    let answer = send(&app, request(Method::GET, &[bearer(&token)])).await;
    assert_refused(&answer, 401, BARE, AuthError::MissingToken);
    let mut two = proxied();
    two.extensions_mut().insert(Marker("two"));
    assert_refused(&send(&app, two).await, 400, TWO, two_credentials());
    let bad = request(Method::GET, &[header("x-forwarded-access-token", "a b")]);
    assert_refused(
        &send(&app, bad).await,
        400,
        "Bearer realm=\"cognito\", error=\"invalid_request\", error_description=\"The bearer credentials are malformed\"",
        AuthError::InvalidRequest(InvalidRequest::MalformedCredentials),
    );
    let forged = request(
        Method::GET,
        &[header("x-forwarded-access-token", &token[1..])],
    );
    assert_eq!(send(&app, forged).await.status, 401);
}

#[tokio::test]
async fn a_closure_is_a_resolver() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let fixed = token(&server);
    let resolver = move |_: &Parts| -> Result<Option<Vec<u8>>, InvalidRequest> {
        Ok(Some(fixed.clone().into_bytes()))
    };
    let app = app(&server, |l| l.token_source(TokenSource::custom(resolver)));
    assert_accepted(&send(&app, request(Method::GET, &[])).await, "GET");
}

#[test]
fn bad_cookie_names_are_config_errors() {
    for bad in ["", "access token", "a=b", "a;b"] {
        assert!(
            matches!(
                TokenSource::cookie(bad, csrf_header()),
                Err(ConfigError::InvalidSetting { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        CsrfRule::require_header(HeaderName::from_static("content-type")),
        Err(ConfigError::InvalidSetting { .. })
    ));
    assert!(matches!(
        CsrfRule::allowed_origins(["https://app.example.com/path"]),
        Err(ConfigError::InvalidUrl { .. })
    ));
}
