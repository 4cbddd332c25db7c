//! `update(app, action) -> effects`: the only place the UI state changes. Pure apart from the
//! returned [`Effect`]s, which the runtime carries out (catalog writes, jobs, previews) and
//! answers with more [`Action`]s.

use std::path::PathBuf;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use crate::catalog::matches::RULE_ACTOR;
use crate::catalog::{MatchStatus, PieceStatus};
use crate::progress::Stage;
use crate::review::{DISMISS_REASONS, DISPUTE_REASONS, Decision};
use crate::rights::{COLUMNS, RawRecord, parse_record};
use crate::units::Seconds;

use super::action::{
    Action, Cmd, Effect, JobEvent, JobResult, JobSpec, PlayRequest, Preview, PreviewRequest, Side,
    Toast,
};
use super::app::{
    App, Confirm, Data, DecisionForm, HelpState, JobView, LibFocus, LibRow, Mode, PaletteState,
    PickFor, Picker, Prompt, PromptKind, REPORT_ROWS, ReviewRow, RightsForm, Screen, ShownToast,
    TextInput,
};
use super::command::{self, Typed};
use super::keymap::{self, PaletteItem};
use super::view::{self, Hit};

/// Ticks a toast stays (at 4 ticks a second).
const TOAST_TICKS: u16 = 16;

/// Longest stretch a spectrogram preview covers, seconds.
pub const PREVIEW_MAX_S: f64 = 30.0;

/// Apply one action to the app; returns the effects to run.
pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    let mut effects = match action {
        Action::Key(ev) => on_key(app, ev),
        Action::Mouse(ev) => on_mouse(app, ev),
        Action::Cmd(cmd) => on_cmd(app, cmd),
        Action::Tick => {
            app.ticks += 1;
            if let Some(t) = &mut app.toast {
                t.ttl = t.ttl.saturating_sub(1);
                if t.ttl == 0 {
                    app.toast = None;
                }
            }
            if app.quit_when_done && !app.jobs_running() {
                app.quit = true;
                vec![Effect::Quit]
            } else {
                vec![]
            }
        }
        Action::Resize(w, h) => {
            app.size = (w, h);
            vec![]
        }
        Action::Job(ev) => on_job(app, ev),
        Action::Loading => {
            app.loading += 1;
            vec![]
        }
        Action::Loaded(loaded) => {
            app.loading = app.loading.saturating_sub(loaded.requests);
            match loaded.data {
                Ok(data) => {
                    let edits = app.unsettled.clone();
                    new_data(app, |d| {
                        *d = data;
                        edits.into_iter().for_each(|c| d.apply(c));
                    });
                }
                Err(e) => toast(app, Toast::error(e)),
            }
            if app.loading == 0 {
                app.unsettled.clear();
            }
            vec![]
        }
        Action::Changed(changes) => {
            if app.loading > 0 {
                app.unsettled.push((*changes).clone());
            }
            new_data(app, |d| d.apply(*changes));
            vec![]
        }
        Action::Preview(p) => {
            if app.review.preview_for.as_deref() == Some(p.match_id.as_str()) {
                app.review.preview = Some(*p);
            }
            vec![]
        }
        Action::Toast(t) => {
            toast(app, t);
            vec![]
        }
        Action::Decided(ids) => {
            if !ids.is_empty() {
                app.review.undo.push(ids);
            }
            app.review.marked.clear();
            vec![]
        }
        Action::RightsSaved(id) => {
            let mut attached = None;
            if let Mode::RightsForm(form) = &app.mode {
                attached = form.for_match.clone();
                app.mode = Mode::Normal;
            }
            if let Some(pos) =
                app.rights_rows().iter().position(|&i| app.data.rights[i].rights_id == id)
            {
                app.rights.cursor = pos;
            }
            let text = match attached {
                Some(m) => format!("rights record {id} saved for match {m}"),
                None => format!("rights record {id} saved"),
            };
            toast(app, Toast::ok(text));
            vec![]
        }
        Action::Listed(listing) => {
            if listing.entries.is_ok() {
                app.browse_dir = listing.dir.clone();
            }
            if let Mode::Picker(pk) = &mut app.mode {
                pk.show(*listing);
            }
            vec![]
        }
        Action::RightsRejected(problems) => {
            if let Mode::RightsForm(form) = &mut app.mode {
                form.general.clear();
                for p in problems {
                    match &p.column {
                        Some(c)
                            if COLUMNS.contains(&c.as_str()) && !p.message.contains("conflict") =>
                        {
                            form.errors.insert(c.clone(), p.message.clone());
                        }
                        _ => form.general.push(p.message.clone()),
                    }
                }
            }
            vec![]
        }
    };
    effects.extend(sync_preview(app));
    effects
}

fn toast(app: &mut App, t: Toast) {
    app.toast = Some(ShownToast { toast: t, ttl: TOAST_TICKS });
}

