//! Shared setup of the benches: an RSA-2048 key (the test kit's `SigningKey`), ~1 KB
//! Cognito-shaped access tokens, the JWKS document, a recorder of criterion's own samples (for
//! the ratio tables) and a counting allocator. A bench that needs a JWKS endpoint starts the
//! test kit's `LocalCognito`.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use serde_json::{json, Value};
use tower_cognito::{ClientIds, CognitoConfig, TokenUse, UserPool};
use tower_cognito_testing::SigningKey;

// ---------------------------------------------------------------------------------------------
// The pool, the key, the tokens
// ---------------------------------------------------------------------------------------------

pub const POOL: &str = "eu-west-1_AbCdEf123";
pub const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123";
pub const CLIENT_ID: &str = "4p1d8k3k9q2e5s7t0u6v1w3x4y";
/// Cognito `kid`s are 44 base64 characters.
pub const KID: &str = "Xq3bT9kLmN2pR5sV8wY1zA4cE7fH0jK3mP6rT9uW2x=";
/// The scope every bench verifier requires (the token grants it among others).
pub const REQUIRED_SCOPE: &str = "orders/read";

/// An RSA-2048 signing key and its public JWK members.
pub struct BenchKey {
    pub kid: String,
    /// JWK `n`, base64url.
    pub n: String,
    /// JWK `e`, base64url.
    pub e: String,
    /// The test kit's key: the JWK and the signatures.
    pub signing: SigningKey,
}

impl BenchKey {
    pub fn generate(kid: &str) -> Self {
        let signing = SigningKey::generate().with_kid(kid);
        let jwk = signing.jwk();
        let member = |name: &str| jwk[name].as_str().unwrap().to_owned();
        Self {
            kid: kid.to_owned(),
            n: member("n"),
            e: member("e"),
            signing,
        }
    }

    /// The JWKS document (`{"keys":[..]}`) Cognito would serve for this key.
    pub fn jwks(&self) -> String {
        json!({ "keys": [self.signing.jwk()] }).to_string()
    }

    /// The public key parsed once by aws-lc-rs: the baseline every fresh verification is held to.
    pub fn parsed(&self) -> ParsedPublicKey {
        let n = URL_SAFE_NO_PAD.decode(&self.n).unwrap();
        let e = URL_SAFE_NO_PAD.decode(&self.e).unwrap();
        RsaPublicKeyComponents { n: &n, e: &e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .expect("parse public key")
    }

    /// `b64(header).b64(claims).b64(RS256 signature)`, header exactly
    /// `{"alg":"RS256","kid":...}`.
    pub fn mint(&self, claims: &Value) -> String {
        self.signing.sign_jwt(claims)
    }
}

/// The one key of every bench, generated once per process.
pub fn key() -> &'static BenchKey {
    static KEY: OnceLock<BenchKey> = OnceLock::new();
    KEY.get_or_init(|| BenchKey::generate(KID))
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A uuid-shaped id, distinct for each `(tag, i)`.
pub fn uuid(tag: u32, i: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        0x5a17_c0de_u32 ^ tag,
        (i >> 48) & 0xffff,
        (i >> 36) & 0xfff,
        (i >> 24) & 0xfff,
        i & 0xff_ffff_ffff
    )
}

/// The claims of a realistic Cognito access token (number `i`: its ids differ), issued now and
/// expiring in one hour. Every claim Cognito puts in an access token, with a few scopes and
/// groups: the token they make is about 1.1 KB (the ids alone take ~440 bytes of it).
pub fn access_claims(i: u64) -> Value {
    let now = now();
    let sub = "7d8ca528-4931-4254-9273-ea5ee853f271";
    json!({
        "sub": sub,
        "cognito:groups": ["admins", "orders-team", "billing"],
        "iss": ISSUER,
        "version": 2,
        "client_id": CLIENT_ID,
        "origin_jti": uuid(1, i),
        "event_id": uuid(2, i),
        "token_use": "access",
        "scope": "openid email orders/read orders/write",
        "auth_time": now - 120,
        "exp": now + 3600,
        "iat": now,
        "jti": uuid(3, i),
        "username": "alice.martin",
    })
}

