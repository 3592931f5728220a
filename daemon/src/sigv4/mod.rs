//! AWS Signature Version 4 for `remote_write` with `sigv4` (Amazon Managed Service for
//! Prometheus).
//!
//! * [`sign`] — the algorithm, a pure function (checked against AWS's test vectors).

pub mod sign;

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigV4Error {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}
