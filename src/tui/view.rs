//! Views: `impl Widget for &App` draws the chrome (tabs, status line, key bar), the current
//! screen (one file each under `view/`) and any overlay. Layout functions are shared with
//! [`crate::tui::update`] so mouse clicks land on what was drawn.

mod jobs;
mod library;
mod overlay;
mod reports;
mod review;
mod rights;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::action::Level;
use super::app::{App, Mode, Screen};
use super::keymap;
use super::theme::Theme;

/// The fixed parts of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chrome {
    /// Tab bar (one row).
    pub tabs: Rect,
    /// The current screen.
    pub body: Rect,
    /// Status line (one row).
    pub status: Rect,
    /// Key bar (one row).
    pub keys: Rect,
}

/// Split the terminal into tab bar, body, status line and key bar.
pub fn chrome(area: Rect) -> Chrome {
    let [tabs, body, status, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    Chrome { tabs, body, status, keys }
}

fn tab_label(i: usize, s: Screen) -> String {
    format!(" {} {} ", i + 1, s.title())
}

/// The screen whose tab is at column `x` of the tab bar.
pub fn tab_at(x: u16) -> Option<Screen> {
    let mut start = 0u16;
    for (i, s) in Screen::ALL.iter().enumerate() {
        let w = tab_label(i, *s).chars().count() as u16;
        if (start..start + w).contains(&x) {
            return Some(*s);
        }
        start += w + 1;
    }
    None
}

/// What a mouse click landed on: a row of one of the lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// Library tree row.
    Tree(usize),
    /// Library pieces row.
    Pieces(usize),
    /// Jobs list entry.
    Jobs(usize),
    /// Review list row.
    Review(usize),
    /// Rights table row.
    Rights(usize),
    /// Reports filter row.
    Reports(usize),
}

/// The first row shown of a list of which `cursor` must be visible in `height` rows.
pub fn scroll_offset(cursor: usize, height: usize) -> usize {
    if height == 0 { 0 } else { cursor.saturating_sub(height - 1) }
}

fn row_in(area: Rect, col: u16, row: u16, cursor: usize, per_row: u16) -> Option<usize> {
    let inside = col >= area.x && col < area.right() && row >= area.y && row < area.bottom();
    if !inside || per_row == 0 {
        return None;
    }
    let visible = usize::from(area.height / per_row);
    Some(scroll_offset(cursor, visible) + usize::from((row - area.y) / per_row))
}

/// The Reports screen's filter lines (inside their border), where a click picks a filter.
pub fn reports_list_area(app: &App) -> Rect {
    reports::list_area(chrome(app.area()).body)
}

/// The Review screen's timeline (inside its border), where a click sets the play position.
pub fn review_timeline_area(app: &App) -> Rect {
    review::timeline_area(chrome(app.area()).body)
}

/// Which list row is at (`col`, `row`) on the current screen.
pub fn hit_test(app: &App, col: u16, row: u16) -> Option<Hit> {
    let body = chrome(app.area()).body;
    let hit = match app.screen {
        Screen::Library => {
            let (tree, pieces) = library::list_areas(body);
            if let Some(i) = row_in(tree, col, row, app.library.tree_cursor, 1) {
                Some(Hit::Tree(i))
            } else {
                row_in(pieces, col, row, app.library.piece_cursor, 1).map(Hit::Pieces)
            }
        }
        Screen::Jobs => row_in(jobs::list_area(body), col, row, app.jobs.cursor, 2).map(Hit::Jobs),
        Screen::Review => {
            row_in(review::list_area(body), col, row, app.review.cursor, 1).map(Hit::Review)
        }
        Screen::Rights => {
            row_in(rights::list_area(body), col, row, app.rights.cursor, 1).map(Hit::Rights)
        }
        Screen::Reports => {
            // Lines, not rows: a blank line separates the statuses from the rest.
            row_in(reports::list_area(body), col, row, 0, 1)
                .and_then(reports::row_at)
                .map(Hit::Reports)
        }
    };
    // Only rows that exist.
    let len = match hit {
        Some(Hit::Tree(_)) => app.library_rows().len(),
        Some(Hit::Pieces(_)) => app.library_pieces().len(),
        Some(Hit::Jobs(_)) => app.jobs.list.len(),
        Some(Hit::Review(_)) => app.review_rows().len(),
        Some(Hit::Rights(_)) => app.rights_rows().len(),
        Some(Hit::Reports(_)) => super::app::REPORT_ROWS,
        None => 0,
    };
    hit.filter(|h| {
        let (Hit::Tree(i)
        | Hit::Pieces(i)
        | Hit::Jobs(i)
        | Hit::Review(i)
        | Hit::Rights(i)
        | Hit::Reports(i)) = *h;
        i < len
    })
}

