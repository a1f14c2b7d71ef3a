//! The dashboard (issue #13): server-rendered pages for brand admins and the operator, on the
//! same binary and port. Pages call the owning concerns' functions (`tokens::admin::mint`, …),
//! never the JSON API over HTTP. Every page works without JavaScript; the one first-party script
//! adds copy buttons, confirmations and the theme toggle. A strict Content-Security-Policy
//! allows only our own files.
//!
//! Built so far: sign-in and sign-out (`session`), the Keys page and its twin under Settings →
//! Members → Agents, Settings (the brand, credential rotation) (`pages`), hashed assets
//! (`assets`), Traces (`traces`), the Vault (`vault`), Usage (`usage`), the operator's brands and alias chains (`operator`). The rest of issue #13
//! (editing the brand, pool keys in the browser, SpiderGo pages, htmx and uPlot from npm, the Chromium tests) is
//! listed in the notes.

pub mod assets;
mod operator;
mod pages;
pub mod session;
mod spidergo;
pub mod store;
mod traces;
mod usage;
mod vault;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(pages::home))
        .route("/dashboard/login", web::get().to(pages::login_page))
        .route("/dashboard/login", web::post().to(pages::login))
        .route("/dashboard/logout", web::post().to(pages::logout))
        .route("/dashboard/gate/keys", web::get().to(pages::keys))
        .route("/dashboard/gate/keys", web::post().to(pages::connect))
        .route(
            "/dashboard/gate/keys/{id}/revoke",
            web::post().to(pages::revoke),
        )
        .route("/dashboard/settings", web::get().to(pages::settings))
        .route(
            "/dashboard/settings/rotate-credential",
            web::post().to(pages::rotate_credential),
        )
        .route(
            "/dashboard/settings/members/agents",
            web::get().to(pages::members),
        )
        .route("/dashboard/assets/{name}", web::get().to(assets::serve))
        .configure(spidergo::configure)
        .configure(traces::configure)
        .configure(vault::configure)
        .configure(usage::configure)
        .configure(operator::configure);
}

/// Every dashboard page that needs a session (the login page and assets do not), for the test
/// that walks them signed out.
pub const SIGNED_IN_PAGES: [&str; 11] = [
    "/dashboard",
    "/dashboard/operator",
    "/dashboard/gate/usage",
    "/dashboard/gate/usage.csv",
    "/dashboard/gate/keys",
    "/dashboard/gate/vault",
    "/dashboard/gate/traces",
    "/dashboard/gate/traces.csv",
    "/dashboard/gate/traces/some-id",
    "/dashboard/settings",
    "/dashboard/settings/members/agents",
];
