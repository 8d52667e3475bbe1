//! What the memory benchmarks share: a deterministic generator for synthetic family data.

#![allow(dead_code)] // each bench uses its own subset

/// The embedding width the benchmarks store (all-MiniLM-L6-v2's).
pub const DIMS: usize = 384;

/// xorshift64: fast, deterministic, good enough for synthetic data.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn zipf(&mut self, n: usize) -> usize {
        let u = self.unit().max(1e-6);
        ((n as f32).powf(u) - 1.0) as usize % n
    }
    pub fn vector(&mut self) -> Vec<f32> {
        (0..DIMS).map(|_| self.unit() * 2.0 - 1.0).collect()
    }
}

/// A sentence of `min..min+spread` Zipf-distributed words (text compresses like text).
pub fn sentence(rng: &mut Rng, vocab: &[String], min: usize, spread: usize) -> String {
    let len = min + rng.below(spread);
    (0..len)
        .map(|_| vocab[rng.zipf(vocab.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}
