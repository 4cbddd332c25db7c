//! A small catalog for the rights, review and report tests: the three fixture episodes (same
//! ids as `fixtures/episodes/*`, series "Fixture Show", as `catalog/rights.example.csv`
//! expects), their pieces, and helpers to make uploads and match regions.

#![allow(dead_code, clippy::unwrap_used)]

use aniprint::catalog::{
    Band, Catalog, Episode, MatchRegion, MatchStatus, Piece, PieceStatus, ScanModels, Stem, Upload,
};
use aniprint::units::{SampleRate, Seconds};

/// 2024-05-01T12:00:00Z: the fixed "now" of these tests.
pub const NOW: u64 = 1_714_564_800_000;
/// One minute, in ms.
pub const MIN: u64 = 60_000;

pub const SERIES: &str = "Fixture Show";
pub const EP01: &str = "7736e9fc8cba";
pub const EP02: &str = "6628f993a740";
pub const EP03: &str = "046279ec2523";
const RATE: SampleRate = SampleRate(16_000);

/// The example rights file, as checked in.
pub fn example_csv() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/rights.example.csv");
    std::fs::read_to_string(p).unwrap()
}

pub fn episode(id: &str, series: &str, title: &str, duration: f64) -> Episode {
    Episode {
        id: id.into(),
        series: series.into(),
        title: title.into(),
        path: format!("/media/{title}.mkv"),
        path_bytes: None,
        sha256: format!("{id}{}", "0".repeat(52)),
        size_bytes: 1_000_000,
        duration: Seconds(duration),
        streams: vec![],
        audio_stream: 1,
        language: Some("jpn".into()),
        source_rate: Some(48_000),
        work_rate: RATE,
        pieces: 2,
        ingested_ms: NOW - 60 * MIN,
        numbering: Default::default(),
    }
}

/// Pieces of 180 s and the remainder.
pub fn pieces(ep: &Episode) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut start = 0.0;
    let mut i = 0;
    while start < ep.duration.0 {
        let end = (start + 180.0).min(ep.duration.0);
        out.push(Piece {
            id: Piece::make_id(&ep.id, Seconds(start)),
            episode: ep.id.clone(),
            index: i,
            start: RATE.samples(Seconds(start)),
            end: RATE.samples(Seconds(end)),
            status: PieceStatus::Unreviewed,
            flags: vec![],
            rms_dbfs: -20.0,
        });
        start = end;
        i += 1;
    }
    out
}

/// A catalog holding the three fixture episodes.
pub fn catalog() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(dir.path()).unwrap();
    for (id, title, dur) in [(EP01, "ep01", 240.02), (EP02, "ep02", 240.0), (EP03, "ep03", 215.01)]
    {
        let ep = episode(id, SERIES, title, dur);
        cat.insert_episode(&ep, &pieces(&ep)).unwrap();
    }
    (dir, cat)
}

/// An upload whose sha256 starts with `tag` repeated.
pub fn upload(tag: char, duration: f64, scanned_ms: u64) -> Upload {
    let sha256: String = std::iter::repeat_n(tag, 64).collect();
    Upload {
        id: Upload::make_id(&sha256),
        path: format!("/uploads/{tag}.mp4"),
        path_bytes: None,
        source: Some(format!("https://video.example/watch?v={tag}")),
        sha256,
        size_bytes: 500_000,
        duration: Seconds(duration),
        scanned_ms,
        models: ScanModels {
            fingerprint: "fp-test@0123abcd".into(),
            separator: "sep-test@4567ef01".into(),
            index: "flat/1".into(),
            score_threshold: 0.5,
            threshold_scale: 0.4,
            voice_margin: 0.1,
        },
        audio_stream: None,
    }
}

/// A region of `upload` matching `episode`; the upload side starts at `up_start` and is as
/// long as the episode side.
pub fn region(
    upload: &Upload,
    stem: Stem,
    episode: &str,
    up_start: f64,
    ep: (f64, f64),
    score: f32,
    band: Band,
) -> MatchRegion {
    let len = ep.1 - ep.0;
    MatchRegion {
        id: String::new(),
        upload: upload.id.clone(),
        stem,
        upload_start: Seconds(up_start),
        upload_end: Seconds(up_start + len),
        episode: episode.into(),
        pieces: vec![Piece::make_id(episode, Seconds(if ep.0 >= 180.0 { 180.0 } else { 0.0 }))],
        episode_start: Seconds(ep.0),
        episode_end: Seconds(ep.1),
        score,
        band,
        longest_contiguous: Seconds(len * 0.8),
        segments_voted: (len * 2.0) as u32,
        evidence: None,
        status: MatchStatus::Pending,
        rule: None,
        review: None,
        created_ms: 0,
        updated_ms: 0,
        models: None,
    }
}
