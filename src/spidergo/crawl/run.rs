//! The crawl loop: takes pages from the frontier breadth first, fetches up to
//! `crawl_concurrency` at once (and at most `per_host_concurrency` per host across the whole
//! process), honours robots.txt and its Crawl-delay, extracts each page on the blocking pool,
//! hands every finished page to the caller as it completes, and stops on exhaustion, a limit, the
//! byte cap, the deadline or a cancel, saying which.
//!
//! A scrape is the same loop with one page, no robots.txt and no links followed.

use super::frontier::{Frontier, Queued, Skipped};
use super::robots::{Fetched, PARSE_LIMIT, Robots};
use super::scope::Scope;
use crate::spidergo::SpiderGo;
use crate::spidergo::extract::{self, Wanted};
use crate::spidergo::fetch::client::{FetchError, fetch};
use dashmap::DashMap;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;
use url::Url;

/// What to crawl and how.
pub struct Plan {
    pub seed: Url,
    pub max_pages: usize,
    pub max_depth: u32,
    pub scope: Scope,
    pub ignore_query: bool,
    pub respect_robots: bool,
    pub use_sitemap: bool,
    pub wanted: Wanted,
    /// Follow links at all (false for a scrape).
    pub follow: bool,
    /// Show each page's links (a crawl extracts them to follow them either way).
    pub show_links: bool,
    pub deadline: Instant,
}

/// One finished page, as the API shows it (the seed's fields first).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PageOut {
    #[serde(rename = "URL")]
    pub url: String,
    #[serde(rename = "StatusCode")]
    pub status_code: u16,
    #[serde(rename = "Title")]
    pub title: String,
    #[serde(rename = "Content")]
    pub content: String,
    #[serde(rename = "Links")]
    pub links: Vec<String>,
    #[serde(rename = "ResponseTimeMS")]
    pub response_time_ms: u64,
    #[serde(rename = "PayloadSize")]
    pub payload_size: u64,
    #[serde(rename = "Markdown", skip_serializing_if = "Option::is_none", default)]
    pub markdown: Option<String>,
    #[serde(rename = "HTML", skip_serializing_if = "Option::is_none", default)]
    pub html: Option<String>,
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "Canonical")]
    pub canonical: Option<String>,
    #[serde(rename = "FinalURL")]
    pub final_url: String,
    #[serde(rename = "ContentType")]
    pub content_type: Option<String>,
    #[serde(rename = "Depth")]
    pub depth: u32,
    #[serde(rename = "ParentURL")]
    pub parent_url: Option<String>,
    /// The body was longer than the page cap and was cut there.
    #[serde(
        rename = "Truncated",
        skip_serializing_if = "std::ops::Not::not",
        default
    )]
    pub truncated: bool,
    #[serde(rename = "Error", skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// Why a crawl stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// Every page in scope was visited.
    Exhausted,
    /// `max_pages` reached with links left over.
    Limit,
    /// Links beyond `max_depth` were left over.
    Depth,
    Deadline,
    /// The crawl's byte cap was reached.
    Bytes,
    /// An async job was cancelled.
    Cancelled,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Exhausted => "exhausted",
            StopReason::Limit => "limit",
            StopReason::Depth => "depth",
            StopReason::Deadline => "deadline",
            StopReason::Bytes => "bytes",
            StopReason::Cancelled => "cancelled",
        }
    }
}

/// Links not followed, as the summary shows them.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SkippedOut {
    #[serde(rename = "Robots")]
    pub robots: u32,
    #[serde(rename = "Scope")]
    pub scope: u32,
    #[serde(rename = "Duplicate")]
    pub duplicate: u32,
}

/// The crawl's totals.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub pages: u32,
    pub response_ms: u64,
    pub payload: u64,
    pub stop: StopReason,
    pub skipped: SkippedOut,
}

/// Pages fetched at once per host, across every crawl of the process. A host's entry goes
/// when nobody holds or waits for it, so memory follows the hosts being crawled now.
#[derive(Clone)]
pub struct HostLimits {
    per_host: usize,
    hosts: Arc<DashMap<String, Arc<Semaphore>>>,
}

/// A slot of one host; frees it (and forgets an idle host) when dropped.
pub struct HostSlot {
    _permit: OwnedSemaphorePermit,
    host: String,
    limits: HostLimits,
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        let per_host = self.limits.per_host;
        // The permit is released after this body; count it as released already.
        self.limits.hosts.remove_if(&self.host, |_, semaphore| {
            // The map and this slot's permit hold it; anyone else is waiting.
            Arc::strong_count(semaphore) == 2 && semaphore.available_permits() + 1 == per_host
        });
    }
}

impl HostLimits {
    pub fn new(per_host: usize) -> HostLimits {
        HostLimits {
            per_host: per_host.max(1),
            hosts: Arc::new(DashMap::new()),
        }
    }