fn on_key(app: &mut App, ev: KeyEvent) -> Vec<Effect> {
    if ev.kind == KeyEventKind::Release {
        return vec![];
    }
    let cmd = match (&app.mode, keymap::lookup(app, &ev)) {
        // With nothing marked, the picker's accept letter is the first letter of a typed path
        // (the `i` of `incoming/`), as every other letter the list does not use is: starting
        // a job on the entry under the cursor was one surprised key away.
        (Mode::Picker(pk), Some(Cmd::Accept))
            if pk.marked.is_empty() && matches!(ev.code, KeyCode::Char(_)) =>
        {
            None
        }
        (_, cmd) => cmd,
    };
    if let Some(cmd) = cmd {
        return on_cmd(app, cmd);
    }
    match &mut app.mode {
        Mode::Filter => {
            let input = match app.screen {
                Screen::Library => &mut app.library.filter,
                Screen::Review => &mut app.review.filter,
                Screen::Rights => &mut app.rights.filter,
                _ => return vec![],
            };
            if edit_text(input, &ev) {
                match app.screen {
                    Screen::Library => {
                        app.library.tree_cursor = 0;
                        app.library.piece_cursor = 0;
                    }
                    Screen::Review => app.review.cursor = 0,
                    _ => app.rights.cursor = 0,
                }
            }
        }
        Mode::Help(h) if h.typing => {
            edit_text(&mut h.filter, &ev);
            h.scroll = 0;
        }
        Mode::Palette(p) => {
            let changed = edit_text(&mut p.query, &ev);
            p.cursor = if changed { 0 } else { p.cursor };
            p.error = if changed { None } else { p.error.take() };
        }
        Mode::Prompt(p) => {
            let changed = edit_text(&mut p.input, &ev);
            p.error = if changed { None } else { p.error.take() };
        }
        Mode::Picker(pk) => {
            // A printable key the list does not use starts the path field with itself, so a
            // path can simply be typed (`/srv/...`, `../uploads`).
            let plain = !ev.modifiers.contains(KeyModifiers::CONTROL);
            if !pk.typing && plain && matches!(ev.code, KeyCode::Char(_)) {
                pk.typing = true;
                pk.input.clear();
            }
            if pk.typing && edit_text(&mut pk.input, &ev) {
                pk.error = None;
            }
        }
        Mode::Decision(d) => {
            edit_text(&mut d.note, &ev);
        }
        Mode::RightsForm(form) => {
            let cursor = form.cursor;
            let editable = !(form.editing.is_some() && form.fields[cursor].0 == "rights_id");
            if editable && edit_text(&mut form.fields[cursor].1, &ev) {
                validate_form(form, &app.data.lookup);
            }
        }
        _ => {}
    }
    vec![]
}

/// Edit a text field with a key; whether the text changed.
fn edit_text(input: &mut TextInput, ev: &KeyEvent) -> bool {
    let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
    match ev.code {
        KeyCode::Char('u') if ctrl => {
            input.clear();
            true
        }
        KeyCode::Char(c) if !ctrl => {
            input.insert(c);
            true
        }
        KeyCode::Backspace => {
            input.backspace();
            true
        }
        KeyCode::Delete => {
            input.delete();
            true
        }
        KeyCode::Left => {
            input.move_by(-1);
            false
        }
        KeyCode::Right => {
            input.move_by(1);
            false
        }
        KeyCode::Home => {
            input.home_end(false);
            false
        }
        KeyCode::End => {
            input.home_end(true);
            false
        }
        _ => false,
    }
}

fn on_mouse(app: &mut App, ev: MouseEvent) -> Vec<Effect> {
    if app.mode != Mode::Normal {
        return vec![];
    }
    match ev.kind {
        MouseEventKind::Down(MouseButton::Left) => {
            let chrome = view::chrome(app.area());
            if ev.row == chrome.tabs.y {
                if let Some(s) = view::tab_at(ev.column) {
                    app.screen = s;
                }
                return vec![];
            }
            if app.screen == Screen::Review && seek_click(app, ev.column, ev.row) {
                return vec![];
            }
            match view::hit_test(app, ev.column, ev.row) {
                Some(Hit::Tree(i)) => {
                    app.library.focus = LibFocus::Tree;
                    if app.library.tree_cursor != i {
                        app.library.piece_cursor = 0;
                    }
                    app.library.tree_cursor = i;
                }
                Some(Hit::Pieces(i)) => {
                    app.library.focus = LibFocus::Pieces;
                    app.library.piece_cursor = i;
                }
                Some(Hit::Jobs(i)) => app.jobs.cursor = i,
                Some(Hit::Review(i)) => app.review.cursor = i,
                Some(Hit::Rights(i)) => app.rights.cursor = i,
                Some(Hit::Reports(i)) => app.reports.cursor = i,
                None => {}
            }
            clamp_cursors(app);
            vec![]
        }
        MouseEventKind::ScrollDown => on_cmd(app, Cmd::Down),
        MouseEventKind::ScrollUp => on_cmd(app, Cmd::Up),
        _ => vec![],
    }
}

