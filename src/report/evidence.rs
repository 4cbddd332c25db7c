//! Evidence clips for a report: each match's stretch of the upload and of the episode, cut
//! from the files the scan and the ingest read, as audio files a legal team plays side by side,
//! listed with their SHA-256 in `SHA256SUMS` (the `sha256sum -c` format).
//!
//! A source is checked against the size and SHA-256 on record before anything is cut from it:
//! a clip of a file that changed since it was scanned or ingested would be evidence of something
//! else. Each file is decoded once, streaming, however many clips it gives. A match gets its
//! `evidence_ref` only when both its clips were cut; otherwise neither is kept.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, MatchRegion};
use crate::ingest::{SourceChange, source_change};
use crate::media::write::{AudioFormat, write_audio};
use crate::media::{self, DecodeOptions, StreamSelect};
use crate::progress::{Progress, Stage};
use crate::units::{SampleRate, Seconds};
use crate::{Error, Result};

/// How evidence clips are written.
#[derive(Debug, Clone)]
pub struct EvidenceOptions {
    /// Folder the clips and `SHA256SUMS` go into (created if missing).
    pub dir: PathBuf,
    /// How the clips' paths are written into `evidence_ref`: relative to this folder (the
    /// CSV's) when the clips are inside it, so the report and its clips move together;
    /// absolute otherwise.
    pub relative_to: Option<PathBuf>,
    /// Audio format of the clips.
    pub format: AudioFormat,
    /// Sample rate of the clips.
    pub rate: SampleRate,
    /// A clip stops this long after its start: a long reuse is evidenced by its beginning.
    pub max_s: f64,
}

impl EvidenceOptions {
    /// FLAC at 44.1 kHz, in the source's channels (mono or stereo), at most 60 s a clip.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            relative_to: None,
            format: AudioFormat::Flac,
            rate: SampleRate(44_100),
            max_s: 60.0,
        }
    }
}

/// Where the TUI puts a report's evidence: `evidence/` beside the CSV.
pub fn dir_beside(csv: &Path) -> PathBuf {
    csv.parent().unwrap_or(Path::new("")).join("evidence")
}

/// What [`write_clips`] did.
#[derive(Debug, Default)]
pub struct Evidence {
    /// Match id -> the `evidence_ref` cell: the upload clip's path, `;`, the episode clip's.
    pub refs: BTreeMap<String, String>,
    /// Clip files written and kept (two per match in `refs`).
    pub written: usize,
    /// Why clips could not be cut, one entry per source file (or missing record), naming it;
    /// the matches concerned get no `evidence_ref`.
    pub failed: Vec<Error>,
}

/// One stretch to cut from a source file.
struct Cut {
    match_id: String,
    start: Seconds,
    end: Seconds,
    file: PathBuf,
}

/// A source file to cut from, and what it must be.
struct Source {
    path: PathBuf,
    stream: StreamSelect,
    size: u64,
    sha256: String,
    channels: u16,
    cuts: Vec<Cut>,
}

/// Why a source gave no clip: its own problem (the batch goes on), or the destination's (it
/// stops: every other clip would fail the same way).
enum Failure {
    Source(Error),
    Destination(Error),
}

