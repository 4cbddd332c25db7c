//! A progress sink that records every event, in order, as text (`stage NAME`, `total N`,
//! `advance N`), for tests of what the CLI's bars and the TUI's gauges are told.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Mutex;

use aniprint::progress::{Progress, Stage};

/// Every progress event, in order, as text.
#[derive(Default)]
pub struct EventLog(pub Mutex<Vec<String>>);

impl Progress for EventLog {
    fn stage(&self, stage: Stage) {
        self.0.lock().unwrap().push(format!("stage {}", stage.label()));
    }
    fn set_total(&self, total: u64) {
        self.0.lock().unwrap().push(format!("total {total}"));
    }
    fn advance(&self, n: u64) {
        self.0.lock().unwrap().push(format!("advance {n}"));
    }
}

impl EventLog {
    /// The one time `stage` was entered (panics if it was entered again, or never): its total,
    /// the sum of its advances and how many there were.
    pub fn only(&self, stage: Stage) -> (u64, u64, usize) {
        let events = self.0.lock().unwrap().clone();
        let name = format!("stage {}", stage.label());
        let entered: Vec<usize> =
            events.iter().enumerate().filter(|(_, e)| **e == name).map(|(i, _)| i).collect();
        assert_eq!(entered.len(), 1, "{name} entered {} times: {events:?}", entered.len());
        let mut total = None;
        let (mut done, mut steps) = (0, 0);
        for e in events[entered[0] + 1..].iter().take_while(|e| !e.starts_with("stage ")) {
            if let Some(t) = e.strip_prefix("total ") {
                total = Some(t.parse().unwrap());
            } else if let Some(n) = e.strip_prefix("advance ") {
                done += n.parse::<u64>().unwrap();
                steps += 1;
            }
        }
        (total.unwrap_or_else(|| panic!("{name} has no total: {events:?}")), done, steps)
    }
}
