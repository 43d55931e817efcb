//! `TokenClient::refresh_initiate_auth` (`InitiateAuth` `REFRESH_TOKEN_AUTH`) against moto, a
//! third-party Cognito emulator (`pip install "moto[server]"`), and moto's tokens through the
//! server crate's `Verifier`.
//!
//! The test starts `moto_server` on a free loopback port and kills it (by pid) when done. When
//! `moto_server` is not on `PATH` it is SKIPPED with a loud message on stderr; it never passes
//! silently. `.ci/run` installs moto when it is missing.
//!
//! What moto does, as seen here (moto 5.2): it implements `InitiateAuth` with
//! `USER_PASSWORD_AUTH` and `REFRESH_TOKEN_AUTH` (no rotation: no refresh token comes back),
//! checks `SECRET_HASH` on the refresh (with the username the refresh token was issued to), but
//! implements neither `GetTokensFromRefreshToken` nor `RevokeToken` (both answer a 500 HTML
//! page, which the client reads as `Unavailable`: against moto, refresh through `InitiateAuth`).
//! It signs every pool's
//! tokens with one fixed key shipped in the package (`kid: "dummy"`, access and id tokens
//! alike), its issuer is the real AWS form `https://cognito-idp.{region}.amazonaws.com/{pool}`,
//! and the JWKS is served at `/{pool}/.well-known/jwks.json`. It reads the region of the admin
//! calls from the `Authorization` header's credential scope without checking the signature
//! (no header: `us-east-1`), and looks `InitiateAuth` up in every region.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tower_cognito::{
    AccessClaims, ClientIds, CognitoConfig, IdClaims, TokenUse, UserPool, Verifier,
};
use tower_cognito_client::{Secret, StoredTokens, TokenClient, TokenError, TokenSource};

const REGION: &str = "us-east-1";
const USERNAME: &str = "alice";
const PASSWORD: &str = "Correct-Horse-9-battery";

/// `moto_server` on `PATH`, or `None`.
fn moto_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
}

/// Straight to the process's stderr: `eprintln!` would be captured by the test harness and
/// never shown for a passing test.
fn skip_loudly(why: &str) {
    use std::io::Write as _;
    let bar = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n{bar}\n!!! SKIPPED: client/tests/moto.rs did NOT run: {why}\n\
         !!! install it with: python3 -m pip install \"moto[server]\"\n{bar}\n"
    );
}

