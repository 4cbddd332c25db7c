//! The model: everything the TUI shows and remembers, as plain data (no terminal, no threads).
//! [`Data`] is a snapshot of the catalog: an edit made here patches it in place with the
//! records the catalog stored ([`Changes`]); what jobs wrote is read again on a worker. The
//! rest is UI state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::Result;
use crate::catalog::{
    Catalog, Episode, MatchRegion, MatchStatus, OwnershipRecord, Piece, Series, Upload,
};
use crate::progress::Stage;
use crate::rights::{Conflict, Lookup, RawRecord};

use super::action::{JobId, JobResult, JobSpec, Preview, Toast};
use super::theme::Theme;

/// The five screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Screen {
    /// Series, episodes, pieces; ingest and dataset export.
    #[default]
    Library,
    /// Running and finished jobs.
    Jobs,
    /// Uploads and their match regions.
    Review,
    /// Ownership records.
    Rights,
    /// The match report.
    Reports,
}

impl Screen {
    /// Every screen, in tab order.
    pub const ALL: [Screen; 5] =
        [Screen::Library, Screen::Jobs, Screen::Review, Screen::Rights, Screen::Reports];

    /// Tab title.
    pub fn title(self) -> &'static str {
        match self {
            Screen::Library => "Library",
            Screen::Jobs => "Jobs",
            Screen::Review => "Review",
            Screen::Rights => "Rights",
            Screen::Reports => "Reports",
        }
    }

    /// Position in [`Screen::ALL`].
    pub fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// What the keyboard is talking to.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Mode {
    /// Lists and single-key commands.
    #[default]
    Normal,
    /// Typing the current screen's filter.
    Filter,
    /// The help overlay.
    Help(HelpState),
    /// The command palette.
    Palette(PaletteState),
    /// A one-line text prompt.
    Prompt(Prompt),
    /// The file picker: browse folders, mark entries, or type a path.
    Picker(Picker),
    /// A review decision that needs a reason code and a note.
    Decision(DecisionForm),
    /// Adding or editing a rights record.
    RightsForm(RightsForm),
    /// A yes/no question.
    Confirm(Confirm),
}

/// A one-line text field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextInput {
    /// The text.
    pub text: String,
    /// Cursor position, in chars.
    pub cursor: usize,
}

impl TextInput {
    /// A field holding `text`, cursor at the end.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let cursor = text.chars().count();
        Self { text, cursor }
    }

    fn byte(&self, char_idx: usize) -> usize {
        self.text.char_indices().nth(char_idx).map_or(self.text.len(), |(b, _)| b)
    }

    /// Insert a char at the cursor.
    pub fn insert(&mut self, c: char) {
        let b = self.byte(self.cursor);
        self.text.insert(b, c);
        self.cursor += 1;
    }

    /// Delete the char before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            let b = self.byte(self.cursor);
            self.text.remove(b);
        }
    }

    /// Delete the char under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.text.chars().count() {
            let b = self.byte(self.cursor);
            self.text.remove(b);
        }
    }

    /// Move the cursor by `d` chars.
    pub fn move_by(&mut self, d: isize) {
        let n = self.text.chars().count() as isize;
        self.cursor = (self.cursor as isize + d).clamp(0, n) as usize;
    }

    /// Cursor to the start (`false`) or end (`true`).
    pub fn home_end(&mut self, end: bool) {
        self.cursor = if end { self.text.chars().count() } else { 0 };
    }

    /// Clear the field.
    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
    }
}

/// The help overlay's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HelpState {
    /// Only bindings whose key or label contains this.
    pub filter: TextInput,
    /// Typing into the filter.
    pub typing: bool,
    /// First line shown.
    pub scroll: usize,
}

/// The command palette's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaletteState {
    /// Fuzzy query, or a typed command with its arguments.
    pub query: TextInput,
    /// Selected entry among the matches.
    pub cursor: usize,
    /// Why the typed command was refused.
    pub error: Option<String>,
}

/// What the file picker picks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickFor {
    /// Episodes to ingest.
    Ingest,
    /// Uploads to scan.
    Scan,
    /// Media to separate into stems.
    Separate,
    /// The rights CSV to import (one file).
    ImportRights,
}

