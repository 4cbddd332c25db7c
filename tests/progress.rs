//! Progress of the long library calls as the CLI's bars and the TUI's gauges see it: a stage
//! starts its bar at 0 (the TUI also drops its total), so a loop over pieces or windows must
//! stay in one stage and count every sample once.

// The whole crate is test code, helpers included (clippy.toml allows unwrap in #[test] only).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use aniprint::analyze::Analyzer;
use aniprint::catalog::Catalog;
use aniprint::fingerprint::Fingerprinter;
use aniprint::index::CatalogIndex;
use aniprint::ingest::{self, Indexing, IngestOptions, Outcome};
use aniprint::media::StreamSelect;
use aniprint::media::crop::CropConfig;
use aniprint::progress::Stage;
use aniprint::units::Seconds;
use candle_core::Device;

#[path = "support/event_log.rs"]
mod event_log;
use event_log::EventLog;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel)
}

fn mix_analyzer() -> Analyzer {
    Analyzer::new(Fingerprinter::load_default(&Device::Cpu).unwrap(), None).unwrap()
}

#[test]
fn ingesting_several_pieces_is_one_fingerprinting_stage_that_reaches_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(dir.path()).unwrap();
    let index = CatalogIndex::open(&catalog).unwrap();
    let analyzer = mix_analyzer();
    let opts = IngestOptions {
        crop: CropConfig { piece: Seconds(60.0), ..CropConfig::default() },
        ..IngestOptions::default()
    };
    let log = EventLog::default();
    let ix = Indexing { analyzer: &analyzer, index: &index };
    let outcome = ingest::ingest_file_indexed(
        &catalog,
        &fixture("episodes/ep03.webm"),
        &opts,
        Some(&ix),
        &log,
    )
    .unwrap();
    let Outcome::Ingested(ep) = outcome else { panic!("{outcome:?}") };
    assert!(ep.pieces >= 3, "{} pieces", ep.pieces);
    let (total, done, steps) = log.only(Stage::Fingerprinting);
    // A piece counts once it is fingerprinted: one step each, all samples counted.
    assert_eq!(steps, ep.pieces as usize);
    let length = ep.work_rate.samples(ep.duration).0;
    assert!(done.abs_diff(length) <= length / 200, "counted {done} of {length} samples");
    assert!(done.abs_diff(total) <= total / 100, "counted {done} of a total of {total}");
}

#[test]
fn scanning_in_windows_is_one_fingerprinting_stage_that_reaches_its_end() {
    let analyzer = mix_analyzer();
    let log = EventLog::default();
    let (stems, decoded) = aniprint::scan::fingerprint_file(
        &analyzer,
        &fixture("uploads/up05.webm"),
        &StreamSelect::default(),
        10.0,
        &log,
    )
    .unwrap();
    assert!(!stems.is_empty());
    let (total, done, steps) = log.only(Stage::Fingerprinting);
    // 58 s in 10 s windows: five whole windows and the rest.
    assert!(steps >= 5, "{steps} steps");
    assert_eq!(done, decoded);
    assert!(done.abs_diff(total) <= total / 100, "counted {done} of a total of {total}");
}
