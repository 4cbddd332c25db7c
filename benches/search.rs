//! Vector-search benchmark:
//! `cargo bench --bench search -- [VECTORS] [SEARCH_K,...] [N_TREES] [CLIPS]`.
//!
//! A thin wrapper over [`aniprint::index::bench::run`] (the same code `aniprint bench search`
//! runs): builds a synthetic index in a temporary catalog and prints latency percentiles, recall
//! and sizes. Defaults: 100,000 vectors, the index's default search_k, arroy's own tree count, 200
//! clips per search kind (fewer keep a 10^7 run short).

use aniprint::index::bench::{SearchBenchConfig, run};
use aniprint::progress::{Progress, Stage};
use std::time::Instant;

/// Stage changes on stderr with elapsed seconds, so a run cut short still shows how far it got.
struct Stages(Instant);

impl Progress for Stages {
    fn stage(&self, stage: Stage) {
        eprintln!("{:>8.1} s  {stage:?}", self.0.elapsed().as_secs_f64());
    }
}

fn main() -> aniprint::Result<()> {
    // `cargo bench` passes `--bench` to every bench target; ignore flags.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let mut cfg = SearchBenchConfig::default();
    if let Some(n) = args.first().and_then(|a| a.parse().ok()) {
        cfg.vectors = n;
    }
    if let Some(ks) = args.get(1) {
        cfg.search_ks = ks.split(',').filter_map(|k| k.parse().ok()).collect();
    }
    // 0 keeps arroy's own tree count, so CLIPS can follow it.
    if let Some(t) = args.get(2).and_then(|a| a.parse().ok()).filter(|&t| t > 0) {
        cfg.options.n_trees = Some(t);
    }
    if let Some(c) = args.get(3).and_then(|a| a.parse().ok()) {
        cfg.clips = c;
    }
    let dir = tempfile::tempdir().map_err(|e| aniprint::Error::io(std::env::temp_dir(), e))?;
    let report = run(dir.path(), &cfg, &Stages(Instant::now()))?;
    println!("{report}");
    Ok(())
}
