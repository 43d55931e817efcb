//! The local Cognito over real HTTP on loopback.

use std::time::{Duration, Instant};

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use tower_cognito_testing::{
    decode_claims, decode_header, GracePolicy, InvalidKey, Jwks, LocalCognito, Options, SigningKey,
    TokenSet,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A response reduced to what the tests look at.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = String::from_utf8(response.bytes().await.unwrap().to_vec()).unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// POSTs a form, optionally with `Authorization: Basic`.
async fn post_form(url: &str, pairs: &[(&str, &str)], basic: Option<(&str, &str)>) -> Reply {
    let mut request = http()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(pairs));
    if let Some((id, secret)) = basic {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let credentials = STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
        request = request.header("authorization", format!("Basic {credentials}"));
    }
    reply(request.send().await.unwrap()).await
}

/// A JSON API call.
async fn api(cognito: &LocalCognito, op: &str, body: Value) -> Reply {
    let response = http()
        .post(cognito.idp_url())
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            format!("AWSCognitoIdentityProviderService.{op}"),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    reply(response).await
}

async fn get_tokens(cognito: &LocalCognito, refresh_token: &str) -> Reply {
    api(
        cognito,
        "GetTokensFromRefreshToken",
        json!({ "ClientId": cognito.client_id(), "RefreshToken": refresh_token }),
    )
    .await
}

async fn oauth_refresh(cognito: &LocalCognito, refresh_token: &str) -> Reply {
    post_form(
        &cognito.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", cognito.client_id()),
            ("refresh_token", refresh_token),
        ],
        None,
    )
    .await
}

fn refresh_of(tokens: &TokenSet) -> String {
    tokens
        .refresh_token
        .clone()
        .expect("a sign-in returns a refresh token")
}

fn result(reply: &Reply) -> &Value {
    &reply.body["AuthenticationResult"]
}

