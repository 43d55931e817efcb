//! How the PostgreSQL stores connect: TLS (`PostgresTls`, the connection string's `sslmode`)
//! against a PostgreSQL server of the test's own that admits only TLS connections, with a CA
//! and a server certificate made by the test; and stores on a pool the application made
//! (`from_pool`) against the shared server (`DATABASE_URL`).
#![cfg(feature = "postgres")]

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use support::certs::TestCa;
use support::now;
use support::stores::{database_url, postgres_client, unique_postgres_table, OwnPostgres};
use tower_cognito::session::{
    PostgresStore, PostgresTls, SessionStore, SessionVerdict, StoreError, StoreErrorKind,
    WindowLimits,
};

use SessionVerdict::{Accepted, Revoked, Superseded};

const L2: WindowLimits = WindowLimits::new(2, 600);

/// A PostgreSQL server admitting only TLS connections, with a certificate for `localhost` and
/// `127.0.0.1` signed by a CA of this test.
pub(crate) struct TlsServer {
    ca: TestCa,
    pg: OwnPostgres,
}

impl TlsServer {
    pub(crate) async fn start() -> TlsServer {
        let ca = TestCa::new("tower-cognito test CA");
        let pg = OwnPostgres::start_tls(ca.server_cert(&["localhost", "127.0.0.1"])).await;
        TlsServer { ca, pg }
    }

    /// A connection string that names `host` (the name the certificate must carry) and dials
    /// 127.0.0.1, with `extra` appended (`sslmode=...`).
    pub(crate) fn url(&self, host: &str, extra: &str) -> String {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
             connect_timeout=5 {extra}",
            self.pg.port()
        )
    }

    /// TLS settings that trust this test's CA only.
    pub(crate) fn trusting(&self) -> PostgresTls {
        trusting(&self.ca)
    }
}

fn trusting(ca: &TestCa) -> PostgresTls {
    PostgresTls::new()
        .without_system_roots()
        .add_root_certificates_pem(ca.pem().as_bytes())
        .expect("the test CA's PEM")
}

/// Window checks through `store` on a fresh key: a session's life in four checks.
async fn exercise(store: &dyn SessionStore) {
    let (key, t) = (support::unique("tls"), now());
    let verdicts = [
        store.check_and_advance(&key, t - 20, t, L2).await,
        store.check_and_advance(&key, t - 10, t, L2).await,
        store.check_and_advance(&key, t, t, L2).await,
        store.check_and_advance(&key, t - 20, t, L2).await,
    ]
    .map(|v| v.expect("check over TLS"));
    assert_eq!(verdicts, [Accepted, Accepted, Accepted, Superseded]);
    store.revoke(&key, t, L2).await.expect("revoke over TLS");
    assert_eq!(
        store
            .check_and_advance(&key, t, t, L2)
            .await
            .expect("check"),
        Revoked
    );
}

/// The message of a refused connect, with the store's kind checked.
fn refused(result: Result<PostgresStore, StoreError>, kind: StoreErrorKind) -> String {
    let error = result.expect_err("the connect must be refused");
    assert_eq!(error.kind(), kind, "{error}");
    error.to_string()
}

// ---------------------------------------------------------------------------------------------
// TLS that works
// ---------------------------------------------------------------------------------------------