/// The bench token: [`access_claims`] number 0, signed by [`key`].
pub fn token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let token = key().mint(&access_claims(0));
        assert!(
            (950..=1200).contains(&token.len()),
            "the bench token should be about 1 KB, not {} bytes",
            token.len()
        );
        token
    })
}

/// `n` distinct genuine tokens, signed on every core.
pub fn tokens(n: u64) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get() as u64);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (0..n)
                        .filter(|i| i % threads == t)
                        .map(|i| (i, key().mint(&access_claims(i + 1))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(u64, String)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, t)| t).collect()
    })
}

/// The signing input and the decoded signature of `token`.
pub fn split_signed(token: &str) -> (&[u8], Vec<u8>) {
    let dot = token.rfind('.').unwrap();
    (
        &token.as_bytes()[..dot],
        URL_SAFE_NO_PAD.decode(&token[dot + 1..]).unwrap(),
    )
}

/// A verifier configuration for the bench pool with the keys preloaded and no network:
/// access tokens of [`CLIENT_ID`], scope [`REQUIRED_SCOPE`] required.
pub fn offline_config() -> CognitoConfig {
    CognitoConfig::new(
        UserPool::parse(POOL).unwrap(),
        TokenUse::Access,
        ClientIds::one(CLIENT_ID),
    )
    .require_scopes([REQUIRED_SCOPE])
    .jwks_document(key().jwks())
    .fetch_keys(false)
}

/// [`offline_config`] with `others` more pools before the bench token's (each with an app
/// client and keys of its own): the bench token's pool is the last one added, so it is found
/// among `others + 1` pools.
pub fn offline_config_among(others: usize) -> CognitoConfig {
    use tower_cognito::PoolConfig;
    if others == 0 {
        return offline_config();
    }
    let other = |i: usize| {
        PoolConfig::new(
            UserPool::parse(&format!("us-east-1_Other{i}")).unwrap(),
            TokenUse::Access,
            ClientIds::one(format!("otherclient{i}")),
        )
        .jwks_document(key().jwks())
        .fetch_keys(false)
    };
    let bench_pool = PoolConfig::new(
        UserPool::parse(POOL).unwrap(),
        TokenUse::Access,
        ClientIds::one(CLIENT_ID),
    )
    .jwks_document(key().jwks())
    .fetch_keys(false);
    (1..others)
        .fold(CognitoConfig::from_pool(other(0)), |config, i| {
            config.add_pool(other(i))
        })
        .add_pool(bench_pool)
        .require_scopes([REQUIRED_SCOPE])
}

/// The jsonwebtoken validation with every field set on purpose, matching the verifier's rules
/// as far as jsonwebtoken can express them.
pub fn jsonwebtoken_validation() -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.algorithms = vec![jsonwebtoken::Algorithm::RS256];
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    v.leeway = 5;
    v.reject_tokens_expiring_in_less_than = 0;
    v.validate_exp = true;
    v.validate_nbf = true;
    // Cognito access tokens carry no `aud`; the client is in `client_id`.
    v.validate_aud = false;
    v.aud = None;
    v.set_issuer(&[ISSUER]);
    v.sub = None;
    v
}

/// A current-thread runtime, as a bench driver.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Criterion setup and the recorder behind the ratio tables
// ---------------------------------------------------------------------------------------------

/// Modest settings, so that `cargo bench` stays well under 10 minutes on 2 cores.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .without_plots()
        .configure_from_args()
}

/// Whether this run measures (`cargo bench`), as opposed to `cargo test --benches`, `--list`
/// or `--profile-time`.
pub fn is_bench_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench") && !has("--test") && !has("--list") && !has("--profile-time")
}

/// `(iterations, elapsed)` of every routine call, by bench id.
type Samples = Mutex<HashMap<String, Vec<(u64, Duration)>>>;

