//! `aniprint export-pieces`: the dataset step. Kept pieces are decoded again from their
//! episode's source file (the stream chosen at ingest, at the export rate, mono or stereo as the
//! source up to 2 channels), written as audio files, and listed in `manifest.csv`; with
//! `--stems`, also separated into voice and background.
//!
//! Each episode is decoded once, streaming: a piece is written as soon as the decoder passes
//! its end, so memory holds one piece at a time. A source that moved or changed (its SHA-256
//! differs from ingest) fails its pieces; the other episodes go on.

use std::io::Write;
use std::path::{Path, PathBuf};

use aniprint::analyze::StemSplitter;
use aniprint::catalog::{Episode, Piece, PieceStatus};
use aniprint::ingest::{SourceChange, source_change};
use aniprint::media::write::{AudioFormat, write_audio};
use aniprint::media::{self, DecodeOptions, StreamSelect};
use aniprint::progress::{Progress, Stage};
use aniprint::report::{escape_cell, unescape_cell};
use aniprint::units::SampleRate;
use anyhow::{Context as _, anyhow, bail};

use super::bars::Bars;
use super::{Ctx, Outcome};

/// Sample rates the MP3 encoder accepts.
const MP3_RATES: &[u32] = &[8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

/// The manifest's columns, in order.
pub const MANIFEST_HEADER: [&str; 12] = [
    "series",
    "episode",
    "piece",
    "start_s",
    "end_s",
    "duration_s",
    "language",
    "source_file",
    "sha256",
    "file",
    "voice_file",
    "background_file",
];

/// Arguments of `aniprint export-pieces`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to write into (created if missing): <series>/<episode-id>/<piece-id>.<ext> and
    /// manifest.csv.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Audio file format.
    #[arg(long, value_enum, default_value_t = AudioFormat::Wav)]
    format: AudioFormat,
    /// Sample rate of the written files, in Hz.
    #[arg(long, default_value_t = 44_100, value_parser = clap::value_parser!(u32).range(8_000..=192_000))]
    rate: u32,
    /// Also export unreviewed pieces (dropped pieces never are).
    #[arg(long)]
    all: bool,
    /// Only pieces of this series.
    #[arg(long, value_name = "NAME")]
    series: Option<String>,
    /// Also write each piece's stems with the installed separator: `<piece>.voice.<ext>` (the
    /// separated dialogue, band-limited to the model's 4 kHz) and `<piece>.background.<ext>`
    /// (the mono mix minus that voice, so the two add up to the mix at full bandwidth).
    #[arg(long)]
    stems: bool,
}

/// One manifest line.
#[derive(Debug, Clone)]
struct Row {
    series: String,
    episode: String,
    piece: String,
    start_s: f64,
    end_s: f64,
    language: String,
    source_file: String,
    sha256: String,
    /// Files relative to the output folder (stems empty without `--stems`).
    file: String,
    voice_file: String,
    background_file: String,
}

impl Row {
    fn cells(&self) -> [String; 12] {
        [
            escape_cell(&self.series).into_owned(),
            escape_cell(&self.episode).into_owned(),
            escape_cell(&self.piece).into_owned(),
            format!("{:.3}", self.start_s),
            format!("{:.3}", self.end_s),
            format!("{:.3}", self.end_s - self.start_s),
            escape_cell(&self.language).into_owned(),
            escape_cell(&self.source_file).into_owned(),
            escape_cell(&self.sha256).into_owned(),
            escape_cell(&self.file).into_owned(),
            escape_cell(&self.voice_file).into_owned(),
            escape_cell(&self.background_file).into_owned(),
        ]
    }
}

/// A piece that could not be exported, and why.
type Failure = (String, anyhow::Error);

