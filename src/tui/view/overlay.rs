//! Overlays drawn over the screen: help, palette, prompts, the file picker, the decision
//! form, the rights form and questions.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};

use super::{fit, fit_left, scroll_offset};
use crate::tui::app::{App, Confirm, Mode, Picker, TextInput};
use crate::tui::keymap;
use crate::tui::theme::Theme;

fn popup(area: Rect, w: u16, h: u16) -> Rect {
    area.centered(Constraint::Length(w.min(area.width)), Constraint::Length(h.min(area.height)))
}

fn frame<'a>(title: impl Into<Line<'a>>, t: &Theme) -> Block<'a> {
    Block::default().borders(Borders::ALL).title(title).border_style(t.focus_border())
}

/// A text field with a visible cursor (a reversed cell).
fn input_line<'a>(input: &'a TextInput, focused: bool, t: &Theme) -> Line<'a> {
    let chars: Vec<char> = input.text.chars().collect();
    let before: String = chars[..input.cursor.min(chars.len())].iter().collect();
    let at: String = chars.get(input.cursor).map_or(" ".into(), |c| c.to_string());
    let after: String = chars.iter().skip(input.cursor + 1).collect();
    let cursor = if focused {
        t.cursor().add_modifier(ratatui::style::Modifier::REVERSED)
    } else {
        t.text()
    };
    Line::from(vec![Span::raw(before), Span::styled(at, cursor), Span::raw(after)])
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    match &app.mode {
        Mode::Normal => {}
        Mode::Filter => {
            // The filter is typed on the status line.
            let c = super::chrome(area);
            let text = match app.screen {
                crate::tui::app::Screen::Library => &app.library.filter,
                crate::tui::app::Screen::Review => &app.review.filter,
                _ => &app.rights.filter,
            };
            Clear.render(c.status, buf);
            let mut line = input_line(text, true, t);
            line.spans.insert(0, Span::styled(" / ", t.key()));
            line.render(c.status, buf);
        }
        Mode::Help(h) => {
            let r = popup(area, 76, area.height.saturating_sub(4));
            Clear.render(r, buf);
            let title = if h.filter.text.is_empty() && !h.typing {
                " Keys (/ filters, Esc closes) ".to_string()
            } else {
                format!(" Keys matching /{} ", h.filter.text)
            };
            let block = frame(title, t);
            let inner = block.inner(r);
            block.render(r, buf);
            let mut lines: Vec<Line> = Vec::new();
            for (title, entries) in keymap::help_sections(&app.keymap, &h.filter.text) {
                lines.push(Line::styled(title, t.title()));
                for (keys, label) in entries {
                    lines.push(Line::from(vec![
                        Span::styled(format!("  {keys:<22}"), t.key()),
                        Span::raw(label),
                    ]));
                }
            }
            let skip = h.scroll.min(lines.len().saturating_sub(1));
            Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()).render(inner, buf);
        }
        Mode::Palette(p) => {
            let entries = keymap::palette_entries(app, &p.query.text);
            let extra = u16::from(p.error.is_some());
            // At least 5 rows, at most what the screen has below its top two (clamp would
            // panic on a terminal under 9 rows).
            let h = (entries.len() as u16 + 3 + extra).max(5).min(area.height.saturating_sub(4));
            let r = Rect::new(
                area.x + area.width.saturating_sub(60) / 2,
                area.y + 2,
                60.min(area.width),
                h,
            )
            .intersection(area);
            Clear.render(r, buf);
            let block = frame(" Commands ", t);
            let inner = block.inner(r);
            block.render(r, buf);
            let mut q = input_line(&p.query, true, t);
            q.spans.insert(0, Span::styled(": ", t.key()));
            q.render(Rect::new(inner.x, inner.y, inner.width, 1), buf);
            if let Some(e) = &p.error {
                let w = usize::from(inner.width);
                buf.set_string(inner.x, inner.y + 1, fit(&format!("✗ {e}"), w), t.error());
            }
            let list = Rect::new(
                inner.x,
                inner.y + 1 + extra,
                inner.width,
                inner.height.saturating_sub(1 + extra),
            );
            let vis = usize::from(list.height);
            let off = scroll_offset(p.cursor, vis);
            let w = usize::from(list.width);
            for (i, (label, keys, _)) in entries.iter().enumerate().skip(off).take(vis) {
                let y = list.y + (i - off) as u16;
                let style = if i == p.cursor { t.cursor() } else { t.text() };
                let room = w.saturating_sub(keys.chars().count() + 1);
                buf.set_string(list.x, y, format!("{:<room$} ", fit(label, room)), style);
                buf.set_string(list.x + room as u16 + 1, y, keys, style.patch(t.key()));
            }
            if entries.is_empty() {
                buf.set_string(list.x, list.y, "no command matches", t.dim());
            }
        }
        Mode::Prompt(p) => {
            let r = popup(area, 70, if p.error.is_some() { 5 } else { 4 });
            Clear.render(r, buf);
            let block = frame(format!(" {} ", p.kind.question()), t);
            let inner = block.inner(r);
            block.render(r, buf);
            let mut lines = vec![input_line(&p.input, true, t)];
            if let Some(e) = &p.error {
                lines.push(Line::styled(format!("✗ {e}"), t.error()));
            }
            lines.push(Line::styled("Enter ok · Esc cancel", t.dim()));
            Paragraph::new(lines).render(inner, buf);
        }
        Mode::Picker(pk) => picker(pk, area, buf, t),
        Mode::Decision(d) => {
            let h = d.reasons.len() as u16 + 6;
            let r = popup(area, 60, h);
            Clear.render(r, buf);
            let what = match (d.to, d.exclude) {
                (crate::catalog::MatchStatus::Dismissed, true) => "Dismiss and exclude",
                (crate::catalog::MatchStatus::Dismissed, false) => "Dismiss",
                (crate::catalog::MatchStatus::Disputed, _) => "Dispute",
                (crate::catalog::MatchStatus::Escalated, _) => "Escalate",
                _ => "Decide",
            };
            let n = d.ids.len();
            let block = frame(format!(" {what} {n} match{} ", if n == 1 { "" } else { "es" }), t);
            let inner = block.inner(r);
            block.render(r, buf);
            let mut lines = vec![if d.reasons.is_empty() {
                Line::styled("Hand to legal for a formal notice (ends the review):", t.dim())
            } else {
                Line::styled("Reason (↑/↓):", t.dim())
            }];
            for (i, reason) in d.reasons.iter().enumerate() {
                let (mark, style) =
                    if i == d.reason { ("▸ ", t.cursor()) } else { ("  ", t.text()) };
                let default = if i == 0 { " [default]" } else { "" };
                lines.push(Line::styled(format!("{mark}{reason}{default}"), style));
            }
            let mut note = input_line(&d.note, true, t);
            note.spans.insert(0, Span::styled("Note: ", t.dim()));
            lines.push(note);
            lines.push(Line::styled("Enter apply · Esc cancel", t.dim()));
            Paragraph::new(lines).render(inner, buf);
        }
        Mode::RightsForm(form) => {
            let r = popup(area, 90, area.height.saturating_sub(2));
            Clear.render(r, buf);
            let title = match (&form.editing, &form.for_match) {
                (Some(id), _) => format!(" Edit rights record {id} "),
                (None, Some(m)) => format!(" New rights record for match {m} "),
                (None, None) => " New rights record ".to_string(),
            };
            let block = frame(title, t);
            let inner = block.inner(r);
            block.render(r, buf);
            let footer = 1 + form.general.len() as u16;
            let list =
                Rect::new(inner.x, inner.y, inner.width, inner.height.saturating_sub(footer));
            let vis = usize::from(list.height);
            let off = scroll_offset(form.cursor, vis);
            for (i, (col, input)) in form.fields.iter().enumerate().skip(off).take(vis) {
                let y = list.y + (i - off) as u16;
                let focused = i == form.cursor;
                let req = crate::rights::REQUIRED.contains(col);
                let label = format!("{}{:<16}", if req { "*" } else { " " }, col);
                let label_style = if focused { t.key() } else { t.dim() };
                buf.set_string(list.x, y, &label, label_style);
                let vx = list.x + 18;
                let vw = 30.min(list.width.saturating_sub(18));
                let line = if focused {
                    input_line(input, true, t)
                } else {
                    Line::raw(fit(&input.text, usize::from(vw)))
                };
                line.render(Rect::new(vx, y, vw, 1), buf);
                let ex = vx + vw + 1;
                if let Some(e) = form.errors.get(*col) {
                    let ew = usize::from(list.right().saturating_sub(ex));
                    buf.set_string(ex, y, fit(&format!("✗ {e}"), ew), t.error());
                }
            }
            let mut y = list.bottom();
            for g in &form.general {
                Paragraph::new(format!("✗ {g}"))
                    .style(t.error())
                    .wrap(Wrap { trim: true })
                    .render(Rect::new(inner.x, y, inner.width, 1), buf);
                y += 1;
            }
            let status = if form.errors.is_empty() {
                Span::styled("✓ valid", t.ok())
            } else {
                Span::styled(format!("✗ {} problem(s)", form.errors.len()), t.error())
            };
            Line::from(vec![
                status,
                Span::styled("  * required · Tab/↑/↓ move · C-s save · Esc cancel", t.dim()),
            ])
            .render(
                Rect::new(inner.x, y.min(inner.bottom().saturating_sub(1)), inner.width, 1),
                buf,
            );
        }
        Mode::Confirm(c) => {
            let (title, body) = match c {
                Confirm::Quit => {
                    let n = app.jobs.list.iter().filter(|j| j.running()).count();
                    let body = if app.cancelling {
                        format!(
                            "{n} job{} stopping.\n\nc  quit now, without waiting\nEsc  back",
                            if n == 1 { " is" } else { "s are" }
                        )
                    } else {
                        format!(
                            "{n} job{} still running.\n\nc  cancel them and quit\nw  quit when they finish\nEsc  back",
                            if n == 1 { " is" } else { "s are" }
                        )
                    };
                    (" Quit? ".to_string(), body)
                }
                Confirm::DeleteRights(id) => (
                    " Delete? ".to_string(),
                    format!(
                        "Delete rights record {id}? The audit log keeps a note of it.\n\ny  delete\nn  keep"
                    ),
                ),
            };
            let r = popup(area, 50, 8);
            Clear.render(r, buf);
            let block = frame(title, t);
            let inner = block.inner(r);
            block.render(r, buf);
            Paragraph::new(body).render(inner, buf);
        }
    }
}

