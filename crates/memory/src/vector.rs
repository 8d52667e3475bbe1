//! Brute-force cosine search over every stored embedding, kept in memory.
//!
//! Vectors are normalised once on insert, so similarity is a dot product. A scan over f32 is
//! memory-bound (100k x 384 dims = 150 MB per query), so the first pass scans an int8 copy
//! (one scale per vector, a quarter of the bytes) and keeps the best `k * 8` candidates; those
//! are re-scored exactly with the f32 vectors. The loops use independent accumulators over
//! contiguous slices, which the compiler turns into SIMD lanes without `unsafe` or
//! target-specific code. The filter (owner/visibility/type/time) is checked before any
//! arithmetic.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::model::{MemoryType, Visibility};

/// The metadata a vector search filters on, mirrored from the `memories` row.
#[derive(Debug, Clone)]
pub struct VecMeta {
    pub owner: String,
    pub visibility: Visibility,
    pub memory_type: MemoryType,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl VecMeta {
    /// A conversation turn in the turns' own index: owned by its speaker (`""` when none was
    /// identified), visible to every requester (turn search filters by speaker, as its full-text
    /// search does), never expiring. The type is unused: turn searches filter on no type.
    pub fn turn(speaker: Option<&str>, created_at: i64) -> VecMeta {
        VecMeta {
            owner: speaker.unwrap_or("").to_owned(),
            visibility: Visibility::Family,
            memory_type: MemoryType::Event,
            created_at,
            expires_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    owner: u32,
    private: bool,
    memory_type: MemoryType,
    created_at: i64,
    expires_at: i64,
}

/// The compiled filter of one search.
#[derive(Debug, Clone)]
pub struct Filter {
    pub requester: String,
    pub owner: Option<String>,
    pub visibility: Option<Visibility>,
    pub memory_types: Option<Vec<MemoryType>>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Memories with `expires_at <= now` are hidden.
    pub now: i64,
}

/// Scan with several threads from this many vectors on.
const PARALLEL_FROM: usize = 20_000;
/// At most this many scanning threads per search.
const MAX_THREADS: usize = 4;

#[derive(Default)]
pub struct VectorIndex {
    dims: usize,
    ids: Vec<i64>,
    slots: Vec<Slot>,
    data: Vec<f32>,
    /// int8 copy of `data`, `dims` per vector, and its per-vector scale.
    quant: Vec<i8>,
    scales: Vec<f32>,
    pos: HashMap<i64, usize>,
    owners: HashMap<String, u32>,
}

impl VectorIndex {
    pub fn new(dims: usize) -> Self {
        Self {
            dims,
            ..Self::default()
        }
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn intern(&mut self, owner: &str) -> u32 {
        let next = u32::try_from(self.owners.len()).unwrap_or(u32::MAX);
        *self.owners.entry(owner.to_owned()).or_insert(next)
    }

    /// Insert or replace `id`. Vectors of the wrong length or zero norm are ignored (the API
    /// validates before storing, so this only guards rows written by other tools).
    pub fn upsert(&mut self, id: i64, vector: &[f32], meta: &VecMeta) -> bool {
        if vector.len() != self.dims {
            self.remove(id);
            return false;
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            self.remove(id);
            return false;
        }
        let slot = Slot {
            owner: self.intern(&meta.owner),
            private: meta.visibility == Visibility::Private,
            memory_type: meta.memory_type,
            created_at: meta.created_at,
            expires_at: meta.expires_at.unwrap_or(i64::MAX),
        };
        let normalised: Vec<f32> = vector.iter().map(|x| x / norm).collect();
        let (q, scale) = quantize(&normalised);
        match self.pos.get(&id) {
            Some(&i) => {
                self.data[i * self.dims..(i + 1) * self.dims].copy_from_slice(&normalised);
                self.quant[i * self.dims..(i + 1) * self.dims].copy_from_slice(&q);
                self.scales[i] = scale;
                self.slots[i] = slot;
            }
            None => {
                self.pos.insert(id, self.ids.len());
                self.ids.push(id);
                self.slots.push(slot);
                self.data.extend(normalised);
                self.quant.extend(q);
                self.scales.push(scale);
            }
        }
        true
    }

    /// Update only the filter metadata (visibility, type, expiry changed; vector unchanged).
    pub fn update_meta(&mut self, id: i64, meta: &VecMeta) {
        if let Some(&i) = self.pos.get(&id) {
            let owner = self.intern(&meta.owner);
            self.slots[i] = Slot {
                owner,
                private: meta.visibility == Visibility::Private,
                memory_type: meta.memory_type,
                created_at: meta.created_at,
                expires_at: meta.expires_at.unwrap_or(i64::MAX),
            };
        }
    }

    pub fn remove(&mut self, id: i64) {
        let Some(i) = self.pos.remove(&id) else {
            return;
        };
        let last = self.ids.len() - 1;
        if i != last {
            let moved = self.ids[last];
            self.ids.swap(i, last);
            self.slots.swap(i, last);
            let (head, tail) = self.data.split_at_mut(last * self.dims);
            head[i * self.dims..(i + 1) * self.dims].copy_from_slice(&tail[..self.dims]);
            let (head, tail) = self.quant.split_at_mut(last * self.dims);
            head[i * self.dims..(i + 1) * self.dims].copy_from_slice(&tail[..self.dims]);
            self.scales.swap(i, last);
            self.pos.insert(moved, i);
        }
        self.ids.pop();
        self.slots.pop();
        self.scales.pop();
        self.data.truncate(last * self.dims);
        self.quant.truncate(last * self.dims);
    }

    /// Cosine similarity of `query` and the stored vector of `id` (`None` when `id` has none or
    /// the query has another length or no direction).
    pub fn similarity(&self, id: i64, query: &[f32]) -> Option<f32> {
        let i = *self.pos.get(&id)?;
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        if query.len() != self.dims || !norm.is_finite() || norm == 0.0 {
            return None;
        }
        Some(dot(&self.data[i * self.dims..(i + 1) * self.dims], query) / norm)
    }

    /// The `k` most similar memories passing `filter`, best first, as (id, cosine).
    pub fn search(&self, query: &[f32], filter: &Filter, k: usize) -> Vec<(i64, f32)> {
        if query.len() != self.dims || k == 0 {
            return Vec::new();
        }
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Vec::new();
        }
        let q: Vec<f32> = query.iter().map(|x| x / norm).collect();
        // The query's own scale multiplies every approximate score alike: irrelevant to order.
        let (qq, _) = quantize(&q);
        let candidates = (k * 8).max(64);
        // An owner nobody has stored a vector for matches nothing; the requester may be unknown.
        let requester = self.owners.get(&filter.requester).copied();
        let owner = match &filter.owner {
            Some(o) => match self.owners.get(o) {
                Some(&id) => Some(id),
                None => return Vec::new(),
            },
            None => None,
        };
        let want_private = filter.visibility.map(|v| v == Visibility::Private);
        let scan = |lo: usize, hi: usize| -> Vec<Scored> {
            let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(candidates + 1);
            for i in lo..hi {
                let slot = &self.slots[i];
                if slot.private && Some(slot.owner) != requester {
                    continue;
                }
                if owner.is_some_and(|o| o != slot.owner)
                    || want_private.is_some_and(|p| p != slot.private)
                    || slot.expires_at <= filter.now
                    || filter.since.is_some_and(|s| slot.created_at < s)
                    || filter.until.is_some_and(|u| slot.created_at >= u)
                    || filter
                        .memory_types
                        .as_ref()
                        .is_some_and(|ts| !ts.contains(&slot.memory_type))
                {
                    continue;
                }
                let approx = dot_i8(&qq, &self.quant[i * self.dims..(i + 1) * self.dims]) as f32
                    * self.scales[i];
                // Positions (not ids), so the exact pass can find the f32 vector.
                if heap.len() < candidates {
                    heap.push(Scored(approx, i as i64));
                } else if heap.peek().is_some_and(|worst| approx > worst.0) {
                    heap.pop();
                    heap.push(Scored(approx, i as i64));
                }
            }
            heap.into_vec()
        };
        let n = self.slots.len();
        let threads = if n >= PARALLEL_FROM {
            std::thread::available_parallelism()
                .map_or(1, |p| p.get())
                .min(MAX_THREADS)
        } else {
            1
        };
        let mut found: Vec<Scored> = if threads <= 1 {
            scan(0, n)
        } else {
            // The scan is memory-bound; splitting it over cores multiplies the bandwidth.
            let chunk = n.div_ceil(threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let scan = &scan;
                        s.spawn(move || scan(t * chunk, ((t + 1) * chunk).min(n)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        found.sort();
        found.truncate(candidates);
        let heap = found;
        let mut out: Vec<(i64, f32)> = heap
            .into_iter()
            .map(|s| {
                let i = s.1 as usize;
                (
                    self.ids[i],
                    dot(&q, &self.data[i * self.dims..(i + 1) * self.dims]),
                )
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }
}

/// Min-heap entry by score (the heap's top is the worst kept so far).
#[derive(Debug, Clone, Copy)]
struct Scored(f32, i64);

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

/// Symmetric int8 quantisation of a vector: (values, scale) with value * scale ~ input.
fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
            .collect(),
        scale,
    )
}

/// int8 dot product in i32 with 32 independent lanes. Measured on this machine (100k x 384,
/// one thread, baseline x86-64/SSE2): 16 lanes 14-17 ms, 32 lanes 8-9 ms, 64 lanes 14 ms;
/// with `-C target-cpu=x86-64-v3` (AVX2) 32 lanes take 2-4 ms.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 32];
    let ca = a.chunks_exact(32);
    let cb = b.chunks_exact(32);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..32 {
            acc[l] += i32::from(x[l]) * i32::from(y[l]);
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += i32::from(*x) * i32::from(*y);
    }
    sum
}

/// Dot product with eight independent accumulators (vectorises on any x86-64/aarch64).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn meta(owner: &str, vis: Visibility) -> VecMeta {
        VecMeta {
            owner: owner.into(),
            visibility: vis,
            memory_type: MemoryType::Fact,
            created_at: 10,
            expires_at: None,
        }
    }

    fn filter(requester: &str) -> Filter {
        Filter {
            requester: requester.into(),
            owner: None,
            visibility: None,
            memory_types: None,
            since: None,
            until: None,
            now: 100,
        }
    }

    #[test]
    fn nearest_first_and_private_of_others_hidden() {
        let mut idx = VectorIndex::new(3);
        idx.upsert(1, &[1.0, 0.0, 0.0], &meta("alice", Visibility::Family));
        idx.upsert(2, &[0.9, 0.1, 0.0], &meta("bob", Visibility::Private));
        idx.upsert(3, &[0.0, 1.0, 0.0], &meta("alice", Visibility::Private));
        let hits = idx.search(&[1.0, 0.0, 0.0], &filter("alice"), 10);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 3]);
        let hits = idx.search(&[1.0, 0.0, 0.0], &filter("bob"), 10);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 2]);
        let hits = idx.search(&[1.0, 0.0, 0.0], &filter("carol"), 10);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1]);
        assert!((hits[0].1 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn remove_keeps_other_vectors_intact() {
        let mut idx = VectorIndex::new(2);
        for i in 0..5 {
            idx.upsert(i, &[1.0, i as f32], &meta("a", Visibility::Family));
        }
        idx.remove(1);
        idx.remove(4);
        assert_eq!(idx.len(), 3);
        let hits = idx.search(&[1.0, 3.0], &filter("a"), 1);
        assert_eq!(hits[0].0, 3);
        assert!((hits[0].1 - 1.0).abs() < 1e-6);
        // wrong dimension: ignored
        assert!(!idx.upsert(9, &[1.0], &meta("a", Visibility::Family)));
    }

    fn true_nearest_found(n: usize, dims: usize) {
        let mut idx = VectorIndex::new(dims);
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let vecs: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..dims).map(|_| next()).collect())
            .collect();
        for (i, v) in vecs.iter().enumerate() {
            idx.upsert(i as i64, v, &meta("a", Visibility::Family));
        }
        let q: Vec<f32> = (0..dims).map(|_| next()).collect();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let mut exact: Vec<(i64, f32)> = vecs
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, dot(&q, v) / norm(&q) / norm(v)))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got = idx.search(&q, &filter("a"), 10);
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            exact[..10].iter().map(|e| e.0).collect::<Vec<_>>()
        );
        assert!((got[0].1 - exact[0].1).abs() < 1e-5);
    }

    #[test]
    fn int8_first_pass_then_exact_rerank_finds_true_nearest() {
        true_nearest_found(2000, 64);
    }

    #[test]
    fn parallel_scan_finds_true_nearest() {
        true_nearest_found(PARALLEL_FROM + 5000, 16);
    }

    #[test]
    fn dot_i8_matches_naive_with_remainder() {
        let a: Vec<i8> = (0..389).map(|i| (i % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..389).map(|i| ((i * 7) % 255 - 127) as i8).collect();
        let naive: i32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| i32::from(*x) * i32::from(*y))
            .sum();
        assert_eq!(dot_i8(&a, &b), naive);
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..389).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..389).map(|i| (i as f32).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }
}
