//! SpiderGo, the scrape and crawl API (issue #12): its own accounts, `sk_live_` keys and fetch
//! pipeline, served by the same binary. Built so far: the fetch guard, the one judge of which
//! addresses may be fetched (see `fetch::guard`); the rest is not wired yet.

pub mod fetch;
