//! Scanning uploads: decode, separate and fingerprint an upload the way episodes were, search
//! each stem in its own index, chain the segment hits into match regions (upload range <->
//! episode range), and store them as pending matches. Also `query`, the retrieval primitive
//! for a short clip.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use serde::Serialize;

use crate::analyze::Analyzer;
use crate::catalog::matches::{DEFAULT_THRESHOLD_SCALE, DEFAULT_VOICE_MARGIN, region_bar};
use crate::catalog::{Band, Catalog, MatchRegion, ScanModels, ScanStored, Upload, now_ms};
use crate::fingerprint::Fingerprints;
use crate::index::vote::{self, EpisodeRegion, PiecePlacement, RegionParams};
use crate::index::{CatalogIndex, IndexKey, SearchKind, Stem, VectorStore};
use crate::media::{self, DecodeOptions, StreamSelect};
use crate::progress::{Progress, Stage};
use crate::review::ReviewConfig;
use crate::units::{Samples, Seconds};
use crate::{Error, Result};

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Exact or approximate search.
    pub search: SearchKind,
    /// Hits kept per query segment.
    pub top_k: usize,
    /// How hits chain into regions.
    pub region: RegionParams,
    /// Regions shorter than this are dropped, seconds.
    pub min_duration_s: f64,
    /// A region is kept when its mean similarity reaches `threshold + threshold_scale /
    /// sqrt(votes)`: chance alignments average fewer similar segments, so short regions need a
    /// higher mean than long ones (the margin shrinks like a standard error).
    pub threshold: f32,
    /// See `threshold`.
    pub threshold_scale: f32,
    /// Added to `threshold` for the voice stem: one speaker's lines resemble each other (same
    /// timbre, same delivery), so chance alignments between different lines of a voice score
    /// higher than chance alignments of music.
    pub voice_margin: f32,
    /// Mean similarity at or above which a region is `medium`, and `high`.
    pub bands: (f32, f32),
    /// Which audio stream of the upload.
    pub stream: StreamSelect,
    /// Seconds of audio analysed at a time (bounds memory on long uploads).
    pub window_s: f64,
    /// Where the upload came from (URL, platform video id), for the report's `upload_source`.
    /// Without it a rescan keeps the earlier scan's, and a first scan takes the file's own
    /// ([`media::MediaInfo::source_url`]).
    pub source: Option<String>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            search: SearchKind::Exact,
            top_k: 10,
            region: RegionParams {
                min_similarity: 0.45,
                // On the fixtures with fingerprint-v3: 0.6 leaves a region a second early, 0.7
                // puts every boundary within 0.5 s, 0.8 within 0 s but risks cutting the ends
                // of noisy reuse (rechecked with v4: every boundary within 0.5 s).
                edge_similarity: 0.7,
                ..RegionParams::default()
            },
            min_duration_s: 2.5,
            // Calibrated on the fixtures (fingerprint-v1, re-checked with each new default
            // model): true reuse scores 0.81-1.00 (0.81 for a 10 s low-bitrate AAC copy), chance
            // look-alikes of the same synthetic voices at most 0.85 over 3 s and 0.76 over 7 s.
            threshold: 0.70,
            threshold_scale: DEFAULT_THRESHOLD_SCALE,
            // On the fixtures with separator-v1: different lines of one synthetic voice align
            // at up to 0.88 over 5 s (10 segments), true voice reuse at 0.97-0.99 (rechecked with
            // separator-v2: no other region on the fixtures).
            voice_margin: DEFAULT_VOICE_MARGIN,
            bands: (0.8, 0.9),
            stream: StreamSelect::Default,
            window_s: 300.0,
            source: None,
        }
    }
}

impl ScanOptions {
    /// The score a region of `stem` voted by `votes` segments must reach to be kept (the
    /// rule [`ScanModels::bar`] keeps on record for the report).
    pub fn bar(&self, stem: Stem, votes: u32) -> f32 {
        region_bar(self.threshold, self.threshold_scale, self.voice_margin, stem, votes)
    }

