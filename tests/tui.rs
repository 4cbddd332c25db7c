//! The TUI without a terminal: `update()` fed actions (state and effects checked), and
//! whole-app snapshots on ratatui's `TestBackend` for every screen, over a fixture catalog
//! built through the catalog API with fixed timestamps; job events are injected synchronously.

#![allow(clippy::unwrap_used)]

#[path = "support/rights_fixture.rs"]
mod fixture;

use std::path::PathBuf;
use std::sync::Arc;

use aniprint::catalog::date::Date;
use aniprint::catalog::{Band, Catalog, MatchFilter, MatchStatus, PieceStatus, Stem};
use aniprint::config::Config;
use aniprint::progress::Stage;
use aniprint::review::{self, Decision, ReviewConfig};
use aniprint::tui::action::{
    Action, Cmd, Effect, JobEvent, JobResult, JobSpec, Level, PlayRequest, Preview, Side,
    TrainModel, TrainSpec, Worker,
};
use aniprint::tui::app::{App, Confirm, LibFocus, Mode, ReviewRow, Screen};
use aniprint::tui::jobs::{Event, JobReporter, Models, NoServices, Services, Settings, run_job};
use aniprint::tui::player::Player;
use aniprint::tui::theme::Theme;
use aniprint::tui::update::{key, typed, update};
use aniprint::tui::view::buffer_text;
use aniprint::tui::widgets::spectrogram::SpecImage;
use aniprint::tui::{self, Options, Runtime, dispatch};
use aniprint::units::Seconds;
use fixture::{EP01, EP02, EP03, MIN, NOW};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

/// Three episodes, the example rights file, two scanned uploads with four matches: one
/// confirmed, one dismissed, two pending.
fn fixture_catalog() -> (tempfile::TempDir, Catalog) {
    let (dir, cat) = fixture::catalog();
    aniprint::rights::import(
        &cat,
        fixture::example_csv().as_bytes(),
        "rights.example.csv",
        "rights-team",
        NOW - 60 * MIN,
    )
    .unwrap();
    let a = fixture::upload('a', 47.0, NOW - 30 * MIN);
    let regions = [
        fixture::region(&a, Stem::Mix, EP01, 0.0, (30.0, 50.0), 0.97, Band::High),
        fixture::region(&a, Stem::Voice, EP02, 22.0, (100.0, 110.0), 0.72, Band::Medium),
        fixture::region(&a, Stem::Background, EP01, 34.0, (190.0, 203.0), 0.58, Band::Low),
    ];
    cat.put_scan(&a, &regions, &ReviewConfig::none(), NOW - 30 * MIN).unwrap();
    let b = fixture::upload('b', 36.0, NOW - 25 * MIN);
    let regions = [fixture::region(&b, Stem::Mix, EP03, 5.0, (60.0, 80.0), 0.91, Band::High)];
    cat.put_scan(&b, &regions, &ReviewConfig::none(), NOW - 25 * MIN).unwrap();
    let ms = cat.matches(&MatchFilter::default()).unwrap();
    let cfg = ReviewConfig::default();
    let by_ep = |ep: &str| ms.iter().find(|m| m.episode == ep).unwrap().id.clone();
    review::set_status(
        &cat,
        &cfg,
        &by_ep(EP03),
        MatchStatus::Confirmed,
        Decision::default(),
        "ana",
        NOW - 20 * MIN,
    )
    .unwrap();
    let dismiss = Decision { reason: Some("licensed".into()), ..Decision::default() };
    review::set_status(
        &cat,
        &cfg,
        &by_ep(EP02),
        MatchStatus::Dismissed,
        dismiss,
        "ana",
        NOW - 15 * MIN,
    )
    .unwrap();
    let ep01 = cat.pieces_of(EP01).unwrap();
    cat.set_pieces_status_audited(
        &[ep01[0].id.clone()],
        PieceStatus::Keep,
        "ana",
        None,
        NOW - 10 * MIN,
    )
    .unwrap();
    (dir, cat)
}

struct Harness {
    _dir: tempfile::TempDir,
    app: App,
    rt: Runtime,
    rx: crossbeam_channel::Receiver<Event>,
}

/// The committed separator and nothing else (what separate jobs need).
struct SeparatorOnly;

impl Services for SeparatorOnly {
    fn load_separator(&self) -> aniprint::Result<aniprint::separate::Separator> {
        aniprint::separate::Separator::load_default(&candle_core::Device::Cpu)
    }
}

impl Harness {
    fn new() -> Self {
        Self::with_services(Arc::new(NoServices))
    }

    fn with_services(services: Arc<dyn Services>) -> Self {
        Self::with(services, Config::default())
    }

    /// With settings parsed from `aniprint.toml` text.
    fn with_config(toml: &str) -> Self {
        Self::with(Arc::new(NoServices), toml::from_str(toml).unwrap())
    }

    fn with(services: Arc<dyn Services>, config: Config) -> Self {
        let (dir, cat) = fixture_catalog();
        let mut opts = Options::new("catalog");
        opts.settings = Settings { who: "tester".into(), config, clock: Arc::new(|| NOW) };
        opts.report_out = PathBuf::from("report.csv");
        opts.theme = Theme::mono();
        let (app, rt, rx, _tx) = tui::start(cat, services, opts).unwrap();
        Self { _dir: dir, app, rt, rx }
    }

    /// Feed what the workers send back through `update` until `done` says so and the
    /// catalog reads asked for have come back (or a minute passes: then panic).
    fn pump_until(&mut self, done: impl Fn(&App) -> bool) {
        let t0 = std::time::Instant::now();
        while !done(&self.app) || self.app.loading > 0 {
            assert!(
                t0.elapsed().as_secs() < 60,
                "timed out ({} catalog reads outstanding); jobs: {:#?}",
                self.app.loading,
                self.app.jobs.list
            );
            if let Ok(ev) = self.rx.recv_timeout(std::time::Duration::from_millis(50))
                && let Some(a) = tui::event_action(ev)
            {
                dispatch(&mut self.app, &mut self.rt, a);
            }
        }
    }

    /// Dispatch through update and the runtime (effects carried out), and wait for a catalog
    /// read it asked for.
    fn run(&mut self, a: Action) {
        dispatch(&mut self.app, &mut self.rt, a);
        self.pump_until(|_| true);
    }

    fn keys(&mut self, codes: &[KeyCode]) {
        for c in codes {
            self.run(key(*c));
        }
    }

    fn chars(&mut self, s: &str) {
        for a in typed(s) {
            self.run(a);
        }
    }

    /// Put the review cursor on match `id`.
    fn cursor_on_match(&mut self, id: &str) {
        let rows = self.app.review_rows();
        let data = &self.app.data;
        let pos =
            rows.iter().position(|r| matches!(r, ReviewRow::Match(i) if data.matches[*i].id == id));
        self.app.review.cursor = pos.unwrap_or_else(|| panic!("match {id} is not in the list"));
    }

    /// The snapshot an edit patched is what a full read of the catalog gives.
    fn assert_data_is_the_catalogs(&self) {
        let fresh = aniprint::tui::app::Data::load(self.rt.catalog()).unwrap();
        let d = &self.app.data;
        assert_eq!(d.matches, fresh.matches);
        assert_eq!(d.pieces, fresh.pieces);
        assert_eq!(d.rights, fresh.rights);
        assert_eq!(d.conflicts, fresh.conflicts);
    }

    fn screen(&self) -> String {
        let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
        term.draw(|f| f.render_widget(&self.app, f.area())).unwrap();
        buffer_text(term.backend().buffer())
    }

    fn status_of(&self, id: &str) -> MatchStatus {
        self.rt.catalog().match_(id).unwrap().status
    }
}

fn ch(c: char) -> KeyCode {
    KeyCode::Char(c)
}

fn ctrl(c: char) -> Action {
    Action::Key(KeyEvent::new(ch(c), KeyModifiers::CONTROL))
}

/// Move the rights form's cursor to `col` and replace its text with `text`.
fn fill(h: &mut Harness, col: &str, text: &str) {
    let Mode::RightsForm(form) = &h.app.mode else { panic!("no form: {:?}", h.app.mode) };
    let target = form.fields.iter().position(|(c, _)| *c == col).unwrap();
    let cur = form.cursor;
    let n = form.fields.len();
    for _ in 0..(target + n - cur) % n {
        h.keys(&[KeyCode::Tab]);
    }
    h.run(ctrl('u'));
    h.chars(text);
}

/// The form's text in column `col`.
fn field<'a>(app: &'a App, col: &str) -> &'a str {
    let Mode::RightsForm(form) = &app.mode else { panic!("no form: {:?}", app.mode) };
    form.fields.iter().find(|(c, _)| *c == col).map(|(_, i)| i.text.as_str()).unwrap()
}

