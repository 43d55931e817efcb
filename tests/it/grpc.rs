//! gRPC answers end to end: a real tonic server (HTTP/2 on loopback) with the layer in front of a
//! hand-written unary service, and a real tonic client.
//!
//! No protoc: the messages are prost derives, the service is `tonic::server::Grpc` with
//! tonic-prost's codec, the client `tonic::client::Grpc`. The service reads the verified claims
//! from the request extensions and answers them.
//!
//! A tonic client maps a bare HTTP 401 to UNAUTHENTICATED and a 403 to PERMISSION_DENIED by
//! itself (with a message saying so), so each refusal asserts the exact `grpc-message` and the
//! `cognito-auth-reason` metadata, which only the layer's Trailers-Only answer carries; and one
//! test reads the raw HTTP/2 answer (status 200, `content-type`, no body) through the channel.

use crate::support;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use http_body_util::BodyExt as _;
use serde_json::json;
use support::{access_claims, key, local_config, mint, JwksServer, SignIn};
use tonic::body::Body;
use tonic::client::Grpc as GrpcClient;
use tonic::server::{Grpc as GrpcServer, NamedService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tower::{Service, ServiceExt as _};
use tower_cognito::session::{MemoryStore, SessionConfig, SessionStore};
use tower_cognito::{
    AccessClaims, CognitoAuthLayer, CognitoConfig, GrpcAnswers, TokenUse, Verified, Verifier,
};

const POOL: &str = "us-east-1_GrpcTest1";
const CLIENT: &str = "grpc0client0id0for0tests0";
const PATH: &str = "/test.Whoami/Get";

/// The request: nothing but a note the reply echoes.
#[derive(Clone, PartialEq, prost::Message)]
struct Ask {
    #[prost(string, tag = "1")]
    note: String,
}

/// The reply: what the service read from the verified claims in the request extensions.
#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(string, tag = "1")]
    sub: String,
    #[prost(string, tag = "2")]
    username: String,
    #[prost(bool, tag = "3")]
    anonymous: bool,
    #[prost(string, tag = "4")]
    note: String,
}

/// The `test.Whoami` service, as tonic's generated code would write it, by hand.
#[derive(Clone)]
struct Whoami;

impl NamedService for Whoami {
    const NAME: &'static str = "test.Whoami";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<http::Request<Body>> for Whoami {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != PATH {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        Box::pin(async move {
            let handler = tower::service_fn(|request: tonic::Request<Ask>| async move {
                let reply = match request.extensions().get::<Verified<AccessClaims>>() {
                    Some(verified) => Reply {
                        sub: verified.claims().sub.clone(),
                        username: verified.claims().username.clone(),
                        anonymous: false,
                        note: request.get_ref().note.clone(),
                    },
                    None => Reply {
                        anonymous: true,
                        note: request.get_ref().note.clone(),
                        ..Reply::default()
                    },
                };
                Ok::<_, Status>(tonic::Response::new(reply))
            });
            let mut grpc = GrpcServer::new(ProstCodec::<Reply, Ask>::default());
            Ok(grpc.unary(handler, request).await)
        })
    }
}

/// A tonic server on a spare loopback port with `layer` in front of `Whoami`; stopped when
/// dropped.
struct GrpcApp {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcApp {
    async fn start(layer: CognitoAuthLayer) -> GrpcApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Server::builder().layer(layer).add_service(Whoami);
        let task = tokio::spawn(async move {
            router
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .expect("tonic server");
        });
        GrpcApp { addr, task }
    }

    async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    /// One `Whoami/Get` call, with `authorization: Bearer {token}` metadata when given.
    async fn call(&self, token: Option<&str>) -> Result<Reply, Status> {
        let mut client = GrpcClient::new(self.channel().await);
        client.ready().await.expect("ready");
        let mut request = tonic::Request::new(Ask {
            note: "hello".to_owned(),
        });
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("metadata"),
            );
        }
        let codec = ProstCodec::<Ask, Reply>::default();
        client
            .unary(request, PathAndQuery::from_static(PATH), codec)
            .await
            .map(tonic::Response::into_inner)
    }
}

fn config(server: &JwksServer) -> CognitoConfig {
    local_config(server, TokenUse::Access, CLIENT)
}

fn token(server: &JwksServer) -> String {
    mint(key(0), &access_claims(&server.issuer(), CLIENT))
}

fn layer(config: CognitoConfig) -> CognitoAuthLayer {
    CognitoAuthLayer::new(Verifier::new(config).expect("verifier"))
}