    pub async fn acquire(&self, host: &str) -> HostSlot {
        let semaphore = self
            .hosts
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
            .clone();
        let permit = semaphore.acquire_owned().await;
        HostSlot {
            // The semaphore is never closed.
            _permit: permit.unwrap_or_else(|_| unreachable!("host semaphores are never closed")),
            host: host.to_owned(),
            limits: self.clone(),
        }
    }

    /// Hosts with a live entry (for tests of the clean-up).
    pub fn tracked(&self) -> usize {
        self.hosts.len()
    }
}

/// A visited page and what the loop needs from it.
struct Visit {
    queued: Queued,
    page: PageOut,
    final_url: Option<Url>,
    canonical: Option<Url>,
    links: Vec<Url>,
}

/// robots.txt of each origin met, and when each origin may next be fetched (Crawl-delay).
struct Politeness {
    robots: HashMap<String, Arc<Robots>>,
    next_slot: HashMap<String, Instant>,
}

/// Runs `plan`, sending every finished page to `pages` in completion order; stops early when
/// `cancel` turns true or the receiver is gone.
pub async fn crawl(
    go: &SpiderGo,
    plan: Plan,
    pages: mpsc::Sender<PageOut>,
    mut cancel: watch::Receiver<bool>,
) -> Summary {
    let config = &go.config;
    let mut frontier = Frontier::new(
        plan.seed.clone(),
        plan.max_pages,
        plan.max_depth,
        plan.ignore_query,
    );
    let mut polite = Politeness {
        robots: HashMap::new(),
        next_slot: HashMap::new(),
    };
    if plan.respect_robots {
        let robots = robots_of(go, &plan.seed, plan.deadline).await;
        polite.robots.insert(origin_key(&plan.seed), robots);
    }
    if plan.use_sitemap && plan.follow {
        seed_from_sitemaps(go, &plan, &mut frontier, &polite).await;
    }
    let mut inflight = FuturesUnordered::new();
    let (mut fetched, mut response_ms, mut payload) = (0u32, 0u64, 0u64);
    let mut stop = None;
    let concurrency = config.crawl_concurrency.max(1);
    let mut watching = !*cancel.borrow();
    if !watching {
        stop = Some(StopReason::Cancelled);
    }
    loop {
        while stop.is_none() && inflight.len() < concurrency {
            // Past the deadline nothing new starts; what is in flight ends by it (every fetch's
            // timeout is cut to what is left), so those pages are still reported.
            if Instant::now() >= plan.deadline {
                stop = Some(StopReason::Deadline);
                break;
            }
            let Some(queued) = frontier.take() else {
                break;
            };
            let origin = origin_key(&queued.url);
            if plan.respect_robots {
                if !polite.robots.contains_key(&origin) {
                    let robots = robots_of(go, &queued.url, plan.deadline).await;
                    polite.robots.insert(origin.clone(), robots);
                }
                if polite
                    .robots
                    .get(&origin)
                    .is_some_and(|r| !r.allows(path_of(&queued.url)))
                {
                    frontier.skipped.robots += 1;
                    continue;
                }
            }
            let start_at = polite.slot(&origin, config.max_crawl_delay_secs);
            inflight.push(visit(go, queued, &plan, start_at));
        }
        if inflight.is_empty() {
            break;
        }
        let visit = tokio::select! {
            biased;
            changed = cancel.changed(), if watching => {
                // A dropped sender means nobody can cancel any more, not a cancel.
                watching = changed.is_ok();
                if watching && *cancel.borrow() {
                    stop = Some(StopReason::Cancelled);
                    break;
                }
                continue;
            }
            Some(visit) = inflight.next() => visit,
        };
        let Visit {
            queued,
            page,
            final_url,
            canonical,
            links,
        } = visit;
        if let Some(final_url) = &final_url {
            // A redirect onto a page already fetched or queued: the same page again, not reported.
            if final_url != &queued.url && !frontier.also_known_as(final_url) && queued.depth > 0 {
                frontier.skipped.duplicate += 1;
                continue;
            }
        }
        if let Some(canonical) = &canonical {
            frontier.also_known_as(canonical);
        }
        fetched += 1;
        response_ms += page.response_time_ms;
        payload += page.payload_size;
        if plan.follow {
            for link in links {
                let origin = origin_key(&link);
                let robots = polite.robots.get(&origin).cloned();
                frontier.offer_unless(link, &queued, &plan.scope, |url| {
                    plan.respect_robots && robots.is_some_and(|r| !r.allows(path_of(url)))
                });
            }
        }
        if pages.send(page).await.is_err() {
            stop = Some(StopReason::Cancelled);
            break;
        }
        if payload >= config.crawl_bytes_cap {
            stop = Some(StopReason::Bytes);
            break;
        }
    }
    let skipped = frontier.skipped;
    Summary {
        pages: fetched,
        response_ms,
        payload,
        stop: stop.unwrap_or_else(|| natural_end(&skipped)),
        skipped: SkippedOut {
            robots: skipped.robots,
            scope: skipped.scope,
            duplicate: skipped.duplicate,
        },
    }
}