// ---------------------------------------------------------------- update() without a terminal

#[test]
fn tab_digits_and_shift_tab_switch_screens() {
    let mut h = Harness::new();
    assert_eq!(h.app.screen, Screen::Library);
    h.keys(&[KeyCode::Tab]);
    assert_eq!(h.app.screen, Screen::Jobs);
    h.keys(&[ch('4')]);
    assert_eq!(h.app.screen, Screen::Rights);
    h.keys(&[KeyCode::BackTab, KeyCode::BackTab, KeyCode::BackTab, KeyCode::BackTab]);
    assert_eq!(h.app.screen, Screen::Reports);
}

#[test]
fn vim_keys_and_arrows_move_the_same_cursor() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('j'), KeyCode::Down]);
    assert_eq!(h.app.review.cursor, 2);
    h.keys(&[ch('k')]);
    assert_eq!(h.app.review.cursor, 1);
    h.keys(&[ch('G')]);
    assert_eq!(h.app.review.cursor, h.app.review_rows().len() - 1);
    h.keys(&[ch('g')]);
    assert_eq!(h.app.review.cursor, 0);
}

#[test]
fn confirm_writes_the_catalog_and_undo_reverts_it() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('n')]);
    let id = h.app.review_current().unwrap().id.clone();
    assert_eq!(h.app.review_current().unwrap().status, MatchStatus::Pending);
    // update alone returns the effect...
    let mut app = h.app.clone();
    let effects = update(&mut app, key(ch('c')));
    assert_eq!(
        effects,
        vec![Effect::Review {
            ids: vec![id.clone()],
            to: MatchStatus::Confirmed,
            decision: Decision::default()
        }]
    );
    // ...and the runtime carries it out, answering with the stored match instead of asking
    // for a full read of the catalog (which would stall a key press on a large one).
    let actions = h.rt.apply(effects[0].clone());
    assert!(actions.iter().any(|a| matches!(a, Action::Changed(c) if c.matches.len() == 1)));
    assert!(!actions.iter().any(|a| matches!(a, Action::Loading)), "{actions:?}");
    for a in actions {
        h.run(a);
    }
    assert_eq!(h.status_of(&id), MatchStatus::Confirmed);
    assert_eq!(h.app.data.match_(&id).unwrap().status, MatchStatus::Confirmed);
    assert_eq!(h.app.toast.as_ref().unwrap().toast.text, "confirmed 1 match");
    h.assert_data_is_the_catalogs();
    h.keys(&[ch('u')]);
    assert_eq!(h.status_of(&id), MatchStatus::Pending);
    h.assert_data_is_the_catalogs();
    let log = h.rt.catalog().audit_of(aniprint::catalog::TargetKind::Match, &id).unwrap();
    assert_eq!(log.iter().map(|r| r.who.as_str()).collect::<Vec<_>>(), ["tester", "tester"]);
}

#[test]
fn undo_with_nothing_decided_here_takes_back_only_the_reviewers_own_decision() {
    let mut h = Harness::new();
    let cat = h.rt.catalog();
    let pending = cat.matches(&MatchFilter::default()).unwrap().into_iter();
    let ids: Vec<String> =
        pending.filter(|m| m.status == MatchStatus::Pending).map(|m| m.id).take(2).collect();
    let cfg = ReviewConfig::default();
    let set = |id: &str, who: &str| {
        review::set_status(cat, &cfg, id, MatchStatus::Confirmed, Decision::default(), who, NOW)
            .unwrap();
    };
    // Decided before this session: one by another reviewer, one by this one.
    set(&ids[0], "ana");
    set(&ids[1], "tester");
    h.run(Action::Cmd(Cmd::Refresh));
    h.keys(&[ch('3')]);
    h.cursor_on_match(&ids[0]);
    h.keys(&[ch('u')]);
    assert_eq!(h.status_of(&ids[0]), MatchStatus::Confirmed);
    let text = &h.app.toast.as_ref().unwrap().toast.text;
    assert!(text.starts_with("nothing of yours to undo") && text.contains("ana's"), "{text}");
    h.cursor_on_match(&ids[1]);
    h.keys(&[ch('u')]);
    assert_eq!(h.status_of(&ids[1]), MatchStatus::Pending);
}

#[test]
fn dismiss_asks_for_a_reason_and_a_note() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('n'), ch('d')]);
    let Mode::Decision(form) = &h.app.mode else { panic!("no form: {:?}", h.app.mode) };
    assert_eq!((form.to, form.exclude, form.reason), (MatchStatus::Dismissed, false, 0));
    // Letters go into the note, arrows choose the reason.
    let mut app = h.app.clone();
    update(&mut app, key(KeyCode::Down));
    for a in typed("cleared with label") {
        update(&mut app, a);
    }
    let effects = update(&mut app, key(KeyCode::Enter));
    let [Effect::Review { to, decision, .. }] = effects.as_slice() else { panic!("{effects:?}") };
    assert_eq!(*to, MatchStatus::Dismissed);
    assert_eq!(decision.reason.as_deref(), Some("licensed"));
    assert_eq!(decision.note.as_deref(), Some("cleared with label"));
    assert_eq!(app.mode, Mode::Normal);
    // Esc leaves without deciding.
    h.keys(&[KeyCode::Esc]);
    assert_eq!(h.app.mode, Mode::Normal);
}

#[test]
fn dispute_and_bulk_selection() {
    let mut h = Harness::new();
    h.keys(&[ch('3')]);
    // Space on the first upload selects all its matches.
    h.keys(&[ch(' ')]);
    assert_eq!(h.app.review.marked.len(), 3);
    h.keys(&[KeyCode::Esc]);
    assert!(h.app.review.marked.is_empty());
    // Mark the two pending matches, then dismiss+exclude both at once.
    h.keys(&[ch('n'), ch(' ')]);
    h.keys(&[ch('n'), ch(' ')]);
    assert_eq!(h.app.review.marked.len(), 2);
    let ids: Vec<String> = h.app.review.marked.iter().cloned().collect();
    h.keys(&[ch('x'), KeyCode::Enter]);
    for id in &ids {
        assert_eq!(h.status_of(id), MatchStatus::Dismissed);
    }
    assert_eq!(h.rt.catalog().exclusions().unwrap().len(), 2);
    // One undo reverts the whole bulk decision.
    h.keys(&[ch('u')]);
    for id in &ids {
        assert_eq!(h.status_of(id), MatchStatus::Pending);
    }
    // A refused transition is reported, not applied: pending cannot be disputed.
    h.keys(&[ch('g'), ch('n'), ch('D'), KeyCode::Enter]);
    let t = h.app.toast.as_ref().unwrap();
    assert!(t.toast.text.contains("cannot go from pending to disputed"), "{}", t.toast.text);
}

#[test]
fn escalating_asks_first_and_takes_a_note_for_legal() {
    let mut h = Harness::new();
    let cat = h.rt.catalog();
    let id = cat.matches(&MatchFilter::default()).unwrap().into_iter().find(|m| m.episode == EP03);
    let id = id.unwrap().id;
    let why = Decision { reason: Some("fair_use".into()), ..Decision::default() };
    review::set_status(cat, &ReviewConfig::default(), &id, MatchStatus::Disputed, why, "ana", NOW)
        .unwrap();
    h.run(Action::Cmd(Cmd::Refresh));
    h.keys(&[ch('3')]);
    h.cursor_on_match(&id);
    // e asks; Esc leaves the match as it was.
    h.keys(&[ch('e')]);
    assert!(matches!(&h.app.mode, Mode::Decision(d) if d.to == MatchStatus::Escalated));
    assert!(h.screen().contains("Escalate 1 match"), "{}", h.screen());
    h.keys(&[KeyCode::Esc]);
    assert_eq!(h.status_of(&id), MatchStatus::Disputed);
    h.keys(&[ch('e')]);
    h.chars("counter-notice rejected");
    h.keys(&[KeyCode::Enter]);
    assert_eq!(h.status_of(&id), MatchStatus::Escalated);
    let m = h.rt.catalog().match_(&id).unwrap();
    assert_eq!(m.review.unwrap().note.as_deref(), Some("counter-notice rejected"));
}

#[test]
fn marking_an_upload_marks_only_the_matches_the_filter_shows() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('/')]);
    h.chars("pending");
    h.keys(&[KeyCode::Enter]);
    // Upload a has three matches, one of them dismissed (hidden by the filter).
    h.keys(&[ch(' ')]);
    let marked: Vec<MatchStatus> = h.app.review.marked.iter().map(|id| h.status_of(id)).collect();
    assert_eq!(marked, vec![MatchStatus::Pending; 2]);
}

