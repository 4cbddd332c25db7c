//! The curator's workspace: a ratatui terminal UI over the catalog, built as The Elm
//! Architecture. [`app::App`] is the model, [`action::Action`] the messages,
//! [`update::update`] the only place state changes (it returns [`action::Effect`]s instead of
//! doing I/O), [`view`] draws `&App`, and [`keymap`] is the one table that dispatches keys,
//! draws the key bar and fills the help overlay and command palette ([`command`] adds the
//! palette's typed commands, such as `separate PATH... --out DIR`).
//!
//! [`Runtime`] carries effects out: quick catalog writes (review decisions, piece statuses,
//! rights records) on the UI thread in short transactions, whose stored records patch the
//! snapshot in place ([`app::Changes`]); long work (ingest, scan, separation, exports, rights
//! import, and the full catalog read after one) as [`jobs`] on worker threads that report
//! through a [`crate::progress::Progress`] over one channel, so the UI never blocks;
//! auditions play in a detached [`player`] process.
//! [`run`] owns the terminal: raw mode, alternate screen, mouse capture, and a panic hook that
//! restores the terminal first.
//!
//! ```no_run
//! use aniprint::catalog::Catalog;
//! use aniprint::tui::{self, jobs::NoServices};
//! # fn main() -> aniprint::Result<()> {
//! let catalog = Catalog::open("catalog")?;
//! tui::run(catalog, std::sync::Arc::new(NoServices), tui::Options::new("catalog"))?;
//! # Ok(()) }
//! ```

pub mod action;
pub mod app;
pub mod command;
pub mod jobs;
pub mod keymap;
pub mod player;
pub mod theme;
pub mod update;
pub mod view;
pub mod widgets;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use ratatui::crossterm::event::{self as ct, DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;

use crate::catalog::{Catalog, MatchStatus};
use crate::config::Config;
use crate::{Error, Result, review};

use self::action::{Action, Effect, JobEvent, Toast};
use self::app::{App, Changes, Data, DirEntry, Listing};
use self::jobs::{Event, Runner, Services, Settings};
use self::player::Player;
use self::theme::Theme;

/// How the TUI starts.
#[derive(Clone)]
pub struct Options {
    /// The catalog's directory (shown in the title bar).
    pub catalog_dir: PathBuf,
    /// Audit log name, settings and clock.
    pub settings: Settings,
    /// Where the report is written unless changed on the Reports screen.
    pub report_out: PathBuf,
    /// Styles.
    pub theme: Theme,
}

impl Options {
    /// Defaults: `$USER`, default settings, the system clock, `aniprint-report.csv` in the
    /// current folder, colours unless `NO_COLOR`.
    pub fn new(catalog_dir: impl Into<PathBuf>) -> Self {
        Self {
            catalog_dir: catalog_dir.into(),
            settings: Settings {
                who: review::default_who(),
                config: Config::default(),
                clock: Arc::new(crate::catalog::now_ms),
            },
            report_out: PathBuf::from("aniprint-report.csv"),
            theme: Theme::from_env(),
        }
    }
}

/// Carries out [`Effect`]s and answers with [`Action`]s.
pub struct Runtime {
    catalog: Arc<Catalog>,
    settings: Settings,
    runner: Runner,
    player: Player,
    tx: Sender<Event>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("catalog", &self.catalog).finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime over `catalog`; job events and previews go to `tx`.
    pub fn new(
        catalog: Arc<Catalog>,
        services: Arc<dyn Services>,
        settings: Settings,
        tx: Sender<Event>,
    ) -> Self {
        let runner = Runner::new(catalog.clone(), services, settings.clone(), tx.clone());
        let player = player_reporting_to(Player::default(), &tx);
        Self { catalog, settings, runner, player, tx }
    }

