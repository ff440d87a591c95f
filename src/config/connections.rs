//! Connection limits and deadlines: how many connections the broker holds,
//! from whom, for how long, and how many request bytes it buffers at once.
//!
//! Kafka's keys with Kafka's meaning, except for the defaults: Kafka leaves
//! connections and queued request bytes unbounded, which lets one host
//! exhaust the broker's file descriptors or memory. Here the connection
//! defaults follow from the process's open-file limit (`RLIMIT_NOFILE`), so
//! that the broker runs out of connection slots before it runs out of file
//! descriptors for its own logs.

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use super::ConfigError;
use super::raw::{RawConfig, RawValue};
use super::settings::{Field, to_u64};

/// Validated connection limits and deadlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `max.connections`: connections over all listeners. At the limit the
    /// broker stops accepting until one closes (new ones wait in the
    /// listen backlog), as Kafka does.
    pub max_connections: usize,
    /// `max.connections.per.ip`: a new connection over it is closed right
    /// after it is accepted. 0 is allowed only with overrides.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`, host names resolved.
    pub per_ip_overrides: BTreeMap<IpAddr, usize>,
    /// `connections.max.idle.ms`: a connection with no request in progress
    /// and no bytes read or written for this long is closed. `None` never.
    pub idle_timeout: Option<Duration>,
    /// `gregor.request.receive.timeout.ms`: once the first byte of a request
    /// arrived, the whole request must arrive within this, or the
    /// connection is closed.
    pub request_receive_timeout: Duration,
    /// `queued.max.request.bytes`: request bytes held broker-wide, from the
    /// moment a frame's size is read until its response is ready. `None` is
    /// unbounded (Kafka's -1).
    pub queued_max_request_bytes: Option<usize>,
}

impl ConnectionSettings {
    /// The limit for connections from `ip`.
    pub fn limit_for(&self, ip: IpAddr) -> usize {
        self.per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(self.max_connections_per_ip)
    }
}

/// The default `max.connections` and `max.connections.per.ip` for a process
/// allowed `open_files` descriptors: three quarters of them for client
/// connections (the rest for segments, indexes, listeners and the admin
/// and coordinator sockets), and half of those for any one host, so that
/// one host cannot take every slot.
pub fn default_connection_limits(open_files: u64) -> (usize, usize) {
    let max = usize::try_from(open_files / 4 * 3)
        .unwrap_or(usize::MAX)
        .max(2);
    (max, max / 2)
}

/// The soft `RLIMIT_NOFILE` of this process; `u64::MAX` when unlimited.
pub fn open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives on our
    // stack for the duration of the call.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if status != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    limit.rlim_cur
}

const I32_MAX: i64 = i32::MAX as i64;

impl RawConfig {
    /// Connection settings; `open_files` is the descriptor limit the
    /// defaults are derived from.
    pub(super) fn connection_settings(
        &self,
        open_files: u64,
        socket_request_max_bytes: usize,
    ) -> Result<ConnectionSettings, ConfigError> {
        let (default_max, default_per_ip) = default_connection_limits(open_files);
        let count = |key: &str, min: i64, default: usize| -> Result<usize, ConfigError> {
            match self.get(key) {
                Some(rv) => Ok(usize::try_from(Field::new(key, rv).int_in(min, I32_MAX)?)
                    .unwrap_or(usize::MAX)),
                None => Ok(default),
            }
        };
        let max_connections = count("max.connections", 1, default_max)?;
        let max_connections_per_ip = count("max.connections.per.ip", 0, default_per_ip)?;
        let per_ip_overrides = match self.get("max.connections.per.ip.overrides") {
            Some(rv) => parse_overrides(&Field::new("max.connections.per.ip.overrides", rv))?,
            None => BTreeMap::new(),
        };
        if let Some(rv) = self.get("max.connections.per.ip")
            && max_connections_per_ip == 0
            && per_ip_overrides.is_empty()
        {
            return Err(Field::new("max.connections.per.ip", rv)
                .err("may be 0 only when max.connections.per.ip.overrides is set"));
        }
        let idle = self.field_or_default("connections.max.idle.ms")?;
        let idle_timeout =
            Field::new("connections.max.idle.ms", &idle).time_or_unlimited(1, i64::MAX)?;
        let receive = self.field_or_default("gregor.request.receive.timeout.ms")?;
        let receive_ms =
            Field::new("gregor.request.receive.timeout.ms", &receive).int_in(1, i64::MAX)?;
        Ok(ConnectionSettings {
            max_connections,
            max_connections_per_ip,
            per_ip_overrides,
            idle_timeout,
            request_receive_timeout: Duration::from_millis(to_u64(receive_ms)),
            queued_max_request_bytes: self.queued_max_request_bytes(socket_request_max_bytes)?,
        })
    }

    /// `queued.max.request.bytes`, defaulting to 100 MiB or the largest
    /// frame, whichever is more. A budget below `socket.request.max.bytes`
    /// is refused: a frame of the largest size could never be read.
    fn queued_max_request_bytes(&self, frame_limit: usize) -> Result<Option<usize>, ConfigError> {
        const DEFAULT: usize = 100 * 1024 * 1024;
        let Some(rv) = self.get("queued.max.request.bytes") else {
            return Ok(Some(DEFAULT.max(frame_limit)));
        };
        let field = Field::new("queued.max.request.bytes", rv);
        match field.int_in(-1, I32_MAX)? {
            -1 => Ok(None),
            n => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n < frame_limit {
                    return Err(field.err(format!(
                        "must be -1 or at least socket.request.max.bytes ({frame_limit})"
                    )));
                }
                Ok(Some(n))
            }
        }
    }

    pub(super) fn field_or_default(&self, key: &str) -> Result<RawValue, ConfigError> {
        self.get_or_default(key)
            .ok_or_else(|| ConfigError::Invalid {
                key: key.to_string(),
                value: String::new(),
                from: super::Source::Default,
                reason: "missing value".into(),
            })
    }
}

/// Kafka's `host:count,host:count`; the count follows the last `:` so IPv6
/// addresses work, with or without brackets. Host names are resolved now,
/// as Kafka does, and every address they resolve to gets the count.
fn parse_overrides(field: &Field<'_>) -> Result<BTreeMap<IpAddr, usize>, ConfigError> {
    let mut overrides = BTreeMap::new();
    for entry in field
        .value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let Some((host, count)) = entry.rsplit_once(':') else {
            return Err(field.err(format!("entry {entry:?} is not host:count")));
        };
        let count: usize = count
            .trim()
            .parse()
            .map_err(|_| field.err(format!("count in {entry:?} is not a non-negative integer")))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|e| field.err(format!("cannot resolve {host:?}: {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        for ip in addresses {
            overrides.insert(ip, count);
        }
    }
    Ok(overrides)
}