/// A `moto_server` child on 127.0.0.1, killed by pid when dropped.
struct Moto {
    child: Child,
    origin: String,
    http: reqwest::Client,
    _log_dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto and waits (up to 60 s) until it answers a JSON API call.
    async fn start(program: &std::path::Path) -> Moto {
        // A free port: bind port 0, read it, let it go; moto binds it right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_dir = tempfile::tempdir().unwrap();
        let log_path = log_dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("moto_server would not start");
        let mut moto = Moto {
            child,
            origin: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            _log_dir: log_dir,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!(
                    "moto_server exited ({status}) before answering:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if moto
                .call("ListUserPools", json!({"MaxResults": 1}))
                .await
                .is_ok()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!(
                    "moto_server not answering on {} after 60 s:\n{}",
                    moto.origin,
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "moto_server (pid {}) answering on {} after {:?}",
            moto.child.id(),
            moto.origin,
            started.elapsed()
        );
        moto
    }

    /// One JSON API call, as an AWS SDK would make it: the `Authorization` header has the
    /// SigV4 shape (moto reads the region from it and checks nothing else). `Err` holds the
    /// status and body of a refusal.
    async fn call(&self, operation: &str, body: Value) -> Result<Value, String> {
        let response = self
            .http
            .post(format!("{}/", self.origin))
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "x-amz-target",
                format!("AWSCognitoIdentityProviderService.{operation}"),
            )
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/cognito-idp/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "{operation}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{operation}: not JSON: {e}"))
    }

    async fn admin(&self, operation: &str, body: Value) -> Value {
        self.call(operation, body).await.unwrap()
    }

    /// A pool (its id), with user `alice` and a permanent password.
    async fn pool_with_user(&self) -> String {
        let pool = self
            .admin("CreateUserPool", json!({"PoolName": "tower-cognito"}))
            .await;
        let pool_id = pool["UserPool"]["Id"].as_str().unwrap().to_owned();
        self.admin(
            "AdminCreateUser",
            json!({"UserPoolId": pool_id, "Username": USERNAME, "MessageAction": "SUPPRESS"}),
        )
        .await;
        self.admin(
            "AdminSetUserPassword",
            json!({"UserPoolId": pool_id, "Username": USERNAME, "Password": PASSWORD, "Permanent": true}),
        )
        .await;
        pool_id
    }

    /// An app client of `pool_id` allowing password sign-in and `REFRESH_TOKEN_AUTH`: its id,
    /// and its secret when `secret`.
    async fn app_client(&self, pool_id: &str, secret: bool) -> (String, Option<String>) {
        let created = self
            .admin(
                "CreateUserPoolClient",
                json!({
                    "UserPoolId": pool_id,
                    "ClientName": if secret { "with-secret" } else { "public" },
                    "GenerateSecret": secret,
                    "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                }),
            )
            .await;
        let client = &created["UserPoolClient"];
        let id = client["ClientId"].as_str().unwrap().to_owned();
        let secret = client["ClientSecret"].as_str().map(str::to_owned);
        (id, secret)
    }

    /// A `USER_PASSWORD_AUTH` sign-in: access, id and refresh tokens.
    async fn sign_in(&self, client_id: &str, secret: Option<&str>) -> (String, String, String) {
        let mut parameters = json!({"USERNAME": USERNAME, "PASSWORD": PASSWORD});
        if let Some(secret) = secret {
            parameters["SECRET_HASH"] = Value::from(secret_hash(secret, USERNAME, client_id));
        }
        let answer = self
            .admin(
                "InitiateAuth",
                json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client_id, "AuthParameters": parameters}),
            )
            .await;
        let result = &answer["AuthenticationResult"];
        let token = |name: &str| {
            result[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {answer}"))
                .to_owned()
        };
        (
            token("AccessToken"),
            token("IdToken"),
            token("RefreshToken"),
        )
    }

    fn token_client(&self, client_id: &str, secret: Option<&str>) -> TokenClient {
        let mut builder = TokenClient::builder(client_id)
            .idp_endpoint(format!("{}/", self.origin))
            .allow_http_on_loopback(true)
            .timeouts(Duration::from_secs(2), Duration::from_secs(10));
        if let Some(secret) = secret {
            builder = builder.client_secret(secret);
        }
        builder.build().unwrap()
    }

    fn config(&self, pool_id: &str, token_use: TokenUse, client_id: &str) -> CognitoConfig {
        // moto's issuer is AWS's own form for the pool, so only the JWKS URL is overridden.
        CognitoConfig::new(
            UserPool::parse(pool_id).unwrap(),
            token_use,
            ClientIds::one(client_id),
        )
        .jwks_url(format!("{}/{pool_id}/.well-known/jwks.json", self.origin))
        .allow_http_on_loopback(true)
    }
}

/// The test's own SECRET_HASH (for the sign-in), computed independently of the client crate.
fn secret_hash(secret: &str, username: &str, client_id: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    STANDARD.encode(hmac::sign(&key, format!("{username}{client_id}").as_bytes()).as_ref())
}