    /// The record of the models a scan ran with and the thresholds it applied.
    fn thresholds(&self, fingerprint: String, separator: String, index: String) -> ScanModels {
        ScanModels {
            fingerprint,
            separator,
            index,
            score_threshold: self.threshold,
            threshold_scale: self.threshold_scale,
            voice_margin: self.voice_margin,
        }
    }

    /// The confidence band of a mean similarity.
    pub fn band(&self, score: f32) -> Band {
        if score >= self.bands.1 {
            Band::High
        } else if score >= self.bands.0 {
            Band::Medium
        } else {
            Band::Low
        }
    }
}

/// What one scan found and stored.
#[derive(Debug, Clone, Serialize)]
pub struct ScanOutcome {
    /// The upload record.
    pub upload: Upload,
    /// The regions found, by upload time (as stored; ids and statuses filled in).
    pub regions: Vec<MatchRegion>,
    /// What the catalog did with them.
    #[serde(skip)]
    pub stored: ScanStored,
}

/// Decode `path` at the analyzer's rate and fingerprint every stem, a window at a time.
/// Returns the per-stem fingerprints of the whole file and its decoded length in samples.
/// Progress is one stage over the file's samples, each window counted once it is analysed
/// (decoding runs a window ahead).
pub fn fingerprint_file(
    analyzer: &Analyzer,
    path: &Path,
    stream: &StreamSelect,
    window_s: f64,
    progress: &dyn Progress,
) -> Result<(Vec<(Stem, Fingerprints)>, u64)> {
    let info = media::probe(path)?;
    let chosen = info.select(path, stream)?.index;
    fingerprint_stream(analyzer, path, &info, chosen, window_s, progress)
}

/// [`fingerprint_file`] of stream `chosen` of a file already probed (`info`).
fn fingerprint_stream(
    analyzer: &Analyzer,
    path: &Path,
    info: &media::MediaInfo,
    chosen: usize,
    window_s: f64,
    progress: &dyn Progress,
) -> Result<(Vec<(Stem, Fingerprints)>, u64)> {
    let rate = analyzer.rate();
    let cfg = analyzer.fingerprinter().config().clone();
    let opts = DecodeOptions { stream: StreamSelect::Index(chosen), rate, channels: 1 };
    // One stage for the whole loop: switching stages per window would restart the bar (a
    // stage starts at 0) and, in the TUI, drop its total.
    progress.stage(Stage::Fingerprinting);
    progress.set_total(info.duration.map(|d| rate.samples(d).0).unwrap_or(0));
    // Windows start on the segment grid and carry (segment - hop) samples of overlap, so every
    // segment of the file is fingerprinted exactly once, whole.
    let window = ((window_s * f64::from(rate.0)) as usize / cfg.hop).max(1) * cfg.hop;
    let carry = cfg.segment.saturating_sub(cfg.hop);
    // The next window decodes while this one is analysed.
    let mut src = media::ReadAhead::open(path, &opts, window + carry)?;
    let mut buf: Vec<f32> = Vec::new();
    let mut out: Vec<(Stem, Fingerprints)> = Vec::new();
    let mut total = 0u64;
    let push = |audio: &[f32], last: bool, out: &mut Vec<(Stem, Fingerprints)>| -> Result<()> {
        // Whole segments only, except at the very end where the tail is zero-padded.
        let usable = if last { audio.len() } else { window + carry };
        let stems = analyzer.analyze(&audio[..usable.min(audio.len())])?;
        let keep = if last { usize::MAX } else { window / cfg.hop };
        for (stem, f) in stems {
            let n = f.len().min(keep);
            match out.iter_mut().find(|(s, _)| *s == stem) {
                Some((_, all)) => all.data.extend_from_slice(&f.data[..n * f.dim]),
                None => out
                    .push((stem, Fingerprints { dim: f.dim, data: f.data[..n * f.dim].to_vec() })),
            }
        }
        Ok(())
    };
    while let Some(chunk) = src.next_chunk()? {
        progress.check()?;
        total += chunk.len() as u64;
        buf.extend_from_slice(&chunk);
        while buf.len() >= window + carry {
            push(&buf, false, &mut out)?;
            buf.drain(..window);
            progress.advance(window as u64);
        }
    }
    if total == 0 {
        return Err(Error::BadAudio {
            path: path.into(),
            reason: "no audio samples decoded".into(),
        });
    }
    if !buf.is_empty() {
        push(&buf, true, &mut out)?;
        progress.advance(buf.len() as u64);
    }
    Ok((out, total))
}