/// A bordered pane, highlighted when focused.
pub(crate) fn pane<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    Block::default().borders(Borders::ALL).title(title).border_style(if focused {
        theme.focus_border()
    } else {
        theme.border()
    })
}

/// Cut `s` to `w` terminal columns, with `…` when cut. Columns, not chars: a Japanese title's
/// characters take two each, and counting chars let it spill into the next pane.
pub(crate) fn fit(s: &str, w: usize) -> String {
    if s.width() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw > w - 1 {
            break;
        }
        used += cw;
        out.push(c);
    }
    out.push('…');
    out
}

/// [`fit`], padded with spaces to exactly `w` columns (`{:<w$}` pads by chars).
pub(crate) fn fit_pad(s: &str, w: usize) -> String {
    let mut out = fit(s, w);
    let pad = w.saturating_sub(out.width());
    out.extend(std::iter::repeat_n(' ', pad));
    out
}

/// The start of `s` cut off instead of the end (for paths): `…/uploads/up01.mp4`.
pub(crate) fn fit_left(s: &str, w: usize) -> String {
    if s.width() <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut tail = Vec::new();
    let mut used = 0;
    for c in s.chars().rev() {
        let cw = c.width().unwrap_or(0);
        if used + cw > w - 1 {
            break;
        }
        used += cw;
        tail.push(c);
    }
    std::iter::once('…').chain(tail.into_iter().rev()).collect()
}

const THROBBER: [&str; 8] = ["⣾", "⣽", "⣻", "⢿", "⡿", "⣟", "⣯", "⣷"];

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let c = chrome(area);
        let theme = &self.theme;
        render_tabs(self, c.tabs, buf);
        match self.screen {
            Screen::Library => library::render(self, c.body, buf),
            Screen::Jobs => jobs::render(self, c.body, buf),
            Screen::Review => review::render(self, c.body, buf),
            Screen::Rights => rights::render(self, c.body, buf),
            Screen::Reports => reports::render(self, c.body, buf),
        }
        render_status(self, c.status, buf);
        render_keys(self, c.keys, buf, theme);
        overlay::render(self, area, buf);
    }
}

fn render_tabs(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let mut spans = Vec::new();
    for (i, s) in Screen::ALL.iter().enumerate() {
        let style =
            if *s == app.screen { t.title().add_modifier(Modifier::REVERSED) } else { t.text() };
        spans.push(Span::styled(tab_label(i, *s), style));
        spans.push(Span::styled("│", t.dim()));
    }
    Line::from(spans).render(area, buf);
    let right = format!(" aniprint · {} ", app.catalog_dir.display());
    let used: u16 = Screen::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| tab_label(i, *s).chars().count() as u16 + 1)
        .sum();
    let room = usize::from(area.width.saturating_sub(used));
    let right = fit_left(&right, room);
    let x = area.right().saturating_sub(right.chars().count() as u16);
    buf.set_string(x, area.y, right, t.dim());
}

