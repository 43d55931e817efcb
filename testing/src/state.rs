//! Everything the server knows, behind one mutex: clients, users, codes, sign-ins (families)
//! and their refresh tokens, keys, fault settings and counters.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::keys::{random_bytes, uuid, uuid_from, KeySet};
use crate::{Counts, GracePolicy, Jwks, TokenSet};

/// The scope of user tokens when the sign-in did not ask for one.
pub(crate) const DEFAULT_SCOPE: &str = "openid email profile";

/// Every refresh token starts with the protected header of Cognito's JWE refresh tokens.
const REFRESH_PREFIX: &str = "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIiwiYWxnIjoiUlNBLU9BRVAifQ";

/// An app client.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) secret: Option<String>,
    /// `None`: the user-facing app client; `Some(scopes)`: a machine-to-machine client.
    pub(crate) m2m_scopes: Option<Vec<String>>,
}

/// A user of the pool.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) groups: Vec<String>,
    pub(crate) sub: String,
}

/// An authorization code waiting for its exchange.
pub(crate) struct Code {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) username: String,
    pub(crate) scope: String,
    pub(crate) expires: Instant,
}

/// One sign-in: every refresh token descending from it shares its origin_jti and expiry.
struct Family {
    username: String,
    client_id: String,
    event_id: String,
    auth_time: u64,
    scope: String,
    expires: Instant,
    revoked: bool,
}

enum Status {
    Active,
    Rotated { at: Instant, successor: String },
}

struct RefreshRecord {
    origin_jti: String,
    status: Status,
}

/// Why a refresh failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshFail {
    /// Already rotated, past the grace period.
    Reused,
    /// Unknown, expired, revoked or issued to another client.
    NotAuthorized(&'static str),
}

/// The whole mutable state.
pub(crate) struct State {
    pub(crate) issuer: String,
    pub(crate) pool_id: String,
    pub(crate) client_id: String,
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
    pub(crate) rotation: bool,
    pub(crate) grace: Duration,
    pub(crate) grace_policy: GracePolicy,
    pub(crate) unavailable: Option<u16>,
    pub(crate) jwks_unavailable: Option<u16>,
    /// What the JWKS endpoint publishes, with which status, after which delay.
    pub(crate) jwks: Jwks,
    pub(crate) jwks_status: u16,
    pub(crate) jwks_delay: Duration,
    pub(crate) refresh_delay: Duration,
    pub(crate) keys: KeySet,
    pub(crate) clients: HashMap<String, Client>,
    pub(crate) users: Vec<User>,
    pub(crate) codes: HashMap<String, Code>,
    families: HashMap<String, Family>,
    refresh_tokens: HashMap<String, RefreshRecord>,
    pub(crate) counts: Counts,
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A stable, uuid-shaped `sub` for a user of a pool.
fn stable_sub(pool_id: &str, username: &str) -> String {
    let hash = digest(&SHA256, format!("{pool_id}\0{username}").as_bytes());
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&hash.as_ref()[..16]);
    uuid_from(bytes)
}

/// A refresh token shaped like Cognito's (five-part JWE, about 1.7 kB), random and opaque.
fn new_refresh_token() -> String {
    format!(
        "{REFRESH_PREFIX}.{}.{}.{}.{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<256>()),
        URL_SAFE_NO_PAD.encode(random_bytes::<12>()),
        URL_SAFE_NO_PAD.encode(random_bytes::<900>()),
        URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
    )
}

