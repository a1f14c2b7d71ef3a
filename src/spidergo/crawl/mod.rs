//! Crawling a site: which links are the same page (`normalize`) and what the site's robots.txt
//! allows (`robots`), and which links it follows at all (`scope`).

pub mod normalize;
pub mod robots;
pub mod scope;
