//! Arbitrary bytes as the `Authorization` header value, through `CognitoAuthLayer` in front of
//! a trivial service, with `ServiceExt::oneshot`.
//!
//! Never a panic; a refusal is a 400 or 401 with the `Bearer` challenge, the `AuthError` in the
//! extensions, and the service not called; a 200 only for a genuine token in canonical form.

#![no_main]

mod common;

use std::convert::Infallible;
use std::sync::OnceLock;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response};
use libfuzzer_sys::fuzz_target;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};
use tower_cognito::{AuthError, CognitoAuthLayer, Verified};

type App = BoxCloneSyncService<Request<()>, Response<String>, Infallible>;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let service = ServiceBuilder::new()
            .layer(CognitoAuthLayer::new(common::state().verifier.clone()))
            .service_fn(|request: Request<()>| async move {
                let body = match request.extensions().get::<Verified>() {
                    Some(verified) => format!("OK {}", verified.client_id),
                    None => "NO CLAIMS".to_owned(),
                };
                Ok::<_, Infallible>(Response::new(body))
            });
        BoxCloneSyncService::new(service)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let request = Request::builder()
        .header(AUTHORIZATION, value)
        .body(())
        .expect("request");
    let response = common::state()
        .runtime
        .block_on(app().clone().oneshot(request))
        .expect("infallible");
    match response.status().as_u16() {
        200 => {
            assert_eq!(response.body(), &format!("OK {}", common::CLIENT));
            let text = std::str::from_utf8(data).expect("an accepted header is ASCII");
            let token = text
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .trim_start_matches(' ');
            assert!(common::canonical(token), "accepted a non-canonical token");
        }
        400 | 401 => {
            assert!(response.extensions().get::<AuthError>().is_some());
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .expect("a challenge");
            assert!(challenge
                .as_bytes()
                .starts_with(b"Bearer realm=\"cognito\""));
            assert!(response.body().is_empty(), "the service was called");
        }
        other => panic!("status {other}"),
    }
});
