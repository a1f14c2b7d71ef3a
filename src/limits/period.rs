//! Budget months: calendar months in UTC, or months starting on the brand's billing anchor day.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

/// The budget month containing an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetPeriod {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl BudgetPeriod {
    /// The period containing `now` for a brand whose months start on `anchor_day` (1–28; `None` = 1).
    pub fn containing(now: DateTime<Utc>, anchor_day: Option<u32>) -> BudgetPeriod {
        let day = anchor_day.unwrap_or(1).clamp(1, 28);
        let (mut year, mut month) = (now.year(), now.month());
        if now.day() < day {
            (year, month) = previous(year, month);
        }
        let start = midnight(year, month, day);
        let (next_year, next_month) = next(year, month);
        BudgetPeriod {
            start,
            end: midnight(next_year, next_month, day),
        }
    }
}

fn previous(year: i32, month: u32) -> (i32, u32) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

fn next(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn midnight(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    let date = NaiveDate::from_ymd_opt(year, month, day).unwrap_or(NaiveDate::MIN);
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("RFC 3339")
    }

    #[test]
    fn calendar_and_anchored_months() {
        let cases = [
            (
                "2026-11-22T10:00:00Z",
                None,
                "2026-11-01T00:00:00Z",
                "2026-12-01T00:00:00Z",
            ),
            (
                "2026-12-31T23:59:59Z",
                None,
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                "2026-11-22T10:00:00Z",
                Some(15),
                "2026-11-15T00:00:00Z",
                "2026-12-15T00:00:00Z",
            ),
            (
                "2026-11-14T23:59:59Z",
                Some(15),
                "2026-10-15T00:00:00Z",
                "2026-11-15T00:00:00Z",
            ),
            (
                "2027-01-03T00:00:00Z",
                Some(28),
                "2026-12-28T00:00:00Z",
                "2027-01-28T00:00:00Z",
            ),
        ];
        for (now, anchor, start, end) in cases {
            let period = BudgetPeriod::containing(at(now), anchor);
            assert_eq!(
                (period.start, period.end),
                (at(start), at(end)),
                "{now} {anchor:?}"
            );
        }
    }
}
