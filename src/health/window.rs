//! Per-key request counters: an exact sliding minute and a UTC calendar day.

use chrono::NaiveDate;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);
/// Unlimited keys keep at most this many timestamps; the count is then a floor, which only the
/// health view reads.
const UNLIMITED_CAP: usize = 10_000;

/// Uses in the last 60 s. Exact up to the key's limit, which is what enforcement needs.
#[derive(Debug, Default)]
pub struct MinuteWindow {
    uses: VecDeque<Instant>,
}

impl MinuteWindow {
    pub fn count(&mut self, now: Instant) -> u32 {
        while self
            .uses
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            self.uses.pop_front();
        }
        self.uses.len() as u32
    }

    pub fn record(&mut self, now: Instant) {
        if self.uses.len() >= UNLIMITED_CAP {
            self.uses.pop_front();
        }
        self.uses.push_back(now);
    }

    /// How long ago each use of the last minute was, oldest first.
    pub fn ages(&self, now: Instant) -> impl Iterator<Item = Duration> + '_ {
        self.uses
            .iter()
            .map(move |t| now.duration_since(*t))
            .filter(|age| *age < MINUTE)
    }

    /// Takes back the latest use (the other replicas did not agree to it).
    pub fn unrecord(&mut self) {
        self.uses.pop_back();
    }
}

/// Uses since 00:00 UTC.
#[derive(Debug, Default)]
pub struct DayCounter {
    day: Option<NaiveDate>,
    count: u32,
}

impl DayCounter {
    pub fn count(&self, today: NaiveDate) -> u32 {
        if self.day == Some(today) {
            self.count
        } else {
            0
        }
    }

    /// Starts the day at `count` (rebuilt from the ledger after a restart).
    pub fn seeded(today: NaiveDate, count: u32) -> Self {
        DayCounter {
            day: Some(today),
            count,
        }
    }

    pub fn record(&mut self, today: NaiveDate) {
        if self.day != Some(today) {
            self.day = Some(today);
            self.count = 0;
        }
        self.count += 1;
    }

    pub fn unrecord(&mut self, today: NaiveDate) {
        if self.day == Some(today) {
            self.count = self.count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minute_slides_and_the_day_resets_at_midnight() {
        let start = crate::clock::Clock::default().instant();
        let mut minute = MinuteWindow::default();
        minute.record(start);
        minute.record(start + Duration::from_secs(30));
        assert_eq!(minute.count(start + Duration::from_secs(59)), 2);
        assert_eq!(minute.count(start + Duration::from_secs(60)), 1);

        let monday = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        let mut day = DayCounter::default();
        day.record(monday);
        day.record(monday);
        assert_eq!(day.count(monday), 2);
        assert_eq!(day.count(monday.succ_opt().expect("tuesday")), 0);
    }
}