async fn fetch_jwks(cognito: &LocalCognito) -> Value {
    let r = reply(http().get(cognito.jwks_url()).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Verifies an RS256 JWT against a JWKS, the way a resource server would.
fn verifies(jwks: &Value, token: &str) -> bool {
    let header = decode_header(token);
    if header["alg"] != "RS256" {
        return false;
    }
    let Some(key) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let (message, signature) = token.rsplit_once('.').unwrap();
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message.as_bytes(), &signature)
        .is_ok()
}

/// The query parameters of a redirect's `Location`.
fn location_params(r: &Reply) -> (url::Url, Vec<(String, String)>) {
    let location = r.headers["location"].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    let params = url.query_pairs().into_owned().collect();
    (url, params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn authorize(cognito: &LocalCognito, pairs: &[(&str, &str)]) -> Reply {
    let url = format!("{}?{}", cognito.authorize_url(), form_body(pairs));
    reply(http().get(url).send().await.unwrap()).await
}

fn pkce() -> (String, String) {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned();
    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

const REDIRECT: &str = "http://localhost:3000/callback";

/// Authorizes with PKCE and returns the code.
async fn code_for(cognito: &LocalCognito, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", cognito.client_id()),
        ("redirect_uri", REDIRECT),
        ("state", "s"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    pairs.extend_from_slice(extra);
    let r = authorize(cognito, &pairs).await;
    assert_eq!(r.status, 302, "{}", r.text);
    let (_, params) = location_params(&r);
    param(&params, "code").unwrap().to_owned()
}

async fn exchange(
    cognito: &LocalCognito,
    code: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> Reply {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("client_id", cognito.client_id()),
        ("code", code),
        ("redirect_uri", redirect),
    ];
    if let Some(v) = verifier {
        pairs.push(("code_verifier", v));
    }
    post_form(&cognito.token_url(), &pairs, None).await
}

fn claims_u64(claims: &Value, name: &str) -> u64 {
    claims[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {claims}"))
}

// ---------------------------------------------------------------------------------------------
// Keys and token shapes

#[tokio::test]
async fn jwks_has_two_keys_and_tokens_verify_against_it() {
    let cognito = LocalCognito::start_with(Options::new().pool_id("eu-west-1_Abc123").user(
        "bob",
        "bob@example.org",
        &["admins", "staff"],
    ))
    .await;
    assert_eq!(cognito.region(), "eu-west-1");
    assert_eq!(cognito.pool_id(), "eu-west-1_Abc123");
    assert_eq!(
        cognito.issuer(),
        format!("http://{}/eu-west-1_Abc123", cognito.addr())
    );
    assert_eq!(
        cognito.origin(),
        format!("http://127.0.0.1:{}", cognito.addr().port())
    );

    let jwks = fetch_jwks(&cognito).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["e"], "AQAB");
        let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256, "RSA-2048 modulus, no leading zero");
    }
    assert_ne!(keys[0]["kid"], keys[1]["kid"]);
    assert_eq!(cognito.counts().jwks_fetches, 1);

    let tokens = cognito.sign_in("bob");
    let access = decode_claims(&tokens.access_token);
    let id = decode_claims(tokens.id_token.as_deref().unwrap());
    assert!(verifies(&jwks, &tokens.access_token));
    assert!(verifies(&jwks, tokens.id_token.as_deref().unwrap()));
    let access_header = decode_header(&tokens.access_token);
    assert_eq!(
        access_header,
        json!({ "kid": access_header["kid"], "alg": "RS256" })
    );
    assert_ne!(
        access_header["kid"],
        decode_header(tokens.id_token.as_deref().unwrap())["kid"],
        "access and id tokens are signed with different keys"
    );
    let (access_kid, id_kid) = cognito.signing_kids();
    assert_eq!(access_header["kid"], access_kid.as_str());
    assert_ne!(access_kid, id_kid);

    // A tampered token does not verify.
    let (head, rest) = tokens.access_token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged_claims = URL_SAFE_NO_PAD.encode(json!({ "sub": "mallory" }).to_string());
    assert!(!verifies(&jwks, &format!("{head}.{forged_claims}.{sig}")));

    assert_eq!(access["token_use"], "access");
    assert_eq!(access["iss"], cognito.issuer());
    assert_eq!(access["client_id"], cognito.client_id());
    assert_eq!(access["username"], "bob");
    assert_eq!(access["version"], 2);
    assert_eq!(access["cognito:groups"], json!(["admins", "staff"]));
    assert_eq!(access["scope"], "openid email profile");
    assert!(
        access.get("aud").is_none(),
        "Cognito access tokens have no aud"
    );
    assert_eq!(
        claims_u64(&access, "exp") - claims_u64(&access, "iat"),
        3600
    );
    assert_eq!(tokens.expires_in, 3600);
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["aud"], cognito.client_id());
    assert_eq!(id["cognito:username"], "bob");
    assert_eq!(id["email"], "bob@example.org");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["sub"], access["sub"]);
    assert_eq!(id["origin_jti"], access["origin_jti"]);
    assert!(id.get("nonce").is_none());
    let sub = access["sub"].as_str().unwrap();
    assert_eq!(sub.len(), 36);
    assert_eq!(&sub[14..15], "4", "uuid-shaped");

    // Same user: same sub, new origin_jti. Another user: another sub.
    let again = decode_claims(&cognito.sign_in("bob").access_token);
    assert_eq!(again["sub"], access["sub"]);
    assert_ne!(again["origin_jti"], access["origin_jti"]);
    assert_ne!(
        decode_claims(&cognito.sign_in("carol").access_token)["sub"],
        access["sub"]
    );
    assert_eq!(cognito.counts().sign_ins, 3);

    // Unknown pool in the path: 404, not counted.
    let other = reply(
        http()
            .get(format!(
                "{}/us-east-1_Other/.well-known/jwks.json",
                cognito.origin()
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(other.status, 404);
    assert_eq!(cognito.counts().jwks_fetches, 1);

    // Discovery points at the same endpoints.
    let discovery = reply(
        http()
            .get(format!(
                "{}/.well-known/openid-configuration",
                cognito.issuer()
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(discovery.body["issuer"], cognito.issuer());
    assert_eq!(discovery.body["jwks_uri"], cognito.jwks_url());
    assert_eq!(discovery.body["token_endpoint"], cognito.token_url());
}

#[tokio::test]
async fn rotated_signing_keys_keep_the_previous_pair_once() {
    let cognito = LocalCognito::start().await;
    let before = cognito.sign_in("alice");
    let first_kid = decode_header(&before.access_token)["kid"].clone();

    cognito.rotate_signing_keys();
    let after = cognito.sign_in("alice");
    let second_kid = decode_header(&after.access_token)["kid"].clone();
    assert_ne!(first_kid, second_kid);
    let jwks = fetch_jwks(&cognito).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 4);
    assert_eq!(
        jwks["keys"][0]["kid"], second_kid,
        "the new key comes first"
    );
    assert!(
        verifies(&jwks, &before.access_token),
        "in-flight tokens still verify"
    );
    assert!(verifies(&jwks, before.id_token.as_deref().unwrap()));
    assert!(verifies(&jwks, &after.access_token));

    cognito.rotate_signing_keys();
    let jwks = fetch_jwks(&cognito).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 4);
    assert!(
        !verifies(&jwks, &before.access_token),
        "keys two rotations old are gone"
    );
    assert!(verifies(&jwks, &after.access_token));
}

#[tokio::test]
async fn minted_tokens_take_overrides() {
    let cognito = LocalCognito::start().await;
    let jwks = fetch_jwks(&cognito).await;
    let token = cognito.mint_access("alice", &json!({ "exp": 1, "scope": "a/b", "jti": null }));
    let claims = decode_claims(&token);
    assert_eq!(claims["exp"], 1);
    assert_eq!(claims["scope"], "a/b");
    assert!(claims.get("jti").is_none());
    assert!(verifies(&jwks, &token));
    let id = cognito.mint_id("zed", &json!({ "aud": "other" }));
    assert_eq!(decode_claims(&id)["aud"], "other");
    assert_eq!(decode_claims(&id)["email"], "zed@example.com");
    assert!(verifies(&jwks, &id));
    let raw = cognito.sign_raw(
        &json!({ "alg": "none", "kid": "x" }),
        &json!({ "sub": "s" }),
    );
    assert_eq!(decode_header(&raw)["alg"], "none");
    assert_eq!(decode_claims("not a token"), Value::Null);
    assert_eq!(cognito.counts().sign_ins, 0, "minting is not a sign-in");
}

// ---------------------------------------------------------------------------------------------
// Hosted UI and code exchange

#[tokio::test]
async fn authorization_code_with_pkce() {
    let cognito =
        LocalCognito::start_with(Options::new().user("alice", "alice@example.com", &[]).user(
            "bob",
            "bob@example.com",
            &["admins"],
        ))
        .await;
    let (verifier, challenge) = pkce();
    let state = "a b&c=d/é";
    let r = authorize(
        &cognito,
        &[
            ("response_type", "code"),
            ("client_id", cognito.client_id()),
            ("redirect_uri", "http://127.0.0.1:8080/cb?keep=1"),
            ("state", state),
            ("nonce", "n-0S6_WzA2Mj"),
            ("scope", "openid email"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(r.status, 302, "{}", r.text);
    let (url, params) = location_params(&r);
    assert_eq!(url.origin().ascii_serialization(), "http://127.0.0.1:8080");
    assert_eq!(url.path(), "/cb");
    assert_eq!(param(&params, "keep"), Some("1"));
    assert_eq!(param(&params, "state"), Some(state), "state echoed exactly");
    let code = param(&params, "code").unwrap().to_owned();

    let ok = exchange(
        &cognito,
        &code,
        "http://127.0.0.1:8080/cb?keep=1",
        Some(&verifier),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.headers["cache-control"], "no-store");
    assert_eq!(ok.body["token_type"], "Bearer");
    assert_eq!(ok.body["expires_in"], 3600);
    assert!(ok.body["refresh_token"].is_string());
    let id = decode_claims(ok.body["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(
        id["cognito:username"], "alice",
        "the first user without login_hint"
    );
    let access = decode_claims(ok.body["access_token"].as_str().unwrap());
    assert_eq!(access["scope"], "openid email");
    let jwks = fetch_jwks(&cognito).await;
    assert!(verifies(&jwks, ok.body["access_token"].as_str().unwrap()));

    // The same code again.
    let reused = exchange(
        &cognito,
        &code,
        "http://127.0.0.1:8080/cb?keep=1",
        Some(&verifier),
    )
    .await;
    assert_eq!(reused.status, 400);
    assert_eq!(reused.body, json!({ "error": "invalid_grant" }));

    // A wrong verifier, a missing verifier, another redirect_uri.
    let code = code_for(&cognito, &challenge, &[]).await;
    let bad = exchange(
        &cognito,
        &code,
        REDIRECT,
        Some("wrong-verifier-wrong-verifier-wrong-verifier"),
    )
    .await;
    assert_eq!(bad.body["error"], "invalid_grant");
    let code = code_for(&cognito, &challenge, &[]).await;
    assert_eq!(
        exchange(&cognito, &code, REDIRECT, None).await.body["error"],
        "invalid_grant"
    );
    let code = code_for(&cognito, &challenge, &[]).await;
    let mismatch = exchange(
        &cognito,
        &code,
        "http://localhost:3000/other",
        Some(&verifier),
    )
    .await;
    assert_eq!(mismatch.body["error"], "invalid_grant");
    assert_eq!(
        exchange(&cognito, &code, REDIRECT, Some(&verifier))
            .await
            .body["error"],
        "invalid_grant",
        "a refused exchange spends the code"
    );

    // login_hint picks a configured user; the refresh token refreshes at the JSON API.
    let code = code_for(&cognito, &challenge, &[("login_hint", "bob")]).await;
    let bob = exchange(&cognito, &code, REDIRECT, Some(&verifier)).await;
    assert_eq!(bob.status, 200, "{}", bob.text);
    let bob_access = decode_claims(bob.body["access_token"].as_str().unwrap());
    assert_eq!(bob_access["username"], "bob");
    assert_eq!(bob_access["cognito:groups"], json!(["admins"]));
    let refreshed = get_tokens(&cognito, bob.body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let refreshed_id = decode_claims(result(&refreshed)["IdToken"].as_str().unwrap());
    assert!(
        refreshed_id.get("nonce").is_none(),
        "nonce only at the code exchange"
    );

    let counts = cognito.counts();
    assert_eq!(counts.authorizations, 5);
    assert_eq!(counts.code_exchanges, 7);
    assert_eq!(counts.sign_ins, 2);
}

#[tokio::test]
async fn authorize_refuses_without_redirecting() {
    let cognito = LocalCognito::start().await;
    let (_, challenge) = pkce();
    let id = cognito.client_id().to_owned();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", REDIRECT),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", "https://evil.example/cb"),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", "https://127.0.0.1.evil.example/"),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", "javascript:alert(1)"),
        ],
        vec![("response_type", "code"), ("client_id", &id)],
        vec![
            ("response_type", "token"),
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "plain"),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
        ],
    ];
    for pairs in &cases {
        let r = authorize(&cognito, pairs).await;
        assert_eq!(r.status, 400, "{pairs:?}: {}", r.text);
        assert!(r.headers.get("location").is_none(), "{pairs:?}");
    }
    // IPv6 loopback and an explicit https loopback are fine.
    for redirect in ["http://[::1]:9/cb", "https://localhost/cb"] {
        let r = authorize(
            &cognito,
            &[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", redirect),
            ],
        )
        .await;
        assert_eq!(r.status, 302, "{redirect}: {}", r.text);
    }
    assert_eq!(cognito.counts().authorizations, cases.len() as u64 + 2);
}

// ---------------------------------------------------------------------------------------------
// Rotation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_refreshes_with_grace_zero_exactly_one_wins() {
    let cognito = LocalCognito::start().await;
    let tokens = cognito.sign_in("alice");
    let first = refresh_of(&tokens);
    let (a, b) = tokio::join!(get_tokens(&cognito, &first), get_tokens(&cognito, &first));
    let (winner, loser) = if a.status == 200 { (a, b) } else { (b, a) };
    assert_eq!(winner.status, 200, "{}", winner.text);
    assert_eq!(loser.status, 400, "{}", loser.text);
    assert_eq!(loser.body["__type"], "RefreshTokenReuseException");
    assert_eq!(
        loser.headers["x-amzn-errortype"].to_str().unwrap(),
        "RefreshTokenReuseException:"
    );
    assert!(loser.body["message"].is_string());
    let counts = cognito.counts();
    assert_eq!(
        (
            counts.refreshes,
            counts.refresh_ok,
            counts.reused,
            counts.invalid
        ),
        (2, 1, 1, 0)
    );

    // The winner's tokens: same sign-in, new token ids; its refresh token is the only one left.
    assert_eq!(winner.headers["content-type"], "application/x-amz-json-1.1");
    assert_eq!(
        winner.body.as_object().unwrap().len(),
        1,
        "only AuthenticationResult"
    );
    let r = result(&winner);
    assert_eq!(r["TokenType"], "Bearer");
    assert_eq!(r["ExpiresIn"], 3600);
    let old = decode_claims(&tokens.access_token);
    let new = decode_claims(r["AccessToken"].as_str().unwrap());
    assert_eq!(new["origin_jti"], old["origin_jti"]);
    assert_eq!(new["auth_time"], old["auth_time"]);
    assert_eq!(new["sub"], old["sub"]);
    assert_ne!(new["jti"], old["jti"]);
    let jwks = fetch_jwks(&cognito).await;
    assert!(verifies(&jwks, r["AccessToken"].as_str().unwrap()));
    assert!(verifies(&jwks, r["IdToken"].as_str().unwrap()));
    let second = r["RefreshToken"].as_str().unwrap().to_owned();
    assert_ne!(second, first);

    // The OAuth endpoint follows the same rules.
    let reused = oauth_refresh(&cognito, &first).await;
    assert_eq!(reused.status, 400);
    assert_eq!(reused.body, json!({ "error": "invalid_grant" }));
    let ok = oauth_refresh(&cognito, &second).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(ok.body["id_token"].is_string());
    let third = ok.body["refresh_token"].as_str().unwrap();
    assert_ne!(third, second);
    assert_eq!(
        get_tokens(&cognito, &second).await.body["__type"],
        "RefreshTokenReuseException"
    );
    assert_eq!(get_tokens(&cognito, third).await.status, 200);

    // Many at once: still exactly one winner.
    let tokens = cognito.sign_in("alice");
    let rt = refresh_of(&tokens);
    let replies = join_all((0..16).map(|_| get_tokens(&cognito, &rt))).await;
    assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 1);
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.body["__type"] == "RefreshTokenReuseException")
            .count(),
        15
    );
    let counts = cognito.counts();
    assert_eq!(
        counts.refreshes,
        counts.refresh_ok + counts.reused + counts.invalid
    );
}

/// Runs futures concurrently on this task and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut slots: Vec<_> = futures.into_iter().map(|f| (Box::pin(f), None)).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in &mut slots {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    slots
        .into_iter()
        .map(|(_, output)| output.unwrap())
        .collect()
}

#[tokio::test]
async fn grace_period_same_successor() {
    let cognito = LocalCognito::start_with(Options::new().grace(Duration::from_secs(30))).await;
    let rt = refresh_of(&cognito.sign_in("alice"));
    let a = get_tokens(&cognito, &rt).await;
    let b = get_tokens(&cognito, &rt).await;
    assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.text, b.text);
    assert_eq!(result(&a)["RefreshToken"], result(&b)["RefreshToken"]);
    assert_ne!(
        result(&a)["AccessToken"],
        result(&b)["AccessToken"],
        "new access tokens"
    );
    assert_ne!(result(&a)["RefreshToken"].as_str().unwrap(), rt);

    // Past the grace period: reuse.
    cognito.set_grace(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = get_tokens(&cognito, &rt).await;
    assert_eq!(
        late.body["__type"], "RefreshTokenReuseException",
        "{}",
        late.text
    );
    let successor = result(&a)["RefreshToken"].as_str().unwrap();
    assert_eq!(
        get_tokens(&cognito, successor).await.status,
        200,
        "reuse does not revoke"
    );
    let counts = cognito.counts();
    assert_eq!(
        (counts.refreshes, counts.refresh_ok, counts.reused),
        (4, 3, 1)
    );
}

#[tokio::test]
async fn grace_period_new_successor() {
    let cognito = LocalCognito::start_with(
        Options::new()
            .grace(Duration::from_secs(30))
            .grace_policy(GracePolicy::NewSuccessor),
    )
    .await;
    let rt = refresh_of(&cognito.sign_in("alice"));
    let a = get_tokens(&cognito, &rt).await;
    let b = oauth_refresh(&cognito, &rt).await;
    assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.text, b.text);
    let sa = result(&a)["RefreshToken"].as_str().unwrap().to_owned();
    let sb = b.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(sa, sb, "two chains for one sign-in");
    // Both chains live and belong to the same sign-in.
    let ca = get_tokens(&cognito, &sa).await;
    let cb = get_tokens(&cognito, &sb).await;
    assert_eq!((ca.status, cb.status), (200, 200));
    assert_eq!(
        decode_claims(result(&ca)["AccessToken"].as_str().unwrap())["origin_jti"],
        decode_claims(result(&cb)["AccessToken"].as_str().unwrap())["origin_jti"]
    );
    // Switching the policy at run time.
    cognito.set_grace_policy(GracePolicy::SameSuccessor);
    let c = get_tokens(&cognito, &rt).await;
    assert_eq!(
        result(&c)["RefreshToken"].as_str().unwrap(),
        sa,
        "the first successor recorded"
    );
}

