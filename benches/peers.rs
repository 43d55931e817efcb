//! The same ~1.1 KB Cognito access token through this crate and its peers, in one criterion
//! group:
//!
//! - `rsa_verify_preparsed`: aws-lc-rs `verify_sig` with the key parsed once (the limit of any
//!   fresh verification);
//! - `cognito_verify_fresh`: `Verifier::verify`, token cache off;
//! - `jsonwebtoken_decode`: jsonwebtoken 11 (aws-lc-rs) `decode` into the same claims type, key
//!   built once with `DecodingKey::from_rsa_components`;
//! - `no_auth_router`: an axum 0.8 router with no auth, driven with `oneshot` on a clone per
//!   request;
//! - `cognito_router_hit`: the same router behind this crate's layer, cache on, repeat token;
//! - `cognito_router_fresh`: the same with the token cache off (like-for-like with peers that
//!   cache nothing);
//! - `jwt_authorizer_router`: jwt-authorizer 0.15's layer (keys from the same JWKS document,
//!   issuer and 5 s leeway checked; it verifies every request with jsonwebtoken 9) in the same
//!   router. It is built on axum 0.7, so [`Adapted`] maps its rejection type.
//!
//! Prints a table of ns per request (an interleaved timing of all rows after the group, medians;
//! criterion's median beside it), the cost added over the no-auth router, and the ratio to the
//! RSA limit.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use criterion::Criterion;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, StatusCode, Uri};
use tower::ServiceExt as _;
use tower_cognito::{AccessClaims, CognitoAuthLayer, Verifier};

use common::{batch_async, batch_sync, bench, estimate_ns, interleaved, Batch};

/// jwt-authorizer 0.15 wants its inner service's response to be `From<its AuthError>`, which it
/// implements only for axum 0.7's response type: this wrapper lets it sit in an axum 0.8 router
/// at no cost on the accepted path (a move).
struct Adapted(Response);

impl From<jwt_authorizer::AuthError> for Adapted {
    fn from(_: jwt_authorizer::AuthError) -> Self {
        Adapted(StatusCode::UNAUTHORIZED.into_response())
    }
}

impl IntoResponse for Adapted {
    fn into_response(self) -> Response {
        self.0
    }
}

fn request(auth: &HeaderValue) -> Request<Body> {
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = Uri::from_static("/");
    request.headers_mut().insert(AUTHORIZATION, auth.clone());
    request
}

fn plain_router() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

const GROUP: &str = "peers";

fn main() {
    let started = Instant::now();
    let mut c = common::criterion();
    let token = common::token();
    println!("bench token: {} bytes (RS256, RSA-2048)", token.len());
    bench_peers(&mut c, token);
    c.final_summary();
    println!("peers bench: {:.1} s", started.elapsed().as_secs_f64());
}

