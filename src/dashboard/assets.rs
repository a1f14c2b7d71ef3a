//! The dashboard's own stylesheet and script, embedded in the binary and served under
//! content-hashed names (`/dashboard/assets/app.<hash>.css`) with a year of caching: a new
//! release changes the name, never the bytes behind one.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

struct Asset {
    name: String,
    bytes: &'static str,
    content_type: &'static str,
}

const FILES: [(&str, &str, &str); 2] = [
    ("app", "css", include_str!("static/app.css")),
    ("app", "js", include_str!("static/app.js")),
];

fn assets() -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        FILES
            .iter()
            .map(|&(stem, ext, bytes)| {
                let hash = hex::encode(&Sha256::digest(bytes.as_bytes())[..6]);
                Asset {
                    name: format!("{stem}.{hash}.{ext}"),
                    bytes,
                    content_type: match ext {
                        "css" => "text/css; charset=utf-8",
                        _ => "text/javascript; charset=utf-8",
                    },
                }
            })
            .collect()
    })
}

/// The URLs of the stylesheet and the script, for the layout.
pub fn urls() -> minijinja::Value {
    let url = |ext: &str| {
        assets()
            .iter()
            .find(|a| a.name.ends_with(ext))
            .map(|a| format!("/dashboard/assets/{}", a.name))
            .unwrap_or_default()
    };
    minijinja::context! { css => url(".css"), js => url(".js") }
}

pub async fn serve(name: web::Path<String>) -> HttpResponse {
    match assets().iter().find(|a| a.name == *name) {
        Some(asset) => HttpResponse::Ok()
            .content_type(asset.content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
            .insert_header(("x-content-type-options", "nosniff"))
            .body(asset.bytes),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset"),
    }
}
