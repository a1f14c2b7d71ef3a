//! robots.txt as RFC 9309 reads it: which paths a crawler may fetch, its `Crawl-delay`, and the
//! sitemaps the file lists.
//!
//! - Records are grouped by consecutive `user-agent` lines; the groups naming our product token
//!   (case-insensitively) apply, their rules merged; failing those, the `*` groups; failing
//!   those, everything is allowed.
//! - The longest matching pattern wins; on a tie between allow and disallow, allow wins. `*`
//!   matches any run of characters and a final `$` anchors the end. `/robots.txt` itself is
//!   always allowed.
//! - What the fetch of the file said decides before any parsing: a 4xx (the file is not there)
//!   allows everything, a 5xx or no answer at all disallows everything for this crawl (the site
//!   may be down or overloaded), and only the first 500 KiB of a file is read.

/// The most of a robots.txt that is parsed (RFC 9309 section 2.5 asks for at least 500 KiB).
pub const PARSE_LIMIT: usize = 500 * 1024;

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    allow: bool,
    pattern: String,
}

/// What a site's robots.txt lets one crawler do.
#[derive(Debug, Clone, PartialEq)]
pub struct Robots {
    rules: Vec<Rule>,
    /// Everything is refused (the file could not be fetched for a server-side reason).
    refuse_all: bool,
    /// Seconds to wait between requests to the site, as its group asks.
    pub crawl_delay: Option<f64>,
    /// `Sitemap:` lines, whichever group they are in (they belong to no group).
    pub sitemaps: Vec<String>,
}

/// How the fetch of `/robots.txt` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched<'a> {
    /// A final status (after redirects) and the body.
    Answer(u16, &'a [u8]),
    /// No answer: refused, reset, timed out, or too many redirects.
    Unreachable,
}

impl Robots {
    /// No rules: every path is allowed.
    pub fn allow_all() -> Robots {
        Robots {
            rules: Vec::new(),
            refuse_all: false,
            crawl_delay: None,
            sitemaps: Vec::new(),
        }
    }

    fn refuse_all() -> Robots {
        Robots {
            refuse_all: true,
            ..Robots::allow_all()
        }
    }

    /// The rules for crawler `agent` (its product token, e.g. `SpiderGo`) given how the fetch
    /// of robots.txt ended.
    pub fn from_fetch(fetched: Fetched<'_>, agent: &str) -> Robots {
        match fetched {
            Fetched::Answer(200..=299, body) => {
                let body = &body[..body.len().min(PARSE_LIMIT)];
                Robots::parse(&String::from_utf8_lossy(body), agent)
            }
            // "Unavailable" (RFC 9309 2.3.1.3): the crawler may access any resource.
            Fetched::Answer(300..=499, _) => Robots::allow_all(),
            // "Unreachable" (2.3.1.4): assume complete disallow.
            Fetched::Answer(_, _) | Fetched::Unreachable => Robots::refuse_all(),
        }
    }