/// Where each piece sits in its episode, looked up once per piece.
struct Placements<'a> {
    catalog: &'a Catalog,
    cache: HashMap<String, Option<PiecePlacement>>,
}

impl Placements<'_> {
    fn get(&mut self, piece: &str) -> Option<PiecePlacement> {
        if let Some(p) = self.cache.get(piece) {
            return p.clone();
        }
        let found = self.catalog.piece(piece).ok().and_then(|p| {
            let ep = self.catalog.episode(&p.episode).ok()?;
            Some(PiecePlacement {
                episode: p.episode.clone(),
                start_s: ep.work_rate.seconds(p.start).0,
            })
        });
        self.cache.insert(piece.to_string(), found.clone());
        found
    }
}

/// Scan one upload: find every stretch that reuses indexed audio, per stem, and store the
/// regions as pending matches (replacing the pending matches of an earlier scan of it).
pub fn scan_file(
    catalog: &Catalog,
    index: &CatalogIndex<&Catalog>,
    analyzer: &Analyzer,
    path: &Path,
    opts: &ScanOptions,
    review: &ReviewConfig,
    progress: &dyn Progress,
) -> Result<ScanOutcome> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() == 0 {
        return Err(Error::media(path, "empty file (0 bytes)"));
    }
    let sha256 = crate::ingest::sha256_file(path, progress)?;
    let info = media::probe(path)?;
    let chosen = info.select(path, &opts.stream)?.index;
    let (stems, total) =
        fingerprint_stream(analyzer, path, &info, chosen, opts.window_s, progress)?;
    if opts.search == SearchKind::Ann {
        // The plain grid of each stem: all that find_regions reads.
        let keys: Vec<IndexKey> = stems.iter().map(|(stem, _)| analyzer.key(*stem)).collect();
        progress.stage(Stage::Indexing);
        index.build_keys_with(&keys, progress)?;
    }
    let rate = analyzer.rate();
    let id = Upload::make_id(&sha256);
    // Given, else on record (a rescan must not lose what a user gave), else the file's tags.
    let earlier = match catalog.upload(&id) {
        Ok(u) => u.source,
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let source = opts.source.clone().or(earlier).or_else(|| info.source_url());
    let (path_text, path_bytes) =
        crate::catalog::path_fields(std::fs::canonicalize(path).as_deref().unwrap_or(path));
    let upload = Upload {
        id,
        path: path_text,
        path_bytes,
        source,
        sha256,
        size_bytes: meta.len(),
        duration: rate.seconds(Samples(total)),
        scanned_ms: now_ms(),
        models: opts.thresholds(
            analyzer.model().to_string(),
            analyzer.separator().unwrap_or_default(),
            format!("arroy-0.9/{}", opts.search.as_str()),
        ),
        // The stream fingerprinted, so evidence clips come from the same audio.
        audio_stream: Some(chosen),
    };
    let regions = find_regions(catalog, index, analyzer, &stems, upload.duration, opts, progress)?;
    let regions: Vec<MatchRegion> =
        regions.into_iter().map(|(stem, r)| to_match(&upload.id, stem, &r, opts)).collect();
    progress.stage(Stage::Storing);
    let stored = catalog.put_scan(&upload, &regions, review, upload.scanned_ms)?;
    let filter =
        crate::catalog::MatchFilter { upload: Some(upload.id.clone()), ..Default::default() };
    let mut regions = catalog.matches(&filter)?;
    regions.sort_by(|a, b| a.upload_start.0.total_cmp(&b.upload_start.0).then(a.stem.cmp(&b.stem)));
    Ok(ScanOutcome { upload, regions, stored })
}

