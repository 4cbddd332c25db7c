//! [`CatalogIndex`]: the embedded [`VectorStore`], kept in the catalog's LMDB environment.
//!
//! Five databases, all named `index.*`:
//!
//! | database         | key                               | value                                        |
//! |------------------|-----------------------------------|----------------------------------------------|
//! | `index.meta`     | `"next_item"`                     | next free item id (u64, big-endian)          |
//! | `index.registry` | `"<model>\0<stem>"`, `\0<offset>` after it off the plain grid | JSON: key, arroy index number, dim, counts, generation |
//! | `index.pieces`   | arroy index (u16 BE) + piece      | first item (u32 LE), rows (u32 LE), rows x dim f16 or f32 LE (the index's `precision`) |
//! | `index.items`    | first item id (u32 BE)            | arroy index (u16 LE), rows (u32 LE), piece   |
//! | `index.arroy`    | arroy's keys                      | arroy's items and trees (`Euclidean`)        |
//!
//! arroy holds an index's vectors only once its forest has been built (the registry's
//! `forest`): the exact scan reads `index.pieces`, and below
//! [`AUTO_ANN_FROM`](crate::index::AUTO_ANN_FROM) segments nothing searches the forest, so a
//! catalog of that size carries no second copy of its vectors and no trees.
//!
//! A piece's segments get consecutive item ids, so `index.items` maps an item to its
//! [`SegmentRef`] with one range lookup instead of one record per vector, and `index.pieces`
//! holds each piece's vectors contiguously for the exact scan. Item ids are never reused: a
//! re-added piece gets fresh ids, so a stale id can never point at the wrong audio.
//!
//! An index keeps its vectors as half floats ([`Precision::F16`], the default for a new index)
//! or as `f32` (indexes written before half floats, or by choice); an index keeps the precision
//! it was created with, and `catalog compact --f16` converts the older ones.
//!
//! Every write to an index bumps its generation in the registry, in the same transaction; the
//! in-memory copy used by [`ExactSource::Memory`] is reloaded when the generation it was taken
//! at is not the current one, so writes through any handle (or a transaction the caller composes
//! with [`CatalogIndex::add_piece_in`]) invalidate it, and aborted writes do not.
//!
//! LMDB read transactions are bound to their thread and a thread may hold only one: searches
//! open their own short read transactions inside each parallel task and never across a rayon
//! call, so call them without holding a read transaction of the same catalog on the calling
//! thread.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arroy::distances::Euclidean;
use heed::byteorder::BE;
use heed::types::{Bytes, DecodeIgnore, SerdeJson, Str, U32, U64};
use heed::{CommitOrAbort, Database, RoTxn, RwTxn};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::flat::{self, BlockMeta, FlatMatrix, Precision, TopK};
use super::{
    Hit, IndexKey, PhasedCandidate, SearchKind, SegmentRef, VectorStore, settled, vote_phases,
};
use crate::catalog::Catalog;
use crate::fingerprint::Fingerprints;
use crate::progress::{NoProgress, Progress, Stage};
use crate::{Error, Result};

const NEXT_ITEM: &str = "next_item";
/// Bytes before the vectors in an `index.pieces` value.
const PIECE_HEADER: usize = 8;

/// Where the exact search reads vectors from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExactSource {
    /// Straight from the memory-mapped LMDB values, without copying them (they are aligned in
    /// LMDB's overflow pages). Nothing stays on the heap; the OS page cache holds what is hot.
    #[default]
    Mapped,
    /// From a contiguous heap copy of the index, loaded on first use and reloaded after a write
    /// (512 MB per million 128-d vectors, on top of the page cache).
    Memory,
}

/// Which query segments arroy searches a second time, at [`IndexOptions::retry_search_k`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Retry {
    /// In a clip whose voted alignment is not settled, each segment whose nearest hit is off
    /// that alignment (callers that vote a clip: `query`, `eval fingerprint`, `bench search`;
    /// see [`crate::index::settled`] and [`CatalogIndex::settle_clip`]).
    #[default]
    Unsettled,
    /// Each segment whose nearest first-pass candidate is farther than
    /// [`IndexOptions::retry_distance`], inside the store (any caller, `scan` too).
    Far,
}

/// Tuning of a [`CatalogIndex`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexOptions {
    /// Trees in each arroy forest; `None` lets arroy choose (it adds trees until they hold about
    /// as many nodes as there are items). More trees: better recall at the same `search_k`,
    /// more disk.
    pub n_trees: Option<usize>,
    /// Leaf candidates arroy collects per query before ranking them by true distance (arroy's
    /// `search_k`); at least `k x n_trees` is always used. The main recall/latency knob: on the
    /// synthetic benchmark (10^5 clustered vectors, queries at cosine ~0.8, 30 trees) 1,000 gave
    /// 93.4% of segments the same nearest neighbour as exact, 2,000 97.8%, 4,000 99.5%.
    pub search_k: usize,
    /// Second-pass `search_k` for query segments the first pass served badly (0: no second
    /// pass); [`IndexOptions::retry`] says which. A random-projection forest loses a
    /// neighbour mostly when it is far from the query (a noisy clip), and the first pass shows
    /// it: its nearest candidate is far too, and a clip's votes scatter.
    pub retry_search_k: usize,
    /// With [`Retry::Far`], a query segment whose nearest first-pass candidate is farther than this (Euclidean, on
    /// unit vectors: 0 = same, 2 = opposite) gets the second pass.
    pub retry_distance: f32,
    /// Which query segments get the second pass.
    pub retry: Retry,
    /// The share of a clip's segments that must agree on its best alignment for the clip to be
    /// settled ([`Retry::Unsettled`]).
    pub settled_share: f32,
    /// Where the exact search reads vectors from.
    pub exact_source: ExactSource,
    /// How an index created through this handle stores its vectors (an existing index keeps
    /// its own).
    pub precision: Precision,
    /// Seed of the tree-building RNG (mixed with the index generation), for reproducible forests.
    pub seed: u64,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            n_trees: None,
            search_k: 4000,
            retry_search_k: 16_000,
            retry_distance: 0.7,
            retry: Retry::Unsettled,
            settled_share: 0.8,
            exact_source: ExactSource::Mapped,
            precision: Precision::F16,
            seed: 0x5eed,
        }
    }
}

/// One index's registry record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Registered {
    key: IndexKey,
    /// The arroy index number (the u16 prefix of its keys).
    index: u16,
    /// Vector width.
    dim: u32,
    /// Vectors stored.
    vectors: u64,
    /// Pieces stored.
    pieces: u64,
    /// Bumped by every write to this index.
    generation: u64,
    /// Whether arroy holds every vector of this index (its forest is kept): `Some(false)`
    /// until the first [`CatalogIndex::build`], since below
    /// [`crate::index::AUTO_ANN_FROM`] segments searches are exact and a second copy of every
    /// vector plus its trees would more than double the catalog for nothing. `None`: written
    /// by a binary from before the flag, which put each vector it stored into arroy; whether
    /// arroy holds them all (a catalog an older binary wrote to after a newer one may not) is
    /// checked at the next build.
    #[serde(default)]
    forest: Option<bool>,
    /// How `index.pieces` holds this index's vectors; records from before the field are `f32`.
    #[serde(default = "precision_before_f16")]
    precision: Precision,
}

fn precision_before_f16() -> Precision {
    Precision::F32
}

impl Registered {
    /// Whether writes must reach arroy too.
    fn mirrored(&self) -> bool {
        self.forest != Some(false)
    }

    /// (first item, rows as `f32`) of one of this index's `index.pieces` values, after checking
    /// that its length is what its header and this index's width and precision say.
    fn rows<'a>(&self, v: &'a [u8], buf: &'a mut Vec<f32>) -> Result<(u32, &'a [f32])> {
        let (first, n) = piece_header(v)?;
        let body = &v[PIECE_HEADER..];
        let expected = u64::from(n)
            .checked_mul(u64::from(self.dim))
            .and_then(|x| x.checked_mul(self.precision.width() as u64));
        if expected != Some(body.len() as u64) {
            return Err(corrupt("piece value length does not match its rows"));
        }
        Ok((first, flat::rows_of(body, self.precision, buf)))
    }
}

#[derive(Clone, Copy)]
struct Dbs {
    meta: Database<'static, Str, U64<BE>>,
    registry: Database<'static, Str, SerdeJson<Registered>>,
    pieces: Database<'static, Bytes, Bytes>,
    items: Database<'static, U32<BE>, Bytes>,
    arroy: arroy::Database<'static, Euclidean>,
}

impl Dbs {
    /// The `index.pieces` keys starting with `prefix` (an index number, maybe with a piece
    /// prefix after it), copied out so the caller may write between them.
    fn piece_keys(&self, rtxn: &RoTxn<'_>, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.pieces
            .remap_data_type::<DecodeIgnore>()
            .prefix_iter(rtxn, prefix)?
            .map(|r| r.map(|(k, ())| k.to_vec()).map_err(Error::from))
            .collect()
    }

    /// Item id -> (arroy index, piece, segment) through the range map.
    fn resolve(&self, rtxn: &RoTxn<'_>, item: u32) -> Result<Option<(u16, SegmentRef)>> {
        let Some((first, value)) = self.items.get_lower_than_or_equal_to(rtxn, &item)? else {
            return Ok(None);
        };
        let (index, n, piece) = decode_range(value)?;
        let segment = item - first;
        Ok((segment < n).then(|| (index, SegmentRef { piece: piece.to_owned(), segment })))
    }
}

/// What one [`CatalogIndex::build`] did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BuildStats {
    /// Whether anything had changed since the last build (else nothing was done).
    pub changed: bool,
    /// Vectors in the index.
    pub items: u64,
    /// Trees in the forest after the build.
    pub trees: usize,
    /// Wall time of the build transaction, seconds.
    pub seconds: f64,
}

/// Bytes each part of the vector store takes in the LMDB file (pages in use, all indexes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// Raw vectors for the exact scan (`index.pieces`).
    pub vectors: u64,
    /// Item-range map (`index.items`) and registry.
    pub mapping: u64,
    /// arroy's copy of the vectors plus its trees (`index.arroy`).
    pub arroy: u64,
}

impl DiskUsage {
    /// Everything.
    pub fn total(&self) -> u64 {
        self.vectors + self.mapping + self.arroy
    }
}

/// The embedded vector store: exact and arroy search over the vectors kept in a catalog's LMDB
/// environment.
///
/// Generic over how it holds the catalog: `CatalogIndex<&Catalog>` for a pipeline that borrows
/// one, `CatalogIndex<Arc<Catalog>>` for a worker thread that must own its handle (the TUI).
/// Both are `Send + Sync`; searches may run from several threads at once, writes serialise on
/// LMDB's writer lock.
pub struct CatalogIndex<C: Borrow<Catalog>> {
    catalog: C,
    dbs: Dbs,
    opts: IndexOptions,
    cache: Mutex<HashMap<u16, (IndexKey, Arc<FlatMatrix>)>>,
    /// Query segments arroy searched, and how many of them got the second pass.
    ann_counts: [AtomicU64; 2],
}

