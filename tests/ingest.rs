//! Ingest (records only, no models) of inputs that used to break it: tags that are not UTF-8,
//! float samples that are not finite, a series name the catalog cannot key, a folder that
//! links back to itself, a video that outlasts its audio track (whole, not truncated).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use aniprint::catalog::Catalog;
use aniprint::ingest::{self, IngestOptions};
use aniprint::media::{self, DecodeOptions};
use aniprint::progress::NoProgress;
use aniprint::units::SampleRate;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel)
}

/// 16-bit mono PCM at 16 kHz, a 440 Hz tone of `seconds`, with a LIST/INFO chunk naming the
/// title `title` (raw bytes, as old rips hold them: Shift-JIS and the like).
fn wav_with_title(title: &[u8], seconds: usize) -> Vec<u8> {
    let rate = 16_000u32;
    let samples: Vec<i16> = (0..rate as usize * seconds)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 8000.0) as i16)
        .collect();
    let mut inam = title.to_vec();
    inam.push(0);
    if inam.len() % 2 == 1 {
        inam.push(0);
    }
    let mut list = b"INFO".to_vec();
    list.extend_from_slice(b"INAM");
    list.extend_from_slice(&(inam.len() as u32).to_le_bytes());
    list.extend_from_slice(&inam);
    let mut body = b"WAVE".to_vec();
    body.extend_from_slice(b"fmt ");
    body.extend_from_slice(&16u32.to_le_bytes());
    for v in [1u16, 1] {
        body.extend_from_slice(&v.to_le_bytes()); // PCM, mono
    }
    body.extend_from_slice(&rate.to_le_bytes());
    body.extend_from_slice(&(rate * 2).to_le_bytes());
    for v in [2u16, 16] {
        body.extend_from_slice(&v.to_le_bytes()); // block align, bits
    }
    body.extend_from_slice(b"LIST");
    body.extend_from_slice(&(list.len() as u32).to_le_bytes());
    body.extend_from_slice(&list);
    body.extend_from_slice(b"data");
    body.extend_from_slice(&(samples.len() as u32 * 2).to_le_bytes());
    for s in samples {
        body.extend_from_slice(&s.to_le_bytes());
    }
    let mut wav = b"RIFF".to_vec();
    wav.extend_from_slice(&(body.len() as u32).to_le_bytes());
    wav.extend_from_slice(&body);
    wav
}

/// 32-bit float mono at 16 kHz, a tone with an infinity and a NaN in it.
fn float_wav_with_infinity(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..16_000 * 12 {
        let v = match i {
            1_000 => f32::INFINITY,
            2_000 => f32::NAN,
            _ => (i as f32 * 0.05).sin() * 0.3,
        };
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn tags_that_are_not_utf8_and_samples_that_are_not_finite_store_readable_records() {
    let tmp = tempfile::tempdir().unwrap();
    let show = tmp.path().join("show");
    std::fs::create_dir(&show).unwrap();
    // "アニメ" in Shift-JIS: not UTF-8.
    let sjis = show.join("sjis.wav");
    std::fs::write(&sjis, wav_with_title(&[0x83, 0x41, 0x83, 0x6a, 0x83, 0x81], 12)).unwrap();
    let info = media::probe(&sjis).unwrap();
    let json = serde_json::to_string(&info.tags).unwrap();
    let back: Vec<(String, String)> = serde_json::from_str(&json).unwrap();
    let title = back.iter().find(|(k, _)| k.eq_ignore_ascii_case("title")).map(|(_, v)| v);
    assert!(title.is_some_and(|t| t.contains('\u{fffd}')), "{back:?}");

    let inf = show.join("inf.wav");
    float_wav_with_infinity(&inf);
    let opts = DecodeOptions { rate: SampleRate(16_000), ..DecodeOptions::default() };
    let samples = media::decode(&inf, &opts).unwrap();
    assert!(samples.iter().all(|s| s.is_finite()));
    assert!(samples.iter().any(|s| s.abs() > 0.1));

    let cat = Catalog::open(tmp.path().join("cat")).unwrap();
    let report = ingest::ingest_paths(&cat, &[show], &IngestOptions::default(), &NoProgress)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.ok.len(), report.failed.len()), (2, 0), "{:?}", report.failed);
    // Both records read back (a non-UTF-8 title or an infinite level would not).
    let eps = cat.episodes().unwrap();
    assert_eq!(eps.len(), 2);
    assert!(eps.iter().any(|e| e.title.contains('\u{fffd}')), "{eps:?}");
    let pieces = cat.pieces().unwrap();
    assert!(!pieces.is_empty() && pieces.iter().all(|p| p.rms_dbfs.is_finite()), "{pieces:?}");
}

#[test]
fn a_series_name_the_catalog_cannot_key_fails_each_file_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path().join("cat")).unwrap();
    let speech = fixture("plain/speech.wav");
    for (series, cause) in [(" ".to_string(), "is empty"), ("あ".repeat(200), "600 bytes")] {
        let opts = IngestOptions { series: Some(series), ..IngestOptions::default() };
        let report =
            ingest::ingest_paths(&cat, std::slice::from_ref(&speech), &opts, &NoProgress).unwrap();
        assert_eq!(report.failed.len(), 1);
        let (path, e) = &report.failed[0];
        let line = ingest::failure_line(path, e);
        assert!(line.starts_with(&speech.display().to_string()) && line.contains(cause), "{line}");
    }
    assert!(cat.episodes().unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn a_folder_that_links_back_to_itself_is_walked_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("eps");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fixture("plain/speech.wav"), dir.join("speech.wav")).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("again")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("here")).unwrap();
    let (files, errors) = ingest::collect_inputs(std::slice::from_ref(&dir), true);
    assert_eq!(files, vec![dir.join("speech.wav")]);
    assert!(errors.is_empty(), "{errors:?}");
}