/// Search every stem's fingerprints and chain the hits into episode regions, filtered by
/// duration and score.
pub fn find_regions(
    catalog: &Catalog,
    index: &CatalogIndex<&Catalog>,
    analyzer: &Analyzer,
    stems: &[(Stem, Fingerprints)],
    duration: Seconds,
    opts: &ScanOptions,
    progress: &dyn Progress,
) -> Result<Vec<(Stem, EpisodeRegion)>> {
    progress.stage(Stage::Searching);
    let mut places = Placements { catalog, cache: HashMap::new() };
    let mut out = Vec::new();
    for (stem, fps) in stems {
        let hits = index.search_batch(&analyzer.key(*stem), fps, opts.top_k, opts.search)?;
        let found = merge_same_alignment(
            vote::episode_regions(&hits, &opts.region, |p| places.get(p)),
            opts.region.hop_s,
        );
        for mut r in found {
            trim_to_bounds(&mut r, duration);
            let len = r.query_end_s - r.query_start_s;
            if len + 1e-9 >= opts.min_duration_s && r.score >= opts.bar(*stem, r.votes) {
                out.push((*stem, r));
            }
        }
    }
    Ok(out)
}

/// Keep a region inside the upload and the episode, trimming its upload and episode ranges
/// alike so that the two keep one length.
fn trim_to_bounds(r: &mut EpisodeRegion, duration: Seconds) {
    if r.query_end_s > duration.0 {
        // The last segment was zero-padded past the upload's end: so was its match.
        r.episode_end_s -= r.query_end_s - duration.0;
        r.query_end_s = duration.0;
    }
    if r.episode_start_s < 0.0 {
        // Offset jitter put the start a little before the episode's.
        r.query_start_s -= r.episode_start_s;
        r.episode_start_s = 0.0;
    }
}

/// Merge regions of one episode on the same alignment (offsets within a hop) whose query
/// ranges overlap or touch: one reuse interrupted by a few bad segments is one region.
fn merge_same_alignment(mut rs: Vec<EpisodeRegion>, hop: f64) -> Vec<EpisodeRegion> {
    rs.sort_by(|a, b| a.episode.cmp(&b.episode).then(a.query_start_s.total_cmp(&b.query_start_s)));
    let mut out: Vec<EpisodeRegion> = Vec::with_capacity(rs.len());
    for r in rs {
        let same = out.iter_mut().rev().find(|o| {
            o.episode == r.episode
                && (o.offset_s - r.offset_s).abs() <= hop
                && r.query_start_s <= o.query_end_s + hop
        });
        match same {
            Some(o) => {
                let (va, vb) = (f64::from(o.votes.max(1)), f64::from(r.votes.max(1)));
                o.score = ((f64::from(o.score) * va + f64::from(r.score) * vb) / (va + vb)) as f32;
                o.offset_s = (o.offset_s * va + r.offset_s * vb) / (va + vb);
                o.votes += r.votes;
                // The parts' runs may join across the seam; the longer part's is a lower bound.
                o.longest_run = o.longest_run.max(r.longest_run);
                o.query_end_s = o.query_end_s.max(r.query_end_s);
                o.query_start_s = o.query_start_s.min(r.query_start_s);
                // One alignment: the episode range is the upload range moved by the offset
                // (min/max of the parts' own ranges would stretch it by their offset jitter).
                o.episode_start_s = o.query_start_s + o.offset_s;
                o.episode_end_s = o.query_end_s + o.offset_s;
                for p in r.pieces {
                    if !o.pieces.contains(&p) {
                        o.pieces.push(p);
                    }
                }
            }
            None => out.push(r),
        }
    }
    out
}

