//! Handshakes over in-memory streams with certificates from `security init`.

use std::path::Path;

use rustls::pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::*;
use crate::cli::{SecurityInitArgs, security_init};
use crate::config::{ClientAuth, Keystore, TlsVersion, Truststore};

fn certificates(dir: &Path) {
    security_init(&SecurityInitArgs::new(dir, &["localhost"])).unwrap();
}

fn settings(dir: &Path, client_auth: ClientAuth) -> TlsSettings {
    TlsSettings {
        keystore: Keystore::File(dir.join("broker-keystore.pem")),
        truststore: Some(Truststore::File(dir.join("ca.pem"))),
        client_auth,
        principal_mapping_rules: PrincipalMappingRules::default(),
        enabled_protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
        cipher_suites: Vec::new(),
    }
}

/// A rustls client trusting the directory's CA, with its client
/// certificate when `with_certificate`.
fn connector(dir: &Path, with_certificate: bool) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_certificate {
        let chain = CertificateDer::pem_file_iter(dir.join("client.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Runs a handshake between the connector and the listener's handle;
/// the server's result.
async fn handshake(
    handle: &TlsAcceptorHandle,
    client: tokio_rustls::TlsConnector,
) -> Result<KafkaPrincipal, HandshakeError> {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from("localhost").unwrap();
    let client = tokio::spawn(async move { client.connect(name, client_end).await });
    let accepted = handle.accept(server_end, Duration::from_secs(10)).await;
    let _ = client.await;
    accepted.map(|(_, principal)| principal)
}

#[tokio::test]
async fn a_client_certificate_names_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (handle, _) =
        TlsAcceptorHandle::start("SSL", &settings(dir.path(), ClientAuth::Required)).unwrap();
    let principal = handshake(&handle, connector(dir.path(), true))
        .await
        .unwrap();
    assert_eq!(principal.to_string(), "User:CN=client,O=gregor");
    let refused = handshake(&handle, connector(dir.path(), false)).await;
    assert!(
        matches!(refused, Err(HandshakeError::Failed(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn without_a_certificate_the_client_is_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (handle, _) =
        TlsAcceptorHandle::start("SSL", &settings(dir.path(), ClientAuth::Requested)).unwrap();
    let principal = handshake(&handle, connector(dir.path(), false))
        .await
        .unwrap();
    assert_eq!(principal, KafkaPrincipal::anonymous());
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_runs_into_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (handle, _) =
        TlsAcceptorHandle::start("SSL", &settings(dir.path(), ClientAuth::None)).unwrap();
    let (_client_end, server_end) = tokio::io::duplex(1024);
    let accepted = handle.accept(server_end, Duration::from_secs(30)).await;
    assert!(matches!(accepted, Err(HandshakeError::Timeout(_))));
}

#[test]
fn unusable_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let mut broken = settings(dir.path(), ClientAuth::None);
    broken.keystore = Keystore::File(dir.path().join("missing.pem"));
    let error = build_server_config(&broken).unwrap_err();
    assert!(error.to_string().contains("missing.pem"), "{error}");

    // A certificate with another certificate's key.
    let chain = std::fs::read_to_string(dir.path().join("broker.pem")).unwrap();
    let key = std::fs::read_to_string(dir.path().join("client.key")).unwrap();
    broken.keystore = Keystore::Inline {
        certificate_chain: chain.clone(),
        key,
    };
    let error = build_server_config(&broken).unwrap_err();
    assert!(matches!(error, TlsError::KeyMismatch(_)), "{error}");

    broken.keystore = Keystore::Inline {
        certificate_chain: chain,
        key: "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            .into(),
    };
    let error = build_server_config(&broken).unwrap_err();
    assert!(matches!(error, TlsError::EncryptedKey { .. }), "{error}");
}

#[test]
fn a_bad_file_on_reload_keeps_the_previous_config() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (handle, mut reloader) =
        TlsAcceptorHandle::start("SSL", &settings(dir.path(), ClientAuth::None)).unwrap();
    let before = handle.config.borrow().clone();
    std::fs::write(dir.path().join("broker-keystore.pem"), "garbage").unwrap();
    reloader.check(true);
    assert!(Arc::ptr_eq(&before, &handle.config.borrow()));
    certificates_again(dir.path());
    reloader.check(true);
    assert!(!Arc::ptr_eq(&before, &handle.config.borrow()));
}

fn certificates_again(dir: &Path) {
    security_init(&SecurityInitArgs {
        keep_ca: true,
        ..SecurityInitArgs::new(dir, &["localhost"])
    })
    .unwrap();
}

#[test]
fn cipher_suites_are_chosen_by_their_iana_names() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let mut chosen = settings(dir.path(), ClientAuth::None);
    chosen.cipher_suites = vec!["TLS_AES_128_GCM_SHA256".into(), "TLS_NOT_A_SUITE".into()];
    let config = build_server_config(&chosen).unwrap();
    let suites: Vec<String> = config
        .crypto_provider()
        .cipher_suites
        .iter()
        .map(super::server_config::iana_name)
        .collect();
    assert_eq!(suites, ["TLS_AES_128_GCM_SHA256"]);
    chosen.cipher_suites = vec!["TLS_NOT_A_SUITE".into()];
    let error = build_server_config(&chosen).unwrap_err();
    assert!(matches!(error, TlsError::NoCipherSuite(_)), "{error}");
    // A TLS 1.3 suite alone cannot serve a TLS 1.2-only listener.
    chosen.cipher_suites = vec!["TLS_AES_128_GCM_SHA256".into()];
    chosen.enabled_protocols = vec![TlsVersion::Tls12];
    let error = build_server_config(&chosen).unwrap_err();
    assert!(matches!(error, TlsError::NoCipherSuite(_)), "{error}");
}
