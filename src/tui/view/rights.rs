//! Rights: the ownership records, filterable, and the share conflicts among them.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Widget};

use super::{fit, pane, scroll_offset};
use crate::rights::scope_label;
use crate::tui::app::App;

fn split(body: Rect) -> (Rect, Rect) {
    let [table, conflicts] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(7)]).areas(body);
    (table, conflicts)
}

/// Inner area of the table's rows (below its header).
pub fn list_area(body: Rect) -> Rect {
    let (table, _) = split(body);
    Rect::new(
        table.x + 1,
        table.y + 2,
        table.width.saturating_sub(2),
        table.height.saturating_sub(3),
    )
}

pub fn render(app: &App, body: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let (table, conflicts) = split(body);
    let rows = app.rights_rows();
    let mut title = format!(" Ownership records ({}) ", rows.len());
    if !app.rights.filter.text.is_empty() {
        title.push_str(&format!("/{} ", app.rights.filter.text));
    }
    let block = pane(title, true, t);
    let inner = block.inner(table);
    block.render(table, buf);
    let w = usize::from(inner.width);
    let header = format!(
        "{:<11} {:<16} {:<18} {:<11} {:>5} {:<6} {:<8} scope",
        "id", "holder", "work", "type", "share", "terr.", "policy"
    );
    buf.set_string(inner.x, inner.y, fit(&header, w), t.dim());
    let list = list_area(body);
    if rows.is_empty() {
        let msg = if app.data.rights.is_empty() {
            "No ownership records.\n\na  add one    i  import a CSV (see catalog/rights.example.csv)"
        } else {
            "Nothing matches the filter (Esc clears it)."
        };
        Paragraph::new(msg).style(t.dim()).render(list, buf);
    }
    let h = usize::from(list.height);
    let off = scroll_offset(app.rights.cursor, h);
    let in_conflict = |id: &str| app.data.conflicts.iter().any(|c| c.ids.iter().any(|i| i == id));
    for (i, &ri) in rows.iter().enumerate().skip(off).take(h) {
        let r = &app.data.rights[ri];
        let y = list.y + (i - off) as u16;
        let terr = if r.territory_mode == crate::catalog::TerritoryMode::Exclude {
            format!("¬{}", r.territories.join(","))
        } else {
            r.territories.join(",")
        };
        let text = format!(
            "{:<11} {:<16} {:<18} {:<11} {:>5} {:<6} {:<8} {}",
            fit(&r.rights_id, 11),
            fit(&r.rights_holder, 16),
            fit(&r.work_title, 18),
            r.rights_type.as_str(),
            format!("{}%", r.share_pct),
            fit(&terr, 6),
            r.policy.as_str(),
            scope_label(r)
        );
        let base = if i == app.rights.cursor { t.cursor() } else { t.text() };
        let style = if in_conflict(&r.rights_id) { base.patch(t.error()) } else { base };
        buf.set_string(list.x, y, " ".repeat(w), base);
        buf.set_string(list.x, y, fit(&text, w), style);
    }

    let n = app.data.conflicts.len();
    let block = pane(format!(" Conflicts ({n}) "), false, t);
    let cin = block.inner(conflicts);
    block.render(conflicts, buf);
    if n == 0 {
        Paragraph::new("✓ no ownership conflicts: shares add up to 100% or less everywhere")
            .style(t.ok())
            .render(cin, buf);
    }
    for (i, c) in app.data.conflicts.iter().take(usize::from(cin.height)).enumerate() {
        buf.set_string(
            cin.x,
            cin.y + i as u16,
            fit(&format!("✗ {c}"), usize::from(cin.width)),
            t.error(),
        );
    }
}
