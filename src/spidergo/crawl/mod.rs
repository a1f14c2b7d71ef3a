//! Crawling a site: the breadth-first queue (`frontier`), which links are the same page
//! (`normalize`), what the site's robots.txt allows (`robots`), and which links a crawl follows at
//! all (`scope`).

pub mod frontier;
pub mod normalize;
pub mod robots;
pub mod run;
pub mod scope;
