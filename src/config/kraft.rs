//! KRaft's shape: `process.roles`, `node.id`, `controller.quorum.voters`,
//! `controller.quorum.bootstrap.servers` and `controller.listener.names`,
//! checked as Kafka's `KafkaConfig` checks them, with errors naming the key
//! and its value.
//!
//! A process with the `controller` role is a voter of the metadata quorum
//! (its raft member id is `node.id`); it serves the quorum's RPCs and the
//! coordinator API brokers use on its controller listener. A process with
//! the `broker` role reaches the quorum through the voters' (or the
//! bootstrap servers') controller addresses.
//!
//! The controller listener is PLAINTEXT or SSL, by
//! `listener.security.protocol.map` as in Kafka. With SSL its keys are the
//! listener's (`listener.name.controller.ssl.*`, else `ssl.*`): the server
//! side for a controller, and the client side every node dials the
//! controllers with (raft between voters, a broker's calls), as Kafka's
//! controller and broker clients take the first controller listener's
//! keys. SASL on the controller listener is refused.

use std::collections::BTreeMap;

use super::ConfigError;
use super::listeners::split_host_port;
use super::raw::{RawConfig, RawValue, Source};
use super::tls::{TlsSettings, resolve_client_tls, resolve_tls};
use super::zookeeper_tls::CoordinatorTlsSettings;
use crate::security::{KafkaPrincipal, SecurityProtocol};

/// Which of Kafka's roles this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

/// The controller listener this process serves (the `controller` role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerListener {
    /// Its name in `listeners`, e.g. `CONTROLLER`.
    pub name: String,
    /// `host:port` to bind.
    pub bind: String,
    /// `host:port` the other nodes dial: this node's entry in
    /// `controller.quorum.voters`, else the listener's own address.
    pub address: String,
    /// The listener's `ssl.*` settings when it is SSL.
    pub tls: Option<TlsSettings>,
}

/// The validated KRaft settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KraftSettings {
    pub roles: ProcessRoles,
    pub node_id: i32,
    /// `controller.quorum.voters`: `host:port` by node id. Empty in a
    /// dynamic quorum, whose voters are added with `add-controller`.
    pub voters: BTreeMap<u64, String>,
    /// `controller.quorum.bootstrap.servers`.
    pub bootstrap_servers: Vec<String>,
    /// `Some` with the `controller` role.
    pub controller: Option<ControllerListener>,
    /// Every name in `controller.listener.names`, upper-cased.
    pub controller_listener_names: Vec<String>,
    /// `gregor.quorum.snapshot.after.entries`, as for `gregor coordinator`.
    pub snapshot_after_entries: u64,
    /// The security protocol of the first controller listener name, which
    /// brokers and controllers dial (PLAINTEXT or SSL).
    pub controller_protocol: SecurityProtocol,
    /// With SSL: how this node dials the controllers (its raft RPCs to the
    /// other voters, its broker's calls).
    pub controller_client_tls: Option<CoordinatorTlsSettings>,
    /// `super.users`: on an SSL controller listener without
    /// `authorizer.class.name`, the principals that may write through it
    /// (as on `gregor coordinator`'s TLS port).
    pub super_users: Vec<KafkaPrincipal>,
}

impl KraftSettings {
    /// The controllers a broker or tool asks, comma separated: the static
    /// voters, else the bootstrap servers.
    pub fn quorum_addresses(&self) -> String {
        if self.voters.is_empty() {
            self.bootstrap_servers.join(",")
        } else {
            self.voters.values().cloned().collect::<Vec<_>>().join(",")
        }
    }
}

fn err(key: &str, rv: &RawValue, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid(key, &rv.value, &rv.from, reason)
}

