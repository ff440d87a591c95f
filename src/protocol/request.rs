//! Request decoding: header first (its version depends on the API key and
//! version), then the body through the `kafka-protocol` crate.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use super::supported::supported_range;

/// A request ready for dispatch.
#[derive(Debug)]
pub struct DecodedRequest {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Why a frame could not become a request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("frame of {len} bytes is too short for a request header")]
    TruncatedHeader { len: usize },
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    /// Kafka answers this one for ApiVersions (error 35 with the supported
    /// ranges, so clients can fall back) and closes the connection otherwise.
    #[error("{api_key:?} v{version} is not supported")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes one frame (without its size prefix).
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, RequestError> {
    // api_key, api_version and correlation_id sit at fixed positions in every
    // header version, which lets errors name the correlation id.
    if frame.len() < 8 {
        return Err(RequestError::TruncatedHeader { len: frame.len() });
    }
    let mut fixed = &frame[..8];
    let raw_key = fixed.get_i16();
    let version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let api_key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    match supported_range(api_key) {
        Some((min, max)) if (min..=max).contains(&version) => {}
        _ => {
            return Err(RequestError::UnsupportedVersion {
                api_key,
                version,
                correlation_id,
            });
        }
    }
    let malformed = |reason: anyhow::Error| RequestError::Malformed {
        api_key,
        version,
        reason: reason.to_string(),
    };
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version))
        .map_err(malformed)?;
    let body = RequestKind::decode(api_key, &mut buf, version).map_err(malformed)?;
    Ok(DecodedRequest {
        api_key,
        header,
        body,
    })
}
