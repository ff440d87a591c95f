//! Listener and advertised-listener resolution.
//!
//! Kafka clients connect to whatever address the broker *advertises*, so
//! getting this right matters more than anything else in the config: a
//! broker in Docker binds 0.0.0.0 but must advertise a name clients can reach.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use super::ConfigError;
use super::raw::{RawConfig, RawValue, Source};
use super::tls::{TlsSettings, resolve_tls};
use crate::security::SecurityProtocol;

/// One validated listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Listener name, upper-cased as Kafka normalises it (PLAINTEXT, INTERNAL...).
    pub name: String,
    /// From `listener.security.protocol.map`.
    pub security_protocol: SecurityProtocol,
    /// `host:port` to bind; wildcard hosts become `0.0.0.0`, `[::]` is kept.
    pub bind: String,
    /// Host clients are told to connect to (IPv6 without brackets).
    pub advertised_host: String,
    pub advertised_port: u16,
    /// The `ssl.*` settings of an SSL or SASL_SSL listener.
    pub tls: Option<TlsSettings>,
}

/// `NAME://host:port` with the host stored without IPv6 brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    name: String,
    host: String,
    port: u16,
}

impl Endpoint {
    fn is_wildcard(&self) -> bool {
        matches!(self.host.as_str(), "" | "0.0.0.0" | "::")
    }
}

/// The machine's first non-loopback IPv4 address, used as the advertised
/// host for wildcard listeners. Connecting a UDP socket sends no packet; it
/// only asks the kernel which source address routing would pick.
pub fn default_advertised_host() -> String {
    let routed = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).and_then(|s| {
        s.connect("8.8.8.8:53")?;
        s.local_addr()
    });
    match routed.map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) if !ip.is_loopback() && !ip.is_unspecified() => ip.to_string(),
        _ => Ipv4Addr::LOCALHOST.to_string(),
    }
}

fn err(key: &str, rv: &RawValue, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid(key, &rv.value, &rv.from, reason)
}

/// Splits `host:port` (host may be `[v6]`, empty, or bare `::`).
pub(super) fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {s:?}"))?;
        let p = after
            .strip_prefix(':')
            .ok_or_else(|| format!("missing port in {s:?}"))?;
        (h, p)
    } else {
        s.rsplit_once(':')
            .ok_or_else(|| format!("missing port in {s:?}"))?
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("invalid port {port:?} in {s:?}"))?;
    Ok((host.to_string(), port))
}

/// Parses a comma-separated list of `NAME://host:port`.
fn parse_endpoints(key: &str, rv: &RawValue) -> Result<Vec<Endpoint>, ConfigError> {
    let mut out = Vec::new();
    for item in rv.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, addr) = item
            .split_once("://")
            .ok_or_else(|| err(key, rv, format!("expected NAME://host:port, got {item:?}")))?;
        if name.is_empty() {
            return Err(err(key, rv, format!("missing listener name in {item:?}")));
        }
        let (host, port) = split_host_port(addr).map_err(|m| err(key, rv, m))?;
        out.push(Endpoint {
            name: name.to_ascii_uppercase(),
            host,
            port,
        });
    }
    Ok(out)
}

fn parse_protocol_map(rv: &RawValue) -> Result<HashMap<String, String>, ConfigError> {
    let key = "listener.security.protocol.map";
    let mut map = HashMap::new();
    for item in rv.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, proto) = item
            .split_once(':')
            .ok_or_else(|| err(key, rv, format!("expected NAME:PROTOCOL, got {item:?}")))?;
        map.insert(
            name.trim().to_ascii_uppercase(),
            proto.trim().to_ascii_uppercase(),
        );
    }
    Ok(map)
}

/// `listeners`, or the legacy `host.name`/`port` pair when only those are set.
fn bind_endpoints(raw: &RawConfig) -> Result<(Vec<Endpoint>, RawValue), ConfigError> {
    let listeners = raw.get_or_default("listeners").unwrap_or(RawValue {
        value: String::new(),
        from: Source::Default,
    });
    let legacy = listeners.from == Source::Default
        && (raw.explicit("port").is_some() || raw.explicit("host.name").is_some());
    if legacy {
        let port = match raw.explicit("port") {
            Some(rv) => rv
                .value
                .trim()
                .parse::<u16>()
                .map_err(|_| err("port", rv, "expected a port number (0-65535)"))?,
            None => 9092,
        };
        let host = raw
            .explicit("host.name")
            .map(|h| h.value.trim().to_string())
            .unwrap_or_default();
        let ep = Endpoint {
            name: "PLAINTEXT".into(),
            host,
            port,
        };
        return Ok((vec![ep], listeners));
    }
    Ok((parse_endpoints("listeners", &listeners)?, listeners))
}

