//! A small Prometheus registry: labelled counters and histograms on atomics, rendered in the text
//! exposition format. Each app owns its own (no global recorder: tests and in-process replicas
//! each see only their own series), recording never locks more than one map shard, and a series
//! is allocated once, on its first observation.

use dashmap::DashMap;
use std::fmt::Write;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one series holds.
pub trait Value: Default + Send + Sync {
    /// Appends this series' lines (`name{labels} value`) to `out`.
    fn render(&self, out: &mut String, name: &str, labels: &str);
}

/// A counter; `scale` units make one in the rendered value (nano-dollars → USD: 1e9).
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, units: u64) {
        self.0.fetch_add(units, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of a histogram's buckets, ascending (`+Inf` is implied).
pub type Buckets = &'static [f64];

/// A histogram over fixed buckets; observations are kept in integer `units` per 1 (so sums are
/// exact atomics: nanoseconds for seconds, 1 for tokens).
pub struct Histogram {
    bounds: Buckets,
    units: f64,
    /// Per bucket (not cumulative), then one for above the last bound.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: Buckets, units: f64) -> Histogram {
        Histogram {
            bounds,
            units,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let units = (value.max(0.0) * self.units).round() as u64;
        self.sum.fetch_add(units, Ordering::Relaxed);
    }
}

/// One series: its label values, and what it holds.
type Series<V> = (Box<[String]>, Arc<V>);

/// A family's series, keyed by their label values.
pub struct Family<V> {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
    /// By the hash of the label values; a bucket lists the (rare) values that share a hash.
    series: DashMap<u64, Vec<Series<V>>>,
    make: fn() -> V,
}

impl<V: Value> Family<V> {
    pub fn new(
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &'static [&'static str],
        make: fn() -> V,
    ) -> Family<V> {
        Family {
            name,
            help,
            kind,
            labels,
            series: DashMap::new(),
            make,
        }
    }

    /// The series for these label values (in the family's label order), made on first use.
    pub fn with(&self, values: &[&str]) -> Arc<V> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let hash = self.series.hasher().hash_one(values);
        let same = |stored: &[String]| stored.iter().map(String::as_str).eq(values.iter().copied());
        if let Some(bucket) = self.series.get(&hash)
            && let Some((_, value)) = bucket.iter().find(|(stored, _)| same(stored))
        {
            return value.clone();
        }
        let mut bucket = self.series.entry(hash).or_default();
        if let Some((_, value)) = bucket.iter().find(|(stored, _)| same(stored)) {
            return value.clone();
        }
        let value = Arc::new((self.make)());
        let stored = values.iter().map(|v| (*v).to_owned()).collect();
        bucket.push((stored, value.clone()));
        value
    }

    /// Drops every series `keep` says no to (stale per-token series).
    pub fn retain(&self, keep: impl Fn(&V) -> bool) {
        self.series.retain(|_, bucket| {
            bucket.retain(|(_, value)| keep(value));
            !bucket.is_empty()
        });
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        let mut rows: Vec<(String, Arc<V>)> = self
            .series
            .iter()
            .flat_map(|bucket| {
                bucket
                    .iter()
                    .map(|(values, value)| (label_set(self.labels, values), value.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, value) in rows {
            value.render(out, self.name, &labels);
        }
    }
}

/// `a="x",b="y"`, values escaped as the exposition format wants.
fn label_set(names: &[&str], values: &[String]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// A counter rendered as a whole number.
#[derive(Default)]
pub struct Count(pub Counter);

impl Value for Count {
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let _ = writeln!(out, "{name}{} {}", braces(labels), self.0.get());
    }
}

/// A counter of nano-dollars rendered in USD.
#[derive(Default)]
pub struct Usd(pub Counter);

impl Value for Usd {
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let usd = self.0.get() as f64 / 1e9;
        let _ = writeln!(out, "{name}{} {usd}", braces(labels));
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new(&[], 1.0)
    }
}

impl Value for Histogram {
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / self.units;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets_a_sum_and_a_count() {
        let family = Family::new("lat_seconds", "Latency.", "histogram", &["route"], || {
            Histogram::new(&[0.001, 0.01], 1e9)
        });
        for v in [0.0005, 0.002, 0.5] {
            family.with(&["chat"]).observe(v);
        }
        let mut out = String::new();
        family.render(&mut out);
        assert!(out.contains("# TYPE lat_seconds histogram\n"), "{out}");
        assert!(
            out.contains("lat_seconds_bucket{route=\"chat\",le=\"0.001\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_seconds_bucket{route=\"chat\",le=\"0.01\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_seconds_bucket{route=\"chat\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_seconds_sum{route=\"chat\"} 0.5025\n"),
            "{out}"
        );
        assert!(
            out.contains("lat_seconds_count{route=\"chat\"} 3\n"),
            "{out}"
        );
    }

    #[test]
    fn label_values_are_escaped_and_series_kept_apart() {
        let family = Family::new(
            "req_total",
            "Requests.",
            "counter",
            &["model"],
            Count::default,
        );
        family.with(&["a\"b\\c\nd"]).0.add(2);
        family.with(&["plain"]).0.add(1);
        family.with(&["plain"]).0.add(1);
        let mut out = String::new();
        family.render(&mut out);
        assert!(
            out.contains("req_total{model=\"a\\\"b\\\\c\\nd\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("req_total{model=\"plain\"} 2\n"), "{out}");
        family.retain(|c| c.0.get() > 2);
        let mut out = String::new();
        family.render(&mut out);
        assert!(!out.contains("model="), "both series dropped: {out}");
    }
}