#[tokio::test]
async fn rotation_off_keeps_the_refresh_token() {
    let cognito = LocalCognito::start_with(Options::new().rotation(false)).await;
    let rt = refresh_of(&cognito.sign_in("alice"));
    for _ in 0..2 {
        let r = get_tokens(&cognito, &rt).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(result(&r).get("RefreshToken").is_none());
        assert!(result(&r)["IdToken"].is_string());
        let o = oauth_refresh(&cognito, &rt).await;
        assert_eq!(o.status, 200, "{}", o.text);
        assert!(o.body.get("refresh_token").is_none());
        assert!(o.body["id_token"].is_string());
    }
    let initiate = |token: String| {
        let body = json!({
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "ClientId": cognito.client_id(),
            "AuthParameters": { "REFRESH_TOKEN": token },
        });
        api(&cognito, "InitiateAuth", body)
    };
    let r = initiate(rt.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(result(&r)["AccessToken"].is_string());
    assert!(result(&r).get("RefreshToken").is_none());
    assert_eq!(r.body["ChallengeParameters"], json!({}));

    // Rotation on: InitiateAuth is refused, GetTokensFromRefreshToken rotates.
    cognito.set_rotation(true);
    let refused = initiate(rt.clone()).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["__type"], "NotAuthorizedException");
    let rotated = get_tokens(&cognito, &rt).await;
    assert!(result(&rotated)["RefreshToken"].is_string());
    let counts = cognito.counts();
    assert_eq!(
        (counts.refreshes, counts.refresh_ok, counts.invalid),
        (7, 6, 1),
        "{counts:?}"
    );

    // Other flows and operations.
    let other = api(
        &cognito,
        "InitiateAuth",
        json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": cognito.client_id() }),
    )
    .await;
    assert_eq!(other.body["__type"], "InvalidParameterException");
    let unknown = api(&cognito, "SignUp", json!({})).await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["__type"], "UnknownOperationException");
    assert_eq!(cognito.counts().refreshes, 7, "neither is a refresh");
}