fn on_cmd(app: &mut App, cmd: Cmd) -> Vec<Effect> {
    match std::mem::take(&mut app.mode) {
        Mode::Normal => on_normal(app, cmd),
        Mode::Filter => {
            if cmd == Cmd::Back {
                match app.screen {
                    Screen::Library => app.library.filter.clear(),
                    Screen::Review => app.review.filter.clear(),
                    Screen::Rights => app.rights.filter.clear(),
                    _ => {}
                }
            } else if cmd != Cmd::Submit {
                app.mode = Mode::Filter;
            }
            vec![]
        }
        Mode::Help(mut h) => {
            match (cmd, h.typing) {
                (Cmd::Back, true) => {
                    h.filter.clear();
                    h.typing = false;
                    app.mode = Mode::Help(h);
                }
                (Cmd::Submit, true) => {
                    h.typing = false;
                    app.mode = Mode::Help(h);
                }
                (Cmd::Back, false) => {}
                (Cmd::Filter, _) => {
                    h.typing = true;
                    app.mode = Mode::Help(h);
                }
                (Cmd::Down, _) => {
                    h.scroll += 1;
                    app.mode = Mode::Help(h);
                }
                (Cmd::Up, _) => {
                    h.scroll = h.scroll.saturating_sub(1);
                    app.mode = Mode::Help(h);
                }
                _ => app.mode = Mode::Help(h),
            }
            vec![]
        }
        Mode::Palette(mut p) => {
            let entries = keymap::palette_entries(app, &p.query.text);
            match cmd {
                Cmd::Back => vec![],
                Cmd::Submit => match command::parse(&p.query.text) {
                    Some(Ok(Typed::Spawn(spec))) => start_job(app, spec),
                    Some(Ok(Typed::Pick { purpose, out })) => open_picker(app, purpose, out),
                    Some(Err(e)) => {
                        p.error = Some(e);
                        app.mode = Mode::Palette(p);
                        vec![]
                    }
                    None => match entries.get(p.cursor) {
                        Some((_, _, PaletteItem::Cmd(c))) => on_normal(app, *c),
                        Some((_, _, PaletteItem::Typed(c))) => {
                            // Complete the name; the arguments are the user's to type.
                            p.query = TextInput::new(format!("{} ", c.name));
                            p.cursor = 0;
                            p.error = None;
                            app.mode = Mode::Palette(p);
                            vec![]
                        }
                        None => vec![],
                    },
                },
                Cmd::Down => {
                    p.cursor = (p.cursor + 1).min(entries.len().saturating_sub(1));
                    app.mode = Mode::Palette(p);
                    vec![]
                }
                Cmd::Up => {
                    p.cursor = p.cursor.saturating_sub(1);
                    app.mode = Mode::Palette(p);
                    vec![]
                }
                _ => {
                    app.mode = Mode::Palette(p);
                    vec![]
                }
            }
        }
        Mode::Prompt(p) => match cmd {
            Cmd::Back => vec![],
            Cmd::Submit => submit_prompt(app, p),
            _ => {
                app.mode = Mode::Prompt(p);
                vec![]
            }
        },
        Mode::Picker(pk) => on_picker(app, pk, cmd),
        Mode::Decision(mut d) => match cmd {
            Cmd::Back => vec![],
            Cmd::Down => {
                d.reason = (d.reason + 1) % d.reasons.len().max(1);
                app.mode = Mode::Decision(d);
                vec![]
            }
            Cmd::Up => {
                d.reason = (d.reason + d.reasons.len().max(1) - 1) % d.reasons.len().max(1);
                app.mode = Mode::Decision(d);
                vec![]
            }
            Cmd::Submit => {
                let note = d.note.text.trim();
                let decision = Decision {
                    reason: d.reasons.get(d.reason).map(|r| r.to_string()),
                    note: (!note.is_empty()).then(|| note.to_string()),
                    exclude: d.exclude,
                    deadline_ms: None,
                };
                vec![Effect::Review { ids: d.ids, to: d.to, decision }]
            }
            _ => {
                app.mode = Mode::Decision(d);
                vec![]
            }
        },
        Mode::RightsForm(mut form) => match cmd {
            Cmd::Back => vec![],
            Cmd::NextField => {
                form.cursor = (form.cursor + 1) % form.fields.len();
                app.mode = Mode::RightsForm(form);
                vec![]
            }
            Cmd::PrevField => {
                form.cursor = (form.cursor + form.fields.len() - 1) % form.fields.len();
                app.mode = Mode::RightsForm(form);
                vec![]
            }
            Cmd::Submit => {
                validate_form(&mut form, &app.data.lookup);
                let raw = form.raw();
                let ok = form.errors.is_empty();
                app.mode = Mode::RightsForm(form);
                if ok {
                    vec![Effect::SaveRights(raw)]
                } else {
                    toast(app, Toast::error("fix the fields marked ✗ first"));
                    vec![]
                }
            }
            _ => {
                app.mode = Mode::RightsForm(form);
                vec![]
            }
        },
        Mode::Confirm(Confirm::Quit) => match cmd {
            Cmd::CancelAndQuit if app.cancelling => {
                // Asked twice: the user would rather not wait for the jobs to wind down.
                app.quit = true;
                vec![Effect::Quit]
            }
            Cmd::CancelAndQuit => {
                // Quit once they have stopped: a cancelled job finishes its write (training
                // saves its checkpoint), which an exit now would cut short.
                app.cancelling = true;
                app.quit_when_done = true;
                toast(app, Toast::info("stopping the running jobs; quitting when they have"));
                vec![Effect::CancelAll]
            }
            Cmd::QuitWhenDone => {
                app.quit_when_done = true;
                toast(app, Toast::info("quitting when the running jobs finish"));
                vec![]
            }
            Cmd::Back => vec![],
            _ => {
                app.mode = Mode::Confirm(Confirm::Quit);
                vec![]
            }
        },
        Mode::Confirm(Confirm::DeleteRights(id)) => match cmd {
            Cmd::Yes => vec![Effect::DeleteRights(id)],
            Cmd::No => vec![],
            _ => {
                app.mode = Mode::Confirm(Confirm::DeleteRights(id));
                vec![]
            }
        },
    }
}

fn on_normal(app: &mut App, cmd: Cmd) -> Vec<Effect> {
    match cmd {
        Cmd::Quit => {
            if app.jobs_running() {
                app.mode = Mode::Confirm(Confirm::Quit);
                vec![]
            } else {
                app.quit = true;
                vec![Effect::Quit]
            }
        }
        Cmd::Help => {
            app.mode = Mode::Help(HelpState::default());
            vec![]
        }
        Cmd::Palette => {
            app.mode = Mode::Palette(PaletteState::default());
            vec![]
        }
        Cmd::Filter => {
            if matches!(app.screen, Screen::Library | Screen::Review | Screen::Rights) {
                app.mode = Mode::Filter;
            }
            vec![]
        }
        Cmd::NextScreen => {
            app.screen = Screen::ALL[(app.screen.index() + 1) % Screen::ALL.len()];
            vec![]
        }
        Cmd::PrevScreen => {
            app.screen =
                Screen::ALL[(app.screen.index() + Screen::ALL.len() - 1) % Screen::ALL.len()];
            vec![]
        }
        Cmd::Goto(s) => {
            app.screen = s;
            vec![]
        }
        Cmd::Refresh => vec![Effect::Reload],
        Cmd::Up => move_cursor(app, -1),
        Cmd::Down => move_cursor(app, 1),
        Cmd::PageUp => move_cursor(app, -(page(app) as isize)),
        Cmd::PageDown => move_cursor(app, page(app) as isize),
        Cmd::Top => move_cursor(app, isize::MIN / 2),
        Cmd::Bottom => move_cursor(app, isize::MAX / 2),
        Cmd::Back => {
            match app.screen {
                Screen::Library => {
                    if app.library.marked.is_empty() {
                        app.library.filter.clear();
                    }
                    app.library.marked.clear();
                }
                Screen::Review => {
                    if app.review.marked.is_empty() {
                        app.review.filter.clear();
                    }
                    app.review.marked.clear();
                }
                Screen::Rights => app.rights.filter.clear(),
                _ => {}
            }
            clamp_cursors(app);
            vec![]
        }
        _ => match app.screen {
            Screen::Library => on_library(app, cmd),
            Screen::Jobs => on_jobs(app, cmd),
            Screen::Review => on_review(app, cmd),
            Screen::Rights => on_rights(app, cmd),
            Screen::Reports => on_reports(app, cmd),
        },
    }
}

