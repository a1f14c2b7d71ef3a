//! The visit key: two URLs with the same key are the same page, fetched once per crawl.
//!
//! Sites link one page under many spellings (a trailing slash, tracking parameters, reordered
//! queries, fragments, `//` in paths, lower-case escapes). The key folds those together and
//! nothing more: the scheme, `www.` and the query's meaning stay, since they can name different
//! pages. The key is only for deduplication; a page is always fetched as it was written (servers
//! answer 404 to "normalized" paths they do not know).

use url::Url;

/// Query parameters that only track the visitor, never choose the page.
fn is_tracking(name: &str) -> bool {
    name.starts_with("utm_")
        || matches!(
            name,
            "gclid" | "fbclid" | "msclkid" | "dclid" | "yclid" | "mc_cid" | "mc_eid"
        )
}

/// A fragment that is a client-side route (`#/inbox`, `#!/inbox`) names a page of its own.
fn is_route(fragment: &str) -> bool {
    fragment.starts_with('/') || fragment.starts_with("!/")
}

/// The path with `//` runs collapsed, escapes in upper case, and no trailing slash (but `/`).
/// A parsed URL's path is ASCII (the parser escapes the rest), so it is walked byte by byte.
fn normal_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'/' && out.ends_with('/') {
            i += 1;
            continue;
        }
        if b == b'%' && i + 2 < bytes.len() {
            let hex = &path[i + 1..i + 3];
            if hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
                i += 3;
                continue;
            }
        }
        out.push(char::from(b));
        i += 1;
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The query's pairs, tracking parameters dropped and the rest sorted; `None` when none remain.
fn normal_query(url: &Url) -> Option<String> {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| !is_tracking(name))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    pairs.sort();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in &pairs {
        query.append_pair(name, value);
    }
    Some(query.finish())
}

/// The visit key of `url` (see the module's comment); `ignore_query` drops the whole query.
pub fn visit_key(url: &Url, ignore_query: bool) -> String {
    // The parser has already lower-cased the scheme and host, dropped a default port and
    // resolved dot segments.
    let mut key = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        key.push(':');
        key.push_str(&port.to_string());
    }
    key.push_str(&normal_path(url.path()));
    if !ignore_query && let Some(query) = normal_query(url) {
        key.push('?');
        key.push_str(&query);
    }
    if let Some(fragment) = url.fragment().filter(|f| is_route(f)) {
        key.push('#');
        key.push_str(fragment);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::visit_key;
    use url::Url;

    fn key(text: &str) -> String {
        visit_key(&Url::parse(text).expect("test URL"), false)
    }

    #[test]
    fn spellings_of_one_page_share_a_key() {
        let same: &[(&str, &str)] = &[
            ("HTTP://Example.COM/a", "http://example.com/a"),
            ("http://example.com:80/a", "http://example.com/a"),
            ("https://example.com:443/a", "https://example.com/a"),
            ("http://example.com/a/", "http://example.com/a"),
            ("http://example.com/a//b", "http://example.com/a/b"),
            ("http://example.com/a/./b/../c", "http://example.com/a/c"),
            ("http://example.com", "http://example.com/"),
            ("http://example.com/a#section", "http://example.com/a"),
            (
                "http://example.com/a?b=2&a=1",
                "http://example.com/a?a=1&b=2",
            ),
            (
                "http://example.com/a?utm_source=x&utm_medium=y&id=7",
                "http://example.com/a?id=7",
            ),
            (
                "http://example.com/a?gclid=1&fbclid=2",
                "http://example.com/a",
            ),
            ("http://example.com/a?", "http://example.com/a"),
            ("http://example.com/%7ea", "http://example.com/%7Ea"),
            ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
            ("http://example.com/caf%C3%A9", "http://example.com/café"),
        ];
        for (a, b) in same {
            assert_eq!(key(a), key(b), "{a} vs {b}");
        }
    }

    #[test]
    fn different_pages_keep_different_keys() {
        let different: &[(&str, &str)] = &[
            ("http://example.com/a", "https://example.com/a"),
            ("http://example.com/a", "http://www.example.com/a"),
            ("http://example.com/a", "http://example.com:8080/a"),
            ("http://example.com/a", "http://example.com/A"),
            ("http://example.com/a?id=1", "http://example.com/a?id=2"),
            ("http://example.com/a?id=1", "http://example.com/a"),
            ("http://example.com/a?x=1&x=2", "http://example.com/a?x=1"),
            ("http://example.com/#/inbox", "http://example.com/#/sent"),
            ("http://example.com/#!/inbox", "http://example.com/"),
            ("http://example.com/a/b", "http://example.com/ab"),
        ];
        for (a, b) in different {
            assert_ne!(key(a), key(b), "{a} vs {b}");
        }
    }

    #[test]
    fn the_key_reads_as_a_url() {
        assert_eq!(
            key("HTTPS://Example.com:8443//docs//intro/?b=2&utm_campaign=z&a=1#top"),
            "https://example.com:8443/docs/intro?a=1&b=2"
        );
        assert_eq!(
            key("http://example.com/#!/route"),
            "http://example.com/#!/route"
        );
    }

    #[test]
    fn ignore_query_drops_the_whole_query() {
        let url = Url::parse("http://example.com/list?page=2&sort=asc").expect("url");
        assert_eq!(visit_key(&url, true), "http://example.com/list");
    }
}
