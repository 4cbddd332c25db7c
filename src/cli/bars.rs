//! indicatif bars as a [`Progress`] sink: one overall bar over a batch's items and one bar for
//! the current item's stage (bytes while hashing, samples while decoding).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use aniprint::progress::{Progress, Stage};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Two bars: the batch and the current item.
pub struct Bars {
    overall: ProgressBar,
    current: ProgressBar,
    /// Ingest reports only when an item starts: the previous one is then done.
    advance_on_item: bool,
    in_item: AtomicBool,
}

impl Bars {
    /// Bars for `total` items of `unit` (e.g. "files"), drawn on `multi`. With
    /// `advance_on_item`, each new item counts the previous one as done; otherwise the caller
    /// advances the overall bar with [`Bars::done`].
    pub fn new(multi: &MultiProgress, total: u64, unit: &str, advance_on_item: bool) -> Self {
        let overall = multi.add(ProgressBar::new(total));
        overall.set_style(style(&format!(
            "{{prefix:>10.bold}} [{{bar:30.cyan/blue}}] {{pos}}/{{len}} {unit} {{elapsed_precise}} \
             {{wide_msg}}"
        )));
        overall.set_prefix("total");
        let current = multi.add(ProgressBar::new(0));
        current.set_style(samples_style());
        Self { overall, current, advance_on_item, in_item: AtomicBool::new(false) }
    }

    /// `n` more items are done (when not advancing on [`Progress::item`]).
    pub fn done(&self, n: u64) {
        self.overall.inc(n);
    }

    /// Remove both bars.
    pub fn finish(&self) {
        if self.advance_on_item && self.in_item.swap(false, Ordering::Relaxed) {
            self.overall.inc(1);
        }
        self.current.finish_and_clear();
        self.overall.finish_and_clear();
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.current.finish_and_clear();
        self.overall.finish_and_clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn samples_style() -> ProgressStyle {
    style("{prefix:>10} [{bar:30.green/white}] {percent:>3}% eta {eta:<4} {wide_msg}")
}

fn bytes_style() -> ProgressStyle {
    style("{prefix:>10} [{bar:30.green/white}] {bytes}/{total_bytes} {wide_msg}")
}

impl Progress for Bars {
    fn item(&self, name: &str) {
        if self.advance_on_item && self.in_item.swap(true, Ordering::Relaxed) {
            self.overall.inc(1);
        }
        // Show the file name, not the whole path: the bar stays on one line.
        let short = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        self.overall.set_message(short.clone());
        self.current.reset();
        self.current.set_length(0);
        self.current.set_message(short);
    }

    fn stage(&self, stage: Stage) {
        self.current.set_style(if stage == Stage::Hashing {
            bytes_style()
        } else {
            samples_style()
        });
        self.current.set_prefix(stage.label());
        self.current.set_position(0);
    }

    fn set_total(&self, total: u64) {
        self.current.set_length(total);
        self.current.set_position(0);
    }

    fn advance(&self, n: u64) {
        self.current.inc(n);
    }

    fn message(&self, msg: &str) {
        self.current.set_message(msg.to_string());
    }

    fn is_cancelled(&self) -> bool {
        super::interrupt::requested()
    }
}