#[test]
fn a_reload_keeps_the_cursor_and_report_filters_on_what_they_pointed_at() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('G')]);
    let before = h.app.review_current().unwrap().id.clone();
    let b = |id: &str| id.starts_with('b');
    h.app.reports.upload = h.app.data.uploads.iter().position(|u| b(&u.id));
    // A scan stores an upload whose row sorts before every other.
    let cat = h.rt.catalog();
    let up = fixture::upload('0', 30.0, NOW);
    let r = fixture::region(&up, Stem::Mix, EP01, 0.0, (60.0, 70.0), 0.9, Band::High);
    cat.put_scan(&up, &[r], &ReviewConfig::none(), NOW).unwrap();
    h.run(Action::Cmd(Cmd::Refresh));
    assert_eq!(h.app.review_current().unwrap().id, before);
    let upload = h.app.reports.upload.map(|i| h.app.data.uploads[i].id.clone());
    assert!(upload.as_deref().is_some_and(b), "{upload:?}");
}

#[test]
fn library_marks_pieces_in_bulk() {
    let mut h = Harness::new();
    // Cursor on the series row: `a` keeps every piece of the series.
    let effects = update(&mut h.app.clone(), key(ch('a')));
    let [Effect::SetPieces { ids, status }] = effects.as_slice() else { panic!("{effects:?}") };
    assert_eq!((ids.len(), *status), (6, PieceStatus::Keep));
    // One piece: focus the pieces pane, drop it.
    h.keys(&[ch('j'), ch('l'), ch('j'), ch('d')]);
    assert_eq!(h.app.library.focus, LibFocus::Pieces);
    let pieces = h.rt.catalog().pieces_of(EP01).unwrap();
    assert_eq!(pieces[1].status, PieceStatus::Drop);
    // Space selects, then one key marks the selection.
    h.keys(&[ch('h'), ch('j'), ch(' ')]);
    assert_eq!(h.app.library.marked.len(), 2);
    h.keys(&[ch('a')]);
    assert!(h.rt.catalog().pieces_of(EP02).unwrap().iter().all(|p| p.status == PieceStatus::Keep));
    assert!(h.app.library.marked.is_empty());
    h.assert_data_is_the_catalogs();
}

#[test]
fn filters_narrow_the_lists() {
    let mut h = Harness::new();
    h.keys(&[ch('/')]);
    assert_eq!(h.app.mode, Mode::Filter);
    h.chars("ep03");
    h.keys(&[KeyCode::Enter]);
    assert_eq!(h.app.library_rows().len(), 2); // the series and ep03
    h.keys(&[KeyCode::Esc]);
    assert_eq!(h.app.library_rows().len(), 4);
    h.keys(&[ch('4'), ch('/')]);
    h.chars("sora");
    assert_eq!(h.app.rights_rows().len(), 1);
}

#[test]
fn quitting_with_a_running_job_asks() {
    let mut h = Harness::new();
    let spec = JobSpec::Ingest { paths: vec!["episodes".into()] };
    h.run(Action::Job(JobEvent::Started { id: 7, spec }));
    h.keys(&[ch('q')]);
    assert_eq!(h.app.mode, Mode::Confirm(Confirm::Quit));
    assert!(!h.app.quit);
    h.keys(&[KeyCode::Esc]);
    assert_eq!(h.app.mode, Mode::Normal);
    let effects = update(&mut h.app, key(ch('q')));
    assert!(effects.is_empty());
    // c cancels the jobs and quits once they have stopped (a training run's last
    // checkpoint is written on cancel).
    let effects = update(&mut h.app, key(ch('c')));
    assert_eq!(effects, vec![Effect::CancelAll]);
    h.run(Action::Tick);
    assert!(!h.app.quit);
    let cancelled = JobResult::Cancelled;
    h.run(Action::Job(JobEvent::Finished { id: 7, result: cancelled, elapsed_ms: 900 }));
    h.run(Action::Tick);
    assert!(h.app.quit);
    // Asked again while they stop, it quits at once.
    let mut h = Harness::new();
    let spec = JobSpec::Ingest { paths: vec!["episodes".into()] };
    h.run(Action::Job(JobEvent::Started { id: 7, spec }));
    assert_eq!(update(&mut h.app, key(ch('q'))), vec![]);
    assert_eq!(update(&mut h.app, key(ch('c'))), vec![Effect::CancelAll]);
    assert_eq!(update(&mut h.app, key(ch('q'))), vec![]);
    assert!(h.screen().contains("quit now, without waiting"), "{}", h.screen());
    assert_eq!(update(&mut h.app, key(ch('c'))), vec![Effect::Quit]);
    assert!(h.app.quit);
    // Without jobs, q quits at once.
    let mut h = Harness::new();
    assert_eq!(update(&mut h.app, key(ch('q'))), vec![Effect::Quit]);
}

#[test]
fn quit_when_done_waits_for_the_jobs() {
    let mut h = Harness::new();
    let spec = JobSpec::Scan { paths: vec!["uploads".into()] };
    h.run(Action::Job(JobEvent::Started { id: 1, spec }));
    h.keys(&[ch('q'), ch('w')]);
    h.run(Action::Tick);
    assert!(!h.app.quit);
    let done = JobResult::Done { summary: "1 uploads scanned".into(), output: None };
    h.run(Action::Job(JobEvent::Finished { id: 1, result: done, elapsed_ms: 900 }));
    h.run(Action::Tick);
    assert!(h.app.quit);
}

#[test]
fn job_events_update_the_jobs_screen() {
    let mut h = Harness::new();
    let out = PathBuf::from("out/report.csv");
    let spec =
        JobSpec::ExportReport { filter: MatchFilter::default(), out: out.clone(), evidence: false };
    h.run(Action::Job(JobEvent::Started { id: 3, spec }));
    h.run(Action::Job(JobEvent::Progress {
        id: 3,
        item: String::new(),
        items: (0, 0),
        stage: Some(Stage::Exporting),
        units: (1, 4),
        message: String::new(),
        elapsed_ms: 1000,
    }));
    let j = &h.app.jobs.list[0];
    assert!(j.running());
    assert_eq!(j.ratio(), 0.25);
    assert_eq!(j.eta_ms(), Some(3000));
    let done = JobResult::Done { summary: "report abc: 5 rows".into(), output: Some(out.clone()) };
    h.run(Action::Job(JobEvent::Finished { id: 3, result: done, elapsed_ms: 1200 }));
    assert_eq!(h.app.reports.last, Some((out, "report abc: 5 rows".into())));
    assert!(!h.app.jobs_running());
}

#[test]
fn cancel_marks_the_job_and_asks_the_runner() {
    let mut h = Harness::new();
    let spec = JobSpec::ImportRights { path: "rights.csv".into() };
    h.run(Action::Job(JobEvent::Started { id: 2, spec }));
    h.keys(&[ch('2')]);
    let effects = update(&mut h.app, key(ch('x')));
    assert_eq!(effects, vec![Effect::Cancel(2)]);
    assert!(h.app.jobs.list[0].cancelling);
}

/// A folder to browse: `a/` (holding `x.mkv`), `b.mp4`, `rights.csv`, `notes.txt`, `.cache/`.
fn browse_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::create_dir_all(root.join(".cache")).unwrap();
    for f in ["a/x.mkv", "b.mp4", "rights.csv", "notes.txt"] {
        std::fs::write(root.join(f), "").unwrap();
    }
    (tmp, root)
}

fn picker(app: &App) -> &aniprint::tui::app::Picker {
    let Mode::Picker(pk) = &app.mode else { panic!("no picker: {:?}", app.mode) };
    pk
}

