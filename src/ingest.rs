//! The episode pipeline: find media under the given paths, hash each file, skip content already
//! in the catalog, decode the chosen audio stream, crop it into pieces at quiet points, flag
//! their quality, and store episode + pieces in one catalog transaction. Content already in the
//! catalog whose vectors for the models in use are missing is fingerprinted again instead.
//!
//! One bad file never stops a batch: its error is recorded in the [`IngestReport`] and the
//! next file starts. Only catalog failures and cancellation end the batch early.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::analyze::Analyzer;
use crate::catalog::{Catalog, Episode, Numbering, Piece, PieceStatus, QualityFlag, now_ms};
use crate::fingerprint::{Fingerprints, SILENT_PEAK};
use crate::index::{CatalogIndex, IndexKey, SearchKind, VectorStore};
use crate::media::crop::{CropConfig, Cropper, CutPiece};
use crate::media::{self, DecodeOptions};
use crate::progress::{Progress, Stage};
use crate::units::{SampleRate, Samples, Seconds};
use crate::{Error, Result};

/// How to ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Series name for every file; default: the name of the file's parent folder.
    pub series: Option<String>,
    /// Walk sub-folders of directory arguments.
    pub recursive: bool,
    /// Stream choice, working rate (mono).
    pub decode: DecodeOptions,
    /// Piece lengths.
    pub crop: CropConfig,
}

/// What happened to one file.
#[derive(Debug)]
pub enum Outcome {
    /// Newly stored.
    Ingested(Episode),
    /// Its content was already in the catalog (perhaps under another name).
    AlreadyPresent(Episode),
    /// Already in the catalog, but without vectors of the models in use (ingested with another
    /// fingerprint model, or without separation): its pieces were fingerprinted again from
    /// the source, with the piece boundaries on record.
    Reindexed(Episode),
}

/// The batch's summary: every input lands in exactly one list.
#[derive(Debug, Default)]
pub struct IngestReport {
    /// Newly stored episodes.
    pub ok: Vec<(PathBuf, Episode)>,
    /// Files whose content was already there.
    pub skipped: Vec<(PathBuf, Episode)>,
    /// Files already there whose pieces were fingerprinted again for the models in use.
    pub reindexed: Vec<(PathBuf, Episode)>,
    /// Files (or arguments) that failed, with the reason.
    pub failed: Vec<(PathBuf, Error)>,
    /// Why the batch stopped before its end (cancelled, the catalog failing, the approximate
    /// index build failing); the lists above hold what was done until then, which is stored.
    pub stopped: Option<Error>,
}

/// Expand arguments into media files: files as given, directories walked for media
/// extensions (sorted, so batches run in a stable order). Arguments that hold no media become
/// errors in the second list.
pub fn collect_inputs(paths: &[PathBuf], recursive: bool) -> (Vec<PathBuf>, Vec<(PathBuf, Error)>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        match std::fs::metadata(p) {
            Err(e) => errors.push((p.clone(), Error::io(p, e))),
            Ok(m) if m.is_dir() => {
                let (before, errors_before) = (files.len(), errors.len());
                walk(p, recursive, &mut seen, &mut files, &mut errors);
                if files.len() == before && errors.len() == errors_before {
                    errors.push((p.clone(), Error::NoMedia { path: p.clone() }));
                }
            }
            Ok(_) => files.push(p.clone()),
        }
    }
    (files, errors)
}

/// Add the media files in `dir` (and its sub-folders when `recursive`) to `out`. A folder that
/// cannot be read is an error of its own and the walk goes on with the rest; a folder reached
/// again (a symlink loop, two links to one folder) is walked once.
fn walk(
    dir: &Path,
    recursive: bool,
    seen: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
    errors: &mut Vec<(PathBuf, Error)>,
) {
    if !seen.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())) {
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            errors.push((dir.to_path_buf(), Error::io(dir, e)));
            return;
        }
    };
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                walk(&p, recursive, seen, out, errors);
            }
        } else if media::is_media_path(&p) {
            out.push(p);
        }
    }
}

