//! Auditioning a match: a stretch of the upload or of the reference episode played by `ffplay`
//! as a detached child process (no window, null stdio, exits at the end of the stretch). The
//! UI thread only spawns and kills it and never waits on it: a stopped player is reaped on a
//! thread of its own. [`command`] builds the command line and is pure, so it is tested
//! without spawning anything.

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::action::PlayRequest;
use super::widgets::timeline::short_hms;
use crate::units::Seconds;

/// The player program [`Player::default`] runs (looked up on `PATH`).
pub const FFPLAY: &str = "ffplay";

/// Seconds as ffplay reads them: plain decimal, millisecond precision, never negative.
fn secs(s: Seconds) -> String {
    format!("{:.3}", s.0.max(0.0))
}

/// The input argument for `path`: the path itself, or `file:path` where ffplay would read it
/// as an option (a leading `-`) or a protocol (a `:` in it, as in `a:b.mp4`).
fn input(path: &Path) -> OsString {
    let text = path.to_string_lossy();
    if text.starts_with('-') || text.contains(':') {
        let mut s = OsString::from("file:");
        s.push(path.as_os_str());
        s
    } else {
        path.as_os_str().to_owned()
    }
}

/// The command that plays `req` with `program` (an ffplay):
/// `ffplay -nodisp -autoexit -loglevel error [-ast N] -ss START -t DURATION FILE`, stdio
/// null. Builds it only; nothing is spawned.
pub fn command(program: impl AsRef<OsStr>, req: &PlayRequest) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-nodisp", "-autoexit", "-loglevel", "error"]);
    if let Some(i) = req.audio_stream {
        // The episode's chosen audio stream (an absolute index, as ffplay's specifier reads it).
        cmd.arg("-ast").arg(i.to_string());
    }
    cmd.arg("-ss")
        .arg(secs(req.start))
        .arg("-t")
        .arg(secs(req.duration))
        .arg(input(&req.file))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The external player: at most one plays at a time.
#[derive(Debug)]
pub struct Player {
    program: OsString,
    child: Option<Child>,
}

impl Default for Player {
    fn default() -> Self {
        Self::new(FFPLAY)
    }
}

impl Player {
    /// A player that runs `program` (an ffplay, by name on `PATH` or by path).
    pub fn new(program: impl Into<OsString>) -> Self {
        Self { program: program.into(), child: None }
    }

    /// Stop the stretch playing, if any, then start `req`. Returns the line for the status bar:
    /// what plays, or why nothing can (the file gone, the player missing).
    pub fn play(&mut self, req: &PlayRequest) -> std::result::Result<String, String> {
        self.stop();
        let side = req.side.as_str();
        let file = req.file.display();
        match std::fs::metadata(&req.file) {
            Ok(m) if m.is_dir() => {
                return Err(format!(
                    "cannot play the {side}: {file} is a folder, not a media file"
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(format!(
                    "cannot play the {side}: {file} is not there any more (moved or deleted?)"
                ));
            }
            Err(e) => return Err(format!("cannot play the {side}: {file}: {e}")),
        }
        let program = Path::new(&self.program).display().to_string();
        match command(&self.program, req).spawn() {
            Ok(child) => {
                self.child = Some(child);
                let name =
                    req.file.file_name().map_or(file.to_string(), |n| n.to_string_lossy().into());
                Ok(format!(
                    "playing {side} {name} {}-{} with {program} (p/P again replaces it)",
                    short_hms(req.start.0),
                    short_hms(req.start.0 + req.duration.0)
                ))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
                "cannot play: {program} not found (install FFmpeg's ffplay and put it on PATH)"
            )),
            Err(e) => Err(format!("cannot play the {side}: starting {program}: {e}")),
        }
    }

    /// Stop the stretch playing; whether one still was.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false; // it had reached the end (and is reaped now)
        }
        let _ = child.kill();
        if !matches!(child.try_wait(), Ok(Some(_))) {
            // Killed but not gone yet: reap it elsewhere, never block the UI thread on it.
            let _ = std::thread::Builder::new()
                .name("aniprint-player-reaper".into())
                .spawn(move || child.wait());
        }
        true
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::tui::action::Side;

