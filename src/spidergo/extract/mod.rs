//! What SpiderGo takes from a page: title, description, canonical, the links (absolute,
//! deduplicated, in page order), and the text as plain content, Markdown and HTML, either of the
//! main content only (readability, boilerplate removed) or of the whole body.
//!
//! Pure CPU work on one document: callers run it on the blocking pool, never on an async worker.
//! One parse (dom_query, html5ever) serves the metadata, the links and the whole-body text;
//! the main-content pass (dom_smoothie, a port of Mozilla's Readability) parses its own copy,
//! because it rewrites the tree it scores.

use dom_query::Document;
use std::collections::HashSet;
use url::Url;

/// Which outputs a request asked for; `links` is also needed whenever a crawl follows them.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub content: bool,
    pub markdown: bool,
    pub html: bool,
    pub links: bool,
    pub main_content_only: bool,
}

/// A page's extracted parts; the text fields are empty when not wanted.
#[derive(Debug, Default)]
pub struct Extracted {
    pub title: String,
    pub description: String,
    pub canonical: Option<Url>,
    pub links: Vec<Url>,
    pub content: String,
    pub markdown: Option<String>,
    pub html: Option<String>,
}

/// Most links kept from one page: a page with more is a link farm, not something to follow all of.
const MAX_LINKS: usize = 5_000;
/// Tags whose text is never page content.
const NOT_CONTENT: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "head", "meta", "iframe",
];

