//! Whether a browser request came from our own pages: the one check every cookie- or
//! form-authenticated write makes (dashboard, SpiderGo's session routes, invite forms).
//!
//! `Sec-Fetch-Site` when the browser sends it (every current one does); otherwise `Origin`,
//! which must be this server as the client reached it or as `server.public_url` names it. A
//! request with neither (curl, a server-side client) carries no ambient browser credentials to
//! abuse and passes.

use actix_web::HttpRequest;
use actix_web::http::header;

pub fn same_site(req: &HttpRequest, public_url: &str) -> bool {
    if let Some(site) = req.headers().get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let own = req.connection_info();
    origin.eq_ignore_ascii_case(public_url.trim_end_matches('/'))
        || origin.eq_ignore_ascii_case(&format!("{}://{}", own.scheme(), own.host()))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    #[test]
    fn fetch_metadata_first_then_origin() {
        let public = "https://gate.example";
        let check = |headers: &[(&str, &str)]| {
            let mut req = TestRequest::default().insert_header(("host", "127.0.0.1:8080"));
            for &(name, value) in headers {
                req = req.insert_header((name, value));
            }
            super::same_site(&req.to_http_request(), public)
        };
        assert!(check(&[]));
        assert!(check(&[("sec-fetch-site", "same-origin")]));
        assert!(check(&[("sec-fetch-site", "none")]));
        assert!(!check(&[("sec-fetch-site", "cross-site")]));
        assert!(!check(&[("sec-fetch-site", "same-site")]));
        assert!(!check(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://gate.example")
        ]));
        assert!(check(&[("origin", "https://gate.example")]));
        assert!(check(&[("origin", "http://127.0.0.1:8080")]));
        assert!(!check(&[("origin", "https://evil.example")]));
        assert!(!check(&[("origin", "null")]));
    }
}
