//! The invariants, checked after every step (the cheap ones) and every
//! [`LOG_CHECK_EVERY`](super::LOG_CHECK_EVERY) steps (those that read logs):
//!
//! - at most one broker leads each leader epoch;
//! - a running replica's high watermark never goes back;
//! - what consumers could read never shrinks or changes: the records below
//!   any leader's high watermark ("committed", kept here as the record ids
//!   by offset) stay at their offsets in every replica's log below that
//!   replica's own high watermark;
//! - nothing below a replica's high watermark is ever truncated, and no
//!   ISR member truncates committed records;
//! - every ISR member (a running broker whose registration the image
//!   holds) has every committed record;
//! - every `acks=all` acknowledgement is committed at its offset.
//!
//! The last four rest on Kafka's assumption that an ISR member stays
//! alive: once every ISR member is an incarnation whose crash lost
//! unsynced records (the controller cannot know before it re-registers),
//! committed records may be gone with no bug anywhere. From then on the
//! run counts as outside the guarantee and only the first two are judged.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::TOPIC;
use super::broker::{Broker, Deed, Process};
use super::client::Client;
use crate::cluster::MetadataImage;
use crate::replication::state::{BrokerId, Role};
use crate::storage::PartitionLog;

#[derive(Default)]
pub struct Checker {
    pub violations: Vec<String>,
    leaders: BTreeMap<i32, BrokerId>,
    high_watermarks: BTreeMap<(BrokerId, Uuid), i64>,
    /// Record ids by offset: everything any leader's high watermark passed.
    pub committed: Vec<u64>,
    /// How much of `committed` each replica's log was found to hold.
    verified: BTreeMap<(BrokerId, Uuid), usize>,
    /// `acks=all` acknowledgements: offset -> record id.
    pub acked_all: BTreeMap<i64, u64>,
    /// `acks=1` acknowledgements: offset -> record id.
    pub acked_one: BTreeMap<i64, u64>,
    pub truncations: u64,
    pub refused_truncations: u64,
    /// When every ISR member had lost records in a crash, if ever.
    pub outside_guarantee: Option<String>,
}

/// The record ids in `log` over `[from, to)` (each batch is one record
/// whose timestamp carries its id).
pub fn record_ids(log: &PartitionLog, from: i64, to: i64) -> Vec<(i64, u64)> {
    let mut ids = Vec::new();
    let mut offset = from.max(log.log_start_offset());
    while offset < to.min(log.log_end_offset()) {
        let Ok(batches) = log.read(offset, 64 * 1024) else {
            break;
        };
        if batches.is_empty() {
            break;
        }
        for batch in batches {
            let Some(header) = crate::records::BatchHeader::parse(&batch) else {
                return ids;
            };
            if header.base_offset >= to {
                return ids;
            }
            ids.push((header.base_offset, super::record_id_of(&header)));
            offset = header.last_offset() + 1;
        }
    }
    ids
}

/// Whether the image counts this running process as the broker it names
/// (its registration, not an earlier incarnation's).
fn registered(image: &MetadataImage, process: &Process, id: BrokerId) -> bool {
    image
        .broker(id)
        .is_some_and(|b| b.incarnation_id == process.incarnation)
}

impl Checker {
    fn violation(&mut self, at: &str, what: String) {
        if self.violations.len() < 50 {
            self.violations.push(format!("at {at}: {what}"));
        }
    }

    /// What the brokers did this step, and their high watermarks.
    pub fn after_step(
        &mut self,
        at: &str,
        brokers: &mut [Broker],
        image: &MetadataImage,
    ) -> Vec<(u64, Result<i64, i16>)> {
        let mut answers = Vec::new();
        let isr: Vec<BrokerId> = image
            .partition(TOPIC, 0)
            .map(|p| p.isr.clone())
            .unwrap_or_default();
        for broker in brokers.iter_mut() {
            let deeds = std::mem::take(&mut broker.deeds);
            let key = broker.process.as_ref().map(|p| (broker.id, p.incarnation));
            let in_isr = broker
                .process
                .as_ref()
                .is_some_and(|p| isr.contains(&broker.id) && registered(image, p, broker.id));
            for deed in deeds {
                match deed {
                    Deed::Led { leader_epoch } => {
                        let first = *self.leaders.entry(leader_epoch).or_insert(broker.id);
                        if first != broker.id {
                            self.violation(
                                at,
                                format!(
                                    "b{} and b{first} both led leader epoch {leader_epoch}",
                                    broker.id
                                ),
                            );
                        }
                    }
                    Deed::Truncated {
                        to,
                        high_watermark,
                        why,
                    } => {
                        self.truncations += 1;
                        if to < high_watermark {
                            self.violation(
                                at,
                                format!(
                                    "b{} truncated to {to}, below its high watermark {high_watermark} ({why})",
                                    broker.id
                                ),
                            );
                        }
                        if in_isr
                            && to < self.committed.len() as i64
                            && self.outside_guarantee.is_none()
                        {
                            self.violation(
                                at,
                                format!(
                                    "ISR member b{} truncated committed records: to {to}, {} committed ({why})",
                                    broker.id,
                                    self.committed.len()
                                ),
                            );
                        }
                        if let Some(key) = key {
                            let verified = self.verified.entry(key).or_default();
                            *verified = (*verified).min(to.max(0) as usize);
                        }
                    }
                    Deed::RefusedTruncation => self.refused_truncations += 1,
                    Deed::Failed(error) => self.violation(
                        at,
                        format!("b{}'s partition went offline: {error}", broker.id),
                    ),
                    Deed::Answered { request_id, result } => answers.push((request_id, result)),
                }
            }
            if let Some(process) = &broker.process {
                let high_watermark = process.replication.high_watermark();
                let seen = self
                    .high_watermarks
                    .entry((broker.id, process.incarnation))
                    .or_insert(high_watermark);
                if high_watermark < *seen {
                    let was = *seen;
                    self.violation(
                        at,
                        format!(
                            "b{}'s high watermark went back from {was} to {high_watermark}",
                            broker.id
                        ),
                    );
                }
                let seen = self
                    .high_watermarks
                    .entry((broker.id, process.incarnation))
                    .or_default();
                *seen = (*seen).max(high_watermark);
            }
        }
        answers
    }