fn names(app: &App) -> Vec<&str> {
    picker(app).entries.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn the_picker_browses_marks_across_folders_and_starts_the_job() {
    let mut h = Harness::new();
    let (_tmp, root) = browse_dir();
    h.app.browse_dir = root.clone();
    h.keys(&[ch('i')]);
    let pk = picker(&h.app);
    assert_eq!(pk.dir.as_deref(), Some(root.as_path()));
    // Folders first, then the media files; dot files and other files are counted, not shown.
    assert_eq!((names(&h.app), pk.hidden), (vec!["a", "b.mp4"], 3));
    // l descends, Space marks, h goes back up with the cursor on the folder left.
    h.keys(&[ch('l')]);
    assert_eq!(picker(&h.app).dir.as_deref(), Some(root.join("a").as_path()));
    h.keys(&[ch(' '), ch('h')]);
    assert_eq!((names(&h.app), picker(&h.app).cursor), (vec!["a", "b.mp4"], 0));
    h.keys(&[ch('j'), ch(' ')]);
    let marked: Vec<PathBuf> = picker(&h.app).marked.iter().cloned().collect();
    assert_eq!(marked, [root.join("a/x.mkv"), root.join("b.mp4")]);
    // Enter with marks uses them, wherever the cursor is.
    let mut app = h.app.clone();
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(effects, vec![Effect::Spawn(JobSpec::Ingest { paths: marked })]);
    assert_eq!(app.mode, Mode::Normal);
    // Without marks (a new picker has none), i starts a typed path like any letter the list
    // does not use (`incoming/`), rather than starting a job on the entry under the cursor; a
    // folder is picked by marking it.
    h.keys(&[KeyCode::Esc, ch('i')]);
    assert!(picker(&h.app).marked.is_empty());
    let mut app = h.app.clone();
    assert!(update(&mut app, key(ch('i'))).is_empty());
    let pk = picker(&app);
    assert!(pk.typing && pk.input.text == "i", "{pk:?}");
    let mut app = h.app.clone();
    update(&mut app, key(ch(' ')));
    let effects = update(&mut app, key(ch('i')));
    assert_eq!(effects, vec![Effect::Spawn(JobSpec::Ingest { paths: vec![root.join("a")] })]);
    // Esc cancels; the next picker opens where this one was.
    h.keys(&[ch('l'), KeyCode::Esc]);
    assert_eq!((h.app.mode.clone(), h.app.browse_dir.clone()), (Mode::Normal, root.join("a")));
}

#[test]
fn the_picker_takes_typed_paths_too() {
    let mut h = Harness::new();
    let (_tmp, root) = browse_dir();
    h.app.browse_dir = root.clone();
    // Scan from the review screen: any key the list does not use starts the path field.
    h.keys(&[ch('3'), ch('s')]);
    h.chars("b.mp4; /elsewhere/up.mkv");
    let pk = picker(&h.app);
    assert!(pk.typing);
    // Relative paths are in the folder shown.
    let mut app = h.app.clone();
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        vec![Effect::Spawn(JobSpec::Scan {
            paths: vec![root.join("b.mp4"), "/elsewhere/up.mkv".into()]
        })]
    );
    // Tab goes to the typed folder; a folder that is not there is refused in place.
    h.run(ctrl('u'));
    h.chars("a");
    h.keys(&[KeyCode::Tab]);
    assert_eq!((picker(&h.app).typing, names(&h.app)), (false, vec!["x.mkv"]));
    h.keys(&[KeyCode::Tab]);
    h.chars("../nope");
    h.keys(&[KeyCode::Tab]);
    let pk = picker(&h.app);
    assert!(pk.error.as_deref().unwrap().contains("nope: No such file"), "{:?}", pk.error);
    assert_eq!(pk.dir.as_deref(), Some(root.join("a").as_path()));
    // An empty answer is refused; Esc leaves the field, then the picker.
    h.keys(&[KeyCode::Tab, KeyCode::Enter]);
    assert_eq!(picker(&h.app).error.as_deref(), Some("type a path (several separated by ';')"));
    h.keys(&[KeyCode::Esc]);
    assert!(!picker(&h.app).typing);
    h.keys(&[KeyCode::Esc]);
    assert_eq!(h.app.mode, Mode::Normal);
}

#[test]
fn the_picker_asks_where_stems_go_and_wants_one_rights_csv() {
    let mut h = Harness::new();
    let (_tmp, root) = browse_dir();
    h.app.browse_dir = root.clone();
    // Separate: the picked file, then the stems folder (beside it by default).
    h.keys(&[ch('S'), ch('j'), KeyCode::Enter]);
    let Mode::Prompt(p) = &h.app.mode else { panic!("{:?}", h.app.mode) };
    assert_eq!(p.input.text, root.join("stems").display().to_string());
    let mut app = h.app.clone();
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        vec![Effect::Spawn(JobSpec::Separate {
            paths: vec![root.join("b.mp4")],
            out: root.join("stems")
        })]
    );
    // `:separate --out DIR` without paths picks them, and keeps DIR.
    h.keys(&[KeyCode::Esc, ch(':')]);
    h.chars("separate --out /tmp/st");
    h.keys(&[KeyCode::Enter, ch('j'), KeyCode::Enter]);
    let Mode::Prompt(p) = &h.app.mode else { panic!("{:?}", h.app.mode) };
    assert_eq!((p.input.text.as_str(), p.paths.clone()), ("/tmp/st", vec![root.join("b.mp4")]));
    // Rights: only CSV files are offered, and exactly one is taken.
    h.keys(&[KeyCode::Esc, ch('4'), ch('i')]);
    assert_eq!(names(&h.app), ["a", "rights.csv"]);
    h.keys(&[ch(' '), ch(' '), KeyCode::Enter]);
    assert_eq!(picker(&h.app).error.as_deref(), Some("one CSV file, please (2 marked)"));
    h.keys(&[ch(' ')]);
    let mut app = h.app.clone();
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        vec![Effect::Spawn(JobSpec::ImportRights { path: root.join("a") })]
    );
}

#[test]
fn the_palette_starts_a_separate_job_from_a_typed_command() {
    let h = Harness::new();
    let mut app = h.app.clone();
    update(&mut app, key(ch(':')));
    // The bare name is a palette entry; Enter completes it for the arguments.
    for a in typed("separate") {
        update(&mut app, a);
    }
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    let Mode::Palette(p) = &app.mode else { panic!("{:?}", app.mode) };
    assert_eq!(p.query.text, "separate ");
    // Refused arguments keep the palette open with the reason.
    for a in typed("a.mkv --format flac") {
        update(&mut app, a);
    }
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    let Mode::Palette(p) = &app.mode else { panic!("{:?}", app.mode) };
    assert_eq!(p.error.as_deref(), Some("separate: unknown option --format (only --out DIR)"));
    // Typing clears the reason; quoted paths keep their spaces.
    update(&mut app, ctrl('u'));
    for a in typed("separate 'My Show/ep 1.mkv' uploads --out /tmp/stems") {
        update(&mut app, a);
    }
    let Mode::Palette(p) = &app.mode else { panic!("{:?}", app.mode) };
    assert_eq!(p.error, None);
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        vec![Effect::Spawn(JobSpec::Separate {
            paths: vec!["My Show/ep 1.mkv".into(), "uploads".into()],
            out: "/tmp/stems".into()
        })]
    );
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn a_separate_job_fails_the_bad_file_alone_and_writes_the_others_stems() {
    let mut h = Harness::with_services(Arc::new(SeparatorOnly));
    // A folder of one good file and one that only looks like media (a plain-text file named
    // .mkv); a .txt there is not media by its name and is left out of the walk.
    let tmp = tempfile::tempdir().unwrap();
    let (inputs, out) = (tmp.path().join("in"), tmp.path().join("stems"));
    std::fs::create_dir(&inputs).unwrap();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    std::fs::copy(fixtures.join("plain/speech.wav"), inputs.join("speech.wav")).unwrap();
    std::fs::copy(fixtures.join("bad/notmedia.txt"), inputs.join("notmedia.mkv")).unwrap();
    std::fs::copy(fixtures.join("bad/notmedia.txt"), inputs.join("notmedia.txt")).unwrap();
    h.keys(&[ch(':')]);
    h.chars(&format!("separate {} --out {}", inputs.display(), out.display()));
    h.keys(&[KeyCode::Enter]);
    assert_eq!(h.app.jobs.list.len(), 1);
    h.pump_until(|app| !app.jobs_running());
    let j = &h.app.jobs.list[0];
    let bad = inputs.join("notmedia.mkv").display().to_string();
    assert_eq!(j.failures.len(), 1, "{:?}", j.failures);
    assert_eq!(j.failures[0].0, bad);
    assert!(j.failures[0].1.contains("not a media file"), "{}", j.failures[0].1);
    let Some(JobResult::Done { summary, output }) = &j.result else { panic!("{:?}", j.result) };
    assert_eq!(summary, "1 separated (0:09), 1 failed");
    assert_eq!(output.as_deref(), Some(out.as_path()));
    assert_eq!(j.items, (2, 2));
    for stem in ["speech.voice.wav", "speech.background.wav"] {
        let len = std::fs::metadata(out.join(stem)).unwrap().len();
        assert!(len > 100_000, "{stem}: {len} bytes"); // 9 s at 8 kHz, 16-bit
    }
    assert!(!out.join("notmedia.voice.wav").exists());
    // Separation writes no catalog: nothing to reload, the toast says how it went.
    assert_eq!(h.app.toast.as_ref().unwrap().toast.level, Level::Ok);
}

#[test]
fn without_a_separator_the_separate_job_says_why() {
    let mut h = Harness::new();
    h.keys(&[ch(':')]);
    h.chars("separate fixtures/plain");
    h.keys(&[KeyCode::Enter]);
    h.pump_until(|app| !app.jobs_running());
    let JobResult::Failed(e) = h.app.jobs.list[0].result.as_ref().unwrap() else { panic!() };
    assert_eq!(
        e,
        "separating needs the separator model: no separator model configured for this TUI"
    );
}

