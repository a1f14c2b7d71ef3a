//! The gateway under test: the real `spidergate` binary as child processes, one per replica, on
//! one database.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Linux's `USER_HZ`: /proc reports CPU time in these ticks.
const TICKS_PER_SEC: u64 = 100;

/// What the trace writer still held when a case's load stopped.
#[derive(Debug, Clone, Copy)]
pub struct LedgerLag {
    pub queued: u64,
    /// Until the backlog read zero (at most one poll, 5 ms, late; zero-ish when nothing queued).
    pub drain: Duration,
}

/// The database every replica of the run shares: the one given, or a fresh SQLite file.
pub struct Database {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    pub fn new(url: Option<String>) -> anyhow::Result<Database> {
        Ok(match url {
            Some(url) => Database { url, _dir: None },
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
                Database {
                    url,
                    _dir: Some(dir),
                }
            }
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }

    /// The successful requests the ledger holds (after every gateway stopped).
    pub async fn count_ledger(&self) -> anyhow::Result<u64> {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(&self.url).await?;
        let sql = "SELECT COUNT(*) AS n FROM traces WHERE status = 'success'";
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await?
            .context("count")?;
        Ok(row.try_get::<i64>("", "n")? as u64)
    }
}

/// How every replica of a run is started.
pub struct Launch {
    pub bin: Option<PathBuf>,
    pub fake: String,
    /// `SPIDERGATE_*` settings for every replica (Redis, say).
    pub env: Vec<(String, String)>,
    /// One vault key for every replica: they read each other's encrypted keys.
    pub vault_key: String,
}

/// N replicas of the gateway on one database, measured together.
pub struct Fleet {
    pub gateways: Vec<Gateway>,
}

impl Fleet {
    pub async fn start(launch: &Launch, db: &Database, replicas: usize) -> anyhow::Result<Fleet> {
        let mut gateways = Vec::with_capacity(replicas);
        for _ in 0..replicas {
            gateways.push(Gateway::start(launch, &db.url).await?);
        }
        Ok(Fleet { gateways })
    }

    pub fn bases(&self) -> Vec<String> {
        self.gateways.iter().map(|g| g.base.clone()).collect()
    }

    /// User + system CPU time of every replica so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        self.gateways.iter().map(Gateway::cpu_time).sum()
    }

    /// The largest replica's peak resident memory.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let peaks: anyhow::Result<Vec<u64>> =
            self.gateways.iter().map(Gateway::peak_rss_kib).collect();
        Ok(peaks?.into_iter().max().unwrap_or(0))
    }

    /// Every replica's ledger lag: the rows queued in all, and until the last one drained.
    pub async fn ledger_lag(&self) -> anyhow::Result<LedgerLag> {
        let mut lag = LedgerLag {
            queued: 0,
            drain: Duration::ZERO,
        };
        for gateway in &self.gateways {
            let one = gateway.ledger_lag().await?;
            lag.queued += one.queued;
            lag.drain = lag.drain.max(one.drain);
        }
        Ok(lag)
    }

    /// SIGTERM to every replica (each drains its ledger writer); all must exit cleanly.
    pub fn stop(mut self) -> anyhow::Result<()> {
        for gateway in &self.gateways {
            Command::new("kill")
                .args(["-TERM", &gateway.child.id().to_string()])
                .status()?;
        }
        for gateway in &mut self.gateways {
            let status = gateway.child.wait()?;
            anyhow::ensure!(status.success(), "a gateway did not exit cleanly: {status}");
        }
        Ok(())
    }
}

pub struct Gateway {
    child: Child,
    pub base: String,
    admin: String,
    client: reqwest::Client,
}

