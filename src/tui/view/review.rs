//! Review: uploads and their match regions on the left; on the right the selected region's
//! facts, its timeline, spectrograms of both sides and the rights records that apply.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{fit, fit_left, fit_pad, pane, scroll_offset};
use crate::catalog::date::{Date, utc_iso};
use crate::catalog::{MatchRegion, MatchStatus};
use crate::tui::app::{App, ReviewRow};
use crate::tui::widgets::spectrogram::Spectrogram;
use crate::tui::widgets::timeline::{Timeline, TimelineSpan, short_hms};

fn split(body: Rect) -> (Rect, Rect) {
    let [list, detail] =
        Layout::horizontal([Constraint::Percentage(42), Constraint::Percentage(58)]).areas(body);
    (list, detail)
}

/// Inner area of the list.
pub fn list_area(body: Rect) -> Rect {
    let (list, _) = split(body);
    Rect::new(list.x + 1, list.y + 1, list.width.saturating_sub(2), list.height.saturating_sub(2))
}

fn match_areas(detail: Rect) -> [Rect; 4] {
    Layout::vertical([
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Min(4),
        Constraint::Length(6),
    ])
    .areas(detail)
}

/// Inner area of the selected match's timeline (where a click seeks).
pub fn timeline_area(body: Rect) -> Rect {
    let (_, detail) = split(body);
    let [_, timeline, _, _] = match_areas(detail);
    pane("", false, &crate::tui::theme::Theme::mono()).inner(timeline)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub fn render(app: &App, body: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let (list, detail) = split(body);
    let rows = app.review_rows();
    let rv = &app.review;
    let pending = app.data.matches.iter().filter(|m| m.status == MatchStatus::Pending).count();
    let mut title = format!(" Uploads · {pending} pending ");
    if !rv.marked.is_empty() {
        title.push_str(&format!("· {} selected ", rv.marked.len()));
    }
    if !rv.filter.text.is_empty() {
        title.push_str(&format!("/{} ", rv.filter.text));
    }
    let block = pane(title, true, t);
    let inner = block.inner(list);
    block.render(list, buf);
    if rows.is_empty() {
        Paragraph::new("No uploads scanned yet.\n\ns  scan an upload file or folder")
            .style(t.dim())
            .render(inner, buf);
    }
    let h = usize::from(inner.height);
    let w = usize::from(inner.width);
    let off = scroll_offset(rv.cursor, h);
    for (i, row) in rows.iter().enumerate().skip(off).take(h) {
        let y = inner.y + (i - off) as u16;
        let base = if i == rv.cursor { t.cursor() } else { t.text() };
        buf.set_string(inner.x, y, " ".repeat(w), base);
        match row {
            ReviewRow::Upload(ui) => {
                let u = &app.data.uploads[*ui];
                let ms: Vec<&MatchRegion> =
                    app.data.matches.iter().filter(|m| m.upload == u.id).collect();
                let p = ms.iter().filter(|m| m.status == MatchStatus::Pending).count();
                let tail = format!(
                    " {:>5} {} match{} {p}?",
                    short_hms(u.duration.0),
                    ms.len(),
                    if ms.len() == 1 { "" } else { "es" }
                );
                let room = w.saturating_sub(tail.chars().count() + 2);
                buf.set_string(
                    inner.x,
                    y,
                    format!("▾ {}", fit_pad(file_name(&u.path), room)),
                    base.patch(t.title()),
                );
                buf.set_string(inner.x + 2 + room as u16, y, tail, base.patch(t.dim()));
            }
            ReviewRow::Match(mi) => {
                let m = &app.data.matches[*mi];
                let (glyph, st) = t.status(m.status);
                let mark = if rv.marked.contains(&m.id) { "●" } else { " " };
                let ep =
                    app.data.episode(&m.episode).map_or(m.episode.as_str(), |e| e.title.as_str());
                let text = format!(
                    "{}-{} {:<5} {:.2}{} {}@{}",
                    short_hms(m.upload_start.0),
                    short_hms(m.upload_end.0),
                    match m.stem {
                        crate::catalog::Stem::Background => "bg",
                        other => other.as_str(),
                    },
                    m.score,
                    &m.band.as_str()[..1].to_uppercase(),
                    ep,
                    short_hms(m.episode_start.0)
                );
                buf.set_string(inner.x + 1, y, mark, base.patch(t.marked()));
                buf.set_string(inner.x + 2, y, glyph, base.patch(st));
                buf.set_string(inner.x + 4, y, fit(&text, w.saturating_sub(4)), base);
            }
        }
    }

    match rows.get(rv.cursor) {
        Some(ReviewRow::Match(mi)) => render_match(app, &app.data.matches[*mi], detail, buf),
        Some(ReviewRow::Upload(ui)) => {
            let u = &app.data.uploads[*ui];
            let block = pane(" Upload ", false, t);
            let din = block.inner(detail);
            block.render(detail, buf);
            let lines = vec![
                Line::styled(file_name(&u.path).to_string(), t.title()),
                Line::styled(fit_left(&u.path, usize::from(din.width)), t.dim()),
                Line::from(format!(
                    "id {} · {} · {:.1} MB",
                    u.id,
                    short_hms(u.duration.0),
                    u.size_bytes as f64 / 1e6
                )),
                Line::from(format!("scanned {}", utc_iso(u.scanned_ms))),
                Line::from(format!(
                    "fingerprint {} · separator {}",
                    u.models.fingerprint,
                    if u.models.separator.is_empty() { "none" } else { &u.models.separator }
                )),
                Line::from(""),
                Line::styled("Space selects all its matches; j/k to a match to review it", t.dim()),
            ];
            Paragraph::new(lines).render(din, buf);
        }
        None => {
            pane(" Match ", false, t).render(detail, buf);
        }
    }
}

fn render_match(app: &App, m: &MatchRegion, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let [facts, timeline, specs, rights] = match_areas(area);
    let ep = app.data.episode(&m.episode);
    let upload = app.data.upload(&m.upload);
    let (glyph, st) = t.status(m.status);

    let block = pane(format!(" Match {} ", m.id), true, t);
    let fin = block.inner(facts);
    block.render(facts, buf);
    let review = match &m.review {
        Some(r) => {
            let mut s = format!("by {} {}", r.who, utc_iso(r.at_ms));
            if let Some(reason) = &r.reason {
                s.push_str(&format!(" · {reason}"));
            }
            if let Some(note) = &r.note {
                s.push_str(&format!(" · \"{note}\""));
            }
            s
        }
        None => "not reviewed yet".into(),
    };
    let lines = vec![
        Line::from(vec![
            Span::styled(format!("{glyph} {}", m.status), st),
            Span::raw("  score "),
            Span::styled(format!("{:.3} {}", m.score, m.band.as_str()), t.band(m.band)),
            Span::raw(format!("  stem {}  {} segments", m.stem, m.segments_voted)),
        ]),
        Line::from(format!(
            "upload  {} {}-{} ({})",
            upload.map_or("?", |u| file_name(&u.path)),
            short_hms(m.upload_start.0),
            short_hms(m.upload_end.0),
            short_hms(m.duration().0)
        )),
        Line::from(format!(
            "episode {} / {} {}-{}",
            ep.map_or("?", |e| e.series.as_str()),
            ep.map_or(m.episode.as_str(), |e| e.title.as_str()),
            short_hms(m.episode_start.0),
            short_hms(m.episode_end.0)
        )),
        Line::styled(fit(&review, usize::from(fin.width)), t.dim()),
    ];
    Paragraph::new(lines).render(fin, buf);

    let block = pane(" Timeline ", false, t);
    let tin = block.inner(timeline);
    block.render(timeline, buf);
    let spans: Vec<TimelineSpan> = app
        .data
        .matches
        .iter()
        .filter(|o| o.upload == m.upload)
        .map(|o| TimelineSpan {
            upload: (o.upload_start.0, o.upload_end.0),
            episode: (o.episode == m.episode).then_some((o.episode_start.0, o.episode_end.0)),
            status: o.status,
            selected: o.id == m.id,
        })
        .collect();
    Timeline {
        upload_len: upload.map_or(m.upload_end.0, |u| u.duration.0),
        episode_len: ep.map_or(m.episode_end.0, |e| e.duration.0),
        spans: &spans,
        marker: app.review.seek_in(m).map(|s| s.0),
        theme: *t,
    }
    .render(tin, buf);

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(specs);
    let preview = app.review.preview.as_ref().filter(|p| p.match_id == m.id);
    for (side, area, title) in [(0, left, " Upload "), (1, right, " Reference ")] {
        let block = pane(title, false, t);
        let sin = block.inner(area);
        block.render(area, buf);
        match preview.map(|p| if side == 0 { &p.upload } else { &p.reference }) {
            Some(Ok(img)) => Spectrogram::new(img, *t).render(sin, buf),
            Some(Err(e)) => {
                Paragraph::new(fit(e, usize::from(sin.width) * 2)).style(t.error()).render(sin, buf)
            }
            None => Paragraph::new("computing…").style(t.dim()).render(sin, buf),
        }
    }

    let date = Date::from_unix_ms(upload.map_or(m.created_ms, |u| m.found_with(u).1));
    let owners = app.data.lookup.rights_for(&app.data.rights, m, date);
    let block = pane(format!(" Rights that apply ({}) ", owners.len()), false, t);
    let rin = block.inner(rights);
    block.render(rights, buf);
    if owners.is_empty() {
        Paragraph::new(vec![
            Line::from("no ownership record covers this range (owner_missing in the report)"),
            Line::from("r records one for exactly this stretch"),
        ])
        .style(t.warn())
        .render(rin, buf);
    }
    for (i, r) in owners.iter().take(usize::from(rin.height)).enumerate() {
        let text = format!(
            "{} {} · {} · {} {}% {} · {}",
            r.rights_id,
            r.rights_holder,
            r.work_title,
            r.rights_type,
            r.share_pct,
            r.territories.join(","),
            r.policy
        );
        buf.set_string(rin.x, rin.y + i as u16, fit(&text, usize::from(rin.width)), t.text());
    }
}
