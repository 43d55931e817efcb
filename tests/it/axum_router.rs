//! End to end: the layer and the extractors in an axum 0.8 `Router`.

#![cfg(feature = "axum")]

use crate::support;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use support::{access_claims, id_claims, key, local_config, mint, JwksServer};
use tower::ServiceExt;
use tower_cognito::{
    AccessClaims, AuthError, CognitoAuthLayer, IdClaims, InvalidToken, TokenUse, Verified, Verifier,
};

const POOL: &str = "ap-southeast-2_AxumTest1";
const CLIENT: &str = "3n4b5urk1ft4fl3mg5e62d9ado";
const BARE: &str = "Bearer realm=\"cognito\"";
const EXPIRED: &str = "Bearer realm=\"cognito\", error=\"invalid_token\", \
                       error_description=\"The token has expired\"";
const MISSING_LAYER_BODY: &str = "tower-cognito: no CognitoAuthLayer in front of this route";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn verifier(server: &JwksServer) -> Verifier {
    Verifier::new(local_config(server, TokenUse::Access, CLIENT)).unwrap()
}

async fn start_server() -> JwksServer {
    JwksServer::start_with_keys(POOL, &[key(0)]).await
}

fn valid_token(server: &JwksServer) -> String {
    mint(key(0), &access_claims(&server.issuer(), CLIENT))
}

fn expired_token(server: &JwksServer) -> String {
    let mut claims = access_claims(&server.issuer(), CLIENT);
    claims["exp"] = json!(support::now() - 3600);
    mint(key(0), &claims)
}

