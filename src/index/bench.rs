//! The search benchmark (`aniprint bench search`, `cargo bench --bench search`): build an index
//! of synthetic fingerprints in a scratch catalog, then time 3 s clip queries (search + voting)
//! exactly and with arroy, and report latency percentiles, recall against exact, build
//! throughput and bytes on disk per hour of audio.
//!
//! The synthetic vectors imitate fingerprints closely enough to make approximate search
//! non-trivial: unit vectors around a few hundred cluster centres ("scenes" that last about 10 s
//! of a piece), with noise correlated between neighbouring segments (their audio overlaps by
//! half), and queries that are stored segments plus fresh noise (cosine ~0.8 to the original).

use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{
    CatalogIndex, ExactSource, IndexKey, IndexOptions, Retry, SearchKind, Stem, VectorStore, vote,
};
use crate::catalog::Catalog;
use crate::fingerprint::Fingerprints;
use crate::progress::{Progress, Stage};
use crate::{Error, Result};

/// Fingerprint segments per hour of audio (one every 0.5 s).
pub const SEGMENTS_PER_HOUR: u64 = 7_200;

/// What to benchmark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchBenchConfig {
    /// Vectors to index (rounded up to whole pieces).
    pub vectors: usize,
    /// Vector width.
    pub dim: usize,
    /// Segments per piece (a 180 s piece at a 0.5 s hop has 359).
    pub piece_segments: usize,
    /// Cluster centres the vectors gather around.
    pub clusters: usize,
    /// Consecutive segments that share one centre.
    pub scene_segments: usize,
    /// Norm of the per-vector noise added to its centre before normalising (1.0: cosine ~0.7
    /// between a vector and its centre).
    pub spread: f32,
    /// Norm of the noise added to a stored vector to make a query segment (0.75: cosine ~0.8).
    pub query_noise: f32,
    /// Query clips timed per search kind.
    pub clips: usize,
    /// Segments per clip (5: a 3 s clip).
    pub clip_segments: usize,
    /// Nearest neighbours per query segment fed to voting.
    pub k: usize,
    /// Also time the exact search (from the mapped LMDB values and from a heap copy).
    pub exact: bool,
    /// arroy `search_k` values to time (empty: the one in `options`).
    pub search_ks: Vec<usize>,
    /// With `Retry::Far`, second-pass distances to time at each `search_k` (empty: the one in
    /// `options`; 2 or more: no segment gets the second pass).
    pub retry_distances: Vec<f32>,
    /// Pieces written per write transaction while filling the index.
    pub pieces_per_txn: usize,
    /// Pieces of the episode added and removed to time an incremental build (8 pieces ~ 24 min).
    pub incremental_pieces: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// Index options (trees, search_k, exact source).
    pub options: IndexOptions,
}

impl Default for SearchBenchConfig {
    fn default() -> Self {
        Self {
            vectors: 100_000,
            dim: 128,
            piece_segments: 359,
            clusters: 512,
            scene_segments: 20,
            spread: 1.0,
            query_noise: 0.75,
            clips: 200,
            clip_segments: 5,
            k: 10,
            exact: true,
            search_ks: Vec::new(),
            retry_distances: Vec::new(),
            pieces_per_txn: 32,
            incremental_pieces: 8,
            seed: 7,
            options: IndexOptions::default(),
        }
    }
}

/// Latency percentiles of one search setting, milliseconds per clip (search + voting).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// What was timed: `exact (mapped)`, `exact (memory)`, `ann (search_k N)`.
    pub name: String,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Clips whose best voted candidate was the right piece within one segment of the right
    /// offset, as a fraction.
    pub top1: f64,
    /// Fraction of query segments whose nearest neighbour is the exact one (`None` for exact
    /// searches, or when exact was not timed).
    pub recall_at_1: Option<f64>,
    /// Median distance from a query segment to the nearest stored segment found (compare with
    /// `eval fingerprint`'s `nearest_distance` on real, degraded queries).
    pub nearest_p50: f64,
    /// Share of query segments that got arroy's second pass (`None` for exact searches).
    pub retried: Option<f64>,
}

