//! The replication simulation's budgets: a fixed set of seeds in `cargo
//! test`, a replay of one seed, and the self-test against the broken
//! build. Longer sweeps: `scripts/simulate.sh --replication --seeds N`.

use super::{Report, SimulationConfig, run};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run_and_report(config: &SimulationConfig) -> Report {
    let report = run(config);
    if !report.violations.is_empty() {
        eprintln!(
            "SEED={} (flush.messages {}) broke {} invariant(s):",
            config.seed,
            report.flush_messages,
            report.violations.len()
        );
        for violation in &report.violations {
            eprintln!("  {violation}");
        }
        eprintln!("faults: {}", report.faults.join(", "));
        for line in &report.brokers_at_end {
            eprintln!("  {line}");
        }
        let tail = report.controller_log.len().saturating_sub(12);
        for line in &report.controller_log[tail..] {
            eprintln!("  {line}");
        }
        eprintln!("replay: {}", config.replay_command());
    }
    report
}

fn summary(seed: u64, report: &Report) -> String {
    format!(
        "seed {seed}: {} violation(s){}, flush.messages {}, {} crashes, {} committed, \
         {} acks=all and {} acks=1 acknowledged ({} of those lost), leader epoch {}, \
         {} truncations ({} refused), {} ms simulated",
        report.violations.len(),
        report
            .outside_guarantee
            .as_ref()
            .map_or(String::new(), |at| format!(
                " (every ISR member lost records in a crash at {at})"
            )),
        report.flush_messages,
        report.crashes,
        report.committed,
        report.acked_all,
        report.acked_one,
        report.acked_one_lost,
        report.leader_epochs,
        report.truncations,
        report.refused_truncations,
        report.simulated_ms
    )
}

/// Seeds `first..first + count`; panics naming every failing seed.
fn sweep(first: u64, count: u64) {
    let mut failed = Vec::new();
    let (mut acked_all, mut acked_one, mut lost, mut outside) = (0, 0, 0, 0);
    for seed in first..first + count {
        let report = run_and_report(&SimulationConfig::new(seed));
        eprintln!("{}", summary(seed, &report));
        acked_all += report.acked_all;
        acked_one += report.acked_one;
        lost += report.acked_one_lost;
        outside += usize::from(report.outside_guarantee.is_some());
        if !report.violations.is_empty() {
            failed.push(seed);
        }
    }
    eprintln!(
        "{count} seeds from {first}: {} failed, {outside} left the guarantee (every ISR member \
         lost records in a crash); {acked_all} acks=all acknowledged; {acked_one} acks=1 \
         acknowledged, {lost} lost",
        failed.len()
    );
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

#[test]
fn three_replicas_keep_kafkas_guarantees_under_faults() {
    let count = env_u64("SIMULATION_SEEDS").unwrap_or(12);
    let first = env_u64("SIMULATION_FIRST_SEED").unwrap_or(0);
    sweep(first, count);
}

/// Seeds that once failed, kept in the budget: 1009, 1031 and 1045 caught
/// a leader that cleared its accepted ISR expansion before the image with
/// it arrived, and committed a record the new ISR member lacked; 2562 a
/// replica that joined the ISR at a new leader's lagging high watermark;
/// 2369 the shell taking a refused follower append for a storage failure;
/// 2996 a follower that applied a deposed leader's late
/// OFFSET_OUT_OF_RANGE answer and cut committed records. 4026, 2290 and
/// 2421 failed while unanswered ISR changes were sent again without broker
/// epochs, and 2503 while they were given up on (see
/// `AlterSettlement::Unanswered`).
#[test]
fn seeds_that_once_failed_pass() {
    for seed in [1009, 1031, 1045, 2290, 2369, 2421, 2503, 2562, 2996, 4026] {
        let report = run_and_report(&SimulationConfig::new(seed));
        assert!(report.violations.is_empty(), "seed {seed} fails again");
    }
}

#[test]
fn a_seed_replays_exactly() {
    let config = SimulationConfig::new(5);
    let first = run(&config);
    let second = run(&config);
    assert_eq!(first.trace_digest, second.trace_digest);
    assert_eq!(first.faults, second.faults);
    assert_eq!(first.acked_all, second.acked_all);
    assert_eq!(first.committed, second.committed);
}

/// One seed, from `SIMULATION_SEED`, with its report: the replay command
/// a failing seed prints.
#[test]
fn replay() {
    let Some(seed) = env_u64("SIMULATION_SEED") else {
        return;
    };
    let config = SimulationConfig::new(seed);
    let report = run_and_report(&config);
    eprintln!(
        "{}, trace {:016x}",
        summary(seed, &report),
        report.trace_digest
    );
    for fault in &report.faults {
        eprintln!("  {fault}");
    }
    for line in &report.controller_log {
        eprintln!("  {line}");
    }
    assert!(report.violations.is_empty());
}

/// A bug the checker cannot catch is a bug in the checker: with the high
/// watermark taken from the leader's own log end, `acks=all` records are
/// acknowledged before any follower has them, and a leader change loses
/// them; the checker must say so within the budget.
#[test]
fn checker_catches_a_high_watermark_that_ignores_the_isr() {
    let caught = (0..8).find(|seed| {
        let mut config = SimulationConfig::new(*seed);
        config.broken_high_watermark = true;
        let report = run(&config);
        eprintln!(
            "broken SEED={seed}: {} violation(s) {:?}",
            report.violations.len(),
            report.violations.first()
        );
        !report.violations.is_empty()
    });
    assert!(
        caught.is_some(),
        "no seed of 8 caught the broken high watermark"
    );
}

/// The simulation can see loss: some `acks=1` acknowledgement is lost (a
/// leader that had it alone was replaced) within a few seeds.
#[test]
fn acks_one_records_can_be_lost() {
    let lost = (200..232).find(|seed| run(&SimulationConfig::new(*seed)).acked_one_lost > 0);
    assert!(lost.is_some(), "no acks=1 record was lost in 32 seeds");
}