#[test]
fn a_refresh_reads_the_catalog_on_the_loader_and_the_status_bar_says_so() {
    let mut h = Harness::new();
    // Another process adds an upload; a refresh asks the loader and returns at once.
    let up = fixture::upload('0', 30.0, NOW);
    let r = fixture::region(&up, Stem::Mix, EP01, 0.0, (60.0, 70.0), 0.9, Band::High);
    h.rt.catalog().put_scan(&up, &[r], &ReviewConfig::none(), NOW).unwrap();
    let before = h.app.data.uploads.len();
    dispatch(&mut h.app, &mut h.rt, Action::Cmd(Cmd::Refresh));
    assert_eq!(h.app.loading, 1);
    assert!(h.screen().contains("reading the catalog"), "{}", h.screen());
    h.pump_until(|_| true);
    assert_eq!(h.app.data.uploads.len(), before + 1);
    assert!(!h.screen().contains("reading the catalog"));
    h.assert_data_is_the_catalogs();
}

#[test]
fn a_read_that_started_before_an_edit_does_not_undo_it_on_screen() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('n')]);
    let id = h.app.review_current().unwrap().id.clone();
    // A refresh is asked and the loader reads the catalog before the reviewer confirms...
    dispatch(&mut h.app, &mut h.rt, Action::Loading);
    let stale = aniprint::tui::app::Data::load(h.rt.catalog()).unwrap();
    dispatch(&mut h.app, &mut h.rt, key(ch('c')));
    assert_eq!(h.app.data.match_(&id).unwrap().status, MatchStatus::Confirmed);
    // ...and answers after: the edit stays.
    let loaded = aniprint::tui::action::Loaded { requests: 1, data: Ok(stale) };
    h.run(Action::Loaded(Box::new(loaded)));
    assert_eq!(h.app.loading, 0);
    assert_eq!(h.app.data.match_(&id).unwrap().status, MatchStatus::Confirmed);
    assert!(h.app.unsettled.is_empty());
    h.assert_data_is_the_catalogs();
}

#[test]
fn every_screen_and_overlay_draws_on_tiny_terminals() {
    let mut h = Harness::new();
    let spec = JobSpec::Ingest { paths: vec!["episodes".into()] };
    h.run(Action::Job(JobEvent::Started { id: 7, spec }));
    let overlays: [&[KeyCode]; 4] = [&[], &[ch(':')], &[ch('?')], &[ch('q')]];
    for screen in ['1', '2', '3', '4', '5'] {
        for keys in overlays {
            h.keys(&[KeyCode::Esc, KeyCode::Esc, ch(screen)]);
            h.keys(keys);
            for (w, ht) in [(1, 1), (12, 3), (24, 6), (40, 8), (60, 10), (80, 12), (100, 30)] {
                h.run(Action::Resize(w, ht));
                let mut term = Terminal::new(TestBackend::new(w, ht)).unwrap();
                term.draw(|f| f.render_widget(&h.app, f.area())).unwrap();
            }
        }
    }
}

#[test]
fn a_click_on_a_report_filter_selects_that_filter() {
    let mut h = Harness::new();
    h.keys(&[ch('5')]);
    let area = aniprint::tui::view::reports_list_area(&h.app);
    let click = |row: u16| {
        Action::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: area.x + 2,
            row: area.y + row,
            modifiers: KeyModifiers::NONE,
        })
    };
    // Lines 0-4 are the statuses, 5 is blank, 6-9 are upload, series, since and file.
    h.run(click(6));
    assert_eq!(h.app.reports.cursor, 5);
    h.run(click(9));
    assert_eq!(h.app.reports.cursor, 8);
    h.run(click(5));
    assert_eq!(h.app.reports.cursor, 8);
    h.run(click(1));
    assert_eq!(h.app.reports.cursor, 1);
}

/// Services whose separator loader has a bug.
struct PanickingSeparator;

impl Services for PanickingSeparator {
    fn load_separator(&self) -> aniprint::Result<aniprint::separate::Separator> {
        panic!("a bug in the loader")
    }
}

#[test]
fn a_job_that_panics_fails_and_its_worker_runs_the_next_one() {
    let mut h = Harness::with_services(Arc::new(PanickingSeparator));
    for _ in 0..2 {
        h.keys(&[ch(':')]);
        h.chars("separate fixtures/plain");
        h.keys(&[KeyCode::Enter]);
    }
    h.pump_until(|app| app.jobs.list.len() == 2 && !app.jobs_running());
    for j in &h.app.jobs.list {
        let Some(JobResult::Failed(e)) = &j.result else { panic!("{:?}", j.result) };
        assert!(e.contains("a panic: a bug in the loader"), "{e}");
    }
}

#[test]
fn the_palette_starts_a_training_run_and_refuses_a_bad_one() {
    let h = Harness::new();
    let mut app = h.app.clone();
    update(&mut app, key(ch(':')));
    for a in typed("train separator --corpus ../data/corpus") {
        update(&mut app, a);
    }
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    let Mode::Palette(p) = &app.mode else { panic!("{:?}", app.mode) };
    assert!(p.error.as_deref().unwrap().starts_with("train: --steps N is needed"));
    for a in typed(" --steps 400 --state /tmp/sep") {
        update(&mut app, a);
    }
    let spec = TrainSpec {
        model: TrainModel::Separator,
        corpus: "../data/corpus".into(),
        steps: 400,
        state: Some("/tmp/sep".into()),
        out: None,
        cache: None,
    };
    assert_eq!(
        JobSpec::Train(spec.clone()).title(),
        "train separator: 400 steps on ../data/corpus"
    );
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(effects, vec![Effect::Spawn(JobSpec::Train(spec.clone()))]);
    // It runs on the training worker, not the inference worker that ingest and scans use.
    assert_eq!(JobSpec::Train(spec).worker(), Worker::Training);
    assert_eq!(JobSpec::Separate { paths: vec![], out: "s".into() }.worker(), Worker::Inference);
}

#[test]
fn a_training_job_reports_a_missing_corpus_and_stops_when_cancelled() {
    let mut h = Harness::new();
    let tmp = tempfile::tempdir().unwrap();
    let (corpus, state) = (tmp.path().join("no-corpus"), tmp.path().join("state"));
    // Through the palette and the training worker: the corpus is checked before any step.
    h.keys(&[ch(':')]);
    h.chars(&format!(
        "train separator --corpus {} --steps 3 --state {}",
        corpus.display(),
        state.display()
    ));
    h.keys(&[KeyCode::Enter]);
    h.pump_until(|app| app.jobs.list.first().is_some_and(|j| !j.running()));
    let Some(JobResult::Failed(e)) = &h.app.jobs.list[0].result else { panic!() };
    assert!(e.contains("cannot read the corpus manifest"), "{e}");
    // Cancelled before it starts: no corpus read, no state written.
    let spec = JobSpec::Train(TrainSpec {
        model: TrainModel::Fingerprint,
        corpus,
        steps: 3,
        state: Some(state.clone()),
        out: Some(tmp.path().join("model")),
        cache: None,
    });
    let (tx, _rx) = crossbeam_channel::unbounded();
    let cancel = aniprint::progress::CancelToken::new();
    cancel.cancel();
    let rep = JobReporter::new(9, tx, cancel);
    let settings =
        Settings { who: "tester".into(), config: Config::default(), clock: Arc::new(|| NOW) };
    let result =
        run_job(h.rt.catalog(), &NoServices, &settings, &spec, &mut Models::default(), &rep);
    assert_eq!(result, JobResult::Cancelled);
    assert!(!state.exists());
}

#[test]
fn key_overrides_change_dispatch_key_bar_and_help() {
    let mut h =
        Harness::with_config("[tui.keys]\nconfirm = \"y\"\n\"review.mark\" = [\"m\", \"Space\"]\n");
    h.keys(&[ch('3'), ch('n')]);
    let id = h.app.review_current().unwrap().id.clone();
    // `c` no longer confirms; `y` does.
    h.keys(&[ch('c')]);
    assert_eq!(h.status_of(&id), MatchStatus::Pending);
    assert!(h.screen().contains(" y confirm "), "{}", h.screen());
    h.keys(&[ch('y')]);
    assert_eq!(h.status_of(&id), MatchStatus::Confirmed);
    h.keys(&[ch('?')]);
    let s = h.screen();
    let entry = |keys: &str, label: &str| s.contains(&format!("  {keys:<22}{label}"));
    assert!(entry("y", "confirm") && entry("m/Space", "select") && !entry("c", "confirm"), "{s}");
    // The key bar's overflow hint names the help key in use.
    let mut h = Harness::with_config("[tui.keys]\nhelp = \"F2\"\n");
    h.keys(&[ch('3')]);
    assert!(h.screen().lines().last().unwrap().contains("more F2"), "{}", h.screen());
}