// ---------------------------------------------------------------------------------------------
// Revocation and expiry

#[tokio::test]
async fn revoking_kills_the_whole_sign_in() {
    let cognito = LocalCognito::start().await;
    let tokens = cognito.sign_in("alice");
    let first = refresh_of(&tokens);
    let second = result(&get_tokens(&cognito, &first).await)["RefreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = refresh_of(&cognito.sign_in("alice"));

    // Revoking the (already rotated) first token kills its successor too.
    let r = post_form(
        &cognito.revoke_url(),
        &[("token", &first), ("client_id", cognito.client_id())],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.is_empty());
    let dead = get_tokens(&cognito, &second).await;
    assert_eq!(
        dead.body["__type"], "NotAuthorizedException",
        "{}",
        dead.text
    );
    assert_eq!(
        oauth_refresh(&cognito, &second).await.body["error"],
        "invalid_grant"
    );
    assert!(cognito.is_revoked(&tokens.access_token));
    // Another sign-in of the same user is untouched.
    let alive = get_tokens(&cognito, &other).await;
    assert_eq!(alive.status, 200);
    let other_next = result(&alive)["RefreshToken"].as_str().unwrap().to_owned();

    // JSON API RevokeToken; an unknown token is fine; an access token is not a refresh token.
    let r = api(
        &cognito,
        "RevokeToken",
        json!({ "Token": other_next, "ClientId": cognito.client_id() }),
    )
    .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    assert_eq!(
        get_tokens(&cognito, &other_next).await.body["__type"],
        "NotAuthorizedException"
    );
    let r = api(
        &cognito,
        "RevokeToken",
        json!({ "Token": "unknown", "ClientId": cognito.client_id() }),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post_form(
        &cognito.revoke_url(),
        &[
            ("token", &tokens.access_token),
            ("client_id", cognito.client_id()),
        ],
        None,
    )
    .await;
    assert_eq!(r.body["error"], "unsupported_token_type");
    assert_eq!(cognito.counts().revocations, 4);

    // GlobalSignOut-like.
    let a = refresh_of(&cognito.sign_in("alice"));
    let b = refresh_of(&cognito.sign_in("bob"));
    cognito.revoke_all("alice");
    assert_eq!(
        get_tokens(&cognito, &a).await.body["__type"],
        "NotAuthorizedException"
    );
    assert_eq!(get_tokens(&cognito, &b).await.status, 200);
}

#[tokio::test]
async fn expired_refresh_tokens_are_refused() {
    let cognito =
        LocalCognito::start_with(Options::new().refresh_ttl(Duration::from_millis(1500))).await;
    let rt = refresh_of(&cognito.sign_in("alice"));
    let next = get_tokens(&cognito, &rt).await;
    let successor = result(&next)["RefreshToken"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = get_tokens(&cognito, &successor).await;
    assert_eq!(
        r.body["__type"], "NotAuthorizedException",
        "the successor lives only as long as the original"
    );
    assert_eq!(
        oauth_refresh(&cognito, &successor).await.body["error"],
        "invalid_grant"
    );

    let cognito = LocalCognito::start().await;
    let rt = refresh_of(&cognito.sign_in("alice"));
    cognito.expire_refresh_tokens();
    let r = get_tokens(&cognito, &rt).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["__type"], "NotAuthorizedException");
    let fresh = refresh_of(&cognito.sign_in("alice"));
    assert_eq!(
        get_tokens(&cognito, &fresh).await.status,
        200,
        "new sign-ins are fine"
    );
    assert_eq!(
        get_tokens(&cognito, "garbage").await.body["__type"],
        "NotAuthorizedException"
    );
    let counts = cognito.counts();
    assert_eq!(
        (counts.refreshes, counts.refresh_ok, counts.invalid),
        (3, 1, 2)
    );
}

#[tokio::test]
async fn spend_refresh_token_acts_as_another_device() {
    let cognito = LocalCognito::start().await;
    let rt = refresh_of(&cognito.sign_in("alice"));
    let spent = cognito
        .spend_refresh_token(&rt)
        .expect("an active token rotates");
    let successor = spent.refresh_token.clone().unwrap();
    assert!(cognito.spend_refresh_token(&rt).is_none());
    assert_eq!(
        get_tokens(&cognito, &rt).await.body["__type"],
        "RefreshTokenReuseException"
    );
    assert_eq!(get_tokens(&cognito, &successor).await.status, 200);
    let counts = cognito.counts();
    assert_eq!(
        (counts.refreshes, counts.refresh_ok, counts.reused),
        (4, 2, 2)
    );
    cognito.reset_counts();
    assert_eq!(cognito.counts(), Default::default());
}

// ---------------------------------------------------------------------------------------------
// Clients

#[tokio::test]
async fn a_client_with_a_secret_must_prove_it() {
    let secret = "s3cr+t/with:odd=chars";
    let cognito = LocalCognito::start_with(Options::new().client_secret(secret)).await;
    assert_eq!(cognito.client_secret(), Some(secret));
    let id = cognito.client_id().to_owned();
    let rt = refresh_of(&cognito.sign_in("alice"));

    fn form(rt: &str) -> Vec<(&'static str, &str)> {
        vec![("grant_type", "refresh_token"), ("refresh_token", rt)]
    }
    // client_id alone: refused.
    let mut pairs = form(&rt);
    pairs.push(("client_id", &id));
    let r = post_form(&cognito.token_url(), &pairs, None).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (400, json!({ "error": "invalid_client" }))
    );
    // A wrong secret: 401.
    let r = post_form(&cognito.token_url(), &form(&rt), Some((&id, "wrong"))).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (401, json!({ "error": "invalid_client" }))
    );
    assert_eq!(cognito.counts().refreshes, 2);
    assert_eq!(cognito.counts().invalid, 2);

    // url-encoded Basic credentials.
    let r = post_form(&cognito.token_url(), &form(&rt), Some((&id, secret))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    // raw Basic credentials.
    let raw = STANDARD.encode(format!("{id}:{secret}"));
    let response = http()
        .post(cognito.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {raw}"))
        .body(form_body(&form(&rt)))
        .send()
        .await
        .unwrap();
    let r = reply(response).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    // client_secret_post.
    let mut pairs = form(&rt);
    pairs.extend([("client_id", id.as_str()), ("client_secret", secret)]);
    let r = post_form(&cognito.token_url(), &pairs, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();

    // JSON API: ClientSecret required.
    let r = get_tokens(&cognito, &rt).await;
    assert_eq!(r.body["__type"], "NotAuthorizedException");
    let r = api(
        &cognito,
        "GetTokensFromRefreshToken",
        json!({ "ClientId": id, "RefreshToken": rt, "ClientSecret": "wrong" }),
    )
    .await;
    assert_eq!(r.body["__type"], "NotAuthorizedException");
    let r = api(
        &cognito,
        "GetTokensFromRefreshToken",
        json!({ "ClientId": id, "RefreshToken": rt, "ClientSecret": secret }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = api(
        &cognito,
        "GetTokensFromRefreshToken",
        json!({ "ClientId": "unknownclient", "RefreshToken": rt }),
    )
    .await;
    assert_eq!(r.body["__type"], "ResourceNotFoundException");

    // InitiateAuth (rotation off) wants a SECRET_HASH of username + client id.
    cognito.set_rotation(false);
    let rt = refresh_of(&cognito.sign_in("alice"));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let hash = STANDARD.encode(hmac::sign(&key, format!("alice{id}").as_bytes()).as_ref());
    let initiate = |hash: &str| {
        let body = json!({
            "AuthFlow": "REFRESH_TOKEN_AUTH",
            "ClientId": id,
            "AuthParameters": { "REFRESH_TOKEN": rt, "SECRET_HASH": hash },
        });
        api(&cognito, "InitiateAuth", body)
    };
    assert_eq!(initiate(&hash).await.status, 200);
    assert_eq!(
        initiate("AAAA").await.body["__type"],
        "NotAuthorizedException"
    );
    let counts = cognito.counts();
    assert_eq!(
        counts.refreshes,
        counts.refresh_ok + counts.reused + counts.invalid
    );
}

#[tokio::test]
async fn client_credentials_for_m2m_clients() {
    let cognito = LocalCognito::start().await;
    cognito.add_m2m_client("worker", "worker-secret", &["api/read", "api/write"]);
    let url = cognito.token_url();
    let grant = [("grant_type", "client_credentials")];

    let all = post_form(&url, &grant, Some(("worker", "worker-secret"))).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert!(all.body.get("refresh_token").is_none());
    assert!(all.body.get("id_token").is_none());
    let token = all.body["access_token"].as_str().unwrap();
    let claims = decode_claims(token);
    assert_eq!(claims["sub"], "worker");
    assert_eq!(claims["client_id"], "worker");
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["scope"], "api/read api/write");
    assert!(claims.get("username").is_none());
    assert!(claims.get("origin_jti").is_none());
    assert!(verifies(&fetch_jwks(&cognito).await, token));

    let some = post_form(
        &url,
        &[("grant_type", "client_credentials"), ("scope", "api/read")],
        Some(("worker", "worker-secret")),
    )
    .await;
    assert_eq!(
        decode_claims(some.body["access_token"].as_str().unwrap())["scope"],
        "api/read"
    );
    let bad_scope = post_form(
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "api/read api/admin"),
        ],
        Some(("worker", "worker-secret")),
    )
    .await;
    assert_eq!(bad_scope.body, json!({ "error": "invalid_scope" }));
    let bad_secret = post_form(&url, &grant, Some(("worker", "nope"))).await;
    assert_eq!(bad_secret.status, 401);
    assert_eq!(bad_secret.body["error"], "invalid_client");
    let no_secret = post_form(
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "worker"),
        ],
        None,
    )
    .await;
    assert_eq!(no_secret.body["error"], "invalid_client");
    // The user-facing client has no client_credentials grant.
    let public = post_form(
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", cognito.client_id()),
        ],
        None,
    )
    .await;
    assert_eq!(public.body["error"], "unauthorized_client");
    let unsupported = post_form(
        &url,
        &[
            ("grant_type", "password"),
            ("client_id", cognito.client_id()),
        ],
        None,
    )
    .await;
    assert_eq!(unsupported.body["error"], "unsupported_grant_type");
    // Not a form: refused.
    let json_body = http()
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reply(json_body).await.body["error"], "invalid_request");
    assert_eq!(cognito.counts().client_credentials, 6);
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn unavailable_answers_the_status_and_changes_nothing() {
    let cognito = LocalCognito::start().await;
    let rt = refresh_of(&cognito.sign_in("alice"));

    cognito.set_unavailable(Some(503));
    let r = get_tokens(&cognito, &rt).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["__type"], "ServiceUnavailableException");
    let o = oauth_refresh(&cognito, &rt).await;
    assert_eq!(
        (o.status, o.body.clone()),
        (503, json!({ "error": "temporarily_unavailable" }))
    );
    cognito.set_unavailable(Some(500));
    let r = get_tokens(&cognito, &rt).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body["__type"], "InternalErrorException");
    assert_eq!(r.headers["x-amzn-errortype"], "InternalErrorException:");
    assert_eq!(
        oauth_refresh(&cognito, &rt).await.body["error"],
        "server_error"
    );
    let counts = cognito.counts();
    assert_eq!((counts.refreshes, counts.unavailable), (0, 4));

    // JWKS stays up unless told otherwise.
    assert_eq!(
        fetch_jwks(&cognito).await["keys"].as_array().unwrap().len(),
        2
    );
    cognito.set_jwks_unavailable(Some(503));
    let j = reply(http().get(cognito.jwks_url()).send().await.unwrap()).await;
    assert_eq!(j.status, 503);
    cognito.set_jwks_unavailable(None);
    assert_eq!(cognito.counts().jwks_fetches, 2);

    cognito.set_unavailable(None);
    let r = get_tokens(&cognito, &rt).await;
    assert_eq!(r.status, 200, "the outage rotated nothing: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_the_client_gave_up_on_rotates_nothing() {
    let cognito = LocalCognito::start().await;
    let rt = refresh_of(&cognito.sign_in("alice"));
    cognito.set_refresh_delay(Duration::from_millis(400));

    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let body = json!({ "ClientId": cognito.client_id(), "RefreshToken": rt }).to_string();
    let gave_up = impatient
        .post(cognito.idp_url())
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken",
        )
        .body(body)
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    let form = form_body(&[
        ("grant_type", "refresh_token"),
        ("client_id", cognito.client_id()),
        ("refresh_token", &rt),
    ]);
    let gave_up = impatient
        .post(cognito.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    assert_eq!(
        cognito
            .wait_for_refreshes(1, Duration::from_millis(700))
            .await,
        0
    );

    // A patient client waits the delay and wins.
    let started = Instant::now();
    let r = get_tokens(&cognito, &rt).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        r.status, 200,
        "the abandoned refreshes rotated nothing: {}",
        r.text
    );
    let counts = cognito.counts();
    assert_eq!((counts.refreshes, counts.refresh_ok), (1, 1));

    // wait_for_refreshes sees a refresh still in its delay once it is processed.
    cognito.set_refresh_delay(Duration::from_millis(100));
    let next = result(&r)["RefreshToken"].as_str().unwrap().to_owned();
    let (seen, reply) = tokio::join!(
        cognito.wait_for_refreshes(2, Duration::from_secs(5)),
        get_tokens(&cognito, &next)
    );
    assert_eq!(seen, 2);
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn stop_and_start_again_keep_the_state() {
    let cognito = LocalCognito::start().await;
    let addr = cognito.addr();
    let rt = refresh_of(&cognito.sign_in("alice"));
    let client = http();
    let first = client
        .post(cognito.idp_url())
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken",
        )
        .body(json!({ "ClientId": cognito.client_id(), "RefreshToken": rt }).to_string())
        .send()
        .await
        .unwrap();
    let first = reply(first).await;
    assert_eq!(first.status, 200);
    let next = result(&first)["RefreshToken"].as_str().unwrap().to_owned();

    cognito.stop().await;
    cognito.stop().await; // twice is fine
                          // The same client (with a kept-alive connection) and a new one both fail.
    for c in [client.clone(), http()] {
        let down = c.get(cognito.jwks_url()).send().await;
        assert!(down.is_err(), "stopped, yet answered: {down:?}");
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    cognito.start_again().await;
    cognito.start_again().await; // twice is fine
    assert_eq!(cognito.addr(), addr);
    assert_eq!(
        get_tokens(&cognito, &rt).await.body["__type"],
        "RefreshTokenReuseException"
    );
    assert_eq!(get_tokens(&cognito, &next).await.status, 200);
    assert_eq!(cognito.counts().refreshes, 3);

    // Dropping stops the server.
    drop(cognito);
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "still listening after drop");
}

