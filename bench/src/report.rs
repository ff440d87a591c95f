//! Latency histograms and the numbers each JSON line carries.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies in microseconds, 1 µs to 100 s at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("static histogram bounds are valid")
}

/// p50/p99/p99.9/max in milliseconds (and the sample count).
pub fn latency_summary(histogram: &Histogram<u64>) -> Value {
    let ms = |micros: u64| micros as f64 / 1000.0;
    json!({
        "count": histogram.len(),
        "p50_ms": ms(histogram.value_at_quantile(0.50)),
        "p99_ms": ms(histogram.value_at_quantile(0.99)),
        "p999_ms": ms(histogram.value_at_quantile(0.999)),
        "max_ms": ms(histogram.max()),
        "mean_ms": round3(histogram.mean() / 1000.0),
    })
}

/// Messages per second and MB/s (10^6 bytes) over `elapsed`.
pub fn throughput(messages: u64, bytes: u64, elapsed: Duration) -> Value {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    json!({
        "elapsed_s": round3(seconds),
        "msgs_per_s": (messages as f64 / seconds).round(),
        "mb_per_s": round3(bytes as f64 / seconds / 1e6),
    })
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Sleeps until `deadline`, spinning only through its last microseconds.
pub fn wait_until(deadline: Instant) {
    // Sleep rather than spin: a paced sender spinning between sends would
    // hold one of the machine's cores for the whole run and leave the broker
    // and the consumer to share the other. `precise_sleeps` makes the sleep
    // accurate to a few microseconds.
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > Duration::from_micros(20) {
            std::thread::sleep(left);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Asks the kernel to wake sleeping threads on time: the default timer
/// slack (50 us) would make a 100 us pacing sleep last 150 us. Threads
/// started afterwards inherit it.
pub fn precise_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only changes
    // this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// utime + stime of this process, all threads, from `/proc/self/stat`.
pub fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks / per_second as f64)
}