/// Rows a page move jumps: half the body height.
fn page(app: &App) -> usize {
    usize::from(app.size.1.saturating_sub(6) / 2).max(1)
}

fn step(cursor: usize, len: usize, d: isize) -> usize {
    if len == 0 {
        return 0;
    }
    (cursor as isize).saturating_add(d).clamp(0, len as isize - 1) as usize
}

fn move_cursor(app: &mut App, d: isize) -> Vec<Effect> {
    match app.screen {
        Screen::Library => match app.library.focus {
            LibFocus::Tree => {
                let n = app.library_rows().len();
                let c = step(app.library.tree_cursor, n, d);
                if c != app.library.tree_cursor {
                    app.library.piece_cursor = 0;
                }
                app.library.tree_cursor = c;
            }
            LibFocus::Pieces => {
                let n = app.library_pieces().len();
                app.library.piece_cursor = step(app.library.piece_cursor, n, d);
            }
        },
        Screen::Jobs => app.jobs.cursor = step(app.jobs.cursor, app.jobs.list.len(), d),
        Screen::Review => app.review.cursor = step(app.review.cursor, app.review_rows().len(), d),
        Screen::Rights => app.rights.cursor = step(app.rights.cursor, app.rights_rows().len(), d),
        Screen::Reports => app.reports.cursor = step(app.reports.cursor, REPORT_ROWS, d),
    }
    vec![]
}

/// Keep every cursor inside its list and drop marks of records that are gone.
/// What the position-based cursors and filters point at, by id, across a reload.
struct Anchors {
    library: Option<(bool, String)>,
    review: Option<(bool, String)>,
    report_upload: Option<String>,
    report_series: Option<String>,
}

impl Anchors {
    fn of(app: &App) -> Self {
        let d = &app.data;
        let library = app.library_rows().get(app.library.tree_cursor).map(|r| match r {
            LibRow::Series(name) => (true, name.clone()),
            LibRow::Episode(i) => (false, d.episodes[*i].id.clone()),
        });
        let review = app.review_rows().get(app.review.cursor).map(|r| match r {
            ReviewRow::Upload(i) => (true, d.uploads[*i].id.clone()),
            ReviewRow::Match(i) => (false, d.matches[*i].id.clone()),
        });
        Self {
            library,
            review,
            report_upload: app.reports.upload.and_then(|i| d.uploads.get(i)).map(|u| u.id.clone()),
            report_series: app.reports.series.and_then(|i| d.series.get(i)).map(|s| s.name.clone()),
        }
    }

    /// Point the cursors and filters at the same things in the reloaded data (a cursor whose
    /// row is gone stays where it was; a filter whose upload or series is gone is cleared).
    fn restore(self, app: &mut App) {
        let d = &app.data;
        if let Some((series, id)) = &self.library {
            let at = app.library_rows().iter().position(|r| match r {
                LibRow::Series(name) => *series && name == id,
                LibRow::Episode(i) => !*series && d.episodes[*i].id == *id,
            });
            app.library.tree_cursor = at.unwrap_or(app.library.tree_cursor);
        }
        if let Some((upload, id)) = &self.review {
            let at = app.review_rows().iter().position(|r| match r {
                ReviewRow::Upload(i) => *upload && d.uploads[*i].id == *id,
                ReviewRow::Match(i) => !*upload && d.matches[*i].id == *id,
            });
            app.review.cursor = at.unwrap_or(app.review.cursor);
        }
        app.reports.upload =
            self.report_upload.and_then(|id| d.uploads.iter().position(|u| u.id == id));
        app.reports.series =
            self.report_series.and_then(|name| d.series.iter().position(|s| s.name == name));
    }
}

fn clamp_cursors(app: &mut App) {
    let n = app.library_rows().len();
    app.library.tree_cursor = app.library.tree_cursor.min(n.saturating_sub(1));
    let n = app.library_pieces().len();
    app.library.piece_cursor = app.library.piece_cursor.min(n.saturating_sub(1));
    let n = app.review_rows().len();
    app.review.cursor = app.review.cursor.min(n.saturating_sub(1));
    let n = app.rights_rows().len();
    app.rights.cursor = app.rights.cursor.min(n.saturating_sub(1));
    app.jobs.cursor = app.jobs.cursor.min(app.jobs.list.len().saturating_sub(1));
    let data = &app.data;
    app.review.marked.retain(|id| data.matches.iter().any(|m| &m.id == id));
    app.library.marked.retain(|id| data.pieces.values().flatten().any(|p| &p.id == id));
    if app.reports.upload.is_some_and(|i| i >= data.uploads.len()) {
        app.reports.upload = None;
    }
    if app.reports.series.is_some_and(|i| i >= data.series.len()) {
        app.reports.series = None;
    }
}

fn on_library(app: &mut App, cmd: Cmd) -> Vec<Effect> {
    let status = match cmd {
        Cmd::Keep => Some(PieceStatus::Keep),
        Cmd::DropPiece => Some(PieceStatus::Drop),
        Cmd::Unreview => Some(PieceStatus::Unreviewed),
        _ => None,
    };
    if let Some(status) = status {
        let ids: Vec<String> = if !app.library.marked.is_empty() {
            app.library.marked.iter().cloned().collect()
        } else {
            match app.library.focus {
                LibFocus::Pieces => app
                    .library_pieces()
                    .get(app.library.piece_cursor)
                    .map(|p| vec![p.id.clone()])
                    .unwrap_or_default(),
                LibFocus::Tree => app.library_pieces().iter().map(|p| p.id.clone()).collect(),
            }
        };
        if ids.is_empty() {
            toast(app, Toast::info("no pieces here"));
            return vec![];
        }
        app.library.marked.clear();
        return vec![Effect::SetPieces { ids, status }];
    }
    match cmd {
        Cmd::FocusLeft => app.library.focus = LibFocus::Tree,
        Cmd::FocusRight if !app.library_pieces().is_empty() => {
            app.library.focus = LibFocus::Pieces;
        }
        Cmd::Mark => {
            let ids: Vec<String> = match app.library.focus {
                LibFocus::Pieces => app
                    .library_pieces()
                    .get(app.library.piece_cursor)
                    .map(|p| vec![p.id.clone()])
                    .unwrap_or_default(),
                LibFocus::Tree => app.library_pieces().iter().map(|p| p.id.clone()).collect(),
            };
            let all_marked = ids.iter().all(|id| app.library.marked.contains(id));
            for id in ids {
                if all_marked {
                    app.library.marked.remove(&id);
                } else {
                    app.library.marked.insert(id);
                }
            }
            return move_cursor(app, 1);
        }
        Cmd::Ingest => return open_picker(app, PickFor::Ingest, None),
        Cmd::ExportDataset => open_prompt(app, PromptKind::ExportDataset, "dataset"),
        Cmd::Separate => return open_picker(app, PickFor::Separate, None),
        _ => {}
    }
    vec![]
}