    /// Parses a robots.txt body for crawler `agent`.
    pub fn parse(body: &str, agent: &str) -> Robots {
        let mut robots = Robots::allow_all();
        // Groups as (user agents, rules, crawl-delay).
        let mut groups: Vec<(Vec<String>, Vec<Rule>, Option<f64>)> = Vec::new();
        let mut open_agents = false;
        for line in body.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if !open_agents {
                        groups.push((Vec::new(), Vec::new(), None));
                        open_agents = true;
                    }
                    if let Some(group) = groups.last_mut() {
                        group.0.push(value.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" => {
                    open_agents = false;
                    // An empty pattern matches nothing (`Disallow:` allows everything).
                    if let Some(group) = groups.last_mut().filter(|_| !value.is_empty()) {
                        group.1.push(Rule {
                            allow: key == "allow",
                            pattern: value.to_owned(),
                        });
                    }
                }
                "crawl-delay" => {
                    open_agents = false;
                    let delay = value
                        .parse::<f64>()
                        .ok()
                        .filter(|d| d.is_finite() && *d >= 0.0);
                    if let (Some(group), Some(delay)) = (groups.last_mut(), delay) {
                        group.2 = Some(delay);
                    }
                }
                "sitemap" => robots.sitemaps.push(value.to_owned()),
                _ => {}
            }
        }
        let agent = agent.to_ascii_lowercase();
        let named = |wanted: &str| {
            let mut chosen = groups
                .iter()
                .filter(|(agents, _, _)| agents.iter().any(|a| a == wanted))
                .peekable();
            chosen.peek().is_some().then(|| chosen.collect::<Vec<_>>())
        };
        if let Some(chosen) = named(&agent).or_else(|| named("*")) {
            for (_, rules, delay) in chosen {
                robots.rules.extend(rules.iter().cloned());
                robots.crawl_delay = robots.crawl_delay.or(*delay);
            }
        }
        robots
    }

    /// Whether the crawler may fetch `path` (the URL's path and `?query`, as sent).
    pub fn allows(&self, path: &str) -> bool {
        if path == "/robots.txt" {
            return true;
        }
        if self.refuse_all {
            return false;
        }
        let mut best: Option<(usize, bool)> = None;
        for rule in &self.rules {
            if !matches(&rule.pattern, path) {
                continue;
            }
            let length = rule.pattern.len();
            let better = match best {
                None => true,
                Some((best_len, best_allow)) => {
                    length > best_len || (length == best_len && rule.allow && !best_allow)
                }
            };
            if better {
                best = Some((length, rule.allow));
            }
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// Whether `pattern` (with `*` wildcards and an optional final `$`) matches the start of `path`
/// (all of it, with `$`).
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(stripped) => (stripped.as_bytes(), true),
        None => (pattern.as_bytes(), false),
    };
    let path = path.as_bytes();
    // Glob matching with backtracking to the last `*`; an unanchored pattern may stop early.
    let (mut p, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p == pattern.len() && (!anchored || s == path.len()) {
            return true;
        }
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, s));
            p += 1;
            continue;
        }
        if p < pattern.len() && s < path.len() && pattern[p] == path[s] {
            p += 1;
            s += 1;
            continue;
        }
        match star {
            Some((star_p, star_s)) if star_s < path.len() => {
                star = Some((star_p, star_s + 1));
                p = star_p + 1;
                s = star_s + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Fetched, Robots, matches};

    const FILE: &str = "\
# a comment
User-agent: *
Disallow: /private
Allow: /private/open
Disallow: /*.pdf$
Crawl-delay: 2

User-agent: SpiderGo
User-agent: OtherBot
Disallow: /no-spiders   # trailing comment
Allow: /no-spiders/yes
Disallow: /tmp*/cache
Crawl-delay: 0.5

Sitemap: https://example.com/sitemap.xml
User-agent: spidergo
Disallow: /also
";

    #[test]
    fn our_groups_apply_merged_and_the_star_group_does_not() {
        let robots = Robots::parse(FILE, "SpiderGo");
        assert!(robots.allows("/private"), "only the * group disallows it");
        assert!(!robots.allows("/no-spiders/page"));
        assert!(
            robots.allows("/no-spiders/yes/page"),
            "the longer allow wins"
        );
        assert!(!robots.allows("/also/x"), "both groups naming us apply");
        assert!(!robots.allows("/tmp123/cache/x"));
        assert!(robots.allows("/tmp123/other"));
        assert_eq!(robots.crawl_delay, Some(0.5));
        assert_eq!(robots.sitemaps, vec!["https://example.com/sitemap.xml"]);
    }

    #[test]
    fn another_crawler_falls_back_to_the_star_group() {
        let robots = Robots::parse(FILE, "SomeoneElse");
        assert!(!robots.allows("/private/x"));
        assert!(robots.allows("/private/open/x"));
        assert!(!robots.allows("/docs/file.pdf"));
        assert!(
            robots.allows("/docs/file.pdf?download=1"),
            "$ anchors the end"
        );
        assert!(robots.allows("/no-spiders"));
        assert_eq!(robots.crawl_delay, Some(2.0));
    }

    #[test]
    fn equal_length_allow_beats_disallow_and_empty_disallow_allows_all() {
        let robots = Robots::parse("User-agent: *\nDisallow: /page\nAllow: /page\n", "x");
        assert!(robots.allows("/page"));
        let robots = Robots::parse("User-agent: *\nDisallow:\n", "x");
        assert!(robots.allows("/anything"));
        let robots = Robots::parse("User-agent: *\nDisallow: /\n", "x");
        assert!(!robots.allows("/anything") && robots.allows("/robots.txt"));
    }

    #[test]
    fn how_the_fetch_ended_decides_first() {
        let disallow_all = b"User-agent: *\nDisallow: /\n".as_slice();
        assert!(!Robots::from_fetch(Fetched::Answer(200, disallow_all), "x").allows("/a"));
        assert!(Robots::from_fetch(Fetched::Answer(404, b""), "x").allows("/a"));
        assert!(Robots::from_fetch(Fetched::Answer(403, b""), "x").allows("/a"));
        assert!(!Robots::from_fetch(Fetched::Answer(503, b""), "x").allows("/a"));
        assert!(!Robots::from_fetch(Fetched::Unreachable, "x").allows("/a"));
    }

    #[test]
    fn only_the_first_500_kib_is_read() {
        let mut body = "User-agent: *\nDisallow: /early\n".to_owned();
        body.push_str(&"#".repeat(super::PARSE_LIMIT));
        body.push_str("\nDisallow: /late\n");
        let robots = Robots::from_fetch(Fetched::Answer(200, body.as_bytes()), "x");
        assert!(!robots.allows("/early") && robots.allows("/late"));
    }

    #[test]
    fn wildcards_and_anchors() {
        let table: &[(&str, &str, bool)] = &[
            ("/", "/anything", true),
            ("/fish", "/fish.html", true),
            ("/fish", "/Fish", false),
            ("/fish*", "/fishheads", true),
            ("/*.php", "/index.php", true),
            ("/*.php", "/folder/any.php.file.html", true),
            ("/*.php$", "/filename.php?parameters", false),
            ("/*.php$", "/filename.php", true),
            ("/fish*.php", "/fish.php", true),
            ("/fish*.php", "/fishheads/catfish.php?parameters", true),
            ("/fish*.php", "/Fish.PHP", false),
            ("/a*b*c$", "/aXbYc", true),
            ("/a*b*c$", "/aXbYcZ", false),
            ("*", "", true),
            ("/$", "/", true),
            ("/$", "/a", false),
        ];
        for (pattern, path, expected) in table {
            assert_eq!(matches(pattern, path), *expected, "{pattern} on {path}");
        }
    }
}
