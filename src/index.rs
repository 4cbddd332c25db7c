//! Vector search over fingerprints: one index per (fingerprint model, stem), an exact flat L2
//! scan and an approximate [arroy](https://github.com/meilisearch/arroy) forest over the same
//! vectors, and sequence (offset) voting that turns per-segment hits into answers.
//!
//! The narrow seam is the [`VectorStore`] trait: the scan pipeline only adds pieces, removes
//! them, and asks for the `k` nearest stored segments of each query segment. [`CatalogIndex`] is
//! the embedded implementation inside the catalog's LMDB environment; a distributed vector
//! engine can sit behind the same trait later. [`vote()`] and [`regions`] work on
//! plain [`Hit`]s and do not care which store produced them.
//!
//! ```no_run
//! use aniprint::catalog::Catalog;
//! use aniprint::fingerprint::Fingerprints;
//! use aniprint::index::{CatalogIndex, IndexKey, SearchKind, Stem, VectorStore};
//! # fn main() -> aniprint::Result<()> {
//! let catalog = Catalog::open("catalog")?;
//! let index = CatalogIndex::open(&catalog)?;
//! let key = IndexKey::new("fingerprint-v1", Stem::Mix);
//! let piece = Fingerprints { dim: 128, data: vec![0.0; 128 * 359] }; // from the fingerprinter
//! index.add_piece(&key, "3f2a9c1b7e20-000000000", &piece)?;
//! index.build_all()?; // brings the arroy trees up to date (incremental)
//! let clip = Fingerprints { dim: 128, data: vec![0.0; 128 * 5] }; // a 3 s clip
//! let hits = index.search_batch(&key, &clip, 10, SearchKind::Ann)?;
//! let best = aniprint::index::vote(&hits, 1);
//! # Ok(()) }
//! ```

pub mod bench;
mod flat;
mod store;
pub mod vote;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::fingerprint::Fingerprints;
pub use flat::Precision;
pub use store::{BuildStats, CatalogIndex, DiskUsage, ExactSource, IndexOptions, Retry};
pub use vote::{
    Candidate, EpisodeRegion, PhasedCandidate, PiecePlacement, Region, RegionParams,
    episode_regions, grid_shift, regions, settled, verify, vote, vote_phases,
};

/// Which signal a fingerprint was computed from: the full mix or one separated stem.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// The original mixture.
    Mix,
    /// The separated dialogue.
    Voice,
    /// The separated music and effects.
    Background,
}

impl Stem {
    /// Every stem, in index order.
    pub const ALL: [Stem; 3] = [Stem::Mix, Stem::Voice, Stem::Background];

    /// Lower-case name, as in the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Stem::Mix => "mix",
            Stem::Voice => "voice",
            Stem::Background => "background",
        }
    }
}

impl std::fmt::Display for Stem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names one index: vectors of one fingerprint model version for one stem, on one segment
/// grid. Vectors of different models are not comparable, so each model gets its own indexes.
///
/// The grid: segment `i` of a piece normally starts at `i * hop`; an index with `offset` > 0
/// holds the same pieces' segments starting `offset` samples later (`offset + i * hop`), so
/// that together the grids store a segment every `hop / grids` (see [`grid_shift`]). Only
/// clip queries read those; scanning reads the plain grid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndexKey {
    /// Fingerprint model name, e.g. `fingerprint-v1`.
    pub model: String,
    /// Which stem the vectors were computed from.
    pub stem: Stem,
    /// Samples (at the model's rate) into each piece where this index's first segment starts:
    /// 0 for the plain grid.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u32,
}

fn is_zero(x: &u32) -> bool {
    *x == 0
}

impl IndexKey {
    /// The key for `model` and `stem`, on the plain grid.
    pub fn new(model: impl Into<String>, stem: Stem) -> Self {
        Self { model: model.into(), stem, offset: 0 }
    }

    /// The same index on the grid starting `offset` samples into each piece.
    pub fn at_offset(self, offset: u32) -> Self {
        Self { offset, ..self }
    }

    /// The same model and stem, on the plain grid.
    pub fn plain(&self) -> Self {
        Self { offset: 0, ..self.clone() }
    }
}

impl std::fmt::Display for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.model, self.stem)?;
        if self.offset > 0 {
            write!(f, "+{}", self.offset)?;
        }
        Ok(())
    }
}

/// Where a stored vector came from: segment `segment` of piece `piece`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentRef {
    /// Piece id (`<episode>-<start ms>`).
    pub piece: String,
    /// Segment index inside the piece (segment `i` starts at `i * hop`).
    pub segment: u32,
}

