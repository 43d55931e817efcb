//! The refresh issue's performance targets, each against its baseline in the same run
//! (feature `refresh`; Redis at `REDIS_URL` and PostgreSQL at `DATABASE_URL` with the `redis` and
//! `postgres` features, each skipped with a note when unreachable):
//!
//! 1. `fresh_<store>`: `POST /auth/token` when the stored access token is fresh (no refresh) vs
//!    one plain `RefreshStore::load` of the same session in the same store (target <= 1.5x for
//!    the shared stores; reported for memory, where the lookup is a hash-map read).
//! 2. `winner_<store>`: `POST /auth/token` that refreshes (load, lock, Cognito, save) vs one bare
//!    `TokenClient::refresh` at the same local Cognito (rotation off, so the same refresh token
//!    serves every call). The difference is the coordinator's own cost: the lookup, one round
//!    trip for the lock (which also reloads) and one for the save (which also unlocks), plus
//!    sealing; the `WINNER` line sets it beside the store steps timed alone (3.).
//!
//! 3. `steps_<store>`: the coordinator's two store steps alone (the lock, which also answers
//!    the record, and the save, which also unlocks) vs one lookup: expect about 2x.
//!
//! `cargo bench --bench refresh --features refresh,redis,postgres`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{digest, SHA256};
use axum::body::Body;
use criterion::Criterion;
use http::header::{COOKIE, ORIGIN};
use http::Request;
use tower::ServiceExt as _;
use tower_cognito::refresh::{
    Bff, LockOutcome, MemoryRefreshStore, RefreshStore, SaveOutcome, SealingKeys, Secret,
    TokenClient,
};
use tower_cognito::{ClientIds, CognitoConfig, IdClaims, TokenUse, UserPool, Verifier};
use tower_cognito_testing::{Browser, LocalCognito, Options};

use common::{batch_async, bench, ratio, report, Target};

const APP: &str = "http://127.0.0.1:8080";

fn main() {
    let started = Instant::now();
    let mut c = common::criterion();
    let rt = common::runtime();
    let cognito = rt.block_on(LocalCognito::start_with(
        Options::new()
            .rotation(false)
            .access_ttl(Duration::from_secs(3600)),
    ));
    let mut stores: Vec<(&str, Arc<dyn RefreshStore>)> =
        vec![("memory", Arc::new(MemoryRefreshStore::new(1000)))];
    #[cfg(feature = "redis")]
    match rt.block_on(redis_store()) {
        Ok(store) => stores.push(("redis", store)),
        Err(note) => report(format!("NOTE redis skipped: {note}")),
    }
    #[cfg(feature = "postgres")]
    match rt.block_on(postgres_store()) {
        Ok(store) => stores.push(("postgres", store)),
        Err(note) => report(format!("NOTE postgres skipped: {note}")),
    }
    for (name, store) in stores {
        bench_store(&mut c, &rt, &cognito, name, store);
    }
    c.final_summary();
    if common::is_bench_run() {
        common::print_report("refresh: ratio table");
    }
    println!("refresh bench: {:.1} s", started.elapsed().as_secs_f64());
}

fn client(cognito: &LocalCognito) -> TokenClient {
    TokenClient::builder(cognito.client_id())
        .domain(cognito.origin())
        .idp_endpoint(cognito.idp_url())
        .allow_http_on_loopback(true)
        .build()
        .expect("token client")
}

fn bff(cognito: &LocalCognito, store: Arc<dyn RefreshStore>, margin: Duration) -> Bff {
    let config = CognitoConfig::new(
        UserPool::parse(cognito.pool_id()).unwrap(),
        TokenUse::Id,
        ClientIds::one(cognito.client_id()),
    )
    .issuer_override(cognito.issuer())
    .jwks_url(cognito.jwks_url())
    .allow_http_on_loopback(true);
    let id_tokens: Verifier<IdClaims> = Verifier::with_claims(config).unwrap();
    Bff::builder(
        client(cognito),
        store,
        SealingKeys::new("bench", &[9; 32]).unwrap(),
        id_tokens,
        format!("{APP}/auth/callback"),
    )
    .insecure_cookies_on_loopback(true)
    .refresh_margin(margin)
    .build()
    .unwrap()
}

fn token_request(session: &str) -> Request<Body> {
    Request::post("/auth/token")
        .header(ORIGIN, APP)
        .header(COOKIE, format!("cognito_session={session}"))
        .body(Body::empty())
        .unwrap()
}