impl PickFor {
    /// The picker's title.
    pub fn title(self) -> &'static str {
        match self {
            PickFor::Ingest => "Ingest episodes: files or folders",
            PickFor::Scan => "Scan uploads: files or folders",
            PickFor::Separate => "Separate into stems: files or folders",
            PickFor::ImportRights => "Import rights: one CSV file",
        }
    }

    /// Whether a file (folders are always listed) is offered: media for the media jobs, CSV
    /// for the rights import.
    pub fn offers(self, file: &Path) -> bool {
        match self {
            PickFor::ImportRights => {
                file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            }
            PickFor::Ingest | PickFor::Scan | PickFor::Separate => {
                crate::media::is_media_path(file)
            }
        }
    }
}

/// One entry of a listed folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// File name.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// A folder (or a link to one).
    pub is_dir: bool,
}

/// A folder's entries, as the runtime read them for the picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The folder, absolute.
    pub dir: PathBuf,
    /// Its entries in any order, or why it could not be read.
    pub entries: std::result::Result<Vec<DirEntry>, String>,
    /// The entry to put the cursor on (the folder just left, going up).
    pub select: Option<PathBuf>,
}

/// The file picker popup: a folder's entries (folders first), marks that survive moving
/// between folders, and a path field for typing instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picker {
    /// What the picked paths are for.
    pub purpose: PickFor,
    /// The folder shown (none until its listing arrives).
    pub dir: Option<PathBuf>,
    /// Its folders, then the files [`PickFor::offers`], by name; no dot files.
    pub entries: Vec<DirEntry>,
    /// Entries left out (dot files, files not offered).
    pub hidden: usize,
    /// Cursor in [`Picker::entries`].
    pub cursor: usize,
    /// Marked paths, in any folder.
    pub marked: BTreeSet<PathBuf>,
    /// Typing into the path field.
    pub typing: bool,
    /// The typed path(s), `;` between several; relative ones are in the folder shown.
    pub input: TextInput,
    /// Why the last step was refused.
    pub error: Option<String>,
    /// Separation: the stems folder `:separate --out` gave.
    pub out: Option<PathBuf>,
}

impl Picker {
    /// A picker for `purpose`, waiting for its first listing.
    pub fn new(purpose: PickFor) -> Self {
        Self {
            purpose,
            dir: None,
            entries: Vec::new(),
            hidden: 0,
            cursor: 0,
            marked: BTreeSet::new(),
            typing: false,
            input: TextInput::default(),
            error: None,
            out: None,
        }
    }

    /// Show `listing`: its folders and offered files sorted, the cursor on the entry it
    /// selects. A folder that could not be read leaves the one shown and says why.
    pub fn show(&mut self, listing: Listing) {
        let entries = match listing.entries {
            Ok(e) => e,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        let total = entries.len();
        let mut shown: Vec<DirEntry> = entries
            .into_iter()
            .filter(|e| !e.name.starts_with('.') && (e.is_dir || self.purpose.offers(&e.path)))
            .collect();
        shown.sort_by(|a, b| {
            (!a.is_dir, a.name.to_lowercase(), &a.name).cmp(&(
                !b.is_dir,
                b.name.to_lowercase(),
                &b.name,
            ))
        });
        self.hidden = total - shown.len();
        self.cursor =
            listing.select.and_then(|sel| shown.iter().position(|e| e.path == sel)).unwrap_or(0);
        self.entries = shown;
        self.dir = Some(listing.dir);
        self.error = None;
    }

    /// The entry under the cursor.
    pub fn current(&self) -> Option<&DirEntry> {
        self.entries.get(self.cursor)
    }

    /// The typed paths, relative ones taken in the folder shown.
    pub fn typed_paths(&self) -> Vec<PathBuf> {
        self.input
            .text
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match &self.dir {
                Some(dir) => dir.join(s), // an absolute `s` replaces `dir`
                None => PathBuf::from(s),
            })
            .collect()
    }
}

