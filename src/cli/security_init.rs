//! `gregor security init DIR`: a private CA and the certificates a TLS
//! set-up needs (broker, coordinator, client), with ready `server-ssl`
//! and `client-ssl` properties fragments. Kafka has no such tool; this is
//! the `openssl`/`keytool` recipe of Kafka's security guide in one step.
//!
//! Files: `ca.pem`/`ca.key`, `broker.pem`/`broker.key` (and
//! `broker-keystore.pem`, key and chain in one file for
//! `ssl.keystore.location`), the same for `coordinator` and `client`
//! (`CN=client`), `server-ssl.properties`, `client-ssl.properties`,
//! `coordinator.properties` (the coordinator's mutual-TLS port, brokers and
//! the quorum's members as its super users), `kraft-controller.properties`
//! (KRaft's shape: the CONTROLLER listener on mutual TLS), `zk-tls-client.properties` (the tools'
//! `--zk-tls-config-file`) and `client.properties` (SASL_SSL with
//! SCRAM-SHA-512 as a generated admin user). Keys and passwords are
//! written mode 0600.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// How long the CA is valid: ten years.
const CA_DAYS: i64 = 3650;
/// How long broker, coordinator and client certificates are valid: the
/// 825 days browsers and most clients still accept.
const LEAF_DAYS: i64 = 825;

#[derive(clap::Args, Debug, Clone)]
pub struct SecurityInitArgs {
    /// Directory to write the files into (created if missing).
    pub dir: PathBuf,
    /// Host names and addresses the broker and coordinator certificates
    /// are valid for (default: localhost, 127.0.0.1 and this machine's
    /// host name).
    #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
    pub hosts: Vec<String>,
    /// Replace an existing CA (and every certificate).
    #[arg(long, conflicts_with_all = ["keep_ca", "if_missing"])]
    pub force: bool,
    /// Keep the existing CA and issue new broker, coordinator and client
    /// certificates from it (to renew them; clients keep trusting ca.pem).
    #[arg(long, conflicts_with = "if_missing")]
    pub keep_ca: bool,
    /// When DIR already has a CA, write nothing and succeed: for a
    /// container that runs this at every start (compose.secure.yml).
    #[arg(long)]
    pub if_missing: bool,
    /// The admin user's password in client.properties, instead of a random
    /// one: the environment variable GREGOR_ADMIN_PASSWORD (a flag would
    /// show it in the process list).
    #[arg(skip = std::env::var("GREGOR_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()))]
    pub admin_password: Option<String>,
}

impl SecurityInitArgs {
    /// A fresh CA and certificates for `hosts` in `dir`, nothing replaced
    /// (what `gregor security init DIR --hosts …` does).
    pub fn new(dir: impl Into<PathBuf>, hosts: &[&str]) -> Self {
        SecurityInitArgs {
            dir: dir.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            force: false,
            keep_ca: false,
            if_missing: false,
            admin_password: None,
        }
    }
}

/// Why `security init` wrote nothing, or not everything.
#[derive(Debug, thiserror::Error)]
pub enum SecurityInitError {
    #[error("{} exists; pass --force to replace the CA and every certificate, or --keep-ca to renew the certificates from it", path.display())]
    CaExists { path: PathBuf },
    #[error("--keep-ca: cannot use the CA in {}: {reason}", dir.display())]
    UnusableCa { dir: PathBuf, reason: String },
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error("cannot create a certificate for {subject}: {reason}")]
    Certificate { subject: String, reason: String },
}

/// One generated certificate and its key, as PEM.
struct Issued {
    certificate: String,
    key: String,
}