#[test]
fn key_overrides_that_conflict_or_do_not_parse_are_refused() {
    use aniprint::tui::keymap::{KeySpec, Keymap};
    let one = |name: &str, key: &str| {
        let mut m = std::collections::BTreeMap::new();
        m.insert(name.to_string(), KeySpec::One(key.to_string()));
        Keymap::with_overrides(&m)
    };
    assert!(one("confirm", "C-y").is_ok());
    let e = one("confirm", "q").unwrap_err();
    assert!(e.contains("confirm") && e.contains("quit") && e.contains("Review"), "{e}");
    let e = one("confirm", "d").unwrap_err();
    assert!(e.contains("dismiss"), "{e}");
    assert!(one("confrim", "y").unwrap_err().contains("confrim"));
    assert!(one("confirm", "Hyper-y").unwrap_err().contains("Hyper-y"));
    assert!(one("jobs.confirm", "y").unwrap_err().contains("jobs.confirm"));
    // A key free on one screen but used on another is fine: `a` is Library's keep.
    assert!(one("review.confirm", "a").is_ok());
    // Through the settings file, the error names the file and the key.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("aniprint.toml");
    std::fs::write(&p, "[tui.keys]\nconfirm = \"q\"\n").unwrap();
    let e = Config::load(&p).unwrap_err().to_string();
    assert!(e.contains("aniprint.toml") && e.contains("confirm"), "{e}");
}

#[test]
fn help_and_palette_come_from_the_keymap() {
    let mut h = Harness::new();
    h.keys(&[ch('?')]);
    assert!(matches!(h.app.mode, Mode::Help(_)));
    assert!(h.screen().contains("dismiss+exclude…"));
    h.keys(&[ch('/')]);
    h.chars("undo");
    let s = h.screen();
    assert!(
        s.contains("Keys matching /undo") && s.contains("undo") && !s.contains("dismiss+exclude")
    );
    h.keys(&[KeyCode::Esc, KeyCode::Esc]);
    assert_eq!(h.app.mode, Mode::Normal);
    // The palette runs what it finds: ":conf" confirms on the review screen.
    h.keys(&[ch('3'), ch('n'), ch(':')]);
    h.chars("confirm");
    let id = h.app.review_current().unwrap().id.clone();
    h.keys(&[KeyCode::Enter]);
    assert_eq!(h.status_of(&id), MatchStatus::Confirmed);
    let ctrl_p = KeyEvent::new(ch('p'), KeyModifiers::CONTROL);
    h.run(Action::Key(ctrl_p));
    assert!(matches!(h.app.mode, Mode::Palette(_)));
}

#[test]
fn rights_form_validates_inline_and_saves() {
    let mut h = Harness::new();
    h.keys(&[ch('4'), ch('a')]);
    let Mode::RightsForm(form) = &h.app.mode else { panic!() };
    assert!(form.errors.contains_key("rights_holder"), "{:?}", form.errors);
    // Ctrl-s refuses while fields are wrong.
    let save = Action::Key(KeyEvent::new(ch('s'), KeyModifiers::CONTROL));
    h.run(save.clone());
    assert!(matches!(h.app.mode, Mode::RightsForm(_)));
    // Fill the required fields (the cursor starts on rights_holder).
    fill(&mut h, "rights_holder", "Umi Audio");
    fill(&mut h, "work_title", "Opening theme");
    fill(&mut h, "work_kind", "sound_recording");
    fill(&mut h, "rights_type", "master");
    fill(&mut h, "share_pct", "150");
    fill(&mut h, "policy", "track");
    let Mode::RightsForm(form) = &h.app.mode else { panic!() };
    assert_eq!(form.errors.keys().collect::<Vec<_>>(), ["share_pct"]);
    fill(&mut h, "share_pct", "100");
    h.run(save);
    assert_eq!(h.app.mode, Mode::Normal, "{:?}", h.app.toast);
    let stored = h.rt.catalog().rights().unwrap();
    assert!(stored.iter().any(|r| r.rights_holder == "Umi Audio" && r.created_by == "tester"));
    h.assert_data_is_the_catalogs();
    // Delete asks first.
    let id = h.app.data.rights[h.app.rights_rows()[h.app.rights.cursor]].rights_id.clone();
    h.keys(&[ch('d')]);
    assert_eq!(h.app.mode, Mode::Confirm(Confirm::DeleteRights(id.clone())));
    h.keys(&[ch('y')]);
    assert!(h.rt.catalog().rights_record(&id).is_err());
    h.assert_data_is_the_catalogs();
}

#[test]
fn rights_that_would_conflict_are_refused_in_the_form() {
    let mut h = Harness::new();
    h.keys(&[ch('4')]);
    // Edit r-bgm-002 (50% of a composition whose other 50% is r-bgm-001) to 60%.
    let pos = h
        .app
        .rights_rows()
        .iter()
        .position(|&i| h.app.data.rights[i].rights_id == "r-bgm-002")
        .unwrap();
    h.app.rights.cursor = pos;
    h.keys(&[ch('e')]);
    let Mode::RightsForm(form) = &h.app.mode else { panic!() };
    assert_eq!(form.editing.as_deref(), Some("r-bgm-002"));
    let share = form.fields.iter().position(|(c, _)| *c == "share_pct").unwrap();
    for _ in 0..(share - form.cursor) {
        h.keys(&[KeyCode::Tab]);
    }
    h.run(Action::Key(KeyEvent::new(ch('u'), KeyModifiers::CONTROL)));
    h.chars("60");
    h.run(Action::Key(KeyEvent::new(ch('s'), KeyModifiers::CONTROL)));
    let Mode::RightsForm(form) = &h.app.mode else { panic!("{:?}", h.app.mode) };
    assert!(form.general.iter().any(|g| g.contains("ownership conflict")), "{:?}", form.general);
    assert_eq!(h.rt.catalog().rights_record("r-bgm-002").unwrap().share_pct, 50.0);
}

#[test]
fn attach_rights_opens_the_rights_form_on_the_region() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('n')]); // a.mp4 0:00-0:20 = ep01 0:30-0:50
    let m = h.app.review_current().unwrap().clone();
    let mut app = h.app.clone();
    assert!(update(&mut app, key(ch('r'))).is_empty());
    let Mode::RightsForm(form) = &app.mode else { panic!("no form: {:?}", app.mode) };
    assert_eq!((form.editing.as_deref(), form.for_match.as_deref()), (None, Some(m.id.as_str())));
    // Scoped to exactly the region's stretch of its episode, worldwide by default.
    assert_eq!(field(&app, "series"), fixture::SERIES);
    assert_eq!(field(&app, "episode"), EP01);
    assert_eq!((field(&app, "start_s"), field(&app, "end_s")), ("30.000", "50.000"));
    assert_eq!(field(&app, "piece"), "");
    assert_eq!((field(&app, "territories"), field(&app, "territory_mode")), ("WW", "include"));
    // Validated inline like the rights screen's form: only what the curator must still type.
    let Mode::RightsForm(form) = &app.mode else { panic!() };
    assert_eq!(
        form.errors.keys().map(String::as_str).collect::<Vec<_>>(),
        ["policy", "rights_holder", "rights_type", "share_pct", "work_kind", "work_title"]
    );
    // Esc cancels: back on the review screen, nothing saved.
    assert!(update(&mut app, key(KeyCode::Esc)).is_empty());
    assert_eq!((app.mode.clone(), app.screen), (Mode::Normal, Screen::Review));
    // On an upload row there is no region to attach to.
    let mut app = h.app.clone();
    app.review.cursor = 0;
    assert!(update(&mut app, key(ch('r'))).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert!(app.toast.unwrap().toast.text.starts_with("move to a match first"));
}

