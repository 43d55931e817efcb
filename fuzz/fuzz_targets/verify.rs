//! Arbitrary bytes (lossily UTF-8) as a token, straight into `Verifier::verify`.
//!
//! Never a panic; every refusal is a typed `invalid_token` (keys come from a document, so never
//! the 503s); and only a genuine token, in its one canonical form, is ever accepted.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tower_cognito::AuthError;

fuzz_target!(|data: &[u8]| {
    let state = common::state();
    let token = String::from_utf8_lossy(data);
    match state.runtime.block_on(state.verifier.verify(&token)) {
        Ok(verified) => {
            assert!(common::canonical(&token), "accepted a non-canonical token");
            assert_eq!(verified.client_id, common::CLIENT);
        }
        Err(error) => assert!(
            matches!(error, AuthError::InvalidToken(_)),
            "not invalid_token: {error:?}"
        ),
    }
});
