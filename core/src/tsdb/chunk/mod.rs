//! Chunk codecs: how a run of samples of one series is compressed.
//!
//! Only the streaming XOR codec exists yet; it is what open head chunks use.

pub mod bits;
pub mod xor;

pub use xor::{XorChunk, XorIter, XorState};