/// What a text prompt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// Folder to export the dataset to.
    ExportDataset,
    /// Folder the stems of [`Prompt::paths`] go to.
    SeparateOut,
    /// Report output file.
    ReportPath,
    /// Report `since` date.
    ReportSince,
}

impl PromptKind {
    /// The question shown.
    pub fn question(self) -> &'static str {
        match self {
            PromptKind::ExportDataset => "Export kept pieces to folder",
            PromptKind::SeparateOut => "Write the voice and background stems to folder",
            PromptKind::ReportPath => "Report file",
            PromptKind::ReportSince => "Only matches since (YYYY-MM-DD, empty: any time)",
        }
    }
}

/// A one-line prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// What it is for.
    pub kind: PromptKind,
    /// The answer so far.
    pub input: TextInput,
    /// Why the last answer was refused.
    pub error: Option<String>,
    /// Paths chosen in an earlier step (the inputs whose stems [`PromptKind::SeparateOut`]
    /// places).
    pub paths: Vec<PathBuf>,
}

/// A review decision waiting for its reason code and note.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionForm {
    /// The status to set.
    pub to: MatchStatus,
    /// Dismissal: exclude the reference range too.
    pub exclude: bool,
    /// The matches it applies to.
    pub ids: Vec<String>,
    /// The reason codes offered.
    pub reasons: &'static [&'static str],
    /// The chosen reason.
    pub reason: usize,
    /// Free-text note (typing goes here; the arrows choose the reason).
    pub note: TextInput,
}

/// Adding or editing a rights record, validated on every keystroke.
#[derive(Debug, Clone, PartialEq)]
pub struct RightsForm {
    /// The id of the record being edited (none: a new record).
    pub editing: Option<String>,
    /// The match region a new record is attached to from the review screen (its scope is
    /// prefilled with the region's episode and reference range).
    pub for_match: Option<String>,
    /// One field per rights CSV column, in [`crate::rights::COLUMNS`] order.
    pub fields: Vec<(&'static str, TextInput)>,
    /// The field with the cursor.
    pub cursor: usize,
    /// Validation problems by column (inline).
    pub errors: BTreeMap<String, String>,
    /// Problems not tied to a column (share conflicts found on save).
    pub general: Vec<String>,
}

impl RightsForm {
    /// The record as text.
    pub fn raw(&self) -> RawRecord {
        let mut raw = RawRecord::default();
        for (col, input) in &self.fields {
            if !input.text.trim().is_empty() {
                raw.set(col, input.text.clone());
            }
        }
        raw
    }
}

/// A yes/no question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    /// Quit while jobs run: cancel them, wait for them, or go back.
    Quit,
    /// Delete a rights record.
    DeleteRights(String),
}

/// The catalog, as the screens show it.
#[derive(Debug, Clone, Default)]
pub struct Data {
    /// Series, by name.
    pub series: Vec<Series>,
    /// Episodes, by series then title.
    pub episodes: Vec<Episode>,
    /// Pieces by episode id, in time order.
    pub pieces: BTreeMap<String, Vec<Piece>>,
    /// Uploads, by id.
    pub uploads: Vec<Upload>,
    /// Every match, by upload then time.
    pub matches: Vec<MatchRegion>,
    /// Every ownership record, by id.
    pub rights: Vec<OwnershipRecord>,
    /// Catalog lookups for rights validation and joins.
    pub lookup: Lookup,
    /// Share conflicts among the stored records.
    pub conflicts: Vec<Conflict>,
}

impl Data {
    /// Read everything the screens need.
    pub fn load(catalog: &Catalog) -> Result<Self> {
        let mut pieces: BTreeMap<String, Vec<Piece>> = BTreeMap::new();
        for p in catalog.pieces()? {
            pieces.entry(p.episode.clone()).or_default().push(p);
        }
        let rights = catalog.rights()?;
        let lookup = Lookup::load(catalog)?;
        let conflicts = crate::rights::conflicts(&rights, &lookup, &BTreeSet::new());
        Ok(Self {
            series: catalog.series()?,
            episodes: catalog.episodes()?,
            pieces,
            uploads: catalog.uploads()?,
            matches: catalog.matches(&Default::default())?,
            rights,
            lookup,
            conflicts,
        })
    }