/// Why a crawl that ran out of pages ended: a page limit or depth left links behind, or not.
fn natural_end(skipped: &Skipped) -> StopReason {
    if skipped.limit > 0 {
        StopReason::Limit
    } else if skipped.depth > 0 {
        StopReason::Depth
    } else {
        StopReason::Exhausted
    }
}

impl Politeness {
    /// When the next fetch from `origin` may start: now, or the origin's Crawl-delay after the
    /// one before it (the delay cut to `max_delay_secs`).
    fn slot(&mut self, origin: &str, max_delay_secs: u64) -> Option<Instant> {
        let delay = self.robots.get(origin)?.crawl_delay?;
        let delay = Duration::from_secs_f64(delay.clamp(0.0, max_delay_secs as f64));
        let now = Instant::now();
        let at = self
            .next_slot
            .get(origin)
            .map_or(now, |&next| next.max(now));
        self.next_slot.insert(origin.to_owned(), at + delay);
        Some(at)
    }
}

fn origin_key(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn path_of(url: &Url) -> &str {
    &url[url::Position::BeforePath..url::Position::AfterQuery]
}

/// The origin's robots.txt, by RFC 9309's rules for the answer (4xx allows all; 5xx, a
/// timeout or no answer disallows all).
async fn robots_of(go: &SpiderGo, url: &Url, deadline: Instant) -> Arc<Robots> {
    let Ok(robots_url) = url.join("/robots.txt") else {
        return Arc::new(Robots::allow_all());
    };
    let timeout = page_timeout(go, deadline);
    let answer = fetch(&go.client, &go.guard, &robots_url, timeout, PARSE_LIMIT).await;
    let robots = match &answer {
        Ok(page) => Robots::from_fetch(
            Fetched::Answer(page.status, &page.body),
            &go.config.user_agent,
        ),
        Err(_) => Robots::from_fetch(Fetched::Unreachable, &go.config.user_agent),
    };
    Arc::new(robots)
}

/// Most URLs taken from sitemaps, and most sitemap documents read (an index may list others).
const SITEMAP_URLS: usize = 10_000;
const SITEMAP_DOCUMENTS: usize = 5;
const SITEMAP_BYTES: usize = 10 * 1024 * 1024;

/// Queues the pages the site's sitemaps list (those robots.txt names, else `/sitemap.xml`), as
/// links of the seed page.
async fn seed_from_sitemaps(
    go: &SpiderGo,
    plan: &Plan,
    frontier: &mut Frontier,
    polite: &Politeness,
) {
    let robots = polite.robots.get(&origin_key(&plan.seed));
    let mut queue: Vec<Url> = robots
        .map(|r| {
            r.sitemaps
                .iter()
                .filter_map(|s| Url::parse(s).ok())
                .collect()
        })
        .unwrap_or_default();
    if queue.is_empty() {
        queue.extend(plan.seed.join("/sitemap.xml").ok());
    }
    let seed = Queued {
        url: plan.seed.clone(),
        depth: 0,
        parent: None,
    };
    let mut taken = 0;
    let mut documents = 0;
    while let Some(sitemap) = queue.pop() {
        if documents == SITEMAP_DOCUMENTS || taken >= SITEMAP_URLS {
            break;
        }
        documents += 1;
        let timeout = page_timeout(go, plan.deadline);
        let Ok(page) = fetch(&go.client, &go.guard, &sitemap, timeout, SITEMAP_BYTES).await else {
            continue;
        };
        if page.status >= 400 {
            continue;
        }
        let text = String::from_utf8_lossy(&page.body);
        let nested = text.contains("<sitemapindex");
        for loc in locs(&text).take(SITEMAP_URLS - taken) {
            let Ok(url) = Url::parse(loc) else {
                continue;
            };
            taken += 1;
            if nested {
                queue.push(url);
            } else {
                let robots = robots.cloned();
                frontier.offer_unless(url, &seed, &plan.scope, |u| {
                    plan.respect_robots && robots.is_some_and(|r| !r.allows(path_of(u)))
                });
            }
        }
    }
}

/// The text of every `<loc>` element, entities for `&` undone.
fn locs(xml: &str) -> impl Iterator<Item = &str> {
    xml.split("<loc>").skip(1).filter_map(|rest| {
        let end = rest.find("</loc>")?;
        Some(rest[..end].trim())
    })
}

/// How long one fetch may take: the page timeout, or what is left of the crawl if less.
fn page_timeout(go: &SpiderGo, deadline: Instant) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    Duration::from_millis(go.config.page_timeout_ms).min(left)
}