#[tokio::test]
async fn a_fixed_port_and_client_id() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let cognito = LocalCognito::start_with(Options::new().port(port).client_id("democlient")).await;
    assert_eq!(cognito.addr().port(), port);
    assert_eq!(cognito.client_id(), "democlient");
    assert!(cognito.addr().ip().is_loopback());
    let default = LocalCognito::start().await;
    assert_eq!(default.client_id().len(), 26);
    assert!(default
        .client_id()
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
}

#[tokio::test]
async fn the_handle_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<F: std::future::Future + Send>(_: &F) {}
    let cognito = std::sync::Arc::new(LocalCognito::start().await);
    send_sync(&*cognito);
    send(&cognito.stop());
    send(&cognito.start_again());
    send(&cognito.wait_for_refreshes(0, Duration::ZERO));
    send(&LocalCognito::start());
    let rt = refresh_of(&cognito.sign_in("alice"));
    let shared = std::sync::Arc::clone(&cognito);
    let task = tokio::spawn(async move { get_tokens(&shared, &rt).await.status });
    assert_eq!(task.await.unwrap(), 200);
}

#[tokio::test]
async fn debug_output_shows_no_secrets() {
    let cognito = LocalCognito::start_with(Options::new().client_secret("hunter2hunter2")).await;
    let tokens = cognito.sign_in("alice");
    let shown = format!(
        "{tokens:?} {cognito:?} {:?}",
        Options::new().client_secret("hunter2hunter2")
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains(&tokens.access_token));
    assert!(!shown.contains(&refresh_of(&tokens)));
    assert!(shown.contains("<redacted>"));
    assert!(shown.contains(cognito.client_id()));
}

