//! The records of `__consumer_offsets`, in Kafka's schemas, so that the
//! partition reads as Kafka's does (`kcat -C -t __consumer_offsets`, Kafka's
//! `GroupMetadataMessageFormatter`):
//!
//! - an offset commit: key `OffsetCommitKey` v1 (group, topic, partition),
//!   value `OffsetCommitValue` v3 (offset, leader epoch, metadata, commit
//!   timestamp); a null value is the tombstone of an expired or deleted
//!   offset;
//! - a group's membership: key `GroupMetadataKey` v2 (group), value
//!   `GroupMetadataValue` v3 (protocol, generation, leader, members with
//!   their subscription and assignment); a null value deletes the group.
//!
//! Keys and values start with their schema version (int16); strings are an
//! int16 length (-1: null) and UTF-8, bytes an int32 length. Decoding reads
//! versions 0 to 3 of the values (4 is the flexible encoding, which gregor
//! does not write). Lengths read from a record only ever select a slice of
//! bytes already in memory: nothing is allocated by a count before the
//! bytes it counts are there.

use bytes::Bytes;

/// The key version written for offset commits (0 and 1 mean the same).
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// A committed offset, with what Kafka keeps alongside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// Milliseconds since the epoch, when the commit was stored.
    pub commit_timestamp: i64,
}

/// A group's membership as of one generation (Kafka's `GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its state, in milliseconds (-1: unknown).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

/// One member in a [`GroupMetadata`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One record of the offsets topic; `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    GroupMetadata {
        group: String,
        value: Option<GroupMetadata>,
    },
}

/// Why a record of the offsets topic could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordDecodeError {
    #[error("the record has no key")]
    MissingKey,
    #[error("unknown key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown {schema} version {version}")]
    UnknownValueVersion { schema: &'static str, version: i16 },
    #[error("{schema} is truncated or malformed")]
    Malformed { schema: &'static str },
    #[error("{schema} has {extra} bytes after its last field")]
    TrailingBytes { schema: &'static str, extra: usize },
}

impl GroupRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::OffsetCommit { group, .. } | GroupRecord::GroupMetadata { group, .. } => {
                group
            }
        }
    }

    /// The record's key, as Kafka writes it.
    pub fn key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            GroupRecord::OffsetCommit {
                group,
                topic,
                partition,
                ..
            } => {
                put_i16(&mut out, OFFSET_COMMIT_KEY_VERSION);
                put_str(&mut out, group);
                put_str(&mut out, topic);
                put_i32(&mut out, *partition);
            }
            GroupRecord::GroupMetadata { group, .. } => {
                put_i16(&mut out, GROUP_METADATA_KEY_VERSION);
                put_str(&mut out, group);
            }
        }
        out
    }

    /// The record's value, or `None` for a tombstone.
    pub fn value(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            GroupRecord::OffsetCommit { value, .. } => {
                let value = value.as_ref()?;
                put_i16(&mut out, OFFSET_COMMIT_VALUE_VERSION);
                put_i64(&mut out, value.offset);
                put_i32(&mut out, value.leader_epoch);
                put_str(&mut out, value.metadata.as_deref().unwrap_or_default());
                put_i64(&mut out, value.commit_timestamp);
            }
            GroupRecord::GroupMetadata { value, .. } => {
                let value = value.as_ref()?;
                put_i16(&mut out, GROUP_METADATA_VALUE_VERSION);
                put_str(&mut out, &value.protocol_type);
                put_i32(&mut out, value.generation_id);
                put_nullable_str(&mut out, value.protocol_name.as_deref());
                put_nullable_str(&mut out, value.leader.as_deref());
                put_i64(&mut out, value.current_state_timestamp);
                put_i32(
                    &mut out,
                    i32::try_from(value.members.len()).unwrap_or(i32::MAX),
                );
                for member in &value.members {
                    put_str(&mut out, &member.member_id);
                    put_nullable_str(&mut out, member.group_instance_id.as_deref());
                    put_str(&mut out, &member.client_id);
                    put_str(&mut out, &member.client_host);
                    put_i32(&mut out, member.rebalance_timeout_ms);
                    put_i32(&mut out, member.session_timeout_ms);
                    put_bytes(&mut out, &member.subscription);
                    put_bytes(&mut out, &member.assignment);
                }
            }
        }
        Some(out)
    }

    /// Reads a record from its key and value (`None`: a tombstone).
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self, RecordDecodeError> {
        let key = key.ok_or(RecordDecodeError::MissingKey)?;
        let mut reader = Reader::new(key, "the record key");
        let version = reader.i16()?;
        match version {
            0 | 1 => {
                let group = reader.string()?;
                let topic = reader.string()?;
                let partition = reader.i32()?;
                reader.finish()?;
                let value = value.map(decode_offset_commit).transpose()?;
                Ok(GroupRecord::OffsetCommit {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            2 => {
                let group = reader.string()?;
                reader.finish()?;
                let value = value.map(decode_group_metadata).transpose()?;
                Ok(GroupRecord::GroupMetadata { group, value })
            }
            other => Err(RecordDecodeError::UnknownKeyVersion(other)),
        }
    }
}

fn decode_offset_commit(value: &[u8]) -> Result<CommittedOffset, RecordDecodeError> {
    const SCHEMA: &str = "OffsetCommitValue";
    let mut reader = Reader::new(value, SCHEMA);
    let version = reader.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordDecodeError::UnknownValueVersion {
            schema: SCHEMA,
            version,
        });
    }
    let offset = reader.i64()?;
    let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
    let metadata = reader.string()?;
    let commit_timestamp = reader.i64()?;
    if version == 1 {
        reader.i64()?; // expireTimestamp, which Kafka 2.1+ ignores
    }
    reader.finish()?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata: Some(metadata),
        commit_timestamp,
    })
}

