//! Turning outcomes into the table and the JSON.

use crate::gateway::LedgerLag;
use crate::load::{Kind, Outcome};
use serde_json::{Value, json};
use std::time::Duration;

pub struct Stats {
    /// Every successful request, warm-up included (what the ledger must hold).
    pub all_ok: u64,
    pub ok: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ttfb_p50_ms: f64,
}

impl Stats {
    fn of(mut outcome: Outcome) -> Stats {
        outcome.latencies_us.sort_unstable();
        outcome.ttfb_us.sort_unstable();
        let secs = outcome.elapsed.as_secs_f64().max(1e-9);
        Stats {
            all_ok: outcome.ok + outcome.warmup_ok,
            ok: outcome.ok,
            errors: outcome.errors,
            rps: outcome.ok as f64 / secs,
            p50_ms: percentile_ms(&outcome.latencies_us, 50),
            p99_ms: percentile_ms(&outcome.latencies_us, 99),
            ttfb_p50_ms: percentile_ms(&outcome.ttfb_us, 50),
        }
    }

    fn json(&self) -> Value {
        json!({ "ok": self.ok, "errors": self.errors, "rps": self.rps, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "ttfb_p50_ms": self.ttfb_p50_ms })
    }
}

fn percentile_ms(sorted_us: &[u32], p: usize) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_us.len()).div_ceil(100).max(1);
    f64::from(sorted_us[rank - 1]) / 1000.0
}

pub struct Case {
    pub kind: Kind,
    pub concurrency: usize,
    pub replicas: usize,
    pub direct: Stats,
    pub gateway: Stats,
    /// Gateway CPU time per successful request, ms.
    pub cpu_ms_per_request: f64,
    pub peak_rss_mib: f64,
    pub ledger: LedgerLag,
}

impl Case {
    #[expect(clippy::too_many_arguments, reason = "one case's measurements, named")]
    pub fn new(
        kind: Kind,
        concurrency: usize,
        replicas: usize,
        direct: Outcome,
        gateway: Outcome,
        cpu: Duration,
        rss_kib: u64,
        ledger: LedgerLag,
    ) -> Case {
        let gateway = Stats::of(gateway);
        let cpu_ms_per_request = cpu.as_secs_f64() * 1000.0 / gateway.ok.max(1) as f64;
        Case {
            kind,
            concurrency,
            replicas,
            direct: Stats::of(direct),
            gateway,
            cpu_ms_per_request,
            peak_rss_mib: rss_kib as f64 / 1024.0,
            ledger,
        }
    }
}

pub fn print(cases: &[Case], successes: u64, rows: u64) {
    println!(
        "{:<11} {:>5} {:>4} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>9} {:>9} {:>9} | {:>8} {:>7} | {:>6} | {:>7} {:>8}",
        "case",
        "conc",
        "reps",
        "raw rps",
        "p50 ms",
        "p99 ms",
        "gw rps",
        "p50 ms",
        "p99 ms",
        "+p50 ms",
        "+p99 ms",
        "+ttfb ms",
        "cpu/req",
        "rss MiB",
        "errors",
        "queued",
        "drain ms"
    );
    for c in cases {
        println!(
            "{:<11} {:>5} {:>4} | {:>9.0} {:>8.3} {:>8.3} | {:>9.0} {:>8.3} {:>8.3} | {:>9.3} {:>9.3} {:>9.3} | {:>8.4} {:>7.1} | {:>6} | {:>7} {:>8.1}",
            c.kind.name(),
            c.concurrency,
            c.replicas,
            c.direct.rps,
            c.direct.p50_ms,
            c.direct.p99_ms,
            c.gateway.rps,
            c.gateway.p50_ms,
            c.gateway.p99_ms,
            c.gateway.p50_ms - c.direct.p50_ms,
            c.gateway.p99_ms - c.direct.p99_ms,
            c.gateway.ttfb_p50_ms - c.direct.ttfb_p50_ms,
            c.cpu_ms_per_request,
            c.peak_rss_mib,
            c.gateway.errors + c.direct.errors,
            c.ledger.queued,
            c.ledger.drain.as_secs_f64() * 1000.0,
        );
    }
    println!(
        "ledger: {rows} success rows for {successes} successful gateway requests{}",
        if rows == successes {
            " (match)"
        } else {
            " (MISMATCH)"
        }
    );
}

pub fn json(cases: &[Case], successes: u64, rows: u64) -> Value {
    let cases: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "case": c.kind.name(),
                "concurrency": c.concurrency,
                "replicas": c.replicas,
                "direct": c.direct.json(),
                "gateway": c.gateway.json(),
                "added_p50_ms": c.gateway.p50_ms - c.direct.p50_ms,
                "added_p99_ms": c.gateway.p99_ms - c.direct.p99_ms,
                "added_ttfb_p50_ms": c.gateway.ttfb_p50_ms - c.direct.ttfb_p50_ms,
                "gateway_cpu_ms_per_request": c.cpu_ms_per_request,
                "gateway_peak_rss_mib": c.peak_rss_mib,
                "ledger_queued_at_end": c.ledger.queued,
                "ledger_drain_ms": c.ledger.drain.as_secs_f64() * 1000.0,
            })
        })
        .collect();
    json!({ "cases": cases, "ledger": { "successful_requests": successes, "success_rows": rows } })
}
