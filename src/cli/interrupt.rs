//! Ctrl-C for the long commands (`train`, `ingest`, `separate`, `export-pieces`): the first
//! press asks the job to stop at its next step, file, chunk or episode (training writes a
//! checkpoint there, ingest keeps every finished episode, separate every finished file's stems,
//! export lists the pieces it wrote in the manifest), a second press quits at once. Other
//! commands keep the default: Ctrl-C ends them.

use std::sync::atomic::{AtomicU8, Ordering};

/// Ctrl-C presses so far.
static PRESSES: AtomicU8 = AtomicU8::new(0);

/// Whether the user asked the running job to stop.
pub fn requested() -> bool {
    PRESSES.load(Ordering::Relaxed) > 0
}

/// What one press does.
#[derive(Debug, PartialEq, Eq)]
enum Press {
    /// Ask the job to stop at its next step or file.
    Stop,
    /// Quit now.
    Quit,
}

fn press(count: &AtomicU8) -> Press {
    if count.fetch_add(1, Ordering::Relaxed) == 0 { Press::Stop } else { Press::Quit }
}

/// Install the handler; the message names the job and where it stops ("training", "step";
/// "the ingest", "file"). A failure to install (another handler exists) leaves Ctrl-C's
/// default, which only costs the graceful stop.
pub fn install(what: &'static str, at: &'static str) {
    let installed = ctrlc::set_handler(move || match press(&PRESSES) {
        Press::Stop => {
            eprintln!("\naniprint: stopping {what} at the next {at} (Ctrl-C again quits now)")
        }
        Press::Quit => std::process::exit(130),
    });
    if let Err(e) = installed {
        tracing::debug!("no Ctrl-C handler: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_press_stops_and_the_second_quits() {
        let count = AtomicU8::new(0);
        assert_eq!(press(&count), Press::Stop);
        assert_eq!(press(&count), Press::Quit);
        assert_eq!(press(&count), Press::Quit);
    }
}
