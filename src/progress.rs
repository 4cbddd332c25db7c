//! Progress reporting and cooperative cancellation for long jobs, shared by the CLI's indicatif
//! bars and the TUI's gauges. Library functions take `&dyn Progress` and check
//! [`Progress::is_cancelled`] between items, returning [`crate::Error::Cancelled`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The stage a job is in, in the order a pipeline runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Hashing a file's content to find re-ingests.
    Hashing,
    /// Decoding and resampling audio.
    Decoding,
    /// Cutting audio into pieces.
    Cropping,
    /// Separating voice from background.
    Separating,
    /// Computing fingerprints.
    Fingerprinting,
    /// Writing records and vectors to the catalog.
    Storing,
    /// Building the vector index.
    Indexing,
    /// Searching the index.
    Searching,
    /// Writing output files.
    Exporting,
    /// Training a model.
    Training,
    /// Evaluating a model.
    Evaluating,
}

impl Stage {
    /// A short human label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Hashing => "hashing",
            Stage::Decoding => "decoding",
            Stage::Cropping => "cropping",
            Stage::Separating => "separating",
            Stage::Fingerprinting => "fingerprinting",
            Stage::Storing => "storing",
            Stage::Indexing => "indexing",
            Stage::Searching => "searching",
            Stage::Exporting => "exporting",
            Stage::Training => "training",
            Stage::Evaluating => "evaluating",
        }
    }
}

/// A sink for a job's progress. Implementations must be cheap: hot loops call `advance`.
pub trait Progress: Sync {
    /// A new item (file, piece) starts; `name` is shown to the user.
    fn item(&self, _name: &str) {}
    /// The current item enters `stage`.
    fn stage(&self, _stage: Stage) {}
    /// The current stage has `total` units of work.
    fn set_total(&self, _total: u64) {}
    /// `n` more units of the current stage are done.
    fn advance(&self, _n: u64) {}
    /// A free-form status line (loss, hit rate).
    fn message(&self, _msg: &str) {}
    /// Whether the user asked to stop.
    fn is_cancelled(&self) -> bool {
        false
    }
    /// `Err(Cancelled)` if the user asked to stop: call between items.
    fn check(&self) -> crate::Result<()> {
        if self.is_cancelled() { Err(crate::Error::Cancelled) } else { Ok(()) }
    }
}

/// A progress sink that shows nothing and never cancels.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A cancel flag shared between the job and whoever may stop it (Ctrl-C handler, TUI).
#[derive(Debug, Default, Clone)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not yet cancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask the job to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cancellable(CancelToken);
    impl Progress for Cancellable {
        fn is_cancelled(&self) -> bool {
            self.0.is_cancelled()
        }
    }

    #[test]
    fn check_reports_cancel() {
        let token = CancelToken::new();
        let p = Cancellable(token.clone());
        assert!(p.check().is_ok());
        token.cancel();
        assert!(matches!(p.check(), Err(crate::Error::Cancelled)));
    }
}