/// How a failed file is reported: "<path>: <cause>", the path not repeated when the error
/// already starts with it (most do; a model or index error does not).
pub fn failure_line(path: &Path, e: &Error) -> String {
    let (p, msg) = (path.display().to_string(), e.to_string());
    if msg.starts_with(&p) { msg } else { format!("{p}: {msg}") }
}

/// ", N fingerprinted again" for a batch summary when `n` episodes on record were fingerprinted
/// again ([`Outcome::Reindexed`]), nothing otherwise.
pub fn again_note(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(", {n} fingerprinted again"),
    }
}

/// Models and vector store for fingerprinting pieces as they are ingested.
#[derive(Debug)]
pub struct Indexing<'a> {
    /// Separator + fingerprinter.
    pub analyzer: &'a Analyzer,
    /// Where the vectors go (the same catalog).
    pub index: &'a CatalogIndex<&'a Catalog>,
}

/// Ingest every media file under `paths` into `catalog` (records only, no fingerprints).
pub fn ingest_paths(
    catalog: &Catalog,
    paths: &[PathBuf],
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    ingest_paths_indexed(catalog, paths, opts, None, progress)
}

/// Ingest every media file under `paths`; with `indexing`, every piece is separated and
/// fingerprinted and its vectors stored in the same transaction as the episode, and, once the
/// catalog is past [`crate::index::AUTO_ANN_FROM`] segments per index (where scans turn to
/// arroy), the model's approximate indexes are brought up to date at the end of the batch.
///
/// A batch that stops early (cancelled, the catalog failing) still returns its report, with
/// the reason in [`IngestReport::stopped`]: callers must check it.
pub fn ingest_paths_indexed(
    catalog: &Catalog,
    paths: &[PathBuf],
    opts: &IngestOptions,
    indexing: Option<&Indexing<'_>>,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    let (files, errors) = collect_inputs(paths, opts.recursive);
    let mut report = IngestReport { failed: errors, ..Default::default() };
    for path in files {
        if let Err(e) = progress.check() {
            report.stopped = Some(e);
            return Ok(report);
        }
        progress.item(&path.to_string_lossy());
        match ingest_file_indexed(catalog, &path, opts, indexing, progress) {
            Ok(Outcome::Ingested(ep)) => report.ok.push((path, ep)),
            Ok(Outcome::AlreadyPresent(ep)) => report.skipped.push((path, ep)),
            Ok(Outcome::Reindexed(ep)) => report.reindexed.push((path, ep)),
            // Cancelled, or the catalog itself failing (not this file's fault): stop the
            // batch, keeping the account of what was done.
            Err(e @ (Error::Cancelled | Error::Catalog(_) | Error::SchemaMismatch { .. })) => {
                report.stopped = Some(e);
                return Ok(report);
            }
            Err(e) => {
                tracing::warn!("{}", failure_line(&path, &e));
                report.failed.push((path, e));
            }
        }
    }
    // The forests only where scans will search them (`SearchKind::for_size`); a catalog
    // below that size is searched exactly and needs none (an approximate search builds its
    // own first).
    if let Some(ix) = indexing.filter(|_| !report.ok.is_empty() || !report.reindexed.is_empty())
        && let Err(e) = build_forests(ix, progress)
    {
        report.stopped = Some(e);
    }
    Ok(report)
}

/// Bring the model's approximate indexes up to date when scans of a catalog this size use them.
fn build_forests(ix: &Indexing<'_>, progress: &dyn Progress) -> Result<()> {
    if ix.index.auto_search(ix.analyzer.model())? == SearchKind::Ann {
        let model = ix.analyzer.model();
        let keys: Vec<IndexKey> =
            ix.index.keys()?.into_iter().filter(|k| k.model == model).collect();
        progress.stage(Stage::Indexing);
        ix.index.build_keys_with(&keys, progress)?;
    }
    Ok(())
}

/// How a file on record differs from the file now at its path ([`source_change`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChange {
    /// Nothing is there any more.
    Missing,
    /// Other bytes: what differs, in words ("12 bytes now, 10 on record").
    Changed(String),
}

