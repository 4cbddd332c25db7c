//! aniprint finds anime audio wherever it is reused and keeps track of who owns it.
//!
//! The library is a set of plain functions over plain types, in the order data flows:
//! [`media`] decodes episodes and uploads and crops them into pieces, [`dsp`] turns audio into
//! spectrograms, the models fingerprint and separate it, [`catalog`] stores everything in an
//! embedded LMDB environment, and the CLI (`src/main.rs`) and the TUI are thin callers.
//!
//! ```no_run
//! use aniprint::{catalog::Catalog, media, progress::NoProgress};
//! # fn main() -> aniprint::Result<()> {
//! let catalog = Catalog::open("catalog")?;
//! let opts = aniprint::ingest::IngestOptions::default();
//! let report = aniprint::ingest::ingest_paths(&catalog, &["episodes/".into()], &opts, &NoProgress)?;
//! println!("{} ok, {} skipped, {} failed", report.ok.len(), report.skipped.len(), report.failed.len());
//! let info = media::probe("episodes/ep01.mkv".as_ref())?;
//! println!("{} s", info.duration.map(|d| d.0).unwrap_or_default());
//! # Ok(()) }
//! ```

pub mod analyze;
pub mod catalog;
pub mod config;
pub mod dsp;
mod error;
pub mod eval;
pub mod fingerprint;
pub mod index;
pub mod ingest;
pub mod media;
mod ops;
pub mod optim;
pub mod progress;
pub mod report;
pub mod review;
pub mod rights;
pub mod scan;
pub mod separate;
pub mod tui;
pub mod units;

pub use error::{Error, Result};