    fn req(side: Side, file: &str, audio_stream: Option<usize>) -> PlayRequest {
        PlayRequest {
            side,
            file: PathBuf::from(file),
            audio_stream,
            start: Seconds(30.0),
            duration: Seconds(20.0004),
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn the_upload_command_plays_the_stretch_without_a_window() {
        let cmd = command("ffplay", &req(Side::Upload, "/uploads/a.mp4", None));
        assert_eq!(cmd.get_program(), "ffplay");
        assert_eq!(
            args(&cmd),
            [
                "-nodisp",
                "-autoexit",
                "-loglevel",
                "error",
                "-ss",
                "30.000",
                "-t",
                "20.000",
                "/uploads/a.mp4"
            ]
        );
    }

    #[test]
    fn the_reference_command_picks_the_episode_audio_stream() {
        let cmd = command("/opt/ff/ffplay", &req(Side::Reference, "/media/ep01.mkv", Some(2)));
        assert_eq!(cmd.get_program(), "/opt/ff/ffplay");
        let a = args(&cmd);
        assert_eq!(a[4..], ["-ast", "2", "-ss", "30.000", "-t", "20.000", "/media/ep01.mkv"]);
    }

    #[test]
    fn odd_file_names_are_not_read_as_options_or_protocols() {
        let a = args(&command("ffplay", &req(Side::Upload, "-x.mp4", None)));
        assert_eq!(a.last().map(String::as_str), Some("file:-x.mp4"));
        let a = args(&command("ffplay", &req(Side::Upload, "clips/a:b.mp4", None)));
        assert_eq!(a.last().map(String::as_str), Some("file:clips/a:b.mp4"));
        let mut r = req(Side::Upload, "a.mp4", None);
        r.start = Seconds(-0.2);
        assert_eq!(args(&command("ffplay", &r))[5], "0.000");
    }

    #[test]
    fn a_missing_file_or_player_is_a_message_not_a_failure() {
        let mut p = Player::new("aniprint-test-no-such-player");
        let e = p.play(&req(Side::Upload, "/nonexistent/aniprint/a.mp4", None)).unwrap_err();
        assert_eq!(
            e,
            "cannot play the upload: /nonexistent/aniprint/a.mp4 is not there any more \
             (moved or deleted?)"
        );
        // The file is there (this crate's manifest) but the player is not: spawn fails.
        let here = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let e = p.play(&req(Side::Reference, here, Some(1))).unwrap_err();
        assert!(e.contains("aniprint-test-no-such-player not found"), "{e}");
        assert!(!p.stop());
    }

    #[cfg(unix)]
    #[test]
    fn a_started_player_is_named_on_the_status_line() {
        // `true` stands in for ffplay: it starts (and ends at once).
        let mut p = Player::new("true");
        let here = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let msg = p.play(&req(Side::Reference, here, Some(1))).unwrap();
        assert_eq!(msg, "playing reference Cargo.toml 0:30-0:50 with true (p/P again replaces it)");
        assert!(p.child.is_some());
        p.stop();
        assert!(p.child.is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_second_press_stops_the_previous_player_first() {
        // Stand in for a player that is still playing.
        let child = Command::new("sleep").arg("30").stdin(Stdio::null()).spawn().unwrap();
        let pid = child.id();
        let mut p = Player { program: "aniprint-test-no-such-player".into(), child: Some(child) };
        // The next press stops it before anything else, even when the new stretch cannot play.
        assert!(p.play(&req(Side::Upload, "/nonexistent/aniprint/b.mp4", None)).is_err());
        assert!(p.child.is_none());
        // Killed, and reaped off this thread: its /proc entry goes.
        let gone = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "player {pid} still there");
    }
}