/// Export the selected pieces and write the manifest.
pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if args.format == AudioFormat::Mp3 && !MP3_RATES.contains(&args.rate) {
        bail!("mp3 cannot be written at {} Hz; use one of {MP3_RATES:?}", args.rate);
    }
    let splitter = if args.stems {
        Some(super::separate::default_splitter()?.ok_or_else(|| {
            anyhow!("--stems needs a separator model, and none is installed in models/")
        })?)
    } else {
        None
    };
    let catalog = ctx.open_catalog()?;
    let episodes = catalog.episodes()?;
    if let Some(s) = &args.series
        && !episodes.iter().any(|ep| ep.series == *s)
    {
        bail!("no series {s:?} in the catalog (`aniprint ls series` lists them); nothing written");
    }
    let wanted =
        |s: PieceStatus| s == PieceStatus::Keep || (args.all && s == PieceStatus::Unreviewed);
    let mut jobs: Vec<(Episode, Vec<Piece>)> = Vec::new();
    for ep in episodes {
        if args.series.as_ref().is_some_and(|s| *s != ep.series) {
            continue;
        }
        let mut pieces: Vec<Piece> =
            catalog.pieces_of(&ep.id)?.into_iter().filter(|p| wanted(p.status)).collect();
        pieces.sort_by_key(|p| p.start);
        if !pieces.is_empty() {
            jobs.push((ep, pieces));
        }
    }
    let total: usize = jobs.iter().map(|(_, p)| p.len()).sum();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    super::interrupt::install("the export", "episode");
    let bars = Bars::new(&ctx.multi, total as u64, "pieces", false);
    let mut rows = Vec::new();
    let mut failed: Vec<Failure> = Vec::new();
    let mut stopped = false;
    for (ep, pieces) in &jobs {
        // Ctrl-C: the pieces written so far still get their manifest.
        if super::interrupt::requested() {
            stopped = true;
            break;
        }
        export_episode(ep, pieces, &args, splitter.as_deref(), &bars, &mut rows, &mut failed);
    }
    bars.finish();
    let manifest = args.out.join("manifest.csv");
    // The manifest lists this export, and with --series also the other series an earlier
    // export left there (one series at a time builds one dataset). One that exported nothing
    // (nothing selected, or every piece failed) leaves it as it was.
    let keep_old = rows.is_empty() && manifest.exists();
    let mut earlier_kept = 0;
    if !keep_old {
        let earlier = earlier_rows(&manifest, &args.out, args.series.as_deref());
        earlier_kept = earlier.len();
        write_manifest(&manifest, earlier, &rows)?;
    }

    let mut out = std::io::stdout().lock();
    if !ctx.quiet {
        if total == 0 {
            let which = if args.all { "keep or unreviewed" } else { "keep" };
            writeln!(
                out,
                "no pieces with status {which}: mark some with `aniprint pieces set ID --status \
                 keep`, or pass --all"
            )?;
        }
        let note = match (keep_old, earlier_kept) {
            (true, _) => " (left as it was: nothing exported)".to_string(),
            (false, 0) => String::new(),
            (false, n) => format!(" (also lists {n} pieces an earlier export wrote there)"),
        };
        writeln!(
            out,
            "{} pieces exported, {} failed; manifest {}{note}",
            rows.len(),
            failed.len(),
            manifest.display(),
        )?;
    }
    out.flush()?;
    for (id, e) in &failed {
        eprintln!("failed: piece {id}: {e:#}");
    }
    if stopped {
        eprintln!(
            "stopped: {} of {total} pieces written and listed; the same command exports them all",
            rows.len()
        );
        return Ok(Outcome::Stopped);
    }
    Ok(if failed.is_empty() { Outcome::Ok } else { Outcome::Partial })
}

/// Decode one episode and write its selected pieces (sorted by start). Whatever cannot be
/// written lands in `failed`; every piece is accounted for.
fn export_episode(
    ep: &Episode,
    pieces: &[Piece],
    args: &Args,
    splitter: Option<&dyn StemSplitter>,
    bars: &Bars,
    rows: &mut Vec<Row>,
    failed: &mut Vec<Failure>,
) {
    bars.item(&ep.path);
    let mut done = 0usize;
    let res = cut_pieces(ep, pieces, args, bars, &mut |piece, samples, channels| {
        done += 1;
        bars.done(1);
        match write_piece(ep, piece, &samples, channels, args, splitter) {
            Ok(row) => rows.push(row),
            Err(e) => failed.push((piece.id.clone(), e)),
        }
    });
    let reason = match res {
        Err(e) => e,
        Ok(end_s) => anyhow!(
            "{}: the audio ends at {end_s:.3} s, before this piece does (the file decodes \
             shorter than at ingest)",
            ep.path
        ),
    };
    // Pieces the decode never reached share the episode's reason.
    let reason = format!("{reason:#}");
    for p in &pieces[done..] {
        bars.done(1);
        failed.push((p.id.clone(), anyhow!("{reason}")));
    }
}