/// What [`run`] measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SearchBenchReport {
    /// Vectors indexed.
    pub vectors: u64,
    /// Pieces indexed.
    pub pieces: u64,
    /// Seconds to write the vectors (LMDB + arroy items), excluding generation.
    pub add_s: f64,
    /// Seconds for the first full arroy build.
    pub build_s: f64,
    /// Trees arroy built.
    pub trees: usize,
    /// Seconds to add one more episode and rebuild incrementally (write + build).
    pub incremental_add_s: f64,
    /// Seconds of that incremental build alone.
    pub incremental_build_s: f64,
    /// Seconds to remove that episode and rebuild (remove + build).
    pub incremental_remove_s: f64,
    /// Bytes of raw vectors (the exact store).
    pub vector_bytes: u64,
    /// Bytes of arroy's items and trees.
    pub arroy_bytes: u64,
    /// Bytes of everything the index keeps, per hour of audio (one stem).
    pub bytes_per_hour: f64,
    /// Size of the LMDB file.
    pub file_bytes: u64,
    /// Each timed setting: exact ones first, then arroy at each search_k.
    pub searches: Vec<Latency>,
    /// Peak resident memory of the process, MiB (Linux only).
    pub peak_rss_mib: Option<f64>,
}

impl std::fmt::Display for SearchBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        writeln!(f, "vectors            {} in {} pieces", self.vectors, self.pieces)?;
        writeln!(
            f,
            "add                {:.2} s ({:.0} vectors/s)",
            self.add_s,
            self.vectors as f64 / self.add_s.max(1e-9)
        )?;
        writeln!(
            f,
            "build              {:.2} s ({:.0} vectors/s), {} trees",
            self.build_s,
            self.vectors as f64 / self.build_s.max(1e-9),
            self.trees
        )?;
        writeln!(
            f,
            "+1 episode         {:.2} s (build {:.2} s); -1 episode {:.2} s",
            self.incremental_add_s, self.incremental_build_s, self.incremental_remove_s
        )?;
        writeln!(
            f,
            "disk               vectors {:.1} MiB, arroy {:.1} MiB, file {:.1} MiB; {:.2} MiB per hour",
            mib(self.vector_bytes),
            mib(self.arroy_bytes),
            mib(self.file_bytes),
            self.bytes_per_hour / (1u64 << 20) as f64
        )?;
        for l in &self.searches {
            write!(
                f,
                "{:<22} p50 {:6.2} ms  p99 {:6.2} ms  mean {:6.2} ms  clip top-1 {:5.1}%  \
                 nearest d {:.3}",
                l.name,
                l.p50_ms,
                l.p99_ms,
                l.mean_ms,
                l.top1 * 100.0,
                l.nearest_p50
            )?;
            if let Some(r) = l.retried {
                write!(f, "  retried {:.1}%", r * 100.0)?;
            }
            match l.recall_at_1 {
                Some(r) => writeln!(f, "  segment recall@1 {:.2}%", r * 100.0)?,
                None => writeln!(f)?,
            }
        }
        if let Some(m) = self.peak_rss_mib {
            writeln!(f, "peak RSS           {m:.0} MiB")?;
        }
        Ok(())
    }
}

/// A standard normal sample (Box-Muller).
fn gauss(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Scale `v` to unit length (left alone if it is zero).
pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// A random unit vector.
pub fn random_unit(rng: &mut impl Rng, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim).map(|_| gauss(rng)).collect();
    normalize(&mut v);
    v
}

/// `v` plus isotropic noise of norm about `noise`, renormalised.
pub fn perturb(rng: &mut impl Rng, v: &[f32], noise: f32) -> Vec<f32> {
    let s = noise / (v.len() as f32).sqrt();
    let mut out: Vec<f32> = v.iter().map(|x| x + s * gauss(rng)).collect();
    normalize(&mut out);
    out
}

/// Synthetic fingerprints of one piece (deterministic in `seed` and `piece`).
pub fn synthetic_piece(cfg: &SearchBenchConfig, centers: &[Vec<f32>], piece: u64) -> Fingerprints {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ piece.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let dim = cfg.dim;
    let s = cfg.spread / (dim as f32).sqrt();
    let mut data = Vec::with_capacity(cfg.piece_segments * dim);
    let mut prev: Vec<f32> = (0..dim).map(|_| gauss(&mut rng)).collect();
    let mut center = 0;
    for i in 0..cfg.piece_segments {
        if i % cfg.scene_segments.max(1) == 0 {
            center = rng.random_range(0..centers.len().max(1));
        }
        // Noise shared with the previous segment: neighbouring segments overlap by half.
        for p in prev.iter_mut() {
            *p = 0.5 * *p + 0.866 * gauss(&mut rng);
        }
        let mut v: Vec<f32> = match centers.get(center) {
            Some(c) => c.iter().zip(&prev).map(|(c, n)| c + s * n).collect(),
            None => prev.clone(),
        };
        normalize(&mut v);
        data.extend_from_slice(&v);
    }
    Fingerprints { dim, data }
}

