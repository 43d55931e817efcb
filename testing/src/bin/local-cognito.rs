//! `local-cognito`: a local AWS Cognito on 127.0.0.1 for demos and manual tests.
//!
//! Environment:
//! - `LOCAL_COGNITO_PORT`: port on 127.0.0.1 (default 9229, cognito-local's; 0 for any free one)
//! - `LOCAL_COGNITO_POOL_ID`: user pool id (default `us-east-1_LocalPool1`)
//! - `LOCAL_COGNITO_CLIENT_ID`: the app client's id (default: random)
//! - `LOCAL_COGNITO_ACCESS_TTL_SECS`: access and id token lifetime (default 3600)
//! - `LOCAL_COGNITO_GRACE_SECS`: retry grace period of rotated refresh tokens (default 0)
//! - `LOCAL_COGNITO_ROTATION`: `1` (default) or `0`: refresh-token rotation
//!
//! Prints `export COGNITO_...=` lines on stdout, then serves until Ctrl-C. To use them in a
//! shell: `local-cognito > cognito.env & sleep 1; . ./cognito.env`. It prints no tokens and no
//! secrets.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use tower_cognito_testing::{LocalCognito, Options};

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name}={value:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

fn options() -> Result<Options, String> {
    let port = env_number("LOCAL_COGNITO_PORT", 9229)?;
    let port =
        u16::try_from(port).map_err(|_| format!("LOCAL_COGNITO_PORT={port} is not a port"))?;
    let access = env_number("LOCAL_COGNITO_ACCESS_TTL_SECS", 3600)?;
    let grace = env_number("LOCAL_COGNITO_GRACE_SECS", 0)?;
    let rotation = match std::env::var("LOCAL_COGNITO_ROTATION").as_deref() {
        Err(_) | Ok("1") | Ok("true") => true,
        Ok("0") | Ok("false") => false,
        Ok(other) => return Err(format!("LOCAL_COGNITO_ROTATION={other:?}: use 1 or 0")),
    };
    let mut options = Options::new()
        .port(port)
        .access_ttl(Duration::from_secs(access))
        .grace(Duration::from_secs(grace))
        .rotation(rotation);
    if let Ok(pool) = std::env::var("LOCAL_COGNITO_POOL_ID") {
        options = options.pool_id(pool);
    }
    if let Ok(client) = std::env::var("LOCAL_COGNITO_CLIENT_ID") {
        options = options.client_id(client);
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("local-cognito: {message}");
            return ExitCode::from(2);
        }
    };
    let cognito = LocalCognito::start_with(options).await;
    let lines = [
        ("COGNITO_DOMAIN", cognito.origin()),
        ("COGNITO_USER_POOL_ID", cognito.pool_id().to_owned()),
        ("COGNITO_CLIENT_ID", cognito.client_id().to_owned()),
        ("COGNITO_ISSUER", cognito.issuer()),
        ("COGNITO_JWKS_URL", cognito.jwks_url()),
        ("COGNITO_TOKEN_ENDPOINT", cognito.token_url()),
        ("COGNITO_IDP_ENDPOINT", cognito.idp_url()),
        ("COGNITO_ALLOW_HTTP", "1".to_owned()),
    ];
    let mut out = std::io::stdout().lock();
    for (name, value) in lines {
        let _ = writeln!(out, "export {name}={value}");
    }
    let _ = out.flush();
    drop(out);
    eprintln!(
        "local-cognito: serving on {} (user alice signs in at {}); Ctrl-C to stop",
        cognito.origin(),
        cognito.authorize_url()
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("local-cognito: cannot wait for Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    cognito.stop().await;
    ExitCode::SUCCESS
}
