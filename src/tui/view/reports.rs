//! Reports: filters for the match report, where it goes, and where the last one went.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use super::{fit_left, pane};
use crate::catalog::MatchStatus;
use crate::tui::app::App;

fn split(body: Rect) -> (Rect, Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body);
    (left, right)
}

/// The filter rows: the statuses, a blank line, then upload, series, since, file and evidence.
const STATUS_ROWS: usize = MatchStatus::ALL.len();

/// The screen line (from the list's top) of filter row `i`.
fn line_of(i: usize) -> usize {
    if i < STATUS_ROWS { i } else { i + 1 }
}

/// The filter row on screen line `line` (none on the blank line between the statuses and the
/// rest).
pub fn row_at(line: usize) -> Option<usize> {
    match line {
        l if l < STATUS_ROWS => Some(l),
        l if l == STATUS_ROWS => None,
        l => Some(l - 1),
    }
}

/// Inner area of the filter rows.
pub fn list_area(body: Rect) -> Rect {
    let (left, _) = split(body);
    Rect::new(left.x + 1, left.y + 1, left.width.saturating_sub(2), left.height.saturating_sub(2))
}

pub fn render(app: &App, body: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let (left, right) = split(body);
    let r = &app.reports;
    let block = pane(" Report filters ", true, t);
    let inner = block.inner(left);
    block.render(left, buf);
    let w = usize::from(inner.width);
    // The rows that fit (a short terminal shows fewer; drawing past the buffer would panic).
    let y_of = |i: usize| {
        let y = inner.y.saturating_add(line_of(i) as u16);
        (y < inner.bottom()).then_some(y)
    };
    for (i, s) in MatchStatus::ALL.iter().enumerate() {
        let Some(y) = y_of(i) else { break };
        let on = r.statuses.contains(s);
        let (glyph, st) = t.status(*s);
        let base = if r.cursor == i { t.cursor() } else { t.text() };
        buf.set_stringn(inner.x, y, " ".repeat(w), w, base);
        buf.set_stringn(inner.x, y, if on { "[x] " } else { "[ ] " }, w, base);
        buf.set_stringn(inner.x + 4, y, glyph, w.saturating_sub(4), base.patch(st));
        buf.set_stringn(inner.x + 6, y, s.as_str(), w.saturating_sub(6), base);
    }
    let upload = r.upload.and_then(|i| app.data.uploads.get(i)).map_or("any".to_string(), |u| {
        format!("{} ({})", u.path.rsplit('/').next().unwrap_or(&u.path), u.id)
    });
    let series =
        r.series.and_then(|i| app.data.series.get(i)).map_or("any".to_string(), |s| s.name.clone());
    let since = if r.since.is_empty() { "any time".to_string() } else { r.since.clone() };
    let out = r.out.display().to_string();
    let evidence = if r.evidence {
        format!("[x] clips into {}", crate::report::evidence::dir_beside(&r.out).display())
    } else {
        "[ ] no clips".to_string()
    };
    let rest = [
        ("upload", format!("‹ {upload} ›")),
        ("series", format!("‹ {series} ›")),
        ("since", since),
        ("file", out),
        ("evidence", evidence),
    ];
    for (k, (label, value)) in rest.iter().enumerate() {
        let i = STATUS_ROWS + k;
        let Some(y) = y_of(i) else { break };
        let base = if r.cursor == i { t.cursor() } else { t.text() };
        buf.set_stringn(inner.x, y, " ".repeat(w), w, base);
        buf.set_stringn(inner.x, y, format!("{label:<8}"), w, base.patch(t.dim()));
        buf.set_stringn(
            inner.x + 9,
            y,
            fit_left(value, w.saturating_sub(9)),
            w.saturating_sub(9),
            base,
        );
    }
    let hint_y = inner.y.saturating_add(line_of(STATUS_ROWS + rest.len()) as u16 + 1);
    if hint_y < inner.bottom() {
        Paragraph::new(
            "Space toggles a status (none ticked: all) and evidence clips; h/l choose upload \
             and series; Enter edits since and file; x writes the CSV.",
        )
        .style(t.dim())
        .wrap(Wrap { trim: true })
        .render(Rect::new(inner.x, hint_y, inner.width, inner.bottom() - hint_y), buf);
    }

    let block = pane(" Report ", false, t);
    let rin = block.inner(right);
    block.render(right, buf);
    let mut lines = Vec::new();
    match app.report_filter() {
        Ok(_) => {
            let n = app.report_preview().unwrap_or(0);
            lines.push(Line::from(vec![
                Span::styled(format!("{n}"), t.title()),
                Span::raw(format!(" match region{} selected", if n == 1 { "" } else { "s" })),
            ]));
        }
        Err(e) => lines.push(Line::styled(e, t.error())),
    }
    lines.push(Line::styled(
        "one row per match x ownership record; regions without an owner get one row with owner_missing = true",
        t.dim(),
    ));
    lines.push(Line::from(""));
    match &r.last {
        Some((path, summary)) => {
            lines.push(Line::styled("Last export", t.title()));
            lines.push(Line::styled(format!("✓ {}", path.display()), t.ok()));
            lines.push(Line::from(summary.clone()));
        }
        None => lines.push(Line::styled("Not exported yet in this session.", t.dim())),
    }
    Paragraph::new(lines).wrap(Wrap { trim: false }).render(rin, buf);
}