fn list(rv: &RawValue) -> Vec<String> {
    rv.value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `controller.quorum.voters`: `id@host:port,...`.
pub fn parse_voters(rv: &RawValue) -> Result<BTreeMap<u64, String>, ConfigError> {
    let key = "controller.quorum.voters";
    let mut voters = BTreeMap::new();
    for entry in list(rv) {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| err(key, rv, format!("expected id@host:port, got {entry:?}")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| err(key, rv, format!("the id of {entry:?} is not a node id")))?;
        let (host, port) = split_host_port(address.trim()).map_err(|m| err(key, rv, m))?;
        if host.is_empty() || port == 0 {
            return Err(err(key, rv, format!("{entry:?} needs a host and a port")));
        }
        if voters.insert(id, address.trim().to_owned()).is_some() {
            return Err(err(key, rv, format!("node id {id} appears twice")));
        }
    }
    Ok(voters)
}

fn parse_roles(rv: &RawValue) -> Result<ProcessRoles, ConfigError> {
    let mut roles = ProcessRoles {
        broker: false,
        controller: false,
    };
    for role in list(rv) {
        let seen = match role.to_ascii_lowercase().as_str() {
            "broker" => std::mem::replace(&mut roles.broker, true),
            "controller" => std::mem::replace(&mut roles.controller, true),
            _ => {
                return Err(err(
                    "process.roles",
                    rv,
                    format!(
                        "unknown process role '{role}' (only 'broker' and 'controller' are allowed roles)"
                    ),
                ));
            }
        };
        if seen {
            return Err(err(
                "process.roles",
                rv,
                "duplicate role names found in process.roles",
            ));
        }
    }
    Ok(roles)
}

/// The listener names in `listeners` (upper-cased), without resolving them.
fn listener_names(rv: &RawValue) -> Vec<(String, String)> {
    list(rv)
        .into_iter()
        .filter_map(|item| {
            item.split_once("://")
                .map(|(name, address)| (name.to_ascii_uppercase(), address.to_owned()))
        })
        .collect()
}

/// Kafka maps controller listeners to PLAINTEXT when
/// `listener.security.protocol.map` is left at its default; so does this,
/// by adding them to the raw map before the listeners are resolved.
pub fn default_controller_protocols(raw: &mut RawConfig) {
    let Some(names) = raw.explicit("controller.listener.names").map(list) else {
        return;
    };
    let Some(map) = raw.get_or_default("listener.security.protocol.map") else {
        return;
    };
    if map.from != Source::Default {
        return;
    }
    let mut value = map.value.clone();
    for name in names {
        let name = name.to_ascii_uppercase();
        let mapped = value
            .split(',')
            .any(|m| m.split(':').next().is_some_and(|n| n.trim() == name));
        if !mapped {
            value.push_str(&format!(",{name}:PLAINTEXT"));
        }
    }
    raw.set("listener.security.protocol.map", value, Source::Default);
}

/// The KRaft settings `raw` configures: `None` without `process.roles`.
pub fn resolve(raw: &RawConfig) -> Result<Option<KraftSettings>, ConfigError> {
    let Some(roles_rv) = raw
        .explicit("process.roles")
        .filter(|rv| !list(rv).is_empty())
    else {
        return Ok(None);
    };
    let roles = parse_roles(roles_rv)?;
    if let Some(zk) = raw
        .explicit("zookeeper.connect")
        .or(raw.explicit("coordinator.connect"))
    {
        return Err(err(
            "zookeeper.connect",
            zk,
            "must not be set with process.roles: a KRaft node finds the quorum through controller.quorum.voters or controller.quorum.bootstrap.servers",
        ));
    }
    let node_id = match raw.explicit("node.id") {
        Some(rv) => rv
            .value
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| err("node.id", rv, "expected a non-negative integer"))?,
        None => {
            return Err(ConfigError::invalid(
                "node.id",
                "",
                &roles_rv.from,
                "missing required configuration \"node.id\" which has no default value (required with process.roles)",
            ));
        }
    };
    let voters_rv = raw.explicit("controller.quorum.voters");
    let voters = voters_rv.map(parse_voters).transpose()?.unwrap_or_default();
    let bootstrap_rv = raw.explicit("controller.quorum.bootstrap.servers");
    let bootstrap_servers = bootstrap_rv.map(list).unwrap_or_default();
    for server in &bootstrap_servers {
        if let (Some(rv), Err(reason)) = (bootstrap_rv, split_host_port(server)) {
            return Err(err("controller.quorum.bootstrap.servers", rv, reason));
        }
    }
    if voters.is_empty() && bootstrap_servers.is_empty() {
        return Err(err(
            "process.roles",
            roles_rv,
            "either controller.quorum.bootstrap.servers must contain the set of bootstrap controllers or controller.quorum.voters must contain a parseable set of voters",
        ));
    }
    let names_rv = raw
        .explicit("controller.listener.names")
        .cloned()
        .unwrap_or(RawValue {
            value: String::new(),
            from: Source::Default,
        });
    let controller_listener_names: Vec<String> = list(&names_rv)
        .into_iter()
        .map(|n| n.to_ascii_uppercase())
        .collect();
    if controller_listener_names.is_empty() {
        return Err(err(
            "controller.listener.names",
            &names_rv,
            "must contain at least one listener name when process.roles is set",
        ));
    }
    let listeners_rv = raw.get_or_default("listeners").unwrap_or(RawValue {
        value: String::new(),
        from: Source::Default,
    });
    let listeners = listener_names(&listeners_rv);
    let is_controller = |name: &str| controller_listener_names.iter().any(|c| c == name);
    let own_controller = listeners.iter().find(|(name, _)| is_controller(name));
    let node_key = u64::try_from(node_id).unwrap_or(0);
    let node_in_voters = voters.contains_key(&node_key);
    if let Some(voters_rv) = voters_rv {
        if roles.controller && !node_in_voters {
            return Err(err(
                "controller.quorum.voters",
                voters_rv,
                format!(
                    "if process.roles contains the 'controller' role, the node id {node_id} must be included in the set of voters"
                ),
            ));
        }
        if !roles.controller && node_in_voters {
            return Err(err(
                "controller.quorum.voters",
                voters_rv,
                format!(
                    "if process.roles contains just the 'broker' role, the node id {node_id} must not be included in the set of voters"
                ),
            ));
        }
    }
    if roles.controller && own_controller.is_none() {
        return Err(err(
            "listeners",
            &listeners_rv,
            format!(
                "controller.listener.names ({}) must contain at least one value appearing in the 'listeners' configuration when running the KRaft controller role",
                names_rv.value
            ),
        ));
    }
    if !roles.controller && own_controller.is_some() {
        return Err(err(
            "listeners",
            &listeners_rv,
            "controller.listener.names must not contain a value appearing in the 'listeners' configuration when running KRaft with just the broker role",
        ));
    }
    if !roles.broker && listeners.iter().any(|(name, _)| !is_controller(name)) {
        return Err(err(
            "listeners",
            &listeners_rv,
            format!(
                "the listeners config must only contain KRaft controller listeners from controller.listener.names ({}) when process.roles=controller",
                names_rv.value
            ),
        ));
    }
    if roles.broker {
        check_broker_listeners(raw, &is_controller)?;
    }
    let protocols = ControllerProtocols::resolve(raw, &controller_listener_names)?;
    let first_name = &controller_listener_names[0];
    let dialled_protocol = controller_protocol(&protocols, first_name)?;
    let controller_client_tls = dialled_protocol
        .uses_tls()
        .then(|| resolve_client_tls(raw, first_name))
        .transpose()?;
    let controller = match own_controller {
        Some((name, address)) if roles.controller => {
            let (host, port) =
                split_host_port(address).map_err(|m| err("listeners", &listeners_rv, m))?;
            let bind = match host.as_str() {
                "" | "0.0.0.0" => format!("0.0.0.0:{port}"),
                h if h.contains(':') => format!("[{h}]:{port}"),
                h => format!("{h}:{port}"),
            };
            // A controller alone may advertise its controller listener
            // (Kafka 3.9+, for dynamic quorums); that is what others dial.
            let advertised = raw
                .explicit("advertised.listeners")
                .map(listener_names)
                .unwrap_or_default()
                .into_iter()
                .find(|(advertised, _)| advertised == name)
                .map(|(_, address)| address);
            let advertised = match advertised {
                Some(address) => address,
                None if matches!(host.as_str(), "" | "0.0.0.0" | "::") => {
                    format!("{}:{port}", super::default_advertised_host())
                }
                None => bind.clone(),
            };
            let protocol = controller_protocol(&protocols, name)?;
            Some(ControllerListener {
                name: name.clone(),
                bind,
                address: voters.get(&node_key).cloned().unwrap_or(advertised),
                tls: protocol
                    .uses_tls()
                    .then(|| resolve_tls(raw, name))
                    .transpose()?,
            })
        }
        _ => None,
    };
    let snapshot_after_entries = match raw.explicit("gregor.quorum.snapshot.after.entries") {
        Some(rv) => rv
            .value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                err(
                    "gregor.quorum.snapshot.after.entries",
                    rv,
                    "expected a positive integer",
                )
            })?,
        None => 5000,
    };
    Ok(Some(KraftSettings {
        roles,
        node_id,
        voters,
        bootstrap_servers,
        controller,
        controller_listener_names,
        snapshot_after_entries,
        controller_protocol: dialled_protocol,
        controller_client_tls,
        super_users: super_users(raw)?,
    }))
}