/// Open the file picker in the folder it last showed; `out` is the stems folder a
/// `:separate --out` gave.
fn open_picker(app: &mut App, purpose: PickFor, out: Option<PathBuf>) -> Vec<Effect> {
    app.mode = Mode::Picker(Picker { out, ..Picker::new(purpose) });
    vec![Effect::ListDir { dir: app.browse_dir.clone(), select: None }]
}

fn on_picker(app: &mut App, mut pk: Picker, cmd: Cmd) -> Vec<Effect> {
    let mut effects = Vec::new();
    let list = |dir: &std::path::Path, select: Option<PathBuf>| Effect::ListDir {
        dir: dir.to_path_buf(),
        select,
    };
    if pk.typing {
        match cmd {
            Cmd::Back => {
                pk.typing = false;
                pk.error = None;
            }
            Cmd::Submit => {
                let paths = pk.typed_paths();
                if paths.is_empty() {
                    pk.error = Some("type a path (several separated by ';')".into());
                } else {
                    return finish_pick(app, pk, paths);
                }
            }
            Cmd::GoToPath => {
                pk.typing = false;
                if let Some(target) = pk.typed_paths().first() {
                    effects.push(list(target, None));
                    pk.input.clear();
                }
            }
            _ => {}
        }
        app.mode = Mode::Picker(pk);
        return effects;
    }
    let current = pk.current().cloned();
    let n = pk.entries.len();
    let page = page(app) as isize;
    match cmd {
        Cmd::Back => return vec![],
        Cmd::Down => pk.cursor = step(pk.cursor, n, 1),
        Cmd::Up => pk.cursor = step(pk.cursor, n, -1),
        Cmd::PageDown => pk.cursor = step(pk.cursor, n, page),
        Cmd::PageUp => pk.cursor = step(pk.cursor, n, -page),
        Cmd::Top => pk.cursor = 0,
        Cmd::Bottom => pk.cursor = n.saturating_sub(1),
        Cmd::Mark => {
            if let Some(e) = current {
                if !pk.marked.remove(&e.path) {
                    pk.marked.insert(e.path);
                }
                pk.cursor = step(pk.cursor, n, 1);
            }
        }
        Cmd::IntoDir => {
            if let Some(e) = current.filter(|e| e.is_dir) {
                effects.push(list(&e.path, None));
            }
        }
        Cmd::UpDir => {
            if let Some(dir) = &pk.dir
                && let Some(parent) = dir.parent()
            {
                effects.push(list(parent, Some(dir.clone())));
            }
        }
        Cmd::Open if !pk.marked.is_empty() => {
            let paths = pk.marked.iter().cloned().collect();
            return finish_pick(app, pk, paths);
        }
        Cmd::Open => match current {
            Some(e) if e.is_dir => effects.push(list(&e.path, None)),
            Some(e) => return finish_pick(app, pk, vec![e.path]),
            None => pk.error = Some("nothing here: h goes up, Tab types a path".into()),
        },
        Cmd::Accept => {
            // The marks (a letter bound here types a path while nothing is marked: `on_key`),
            // else, for a key that is no letter, the entry under the cursor or the folder.
            let paths: Vec<PathBuf> = if !pk.marked.is_empty() {
                pk.marked.iter().cloned().collect()
            } else {
                current.map(|e| e.path).or_else(|| pk.dir.clone()).into_iter().collect()
            };
            if !paths.is_empty() {
                return finish_pick(app, pk, paths);
            }
        }
        Cmd::TypePath => {
            pk.typing = true;
            pk.error = None;
        }
        _ => {}
    }
    app.mode = Mode::Picker(pk);
    effects
}

/// The picker's answer: start its job (separation asks for the stems folder first).
fn finish_pick(app: &mut App, mut pk: Picker, paths: Vec<PathBuf>) -> Vec<Effect> {
    match pk.purpose {
        PickFor::Ingest => start_job(app, JobSpec::Ingest { paths }),
        PickFor::Scan => start_job(app, JobSpec::Scan { paths }),
        PickFor::ImportRights => match <[PathBuf; 1]>::try_from(paths) {
            Ok([path]) => start_job(app, JobSpec::ImportRights { path }),
            Err(paths) => {
                pk.error = Some(format!("one CSV file, please ({} marked)", paths.len()));
                app.mode = Mode::Picker(pk);
                vec![]
            }
        },
        PickFor::Separate => {
            // Beside the inputs unless `:separate --out` said where.
            let out = pk.out.take().unwrap_or_else(|| match &pk.dir {
                Some(dir) => dir.join(command::DEFAULT_STEMS_DIR),
                None => PathBuf::from(command::DEFAULT_STEMS_DIR),
            });
            app.mode = Mode::Prompt(Prompt {
                kind: PromptKind::SeparateOut,
                input: TextInput::new(out.display().to_string()),
                error: None,
                paths,
            });
            vec![]
        }
    }
}

fn open_prompt(app: &mut App, kind: PromptKind, text: &str) {
    let input = TextInput::new(text);
    app.mode = Mode::Prompt(Prompt { kind, input, error: None, paths: Vec::new() });
}

/// Start a background job and say so.
fn start_job(app: &mut App, spec: JobSpec) -> Vec<Effect> {
    toast(app, Toast::info(format!("started: {} (see 2 Jobs)", spec.title())));
    vec![Effect::Spawn(spec)]
}

fn on_jobs(app: &mut App, cmd: Cmd) -> Vec<Effect> {
    if cmd == Cmd::CancelJob
        && let Some(job) = app.jobs.list.get_mut(app.jobs.cursor)
        && job.running()
    {
        job.cancelling = true;
        return vec![Effect::Cancel(job.id)];
    }
    vec![]
}