    /// Take in the records an edit stored, as a fresh [`Data::load`] would show them. A
    /// record this snapshot lacks (another process removed it meanwhile) is left to the next
    /// full load.
    pub fn apply(&mut self, changes: Changes) {
        // One pass over the matches, not one per change: a bulk decision on a large catalog.
        let mut by_id: HashMap<String, MatchRegion> =
            changes.matches.into_iter().map(|m| (m.id.clone(), m)).collect();
        for old in &mut self.matches {
            if by_id.is_empty() {
                break;
            }
            if let Some(m) = by_id.remove(&old.id) {
                *old = m;
            }
        }
        for p in changes.pieces {
            let list = self.pieces.get_mut(&p.episode);
            if let Some(old) = list.and_then(|l| l.iter_mut().find(|o| o.id == p.id)) {
                *old = p;
            }
        }
        let rights_changed = changes.rights_saved.is_some() || changes.rights_deleted.is_some();
        if let Some(id) = changes.rights_deleted {
            self.rights.retain(|r| r.rights_id != id);
        }
        if let Some(rec) = changes.rights_saved {
            // Stored by id, as the catalog lists them.
            match self.rights.binary_search_by(|r| r.rights_id.cmp(&rec.rights_id)) {
                Ok(i) => self.rights[i] = rec,
                Err(i) => self.rights.insert(i, rec),
            }
        }
        if rights_changed {
            self.conflicts = crate::rights::conflicts(&self.rights, &self.lookup, &BTreeSet::new());
        }
    }

    /// An episode by id.
    pub fn episode(&self, id: &str) -> Option<&Episode> {
        self.episodes.iter().find(|e| e.id == id)
    }

    /// An upload by id.
    pub fn upload(&self, id: &str) -> Option<&Upload> {
        self.uploads.iter().find(|u| u.id == id)
    }

    /// A match by id.
    pub fn match_(&self, id: &str) -> Option<&MatchRegion> {
        self.matches.iter().find(|m| m.id == id)
    }
}

/// What one edit on the UI thread stored: decisions and undos (their matches), piece
/// statuses, a rights record saved or deleted. Reading these back is a few records, where a
/// [`Data::load`] reads the whole catalog, which on a large one would stall every key press.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Matches as stored after the edit.
    pub matches: Vec<MatchRegion>,
    /// Pieces as stored after the edit.
    pub pieces: Vec<Piece>,
    /// A rights record as stored.
    pub rights_saved: Option<OwnershipRecord>,
    /// The id of a deleted rights record.
    pub rights_deleted: Option<String>,
}

/// A row of the library tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibRow {
    /// A series heading.
    Series(String),
    /// An episode (index into [`Data::episodes`]).
    Episode(usize),
}

/// Which library pane has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LibFocus {
    /// Series and episodes.
    #[default]
    Tree,
    /// Pieces of the selected episode.
    Pieces,
}

/// The library screen's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LibraryState {
    /// Cursor in the tree.
    pub tree_cursor: usize,
    /// Cursor in the pieces list.
    pub piece_cursor: usize,
    /// Focused pane.
    pub focus: LibFocus,
    /// Pieces marked for a bulk action.
    pub marked: BTreeSet<String>,
    /// Filter on series and episode titles.
    pub filter: TextInput,
}

/// A row of the review list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewRow {
    /// An upload (index into [`Data::uploads`]).
    Upload(usize),
    /// A match region (index into [`Data::matches`]).
    Match(usize),
}

/// The review screen's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReviewState {
    /// Cursor in the list.
    pub cursor: usize,
    /// Matches marked for a bulk decision.
    pub marked: BTreeSet<String>,
    /// Filter on upload path, episode title, status.
    pub filter: TextInput,
    /// The matches of each decision made here, newest last (what `u` undoes).
    pub undo: Vec<Vec<String>>,
    /// The spectrograms of the selected match, once computed.
    pub preview: Option<Preview>,
    /// The match a preview was last asked for.
    pub preview_for: Option<String>,
    /// A play position set by clicking the timeline: the match and the upload time inside
    /// its region where `p`/`P` start.
    pub seek: Option<(String, crate::units::Seconds)>,
}

