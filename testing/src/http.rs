//! The HTTP side: routes, wire formats, the accept loop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::hmac;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::keys::uuid;
use crate::state::{Code, RefreshFail, State, DEFAULT_SCOPE};
use crate::{Inner, Jwks, TokenSet};

/// How long an authorization code can be exchanged.
const CODE_LIFE: Duration = Duration::from_secs(300);

/// The prefix of every JSON API target.
const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";

type Shared = Arc<Inner>;

pub(crate) fn router(inner: Shared) -> Router {
    Router::new()
        .route("/{pool}/.well-known/jwks.json", get(jwks))
        .route(
            "/{pool}/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/oauth2/authorize", get(authorize))
        .route("/oauth2/token", post(token))
        .route("/oauth2/revoke", post(revoke))
        .route("/logout", get(logout))
        .route("/", post(idp))
        .with_state(inner)
}

/// Accepts connections until `shutdown` fires (or its sender is dropped), then closes the
/// listener and every open connection, so kept-alive client connections see the server go.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Small response helpers

fn plain(status: StatusCode, text: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(text.to_owned()))
        .expect("valid response")
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(Body::from(value.to_string()))
        .expect("valid response")
}

/// An RFC 6749 error answer.
fn oauth_error(status: StatusCode, error: &str) -> Response {
    json_response(status, &json!({ "error": error }))
}

fn status_of(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// The answer of an endpoint made unavailable with `set_unavailable`.
fn oauth_unavailable(code: u16) -> Response {
    let error = if code == 503 || code == 429 {
        "temporarily_unavailable"
    } else {
        "server_error"
    };
    oauth_error(status_of(code), error)
}

/// A JSON API error: `x-amzn-ErrorType` header plus `{"__type","message"}`.
fn api_error(status: StatusCode, name: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .header("x-amzn-ErrorType", format!("{name}:"))
        .header("x-amzn-RequestId", uuid())
        .body(Body::from(
            json!({ "__type": name, "message": message }).to_string(),
        ))
        .expect("valid response")
}

fn api_bad(name: &str, message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, name, message)
}

fn api_ok(value: &Value) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
        .header("x-amzn-RequestId", uuid())
        .body(Body::from(value.to_string()))
        .expect("valid response")
}

fn api_unavailable(code: u16) -> Response {
    let name = match code {
        500 => "InternalErrorException",
        429 => "TooManyRequestsException",
        _ => "ServiceUnavailableException",
    };
    api_error(
        status_of(code),
        name,
        "the local Cognito was told to be unavailable",
    )
}

/// Secrets compared in constant time.
fn same_secret(a: &str, b: &str) -> bool {
    verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Parses `application/x-www-form-urlencoded`; a repeated parameter is an error (RFC 6749 3.1).
fn parse_form(bytes: &[u8]) -> Option<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (key, value) in form_urlencoded::parse(bytes) {
        if map.insert(key.into_owned(), value.into_owned()).is_some() {
            return None;
        }
    }
    Some(map)
}

fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, State> {
    inner.state.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// JWKS and discovery

async fn jwks(AxumState(inner): AxumState<Shared>, Path(pool): Path<String>) -> Response {
    let (response, delay) = {
        let mut st = lock(&inner);
        if pool != st.pool_id {
            return plain(StatusCode::NOT_FOUND, "unknown user pool");
        }
        st.counts.jwks_fetches += 1;
        (jwks_answer(&st), st.jwks_delay)
    };
    if !delay.is_zero() {
        // A client that gives up meanwhile drops this future; `Duration::MAX` never answers.
        tokio::time::sleep(delay).await;
    }
    response
}

/// The JWKS answer the settings call for.
fn jwks_answer(st: &State) -> Response {
    if let Some(code) = st.jwks_unavailable {
        return plain(
            status_of(code),
            "the local Cognito was told to fail JWKS fetches",
        );
    }
    let (content_type, body) = match &st.jwks {
        Jwks::SigningKeys => ("application/json".to_owned(), st.keys.jwks().to_string()),
        Jwks::Keys(keys) => (
            "application/json".to_owned(),
            json!({ "keys": keys }).to_string(),
        ),
        Jwks::Raw { content_type, body } => {
            return jwks_response(st.jwks_status, content_type, Body::from(body.clone()))
        }
    };
    jwks_response(st.jwks_status, &content_type, Body::from(body))
}

fn jwks_response(status: u16, content_type: &str, body: Body) -> Response {
    let mut response = Response::builder()
        .status(status_of(status))
        .header(header::CACHE_CONTROL, "max-age=3600")
        .body(body)
        .expect("valid response");
    // A raw body may come with any content type, even one that is not a valid header value.
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

async fn openid_configuration(
    AxumState(inner): AxumState<Shared>,
    Path(pool): Path<String>,
) -> Response {
    if pool != inner.pool_id {
        return plain(StatusCode::NOT_FOUND, "unknown user pool");
    }
    let origin = &inner.origin;
    let issuer = format!("{origin}/{pool}");
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{origin}/oauth2/authorize"),
            "token_endpoint": format!("{origin}/oauth2/token"),
            "revocation_endpoint": format!("{origin}/oauth2/revoke"),
            "end_session_endpoint": format!("{origin}/logout"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "phone", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Hosted UI

/// A redirect target this local Cognito accepts: http(s) on a loopback host.
/// (Real Cognito checks the app client's list of callback URLs; a local one for tests checks
/// only that the browser never leaves the machine.)
fn loopback_url(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let loopback = match url.host()? {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(ip).is_loopback(),
    };
    loopback.then_some(url)
}

async fn authorize(AxumState(inner): AxumState<Shared>, RawQuery(query): RawQuery) -> Response {
    let mut st = lock(&inner);
    st.counts.authorizations += 1;
    let Some(q) = parse_form(query.unwrap_or_default().as_bytes()) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "invalid_request: repeated parameter",
        );
    };
    let get = |k: &str| q.get(k).map(String::as_str);
    let Some(client_id) = get("client_id") else {
        return plain(
            StatusCode::BAD_REQUEST,
            "invalid_request: client_id is required",
        );
    };
    match st.clients.get(client_id) {
        None => {
            return plain(
                StatusCode::BAD_REQUEST,
                "invalid_request: unknown client_id",
            )
        }
        Some(c) if c.m2m_scopes.is_some() => {
            return plain(
                StatusCode::BAD_REQUEST,
                "unauthorized_client: a client_credentials client cannot sign users in",
            )
        }
        Some(_) => {}
    }
    let Some(redirect_raw) = get("redirect_uri") else {
        return plain(
            StatusCode::BAD_REQUEST,
            "invalid_request: redirect_uri is required",
        );
    };
    let Some(mut redirect) = loopback_url(redirect_raw) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "redirect_mismatch: this local Cognito redirects only to http(s) on a loopback host",
        );
    };
    if get("response_type") != Some("code") {
        return plain(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type: only response_type=code is supported",
        );
    }
    let challenge = get("code_challenge").map(str::to_owned);
    if challenge.is_some() && get("code_challenge_method") != Some("S256") {
        return plain(
            StatusCode::BAD_REQUEST,
            "invalid_request: code_challenge_method must be S256",
        );
    }
    let username = match get("login_hint") {
        Some(hint) if st.user(hint).is_some() => hint.to_owned(),
        _ => st.users[0].username.clone(),
    };
    let code = uuid();
    st.purge_codes();
    st.codes.insert(
        code.clone(),
        Code {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_raw.to_owned(),
            challenge,
            nonce: get("nonce").map(str::to_owned),
            username,
            scope: get("scope").unwrap_or(DEFAULT_SCOPE).to_owned(),
            expires: Instant::now() + CODE_LIFE,
        },
    );
    drop(st);
    {
        let mut pairs = redirect.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(state) = get("state") {
            pairs.append_pair("state", state);
        }
    }
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, redirect.as_str())
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::empty())
        .expect("valid response")
}

