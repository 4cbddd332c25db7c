//! `aniprint tui` (and `aniprint` with no command): the terminal UI on the catalog. The binary's
//! part is small: it gives the library TUI the models and the dataset export (the binary
//! decides where models live), sends logs to a file, and refuses to start without a terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aniprint::analyze::Analyzer;
use aniprint::catalog::Catalog;
use aniprint::progress::Progress;
use aniprint::separate::Separator;
use aniprint::tui::jobs::{Services, Settings};
use anyhow::bail;

use super::{Cli, Command as CliCommand, Ctx, Outcome};

/// Arguments of `aniprint tui`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Fingerprint and scan the mix only: do not load the separator.
    #[arg(long)]
    no_separate: bool,
    /// Who the audit log names for decisions made here (default: $USER).
    #[arg(long, value_name = "NAME")]
    who: Option<String>,
    /// The report file the Reports screen writes by default.
    #[arg(long, value_name = "FILE", default_value = "aniprint-report.csv")]
    report: PathBuf,
    /// Log file (default: aniprint-tui.log in the catalog directory).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
}

/// Models and dataset export for the library TUI.
struct BinServices {
    no_separate: bool,
}

impl Services for BinServices {
    fn load_analyzer(&self) -> aniprint::Result<Analyzer> {
        super::scan::load_analyzer(self.no_separate)
            .map_err(|e| aniprint::Error::Invalid(format!("{e:#}")))
    }

    /// The separator `aniprint separate` uses by default (even under `--no-separate`, which
    /// only keeps stems out of fingerprinting: a separate job asks for stems outright).
    fn load_separator(&self) -> aniprint::Result<Separator> {
        Separator::load_default(&candle_core::Device::Cpu)
    }

    /// Runs `aniprint export-pieces` as a child process (the export lives in the CLI), polling
    /// for cancellation.
    fn export_dataset(
        &self,
        catalog: &Catalog,
        out: &Path,
        progress: &dyn Progress,
    ) -> aniprint::Result<String> {
        let io = |e: std::io::Error| aniprint::Error::io(out, e);
        let exe = std::env::current_exe().map_err(io)?;
        let stdout = tempfile::tempfile().map_err(io)?;
        let stderr = tempfile::tempfile().map_err(io)?;
        let mut child = Command::new(exe)
            .arg("--catalog")
            .arg(catalog.path())
            .arg("export-pieces")
            .arg("--out")
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout.try_clone().map_err(io)?))
            .stderr(Stdio::from(stderr.try_clone().map_err(io)?))
            .spawn()
            .map_err(io)?;
        let status = loop {
            if let Some(s) = child.try_wait().map_err(io)? {
                break s;
            }
            if progress.is_cancelled() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(aniprint::Error::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let read = |mut f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut s = String::new();
            let _ = f.rewind().and_then(|()| f.read_to_string(&mut s));
            s
        };
        let (out_text, err_text) = (read(stdout), read(stderr));
        let last = |s: &str| s.lines().last().unwrap_or_default().trim().to_string();
        match status.code() {
            Some(0 | 1) => {
                for line in err_text.lines().filter(|l| l.starts_with("failed:")) {
                    tracing::warn!("{line}");
                }
                Ok(last(&out_text))
            }
            _ => {
                Err(aniprint::Error::Invalid(format!("export-pieces failed: {}", last(&err_text))))
            }
        }
    }
}

/// Send logs to the TUI's log file (never to the screen).
pub fn init_logging(cli: &Cli, ctx: &Ctx) {
    use tracing_subscriber::EnvFilter;
    if !std::io::stdout().is_terminal() {
        // `run` refuses to start; leave no log file behind.
        return;
    }
    let path = match &cli.command {
        Some(CliCommand::Tui(a)) => a.log.clone(),
        _ => None,
    }
    .unwrap_or_else(|| ctx.catalog_dir.join("aniprint-tui.log"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let Ok(file) = std::fs::OpenOptions::new().create(true).append(true).open(&path) else {
        return;
    };
    let default = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
}

/// Open the TUI and run it until the user quits.
pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("the terminal UI needs a terminal; `aniprint --help` lists the commands");
    }
    let config = ctx.config()?;
    let catalog = ctx.open_catalog()?;
    let mut opts = aniprint::tui::Options::new(&ctx.catalog_dir);
    opts.theme = aniprint::tui::theme::Theme::from_config(&config.tui)
        .map_err(|reason| anyhow::anyhow!("{reason}"))?;
    opts.settings = Settings {
        who: args.who.unwrap_or_else(aniprint::review::default_who),
        config,
        clock: Arc::new(aniprint::catalog::now_ms),
    };
    opts.report_out = args.report;
    tracing::info!("tui on {}", ctx.catalog_dir.display());
    aniprint::tui::run(catalog, Arc::new(BinServices { no_separate: args.no_separate }), opts)?;
    Ok(Outcome::Ok)
}