/// The security protocol of each controller listener name, from
/// `listener.security.protocol.map` as Kafka reads it (controller names
/// default to PLAINTEXT only when the map is left at its default).
struct ControllerProtocols {
    map: RawValue,
    by_name: BTreeMap<String, String>,
}

impl ControllerProtocols {
    fn resolve(raw: &RawConfig, names: &[String]) -> Result<Self, ConfigError> {
        let mut effective = raw.clone();
        default_controller_protocols(&mut effective);
        let map = effective
            .get_or_default("listener.security.protocol.map")
            .unwrap_or(RawValue {
                value: String::new(),
                from: Source::Default,
            });
        let by_name: BTreeMap<String, String> = list(&map)
            .iter()
            .filter_map(|entry| entry.split_once(':'))
            .map(|(name, protocol)| {
                (
                    name.trim().to_ascii_uppercase(),
                    protocol.trim().to_ascii_uppercase(),
                )
            })
            .collect();
        let protocols = ControllerProtocols { map, by_name };
        for name in names {
            controller_protocol(&protocols, name)?;
        }
        Ok(protocols)
    }
}

/// One controller listener's protocol: PLAINTEXT or SSL; SASL is refused.
fn controller_protocol(
    protocols: &ControllerProtocols,
    name: &str,
) -> Result<SecurityProtocol, ConfigError> {
    let key = "listener.security.protocol.map";
    let Some(text) = protocols.by_name.get(name) else {
        return Err(err(
            key,
            &protocols.map,
            format!(
                "controller listener with name {name} defined in controller.listener.names not found in listener.security.protocol.map (an explicit security mapping for each controller listener is required if listener.security.protocol.map is non-empty, or if there are security protocols other than PLAINTEXT in use)"
            ),
        ));
    };
    match SecurityProtocol::parse(text) {
        Some(protocol) if !protocol.uses_sasl() => Ok(protocol),
        Some(protocol) => Err(err(
            key,
            &protocols.map,
            format!(
                "the controller listener {name} is {protocol}: gregor's controllers authenticate nodes by mutual TLS, not SASL; use {name}:SSL with ssl.client.auth=required"
            ),
        )),
        None => Err(err(
            key,
            &protocols.map,
            format!("listener {name} has unknown security protocol {text}"),
        )),
    }
}