async fn logout(RawQuery(query): RawQuery) -> Response {
    let Some(q) = parse_form(query.unwrap_or_default().as_bytes()) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "invalid_request: repeated parameter",
        );
    };
    match q.get("logout_uri").and_then(|u| loopback_url(u)) {
        Some(target) => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, target.as_str())
            .body(Body::empty())
            .expect("valid response"),
        None => plain(StatusCode::OK, "signed out"),
    }
}

// ---------------------------------------------------------------------------------------------
// Token endpoint

/// Client authentication failures carry whether the Basic scheme was tried (401 then).
#[derive(Clone, Copy)]
struct ClientAuthError {
    basic: bool,
}

impl ClientAuthError {
    fn response(&self) -> Response {
        let status = if self.basic {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        let mut response = oauth_error(status, "invalid_client");
        if self.basic {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cognito\""),
            );
        }
        response
    }
}

/// `raw` with `%XX` and `+` decoded as in a form value.
fn percent_decoded(raw: &str) -> String {
    form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `client_secret_basic` (url-encoded or raw), `client_secret_post`, or a bare `client_id` for
/// a client without a secret. Returns the authenticated client id.
fn authenticate(
    st: &State,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, ClientAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
        });
    if let Some(credentials) = basic {
        let fail = ClientAuthError { basic: true };
        let decoded = STANDARD
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(fail)?;
        let (raw_id, raw_secret) = decoded.split_once(':').ok_or(fail)?;
        // RFC 6749 2.3.1 says url-encode both; many clients send them raw: accept both.
        let ids = [raw_id.to_owned(), percent_decoded(raw_id)];
        let secrets = [raw_secret.to_owned(), percent_decoded(raw_secret)];
        let (id, client) = ids
            .iter()
            .find_map(|id| st.clients.get(id).map(|c| (id.clone(), c)))
            .ok_or(fail)?;
        if form.get("client_id").is_some_and(|f| *f != id) {
            return Err(fail);
        }
        let expected = client.secret.as_deref().ok_or(fail)?;
        if !secrets.iter().any(|s| same_secret(s, expected)) {
            return Err(fail);
        }
        return Ok(id);
    }
    let fail = ClientAuthError { basic: false };
    let id = form.get("client_id").ok_or(fail)?;
    let client = st.clients.get(id).ok_or(fail)?;
    match (&client.secret, form.get("client_secret")) {
        (None, _) => Ok(id.clone()),
        (Some(expected), Some(given)) if same_secret(given, expected) => Ok(id.clone()),
        (Some(_), _) => Err(fail),
    }
}