/// The matches a review decision applies to: the marked ones, else the one under the cursor.
fn review_targets(app: &App) -> Vec<String> {
    if !app.review.marked.is_empty() {
        return app.review.marked.iter().cloned().collect();
    }
    app.review_current().map(|m| vec![m.id.clone()]).unwrap_or_default()
}

fn on_review(app: &mut App, cmd: Cmd) -> Vec<Effect> {
    let decide =
        |to: MatchStatus| Effect::Review { ids: vec![], to, decision: Decision::default() };
    let needs_target = matches!(
        cmd,
        Cmd::Confirm
            | Cmd::Dismiss
            | Cmd::DismissExclude
            | Cmd::Dispute
            | Cmd::Escalate
            | Cmd::Reopen
    );
    let ids = review_targets(app);
    if needs_target && ids.is_empty() {
        toast(app, Toast::info("move to a match first (j/k), or select some with Space"));
        return vec![];
    }
    let with_ids = |e: Effect| match e {
        Effect::Review { to, decision, .. } => Effect::Review { ids: ids.clone(), to, decision },
        other => other,
    };
    let form = |to, exclude, reasons: &'static [&'static str]| {
        Mode::Decision(DecisionForm {
            to,
            exclude,
            ids: ids.clone(),
            reasons,
            reason: 0,
            note: TextInput::default(),
        })
    };
    match cmd {
        Cmd::Confirm => vec![with_ids(decide(MatchStatus::Confirmed))],
        // Handing matches to legal ends their review: ask first, with a note for legal.
        Cmd::Escalate => {
            app.mode = form(MatchStatus::Escalated, false, &[]);
            vec![]
        }
        Cmd::Reopen => vec![with_ids(decide(MatchStatus::Pending))],
        Cmd::Dismiss => {
            app.mode = form(MatchStatus::Dismissed, false, DISMISS_REASONS);
            vec![]
        }
        Cmd::DismissExclude => {
            app.mode = form(MatchStatus::Dismissed, true, DISMISS_REASONS);
            vec![]
        }
        Cmd::Dispute => {
            app.mode = form(MatchStatus::Disputed, false, DISPUTE_REASONS);
            vec![]
        }
        Cmd::Undo => {
            if let Some(ids) = app.review.undo.pop() {
                return vec![Effect::Undo { ids }];
            }
            // Nothing decided in this session: the current match's last decision, if it is
            // this reviewer's (or an auto-rule's). Another reviewer's stays theirs.
            let current = app.review_current().map(|m| (m.id.clone(), m.review.clone()));
            match current {
                Some((id, Some(r))) if r.who == app.who || r.who == RULE_ACTOR => {
                    vec![Effect::Undo { ids: vec![id] }]
                }
                Some((_, Some(r))) => {
                    let msg = format!(
                        "nothing of yours to undo: the last decision here is {}'s ({}); \
                         o reopens the match",
                        r.who,
                        crate::catalog::date::utc_iso(r.at_ms)
                    );
                    toast(app, Toast::info(msg));
                    vec![]
                }
                _ => {
                    toast(app, Toast::info("nothing to undo"));
                    vec![]
                }
            }
        }
        Cmd::Mark => {
            let rows = app.review_rows();
            let ids: Vec<String> = match rows.get(app.review.cursor) {
                Some(ReviewRow::Match(i)) => vec![app.data.matches[*i].id.clone()],
                // The upload's matches the list shows (the rows after it), not those the filter
                // hides: a bulk decision must only touch what the reviewer can see.
                Some(ReviewRow::Upload(_)) => rows[app.review.cursor + 1..]
                    .iter()
                    .map_while(|r| match r {
                        ReviewRow::Match(i) => Some(app.data.matches[*i].id.clone()),
                        ReviewRow::Upload(_) => None,
                    })
                    .collect(),
                None => vec![],
            };
            let all_marked = ids.iter().all(|id| app.review.marked.contains(id));
            for id in ids {
                if all_marked {
                    app.review.marked.remove(&id);
                } else {
                    app.review.marked.insert(id);
                }
            }
            move_cursor(app, 1)
        }
        Cmd::NextPending | Cmd::PrevPending => {
            let rows = app.review_rows();
            let n = rows.len();
            let forward = cmd == Cmd::NextPending;
            let found = (1..=n).map(|k| {
                if forward { (app.review.cursor + k) % n } else { (app.review.cursor + n * 2 - k) % n }
            })
            .find(|&i| matches!(rows[i], ReviewRow::Match(m) if app.data.matches[m].status == MatchStatus::Pending));
            match found {
                Some(i) => app.review.cursor = i,
                None => toast(app, Toast::ok("no pending matches")),
            }
            vec![]
        }
        Cmd::Scan => open_picker(app, PickFor::Scan, None),
        Cmd::AttachRights => attach_rights(app),
        Cmd::PlayUpload => play(app, Side::Upload),
        Cmd::PlayReference => play(app, Side::Reference),
        _ => vec![],
    }
}

/// Open the rights form for the match under the cursor, its scope prefilled with the
/// region's series, episode and reference (episode) time range.
fn attach_rights(app: &mut App) -> Vec<Effect> {
    let Some(m) = app.review_current().cloned() else {
        toast(app, Toast::info("move to a match first (j/k): rights attach to one match region"));
        return vec![];
    };
    let Some(ep) = app.data.episode(&m.episode) else {
        let text =
            format!("episode {} of match {} is not in the catalog any more", m.episode, m.id);
        toast(app, Toast::error(text));
        return vec![];
    };
    // A scan's last hop may end a hair past the episode; the range must lie inside it.
    let end =
        if ep.duration.0 > 0.0 { m.episode_end.0.min(ep.duration.0) } else { m.episode_end.0 };
    let mut raw = rights_defaults();
    raw.set("series", ep.series.clone())
        .set("episode", ep.id.clone())
        .set("start_s", format!("{:.3}", m.episode_start.0.max(0.0)))
        .set("end_s", format!("{end:.3}"));
    let mut form = new_form(None, &raw, &app.data.lookup);
    form.for_match = Some(m.id);
    app.mode = Mode::RightsForm(form);
    vec![]
}