/// One nearest stored segment of a query segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The store's item id (stable until the piece is removed or re-added).
    pub item: u32,
    /// Piece id.
    pub piece: String,
    /// Segment index inside the piece.
    pub segment: u32,
    /// True Euclidean distance between the query and the stored vector (0..=2 for unit vectors).
    pub distance: f32,
}

impl Hit {
    /// Cosine similarity, assuming unit vectors: `1 - d²/2`.
    pub fn similarity(&self) -> f32 {
        1.0 - self.distance * self.distance / 2.0
    }
}

/// How to search: brute force over every stored vector, or the arroy forest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SearchKind {
    /// Flat L2 over every vector of the index: exact, linear in the index size.
    Exact,
    /// Approximate nearest neighbours with arroy: sub-linear; falls back to exact (with a
    /// warning) while the trees are not built for the latest changes.
    Ann,
}

impl SearchKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchKind::Exact => "exact",
            SearchKind::Ann => "ann",
        }
    }

    /// The search a scan should use when the largest index holds `segments` vectors: the
    /// flat scan below [`AUTO_ANN_FROM`] (exact, and no forest to build or keep up to date),
    /// the arroy forest from there on, where the flat scan's cost (linear in the index) takes
    /// over.
    pub fn for_size(segments: u64) -> Self {
        if segments < AUTO_ANN_FROM { SearchKind::Exact } else { SearchKind::Ann }
    }
}

/// Segments in one index from which [`SearchKind::for_size`] picks arroy. Measured on this
/// machine (README, Measured): at ~43,000 segments per stem a scan took 17.7 s exact and 19.7 s
/// with arroy; at 10^6 a 3 s clip's search takes 56 ms exact and 13 ms with arroy, and exact
/// grows linearly from there (580 ms at 10^7).
pub const AUTO_ANN_FROM: u64 = 1_000_000;

/// The seam between aniprint and whatever stores and searches fingerprint vectors.
///
/// Writes are per piece and atomic: after a crash a piece is either entirely in an index or not
/// at all. A piece id is unique per [`IndexKey`]; adding it again replaces its vectors.
pub trait VectorStore: Send + Sync {
    /// Store the vectors of `piece` (row `i` = segment `i`) in the index `key`, replacing any
    /// vectors stored for it before. The first piece added fixes the index's dimension.
    fn add_piece(&self, key: &IndexKey, piece: &str, vectors: &Fingerprints) -> Result<()>;

    /// Remove the vectors of `piece` from the index `key`; `false` if it held none.
    fn remove_piece(&self, key: &IndexKey, piece: &str) -> Result<bool>;

    /// Remove, from every index, the vectors of every piece whose id starts with `prefix`;
    /// returns how many (index, piece) entries went. An empty prefix is refused.
    fn remove_pieces_with_prefix(&self, prefix: &str) -> Result<u64>;

    /// Remove the vectors of every piece of `episode` (piece ids `<episode>-...`) from every
    /// index.
    fn remove_episode(&self, episode: &str) -> Result<u64> {
        self.remove_pieces_with_prefix(&format!("{episode}-"))
    }

    /// Bring approximate-search structures up to date with the writes so far. Stores that
    /// index on write do nothing.
    fn build_all(&self) -> Result<()> {
        Ok(())
    }

    /// The `k` stored segments nearest to `query` in the index `key`, nearest first.
    fn search(
        &self,
        key: &IndexKey,
        query: &[f32],
        k: usize,
        kind: SearchKind,
    ) -> Result<Vec<Hit>> {
        let one = Fingerprints { dim: query.len(), data: query.to_vec() };
        Ok(self.search_batch(key, &one, k, kind)?.pop().unwrap_or_default())
    }

    /// [`VectorStore::search`] for every row of `queries`, in row order.
    fn search_batch(
        &self,
        key: &IndexKey,
        queries: &Fingerprints,
        k: usize,
        kind: SearchKind,
    ) -> Result<Vec<Vec<Hit>>>;

    /// Number of vectors in the index `key` (0 for an unknown key).
    fn len(&self, key: &IndexKey) -> Result<u64>;

    /// Whether the index `key` holds no vectors.
    fn is_empty(&self, key: &IndexKey) -> Result<bool> {
        Ok(self.len(key)? == 0)
    }

    /// Every index that exists, sorted.
    fn keys(&self) -> Result<Vec<IndexKey>>;

    /// The search [`SearchKind::for_size`] picks for the indexes of `model`: by the largest.
    fn auto_search(&self, model: &str) -> Result<SearchKind> {
        let mut most = 0;
        for key in self.keys()?.iter().filter(|k| k.model == model) {
            most = most.max(self.len(key)?);
        }
        Ok(SearchKind::for_size(most))
    }
}