/// Whether the file at `path` is still the one recorded with `size` bytes and `sha256`: the
/// size first (free), then the hash. Export and evidence clips cut from a file by the times on
/// record, which mean nothing in other bytes.
pub fn source_change(
    path: &Path,
    size: u64,
    sha256: &str,
    progress: &dyn Progress,
) -> Result<Option<SourceChange>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(SourceChange::Missing));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.len() != size {
        let what = format!("{} bytes now, {size} on record", meta.len());
        return Ok(Some(SourceChange::Changed(what)));
    }
    let now = sha256_file(path, progress)?;
    let short = |s: &str| s.get(..12).unwrap_or(s).to_string();
    Ok((now != sha256).then(|| {
        SourceChange::Changed(format!("sha256 {} now, {} on record", short(&now), short(sha256)))
    }))
}

/// SHA-256 of a file's bytes, streamed.
pub fn sha256_file(path: &Path, progress: &dyn Progress) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    progress.stage(Stage::Hashing);
    progress.set_total(len);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Ingest one file (records only).
pub fn ingest_file(
    catalog: &Catalog,
    path: &Path,
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<Outcome> {
    ingest_file_indexed(catalog, path, opts, None, progress)
}

/// Ingest one file; with `indexing`, fingerprint its pieces (at the analyzer's rate, which
/// then is the working rate) and store their vectors atomically with the episode.
pub fn ingest_file_indexed(
    catalog: &Catalog,
    path: &Path,
    opts: &IngestOptions,
    indexing: Option<&Indexing<'_>>,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let size_bytes = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if size_bytes == 0 {
        return Err(Error::media(path, "empty file (0 bytes)"));
    }
    let series = opts.series.clone().unwrap_or_else(|| default_series(path));
    check_series(path, &series)?;
    let sha256 = sha256_file(path, progress)?;
    if let Some(ep) = catalog.episode_by_hash(&sha256)? {
        return match indexing {
            Some(ix) => {
                let missing = missing_vectors(catalog, &ep, ix)?;
                if missing.is_empty() {
                    return Ok(Outcome::AlreadyPresent(ep));
                }
                reindex_episode(catalog, path, &ep, ix, &missing, progress)?;
                Ok(Outcome::Reindexed(ep))
            }
            None => Ok(Outcome::AlreadyPresent(ep)),
        };
    }
    let info = media::probe(path)?;
    let stream = info.select(path, &opts.decode.stream)?.clone();
    let decode = DecodeOptions {
        stream: media::StreamSelect::Index(stream.index),
        channels: 1,
        rate: indexing.map_or(opts.decode.rate, |ix| ix.analyzer.rate()),
    };
    let rate = decode.rate;

    // One stage for the whole loop: with indexing a piece counts once it is separated and
    // fingerprinted (decoding runs a piece ahead), without as it decodes. Switching stages per
    // piece would restart the bar (a stage starts at 0) and, in the TUI, drop its total.
    progress.stage(if indexing.is_some() { Stage::Fingerprinting } else { Stage::Decoding });
    let total = info.duration.map(|d| rate.samples(d).0).unwrap_or(0);
    progress.set_total(total);
    // With indexing, the next piece decodes while this one is separated and fingerprinted
    // (without, decoding still runs beside cropping and hashing, a few chunks ahead).
    let ahead = if indexing.is_some() { rate.samples(opts.crop.piece).0 as usize } else { 0 };
    let mut src = media::ReadAhead::open(path, &decode, ahead)?;
    let mut cropper = Cropper::new(opts.crop, rate);
    let mut cut: Vec<CutPiece> = Vec::new();
    let mut stats = Vec::new();
    let mut vectors: Vec<Vec<(IndexKey, Fingerprints)>> = Vec::new();
    let mut decoded = 0u64;
    // Keep only each piece's level statistics and fingerprints, not its samples: memory stays
    // bounded whatever the episode's length.
    let mut take = |p: CutPiece| -> Result<()> {
        stats.push(PieceStats::of(&p));
        if let Some(ix) = indexing {
            vectors.push(ix.analyzer.analyze_reference(&p.samples)?);
            progress.advance(p.samples.len() as u64);
        }
        cut.push(CutPiece { samples: Vec::new(), ..p });
        Ok(())
    };
    while let Some(chunk) = src.next_chunk()? {
        progress.check()?;
        decoded += chunk.len() as u64;
        if indexing.is_none() {
            progress.advance(chunk.len() as u64);
        }
        for p in cropper.push(&chunk) {
            take(p)?;
        }
    }
    for p in cropper.finish() {
        take(p)?;
    }
    if decoded == 0 {
        return Err(Error::BadAudio {
            path: path.into(),
            reason: "no audio samples decoded".into(),
        });
    }
    // Decoders stop quietly at the end of a truncated file; a container that declares much
    // more than decoded is damaged, and its pieces would be wrong. Unless the file's video
    // went on and the audio decoded as far as its own packets reached: a video that outlasts
    // its audio track is whole (audio packets that failed to decode are not).
    let got = rate.seconds(Samples(decoded)).0;
    let short = |s: f64, d: f64| s < d * TRUNCATED_FRACTION - 1.0;
    let read = src.media_read();
    let video_went_on =
        |d: f64| read.is_some_and(|r| !short(r.streams.0, d) && !short(got, r.audio.0));
    if let Some(declared) = info.duration.filter(|d| short(got, d.0) && !video_went_on(d.0)) {
        return Err(Error::BadAudio {
            path: path.into(),
            reason: format!(
                "decoded only {got:.1} s of the {:.1} s the container declares: the file is \
                 truncated or damaged (copy or download it again)",
                declared.0
            ),
        });
    }
    if stats.iter().all(|s| s.peak < SILENT_PEAK) {
        return Err(Error::BadAudio {
            path: path.into(),
            reason: format!("audio stream #{} is silent", stream.index),
        });
    }

    let id = sha256[..12].to_string();
    let n_pieces = cut.len() as u32;
    let pieces: Vec<Piece> = cut
        .iter()
        .zip(&stats)
        .enumerate()
        .map(|(i, (c, s))| Piece {
            id: Piece::make_id(&id, rate.seconds(c.start)),
            episode: id.clone(),
            index: i as u32,
            start: c.start,
            end: c.end,
            status: PieceStatus::Unreviewed,
            flags: s.flags(rate.seconds(Samples(c.end.0 - c.start.0)), opts.crop.min_last),
            rms_dbfs: s.rms_dbfs(),
        })
        .collect();
    let title = info
        .tags
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("title"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| {
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
        });
    // Absolute, so export finds the source whatever directory it runs from.
    let (path_text, path_bytes) =
        crate::catalog::path_fields(std::fs::canonicalize(path).as_deref().unwrap_or(path));
    let episode = Episode {
        id,
        series,
        title,
        path: path_text,
        path_bytes,
        sha256,
        size_bytes,
        duration: rate.seconds(Samples(decoded)),
        streams: info.streams.clone(),
        audio_stream: stream.index,
        language: stream.language.clone(),
        source_rate: stream.sample_rate,
        work_rate: rate,
        pieces: n_pieces,
        ingested_ms: now_ms(),
        numbering: numbering(path, &info.tags),
    };
    progress.stage(Stage::Storing);
    let store_vectors = |w: &mut heed::RwTxn<'_>| match indexing {
        Some(ix) => store_piece_vectors(w, ix, &pieces, &vectors),
        None => Ok(()),
    };
    match catalog.insert_episode_with(&episode, &pieces, store_vectors)? {
        Some(existing) => Ok(Outcome::AlreadyPresent(existing)),
        None => Ok(Outcome::Ingested(episode)),
    }
}