/// A click on the selected match's timeline: set the play position inside its region (the
/// upload bar maps directly, the episode bar through the region's offset). False when the
/// click was not on a bar.
fn seek_click(app: &mut App, col: u16, row: u16) -> bool {
    let Some(m) = app.review_current().cloned() else { return false };
    let area = view::review_timeline_area(app);
    let lens = (
        app.data.upload(&m.upload).map_or(m.upload_end.0, |u| u.duration.0),
        app.data.episode(&m.episode).map_or(m.episode_end.0, |e| e.duration.0),
    );
    let Some((bar, t)) = crate::tui::widgets::timeline::time_at(area, lens, col, row) else {
        return false;
    };
    let t = if bar == 2 { m.upload_start.0 + (t - m.episode_start.0) } else { t };
    let t = t.clamp(m.upload_start.0, m.upload_end.0.max(m.upload_start.0));
    app.review.seek = Some((m.id.clone(), Seconds(t)));
    let at = crate::tui::widgets::timeline::short_hms(t);
    toast(app, Toast::info(format!("play position {at} in the upload (p/P play from there)")));
    true
}

/// Ask the runtime to play one side of the match under the cursor.
fn play(app: &mut App, side: Side) -> Vec<Effect> {
    let Some(m) = app.review_current().cloned() else {
        toast(
            app,
            Toast::info(format!("move to a match first (j/k) to play its {}", side.as_str())),
        );
        return vec![];
    };
    // A click on the timeline moves the start into the region (both sides by the same offset).
    let off = app.review.seek_in(&m).map_or(0.0, |t| (t.0 - m.upload_start.0).max(0.0));
    let req = match side {
        Side::Upload => app.data.upload(&m.upload).map(|u| PlayRequest {
            side,
            file: PathBuf::from(&u.path),
            audio_stream: None,
            start: Seconds(m.upload_start.0 + off),
            duration: Seconds((m.duration().0 - off).max(0.0)),
        }),
        Side::Reference => app.data.episode(&m.episode).map(|e| PlayRequest {
            side,
            file: e.source_path(),
            audio_stream: Some(e.audio_stream),
            start: Seconds(m.episode_start.0 + off),
            duration: Seconds((m.episode_end.0 - m.episode_start.0 - off).max(0.0)),
        }),
    };
    match req {
        Some(req) => vec![Effect::Play(req)],
        None => {
            let text =
                format!("the {} of match {} is not in the catalog any more", side.as_str(), m.id);
            toast(app, Toast::error(text));
            vec![]
        }
    }
}

fn on_rights(app: &mut App, cmd: Cmd) -> Vec<Effect> {
    let current = app.rights_rows().get(app.rights.cursor).map(|&i| app.data.rights[i].clone());
    match cmd {
        Cmd::AddRights => {
            let mut raw = rights_defaults();
            if let [only] = app.data.series.as_slice() {
                raw.set("series", only.name.clone());
            }
            app.mode = Mode::RightsForm(new_form(None, &raw, &app.data.lookup));
        }
        Cmd::EditRights => match current {
            Some(r) => {
                let raw = RawRecord::from_record(&r);
                app.mode = Mode::RightsForm(new_form(Some(r.rights_id), &raw, &app.data.lookup));
            }
            None => toast(app, Toast::info("no record here: a adds one")),
        },
        Cmd::DeleteRights => {
            if let Some(r) = current {
                app.mode = Mode::Confirm(Confirm::DeleteRights(r.rights_id));
            }
        }
        Cmd::ImportRights => return open_picker(app, PickFor::ImportRights, None),
        _ => {}
    }
    vec![]
}

/// What a new record starts with: worldwide.
fn rights_defaults() -> RawRecord {
    let mut raw = RawRecord::default();
    raw.set("territories", "WW").set("territory_mode", "include");
    raw
}

fn new_form(
    editing: Option<String>,
    raw: &RawRecord,
    lookup: &crate::rights::Lookup,
) -> RightsForm {
    let fields = COLUMNS.iter().map(|c| (*c, TextInput::new(raw.get(c)))).collect();
    let mut form = RightsForm {
        editing,
        for_match: None,
        fields,
        cursor: 1,
        errors: Default::default(),
        general: Vec::new(),
    };
    validate_form(&mut form, lookup);
    form
}

/// Validate the form as `rights add` would (all problems, by column).
fn validate_form(form: &mut RightsForm, lookup: &crate::rights::Lookup) {
    form.errors.clear();
    form.general.clear();
    if let Err(errs) = parse_record(&form.raw(), lookup) {
        for (col, msg) in errs {
            form.errors.entry(col).or_insert(msg);
        }
    }
}

fn on_reports(app: &mut App, cmd: Cmd) -> Vec<Effect> {
    let row = app.reports.cursor;
    let cycle = |cur: Option<usize>, len: usize, d: isize| -> Option<usize> {
        // None, 0, 1, .., len-1, None, ...
        let pos = cur.map_or(0, |i| i as isize + 1);
        let n = len as isize + 1;
        let next = (pos + d).rem_euclid(n);
        (next > 0).then(|| next as usize - 1)
    };
    match (cmd, row) {
        (Cmd::Open | Cmd::FocusLeft | Cmd::FocusRight, 0..=4) => {
            let s = crate::catalog::MatchStatus::ALL[row];
            if !app.reports.statuses.remove(&s) {
                app.reports.statuses.insert(s);
            }
        }
        (Cmd::Open | Cmd::FocusRight, 5) => {
            app.reports.upload = cycle(app.reports.upload, app.data.uploads.len(), 1)
        }
        (Cmd::FocusLeft, 5) => {
            app.reports.upload = cycle(app.reports.upload, app.data.uploads.len(), -1)
        }
        (Cmd::Open | Cmd::FocusRight, 6) => {
            app.reports.series = cycle(app.reports.series, app.data.series.len(), 1)
        }
        (Cmd::FocusLeft, 6) => {
            app.reports.series = cycle(app.reports.series, app.data.series.len(), -1)
        }
        (Cmd::Open, 7) => {
            let since = app.reports.since.clone();
            open_prompt(app, PromptKind::ReportSince, &since);
        }
        (Cmd::Open, 8) => {
            let out = app.reports.out.display().to_string();
            open_prompt(app, PromptKind::ReportPath, &out);
        }
        (Cmd::Open | Cmd::FocusLeft | Cmd::FocusRight, 9) => {
            app.reports.evidence = !app.reports.evidence
        }
        (Cmd::ExportReport, _) => match app.report_filter() {
            Ok(filter) => {
                let out = app.reports.out.clone();
                let evidence = app.reports.evidence;
                toast(app, Toast::info(format!("writing {}", out.display())));
                return vec![Effect::Spawn(JobSpec::ExportReport { filter, out, evidence })];
            }
            Err(e) => toast(app, Toast::error(e)),
        },
        _ => {}
    }
    vec![]
}

