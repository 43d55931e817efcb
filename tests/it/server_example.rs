//! The server example (`examples/server.rs`) as a deployment runs it: the real binary, configured
//! by its environment variables only, against the test's local Cognito. These tests pin the
//! variable names (a contract) and what each does, and the start-up refusals (exit code 2, one
//! line naming the variable).
//!
//! The binary comes from `cargo test` (which builds the examples) or `cargo build --example
//! server`; a missing or stale one fails the test with that command.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::jwks_proxy::proxy;
use crate::support::{self, key, JwksServer};

const POOL: &str = "eu-west-1_ServerExample1";
const CLIENT: &str = "example0client0id0for0tests";

/// The example binary, checked to be newer than its sources.
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/it-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let binary = profile_dir.join("examples").join("server");
    let build = "cargo build --example server (plain `cargo test` builds it too)";
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {build}", binary.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for source in ["examples/server.rs", "examples/common/mod.rs"] {
        let changed = std::fs::metadata(root.join(source))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        assert!(
            changed <= built,
            "{} is older than {source}: {build}",
            binary.display()
        );
    }
    binary
}

/// The example's environment for `server`'s pool: everything else cleared.
fn example_command(server: &JwksServer, port: u16) -> Command {
    let mut command = Command::new(example());
    command
        .env_clear()
        .env("COGNITO_USER_POOL_ID", server.pool_id())
        .env("COGNITO_CLIENT_IDS", CLIENT)
        .env("COGNITO_ISSUER", server.issuer())
        .env("COGNITO_JWKS_URL", server.url())
        .env("COGNITO_ALLOW_HTTP", "1")
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// A running example, killed on drop.
struct Running {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `command` and waits until `/ready` answers 200 (keys fetched).
    async fn start(mut command: Command, port: u16) -> Running {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server example starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut running = Running {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http,
        };
        for _ in 0..300 {
            if let Some(status) = running.child.try_wait().unwrap() {
                panic!("the server example exited at start: {status}");
            }
            let ready = running.http.get(running.url("/ready")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server example was not ready after 15 s");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn me(&self, bearer: Option<&str>, cookie: Option<&str>) -> (u16, String) {
        let mut request = self.http.get(self.url("/me"));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.expect("the example answers");
        let status = response.status().as_u16();
        let www = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, www)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn token(server: &JwksServer, lifetime: i64) -> String {
    let mut claims = support::access_claims(&server.issuer(), CLIENT);
    let iat = support::now() - 10;
    claims["iat"] = json!(iat);
    claims["auth_time"] = json!(iat);
    claims["exp"] = json!(iat + lifetime);
    support::mint(key(0), &claims)
}

/// Runs the example with `vars` set on top of the base environment, expecting a refusal at
/// start: exit code 2 and a message naming `variable`.
fn refused_at_start(server: &JwksServer, vars: &[(&str, &str)], variable: &str) {
    let mut command = example_command(server, free_port());
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().expect("the server example runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{vars:?}: expected exit code 2\nstderr: {stderr}\nstdout: {stdout}"
    );
    assert!(
        stderr.contains(variable) || stdout.contains(variable),
        "{vars:?}: the message should name {variable}\nstderr: {stderr}\nstdout: {stdout}"
    );
}

#[tokio::test]
async fn a_cookie_token_is_accepted_beside_the_bearer_header() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let port = free_port();
    let mut command = example_command(&server, port);
    command
        .env("COGNITO_TOKEN_COOKIE", "access_token")
        .env("COGNITO_CSRF_HEADER", "x-requested-with");
    let running = Running::start(command, port).await;
    let token = token(&server, 3600);
    let cookie = format!("theme=dark; access_token={token}");

    assert_eq!(running.me(Some(&token), None).await.0, 200, "bearer");
    assert_eq!(running.me(None, Some(&cookie)).await.0, 200, "cookie");
    // Both on one request: 400 (RFC 6750: one method per request).
    let (status, www) = running.me(Some(&token), Some(&cookie)).await;
    assert_eq!(status, 400);
    assert!(www.contains("invalid_request"), "{www}");
    // Another cookie name is no token.
    let (status, www) = running.me(None, Some(&format!("id_token={token}"))).await;
    assert_eq!(status, 401);
    assert_eq!(www, "Bearer realm=\"cognito\"");
}

#[tokio::test]
async fn a_maximum_lifetime_refuses_longer_lived_tokens() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let port = free_port();
    let mut command = example_command(&server, port);
    command.env("COGNITO_MAX_LIFETIME_SECS", "900");
    let running = Running::start(command, port).await;

    assert_eq!(running.me(Some(&token(&server, 900)), None).await.0, 200);
    let (status, www) = running.me(Some(&token(&server, 3600)), None).await;
    assert_eq!(status, 401);
    assert!(
        www.contains("The token lifetime is longer than accepted"),
        "{www}"
    );
}

#[tokio::test]
async fn jwks_fetches_go_through_the_named_proxy_only() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let proxy = proxy().await;

    // Named: the keys come through it.
    let port = free_port();
    let mut command = example_command(&server, port);
    command.env("COGNITO_JWKS_PROXY", &proxy.url);
    let running = Running::start(command, port).await;
    assert!(
        proxy.carried.load(Ordering::SeqCst) >= 1,
        "nothing was proxied"
    );
    assert_eq!(running.me(Some(&token(&server, 3600)), None).await.0, 200);
    drop(running);

    // The environment's proxy variables alone: ignored (direct), unless `env` is asked for.
    let before = proxy.carried.load(Ordering::SeqCst);
    let port = free_port();
    let mut command = example_command(&server, port);
    command
        .env("HTTP_PROXY", &proxy.url)
        .env("http_proxy", &proxy.url);
    let running = Running::start(command, port).await;
    assert_eq!(
        proxy.carried.load(Ordering::SeqCst),
        before,
        "went through the proxy"
    );
    drop(running);

    // The same environment with `env` asked for: through the proxy (so the case above would
    // have seen it, had the environment been followed).
    let port = free_port();
    let mut command = example_command(&server, port);
    command
        .env("COGNITO_JWKS_PROXY", "env")
        .env("HTTP_PROXY", &proxy.url)
        .env("http_proxy", &proxy.url);
    let running = Running::start(command, port).await;
    assert!(
        proxy.carried.load(Ordering::SeqCst) > before,
        "`env` did not follow HTTP_PROXY"
    );
    let before = proxy.carried.load(Ordering::SeqCst);
    drop(running);

    // A no-proxy list that names the JWKS host: direct.
    let port = free_port();
    let mut command = example_command(&server, port);
    command
        .env("COGNITO_JWKS_PROXY", &proxy.url)
        .env("COGNITO_JWKS_NO_PROXY", "127.0.0.1");
    let _running = Running::start(command, port).await;
    assert_eq!(
        proxy.carried.load(Ordering::SeqCst),
        before,
        "went through the proxy"
    );
}

#[tokio::test]
async fn bad_settings_stop_the_example_at_start_naming_the_variable() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let dir = std::env::temp_dir().join(support::unique("server-example"));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    let missing = dir.join("missing.pem");
    let missing = missing.to_str().unwrap();

    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("COGNITO_TOKEN_COOKIE", "t")], "COGNITO_TOKEN_COOKIE"),
        (
            &[("COGNITO_TOKEN_COOKIE", "bad name;")],
            "COGNITO_TOKEN_COOKIE",
        ),
        (
            &[
                ("COGNITO_TOKEN_COOKIE", "t"),
                ("COGNITO_CSRF_HEADER", "x-csrf"),
                ("COGNITO_ALLOWED_ORIGINS", "https://app.example.com"),
            ],
            "COGNITO_CSRF_HEADER",
        ),
        (
            &[
                ("COGNITO_TOKEN_COOKIE", "t"),
                ("COGNITO_CSRF_HEADER", "a b"),
            ],
            "COGNITO_CSRF_HEADER",
        ),
        (
            &[
                ("COGNITO_TOKEN_COOKIE", "t"),
                ("COGNITO_ALLOWED_ORIGINS", "not an origin"),
            ],
            "COGNITO_ALLOWED_ORIGINS",
        ),
        (&[("COGNITO_CSRF_HEADER", "x-csrf")], "COGNITO_CSRF_HEADER"),
        (
            &[("COGNITO_MAX_LIFETIME_SECS", "0")],
            "COGNITO_MAX_LIFETIME_SECS",
        ),
        (
            &[("COGNITO_MAX_LIFETIME_SECS", "15m")],
            "COGNITO_MAX_LIFETIME_SECS",
        ),
        (
            &[("COGNITO_JWKS_PROXY", "ftp://proxy.internal")],
            "COGNITO_JWKS_PROXY",
        ),
        (
            &[("COGNITO_JWKS_NO_PROXY", "127.0.0.1")],
            "COGNITO_JWKS_NO_PROXY",
        ),
        (&[("COGNITO_JWKS_CA_FILE", missing)], "COGNITO_JWKS_CA_FILE"),
        (&[("COGNITO_JWKS_CA_FILE", not_pem)], "COGNITO_JWKS_CA_FILE"),
    ];
    for (vars, variable) in cases {
        refused_at_start(&server, vars, variable);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_me_route_shows_the_claims() {
    let server = JwksServer::start_with_keys(POOL, &[key(0)]).await;
    let port = free_port();
    let running = Running::start(example_command(&server, port), port).await;
    let response = running
        .http
        .get(running.url("/me"))
        .bearer_auth(token(&server, 3600))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let claims: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(claims["iss"], server.issuer());
}
