//! Whether the external tools some tests drive are installed (`scripts/setup.sh` installs them;
//! a test without its tool says so and skips).

#![allow(dead_code)]

use std::process::{Command, Stdio};

/// `tool arg` runs and succeeds.
pub fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The `ffmpeg` CLI is there.
pub fn have_ffmpeg() -> bool {
    have("ffmpeg", "-version")
}