/// Check the source, decode it and hand each piece's samples to `emit` in order. Returns the
/// decoded length in seconds when the stream ended.
fn cut_pieces(
    ep: &Episode,
    pieces: &[Piece],
    args: &Args,
    bars: &Bars,
    emit: &mut dyn FnMut(&Piece, Vec<f32>, u16),
) -> anyhow::Result<f64> {
    let source = ep.source_path();
    let path = source.as_path();
    check_source(ep, path, bars)?;
    let channels = ep.decode_channels();
    let rate = SampleRate(args.rate);
    // The same stream and decoder path as ingest (an explicit index always goes through FFmpeg),
    // so the piece boundaries land on the same audio.
    let opts = DecodeOptions { stream: StreamSelect::Index(ep.audio_stream), rate, channels };
    let mut src = media::open(path, &opts)?;
    let ch = usize::from(src.channels());
    let spans: Vec<(u64, u64)> = pieces
        .iter()
        .map(|p| (ep.work_rate.rescale(p.start, rate).0, ep.work_rate.rescale(p.end, rate).0))
        .collect();
    bars.stage(Stage::Exporting);
    bars.set_total(spans.last().map_or(0, |s| s.1));

    let mut next = 0usize;
    let mut pos = 0u64; // frames decoded so far
    let mut buf: Vec<f32> = Vec::new();
    while next < spans.len() {
        let Some(chunk) = src.next_chunk()? else { break };
        let frames = (chunk.len() / ch) as u64;
        let chunk_end = pos + frames;
        while let Some(&(s, e)) = spans.get(next) {
            let (a, b) = (s.max(pos), e.min(chunk_end));
            if a < b {
                buf.extend_from_slice(&chunk[((a - pos) as usize) * ch..((b - pos) as usize) * ch]);
            }
            if e > chunk_end {
                break;
            }
            emit(&pieces[next], std::mem::take(&mut buf), src.channels());
            next += 1;
        }
        bars.advance(frames);
        pos = chunk_end;
    }
    // The last piece ends where ingest's decode ended; the export rate's rounding may leave it
    // a few samples short.
    if let Some(&(s, e)) = spans.get(next) {
        let have = (buf.len() / ch) as u64;
        if have > 0 && e - s - have <= u64::from(args.rate / 10) {
            emit(&pieces[next], std::mem::take(&mut buf), src.channels());
        }
    }
    Ok(pos as f64 / f64::from(args.rate))
}

/// The source must be where ingest found it, with the same bytes.
fn check_source(ep: &Episode, path: &Path, progress: &dyn Progress) -> anyhow::Result<()> {
    match source_change(path, ep.size_bytes, &ep.sha256, progress) {
        Ok(None) => Ok(()),
        Ok(Some(SourceChange::Missing)) => bail!(
            "source file {} is missing (moved or deleted since ingest): put it back, or run \
             `aniprint catalog remove {}` and ingest it from its new place",
            ep.path,
            ep.id
        ),
        Ok(Some(SourceChange::Changed(what))) => bail!(
            "source file {} changed since ingest ({what}); it is no longer the audio these \
             pieces were cut from",
            ep.path
        ),
        Err(e) => Err(anyhow!(e).context(format!("source file {}", ep.path))),
    }
}

fn write_piece(
    ep: &Episode,
    piece: &Piece,
    samples: &[f32],
    channels: u16,
    args: &Args,
    splitter: Option<&dyn StemSplitter>,
) -> anyhow::Result<Row> {
    let rel = Path::new(&path_component(&ep.series)).join(path_component(&ep.id));
    let dir = args.out.join(&rel);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = |suffix: &str| {
        rel.join(format!("{}{suffix}.{}", path_component(&piece.id), args.format.extension()))
    };
    let rate = SampleRate(args.rate);
    let file = name("");
    write_audio(&args.out.join(&file), samples, rate, channels, args.format)?;
    let (mut voice_file, mut background_file) = (String::new(), String::new());
    if let Some(splitter) = splitter {
        let (voice, background) = split_at_rate(splitter, samples, channels, rate)
            .with_context(|| format!("separating piece {}", piece.id))?;
        for (suffix, audio, out) in
            [(".voice", voice, &mut voice_file), (".background", background, &mut background_file)]
        {
            let f = name(suffix);
            write_audio(&args.out.join(&f), &audio, rate, 1, args.format)?;
            *out = f.to_string_lossy().into_owned();
        }
    }
    let (start, end) = piece.span(ep.work_rate);
    Ok(Row {
        series: ep.series.clone(),
        episode: ep.id.clone(),
        piece: piece.id.clone(),
        start_s: round_ms(start.0),
        end_s: round_ms(end.0),
        language: ep.language.clone().unwrap_or_default(),
        source_file: ep.path.clone(),
        sha256: ep.sha256.clone(),
        file: file.to_string_lossy().into_owned(),
        voice_file,
        background_file,
    })
}