fn token_response(tokens: &TokenSet) -> Response {
    let mut body = json!({
        "access_token": tokens.access_token,
        "expires_in": tokens.expires_in,
        "token_type": "Bearer",
    });
    if let Some(id) = &tokens.id_token {
        body["id_token"] = json!(id);
    }
    if let Some(refresh) = &tokens.refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    json_response(StatusCode::OK, &body)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn token(AxumState(inner): AxumState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (unavailable, delay) = {
        let st = lock(&inner);
        (st.unavailable, st.refresh_delay)
    };
    if let Some(code) = unavailable {
        lock(&inner).counts.unavailable += 1;
        return oauth_unavailable(code);
    }
    let form = parse_form(&body);
    let grant = form
        .as_ref()
        .and_then(|f| f.get("grant_type"))
        .map(String::as_str);
    if grant == Some("refresh_token") {
        lock(&inner).counts.refreshes_received += 1;
        if !delay.is_zero() {
            // A client that gives up meanwhile drops this future: nothing below happens.
            tokio::time::sleep(delay).await;
        }
    }
    let mut st = lock(&inner);
    let grant = grant.map(str::to_owned);
    match grant.as_deref() {
        Some("refresh_token") => st.counts.refreshes += 1,
        Some("authorization_code") => st.counts.code_exchanges += 1,
        Some("client_credentials") => st.counts.client_credentials += 1,
        _ => {}
    }
    let refresh = grant.as_deref() == Some("refresh_token");
    let fail = |st: &mut State, response: Response| {
        if refresh {
            st.counts.invalid += 1;
        }
        response
    };
    let Some(form) = form.filter(|_| is_form(&headers)) else {
        return fail(
            &mut st,
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        );
    };
    let client_id = match authenticate(&st, &headers, &form) {
        Ok(id) => id,
        Err(e) => return fail(&mut st, e.response()),
    };
    let m2m_scopes = st.clients[&client_id].m2m_scopes.clone();
    match grant.as_deref() {
        Some("refresh_token") => {
            if m2m_scopes.is_some() {
                return fail(
                    &mut st,
                    oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client"),
                );
            }
            let Some(refresh_token) = form.get("refresh_token") else {
                return fail(
                    &mut st,
                    oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
                );
            };
            match st.refresh(refresh_token, &client_id, true) {
                Ok(tokens) => token_response(&tokens),
                Err(_) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
            }
        }
        Some("authorization_code") => {
            if m2m_scopes.is_some() {
                return oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client");
            }
            code_exchange(&mut st, &client_id, &form)
        }
        Some("client_credentials") => {
            let Some(allowed) = m2m_scopes else {
                return oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client");
            };
            client_credentials(&st, &client_id, &allowed, form.get("scope"))
        }
        Some(_) => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
    }
}

fn code_exchange(st: &mut State, client_id: &str, form: &HashMap<String, String>) -> Response {
    let invalid_grant = || oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let Some(code) = form.get("code") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    // Single use: whatever the outcome, this code is spent.
    let Some(code) = st.codes.remove(code) else {
        return invalid_grant();
    };
    if code.expires <= Instant::now()
        || code.client_id != client_id
        || form.get("redirect_uri") != Some(&code.redirect_uri)
    {
        return invalid_grant();
    }
    if let Some(challenge) = &code.challenge {
        let Some(verifier) = form.get("code_verifier") else {
            return invalid_grant();
        };
        let computed = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
        if computed != *challenge {
            return invalid_grant();
        }
    }
    let tokens = st.sign_in(
        &code.username,
        client_id,
        &code.scope,
        code.nonce.as_deref(),
    );
    token_response(&tokens)
}

fn client_credentials(
    st: &State,
    client_id: &str,
    allowed: &[String],
    requested: Option<&String>,
) -> Response {
    let scope = match requested {
        Some(requested) => {
            let wanted: Vec<&str> = requested.split_whitespace().collect();
            if wanted.is_empty() || wanted.iter().any(|s| !allowed.iter().any(|a| a == s)) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
            }
            wanted.join(" ")
        }
        None => allowed.join(" "),
    };
    let iat = crate::state::now_secs();
    let claims = json!({
        "sub": client_id,
        "token_use": "access",
        "scope": scope,
        "auth_time": iat,
        "iss": st.issuer,
        "exp": iat + st.access_ttl.as_secs().max(1),
        "iat": iat,
        "version": 2,
        "jti": uuid(),
        "client_id": client_id,
    });
    let access_token = st.keys.access.sign_jwt(&claims);
    token_response(&TokenSet {
        access_token,
        id_token: None,
        refresh_token: None,
        expires_in: st.access_ttl.as_secs().max(1),
    })
}

async fn revoke(AxumState(inner): AxumState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = lock(&inner);
    if let Some(code) = st.unavailable {
        st.counts.unavailable += 1;
        return oauth_unavailable(code);
    }
    st.counts.revocations += 1;
    let Some(form) = parse_form(&body).filter(|_| is_form(&headers)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let client_id = match authenticate(&st, &headers, &form) {
        Ok(id) => id,
        Err(e) => return e.response(),
    };
    let Some(token) = form.get("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if looks_like_jwt(token) {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_token_type");
    }
    match st.revoke(token, &client_id) {
        Ok(_) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::empty())
            .expect("valid response"),
        Err(()) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
    }
}

