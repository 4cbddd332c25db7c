//! Runs `tests/tui_e2e.sh` (the TUI in a real terminal under tmux: confirm a match, export the
//! report, check the CSV) against the test build of the binary. Skipped, with a message, where
//! tmux is not installed (`scripts/setup.sh` installs it).

use std::path::Path;
use std::process::Command;

#[path = "support/tools.rs"]
mod tools;
use tools::have;

#[test]
fn tui_confirms_a_match_and_exports_the_report_in_tmux() {
    if !have("tmux", "-V") {
        eprintln!("skipped: tmux is not installed (scripts/setup.sh installs it)");
        return;
    }
    if !have("ffmpeg", "-version") {
        eprintln!("skipped: ffmpeg is not installed");
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_aniprint"));
    if !bin.is_file() {
        eprintln!("skipped: {} is not built", bin.display());
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tui_e2e.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(bin)
        .env_remove("ANIPRINT_CATALOG")
        .env_remove("RUST_LOG")
        .output()
        .expect("bash runs");
    let text = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("tui e2e ok"), "{text}");
}