/// Writes the CA, the certificates and the properties fragments; returns
/// the files written.
pub fn security_init(args: &SecurityInitArgs) -> Result<Vec<PathBuf>, SecurityInitError> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, &e))?;
    let ca_path = dir.join("ca.pem");
    if ca_path.exists() && args.if_missing {
        return Ok(Vec::new());
    }
    if ca_path.exists() && !args.force && !args.keep_ca {
        return Err(SecurityInitError::CaExists { path: ca_path });
    }
    let hosts = if args.hosts.is_empty() {
        default_hosts()
    } else {
        args.hosts.clone()
    };
    let mut written = Vec::new();
    let (ca_pem, issuer) = if args.keep_ca {
        existing_ca(dir)?
    } else {
        let (ca, issuer) = new_ca()?;
        write(dir, "ca.pem", &ca.certificate, false, &mut written)?;
        write(dir, "ca.key", &ca.key, true, &mut written)?;
        (ca.certificate, issuer)
    };
    let server_use = [
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let leaves = [
        ("broker", "broker", hosts.as_slice(), &server_use[..]),
        (
            "coordinator",
            "coordinator",
            hosts.as_slice(),
            &server_use[..],
        ),
        (
            "client",
            "client",
            &[][..],
            &[ExtendedKeyUsagePurpose::ClientAuth][..],
        ),
    ];
    for (file, common_name, names, usages) in leaves {
        let leaf = issue(&issuer, common_name, names, usages)?;
        let chain = format!("{}{ca_pem}", leaf.certificate);
        write(dir, &format!("{file}.pem"), &chain, false, &mut written)?;
        write(dir, &format!("{file}.key"), &leaf.key, true, &mut written)?;
        let keystore = format!("{}{chain}", leaf.key);
        write(
            dir,
            &format!("{file}-keystore.pem"),
            &keystore,
            true,
            &mut written,
        )?;
    }
    let dir_text = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    let dir_text = dir_text.display().to_string();
    write(
        dir,
        "server-ssl.properties",
        &server_properties(&dir_text),
        false,
        &mut written,
    )?;
    write(
        dir,
        "client-ssl.properties",
        &client_properties(&dir_text),
        true,
        &mut written,
    )?;
    write(
        dir,
        "coordinator.properties",
        &coordinator_properties(&dir_text),
        false,
        &mut written,
    )?;
    write(
        dir,
        "kraft-controller.properties",
        &kraft_controller_properties(&dir_text),
        false,
        &mut written,
    )?;
    write(
        dir,
        "zk-tls-client.properties",
        &zk_tls_client_properties(&dir_text),
        true,
        &mut written,
    )?;
    admin_client_properties(dir, &dir_text, args, &mut written)?;
    Ok(written)
}

/// The SCRAM admin user `client.properties` logs in as.
const ADMIN_USER: &str = "admin";

/// `client.properties`: SASL_SSL with SCRAM-SHA-512 as `admin`, with a
/// fresh random password (kept when the file exists, unless `force`), and
/// on stderr how to create that user on a broker.
fn admin_client_properties(
    dir: &Path,
    dir_text: &str,
    args: &SecurityInitArgs,
    written: &mut Vec<PathBuf>,
) -> Result<(), SecurityInitError> {
    if dir.join("client.properties").exists() && !args.force {
        return Ok(());
    }
    let password: String = match &args.admin_password {
        Some(password) => password.clone(),
        None => crate::security::sasl::random_bytes::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    };
    let contents = format!(
        "# Kafka client settings for a SASL_SSL listener, as the SCRAM user\n\
         # {ADMIN_USER} (create it on the broker first, see below).\n\
         security.protocol=SASL_SSL\n\
         sasl.mechanism=SCRAM-SHA-512\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
         username=\"{ADMIN_USER}\" password=\"{password}\";\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={dir_text}/ca.pem\n\
         # Create the user when the broker starts for the first time:\n\
         #   KAFKA_CLIENT_USERS={ADMIN_USER} KAFKA_CLIENT_PASSWORDS={password}\n\
         # Use it with gregor's tools: --command-config {dir_text}/client.properties\n"
    );
    write(dir, "client.properties", &contents, true, written)?;
    // A password the caller chose stays out of the output (container logs).
    let shown = match args.admin_password {
        Some(_) => "$GREGOR_ADMIN_PASSWORD",
        None => password.as_str(),
    };
    eprintln!(
        "client.properties logs in as the SCRAM user '{ADMIN_USER}'; create it by starting \
         the broker with\n  KAFKA_CLIENT_USERS={ADMIN_USER} KAFKA_CLIENT_PASSWORDS={shown}\n\
         or on a running broker with kafka-configs.sh --alter --entity-type users \
         --entity-name {ADMIN_USER} --add-config 'SCRAM-SHA-512=[password={shown}]'"
    );
    Ok(())
}

fn default_hosts() -> Vec<String> {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim();
        if !name.is_empty() && !hosts.iter().any(|h| h == name) {
            hosts.push(name.to_string());
        }
    }
    hosts
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // A day of slack for clocks behind ours.
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
}

/// `O=gregor` then `CN=...`, so Java (and Kafka's principal) reads it
/// most specific first: `CN=client,O=gregor`.
fn subject_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "gregor");
    name.push(DnType::CommonName, common_name);
    name
}

fn certificate_error(subject: &str, error: rcgen::Error) -> SecurityInitError {
    SecurityInitError::Certificate {
        subject: subject.to_string(),
        reason: error.to_string(),
    }
}

