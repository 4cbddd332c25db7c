//! Calendar dates and UTC timestamps, without a date-time dependency: rights records carry
//! validity dates, reports and the audit log print UTC ISO 8601 times, and the CLI parses
//! `--since` / `--deadline`. Conversions follow Howard Hinnant's `days_from_civil` /
//! `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>), proleptic
//! Gregorian, UTC only (no time zones, no leap seconds).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MS_PER_DAY: i64 = 86_400_000;

/// A calendar date (UTC), written `YYYY-MM-DD`; stored as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

impl Date {
    /// The date for year, month (1-12) and day (1-31), if it exists (years 1000-9999).
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1000..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days_in_month = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        (day <= days_in_month).then(|| Date(days_from_civil(year, month, day) as i32))
    }

    /// Year, month and day.
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(i64::from(self.0))
    }

    /// The UTC date of a Unix time in milliseconds.
    pub fn from_unix_ms(ms: u64) -> Date {
        Date((ms as i64).div_euclid(MS_PER_DAY) as i32)
    }

    /// Unix milliseconds at 00:00:00 UTC of this date (0 for dates before 1970).
    pub fn start_ms(self) -> u64 {
        (i64::from(self.0) * MS_PER_DAY).max(0) as u64
    }

    /// This date plus `days`.
    pub fn add_days(self, days: i32) -> Date {
        Date(self.0 + days)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for Date {
    type Err = String;

    /// Parse `YYYY-MM-DD` strictly (the ISO 8601 calendar date form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a date: write YYYY-MM-DD, e.g. 2024-04-01");
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().map_err(|_| bad())
            } else {
                Err(bad())
            }
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        Date::from_ymd(y as i32, m, d).ok_or_else(|| format!("{s:?} is not a calendar date"))
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time in milliseconds (UTC, whole seconds).
pub fn utc_iso(ms: u64) -> String {
    let date = Date::from_unix_ms(ms);
    let secs = (ms % MS_PER_DAY as u64) / 1000;
    format!("{date}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Parse a UTC time given as `YYYY-MM-DD` (midnight) or `YYYY-MM-DDTHH:MM:SS[Z]` into Unix
/// milliseconds.
pub fn parse_utc(s: &str) -> Result<u64, String> {
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').unwrap_or(t))),
        None => (s, None),
    };
    let date: Date = date.parse()?;
    let mut ms = date.start_ms();
    if let Some(t) = time {
        let parts: Vec<&str> = t.split(':').collect();
        let field = |i: usize, max: u64| -> Result<u64, String> {
            parts
                .get(i)
                .filter(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|p| p.parse::<u64>().ok())
                .filter(|v| *v <= max)
                .ok_or_else(|| format!("{s:?}: write the time as HH:MM:SS (UTC), e.g. T12:00:00Z"))
        };
        if parts.len() != 3 {
            return Err(format!("{s:?}: write the time as HH:MM:SS (UTC), e.g. T12:00:00Z"));
        }
        ms += (field(0, 23)? * 3600 + field(1, 59)? * 60 + field(2, 59)?) * 1000;
    }
    Ok(ms)
}

fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_print_and_convert() {
        let d: Date = "2024-02-29".parse().unwrap();
        assert_eq!(d.to_string(), "2024-02-29");
        assert_eq!(d.start_ms(), 1_709_164_800_000);
        assert_eq!(Date::from_unix_ms(1_709_164_800_000 + 86_399_999), d);
        assert!("2023-02-29".parse::<Date>().is_err());
        assert!("2024-13-01".parse::<Date>().is_err());
        assert!("2024-1-01".parse::<Date>().is_err());
        assert!("+024-01-01".parse::<Date>().is_err());
        assert_eq!("1970-01-01".parse::<Date>().unwrap().start_ms(), 0);
        assert!("1969-12-31".parse::<Date>().unwrap() < "1970-01-01".parse().unwrap());
    }

    #[test]
    fn utc_times_round_trip() {
        assert_eq!(utc_iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_iso(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(parse_utc("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_utc("2023-11-14").unwrap(), 1_699_920_000_000);
        assert!(parse_utc("2023-11-14T25:00:00Z").is_err());
        assert!(parse_utc("2023-11-14T1:00").is_err());
    }
}