/// Fetches and extracts one page; a failure is a page with `Error`, never nothing.
async fn visit(go: &SpiderGo, queued: Queued, plan: &Plan, start_at: Option<Instant>) -> Visit {
    let (wanted, deadline) = (plan.wanted, plan.deadline);
    if let Some(at) = start_at {
        tokio::time::sleep_until(at.min(deadline)).await;
    }
    let host = queued.url.host_str().unwrap_or_default().to_owned();
    let slot = tokio::time::timeout_at(deadline, go.hosts.acquire(&host)).await;
    let started = crate::clock::stopwatch();
    let answer = match &slot {
        Ok(_) => {
            let timeout = page_timeout(go, deadline);
            fetch(
                &go.client,
                &go.guard,
                &queued.url,
                timeout,
                go.config.page_cap_bytes,
            )
            .await
        }
        Err(_) => Err(FetchError::Failed(
            "the crawl's deadline passed before this page was fetched".to_owned(),
        )),
    };
    drop(slot);
    let response_time_ms = started.elapsed().as_millis() as u64;
    let mut page = PageOut {
        url: queued.url.to_string(),
        status_code: 0,
        title: String::new(),
        content: String::new(),
        links: Vec::new(),
        response_time_ms,
        payload_size: 0,
        markdown: None,
        html: None,
        description: String::new(),
        canonical: None,
        final_url: queued.url.to_string(),
        content_type: None,
        depth: queued.depth,
        parent_url: queued.parent.as_ref().map(Url::to_string),
        truncated: false,
        error: None,
    };
    let fetched = match answer {
        Ok(fetched) => fetched,
        Err(err) => {
            page.error = Some(match err {
                FetchError::Timeout => "the page did not answer in time".to_owned(),
                other => other.to_string(),
            });
            return Visit {
                queued,
                page,
                final_url: None,
                canonical: None,
                links: Vec::new(),
            };
        }
    };
    page.status_code = fetched.status;
    page.payload_size = fetched.body.len() as u64;
    page.final_url = fetched.final_url.to_string();
    page.content_type = fetched.content_type.clone();
    page.truncated = fetched.truncated;
    if fetched.status >= 400 {
        page.error = Some(format!("the target answered HTTP {}", fetched.status));
    }
    let is_html = fetched.content_type.as_deref().is_none_or(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("text/html") || t.starts_with("application/xhtml")
    });
    let final_url = fetched.final_url.clone();
    if !is_html {
        let is_text = fetched
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/") || t.contains("json"));
        if is_text && wanted.content {
            page.content = String::from_utf8_lossy(&fetched.body).into_owned();
        }
        return Visit {
            queued,
            page,
            final_url: Some(final_url),
            canonical: None,
            links: Vec::new(),
        };
    }
    let body = fetched.body;
    let at = final_url.clone();
    let Ok(_cpu) = go.extracting.acquire().await else {
        page.error = Some("the page could not be read".to_owned());
        return Visit {
            queued,
            page,
            final_url: Some(final_url),
            canonical: None,
            links: Vec::new(),
        };
    };
    let extracted = tokio::task::spawn_blocking(move || {
        extract::extract(&String::from_utf8_lossy(&body), &at, wanted)
    })
    .await;
    let Ok(extracted) = extracted else {
        page.error = Some("the page could not be read".to_owned());
        return Visit {
            queued,
            page,
            final_url: Some(final_url),
            canonical: None,
            links: Vec::new(),
        };
    };
    page.title = extracted.title;
    page.description = extracted.description;
    page.canonical = extracted.canonical.as_ref().map(Url::to_string);
    page.content = extracted.content;
    page.markdown = extracted.markdown;
    page.html = extracted.html;
    page.links = if plan.show_links {
        extracted.links.iter().map(Url::to_string).collect()
    } else {
        Vec::new()
    };
    Visit {
        queued,
        page,
        final_url: Some(final_url),
        canonical: extracted.canonical,
        links: extracted.links,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sitemap_locations_are_read() {
        let xml = "<urlset><url><loc> https://a.example/x </loc></url><url><loc>https://a.example/y</loc></url></urlset>";
        assert_eq!(
            super::locs(xml).collect::<Vec<_>>(),
            ["https://a.example/x", "https://a.example/y"]
        );
    }

    #[tokio::test]
    async fn an_idle_host_is_forgotten_and_a_busy_one_is_not() {
        let limits = super::HostLimits::new(2);
        let a = limits.acquire("a.example").await;
        let b = limits.acquire("a.example").await;
        assert_eq!(limits.tracked(), 1);
        drop(a);
        assert_eq!(limits.tracked(), 1, "one slot still held");
        drop(b);
        assert_eq!(limits.tracked(), 0);
    }
}
