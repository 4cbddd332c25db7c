//! Messages into [`crate::tui::update::update`] ([`Action`]) and the side effects it asks the
//! runtime to carry out ([`Effect`]). Commands ([`Cmd`]) are what keys, the palette and the
//! mouse map to; they carry no data so one keymap table can list them all.

use std::path::{Path, PathBuf};

use ratatui::crossterm::event::{KeyEvent, MouseEvent};

use crate::catalog::{MatchFilter, MatchStatus, PieceStatus};
use crate::progress::Stage;
use crate::review::Decision;
use crate::rights::{Problem, RawRecord};
use crate::units::Seconds;

use super::app::{Changes, Data, Listing, Screen};
use super::widgets::spectrogram::SpecImage;

/// A command a key, a palette entry or a mouse click triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    /// Quit (asks first while jobs run).
    Quit,
    /// Show the help overlay.
    Help,
    /// Open the command palette.
    Palette,
    /// Filter the current list.
    Filter,
    /// Next screen.
    NextScreen,
    /// Previous screen.
    PrevScreen,
    /// Go to a screen.
    Goto(Screen),
    /// Cursor up.
    Up,
    /// Cursor down.
    Down,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Half a page up.
    PageUp,
    /// Half a page down.
    PageDown,
    /// Focus the pane to the left.
    FocusLeft,
    /// Focus the pane to the right.
    FocusRight,
    /// Toggle the row under the cursor in the bulk selection.
    Mark,
    /// Clear the bulk selection.
    ClearMarks,
    /// Open / activate the row under the cursor.
    Open,
    /// Close an overlay, leave a mode, clear a filter.
    Back,
    /// Reload everything from the catalog.
    Refresh,
    /// Library: mark pieces keep.
    Keep,
    /// Library: mark pieces drop.
    DropPiece,
    /// Library: mark pieces unreviewed.
    Unreview,
    /// Library: ingest a folder or file (background job).
    Ingest,
    /// Library: export the kept pieces as a dataset (background job).
    ExportDataset,
    /// Library: split media files into voice and background stems (background job).
    Separate,
    /// Jobs: cancel the selected job.
    CancelJob,
    /// Review: scan uploads (background job).
    Scan,
    /// Review: confirm.
    Confirm,
    /// Review: dismiss (asks for a reason code and a note).
    Dismiss,
    /// Review: dismiss and exclude the reference range from later scans.
    DismissExclude,
    /// Review: mark disputed (asks for a reason code and a note).
    Dispute,
    /// Review: escalate a dispute to legal.
    Escalate,
    /// Review: reopen a dismissed match.
    Reopen,
    /// Review: undo the last decision.
    Undo,
    /// Review: next pending match.
    NextPending,
    /// Review: previous pending match.
    PrevPending,
    /// Review: record ownership of the selected match's reference range (opens the rights
    /// form, prefilled).
    AttachRights,
    /// Review: play the selected match's stretch of the upload (external player).
    PlayUpload,
    /// Review: play the selected match's stretch of the reference episode (external player).
    PlayReference,
    /// Rights: add a record.
    AddRights,
    /// Rights: edit the selected record.
    EditRights,
    /// Rights: delete the selected record.
    DeleteRights,
    /// Rights: import a CSV file.
    ImportRights,
    /// Reports: export the report CSV with the chosen filters.
    ExportReport,
    /// Forms: save / submit.
    Submit,
    /// Forms: next field.
    NextField,
    /// Forms: previous field.
    PrevField,
    /// Confirmation dialogs: yes.
    Yes,
    /// Confirmation dialogs: no.
    No,
    /// Quit dialog: cancel the running jobs and quit.
    CancelAndQuit,
    /// Quit dialog: quit once the running jobs have finished.
    QuitWhenDone,
    /// File picker: open the folder under the cursor.
    IntoDir,
    /// File picker: go to the parent folder.
    UpDir,
    /// File picker: use the marked entries, else the one under the cursor.
    Accept,
    /// File picker: type a path instead.
    TypePath,
    /// File picker: show the typed folder (or leave the path field when it is empty).
    GoToPath,
}

/// The loader's answer to the reload requests queued since its last one.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// How many requests this one read answers.
    pub requests: u32,
    /// The catalog, or why it could not be read.
    pub data: std::result::Result<Data, String>,
}

/// Everything that can happen to the app.
#[derive(Debug, Clone)]
pub enum Action {
    /// A key press (dispatched through the keymap, or typed into a text field).
    Key(KeyEvent),
    /// A mouse event.
    Mouse(MouseEvent),
    /// A command, from the keymap, the palette or a test.
    Cmd(Cmd),
    /// Time passes (throbber, toasts).
    Tick,
    /// The terminal was resized.
    Resize(u16, u16),
    /// A job reported something.
    Job(JobEvent),
    /// A full read of the catalog was asked of the loader.
    Loading,
    /// The loader's answer.
    Loaded(Box<Loaded>),
    /// An edit was stored: the records as the catalog now holds them.
    Changed(Box<Changes>),
    /// A spectrogram preview is ready.
    Preview(Box<Preview>),
    /// An effect finished with a message for the user.
    Toast(Toast),
    /// Review decisions were applied: the match ids changed (for undo).
    Decided(Vec<String>),
    /// A rights record was stored.
    RightsSaved(String),
    /// A rights record was refused: its problems.
    RightsRejected(Vec<Problem>),
    /// A folder was read for the file picker.
    Listed(Box<Listing>),
}