fn render_status(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let running = app.jobs.list.iter().filter(|j| j.running()).count();
    let spin = THROBBER[(app.ticks % THROBBER.len() as u64) as usize];
    let right = match (running, app.loading > 0) {
        (0, false) => String::new(),
        (0, true) => format!(" {spin} reading the catalog "),
        (n, loading) => format!(
            " {spin} {n} job{} running{} ",
            if n == 1 { "" } else { "s" },
            if loading { " · reading the catalog" } else { "" }
        ),
    };
    let room = usize::from(area.width).saturating_sub(right.chars().count());
    let line = match &app.toast {
        Some(shown) => {
            let (glyph, style) = match shown.toast.level {
                Level::Info => ("ℹ", t.text()),
                Level::Ok => ("✓", t.ok()),
                Level::Error => ("✗", t.error()),
            };
            Line::from(Span::styled(fit(&format!(" {glyph} {}", shown.toast.text), room), style))
        }
        None => {
            let d = &app.data;
            let pending = d
                .matches
                .iter()
                .filter(|m| m.status == crate::catalog::MatchStatus::Pending)
                .count();
            let pieces: usize = d.pieces.values().map(Vec::len).sum();
            Line::from(Span::styled(
                fit(
                    &format!(
                        " {} series · {} episodes · {} pieces · {} uploads · {} matches ({} pending) · {} rights records",
                        d.series.len(),
                        d.episodes.len(),
                        pieces,
                        d.uploads.len(),
                        d.matches.len(),
                        pending,
                        d.rights.len()
                    ),
                    room,
                ),
                t.dim(),
            ))
        }
    };
    line.render(area, buf);
    if !right.is_empty() {
        let x = area.right().saturating_sub(right.chars().count() as u16);
        buf.set_string(x, area.y, right, t.warn());
    }
}

fn render_keys(app: &App, area: Rect, buf: &mut Buffer, t: &Theme) {
    let mut spans: Vec<Span> = Vec::new();
    let mut used = 0usize;
    let width = usize::from(area.width);
    // The help key as the keymap has it now (`[tui.keys]` may move it).
    let help = app.keymap.0.iter().find(|b| b.cmd == crate::tui::action::Cmd::Help);
    let more =
        format!(" more {} ", help.and_then(|b| b.keys.first()).map_or("?".into(), |k| k.label()));
    let bindings = keymap::active_bindings(app);
    for (i, bnd) in bindings.iter().enumerate() {
        let key = bnd.keys.first().map(|k| k.label()).unwrap_or_default();
        let w = key.chars().count() + bnd.label.chars().count() + 3;
        let last = i + 1 == bindings.len();
        if used + w + if last { 0 } else { more.chars().count() } > width {
            if matches!(app.mode, Mode::Normal) {
                spans.push(Span::styled(more.clone(), t.dim()));
            }
            break;
        }
        spans.push(Span::styled(format!(" {key}"), t.key()));
        spans.push(Span::styled(format!(" {} ", bnd.label), t.text()));
        used += w;
    }
    Line::from(spans).style(Style::new()).render(area, buf);
}

/// Plain text of a buffer, one line per row, trailing spaces trimmed (for README captures and
/// snapshot tests).
pub fn buffer_text(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..buf.area.width {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let cell = &buf[(buf.area.x + x, buf.area.y + y)];
            let sym = cell.symbol();
            line.push_str(sym);
            skip = sym.width().saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_and_padded_by_terminal_columns() {
        // Two columns a character: "アニメ" is 6 wide.
        assert_eq!(fit("アニメのタイトル", 7), "アニメ…");
        assert_eq!(fit("アニメのタイトル", 8), "アニメ…");
        assert_eq!(fit("アニメ", 6), "アニメ");
        assert_eq!(fit_pad("アニメ", 8), "アニメ  ");
        assert_eq!(fit_pad("アニメのタイトル", 8).width(), 8);
        assert_eq!(fit_left("/アニメ/ep01.mkv", 12), "…メ/ep01.mkv");
        assert_eq!(fit_left("/アニメ/ep01.mkv", 11), "…/ep01.mkv");
        assert_eq!(fit("plain", 3), "pl…");
        assert_eq!(fit("plain", 0), "");
    }
}
