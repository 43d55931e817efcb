//! JWKS fetches through an HTTP proxy, only when asked for, and extra root certificates.
//!
//! The proxy is a real one on loopback, of the test's own: it forwards absolute-form requests
//! (`GET http://host/path`) and tunnels `CONNECT`, and counts what it carried.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_cognito::{AuthError, ConfigError, JwksProxy, TokenUse, Verifier};

use crate::support::{self, key, JwksServer};

/// A forwarding proxy on 127.0.0.1; counts the requests it carried.
pub(crate) struct Proxy {
    pub(crate) url: String,
    pub(crate) carried: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn proxy() -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let carried = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&carried);
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let _ = carry(client, &count).await;
            });
        }
    });
    Proxy { url, carried, task }
}

/// One proxied connection: the request head decides where it goes.
async fn carry(mut client: TcpStream, count: &AtomicUsize) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut words = text.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    count.fetch_add(1, Ordering::SeqCst);
    if method == "CONNECT" {
        let mut upstream = TcpStream::connect(target).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    // Absolute form: `GET http://host:port/path HTTP/1.1`, forwarded as it is.
    let authority = target
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let mut upstream = TcpStream::connect(authority).await?;
    upstream.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn token_for(server: &JwksServer) -> String {
    support::mint(
        key(0),
        &support::access_claims(&server.issuer(), "client-p"),
    )
}

#[tokio::test]
async fn keys_come_through_the_given_proxy() {
    let server = JwksServer::start("eu-west-1_Proxied").await;
    server.set_keys(&[key(0)]);
    let proxy = proxy().await;
    let verifier = Verifier::new(
        support::local_config(&server, TokenUse::Access, "client-p")
            .jwks_proxy(JwksProxy::url(&proxy.url)),
    )
    .unwrap();
    verifier
        .verify(&token_for(&server).await)
        .await
        .expect("verified with keys fetched through the proxy");
    assert_eq!(proxy.carried.load(Ordering::SeqCst), 1);
    assert_eq!(server.fetch_count(), 1);
}

#[tokio::test]
async fn no_proxy_hosts_and_the_default_go_direct() {
    let server = JwksServer::start("eu-west-1_Direct").await;
    server.set_keys(&[key(0)]);
    let proxy = proxy().await;
    // The default ignores proxies entirely; a NO_PROXY match goes direct.
    for config in [
        support::local_config(&server, TokenUse::Access, "client-p"),
        support::local_config(&server, TokenUse::Access, "client-p")
            .jwks_proxy(JwksProxy::url(&proxy.url).no_proxy("localhost,127.0.0.1")),
    ] {
        let verifier = Verifier::new(config).unwrap();
        verifier.verify(&token_for(&server).await).await.unwrap();
    }
    assert_eq!(proxy.carried.load(Ordering::SeqCst), 0);
    assert_eq!(server.fetch_count(), 2);
}

#[tokio::test]
async fn a_proxy_that_is_down_is_our_outage_not_the_callers() {
    let server = JwksServer::start("eu-west-1_ProxyDown").await;
    server.set_keys(&[key(0)]);
    let proxy = proxy().await;
    let url = proxy.url.clone();
    drop(proxy);
    tokio::task::yield_now().await;
    let verifier = Verifier::new(
        support::local_config(&server, TokenUse::Access, "client-p")
            .jwks_proxy(JwksProxy::url(url)),
    )
    .unwrap();
    assert_eq!(
        verifier
            .verify(&token_for(&server).await)
            .await
            .unwrap_err(),
        AuthError::KeysUnavailable
    );
    assert_eq!(server.fetch_count(), 0);
}

#[test]
fn bad_proxy_urls_and_certificates_are_refused_without_showing_secrets() {
    let config = || {
        tower_cognito::CognitoConfig::new(
            tower_cognito::UserPool::parse("eu-west-1_Cfg").unwrap(),
            TokenUse::Access,
            tower_cognito::ClientIds::one("c"),
        )
    };
    for bad in [
        "not a url with s3cret",
        "ftp://user:s3cret@proxy:21",
        "http://",
    ] {
        let error = Verifier::new(config().jwks_proxy(JwksProxy::url(bad))).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::InvalidUrl {
                    setting: "JWKS proxy",
                    ..
                }
            ),
            "{bad}: {error:?}"
        );
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
    let proxy = JwksProxy::url("http://user:s3cret@proxy.internal:3128");
    assert!(!format!("{proxy:?}").contains("s3cret"));
    assert!(!format!("{:?}", config().jwks_proxy(proxy)).contains("s3cret"));

    for pem in [&b"not a certificate"[..], b""] {
        assert!(matches!(
            Verifier::new(config().jwks_root_certificates_pem(pem)).unwrap_err(),
            ConfigError::InvalidCertificate(_)
        ));
    }
}
