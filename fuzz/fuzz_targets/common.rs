//! What both targets share: the verifier of the crate docs' pool, keys from the fixture JWKS
//! (`fetch_keys(false)`: no network), and a current-thread runtime, each built once.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tokio::runtime::Runtime;
use tower_cognito::{ClientIds, CognitoConfig, TokenUse, UserPool, Verifier};

/// The public key of `tests/fixtures/doc-test-key.pem`, kid `doc-key`. The seeds' genuine tokens
/// are signed with it (see `seeds.sh`).
pub const JWKS: &str = include_str!("../../tests/fixtures/doc-test-jwks.json");
pub const POOL: &str = "eu-west-1_AbCdEf123";
pub const CLIENT: &str = "client1";

pub struct State {
    pub runtime: Runtime,
    pub verifier: Verifier,
}

pub fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let config = CognitoConfig::new(
            UserPool::parse(POOL).expect("pool"),
            TokenUse::Access,
            ClientIds::one(CLIENT),
        )
        .jwks_document(JWKS)
        .fetch_keys(false);
        State {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            verifier: Verifier::new(config).expect("config"),
        }
    })
}

/// Whether `token` is three parts of canonical unpadded base64url: the only form a genuine
/// token has. An accepted token in any other form would be a second encoding of the same signed
/// bytes (a malleable decoder).
pub fn canonical(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| {
            URL_SAFE_NO_PAD
                .decode(part)
                .is_ok_and(|bytes| URL_SAFE_NO_PAD.encode(bytes) == *part)
        })
}
