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
    for (i, s) in MatchStatus::ALL.iter().enumerate() {
        let on = r.statuses.contains(s);
        let (glyph, st) = t.status(*s);
        let base = if r.cursor == i { t.cursor() } else { t.text() };
        buf.set_string(inner.x, inner.y + i as u16, " ".repeat(w), base);
        buf.set_string(inner.x, inner.y + i as u16, if on { "[x] " } else { "[ ] " }, base);
        buf.set_string(inner.x + 4, inner.y + i as u16, glyph, base.patch(st));
        buf.set_string(inner.x + 6, inner.y + i as u16, s.as_str(), base);
    }
    let upload = r.upload.and_then(|i| app.data.uploads.get(i)).map_or("any".to_string(), |u| {
        format!("{} ({})", u.path.rsplit('/').next().unwrap_or(&u.path), u.id)
    });
    let series =
        r.series.and_then(|i| app.data.series.get(i)).map_or("any".to_string(), |s| s.name.clone());
    let since = if r.since.is_empty() { "any time".to_string() } else { r.since.clone() };
    let out = r.out.display().to_string();
    let rest = [
        ("upload", format!("‹ {upload} ›")),
        ("series", format!("‹ {series} ›")),
        ("since", since),
        ("file", out),
    ];
    for (k, (label, value)) in rest.iter().enumerate() {
        let i = 5 + k;
        let y = inner.y + 6 + k as u16;
        let base = if r.cursor == i { t.cursor() } else { t.text() };
        buf.set_string(inner.x, y, " ".repeat(w), base);
        buf.set_string(inner.x, y, format!("{label:<7}"), base.patch(t.dim()));
        buf.set_string(inner.x + 8, y, fit_left(value, w.saturating_sub(8)), base);
    }
    let hint_y = inner.y + 11;
    if hint_y < inner.bottom() {
        Paragraph::new(
            "Space toggles a status (none ticked: all); h/l choose upload and series; Enter \
             edits since and file; x writes the CSV.",
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