impl Gateway {
    pub async fn start(launch: &Launch, db_url: &str) -> anyhow::Result<Gateway> {
        let bin = match &launch.bin {
            Some(bin) => bin.clone(),
            None => std::env::current_exe()?.with_file_name("spidergate"),
        };
        let admin = format!("bench-admin-{}", std::process::id());
        // The bench's own `SPIDERGATE_*` variables reach the gateway (to measure a setting);
        // the ones set below win.
        let passed_on = std::env::vars().filter(|(name, _)| name.starts_with("SPIDERGATE_"));
        let mut child = Command::new(&bin)
            .env_clear()
            .envs(passed_on)
            .env("RUST_LOG", "warn,spidergate=info")
            .envs(launch.env.iter().cloned())
            .env("SPIDERGATE_DATABASE__URL", db_url)
            .env("SPIDERGATE_SERVER__PORT", "0")
            .env("SPIDERGATE_ADMIN_TOKEN", &admin)
            .env("SPIDERGATE_VAULT_KEY", &launch.vault_key)
            .env("SPIDERGATE_PROVIDERS__OPENAI__BASE_URL", &launch.fake)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it with `cargo build --release`)",
                    bin.display()
                )
            })?;
        let port = listening_port(&mut child)?;
        Ok(Gateway {
            child,
            base: format!("http://127.0.0.1:{port}"),
            admin,
            client: reqwest::Client::new(),
        })
    }

    async fn post(&self, path: &str, bearer: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("{path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// A brand, an OpenAI key pointing at the fake, optional ballast, and the PAT to measure with.
    pub async fn provision(&self, tokens: usize, keys: usize) -> anyhow::Result<String> {
        let brand = self
            .post(
                "/api/v1/admin/brands",
                &self.admin,
                json!({ "name": "bench" }),
            )
            .await?;
        let credential = brand["credential"]
            .as_str()
            .context("credential")?
            .to_owned();
        let key =
            json!({ "provider_name": "openai", "credentials": { "api_key": "sk-bench-upstream" } });
        self.post("/api/v1/integrations", &credential, key).await?;
        self.preload(&credential, tokens, keys).await?;
        let pat = json!({ "name": "bench", "monthly_budget_usd": 1_000_000, "rpm": 1_000_000_000u32, "rpd": 1_000_000_000u32 });
        let minted = self.post("/api/v1/agent-keys", &credential, pat).await?;
        Ok(minted["token"].as_str().context("token")?.to_owned())
    }

    /// `tokens` agent tokens and `keys` vault keys (Groq, so they do not change OpenAI routing).
    async fn preload(&self, credential: &str, tokens: usize, keys: usize) -> anyhow::Result<()> {
        use futures_util::StreamExt;
        let bodies = (0..tokens)
            .map(|i| ("/api/v1/agent-keys", json!({ "name": format!("ballast-{i}"), "rpm": 60 })))
            .chain((0..keys).map(|i| ("/api/v1/integrations", json!({ "provider_name": "groq", "credentials": { "api_key": format!("gsk_ballast_{i:08}") } }))));
        let mut pending = futures_util::stream::iter(bodies)
            .map(|(path, body)| self.post(path, credential, body))
            .buffer_unordered(16);
        let mut done = 0usize;
        while let Some(result) = pending.next().await {
            result?;
            done += 1;
            if done.is_multiple_of(10_000) {
                eprintln!("  preloaded {done} of {}", tokens + keys);
            }
        }
        Ok(())
    }

    /// Traces the gateway has queued and not yet committed (`ledger_backlog` of `GET /health`).
    pub async fn ledger_backlog(&self) -> anyhow::Result<u64> {
        let health: Value = self
            .client
            .get(format!("{}/health", self.base))
            .send()
            .await?
            .json()
            .await?;
        health["ledger_backlog"]
            .as_u64()
            .context("`ledger_backlog` in /health")
    }

    /// The backlog right after a case, and how long the writer then took to commit all of it.
    pub async fn ledger_lag(&self) -> anyhow::Result<LedgerLag> {
        let started = std::time::Instant::now();
        let queued = self.ledger_backlog().await?;
        let mut left = queued;
        while left > 0 {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "the ledger did not drain in 120 s ({left} rows left)"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
            left = self.ledger_backlog().await?;
        }
        Ok(LedgerLag {
            queued,
            drain: started.elapsed(),
        })
    }

    /// The process's user + system CPU time so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which may contain spaces) start at field 3.
        let after = stat.rsplit_once(") ").context("stat format")?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
    }

    /// The process's peak resident memory.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        self.memory_kib("VmHWM:")
    }

    /// The process's resident memory now.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        self.memory_kib("VmRSS:")
    }

    fn memory_kib(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .with_context(|| field.to_owned())?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("a memory figure")?
            .parse()?)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads stderr until the "listening" line; keeps draining it afterwards so the child never blocks.
fn listening_port(child: &mut Child) -> anyhow::Result<u16> {
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reported = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line
                .split("address=127.0.0.1:")
                .nth(1)
                .filter(|_| !reported)
            {
                reported = true;
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            } else if line.contains("ERROR") || line.contains("WARN") {
                eprintln!("  gateway: {line}");
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the gateway did not report its port")?;
    Ok(port.parse()?)
}