/// The file picker: the folder, its entries (folders first, `▸` the cursor, `●` marks), then the path
/// field when typing, why the last step was refused, and what is marked or left out.
fn picker(pk: &Picker, area: Rect, buf: &mut Buffer, t: &Theme) {
    let r = popup(area, 80, area.height.saturating_sub(4));
    Clear.render(r, buf);
    let block = frame(format!(" {} ", pk.purpose.title()), t);
    let inner = block.inner(r);
    block.render(r, buf);
    let w = usize::from(inner.width);
    let dir = pk.dir.as_ref().map_or_else(|| "reading…".to_string(), |d| d.display().to_string());
    buf.set_string(inner.x, inner.y, fit_left(&dir, w), t.title());
    let mut footer: Vec<Line> = Vec::new();
    if pk.typing {
        let mut line = input_line(&pk.input, true, t);
        line.spans.insert(0, Span::styled("Path: ", t.key()));
        footer.push(line);
    }
    if let Some(e) = &pk.error {
        footer.push(Line::styled(fit(&format!("✗ {e}"), w), t.error()));
    }
    let mut status = Vec::new();
    if !pk.marked.is_empty() {
        status.push(format!("{} marked", pk.marked.len()));
    }
    if pk.hidden > 0 {
        let what = match pk.purpose {
            crate::tui::app::PickFor::ImportRights => "not CSV",
            _ => "not media",
        };
        status.push(format!("{} hidden (dot files, {what})", pk.hidden));
    }
    if !pk.typing {
        status.push("Tab types a path".into());
    }
    footer.push(Line::styled(fit(&status.join(" · "), w), t.dim()));
    let list_h = inner.height.saturating_sub(1 + footer.len() as u16);
    let list = Rect::new(inner.x, inner.y + 1, inner.width, list_h);
    if pk.entries.is_empty() && pk.dir.is_some() {
        buf.set_string(list.x, list.y, "(no folders or files to offer here)", t.dim());
    }
    let vis = usize::from(list.height);
    let off = scroll_offset(pk.cursor, vis);
    for (i, e) in pk.entries.iter().enumerate().skip(off).take(vis) {
        let y = list.y + (i - off) as u16;
        let here = i == pk.cursor && !pk.typing;
        let base = if here { t.cursor() } else { t.text() };
        buf.set_string(list.x, y, " ".repeat(w), base);
        if here {
            buf.set_string(list.x, y, "▸", base);
        }
        if pk.marked.contains(&e.path) {
            buf.set_string(list.x + 1, y, "●", base.patch(t.marked()));
        }
        let name = if e.is_dir { format!("{}/", e.name) } else { e.name.clone() };
        let style = if e.is_dir { base.patch(t.title()) } else { base };
        buf.set_string(list.x + 3, y, fit(&name, w.saturating_sub(3)), style);
    }
    let fy = list.bottom();
    for (k, line) in footer.into_iter().enumerate() {
        line.render(Rect::new(inner.x, fy + k as u16, inner.width, 1), buf);
    }
}
