//! ZooKeeper's ensemble configuration, for a coordinator quorum:
//! `server.N=host:peerPort:electionPort[;[clientAddress:]clientPort]` lines
//! in `zookeeper.properties`, this member's `N` in `dataDir/myid`, and the
//! official zookeeper image's `ZOO_MY_ID` and `ZOO_SERVERS`
//! (`server.1=zk1:2888:3888;2181 server.2=...`, space separated).
//!
//! Raft traffic goes to `host:peerPort`; brokers and tools use
//! `host:clientPort`. `electionPort` is parsed and accepted but unused: raft
//! elects over the peer port.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cluster::raft::{Member, MemberId, RaftSettings};
use crate::config::{ConfigError, RawConfig, Source};

/// Where the `myid` file lives, in `dataDir`.
pub const MYID_FILE: &str = "myid";
/// The config key prefix of ensemble members.
pub const SERVER_PREFIX: &str = "server.";

/// One `server.N` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsembleServer {
    pub host: String,
    pub peer_port: u16,
    /// Accepted for ZooKeeper compatibility; raft does not use it.
    pub election_port: u16,
    /// `None`: the member's `clientPort` setting (ZooKeeper's older form).
    pub client_port: Option<u16>,
}

/// A coordinator quorum as this member sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsembleSettings {
    pub my_id: MemberId,
    pub servers: BTreeMap<MemberId, EnsembleServer>,
    /// `gregor.quorum.snapshot.after.entries`.
    pub snapshot_after_entries: u64,
}

impl EnsembleSettings {
    /// The raft settings; `client_port` fills in members whose line has no
    /// client port.
    pub fn raft_settings(&self, client_port: u16) -> RaftSettings {
        let voters = self
            .servers
            .iter()
            .map(|(id, server)| {
                let port = server.client_port.unwrap_or(client_port);
                let member = Member {
                    peer_address: format!("{}:{}", server.host, server.peer_port),
                    client_address: format!("{}:{port}", server.host),
                };
                (*id, member)
            })
            .collect();
        let mut settings = RaftSettings::new(self.my_id, voters);
        settings.snapshot_after_entries = self.snapshot_after_entries;
        settings
    }

    /// This member's own line.
    pub fn me(&self) -> &EnsembleServer {
        // `validate` refuses a `myid` without its line.
        &self.servers[&self.my_id]
    }
}

/// `ZOO_SERVERS` as `server.N` entries of a raw config.
pub fn zoo_servers(value: &str, variable: &str) -> RawConfig {
    let mut raw = RawConfig::new();
    for entry in value.split_whitespace() {
        let (key, server) = entry.split_once('=').unwrap_or((entry, ""));
        raw.set(key, server.to_owned(), Source::Env(variable.to_owned()));
    }
    raw
}

/// Parses one `server.N` value.
fn parse_server(value: &str) -> Result<EnsembleServer, String> {
    let (addresses, client) = match value.split_once(';') {
        Some((addresses, client)) => (addresses, Some(client.trim())),
        None => (value, None),
    };
    let parts: Vec<&str> = addresses.trim().split(':').collect();
    // host:peer:election, optionally with ZooKeeper's :participant/:observer.
    let (host, peer, election) = match parts.as_slice() {
        [host, peer, election] | [host, peer, election, "participant"] => (host, peer, election),
        [_, _, _, "observer"] => return Err("observers are not supported".to_owned()),
        _ => return Err("expected host:peerPort:electionPort[;clientPort]".to_owned()),
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    let port = |what: &str, text: &str| -> Result<u16, String> {
        match text.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(format!("{what} '{text}' is not a port")),
        }
    };
    let client_port = match client {
        None | Some("") => None,
        // `[clientAddress:]clientPort`: the address is where to bind, which
        // clientPortAddress says here.
        Some(client) => Some(port(
            "clientPort",
            client.rsplit(':').next().unwrap_or(client),
        )?),
    };
    Ok(EnsembleServer {
        host: (*host).to_owned(),
        peer_port: port("peerPort", peer)?,
        election_port: port("electionPort", election)?,
        client_port,
    })
}