#[tokio::test]
async fn refresh_initiate_auth_against_moto() {
    let Some(program) = moto_on_path() else {
        skip_loudly("moto_server is not on PATH");
        return;
    };
    let started = Instant::now();
    let moto = Moto::start(&program).await;
    let pool_id = moto.pool_with_user().await;
    assert!(
        pool_id.starts_with(&format!("{REGION}_")),
        "moto's pool id has the region prefix: {pool_id}"
    );

    // --- an app client without a secret -------------------------------------------------
    let (client_id, no_secret) = moto.app_client(&pool_id, false).await;
    assert!(no_secret.is_none());
    let (access, _id, refresh) = moto.sign_in(&client_id, None).await;
    let client = moto.token_client(&client_id, None);
    let refresh = Secret::new(refresh);

    let fresh = client
        .refresh_initiate_auth(&refresh, None, None)
        .await
        .expect("REFRESH_TOKEN_AUTH at moto");
    assert_ne!(fresh.access_token.expose(), access, "a new access token");
    assert!(fresh.id_token.is_some(), "an id token comes back too");
    assert!(
        fresh.refresh_token.is_none(),
        "no rotation: no new refresh token"
    );
    assert_eq!(fresh.expires_in, Duration::from_secs(3600));
    // The username is not needed without a secret; giving it changes nothing.
    let again = client
        .refresh_initiate_auth(&refresh, Some(USERNAME), None)
        .await
        .expect("the same refresh token again: it was not spent");
    assert!(again.refresh_token.is_none());

    let bogus = client
        .refresh_initiate_auth(&Secret::new("not-a-refresh-token"), None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(bogus, TokenError::Invalid),
        "a bogus refresh token is Invalid: {bogus:?}"
    );

    // --- moto's tokens through the server crate's Verifier ------------------------------
    let verifier: Verifier<AccessClaims> =
        Verifier::new(moto.config(&pool_id, TokenUse::Access, &client_id)).unwrap();
    let first = verifier.verify(&access).await.expect("moto's access token");
    let refreshed = verifier
        .verify(fresh.access_token.expose())
        .await
        .expect("moto's refreshed access token");
    assert_eq!(first.claims().username, USERNAME);
    assert_eq!(first.claims().client_id, client_id);
    assert_eq!(first.claims().sub, refreshed.claims().sub);
    assert_eq!(first.key_id(), "dummy", "moto's one fixed key");
    assert!(first.claims().has_scope("aws.cognito.signin.user.admin"));
    assert!(
        first.claims().origin_jti.is_some()
            && first.claims().origin_jti == refreshed.claims().origin_jti,
        "a refresh keeps origin_jti"
    );
    assert_ne!(
        first.claims().jti,
        refreshed.claims().jti,
        "and mints a new jti"
    );
    let id_verifier: Verifier<IdClaims> =
        Verifier::with_claims(moto.config(&pool_id, TokenUse::Id, &client_id)).unwrap();
    let id = id_verifier
        .verify(fresh.id_token.as_ref().unwrap().expose())
        .await
        .expect("moto's refreshed id token");
    assert_eq!(id.claims().username, USERNAME);
    assert_eq!(id.claims().aud, client_id);
    // Access and id tokens are told apart by token_use, not by key (moto has one).
    assert!(verifier
        .verify(fresh.id_token.as_ref().unwrap().expose())
        .await
        .is_err());

    // --- an app client with a secret: SECRET_HASH over username + client id -------------
    let (secret_client_id, secret) = moto.app_client(&pool_id, true).await;
    let secret = secret.expect("GenerateSecret gives a secret");
    let (_access, _id, refresh) = moto.sign_in(&secret_client_id, Some(&secret)).await;
    let refresh = Secret::new(refresh);
    let client = moto.token_client(&secret_client_id, Some(&secret));

    let fresh = client
        .refresh_initiate_auth(&refresh, Some(USERNAME), None)
        .await
        .expect("REFRESH_TOKEN_AUTH with SECRET_HASH at moto");
    assert!(fresh.refresh_token.is_none());

    match client.refresh_initiate_auth(&refresh, None, None).await {
        Err(TokenError::Rejected(cause)) => assert!(cause.what().contains("username"), "{cause}"),
        other => panic!("a secret and no username must be Rejected: {other:?}"),
    }
    // moto checks the hash: one over another username is refused, as Cognito does.
    let wrong = client
        .refresh_initiate_auth(&refresh, Some("bob"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, TokenError::Invalid),
        "a SECRET_HASH over the wrong username: {wrong:?}"
    );

    // --- a TokenSource refreshing through InitiateAuth ----------------------------------
    let source = TokenSource::builder(client.clone())
        .tokens(StoredTokens::new(
            fresh.access_token.clone(),
            Some(refresh.clone()),
        ))
        .initiate_auth_refresh(Some(USERNAME))
        .build();
    let forced = source.force_refresh().await.expect("the source refreshes");
    assert_ne!(&forced, &fresh.access_token);
    let held = source.tokens().await.unwrap();
    assert_eq!(
        held.refresh_token(),
        Some(&refresh),
        "no refresh token came back: the old one is kept"
    );
    verifier_for(&moto, &pool_id, &secret_client_id)
        .verify(forced.expose())
        .await
        .expect("the source's token verifies");

    eprintln!("moto test: all steps in {:?}", started.elapsed());
}

fn verifier_for(moto: &Moto, pool_id: &str, client_id: &str) -> Verifier<AccessClaims> {
    Verifier::new(moto.config(pool_id, TokenUse::Access, client_id)).unwrap()
}
