//! The `aniprint` command: parses the command line, calls the library, prints.
//!
//! Exit status: 0 when everything worked, 1 when some items of a batch failed (the rest were
//! done), 2 when the command could not run at all (bad usage, unreadable catalog), 130 when
//! Ctrl-C stopped `train` or `ingest` (what was done is kept; the same command resumes).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let ctx = cli::Ctx::new(&args);
    cli::init_logging(&args, &ctx);
    match cli::run(args.command, &ctx) {
        Ok(outcome) => outcome.exit_code(),
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if matches!(e.downcast_ref(), Some(aniprint::Error::Cancelled)) => {
            ctx.clear_bars();
            eprintln!("aniprint: stopped; the same command resumes");
            ExitCode::from(130)
        }
        Err(e) => {
            ctx.clear_bars();
            eprintln!("aniprint: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