    /// Play auditions with `player` instead of `ffplay` from `PATH` (its failures are reported
    /// on the status line like the default player's).
    pub fn set_player(&mut self, player: Player) {
        self.player = player_reporting_to(player, &self.tx);
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Carry out one effect.
    pub fn apply(&mut self, effect: Effect) -> Vec<Action> {
        let who = self.settings.who.clone();
        let now = self.settings.now();
        match effect {
            Effect::Spawn(spec) => {
                let id = self.runner.spawn(spec.clone());
                vec![Action::Job(JobEvent::Started { id, spec })]
            }
            Effect::Cancel(id) => {
                self.runner.cancel(id);
                vec![]
            }
            Effect::CancelAll => {
                self.runner.cancel_all();
                vec![]
            }
            Effect::SetPieces { ids, status } => {
                let mut pieces = Vec::new();
                let t = match self.catalog.set_pieces_status_audited(&ids, status, &who, None, now)
                {
                    Ok(p) => {
                        pieces = p;
                        Toast::ok(format!(
                            "{} piece{} marked {}",
                            pieces.len(),
                            if pieces.len() == 1 { "" } else { "s" },
                            status.as_str()
                        ))
                    }
                    Err(e) => Toast::error(e.to_string()),
                };
                vec![Action::Toast(t), changed(Changes { pieces, ..Changes::default() })]
            }
            Effect::Review { ids, to, decision } => {
                let mut ok = Vec::new();
                let mut matches = Vec::new();
                let mut errors = Vec::new();
                for id in &ids {
                    match review::set_status(
                        &self.catalog,
                        &self.settings.config.review,
                        id,
                        to,
                        decision.clone(),
                        &who,
                        now,
                    ) {
                        Ok(m) => {
                            ok.push(id.clone());
                            matches.push(m);
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                let verb = match to {
                    MatchStatus::Pending => "reopened",
                    other => other.as_str(),
                };
                let t = match (ok.len(), errors.first()) {
                    (_, None) => Toast::ok(format!(
                        "{verb} {} match{}",
                        ok.len(),
                        if ok.len() == 1 { "" } else { "es" }
                    )),
                    (0, Some(e)) => Toast::error(e.clone()),
                    (n, Some(e)) => {
                        Toast::error(format!("{verb} {n}, {} refused: {e}", errors.len()))
                    }
                };
                vec![
                    Action::Decided(ok),
                    Action::Toast(t),
                    changed(Changes { matches, ..Changes::default() }),
                ]
            }
            Effect::Undo { ids } => {
                let mut done = 0;
                let mut matches = Vec::new();
                let mut errors = Vec::new();
                for id in &ids {
                    match review::undo(&self.catalog, id, &who, None, now) {
                        Ok(u) => {
                            done += 1;
                            tracing::info!("undid {} -> {}", id, u.region.status);
                            matches.push(u.region);
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                let t = match errors.first() {
                    None => Toast::ok(format!(
                        "undid {done} decision{}",
                        if done == 1 { "" } else { "s" }
                    )),
                    Some(e) => Toast::error(e.clone()),
                };
                vec![Action::Toast(t), changed(Changes { matches, ..Changes::default() })]
            }
            Effect::SaveRights(raw) => match crate::rights::add(&self.catalog, raw, &who, now) {
                Ok(rec) => {
                    let id = rec.rights_id.clone();
                    vec![
                        changed(Changes { rights_saved: Some(rec), ..Changes::default() }),
                        Action::RightsSaved(id),
                    ]
                }
                Err(Error::Rejected { problems, .. }) => vec![Action::RightsRejected(problems)],
                Err(e) => vec![Action::RightsRejected(vec![crate::rights::Problem {
                    row: None,
                    line: None,
                    column: None,
                    message: e.to_string(),
                }])],
            },
            Effect::DeleteRights(id) => match self.catalog.remove_rights(&id, &who, now) {
                Ok(r) => vec![
                    Action::Toast(Toast::ok(format!(
                        "deleted {id} ({} / {})",
                        r.rights_holder, r.work_title
                    ))),
                    changed(Changes { rights_deleted: Some(id), ..Changes::default() }),
                ],
                Err(e) => vec![Action::Toast(Toast::error(e.to_string()))],
            },
            Effect::Preview(req) => {
                self.runner.preview(req);
                vec![]
            }
            Effect::Play(req) => {
                let t = match self.player.play(&req) {
                    Ok(msg) => Toast::info(msg),
                    Err(e) => Toast::error(e),
                };
                vec![Action::Toast(t)]
            }
            Effect::ListDir { dir, select } => {
                vec![Action::Listed(Box::new(list_dir(&dir, select)))]
            }
            Effect::Reload if self.runner.reload() => vec![Action::Loading],
            Effect::Reload => vec![Action::Toast(Toast::error("the catalog loader is gone"))],
            Effect::Quit => {
                self.player.stop();
                vec![]
            }
        }
    }
}

fn changed(changes: Changes) -> Action {
    Action::Changed(Box::new(changes))
}

/// Read `dir` for the file picker (on the UI thread: one `read_dir`, no walking). A file
/// lists its folder with the cursor on it, so a typed file path shows where it is.
fn list_dir(dir: &std::path::Path, select: Option<PathBuf>) -> Listing {
    let read = || -> std::io::Result<Listing> {
        let mut dir = std::fs::canonicalize(dir)?;
        let mut select = select.clone();
        if !dir.is_dir()
            && let Some(parent) = dir.parent()
        {
            select = Some(dir.clone());
            dir = parent.to_path_buf();
        }
        let mut entries = Vec::new();
        // An entry that cannot be read is left out rather than hiding the whole folder.
        for e in std::fs::read_dir(&dir)?.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            entries.push(DirEntry { name, is_dir: path.is_dir(), path });
        }
        Ok(Listing { dir, entries: Ok(entries), select })
    };
    read().unwrap_or_else(|e| Listing {
        dir: dir.to_path_buf(),
        entries: Err(format!("{}: {e}", dir.display())),
        select: None,
    })
}

/// `player`, its failed ends sent to the UI thread as [`Event::Player`].
fn player_reporting_to(player: Player, tx: &Sender<Event>) -> Player {
    let tx = tx.clone();
    player.reporting(Arc::new(move |msg| {
        let _ = tx.send(Event::Player(msg));
    }))
}

/// Feed an action through `update`, carry out its effects, and feed their answers back until
/// nothing is left.
pub fn dispatch(app: &mut App, runtime: &mut Runtime, action: Action) {
    let mut queue = std::collections::VecDeque::from([action]);
    while let Some(a) = queue.pop_front() {
        for effect in update::update(app, a) {
            queue.extend(runtime.apply(effect));
        }
    }
}

/// Turn a channel event into an action.
pub fn event_action(ev: Event) -> Option<Action> {
    match ev {
        Event::Input(ct::Event::Key(k)) => Some(Action::Key(k)),
        Event::Input(ct::Event::Mouse(m)) => Some(Action::Mouse(m)),
        Event::Input(ct::Event::Resize(w, h)) => Some(Action::Resize(w, h)),
        Event::Input(_) => None,
        Event::Job(j) => Some(Action::Job(j)),
        Event::Preview(p) => Some(Action::Preview(p)),
        Event::Player(msg) => Some(Action::Toast(Toast::error(msg))),
        Event::Loaded(l) => Some(Action::Loaded(l)),
        Event::Tick => Some(Action::Tick),
    }
}

/// Build the app and runtime over an open catalog (what [`run`] does before it takes the
/// terminal; tests use it with a `TestBackend`).
pub fn start(
    catalog: Catalog,
    services: Arc<dyn Services>,
    opts: Options,
) -> Result<(App, Runtime, Receiver<Event>, Sender<Event>)> {
    let catalog = Arc::new(catalog);
    let (tx, rx) = crossbeam_channel::unbounded();
    let data = Data::load(&catalog)?;
    let runtime = Runtime::new(catalog, services, opts.settings.clone(), tx.clone());
    let mut app = App::new(data, opts.catalog_dir, opts.report_out, opts.theme);
    app.who = opts.settings.who.clone();
    app.keymap =
        keymap::Keymap::with_overrides(&opts.settings.config.tui.keys).map_err(Error::Invalid)?;
    Ok((app, runtime, rx, tx))
}

/// Run the TUI until the user quits. Logging must already go to a file (never the screen).
pub fn run(catalog: Catalog, services: Arc<dyn Services>, opts: Options) -> Result<()> {
    let (mut app, mut runtime, rx, tx) = start(catalog, services, opts)?;
    let io = |e: std::io::Error| Error::io("terminal", e);
    let mut terminal = ratatui::try_init().map_err(io)?;
    // ratatui's hook restores raw mode and the screen; ours also releases the mouse first. A
    // worker's panic is caught and becomes its job's failure, so it must leave the screen be
    // (the log has it); only the UI thread's own panic ends the app.
    let ui = std::thread::current().id();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != ui {
            tracing::error!("{info}");
            return;
        }
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        hook(info);
    }));
    if let Err(e) = execute!(std::io::stdout(), EnableMouseCapture) {
        ratatui::restore();
        return Err(io(e));
    }
    let result = event_loop(&mut terminal, &mut app, &mut runtime, &rx, &tx);
    let _ = execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    runtime: &mut Runtime,
    rx: &Receiver<Event>,
    tx: &Sender<Event>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("terminal", e);
    {
        let input_tx = tx.clone();
        std::thread::Builder::new()
            .name("aniprint-input".into())
            .spawn(move || {
                while let Ok(ev) = ct::read() {
                    if input_tx.send(Event::Input(ev)).is_err() {
                        break;
                    }
                }
            })
            .map_err(io)?;
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("aniprint-tick".into())
            .spawn(move || {
                while tx.send(Event::Tick).is_ok() {
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
            .map_err(io)?;
    }
    let size = terminal.size().map_err(io)?;
    app.size = (size.width, size.height);
    loop {
        terminal.draw(|f| f.render_widget(&*app, f.area())).map_err(io)?;
        let Ok(first) = rx.recv() else { return Ok(()) };
        // Take whatever else is queued, so a burst of job events costs one frame.
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        for ev in batch {
            if let Some(a) = event_action(ev) {
                dispatch(app, runtime, a);
            }
        }
        if app.quit {
            return Ok(());
        }
    }
}