fn piece_id(i: u64) -> String {
    format!("{:012x}-{:09}", 0xbe0c_0000_0000u64 + i / 8, (i % 8) * 180_000)
}

struct Timed {
    lat: Latency,
    first: Vec<Option<u32>>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Build an index of `cfg.vectors` synthetic vectors in a fresh catalog at `dir` and time
/// queries against it. `dir` must not hold a catalog with a `bench` index already.
pub fn run(
    dir: &Path,
    cfg: &SearchBenchConfig,
    progress: &dyn Progress,
) -> Result<SearchBenchReport> {
    if cfg.dim == 0 || cfg.piece_segments < cfg.clip_segments.max(1) || cfg.k == 0 {
        return Err(Error::Invalid("bench: dim, k and piece length must be positive".into()));
    }
    let catalog = Catalog::open(dir)?;
    let index = CatalogIndex::with_options(&catalog, cfg.options.clone())?;
    let key = IndexKey::new("bench", Stem::Mix);
    if index.len(&key)? > 0 {
        return Err(Error::Invalid(format!(
            "{}: already holds a bench index; use an empty directory",
            dir.display()
        )));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let centers: Vec<Vec<f32>> =
        (0..cfg.clusters).map(|_| random_unit(&mut rng, cfg.dim)).collect();
    let n_pieces = cfg.vectors.div_ceil(cfg.piece_segments) as u64;

    // Fill.
    progress.stage(Stage::Storing);
    progress.set_total(n_pieces);
    let mut add_s = 0.0;
    let batch = cfg.pieces_per_txn.max(1) as u64;
    let mut p = 0;
    while p < n_pieces {
        progress.check()?;
        let end = (p + batch).min(n_pieces);
        let pieces: Vec<(String, Fingerprints)> =
            (p..end).map(|i| (piece_id(i), synthetic_piece(cfg, &centers, i))).collect();
        let t = Instant::now();
        catalog.write_txn(|w| {
            for (id, v) in &pieces {
                index.add_piece_in(w, &key, id, v)?;
            }
            Ok(())
        })?;
        add_s += t.elapsed().as_secs_f64();
        progress.advance(end - p);
        p = end;
    }

    // Build, then one more episode in and out, incrementally.
    let built = index.build_with(&key, progress)?;
    let extra: Vec<(String, Fingerprints)> = (0..cfg.incremental_pieces as u64)
        .map(|i| {
            let n = n_pieces + i;
            (format!("fffffffffff0-{:09}", i * 180_000), synthetic_piece(cfg, &centers, n))
        })
        .collect();
    let t = Instant::now();
    catalog.write_txn(|w| {
        for (id, v) in &extra {
            index.add_piece_in(w, &key, id, v)?;
        }
        Ok(())
    })?;
    let inc_build = index.build(&key)?;
    let incremental_add_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    index.remove_episode("fffffffffff0")?;
    index.build(&key)?;
    let incremental_remove_s = t.elapsed().as_secs_f64();

    let usage = index.disk_usage()?;
    let vectors = index.len(&key)?;
    let hours = vectors as f64 / SEGMENTS_PER_HOUR as f64;

    // Query clips: stored segments plus noise, with their true (piece, offset).
    let clips: Vec<(String, i64, Fingerprints)> = (0..cfg.clips)
        .map(|_| {
            let p = rng.random_range(0..n_pieces);
            let start = rng.random_range(0..=cfg.piece_segments - cfg.clip_segments);
            let stored = synthetic_piece(cfg, &centers, p);
            let mut data = Vec::with_capacity(cfg.clip_segments * cfg.dim);
            for j in 0..cfg.clip_segments {
                data.extend(perturb(&mut rng, stored.row(start + j), cfg.query_noise));
            }
            (piece_id(p), start as i64, Fingerprints { dim: cfg.dim, data })
        })
        .collect();

    progress.stage(Stage::Searching);
    let time = |name: String, index: &CatalogIndex<&Catalog>, kind: SearchKind| -> Result<Timed> {
        for (_, _, q) in clips.iter().take(3) {
            index.search_batch(&key, q, cfg.k, kind)?; // warm the page cache and any copy
        }
        let mut ms = Vec::with_capacity(clips.len());
        let mut right = 0usize;
        let mut first = Vec::new();
        let mut nearest = Vec::new();
        let (searched0, retried0) = index.ann_counts();
        for (piece, offset, q) in &clips {
            progress.check()?;
            let t = Instant::now();
            let mut voted = [(0.0, index.search_batch(&key, q, cfg.k, kind)?)];
            if kind == SearchKind::Ann {
                index.settle_clip(&key, &[q], &mut voted, cfg.k)?;
            }
            let [(_, hits)] = voted;
            let best = vote(&hits, 1);
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            if best
                .first()
                .is_some_and(|c| c.piece == *piece && (c.offset_segments - offset).abs() <= 1)
            {
                right += 1;
            }
            first.extend(hits.iter().map(|h| h.first().map(|h| h.item)));
            nearest.extend(hits.iter().filter_map(|h| h.first().map(|h| f64::from(h.distance))));
        }
        let (searched, retried) = index.ann_counts();
        let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
        ms.sort_by(f64::total_cmp);
        nearest.sort_by(f64::total_cmp);
        let lat = Latency {
            name,
            p50_ms: percentile(&ms, 0.5),
            p99_ms: percentile(&ms, 0.99),
            mean_ms: mean,
            top1: right as f64 / clips.len().max(1) as f64,
            recall_at_1: None,
            nearest_p50: percentile(&nearest, 0.5),
            retried: (kind == SearchKind::Ann)
                .then(|| (retried - retried0) as f64 / (searched - searched0).max(1) as f64),
        };
        Ok(Timed { lat, first })
    };
    let mut searches = Vec::new();
    let mut exact_first: Option<Vec<Option<u32>>> = None;
    if cfg.exact {
        for source in [ExactSource::Mapped, ExactSource::Memory] {
            let opts = IndexOptions { exact_source: source, ..cfg.options.clone() };
            let handle = CatalogIndex::with_options(&catalog, opts)?;
            let name = format!(
                "exact ({})",
                if source == ExactSource::Mapped { "mapped" } else { "memory" }
            );
            let t = time(name, &handle, SearchKind::Exact)?;
            exact_first.get_or_insert(t.first);
            searches.push(t.lat);
        }
    }
    let search_ks =
        if cfg.search_ks.is_empty() { vec![cfg.options.search_k] } else { cfg.search_ks.clone() };
    let taus = if cfg.retry_distances.is_empty() || cfg.options.retry != Retry::Far {
        vec![cfg.options.retry_distance]
    } else {
        cfg.retry_distances.clone()
    };
    let settings = search_ks.iter().flat_map(|&k| taus.iter().map(move |&t| (k, t)));
    for (search_k, retry_distance) in settings {
        let opts = IndexOptions { search_k, retry_distance, ..cfg.options.clone() };
        let handle = CatalogIndex::with_options(&catalog, opts)?;
        let name = match cfg.options.retry_search_k {
            r if r > search_k && cfg.options.retry == Retry::Unsettled => {
                format!("ann ({search_k}, {r} if unsettled)")
            }
            r if r > search_k && retry_distance < 2.0 && cfg.options.retry == Retry::Far => {
                format!("ann ({search_k}, {r} > {retry_distance:.2})")
            }
            _ => format!("ann (search_k {search_k})"),
        };
        let mut t = time(name, &handle, SearchKind::Ann)?;
        t.lat.recall_at_1 = exact_first.as_ref().map(|ex| {
            let same = ex.iter().zip(&t.first).filter(|(a, b)| a.is_some() && a == b).count();
            same as f64 / ex.len().max(1) as f64
        });
        searches.push(t.lat);
    }

    Ok(SearchBenchReport {
        vectors,
        pieces: n_pieces,
        add_s,
        build_s: built.seconds,
        trees: built.trees,
        incremental_add_s,
        incremental_build_s: inc_build.seconds,
        incremental_remove_s,
        vector_bytes: usage.vectors,
        arroy_bytes: usage.arroy,
        bytes_per_hour: usage.total() as f64 / hours.max(1e-9),
        file_bytes: catalog.env().real_disk_size()?,
        searches,
        peak_rss_mib: peak_rss_mib(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[test]
    fn bench_runs_small() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SearchBenchConfig {
            vectors: 3_000,
            clusters: 16,
            clips: 20,
            incremental_pieces: 2,
            search_ks: vec![200, 2000],
            ..SearchBenchConfig::default()
        };
        let r = run(dir.path(), &cfg, &NoProgress).unwrap();
        assert_eq!(r.vectors, 9 * 359);
        assert_eq!(r.searches.len(), 4);
        assert!(r.searches.iter().all(|l| l.top1 >= 0.9), "{r}");
        assert!(r.searches[3].recall_at_1.unwrap() >= 0.9, "{r}");
        assert!(r.bytes_per_hour > 0.0 && r.trees > 0);
        assert!(matches!(run(dir.path(), &cfg, &NoProgress), Err(Error::Invalid(_))));
    }
}