/// A short message at the bottom of the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    /// The message.
    pub text: String,
    /// How it is shown.
    pub level: Level,
}

/// How a message is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Plain information.
    Info,
    /// It worked.
    Ok,
    /// It failed.
    Error,
}

impl Toast {
    /// An information message.
    pub fn info(text: impl Into<String>) -> Self {
        Self { text: text.into(), level: Level::Info }
    }
    /// A success message.
    pub fn ok(text: impl Into<String>) -> Self {
        Self { text: text.into(), level: Level::Ok }
    }
    /// An error message.
    pub fn error(text: impl Into<String>) -> Self {
        Self { text: text.into(), level: Level::Error }
    }
}

/// A spectrogram pair for one match region.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// The match id.
    pub match_id: String,
    /// The upload side, or why it could not be read.
    pub upload: Result<SpecImage, String>,
    /// The reference (episode) side, or why it could not be read.
    pub reference: Result<SpecImage, String>,
}

/// What to compute a preview from.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRequest {
    /// The match id.
    pub match_id: String,
    /// Upload file and range (seconds).
    pub upload: (PathBuf, f64, f64),
    /// Episode file, audio stream index and range (seconds).
    pub reference: (PathBuf, usize, f64, f64),
}

/// Which side of a match region to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The upload (query).
    Upload,
    /// The reference episode.
    Reference,
}

impl Side {
    /// What messages call it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Upload => "upload",
            Side::Reference => "reference",
        }
    }
}

/// A stretch of a media file to play with the external player.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayRequest {
    /// Which side of the match it is.
    pub side: Side,
    /// The media file.
    pub file: PathBuf,
    /// Absolute index of the audio stream to play (none: the player's default).
    pub audio_stream: Option<usize>,
    /// Where to start.
    pub start: Seconds,
    /// How long to play.
    pub duration: Seconds,
}

/// Job ids, unique in one session.
pub type JobId = u64;

/// A background job to start.
#[derive(Debug, Clone, PartialEq)]
pub enum JobSpec {
    /// Ingest media files and folders (fingerprinted when the models load).
    Ingest {
        /// Files and folders.
        paths: Vec<PathBuf>,
    },
    /// Scan uploads for reuse.
    Scan {
        /// Files and folders.
        paths: Vec<PathBuf>,
    },
    /// Export kept pieces as a dataset.
    ExportDataset {
        /// Output folder.
        out: PathBuf,
    },
    /// Write the match report CSV.
    ExportReport {
        /// Which matches.
        filter: MatchFilter,
        /// Output file.
        out: PathBuf,
        /// Also cut evidence clips into `evidence/` beside it.
        evidence: bool,
    },
    /// Import a rights CSV.
    ImportRights {
        /// The CSV file.
        path: PathBuf,
    },
    /// Split media files into voice and background stems with the separator.
    Separate {
        /// Files and folders.
        paths: Vec<PathBuf>,
        /// Folder the stems are written to (`<name>.voice.wav`, `<name>.background.wav`).
        out: PathBuf,
    },
    /// Train (or resume training) a model.
    Train(TrainSpec),
}

/// Which model a training job trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainModel {
    /// The contrastive fingerprinter.
    Fingerprint,
    /// The voice/background separator.
    Separator,
}

impl TrainModel {
    /// Its name, as `:train` and `aniprint train` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            TrainModel::Fingerprint => "fingerprint",
            TrainModel::Separator => "separator",
        }
    }

    /// The model directory a run without `--out` replaces: the binary's default model (for
    /// the fingerprinter, the first member of a default ensemble).
    pub fn default_dir(self) -> crate::Result<std::path::PathBuf> {
        match self {
            TrainModel::Fingerprint => crate::fingerprint::default_training_dir(),
            TrainModel::Separator => {
                Ok(crate::fingerprint::models_dir().join(crate::separate::DEFAULT_MODEL))
            }
        }
    }
}

/// A training run as `:train` asks for it; what is left out takes `aniprint train`'s
/// defaults, so the CLI and the TUI resume each other's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainSpec {
    /// Which model.
    pub model: TrainModel,
    /// The corpus made by `fetch_training_audio.sh`.
    pub corpus: PathBuf,
    /// Optimiser steps to reach (a resumed run counts the steps already done).
    pub steps: usize,
    /// Checkpoints and log (none: [`TrainSpec::state_dir`]'s default).
    pub state: Option<PathBuf>,
    /// Where the finished model goes (none: the installed default model).
    pub out: Option<PathBuf>,
    /// Decoded-audio cache (none: `cache` in the state folder).
    pub cache: Option<PathBuf>,
}