fn decode_group_metadata(value: &[u8]) -> Result<GroupMetadata, RecordDecodeError> {
    const SCHEMA: &str = "GroupMetadataValue";
    let mut reader = Reader::new(value, SCHEMA);
    let version = reader.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordDecodeError::UnknownValueVersion {
            schema: SCHEMA,
            version,
        });
    }
    let protocol_type = reader.string()?;
    let generation_id = reader.i32()?;
    let protocol_name = reader.nullable_string()?;
    let leader = reader.nullable_string()?;
    let current_state_timestamp = if version >= 2 { reader.i64()? } else { -1 };
    let count = reader.i32()?;
    // The count only bounds the loop: each member is read from bytes that
    // are there, so a huge count fails on the first missing member.
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = reader.string()?;
        let group_instance_id = if version >= 3 {
            reader.nullable_string()?
        } else {
            None
        };
        let client_id = reader.string()?;
        let client_host = reader.string()?;
        // v0 has none; Kafka then uses the session timeout.
        let rebalance_timeout_ms = if version >= 1 {
            Some(reader.i32()?)
        } else {
            None
        };
        let session_timeout_ms = reader.i32()?;
        let subscription = reader.bytes()?;
        let assignment = reader.bytes()?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: rebalance_timeout_ms.unwrap_or(session_timeout_ms),
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    reader.finish()?;
    Ok(GroupMetadata {
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        current_state_timestamp,
        members,
    })
}

fn put_i16(out: &mut Vec<u8>, value: i16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// A string of at most `i16::MAX` bytes (group ids, topics, client ids and
/// offset metadata are far shorter; a longer one is cut at a char boundary
/// rather than written with a wrong length).
fn put_str(out: &mut Vec<u8>, value: &str) {
    let mut end = value.len().min(i16::MAX as usize);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    put_i16(out, end as i16);
    out.extend_from_slice(&value.as_bytes()[..end]);
}

fn put_nullable_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => put_str(out, value),
        None => put_i16(out, -1),
    }
}

fn put_bytes(out: &mut Vec<u8>, value: &[u8]) {
    put_i32(out, i32::try_from(value.len()).unwrap_or(i32::MAX));
    out.extend_from_slice(value);
}

/// Reads fields from a slice; every length is checked against what is left.
struct Reader<'a> {
    rest: &'a [u8],
    schema: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], schema: &'static str) -> Self {
        Reader {
            rest: bytes,
            schema,
        }
    }

    fn malformed(&self) -> RecordDecodeError {
        RecordDecodeError::Malformed {
            schema: self.schema,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordDecodeError> {
        if self.rest.len() < n {
            return Err(self.malformed());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordDecodeError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| self.malformed())
    }

    fn i16(&mut self) -> Result<i16, RecordDecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordDecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordDecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordDecodeError> {
        let length = self.i16()?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| self.malformed())?;
        let bytes = self.take(length)?;
        let text = std::str::from_utf8(bytes).map_err(|_| self.malformed())?;
        Ok(Some(text.to_owned()))
    }

    fn string(&mut self) -> Result<String, RecordDecodeError> {
        self.nullable_string()?.ok_or_else(|| self.malformed())
    }

    fn bytes(&mut self) -> Result<Bytes, RecordDecodeError> {
        let length = usize::try_from(self.i32()?).map_err(|_| self.malformed())?;
        Ok(Bytes::copy_from_slice(self.take(length)?))
    }

    fn finish(&self) -> Result<(), RecordDecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            extra => Err(RecordDecodeError::TrailingBytes {
                schema: self.schema,
                extra,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