fn to_match(upload: &str, stem: Stem, r: &EpisodeRegion, opts: &ScanOptions) -> MatchRegion {
    let seg = opts.region.segment_s;
    let hop = opts.region.hop_s;
    // The longest run of consecutive agreeing segments, as audio: its first segment's start
    // to its last one's end.
    let longest = Seconds(
        ((f64::from(r.longest_run.max(1)) - 1.0) * hop + seg).min(r.query_end_s - r.query_start_s),
    );
    MatchRegion {
        id: String::new(),
        upload: upload.to_string(),
        stem,
        upload_start: Seconds(r.query_start_s),
        upload_end: Seconds(r.query_end_s),
        episode: r.episode.clone(),
        pieces: r.pieces.clone(),
        episode_start: Seconds(r.episode_start_s.max(0.0)),
        episode_end: Seconds(r.episode_end_s),
        score: r.score,
        band: opts.band(r.score),
        longest_contiguous: longest,
        segments_voted: r.votes,
        evidence: None,
        status: Default::default(),
        rule: None,
        review: None,
        created_ms: 0,
        updated_ms: 0,
        models: None,
    }
}

/// One answer to a query.
#[derive(Debug, Clone, Serialize)]
pub struct QueryAnswer {
    /// Rank, from 1.
    pub rank: usize,
    /// Stem the match was found in.
    pub stem: Stem,
    /// Series name.
    pub series: String,
    /// Episode id.
    pub episode: String,
    /// Episode title.
    pub title: String,
    /// Episode source path.
    pub source: String,
    /// Piece id.
    pub piece: String,
    /// Where the clip starts in the episode, seconds.
    pub offset_s: f64,
    /// Sum of agreeing similarities (sequence-voting score).
    pub score: f32,
    /// Query segments that agree.
    pub votes: u32,
    /// The other stems that place the clip here too (less than a hop away), best first.
    pub other_stems: Vec<StemScore>,
}

/// A stem and its score for one answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StemScore {
    /// The stem.
    pub stem: Stem,
    /// Its sequence-voting score there.
    pub score: f32,
}

/// Answers, best first, with those that name the same place (episode, offset less than a
/// hop apart, as voting counts alignments) as a better one folded into it as other stems: the
/// top answers are distinct places, not one place once per stem.
fn distinct_places(sorted: Vec<QueryAnswer>, hop_s: f64) -> Vec<QueryAnswer> {
    let mut kept: Vec<QueryAnswer> = Vec::new();
    for a in sorted {
        let same = kept
            .iter_mut()
            .find(|k| k.episode == a.episode && (k.offset_s - a.offset_s).abs() < hop_s);
        match same {
            Some(k) if k.stem != a.stem && k.other_stems.iter().all(|o| o.stem != a.stem) => {
                k.other_stems.push(StemScore { stem: a.stem, score: a.score });
            }
            // A stem's own second reading of a place it already gave adds nothing.
            Some(_) => {}
            None => kept.push(a),
        }
    }
    kept
}