fn submit_prompt(app: &mut App, mut p: Prompt) -> Vec<Effect> {
    let text = p.input.text.trim().to_string();
    let paths: Vec<PathBuf> =
        text.split(';').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect();
    let need_path = !matches!(p.kind, PromptKind::ReportSince);
    if need_path && paths.is_empty() {
        p.error = Some("type a path".into());
        app.mode = Mode::Prompt(p);
        return vec![];
    }
    match p.kind {
        PromptKind::ExportDataset => {
            start_job(app, JobSpec::ExportDataset { out: PathBuf::from(&text) })
        }
        PromptKind::SeparateOut => {
            start_job(app, JobSpec::Separate { paths: p.paths, out: PathBuf::from(&text) })
        }
        PromptKind::ReportPath => {
            app.reports.out = PathBuf::from(&text);
            vec![]
        }
        PromptKind::ReportSince => {
            if !text.is_empty()
                && let Err(e) = crate::catalog::date::parse_utc(&text)
            {
                p.error = Some(e);
                app.mode = Mode::Prompt(p);
                return vec![];
            }
            app.reports.since = text;
            vec![]
        }
    }
}

/// Change the catalog snapshot. Rows are positions in it, and a reload (a finished scan or
/// ingest) or a decision can shift them, so the cursors and the report filters follow what
/// they pointed at.
fn new_data(app: &mut App, change: impl FnOnce(&mut Data)) {
    let anchors = Anchors::of(app);
    change(&mut app.data);
    anchors.restore(app);
    clamp_cursors(app);
}

fn on_job(app: &mut App, ev: JobEvent) -> Vec<Effect> {
    match ev {
        JobEvent::Started { id, spec } => {
            if !app.jobs.list.iter().any(|j| j.id == id) {
                app.jobs.list.push(JobView::new(id, spec));
            }
            vec![]
        }
        JobEvent::Progress { id, item, items, stage, units, message, elapsed_ms } => {
            if let Some(j) = app.jobs.list.iter_mut().find(|j| j.id == id) {
                if stage == Some(Stage::Training) && j.stage != stage {
                    j.training_from = Some((units.0, elapsed_ms));
                }
                j.item = item;
                j.items = items;
                j.stage = stage;
                j.units = units;
                j.message = message;
                j.elapsed_ms = elapsed_ms;
            }
            vec![]
        }
        JobEvent::ItemFailed { id, item, reason } => {
            if let Some(j) = app.jobs.list.iter_mut().find(|j| j.id == id) {
                j.failures.push((item, reason));
            }
            vec![]
        }
        JobEvent::Finished { id, result, elapsed_ms } => {
            let Some(j) = app.jobs.list.iter_mut().find(|j| j.id == id) else { return vec![] };
            j.elapsed_ms = elapsed_ms;
            j.result = Some(result.clone());
            if matches!(result, JobResult::Done { .. }) {
                j.items.0 = j.items.1;
            }
            let spec = j.spec.clone();
            let title = spec.title();
            let t = match &result {
                JobResult::Done { summary, output } => {
                    if let (JobSpec::ExportReport { .. }, Some(out)) = (&spec, output) {
                        app.reports.last = Some((out.clone(), summary.clone()));
                    }
                    Toast::ok(format!("{title}: {summary}"))
                }
                JobResult::Cancelled => Toast::info(format!("{title}: cancelled")),
                JobResult::Failed(e) => Toast::error(format!("{title}: {e}")),
            };
            toast(app, t);
            // Only jobs that write the catalog change what the screens show.
            match spec {
                JobSpec::Ingest { .. } | JobSpec::Scan { .. } | JobSpec::ImportRights { .. } => {
                    vec![Effect::Reload]
                }
                JobSpec::ExportDataset { .. }
                | JobSpec::ExportReport { .. }
                | JobSpec::Separate { .. }
                | JobSpec::Train(_) => vec![],
            }
        }
    }
}

/// Ask for the spectrograms of the match under the review cursor when it changed.
fn sync_preview(app: &mut App) -> Option<Effect> {
    if app.screen != Screen::Review {
        return None;
    }
    let current = app.review_current().cloned();
    let id = current.as_ref().map(|m| m.id.clone());
    if id == app.review.preview_for {
        return None;
    }
    app.review.preview_for = id;
    app.review.preview = None;
    let m = current?;
    let (Some(upload), Some(ep)) = (app.data.upload(&m.upload), app.data.episode(&m.episode))
    else {
        let gone = Err("not in the catalog any more".to_string());
        app.review.preview =
            Some(Preview { match_id: m.id.clone(), upload: gone.clone(), reference: gone });
        return None;
    };
    let len = (m.upload_end.0 - m.upload_start.0)
        .min(m.episode_end.0 - m.episode_start.0)
        .clamp(0.0, PREVIEW_MAX_S);
    Some(Effect::Preview(PreviewRequest {
        match_id: m.id.clone(),
        upload: (PathBuf::from(&upload.path), m.upload_start.0, m.upload_start.0 + len),
        reference: (ep.source_path(), ep.audio_stream, m.episode_start.0, m.episode_start.0 + len),
    }))
}

/// Handy for tests and the runtime: the key event of a plain key press.
pub fn key(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// Handy for tests: the key events of typing `text`.
pub fn typed(text: &str) -> Vec<Action> {
    text.chars().map(|c| key(KeyCode::Char(c))).collect()
}
