//! Broker-wide limits shared by every listener and connection: connection
//! slots (`max.connections`, `max.connections.per.ip`) and the budget of
//! request bytes in flight (`queued.max.request.bytes`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ConnectionSettings;

/// Counts connections broker-wide and per client address.
#[derive(Debug)]
pub struct ConnectionLimits {
    settings: ConnectionSettings,
    slots: Arc<Semaphore>,
    /// Open connections by client address; an address leaves the map when
    /// its last connection closes. Never held across an await.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection over its address's limit; closed right after accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{ip} already has {limit} connections (max.connections.per.ip)")]
pub struct PerIpLimitReached {
    pub ip: IpAddr,
    pub limit: usize,
}

/// One admitted connection's place in the counts, given back on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    _slot: OwnedSemaphorePermit,
}

impl ConnectionLimits {
    pub fn new(settings: &ConnectionSettings) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            slots: Arc::new(Semaphore::new(
                settings.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            settings: settings.clone(),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Waits until the broker is under `max.connections`. Acceptors call it
    /// before accepting, so at the limit new connections wait in the listen
    /// backlog, as in Kafka.
    pub async fn free_slot(&self) -> OwnedSemaphorePermit {
        match Arc::clone(&self.slots).acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => unreachable!("connection slots are never closed"),
        }
    }

    /// Counts a connection from `ip` into `slot`, or refuses it when `ip`
    /// is at its limit (the slot is then free again).
    pub fn admit(
        self: &Arc<Self>,
        slot: OwnedSemaphorePermit,
        ip: IpAddr,
    ) -> Result<ConnectionSlot, PerIpLimitReached> {
        // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let limit = self.settings.limit_for(ip);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                per_ip.remove(&ip);
            }
            return Err(PerIpLimitReached { ip, limit });
        }
        *count += 1;
        Ok(ConnectionSlot {
            limits: Arc::clone(self),
            ip,
            _slot: slot,
        })
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        let per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        per_ip.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Request bytes the broker holds at once, over all connections. A frame
/// takes its declared size from the budget as soon as its size prefix is
/// read (so a frame that started can always finish, and partial frames
/// cannot deadlock each other) and gives it back when its response is
/// ready. A connection that finds the budget spent stops reading and
/// waits; TCP backpressure does the rest.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    bytes: Arc<Semaphore>,
}

impl RequestBudget {
    /// `None` is unbounded.
    pub fn new(bytes: Option<usize>) -> Self {
        let permits = bytes.unwrap_or(Semaphore::MAX_PERMITS);
        RequestBudget {
            bytes: Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Waits for `bytes` of budget. Frames are at most
    /// `socket.request.max.bytes` (an `i32`), which config validation keeps
    /// within the budget, so this always completes once others finish.
    pub async fn reserve(&self, bytes: usize) -> OwnedSemaphorePermit {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        match Arc::clone(&self.bytes).acquire_many_owned(bytes).await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the request budget is never closed"),
        }
    }

    /// Budget not currently reserved.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    fn settings(max: usize, per_ip: usize, overrides: &[(&str, usize)]) -> ConnectionSettings {
        ConnectionSettings {
            max_connections: max,
            max_connections_per_ip: per_ip,
            per_ip_overrides: overrides
                .iter()
                .map(|(ip, n)| (ip.parse().unwrap(), *n))
                .collect::<BTreeMap<_, _>>(),
            idle_timeout: None,
            request_receive_timeout: Duration::from_secs(30),
            queued_max_request_bytes: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn per_ip_limit_refuses_the_connection_over_it_and_frees_on_close() {
        let limits = ConnectionLimits::new(&settings(10, 2, &[("10.0.0.9", 3)]));
        let a = limits
            .admit(limits.free_slot().await, ip("10.0.0.1"))
            .unwrap();
        let _b = limits
            .admit(limits.free_slot().await, ip("10.0.0.1"))
            .unwrap();
        let refused = limits.admit(limits.free_slot().await, ip("10.0.0.1"));
        assert_eq!(
            refused.unwrap_err(),
            PerIpLimitReached {
                ip: ip("10.0.0.1"),
                limit: 2
            }
        );
        // The refused connection's slot is free again.
        assert_eq!(limits.slots.available_permits(), 8);
        drop(a);
        assert_eq!(limits.connections_from(ip("10.0.0.1")), 1);
        assert!(
            limits
                .admit(limits.free_slot().await, ip("10.0.0.1"))
                .is_ok()
        );
        // The override raises one address's limit; IPv4-mapped counts as IPv4.
        let mapped = ip("::ffff:10.0.0.9");
        let held: Vec<_> = (0..3)
            .map(|_| limits.admit(limits.slots.clone().try_acquire_owned().unwrap(), mapped))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(limits.connections_from(ip("10.0.0.9")), 3);
        assert!(limits.admit(limits.free_slot().await, mapped).is_err());
        drop(held);
        assert_eq!(limits.connections_from(ip("10.0.0.9")), 0);
        assert!(limits.per_ip.lock().unwrap().len() <= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn max_connections_makes_the_acceptor_wait_for_a_close() {
        let limits = ConnectionLimits::new(&settings(1, 5, &[]));
        let first = limits
            .admit(limits.free_slot().await, ip("10.0.0.1"))
            .unwrap();
        let waiting = tokio::time::timeout(Duration::from_secs(60), limits.free_slot()).await;
        assert!(waiting.is_err(), "a second slot while the first is held");
        drop(first);
        let _slot = tokio::time::timeout(Duration::from_secs(1), limits.free_slot())
            .await
            .expect("the slot is free after the close");
    }

    #[tokio::test(start_paused = true)]
    async fn budget_makes_the_next_frame_wait_until_a_response_is_ready() {
        let budget = RequestBudget::new(Some(100));
        let big = budget.reserve(80).await;
        assert!(
            tokio::time::timeout(Duration::from_secs(60), budget.reserve(30))
                .await
                .is_err()
        );
        drop(big);
        let _next = budget.reserve(30).await;
        assert_eq!(budget.available(), 70);
    }
}
