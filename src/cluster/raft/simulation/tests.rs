//! The simulation's budgets: a fixed set of seeds in `cargo test`, a replay
//! of one seed, and the self-test against a lying disk. Longer sweeps:
//! `scripts/simulate.sh --seeds N`.

use super::{LyingDisk, Report, SimulationConfig, run};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs `config`, printing how to replay it if it broke an invariant.
fn run_and_report(config: &SimulationConfig) -> Report {
    let report = run(config);
    if !report.violations.is_empty() {
        eprintln!(
            "SEED={} members={} broke {} invariant(s):",
            config.seed,
            config.members,
            report.violations.len()
        );
        for violation in &report.violations {
            eprintln!("  {violation}");
        }
        eprintln!("faults: {}", report.faults.join(", "));
        for member in &report.members_at_end {
            eprintln!("  {member}");
        }
        eprintln!("replay: {}", config.replay_command());
    }
    report
}

/// Seeds `first..first + count` on `members` members; panics naming every
/// failing seed.
fn sweep(first: u64, count: u64, members: u64) {
    let mut failed = Vec::new();
    let (mut acknowledged, mut proposals) = (0, 0);
    for seed in first..first + count {
        let report = run_and_report(&SimulationConfig::new(seed, members));
        eprintln!(
            "seed {seed}: {} violation(s), {} of {} proposals acknowledged, {:?} simulated",
            report.violations.len(),
            report.acknowledged,
            report.proposals,
            report.simulated
        );
        acknowledged += report.acknowledged;
        proposals += report.proposals;
        if !report.violations.is_empty() {
            failed.push(seed);
        }
    }
    eprintln!(
        "{count} seeds from {first} on {members} members: {} failed; {acknowledged} of {proposals} proposals acknowledged",
        failed.len()
    );
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}

#[test]
fn three_members_keep_raft_guarantees_under_faults() {
    let count = env_u64("SIMULATION_SEEDS").unwrap_or(24);
    let first = env_u64("SIMULATION_FIRST_SEED").unwrap_or(0);
    sweep(first, count, 3);
}

#[test]
fn five_members_keep_raft_guarantees_under_faults() {
    let count = env_u64("SIMULATION_SEEDS").unwrap_or(8);
    let first = env_u64("SIMULATION_FIRST_SEED").unwrap_or(1000);
    sweep(first, count, 5);
}

#[test]
fn a_seed_replays_exactly() {
    let config = SimulationConfig::new(7, 3);
    let first = run(&config);
    let second = run(&config);
    assert_eq!(first.trace_digest, second.trace_digest);
    assert_eq!(first.faults, second.faults);
    assert_eq!(first.acknowledged, second.acknowledged);
}

/// One seed, from `SIMULATION_SEED` (and `SIMULATION_MEMBERS`), with its
/// report: the replay command a failing seed prints.
#[test]
fn replay() {
    let Some(seed) = env_u64("SIMULATION_SEED") else {
        return;
    };
    let config = SimulationConfig::new(seed, env_u64("SIMULATION_MEMBERS").unwrap_or(3));
    let report = run_and_report(&config);
    eprintln!(
        "SEED={seed}: {} of {} proposals acknowledged, {} leader ids ({} terms with several), {:?} simulated, trace {:016x}",
        report.acknowledged,
        report.proposals,
        report.leader_ids,
        report.terms_with_several_leaders,
        report.simulated,
        report.trace_digest
    );
    for fault in &report.faults {
        eprintln!("  {fault}");
    }
    assert!(report.violations.is_empty());
}

/// The first seed (of `budget`) on which the checker reports a violation
/// with `disk`, and what it reported.
fn first_caught(disk: LyingDisk, budget: u64) -> Option<(u64, Vec<String>)> {
    (0..budget).find_map(|seed| {
        let mut config = SimulationConfig::new(seed, 3);
        config.lying_disk = Some(disk);
        let report = run(&config);
        eprintln!(
            "{disk:?} SEED={seed}: {} violation(s) {:?}",
            report.violations.len(),
            report.violations
        );
        (!report.violations.is_empty()).then_some((seed, report.violations))
    })
}

/// A bug the checker cannot catch is a bug in the checker: with syncs that
/// lie, a crash loses acknowledged votes and entries, and the checker must
/// say so within the budget.
#[test]
fn checker_catches_stores_that_acknowledge_before_fsync() {
    let caught = first_caught(LyingDisk::Everything, 8);
    assert!(caught.is_some(), "no seed of 8 caught a lying disk");
}

/// The subtler bug: only the raft log's appends are acknowledged before
/// fsync (the vote is durable).
#[test]
fn checker_catches_log_appends_acknowledged_before_fsync() {
    let caught = first_caught(LyingDisk::LogAppends, 16);
    assert!(caught.is_some(), "no seed of 16 caught lying log appends");
}