fn new_ca() -> Result<(Issued, Issuer<'static, KeyPair>), SecurityInitError> {
    let subject = "CN=gregor CA";
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| certificate_error(subject, e))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = subject_name("gregor CA");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    validity(&mut params, CA_DAYS);
    let key = KeyPair::generate().map_err(|e| certificate_error(subject, e))?;
    let certificate = params
        .self_signed(&key)
        .map_err(|e| certificate_error(subject, e))?;
    let issued = Issued {
        certificate: certificate.pem(),
        key: key.serialize_pem(),
    };
    Ok((issued, Issuer::new(params, key)))
}

fn existing_ca(dir: &Path) -> Result<(String, Issuer<'static, KeyPair>), SecurityInitError> {
    let unusable = |reason: String| SecurityInitError::UnusableCa {
        dir: dir.to_path_buf(),
        reason,
    };
    let certificate = std::fs::read_to_string(dir.join("ca.pem"))
        .map_err(|e| unusable(format!("ca.pem: {e}")))?;
    let key = std::fs::read_to_string(dir.join("ca.key"))
        .map_err(|e| unusable(format!("ca.key: {e}")))?;
    let key = KeyPair::from_pem(&key).map_err(|e| unusable(format!("ca.key: {e}")))?;
    let issuer = Issuer::from_ca_cert_pem(&certificate, key)
        .map_err(|e| unusable(format!("ca.pem: {e}")))?;
    Ok((certificate, issuer))
}

fn issue(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    names: &[String],
    usages: &[ExtendedKeyUsagePurpose],
) -> Result<Issued, SecurityInitError> {
    let subject = format!("CN={common_name},O=gregor");
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(|e| certificate_error(&subject, e))?;
    params.distinguished_name = subject_name(common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = usages.to_vec();
    validity(&mut params, LEAF_DAYS);
    let key = KeyPair::generate().map_err(|e| certificate_error(&subject, e))?;
    let certificate = params
        .signed_by(&key, issuer)
        .map_err(|e| certificate_error(&subject, e))?;
    Ok(Issued {
        certificate: certificate.pem(),
        key: key.serialize_pem(),
    })
}

/// Writes one file; `secret` files are created mode 0600 (and an existing
/// one is replaced, not rewritten in place, so its old mode does not stay).
fn write(
    dir: &Path,
    name: &str,
    contents: &str,
    secret: bool,
    written: &mut Vec<PathBuf>,
) -> Result<(), SecurityInitError> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(&temporary)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        // Renamed into place so a broker reloading never reads half a file.
        std::fs::rename(&temporary, &path)
    })();
    result.map_err(|e| write_error(&path, &e))?;
    written.push(path);
    Ok(())
}

