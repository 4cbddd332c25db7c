//! Vector-search benchmark: `cargo bench --bench search -- [VECTORS] [SEARCH_K,...] [N_TREES]`.
//!
//! A thin wrapper over [`aniprint::index::bench::run`] (the same code `aniprint bench search`
//! runs): builds a synthetic index in a temporary catalog and prints latency percentiles, recall
//! and sizes. Defaults: 100,000 vectors, the index's default search_k, arroy's own tree count.

use aniprint::index::bench::{SearchBenchConfig, run};
use aniprint::progress::NoProgress;

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
    if let Some(t) = args.get(2).and_then(|a| a.parse().ok()) {
        cfg.options.n_trees = Some(t);
    }
    let dir = tempfile::tempdir().map_err(|e| aniprint::Error::io(std::env::temp_dir(), e))?;
    let report = run(dir.path(), &cfg, &NoProgress)?;
    println!("{report}");
    Ok(())
}