impl ReviewState {
    /// The click-set play position, when it belongs to match `m` (upload seconds).
    pub fn seek_in(&self, m: &MatchRegion) -> Option<crate::units::Seconds> {
        self.seek.as_ref().filter(|(id, _)| *id == m.id).map(|(_, t)| *t)
    }
}

/// The rights screen's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RightsState {
    /// Cursor in the table.
    pub cursor: usize,
    /// Filter on id, holder, work, series.
    pub filter: TextInput,
}

/// The reports screen's rows.
pub const REPORT_ROWS: usize = 10;

/// The reports screen's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportsState {
    /// Cursor over the filter rows.
    pub cursor: usize,
    /// Statuses to include (none ticked: all).
    pub statuses: BTreeSet<MatchStatus>,
    /// Only this upload (index into [`Data::uploads`]).
    pub upload: Option<usize>,
    /// Only this series (index into [`Data::series`]).
    pub series: Option<usize>,
    /// Only matches since this date (text as typed).
    pub since: String,
    /// Output file.
    pub out: PathBuf,
    /// Also cut evidence clips ([`crate::report::evidence`]) beside the file.
    pub evidence: bool,
    /// The last export: file and summary.
    pub last: Option<(PathBuf, String)>,
}

/// One job as the jobs screen shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// Job id.
    pub id: JobId,
    /// What it does.
    pub spec: JobSpec,
    /// The current item.
    pub item: String,
    /// Items done and in all.
    pub items: (u64, u64),
    /// Current stage.
    pub stage: Option<Stage>,
    /// Units done and total in the stage.
    pub units: (u64, u64),
    /// Status line.
    pub message: String,
    /// Milliseconds since start.
    pub elapsed_ms: u64,
    /// Items that failed, with reasons.
    pub failures: Vec<(String, String)>,
    /// How it ended (none: running).
    pub result: Option<JobResult>,
    /// Cancel was asked for.
    pub cancelling: bool,
    /// Units done and ms when the training stage was first reported: a resumed run starts
    /// at its checkpoint's step, so its ETA counts only the steps taken since.
    pub training_from: Option<(u64, u64)>,
}

impl JobView {
    /// A job that just started.
    pub fn new(id: JobId, spec: JobSpec) -> Self {
        Self {
            id,
            spec,
            item: String::new(),
            items: (0, 0),
            stage: None,
            units: (0, 0),
            message: String::new(),
            elapsed_ms: 0,
            failures: Vec::new(),
            result: None,
            cancelling: false,
            training_from: None,
        }
    }

    /// Whether it is still running.
    pub fn running(&self) -> bool {
        self.result.is_none()
    }

    /// Overall fraction done, 0..=1.
    pub fn ratio(&self) -> f64 {
        if let Some(r) = &self.result {
            return if matches!(r, JobResult::Done { .. }) { 1.0 } else { 0.0 };
        }
        let stage = if self.units.1 > 0 {
            (self.units.0 as f64 / self.units.1 as f64).min(1.0)
        } else {
            0.0
        };
        if self.items.1 > 0 {
            ((self.items.0 as f64 + stage) / self.items.1 as f64).min(1.0)
        } else {
            stage
        }
    }

    /// Estimated milliseconds left, once enough is done to tell.
    pub fn eta_ms(&self) -> Option<u64> {
        if let (Some((u0, t0)), Some(Stage::Training)) = (self.training_from, self.stage) {
            let (done, ms) = (self.units.0.saturating_sub(u0), self.elapsed_ms.saturating_sub(t0));
            let left = self.units.1.saturating_sub(self.units.0);
            return (self.running() && done > 0 && ms > 500)
                .then(|| (ms as f64 * left as f64 / done as f64) as u64);
        }
        let r = self.ratio();
        (self.running() && r > 0.01 && self.elapsed_ms > 500)
            .then(|| (self.elapsed_ms as f64 * (1.0 - r) / r) as u64)
    }
}

