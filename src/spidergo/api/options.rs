//! A scrape or crawl request's body, checked against the caps, turned into a crawl [`Plan`].

use crate::spidergo::SpiderGo;
use crate::spidergo::crawl::run::Plan;
use crate::spidergo::crawl::scope::Scope;
use crate::spidergo::error::GoError;
use crate::spidergo::extract::Wanted;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

/// Which endpoint the body came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Scrape,
    Crawl,
    Job,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Scrape => "scrape",
            Mode::Crawl => "crawl",
            Mode::Job => "job",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Content,
    Markdown,
    Html,
    Links,
}

/// Every option (all but `url` optional; `{"url"}` alone behaves as the seed says).
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<Format>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_main_content: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_paths: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_subdomains: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_query: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respect_robots: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_sitemap: Option<bool>,
}

const DEFAULT_MAX_PAGES: u64 = 10;
const DEFAULT_MAX_DEPTH: u64 = 2;

impl Options {
    /// The options a scrape does not take, by name, when any is set.
    fn crawl_only(&self) -> Option<&'static str> {
        [
            (self.max_pages.is_some(), "max_pages"),
            (self.max_depth.is_some(), "max_depth"),
            (self.include_paths.is_some(), "include_paths"),
            (self.exclude_paths.is_some(), "exclude_paths"),
            (self.allow_subdomains.is_some(), "allow_subdomains"),
            (self.ignore_query.is_some(), "ignore_query"),
            (self.respect_robots.is_some(), "respect_robots"),
            (self.use_sitemap.is_some(), "use_sitemap"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    /// The seed URL: absolute http(s), no credentials, not a non-public IP literal.
    pub fn seed(&self, go: &SpiderGo) -> Result<Url, GoError> {
        let url = Url::parse(self.url.trim())
            .map_err(|_| GoError::bad_request("`url` must be an absolute http(s) URL"))?;
        go.guard
            .check_url(&url)
            .map_err(|refused| GoError::bad_request(format!("`url`: {refused}")))?;
        Ok(url)
    }

    /// The crawl this request asks for, or a 400 naming the option that is wrong.
    pub fn plan(&self, go: &SpiderGo, mode: Mode) -> Result<Plan, GoError> {
        let config = &go.config;
        if mode == Mode::Scrape
            && let Some(name) = self.crawl_only()
        {
            return Err(GoError::bad_request(format!(
                "`{name}` applies to /v1/crawl only"
            )));
        }
        let seed = self.seed(go)?;
        let pages_cap = match mode {
            Mode::Job => config.job_max_pages_cap,
            _ => config.max_pages_cap,
        };
        let max_pages = capped(
            "max_pages",
            self.max_pages,
            DEFAULT_MAX_PAGES,
            1,
            pages_cap.into(),
        )?;
        let max_depth = capped(
            "max_depth",
            self.max_depth,
            DEFAULT_MAX_DEPTH,
            0,
            config.max_depth_cap.into(),
        )?;
        let default_timeout = match mode {
            Mode::Job => config.max_request_timeout_ms,
            _ => config.request_timeout_ms,
        };
        let timeout_ms = capped(
            "timeout_ms",
            self.timeout_ms,
            default_timeout,
            1,
            config.max_request_timeout_ms,
        )?;
        let formats = self
            .formats
            .clone()
            .unwrap_or_else(|| vec![Format::Content, Format::Links]);
        if formats.is_empty() {
            return Err(GoError::bad_request(
                "`formats` must name at least one of content, markdown, html, links",
            ));
        }
        let scope = Scope::new(
            &seed,
            self.allow_subdomains.unwrap_or(false),
            self.include_paths.as_deref().unwrap_or_default(),
            self.exclude_paths.as_deref().unwrap_or_default(),
        )
        .map_err(GoError::bad_request)?;
        let follow = mode != Mode::Scrape;
        let show_links = formats.contains(&Format::Links);
        let (max_pages, max_depth) = if follow {
            (max_pages as usize, max_depth as u32)
        } else {
            (1, 0)
        };
        Ok(Plan {
            seed,
            max_pages,
            max_depth,
            scope,
            ignore_query: self.ignore_query.unwrap_or(false),
            respect_robots: follow && self.respect_robots.unwrap_or(true),
            use_sitemap: self.use_sitemap.unwrap_or(false),
            wanted: Wanted {
                content: formats.contains(&Format::Content),
                markdown: formats.contains(&Format::Markdown),
                html: formats.contains(&Format::Html),
                links: show_links || follow,
                main_content_only: self.only_main_content.unwrap_or(true),
            },
            follow,
            show_links,
            deadline: tokio::time::Instant::now() + Duration::from_millis(timeout_ms),
        })
    }
}

/// `value` (or `default`) when within `min..=max`, else a 400 naming the option and its range.
fn capped(
    name: &str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, GoError> {
    let value = value.unwrap_or(default.min(max));
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(GoError::bad_request(format!(
            "`{name}` must be between {min} and {max}"
        )))
    }
}

/// Refuses a seed whose host resolves to a non-public address (a 400 before anything is
/// fetched or counted). A name that does not resolve is left to the fetch, which reports it on
/// the page.
pub async fn check_target(go: &SpiderGo, seed: &Url) -> Result<(), GoError> {
    let Some(url::Host::Domain(host)) = seed.host() else {
        return Ok(());
    };
    let lookup = go.lookup.lookup(host.to_owned());
    let Ok(Ok(addrs)) = tokio::time::timeout(Duration::from_secs(5), lookup).await else {
        return Ok(());
    };
    for addr in addrs {
        go.guard
            .check_ip(addr.ip())
            .map_err(|refused| GoError::bad_request(format!("`url`: {refused}")))?;
    }
    Ok(())
}
