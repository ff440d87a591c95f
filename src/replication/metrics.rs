//! Replication's Prometheus lines for `/metrics`: Kafka's
//! `UnderReplicatedPartitions`, `IsrShrinksPerSec` / `IsrExpandsPerSec`
//! (as counters), replica fetches refused for want of ClusterAction, each
//! hosted partition's high watermark, and replica lag: on a leader, how far
//! each follower's log is behind; on a follower, how far its log is behind
//! the leader's high watermark (Kafka's `ConsumerLag`) and the most of any
//! partition (`MaxLag`).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::broker::partition::Partition;
use crate::cluster::MetadataImage;

/// ISR changes this broker's leaders got through, by direction.
#[derive(Debug, Default)]
pub struct IsrChanges {
    pub shrinks: AtomicU64,
    pub expands: AtomicU64,
    /// Replica fetches refused with CLUSTER_AUTHORIZATION_FAILED.
    pub refused_replica_fetches: AtomicU64,
    /// When a refusal was last logged (ms since the epoch), so a follower
    /// retrying every second is logged once a minute.
    refusal_logged_ms: AtomicU64,
}

/// How often a refused replica fetch is logged at most.
const REFUSAL_LOG_INTERVAL_MS: u64 = 60_000;

impl IsrChanges {
    /// Counts an accepted change from `before` members to `after`.
    pub fn note(&self, before: usize, after: usize) {
        if after < before {
            self.shrinks.fetch_add(1, Relaxed);
        } else if after > before {
            self.expands.fetch_add(1, Relaxed);
        }
    }
}

impl IsrChanges {
    /// Counts a refused replica fetch; true when it should be logged.
    pub fn note_refused_fetch(&self, now_ms: u64) -> bool {
        self.refused_replica_fetches.fetch_add(1, Relaxed);
        let last = self.refusal_logged_ms.load(Relaxed);
        (last == 0 || now_ms.saturating_sub(last) >= REFUSAL_LOG_INTERVAL_MS)
            && self
                .refusal_logged_ms
                .compare_exchange(last, now_ms, Relaxed, Relaxed)
                .is_ok()
    }
}

/// The lines for the partitions hosted here, as `image` places them.
pub fn render(
    changes: &IsrChanges,
    broker_id: i32,
    image: &MetadataImage,
    partitions: &[Arc<Partition>],
) -> String {
    let mut out = String::new();
    let under_replicated = partitions
        .iter()
        .filter_map(|p| image.partition(&p.topic, p.index))
        .filter(|state| state.leader == broker_id && state.isr.len() < state.replicas.len())
        .count();
    let _ = writeln!(
        out,
        "# TYPE gregor_under_replicated_partitions gauge\ngregor_under_replicated_partitions {under_replicated}"
    );
    let _ = writeln!(
        out,
        "# TYPE gregor_isr_shrinks_total counter\ngregor_isr_shrinks_total {}",
        changes.shrinks.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE gregor_isr_expands_total counter\ngregor_isr_expands_total {}",
        changes.expands.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE gregor_replica_fetches_refused_total counter\ngregor_replica_fetches_refused_total {}",
        changes.refused_replica_fetches.load(Relaxed)
    );
    let _ = writeln!(out, "# TYPE gregor_high_watermark gauge");
    for p in partitions {
        let _ = writeln!(
            out,
            "gregor_high_watermark{{topic=\"{}\",partition=\"{}\"}} {}",
            p.topic,
            p.index,
            p.high_watermark()
        );
    }
    let _ = writeln!(out, "# TYPE gregor_replica_lag_messages gauge");
    for p in partitions {
        for (replica, lag) in p.replication.follower_lags() {
            let _ = writeln!(
                out,
                "gregor_replica_lag_messages{{topic=\"{}\",partition=\"{}\",replica=\"{replica}\"}} {lag}",
                p.topic, p.index
            );
        }
    }
    let _ = writeln!(out, "# TYPE gregor_replica_fetcher_lag gauge");
    let mut max_lag = 0;
    for p in partitions {
        let follows = image
            .partition(&p.topic, p.index)
            .is_some_and(|state| state.leader != broker_id);
        let Some(lag) = p
            .replication
            .fetcher_lag(p.log_end_offset())
            .filter(|_| follows)
        else {
            continue;
        };
        max_lag = max_lag.max(lag);
        let _ = writeln!(
            out,
            "gregor_replica_fetcher_lag{{topic=\"{}\",partition=\"{}\"}} {lag}",
            p.topic, p.index
        );
    }
    let _ = writeln!(
        out,
        "# TYPE gregor_replica_fetcher_max_lag gauge\ngregor_replica_fetcher_max_lag {max_lag}"
    );
    out
}
