//! Broker counters, rendered in Prometheus text format by the admin HTTP
//! listener. Plain atomics: recording is a handful of relaxed adds.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use crate::protocol::SUPPORTED_APIS;

/// Upper bounds (seconds) of the request latency histogram buckets.
const LATENCY_BUCKETS: [f64; 8] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 1.0];
const API_SLOTS: usize = 128;

#[derive(Default)]
struct ApiStats {
    requests: AtomicU64,
    latency_micros: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
}

pub struct Metrics {
    apis: Vec<ApiStats>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    records_in: AtomicU64,
    fetched_bytes: AtomicU64,
    connections: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            apis: (0..API_SLOTS).map(|_| ApiStats::default()).collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            records_in: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn request_done(&self, api_key: ApiKey, elapsed: Duration, response_bytes: usize) {
        self.bytes_out.fetch_add(response_bytes as u64, Relaxed);
        let Some(stats) = self.apis.get(api_key as usize) else {
            return;
        };
        stats.requests.fetch_add(1, Relaxed);
        stats
            .latency_micros
            .fetch_add(elapsed.as_micros() as u64, Relaxed);
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in stats.buckets.iter().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
    }
    pub fn bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }
    pub fn records_in(&self, n: u64) {
        self.records_in.fetch_add(n, Relaxed);
    }
    pub fn bytes_fetched(&self, n: usize) {
        self.fetched_bytes.fetch_add(n as u64, Relaxed);
    }
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
    }
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    /// Prometheus text exposition. `partitions` are (topic, partition,
    /// log start offset, log end offset, size in bytes).
    pub fn render(&self, partitions: &[(String, i32, i64, i64, u64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE gregor_requests_total counter");
        for &(key, _, _) in SUPPORTED_APIS {
            let stats = &self.apis[key as usize];
            let _ = writeln!(
                out,
                "gregor_requests_total{{api=\"{key:?}\"}} {}",
                stats.requests.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE gregor_request_latency_seconds histogram");
        for &(key, _, _) in SUPPORTED_APIS {
            let stats = &self.apis[key as usize];
            for (bucket, bound) in stats.buckets.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(
                    out,
                    "gregor_request_latency_seconds_bucket{{api=\"{key:?}\",le=\"{bound}\"}} {}",
                    bucket.load(Relaxed)
                );
            }
            let count = stats.requests.load(Relaxed);
            let _ = writeln!(
                out,
                "gregor_request_latency_seconds_bucket{{api=\"{key:?}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "gregor_request_latency_seconds_sum{{api=\"{key:?}\"}} {}",
                stats.latency_micros.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "gregor_request_latency_seconds_count{{api=\"{key:?}\"}} {count}"
            );
        }
        for (name, value) in [
            ("gregor_bytes_in_total", &self.bytes_in),
            ("gregor_bytes_out_total", &self.bytes_out),
            ("gregor_records_in_total", &self.records_in),
            ("gregor_fetched_bytes_total", &self.fetched_bytes),
        ] {
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {}", value.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# TYPE gregor_connections gauge\ngregor_connections {}",
            self.connections.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE gregor_partitions gauge\ngregor_partitions {}",
            partitions.len()
        );
        let _ = writeln!(out, "# TYPE gregor_log_end_offset gauge");
        for (topic, partition, _, end, _) in partitions {
            let _ = writeln!(
                out,
                "gregor_log_end_offset{{topic=\"{topic}\",partition=\"{partition}\"}} {end}"
            );
        }
        let _ = writeln!(out, "# TYPE gregor_log_start_offset gauge");
        for (topic, partition, start, _, _) in partitions {
            let _ = writeln!(
                out,
                "gregor_log_start_offset{{topic=\"{topic}\",partition=\"{partition}\"}} {start}"
            );
        }
        let _ = writeln!(out, "# TYPE gregor_log_size_bytes gauge");
        for (topic, partition, _, _, size) in partitions {
            let _ = writeln!(
                out,
                "gregor_log_size_bytes{{topic=\"{topic}\",partition=\"{partition}\"}} {size}"
            );
        }
        out
    }
}
