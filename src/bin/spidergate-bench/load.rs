//! The closed-loop load generator: `concurrency` tasks, each sending its next request as soon as
//! the previous one is fully read, over keep-alive connections.

use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Stream,
    Embeddings,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Chat, Kind::Stream, Kind::Embeddings];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Stream => "stream",
            Kind::Embeddings => "embeddings",
        }
    }

    fn path_and_body(self) -> (&'static str, &'static str) {
        match self {
            Kind::Chat => (
                "/chat/completions",
                r#"{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"ping"}]}"#,
            ),
            Kind::Stream => (
                "/chat/completions",
                r#"{"model":"gpt-4o-mini","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"ping"}]}"#,
            ),
            Kind::Embeddings => (
                "/embeddings",
                r#"{"model":"text-embedding-3-small","input":"ping"}"#,
            ),
        }
    }
}

pub struct Target {
    /// Connection `i` sends to `urls[i % len]`: the load spreads round-robin over replicas.
    urls: Vec<String>,
    bearer: Option<String>,
    body: Bytes,
}

impl Target {
    /// Straight at the fake upstream.
    pub fn direct(fake: &str, kind: Kind) -> Target {
        let (path, body) = kind.path_and_body();
        Target {
            urls: vec![format!("{fake}{path}")],
            bearer: Some("sk-bench-upstream".into()),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    /// Through the gateway's replicas with the bench PAT.
    pub fn gateway(bases: &[String], token: &str, kind: Kind) -> Target {
        let (path, body) = kind.path_and_body();
        Target {
            urls: bases
                .iter()
                .map(|base| format!("{base}/api/gate/v1{path}"))
                .collect(),
            bearer: Some(token.to_owned()),
            body: Bytes::from_static(body.as_bytes()),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Successful requests made to open the connections, before the clock started.
    pub warmup_ok: u64,
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Whole-response latencies, microseconds.
    pub latencies_us: Vec<u32>,
    /// Time to the first body byte, microseconds.
    pub ttfb_us: Vec<u32>,
}

pub async fn run(target: &Target, concurrency: usize, duration: Duration) -> Outcome {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default();
    // Open the connections before the clock starts.
    let url = |i: usize| target.urls[i % target.urls.len()].clone();
    let urls: Vec<String> = (0..concurrency).map(url).collect();
    let warm: Vec<_> = urls.iter().map(|u| one(&client, target, u)).collect();
    let warmup_ok = futures_util::future::join_all(warm)
        .await
        .iter()
        .filter(|r| r.is_some())
        .count() as u64;
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let (client, url, bearer, body) = (
                client.clone(),
                url(i),
                target.bearer.clone(),
                target.body.clone(),
            );
            tokio::spawn(async move {
                let target = Target {
                    urls: Vec::new(),
                    bearer,
                    body,
                };
                let mut outcome = Outcome::default();
                while Instant::now() < deadline {
                    match one(&client, &target, &url).await {
                        Some((latency, ttfb)) => {
                            outcome.ok += 1;
                            outcome.latencies_us.push(latency);
                            outcome.ttfb_us.push(ttfb);
                        }
                        None => outcome.errors += 1,
                    }
                }
                outcome
            })
        })
        .collect();
    let mut total = Outcome {
        warmup_ok,
        ..Outcome::default()
    };
    for task in tasks {
        if let Ok(outcome) = task.await {
            total.ok += outcome.ok;
            total.errors += outcome.errors;
            total.latencies_us.extend(outcome.latencies_us);
            total.ttfb_us.extend(outcome.ttfb_us);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// One request, read to the end: `(latency, time to first byte)` in µs, or `None` on failure.
async fn one(client: &reqwest::Client, target: &Target, url: &str) -> Option<(u32, u32)> {
    let started = Instant::now();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(target.body.clone());
    if let Some(bearer) = &target.bearer {
        request = request.bearer_auth(bearer);
    }
    let mut response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let mut ttfb = None;
    while let Some(chunk) = response.chunk().await.ok()? {
        if ttfb.is_none() && !chunk.is_empty() {
            ttfb = Some(started.elapsed());
        }
    }
    let micros = |d: Duration| d.as_micros().min(u32::MAX as u128) as u32;
    Some((
        micros(started.elapsed()),
        micros(ttfb.unwrap_or_else(|| started.elapsed())),
    ))
}
