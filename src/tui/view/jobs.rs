//! Jobs: one gauge per job (stage, n/total, ETA), and the selected job's failures.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph, Widget, Wrap};

use super::{fit, pane, scroll_offset};
use crate::tui::action::{JobResult, JobSpec};
use crate::tui::app::App;
use crate::tui::widgets::timeline::short_hms;

fn split(body: Rect) -> (Rect, Rect) {
    let [list, detail] = Layout::vertical([Constraint::Min(4), Constraint::Length(9)]).areas(body);
    (list, detail)
}

/// Inner area of the jobs list (two rows per job).
pub fn list_area(body: Rect) -> Rect {
    let (list, _) = split(body);
    Rect::new(list.x + 1, list.y + 1, list.width.saturating_sub(2), list.height.saturating_sub(2))
}

pub fn render(app: &App, body: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let (list, detail) = split(body);
    let running = app.jobs.list.iter().filter(|j| j.running()).count();
    let block =
        pane(format!(" Jobs ({} running, {} in all) ", running, app.jobs.list.len()), true, t);
    let inner = block.inner(list);
    block.render(list, buf);
    if app.jobs.list.is_empty() {
        Paragraph::new(
            "No jobs yet.\n\nLibrary: i ingests a folder, S separates stems, E exports the kept \
             pieces.\nReview: s scans uploads.  Rights: i imports a CSV.  Reports: x writes the \
             report.\nPalette: :separate PATH... [--out DIR], :train fingerprint|separator \
             --corpus DIR --steps N.",
        )
        .style(t.dim())
        .render(inner, buf);
    }
    let visible = usize::from(inner.height / 2);
    let off = scroll_offset(app.jobs.cursor, visible);
    let w = usize::from(inner.width);
    for (i, j) in app.jobs.list.iter().enumerate().skip(off).take(visible) {
        let y = inner.y + 2 * (i - off) as u16;
        let (glyph, style) = match &j.result {
            None if j.cancelling => ("◌", t.warn()),
            None => ("▶", t.warn()),
            Some(JobResult::Done { .. }) if j.failures.is_empty() => ("✓", t.ok()),
            Some(JobResult::Done { .. }) => ("✓", t.warn()),
            Some(JobResult::Cancelled) => ("■", t.dim()),
            Some(JobResult::Failed(_)) => ("✗", t.error()),
        };
        let base = if i == app.jobs.cursor { t.cursor() } else { t.text() };
        buf.set_string(inner.x, y, " ".repeat(w), base);
        buf.set_string(inner.x, y, glyph, base.patch(style));
        let items = if j.items.1 > 0 {
            format!("  {}/{}", j.items.0.min(j.items.1), j.items.1)
        } else {
            String::new()
        };
        let fails = if j.failures.is_empty() {
            String::new()
        } else {
            format!("  {} failed", j.failures.len())
        };
        buf.set_string(
            inner.x + 2,
            y,
            fit(&format!("#{} {}{items}{fails}", j.id, j.spec.title()), w.saturating_sub(2)),
            base,
        );
        let label = match &j.result {
            None => {
                let stage = j.stage.map(|s| s.label()).unwrap_or("starting");
                let units = if j.units.1 > 0 {
                    format!(" {}/{}", j.units.0, j.units.1)
                } else {
                    String::new()
                };
                let eta = j
                    .eta_ms()
                    .map(|ms| format!(" · ETA {}", short_hms(ms as f64 / 1000.0)))
                    .unwrap_or_default();
                let cancel = if j.cancelling { " · cancelling" } else { "" };
                format!("{:>3.0}% {stage}{units}{eta}{cancel}", j.ratio() * 100.0)
            }
            Some(JobResult::Done { summary, .. }) => {
                format!("done in {} · {summary}", short_hms(j.elapsed_ms as f64 / 1000.0))
            }
            Some(JobResult::Cancelled) => "cancelled".into(),
            Some(JobResult::Failed(e)) => format!("failed: {e}"),
        };
        let gauge_area = Rect::new(inner.x + 2, y + 1, inner.width.saturating_sub(2), 1);
        LineGauge::default()
            .ratio(j.ratio().clamp(0.0, 1.0))
            .label(fit(&label, usize::from(gauge_area.width).saturating_sub(12)))
            .filled_style(style)
            .unfilled_style(t.dim())
            .render(gauge_area, buf);
    }

    let block = pane(" Details ", false, t);
    let din = block.inner(detail);
    block.render(detail, buf);
    let Some(j) = app.jobs.list.get(app.jobs.cursor) else { return };
    let mut lines = vec![Line::from(vec![
        Span::styled(j.spec.title(), t.title()),
        Span::styled(format!("  {}", short_hms(j.elapsed_ms as f64 / 1000.0)), t.dim()),
    ])];
    if !j.item.is_empty() {
        lines.push(Line::from(format!("item: {}", j.item)));
    }
    if !j.message.is_empty() {
        lines.push(Line::from(j.message.clone()));
    }
    if let JobSpec::Train(spec) = &j.spec {
        let out = spec.out.as_ref().map_or_else(
            || {
                let dir = spec.model.default_dir().unwrap_or_default();
                format!("the installed {}", dir.file_name().unwrap_or_default().to_string_lossy())
            },
            |p| p.display().to_string(),
        );
        lines.push(Line::styled(
            format!("checkpoints in {} · model -> {out}", spec.state_dir().display()),
            t.dim(),
        ));
        if matches!(j.result, Some(JobResult::Cancelled)) {
            lines.push(Line::from(
                "stopped: :train with the same --state resumes from the last checkpoint",
            ));
        }
    }
    if let Some(JobResult::Done { output: Some(p), .. }) = &j.result {
        lines.push(Line::from(vec![
            Span::styled("wrote ", t.dim()),
            Span::styled(p.display().to_string(), t.ok()),
        ]));
    }
    for (item, reason) in &j.failures {
        lines.push(Line::styled(format!("✗ {item}: {reason}"), t.error()));
    }
    if j.running() {
        lines.push(Line::styled("x cancels this job", t.dim()));
    }
    Paragraph::new(lines).wrap(Wrap { trim: false }).render(din, buf);
}
