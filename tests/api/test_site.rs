//! A small website on loopback for SpiderGo's tests: known pages and links, a robots.txt, a
//! sitemap, redirects (one into a private range), a 404, a page that never answers and a 6 MiB
//! page; it counts every request by path and query.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct TestSite {
    pub url: String,
    hits: Arc<Mutex<HashMap<String, u32>>>,
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><title>{title}</title>\
         <meta name=\"description\" content=\"About {title}\"></head><body>\
         <nav><a href=\"/\">Home</a></nav><article><h1>{title}</h1>\
         <p>This is the page called {title}. It has a paragraph long enough, with commas, clauses and words, \
         to be judged the main content of the page by a readability scorer that wants prose.</p>{body}</article>\
         <footer>Footer boilerplate</footer></body></html>"
    )
}

async fn serve(req: HttpRequest, hits: web::Data<Mutex<HashMap<String, u32>>>) -> HttpResponse {
    let target = match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{q}", req.path()),
    };
    *hits.lock().unwrap().entry(target).or_default() += 1;
    let html = |body: String| {
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(body)
    };
    match req.path() {
        "/robots.txt" => HttpResponse::Ok()
            .content_type("text/plain")
            .body("User-agent: *\nDisallow: /private\n"),
        "/sitemap.xml" => HttpResponse::Ok().content_type("application/xml").body(
            "<?xml version=\"1.0\"?><urlset><url><loc>/orphan</loc></url></urlset>".replace(
                "/orphan",
                &format!("http://{}/orphan", req.connection_info().host()),
            ),
        ),
        "/" => html(page(
            "Home",
            "<ul><li><a href=\"/a\">A</a></li><li><a href=\"/a/\">A again</a></li>\
             <li><a href=\"/a?utm_source=mail\">A tracked</a></li><li><a href=\"/a#top\">A top</a></li>\
             <li><a href=\"/b\">B</a></li><li><a href=\"/private/secret\">Private</a></li>\
             <li><a href=\"/redirect\">Moved</a></li><li><a href=\"/missing\">Missing</a></li>\
             <li><a href=\"/logo.png\">Logo</a></li><li><a href=\"https://elsewhere.example/\">Away</a></li></ul>",
        )),
        "/a" | "/a/" => html(page("A", "<p><a href=\"/c\">C</a></p>")),
        "/b" => html(page("B", "<p><a href=\"/\">Back home</a></p>")),
        "/c" | "/target" | "/orphan" => html(page(&req.path()[1..].to_uppercase(), "")),
        "/redirect" => HttpResponse::Found()
            .insert_header(("location", "/target"))
            .finish(),
        "/to-private" => HttpResponse::Found()
            .insert_header(("location", "http://10.255.255.1/"))
            .finish(),
        "/slow" => {
            std::future::pending::<()>().await;
            HttpResponse::Ok().finish()
        }
        "/big" => {
            let filler = format!("<p>{}</p>", "x".repeat(1024));
            html(page("Big", &filler.repeat(6 * 1024)))
        }
        _ => HttpResponse::NotFound()
            .content_type("text/html")
            .body(page("Not found", "")),
    }
}

impl TestSite {
    pub async fn start() -> TestSite {
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let data = web::Data::from(hits.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(serve))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind the test site");
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        TestSite {
            url: format!("http://127.0.0.1:{port}"),
            hits,
        }
    }

    /// Requests seen for `target` (a path, with its query if any).
    pub fn hits(&self, target: &str) -> u32 {
        self.hits.lock().unwrap().get(target).copied().unwrap_or(0)
    }
}
