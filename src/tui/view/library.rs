//! Library: series and episodes on the left, the pieces of the selected one on the right.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{fit, fit_left, fit_pad, pane, scroll_offset};
use crate::catalog::PieceStatus;
use crate::tui::app::{App, LibFocus, LibRow};
use crate::tui::widgets::timeline::short_hms;

fn split(body: Rect) -> (Rect, Rect, Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(body);
    let [info, pieces] = Layout::vertical([Constraint::Length(5), Constraint::Min(3)]).areas(right);
    (left, info, pieces)
}

/// Inner areas of the tree and the pieces list (for mouse hits).
pub fn list_areas(body: Rect) -> (Rect, Rect) {
    let (left, _, pieces) = split(body);
    let inner = |r: Rect| {
        Rect::new(r.x + 1, r.y + 1, r.width.saturating_sub(2), r.height.saturating_sub(2))
    };
    let p = inner(pieces);
    // The pieces pane has a header row.
    (inner(left), Rect::new(p.x, p.y + 1, p.width, p.height.saturating_sub(1)))
}

pub fn render(app: &App, body: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let (left, info, right) = split(body);
    let rows = app.library_rows();
    let lib = &app.library;

    // Tree.
    let title = if lib.filter.text.is_empty() {
        " Series / episodes ".to_string()
    } else {
        format!(" Series / episodes  /{} ", lib.filter.text)
    };
    let block = pane(title, lib.focus == LibFocus::Tree, t);
    let inner = block.inner(left);
    block.render(left, buf);
    if rows.is_empty() {
        let msg = if app.data.episodes.is_empty() {
            "No episodes yet.\n\ni  ingest a folder of episodes"
        } else {
            "Nothing matches the filter (Esc clears it)."
        };
        Paragraph::new(msg).style(t.dim()).render(inner, buf);
    }
    let h = usize::from(inner.height);
    let off = scroll_offset(lib.tree_cursor, h);
    let w = usize::from(inner.width);
    for (i, row) in rows.iter().enumerate().skip(off).take(h) {
        let y = inner.y + (i - off) as u16;
        let (text, style) = match row {
            LibRow::Series(name) => {
                let n = app.data.episodes.iter().filter(|e| &e.series == name).count();
                (format!("▾ {name} ({n} episode{})", if n == 1 { "" } else { "s" }), t.title())
            }
            LibRow::Episode(ei) => {
                let e = &app.data.episodes[*ei];
                let pieces = app.data.pieces.get(&e.id).map(Vec::as_slice).unwrap_or_default();
                let keep = pieces.iter().filter(|p| p.status == PieceStatus::Keep).count();
                let drop = pieces.iter().filter(|p| p.status == PieceStatus::Drop).count();
                let rest = pieces.len() - keep - drop;
                let tail = format!(
                    " {:>5} {:<3} +{keep} -{drop} ·{rest}",
                    short_hms(e.duration.0),
                    e.language.as_deref().unwrap_or("und")
                );
                let room = w.saturating_sub(tail.chars().count() + 2);
                (format!("  {}{tail}", fit_pad(&e.title, room)), t.text())
            }
        };
        let style = if i == lib.tree_cursor { style.patch(t.cursor()) } else { style };
        buf.set_string(inner.x, y, fit_pad(&text, w), style);
    }

    // Episode info.
    let block = pane(" Episode ", false, t);
    let iin = block.inner(info);
    block.render(info, buf);
    let lines: Vec<Line> = match rows.get(lib.tree_cursor) {
        Some(LibRow::Episode(ei)) => {
            let e = &app.data.episodes[*ei];
            let streams = e
                .streams
                .iter()
                .filter(|s| s.kind == crate::media::StreamKind::Audio)
                .map(|s| {
                    format!("#{} {} {}", s.index, s.codec, s.language.as_deref().unwrap_or("und"))
                })
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                Line::from(vec![
                    Span::styled(e.title.clone(), t.title()),
                    Span::styled(
                        match e.numbering() {
                            n if n.is_empty() => format!("  {}  {}", e.id, e.series),
                            n => format!("  {}  {}  {}", n.label(), e.id, e.series),
                        },
                        t.dim(),
                    ),
                ]),
                Line::from(format!(
                    "{} · audio #{} {} · {} pieces · {:.1} MB",
                    short_hms(e.duration.0),
                    e.audio_stream,
                    e.language.as_deref().unwrap_or("und"),
                    e.pieces,
                    e.size_bytes as f64 / 1e6
                )),
                Line::styled(fit_left(&e.path, usize::from(iin.width)), t.dim()),
                match app.library_pieces().get(lib.piece_cursor) {
                    Some(p) if lib.focus == LibFocus::Pieces => {
                        Line::styled(format!("piece {}", p.id), t.dim())
                    }
                    _ if !streams.is_empty() => {
                        Line::styled(format!("streams: {streams}"), t.dim())
                    }
                    _ => Line::raw(""),
                },
            ]
        }
        Some(LibRow::Series(name)) => {
            let eps: Vec<_> = app.data.episodes.iter().filter(|e| &e.series == name).collect();
            let total: f64 = eps.iter().map(|e| e.duration.0).sum();
            vec![
                Line::styled(name.clone(), t.title()),
                Line::from(format!("{} episodes · {}", eps.len(), short_hms(total))),
                Line::styled("a/d/u on the series marks all its pieces", t.dim()),
            ]
        }
        None => vec![],
    };
    Paragraph::new(lines).render(iin, buf);

    // Pieces.
    let pieces = app.library_pieces();
    let marked = lib.marked.len();
    let title = if marked > 0 {
        format!(" Pieces ({}, {marked} selected) ", pieces.len())
    } else {
        format!(" Pieces ({}) ", pieces.len())
    };
    let block = pane(title, lib.focus == LibFocus::Pieces, t);
    let pin = block.inner(right);
    block.render(right, buf);
    let w = usize::from(pin.width);
    buf.set_string(
        pin.x,
        pin.y,
        fit(
            &format!("   {:<5} #  {:<11}  {:>5}  {:>6}  flags", "st", "start-end", "dur", "level"),
            w,
        ),
        t.dim(),
    );
    let list = Rect::new(pin.x, pin.y + 1, pin.width, pin.height.saturating_sub(1));
    let h = usize::from(list.height);
    let off = scroll_offset(lib.piece_cursor, h);
    for (i, p) in pieces.iter().enumerate().skip(off).take(h) {
        let y = list.y + (i - off) as u16;
        let rate =
            app.data.episode(&p.episode).map(|e| e.work_rate).unwrap_or(crate::ingest::WORK_RATE);
        let (a, b) = p.span(rate);
        let (glyph, st) = t.piece(p.status);
        let mark = if lib.marked.contains(&p.id) { "●" } else { " " };
        let flags = p.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",");
        let status = match p.status {
            PieceStatus::Unreviewed => "unrev",
            other => other.as_str(),
        };
        let text = format!(
            " {status:<5}{:>2}  {:<11}  {:>5}  {:>6.1}  {}",
            p.index,
            format!("{}-{}", short_hms(a.0), short_hms(b.0)),
            short_hms(b.0 - a.0),
            p.rms_dbfs,
            if flags.is_empty() { "-" } else { &flags },
        );
        let cursor = i == lib.piece_cursor && lib.focus == LibFocus::Pieces;
        let base = if cursor { t.cursor() } else { t.text() };
        buf.set_string(list.x, y, " ".repeat(w), base);
        buf.set_string(list.x, y, mark, base.patch(t.marked()));
        buf.set_string(list.x + 1, y, glyph, base.patch(st));
        buf.set_string(list.x + 2, y, fit(&text, w.saturating_sub(2)), base);
    }
}
