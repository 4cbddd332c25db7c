//! The command line: one clap derive enum of subcommands, each in its own file under `cli/`.
//! Add a subcommand as a variant of [`Command`] plus a `cli/<name>.rs` with its `Args` and `run`.

mod bars;
mod bench;
mod catalog_cmd;
mod demo;
mod eval;
mod export;
mod info;
mod ingest;
mod interrupt;
mod ls;
mod pieces;
mod report;
mod review;
mod rights;
mod scan;
mod separate;
mod table;
mod train;
mod tui;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use aniprint::catalog::Catalog;
use aniprint::config::Config;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressDrawTarget};

/// Find anime audio wherever it is reused, per stem, and keep track of who owns it.
#[derive(Debug, Parser)]
#[command(name = "aniprint", version, about, propagate_version = true)]
pub struct Cli {
    /// Catalog directory (created if missing).
    #[arg(long, global = true, env = "ANIPRINT_CATALOG", default_value = "catalog")]
    catalog: PathBuf,
    /// Settings file (default: aniprint.toml in the catalog directory).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// More log output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// No progress bars and no summaries; errors still go to stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// What to do (none: open the terminal UI, like `aniprint tui`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// aniprint's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest episodes: decode, cut into ~3-minute pieces at quiet points, store in the catalog.
    Ingest(ingest::Args),
    /// List the catalog's series, episodes or pieces.
    Ls(ls::Args),
    /// Show the streams, duration and tags of media files.
    Info(info::Args),
    /// Curate pieces: keep or drop them for the dataset.
    #[command(subcommand)]
    Pieces(pieces::Command),
    /// Write kept pieces as audio files plus a manifest.csv (the dataset step).
    ExportPieces(export::Args),
    /// Catalog housekeeping: statistics, removing episodes.
    #[command(subcommand)]
    Catalog(catalog_cmd::Command),
    /// Train a model from the Debian training corpus (reproducible, resumable).
    #[command(subcommand)]
    Train(train::Command),
    /// Scan uploads for reused audio, per stem; store the regions as pending matches.
    Scan(scan::ScanArgs),
    /// Find where a short clip comes from (ranked answers).
    Query(scan::QueryArgs),
    /// The README's main job: ingest the fixture episodes into a fresh catalog, scan the
    /// fixture uploads, print the regions beside the ground truth.
    Demo(demo::Args),
    /// Measure speed and memory: fingerprinting, separation, vector search.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Measure a model: hit rates under degradations.
    #[command(subcommand)]
    Eval(eval::Command),
    /// Split media into voice and background stems (the separator model).
    Separate(separate::Args),
    /// Ownership records: import, add, list, remove, export.
    #[command(subcommand)]
    Rights(rights::Command),
    /// Review matches: list, set a status, undo, show the audit log.
    #[command(subcommand)]
    Review(review::Command),
    /// Write the match report CSV (one row per match x ownership record).
    Report(report::Args),
    /// Open the terminal UI: library, jobs, review, rights, reports (also `aniprint` alone).
    Tui(tui::Args),
}

/// How a command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything worked.
    Ok,
    /// Some items failed; the others were done.
    Partial,
    /// Ctrl-C stopped the command, which said itself what was done (a command that cannot
    /// resume; the others return `Error::Cancelled` and `main` says the command resumes).
    Stopped,
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Partial => ExitCode::from(1),
            Outcome::Stopped => ExitCode::from(130),
        }
    }
}

/// What every subcommand gets: where the catalog is, settings, and the terminal.
pub struct Ctx {
    catalog_dir: PathBuf,
    config_path: PathBuf,
    /// Whether `--config` named it (a missing file is then an error, not the defaults).
    config_named: bool,
    quiet: bool,
    /// Where progress bars draw (hidden with --quiet or when stderr is not a terminal).
    multi: MultiProgress,
}

impl Ctx {
    /// Build the context from the parsed flags.
    pub fn new(cli: &Cli) -> Self {
        use std::io::IsTerminal;
        let draw = if cli.quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Self {
            catalog_dir: cli.catalog.clone(),
            config_path: cli.config.clone().unwrap_or_else(|| Config::path_in(&cli.catalog)),
            config_named: cli.config.is_some(),
            quiet: cli.quiet,
            multi: MultiProgress::with_draw_target(draw),
        }
    }

    fn open_catalog(&self) -> anyhow::Result<Catalog> {
        Catalog::open(&self.catalog_dir)
            .with_context(|| format!("opening the catalog at {}", self.catalog_dir.display()))
    }

    fn config(&self) -> anyhow::Result<Config> {
        Ok(if self.config_named {
            Config::load_named(&self.config_path)?
        } else {
            Config::load(&self.config_path)?
        })
    }

    /// Remove any bars from the terminal before printing.
    pub fn clear_bars(&self) {
        let _ = self.multi.clear();
    }
}

/// Run one subcommand.
pub fn run(command: Option<Command>, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let Some(command) = command else { return tui::run(tui::Args::default(), ctx) };
    match command {
        Command::Ingest(args) => ingest::run(args, ctx),
        Command::Ls(args) => ls::run(args, ctx),
        Command::Info(args) => info::run(args, ctx),
        Command::Pieces(cmd) => pieces::run(cmd, ctx),
        Command::ExportPieces(args) => export::run(args, ctx),
        Command::Catalog(cmd) => catalog_cmd::run(cmd, ctx),
        Command::Train(cmd) => train::run(cmd, ctx),
        Command::Scan(args) => scan::run_scan(args, ctx),
        Command::Query(args) => scan::run_query(args, ctx),
        Command::Demo(args) => demo::run(args, ctx),
        Command::Bench(cmd) => bench::run(cmd, ctx),
        Command::Eval(cmd) => eval::run(cmd, ctx),
        Command::Separate(args) => separate::run(args, ctx),
        Command::Rights(cmd) => rights::run(cmd, ctx),
        Command::Review(cmd) => review::run(cmd, ctx),
        Command::Report(args) => report::run(args, ctx),
        Command::Tui(args) => tui::run(args, ctx),
    }
}

/// Whether `e` is stdout closing early (`aniprint ls | head`), which is not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Log to stderr through the progress bars (so lines never tear them), filtered by RUST_LOG or,
/// without it, by -v/--quiet.
pub fn init_logging(cli: &Cli, ctx: &Ctx) {
    // The TUI owns the screen: its logs go to a file.
    if let None | Some(Command::Tui(_)) = &cli.command {
        tui::init_logging(cli, ctx);
        return;
    }
    use tracing_subscriber::EnvFilter;
    let default = match (cli.quiet, cli.verbose) {
        // Per-file failures are reported in each command's summary, not as log lines.
        (true, _) | (false, 0) => "error",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let multi = ctx.multi.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(move || LogWriter { multi: multi.clone(), buf: Vec::new() })
        .try_init();
}

/// Buffers one log event and writes it with the bars suspended.
struct LogWriter {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            self.multi.suspend(|| std::io::stderr().write_all(&buf))?;
        }
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Write JSON to stdout, pretty and newline-terminated.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| match e.io_error_kind() {
        // Keep a closed pipe recognisable as such (see `is_broken_pipe`).
        Some(kind) => anyhow::Error::from(std::io::Error::from(kind)),
        None => e.into(),
    })?;
    writeln!(out)?;
    Ok(())
}

/// `HH:MM:SS` for tables (the millisecond form is in the JSON and the manifest).
fn hms(seconds: f64) -> String {
    let mut s = aniprint::units::Seconds(seconds).hms();
    s.truncate(8);
    s
}
