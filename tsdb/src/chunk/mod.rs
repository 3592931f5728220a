//! Chunk codecs: how a run of samples of one series is compressed.
//!
//! Two codecs: the streaming XOR chunk that open head chunks append to, and the packed chunk
//! a chunk is transcoded into when it is sealed (bulk-decodable, usually smaller).

pub mod bits;
pub mod packed;
pub mod store;
pub mod upstream_xor;
pub mod xor;

pub use xor::{XorChunk, XorIter, XorState};