fn samples() -> &'static Samples {
    static SAMPLES: OnceLock<Samples> = OnceLock::new();
    SAMPLES.get_or_init(Default::default)
}

fn record(id: &str, iters: u64, elapsed: Duration) {
    samples()
        .lock()
        .unwrap()
        .entry(id.to_owned())
        .or_default()
        .push((iters, elapsed));
}

/// Nanoseconds per iteration of bench `id` as criterion measured it: the median over its
/// measurement samples (the last 50 routine calls; the earlier ones are the warm-up).
pub fn estimate_ns(id: &str) -> Option<f64> {
    let samples = samples().lock().unwrap();
    let all = samples.get(id)?;
    let measured = &all[all.len().saturating_sub(50)..];
    let per_iter: Vec<f64> = measured
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, d)| d.as_nanos() as f64 / *n as f64)
        .collect();
    (!per_iter.is_empty()).then(|| median(per_iter))
}

/// A bench routine as criterion's `iter_custom` wants it: runs the routine `iters` times and
/// answers how long that took. The same batch serves criterion and the interleaved timing.
pub type Batch<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// `iters` runs of a synchronous `routine`.
pub fn batch_sync<'a, O>(mut routine: impl FnMut() -> O + 'a) -> Batch<'a> {
    Box::new(move |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(routine());
        }
        start.elapsed()
    })
}

/// `iters` sequential runs of an async `routine`, inside one `block_on` (so the runtime's entry
/// cost is paid once per batch, not per run).
pub fn batch_async<'a, Fut: Future>(
    rt: &'a tokio::runtime::Runtime,
    mut routine: impl FnMut() -> Fut + 'a,
) -> Batch<'a> {
    Box::new(move |iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(routine().await);
            }
            start.elapsed()
        })
    })
}

/// Benches `batch` as `group/name`, recording criterion's samples for [`estimate_ns`].
pub fn bench(g: &mut BenchmarkGroup<'_, WallTime>, group: &str, name: &str, batch: &mut Batch<'_>) {
    let id = format!("{group}/{name}");
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let elapsed = batch(iters);
            record(&id, iters, elapsed);
            elapsed
        })
    });
}

/// Nanoseconds per run of each batch, timed interleaved: rounds of one ~2 ms batch of each, in
/// rotating order, medians over the rounds. Slow drift of the machine (other processes, clock
/// changes) then hits every batch alike, which is what a ratio needs. `None` outside a bench
/// run (`cargo test --benches`).
pub fn interleaved(batches: &mut [&mut dyn FnMut(u64) -> Duration]) -> Option<Vec<f64>> {
    if !is_bench_run() {
        return None;
    }
    const ROUNDS: usize = 100;
    let target = Duration::from_millis(2);
    let iters: Vec<u64> = batches
        .iter_mut()
        .map(|batch| {
            let mut n = 1;
            while batch(n) < target && n < 1 << 30 {
                n *= 2;
            }
            n
        })
        .collect();
    let k = batches.len();
    let mut per_run: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); k];
    for round in 0..ROUNDS {
        for j in 0..k {
            let i = (round + j) % k;
            let elapsed = batches[i](iters[i]);
            per_run[i].push(elapsed.as_nanos() as f64 / iters[i] as f64);
        }
    }
    Some(per_run.into_iter().map(median).collect())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// How a line of the ratio table is judged.
#[derive(Clone, Copy)]
pub enum Target {
    /// `a / b` at most this.
    RatioAtMost(f64),
    /// `a - b` at most this many nanoseconds.
    DiffAtMostNs(f64),
    /// Reported only.
    None,
}

/// The printed lines, kept for the closing table.
fn report_lines() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(Default::default)
}

/// Prints (and keeps for [`print_report`]) one line of the report.
pub fn report(line: impl Into<String>) {
    let line = line.into();
    println!("{line}");
    report_lines().lock().unwrap().push(line);
}