/// An access or id token (three parts) rather than a refresh token (five).
fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

// ---------------------------------------------------------------------------------------------
// JSON API

fn str_field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// What a JSON API call resolved to, before any delay.
enum Call {
    GetTokens,
    InitiateRefresh,
    InitiateOther,
    Revoke,
}

async fn idp(AxumState(inner): AxumState<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (unavailable, delay) = {
        let st = lock(&inner);
        (st.unavailable, st.refresh_delay)
    };
    if let Some(code) = unavailable {
        lock(&inner).counts.unavailable += 1;
        return api_unavailable(code);
    }
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return api_bad("SerializationException", "the body is not valid JSON");
    };
    if !body.is_object() {
        return api_bad("SerializationException", "the body is not a JSON object");
    }
    let call = match target.strip_prefix(TARGET_PREFIX) {
        Some("GetTokensFromRefreshToken") => Call::GetTokens,
        Some("InitiateAuth") => match str_field(&body, "AuthFlow") {
            Some("REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN") => Call::InitiateRefresh,
            _ => Call::InitiateOther,
        },
        Some("RevokeToken") => Call::Revoke,
        _ => {
            return api_bad(
                "UnknownOperationException",
                "the local Cognito does not implement this operation",
            )
        }
    };
    if matches!(call, Call::GetTokens | Call::InitiateRefresh) {
        lock(&inner).counts.refreshes_received += 1;
        if !delay.is_zero() {
            // A client that gives up meanwhile drops this future: nothing below happens.
            tokio::time::sleep(delay).await;
        }
    }
    let mut st = lock(&inner);
    match call {
        Call::GetTokens => {
            st.counts.refreshes += 1;
            get_tokens(&mut st, &body)
        }
        Call::InitiateRefresh => {
            st.counts.refreshes += 1;
            initiate_refresh(&mut st, &body)
        }
        Call::InitiateOther => api_bad(
            "InvalidParameterException",
            "the local Cognito supports only the REFRESH_TOKEN_AUTH flow",
        ),
        Call::Revoke => {
            st.counts.revocations += 1;
            revoke_api(&mut st, &body)
        }
    }
}

/// `{"AuthenticationResult":{..}}`; `InitiateAuth` adds an empty `ChallengeParameters`.
fn authentication_result(tokens: &TokenSet, initiate: bool) -> Response {
    let mut result = json!({
        "AccessToken": tokens.access_token,
        "ExpiresIn": tokens.expires_in,
        "TokenType": "Bearer",
    });
    if let Some(id) = &tokens.id_token {
        result["IdToken"] = json!(id);
    }
    if let Some(refresh) = &tokens.refresh_token {
        result["RefreshToken"] = json!(refresh);
    }
    let mut body = json!({ "AuthenticationResult": result });
    if initiate {
        body["ChallengeParameters"] = json!({});
    }
    api_ok(&body)
}

fn refresh_fail_response(fail: RefreshFail) -> Response {
    match fail {
        RefreshFail::Reused => api_bad(
            "RefreshTokenReuseException",
            "The refresh token has already been used",
        ),
        RefreshFail::NotAuthorized(message) => api_bad("NotAuthorizedException", message),
    }
}

/// Checks the client of a JSON API call. `secret_ok` decides whether the caller proved the
/// secret (when the client has one). Errors are already counted as invalid refreshes when
/// `refresh` is set.
fn api_client(
    st: &mut State,
    client_id: Option<&str>,
    refresh: bool,
    secret_ok: impl FnOnce(&State, &str) -> bool,
) -> Result<String, Box<Response>> {
    let fail = |st: &mut State, response: Response| {
        if refresh {
            st.counts.invalid += 1;
        }
        Err(Box::new(response))
    };
    let Some(client_id) = client_id else {
        return fail(
            st,
            api_bad("InvalidParameterException", "ClientId is required"),
        );
    };
    let Some(client) = st.clients.get(client_id) else {
        return fail(
            st,
            api_bad(
                "ResourceNotFoundException",
                "User pool client does not exist.",
            ),
        );
    };
    if let Some(secret) = client.secret.clone() {
        if !secret_ok(st, &secret) {
            return fail(
                st,
                api_bad(
                    "NotAuthorizedException",
                    &format!("Client {client_id} is configured with secret but it was not proven"),
                ),
            );
        }
    }
    Ok(client_id.to_owned())
}