    /// Notes the acknowledgements the brokers gave this step.
    pub fn note_answers(&mut self, at: &str, answers: &[(u64, Result<i64, i16>)], client: &Client) {
        for (request_id, result) in answers {
            let (Ok(offset), Some(request)) = (result, client.requests.get(request_id)) else {
                continue;
            };
            let acked = if request.acks == -1 {
                &mut self.acked_all
            } else {
                &mut self.acked_one
            };
            if let Some(other) = acked.insert(*offset, request.record_id)
                && request.acks == -1
                && self.outside_guarantee.is_none()
            {
                self.violation(
                    at,
                    format!(
                        "offset {offset} acknowledged with acks=all for records {other} and {}",
                        request.record_id
                    ),
                );
            }
        }
    }

    /// The log checks: committed records grow from every leader's high
    /// watermark, and every replica's log must agree with them.
    pub fn check_logs(&mut self, at: &str, brokers: &[Broker], image: &MetadataImage) {
        if self.outside_guarantee.is_some() {
            return;
        }
        for broker in brokers {
            let Some(p) = &broker.process else { continue };
            let leads = matches!(p.role, Some(Role::Lead(_)) | Some(Role::LeadAlone { .. }));
            let high_watermark = p.replication.high_watermark();
            let committed = self.committed.len() as i64;
            if leads && high_watermark > committed {
                if p.log.log_end_offset() < high_watermark {
                    self.violation(
                        at,
                        format!(
                            "leader b{}'s high watermark {high_watermark} is past its log end {}",
                            broker.id,
                            p.log.log_end_offset()
                        ),
                    );
                }
                // Agree with what is committed first, then extend it.
                self.verify(at, broker.id, p, committed, "a leader's log");
                let ids = record_ids(&p.log, committed, high_watermark);
                for (expected, (offset, id)) in (committed..).zip(ids) {
                    if offset != expected {
                        self.violation(
                            at,
                            format!("b{}'s log has a gap at offset {expected}", broker.id),
                        );
                        break;
                    }
                    self.committed.push(id);
                }
            }
        }
        let isr: Vec<BrokerId> = image
            .partition(TOPIC, 0)
            .map(|p| p.isr.clone())
            .unwrap_or_default();
        for broker in brokers {
            let Some(p) = &broker.process else { continue };
            let own = p.replication.high_watermark();
            self.verify(at, broker.id, p, own, "below its high watermark");
            if isr.contains(&broker.id) && registered(image, p, broker.id) {
                let committed = self.committed.len() as i64;
                if p.log.log_end_offset() < committed {
                    self.violation(
                        at,
                        format!(
                            "ISR member b{} ends at {}, before the {committed} committed records",
                            broker.id,
                            p.log.log_end_offset()
                        ),
                    );
                }
                self.verify(at, broker.id, p, committed, "an ISR member");
            }
        }
        let acked: Vec<(i64, u64)> = self.acked_all.iter().map(|(o, r)| (*o, *r)).collect();
        for (offset, record_id) in acked {
            if let Some(id) = self.committed.get(offset as usize)
                && *id != record_id
            {
                self.violation(
                    at,
                    format!(
                        "acks=all record {record_id} acknowledged at offset {offset}, where record {id} was committed"
                    ),
                );
                self.acked_all.remove(&offset);
            }
        }
    }

    /// `p`'s log holds the committed records below `up_to`, as far as they
    /// are known.
    fn verify(&mut self, at: &str, id: BrokerId, p: &Process, up_to: i64, what: &str) {
        let key = (id, p.incarnation);
        let from = self.verified.get(&key).copied().unwrap_or(0);
        let to = (up_to.max(0) as usize)
            .min(self.committed.len())
            .min(p.log.log_end_offset().max(0) as usize);
        if to <= from {
            return;
        }
        for (offset, record) in record_ids(&p.log, from as i64, to as i64) {
            let expected = self.committed[offset as usize];
            if record != expected {
                self.violation(
                    at,
                    format!(
                        "b{id} ({what}) holds record {record} at offset {offset}, where record {expected} was committed"
                    ),
                );
                return;
            }
        }
        self.verified.insert(key, to);
    }

    /// At the end: every `acks=all` record committed; the `acks=1` ones
    /// the final log lost, counted.
    pub fn finish(&mut self, at: &str, final_log: &[u64]) -> usize {
        let acked: Vec<(i64, u64)> = if self.outside_guarantee.is_some() {
            Vec::new()
        } else {
            self.acked_all.iter().map(|(o, r)| (*o, *r)).collect()
        };
        for (offset, record_id) in acked {
            if final_log.get(offset as usize) != Some(&record_id) {
                self.violation(
                    at,
                    format!(
                        "acks=all record {record_id} acknowledged at offset {offset} is not there at the end"
                    ),
                );
            }
        }
        self.acked_one
            .iter()
            .filter(|(offset, record)| final_log.get(**offset as usize) != Some(record))
            .count()
    }
}