fn short(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// Prints `RATIO a / b = x (target ...)`. The judged figure comes from an interleaved timing of
/// the two batches ([`interleaved`]); criterion's own medians of the two (from the group just
/// run) are printed beside it.
pub fn ratio(
    a_id: &str,
    a: &mut dyn FnMut(u64) -> Duration,
    b_id: &str,
    b: &mut dyn FnMut(u64) -> Duration,
    target: Target,
) {
    let (a_name, b_name) = (short(a_id), short(b_id));
    if estimate_ns(a_id).is_none() && estimate_ns(b_id).is_none() && is_bench_run() {
        println!("RATIO {a_name} / {b_name}: filtered out, not measured");
        return;
    }
    let Some(paired) = interleaved(&mut [a, b]) else {
        println!("RATIO {a_name} / {b_name}: not a bench run, not measured");
        return;
    };
    let (x, y) = (paired[0], paired[1]);
    let (r, d) = (x / y, x - y);
    let verdict = match target {
        Target::RatioAtMost(max) => format!(
            "(target <= {max:.2}) {}",
            if r <= max { "OK" } else { "MISSED" }
        ),
        Target::DiffAtMostNs(max) => format!(
            "(target: at most +{max:.0} ns) {}",
            if d <= max { "OK" } else { "MISSED" }
        ),
        Target::None => "(reported)".to_owned(),
    };
    let criterion = match (estimate_ns(a_id), estimate_ns(b_id)) {
        (Some(cx), Some(cy)) => format!(
            "criterion: {:.3} = {cx:.0} / {cy:.0} ns, diff {:+.0} ns",
            cx / cy,
            cx - cy
        ),
        _ => "criterion: not run".to_owned(),
    };
    report(format!(
        "RATIO {a_name} / {b_name} = {r:.3} {verdict}\n      \
         interleaved: {x:.0} ns vs {y:.0} ns, diff {d:+.0} ns | {criterion}"
    ));
}

/// Prints every kept line again, as one table at the end of the run.
pub fn print_report(title: &str) {
    let lines = report_lines().lock().unwrap();
    println!("\n===== {title} =====");
    for line in lines.iter() {
        println!("{line}");
    }
    println!("===== end of {title} =====");
}

// ---------------------------------------------------------------------------------------------
// A counting allocator (installed with #[global_allocator] by the bench that measures memory)
// ---------------------------------------------------------------------------------------------

static COUNTING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Whether this thread is the one that called [`Counted::start`]: other threads (a JWKS
    /// server left from an earlier group, a connection task) must not move the counts.
    static COUNTED_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether this allocator call is counted: counting is on and it comes from the counted thread.
fn counted_here() -> bool {
    COUNTING.load(Ordering::Relaxed) && COUNTED_THREAD.try_with(Cell::get).unwrap_or(false)
}
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BLOCKS: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// `std::alloc::System`, counting live bytes, live blocks and allocations of the thread that
/// called [`Counted::start`], while it is in force. Counting nothing otherwise (one relaxed load
/// per call).
pub struct CountingAlloc;

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() && counted_here() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() && counted_here() {
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        if counted_here() {
            LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
            LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() && counted_here() {
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
}

/// What the counting allocator saw between [`Counted::start`] and [`Counted::stop`]: the net
/// change in live bytes and blocks (frees of older blocks included), and the allocation calls.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    pub live_bytes: i64,
    pub live_blocks: i64,
    pub allocations: u64,
}

impl Counted {
    pub fn start() {
        COUNTED_THREAD.with(|here| here.set(true));
        LIVE_BYTES.store(0, Ordering::SeqCst);
        LIVE_BLOCKS.store(0, Ordering::SeqCst);
        ALLOCATIONS.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
    }

    pub fn stop() -> Counted {
        COUNTING.store(false, Ordering::SeqCst);
        COUNTED_THREAD.with(|here| here.set(false));
        Counted {
            live_bytes: LIVE_BYTES.load(Ordering::SeqCst),
            live_blocks: LIVE_BLOCKS.load(Ordering::SeqCst),
            allocations: ALLOCATIONS.load(Ordering::SeqCst),
        }
    }
}