/// Cancelled once `after` files have started.
struct CancelAfter {
    after: usize,
    started: std::sync::atomic::AtomicUsize,
}

impl aniprint::progress::Progress for CancelAfter {
    fn item(&self, _name: &str) {
        self.started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn is_cancelled(&self) -> bool {
        self.started.load(std::sync::atomic::Ordering::SeqCst) > self.after
    }
}

#[test]
fn a_cancelled_batch_still_accounts_for_what_it_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path().join("cat")).unwrap();
    let files = [fixture("plain/speech.wav"), fixture("episodes/ep03.webm")];
    let cancel = CancelAfter { after: 1, started: Default::default() };
    let report = ingest::ingest_paths(&cat, &files, &IngestOptions::default(), &cancel).unwrap();
    assert!(matches!(report.stopped, Some(aniprint::Error::Cancelled)), "{:?}", report.stopped);
    assert_eq!((report.ok.len(), report.failed.len()), (1, 0));
    assert_eq!(cat.episodes().unwrap().len(), 1);
}

#[test]
fn failure_lines_name_the_file_once() {
    let p = Path::new("/eps/a.mkv");
    let named = aniprint::Error::media(p, "truncated");
    assert_eq!(ingest::failure_line(p, &named), named.to_string());
    assert!(named.to_string().starts_with("/eps/a.mkv: "));
    let unnamed = aniprint::Error::Invalid("segment 3 has a non-finite value".into());
    assert_eq!(ingest::failure_line(p, &unnamed), format!("/eps/a.mkv: {unnamed}"));
}

#[path = "support/tools.rs"]
mod tools;

/// An mkv whose video runs `video_s` and whose audio track stops at `audio_s`, made by the
/// ffmpeg CLI (None without it).
fn video_outlasting_audio(path: &Path, video_s: u32, audio_s: u32) -> Option<()> {
    if !tools::have_ffmpeg() {
        eprintln!("skipped: the ffmpeg CLI is not installed");
        return None;
    }
    let audio = format!("sine=frequency=440:sample_rate=48000,atrim=0:{audio_s}");
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=5"])
        .args(["-f", "lavfi", "-i", &audio, "-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "mpeg4", "-c:a", "aac", "-t", &video_s.to_string()])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success(), "ffmpeg made {}", path.display());
    Some(())
}

#[test]
fn an_audio_track_that_ends_before_the_video_is_whole_and_a_cut_file_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole.mkv");
    let Some(()) = video_outlasting_audio(&whole, 60, 40) else { return };
    // The same file cut at half its bytes: every stream stops early.
    let bytes = std::fs::read(&whole).unwrap();
    let cut = tmp.path().join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let cat = Catalog::open(tmp.path().join("cat")).unwrap();
    let files = [whole.clone(), cut.clone()];
    let report =
        ingest::ingest_paths(&cat, &files, &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(report.ok.len(), 1, "{:?}", report.failed);
    let eps = cat.episodes().unwrap();
    assert!((eps[0].duration.0 - 40.0).abs() < 0.5, "{:?}", eps[0].duration);
    let [(path, err)] = report.failed.as_slice() else { panic!("{:?}", report.failed) };
    assert_eq!(path, &cut);
    assert!(err.to_string().contains("truncated"), "{err}");
}

/// A 3 s tone at 48 kHz in `path`'s container, with container tags `tags` (name, value).
fn tone_with_tags(path: &Path, tags: &[(&str, &str)]) -> Option<()> {
    if !tools::have_ffmpeg() {
        eprintln!("skipped: the ffmpeg CLI is not installed");
        return None;
    }
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("sine=frequency=440:sample_rate=48000,atrim=0:3");
    for (k, v) in tags {
        cmd.arg("-metadata").arg(format!("{k}={v}"));
    }
    assert!(cmd.arg(path).status().unwrap().success(), "ffmpeg made {}", path.display());
    Some(())
}

#[test]
fn container_tags_number_the_episode_and_name_a_downloads_source() {
    let tmp = tempfile::tempdir().unwrap();
    let url = "https://video.example/watch?v=abc";
    // As yt-dlp --embed-metadata and iTunes-style taggers write them (MP4 keeps `comment`,
    // Matroska both `purl` and `comment`).
    let tags = [("season_number", "02"), ("episode_sort", "7"), ("purl", url), ("comment", url)];
    let mp4 = tmp.path().join("[Group] Show - 03 (1080p).mp4");
    let Some(()) = tone_with_tags(&mp4, &tags) else { return };
    let mkv = tmp.path().join("[Group] Show - 04 (1080p).mkv");
    tone_with_tags(&mkv, &[("comment", "great episode")]).unwrap();
    for (file, source) in [(&mp4, Some(url)), (&mkv, None)] {
        let info = media::probe(file).unwrap();
        assert_eq!(info.source_url().as_deref(), source, "{}", file.display());
    }
    let cat = Catalog::open(tmp.path().join("cat")).unwrap();
    let report =
        ingest::ingest_paths(&cat, &[mp4, mkv], &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(report.ok.len(), 2, "{:?}", report.failed);
    let mut numbers: Vec<String> =
        cat.episodes().unwrap().iter().map(|e| e.numbering.label()).collect();
    numbers.sort();
    // The tags win over the file name ("03"); without tags the name is read ("04").
    assert_eq!(numbers, ["E4", "S2E7"]);
}