/// Write the upload and episode clips of `regions` into `opts.dir`. A source that is missing,
/// changed or unreadable fails its own matches and the rest go on; a folder that cannot be
/// written fails the whole call. Runs into one folder take turns (a lock file in it).
pub fn write_clips(
    catalog: &Catalog,
    regions: &[MatchRegion],
    opts: &EvidenceOptions,
    progress: &dyn Progress,
) -> Result<Evidence> {
    std::fs::create_dir_all(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
    let lock_path = opts.dir.join(".aniprint-evidence.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    // Two runs writing one clip or SHA256SUMS at once would mangle them.
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;

    let mut evidence = Evidence::default();
    let mut bad: BTreeSet<String> = BTreeSet::new();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let clip =
        |id: &str, side: &str| opts.dir.join(format!("{id}-{side}.{}", opts.format.extension()));
    for m in regions.iter().filter(|m| seen.insert(m.id.clone())) {
        // A match whose upload or episode record is gone (`catalog remove`) has nothing to cut
        // from; the others go on.
        let (upload, ep) = match (catalog.upload(&m.upload), catalog.episode(&m.episode)) {
            (Ok(u), Ok(e)) => (u, e),
            (Err(e @ Error::NotFound { .. }), _) | (_, Err(e @ Error::NotFound { .. })) => {
                evidence.failed.push(Error::Invalid(format!("match {}: {e}", m.id)));
                bad.insert(m.id.clone());
                continue;
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        let len = (m.upload_end.0 - m.upload_start.0).min(opts.max_s);
        let sides = [
            (
                "upload",
                m.upload_start,
                format!("u{}", upload.id),
                Source {
                    path: upload.source_path(),
                    stream: upload.audio_stream.map_or(StreamSelect::Default, StreamSelect::Index),
                    size: upload.size_bytes,
                    sha256: upload.sha256.clone(),
                    channels: 0, // read from the file
                    cuts: Vec::new(),
                },
            ),
            (
                "reference",
                m.episode_start,
                format!("e{}", ep.id),
                Source {
                    path: ep.source_path(),
                    // The stream and decoder path ingest took, so times land on the same audio.
                    stream: StreamSelect::Index(ep.audio_stream),
                    size: ep.size_bytes,
                    sha256: ep.sha256.clone(),
                    channels: ep.decode_channels(),
                    cuts: Vec::new(),
                },
            ),
        ];
        for (side, start, key, source) in sides {
            sources.entry(key).or_insert(source).cuts.push(Cut {
                match_id: m.id.clone(),
                start,
                end: Seconds(start.0 + len),
                file: clip(&m.id, side),
            });
        }
    }
    let mut written: BTreeSet<PathBuf> = BTreeSet::new();
    for (_, mut src) in sources {
        progress.check()?;
        progress.item(&src.path.to_string_lossy());
        src.cuts.sort_by(|a, b| a.start.0.total_cmp(&b.start.0));
        match cut_source(&src, opts, progress) {
            Ok((files, skipped)) => {
                written.extend(files);
                evidence.failed.extend(skipped);
            }
            Err(Failure::Source(Error::Cancelled)) => return Err(Error::Cancelled),
            Err(Failure::Source(e)) => {
                bad.extend(src.cuts.iter().map(|c| c.match_id.clone()));
                evidence.failed.push(e);
            }
            Err(Failure::Destination(e)) => return Err(e),
        }
    }
    // A match is evidenced by both its clips or not at all.
    for id in &seen {
        let pair = [clip(id, "upload"), clip(id, "reference")];
        if bad.contains(id) || !pair.iter().all(|f| written.contains(f)) {
            for f in &pair {
                if written.remove(f) {
                    std::fs::remove_file(f).map_err(|e| Error::io(f, e))?;
                }
            }
            continue;
        }
        let shown = |f: &Path| shown_path(f, opts.relative_to.as_deref());
        evidence.refs.insert(id.clone(), format!("{};{}", shown(&pair[0]), shown(&pair[1])));
    }
    evidence.written = written.len();
    write_sums(&opts.dir, &written)?;
    Ok(evidence)
}

/// Check `src` against its record, decode it once and write each cut. Returns the files
/// written, and why any cut was not.
fn cut_source(
    src: &Source,
    opts: &EvidenceOptions,
    progress: &dyn Progress,
) -> std::result::Result<(Vec<PathBuf>, Vec<Error>), Failure> {
    let path = src.path.as_path();
    let fail = |reason: String| Failure::Source(Error::BadAudio { path: path.into(), reason });
    match source_change(path, src.size, &src.sha256, progress).map_err(Failure::Source)? {
        None => {}
        Some(SourceChange::Missing) => {
            return Err(fail("missing: moved or deleted since it was scanned or ingested".into()));
        }
        Some(SourceChange::Changed(what)) => {
            return Err(fail(format!(
                "changed since it was scanned or ingested ({what}): no evidence cut from it"
            )));
        }
    }
    let info = media::probe(path).map_err(Failure::Source)?;
    // Scans recorded before the stream was kept decoded the default stream; name it by index
    // so the cut goes through the same decoder (FFmpeg) the scan did.
    let stream = info.select(path, &src.stream).map_err(Failure::Source)?;
    let channels = match src.channels {
        0 => stream.channels.unwrap_or(2).clamp(1, 2),
        c => c,
    };
    let decode =
        DecodeOptions { stream: StreamSelect::Index(stream.index), rate: opts.rate, channels };
    let mut audio = media::open(path, &decode).map_err(Failure::Source)?;
    let ch = usize::from(audio.channels());
    let frames = |t: Seconds| (t.0.max(0.0) * f64::from(opts.rate.0)).round() as u64;
    let spans: Vec<(u64, u64)> =
        src.cuts.iter().map(|c| (frames(c.start), frames(c.end))).collect();
    progress.stage(Stage::Exporting);
    progress.set_total(spans.iter().map(|s| s.1).max().unwrap_or(0));
    let mut bufs: Vec<Option<Vec<f32>>> = vec![Some(Vec::new()); spans.len()];
    let mut out = Vec::new();
    let write = |i: usize, samples: &[f32], out: &mut Vec<PathBuf>| {
        let f = &src.cuts[i].file;
        write_audio(f, samples, opts.rate, audio_channels(ch), opts.format)
            .map_err(Failure::Destination)?;
        out.push(f.clone());
        Ok(())
    };
    let mut pos = 0u64;
    let mut open = spans.len();
    // Clips overlap (one stretch matched by several stems), so each chunk feeds every open one.
    while open > 0 {
        progress.check().map_err(Failure::Source)?;
        let Some(chunk) = audio.next_chunk().map_err(Failure::Source)? else { break };
        let chunk_end = pos + (chunk.len() / ch) as u64;
        for (i, &(s, e)) in spans.iter().enumerate() {
            let Some(buf) = bufs[i].as_mut() else { continue };
            let (a, b) = (s.max(pos), e.min(chunk_end));
            if a < b {
                buf.extend_from_slice(&chunk[((a - pos) as usize) * ch..((b - pos) as usize) * ch]);
            }
            if e <= chunk_end {
                let samples = bufs[i].take().unwrap_or_default();
                write(i, &samples, &mut out)?;
                open -= 1;
            }
        }
        progress.advance(chunk_end - pos);
        pos = chunk_end;
    }
    // The audio ended first: a match's last segment is padded past the end of its audio, so
    // its clip ends where the audio does. A stretch that starts after the end has nothing.
    let mut skipped = Vec::new();
    for (i, buf) in bufs.into_iter().enumerate() {
        let Some(buf) = buf else { continue };
        if buf.is_empty() {
            skipped.push(Error::BadAudio {
                path: path.into(),
                reason: format!(
                    "the audio ends at {:.3} s, before match {}'s stretch {:.3}-{:.3} s starts",
                    pos as f64 / f64::from(opts.rate.0),
                    src.cuts[i].match_id,
                    src.cuts[i].start.0,
                    src.cuts[i].end.0
                ),
            });
            continue;
        }
        write(i, &buf, &mut out)?;
    }
    Ok((out, skipped))
}

/// The channel count of `ch` interleaved samples a frame.
fn audio_channels(ch: usize) -> u16 {
    u16::try_from(ch).unwrap_or(2)
}

/// `file` relative to `base` when it lies inside it, else absolute.
fn shown_path(file: &Path, base: Option<&Path>) -> String {
    // `report.csv`'s folder is "", which std::path::absolute refuses: it means here.
    let base = base.map(|b| if b.as_os_str().is_empty() { Path::new(".") } else { b });
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let shown = match base {
        Some(b) => abs(file).strip_prefix(abs(b)).map_or_else(|_| abs(file), Path::to_path_buf),
        None => file.to_path_buf(),
    };
    shown.to_string_lossy().into_owned()
}

/// Write `dir/SHA256SUMS`: `files` hashed now, beside the lines of earlier runs whose files are
/// still there and were not written again.
fn write_sums(dir: &Path, files: &BTreeSet<PathBuf>) -> Result<()> {
    let sums = dir.join("SHA256SUMS");
    let mut lines: BTreeMap<String, String> = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(&sums) {
        for line in text.lines() {
            if let Some((hash, name)) = line.split_once("  ")
                && dir.join(name).is_file()
            {
                lines.insert(name.to_string(), hash.to_string());
            }
        }
    }
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        lines.insert(name, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
    }
    let text: String = lines.iter().map(|(name, hash)| format!("{hash}  {name}\n")).collect();
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(text.as_bytes()).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(&sums).map_err(|e| Error::io(&sums, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_paths_are_relative_to_the_csvs_folder_when_inside_it() {
        let f = Path::new("out/evidence/abc-upload.flac");
        assert_eq!(shown_path(f, Some(Path::new("out"))), "evidence/abc-upload.flac");
        let here = Path::new("evidence/abc-upload.flac");
        assert_eq!(shown_path(here, Some(Path::new(""))), "evidence/abc-upload.flac");
        // Outside the CSV's folder: a path that means the same wherever the CSV is read.
        let outside = shown_path(f, Some(Path::new("elsewhere")));
        assert!(Path::new(&outside).is_absolute(), "{outside}");
        assert!(outside.ends_with("out/evidence/abc-upload.flac"), "{outside}");
        assert_eq!(shown_path(f, None), "out/evidence/abc-upload.flac");
        assert_eq!(dir_beside(Path::new("report.csv")), Path::new("evidence"));
        assert_eq!(dir_beside(Path::new("out/r.csv")), Path::new("out/evidence"));
    }
}