/// Voice and background of interleaved `samples` at `rate`, both mono at `rate`: the separator
/// runs at its own rate, its voice is brought back to `rate`, and the background is the mono
/// mix minus that voice (so everything above the model's band stays in the background).
fn split_at_rate(
    splitter: &dyn StemSplitter,
    samples: &[f32],
    channels: u16,
    rate: SampleRate,
) -> anyhow::Result<(Vec<f32>, Vec<f32>)> {
    let mono = media::to_mono(samples, channels);
    let low = media::resample(&mono, rate, splitter.rate())?;
    let (voice_low, _) = splitter.split(&low)?;
    let mut voice = media::resample(&voice_low, splitter.rate(), rate)?;
    voice.resize(mono.len(), 0.0);
    let background = mono.iter().zip(&voice).map(|(m, v)| m - v).collect();
    Ok((voice, background))
}

fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The rows of an earlier manifest in `out` that an export of one series leaves standing:
/// other series' pieces whose files are still there, as written (cells already escaped). An
/// export of every series lists itself alone. A manifest of other columns (an older
/// aniprint's) or that cannot be read is left out, and the user told.
fn earlier_rows(manifest: &Path, out: &Path, series: Option<&str>) -> Vec<Vec<String>> {
    let Some(series) = series.filter(|_| manifest.exists()) else { return Vec::new() };
    match read_earlier(manifest, out, series) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("note: {e:#}; it now lists this export only");
            Vec::new()
        }
    }
}

fn read_earlier(manifest: &Path, out: &Path, series: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let read = |e: csv::Error| anyhow!("reading {}: {e}", manifest.display());
    let mut rd = csv::Reader::from_path(manifest).map_err(read)?;
    if !rd.headers().map_err(read)?.iter().eq(MANIFEST_HEADER) {
        bail!("{} had other columns", manifest.display());
    }
    let mut kept = Vec::new();
    for rec in rd.records() {
        let rec = rec.map_err(read)?;
        let (of, file) = (unescape_cell(&rec[0]), unescape_cell(&rec[9]));
        if of != series && out.join(file).is_file() {
            kept.push(rec.iter().map(str::to_string).collect());
        }
    }
    Ok(kept)
}

/// Write the manifest: `earlier` rows and this export's, by series, episode and piece.
fn write_manifest(path: &Path, earlier: Vec<Vec<String>>, rows: &[Row]) -> anyhow::Result<()> {
    let mut all = earlier;
    all.extend(rows.iter().map(|r| r.cells().to_vec()));
    all.sort_by(|a, b| a[..3].cmp(&b[..3]));
    let tmp = path.with_extension("csv.partial");
    let mut w =
        csv::Writer::from_path(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    w.write_record(MANIFEST_HEADER)?;
    for r in &all {
        w.write_record(r)?;
    }
    w.flush().with_context(|| format!("writing {}", tmp.display()))?;
    drop(w);
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A name usable as one path component: separators and control characters become `_`, and
/// `.`/`..`/empty become `_`.
fn path_component(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c })
        .collect();
    if s.is_empty() || s == "." || s == ".." { "_".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_formula_cells_only() {
        assert_eq!(escape_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(escape_cell("+1"), "'+1");
        assert_eq!(escape_cell("-x"), "'-x");
        assert_eq!(escape_cell("@cmd"), "'@cmd");
        assert_eq!(escape_cell("\tx"), "'\tx");
        assert_eq!(escape_cell("Show = fun"), "Show = fun");
        assert_eq!(escape_cell(""), "");
    }

    #[test]
    fn path_components_cannot_escape() {
        assert_eq!(path_component("a/b"), "a_b");
        assert_eq!(path_component(".."), "_");
        assert_eq!(path_component("ねこ"), "ねこ");
    }
}