/// The status a client saw: its code, its decoded message and the layer's reason metadata.
#[track_caller]
fn assert_status(result: Result<Reply, Status>, code: Code, message: &str, reason: &str) {
    let status = result.expect_err("the call is refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
    let metadata = status.metadata();
    assert_eq!(
        metadata
            .get("cognito-auth-reason")
            .map(|v| v.to_str().unwrap()),
        Some(reason),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_valid_token_reaches_the_service_with_its_claims() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let app = GrpcApp::start(layer(config(&server))).await;
    let reply = app.call(Some(&token(&server))).await.expect("accepted");
    assert_eq!(reply.sub, support::SUB);
    assert!(!reply.anonymous);
    assert_eq!(reply.note, "hello");
    assert!(!reply.username.is_empty());
    // The same token again: the cached verification, the same answer.
    assert_eq!(
        app.call(Some(&token(&server))).await.unwrap().sub,
        support::SUB
    );
}

#[tokio::test]
async fn a_missing_token_is_unauthenticated() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let app = GrpcApp::start(layer(config(&server))).await;
    let result = app.call(None).await;
    let status = result.clone().unwrap_err();
    assert_eq!(
        status.metadata().get("www-authenticate").unwrap(),
        "Bearer realm=\"cognito\""
    );
    assert_status(
        result,
        Code::Unauthenticated,
        "No token was presented",
        "missing_token",
    );
}

#[tokio::test]
async fn an_optional_layer_lets_an_anonymous_call_through() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let app = GrpcApp::start(layer(config(&server)).optional()).await;
    let reply = app.call(None).await.expect("anonymous call");
    assert!(reply.anonymous);
    // A bad token is still refused.
    assert_status(
        app.call(Some("not.a.token")).await,
        Code::Unauthenticated,
        "invalid_token: The token is malformed",
        "malformed",
    );
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated_with_their_rfc_6750_text() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let app = GrpcApp::start(layer(config(&server))).await;
    let issuer = server.issuer();

    let mut expired = access_claims(&issuer, CLIENT);
    expired["iat"] = json!(support::now() - 7200);
    expired["exp"] = json!(support::now() - 3600);
    let expired = mint(key(0), &expired);
    let wrong_client = mint(key(0), &access_claims(&issuer, "someone0else0entirely0"));
    let mut forged = token(&server);
    // The signature's last character, changed to another with its trailing bits still zero
    // (A, Q, g, w), so the signature decodes and is wrong. (It used to look at the character
    // before it, and left the token as it was whenever the two differed and the last was `A`.)
    let last = forged.pop().expect("a signature");
    forged.push(if last == 'A' { 'Q' } else { 'A' });

    let cases = [
        (expired, "invalid_token: The token has expired", "expired"),
        (
            wrong_client,
            "invalid_token: The token client is not accepted",
            "wrong_client",
        ),
        (
            forged,
            "invalid_token: The token signature is invalid",
            "bad_signature",
        ),
        (
            "a b".to_owned(),
            "invalid_request: The bearer credentials are malformed",
            "malformed_credentials",
        ),
    ];
    for (token, message, reason) in cases {
        let result = app.call(Some(&token)).await;
        let challenge = result
            .as_ref()
            .unwrap_err()
            .metadata()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .expect("the RFC 6750 challenge, as metadata");
        assert!(challenge.contains("error=\""), "{challenge}");
        assert_status(result, Code::Unauthenticated, message, reason);
    }
}

#[tokio::test]
async fn superseded_and_revoked_sessions_are_unauthenticated() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(1_000));
    let verifier: Verifier =
        Verifier::new(config(&server).session_window(SessionConfig::new(store))).unwrap();
    let app = GrpcApp::start(CognitoAuthLayer::new(verifier.clone())).await;
    let sign_in = SignIn::new(&server, CLIENT);
    for n in 0..3 {
        app.call(Some(&sign_in.token(n))).await.expect("a refresh");
    }
    // Two refreshes later, the original chain is superseded.
    assert_status(
        app.call(Some(&sign_in.token(0))).await,
        Code::Unauthenticated,
        "invalid_token: The token belongs to a superseded session; refresh the tokens and retry",
        "superseded",
    );
    verifier
        .revoke_session(&sign_in.session_key())
        .await
        .expect("revoke");
    assert_status(
        app.call(Some(&sign_in.token(2))).await,
        Code::Unauthenticated,
        "invalid_token: The session has been revoked",
        "revoked",
    );
}