/// The indexes of `ix`'s models (stems and grids) that an episode on record has no vectors in:
/// its longest piece (one with at least a segment, if any has) is looked up in each. An
/// episode's vectors are written in one transaction, so one piece stands for all.
fn missing_vectors(catalog: &Catalog, ep: &Episode, ix: &Indexing<'_>) -> Result<Vec<IndexKey>> {
    let pieces = catalog.pieces_of(&ep.id)?;
    let Some(longest) = pieces.iter().max_by_key(|p| p.end.0.saturating_sub(p.start.0)) else {
        return Ok(Vec::new());
    };
    let len = longest.end.0.saturating_sub(longest.start.0) as usize;
    let cfg = ix.analyzer.fingerprinter().config();
    let mut missing = Vec::new();
    for key in ix.analyzer.reference_keys() {
        // A grid that starts past the piece's audio stores nothing for it.
        if cfg.n_segments(len.saturating_sub(key.offset as usize)) == 0 {
            continue;
        }
        if ix.index.piece_vectors(&key, &longest.id)?.is_none() {
            missing.push(key);
        }
    }
    Ok(missing)
}

/// Fingerprint the pieces of an episode already on record for the indexes `keys` (those it
/// lacks) and store their vectors in one transaction. The source is decoded again (same
/// stream, same working rate; its hash matched, so the samples are the ones cropped at ingest)
/// and cut at the piece boundaries on record, holding only the audio of the piece being cut.
fn reindex_episode(
    catalog: &Catalog,
    path: &Path,
    ep: &Episode,
    ix: &Indexing<'_>,
    keys: &[IndexKey],
    progress: &dyn Progress,
) -> Result<()> {
    let rate = ix.analyzer.rate();
    let mut pieces = catalog.pieces_of(&ep.id)?;
    pieces.sort_by_key(|p| p.index);
    // An episode recorded at another rate (`ingest --no-index` works at `work_rate`, 16 kHz by
    // default; the models at 8 kHz) is cut at the same times: its bounds counted at the models'
    // rate. The records keep theirs.
    for p in &mut pieces {
        (p.start, p.end) = (ep.work_rate.rescale(p.start, rate), ep.work_rate.rescale(p.end, rate));
    }
    let decode =
        DecodeOptions { stream: media::StreamSelect::Index(ep.audio_stream), channels: 1, rate };
    progress.stage(Stage::Decoding);
    progress.set_total(rate.samples(ep.duration).0);
    // The longest piece decodes ahead while the one before it is analysed.
    let longest = pieces.iter().map(|p| p.end.0.saturating_sub(p.start.0)).max().unwrap_or(0);
    let mut src = media::ReadAhead::open(path, &decode, longest as usize)?;
    // buf holds samples [buf_start, buf_start + buf.len()) of the stream.
    let (mut buf, mut buf_start, mut ended) = (Vec::<f32>::new(), 0u64, false);
    let mut vectors = Vec::with_capacity(pieces.len());
    let mut next = 0;
    while next < pieces.len() {
        progress.check()?;
        let p = &pieces[next];
        if !ended && buf_start + (buf.len() as u64) < p.end.0 {
            match src.next_chunk()? {
                Some(chunk) => {
                    progress.advance(chunk.len() as u64);
                    buf.extend_from_slice(&chunk);
                }
                None => ended = true,
            }
            continue;
        }
        if buf_start + (buf.len() as u64) < p.end.0 {
            return Err(Error::media(
                path,
                format!(
                    "decoded {:.1} s, but piece {} ends at {:.1} s: the file no longer decodes \
                     as it did at ingest",
                    rate.seconds(Samples(buf_start + buf.len() as u64)).0,
                    p.id,
                    rate.seconds(p.end).0
                ),
            ));
        }
        let at = |x: u64| (x.saturating_sub(buf_start) as usize).min(buf.len());
        progress.stage(Stage::Fingerprinting);
        vectors.push(ix.analyzer.analyze_reference_for(&buf[at(p.start.0)..at(p.end.0)], keys)?);
        progress.stage(Stage::Decoding);
        next += 1;
        // Drop what no later piece needs.
        let keep = pieces.get(next).map_or(p.end.0, |q| q.start.0.min(p.end.0));
        let drop = at(keep);
        buf.drain(..drop);
        buf_start += drop as u64;
    }
    progress.stage(Stage::Storing);
    catalog.write_txn(|w| store_piece_vectors(w, ix, &pieces, &vectors))
}