// ---------------------------------------------------------------------------------------------
// The JWKS knobs and the test's own keys

/// Two keys for the tests below, generated once per test binary.
fn two_keys() -> &'static (SigningKey, SigningKey) {
    static KEYS: std::sync::OnceLock<(SigningKey, SigningKey)> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        std::thread::scope(|s| {
            let a = s.spawn(SigningKey::generate);
            let b = s.spawn(SigningKey::generate);
            (a.join().unwrap(), b.join().unwrap())
        })
    })
}

/// A local Cognito signing with [`two_keys`] (no key generated at start).
fn with_test_keys() -> Options {
    let (a, b) = two_keys();
    Options::new().signing_keys(a.with_kid("access-a"), b.with_kid("id-b"))
}

async fn get_jwks(cognito: &LocalCognito) -> Reply {
    reply(http().get(cognito.jwks_url()).send().await.unwrap()).await
}

#[test]
fn a_signing_key_round_trips_and_redacts() {
    let (a, b) = two_keys();
    let renamed = a.with_kid("renamed");
    assert_eq!(renamed.kid(), "renamed");
    assert_eq!(renamed.jwk()["n"], a.jwk()["n"]);
    assert_ne!(a.jwk()["n"], b.jwk()["n"]);
    // Cognito-shaped kid: standard base64 of 32 bytes.
    assert_eq!(STANDARD.decode(a.kid()).unwrap().len(), 32);
    let jwk = a.jwk();
    assert_eq!(
        (&jwk["kty"], &jwk["alg"], &jwk["use"], &jwk["e"]),
        (
            &json!("RSA"),
            &json!("RS256"),
            &json!("sig"),
            &json!("AQAB")
        )
    );

    let loaded = SigningKey::from_pkcs8("loaded", &a.pkcs8_der()).unwrap();
    assert_eq!(loaded.jwk()["n"], a.jwk()["n"]);
    let token = loaded.sign_jwt(&json!({ "sub": "alice" }));
    assert_eq!(
        decode_header(&token),
        json!({ "alg": "RS256", "kid": "loaded" })
    );
    assert!(verifies(&json!({ "keys": [loaded.jwk()] }), &token));
    assert!(!verifies(
        &json!({ "keys": [b.with_kid("loaded").jwk()] }),
        &token
    ));
    let raw = a.sign_with_header(&json!({ "alg": "HS256", "kid": "x" }), &json!({}));
    assert_eq!(decode_header(&raw)["alg"], "HS256");

    // The public key DER is the PKCS#1 RSAPublicKey: a SEQUENCE holding n.
    let der = a.public_key_der();
    let n = URL_SAFE_NO_PAD
        .decode(a.jwk()["n"].as_str().unwrap())
        .unwrap();
    assert_eq!(der[0], 0x30);
    assert!(der.windows(n.len()).any(|w| w == n.as_slice()));

    assert_eq!(
        SigningKey::from_pkcs8("bad", b"not a key").unwrap_err(),
        InvalidKey
    );
    assert_eq!(InvalidKey.to_string(), "not a PKCS#8 RSA private key");
    let shown = format!("{a:?}");
    assert!(shown.contains(a.kid()), "{shown}");
    assert!(!shown.contains(a.jwk()["n"].as_str().unwrap()), "{shown}");
}