/// The jobs screen's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobsState {
    /// Every job of this session, oldest first.
    pub list: Vec<JobView>,
    /// Cursor in the list.
    pub cursor: usize,
}

/// A toast and how many ticks it stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownToast {
    /// The message.
    pub toast: Toast,
    /// Ticks left.
    pub ttl: u16,
}

/// The whole TUI state.
#[derive(Debug, Clone)]
pub struct App {
    /// The screen shown.
    pub screen: Screen,
    /// What the keyboard talks to.
    pub mode: Mode,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// The catalog snapshot.
    pub data: Data,
    /// The catalog's directory (shown in the title bar).
    pub catalog_dir: PathBuf,
    /// The reviewer, as decisions record them (`$USER`).
    pub who: String,
    /// Library screen.
    pub library: LibraryState,
    /// Jobs screen.
    pub jobs: JobsState,
    /// Review screen.
    pub review: ReviewState,
    /// Rights screen.
    pub rights: RightsState,
    /// Reports screen.
    pub reports: ReportsState,
    /// The message at the bottom.
    pub toast: Option<ShownToast>,
    /// Ticks so far (throbber).
    pub ticks: u64,
    /// The folder the file picker opens in: the last one it showed (at first the current
    /// directory).
    pub browse_dir: PathBuf,
    /// Full catalog reads asked of the loader and not answered yet (the status bar says so).
    pub loading: u32,
    /// Edits patched in while a read was outstanding: that read may have started before them,
    /// so they are applied again on top of what it returns.
    pub unsettled: Vec<Changes>,
    /// Set when the app should exit.
    pub quit: bool,
    /// Quit as soon as no job runs.
    pub quit_when_done: bool,
    /// The running jobs were asked to stop so that the app can quit (it does once they have:
    /// a cancelled training run saves its checkpoint first); asking again quits at once.
    pub cancelling: bool,
    /// Styles.
    pub theme: Theme,
    /// The keymap in use (the compiled-in table with `[tui.keys]` applied).
    pub keymap: super::keymap::Keymap,
}

impl App {
    /// A fresh app over a catalog snapshot. `report_out` is the default report file.
    pub fn new(data: Data, catalog_dir: PathBuf, report_out: PathBuf, theme: Theme) -> Self {
        Self {
            screen: Screen::Library,
            mode: Mode::Normal,
            size: (100, 30),
            data,
            catalog_dir,
            who: String::new(),
            library: LibraryState::default(),
            jobs: JobsState::default(),
            review: ReviewState::default(),
            rights: RightsState::default(),
            reports: ReportsState { out: report_out, ..ReportsState::default() },
            toast: None,
            ticks: 0,
            browse_dir: PathBuf::from("."),
            loading: 0,
            unsettled: Vec::new(),
            quit: false,
            quit_when_done: false,
            cancelling: false,
            theme,
            keymap: super::keymap::Keymap::default(),
        }
    }