impl<C: Borrow<Catalog>> std::fmt::Debug for CatalogIndex<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogIndex")
            .field("catalog", &self.catalog().path())
            .field("opts", &self.opts)
            .finish()
    }
}

impl<C: Borrow<Catalog>> CatalogIndex<C> {
    /// Open (creating its databases if needed) the vector store of `catalog`, default options.
    pub fn open(catalog: C) -> Result<Self> {
        Self::with_options(catalog, IndexOptions::default())
    }

    /// Open the vector store of `catalog` with `opts`.
    pub fn with_options(catalog: C, opts: IndexOptions) -> Result<Self> {
        if !(opts.settled_share > 0.0 && opts.settled_share <= 1.0) {
            return Err(Error::Invalid(format!(
                "settled share {} is not in (0, 1]: the share of a clip's segments that must agree",
                opts.settled_share
            )));
        }
        if !(opts.retry_distance.is_finite() && opts.retry_distance >= 0.0) {
            return Err(Error::Invalid(format!(
                "retry distance {} is not a finite distance >= 0",
                opts.retry_distance
            )));
        }
        let env = catalog.borrow().env();
        let wtxn = env.write_txn()?;
        let (meta, registry, pieces, items, arroy) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
                let meta = dbo.create_database(wtxn, Some("index.meta"))?;
                let registry = dbo.create_database(wtxn, Some("index.registry"))?;
                let pieces = dbo.create_database(wtxn, Some("index.pieces"))?;
                let items = dbo.create_database(wtxn, Some("index.items"))?;
                let arroy = dbo.create_database(wtxn, Some("index.arroy"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((meta, registry, pieces, items, arroy)))
            })?
            .unwrap_commit();
        Ok(Self {
            catalog,
            dbs: Dbs { meta, registry, pieces, items, arroy },
            opts,
            cache: Mutex::new(HashMap::new()),
            ann_counts: Default::default(),
        })
    }

    /// The clip-level second pass ([`Retry::Unsettled`]) for one clip searched with
    /// [`SearchKind::Ann`]: `copies[i]` is a phase-shifted copy of the clip's fingerprints and
    /// `voted[i]` its first-pass hits, as [`vote_phases`] takes them. When the clip's best
    /// alignment is not [`settled`], the segments whose nearest hit does not already lie on
    /// that alignment (all of them when only one segment supports it) are searched again at
    /// [`IndexOptions::retry_search_k`] (all copies in one batch, so the thread pool shares
    /// them) and their hits replaced. Returns the number of segments searched again.
    ///
    /// Why only those: a segment whose nearest neighbour already agrees with the best
    /// alignment was found; the wide pass is for the ones that scattered, and skipping the
    /// rest is what keeps the slowest clips inside the latency budget.
    pub fn settle_clip(
        &self,
        key: &IndexKey,
        copies: &[&Fingerprints],
        voted: &mut [(f64, Vec<Vec<Hit>>)],
        k: usize,
    ) -> Result<usize> {
        if self.opts.retry != Retry::Unsettled {
            return Ok(0);
        }
        let best = vote_phases(voted, 1);
        let best = best.first();
        let segments = copies.first().map_or(0, |f| f.len());
        if settled(best.map(|c| &c.candidate), segments, self.opts.settled_share) {
            return Ok(0);
        }
        // A lone vote (a 1 s clip has one segment) has nothing to agree with: it is searched
        // again too.
        let best = best.filter(|b| b.candidate.votes >= 2);
        let Some(dim) = copies.first().map(|f| f.dim) else { return Ok(0) };
        // (copy, segment) pairs to search again; segments past a copy's length (hits and
        // copies out of step) are left as they are.
        let rows: Vec<(usize, usize)> = voted
            .iter()
            .zip(copies)
            .enumerate()
            .flat_map(|(c, ((shift, hits), fps))| {
                hits.iter()
                    .enumerate()
                    .take(fps.len())
                    .filter(move |(q, h)| !best.is_some_and(|b| on_alignment(b, *shift, *q, h)))
                    .map(move |(q, _)| (c, q))
            })
            .collect();
        let mut queries = Fingerprints { dim, data: Vec::with_capacity(rows.len() * dim) };
        for &(c, q) in &rows {
            queries.data.extend_from_slice(copies[c].row(q));
        }
        let Some(wide) = self.search_wide(key, &queries, k)? else { return Ok(0) };
        for (&(c, q), hits) in rows.iter().zip(wide) {
            voted[c].1[q] = hits;
        }
        Ok(rows.len())
    }

    /// arroy search of every row of `queries` at the second-pass budget
    /// ([`IndexOptions::retry_search_k`]); `None` when no second pass is configured, the
    /// trees are not built for the latest writes, or the second pass would be no wider than
    /// the first.
    fn search_wide(
        &self,
        key: &IndexKey,
        queries: &Fingerprints,
        k: usize,
    ) -> Result<Option<Vec<Vec<Hit>>>> {
        if self.opts.retry_search_k <= self.opts.search_k || queries.is_empty() || k == 0 {
            return Ok(None);
        }
        let Some(reg) = self.read(|r| self.registered(r, key))? else { return Ok(None) };
        let hits = self.search_ann(
            &reg,
            queries,
            k,
            self.opts.retry_search_k,
            None,
            Some(self.opts.search_k),
        )?;
        if hits.is_some() {
            // The first pass counted these segments as searched.
            self.ann_counts[1].fetch_add(queries.len() as u64, Ordering::Relaxed);
        }
        Ok(hits)
    }

    /// Query segments arroy has searched since this store was opened, and how many of them got
    /// the second pass ([`IndexOptions::retry_search_k`]).
    pub fn ann_counts(&self) -> (u64, u64) {
        (self.ann_counts[0].load(Ordering::Relaxed), self.ann_counts[1].load(Ordering::Relaxed))
    }

    /// The catalog this store lives in.
    pub fn catalog(&self) -> &Catalog {
        self.catalog.borrow()
    }

    /// The options in use.
    pub fn options(&self) -> &IndexOptions {
        &self.opts
    }

    fn read<T>(&self, f: impl FnOnce(&RoTxn<'_>) -> Result<T>) -> Result<T> {
        let rtxn = self.catalog().env().read_txn()?;
        f(&rtxn)
    }

    fn registered(&self, rtxn: &RoTxn<'_>, key: &IndexKey) -> Result<Option<Registered>> {
        Ok(self.dbs.registry.get(rtxn, &registry_key(key))?)
    }

    fn all_registered(&self, rtxn: &RoTxn<'_>) -> Result<Vec<Registered>> {
        self.dbs.registry.iter(rtxn)?.map(|r| r.map(|(_, v)| v).map_err(Error::from)).collect()
    }

    /// Get the registry record of `key`, creating it (with a fresh arroy index number) if new.
    fn register(&self, wtxn: &mut RwTxn<'_>, key: &IndexKey, dim: usize) -> Result<Registered> {
        if let Some(reg) = self.registered(wtxn, key)? {
            if reg.dim as usize != dim {
                return Err(Error::Invalid(format!(
                    "index {key} holds {}-d vectors, got {dim}-d ones: a different fingerprint \
                     model needs its own model name",
                    reg.dim
                )));
            }
            return Ok(reg);
        }
        let used: Vec<u16> = self.all_registered(wtxn)?.iter().map(|r| r.index).collect();
        let index = (0..=u16::MAX).find(|i| !used.contains(i)).ok_or_else(|| {
            Error::Invalid("the catalog already holds 65,536 vector indexes".into())
        })?;
        let dim32 = u32::try_from(dim)
            .map_err(|_| Error::Invalid(format!("vector dimension {dim} is too large")))?;
        Ok(Registered {
            key: key.clone(),
            index,
            dim: dim32,
            vectors: 0,
            pieces: 0,
            generation: 0,
            forest: Some(false),
            precision: self.opts.precision,
        })
    }

    fn save(&self, wtxn: &mut RwTxn<'_>, reg: &Registered) -> Result<()> {
        if reg.precision == Precision::F16 {
            // Builds before half floats would read these vectors as f32, without an error.
            self.catalog().require_schema(wtxn, 2)?;
        }
        Ok(self.dbs.registry.put(wtxn, &registry_key(&reg.key), reg)?)
    }

    /// Reserve `n` consecutive item ids.
    fn alloc_items(&self, wtxn: &mut RwTxn<'_>, n: u32) -> Result<u32> {
        let next = self.dbs.meta.get(wtxn, NEXT_ITEM)?.unwrap_or(0);
        let end = next + u64::from(n);
        if end > u64::from(u32::MAX) + 1 {
            return Err(Error::Invalid(
                "the vector store has used up its 2^32 item ids: rebuild the catalog".into(),
            ));
        }
        self.dbs.meta.put(wtxn, NEXT_ITEM, &end)?;
        Ok(next as u32)
    }

    /// [`VectorStore::add_piece`] inside a write transaction the caller owns (to store a whole
    /// episode, or catalog records with their vectors, atomically). The caller commits.
    pub fn add_piece_in(
        &self,
        wtxn: &mut RwTxn<'_>,
        key: &IndexKey,
        piece: &str,
        vectors: &Fingerprints,
    ) -> Result<()> {
        check_vectors(piece, vectors)?;
        let mut reg = self.register(wtxn, key, vectors.dim)?;
        check_range(piece, &vectors.data, vectors.dim, reg.precision)?;
        self.remove_in(wtxn, &mut reg, piece)?;
        let n = u32::try_from(vectors.len())
            .map_err(|_| Error::Invalid(format!("piece {piece}: too many segments")))?;
        if n > 0 {
            let first = self.alloc_items(wtxn, n)?;
            let width = reg.precision.width();
            let mut value = Vec::with_capacity(PIECE_HEADER + vectors.data.len() * width);
            value.extend_from_slice(&first.to_le_bytes());
            value.extend_from_slice(&n.to_le_bytes());
            reg.precision.encode(&vectors.data, &mut value);
            self.dbs.pieces.put(wtxn, &piece_key(reg.index, piece), &value)?;
            self.dbs.items.put(wtxn, &first, &range_value(reg.index, n, piece))?;
            if reg.mirrored() {
                let writer = arroy::Writer::new(self.dbs.arroy, reg.index, vectors.dim);
                for i in 0..n {
                    writer.add_item(wtxn, first + i, vectors.row(i as usize)).map_err(arroy_err)?;
                }
            }
            reg.vectors += u64::from(n);
            reg.pieces += 1;
        }
        reg.generation += 1;
        self.save(wtxn, &reg)
    }

    /// Remove `piece` from the index described by `reg` (updating its counts, not saving them).
    fn remove_in(&self, wtxn: &mut RwTxn<'_>, reg: &mut Registered, piece: &str) -> Result<bool> {
        let pkey = piece_key(reg.index, piece);
        let Some((first, n)) = self.dbs.pieces.get(wtxn, &pkey)?.map(piece_header).transpose()?
        else {
            return Ok(false);
        };
        self.dbs.pieces.delete(wtxn, &pkey)?;
        self.dbs.items.delete(wtxn, &first)?;
        if reg.mirrored() {
            let writer = arroy::Writer::new(self.dbs.arroy, reg.index, reg.dim as usize);
            for i in 0..n {
                writer.del_item(wtxn, first + i).map_err(arroy_err)?;
            }
        }
        reg.vectors = reg.vectors.saturating_sub(u64::from(n));
        reg.pieces = reg.pieces.saturating_sub(1);
        reg.generation += 1;
        Ok(true)
    }

    /// [`VectorStore::remove_piece`] inside the caller's write transaction.
    pub fn remove_piece_in(
        &self,
        wtxn: &mut RwTxn<'_>,
        key: &IndexKey,
        piece: &str,
    ) -> Result<bool> {
        let Some(mut reg) = self.registered(wtxn, key)? else { return Ok(false) };
        let removed = self.remove_in(wtxn, &mut reg, piece)?;
        if removed {
            self.save(wtxn, &reg)?;
        }
        Ok(removed)
    }

    /// [`VectorStore::remove_pieces_with_prefix`] inside the caller's write transaction.
    pub fn remove_pieces_with_prefix_in(&self, wtxn: &mut RwTxn<'_>, prefix: &str) -> Result<u64> {
        if prefix.is_empty() {
            return Err(Error::Invalid(
                "refusing to remove the vectors of every piece (empty prefix)".into(),
            ));
        }
        let mut removed = 0;
        for mut reg in self.all_registered(wtxn)? {
            let start = piece_key(reg.index, prefix);
            let pieces: Vec<String> =
                self.dbs.piece_keys(wtxn, &start)?.iter().map(|k| piece_of_key(k)).collect();
            for piece in &pieces {
                if self.remove_in(wtxn, &mut reg, piece)? {
                    removed += 1;
                }
            }
            if !pieces.is_empty() {
                self.save(wtxn, &reg)?;
            }
        }
        Ok(removed)
    }

    /// Whether the arroy forest of `key` lags behind its vectors, or there is none yet (ann
    /// then searches exactly).
    pub fn needs_build(&self, key: &IndexKey) -> Result<bool> {
        self.read(|rtxn| {
            let Some(reg) = self.registered(rtxn, key)? else { return Ok(false) };
            if reg.forest != Some(true) {
                return Ok(reg.vectors > 0);
            }
            let writer = arroy::Writer::new(self.dbs.arroy, reg.index, reg.dim as usize);
            writer.need_build(rtxn).map_err(arroy_err)
        })
    }

    /// Bring the arroy forest of `key` up to date. Incremental: arroy re-splits only the tree
    /// nodes that hold added or removed items (and adds trees as the index grows). The first
    /// build of an index copies its stored vectors into arroy; from then on every write keeps
    /// them there. Runs in one write transaction: other writers wait, readers keep searching
    /// the previous forest.
    pub fn build(&self, key: &IndexKey) -> Result<BuildStats> {
        self.build_with(key, &NoProgress)
    }

    /// [`CatalogIndex::build`] reporting to `progress` and stopping (with
    /// [`Error::Cancelled`], nothing written) when it is cancelled.
    pub fn build_with(&self, key: &IndexKey, progress: &dyn Progress) -> Result<BuildStats> {
        let Some(reg) = self.read(|r| self.registered(r, key))? else {
            return Err(Error::NotFound { kind: "vector index", id: key.to_string() });
        };
        progress.stage(Stage::Indexing);
        let started = Instant::now();
        // Up to date: answer from a read transaction, so a search that builds first (query,
        // scan) does not wait for LMDB's writer lock for nothing.
        if !self.needs_build(key)? {
            let trees = self.read(|rtxn| self.n_trees(rtxn, &reg))?;
            return Ok(BuildStats { changed: false, items: reg.vectors, trees, seconds: 0.0 });
        }
        let changed = self.catalog().write_txn(|wtxn| {
            // Read again inside the transaction: a write may have landed since (and one that
            // dropped the index must not see it saved again, under a number since reused).
            let Some(mut reg) = self.registered(wtxn, key)? else {
                return Err(Error::NotFound { kind: "vector index", id: key.to_string() });
            };
            let writer = arroy::Writer::new(self.dbs.arroy, reg.index, reg.dim as usize);
            let complete = match reg.forest {
                Some(known) => known,
                None => {
                    let held = writer.iter(wtxn).map_err(arroy_err)?.count() as u64;
                    if held != reg.vectors {
                        tracing::warn!(
                            "index {key}: arroy held {held} of its {} vectors (written by an \
                             older aniprint?); planting them again",
                            reg.vectors
                        );
                        writer.clear(wtxn).map_err(arroy_err)?;
                    }
                    held == reg.vectors
                }
            };
            if !complete {
                self.plant(wtxn, &writer, &reg, progress)?;
            }
            if reg.forest != Some(true) {
                reg.forest = Some(true);
                self.save(wtxn, &reg)?;
            }
            if !writer.need_build(wtxn).map_err(arroy_err)? {
                return Ok(false);
            }
            let mut rng = StdRng::seed_from_u64(self.opts.seed ^ reg.generation);
            let mut builder = writer.builder(&mut rng);
            if let Some(n) = self.opts.n_trees {
                builder.n_trees(n);
            }
            builder
                .cancel(|| progress.is_cancelled())
                .progress(|p| progress.message(&format!("{key}: {:?}", p.main)));
            // One thread: with several, arroy keeps adding trees until its (shared) node
            // count passes the item count, so how many trees a build gets depends on thread
            // timing, and the same vectors gave different forests (and answers) from run to run.
            let serial = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .map_err(|e| Error::Record { what: "vector index build", reason: e.to_string() })?;
            serial.install(|| builder.build(wtxn)).map_err(arroy_err)?;
            Ok(true)
        })?;
        let seconds = started.elapsed().as_secs_f64();
        let trees = self.read(|rtxn| self.n_trees(rtxn, &reg))?;
        let items = self.read(|r| Ok(self.registered(r, key)?.map_or(0, |r| r.vectors)))?;
        if changed {
            tracing::info!("built {key}: {items} vectors, {trees} trees in {seconds:.2} s");
        }
        Ok(BuildStats { changed, items, trees, seconds })
    }

    /// Trees in the forest of `reg` (0 when it has none or it lags).
    fn n_trees(&self, rtxn: &RoTxn<'_>, reg: &Registered) -> Result<usize> {
        match arroy::Reader::open(rtxn, reg.index, self.dbs.arroy) {
            Ok(r) => Ok(r.n_trees()),
            Err(arroy::Error::MissingMetadata(_) | arroy::Error::NeedBuild(_)) => Ok(0),
            Err(e) => Err(arroy_err(e)),
        }
    }

    /// Copy every stored vector of `reg` into arroy (whose items for it must be empty), a
    /// piece at a time (LMDB values cannot be borrowed across the writes); cancellable
    /// between pieces, which aborts the caller's transaction.
    fn plant(
        &self,
        wtxn: &mut RwTxn<'_>,
        writer: &arroy::Writer<Euclidean>,
        reg: &Registered,
        progress: &dyn Progress,
    ) -> Result<()> {
        let keys = self.dbs.piece_keys(wtxn, &reg.index.to_be_bytes())?;
        progress.message(&format!("{}: copying {} vectors into arroy", reg.key, reg.vectors));
        let mut buf = Vec::new();
        for key in keys {
            progress.check()?;
            let Some(v) = self.dbs.pieces.get(wtxn, &key)? else { continue };
            let (first, rows) = reg.rows(v, &mut buf)?;
            let data = rows.to_vec();
            // `first..` would step past u32::MAX after a piece ending on the last item id.
            for (i, row) in (first..=u32::MAX).zip(data.chunks_exact(reg.dim as usize)) {
                writer.add_item(wtxn, i, row).map_err(arroy_err)?;
            }
        }
        Ok(())
    }

    /// [`VectorStore::build_all`] reporting to `progress`.
    pub fn build_all_with(&self, progress: &dyn Progress) -> Result<Vec<(IndexKey, BuildStats)>> {
        let keys: Vec<IndexKey> =
            self.read(|r| self.all_registered(r))?.into_iter().map(|r| r.key).collect();
        self.build_keys_with(&keys, progress)
    }

    /// [`CatalogIndex::build_with`] for each of `keys` that exists (a search builds only the
    /// indexes it reads: another model's or grid's would gain a forest nothing searches).
    pub fn build_keys_with(
        &self,
        keys: &[IndexKey],
        progress: &dyn Progress,
    ) -> Result<Vec<(IndexKey, BuildStats)>> {
        let known: Vec<IndexKey> =
            self.read(|r| self.all_registered(r))?.into_iter().map(|r| r.key).collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys.iter().filter(|k| known.contains(k)) {
            progress.check()?;
            progress.item(&key.to_string());
            let stats = self.build_with(key, progress)?;
            out.push((key.clone(), stats));
        }
        Ok(out)
    }

    /// Drop the arroy forests no search would read: those of every model whose largest index
    /// is below [`AUTO_ANN_FROM`](crate::index::AUTO_ANN_FROM) segments (catalogs written
    /// before forests were built on demand carry one per index). The indexes keep their
    /// vectors; a later `--search ann` plants and builds the forest again. One transaction;
    /// returns the keys whose forest was dropped.
    pub fn drop_unsearched_forests(&self) -> Result<Vec<IndexKey>> {
        let regs = self.read(|r| self.all_registered(r))?;
        let mut largest: HashMap<&str, u64> = HashMap::new();
        for r in &regs {
            let most = largest.entry(r.key.model.as_str()).or_default();
            *most = (*most).max(r.vectors);
        }
        let unsearched = |r: &Registered| {
            r.forest != Some(false)
                && SearchKind::for_size(largest[r.key.model.as_str()]) == SearchKind::Exact
        };
        let keys: Vec<IndexKey> =
            regs.iter().filter(|r| unsearched(r)).map(|r| r.key.clone()).collect();
        if keys.is_empty() {
            return Ok(keys);
        }
        self.catalog().write_txn(|wtxn| {
            for key in &keys {
                let Some(mut reg) = self.registered(wtxn, key)? else { continue };
                let writer = arroy::Writer::new(self.dbs.arroy, reg.index, reg.dim as usize);
                writer.clear(wtxn).map_err(arroy_err)?;
                reg.forest = Some(false);
                self.save(wtxn, &reg)?;
            }
            Ok(())
        })?;
        Ok(keys)
    }

    /// Rewrite every index not stored at `to` in that precision (one transaction per index,
    /// so a cut-short run leaves each index whole in one precision or the other). Its arroy
    /// forest, if it has one, keeps its own `f32` copy. Returns the indexes converted.
    pub fn convert_precision(&self, to: Precision) -> Result<Vec<IndexKey>> {
        let regs = self.read(|r| self.all_registered(r))?;
        let mut done = Vec::new();
        for key in regs.into_iter().filter(|r| r.precision != to).map(|r| r.key) {
            let converted = self.catalog().write_txn(|wtxn| {
                // Read again inside the transaction: another writer may have come between.
                let Some(mut reg) = self.registered(wtxn, &key)? else { return Ok(false) };
                if reg.precision == to {
                    return Ok(false);
                }
                let (mut buf, mut value) = (Vec::new(), Vec::new());
                for pkey in self.dbs.piece_keys(wtxn, &reg.index.to_be_bytes())? {
                    let Some(v) = self.dbs.pieces.get(wtxn, &pkey)? else { continue };
                    value.clear();
                    value.extend_from_slice(&v[..PIECE_HEADER]);
                    let rows = reg.rows(v, &mut buf)?.1;
                    check_range(&piece_of_key(&pkey), rows, reg.dim as usize, to)?;
                    to.encode(rows, &mut value);
                    self.dbs.pieces.put(wtxn, &pkey, &value)?;
                }
                reg.precision = to;
                reg.generation += 1;
                self.save(wtxn, &reg)?;
                Ok(true)
            })?;
            if converted {
                done.push(key);
            }
        }
        Ok(done)
    }

    /// Remove every index of `model` (its vectors, item ranges, forests and registry records)
    /// in one transaction: what a catalog keeps of a fingerprint model it no longer uses once
    /// its episodes were ingested again with a new one. Returns the indexes and vectors removed.
    pub fn drop_model(&self, model: &str) -> Result<(usize, u64)> {
        let done = self.catalog().write_txn(|wtxn| {
            let regs: Vec<Registered> =
                self.all_registered(wtxn)?.into_iter().filter(|r| r.key.model == model).collect();
            let mut vectors = 0;
            for reg in &regs {
                for key in self.dbs.piece_keys(wtxn, &reg.index.to_be_bytes())? {
                    let Some(v) = self.dbs.pieces.get(wtxn, &key)? else { continue };
                    let (first, _) = piece_header(v)?;
                    self.dbs.pieces.delete(wtxn, &key)?;
                    self.dbs.items.delete(wtxn, &first)?;
                }
                arroy::Writer::new(self.dbs.arroy, reg.index, reg.dim as usize)
                    .clear(wtxn)
                    .map_err(arroy_err)?;
                self.dbs.registry.delete(wtxn, &registry_key(&reg.key))?;
                vectors += reg.vectors;
            }
            Ok((regs.len(), vectors))
        })?;
        // A key registered again later starts at generation 0, which a cached copy could match.
        self.clear_cache();
        Ok(done)
    }

    /// The pieces stored in `key` with their number of vectors, sorted by piece id.
    pub fn pieces(&self, key: &IndexKey) -> Result<Vec<(String, u32)>> {
        self.read(|rtxn| {
            let Some(reg) = self.registered(rtxn, key)? else { return Ok(Vec::new()) };
            self.dbs
                .pieces
                .prefix_iter(rtxn, &reg.index.to_be_bytes())?
                .map(|r| {
                    let (k, v) = r?;
                    Ok((piece_of_key(k), piece_header(v)?.1))
                })
                .collect()
        })
    }

    /// The stored vectors of `piece` in `key`, in segment order; `None` if it has none there.
    pub fn piece_vectors(&self, key: &IndexKey, piece: &str) -> Result<Option<Fingerprints>> {
        self.read(|rtxn| {
            let Some(reg) = self.registered(rtxn, key)? else { return Ok(None) };
            let Some(v) = self.dbs.pieces.get(rtxn, &piece_key(reg.index, piece))? else {
                return Ok(None);
            };
            let mut buf = Vec::new();
            let data = reg.rows(v, &mut buf)?.1.to_vec();
            Ok(Some(Fingerprints { dim: reg.dim as usize, data }))
        })
    }

    /// Where item `item` came from, and in which index; `None` if no stored vector has that id.
    pub fn segment(&self, item: u32) -> Result<Option<(IndexKey, SegmentRef)>> {
        self.read(|rtxn| {
            let Some((index, seg)) = self.dbs.resolve(rtxn, item)? else { return Ok(None) };
            let key = self.all_registered(rtxn)?.into_iter().find(|r| r.index == index);
            Ok(key.map(|r| (r.key, seg)))
        })
    }

    /// Pages in use by each part of the store.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        self.read(|rtxn| {
            let size = |s: heed::DatabaseStat| s.non_free_page_size() as u64;
            Ok(DiskUsage {
                vectors: size(self.dbs.pieces.stat(rtxn)?),
                mapping: size(self.dbs.items.stat(rtxn)?)
                    + size(self.dbs.registry.stat(rtxn)?)
                    + size(self.dbs.meta.stat(rtxn)?),
                arroy: size(self.dbs.arroy.stat(rtxn)?),
            })
        })
    }

    /// Drop the in-memory copies used by [`ExactSource::Memory`] (they reload on next use).
    pub fn clear_cache(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// Exact search of `queries` in the index `reg`.
    fn search_exact(
        &self,
        reg: &Registered,
        queries: &Fingerprints,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>> {
        match self.opts.exact_source {
            ExactSource::Mapped => self.search_exact_mapped(reg, queries, k),
            ExactSource::Memory => {
                let matrix = self.matrix(reg)?;
                Ok(search_matrix(&matrix, queries, k))
            }
        }
    }

    /// Scan the LMDB values in place. Each parallel task opens its own read transaction over its
    /// share of the pieces (LMDB read transactions cannot cross threads).
    fn search_exact_mapped(
        &self,
        reg: &Registered,
        queries: &Fingerprints,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>> {
        let keys = self.read(|rtxn| self.dbs.piece_keys(rtxn, &reg.index.to_be_bytes()))?;
        let nq = queries.len();
        let tasks = (rayon::current_num_threads() * 4).max(1);
        let chunk = keys.len().div_ceil(tasks).max(1);
        let (env, dbs) = (self.catalog().env(), self.dbs);
        let partial: Vec<Vec<TopK>> = keys
            .par_chunks(chunk)
            .enumerate()
            .map(|(c, keys)| -> Result<Vec<TopK>> {
                let mut tops = vec![TopK::new(k); nq];
                let mut buf = Vec::new();
                let rtxn = env.read_txn()?;
                for (j, pkey) in keys.iter().enumerate() {
                    let Some(value) = dbs.pieces.get(&rtxn, pkey)? else { continue };
                    let (first, rows) = reg.rows(value, &mut buf)?;
                    let block = (c * chunk + j) as u32;
                    flat::scan_block(&queries.data, queries.dim, block, first, rows, &mut tops);
                }
                Ok(tops)
            })
            .collect::<Result<_>>()?;
        let tops = partial.into_iter().reduce(flat::merge_all).unwrap_or_default();
        Ok(to_hits(tops, nq, |b| piece_of_key(&keys[b as usize])))
    }

    /// The in-memory copy of index `reg`, reloaded if a write happened since it was taken.
    fn matrix(&self, reg: &Registered) -> Result<Arc<FlatMatrix>> {
        let mut cache =
            self.cache.lock().map_err(|_| Error::Invalid("vector cache poisoned".into()))?;
        let rtxn = self.catalog().env().read_txn()?;
        let Some(now) = self.registered(&rtxn, &reg.key)? else {
            return Err(Error::NotFound { kind: "vector index", id: reg.key.to_string() });
        };
        // The number and the generation alone could match an index another process dropped
        // and whose number a new one took: the key must match too.
        if let Some((key, m)) = cache.get(&now.index)
            && *key == now.key
            && m.generation == now.generation
        {
            return Ok(Arc::clone(m));
        }
        let dim = now.dim as usize;
        // The registry's count is a hint (a corrupt record must not ask for exabytes).
        let mut data = Vec::new();
        data.try_reserve_exact((now.vectors as usize).saturating_mul(dim))
            .map_err(|_| corrupt(&format!("{} vectors do not fit in memory", now.vectors)))?;
        let mut blocks = Vec::new();
        let mut buf = Vec::new();
        for r in self.dbs.pieces.prefix_iter(&rtxn, &now.index.to_be_bytes())? {
            let (k, v) = r?;
            let (first_item, rows) = now.rows(v, &mut buf)?;
            let n = rows.len() / dim.max(1);
            let start_row = data.len() / dim.max(1);
            data.extend_from_slice(rows);
            blocks.push(BlockMeta { piece: piece_of_key(k), first_item, start_row, n });
        }
        let m = Arc::new(FlatMatrix { generation: now.generation, dim, data, blocks });
        cache.insert(now.index, (now.key.clone(), Arc::clone(&m)));
        Ok(m)
    }

    /// arroy search; `None` when the forest is not built for the latest writes.
    fn search_ann(
        &self,
        reg: &Registered,
        queries: &Fingerprints,
        k: usize,
        search_k: usize,
        retry: Option<(usize, f32)>,
        wider_than: Option<usize>,
    ) -> Result<Option<Vec<Vec<Hit>>>> {
        let (env, dbs) = (self.catalog().env(), self.dbs);
        let n_trees = {
            let rtxn = env.read_txn()?;
            match arroy::Reader::open(&rtxn, reg.index, self.dbs.arroy) {
                Ok(r) => r.n_trees(),
                Err(arroy::Error::MissingMetadata(_) | arroy::Error::NeedBuild(_)) => {
                    return Ok(None);
                }
                Err(e) => return Err(arroy_err(e)),
            }
        };
        let budget = |search_k: usize| {
            NonZeroUsize::new(search_k.max(k.saturating_mul(n_trees)).max(1))
                .unwrap_or(NonZeroUsize::MIN)
        };
        // A "wide" pass no wider than the first (arroy's floor is k x n_trees) would only
        // repeat it.
        if wider_than.is_some_and(|first| budget(search_k) <= budget(first)) {
            return Ok(None);
        }
        let search_k = budget(search_k);
        let retry = retry
            .filter(|&(retry_k, _)| retry_k > search_k.get())
            .map(|(retry_k, far)| (budget(retry_k), far));
        let nq = queries.len();
        let retried = AtomicU64::new(0);
        // A query costs milliseconds: one per task balances best; long batches share a
        // transaction and reader among a few hundred.
        let chunk = (nq / (rayon::current_num_threads() * 8)).max(1);
        let parts: Vec<Option<Vec<Vec<Hit>>>> = queries
            .data
            .par_chunks(chunk * queries.dim)
            .map(|qs| -> Result<Option<Vec<Vec<Hit>>>> {
                let rtxn = env.read_txn()?;
                let reader = match arroy::Reader::open(&rtxn, reg.index, dbs.arroy) {
                    Ok(r) => r,
                    Err(arroy::Error::MissingMetadata(_) | arroy::Error::NeedBuild(_)) => {
                        return Ok(None);
                    }
                    Err(e) => return Err(arroy_err(e)),
                };
                let mut out = Vec::with_capacity(qs.len() / queries.dim);
                for q in qs.chunks_exact(queries.dim) {
                    let mut found =
                        reader.nns(k).search_k(search_k).by_vector(&rtxn, q).map_err(arroy_err)?;
                    if let Some((retry_k, far)) = retry
                        && found.first().is_none_or(|&(_, d)| d > far)
                    {
                        found = reader
                            .nns(k)
                            .search_k(retry_k)
                            .by_vector(&rtxn, q)
                            .map_err(arroy_err)?;
                        retried.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut hits = Vec::with_capacity(found.len());
                    for (item, distance) in found {
                        if let Some((index, seg)) = dbs.resolve(&rtxn, item)?
                            && index == reg.index
                        {
                            hits.push(Hit {
                                item,
                                piece: seg.piece,
                                segment: seg.segment,
                                distance,
                            });
                        }
                    }
                    out.push(hits);
                }
                Ok(Some(out))
            })
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(nq);
        for part in parts {
            match part {
                Some(hits) => out.extend(hits),
                None => return Ok(None),
            }
        }
        self.ann_counts[1].fetch_add(retried.into_inner(), Ordering::Relaxed);
        Ok(Some(out))
    }
}

impl<C: Borrow<Catalog> + Send + Sync> VectorStore for CatalogIndex<C> {
    fn add_piece(&self, key: &IndexKey, piece: &str, vectors: &Fingerprints) -> Result<()> {
        check_vectors(piece, vectors)?;
        self.catalog().write_txn(|wtxn| self.add_piece_in(wtxn, key, piece, vectors))
    }

    fn remove_piece(&self, key: &IndexKey, piece: &str) -> Result<bool> {
        self.catalog().write_txn(|wtxn| self.remove_piece_in(wtxn, key, piece))
    }

    fn remove_pieces_with_prefix(&self, prefix: &str) -> Result<u64> {
        self.catalog().write_txn(|wtxn| self.remove_pieces_with_prefix_in(wtxn, prefix))
    }

    fn build_all(&self) -> Result<()> {
        self.build_all_with(&NoProgress).map(|_| ())
    }

    fn search_batch(
        &self,
        key: &IndexKey,
        queries: &Fingerprints,
        k: usize,
        kind: SearchKind,
    ) -> Result<Vec<Vec<Hit>>> {
        let nq = queries.len();
        let Some(reg) = self.read(|r| self.registered(r, key))? else {
            return Ok(vec![Vec::new(); nq]);
        };
        if nq > 0 && queries.dim != reg.dim as usize {
            return Err(Error::Invalid(format!(
                "query vectors are {}-d, index {key} holds {}-d vectors",
                queries.dim, reg.dim
            )));
        }
        if nq == 0 || k == 0 || reg.vectors == 0 {
            return Ok(vec![Vec::new(); nq]);
        }
        let mut hits = match kind {
            SearchKind::Exact => self.search_exact(&reg, queries, k),
            SearchKind::Ann => match self.search_ann(
                &reg,
                queries,
                k,
                self.opts.search_k,
                (self.opts.retry == Retry::Far)
                    .then_some((self.opts.retry_search_k, self.opts.retry_distance)),
                None,
            )? {
                Some(hits) => {
                    self.ann_counts[0].fetch_add(nq as u64, Ordering::Relaxed);
                    Ok(hits)
                }
                None => {
                    if reg.forest == Some(false) {
                        tracing::warn!(
                            "index {key} has no arroy forest yet; searching exactly (an \
                             index build plants one)"
                        );
                    } else {
                        tracing::warn!(
                            "index {key} has changed since its arroy trees were built; \
                             searching exactly (run the index build to get fast searches back)"
                        );
                    }
                    self.search_exact(&reg, queries, k)
                }
            },
        }?;
        // A silent segment's vector is zero (`Fingerprinter::fingerprint`): it has no
        // neighbours, or an upload's silence would match every episode's.
        for (i, h) in hits.iter_mut().enumerate() {
            if queries.row(i).iter().all(|&x| x == 0.0) {
                h.clear();
            }
        }
        Ok(hits)
    }

    fn len(&self, key: &IndexKey) -> Result<u64> {
        self.read(|r| Ok(self.registered(r, key)?.map_or(0, |r| r.vectors)))
    }

    fn keys(&self) -> Result<Vec<IndexKey>> {
        let mut keys: Vec<IndexKey> =
            self.read(|r| self.all_registered(r))?.into_iter().map(|r| r.key).collect();
        keys.sort();
        Ok(keys)
    }
}

/// Exact search over an in-memory copy.
fn search_matrix(m: &FlatMatrix, queries: &Fingerprints, k: usize) -> Vec<Vec<Hit>> {
    let nq = queries.len();
    let tops = m
        .blocks
        .par_iter()
        .enumerate()
        .fold(
            || vec![TopK::new(k); nq],
            |mut tops, (b, meta)| {
                let rows = m.rows(meta);
                flat::scan_block(&queries.data, m.dim, b as u32, meta.first_item, rows, &mut tops);
                tops
            },
        )
        .reduce(|| vec![TopK::new(k); nq], flat::merge_all);
    to_hits(tops, nq, |b| m.blocks[b as usize].piece.clone())
}

fn to_hits(tops: Vec<TopK>, nq: usize, piece: impl Fn(u32) -> String) -> Vec<Vec<Hit>> {
    let mut out: Vec<Vec<Hit>> = tops
        .into_iter()
        .map(|t| {
            t.into_vec()
                .into_iter()
                .map(|e| Hit {
                    item: e.item,
                    piece: piece(e.block),
                    segment: e.segment,
                    distance: e.d2.max(0.0).sqrt(),
                })
                .collect()
        })
        .collect();
    out.resize(nq, Vec::new());
    out
}

/// Whether a segment's nearest hit lies on a voted alignment: same piece, and an offset (in
/// hops, with the copy's `shift`) within the voting tolerance plus half a hop, as copies of
/// other phases sit between the winner's grid points.
fn on_alignment(best: &PhasedCandidate, shift: f64, q: usize, hits: &[Hit]) -> bool {
    hits.first().is_some_and(|h| {
        let offset = f64::from(h.segment) - q as f64 - shift;
        h.piece == best.candidate.piece && (offset - best.offset_hops).abs() <= 1.5
    })
}

fn check_vectors(piece: &str, v: &Fingerprints) -> Result<()> {
    if piece.is_empty() {
        return Err(Error::Invalid("a piece id cannot be empty".into()));
    }
    if v.dim == 0 || !v.data.len().is_multiple_of(v.dim) {
        return Err(Error::Invalid(format!(
            "piece {piece}: {} floats do not make {}-d vectors",
            v.data.len(),
            v.dim
        )));
    }
    if let Some(i) = v.data.iter().position(|x| !x.is_finite()) {
        return Err(Error::Invalid(format!(
            "piece {piece}: segment {} has a non-finite value",
            i / v.dim
        )));
    }
    Ok(())
}

/// Values an index of `precision` cannot hold (f16 tops out at 65,504; fingerprints are unit
/// vectors, but the store takes any finite vectors).
fn check_range(piece: &str, data: &[f32], dim: usize, precision: Precision) -> Result<()> {
    let max = precision.max_value();
    match data.iter().position(|x| x.abs() > max) {
        Some(i) => Err(Error::Invalid(format!(
            "piece {piece}: segment {} has a value beyond what a {precision:?} index holds \
             ({max})",
            i / dim.max(1)
        ))),
        None => Ok(()),
    }
}

fn registry_key(key: &IndexKey) -> String {
    // The plain grid keeps the key catalogs written before grids existed.
    match key.offset {
        0 => format!("{}\0{}", key.model, key.stem),
        o => format!("{}\0{}\0{o}", key.model, key.stem),
    }
}

fn piece_key(index: u16, piece: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + piece.len());
    k.extend_from_slice(&index.to_be_bytes());
    k.extend_from_slice(piece.as_bytes());
    k
}

fn piece_of_key(k: &[u8]) -> String {
    String::from_utf8_lossy(k.get(2..).unwrap_or_default()).into_owned()
}

fn corrupt(reason: &str) -> Error {
    Error::Record { what: "vector index", reason: reason.into() }
}

/// (first item, rows) of an `index.pieces` value.
fn piece_header(v: &[u8]) -> Result<(u32, u32)> {
    match v {
        [a, b, c, d, e, f, g, h, ..] => {
            Ok((u32::from_le_bytes([*a, *b, *c, *d]), u32::from_le_bytes([*e, *f, *g, *h])))
        }
        _ => Err(corrupt("piece value shorter than its header")),
    }
}

fn range_value(index: u16, n: u32, piece: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + piece.len());
    v.extend_from_slice(&index.to_le_bytes());
    v.extend_from_slice(&n.to_le_bytes());
    v.extend_from_slice(piece.as_bytes());
    v
}

fn decode_range(v: &[u8]) -> Result<(u16, u32, &str)> {
    match v {
        [a, b, c, d, e, f, rest @ ..] => Ok((
            u16::from_le_bytes([*a, *b]),
            u32::from_le_bytes([*c, *d, *e, *f]),
            std::str::from_utf8(rest).map_err(|_| corrupt("piece id is not UTF-8"))?,
        )),
        _ => Err(corrupt("item range shorter than its header")),
    }
}

/// arroy's errors in aniprint's terms; LMDB errors stay LMDB errors so that a full map is grown
/// and the write retried by [`Catalog::write_txn`].
fn arroy_err(e: arroy::Error) -> Error {
    match e {
        arroy::Error::Heed(h) => Error::Catalog(h),
        arroy::Error::Io(io) => Error::io(std::env::temp_dir(), io),
        arroy::Error::BuildCancelled => Error::Cancelled,
        arroy::Error::InvalidVecDimension { expected, received } => {
            Error::Invalid(format!("vector has {received} dimensions, the index {expected}"))
        }
        other => Error::Record { what: "vector index (arroy)", reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::index::bench::{perturb, random_unit};

    fn piece(rng: &mut StdRng, n: usize, dim: usize) -> Fingerprints {
        Fingerprints { dim, data: (0..n).flat_map(|_| random_unit(rng, dim)).collect() }
    }

    /// Same shape, every value within f16 rounding (2^-11 relative) of the other's.
    fn assert_close(got: &Fingerprints, want: &Fingerprints) {
        assert_eq!((got.dim, got.data.len()), (want.dim, want.data.len()));
        for (g, w) in got.data.iter().zip(&want.data) {
            assert!((g - w).abs() <= w.abs() / 2048.0 + 1e-7, "{g} vs {w}");
        }
    }

    fn key(stem: super::super::Stem) -> IndexKey {
        IndexKey::new("test-model", stem)
    }

    fn top1(index: &impl VectorStore, k: &IndexKey, q: &[f32], kind: SearchKind) -> Hit {
        index.search(k, q, 1, kind).unwrap().remove(0)
    }

    #[test]
    fn a_grid_is_an_index_of_its_own_and_the_plain_grid_keeps_the_old_key() {
        use super::super::Stem;
        let plain = key(Stem::Mix);
        let half = key(Stem::Mix).at_offset(2000);
        // Catalogs written before grids existed keep their registry keys and JSON.
        assert_eq!(registry_key(&plain), "test-model\0mix");
        assert_eq!(registry_key(&half), concat!("test-model\0mix\0", "2000"));
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"model":"test-model","stem":"mix"}"#
        );
        let old: IndexKey = serde_json::from_str(r#"{"model":"test-model","stem":"mix"}"#).unwrap();
        assert_eq!(old, plain);
        assert_eq!(half.plain(), plain);
        assert_eq!(half.to_string(), "test-model/mix+2000");

        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let (a, b) = (piece(&mut rng, 10, 16), piece(&mut rng, 9, 16));
        index.add_piece(&half, "aaaa-000000000", &b).unwrap();
        index.add_piece(&plain, "aaaa-000000000", &a).unwrap();
        // Sorted plain grid first, each with its own vectors; an episode leaves both.
        assert_eq!(index.keys().unwrap(), vec![plain.clone(), half.clone()]);
        assert_close(&index.piece_vectors(&plain, "aaaa-000000000").unwrap().unwrap(), &a);
        assert_close(&index.piece_vectors(&half, "aaaa-000000000").unwrap().unwrap(), &b);
        assert_eq!(index.remove_episode("aaaa").unwrap(), 2);
        assert!(index.piece_vectors(&half, "aaaa-000000000").unwrap().is_none());
    }

    #[test]
    fn arroy_holds_nothing_until_the_first_build() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let mix = key(super::super::Stem::Mix);
        let mut rng = StdRng::seed_from_u64(4);
        let (a, b, c) = (piece(&mut rng, 30, 16), piece(&mut rng, 20, 16), piece(&mut rng, 5, 16));
        index.add_piece(&mix, "aaaa-000000000", &a).unwrap();
        index.add_piece(&mix, "bbbb-000000000", &b).unwrap();
        index.remove_piece(&mix, "bbbb-000000000").unwrap();
        assert_eq!(index.disk_usage().unwrap().arroy, 0, "a second copy before any build");
        assert!(index.needs_build(&mix).unwrap());

        // The first build plants what is stored then, and only that.
        let stats = index.build(&mix).unwrap();
        assert_eq!((stats.changed, stats.items), (true, 30));
        assert!(stats.trees > 0 && index.disk_usage().unwrap().arroy > 0);
        assert!(!index.needs_build(&mix).unwrap());
        let all = index.search(&mix, a.row(0), 100, SearchKind::Ann).unwrap();
        assert_eq!(all.len(), 30);
        assert!(all.iter().all(|h| h.piece == "aaaa-000000000"));

        // From then on writes go to arroy too.
        index.add_piece(&mix, "cccc-000000000", &c).unwrap();
        assert!(index.needs_build(&mix).unwrap());
        index.build(&mix).unwrap();
        let h = top1(&index, &mix, c.row(2), SearchKind::Ann);
        assert_eq!((h.piece.as_str(), h.segment), ("cccc-000000000", 2));
        assert!(!index.build(&mix).unwrap().changed);

        // Records from before the flag existed: their binary put every vector it stored into
        // arroy, which the next build checks.
        let old = r#"{"key":{"model":"m","stem":"mix"},"index":0,"dim":16,"vectors":1,"pieces":1,"generation":1}"#;
        let old: Registered = serde_json::from_str(old).unwrap();
        assert!(old.forest.is_none() && old.mirrored());
    }

    #[test]
    fn dropping_a_model_removes_its_indexes_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let mix = key(super::super::Stem::Mix);
        let old = IndexKey { model: "old-model".into(), ..mix.clone() };
        let mut rng = StdRng::seed_from_u64(11);
        let (a, b) = (piece(&mut rng, 40, 16), piece(&mut rng, 30, 8));
        index.add_piece(&mix, "aaaa-000000000", &a).unwrap();
        index.add_piece(&old, "aaaa-000000000", &b).unwrap();
        index.build(&old).unwrap();
        assert_eq!(index.drop_model("old-model").unwrap(), (1, 30));
        assert_eq!(index.keys().unwrap(), vec![mix.clone()]);
        assert_eq!(index.disk_usage().unwrap().arroy, 0);
        assert!(index.pieces(&old).unwrap().is_empty());
        let h = top1(&index, &mix, a.row(3), SearchKind::Exact);
        assert_eq!((h.piece.as_str(), h.segment), ("aaaa-000000000", 3));
        // Items 0-39 are the kept index's, 40-69 were the dropped one's.
        assert_eq!(index.segment(39).unwrap().map(|(k, s)| (k, s.segment)), Some((mix, 39)));
        assert!(index.segment(40).unwrap().is_none());
        assert_eq!(index.drop_model("old-model").unwrap(), (0, 0));
    }

    #[test]
    fn compact_drops_forests_nothing_searches() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let mix = key(super::super::Stem::Mix);
        let mut rng = StdRng::seed_from_u64(9);
        let a = piece(&mut rng, 400, 16);
        {
            let index = CatalogIndex::open(&cat).unwrap();
            index.add_piece(&mix, "aaaa-000000000", &a).unwrap();
            index.build(&mix).unwrap();
            assert!(index.disk_usage().unwrap().arroy > 0);
        }
        let (dropped, _) =
            cat.compact(|c| CatalogIndex::open(c)?.drop_unsearched_forests()).unwrap();
        assert_eq!(dropped, vec![mix.clone()]);

        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        assert_eq!(index.disk_usage().unwrap().arroy, 0);
        assert!(index.drop_unsearched_forests().unwrap().is_empty());
        let h = top1(&index, &mix, a.row(5), SearchKind::Exact);
        assert_eq!((h.piece.as_str(), h.segment), ("aaaa-000000000", 5));
        // An approximate search plants the forest again.
        assert!(index.needs_build(&mix).unwrap());
        assert_eq!(index.build(&mix).unwrap().items, 400);
        let h = top1(&index, &mix, a.row(7), SearchKind::Ann);
        assert_eq!((h.piece.as_str(), h.segment), ("aaaa-000000000", 7));
    }

    /// A catalog an older binary wrote to after this one: its record lost the flag, and arroy
    /// got only the vectors that binary stored. The next build must plant the rest.
    #[test]
    fn a_forest_missing_vectors_is_planted_again() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let mix = key(super::super::Stem::Mix);
        let mut rng = StdRng::seed_from_u64(5);
        let (a, b) = (piece(&mut rng, 30, 16), piece(&mut rng, 20, 16));
        index.add_piece(&mix, "aaaa-000000000", &a).unwrap();
        // What an older binary leaves: the record re-saved without the flag...
        cat.write_txn(|w| {
            let mut reg = index.registered(w, &mix)?.unwrap();
            reg.forest = None;
            index.save(w, &reg)
        })
        .unwrap();
        // ...and its writes from then on in arroy.
        index.add_piece(&mix, "bbbb-000000000", &b).unwrap();
        assert!(index.needs_build(&mix).unwrap());
        let stats = index.build(&mix).unwrap();
        assert_eq!((stats.changed, stats.items), (true, 50));
        let h = top1(&index, &mix, a.row(4), SearchKind::Ann);
        assert_eq!((h.piece.as_str(), h.segment), ("aaaa-000000000", 4));
        assert_eq!(index.search(&mix, a.row(4), 100, SearchKind::Ann).unwrap().len(), 50);
        // Now known complete: nothing to do, and no write transaction to wait for.
        assert!(!index.needs_build(&mix).unwrap());
        assert!(!index.build(&mix).unwrap().changed);
    }

    #[test]
    fn add_remove_readd() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let mix = key(super::super::Stem::Mix);
        let voice = key(super::super::Stem::Voice);
        let mut rng = StdRng::seed_from_u64(1);
        let a = piece(&mut rng, 30, 16);
        let b = piece(&mut rng, 20, 16);
        index.add_piece(&mix, "aaaa-000000000", &a).unwrap();
        index.add_piece(&mix, "bbbb-000000000", &b).unwrap();
        index.add_piece(&voice, "aaaa-000000000", &b).unwrap();
        assert_eq!(index.len(&mix).unwrap(), 50);
        assert_eq!(index.len(&voice).unwrap(), 20);
        assert_eq!(index.keys().unwrap(), vec![mix.clone(), voice.clone()]);

        let h = top1(&index, &mix, a.row(7), SearchKind::Exact);
        assert_eq!((h.piece.as_str(), h.segment), ("aaaa-000000000", 7));
        assert!(h.distance < 1e-3);
        assert_eq!(
            index.segment(h.item).unwrap(),
            Some((mix.clone(), SegmentRef { piece: "aaaa-000000000".into(), segment: 7 }))
        );

        // Not built yet: ann falls back to exact.
        assert!(index.needs_build(&mix).unwrap());
        assert_eq!(top1(&index, &mix, a.row(7), SearchKind::Ann).segment, 7);
        index.build_all().unwrap();
        assert!(!index.needs_build(&mix).unwrap());
        assert_eq!(top1(&index, &mix, a.row(7), SearchKind::Ann).item, h.item);

        // Re-adding replaces: same count, fresh ids, old ids resolve to nothing.
        let a2 = piece(&mut rng, 30, 16);
        index.add_piece(&mix, "aaaa-000000000", &a2).unwrap();
        assert_eq!(index.len(&mix).unwrap(), 50);
        assert_eq!(
            index.pieces(&mix).unwrap(),
            vec![("aaaa-000000000".to_string(), 30), ("bbbb-000000000".to_string(), 20)]
        );
        assert_eq!(index.segment(h.item).unwrap(), None);
        let h2 = top1(&index, &mix, a2.row(7), SearchKind::Exact);
        assert_eq!((h2.piece.as_str(), h2.segment), ("aaaa-000000000", 7));
        assert_ne!(h2.item, h.item);
        index.build(&mix).unwrap();
        let all = index.search(&mix, a.row(7), 50, SearchKind::Ann).unwrap();
        assert!(all.iter().all(|x| x.item != h.item), "a replaced vector came back");

        // Removing an episode removes its pieces from every index, and only those.
        assert_eq!(index.remove_episode("aaaa").unwrap(), 2);
        assert_eq!(index.len(&mix).unwrap(), 20);
        assert_eq!(index.len(&voice).unwrap(), 0);
        index.build_all().unwrap();
        for kind in [SearchKind::Exact, SearchKind::Ann] {
            let all = index.search(&mix, a2.row(3), 100, kind).unwrap();
            assert_eq!(all.len(), 20);
            assert!(all.iter().all(|x| x.piece == "bbbb-000000000"), "{kind:?}");
            assert!(index.search(&voice, b.row(0), 5, kind).unwrap().is_empty());
        }
        assert!(!index.remove_piece(&mix, "aaaa-000000000").unwrap());
        assert!(matches!(index.remove_pieces_with_prefix(""), Err(Error::Invalid(_))));
    }

    #[test]
    fn a_silent_segment_has_no_neighbours_not_even_stored_silence() {
        let mut rng = StdRng::seed_from_u64(14);
        let mut stored = piece(&mut rng, 20, 16);
        stored.data[5 * 16..6 * 16].fill(0.0); // segment 5 was silence
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let k = key(super::super::Stem::Mix);
        index.add_piece(&k, "aaaa-000000000", &stored).unwrap();
        index.build(&k).unwrap();
        let mut q = Fingerprints { dim: 16, data: vec![0.0; 32] };
        q.data[16..].copy_from_slice(stored.row(3));
        for kind in [SearchKind::Exact, SearchKind::Ann] {
            let hits = index.search_batch(&k, &q, 3, kind).unwrap();
            assert!(hits[0].is_empty(), "{kind:?}: {:?}", hits[0]);
            assert_eq!(hits[1][0].segment, 3, "{kind:?}");
        }
    }

    #[test]
    fn half_float_indexes_take_half_the_space_and_find_the_same() {
        let mut rng = StdRng::seed_from_u64(12);
        let pieces: Vec<Fingerprints> = (0..6).map(|_| piece(&mut rng, 300, 128)).collect();
        let queries: Vec<Vec<f32>> =
            (0..40).map(|i| perturb(&mut rng, pieces[i % 6].row(i * 7), 0.5)).collect();
        let k = key(super::super::Stem::Mix);
        let mut found = Vec::new();
        let mut bytes = Vec::new();
        for precision in [Precision::F32, Precision::F16] {
            let dir = tempfile::tempdir().unwrap();
            let cat = Catalog::open(dir.path()).unwrap();
            let opts = IndexOptions { precision, ..IndexOptions::default() };
            let index = CatalogIndex::with_options(&cat, opts).unwrap();
            for (i, p) in pieces.iter().enumerate() {
                index.add_piece(&k, &format!("{i:04x}-000000000"), p).unwrap();
            }
            bytes.push(index.disk_usage().unwrap().vectors);
            let stored = index.piece_vectors(&k, "0002-000000000").unwrap().unwrap();
            match precision {
                Precision::F32 => assert_eq!(stored, pieces[2]),
                Precision::F16 => assert_close(&stored, &pieces[2]),
            }
            let hits: Vec<(String, u32)> = queries
                .iter()
                .map(|q| top1(&index, &k, q, SearchKind::Exact))
                .map(|h| (h.piece, h.segment))
                .collect();
            found.push(hits);
        }
        assert_eq!(found[0], found[1], "f16 rounding changed a nearest neighbour");
        // 1,800 rows of 128 values: 900 KiB as f32, 450 KiB as f16 (plus pages' slack).
        assert!(bytes[1] * 10 < bytes[0] * 6, "{bytes:?}");
    }

    #[test]
    fn f32_indexes_convert_to_f16_and_old_records_read_as_f32() {
        let old = r#"{"key":{"model":"m","stem":"mix"},"index":0,"dim":16,"vectors":1,"pieces":1,"generation":1,"forest":false}"#;
        assert_eq!(serde_json::from_str::<Registered>(old).unwrap().precision, Precision::F32);

        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        // As a catalog written before half floats: schema 1.
        cat.set_schema_version(1).unwrap();
        let opts = IndexOptions {
            precision: Precision::F32,
            exact_source: ExactSource::Memory,
            ..IndexOptions::default()
        };
        let old = CatalogIndex::with_options(&cat, opts).unwrap();
        let (mix, voice) = (key(super::super::Stem::Mix), key(super::super::Stem::Voice));
        let mut rng = StdRng::seed_from_u64(13);
        let (a, b) = (piece(&mut rng, 200, 32), piece(&mut rng, 50, 32));
        old.add_piece(&mix, "aaaa-000000000", &a).unwrap();
        old.add_piece(&mix, "bbbb-000000000", &b).unwrap();
        old.build(&mix).unwrap();
        let before = top1(&old, &mix, a.row(17), SearchKind::Exact);
        assert_eq!(cat.schema_version().unwrap(), 1, "f32 indexes alone keep schema 1");
        // A handle with the new default: the existing index keeps f32, a new one is f16, which
        // older builds would misread: the catalog says schema 2 from then on.
        let new = CatalogIndex::open(&cat).unwrap();
        new.add_piece(&mix, "cccc-000000000", &b).unwrap();
        new.add_piece(&voice, "aaaa-000000000", &b).unwrap();
        assert_eq!(cat.schema_version().unwrap(), 2);
        assert_eq!(new.piece_vectors(&mix, "cccc-000000000").unwrap().unwrap(), b);
        let usage = new.disk_usage().unwrap().vectors;

        assert_eq!(new.convert_precision(Precision::F16).unwrap(), vec![mix.clone()]);
        assert!(new.convert_precision(Precision::F16).unwrap().is_empty());
        assert_close(&new.piece_vectors(&mix, "aaaa-000000000").unwrap().unwrap(), &a);
        assert!(new.disk_usage().unwrap().vectors < usage);
        // The memory copy was taken before the conversion and reloads after it.
        let after = top1(&old, &mix, a.row(17), SearchKind::Exact);
        assert_eq!((after.piece.as_str(), after.segment), (before.piece.as_str(), 17));
        assert!(after.distance > 0.0 && after.distance < 1e-3, "{}", after.distance);
        // The forest keeps its own f32 copy and still answers.
        new.build(&mix).unwrap();
        let ann = top1(&new, &mix, b.row(3), SearchKind::Ann);
        assert_eq!(ann.segment, 3);
        // Back to f32 is allowed too (values already rounded stay rounded).
        assert_eq!(new.convert_precision(Precision::F32).unwrap().len(), 2);
    }

    #[test]
    fn f16_indexes_refuse_values_they_cannot_hold_and_corrupt_lengths_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let k = key(super::super::Stem::Mix);
        let big = Fingerprints { dim: 4, data: vec![0.0, 1e5, 0.0, 0.0] };
        let err = index.add_piece(&k, "ffff-000000000", &big).unwrap_err();
        assert!(err.to_string().contains("ffff-000000000"), "{err}");
        let mut rng = StdRng::seed_from_u64(14);
        index.add_piece(&k, "aaaa-000000000", &piece(&mut rng, 5, 4)).unwrap();
        // A value cut short (as a bad write or a different binary's format would leave it).
        cat.write_txn(|w| {
            let reg = index.registered(w, &k)?.unwrap();
            let pkey = piece_key(reg.index, "aaaa-000000000");
            let v = index.dbs.pieces.get(w, &pkey)?.unwrap().to_vec();
            index.dbs.pieces.put(w, &pkey, &v[..v.len() - 2])?;
            Ok(())
        })
        .unwrap();
        let err = index.piece_vectors(&k, "aaaa-000000000").unwrap_err();
        assert!(matches!(err, Error::Record { .. }), "{err}");
    }

    /// Pieces bigger than half a page live in LMDB overflow pages, so their vectors can be
    /// scanned in place.
    #[test]
    fn stored_vectors_are_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let k = key(super::super::Stem::Mix);
        let mut rng = StdRng::seed_from_u64(6);
        for (i, n) in [359, 7, 1, 200].into_iter().enumerate() {
            index.add_piece(&k, &format!("{i:012x}-000000000"), &piece(&mut rng, n, 128)).unwrap();
        }
        let rtxn = cat.env().read_txn().unwrap();
        let mut big = 0;
        for r in index.dbs.pieces.iter(&rtxn).unwrap() {
            let (_, v) = r.unwrap();
            if v.len() > 4096 {
                big += 1;
                assert_eq!(v[PIECE_HEADER..].as_ptr() as usize % 4, 0);
            }
        }
        assert_eq!(big, 2);
    }

    #[test]
    fn failed_transaction_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let k = key(super::super::Stem::Mix);
        let mut rng = StdRng::seed_from_u64(2);
        let a = piece(&mut rng, 10, 8);
        let r: Result<()> = cat.write_txn(|w| {
            index.add_piece_in(w, &k, "cccc-000000000", &a)?;
            Err(Error::Invalid("killed".into()))
        });
        assert!(r.is_err());
        assert_eq!(index.len(&k).unwrap(), 0);
        assert!(index.keys().unwrap().is_empty());
        assert!(index.search(&k, a.row(0), 3, SearchKind::Exact).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let k = key(super::super::Stem::Mix);
        let mut rng = StdRng::seed_from_u64(3);
        index.add_piece(&k, "dddd-000000000", &piece(&mut rng, 4, 8)).unwrap();
        let wrong = piece(&mut rng, 4, 6);
        assert!(matches!(index.add_piece(&k, "eeee-000000000", &wrong), Err(Error::Invalid(_))));
        assert!(matches!(
            index.search(&k, wrong.row(0), 1, SearchKind::Exact),
            Err(Error::Invalid(_))
        ));
        let nan = Fingerprints { dim: 8, data: vec![f32::NAN; 8] };
        assert!(matches!(index.add_piece(&k, "eeee-000000000", &nan), Err(Error::Invalid(_))));
        assert!(matches!(
            index.build(&key(super::super::Stem::Voice)),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn memory_copy_follows_writes() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let opts = IndexOptions { exact_source: ExactSource::Memory, ..IndexOptions::default() };
        let index = CatalogIndex::with_options(&cat, opts).unwrap();
        let mapped = CatalogIndex::open(&cat).unwrap();
        let k = key(super::super::Stem::Background);
        let mut rng = StdRng::seed_from_u64(4);
        let a = piece(&mut rng, 12, 32);
        let b = piece(&mut rng, 12, 32);
        index.add_piece(&k, "ffff-000000000", &a).unwrap();
        assert_eq!(top1(&index, &k, a.row(5), SearchKind::Exact).segment, 5);
        // A write through another handle invalidates this handle's copy.
        mapped.add_piece(&k, "ffff-000000000", &b).unwrap();
        let h = top1(&index, &k, b.row(5), SearchKind::Exact);
        assert_eq!(h, top1(&mapped, &k, b.row(5), SearchKind::Exact));
        assert!(h.distance < 1e-3);
        mapped.remove_piece(&k, "ffff-000000000").unwrap();
        assert!(index.search(&k, b.row(5), 3, SearchKind::Exact).unwrap().is_empty());
    }

    /// `n` random pieces of 359 `dim`-wide segments, stored in `index` under `k` (not built).
    fn fill(
        cat: &Catalog,
        index: &CatalogIndex<&Catalog>,
        k: &IndexKey,
        rng: &mut StdRng,
        n: usize,
        dim: usize,
    ) -> Vec<Fingerprints> {
        let pieces: Vec<Fingerprints> = (0..n).map(|_| piece(rng, 359, dim)).collect();
        cat.write_txn(|w| {
            for (i, p) in pieces.iter().enumerate() {
                index.add_piece_in(w, k, &format!("{i:012x}-000000000"), p)?;
            }
            Ok(())
        })
        .unwrap();
        pieces
    }

    /// `n` stored segments picked at random, each with noise of norm `noise` added.
    fn noisy_rows(rng: &mut StdRng, pieces: &[Fingerprints], n: usize, noise: f32) -> Fingerprints {
        let mut data = Vec::new();
        for _ in 0..n {
            let p = &pieces[rand::RngExt::random_range(rng, 0..pieces.len())];
            let row = rand::RngExt::random_range(rng, 0..p.len());
            data.extend(perturb(rng, p.row(row), noise));
        }
        Fingerprints { dim: pieces[0].dim, data }
    }

    /// arroy agrees with the exact search on ~20k random unit vectors, queried with stored
    /// vectors plus small noise, at the default search_k.
    #[test]
    fn ann_agrees_with_exact() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        let k = key(super::super::Stem::Mix);
        let mut rng = StdRng::seed_from_u64(5);
        let pieces = fill(&cat, &index, &k, &mut rng, 56, 128);
        assert_eq!(index.len(&k).unwrap(), 56 * 359);
        let stats = index.build(&k).unwrap();
        assert!(stats.changed && stats.trees > 0);
        let queries = noisy_rows(&mut rng, &pieces, 300, 0.3);
        let exact = index.search_batch(&k, &queries, 1, SearchKind::Exact).unwrap();
        let ann = index.search_batch(&k, &queries, 1, SearchKind::Ann).unwrap();
        let same = exact.iter().zip(&ann).filter(|(e, a)| e[0].item == a[0].item).count();
        let recall = same as f64 / exact.len() as f64;
        assert!(recall >= 0.99, "recall@1 {recall}");
        for (e, a) in exact.iter().zip(&ann) {
            if e[0].item == a[0].item {
                assert!((e[0].distance - a[0].distance).abs() < 1e-4);
            }
        }
    }

    /// The second pass goes to the segments whose first-pass nearest candidate is far, and
    /// only to those: none at a distance bar no unit vector can pass, all at 0; with a budget
    /// over the index size it recovers what a starved first pass lost.
    #[test]
    fn far_segments_get_the_second_pass() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let k = key(super::super::Stem::Mix);
        let mut rng = StdRng::seed_from_u64(11);
        let index = CatalogIndex::open(&cat).unwrap();
        let pieces = fill(&cat, &index, &k, &mut rng, 20, 64);
        index.build(&k).unwrap();
        let queries = noisy_rows(&mut rng, &pieces, 200, 1.0);
        let exact = index.search_batch(&k, &queries, 1, SearchKind::Exact).unwrap();
        let recall = |opts: IndexOptions| {
            let handle = CatalogIndex::with_options(&cat, opts).unwrap();
            let ann = handle.search_batch(&k, &queries, 1, SearchKind::Ann).unwrap();
            let same = exact.iter().zip(&ann).filter(|(e, a)| e[0].item == a[0].item).count();
            (same as f64 / exact.len() as f64, handle.ann_counts())
        };
        let starved = IndexOptions { search_k: 50, retry_search_k: 0, ..IndexOptions::default() };
        let (base, counts) = recall(starved.clone());
        assert_eq!(counts, (200, 0));
        let far = IndexOptions { retry: Retry::Far, retry_search_k: 20_000, ..starved.clone() };
        let never = IndexOptions { retry_distance: 2.5, ..far.clone() };
        assert_eq!(recall(never), (base, (200, 0)));
        let always = IndexOptions { retry_distance: 0.0, ..far };
        let (full, counts) = recall(always);
        assert_eq!(counts, (200, 200));
        assert!(base < 0.9 && full >= 0.99, "first pass {base}, with the second {full}");
    }

    /// An unsettled clip sends only the segments whose nearest hit is off the best alignment
    /// to the second pass, and keeps the hits of those that agree; a settled clip, or the
    /// `Far` rule, sends none.
    #[test]
    fn unsettled_clip_searches_only_dissenting_segments() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let k = key(super::super::Stem::Mix);
        let mut rng = StdRng::seed_from_u64(12);
        let opts = IndexOptions { retry_search_k: 20_000, ..IndexOptions::default() };
        let index = CatalogIndex::with_options(&cat, opts).unwrap();
        let pieces = fill(&cat, &index, &k, &mut rng, 4, 32);
        index.build(&k).unwrap();
        let clip = Fingerprints { dim: 32, data: pieces[0].data[10 * 32..15 * 32].to_vec() };
        let truth = "000000000000-000000000";
        let hit = |piece: &str, segment: u32| Hit {
            item: 0,
            piece: piece.into(),
            segment,
            distance: 0.123,
        };
        // Segments 0 and 1 found the truth, 2..5 point elsewhere: 2 votes of 5 do not settle.
        let first: Vec<Vec<Hit>> = (0..5u32)
            .map(|q| {
                vec![if q < 2 {
                    hit(truth, 10 + q)
                } else {
                    hit("000000000001-000000000", 50 + 7 * q)
                }]
            })
            .collect();
        let mut voted = vec![(0.0, first.clone())];
        assert_eq!(index.settle_clip(&k, &[&clip], &mut voted, 1).unwrap(), 3);
        assert_eq!(index.ann_counts().1, 3);
        assert_eq!(voted[0].1[..2], first[..2], "agreeing segments keep their hits");
        for q in 2..5 {
            let h = &voted[0].1[q][0];
            assert_eq!((h.piece.as_str(), h.segment), (truth, 10 + q as u32));
            assert!(h.distance < 1e-3);
        }
        // A second copy half a hop later: its hit half a hop off the best alignment agrees
        // (kept), the rest dissent and are searched again in the same batch.
        let half: Vec<Vec<Hit>> = (0..5u32)
            .map(|q| {
                vec![if q == 0 {
                    hit(truth, 11)
                } else {
                    hit("000000000001-000000000", 100 + 13 * q)
                }]
            })
            .collect();
        let mut voted = vec![(0.0, first.clone()), (0.5, half.clone())];
        assert_eq!(index.settle_clip(&k, &[&clip, &clip], &mut voted, 1).unwrap(), 3 + 4);
        assert_eq!(voted[1].1[0], half[0]);
        for q in 1..5 {
            let h = &voted[1].1[q][0];
            assert_eq!((h.piece.as_str(), h.segment), (truth, 10 + q as u32));
        }
        // One segment agreeing with itself settles nothing: all five go again.
        let lone: Vec<Vec<Hit>> = (0..5u32).map(|q| vec![hit(truth, 10 + 3 * q)]).collect();
        let mut voted = vec![(0.0, lone)];
        assert_eq!(index.settle_clip(&k, &[&clip], &mut voted, 1).unwrap(), 5);
        let mut settled = vec![(0.0, (0..5u32).map(|q| vec![hit(truth, 10 + q)]).collect())];
        assert_eq!(index.settle_clip(&k, &[&clip], &mut settled, 1).unwrap(), 0);
        let far = IndexOptions { retry: Retry::Far, ..index.options().clone() };
        let far = CatalogIndex::with_options(&cat, far).unwrap();
        let mut voted = vec![(0.0, first)];
        assert_eq!(far.settle_clip(&k, &[&clip], &mut voted, 1).unwrap(), 0);
    }

    /// Second-pass settings that cannot mean anything are refused when the store opens.
    #[test]
    fn nonsense_retry_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        for opts in [
            IndexOptions { settled_share: 0.0, ..IndexOptions::default() },
            IndexOptions { settled_share: 1.5, ..IndexOptions::default() },
            IndexOptions { settled_share: f32::NAN, ..IndexOptions::default() },
            IndexOptions { retry_distance: -0.1, ..IndexOptions::default() },
            IndexOptions { retry_distance: f32::INFINITY, ..IndexOptions::default() },
        ] {
            let err = CatalogIndex::with_options(&cat, opts.clone()).unwrap_err();
            assert!(matches!(err, Error::Invalid(_)), "{opts:?}: {err}");
        }
        CatalogIndex::with_options(
            &cat,
            IndexOptions { settled_share: 1.0, ..IndexOptions::default() },
        )
        .unwrap();
    }

    /// The same vectors added the same way give the same forest, so `scan` and `eval` answers
    /// (and a report built from them) repeat from one run to the next.
    #[test]
    fn the_same_vectors_build_the_same_forest() {
        use super::super::Stem;
        let mix = key(Stem::Mix);
        let answers = || {
            let dir = tempfile::tempdir().unwrap();
            let cat = Catalog::open(dir.path()).unwrap();
            let index = CatalogIndex::open(&cat).unwrap();
            let mut rng = StdRng::seed_from_u64(9);
            for p in 0..8 {
                index
                    .add_piece(&mix, &format!("{p:04}-000000000"), &piece(&mut rng, 500, 32))
                    .unwrap();
            }
            let trees = index.build(&mix).unwrap().trees;
            let hits = (0..40)
                .map(|_| {
                    let q = random_unit(&mut rng, 32);
                    let hits = index.search(&mix, &q, 10, SearchKind::Ann).unwrap();
                    hits.into_iter().map(|h| (h.piece, h.segment)).collect::<Vec<_>>()
                })
                .collect::<Vec<_>>();
            (trees, hits)
        };
        // Several threads around the build, as a machine with more cores has: before the
        // one-thread build, the tree count and the answers then varied.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        let first = pool.install(answers);
        for _ in 0..3 {
            assert_eq!(pool.install(answers), first);
        }
    }

    /// `auto` searches exactly below 10^6 segments in the model's largest index.
    #[test]
    fn auto_search_goes_by_the_largest_index_of_the_model() {
        use super::super::{AUTO_ANN_FROM, Stem};
        assert_eq!(SearchKind::for_size(0), SearchKind::Exact);
        assert_eq!(SearchKind::for_size(AUTO_ANN_FROM - 1), SearchKind::Exact);
        assert_eq!(SearchKind::for_size(AUTO_ANN_FROM), SearchKind::Ann);
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let index = CatalogIndex::open(&cat).unwrap();
        assert_eq!(index.auto_search("test-model").unwrap(), SearchKind::Exact);
        let mut rng = StdRng::seed_from_u64(4);
        index.add_piece(&key(Stem::Mix), "aaaa-000000000", &piece(&mut rng, 20, 8)).unwrap();
        assert_eq!(index.auto_search("test-model").unwrap(), SearchKind::Exact);
    }
}
