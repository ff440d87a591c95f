//! Record batches as they travel through the broker: validated by their
//! header and CRC, given offsets by patching the header, and converted to or
//! from the legacy message formats only for clients that need them.
//! Individual records are never decoded on the produce or fetch path.

mod batch;
mod compression;
mod filter;
mod legacy;
mod walk;

#[cfg(test)]
pub(crate) use batch::tests::v2_batch;

pub use batch::{
    BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD, MAGIC_V2, RecordError, assign_offsets,
    crc_matches, first_magic, split_batches, whole_batches,
};
pub use filter::{
    DELETE_HORIZON_BIT, FilterOutcome, FilterScratch, Filtered, TombstoneRules, filter_batch,
    for_each_key, for_each_record,
};
pub use legacy::{down_convert, up_convert};
pub use walk::{RecordInfo, Walked, find_by_timestamp, verify_records, walk_records};