/// Store each piece's vectors (per stem and grid, from [`Analyzer::analyze_reference`]) inside
/// the caller's transaction.
fn store_piece_vectors(
    w: &mut heed::RwTxn<'_>,
    ix: &Indexing<'_>,
    pieces: &[Piece],
    vectors: &[Vec<(IndexKey, Fingerprints)>],
) -> Result<()> {
    for (piece, keyed) in pieces.iter().zip(vectors) {
        for (key, fps) in keyed {
            ix.index.add_piece_in(w, key, &piece.id, fps)?;
        }
    }
    Ok(())
}

/// The longest series name, in bytes: names are catalog keys, and LMDB's keys stop at 511.
pub const MAX_SERIES_BYTES: usize = 511;

/// A series name the catalog can key `path`'s episode by: not blank, at most
/// [`MAX_SERIES_BYTES`].
fn check_series(path: &Path, series: &str) -> Result<()> {
    let problem = if series.trim().is_empty() {
        "the series name is empty (give one with --series)".to_string()
    } else if series.len() > MAX_SERIES_BYTES {
        format!(
            "the series name is {} bytes, over the catalog's {MAX_SERIES_BYTES} (give a shorter \
             one with --series)",
            series.len()
        )
    } else {
        return Ok(());
    };
    Err(Error::Invalid(format!("{}: {problem}", path.display())))
}