impl TrainSpec {
    /// Where the checkpoints go: `--state`, else `../train-state/<model>` (the CLI's default).
    pub fn state_dir(&self) -> PathBuf {
        self.state.clone().unwrap_or_else(|| Path::new("../train-state").join(self.model.as_str()))
    }
}

/// Which worker thread runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worker {
    /// The inference worker, which owns the loaded models (model jobs queue there).
    Inference,
    /// The training worker: training runs queue there, so a run never holds up ingest or
    /// scans and two runs never share the CPU.
    Training,
    /// A thread of the job's own (catalog and file work).
    Own,
}

impl JobSpec {
    /// What the jobs list calls it.
    pub fn title(&self) -> String {
        let list = |p: &[PathBuf]| {
            p.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        };
        match self {
            JobSpec::Ingest { paths } => format!("ingest {}", list(paths)),
            JobSpec::Scan { paths } => format!("scan {}", list(paths)),
            JobSpec::ExportDataset { out } => format!("export dataset -> {}", out.display()),
            JobSpec::ExportReport { out, .. } => format!("report -> {}", out.display()),
            JobSpec::ImportRights { path } => format!("import rights {}", path.display()),
            JobSpec::Separate { paths, out } => {
                format!("separate {} -> {}", list(paths), out.display())
            }
            JobSpec::Train(t) => {
                format!("train {}: {} steps on {}", t.model.as_str(), t.steps, t.corpus.display())
            }
        }
    }

    /// The worker that runs it: jobs that run the models queue on the inference worker.
    pub fn worker(&self) -> Worker {
        match self {
            JobSpec::Ingest { .. } | JobSpec::Scan { .. } | JobSpec::Separate { .. } => {
                Worker::Inference
            }
            JobSpec::Train(_) => Worker::Training,
            JobSpec::ExportDataset { .. }
            | JobSpec::ExportReport { .. }
            | JobSpec::ImportRights { .. } => Worker::Own,
        }
    }
}

/// What a running job reports (sent over the job channel, coalesced per job).
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// The job started.
    Started {
        /// Job id.
        id: JobId,
        /// What it does.
        spec: JobSpec,
    },
    /// Progress: the current item, stage and counters.
    Progress {
        /// Job id.
        id: JobId,
        /// The item being worked on (a file name).
        item: String,
        /// Items done so far and in all (0: unknown).
        items: (u64, u64),
        /// The current stage.
        stage: Option<Stage>,
        /// Units done and total in the current stage (total 0: unknown).
        units: (u64, u64),
        /// A free-form status line.
        message: String,
        /// Milliseconds since the job started.
        elapsed_ms: u64,
    },
    /// One item failed; the job goes on.
    ItemFailed {
        /// Job id.
        id: JobId,
        /// The item.
        item: String,
        /// Why.
        reason: String,
    },
    /// The job ended.
    Finished {
        /// Job id.
        id: JobId,
        /// How.
        result: JobResult,
        /// Milliseconds since the job started.
        elapsed_ms: u64,
    },
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobResult {
    /// It ran to the end (some items may have failed).
    Done {
        /// One line for the user.
        summary: String,
        /// The file or folder it wrote, if any.
        output: Option<PathBuf>,
    },
    /// The user cancelled it.
    Cancelled,
    /// It could not run.
    Failed(String),
}

/// A side effect [`crate::tui::update::update`] asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start a background job.
    Spawn(JobSpec),
    /// Cancel a job.
    Cancel(JobId),
    /// Cancel every running job.
    CancelAll,
    /// Set the curation status of pieces.
    SetPieces {
        /// Piece ids.
        ids: Vec<String>,
        /// New status.
        status: PieceStatus,
    },
    /// Apply a review decision to matches.
    Review {
        /// Match ids.
        ids: Vec<String>,
        /// New status.
        to: MatchStatus,
        /// Reason, note, exclude.
        decision: Decision,
    },
    /// Undo the last change of matches.
    Undo {
        /// Match ids.
        ids: Vec<String>,
    },
    /// Validate and store a rights record (add, or replace by id).
    SaveRights(RawRecord),
    /// Delete a rights record.
    DeleteRights(String),
    /// Compute the spectrograms of a match (latest request wins).
    Preview(PreviewRequest),
    /// Play a stretch of a file with the external player (stops the one playing).
    Play(PlayRequest),
    /// Read a folder for the file picker (a file: its folder, the cursor on it).
    ListDir {
        /// The folder.
        dir: PathBuf,
        /// The entry to put the cursor on.
        select: Option<PathBuf>,
    },
    /// Reload the data from the catalog.
    Reload,
    /// Leave the TUI.
    Quit,
}