fn bench_store(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    cognito: &LocalCognito,
    name: &str,
    store: Arc<dyn RefreshStore>,
) {
    let fresh = bff(cognito, store.clone(), Duration::from_secs(60));
    // A margin longer than any token's life: every request refreshes.
    let stale = bff(cognito, store.clone(), Duration::from_secs(400 * 24 * 3600));
    let session = rt.block_on(async {
        let browser = Browser::new(fresh.clone(), APP);
        browser.sign_in("/auth/login").await;
        browser.cookie("cognito_session").expect("signed in")
    });
    let id: String = digest(&SHA256, session.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let held = Secret::new(rt.block_on(async {
        // The session's own refresh token is sealed; the bare call uses a sign-in of its own.
        cognito
            .sign_in("alice")
            .refresh_token
            .expect("a refresh token")
    }));
    let cognito_client = client(cognito);

    let (group_fresh, group_winner) = (format!("fresh_{name}"), format!("winner_{name}"));
    let mut lookup = batch_async(rt, || store.load(&id, common::now()));
    let mut token = batch_async(rt, || {
        let answer = fresh.clone().oneshot(token_request(&session));
        async move { assert!(answer.await.unwrap().status().is_success()) }
    });
    let mut g = c.benchmark_group(&group_fresh);
    bench(&mut g, &group_fresh, "lookup", &mut lookup);
    bench(&mut g, &group_fresh, "token", &mut token);
    g.finish();
    let target = if name == "memory" {
        Target::None
    } else {
        Target::RatioAtMost(1.5)
    };
    ratio(
        &format!("{group_fresh}/token"),
        &mut token,
        &format!("{group_fresh}/lookup"),
        &mut lookup,
        target,
    );

    // The coordinator's store steps alone: the lock (which answers the record) and the save
    // (which releases the lock), against one lookup (one round trip).
    let mut lock_save = batch_async(rt, || async {
        let now = common::now();
        let LockOutcome::Acquired {
            fence, mut record, ..
        } = store
            .lock(&id, Duration::from_secs(15), now)
            .await
            .expect("lock")
        else {
            panic!("the bench's session is locked or gone")
        };
        record.version = fence;
        assert_eq!(
            store.save(&id, &record, fence, now).await.expect("save"),
            SaveOutcome::Saved
        );
    });
    let group_steps = format!("steps_{name}");
    let mut g = c.benchmark_group(&group_steps);
    bench(&mut g, &group_steps, "lookup", &mut lookup);
    bench(&mut g, &group_steps, "lock_and_save", &mut lock_save);
    g.finish();
    ratio(
        &format!("{group_steps}/lock_and_save"),
        &mut lock_save,
        &format!("{group_steps}/lookup"),
        &mut lookup,
        Target::None,
    );

    let mut bare = batch_async(rt, || {
        let call = cognito_client.refresh(&held, None);
        async move { call.await.expect("bare refresh") }
    });
    let mut winner = batch_async(rt, || {
        let answer = stale.clone().oneshot(token_request(&session));
        async move { assert!(answer.await.unwrap().status().is_success()) }
    });
    let mut g = c.benchmark_group(&group_winner);
    bench(&mut g, &group_winner, "bare_cognito", &mut bare);
    bench(&mut g, &group_winner, "token_refreshing", &mut winner);
    g.finish();
    ratio(
        &format!("{group_winner}/token_refreshing"),
        &mut winner,
        &format!("{group_winner}/bare_cognito"),
        &mut bare,
        Target::None,
    );
    // All four timed interleaved: is the winner's cost beyond Cognito its three store steps?
    if let Some(ns) =
        common::interleaved(&mut [&mut winner, &mut bare, &mut lookup, &mut lock_save])
    {
        let (w, b, l, ls) = (ns[0], ns[1], ns[2], ns[3]);
        report(format!(
            "WINNER {name}: refreshing {w:.0} ns - bare Cognito {b:.0} ns = {:.0} ns beyond Cognito; \
             its store steps: lookup {l:.0} ns + lock and save {ls:.0} ns ({:.1} lookups) = {:.0} ns; \
             the rest (sealing, routing) {:+.0} ns",
            w - b,
            ls / l,
            l + ls,
            (w - b) - (l + ls),
        ));
    }
}

#[cfg(feature = "redis")]
async fn redis_store() -> Result<Arc<dyn RefreshStore>, String> {
    use tower_cognito::refresh::RedisRefreshStore;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let store = RedisRefreshStore::connect(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .with_prefix("tower-cognito-bench:bff:")
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

#[cfg(feature = "postgres")]
async fn postgres_store() -> Result<Arc<dyn RefreshStore>, String> {
    use tower_cognito::refresh::PostgresRefreshStore;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let store = PostgresRefreshStore::connect(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .with_table("tower_cognito_bench_sessions")
        .map_err(|e| e.to_string())?;
    store.create_schema().await.map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}