/// The ensemble `raw` configures, if any. `myid` comes from `dataDir/myid`,
/// else from `ZOO_MY_ID` (the raw key `myid`); both set and different is an
/// error.
pub fn validate(
    raw: &RawConfig,
    data_dir: &Path,
    snapshot_after_entries: u64,
) -> Result<Option<EnsembleSettings>, ConfigError> {
    let mut servers = BTreeMap::new();
    for (key, value) in raw.iter() {
        let Some(id) = key.strip_prefix(SERVER_PREFIX) else {
            continue;
        };
        let bad = |reason: String| ConfigError::invalid(key, &value.value, &value.from, reason);
        let id: MemberId = id
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| bad("the N of server.N must be a positive integer".to_owned()))?;
        servers.insert(id, parse_server(&value.value).map_err(bad)?);
    }
    if servers.is_empty() {
        return Ok(None);
    }
    let my_id = my_id(raw, data_dir)?;
    if !servers.contains_key(&my_id) {
        return Err(ConfigError::invalid(
            MYID_FILE,
            &my_id.to_string(),
            &Source::Default,
            format!(
                "no server.{my_id} line; the ensemble is {:?}",
                servers.keys().collect::<Vec<_>>()
            ),
        ));
    }
    Ok(Some(EnsembleSettings {
        my_id,
        servers,
        snapshot_after_entries,
    }))
}

fn my_id(raw: &RawConfig, data_dir: &Path) -> Result<MemberId, ConfigError> {
    let path = data_dir.join(MYID_FILE);
    let from_file = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(ConfigError::invalid(
                MYID_FILE,
                "",
                &Source::File { path, line: None },
                format!("cannot read: {e}"),
            ));
        }
    };
    let from_env = raw
        .get(MYID_FILE)
        .map(|v| (v.value.trim().to_owned(), v.from.clone()));
    let (text, source) = match (from_file, from_env) {
        (Some(file), Some((env, from))) if file != env => {
            return Err(ConfigError::invalid(
                MYID_FILE,
                &env,
                &from,
                format!("{} says {file}", path.display()),
            ));
        }
        (Some(file), _) => (file, Source::File { path, line: None }),
        (None, Some((env, from))) => (env, from),
        (None, None) => {
            return Err(ConfigError::invalid(
                MYID_FILE,
                "",
                &Source::File { path, line: None },
                "server.N lines need this member's N in dataDir/myid or ZOO_MY_ID",
            ));
        }
    };
    text.parse::<MemberId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ConfigError::invalid(MYID_FILE, &text, &source, "expected a positive integer")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lines_in_zookeepers_forms() {
        let server = parse_server("zk1:2888:3888;2181").unwrap();
        assert_eq!(server.host, "zk1");
        assert_eq!(server.peer_port, 2888);
        assert_eq!(server.election_port, 3888);
        assert_eq!(server.client_port, Some(2181));
        let server = parse_server("zk2:2888:3888:participant;0.0.0.0:2182").unwrap();
        assert_eq!(server.client_port, Some(2182));
        assert_eq!(parse_server("zk3:2888:3888").unwrap().client_port, None);
        assert!(parse_server("zk3:2888").is_err());
        assert!(parse_server("zk3:2888:3888:observer").is_err());
        assert!(parse_server("zk3:x:3888").is_err());
    }

    #[test]
    fn myid_file_or_zoo_my_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = zoo_servers("server.1=a:1:2;3 server.2=b:4:5;6", "ZOO_SERVERS");
        assert!(validate(&raw, dir.path(), 10).is_err(), "no myid anywhere");
        raw.set(
            MYID_FILE,
            "2".to_owned(),
            Source::Env("ZOO_MY_ID".to_owned()),
        );
        let ensemble = validate(&raw, dir.path(), 10).unwrap().unwrap();
        assert_eq!(ensemble.my_id, 2);
        assert_eq!(ensemble.me().host, "b");
        std::fs::write(dir.path().join(MYID_FILE), "1\n").unwrap();
        assert!(
            validate(&raw, dir.path(), 10).is_err(),
            "file and env disagree"
        );
        let settings = ensemble.raft_settings(2181);
        assert_eq!(settings.voters[&1].peer_address, "a:1");
        assert_eq!(settings.voters[&1].client_address, "a:3");
    }
}
