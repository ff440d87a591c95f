//! The Kafka wire format: size-prefixed frames, request headers, and the
//! table of API versions gregor implements. Message bodies are encoded and
//! decoded by the `kafka-protocol` crate; this module adds only what sits
//! around them. No I/O here: bytes in, bytes out.

mod frame;
mod request;
mod splice;
mod supported;

pub use frame::{FrameError, FrameReader, encode_response, encode_response_parts, split_frame};
pub use request::{DecodedRequest, RequestError, decode_request};
pub use supported::{SUPPORTED_APIS, api_versions_body, supported_range};
