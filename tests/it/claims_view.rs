//! The verifier and the JSON view of the claims agree: a token whose claims a JSON value cannot
//! hold (a number beyond f64, nesting deeper than 127, a lone UTF-16 surrogate) is refused as
//! malformed, and every accepted token's `claims_json` holds its claims, never `{}`.

use tower_cognito::{AuthError, InvalidToken, TokenUse, Verifier};

use crate::support::{self, JwksServer};

const POOL: &str = "us-east-1_ViewPool1";
const CLIENT: &str = "client-view";

/// A genuine access token whose payload has `extra` spliced in as the raw JSON of a member.
fn with_raw_member(server: &JwksServer, extra: &str) -> String {
    let claims = support::access_claims(&server.issuer(), CLIENT).to_string();
    let payload = format!("{},{extra}}}", &claims[..claims.len() - 1]);
    support::mint_raw(
        &format!(r#"{{"kid":"{}","alg":"RS256"}}"#, support::key(0).kid),
        &payload,
        support::key(0),
    )
}

#[tokio::test]
async fn claims_a_json_value_cannot_hold_are_refused() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    let verifier = Verifier::new(support::local_config(&server, TokenUse::Access, CLIENT)).unwrap();
    let deep = format!(r#""deep":{}1{}"#, "[".repeat(200), "]".repeat(200));
    for extra in [
        r#""big":1e400"#,
        r#""neg":-1e400"#,
        r#""lone":"\ud800""#,
        r#""low":"\udc00x""#,
        deep.as_str(),
    ] {
        let token = with_raw_member(&server, extra);
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            AuthError::InvalidToken(InvalidToken::Malformed),
            "{}",
            &extra[..extra.len().min(40)]
        );
    }
}

#[tokio::test]
async fn every_accepted_token_has_its_claims_in_the_json_view() {
    let server = JwksServer::start_with_keys(POOL, &[support::key(0)]).await;
    let verifier = Verifier::new(support::local_config(&server, TokenUse::Access, CLIENT)).unwrap();
    let nested = format!(r#""nested":{}1{}"#, "[".repeat(120), "]".repeat(120));
    for extra in [
        r#""small":1e-400"#,
        r#""max":1.7976931348623157e308"#,
        r#""pair":"\ud83d\ude00""#,
        r#""escaped":"\\ud800""#,
        r#""huge_int":123456789012345678901234567890"#,
        nested.as_str(),
    ] {
        let token = with_raw_member(&server, extra);
        let verified = verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", &extra[..extra.len().min(40)]));
        let view = verified.claims_json();
        assert_eq!(view["sub"], support::SUB, "the view holds the claims");
        let name = extra[1..].split('"').next().unwrap();
        assert!(view.get(name).is_some(), "{name} in the view");
    }
}
