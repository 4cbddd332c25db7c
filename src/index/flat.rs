//! Exact flat L2: every query against every stored row, over contiguous `f32` blocks (one block
//! per piece), the blocks spread over rayon's threads, a bounded top-k per query.
//!
//! The rows come either from an in-memory copy of an index ([`FlatMatrix`]) or straight from the
//! memory-mapped LMDB values ([`rows_of`] casts `f32` rows in place when they are aligned, which
//! they are for any piece stored in LMDB overflow pages, and widens [`Precision::F16`] rows into
//! a buffer).

use std::cmp::Ordering;

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use serde::{Deserialize, Serialize};

/// How an index keeps its vectors on disk. Searches always compute in `f32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 4 bytes a value: every index written before half floats existed.
    F32,
    /// IEEE half floats, 2 bytes a value: half the disk and page cache. On unit vectors a
    /// value is off by at most 2^-11 of itself, far below the distances that separate a match
    /// from the next candidate.
    F16,
}

impl Precision {
    /// Bytes one stored value takes.
    pub(crate) fn width(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }

    /// The largest magnitude a value may have to be stored (f16 overflows to infinity).
    pub(crate) fn max_value(self) -> f32 {
        match self {
            Self::F32 => f32::MAX,
            Self::F16 => f16::MAX.to_f32(),
        }
    }

    /// Append `data` to `out`, little-endian, rounded to nearest.
    pub(crate) fn encode(self, data: &[f32], out: &mut Vec<u8>) {
        match self {
            Self::F32 => out.extend(data.iter().flat_map(|x| x.to_le_bytes())),
            Self::F16 => out.extend(data.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes())),
        }
    }
}

/// Queries scanned together against one block: 16 x 128 f32 = 8 KiB stays in L1 while a block's
/// rows stream through.
const QUERY_TILE: usize = 16;

/// One candidate: squared distance, item id, the block it came from and its row in the block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Entry {
    pub d2: f32,
    pub item: u32,
    pub block: u32,
    pub segment: u32,
}

impl Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.d2.total_cmp(&other.d2).then(self.item.cmp(&other.item))
    }
}

/// The `k` smallest entries seen so far, sorted ascending by (distance, item).
#[derive(Clone, Debug)]
pub(crate) struct TopK {
    k: usize,
    entries: Vec<Entry>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self { k, entries: Vec::with_capacity(k + 1) }
    }

    /// The distance a new entry must beat to get in.
    #[inline]
    pub fn bound(&self) -> f32 {
        if self.entries.len() < self.k {
            f32::INFINITY
        } else {
            self.entries.last().map_or(f32::INFINITY, |e| e.d2)
        }
    }

    pub fn push(&mut self, e: Entry) {
        if self.k == 0 {
            return;
        }
        if self.entries.len() == self.k
            && self.entries.last().is_some_and(|w| e.cmp(w) != Ordering::Less)
        {
            return;
        }
        let at = self.entries.partition_point(|x| x.cmp(&e) == Ordering::Less);
        self.entries.insert(at, e);
        self.entries.truncate(self.k);
    }

    pub fn merge(&mut self, other: TopK) {
        for e in other.entries {
            self.push(e);
        }
    }

    pub fn into_vec(self) -> Vec<Entry> {
        self.entries
    }
}

/// Merge per-thread top-k lists (one per query) pairwise.
pub(crate) fn merge_all(mut a: Vec<TopK>, b: Vec<TopK>) -> Vec<TopK> {
    for (x, y) in a.iter_mut().zip(b) {
        x.merge(y);
    }
    a
}

/// Squared Euclidean distance. Sixteen independent accumulators let the compiler keep several
/// SIMD registers busy (the loop auto-vectorises; no `unsafe`, no target features).
#[inline]
pub(crate) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, ra) = (a.chunks_exact(16), a.chunks_exact(16).remainder());
    let (cb, rb) = (b.chunks_exact(16), b.chunks_exact(16).remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        tail += d * d;
    }
    acc.iter().sum::<f32>() + tail
}

/// Scan one block of `rows` (row `i` is item `first_item + i`, segment `i`) against every query
/// (`queries` row-major, `dim` wide), updating `tops` (one per query).
pub(crate) fn scan_block(
    queries: &[f32],
    dim: usize,
    block: u32,
    first_item: u32,
    rows: &[f32],
    tops: &mut [TopK],
) {
    if dim == 0 {
        return;
    }
    for (tile_no, tile) in queries.chunks(QUERY_TILE * dim).enumerate() {
        let tops = &mut tops[tile_no * QUERY_TILE..];
        for (i, row) in rows.chunks_exact(dim).enumerate() {
            for (q, query) in tile.chunks_exact(dim).enumerate() {
                let d2 = l2sq(row, query);
                let top = &mut tops[q];
                if d2 <= top.bound() {
                    top.push(Entry {
                        d2,
                        item: first_item.wrapping_add(i as u32),
                        block,
                        segment: i as u32,
                    });
                }
            }
        }
    }
}