fn get_tokens(st: &mut State, body: &Value) -> Response {
    let given_secret = str_field(body, "ClientSecret").map(str::to_owned);
    let client_id = match api_client(st, str_field(body, "ClientId"), true, |_, secret| {
        given_secret
            .as_deref()
            .is_some_and(|g| same_secret(g, secret))
    }) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let Some(refresh_token) = str_field(body, "RefreshToken") else {
        st.counts.invalid += 1;
        return api_bad("InvalidParameterException", "RefreshToken is required");
    };
    match st.refresh(refresh_token, &client_id, true) {
        Ok(tokens) => authentication_result(&tokens, false),
        Err(fail) => refresh_fail_response(fail),
    }
}

/// `SECRET_HASH` = base64(HMAC-SHA256(secret, user + client id)); for a refresh the user is the
/// username or the `sub`, both are accepted.
fn secret_hash_ok(
    st: &State,
    secret: &str,
    client_id: &str,
    refresh_token: &str,
    hash: &str,
) -> bool {
    let Some((_, _, username)) = st.refresh_owner(refresh_token) else {
        // Unknown token: let the refresh itself answer NotAuthorized.
        return true;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let sub = st.user(username).map(|u| u.sub.clone()).unwrap_or_default();
    [username.to_owned(), sub].iter().any(|user| {
        let tag = hmac::sign(&key, format!("{user}{client_id}").as_bytes());
        same_secret(&STANDARD.encode(tag.as_ref()), hash)
    })
}

fn initiate_refresh(st: &mut State, body: &Value) -> Response {
    let params = body.get("AuthParameters").cloned().unwrap_or(Value::Null);
    let refresh_token = str_field(&params, "REFRESH_TOKEN").map(str::to_owned);
    let hash = str_field(&params, "SECRET_HASH").map(str::to_owned);
    let client_field = str_field(body, "ClientId").map(str::to_owned);
    let client_id = match api_client(st, client_field.as_deref(), true, |st, secret| {
        match (&hash, &refresh_token, &client_field) {
            (Some(hash), Some(token), Some(client)) => {
                secret_hash_ok(st, secret, client, token, hash)
            }
            _ => false,
        }
    }) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    if st.rotation {
        st.counts.invalid += 1;
        return api_bad(
            "NotAuthorizedException",
            "refresh token rotation is enabled; use GetTokensFromRefreshToken",
        );
    }
    let Some(refresh_token) = refresh_token else {
        st.counts.invalid += 1;
        return api_bad("InvalidParameterException", "REFRESH_TOKEN is required");
    };
    match st.refresh(&refresh_token, &client_id, false) {
        Ok(tokens) => authentication_result(&tokens, true),
        Err(fail) => refresh_fail_response(fail),
    }
}

fn revoke_api(st: &mut State, body: &Value) -> Response {
    let given_secret = str_field(body, "ClientSecret").map(str::to_owned);
    let client_id = match api_client(st, str_field(body, "ClientId"), false, |_, secret| {
        given_secret
            .as_deref()
            .is_some_and(|g| same_secret(g, secret))
    }) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let Some(token) = str_field(body, "Token") else {
        return api_bad("InvalidParameterException", "Token is required");
    };
    if looks_like_jwt(token) {
        return api_bad(
            "UnsupportedTokenTypeException",
            "only refresh tokens can be revoked",
        );
    }
    match st.revoke(token, &client_id) {
        Ok(_) => api_ok(&json!({})),
        Err(()) => api_bad(
            "NotAuthorizedException",
            "the token was not issued to this client",
        ),
    }
}