#[test]
fn attached_rights_are_stored_and_apply_to_that_stretch_only() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('n')]);
    let m = h.app.review_current().unwrap().clone();
    let date = Date::from_unix_ms(NOW);
    let owners = |h: &Harness, id: &str| {
        let m = h.app.data.match_(id).unwrap();
        let rs = h.app.data.lookup.rights_for(&h.app.data.rights, m, date);
        rs.iter().map(|r| r.rights_holder.clone()).collect::<Vec<_>>()
    };
    let before = owners(&h, &m.id).len();
    h.keys(&[ch('r')]);
    fill(&mut h, "rights_holder", "Umi Audio");
    fill(&mut h, "work_title", "Opening theme");
    fill(&mut h, "work_kind", "sound_recording");
    fill(&mut h, "rights_type", "master");
    fill(&mut h, "share_pct", "100");
    fill(&mut h, "policy", "track");
    h.run(ctrl('s'));
    assert_eq!((h.app.mode.clone(), h.app.screen), (Mode::Normal, Screen::Review));
    let t = &h.app.toast.as_ref().unwrap().toast;
    assert!(t.text.ends_with(&format!("saved for match {}", m.id)), "{}", t.text);
    // Stored through rights::add, like the rights screen's form (same audit name).
    let stored = h.rt.catalog().rights().unwrap();
    let r = stored.iter().find(|r| r.rights_holder == "Umi Audio").unwrap();
    assert_eq!(r.episode.as_deref(), Some(EP01));
    assert_eq!((r.start, r.end), (Some(Seconds(30.0)), Some(Seconds(50.0))));
    assert_eq!(r.created_by, "tester");
    // The review panel lists it for this region, not for ep01's other region at 3:10.
    assert_eq!(owners(&h, &m.id).len(), before + 1);
    assert!(owners(&h, &m.id).contains(&"Umi Audio".to_string()));
    assert!(h.screen().contains(&format!("Rights that apply ({})", before + 1)));
    let other = h.app.data.matches.iter().find(|o| o.episode == EP01 && o.id != m.id).unwrap();
    assert!(!owners(&h, &other.id).contains(&"Umi Audio".to_string()));
}

#[test]
fn play_keys_ask_for_each_side_of_the_region() {
    let h = Harness::new();
    let mut app = h.app.clone();
    update(&mut app, key(ch('3')));
    update(&mut app, key(ch('n')));
    let upload = PlayRequest {
        side: Side::Upload,
        file: "/uploads/a.mp4".into(),
        audio_stream: None,
        start: Seconds(0.0),
        duration: Seconds(20.0),
    };
    assert_eq!(update(&mut app, key(ch('p'))), vec![Effect::Play(upload)]);
    let reference = PlayRequest {
        side: Side::Reference,
        file: "/media/ep01.mkv".into(),
        audio_stream: Some(1),
        start: Seconds(30.0),
        duration: Seconds(20.0),
    };
    assert_eq!(update(&mut app, key(ch('P'))), vec![Effect::Play(reference)]);
    assert_eq!(app.mode, Mode::Normal);
    // An upload row has no stretch to play.
    app.review.cursor = 0;
    assert!(update(&mut app, key(ch('p'))).is_empty());
    assert!(app.toast.unwrap().toast.text.contains("to play its upload"));
}

#[test]
fn playing_says_which_file_is_gone_or_that_the_player_is_missing() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('n'), ch('P')]);
    let t = &h.app.toast.as_ref().unwrap().toast;
    assert_eq!(t.level, Level::Error);
    assert_eq!(
        t.text,
        "cannot play the reference: /media/ep01.mkv is not there any more (moved or deleted?)"
    );
    // The file is there but the player is not.
    h.rt.set_player(Player::new("aniprint-test-no-such-ffplay"));
    h.app.data.uploads[0].path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").into();
    h.keys(&[ch('p')]);
    let t = &h.app.toast.as_ref().unwrap().toast;
    assert_eq!(t.level, Level::Error);
    assert!(t.text.contains("aniprint-test-no-such-ffplay not found"), "{}", t.text);
}

#[cfg(unix)]
#[test]
fn a_player_that_fails_says_why_on_the_status_line() {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Harness::new();
    // A stand-in ffplay that starts, then fails the way ffplay does on an unreadable file.
    let fake = h._dir.path().join("ffplay");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"$9: Invalid data found when processing input\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    h.rt.set_player(Player::new(&fake));
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    h.app.data.uploads[0].path = here.into();
    h.keys(&[ch('3'), ch('n'), ch('p')]);
    assert!(h.app.toast.as_ref().unwrap().toast.text.starts_with("playing upload Cargo.toml"));
    h.pump_until(|app| app.toast.as_ref().is_some_and(|t| t.toast.level == Level::Error));
    let t = &h.app.toast.as_ref().unwrap().toast;
    assert!(t.text.ends_with(&format!("{here}: Invalid data found when processing input")));
    assert!(t.text.contains("could not play the upload Cargo.toml (exit status: 1)"), "{}", t.text);
}

#[test]
fn reports_filters_build_the_match_filter() {
    let mut h = Harness::new();
    h.keys(&[ch('5'), ch('j'), ch(' ')]); // tick confirmed
    h.keys(&[ch('j'), ch('j'), ch('j'), ch('j'), ch('l')]); // first upload
    let f = h.app.report_filter().unwrap();
    assert_eq!(f.statuses, vec![MatchStatus::Confirmed]);
    assert_eq!(f.upload.as_deref(), Some(h.app.data.uploads[0].id.as_str()));
    assert_eq!(h.app.report_preview(), Some(0));
    h.keys(&[ch('l')]);
    assert_eq!(h.app.report_preview(), Some(1));
    let effects = update(&mut h.app, key(ch('x')));
    let [Effect::Spawn(JobSpec::ExportReport { out, .. })] = effects.as_slice() else { panic!() };
    assert_eq!(out, &PathBuf::from("report.csv"));
    // A bad date is refused in the prompt.
    h.keys(&[ch('j'), ch('j'), KeyCode::Enter]);
    h.chars("yesterday");
    h.keys(&[KeyCode::Enter]);
    assert!(matches!(&h.app.mode, Mode::Prompt(p) if p.error.is_some()));
}

#[test]
fn the_report_job_writes_the_csv() {
    let mut h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    h.app.reports.out = out.clone();
    h.keys(&[ch('5'), ch('x')]);
    // The job runs on a thread: wait for its file.
    let t0 = std::time::Instant::now();
    while !out.exists() && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(csv.starts_with("report_schema,report_id,"));
    assert!(csv.contains(",confirmed,"));
}

#[test]
fn the_report_job_cuts_evidence_when_ticked_and_says_what_it_could_not() {
    let mut h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.csv");
    h.app.reports.out = out.clone();
    h.keys(&[ch('5'), KeyCode::End, ch(' ')]); // the last row: evidence
    assert!(h.app.reports.evidence);
    assert!(h.screen().contains("[x] clips into"), "{}", h.screen());
    let effects = update(&mut h.app.clone(), key(ch('x')));
    let [Effect::Spawn(JobSpec::ExportReport { evidence: true, .. })] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    h.keys(&[ch('x')]);
    // The fixture catalog's episodes and uploads are not on disk: no clip can be cut, and the
    // report is written anyway, saying so.
    h.pump_until(|app| app.reports.last.is_some());
    let (path, summary) = h.app.reports.last.clone().unwrap();
    assert_eq!(path, out);
    assert!(summary.contains("0 evidence clips"), "{summary}");
    assert!(summary.contains("without clips") && summary.contains("missing"), "{summary}");
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(csv.starts_with("report_schema,report_id,"));
}

#[test]
fn a_click_on_the_timeline_sets_where_p_plays_from() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('n')]);
    let mut app = h.app.clone();
    let m = app.review_current().unwrap().clone();
    assert_eq!(
        (m.upload_start, m.upload_end, m.episode_start),
        (Seconds(0.0), Seconds(20.0), Seconds(30.0))
    );
    let up_len = app.data.upload(&m.upload).unwrap().duration.0;
    let ep_len = app.data.episode(&m.episode).unwrap().duration.0;
    let area = aniprint::tui::view::review_timeline_area(&app);
    let (bar_x, bar_w) = (area.x + 9, f64::from(area.width - 9 - 1));
    let click = |col: u16, row: u16| {
        Action::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: col,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    let col_of = |t: f64, len: f64| bar_x + (t / len * bar_w).round() as u16;
    let secs_at = |col: u16, len: f64| f64::from(col - bar_x) / bar_w * len;

    // On the upload bar, 10 s in: the start moves there, the stretch shortens to match.
    let col = col_of(10.0, up_len);
    assert!(update(&mut app, click(col, area.y)).is_empty());
    let t = secs_at(col, up_len);
    assert_eq!(app.review.seek, Some((m.id.clone(), Seconds(t))));
    let Effect::Play(req) = &update(&mut app, key(ch('p')))[0] else { panic!() };
    assert_eq!((req.start, req.duration), (Seconds(t), Seconds(20.0 - t)));
    let Effect::Play(req) = &update(&mut app, key(ch('P')))[0] else { panic!() };
    assert_eq!((req.start, req.duration), (Seconds(30.0 + t), Seconds(20.0 - t)));
    assert!(!h.screen().contains('▲'));
    h.app = app.clone();
    assert!(h.screen().contains('▲'), "the marker shows on the timeline");

    // Past the region's end: clamped to its end. On the episode bar: through the offset.
    update(&mut app, click(area.x + area.width - 1, area.y));
    assert_eq!(app.review.seek_in(&m), Some(Seconds(20.0)));
    let col = col_of(35.0, ep_len);
    update(&mut app, click(col, area.y + 2));
    let want = (secs_at(col, ep_len) - 30.0).clamp(0.0, 20.0);
    assert_eq!(app.review.seek_in(&m), Some(Seconds(want)));
    // The label column and the rows under the bars do not seek.
    let before = app.review.seek.clone();
    update(&mut app, click(area.x + 2, area.y));
    update(&mut app, click(col, area.y + 3));
    assert_eq!(app.review.seek, before);
    // Another match ignores the position.
    update(&mut app, key(ch('j')));
    if let Some(other) = app.review_current() {
        assert_eq!(app.review.seek_in(other), None);
    }
}

