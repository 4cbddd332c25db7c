//! aniprint's decoders against the ffmpeg CLI: the same audio, sample for sample up to a small
//! lag (decoders differ in how much encoder priming they drop) and resampler rounding.

// The whole crate is test code, helpers included (clippy.toml allows unwrap in #[test] only).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aniprint::media::{self, DecodeOptions, StreamSelect};
use aniprint::units::SampleRate;

const RATE: u32 = 16_000;
/// Lags searched, in samples: +-50 ms.
const MAX_LAG: i64 = RATE as i64 / 20;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel)
}

/// `ffmpeg -i FILE -map 0:a:N -ac 1 -ar 16000 -f f32le -`, or `None` without the CLI.
fn ffmpeg_decode(path: &Path, audio_index: usize) -> Option<Vec<f32>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", &format!("0:a:{audio_index}"), "-ac", "1", "-ar", &RATE.to_string()])
        .args(["-f", "f32le", "-"])
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    Some(out.stdout.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Normalised correlation of `a[i]` with `b[i + lag]` over their overlap.
fn correlation(a: &[f32], b: &[f32], lag: i64) -> f64 {
    let (a, b) = if lag >= 0 { (a, &b[lag as usize..]) } else { (&a[(-lag) as usize..], b) };
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt()).max(1e-12)
}

/// The lag (samples, `b` relative to `a`) that best aligns a 10 s window from the middle.
fn best_lag(a: &[f32], b: &[f32]) -> i64 {
    let mid = a.len() / 2;
    let win = &a[mid.saturating_sub(80_000)..(mid + 80_000).min(a.len())];
    let start = mid.saturating_sub(80_000) as i64;
    (-MAX_LAG..=MAX_LAG)
        .max_by(|&x, &y| {
            let c = |lag: i64| {
                let s = (start + lag).max(0) as usize;
                correlation(win, &b[s..(s + win.len()).min(b.len())], 0)
            };
            c(x).total_cmp(&c(y))
        })
        .unwrap_or(0)
}

fn check(rel: &str, stream: StreamSelect, audio_index: usize) {
    let path = fixture(rel);
    let Some(theirs) = ffmpeg_decode(&path, audio_index) else {
        eprintln!("skipped: the ffmpeg CLI is not installed");
        return;
    };
    let opts = DecodeOptions { stream, rate: SampleRate(RATE), channels: 1 };
    let ours = media::decode(&path, &opts).unwrap();
    let lag = best_lag(&ours, &theirs);
    let corr = correlation(&ours, &theirs, lag);
    let len_diff_ms = (ours.len() as f64 - theirs.len() as f64) * 1000.0 / f64::from(RATE);
    eprintln!(
        "{rel}: lag {:.2} ms, correlation {corr:.5}, length ours - ffmpeg {len_diff_ms:.1} ms",
        lag as f64 * 1000.0 / f64::from(RATE)
    );
    assert!(corr > 0.99, "{rel}: correlation {corr} at lag {lag}");
    assert!(len_diff_ms.abs() < 50.0, "{rel}: length differs by {len_diff_ms} ms");
}

#[test]
fn mkv_aac_both_streams_decode_like_the_ffmpeg_cli() {
    check("episodes/ep01.mkv", StreamSelect::Index(1), 0);
    check("episodes/ep01.mkv", StreamSelect::Language("eng".into()), 1);
}

#[test]
fn mp4_aac_decodes_like_the_ffmpeg_cli() {
    check("episodes/ep02.mp4", StreamSelect::Default, 0);
}

#[test]
fn webm_opus_decodes_like_the_ffmpeg_cli() {
    check("episodes/ep03.webm", StreamSelect::Default, 0);
}

#[test]
fn plain_audio_through_symphonia_decodes_like_the_ffmpeg_cli() {
    // Plain audio with the default stream goes through symphonia.
    for rel in [
        "plain/speech.wav",
        "plain/tone_sweep.flac",
        "plain/speech.ogg",
        "uploads/up04.mp3",
        "uploads/up03.m4a",
    ] {
        check(rel, StreamSelect::Default, 0);
    }
}

#[test]
fn wav_through_ffmpeg_decodes_like_the_ffmpeg_cli() {
    // An explicit stream index takes the FFmpeg path, as ingest does.
    check("plain/speech.wav", StreamSelect::Index(0), 0);
}

#[test]
fn read_ahead_delivers_what_open_delivers_and_its_errors() {
    let opts = DecodeOptions { rate: SampleRate(8_000), ..DecodeOptions::default() };
    // A truncated file ends normally (FFmpeg logs a warning): the same chunks, then the end.
    let files = ["episodes/ep01.mkv", "plain/speech.ogg", "bad/truncated_faststart.mp4"];
    for (rel, ahead) in files.iter().flat_map(|r| [(*r, 0), (*r, 10_000_000)]) {
        let path = fixture(rel);
        let mut direct = media::open(&path, &opts).unwrap();
        let mut background = media::ReadAhead::open(&path, &opts, ahead).unwrap();
        let mut chunks = 0;
        loop {
            let (a, b) = (direct.next_chunk().unwrap(), background.next_chunk().unwrap());
            assert_eq!(a, b, "{rel}, ahead {ahead}: chunk {chunks}");
            if a.is_none() {
                break;
            }
            chunks += 1;
        }
        assert!(chunks > 1, "{rel}: {chunks} chunk(s) compare nothing about order");
        assert_eq!(background.next_chunk().unwrap(), None, "{rel}: the end stays the end");
    }
    // Errors come out of next_chunk, naming the file, then the source is finished.
    for rel in ["bad/notmedia.txt", "bad/noaudio.mkv", "bad/missing.mkv"] {
        let path = fixture(rel);
        let mut background = media::ReadAhead::open(&path, &opts, 1 << 20).unwrap();
        let err = background.next_chunk().unwrap_err().to_string();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(err.contains(&name), "{rel}: {err}");
        assert_eq!(background.next_chunk().unwrap(), None, "{rel}");
    }
}

#[test]
fn dropping_a_read_ahead_stops_its_decoder() {
    let opts = DecodeOptions { rate: SampleRate(8_000), ..DecodeOptions::default() };
    let mut background = media::ReadAhead::open(&fixture("episodes/ep01.mkv"), &opts, 0).unwrap();
    assert!(background.next_chunk().unwrap().is_some());
    // The decoder is now blocked on a full channel: drop must wake and join it, not wait on it
    // forever (a watchdog turns a hang into a failure).
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(background);
        let _ = done.send(());
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("dropping the reader did not stop its decoder");
}
