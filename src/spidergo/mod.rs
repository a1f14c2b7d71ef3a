//! SpiderGo, the scrape and crawl API (issue #12): its own accounts, `sk_live_` keys and fetch
//! pipeline, served by the same binary. Built so far: the fetch guard, the one judge of which
//! addresses may be fetched (`fetch::guard`), and the guarded client and `fetch` built on it
//! (`fetch::client`: checked URLs, a checking resolver, checked redirect hops, a body cap and a
//! timeout); for crawls, the frontier (`crawl::frontier`), the visit key (`crawl::normalize`),
//! robots.txt (`crawl::robots`) and the link scope (`crawl::scope`). Nothing serves them yet:
//! accounts, keys, extraction, the crawl loop and the routes come next.

pub mod crawl;
pub mod fetch;
