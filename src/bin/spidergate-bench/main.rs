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
mod spidergo;

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
    /// Comma-separated replica counts, each measured in turn on the same database (more than
    /// one needs `--database postgres://…`); the load spreads round-robin over the replicas.
    #[arg(long, default_value = "1", value_delimiter = ',')]
    replicas: Vec<usize>,
    /// Redis for the replicas' shared limits and key health (`SPIDERGATE_REDIS__URL`).
    #[arg(long)]
    redis: Option<String>,
    /// Measure SpiderGo instead: crawl a synthetic site (`--concurrency` is then the crawl
    /// concurrency, one gateway per value).
    #[arg(long)]
    spidergo: bool,
    /// Pages of the synthetic site (with `--spidergo`).
    #[arg(long, default_value_t = 10_000)]
    pages: usize,
    /// Delay of each page of the synthetic site, in ms (with `--spidergo`).
    #[arg(long, default_value_t = 0)]
    site_delay_ms: u64,
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
    if args.spidergo {
        let site = spidergo::Site {
            pages: args.pages,
            delay: Duration::from_millis(args.site_delay_ms),
        };
        return spidergo::run(site, &args.concurrency, args.gateway_bin, args.json).await;
    }
    let db = gateway::Database::new(args.database.clone())?;
    anyhow::ensure!(
        args.replicas.iter().all(|&n| n >= 1),
        "--replicas: every count must be at least 1"
    );
    anyhow::ensure!(
        db.is_postgres() || args.replicas == [1],
        "--replicas other than 1 needs --database postgres://… (replicas share one PostgreSQL database)"
    );
    anyhow::ensure!(
        args.redis.is_none() || db.is_postgres(),
        "--redis needs --database postgres://… (Redis coordinates replicas on PostgreSQL)"
    );
    let mut env = Vec::new();
    if let Some(redis) = &args.redis {
        env.push(("SPIDERGATE_REDIS__URL".to_owned(), redis.clone()));
        let prefix = format!("sgbench-{}", std::process::id());
        env.push(("SPIDERGATE_REDIS__PREFIX".to_owned(), prefix));
    }
    let launch = gateway::Launch {
        bin: args.gateway_bin.clone(),
        fake: fake.clone(),
        env,
        vault_key: fernet::Fernet::generate_key(),
    };
    let mut token = None;
    let mut results = Vec::new();
    for &replicas in &args.replicas {
        let fleet = gateway::Fleet::start(&launch, &db, replicas).await?;
        let token = match &token {
            Some(token) => token,
            None => token.insert(fleet.gateways[0].provision(args.tokens, args.keys).await?),
        };
        for &concurrency in &args.concurrency {
            for kind in load::Kind::ALL {
                results.push(measure(&fleet, &fake, token, kind, concurrency, &args).await?);
                eprintln!(
                    "  done: {} at concurrency {concurrency} over {replicas} replica(s)",
                    kind.name()
                );
            }
        }
        fleet.stop()?;
    }
    let successes: u64 = results.iter().map(|c| c.gateway.all_ok).sum();
    let rows = db.count_ledger().await?;
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

/// One case: straight at the fake, then through the fleet.
async fn measure(
    fleet: &gateway::Fleet,
    fake: &str,
    token: &str,
    kind: load::Kind,
    concurrency: usize,
    args: &Args,
) -> anyhow::Result<report::Case> {
    let direct = load::run(
        &load::Target::direct(fake, kind),
        concurrency,
        args.duration,
    )
    .await;
    let cpu_before = fleet.cpu_time()?;
    let through = load::run(
        &load::Target::gateway(&fleet.bases(), token, kind),
        concurrency,
        args.duration,
    )
    .await;
    let cpu = fleet.cpu_time()?.saturating_sub(cpu_before);
    let lag = fleet.ledger_lag().await?;
    Ok(report::Case::new(
        kind,
        concurrency,
        fleet.gateways.len(),
        direct,
        through,
        cpu,
        fleet.peak_rss_kib()?,
        lag,
    ))
}
