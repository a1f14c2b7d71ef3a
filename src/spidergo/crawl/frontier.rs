//! The crawl's frontier: links waiting to be fetched, breadth first, each page at most once.
//!
//! Memory grows with `max_pages`, not with the site: once the pages fetched or queued reach
//! `max_pages`, no more links are queued (a 10,000-link page adds nothing to a 10-page crawl),
//! and only the visit keys of those pages are remembered.

use super::normalize::visit_key;
use super::scope::Scope;
use std::collections::{HashSet, VecDeque};
use url::Url;

/// A page to fetch: its URL as linked, how many links from the seed, and the page linking it.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub url: Url,
    pub depth: u32,
    pub parent: Option<Url>,
}

/// Links not followed, by reason (the crawl summary's `Skipped`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Already fetched or queued under another spelling.
    pub duplicate: u32,
    /// Outside the crawl's scope (origin, path patterns, not HTML).
    pub scope: u32,
    /// Beyond `max_depth`.
    pub depth: u32,
    /// Not queued because `max_pages` were already fetched or queued.
    pub limit: u32,
    /// Disallowed by robots.txt.
    pub robots: u32,
}

pub struct Frontier {
    queue: VecDeque<Queued>,
    /// Visit keys of every page fetched or queued.
    seen: HashSet<String>,
    /// Visit keys of links robots.txt disallowed.
    refused: HashSet<String>,
    max_pages: usize,
    max_depth: u32,
    ignore_query: bool,
    pub skipped: Skipped,
}

impl Frontier {
    /// A frontier holding `seed` at depth 0.
    pub fn new(seed: Url, max_pages: usize, max_depth: u32, ignore_query: bool) -> Frontier {
        let mut frontier = Frontier {
            queue: VecDeque::new(),
            seen: HashSet::new(),
            refused: HashSet::new(),
            max_pages,
            max_depth,
            ignore_query,
            skipped: Skipped::default(),
        };
        frontier.seen.insert(visit_key(&seed, ignore_query));
        frontier.queue.push_back(Queued {
            url: seed,
            depth: 0,
            parent: None,
        });
        frontier
    }

    /// The next page to fetch, breadth first.
    pub fn take(&mut self) -> Option<Queued> {
        self.queue.pop_front()
    }

    /// Queues `link`, found on `parent`, unless the crawl skips it (counted in `skipped`).
    pub fn offer(&mut self, link: Url, parent: &Queued, scope: &Scope) {
        self.offer_unless(link, parent, scope, |_| false);
    }

    /// As [`Frontier::offer`], also skipping (as `robots`) a link `disallowed` says robots.txt
    /// forbids; such a link is remembered, so it is counted once however often it is linked.
    pub fn offer_unless(
        &mut self,
        link: Url,
        parent: &Queued,
        scope: &Scope,
        disallowed: impl FnOnce(&Url) -> bool,
    ) {
        // Scope and duplicates first: a link back to a page already seen is a duplicate at
        // any depth, so `depth` counts only pages the depth limit really left out.
        if scope.check(&link).is_err() {
            self.skipped.scope += 1;
            return;
        }
        let key = visit_key(&link, self.ignore_query);
        if self.seen.contains(&key) {
            self.skipped.duplicate += 1;
            return;
        }
        let depth = parent.depth + 1;
        if depth > self.max_depth {
            self.skipped.depth += 1;
            return;
        }
        if self.refused.contains(&key) {
            self.skipped.duplicate += 1;
            return;
        }
        if disallowed(&link) {
            // Remembered apart from `seen`, so refused links never take a page's place; bounded
            // like `seen` (past it, a refused link repeated counts as refused again).
            if self.refused.len() < self.max_pages {
                self.refused.insert(key);
            }
            self.skipped.robots += 1;
            return;
        }
        if self.seen.len() >= self.max_pages {
            self.skipped.limit += 1;
            return;
        }
        self.seen.insert(key);
        self.queue.push_back(Queued {
            url: link,
            depth,
            parent: Some(parent.url.clone()),
        });
    }

    /// Records another URL a fetched page goes by (where its redirects ended, its canonical
    /// link); `false` when that page was already fetched or queued, so this one is a duplicate.
    pub fn also_known_as(&mut self, url: &Url) -> bool {
        self.seen.insert(visit_key(url, self.ignore_query))
    }

    /// Links queued and not yet taken.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URL")
    }

    fn site_scope() -> Scope {
        Scope::new(&url("https://example.com/"), false, &[], &[]).expect("scope")
    }

    #[test]
    fn pages_come_out_breadth_first_each_once() {
        let scope = site_scope();
        let mut frontier = Frontier::new(url("https://example.com/"), 100, 5, false);
        let seed = frontier.take().expect("seed");
        assert_eq!((seed.depth, seed.parent.clone()), (0, None));
        for link in ["/a", "/b", "/a/", "/a?utm_source=x", "/#top"] {
            frontier.offer(url(&format!("https://example.com{link}")), &seed, &scope);
        }
        assert_eq!(
            frontier.skipped.duplicate, 3,
            "/a/, utm and the seed's fragment"
        );
        let a = frontier.take().expect("a");
        frontier.offer(url("https://example.com/a/deeper"), &a, &scope);
        let order: Vec<(String, u32)> = std::iter::from_fn(|| frontier.take())
            .map(|q| (q.url.path().to_owned(), q.depth))
            .collect();
        assert_eq!(a.url.path(), "/a");
        assert_eq!(
            order,
            vec![("/b".to_owned(), 1), ("/a/deeper".to_owned(), 2)],
            "the sibling before the child"
        );
    }

    #[test]
    fn depth_scope_and_the_page_limit_are_counted_as_skipped() {
        let scope = site_scope();
        let mut frontier = Frontier::new(url("https://example.com/"), 3, 1, false);
        let seed = frontier.take().expect("seed");
        for i in 0..10 {
            frontier.offer(url(&format!("https://example.com/p{i}")), &seed, &scope);
        }
        frontier.offer(url("https://other.example/x"), &seed, &scope);
        frontier.offer(url("https://example.com/photo.jpg"), &seed, &scope);
        assert_eq!(frontier.waiting(), 2, "the seed and two pages make three");
        assert_eq!(frontier.skipped.limit, 8);
        assert_eq!(frontier.skipped.scope, 2);
        let child = frontier.take().expect("child");
        frontier.offer(url("https://example.com/grandchild"), &child, &scope);
        assert_eq!(frontier.skipped.depth, 1);
    }

    #[test]
    fn a_page_reached_under_another_name_is_a_duplicate() {
        let scope = site_scope();
        let mut frontier = Frontier::new(url("https://example.com/"), 10, 2, false);
        let seed = frontier.take().expect("seed");
        frontier.offer(url("https://example.com/old"), &seed, &scope);
        // /old redirected to /new, which is also linked from the seed.
        assert!(frontier.also_known_as(&url("https://example.com/new")));
        frontier.offer(url("https://example.com/new/"), &seed, &scope);
        assert_eq!(frontier.skipped.duplicate, 1);
        assert!(!frontier.also_known_as(&url("https://EXAMPLE.com/new")));
    }
}