#[tokio::test]
async fn given_signing_keys_sign_and_are_published() {
    let cognito = LocalCognito::start_with(with_test_keys()).await;
    let (access, id) = cognito.signing_keys();
    assert_eq!((access.kid(), id.kid()), ("access-a", "id-b"));
    assert_eq!(
        cognito.signing_kids(),
        ("access-a".to_owned(), "id-b".to_owned())
    );
    let tokens = cognito.sign_in("alice");
    assert_eq!(decode_header(&tokens.access_token)["kid"], "access-a");
    assert_eq!(
        decode_header(tokens.id_token.as_deref().unwrap())["kid"],
        "id-b"
    );
    let expected = json!({ "keys": [access.jwk(), id.jwk()] });
    assert_eq!(cognito.signing_jwks(), expected);
    assert_eq!(cognito.counts().jwks_fetches, 0, "signing_jwks is no fetch");
    let jwks = fetch_jwks(&cognito).await;
    assert_eq!(jwks, expected);
    assert!(verifies(&jwks, &tokens.access_token));
    // The test signs with the pool's own key: the same JWKS verifies it.
    let own = access.sign_jwt(&json!({ "sub": "bob" }));
    assert!(verifies(&jwks, &own));
}

#[tokio::test]
async fn the_jwks_publishes_what_it_is_told_with_the_status_it_is_told() {
    let mine = two_keys().1.with_kid("mine");
    let cognito = LocalCognito::start_with(with_test_keys().jwks(Jwks::Keys(Vec::new()))).await;
    let r = get_jwks(&cognito).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({ "keys": [] })));
    assert_eq!(r.headers["content-type"], "application/json");

    cognito.set_jwks(Jwks::of([&mine, &mine]));
    assert_eq!(
        get_jwks(&cognito).await.body,
        json!({ "keys": [mine.jwk(), mine.jwk()] })
    );
    // The pool still signs with its own keys.
    assert_eq!(
        decode_header(&cognito.mint_access("alice", &json!({})))["kid"],
        "access-a"
    );

    cognito.set_jwks(Jwks::raw("text/html", "<html>nope</html>"));
    let r = get_jwks(&cognito).await;
    assert_eq!((r.status, r.text.as_str()), (200, "<html>nope</html>"));
    assert_eq!(r.headers["content-type"], "text/html");

    // The status changes, the body stays.
    cognito.set_jwks_status(500);
    let r = get_jwks(&cognito).await;
    assert_eq!((r.status, r.text.as_str()), (500, "<html>nope</html>"));
    cognito.set_jwks(Jwks::SigningKeys);
    let r = get_jwks(&cognito).await;
    assert_eq!((r.status, r.body.clone()), (500, cognito.signing_jwks()));

    // An outage takes precedence over both, and leaves them in place.
    cognito.set_jwks_unavailable(Some(503));
    let r = get_jwks(&cognito).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, Value::Null, "a plain-text outage: {}", r.text);
    cognito.set_jwks_unavailable(None);
    cognito.set_jwks_status(200);
    assert_eq!(get_jwks(&cognito).await.body, cognito.signing_jwks());

    // Another pool's JWKS is not this one's: 404, not counted.
    let other = format!("{}/us-east-1_Other/.well-known/jwks.json", cognito.origin());
    assert_eq!(http().get(other).send().await.unwrap().status(), 404);
    assert_eq!(cognito.counts().jwks_fetches, 7);
    cognito.reset_counts();
    assert_eq!(cognito.counts().jwks_fetches, 0);
}

