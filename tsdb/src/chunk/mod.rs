//! Chunk codecs: how a run of samples of one series is compressed.
//!
//! Three codecs: for floats, the streaming XOR chunk that open head chunks append to, and the
//! packed chunk a chunk is transcoded into when it is sealed (bulk-decodable, usually smaller);
//! for native histograms, the histogram chunk, streaming and sealed as it is. A sealed chunk's
//! first byte tells a histogram chunk ([`histogram::MARKER`]) from a packed one ([`sealed`]).

pub mod bits;
pub mod histogram;
pub mod packed;
pub mod sealed;
pub mod store;
pub mod upstream_xor;
pub mod xor;

pub use xor::{XorChunk, XorIter, XorState};