#[tokio::test]
async fn scope_group_and_custom_rules_are_permission_denied() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let token = token(&server);

    let scoped = layer(config(&server).require_scopes(["orders/write"]));
    let app = GrpcApp::start(scoped).await;
    assert_status(
        app.call(Some(&token)).await,
        Code::PermissionDenied,
        "insufficient_scope: The token lacks a required scope; scope=\"orders/write\"",
        "missing_scope",
    );

    let grouped = layer(config(&server).require_any_group(["admins"]));
    let app = GrpcApp::start(grouped).await;
    assert_status(
        app.call(Some(&token)).await,
        Code::PermissionDenied,
        "insufficient_scope: The user is not in a required group",
        "missing_group",
    );

    let checked = Verifier::new(config(&server))
        .unwrap()
        .with_check(|c: &AccessClaims| c.username == "nobody");
    let app = GrpcApp::start(CognitoAuthLayer::new(checked)).await;
    assert_status(
        app.call(Some(&token)).await,
        Code::PermissionDenied,
        "insufficient_scope: The token is not allowed to access this resource",
        "check_failed",
    );
}

#[tokio::test]
async fn no_signing_keys_is_unavailable() {
    let server = JwksServer::start_stopped(POOL);
    let app = GrpcApp::start(layer(config(&server))).await;
    let result = app.call(Some(&token(&server))).await;
    let status = result.clone().unwrap_err();
    // Our outage: no challenge.
    assert_eq!(status.metadata().get("www-authenticate"), None);
    assert_status(
        result,
        Code::Unavailable,
        "The token signing keys are unavailable",
        "keys_unavailable",
    );
}

/// The session store down: a `redis-server` of the test's own, killed.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_store_outage_is_unavailable() {
    use std::time::Duration;
    use support::stores::OwnRedis;
    use tower_cognito::session::RedisStore;

    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let mut redis = OwnRedis::start_volatile().await;
    let store: Arc<dyn SessionStore> =
        Arc::new(RedisStore::connect(&redis.url()).await.expect("redis"));
    let sessions = SessionConfig::new(store).timeout(Duration::from_millis(300));
    let app = GrpcApp::start(layer(config(&server).session_window(sessions))).await;
    let sign_in = SignIn::new(&server, CLIENT);
    app.call(Some(&sign_in.token(0))).await.expect("store up");
    redis.kill();
    assert_status(
        app.call(Some(&sign_in.token(1))).await,
        Code::Unavailable,
        "The session store is unavailable",
        "store_unavailable",
    );
}

/// The raw HTTP/2 answer, read through the client's channel: a Trailers-Only response.
#[tokio::test]
async fn the_answer_is_trailers_only() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let app = GrpcApp::start(layer(config(&server).require_scopes(["orders/write"]))).await;
    let mut channel = app.channel().await;
    let request = |content_type: &str| {
        http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{PATH}", app.addr))
            .header("content-type", content_type)
            .header("te", "trailers")
            .header("authorization", format!("Bearer {}", token(&server)))
            .body(Body::empty())
            .unwrap()
    };
    let response = channel
        .ready()
        .await
        .unwrap()
        .call(request("application/grpc"))
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let h = response.headers().clone();
    assert_eq!(h["content-type"], "application/grpc");
    assert_eq!(h["grpc-status"], "7");
    assert_eq!(
        h["grpc-message"],
        "insufficient_scope: The token lacks a required scope; scope=\"orders/write\""
    );
    let body = response.into_body().collect().await.expect("body");
    let trailers = body.trailers().cloned();
    assert!(body.to_bytes().is_empty(), "no message in the body");
    assert_eq!(
        trailers, None,
        "Trailers-Only: everything is in the headers"
    );

    // With a suffix it is still gRPC; without the gRPC content-type the layer answers HTTP.
    let response = channel
        .ready()
        .await
        .unwrap()
        .call(request("application/grpc+proto"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "7");
    let response = channel
        .ready()
        .await
        .unwrap()
        .call(request("application/json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.headers().get("grpc-status").is_none());
}

/// `GrpcAnswers::Never`: HTTP answers even to gRPC requests, which a tonic client can only map
/// from the HTTP status, with no reason; `Always`: gRPC answers to every request.
#[tokio::test]
async fn the_answers_follow_the_layer_option() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let never = GrpcApp::start(layer(config(&server)).grpc_answers(GrpcAnswers::Never)).await;
    let status = never.call(None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_ne!(status.message(), "No token was presented");
    assert!(status.metadata().get("grpc-status").is_none());

    let always = GrpcApp::start(layer(config(&server)).grpc_answers(GrpcAnswers::Always)).await;
    assert_status(
        always.call(None).await,
        Code::Unauthenticated,
        "No token was presented",
        "missing_token",
    );
    let mut channel = always.channel().await;
    let request = http::Request::builder()
        .method("GET")
        .uri(format!("http://{}/", always.addr))
        .body(Body::empty())
        .unwrap();
    let response = channel.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "16");
}