/// Find where a short clip comes from: per stem, top-k per segment, sequence voting over
/// `phases` sub-hop shifts of the clip (see [`vote::vote_phases`]), the voted alignments
/// verified against the stored segments (see [`vote::verify`]), the best `top` places over
/// all stems by score (a place several stems give is one answer: [`QueryAnswer::other_stems`]).
#[allow(clippy::too_many_arguments)]
pub fn query_file(
    catalog: &Catalog,
    index: &CatalogIndex<&Catalog>,
    analyzer: &Analyzer,
    path: &Path,
    top: usize,
    search: SearchKind,
    phases: usize,
    progress: &dyn Progress,
) -> Result<Vec<QueryAnswer>> {
    progress.stage(Stage::Decoding);
    let opts = DecodeOptions { rate: analyzer.rate(), channels: 1, ..DecodeOptions::default() };
    let audio = media::decode(path, &opts)?;
    if audio.is_empty() {
        return Err(Error::BadAudio {
            path: path.into(),
            reason: "no audio samples decoded".into(),
        });
    }
    progress.stage(Stage::Fingerprinting);
    let stems = analyzer.analyze_phases(&audio, phases)?;
    // Every grid this model's references of a stem are stored on (see
    // [`Analyzer::analyze_reference`]): a catalog ingested with fewer grids is searched on
    // those it has.
    let keys = index.keys()?;
    let grids_of: Vec<Vec<IndexKey>> = stems
        .iter()
        .map(|(stem, _)| {
            let plain = analyzer.key(*stem);
            let grids: Vec<IndexKey> =
                keys.iter().filter(|k| k.plain() == plain).cloned().collect();
            if grids.is_empty() { vec![plain] } else { grids }
        })
        .collect();
    if search == SearchKind::Ann {
        progress.stage(Stage::Indexing);
        index.build_keys_with(&grids_of.concat(), progress)?;
    }
    progress.stage(Stage::Searching);
    let hop = analyzer.fingerprinter().config().hop_seconds().0;
    let mut places = Placements { catalog, cache: HashMap::new() };
    let mut all = Vec::new();
    let cfg = analyzer.fingerprinter().config();
    for ((stem, copies), grids) in stems.iter().zip(&grids_of) {
        let grid_hops: Vec<f64> =
            grids.iter().map(|k| f64::from(k.offset) / cfg.hop as f64).collect();
        let fps: Vec<&Fingerprints> = copies.iter().map(|(_, f)| f).collect();
        // Grid-major: every copy's hits on the first grid, then on the next, ...
        let mut voted = Vec::with_capacity(grids.len() * copies.len());
        for (key, grid) in grids.iter().zip(&grid_hops) {
            let mut on_grid = copies
                .iter()
                .map(|(shift, f)| {
                    Ok((vote::grid_shift(*shift, *grid), index.search_batch(key, f, 20, search)?))
                })
                .collect::<Result<Vec<_>>>()?;
            if search == SearchKind::Ann {
                index.settle_clip(key, &fps, &mut on_grid, 20)?;
            }
            voted.extend(on_grid);
        }
        // Scores are per-segment support scaled to the unshifted copy's segment count, so
        // they read as before (a sum of similarities) and compare across stems.
        let full = copies.first().map_or(1, |(_, f)| f.len()) as f32;
        // Verify the voted alignments against the stored segments (more candidates than
        // asked for: verification may promote one voting ranked low).
        let voted = vote::vote_phases(&voted, top.max(vote::VERIFY_CANDIDATES));
        let mut stored: HashMap<(String, usize), Option<Fingerprints>> = HashMap::new();
        for c in &voted {
            for (g, key) in grids.iter().enumerate() {
                if let Entry::Vacant(e) = stored.entry((c.candidate.piece.clone(), g)) {
                    e.insert(index.piece_vectors(key, &c.candidate.piece)?);
                }
            }
        }
        let shifted: Vec<(f64, &Fingerprints)> = copies.iter().map(|(s, f)| (*s, f)).collect();
        let voted = vote::verify(voted, &shifted, &grid_hops, |p, g| {
            stored.get(&(p.to_string(), g)).and_then(Option::as_ref)
        });
        // Every verified candidate: folding stems into places below may leave fewer than `top`.
        for c in voted {
            let Some(place) = places.get(&c.candidate.piece) else { continue };
            let ep = catalog.episode(&place.episode)?;
            all.push(QueryAnswer {
                rank: 0,
                stem: *stem,
                series: ep.series.clone(),
                episode: ep.id.clone(),
                title: ep.title.clone(),
                source: ep.path.clone(),
                piece: c.candidate.piece.clone(),
                offset_s: place.start_s + c.offset_hops * hop,
                score: c.support * full,
                votes: c.candidate.votes,
                other_stems: Vec::new(),
            });
        }
    }
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut all = distinct_places(all, hop);
    all.truncate(top);
    for (i, a) in all.iter_mut().enumerate() {
        a.rank = i + 1;
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(stem: Stem, episode: &str, offset_s: f64, score: f32) -> QueryAnswer {
        QueryAnswer {
            rank: 0,
            stem,
            series: "s".into(),
            episode: episode.into(),
            title: episode.into(),
            source: String::new(),
            piece: format!("{episode}-000000000"),
            offset_s,
            score,
            votes: 4,
            other_stems: Vec::new(),
        }
    }

    #[test]
    fn one_place_is_one_answer_whatever_the_stems_that_give_it() {
        let sorted = vec![
            answer(Stem::Mix, "a", 100.0, 5.0),
            answer(Stem::Voice, "a", 100.125, 4.9),
            answer(Stem::Background, "a", 99.875, 4.6),
            answer(Stem::Voice, "a", 167.0, 4.0),
            // The mix's second reading a quarter second off: no new place, no second "mix".
            answer(Stem::Mix, "a", 100.25, 3.9),
            answer(Stem::Mix, "b", 100.0, 3.5),
        ];
        let places = distinct_places(sorted, 0.5);
        let got: Vec<(&str, f64, Stem)> =
            places.iter().map(|a| (a.episode.as_str(), a.offset_s, a.stem)).collect();
        assert_eq!(
            got,
            [("a", 100.0, Stem::Mix), ("a", 167.0, Stem::Voice), ("b", 100.0, Stem::Mix)]
        );
        let others: Vec<Stem> = places[0].other_stems.iter().map(|o| o.stem).collect();
        assert_eq!(others, [Stem::Voice, Stem::Background]);
        assert_eq!(places[0].other_stems[0].score, 4.9);
        assert!(places[1].other_stems.is_empty() && places[2].other_stems.is_empty());
    }

    fn region(q0: f64, q1: f64, offset: f64, votes: u32) -> EpisodeRegion {
        EpisodeRegion {
            episode: "ep".into(),
            offset_s: offset,
            q_start: 0,
            q_end: 0,
            query_start_s: q0,
            query_end_s: q1,
            episode_start_s: q0 + offset,
            episode_end_s: q1 + offset,
            score: 0.9,
            votes,
            longest_run: votes,
            pieces: vec!["ep-000000000".into()],
        }
    }

    #[test]
    fn trimmed_regions_keep_equal_lengths() {
        // Starts 0.3 s before the episode and runs 0.5 s past the upload's end.
        let mut r = region(2.0, 12.5, -2.3, 20);
        trim_to_bounds(&mut r, Seconds(12.0));
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(near(r.query_start_s, 2.3) && r.query_end_s == 12.0, "{r:?}");
        assert!(r.episode_start_s == 0.0 && near(r.episode_end_s, 9.7), "{r:?}");
    }

    #[test]
    fn longest_contiguous_is_the_longest_run_not_the_vote_count() {
        let opts = ScanOptions::default();
        // 20 s of upload, 20 scattered votes whose longest run is 2 segments: 1.5 s of audio.
        let r = EpisodeRegion { longest_run: 2, ..region(0.0, 20.0, 30.0, 20) };
        let m = to_match("u", Stem::Mix, &r, &opts);
        assert_eq!(m.longest_contiguous, Seconds(1.5));
        let r = EpisodeRegion { longest_run: 39, ..region(0.0, 20.0, 30.0, 39) };
        assert_eq!(to_match("u", Stem::Mix, &r, &opts).longest_contiguous, Seconds(20.0));
    }

    #[test]
    fn merged_parts_keep_one_alignment_and_equal_lengths() {
        let merged = merge_same_alignment(
            vec![region(10.0, 20.0, 30.04, 19), region(0.0, 10.5, 30.0, 19)],
            0.5,
        );
        assert_eq!(merged.len(), 1);
        let r = &merged[0];
        assert!((r.offset_s - 30.02).abs() < 1e-9, "{}", r.offset_s);
        assert_eq!((r.query_start_s, r.query_end_s), (0.0, 20.0));
        assert!((r.episode_start_s - 30.02).abs() < 1e-9);
        assert!(((r.episode_end_s - r.episode_start_s) - 20.0).abs() < 1e-9);
        // Another alignment of the same episode stays apart.
        let two = merge_same_alignment(
            vec![region(0.0, 10.0, 30.0, 19), region(10.0, 20.0, 90.0, 19)],
            0.5,
        );
        assert_eq!(two.len(), 2);
    }
}