    /// The terminal area.
    pub fn area(&self) -> ratatui::layout::Rect {
        ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1)
    }

    /// Whether any job is running.
    pub fn jobs_running(&self) -> bool {
        self.jobs.list.iter().any(JobView::running)
    }

    /// The library tree rows, filtered.
    pub fn library_rows(&self) -> Vec<LibRow> {
        let f = self.library.filter.text.to_lowercase();
        let mut rows = Vec::new();
        let mut current: Option<&str> = None;
        for (i, e) in self.data.episodes.iter().enumerate() {
            let hit = f.is_empty()
                || e.title.to_lowercase().contains(&f)
                || e.series.to_lowercase().contains(&f)
                || e.id.starts_with(&f);
            if !hit {
                continue;
            }
            if current != Some(e.series.as_str()) {
                rows.push(LibRow::Series(e.series.clone()));
                current = Some(e.series.as_str());
            }
            rows.push(LibRow::Episode(i));
        }
        rows
    }

    /// The pieces shown for the tree row under the cursor (an episode's, or a series').
    pub fn library_pieces(&self) -> Vec<&Piece> {
        let rows = self.library_rows();
        let episodes: Vec<&Episode> = match rows.get(self.library.tree_cursor) {
            Some(LibRow::Episode(i)) => vec![&self.data.episodes[*i]],
            Some(LibRow::Series(s)) => {
                self.data.episodes.iter().filter(|e| &e.series == s).collect()
            }
            None => Vec::new(),
        };
        episodes
            .iter()
            .flat_map(|e| self.data.pieces.get(&e.id).map(|v| v.iter()).into_iter().flatten())
            .collect()
    }

    /// The review list rows, filtered: each upload followed by its matches.
    pub fn review_rows(&self) -> Vec<ReviewRow> {
        let f = self.review.filter.text.to_lowercase();
        // One pass over the matches, not one per upload: this runs on every key and frame.
        let mut by_upload: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, m) in self.data.matches.iter().enumerate() {
            by_upload.entry(m.upload.as_str()).or_default().push(i);
        }
        let mut rows = Vec::new();
        for (ui, u) in self.data.uploads.iter().enumerate() {
            let path_hit = !f.is_empty() && u.path.to_lowercase().contains(&f);
            let matches: Vec<usize> = by_upload
                .get(u.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .copied()
                .filter(|&i| {
                    let m = &self.data.matches[i];
                    f.is_empty()
                        || path_hit
                        || m.status.as_str().contains(&f)
                        || m.id.starts_with(&f)
                        || self
                            .data
                            .episode(&m.episode)
                            .is_some_and(|e| e.title.to_lowercase().contains(&f))
                })
                .collect();
            if matches.is_empty() && !f.is_empty() {
                continue;
            }
            rows.push(ReviewRow::Upload(ui));
            rows.extend(matches.into_iter().map(ReviewRow::Match));
        }
        rows
    }

    /// The match under the review cursor, if the cursor is on one.
    pub fn review_current(&self) -> Option<&MatchRegion> {
        match self.review_rows().get(self.review.cursor) {
            Some(ReviewRow::Match(i)) => self.data.matches.get(*i),
            _ => None,
        }
    }

    /// The rights records shown, filtered (indexes into [`Data::rights`]).
    pub fn rights_rows(&self) -> Vec<usize> {
        let f = self.rights.filter.text.to_lowercase();
        self.data
            .rights
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                f.is_empty()
                    || r.rights_id.to_lowercase().contains(&f)
                    || r.rights_holder.to_lowercase().contains(&f)
                    || r.work_title.to_lowercase().contains(&f)
                    || r.series.to_lowercase().contains(&f)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The match filter the reports screen describes (`since` already checked).
    pub fn report_filter(&self) -> std::result::Result<crate::catalog::MatchFilter, String> {
        let since = self.reports.since.trim();
        let since_ms = if since.is_empty() {
            None
        } else {
            Some(crate::catalog::date::parse_utc(since).map_err(|e| format!("since: {e}"))?)
        };
        Ok(crate::catalog::MatchFilter {
            statuses: self.reports.statuses.iter().copied().collect(),
            upload: self
                .reports
                .upload
                .and_then(|i| self.data.uploads.get(i))
                .map(|u| u.id.clone()),
            series: self
                .reports
                .series
                .and_then(|i| self.data.series.get(i))
                .map(|s| s.name.clone()),
            episode: None,
            since_ms,
        })
    }

    /// Matches the report filter selects, counted from the snapshot.
    pub fn report_preview(&self) -> Option<usize> {
        let f = self.report_filter().ok()?;
        let n = self
            .data
            .matches
            .iter()
            .filter(|m| f.statuses.is_empty() || f.statuses.contains(&m.status))
            .filter(|m| f.upload.as_ref().is_none_or(|u| *u == m.upload))
            .filter(|m| {
                f.series
                    .as_ref()
                    .is_none_or(|s| self.data.episode(&m.episode).is_some_and(|e| &e.series == s))
            })
            .filter(|m| f.since_ms.is_none_or(|s| m.updated_ms.max(m.created_ms) >= s))
            .count();
        Some(n)
    }
}
