//! Compressing records with Kafka's codecs, for batches the log cleaner
//! rewrites: a cleaned batch keeps the codec it was produced with.
//! (Decompression is streamed and capped; see the `walk` module.)

use std::io::{self, Write};

/// Appends `records` compressed with Kafka `codec` (1 gzip, 2 snappy,
/// 3 lz4, 4 zstd) to `out`.
pub fn compress_into(codec: i16, records: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    match codec {
        1 => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            encoder.write_all(records)?;
            encoder.finish()?;
        }
        2 => {
            // Raw snappy, as librdkafka writes it: every client reads it
            // (snappy-java falls back to it when its framing is absent).
            let compressed = snap::raw::Encoder::new()
                .compress_vec(records)
                .map_err(io::Error::other)?;
            out.extend_from_slice(&compressed);
        }
        3 => {
            // Kafka's LZ4 codec: the standard frame format, 64 KiB blocks.
            let mut encoder = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .build(out)?;
            encoder.write_all(records)?;
            let (_, result) = encoder.finish();
            result?;
        }
        4 => {
            let compressed = zstd::bulk::compress(records, zstd::DEFAULT_COMPRESSION_LEVEL)?;
            out.extend_from_slice(&compressed);
        }
        codec => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown compression codec {codec}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::records::walk::decompressed;

    #[test]
    fn every_codec_round_trips_through_the_capped_readers() {
        let records: Vec<u8> = (0..100_000u32).map(|i| (i % 97) as u8).collect();
        for codec in 1..=4 {
            let mut compressed = Vec::new();
            compress_into(codec, &records, &mut compressed).unwrap();
            let mut back = Vec::new();
            decompressed(codec, &compressed, records.len())
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, records, "codec {codec}");
        }
    }
}