/// The rows of a stored piece as `f32`: `f32` rows borrowed in place when the bytes are aligned
/// (and the machine is little-endian, the stored byte order), else decoded into `buf`.
pub(crate) fn rows_of<'a>(
    bytes: &'a [u8],
    precision: Precision,
    buf: &'a mut Vec<f32>,
) -> &'a [f32] {
    let little = cfg!(target_endian = "little");
    buf.clear();
    match precision {
        Precision::F32 => {
            if little && let Ok(rows) = bytemuck::try_cast_slice::<u8, f32>(bytes) {
                return rows;
            }
            buf.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        }
        Precision::F16 => {
            if little && let Ok(bits) = bytemuck::try_cast_slice::<u8, u16>(bytes) {
                // half's slice conversion uses the CPU's F16C instructions where it has them.
                buf.resize(bits.len(), 0.0);
                bits.reinterpret_cast::<f16>().convert_to_f32_slice(buf);
            } else {
                buf.extend(
                    bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
                );
            }
        }
    }
    buf
}

/// One piece's place in a [`FlatMatrix`].
#[derive(Clone, Debug)]
pub(crate) struct BlockMeta {
    pub piece: String,
    pub first_item: u32,
    pub start_row: usize,
    pub n: usize,
}

/// An in-memory copy of one index: every vector in one contiguous allocation, piece by piece.
#[derive(Debug)]
pub(crate) struct FlatMatrix {
    /// The index generation this copy was taken at.
    pub generation: u64,
    pub dim: usize,
    pub data: Vec<f32>,
    pub blocks: Vec<BlockMeta>,
}

impl FlatMatrix {
    pub fn rows(&self, b: &BlockMeta) -> &[f32] {
        &self.data[b.start_row * self.dim..(b.start_row + b.n) * self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2sq_matches_naive() {
        let a: Vec<f32> = (0..131).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..131).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((l2sq(&a, &b) - naive).abs() < 1e-4);
    }

    #[test]
    fn topk_keeps_smallest_sorted() {
        let mut t = TopK::new(3);
        for (i, d) in [5.0, 1.0, 4.0, 0.5, 3.0, 0.5].into_iter().enumerate() {
            t.push(Entry { d2: d, item: i as u32, block: 0, segment: 0 });
        }
        let v: Vec<(f32, u32)> = t.into_vec().iter().map(|e| (e.d2, e.item)).collect();
        assert_eq!(v, vec![(0.5, 3), (0.5, 5), (1.0, 1)]);
    }

    #[test]
    fn scan_finds_each_row() {
        let dim = 4;
        let rows: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let queries: Vec<f32> = rows[8..16].to_vec(); // rows 2 and 3
        let mut tops = vec![TopK::new(1), TopK::new(1)];
        scan_block(&queries, dim, 7, 100, &rows, &mut tops);
        let got: Vec<(u32, u32, u32)> = tops
            .into_iter()
            .map(|t| t.into_vec()[0])
            .map(|e| (e.item, e.block, e.segment))
            .collect();
        assert_eq!(got, vec![(102, 7, 2), (103, 7, 3)]);
    }

    #[test]
    fn unaligned_bytes_are_copied() {
        let v: Vec<f32> = vec![1.0, 2.0, 3.0];
        let mut bytes = vec![0u8];
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        let mut buf = Vec::new();
        assert_eq!(rows_of(&bytes[1..], Precision::F32, &mut buf), &v[..]);
    }

    #[test]
    fn half_floats_round_trip_aligned_or_not() {
        let v: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin() * 0.3).collect();
        let mut bytes = vec![0u8];
        Precision::F16.encode(&v, &mut bytes);
        assert_eq!(bytes.len(), 1 + 2 * v.len());
        let mut aligned = Vec::with_capacity(bytes.len());
        aligned.extend_from_slice(&bytes[1..]);
        let mut buf = Vec::new();
        let odd = rows_of(&bytes[1..], Precision::F16, &mut buf).to_vec();
        let even = rows_of(&aligned, Precision::F16, &mut buf).to_vec();
        assert_eq!(odd, even);
        for (a, b) in v.iter().zip(&odd) {
            // 11 significant bits: within 2^-11 of the value.
            assert!((a - b).abs() <= a.abs() / 2048.0 + 1e-7, "{a} -> {b}");
        }
        assert_ne!(odd, v, "f16 rounding should show at this precision");
    }
}