/// With the CA given, both stores connect over TLS and work: by host name, by IP address (the
/// certificate's IP entry), with `require` and with `prefer`. The server admits no plaintext
/// connection, so every success here went through TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_over_tls_with_the_ca_given() {
    let server = TlsServer::start().await;
    let tls = server.trusting();
    for url in [
        server.url("localhost", "sslmode=require"),
        server.url("127.0.0.1", "sslmode=require"),
        // `prefer` (also the default) with TLS settings: TLS, as the server offers it.
        server.url("localhost", "sslmode=prefer"),
        server.url("localhost", ""),
    ] {
        let store = PostgresStore::connect_with_tls(&url, &tls)
            .await
            .unwrap_or_else(|e| panic!("connect_with_tls({url}): {e}"))
            .with_table(&unique_postgres_table("tls"))
            .expect("table");
        store.create_schema().await.expect("create schema over TLS");
        exercise(&store).await;
        let debug = format!("{store:?}");
        assert!(
            debug.contains("localhost:") || debug.contains("127.0.0.1:"),
            "{debug}"
        );
        assert!(debug.contains("tls"), "{debug}");
    }
    // A PEM bundle with an unrelated CA first: every certificate of the bundle is trusted.
    let bundle = format!("{}\n{}", TestCa::new("another CA").pem(), server.ca.pem());
    let tls = PostgresTls::new()
        .without_system_roots()
        .add_root_certificates_pem(bundle.as_bytes())
        .expect("bundle");
    assert!(format!("{tls:?}").contains("extra_roots: 2"), "{tls:?}");
    let store = PostgresStore::connect_with_tls(&server.url("localhost", "sslmode=require"), &tls)
        .await
        .expect("connect with a bundle");
    store.create_schema().await.expect("create schema");
    exercise(&store).await;
}

/// The refresh store connects with the same TLS settings, and a session's lock round trip
/// works over it.
#[cfg(feature = "refresh")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_store_connects_over_tls() {
    use tower_cognito::refresh::SessionRecord;
    use tower_cognito::refresh::{LockOutcome, PostgresRefreshStore, RefreshStore, SaveOutcome};

    let server = TlsServer::start().await;
    let url = server.url("localhost", "sslmode=require");
    let store = PostgresRefreshStore::connect_with_tls(&url, &server.trusting())
        .await
        .expect("connect_with_tls");
    store.create_schema().await.expect("create schema over TLS");
    let (id, t) = ("a".repeat(64), now());
    let record = SessionRecord::new(0, t + 600, t + 60, b"sealed".to_vec());
    store.create(&id, &record, t).await.expect("create");
    let LockOutcome::Acquired { fence, .. } = store
        .lock(&id, Duration::from_secs(5), t)
        .await
        .expect("lock")
    else {
        panic!("lock not acquired");
    };
    let saved = SessionRecord::new(fence, t + 600, t + 120, b"newer".to_vec());
    assert_eq!(
        store.save(&id, &saved, fence, t).await.expect("save"),
        SaveOutcome::Saved
    );
    let loaded = store.load(&id, t).await.expect("load").expect("present");
    assert_eq!(loaded.sealed, b"newer");

    let other = TestCa::new("not the server's CA");
    let error = PostgresRefreshStore::connect_with_tls(&url, &trusting(&other))
        .await
        .expect_err("unknown CA");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