fn write_error(path: &Path, error: &std::io::Error) -> SecurityInitError {
    SecurityInitError::Write {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

fn server_properties(dir: &str) -> String {
    format!(
        "# gregor broker: a TLS listener next to the plaintext one (merge into server.properties).\n\
         listeners=PLAINTEXT://:9092,SSL://:9093\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL\n\
         ssl.keystore.type=PEM\n\
         ssl.keystore.location={dir}/broker-keystore.pem\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={dir}/ca.pem\n\
         # required: clients must present a certificate signed by ca.pem\n\
         # (their principal is then User:CN=client,O=gregor); none: any client.\n\
         ssl.client.auth=required\n\
         # Brokers replicate over the TLS listener too, each presenting\n\
         # broker-keystore.pem (principal User:CN=broker,O=gregor, which an\n\
         # authorizer must let replicate: put it in super.users).\n\
         inter.broker.listener.name=SSL\n\
         # The coordinator's mutual-TLS port (coordinator.properties); point\n\
         # zookeeper.connect at it, e.g. zookeeper.connect=localhost:2182.\n\
         zookeeper.ssl.client.enable=true\n\
         zookeeper.ssl.keystore.type=PEM\n\
         zookeeper.ssl.keystore.location={dir}/broker-keystore.pem\n\
         zookeeper.ssl.truststore.type=PEM\n\
         zookeeper.ssl.truststore.location={dir}/ca.pem\n"
    )
}

fn coordinator_properties(dir: &str) -> String {
    format!(
        "# gregor coordinator: mutual TLS only (merge into coordinator.properties).\n\
         # With secureClientPort and no clientPort, no plaintext port is opened.\n\
         secureClientPort=2182\n\
         ssl.keyStore.type=PEM\n\
         ssl.keyStore.location={dir}/coordinator-keystore.pem\n\
         ssl.trustStore.type=PEM\n\
         ssl.trustStore.location={dir}/ca.pem\n\
         ssl.clientAuth=need\n\
         # Brokers register, heartbeat and write, and quorum members send each\n\
         # other raft RPCs on the peer port; any other certificate signed by\n\
         # ca.pem (the client's) may only read the cluster view.\n\
         super.users=User:CN=broker,O=gregor;User:CN=coordinator,O=gregor\n"
    )
}

fn kraft_controller_properties(dir: &str) -> String {
    format!(
        "# gregor in KRaft's shape: the CONTROLLER listener on mutual TLS (merge into\n\
         # every node's server.properties, controllers and brokers alike; the\n\
         # certificates must name the controllers' hosts: security init --hosts).\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL\n\
         listener.name.controller.ssl.keystore.type=PEM\n\
         listener.name.controller.ssl.keystore.location={dir}/broker-keystore.pem\n\
         listener.name.controller.ssl.truststore.type=PEM\n\
         listener.name.controller.ssl.truststore.location={dir}/ca.pem\n\
         # Kafka's default is none; required: only certificates signed by ca.pem.\n\
         listener.name.controller.ssl.client.auth=required\n\
         # Raft between controllers and the brokers' registrations and heartbeats\n\
         # need ClusterAction: the nodes' certificate may write, any other (the\n\
         # client's) only reads. add-controller and remove-controller need a\n\
         # super user's certificate in --command-config.\n\
         super.users=User:CN=broker,O=gregor\n\
         # kafka-metadata-quorum.sh --bootstrap-controller HOST:9093 \\\n\
         #   --command-config {dir}/client-ssl.properties describe --status\n"
    )
}

fn zk_tls_client_properties(dir: &str) -> String {
    format!(
        "# For the tools' --zookeeper HOST:2182 --zk-tls-config-file THIS_FILE.\n\
         zookeeper.ssl.client.enable=true\n\
         zookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty\n\
         zookeeper.ssl.keystore.type=PEM\n\
         zookeeper.ssl.keystore.location={dir}/client-keystore.pem\n\
         zookeeper.ssl.truststore.type=PEM\n\
         zookeeper.ssl.truststore.location={dir}/ca.pem\n"
    )
}

fn client_properties(dir: &str) -> String {
    format!(
        "# Kafka client settings for the broker's SSL listener.\n\
         security.protocol=SSL\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={dir}/ca.pem\n\
         # The client certificate, for ssl.client.auth=required or requested.\n\
         ssl.keystore.type=PEM\n\
         ssl.keystore.location={dir}/client-keystore.pem\n\
         #\n\
         # librdkafka (confluent-kafka, kcat): security.protocol=ssl\n\
         #   ssl.ca.location={dir}/ca.pem\n\
         #   ssl.certificate.location={dir}/client.pem\n\
         #   ssl.key.location={dir}/client.key\n\
         # kafka-python: security_protocol=\"SSL\", ssl_cafile=\"{dir}/ca.pem\",\n\
         #   ssl_certfile=\"{dir}/client.pem\", ssl_keyfile=\"{dir}/client.key\"\n\
         # (The Java client is not tested with this file: no JVM on gregor's test machines.)\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn args(dir: &Path) -> SecurityInitArgs {
        SecurityInitArgs::new(dir, &["localhost", "127.0.0.1"])
    }

    #[test]
    fn if_missing_keeps_an_existing_ca_and_the_admin_password_can_be_given() {
        let dir = tempfile::tempdir().unwrap();
        let given = SecurityInitArgs {
            if_missing: true,
            admin_password: Some("chosen-password".into()),
            ..args(dir.path())
        };
        assert!(!security_init(&given).unwrap().is_empty());
        let properties = std::fs::read_to_string(dir.path().join("client.properties")).unwrap();
        assert!(
            properties.contains("password=\"chosen-password\""),
            "{properties}"
        );
        let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
        assert!(
            security_init(&given).unwrap().is_empty(),
            "a second run writes nothing"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
            ca
        );
    }

    #[test]
    fn writes_keys_private_and_refuses_to_replace_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let written = security_init(&args(dir.path())).unwrap();
        assert!(written.len() >= 13);
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        for key in ["ca.key", "broker.key", "client.key", "broker-keystore.pem"] {
            assert_eq!(mode(key), 0o600, "{key}");
        }
        assert_eq!(mode("ca.pem"), 0o644);
        let error = security_init(&args(dir.path())).unwrap_err();
        assert!(
            matches!(error, SecurityInitError::CaExists { .. }),
            "{error}"
        );
    }

    #[test]
    fn the_coordinator_and_zk_client_fragments_load() {
        let dir = tempfile::tempdir().unwrap();
        security_init(&args(dir.path())).unwrap();
        let coordinator = crate::cluster::http::CoordinatorArgs {
            config: Some(dir.path().join("coordinator.properties")),
            ..Default::default()
        }
        .load(&[])
        .unwrap();
        assert_eq!(coordinator.listen, None, "no plaintext port");
        assert_eq!(coordinator.secure.map(|s| s.listen.port()), Some(2182));
        let client =
            crate::config::RawConfig::from_file(&dir.path().join("zk-tls-client.properties"))
                .unwrap();
        let tls = crate::config::resolve_coordinator_tls(&client)
            .unwrap()
            .unwrap();
        crate::cluster::http::CoordinatorTls::new(&tls).unwrap();
    }

    #[test]
    fn the_kraft_fragment_makes_a_combined_nodes_controller_listener_mutual_tls() {
        let dir = tempfile::tempdir().unwrap();
        security_init(&args(dir.path())).unwrap();
        let mut raw = crate::config::RawConfig::with_defaults();
        raw.merge(
            crate::config::RawConfig::from_properties(
                "process.roles=broker,controller\nnode.id=1\n\
                 controller.quorum.voters=1@localhost:9093\ncontroller.listener.names=CONTROLLER\n\
                 listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n",
                Path::new("server.properties"),
            )
            .unwrap(),
        );
        raw.merge(
            crate::config::RawConfig::from_file(&dir.path().join("kraft-controller.properties"))
                .unwrap(),
        );
        let settings = raw.validate_with(&|| "localhost".to_owned()).unwrap();
        let kraft = settings.kraft.unwrap();
        let server = kraft.controller.unwrap().tls.unwrap();
        assert_eq!(server.client_auth, crate::config::ClientAuth::Required);
        crate::security::tls::TlsAcceptorHandle::start("CONTROLLER", &server).unwrap();
        let client = kraft.controller_client_tls.unwrap();
        assert!(client.keystore.is_some() && client.verify_hostname);
        crate::cluster::http::CoordinatorTls::new(&client).unwrap();
        assert_eq!(
            kraft.super_users,
            vec![crate::security::KafkaPrincipal::user("CN=broker,O=gregor")]
        );
    }

    #[test]
    fn the_server_fragment_replicates_over_mutual_tls() {
        let dir = tempfile::tempdir().unwrap();
        security_init(&args(dir.path())).unwrap();
        let mut raw = crate::config::RawConfig::with_defaults();
        raw.merge(
            crate::config::RawConfig::from_file(&dir.path().join("server-ssl.properties")).unwrap(),
        );
        let settings = raw.validate_with(&|| "localhost".to_owned()).unwrap();
        let inter = settings.inter_broker.unwrap();
        assert_eq!(inter.listener, "SSL");
        let tls = inter.tls.unwrap();
        assert!(tls.keystore.is_some() && tls.verify_hostname);
        crate::cluster::http::CoordinatorTls::new(&tls).unwrap();
    }

    #[test]
    fn keep_ca_issues_new_certificates_from_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        security_init(&args(dir.path())).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let (ca, broker) = (read("ca.pem"), read("broker.pem"));
        let keep = SecurityInitArgs {
            keep_ca: true,
            ..args(dir.path())
        };
        security_init(&keep).unwrap();
        assert_eq!(read("ca.pem"), ca);
        assert_ne!(read("broker.pem"), broker);
        assert!(
            read("broker.pem").ends_with(&ca),
            "the chain ends with the CA"
        );
    }

    #[test]
    fn client_properties_log_in_as_a_private_admin_and_survive_keep_ca() {
        let dir = tempfile::tempdir().unwrap();
        security_init(&args(dir.path())).unwrap();
        let path = dir.path().join("client.properties");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let properties = super::super::args::properties_file(&path).unwrap();
        let security =
            super::super::client_security::ClientSecurity::from_properties(&properties).unwrap();
        assert!(security.tls.is_some());
        let login = security.sasl.unwrap();
        assert_eq!(login.mechanism.name(), "SCRAM-SHA-512");
        assert_eq!(login.username, ADMIN_USER);
        assert_eq!(login.password.len(), 32);
        let before = std::fs::read_to_string(&path).unwrap();
        let keep = SecurityInitArgs {
            keep_ca: true,
            ..args(dir.path())
        };
        security_init(&keep).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }
}
