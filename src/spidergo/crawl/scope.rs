//! Which links a crawl follows: the seed's origin (scheme, host and port), optionally its
//! subdomains, the caller's `include_paths` / `exclude_paths` regexes on the path, and only
//! links that can be HTML.

use regex::Regex;
use url::Url;

/// Longest pattern accepted, and most patterns per list: a crawl request must not be able to
/// make the regex engine the expensive part.
const MAX_PATTERN_LEN: usize = 256;
const MAX_PATTERNS: usize = 20;

/// Extensions that are never HTML pages: skipped before fetching.
const NOT_HTML: [&str; 32] = [
    "7z", "avi", "bmp", "css", "csv", "dmg", "doc", "docx", "eot", "exe", "gif", "gz", "ico",
    "iso", "jpeg", "jpg", "js", "json", "mov", "mp3", "mp4", "pdf", "png", "ppt", "pptx", "rar",
    "svg", "tar", "tgz", "webp", "woff2", "zip",
];

/// Why a link is not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfScope {
    /// Another scheme, host or port.
    Origin,
    /// `include_paths` given and none matched, or an `exclude_paths` pattern matched.
    Path,
    /// A file type that is not a page.
    NotHtml,
}

#[derive(Debug, Clone)]
pub struct Scope {
    scheme: String,
    host: String,
    port: Option<u16>,
    allow_subdomains: bool,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

/// Compiles one list of path patterns; the error names the field and the pattern.
fn compile(field: &str, patterns: &[String]) -> Result<Vec<Regex>, String> {
    if patterns.len() > MAX_PATTERNS {
        return Err(format!("{field}: at most {MAX_PATTERNS} patterns"));
    }
    patterns
        .iter()
        .map(|pattern| {
            if pattern.len() > MAX_PATTERN_LEN {
                return Err(format!(
                    "{field}: a pattern may be at most {MAX_PATTERN_LEN} characters"
                ));
            }
            regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|_| format!("{field}: `{pattern}` is not a valid regular expression"))
        })
        .collect()
}

impl Scope {
    /// The scope of a crawl from `seed`; a bad pattern is an error naming its field.
    pub fn new(
        seed: &Url,
        allow_subdomains: bool,
        include_paths: &[String],
        exclude_paths: &[String],
    ) -> Result<Scope, String> {
        let host = seed.host_str().unwrap_or_default();
        Ok(Scope {
            scheme: seed.scheme().to_owned(),
            // Subdomains of www.example.com are those of example.com.
            host: host.strip_prefix("www.").unwrap_or(host).to_owned(),
            port: seed.port_or_known_default(),
            allow_subdomains,
            include: compile("include_paths", include_paths)?,
            exclude: compile("exclude_paths", exclude_paths)?,
        })
    }

    fn same_origin(&self, link: &Url) -> bool {
        let Some(host) = link.host_str() else {
            return false;
        };
        let host = host.strip_prefix("www.").unwrap_or(host);
        let host_ok = host == self.host
            || (self.allow_subdomains
                && host
                    .strip_suffix(self.host.as_str())
                    .is_some_and(|sub| sub.ends_with('.')));
        host_ok && link.scheme() == self.scheme && link.port_or_known_default() == self.port
    }

    /// Whether the crawl follows `link`, and if not, why.
    pub fn check(&self, link: &Url) -> Result<(), OutOfScope> {
        if !self.same_origin(link) {
            return Err(OutOfScope::Origin);
        }
        let path = link.path();
        let extension = path
            .rsplit('/')
            .next()
            .and_then(|last| last.rsplit_once('.'))
            .map(|(_, ext)| ext.to_ascii_lowercase());
        if extension.is_some_and(|ext| NOT_HTML.contains(&ext.as_str())) {
            return Err(OutOfScope::NotHtml);
        }
        let included = self.include.is_empty() || self.include.iter().any(|r| r.is_match(path));
        if !included || self.exclude.iter().any(|r| r.is_match(path)) {
            return Err(OutOfScope::Path);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{OutOfScope, Scope};
    use url::Url;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URL")
    }

    fn scope(seed: &str, subdomains: bool, include: &[&str], exclude: &[&str]) -> Scope {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Scope::new(&url(seed), subdomains, &owned(include), &owned(exclude)).expect("scope")
    }

    #[test]
    fn the_scope_matrix() {
        let same_origin = scope("https://www.example.com/start", false, &[], &[]);
        let subdomains = scope("https://example.com/", true, &[], &[]);
        let paths = scope("https://example.com/", false, &["^/docs/"], &["/docs/old/"]);
        let cases: &[(&Scope, &str, Result<(), OutOfScope>)] = &[
            (&same_origin, "https://www.example.com/a", Ok(())),
            (&same_origin, "https://example.com/a", Ok(())),
            (&same_origin, "https://WWW.Example.com:443/a", Ok(())),
            (
                &same_origin,
                "http://www.example.com/a",
                Err(OutOfScope::Origin),
            ),
            (
                &same_origin,
                "https://www.example.com:8443/a",
                Err(OutOfScope::Origin),
            ),
            (
                &same_origin,
                "https://blog.example.com/a",
                Err(OutOfScope::Origin),
            ),
            (
                &same_origin,
                "https://example.org/a",
                Err(OutOfScope::Origin),
            ),
            (
                &same_origin,
                "https://notexample.com/a",
                Err(OutOfScope::Origin),
            ),
            (
                &same_origin,
                "https://www.example.com/logo.PNG",
                Err(OutOfScope::NotHtml),
            ),
            (
                &same_origin,
                "https://www.example.com/paper.pdf",
                Err(OutOfScope::NotHtml),
            ),
            (&same_origin, "https://www.example.com/v1.2/page", Ok(())),
            (&same_origin, "https://www.example.com/page.html", Ok(())),
            (&subdomains, "https://blog.example.com/a", Ok(())),
            (&subdomains, "https://a.b.example.com/a", Ok(())),
            (&subdomains, "https://example.com/a", Ok(())),
            (
                &subdomains,
                "https://badexample.com/a",
                Err(OutOfScope::Origin),
            ),
            (
                &subdomains,
                "https://example.com.evil.net/a",
                Err(OutOfScope::Origin),
            ),
            (&paths, "https://example.com/docs/intro", Ok(())),
            (
                &paths,
                "https://example.com/blog/post",
                Err(OutOfScope::Path),
            ),
            (
                &paths,
                "https://example.com/docs/old/intro",
                Err(OutOfScope::Path),
            ),
        ];
        for (scope, link, expected) in cases {
            assert_eq!(scope.check(&url(link)), *expected, "{link}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_naming_the_field() {
        let seed = url("https://example.com/");
        let err = Scope::new(&seed, false, &["(".to_owned()], &[]).expect_err("bad regex");
        assert!(err.starts_with("include_paths:"), "{err}");
        let long = "a".repeat(300);
        let err = Scope::new(&seed, false, &[], &[long]).expect_err("long");
        assert!(err.starts_with("exclude_paths:"), "{err}");
        let many: Vec<String> = (0..21).map(|i| format!("/p{i}")).collect();
        assert!(Scope::new(&seed, false, &many, &[]).is_err());
    }
}
