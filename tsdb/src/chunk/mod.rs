//! Chunk codecs: how a run of samples of one series is compressed.
//!
//! Three codecs: for floats, the streaming XOR chunk that open head chunks append to, and the
//! packed chunk a chunk is transcoded into when it is sealed (bulk-decodable, usually smaller);
//! for native histograms, the histogram chunk, streaming and sealed as it is. A sealed chunk's
//! first byte tells a histogram chunk ([`histogram::MARKER`]) from a packed one ([`sealed`]).
//!
//! Samples leaving in remote read's streamed answers are re-encoded into upstream's chunks:
//! [`upstream_xor`] for floats, [`upstream_histogram`] for native histograms, cut per series by
//! [`upstream_series`].

pub mod bits;
pub mod histogram;
pub mod packed;
pub mod sealed;
pub mod store;
pub mod upstream_histogram;
pub mod upstream_series;
pub mod upstream_xor;
pub mod xor;

pub use xor::{XorChunk, XorIter, XorState};
