//! Sealed chunks of either codec, as blocks and the head's store hold them side by side: the
//! first byte tells a histogram chunk ([`histogram::MARKER`]) from a packed float chunk (whose
//! first byte is its sample count).

use pyrite_core::histogram::FloatHistogram;
use thiserror::Error;

use super::histogram::{self, HistogramChunkError};
use super::packed::{self, PackedError};

/// Why a sealed chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    #[error(transparent)]
    Packed(#[from] PackedError),
    #[error(transparent)]
    Histogram(#[from] HistogramChunkError),
}

/// The samples a sealed chunk holds, by its header.
pub fn sample_count(bytes: &[u8]) -> usize {
    match histogram::is_histogram_chunk(bytes) {
        true => histogram::sample_count(bytes),
        false => packed::sample_count(bytes),
    }
}

/// What sealed chunks decode to: their float samples and their histogram samples, each in the
/// order the chunks were added.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub floats: Vec<(i64, f64)>,
    pub histograms: Vec<(i64, FloatHistogram)>,
}

impl Decoded {
    /// Decodes a sealed chunk of either codec and appends its samples.
    pub fn add(&mut self, bytes: &[u8]) -> Result<(), ChunkError> {
        match histogram::is_histogram_chunk(bytes) {
            true => Ok(histogram::decode(bytes, &mut self.histograms)?),
            false => Ok(packed::decode(bytes, &mut self.floats)?),
        }
    }

    /// Keeps the samples whose times `keep` holds true of.
    pub fn retain(&mut self, keep: impl Fn(i64) -> bool) {
        self.floats.retain(|s| keep(s.0));
        self.histograms.retain(|s| keep(s.0));
    }
}