#[test]
#[should_panic(expected = "42 is not an HTTP status code")]
fn an_invalid_jwks_status_is_refused() {
    // No runtime needed to build a stopped one.
    LocalCognito::start_stopped_with(with_test_keys()).set_jwks_status(42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_jwks_answer_is_counted_on_arrival() {
    let cognito = std::sync::Arc::new(LocalCognito::start_with(with_test_keys()).await);
    let delay = Duration::from_millis(300);
    cognito.set_jwks_delay(delay);
    let started = Instant::now();
    let r = get_jwks(&cognito).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, cognito.signing_jwks());
    assert!(started.elapsed() >= delay, "answered before its delay");

    // A hung endpoint: counted at once, never answered, cut off by stop.
    cognito.set_jwks_delay(Duration::MAX);
    let url = cognito.jwks_url();
    let pending = tokio::spawn(async move { http().get(url).send().await });
    assert_eq!(
        cognito
            .wait_for_jwks_fetches(2, Duration::from_secs(10))
            .await,
        2
    );
    tokio::task::yield_now().await;
    assert!(!pending.is_finished(), "a hung JWKS answered");
    cognito.stop().await;
    let cut = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("stop cuts the hung request off")
        .unwrap();
    assert!(cut.is_err(), "answered after stop: {cut:?}");

    cognito.set_jwks_delay(Duration::ZERO);
    cognito.start_again().await;
    assert_eq!(get_jwks(&cognito).await.status, 200);
    assert_eq!(cognito.counts().jwks_fetches, 3);
    // Nothing arrives: the wait gives up at its deadline and says how many came.
    assert_eq!(
        cognito
            .wait_for_jwks_fetches(4, Duration::from_millis(50))
            .await,
        3
    );
}

#[tokio::test]
async fn started_stopped_it_refuses_connections_until_started() {
    let cognito = LocalCognito::start_stopped_with(with_test_keys());
    assert!(!cognito.is_running());
    let addr = cognito.addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        cognito.jwks_url(),
        format!("http://{addr}/{}/.well-known/jwks.json", cognito.pool_id())
    );
    let down = http().get(cognito.jwks_url()).send().await;
    assert!(down.is_err(), "not started, yet answered: {down:?}");
    assert_eq!(cognito.counts().jwks_fetches, 0);

    let mine = two_keys().0.with_kid("mine");
    cognito.set_jwks(Jwks::of([&mine]));
    cognito.start_again().await;
    assert!(cognito.is_running());
    assert_eq!(cognito.addr(), addr);
    assert_eq!(fetch_jwks(&cognito).await, json!({ "keys": [mine.jwk()] }));

    cognito.stop().await;
    assert!(!cognito.is_running());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    cognito.start_again().await;
    assert_eq!(fetch_jwks(&cognito).await, json!({ "keys": [mine.jwk()] }));
    assert_eq!(cognito.counts().jwks_fetches, 2);
}

// ---------------------------------------------------------------------------------------------
// The binary

/// Kills the child it holds when dropped, so a failing test leaves no server behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_prints_exports_and_serves() {
    use std::io::BufRead as _;
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_local-cognito"))
            .env("LOCAL_COGNITO_PORT", "0")
            .env("LOCAL_COGNITO_POOL_ID", "eu-central-1_Demo")
            .env("LOCAL_COGNITO_CLIENT_ID", "demo")
            .env("LOCAL_COGNITO_ACCESS_TTL_SECS", "600")
            .env("LOCAL_COGNITO_ROTATION", "0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .take(8)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let vars: std::collections::HashMap<&str, &str> = lines
        .iter()
        .map(|l| l.strip_prefix("export ").unwrap().split_once('=').unwrap())
        .collect();
    assert_eq!(vars.len(), 8, "{lines:?}");
    assert_eq!(vars["COGNITO_USER_POOL_ID"], "eu-central-1_Demo");
    assert_eq!(vars["COGNITO_CLIENT_ID"], "demo");
    assert_eq!(vars["COGNITO_ALLOW_HTTP"], "1");
    let domain = vars["COGNITO_DOMAIN"];
    assert!(domain.starts_with("http://127.0.0.1:"), "{domain}");
    assert_eq!(
        vars["COGNITO_ISSUER"],
        format!("{domain}/eu-central-1_Demo")
    );
    assert_eq!(
        vars["COGNITO_TOKEN_ENDPOINT"],
        format!("{domain}/oauth2/token")
    );
    assert_eq!(vars["COGNITO_IDP_ENDPOINT"], format!("{domain}/"));

    let jwks = reply(http().get(vars["COGNITO_JWKS_URL"]).send().await.unwrap()).await;
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 2);
    // Sign in through the hosted UI and refresh twice with the same token: rotation is off.
    let url = format!(
        "{domain}/oauth2/authorize?{}",
        form_body(&[
            ("response_type", "code"),
            ("client_id", "demo"),
            ("redirect_uri", REDIRECT),
        ])
    );
    let r = reply(http().get(url).send().await.unwrap()).await;
    let (_, params) = location_params(&r);
    let code = param(&params, "code").unwrap();
    let tokens = post_form(
        vars["COGNITO_TOKEN_ENDPOINT"],
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "demo"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ],
        None,
    )
    .await;
    assert_eq!(tokens.body["expires_in"], 600, "{}", tokens.text);
    let rt = tokens.body["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let r = post_form(
            vars["COGNITO_TOKEN_ENDPOINT"],
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "demo"),
                ("refresh_token", rt),
            ],
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.body.get("refresh_token").is_none());
    }

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_local-cognito"))
        .env("LOCAL_COGNITO_PORT", "0")
        .env("LOCAL_COGNITO_GRACE_SECS", "soon")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("LOCAL_COGNITO_GRACE_SECS"));
}