/// Explicit advertised endpoints, from `advertised.listeners` or the legacy
/// `advertised.host.name`/`advertised.port` (which apply to the first listener).
fn advertised_endpoints(
    raw: &RawConfig,
    first: &Endpoint,
) -> Result<Option<Vec<Endpoint>>, ConfigError> {
    if let Some(rv) = raw.get("advertised.listeners")
        && !rv.value.trim().is_empty()
    {
        let eps = parse_endpoints("advertised.listeners", rv)?;
        for ep in &eps {
            if matches!(ep.host.as_str(), "0.0.0.0" | "::") {
                let reason = format!(
                    "listener {} advertises the non-routable address {}; clients could not connect",
                    ep.name, ep.host
                );
                return Err(err("advertised.listeners", rv, reason));
            }
        }
        return Ok(Some(eps));
    }
    let host = raw.explicit("advertised.host.name");
    let port = raw.explicit("advertised.port");
    if host.is_none() && port.is_none() {
        return Ok(None);
    }
    let port = match port {
        Some(rv) => rv
            .value
            .trim()
            .parse::<u16>()
            .map_err(|_| err("advertised.port", rv, "expected a port number (0-65535)"))?,
        None => first.port,
    };
    let host = host.map_or_else(|| first.host.clone(), |h| h.value.trim().to_string());
    Ok(Some(vec![Endpoint {
        name: first.name.clone(),
        host,
        port,
    }]))
}

/// `kafka_host_url` as `(host, port)`; a `scheme://` prefix is tolerated.
fn parse_host_url(rv: &RawValue) -> Result<(String, u16), ConfigError> {
    let s = rv.value.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let (host, port) = split_host_port(s).map_err(|m| err("kafka_host_url", rv, m))?;
    if host.is_empty() || port == 0 {
        return Err(err("kafka_host_url", rv, "expected HOST:PORT"));
    }
    Ok((host, port))
}

fn bind_string(ep: &Endpoint) -> String {
    match ep.host.as_str() {
        "" | "0.0.0.0" => format!("0.0.0.0:{}", ep.port),
        h if h.contains(':') => format!("[{h}]:{}", ep.port),
        h => format!("{h}:{}", ep.port),
    }
}

/// Resolves listeners and what each advertises. `default_host` is consulted
/// only for wildcard listeners that nothing else covers.
pub(super) fn resolve_listeners(
    raw: &RawConfig,
    default_host: &dyn Fn() -> String,
) -> Result<Vec<ListenerSettings>, ConfigError> {
    let (binds, lrv) = bind_endpoints(raw)?;
    let Some(first) = binds.first() else {
        return Err(err("listeners", &lrv, "at least one listener is required"));
    };
    let mut names = HashSet::new();
    let mut ports = HashSet::new();
    for ep in &binds {
        if !names.insert(ep.name.as_str()) {
            return Err(err(
                "listeners",
                &lrv,
                format!("duplicate listener name {}", ep.name),
            ));
        }
        // Port 0 asks the OS for a free port, so several may share it.
        if ep.port != 0 && !ports.insert(ep.port) {
            return Err(err(
                "listeners",
                &lrv,
                format!("duplicate listener port {}", ep.port),
            ));
        }
    }

    let map_rv = raw
        .get_or_default("listener.security.protocol.map")
        .unwrap_or(RawValue {
            value: String::new(),
            from: Source::Default,
        });
    let protocols = parse_protocol_map(&map_rv)?;

    let advertised = advertised_endpoints(raw, first)?;
    let mut adv_by_name: HashMap<&str, &Endpoint> = HashMap::new();
    if let Some(eps) = &advertised {
        let arv = raw.get("advertised.listeners").unwrap_or(&lrv);
        for ep in eps {
            if !names.contains(ep.name.as_str()) {
                let reason = format!(
                    "advertised listener {} matches no entry in listeners",
                    ep.name
                );
                return Err(err("advertised.listeners", arv, reason));
            }
            if adv_by_name.insert(ep.name.as_str(), ep).is_some() {
                let reason = format!("duplicate advertised listener name {}", ep.name);
                return Err(err("advertised.listeners", arv, reason));
            }
        }
    }
    let host_url = raw.host_url().map(parse_host_url).transpose()?;

    let mut out = Vec::with_capacity(binds.len());
    for (i, ep) in binds.iter().enumerate() {
        let protocol = protocols.get(&ep.name).ok_or_else(|| {
            let reason = format!(
                "listener {} has no security protocol in listener.security.protocol.map",
                ep.name
            );
            err("listeners", &lrv, reason)
        })?;
        let Some(protocol) = SecurityProtocol::parse(protocol) else {
            let reason = format!(
                "listener {} has unknown security protocol {protocol}",
                ep.name
            );
            return Err(err("listener.security.protocol.map", &map_rv, reason));
        };
        let tls = protocol
            .uses_tls()
            .then(|| resolve_tls(raw, &ep.name))
            .transpose()?;
        // kafka_host_url stands in for advertised.listeners on the first
        // listener, which is how the tutorial's single-listener setup works.
        let use_host_url = i == 0 && (advertised.is_none() || ep.is_wildcard());
        let (advertised_host, advertised_port) =
            match (adv_by_name.get(ep.name.as_str()), &host_url) {
                (Some(a), _) if !a.host.is_empty() => (a.host.clone(), a.port),
                (Some(a), _) => (default_host(), a.port),
                (None, Some((h, p))) if use_host_url => (h.clone(), *p),
                (None, _) if ep.is_wildcard() => (default_host(), ep.port),
                (None, _) => (ep.host.clone(), ep.port),
            };
        out.push(ListenerSettings {
            name: ep.name.clone(),
            security_protocol: protocol,
            bind: bind_string(ep),
            advertised_host,
            advertised_port,
            tls,
        });
    }
    Ok(out)
}
