//! `spidergate-bench --spidergo`: SpiderGo crawling a synthetic site this process serves on
//! loopback: deterministic pages (`/p/0` … `/p/N-1`, a tree of fan-out 20), about 20 KB each,
//! 5 % of links duplicate variants (`?utm_source=…`), a robots.txt disallowing one subtree, and
//! an optional delay per request. For each crawl concurrency it starts the gateway with that
//! setting, signs up, makes a key, then crawls the whole site with NDJSON twice, links only and
//! with main content as Markdown, and reports pages/s, CPU per page, time to the first page and
//! memory (peak RSS, and its growth per 1,000 pages during the crawl).

use crate::gateway::{Database, Gateway, Launch};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Links per page to its children.
const FAN_OUT: usize = 20;

/// The synthetic site's shape.
#[derive(Clone, Copy)]
pub struct Site {
    pub pages: usize,
    pub delay: Duration,
}

/// A fixed ~18 KB of prose every page carries (size, not variety, is what extraction pays for).
fn filler() -> String {
    let sentence = "The crawler reads this paragraph, which stands for the body of an article, \
                    with enough words, commas and clauses to look like prose to a readability scorer. ";
    (0..20)
        .map(|i| format!("<p>Paragraph {i}. {}</p>", sentence.repeat(8)))
        .collect()
}

fn page(site: Site, id: usize, filler: &str) -> String {
    let mut links = String::new();
    for child in (id * FAN_OUT + 1..=id * FAN_OUT + FAN_OUT).filter(|&c| c < site.pages) {
        links.push_str(&format!("<li><a href=\"/p/{child}\">Page {child}</a></li>"));
    }
    // One link in twenty is another spelling of a link already on the page.
    if id * FAN_OUT + 1 < site.pages {
        links.push_str(&format!(
            "<li><a href=\"/p/{}?utm_source=bench\">Again</a></li>",
            id * FAN_OUT + 1
        ));
    }
    if id.is_multiple_of(10) {
        links.push_str(&format!("<li><a href=\"/private/{id}\">Private</a></li>"));
    }
    format!(
        "<!doctype html><html><head><title>Page {id}</title>\
         <meta name=\"description\" content=\"Synthetic page {id}\"></head><body>\
         <nav><a href=\"/p/0\">Home</a></nav><main><article><h1>Page {id}</h1>{filler}</article>\
         <ul>{links}</ul></main><footer>Synthetic footer</footer></body></html>"
    )
}

async fn serve(req: HttpRequest, site: web::Data<Site>, filler: web::Data<String>) -> HttpResponse {
    if !site.delay.is_zero() {
        tokio::time::sleep(site.delay).await;
    }
    let path = req.path();
    if path == "/robots.txt" {
        return HttpResponse::Ok()
            .content_type("text/plain")
            .body("User-agent: *\nDisallow: /private/\n");
    }
    match path
        .strip_prefix("/p/")
        .and_then(|id| id.trim_end_matches('/').parse::<usize>().ok())
    {
        Some(id) if id < site.pages => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(page(**site, id, &filler)),
        _ => HttpResponse::NotFound().finish(),
    }
}

/// Serves the site on 127.0.0.1:0 in its own thread; returns its base URL.
fn start_site(site: Site) -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let (site, filler) = (web::Data::new(site), web::Data::new(filler()));
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(site.clone())
                    .app_data(filler.clone())
                    .default_service(web::to(serve))
            })
            .workers(1)
            .bind(("127.0.0.1", 0));
            match server {
                Ok(server) => {
                    let _ = tx.send(Ok(server.addrs()[0].port()));
                    let _ = server.run().await;
                }
                Err(err) => {
                    let _ = tx.send(Err(err));
                }
            }
        });
    });
    let port = rx.recv()??;
    Ok(format!("http://127.0.0.1:{port}"))
}

/// One crawl's figures.
struct Measured {
    concurrency: usize,
    case: &'static str,
    pages: u64,
    wall: Duration,
    cpu: Duration,
    first_page: Duration,
    peak_rss_kib: u64,
    growth_kib_per_1k: f64,
    stop: String,
}

