//! The OpenAPI 3.1 document at `/openapi.json`, and Swagger UI at `/docs`.
//!
//! Each concern declares its own operations next to its handlers (`#[utoipa::path]`) and lists them
//! in its own `#[derive(OpenApi)]` (`tokens::admin::Api`, …); [`document`] merges those into one
//! document and adds what they share: the three credentials and the error envelopes. A handler
//! mounted twice is documented once and copied ([`MOUNTED_AGAIN`]).

pub mod schemas;

use std::sync::OnceLock;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathItem};

/// The operator's admin token (`admin.token`): `/api/v1/admin/*`.
pub const OPERATOR: &str = "operator";
/// A brand's client credential (`sgc_…`): `/api/v1/*`.
pub const BRAND: &str = "brand";
/// An agent token (`pat_…`): `/api/gate/v1/*`.
pub const AGENT: &str = "agent";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SpiderGate",
        description = "Self-hosted OpenAI-compatible LLM gateway: the gateway (`/api/gate/v1`), \
                       the brand API (`/api/v1`) and the operator API (`/api/v1/admin`).",
        license(name = "Proprietary")
    ),
    tags(
        (name = "gateway", description = "OpenAI-compatible generation, for agent tokens"),
        (name = "catalog", description = "Models, aliases and providers"),
        (name = "agent-keys", description = "A brand's agent tokens"),
        (name = "integrations", description = "Provider keys in the vault"),
        (name = "usage", description = "Traces, usage and spend"),
        (name = "invites", description = "Links that collect a provider key from a third party"),
        (name = "admin", description = "The operator: brands, aliases, pool keys"),
        (name = "operations", description = "Health, metrics and this document"),
        (name = "spidergo", description = "SpiderGo: scrape, crawl, jobs and history (`sk_live_` keys)"),
        (name = "spidergo-accounts", description = "SpiderGo accounts and cookie sessions"),
        (name = "spidergo-keys", description = "SpiderGo API keys"),
    ),
    components(schemas(
        schemas::ErrorEnvelope,
        schemas::ErrorObject,
        schemas::ErrorCodeName,
        schemas::VaultFailure,
        schemas::VaultRefusal
    ))
)]
struct Root;

/// Handlers served at a second place: (documented prefix, other prefix, its credential).
const MOUNTED_AGAIN: [(&str, &str, Option<&str>); 4] = [
    ("/invite/", "/reauth/", None),
    (
        "/api/v1/integrations",
        "/api/v1/admin/pool-keys",
        Some(OPERATOR),
    ),
    (
        "/api/gate/v1/aliases",
        "/api/v1/admin/aliases",
        Some(OPERATOR),
    ),
    ("/health", "/api/gate/v1/health", None),
];

/// The whole document, built once.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Document {
    let mut doc = Root::openapi();
    for part in [
        crate::gate::api(),
        crate::tokens::admin::Api::openapi(),
        crate::vault::admin::Api::openapi(),
        crate::usage::http::Api::openapi(),
        crate::alerts::http::Api::openapi(),
        crate::invites::admin::Api::openapi(),
        crate::invites::pages::Api::openapi(),
        crate::brands::admin::Api::openapi(),
        crate::catalog::admin::Api::openapi(),
        crate::metrics::http::Api::openapi(),
        crate::spidergo::openapi::api(),
        Served::openapi(),
    ] {
        doc.merge(part);
    }
    for (from, to, credential) in MOUNTED_AGAIN {
        mount_again(&mut doc, from, to, credential);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, description) in [
        (OPERATOR, "The operator's admin token (`admin.token`)"),
        (BRAND, "A brand's client credential"),
        (AGENT, "An agent token minted by a brand"),
        ("metrics", "`metrics.token`, when one is set"),
    ] {
        components.add_security_scheme(
            name,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            ),
        );
    }
    doc
}

/// The operations under `from` again under `to`, for `credential` (`None`: as documented).
fn mount_again(doc: &mut Document, from: &str, to: &str, credential: Option<&str>) {
    let copies: Vec<(String, PathItem)> = doc
        .paths
        .paths
        .iter()
        .filter_map(|(path, item)| {
            let rest = path.strip_prefix(from)?;
            let mut item = item.clone();
            let prefix = to.trim_start_matches('/').replace(['/', '-'], "_");
            for operation in operations(&mut item) {
                if let Some(credential) = credential {
                    operation.security = Some(vec![SecurityRequirement::new(credential, [""; 0])]);
                    operation.tags = Some(vec!["admin".into()]);
                }
                operation.operation_id = operation
                    .operation_id
                    .as_ref()
                    .map(|id| format!("{prefix}_{id}"));
            }
            Some((format!("{to}{rest}"), item))
        })
        .collect();
    doc.paths.paths.extend(copies);
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// This module's own routes.
#[derive(OpenApi)]
#[openapi(paths(openapi_json, docs_redirect, viewer_files))]
struct Served;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1, as JSON", content_type = "application/json",
        body = Object)))]
pub async fn openapi_json() -> actix_web::HttpResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| document().to_json().unwrap_or_default());
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}

/// Swagger UI, from the files compiled into the binary, reading `/openapi.json`.
pub fn docs() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
        .config(utoipa_swagger_ui::Config::new(["/openapi.json"]))
}

/// Swagger UI's page and files (served by `utoipa_swagger_ui`).
#[utoipa::path(get, path = "/docs/{file}", tag = "operations",
    params(("file" = String, Path, description = "`index.html`, or one of its scripts and styles")),
    responses((status = 200, description = "The file"), (status = 404, description = "No such file")))]
#[allow(dead_code, reason = "documents the files SwaggerUi serves")]
fn viewer_files() {}

/// Swagger UI for this document (its files are compiled into the binary): `/docs/`.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 308, description = "To `/docs/`, the viewer")))]
pub async fn docs_redirect() -> actix_web::HttpResponse {
    actix_web::HttpResponse::PermanentRedirect()
        .insert_header(("location", "/docs/"))
        .finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_and_names_each_operation() {
        let json = super::document().to_json().expect("serializes");
        if std::env::var_os("SPIDERGATE_PRINT_OPENAPI").is_some() {
            println!("{json}");
        }
        let doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
        );
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for target in refs {
            let name = target.strip_prefix("#/components/schemas/").expect(&target);
            assert!(schemas.contains_key(name), "{target} is not in components");
        }
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                assert!(
                    operation["operationId"].is_string() && operation["responses"].is_object(),
                    "{method} {path}"
                );
            }
        }
    }

    fn collect_refs(value: &serde_json::Value, refs: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(target)) = map.get("$ref") {
                    refs.push(target.clone());
                }
                map.values().for_each(|v| collect_refs(v, refs));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
            _ => {}
        }
    }
}
