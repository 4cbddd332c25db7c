//! Evidence clips for a report: each match's stretch of the upload and of the episode, cut
//! from the files the scan and the ingest read, as audio files a legal team plays side by side,
//! listed with their SHA-256 in `SHA256SUMS` (the `sha256sum -c` format).
//!
//! A source is checked against the size and SHA-256 on record before anything is cut from it:
//! a clip of a file that changed since it was scanned or ingested would be evidence of something
//! else. Each file is decoded once, streaming, however many clips it gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, MatchRegion};
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
    /// CSV's) when the clips are inside it, so the report and its clips move together.
    pub relative_to: Option<PathBuf>,
    /// Audio format of the clips.
    pub format: AudioFormat,
    /// Sample rate of the clips.
    pub rate: SampleRate,
    /// A clip stops this long after its start: a long reuse is evidenced by its beginning.
    pub max_s: f64,
}

/// Where the TUI puts a report's evidence: `evidence/` beside the CSV.
pub fn dir_beside(csv: &Path) -> PathBuf {
    csv.parent().unwrap_or(Path::new("")).join("evidence")
}

impl EvidenceOptions {
    /// FLAC at 44.1 kHz, stereo where the source is, at most 60 s a clip.
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

/// What [`write_clips`] did.
#[derive(Debug, Default)]
pub struct Evidence {
    /// Match id -> the `evidence_ref` cell: the upload clip's path, `;`, the episode clip's.
    pub refs: BTreeMap<String, String>,
    /// Clip files written.
    pub written: usize,
    /// Source files no clip could be cut from, with why (their matches get no `evidence_ref`).
    pub failed: Vec<(PathBuf, Error)>,
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

/// Write the upload and episode clips of `regions` into `opts.dir`. A source that is missing,
/// changed or unreadable fails its own clips and the rest go on; an unwritable folder fails
/// the whole call.
pub fn write_clips(
    catalog: &Catalog,
    regions: &[MatchRegion],
    opts: &EvidenceOptions,
    progress: &dyn Progress,
) -> Result<Evidence> {
    std::fs::create_dir_all(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
    let mut evidence = Evidence::default();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    for m in regions {
        let clip =
            |side: &str| opts.dir.join(format!("{}-{side}.{}", m.id, opts.format.extension()));
        let len = Seconds((m.upload_end.0 - m.upload_start.0).min(opts.max_s));
        let upload = catalog.upload(&m.upload)?;
        let up = sources.entry(format!("u{}", upload.id)).or_insert_with(|| Source {
            path: PathBuf::from(&upload.path),
            stream: upload.audio_stream.map_or(StreamSelect::Default, StreamSelect::Index),
            size: upload.size_bytes,
            sha256: upload.sha256.clone(),
            channels: 2,
            cuts: Vec::new(),
        });
        up.cuts.push(Cut {
            match_id: m.id.clone(),
            start: m.upload_start,
            end: Seconds(m.upload_start.0 + len.0),
            file: clip("upload"),
        });
        let ep = catalog.episode(&m.episode)?;
        let channels = ep
            .streams
            .iter()
            .find(|s| s.index == ep.audio_stream)
            .and_then(|s| s.channels)
            .unwrap_or(2)
            .clamp(1, 2);
        let src = sources.entry(format!("e{}", ep.id)).or_insert_with(|| Source {
            path: ep.source_path(),
            // The stream and decoder path ingest took, so times land on the same audio.
            stream: StreamSelect::Index(ep.audio_stream),
            size: ep.size_bytes,
            sha256: ep.sha256.clone(),
            channels,
            cuts: Vec::new(),
        });
        src.cuts.push(Cut {
            match_id: m.id.clone(),
            start: m.episode_start,
            end: Seconds(m.episode_start.0 + len.0),
            file: clip("reference"),
        });
    }
    let mut cut_of: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut failed_matches = std::collections::BTreeSet::new();
    for (_, mut src) in sources {
        progress.check()?;
        progress.item(&src.path.to_string_lossy());
        src.cuts.sort_by(|a, b| a.start.0.total_cmp(&b.start.0));
        match cut_source(&src, opts, progress) {
            Ok(files) => {
                evidence.written += files.len();
                for (id, f) in files {
                    cut_of.entry(id).or_default().push(f);
                }
            }
            Err(e @ Error::Cancelled) => return Err(e),
            Err(e) => {
                failed_matches.extend(src.cuts.iter().map(|c| c.match_id.clone()));
                evidence.failed.push((src.path.clone(), e));
            }
        }
    }
    for m in regions {
        if failed_matches.contains(&m.id) {
            continue;
        }
        let shown = |side: &str| {
            let f = opts.dir.join(format!("{}-{side}.{}", m.id, opts.format.extension()));
            shown_path(&f, opts.relative_to.as_deref())
        };
        evidence.refs.insert(m.id.clone(), format!("{};{}", shown("upload"), shown("reference")));
    }
    let written: Vec<PathBuf> = cut_of.into_values().flatten().collect();
    write_sums(&opts.dir, &written)?;
    Ok(evidence)
}

/// Check `src` against its record, decode it once and write each cut. Returns (match id, file)
/// for every clip written.
fn cut_source(
    src: &Source,
    opts: &EvidenceOptions,
    progress: &dyn Progress,
) -> Result<Vec<(String, PathBuf)>> {
    let path = src.path.as_path();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::BadAudio {
            path: path.into(),
            reason: "missing: moved or deleted since it was scanned or ingested".into(),
        },
        _ => Error::io(path, e),
    })?;
    let changed = |what: String| Error::BadAudio {
        path: path.into(),
        reason: format!(
            "changed since it was scanned or ingested ({what}): no evidence cut from it"
        ),
    };
    if meta.len() != src.size {
        return Err(changed(format!("{} bytes now, {} on record", meta.len(), src.size)));
    }
    let sha = crate::ingest::sha256_file(path, progress)?;
    if sha != src.sha256 {
        return Err(changed(format!("sha256 {} now, {} on record", &sha[..12], &src.sha256[..12])));
    }
    let decode =
        DecodeOptions { stream: src.stream.clone(), rate: opts.rate, channels: src.channels };
    let mut audio = media::open(path, &decode)?;
    let ch = usize::from(audio.channels());
    let frames = |t: Seconds| (t.0.max(0.0) * f64::from(opts.rate.0)).round() as u64;
    let spans: Vec<(u64, u64)> =
        src.cuts.iter().map(|c| (frames(c.start), frames(c.end))).collect();
    progress.stage(Stage::Exporting);
    progress.set_total(spans.iter().map(|s| s.1).max().unwrap_or(0));
    let mut bufs: Vec<Option<Vec<f32>>> = vec![Some(Vec::new()); spans.len()];
    let mut out = Vec::new();
    let mut pos = 0u64;
    // Clips overlap (one stretch matched by several stems), so each chunk feeds every open one.
    while out.len() < spans.len() {
        let Some(chunk) = audio.next_chunk()? else { break };
        let chunk_end = pos + (chunk.len() / ch) as u64;
        for (i, &(s, e)) in spans.iter().enumerate() {
            let Some(buf) = bufs[i].as_mut() else { continue };
            let (a, b) = (s.max(pos), e.min(chunk_end));
            if a < b {
                buf.extend_from_slice(&chunk[((a - pos) as usize) * ch..((b - pos) as usize) * ch]);
            }
            if e <= chunk_end {
                let samples = bufs[i].take().unwrap_or_default();
                write_audio(&src.cuts[i].file, &samples, opts.rate, audio.channels(), opts.format)?;
                out.push((src.cuts[i].match_id.clone(), src.cuts[i].file.clone()));
            }
        }
        progress.advance(chunk_end - pos);
        pos = chunk_end;
    }
    // A match may end a few samples past the decoded end (its last segment was padded): a clip
    // short by at most a tenth of a second is whole.
    let slack = u64::from(opts.rate.0 / 10);
    for (i, &(s, e)) in spans.iter().enumerate() {
        let Some(buf) = bufs[i].take() else { continue };
        let have = (buf.len() / ch) as u64;
        if have == 0 || e - s - have > slack {
            return Err(Error::BadAudio {
                path: path.into(),
                reason: format!(
                    "the audio ends at {:.3} s, before the match's stretch {:.3}-{:.3} s does",
                    pos as f64 / f64::from(opts.rate.0),
                    src.cuts[i].start.0,
                    src.cuts[i].end.0
                ),
            });
        }
        write_audio(&src.cuts[i].file, &buf, opts.rate, audio.channels(), opts.format)?;
        out.push((src.cuts[i].match_id.clone(), src.cuts[i].file.clone()));
    }
    Ok(out)
}

/// `file` relative to `base` when it lies inside it, else as it is.
fn shown_path(file: &Path, base: Option<&Path>) -> String {
    // `report.csv`'s folder is "", which std::path::absolute refuses: it means here.
    let base = base.map(|b| if b.as_os_str().is_empty() { Path::new(".") } else { b });
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    base.and_then(|b| abs(file).strip_prefix(abs(b)).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| file.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// Add `files` to `dir/SHA256SUMS`, keeping the lines of other files still there.
fn write_sums(dir: &Path, files: &[PathBuf]) -> Result<()> {
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
    let tmp = dir.join("SHA256SUMS.partial");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &sums).map_err(|e| Error::io(&sums, e))
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
        assert_eq!(shown_path(f, Some(Path::new("elsewhere"))), "out/evidence/abc-upload.flac");
        assert_eq!(shown_path(f, None), "out/evidence/abc-upload.flac");
        assert_eq!(dir_beside(Path::new("report.csv")), Path::new("evidence"));
        assert_eq!(dir_beside(Path::new("out/r.csv")), Path::new("out/evidence"));
    }
}