async fn get_with(app: &Router, path: &str, authorization: Option<&str>) -> Response {
    let mut req = Request::builder().uri(path);
    if let Some(value) = authorization {
        req = req.header(AUTHORIZATION, value);
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn get_bearer(app: &Router, path: &str, token: &str) -> Response {
    get_with(app, path, Some(&format!("Bearer {token}"))).await
}

/// Status, `WWW-Authenticate`, the `AuthError` in the extensions, and the body as text.
async fn parts(resp: Response) -> (StatusCode, Option<String>, Option<AuthError>, String) {
    let status = resp.status();
    let www = resp
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let error = resp.extensions().get::<AuthError>().cloned();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        www,
        error,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn me(claims: Verified) -> String {
    format!("hello {}", claims.username)
}

async fn me_json(claims: Verified<AccessClaims>) -> Json<Value> {
    Json(json!({
        "sub": claims.sub,
        "username": claims.username,
        "client_id": claims.client_id,
        "scopes": claims.scopes().collect::<Vec<_>>(),
        "exp": claims.expires_at(),
    }))
}

async fn maybe_me(claims: Option<Verified>) -> String {
    match claims {
        Some(c) => format!("hello {}", c.username),
        None => "hello anonymous".to_owned(),
    }
}

async fn id_me(claims: Verified<IdClaims>) -> String {
    format!("hello {}", claims.username)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn route_layer_leaves_unknown_paths_404_and_guards_known_routes() {
    let server = start_server().await;
    let app = Router::new()
        .route("/me", get(me))
        .route_layer(CognitoAuthLayer::new(verifier(&server)));

    // Unknown paths: 404, with or without a token, good or bad.
    let (status, www, error, _) = parts(get_with(&app, "/nope", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(www, None);
    assert_eq!(error, None);
    let (status, ..) = parts(get_bearer(&app, "/nope", &expired_token(&server)).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The known route without a token: 401 with the bare challenge.
    let (status, www, error, body) = parts(get_with(&app, "/me", None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some(BARE));
    assert_eq!(error, Some(AuthError::MissingToken));
    assert_eq!(body, "");

    // With a bad one: 401 invalid_token.
    let (status, www, error, _) =
        parts(get_bearer(&app, "/me", &expired_token(&server)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some(EXPIRED));
    assert_eq!(error, Some(AuthError::InvalidToken(InvalidToken::Expired)));

    // With a good one: the handler runs.
    let (status, www, error, body) =
        parts(get_bearer(&app, "/me", &valid_token(&server)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(www, None);
    assert_eq!(error, None);
    assert_eq!(body, "hello alice");
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test]
async fn the_verified_extractor_gives_the_claims() {
    let server = start_server().await;
    let app = Router::new()
        .route("/me", get(me_json))
        .route_layer(CognitoAuthLayer::new(verifier(&server)));
    let claims = access_claims(&server.issuer(), CLIENT);
    let resp = get_bearer(&app, "/me", &mint(key(0), &claims)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, _, _, body) = parts(resp).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({
            "sub": support::SUB,
            "username": "alice",
            "client_id": CLIENT,
            "scopes": ["openid", "profile", "aws.cognito.signin.user.admin"],
            "exp": claims["exp"],
        })
    );
}

#[tokio::test]
async fn the_optional_extractor_with_an_optional_layer() {
    let server = start_server().await;
    let app = Router::new()
        .route("/maybe", get(maybe_me))
        .route_layer(CognitoAuthLayer::new(verifier(&server)).optional());

    // No token, or another scheme: anonymous.
    for authorization in [None, Some("Basic dXNlcjpwYXNzd29yZA==")] {
        let (status, www, error, body) = parts(get_with(&app, "/maybe", authorization).await).await;
        assert_eq!(status, StatusCode::OK, "{authorization:?}");
        assert_eq!(www, None);
        assert_eq!(error, None);
        assert_eq!(body, "hello anonymous");
    }
    assert_eq!(server.fetch_count(), 0);

    // A good token: the claims.
    let (status, _, _, body) = parts(get_bearer(&app, "/maybe", &valid_token(&server)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello alice");

    // A bad token is still refused: optional means "anonymous allowed", not "anything goes".
    let (status, www, error, body) =
        parts(get_bearer(&app, "/maybe", &expired_token(&server)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some(EXPIRED));
    assert_eq!(error, Some(AuthError::InvalidToken(InvalidToken::Expired)));
    assert_eq!(body, "");
    let (status, ..) = parts(
        get_bearer(
            &app,
            "/maybe",
            &mint(key(3), &access_claims(&server.issuer(), CLIENT)),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // As are malformed credentials.
    let (status, www, ..) = parts(get_with(&app, "/maybe", Some("Bearer a b")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        www.as_deref(),
        Some(
            "Bearer realm=\"cognito\", error=\"invalid_request\", \
             error_description=\"The bearer credentials are malformed\""
        )
    );
}

#[tokio::test]
async fn the_required_extractor_behind_an_optional_layer_challenges_anonymous_requests() {
    // `Verified` (not `Option`) on a route whose layer lets anonymous requests through: the
    // anonymous caller gets the challenge a required layer would have sent, not a 500 claiming
    // that no layer is in front (one is).
    let server = start_server().await;
    let app = Router::new()
        .route("/me", get(me))
        .route_layer(CognitoAuthLayer::new(verifier(&server)).optional());
    for authorization in [None, Some("Basic dXNlcjpwYXNzd29yZA==")] {
        let response = get_with(&app, "/me", authorization).await;
        assert_eq!(response.headers()["cognito-auth-reason"], "missing_token");
        let (status, www, error, body) = parts(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(www.as_deref(), Some("Bearer realm=\"cognito\""));
        assert_eq!(error, Some(AuthError::MissingToken));
        assert_eq!(body, "");
    }
    let (status, _, _, body) = parts(get_bearer(&app, "/me", &valid_token(&server)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello alice");
}

#[tokio::test]
async fn the_required_extractor_answers_an_anonymous_grpc_request_the_grpc_way() {
    // The same anonymous caller, but a gRPC one (detected from its content-type, or every
    // request with `GrpcAnswers::Always`): the Trailers-Only UNAUTHENTICATED answer the layer
    // itself gives, not an HTTP 401 that a gRPC client reads as a bare status.
    use tower_cognito::GrpcAnswers;
    let server = start_server().await;
    let grpc_request = |content_type: &str| {
        Request::builder()
            .uri("/me")
            .header(CONTENT_TYPE, content_type)
            .body(Body::empty())
            .unwrap()
    };
    for (answers, content_type, grpc) in [
        (GrpcAnswers::Detect, "application/grpc", true),
        (GrpcAnswers::Detect, "application/grpc+proto", true),
        (GrpcAnswers::Detect, "application/json", false),
        (GrpcAnswers::Always, "application/json", true),
        (GrpcAnswers::Never, "application/grpc", false),
    ] {
        let app = Router::new().route("/me", get(me)).route_layer(
            CognitoAuthLayer::new(verifier(&server))
                .optional()
                .grpc_answers(answers),
        );
        let response = app.oneshot(grpc_request(content_type)).await.unwrap();
        let case = format!("{answers:?} {content_type}");
        let h = response.headers().clone();
        assert_eq!(h["cognito-auth-reason"], "missing_token", "{case}");
        assert_eq!(
            response.extensions().get::<AuthError>(),
            Some(&AuthError::MissingToken),
            "{case}"
        );
        if grpc {
            assert_eq!(response.status(), StatusCode::OK, "{case}");
            assert_eq!(h[CONTENT_TYPE], "application/grpc", "{case}");
            assert_eq!(h["grpc-status"], "16", "{case}");
            assert_eq!(h["grpc-message"], "No token was presented", "{case}");
        } else {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
            assert!(h.get("grpc-status").is_none(), "{case}");
            assert_eq!(h[WWW_AUTHENTICATE], BARE, "{case}");
        }
    }
}

#[tokio::test]
async fn the_extractor_on_a_route_without_the_layer_is_500() {
    let server = start_server().await;
    let app = Router::new()
        .route("/me", get(me))
        .route_layer(CognitoAuthLayer::new(verifier(&server)))
        // Added after `route_layer`: not behind the layer.
        .route("/forgot", get(me))
        .route("/forgot-maybe", get(maybe_me));

    for path in ["/forgot", "/forgot-maybe"] {
        // Even a valid token does not help: nothing verified it.
        for authorization in [None, Some(format!("Bearer {}", valid_token(&server)))] {
            let (status, www, error, body) =
                parts(get_with(&app, path, authorization.as_deref()).await).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert_eq!(www, None);
            assert_eq!(error, None);
            assert_eq!(body, MISSING_LAYER_BODY);
        }
    }
    // The layered route is unaffected.
    let (status, ..) = parts(get_bearer(&app, "/me", &valid_token(&server)).await).await;
    assert_eq!(status, StatusCode::OK);

    // A layer of another claims type is no layer for this extractor.
    let ids = Router::new()
        .route("/id", get(id_me))
        .route_layer(CognitoAuthLayer::new(verifier(&server)));
    let (status, _, _, body) = parts(get_bearer(&ids, "/id", &valid_token(&server)).await).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, MISSING_LAYER_BODY);

    // And the matching claims type works.
    let id_verifier: Verifier<IdClaims> =
        Verifier::with_claims(local_config(&server, TokenUse::Id, CLIENT)).unwrap();
    let ids = Router::new()
        .route("/id", get(id_me))
        .route_layer(CognitoAuthLayer::new(id_verifier));
    let id_token = mint(key(0), &id_claims(&server.issuer(), CLIENT));
    let (status, _, _, body) = parts(get_bearer(&ids, "/id", &id_token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello alice");
}

fn json_rejection(error: &AuthError) -> Response {
    (
        error.status(),
        Json(json!({
            "error": error.reason(),
            "message": error.description(),
        })),
    )
        .into_response()
}

#[tokio::test]
async fn on_rejection_gives_a_json_body_and_keeps_the_challenge() {
    let server = start_server().await;
    let app = Router::new().route("/me", get(me)).route_layer(
        CognitoAuthLayer::new(verifier(&server)).on_rejection(|e: &AuthError| json_rejection(e)),
    );

    let resp = get_bearer(&app, "/me", &expired_token(&server)).await;
    assert_eq!(
        resp.headers().get(CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let (status, www, error, body) = parts(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some(EXPIRED));
    assert_eq!(error, Some(AuthError::InvalidToken(InvalidToken::Expired)));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "expired", "message": "The token has expired"})
    );

    let (status, www, _, body) = parts(get_with(&app, "/me", None).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some(BARE));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "missing_token", "message": "No token was presented"})
    );

    // The handler still runs for good tokens.
    let (status, _, _, body) = parts(get_bearer(&app, "/me", &valid_token(&server)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "hello alice");
}

#[tokio::test]
async fn on_rejection_keeps_the_status_it_sets_and_its_own_challenge() {
    let server = start_server().await;

    // A status of the application's choosing is kept, and the challenge is still added.
    let teapot = Router::new().route("/me", get(me)).route_layer(
        CognitoAuthLayer::new(verifier(&server)).on_rejection(|e: &AuthError| {
            let mut resp = json_rejection(e);
            *resp.status_mut() = StatusCode::IM_A_TEAPOT;
            resp
        }),
    );
    let (status, www, error, _) =
        parts(get_bearer(&teapot, "/me", &expired_token(&server)).await).await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    assert_eq!(www.as_deref(), Some(EXPIRED));
    assert_eq!(error, Some(AuthError::InvalidToken(InvalidToken::Expired)));

    // A challenge set by the application is not replaced.
    let custom = Router::new().route("/me", get(me)).route_layer(
        CognitoAuthLayer::new(verifier(&server)).on_rejection(|e: &AuthError| {
            let mut resp = json_rejection(e);
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"custom\""),
            );
            resp
        }),
    );
    let resp = get_bearer(&custom, "/me", &expired_token(&server)).await;
    assert_eq!(resp.headers().get_all(WWW_AUTHENTICATE).iter().count(), 1);
    let (status, www, ..) = parts(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some("Bearer realm=\"custom\""));
}

#[tokio::test]
async fn on_rejection_for_an_outage_is_503_without_a_challenge() {
    let server = JwksServer::start_stopped(POOL);
    let app = Router::new().route("/me", get(me)).route_layer(
        CognitoAuthLayer::new(verifier(&server)).on_rejection(|e: &AuthError| json_rejection(e)),
    );
    let (status, www, error, body) =
        parts(get_bearer(&app, "/me", &valid_token(&server)).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(www, None);
    assert_eq!(error, Some(AuthError::KeysUnavailable));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "keys_unavailable", "message": "The token signing keys are unavailable"})
    );
}
