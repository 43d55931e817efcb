//! Feature `metrics`: what the layer, the key cache and the session gate record, read from a
//! `metrics-util` debugging recorder set for the test's thread (tokio's current-thread test
//! runtime runs every task there, so nothing of other tests is seen).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_cognito::metrics::{
    JWKS_FETCHES, JWKS_FETCH_DURATION, REFUSALS, REQUESTS, SESSION_STORE_DURATION,
    TOKEN_CACHE_LOOKUPS,
};
use tower_cognito::session::{MemoryStore, SessionConfig};
use tower_cognito::{CognitoAuthLayer, TokenUse, Verifier};

use crate::support::{self, access_claims, key, mint, JwksServer, SignIn};

/// Every metric recorded, as `name{label=value,...}` to its counter value or its number of
/// histogram samples.
fn recorded(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let value = match value {
                DebugValue::Counter(n) => n,
                DebugValue::Histogram(samples) => samples.len() as u64,
                DebugValue::Gauge(g) => g.into_inner() as u64,
            };
            (name, value)
        })
        .filter(|(_, value)| *value > 0)
        .collect()
}

async fn send<S>(service: &S, token: Option<&str>) -> StatusCode
where
    S: tower::Service<Request<String>, Response = Response<String>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut request = Request::builder().uri("/");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(String::new()).unwrap();
    service.clone().oneshot(request).await.unwrap().status()
}

fn handler() -> impl tower::Service<
    Request<String>,
    Response = Response<String>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(|_: Request<String>| async { Ok(Response::new("ok".to_owned())) })
}

#[tokio::test]
async fn the_layer_counts_requests_refusals_cache_lookups_and_fetches() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let server = JwksServer::start("eu-west-1_Metrics").await;
    server.set_keys(&[key(0)]);
    let verifier =
        Verifier::new(support::local_config(&server, TokenUse::Access, "client-m")).unwrap();
    let service = ServiceBuilder::new()
        .layer(CognitoAuthLayer::new(verifier.clone()))
        .service(handler());
    let optional = ServiceBuilder::new()
        .layer(CognitoAuthLayer::new(verifier).optional())
        .service(handler());

    let token = mint(key(0), &access_claims(&server.issuer(), "client-m"));
    let mut expired = access_claims(&server.issuer(), "client-m");
    expired["exp"] = json!(support::now() - 60);
    let expired = mint(key(0), &expired);

    assert_eq!(send(&service, Some(&token)).await, StatusCode::OK);
    assert_eq!(send(&service, Some(&token)).await, StatusCode::OK);
    assert_eq!(send(&service, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&service, Some(&expired)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(&optional, None).await, StatusCode::OK);

    let pool = "pool=eu-west-1_Metrics";
    let expected: BTreeMap<String, u64> = [
        (format!("{REQUESTS}{{outcome=accepted}}"), 2),
        (format!("{REQUESTS}{{outcome=refused}}"), 2),
        (format!("{REQUESTS}{{outcome=anonymous}}"), 1),
        (format!("{REFUSALS}{{reason=missing_token}}"), 1),
        (format!("{REFUSALS}{{reason=expired}}"), 1),
        // The first sight of each token misses; the repeat hits.
        (format!("{TOKEN_CACHE_LOOKUPS}{{result=miss}}"), 2),
        (format!("{TOKEN_CACHE_LOOKUPS}{{result=hit}}"), 1),
        (format!("{JWKS_FETCHES}{{{pool},result=ok}}"), 1),
        (format!("{JWKS_FETCH_DURATION}{{{pool},result=ok}}"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(recorded(&snapshotter), expected);
}

#[tokio::test]
async fn outages_count_as_unavailable_with_their_reason() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let server = JwksServer::start("eu-west-1_MetricsDown").await;
    server.set_status(hyper::StatusCode::SERVICE_UNAVAILABLE);
    let verifier =
        Verifier::new(support::local_config(&server, TokenUse::Access, "client-m")).unwrap();
    let service = ServiceBuilder::new()
        .layer(CognitoAuthLayer::new(verifier))
        .service(handler());
    let token = mint(key(0), &access_claims(&server.issuer(), "client-m"));
    assert_eq!(
        send(&service, Some(&token)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let recorded = recorded(&snapshotter);
    let pool = "pool=eu-west-1_MetricsDown";
    for (name, count) in [
        (format!("{REQUESTS}{{outcome=unavailable}}"), 1),
        (format!("{REFUSALS}{{reason=keys_unavailable}}"), 1),
        (format!("{JWKS_FETCHES}{{{pool},result=error}}"), 1),
        (format!("{JWKS_FETCH_DURATION}{{{pool},result=error}}"), 1),
    ] {
        assert_eq!(recorded.get(&name), Some(&count), "{name} in {recorded:?}");
    }
}

#[tokio::test]
async fn session_store_calls_are_timed_by_result_with_no_token_or_user_in_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);

    let server = JwksServer::start("eu-west-1_MetricsWin").await;
    server.set_keys(&[key(0)]);
    let verifier = Verifier::new(
        support::local_config(&server, TokenUse::Access, "client-m")
            .session_window(SessionConfig::new(Arc::new(MemoryStore::new(100)))),
    )
    .unwrap();
    let service = ServiceBuilder::new()
        .layer(CognitoAuthLayer::new(verifier.clone()))
        .service(handler());
    let sign_in = SignIn::new(&server, "client-m");
    let (t0, t1, t2) = (sign_in.token(0), sign_in.token(1), sign_in.token(2));
    assert_eq!(send(&service, Some(&t0)).await, StatusCode::OK);
    assert_eq!(send(&service, Some(&t1)).await, StatusCode::OK);
    assert_eq!(send(&service, Some(&t2)).await, StatusCode::OK);
    // t0 is now older than the window (current t2, previous t1).
    assert_eq!(send(&service, Some(&t0)).await, StatusCode::UNAUTHORIZED);
    verifier
        .revoke_session(&sign_in.session_key())
        .await
        .unwrap();

    let recorded = recorded(&snapshotter);
    for (name, count) in [
        (
            format!("{SESSION_STORE_DURATION}{{operation=check,result=accepted}}"),
            3,
        ),
        (
            format!("{SESSION_STORE_DURATION}{{operation=check,result=superseded}}"),
            1,
        ),
        (
            format!("{SESSION_STORE_DURATION}{{operation=revoke,result=ok}}"),
            1,
        ),
        (format!("{REFUSALS}{{reason=superseded}}"), 1),
    ] {
        assert_eq!(recorded.get(&name), Some(&count), "{name} in {recorded:?}");
    }
    // Bounded cardinality: nothing of a token, a session or a user in any label.
    let names = recorded.keys().cloned().collect::<Vec<_>>().join(" ");
    for secret in [
        sign_in.origin_jti.as_str(),
        support::SUB,
        "client-m",
        "alice",
    ] {
        assert!(!names.contains(secret), "{secret} in {names}");
    }
}
