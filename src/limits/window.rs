//! A sliding request window over wall-clock milliseconds, exact up to its limit.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct SlidingWindow {
    span_ms: i64,
    /// Requests within one granule share an entry, counted at the granule's end, so memory is
    /// bounded by `span / granule` and a slot is never freed early.
    granule_ms: i64,
    /// (time in ms, requests at that time), oldest first.
    uses: VecDeque<(i64, u32)>,
    total: u32,
}

impl SlidingWindow {
    pub fn new(span_ms: i64, granule_ms: i64) -> Self {
        SlidingWindow {
            span_ms,
            granule_ms: granule_ms.max(1),
            uses: VecDeque::new(),
            total: 0,
        }
    }

    fn prune(&mut self, now_ms: i64) {
        while let Some(&(at, n)) = self.uses.front() {
            if now_ms - at < self.span_ms {
                break;
            }
            self.total -= n;
            self.uses.pop_front();
        }
    }

    pub fn count(&mut self, now_ms: i64) -> u32 {
        self.prune(now_ms);
        self.total
    }

    pub fn record(&mut self, at_ms: i64, requests: u32) {
        let at = (at_ms + self.granule_ms - 1).div_euclid(self.granule_ms) * self.granule_ms;
        match self.uses.back_mut() {
            Some((last, n)) if *last == at => *n += requests,
            _ => self.uses.push_back((at, requests)),
        }
        self.total += requests;
    }

    /// (time in ms, requests) still inside the window at `now_ms`, oldest first.
    pub fn entries(&self, now_ms: i64) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.uses
            .iter()
            .copied()
            .filter(move |&(at, _)| now_ms - at < self.span_ms)
    }

    /// Milliseconds until the window holds fewer than `limit` requests again.
    pub fn frees_in(&mut self, now_ms: i64, limit: u32) -> i64 {
        self.prune(now_ms);
        let mut remaining = self.total;
        for &(at, n) in &self.uses {
            remaining -= n;
            if remaining < limit {
                return (at + self.span_ms - now_ms).max(0);
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::SlidingWindow;

    #[test]
    fn slides_and_says_when_a_slot_frees() {
        let mut w = SlidingWindow::new(60_000, 1);
        w.record(0, 1);
        w.record(30_000, 1);
        assert_eq!(w.count(59_999), 2);
        assert_eq!(w.frees_in(40_000, 2), 20_000);
        assert_eq!(w.count(60_000), 1);
        w.record(61_000, 5);
        assert_eq!(w.frees_in(61_000, 3), 60_000);
    }

    #[test]
    fn coarse_granules_bound_memory_and_never_free_a_slot_early() {
        let mut day = SlidingWindow::new(86_400_000, 1_000);
        for ms in 0..5_000 {
            day.record(10_001 + ms / 10, 1);
        }
        assert_eq!(day.uses.len(), 1, "500 ms of requests share one granule");
        assert_eq!(
            day.count(10_400 + 86_400_000 - 1),
            5_000,
            "counted at the granule's end"
        );
        assert_eq!(day.count(11_000 + 86_400_000), 0);
    }
}