pub async fn run(
    site: Site,
    concurrencies: &[usize],
    gateway_bin: Option<std::path::PathBuf>,
    json_out: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let base = start_site(site)?;
    let mut results = Vec::new();
    for &concurrency in concurrencies {
        let db = Database::new(None)?;
        let launch = Launch {
            bin: gateway_bin.clone(),
            fake: "http://127.0.0.1:9/v1".to_owned(),
            env: vec![
                (
                    "SPIDERGATE_SPIDERGO__ALLOW_CIDRS".into(),
                    "127.0.0.1/32".into(),
                ),
                ("SPIDERGATE_SPIDERGO__SECURE_COOKIES".into(), "false".into()),
                (
                    "SPIDERGATE_SPIDERGO__MAX_PAGES_CAP".into(),
                    site.pages.to_string(),
                ),
                (
                    "SPIDERGATE_SPIDERGO__MAX_REQUEST_TIMEOUT_MS".into(),
                    "3600000".into(),
                ),
                (
                    "SPIDERGATE_SPIDERGO__CRAWL_BYTES_CAP".into(),
                    (u64::MAX / 2).to_string(),
                ),
                (
                    "SPIDERGATE_SPIDERGO__CRAWL_CONCURRENCY".into(),
                    concurrency.to_string(),
                ),
                (
                    "SPIDERGATE_SPIDERGO__PER_HOST_CONCURRENCY".into(),
                    concurrency.to_string(),
                ),
            ],
            vault_key: fernet::Fernet::generate_key(),
        };
        let gateway = Gateway::start(&launch, &db.url).await?;
        let key = sign_up(&gateway).await?;
        for (case, formats) in [
            ("links only", json!(["links"])),
            ("main content + Markdown", json!(["markdown"])),
        ] {
            let measured = crawl(&gateway, &key, &base, site, formats).await?;
            eprintln!("  done: {case} at crawl concurrency {concurrency}");
            results.push(Measured {
                concurrency,
                case,
                ..measured
            });
        }
    }
    print(site, &results);
    if let Some(path) = json_out {
        let rows: Vec<Value> = results
            .iter()
            .map(|m| {
                json!({
                    "concurrency": m.concurrency, "case": m.case, "pages": m.pages,
                    "pages_per_sec": m.pages as f64 / m.wall.as_secs_f64(),
                    "cpu_ms_per_page": m.cpu.as_secs_f64() * 1000.0 / m.pages.max(1) as f64,
                    "first_page_ms": m.first_page.as_secs_f64() * 1000.0,
                    "peak_rss_mib": m.peak_rss_kib as f64 / 1024.0,
                    "rss_growth_mib_per_1k_pages": m.growth_kib_per_1k / 1024.0,
                    "stop_reason": m.stop,
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_vec_pretty(&rows)?)?;
    }
    Ok(())
}

async fn sign_up(gateway: &Gateway) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let base = &gateway.base;
    let account =
        json!({"name": "bench", "email": "bench@example.com", "password": "bench password"});
    client
        .post(format!("{base}/auth/register"))
        .json(&account)
        .send()
        .await?
        .error_for_status()?;
    let login = json!({"email": "bench@example.com", "password": "bench password"});
    let signed = client
        .post(format!("{base}/auth/login"))
        .json(&login)
        .send()
        .await?
        .error_for_status()?;
    let jar: Vec<String> = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let made: Value = client
        .post(format!("{base}/auth/api-keys"))
        .header("cookie", jar.join("; "))
        .json(&json!({"name": "bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(made["api_key"].as_str().context("the new key")?.to_owned())
}

/// Crawls the whole site over NDJSON, sampling the gateway's memory while it runs.
async fn crawl(
    gateway: &Gateway,
    key: &str,
    base: &str,
    site: Site,
    formats: Value,
) -> anyhow::Result<Measured> {
    let body = json!({"url": format!("{base}/p/0"), "max_pages": site.pages, "max_depth": 5, "formats": formats});
    let rss_before = gateway.rss_kib()?;
    let cpu_before = gateway.cpu_time()?;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/crawl", gateway.base))
        .bearer_auth(key)
        .header("accept", "application/x-ndjson")
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "the crawl answered {}: {}",
            response.status(),
            response.text().await?
        );
    }
    let mut stream = response.bytes_stream();
    let (mut pages, mut first_page, mut peak_rss, mut pending) =
        (0u64, None, rss_before, Vec::new());
    let mut summary = Value::Null;
    let mut sampled = Instant::now();
    // Memory once a quarter of the site is in: the growth after it is the per-page slope, not
    // the one-off warm-up (worker heaps, the database's page cache).
    let (quarter, mut rss_at_quarter) = ((site.pages as u64 / 4).max(1), None);
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk?);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let value: Value = serde_json::from_slice(&line)?;
            if value.get("summary").is_some() {
                summary = value;
            } else {
                pages += 1;
                first_page.get_or_insert_with(|| started.elapsed());
                if pages == quarter {
                    rss_at_quarter = Some(gateway.rss_kib()?);
                }
            }
        }
        if sampled.elapsed() > Duration::from_millis(100) {
            peak_rss = peak_rss.max(gateway.rss_kib()?);
            sampled = Instant::now();
        }
    }
    let wall = started.elapsed();
    peak_rss = peak_rss.max(gateway.rss_kib()?);
    Ok(Measured {
        concurrency: 0,
        case: "",
        pages,
        wall,
        cpu: gateway.cpu_time()?.saturating_sub(cpu_before),
        first_page: first_page.unwrap_or(wall),
        peak_rss_kib: gateway.peak_rss_kib()?,
        growth_kib_per_1k: match rss_at_quarter {
            Some(at) => {
                peak_rss.saturating_sub(at) as f64 * 1000.0 / (pages - quarter).max(1) as f64
            }
            None => peak_rss.saturating_sub(rss_before) as f64 * 1000.0 / pages.max(1) as f64,
        },
        stop: summary["summary"]["StopReason"]
            .as_str()
            .unwrap_or("?")
            .to_owned(),
    })
}

fn print(site: Site, results: &[Measured]) {
    println!(
        "\nSpiderGo on a synthetic site: {} pages, fan-out {FAN_OUT}, ~27 KB each, delay {} ms\n",
        site.pages,
        site.delay.as_millis()
    );
    println!(
        "| crawl conc. | case | pages | pages/s | CPU ms/page | first page ms | peak RSS MiB | RSS growth MiB/1k pages | stop |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for m in results {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {:.2} | {} |",
            m.concurrency,
            m.case,
            m.pages,
            m.pages as f64 / m.wall.as_secs_f64(),
            m.cpu.as_secs_f64() * 1000.0 / m.pages.max(1) as f64,
            m.first_page.as_secs_f64() * 1000.0,
            m.peak_rss_kib as f64 / 1024.0,
            m.growth_kib_per_1k / 1024.0,
            m.stop
        );
    }
}