/// The season and episode number ingest records for `path`: its container tags', else its file
/// name's.
pub fn numbering(path: &Path, tags: &[(String, String)]) -> Numbering {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    Numbering::from_tags(tags).or(Numbering::from_file_name(&name))
}

/// The series a file belongs to when none is given: its folder's name.
fn default_series(path: &Path) -> String {
    std::fs::canonicalize(path)
        .ok()
        .as_deref()
        .unwrap_or(path)
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unsorted".into())
}

/// A decode shorter than this fraction of the declared duration (less 1 s) means truncation.
/// Loose on purpose: declared durations of VBR streams without an index are estimates.
const TRUNCATED_FRACTION: f64 = 0.9;

/// Level statistics of one piece, for quality flags.
#[derive(Debug, Clone, Copy)]
struct PieceStats {
    peak: f32,
    sum_sq: f64,
    n: u64,
    clipped: u64,
    silent: u64,
}

impl PieceStats {
    fn of(p: &CutPiece) -> Self {
        let mut s =
            PieceStats { peak: 0.0, sum_sq: 0.0, n: p.samples.len() as u64, clipped: 0, silent: 0 };
        for &x in &p.samples {
            let a = x.abs();
            s.peak = s.peak.max(a);
            s.sum_sq += f64::from(x) * f64::from(x);
            s.clipped += u64::from(a >= 0.999);
            s.silent += u64::from(a < SILENT_PEAK);
        }
        s
    }

    fn rms_dbfs(&self) -> f32 {
        let rms = (self.sum_sq / self.n.max(1) as f64).sqrt();
        (20.0 * rms.max(1e-10).log10()) as f32
    }

    fn flags(&self, len: Seconds, min_len: Seconds) -> Vec<QualityFlag> {
        let n = self.n.max(1) as f64;
        let mut f = Vec::new();
        if self.silent as f64 / n > 0.5 {
            f.push(QualityFlag::Silence);
        }
        if self.clipped as f64 / n > 1e-3 {
            f.push(QualityFlag::Clipping);
        }
        if self.rms_dbfs() < -35.0 {
            f.push(QualityFlag::LowLevel);
        }
        if len.0 < min_len.0 {
            f.push(QualityFlag::TooShort);
        }
        f
    }
}

/// The working rate pieces are counted in by default.
pub const WORK_RATE: SampleRate = SampleRate(16_000);