/// `at_hash`: base64url of the left half of SHA-256 of the access token.
fn at_hash(access_token: &str) -> String {
    let hash = digest(&SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
}

/// Applies overrides to claims: a `null` removes the claim, anything else sets it.
pub(crate) fn apply_overrides(claims: &mut Map<String, Value>, overrides: &Value) {
    if let Value::Object(map) = overrides {
        for (key, value) in map {
            if value.is_null() {
                claims.remove(key);
            } else {
                claims.insert(key.clone(), value.clone());
            }
        }
    }
}

impl State {
    pub(crate) fn new(issuer: String, pool_id: String, client_id: String, keys: KeySet) -> Self {
        Self {
            issuer,
            pool_id,
            client_id,
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            rotation: true,
            grace: Duration::ZERO,
            grace_policy: GracePolicy::SameSuccessor,
            unavailable: None,
            jwks_unavailable: None,
            jwks: Jwks::SigningKeys,
            jwks_status: 200,
            jwks_delay: Duration::ZERO,
            refresh_delay: Duration::ZERO,
            keys,
            clients: HashMap::new(),
            users: Vec::new(),
            codes: HashMap::new(),
            families: HashMap::new(),
            refresh_tokens: HashMap::new(),
            counts: Counts::default(),
        }
    }

    /// Adds a user, or replaces the email and groups of an existing one.
    pub(crate) fn add_user(&mut self, username: &str, email: &str, groups: &[String]) {
        let sub = stable_sub(&self.pool_id, username);
        let user = User {
            username: username.to_owned(),
            email: email.to_owned(),
            groups: groups.to_vec(),
            sub,
        };
        match self.users.iter_mut().find(|u| u.username == username) {
            Some(existing) => *existing = user,
            None => self.users.push(user),
        }
    }

    /// The named user, created on the fly (`{name}@example.com`, no groups) when unknown.
    pub(crate) fn user_or_create(&mut self, username: &str) -> User {
        if let Some(user) = self.user(username) {
            return user.clone();
        }
        self.add_user(username, &format!("{username}@example.com"), &[]);
        self.user(username).cloned().expect("just added")
    }

    pub(crate) fn user(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    fn access_secs(&self) -> u64 {
        self.access_ttl.as_secs().max(1)
    }

    /// Base claims of a user access token.
    pub(crate) fn access_claims(
        &self,
        user: &User,
        client_id: &str,
        origin_jti: Option<&str>,
        event_id: &str,
        auth_time: u64,
        scope: &str,
    ) -> Map<String, Value> {
        let iat = now_secs();
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(user.sub));
        if !user.groups.is_empty() {
            claims.insert("cognito:groups".into(), json!(user.groups));
        }
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("version".into(), json!(2));
        claims.insert("client_id".into(), json!(client_id));
        if let Some(origin_jti) = origin_jti {
            claims.insert("origin_jti".into(), json!(origin_jti));
        }
        claims.insert("event_id".into(), json!(event_id));
        claims.insert("token_use".into(), json!("access"));
        claims.insert("scope".into(), json!(scope));
        claims.insert("auth_time".into(), json!(auth_time));
        claims.insert("exp".into(), json!(iat + self.access_secs()));
        claims.insert("iat".into(), json!(iat));
        claims.insert("jti".into(), json!(uuid()));
        claims.insert("username".into(), json!(user.username));
        claims
    }

    /// Base claims of an id token.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn id_claims(
        &self,
        user: &User,
        client_id: &str,
        origin_jti: Option<&str>,
        event_id: &str,
        auth_time: u64,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Map<String, Value> {
        let iat = now_secs();
        let mut claims = Map::new();
        if let Some(access_token) = access_token {
            claims.insert("at_hash".into(), json!(at_hash(access_token)));
        }
        claims.insert("sub".into(), json!(user.sub));
        if !user.groups.is_empty() {
            claims.insert("cognito:groups".into(), json!(user.groups));
        }
        claims.insert("email_verified".into(), json!(true));
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("cognito:username".into(), json!(user.username));
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        if let Some(origin_jti) = origin_jti {
            claims.insert("origin_jti".into(), json!(origin_jti));
        }
        claims.insert("aud".into(), json!(client_id));
        claims.insert("event_id".into(), json!(event_id));
        claims.insert("token_use".into(), json!("id"));
        claims.insert("auth_time".into(), json!(auth_time));
        claims.insert("exp".into(), json!(iat + self.access_secs()));
        claims.insert("iat".into(), json!(iat));
        claims.insert("jti".into(), json!(uuid()));
        claims.insert("email".into(), json!(user.email));
        claims
    }

    /// A new sign-in of `username` at `client_id`: a new family and its first refresh token.
    pub(crate) fn sign_in(
        &mut self,
        username: &str,
        client_id: &str,
        scope: &str,
        nonce: Option<&str>,
    ) -> TokenSet {
        let user = self.user_or_create(username);
        let origin_jti = uuid();
        let family = Family {
            username: user.username.clone(),
            client_id: client_id.to_owned(),
            event_id: uuid(),
            auth_time: now_secs(),
            scope: scope.to_owned(),
            expires: Instant::now() + self.refresh_ttl,
            revoked: false,
        };
        self.families.insert(origin_jti.clone(), family);
        let refresh_token = self.new_refresh(&origin_jti);
        self.counts.sign_ins += 1;
        let mut tokens = self.mint_for_family(&origin_jti, nonce);
        tokens.refresh_token = Some(refresh_token);
        tokens
    }

    fn new_refresh(&mut self, origin_jti: &str) -> String {
        let token = new_refresh_token();
        self.refresh_tokens.insert(
            token.clone(),
            RefreshRecord {
                origin_jti: origin_jti.to_owned(),
                status: Status::Active,
            },
        );
        token
    }

    /// Access and id tokens for a family (no refresh token).
    fn mint_for_family(&self, origin_jti: &str, nonce: Option<&str>) -> TokenSet {
        let family = &self.families[origin_jti];
        let user = self
            .user(&family.username)
            .cloned()
            .expect("families belong to known users");
        let access = self.access_claims(
            &user,
            &family.client_id,
            Some(origin_jti),
            &family.event_id,
            family.auth_time,
            &family.scope,
        );
        let access_token = self.keys.access.sign_jwt(&Value::Object(access));
        let id = self.id_claims(
            &user,
            &family.client_id,
            Some(origin_jti),
            &family.event_id,
            family.auth_time,
            nonce,
            Some(&access_token),
        );
        let id_token = self.keys.id.sign_jwt(&Value::Object(id));
        TokenSet {
            access_token,
            id_token: Some(id_token),
            refresh_token: None,
            expires_in: self.access_secs(),
        }
    }

    /// The family (origin_jti) and client a refresh token belongs to, if it is known.
    pub(crate) fn refresh_owner(&self, refresh_token: &str) -> Option<(&str, &str, &str)> {
        let record = self.refresh_tokens.get(refresh_token)?;
        let family = self.families.get(&record.origin_jti)?;
        Some((&record.origin_jti, &family.client_id, &family.username))
    }

    /// The rotation model. `client_id` must be the client the token was issued to.
    /// `may_rotate`: false for `InitiateAuth` (which never returns a refresh token).
    /// Updates `refresh_ok`, `reused` and `invalid`; the caller counts `refreshes`.
    pub(crate) fn refresh(
        &mut self,
        refresh_token: &str,
        client_id: &str,
        may_rotate: bool,
    ) -> Result<TokenSet, RefreshFail> {
        let result = self.refresh_inner(refresh_token, client_id, may_rotate);
        match result {
            Ok(_) => self.counts.refresh_ok += 1,
            Err(RefreshFail::Reused) => self.counts.reused += 1,
            Err(RefreshFail::NotAuthorized(_)) => self.counts.invalid += 1,
        }
        result
    }

    fn refresh_inner(
        &mut self,
        refresh_token: &str,
        client_id: &str,
        may_rotate: bool,
    ) -> Result<TokenSet, RefreshFail> {
        let now = Instant::now();
        let Some(record) = self.refresh_tokens.get(refresh_token) else {
            return Err(RefreshFail::NotAuthorized("Invalid Refresh Token"));
        };
        let origin_jti = record.origin_jti.clone();
        let family = &self.families[&origin_jti];
        if family.client_id != client_id {
            return Err(RefreshFail::NotAuthorized("Invalid Refresh Token"));
        }
        if family.revoked {
            return Err(RefreshFail::NotAuthorized("Refresh Token has been revoked"));
        }
        if now >= family.expires {
            return Err(RefreshFail::NotAuthorized("Refresh Token has expired"));
        }
        let successor = match &record.status {
            Status::Active if self.rotation && may_rotate => {
                let successor = self.new_refresh(&origin_jti);
                let record = self
                    .refresh_tokens
                    .get_mut(refresh_token)
                    .expect("looked up above");
                record.status = Status::Rotated {
                    at: now,
                    successor: successor.clone(),
                };
                Some(successor)
            }
            Status::Active => None,
            Status::Rotated { at, successor } => {
                if now >= *at + self.grace {
                    return Err(RefreshFail::Reused);
                }
                match self.grace_policy {
                    GracePolicy::SameSuccessor => Some(successor.clone()),
                    GracePolicy::NewSuccessor => Some(self.new_refresh(&origin_jti)),
                }
            }
        };
        let mut tokens = self.mint_for_family(&origin_jti, None);
        tokens.refresh_token = if may_rotate { successor } else { None };
        Ok(tokens)
    }

    /// Revokes the family of a refresh token. `Ok(false)`: unknown token; `Err(())`: the token
    /// belongs to another client.
    pub(crate) fn revoke(&mut self, refresh_token: &str, client_id: &str) -> Result<bool, ()> {
        let Some(record) = self.refresh_tokens.get(refresh_token) else {
            return Ok(false);
        };
        let family = self
            .families
            .get_mut(&record.origin_jti)
            .expect("records belong to families");
        if family.client_id != client_id {
            return Err(());
        }
        family.revoked = true;
        Ok(true)
    }

    /// Revokes every sign-in of a user.
    pub(crate) fn revoke_all(&mut self, username: &str) {
        for family in self.families.values_mut() {
            if family.username == username {
                family.revoked = true;
            }
        }
    }

    /// Expires every refresh token issued so far.
    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for family in self.families.values_mut() {
            family.expires = now;
        }
    }

    /// Whether the sign-in a token (access or id) belongs to has been revoked.
    pub(crate) fn is_origin_revoked(&self, origin_jti: &str) -> bool {
        self.families.get(origin_jti).is_some_and(|f| f.revoked)
    }

    /// Drops codes past their life, so a long-running server does not grow without bound.
    pub(crate) fn purge_codes(&mut self) {
        let now = Instant::now();
        self.codes.retain(|_, code| code.expires > now);
    }
}
