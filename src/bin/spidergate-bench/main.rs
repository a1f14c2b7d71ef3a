//! `spidergate-bench`: what SpiderGate costs per request on this machine, next to the raw upstream.
//!
//! Starts a fast fake upstream, starts the real `spidergate` binary as its own process on a fresh
//! database, provisions a brand, a vault key pointing at the fake and a PAT with room to spare,
//! then drives closed-loop keep-alive load at each concurrency: first straight at the fake, then
//! through the gateway, for chat, a 9-chunk stream and embeddings. Prints a table (and JSON with
//! `--json`) with the ledger's lag after each case (traces still queued when the load stopped and
//! how long they took to commit), then stops the gateway with SIGTERM and checks the ledger holds
//! one row per success.

#![expect(
    clippy::disallowed_methods,
    reason = "the benchmark measures real time; the gateway's Clock is for decisions"
)]

mod fake;
mod gateway;
mod load;
mod report;

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "spidergate-bench",
    about = "Measure SpiderGate against the raw upstream"
)]
struct Args {
    /// How long each case runs, e.g. `10s` or `500ms`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Comma-separated concurrency levels.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Database for the gateway (default: a fresh SQLite file in a temporary directory).
    #[arg(long)]
    database: Option<String>,
    /// Write the results as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Agent tokens to create before measuring (scaling check).
    #[arg(long, default_value_t = 0)]
    tokens: usize,
    /// Vault keys to create before measuring (scaling check).
    #[arg(long, default_value_t = 0)]
    keys: usize,
    /// The gateway binary (default: `spidergate` next to this one).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration `{text}`"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("bad unit in `{text}` (ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    spidergate::install_tls_provider();
    let fake = fake::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args, fake))
}

async fn run(args: Args, fake: String) -> anyhow::Result<()> {
    let mut gateway =
        gateway::Gateway::start(args.gateway_bin.clone(), args.database.clone(), &fake).await?;
    let token = gateway.provision(args.tokens, args.keys).await?;
    let mut results = Vec::new();
    for &concurrency in &args.concurrency {
        for kind in load::Kind::ALL {
            let direct = load::run(
                &load::Target::direct(&fake, kind),
                concurrency,
                args.duration,
            )
            .await;
            let cpu_before = gateway.cpu_time()?;
            let through = load::run(
                &load::Target::gateway(&gateway.base, &token, kind),
                concurrency,
                args.duration,
            )
            .await;
            let cpu = gateway.cpu_time()?.saturating_sub(cpu_before);
            let lag = gateway.ledger_lag().await?;
            results.push(report::Case::new(
                kind,
                concurrency,
                direct,
                through,
                cpu,
                gateway.peak_rss_kib()?,
                lag,
            ));
            eprintln!("  done: {} at concurrency {concurrency}", kind.name());
        }
    }
    let successes: u64 = results.iter().map(|c| c.gateway.all_ok).sum();
    let rows = gateway.stop_and_count_ledger(successes).await?;
    report::print(&results, successes, rows);
    if let Some(path) = args.json {
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&report::json(&results, successes, rows))?,
        )?;
    }
    anyhow::ensure!(
        rows == successes,
        "ledger rows ({rows}) differ from successful requests ({successes})"
    );
    Ok(())
}