/// Many TLS connections at once: the same four-check life of a session on many
/// keys at once, from several tasks sharing the pool (each connection a TLS session of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_over_tls() {
    let server = TlsServer::start().await;
    let store = PostgresStore::connect_with_tls(
        &server.url("localhost", "sslmode=require"),
        &server.trusting(),
    )
    .await
    .expect("connect_with_tls");
    store.create_schema().await.expect("create schema");
    let store = Arc::new(store);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.spawn(async move { exercise(&*store).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
}

// ---------------------------------------------------------------------------------------------
// TLS that refuses
// ---------------------------------------------------------------------------------------------

/// Each way of getting TLS wrong is refused when the store connects, with an error saying which,
/// and never with the password in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_what_does_not_verify() {
    let server = TlsServer::start().await;
    let unavailable = StoreErrorKind::Unavailable;

    // A CA that did not sign the server's certificate.
    let other = trusting(&TestCa::new("not the server's CA"));
    let url = server.url("localhost", "sslmode=require");
    let message = refused(
        PostgresStore::connect_with_tls(&url, &other).await,
        unavailable,
    );
    assert!(message.contains("UnknownIssuer"), "{message}");

    // `connect(url)` with `require`: the system's roots, which do not hold the test's CA.
    let message = refused(PostgresStore::connect(&url).await, unavailable);
    assert!(message.contains("UnknownIssuer"), "{message}");

    // The right CA, but the certificate does not name the host (it names localhost and
    // 127.0.0.1; the connection dials 127.0.0.1 as `db.example.test`).
    let tls = server.trusting();
    let wrong_host = server.url("db.example.test", "sslmode=require");
    let message = refused(
        PostgresStore::connect_with_tls(&wrong_host, &tls).await,
        unavailable,
    );
    assert!(
        message.contains("not valid for name \"db.example.test\""),
        "{message}"
    );
    let message = refused(
        PostgresStore::connect_with_tls(&server.url("db.example.test", ""), &tls).await,
        unavailable,
    );
    assert!(
        message.contains("not valid for name \"db.example.test\""),
        "prefer never falls back: {message}"
    );

    // Plaintext against a server that admits TLS only: the server's refusal, verbatim.
    for (url, what) in [
        (server.url("localhost", "sslmode=disable"), "disable"),
        // `connect(url)` with `prefer` (or no sslmode) is plaintext.
        (server.url("localhost", "sslmode=prefer"), "prefer"),
        (server.url("localhost", ""), "no sslmode"),
    ] {
        let message = refused(PostgresStore::connect(&url).await, unavailable);
        assert!(
            message.contains("no pg_hba.conf entry") && message.contains("no encryption"),
            "{what}: {message}"
        );
    }
    let message = refused(
        PostgresStore::connect_with_tls(&server.url("localhost", "sslmode=disable"), &tls).await,
        unavailable,
    );
    assert!(message.contains("no encryption"), "{message}");

    // A password in the connection string appears in no error and no `Debug`.
    let with_password = server.url("localhost", "sslmode=require password=hunter2-secret");
    let error = PostgresStore::connect_with_tls(&with_password, &other)
        .await
        .expect_err("unknown CA");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let store = PostgresStore::connect_with_tls(&with_password, &tls)
        .await
        .expect("trust auth ignores the password");
    let debug = format!("{store:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

/// A server whose certificate changes to one the store does not trust: connections already open
/// are lost with the restart, and each new one is refused, so checks answer `Unavailable` (the
/// verifier's 503) until the certificate is trusted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_changed_to_an_untrusted_one_fails_each_check() {
    let mut server = TlsServer::start().await;
    let store = PostgresStore::connect_with_tls(
        &server.url("localhost", "sslmode=require"),
        &server.trusting(),
    )
    .await
    .expect("connect_with_tls");
    store.create_schema().await.expect("create schema");
    exercise(&store).await;

    let impostor = TestCa::new("an impostor CA");
    server
        .pg
        .restart_with_cert(impostor.server_cert(&["localhost", "127.0.0.1"]))
        .await;
    let t = now();
    for _ in 0..3 {
        let error = store
            .check_and_advance(&support::unique("changed"), t, t, L2)
            .await
            .expect_err("an untrusted certificate");
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
        // The first check may meet a connection the restart closed; every new one is refused.
        let message = error.to_string();
        assert!(
            message.contains("UnknownIssuer") || message.contains("closed"),
            "{message}"
        );
    }
    let error = store
        .check_and_advance(&support::unique("changed"), t, t, L2)
        .await
        .expect_err("an untrusted certificate");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}

/// Bad TLS settings are refused with `InvalidInput` before anything connects.
#[tokio::test]
async fn bad_tls_settings_are_invalid_input() {
    let invalid = StoreErrorKind::InvalidInput;
    for pem in [
        &b""[..],
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        // Valid base64, not a certificate.
        b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    ] {
        let error = PostgresTls::new()
            .add_root_certificates_pem(pem)
            .expect_err("bad PEM");
        assert_eq!(error.kind(), invalid, "{error}");
    }
    // No root at all: refused at connect, before dialling (port 1 would refuse otherwise).
    let url = "host=127.0.0.1 port=1 user=postgres sslmode=require";
    let message = refused(
        PostgresStore::connect_with_tls(url, &PostgresTls::new().without_system_roots()).await,
        invalid,
    );
    assert!(message.contains("no trusted root"), "{message}");
    // libpq's sslmode names are refused with a hint, and without the password.
    for mode in ["verify-full", "verify-ca", "allow"] {
        let url = format!("postgres://app:hunter2-secret@127.0.0.1:1/app?sslmode={mode}");
        let message = refused(PostgresStore::connect(&url).await, invalid);
        assert!(message.contains("`require`"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
    assert_eq!(
        format!("{:?}", PostgresTls::default()),
        "PostgresTls { system_roots: true, extra_roots: 0 }"
    );
}

// ---------------------------------------------------------------------------------------------
// A pool of the application's own
// ---------------------------------------------------------------------------------------------

/// A pool the application built (through the re-exported deadpool-postgres) serves the store
/// and the application's own queries, and the store shares its table with one that connected by
/// URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_pool_uses_the_applications_pool() {
    use tower_cognito::session::deadpool_postgres::{tokio_postgres, Manager, Pool};

    let table = unique_postgres_table("adopted");
    let config: tokio_postgres::Config = database_url().parse().expect("DATABASE_URL");
    let pool = Pool::builder(Manager::new(config, tokio_postgres::NoTls))
        .max_size(4)
        .build()
        .expect("pool");
    let adopted = PostgresStore::from_pool(pool.clone())
        .await
        .expect("from_pool")
        .with_table(&table)
        .expect("table");
    adopted.create_schema().await.expect("create schema");
    let debug = format!("{adopted:?}");
    assert!(
        debug.contains("from_pool") && debug.contains(&table),
        "{debug}"
    );

    let by_url = PostgresStore::connect(&database_url())
        .await
        .expect("connect")
        .with_table(&table)
        .expect("table");
    let (key, t) = (support::unique("adopted"), now());
    assert_eq!(
        adopted
            .check_and_advance(&key, t - 10, t, L2)
            .await
            .unwrap(),
        Accepted
    );
    assert_eq!(
        by_url.check_and_advance(&key, t, t, L2).await.unwrap(),
        Accepted
    );
    assert_eq!(
        adopted
            .check_and_advance(&key, t - 20, t, L2)
            .await
            .unwrap(),
        Superseded
    );
    // The application's own query, on the same pool.
    let client = pool.get().await.expect("the application's connection");
    let iats: Vec<i64> = client
        .query_one(
            &format!("SELECT iats FROM \"{table}\" WHERE key = $1"),
            &[&key],
        )
        .await
        .expect("select")
        .get(0);
    assert_eq!(iats, [t - 10, t]);
    drop(client);

    postgres_client()
        .await
        .batch_execute(&format!("DROP TABLE \"{table}\""))
        .await
        .expect("drop table");
}

/// A pool whose server does not answer is refused at once with `Unavailable`.
#[tokio::test]
async fn from_pool_checks_the_server_answers() {
    use tower_cognito::session::deadpool_postgres::{tokio_postgres, Manager, Pool, Runtime};

    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(support::stores::spare_port())
        .user("postgres")
        .password("hunter2-secret");
    let pool = Pool::builder(Manager::new(config, tokio_postgres::NoTls))
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .expect("pool");
    let error = PostgresStore::from_pool(pool).await.expect_err("no server");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(
        !format!("{error} {error:?}").contains("hunter2"),
        "{error:?}"
    );
}

/// The refresh store on an adopted pool.
#[cfg(feature = "refresh")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_store_from_pool() {
    use tower_cognito::refresh::{PostgresRefreshStore, RefreshStore, SessionRecord};
    use tower_cognito::session::deadpool_postgres::{tokio_postgres, Manager, Pool};

    let table = unique_postgres_table("adopted_bff");
    let config: tokio_postgres::Config = database_url().parse().expect("DATABASE_URL");
    let pool = Pool::builder(Manager::new(config, tokio_postgres::NoTls))
        .build()
        .expect("pool");
    let store = PostgresRefreshStore::from_pool(pool)
        .await
        .expect("from_pool")
        .with_table(&table)
        .expect("table");
    store.create_schema().await.expect("create schema");
    let (id, t) = ("b".repeat(64), now());
    let record = SessionRecord::new(0, t + 600, t + 60, b"sealed".to_vec());
    store.create(&id, &record, t).await.expect("create");
    assert_eq!(
        store
            .load(&id, t)
            .await
            .expect("load")
            .expect("present")
            .sealed,
        b"sealed"
    );
    assert!(format!("{store:?}").contains("from_pool"), "{store:?}");
    postgres_client()
        .await
        .batch_execute(&format!("DROP TABLE \"{table}\""))
        .await
        .expect("drop table");
}