#[test]
fn mouse_clicks_select_and_switch() {
    let mut h = Harness::new();
    let click = |col, row| {
        Action::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: col,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    // "│ 3 Review │" starts after " 1 Library │ 2 Jobs │".
    h.run(click(22, 0));
    assert_eq!(h.app.screen, Screen::Review);
    h.run(click(5, 4)); // third list row
    assert_eq!(h.app.review.cursor, 2);
    let wheel = Action::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 5,
        row: 4,
        modifiers: KeyModifiers::NONE,
    });
    h.run(wheel);
    assert_eq!(h.app.review.cursor, 3);
}

// ---------------------------------------------------------------- snapshots on TestBackend

fn snap(name: &str, h: &Harness) {
    insta::assert_snapshot!(name, h.screen());
}

#[test]
fn snapshot_library() {
    let mut h = Harness::new();
    h.keys(&[ch('j'), ch('l')]);
    snap("tui_library", &h);
}

#[test]
fn snapshot_jobs() {
    let mut h = Harness::new();
    let ingest = JobSpec::Ingest { paths: vec!["fixtures/episodes".into()] };
    h.run(Action::Job(JobEvent::Started { id: 1, spec: ingest }));
    h.run(Action::Job(JobEvent::Progress {
        id: 1,
        item: "fixtures/episodes/ep02.mp4".into(),
        items: (1, 3),
        stage: Some(Stage::Decoding),
        units: (1_920_000, 3_840_000),
        message: String::new(),
        elapsed_ms: 6_000,
    }));
    h.run(Action::Job(JobEvent::ItemFailed {
        id: 1,
        item: "fixtures/bad/silent.wav".into(),
        reason: "audio stream #0 is silent".into(),
    }));
    let report = JobSpec::ExportReport {
        filter: MatchFilter::default(),
        out: "report.csv".into(),
        evidence: false,
    };
    h.run(Action::Job(JobEvent::Started { id: 2, spec: report }));
    let done = JobResult::Done {
        summary: "report 1a2b3c4d5e6f: 9 rows, 4 matches (1 without an owner)".into(),
        output: Some("report.csv".into()),
    };
    h.run(Action::Job(JobEvent::Finished { id: 2, result: done, elapsed_ms: 300 }));
    h.keys(&[ch('2')]);
    snap("tui_jobs", &h);
}

#[test]
fn snapshot_picker() {
    let mut h = Harness::new();
    h.app.browse_dir = "/media/anime".into();
    h.keys(&[ch('i')]); // lists a folder that is not there: says so, waits for a listing
    let entry = |name: &str, is_dir| aniprint::tui::app::DirEntry {
        name: name.into(),
        path: PathBuf::from("/media/anime").join(name),
        is_dir,
    };
    let listing = aniprint::tui::app::Listing {
        dir: "/media/anime".into(),
        entries: Ok(vec![
            entry("Fixture Show S01E02.mkv", false),
            entry("uploads", true),
            entry("Fixture Show S01E01.mkv", false),
            entry("episodes", true),
            entry("notes.txt", false),
            entry(".thumbnails", true),
        ]),
        select: None,
    };
    h.run(Action::Listed(Box::new(listing)));
    h.keys(&[ch('j'), ch('j'), ch(' '), ch(' ')]);
    snap("tui_picker", &h);
}

#[test]
fn snapshot_jobs_separate_and_train() {
    let mut h = Harness::new();
    let separate = JobSpec::Separate { paths: vec!["fixtures/plain".into()], out: "stems".into() };
    h.run(Action::Job(JobEvent::Started { id: 1, spec: separate }));
    h.run(Action::Job(JobEvent::ItemFailed {
        id: 1,
        item: "fixtures/plain/notmedia.mkv".into(),
        reason: "fixtures/plain/notmedia.mkv: not a media file (Invalid data found)".into(),
    }));
    h.run(Action::Job(JobEvent::Progress {
        id: 1,
        item: "fixtures/plain/speech.wav".into(),
        items: (1, 3),
        stage: Some(Stage::Separating),
        units: (0, 0),
        message: String::new(),
        elapsed_ms: 2_000,
    }));
    let train = JobSpec::Train(TrainSpec {
        model: TrainModel::Separator,
        corpus: "../data/corpus".into(),
        steps: 400,
        state: None,
        out: Some("models/separator-v2".into()),
        cache: None,
    });
    h.run(Action::Job(JobEvent::Started { id: 2, spec: train }));
    // Resumed at step 40 after 30 s of corpus loading, then 60 steps in 144 s: the ETA
    // counts those (300 steps left at 2.4 s = 12:00), not the steps of earlier runs.
    let progress = |units, elapsed_ms| {
        Action::Job(JobEvent::Progress {
            id: 2,
            item: String::new(),
            items: (0, 0),
            stage: Some(Stage::Training),
            units,
            message: "loss 0.1234 lr 1.95e-3 val SDR 4.21 dB (2.40 s/step)".into(),
            elapsed_ms,
        })
    };
    h.run(progress((40, 400), 30_000));
    h.run(progress((100, 400), 174_000));
    assert_eq!(h.app.jobs.list[1].eta_ms(), Some(720_000));
    h.keys(&[ch('2'), ch('j')]);
    snap("tui_jobs_separate_train", &h);
    // Cancel asks the runner; the stopped run says how it resumes.
    let effects = update(&mut h.app, key(ch('x')));
    assert_eq!(effects, vec![Effect::Cancel(2)]);
    h.run(Action::Job(JobEvent::Finished {
        id: 2,
        result: JobResult::Cancelled,
        elapsed_ms: 241_000,
    }));
    assert!(h.screen().contains("stopped: :train with the same --state resumes"));
}

#[test]
fn snapshot_review() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('j')]);
    let id = h.app.review_current().unwrap().id.clone();
    let img = SpecImage::from_fn(48, 64, |b, t| if (b + t / 4) % 12 < 3 { -10.0 } else { -80.0 });
    h.run(Action::Preview(Box::new(Preview {
        match_id: id,
        upload: Ok(img.clone()),
        reference: Ok(img),
    })));
    snap("tui_review", &h);
}

#[test]
fn snapshot_review_decision_form() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('n'), ch('D')]);
    h.chars("fair use clip");
    snap("tui_review_dispute", &h);
}

#[test]
fn snapshot_rights() {
    let mut h = Harness::new();
    h.keys(&[ch('4')]);
    snap("tui_rights", &h);
}

#[test]
fn snapshot_rights_form() {
    let mut h = Harness::new();
    h.keys(&[ch('4'), ch('a')]);
    h.chars("Umi Audio");
    snap("tui_rights_form", &h);
}

#[test]
fn snapshot_review_attach_rights() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('n'), ch('r')]);
    h.chars("Umi Audio");
    snap("tui_review_attach_rights", &h);
}

#[test]
fn snapshot_reports() {
    let mut h = Harness::new();
    h.keys(&[ch('5'), ch('j'), ch(' ')]);
    let done = JobResult::Done {
        summary: "report 1a2b3c4d5e6f: 2 rows, 1 matches (0 without an owner)".into(),
        output: Some("report.csv".into()),
    };
    let spec = JobSpec::ExportReport {
        filter: MatchFilter::default(),
        out: "report.csv".into(),
        evidence: false,
    };
    h.run(Action::Job(JobEvent::Started { id: 1, spec }));
    h.run(Action::Job(JobEvent::Finished { id: 1, result: done, elapsed_ms: 200 }));
    snap("tui_reports", &h);
}

#[test]
fn snapshot_help() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch('?')]);
    snap("tui_help", &h);
}

#[test]
fn snapshot_palette() {
    let mut h = Harness::new();
    h.keys(&[ch('3'), ch(':')]);
    h.chars("dis");
    snap("tui_palette", &h);
}

#[test]
fn cmd_actions_work_without_keys() {
    let mut h = Harness::new();
    h.run(Action::Cmd(Cmd::Goto(Screen::Rights)));
    assert_eq!(h.app.screen, Screen::Rights);
    h.run(Action::Resize(120, 40));
    assert_eq!(h.app.size, (120, 40));
    let _ = EP03;
}
