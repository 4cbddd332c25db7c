//! Auditioning a match: a stretch of the upload or of the reference episode played by `ffplay`
//! as a detached child process (no window, stdin and stdout null, exits at the end of the
//! stretch). The UI thread only spawns and kills it and never waits on it: a watcher thread
//! reaps each player and, when one ends with an error (a file ffplay cannot read, no audio
//! device), hands ffplay's own last words to a report callback so the status line can say
//! why nothing played. [`command`] builds the command line and is pure, so it is tested
//! without spawning anything.

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

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
/// `ffplay -nodisp -autoexit -loglevel error [-ast N] -ss START -t DURATION FILE`, stdin and
/// stdout null, stderr piped (its last line says why a play failed). Builds it only; nothing
/// is spawned.
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
        .stderr(Stdio::piped());
    cmd
}

/// Where a player that ended with an error is reported: called on the watcher thread with one
/// line for the status bar.
pub type Report = Arc<dyn Fn(String) + Send + Sync>;

/// The most of a player's stderr kept (its end: the reason comes last).
const STDERR_TAIL: usize = 4096;

/// A running player: the child (shared with its watcher) and whether we stopped it.
#[derive(Debug)]
struct Playing {
    child: Arc<Mutex<Child>>,
    stopped: Arc<AtomicBool>,
}

/// The external player: at most one plays at a time.
pub struct Player {
    program: OsString,
    child: Option<Playing>,
    report: Option<Report>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("program", &self.program)
            .field("child", &self.child)
            .finish_non_exhaustive()
    }
}

impl Default for Player {
    fn default() -> Self {
        Self::new(FFPLAY)
    }
}

impl Player {
    /// A player that runs `program` (an ffplay, by name on `PATH` or by path).
    pub fn new(program: impl Into<OsString>) -> Self {
        Self { program: program.into(), child: None, report: None }
    }

    /// Report players that end with an error to `report` (the TUI sends the line to its
    /// status bar); without it such ends are only logged.
    pub fn reporting(mut self, report: Report) -> Self {
        self.report = Some(report);
        self
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
        let name = req.file.file_name().map_or(file.to_string(), |n| n.to_string_lossy().into());
        match self.start(command(&self.program, req), format!("the {side} {name}")) {
            Ok(()) => Ok(format!(
                "playing {side} {name} {}-{} with {program} (p/P again replaces it)",
                short_hms(req.start.0),
                short_hms(req.start.0 + req.duration.0)
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(format!(
                "cannot play: {program} not found (install FFmpeg's ffplay and put it on PATH)"
            )),
            Err(e) => Err(format!("cannot play the {side}: starting {program}: {e}")),
        }
    }

    /// Spawn `cmd` as the player and watch it on a thread of its own; `what` names what it
    /// plays in the report of a failed end.
    fn start(&mut self, mut cmd: Command, what: String) -> std::io::Result<()> {
        let mut child = cmd.spawn()?;
        let stderr = child.stderr.take();
        let child = Arc::new(Mutex::new(child));
        let stopped = Arc::new(AtomicBool::new(false));
        let program = Path::new(&self.program).display().to_string();
        let (c, s, report) = (child.clone(), stopped.clone(), self.report.clone());
        let watcher = std::thread::Builder::new()
            .name("aniprint-player".into())
            .spawn(move || watch(&c, stderr, &s, &program, &what, report.as_deref()));
        if let Err(e) = watcher {
            // Unwatched, it would never be reaped: do not leave it playing.
            let mut c = child.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = c.kill();
            let _ = c.wait();
            return Err(e);
        }
        self.child = Some(Playing { child, stopped });
        Ok(())
    }

    /// Stop the stretch playing; whether one still was. Its watcher reaps it and, since we
    /// stopped it, reports nothing.
    pub fn stop(&mut self) -> bool {
        let Some(p) = self.child.take() else { return false };
        p.stopped.store(true, Ordering::Relaxed);
        let mut child = p.child.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false; // it had reached the end
        }
        let _ = child.kill();
        true
    }
}

/// The watcher of one player: read its stderr to the end (keeping the tail), reap it, and
/// report an end with an error unless we stopped it.
fn watch(
    child: &Mutex<Child>,
    stderr: Option<ChildStderr>,
    stopped: &AtomicBool,
    program: &str,
    what: &str,
    report: Option<&(dyn Fn(String) + Send + Sync)>,
) {
    let mut tail: Vec<u8> = Vec::new();
    if let Some(mut err) = stderr {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = err.read(&mut buf) {
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
    }
    // Stderr is closed: the player has ended or is about to. Poll rather than wait, so
    // `stop` never blocks on this lock.
    let status = loop {
        match child.lock().unwrap_or_else(PoisonError::into_inner).try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("{program}: cannot wait for the player: {e}");
                break None;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let Some(status) = status.filter(|s| !s.success()) else { return };
    if stopped.load(Ordering::Relaxed) {
        return; // killed by `stop`: not a failure
    }
    let text = String::from_utf8_lossy(&tail);
    let last = text.lines().map(str::trim).rfind(|l| !l.is_empty());
    let msg = match last {
        Some(line) => format!("{program} could not play {what} ({status}): {line}"),
        None => format!("{program} could not play {what} ({status})"),
    };
    tracing::warn!("{msg}");
    if let Some(report) = report {
        report(msg);
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
        let reports = Arc::new(Mutex::new(Vec::new()));
        let r = reports.clone();
        let mut p = Player::new("aniprint-test-no-such-player")
            .reporting(Arc::new(move |m| r.lock().unwrap().push(m)));
        // Stand in for a player that is still playing.
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30").stdin(Stdio::null()).stderr(Stdio::piped());
        p.start(sleeper, "the upload a.mp4".into()).unwrap();
        let pid = p.child.as_ref().unwrap().child.lock().unwrap().id();
        // The next press stops it before anything else, even when the new stretch cannot play.
        assert!(p.play(&req(Side::Upload, "/nonexistent/aniprint/b.mp4", None)).is_err());
        assert!(p.child.is_none());
        // Killed, and reaped off this thread: its /proc entry goes.
        let gone = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "player {pid} still there");
        // Stopping it on purpose is not a failure to report.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(reports.lock().unwrap().is_empty(), "{:?}", reports.lock().unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn a_player_that_ends_with_an_error_reports_its_last_words() {
        use std::os::unix::fs::PermissionsExt;
        // A stand-in ffplay that fails the way ffplay does on a file it cannot read.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("ffplay");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'starting' >&2\n\
             echo \"$9: Invalid data found when processing input\" >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut p = Player::new(&fake).reporting(Arc::new(move |m| {
            let _ = tx.send(m);
        }));
        let here = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        assert!(p.play(&req(Side::Upload, here, None)).is_ok());
        let msg = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(
            msg,
            format!(
                "{} could not play the upload Cargo.toml (exit status: 1): {here}: Invalid data \
                 found when processing input",
                fake.display()
            )
        );
        // Reaped: a second press has nothing left to stop.
        assert!(!p.stop());
    }
}
