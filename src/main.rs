//! The `aniprint` command: parses the command line, calls the library, prints.
//!
//! Exit status: 0 when everything worked, 1 when some items of a batch failed (the rest were
//! done), 2 when the command could not run at all (bad usage, unreadable catalog), 130 when
//! Ctrl-C stopped `train` or `ingest` (what was done is kept; the same command resumes).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    keep_freed_memory();
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

/// Candle allocates and frees tensors of a few MB for every batch. glibc serves blocks that size
/// with mmap and unmaps them on free, so each batch pays for freshly zeroed pages: half of the
/// fingerprinting time here (fingerprint-v4 on a 24-minute upload: 761x real time before,
/// 1,501x after; the scan of it 17.6 s -> 14.2 s). Blocks under 32 MiB now come from the heap,
/// which is trimmed only when 256 MiB at its top are free. Settings the user gave glibc
/// (`GLIBC_TUNABLES`, `MALLOC_*_`) are left as they are.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    let user_set = std::env::vars_os().any(|(k, _)| {
        let k = k.to_string_lossy();
        k == "GLIBC_TUNABLES" || (k.starts_with("MALLOC_") && k.ends_with('_'))
    });
    if user_set {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets allocator parameters; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