/// `super.users`, `;`-separated `Type:name` principals.
fn super_users(raw: &RawConfig) -> Result<Vec<KafkaPrincipal>, ConfigError> {
    let Some(rv) = raw.get("super.users") else {
        return Ok(Vec::new());
    };
    rv.value
        .split(';')
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(|text| {
            KafkaPrincipal::parse(text).ok_or_else(|| {
                err(
                    "super.users",
                    rv,
                    format!("`{text}` is not a principal: expected Type:name, such as User:admin"),
                )
            })
        })
        .collect()
}

/// A broker advertises no controller listener, and its inter-broker
/// listener is one of its own.
fn check_broker_listeners(
    raw: &RawConfig,
    is_controller: &dyn Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    if let Some(rv) = raw.explicit("advertised.listeners")
        && listener_names(rv)
            .iter()
            .any(|(name, _)| is_controller(name))
    {
        return Err(err(
            "advertised.listeners",
            rv,
            "must not contain KRaft controller listeners from controller.listener.names when process.roles contains the broker role: clients send requests to brokers, not to controllers",
        ));
    }
    if let Some(rv) = raw.explicit("inter.broker.listener.name") {
        let name = rv.value.trim().to_ascii_uppercase();
        let listeners = raw
            .get_or_default("listeners")
            .map(|l| listener_names(&l))
            .unwrap_or_default();
        let broker_listeners: Vec<&str> = listeners
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !is_controller(n))
            .collect();
        if !broker_listeners.contains(&name.as_str()) {
            return Err(err(
                "inter.broker.listener.name",
                rv,
                format!(
                    "must be a listener name defined in listeners and not a controller listener; the valid options are {}",
                    broker_listeners.join(",")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "kraft_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "kraft_tls_tests.rs"]
mod tls_tests;