fn bench_peers(c: &mut Criterion, token: &str) {
    let rt = common::runtime();
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();

    let key = common::key().parsed();
    let (input, signature) = common::split_signed(token);
    let fresh: Verifier = Verifier::new(common::offline_config().token_cache_size(0)).unwrap();
    let cached: Verifier = Verifier::new(common::offline_config()).unwrap();
    let decoding =
        jsonwebtoken::DecodingKey::from_rsa_components(&common::key().n, &common::key().e).unwrap();
    let validation = common::jsonwebtoken_validation();

    // Every router is finalized with `with_state(())`, as `axum::serve` does: an unfinalized
    // router would build its layered handler anew on every request.
    let plain = plain_router().with_state(());
    let cognito_hit = plain_router()
        .route_layer(CognitoAuthLayer::new(cached))
        .with_state(());
    let cognito_fresh = plain_router()
        .route_layer(CognitoAuthLayer::new(fresh.clone()))
        .with_state(());
    let authorizer = rt
        .block_on(
            jwt_authorizer::JwtAuthorizer::<AccessClaims>::from_jwks_text(&common::key().jwks())
                .validation(
                    jwt_authorizer::Validation::new()
                        .iss(&[common::ISSUER])
                        .leeway(5),
                )
                .build(),
        )
        .expect("jwt-authorizer");
    let jwt_authorizer = plain_router()
        .route_layer(
            tower::ServiceBuilder::new()
                .layer(jwt_authorizer::IntoLayer::into_layer(authorizer))
                .map_response(Adapted),
        )
        .with_state(());

    // Every path accepts the token before it is timed.
    assert!(key.verify_sig(input, &signature).is_ok());
    rt.block_on(fresh.verify(token)).unwrap();
    jsonwebtoken::decode::<AccessClaims>(token, &decoding, &validation).unwrap();
    rt.block_on(async {
        for router in [&plain, &cognito_hit, &cognito_fresh, &jwt_authorizer] {
            let response = router.clone().oneshot(request(&auth)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        // And a forged one is refused by the routers that check.
        let forged = HeaderValue::from_str(&format!("Bearer {token}x")).unwrap();
        for router in [&cognito_hit, &jwt_authorizer] {
            let response = router.clone().oneshot(request(&forged)).await.unwrap();
            assert_ne!(response.status(), StatusCode::OK);
        }
    });

    let mut batches: Vec<(&str, bool, Batch<'_>)> = vec![
        (
            "rsa_verify_preparsed",
            false,
            batch_sync(|| key.verify_sig(input, &signature).is_ok()),
        ),
        (
            "cognito_verify_fresh",
            false,
            batch_async(&rt, || fresh.verify(token)),
        ),
        (
            "jsonwebtoken_decode",
            false,
            batch_sync(|| jsonwebtoken::decode::<AccessClaims>(token, &decoding, &validation)),
        ),
    ];
    for (name, router) in [
        ("no_auth_router", &plain),
        ("cognito_router_hit", &cognito_hit),
        ("cognito_router_fresh", &cognito_fresh),
        ("jwt_authorizer_router", &jwt_authorizer),
    ] {
        let auth = &auth;
        batches.push((
            name,
            true,
            batch_async(&rt, move || router.clone().oneshot(request(auth))),
        ));
    }

    let mut g = c.benchmark_group(GROUP);
    for (name, _, batch) in &mut batches {
        bench(&mut g, GROUP, name, batch);
    }
    g.finish();

    // The table, from one interleaved timing of all rows (drift hits every row alike).
    let mut refs: Vec<&mut dyn FnMut(u64) -> Duration> = batches
        .iter_mut()
        .map(|(_, _, b)| b as &mut dyn FnMut(u64) -> Duration)
        .collect();
    let Some(ns) = interleaved(&mut refs) else {
        return;
    };
    let rows: Vec<(&str, bool, f64)> = batches
        .iter()
        .zip(ns)
        .map(|((name, router, _), ns)| (*name, *router, ns))
        .collect();
    print_table(&rows);
}

fn print_table(rows: &[(&str, bool, f64)]) {
    let find = |wanted: &str| rows.iter().find(|(n, _, _)| *n == wanted).map(|r| r.2);
    let (limit, no_auth) = (find("rsa_verify_preparsed"), find("no_auth_router"));
    println!(
        "\n===== peers: ns per request (interleaved medians; criterion's median beside) ====="
    );
    println!(
        "{:<24} {:>10} {:>10} {:>16} {:>10} {:>12}",
        "same ~1.1 KB token", "ns/req", "criterion", "added vs no-auth", "x no-auth", "x RSA limit"
    );
    for &(name, is_router, ns) in rows {
        let criterion =
            estimate_ns(&format!("{GROUP}/{name}")).map_or("-".to_owned(), |c| format!("{c:.0}"));
        let (added, times_no_auth) = match (is_router, no_auth) {
            (true, Some(base)) => (format!("{:+.0} ns", ns - base), format!("{:.2}", ns / base)),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        let times_limit = limit.map_or("-".to_owned(), |l| format!("{:.3}", ns / l));
        println!(
            "{name:<24} {ns:>10.0} {criterion:>10} {added:>16} {times_no_auth:>10} {times_limit:>12}"
        );
    }
    println!("===== end of peers table =====");
}