pub fn extract(html: &str, page_url: &Url, wanted: Wanted) -> Extracted {
    let doc = Document::from(html);
    let base = doc
        .select_single("base[href]")
        .attr("href")
        .and_then(|href| page_url.join(&href).ok())
        .unwrap_or_else(|| page_url.clone());
    let mut out = Extracted {
        title: first_text(&doc, "title").unwrap_or_else(|| meta(&doc, "og:title")),
        description: {
            let named = meta(&doc, "description");
            if named.is_empty() {
                meta(&doc, "og:description")
            } else {
                named
            }
        },
        canonical: doc
            .select_single("link[rel=canonical][href]")
            .attr("href")
            .and_then(|href| base.join(href.trim()).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https")),
        links: if wanted.links {
            links(&doc, &base)
        } else {
            Vec::new()
        },
        ..Extracted::default()
    };
    if wanted.html {
        out.html = Some(doc.html().to_string());
    }
    if !(wanted.content || wanted.markdown) {
        return out;
    }
    let main = if wanted.main_content_only {
        main_content(html, page_url)
    } else {
        None
    };
    let (text, markdown) = match &main {
        Some(article) => {
            let article = Document::from(article.as_str());
            (article.formatted_text(), article.md(Some(NOT_CONTENT)))
        }
        None => {
            let body = doc.select_single("body");
            for tag in NOT_CONTENT {
                body.select(tag).remove();
            }
            (
                body.formatted_text(),
                body.nodes()
                    .first()
                    .map(|n| n.md(Some(NOT_CONTENT)))
                    .unwrap_or_default(),
            )
        }
    };
    if wanted.content {
        out.content = text.trim().to_owned();
    }
    if wanted.markdown {
        out.markdown = Some(markdown.trim().to_owned());
    }
    out
}

/// The main content's HTML by readability, or `None` when the page has none it can find (a
/// link hub, an empty page): the caller falls back to the whole body.
fn main_content(html: &str, page_url: &Url) -> Option<String> {
    let config = dom_smoothie::Config {
        max_elements_to_parse: 50_000,
        ..Default::default()
    };
    let mut readability =
        dom_smoothie::Readability::new(html, Some(page_url.as_str()), Some(config)).ok()?;
    let article = readability.parse().ok()?;
    let content = article.content.to_string();
    (!content.trim().is_empty()).then_some(content)
}

fn first_text(doc: &Document, selector: &str) -> Option<String> {
    let text = doc.select_single(selector).text();
    let text = collapse(&text);
    (!text.is_empty()).then_some(text)
}

/// `<meta name=…>` or `<meta property=…>` content, whitespace collapsed.
fn meta(doc: &Document, name: &str) -> String {
    let by_name = doc.select_single(&format!("meta[name=\"{name}\" i][content]"));
    let found = if by_name.exists() {
        by_name
    } else {
        doc.select_single(&format!("meta[property=\"{name}\" i][content]"))
    };
    found
        .attr("content")
        .map(|c| collapse(&c))
        .unwrap_or_default()
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every `<a href>` as an absolute http(s) URL without its fragment, first occurrence kept.
fn links(doc: &Document, base: &Url) -> Vec<Url> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for anchor in doc.select("a[href]").iter() {
        let Some(href) = anchor.attr("href") else {
            continue;
        };
        let Ok(mut url) = base.join(href.trim()) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        url.set_fragment(None);
        if seen.insert(url.as_str().to_owned()) {
            out.push(url);
            if out.len() == MAX_LINKS {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!doctype html><html><head>
        <title>  The   Article </title>
        <meta name="description" content="What it is about">
        <link rel="canonical" href="/articles/one">
        <script>var secret = "not content";</script>
      </head><body>
        <nav><a href="/">Home</a> <a href="/about#team">About</a> <a href="/about">About again</a>
             <a href="mailto:x@example.com">Mail</a> <a href="https://other.example/x">Out</a></nav>
        <article><h1>The Article</h1>
          <p>First paragraph of the article, long enough to be judged the main content of the page by
          the readability scorer, which wants a good number of characters and some commas, like these.</p>
          <p>Second paragraph, with <a href="sub/page?b=2&a=1">a relative link</a> and <em>emphasis</em>,
          again long enough to count as prose rather than boilerplate for the scorer that reads it.</p>
        </article>
        <footer>Copyright footer boilerplate</footer>
      </body></html>"#;

    fn all() -> Wanted {
        Wanted {
            content: true,
            markdown: true,
            html: true,
            links: true,
            main_content_only: true,
        }
    }

    #[test]
    fn metadata_and_links_are_absolute_and_deduplicated() {
        let url = Url::parse("https://site.example/articles/one?ref=x").unwrap();
        let page = extract(PAGE, &url, all());
        assert_eq!(page.title, "The Article");
        assert_eq!(page.description, "What it is about");
        assert_eq!(
            page.canonical.unwrap().as_str(),
            "https://site.example/articles/one"
        );
        let links: Vec<&str> = page.links.iter().map(Url::as_str).collect();
        assert_eq!(
            links,
            [
                "https://site.example/",
                "https://site.example/about",
                "https://other.example/x",
                "https://site.example/articles/sub/page?b=2&a=1",
            ]
        );
        assert!(page.html.unwrap().contains("<article>"));
    }

    #[test]
    fn main_content_drops_boilerplate_and_markdown_keeps_structure() {
        let url = Url::parse("https://site.example/articles/one").unwrap();
        let page = extract(PAGE, &url, all());
        assert!(page.content.contains("First paragraph"), "{}", page.content);
        assert!(
            !page.content.contains("Copyright footer"),
            "{}",
            page.content
        );
        assert!(!page.content.contains("not content"), "{}", page.content);
        let markdown = page.markdown.unwrap();
        assert!(
            markdown.contains("*emphasis*") || markdown.contains("_emphasis_"),
            "{markdown}"
        );
        assert!(markdown.contains("[a relative link]("), "{markdown}");

        let whole = extract(
            PAGE,
            &url,
            Wanted {
                main_content_only: false,
                ..all()
            },
        );
        assert!(
            whole.content.contains("Copyright footer"),
            "{}",
            whole.content
        );
        assert!(!whole.content.contains("not content"), "{}", whole.content);
    }

    #[test]
    fn a_base_element_changes_where_relative_links_point() {
        let html = r#"<html><head><base href="https://cdn.example/root/"></head>
            <body><a href="x">x</a></body></html>"#;
        let url = Url::parse("https://site.example/a/b").unwrap();
        let page = extract(html, &url, all());
        assert_eq!(page.links[0].as_str(), "https://cdn.example/root/x");
    }

    #[test]
    fn unwanted_outputs_are_not_produced() {
        let url = Url::parse("https://site.example/").unwrap();
        let wanted = Wanted {
            content: false,
            markdown: false,
            html: false,
            links: false,
            main_content_only: true,
        };
        let page = extract(PAGE, &url, wanted);
        assert!(page.links.is_empty() && page.content.is_empty());
        assert!(page.markdown.is_none() && page.html.is_none());
        assert_eq!(page.title, "The Article");
    }
}
