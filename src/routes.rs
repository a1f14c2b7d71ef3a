//! THE URL map: every scope, its authentication, and which concern serves it.
//!
//! Authentication is a middleware on whole scopes, never per handler, so a new route inherits it.
//! Public routes are the explicit exceptions listed here.

use crate::auth::{self, Scope};
use crate::error::{ApiError, ErrorCode, path_error, query_error, unknown_route};
use crate::gate::{chat, media, messages, models, status};
use crate::{brands, catalog, invites, tokens, usage, vault};
use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::HttpServiceFactory;
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn};
use actix_web::{FromRequest, Handler, Responder, ResponseError, web};

/// Mounts every route. Called once per worker by `run()`.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(web::PayloadConfig::new(body_limit))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .route("/health", web::get().to(status::health))
        .route("/metrics", web::get().to(crate::metrics::http::scrape))
        // Public: the OpenAPI document and its viewer.
        .route("/openapi.json", web::get().to(crate::openapi::openapi_json))
        .route("/docs", web::get().to(crate::openapi::docs_redirect))
        .service(crate::openapi::docs())
        .service(gateway())
        .service(
            web::scope("/api/v1/agent-keys")
                .wrap(from_fn(auth::require(Scope::System)))
                .configure(tokens::admin::configure),
        )
        .service(
            web::scope("/api/v1/traces")
                .wrap(from_fn(auth::require(Scope::System)))
                .configure(usage::http::configure_traces),
        )
        .service(
            web::resource("/api/v1/alerts")
                .wrap(from_fn(auth::require(Scope::System)))
                .get(crate::alerts::http::list_alerts),
        )
        .service(
            web::resource("/api/v1/usage")
                .wrap(from_fn(auth::require(Scope::System)))
                .get(usage::http::brand_usage),
        )
        .service(
            web::scope("/api/v1/invites")
                .wrap(from_fn(auth::require(Scope::System)))
                .configure(invites::admin::configure),
        )
        // Public: the random token in the link is the credential.
        .service(
            web::resource("/invite/{token}")
                .get(invites::pages::show)
                .post(invites::pages::submit),
        )
        .service(
            web::resource("/reauth/{token}")
                .get(invites::pages::show)
                .post(invites::pages::submit),
        )
        .route(
            "/invite/{token}/oauth",
            web::get().to(invites::oauth::start),
        )
        .route(
            "/reauth/{token}/oauth",
            web::get().to(invites::oauth::start),
        )
        .route("/oauth/callback", web::get().to(invites::oauth::callback))
        .service(
            web::scope("/api/v1/integrations")
                .wrap(from_fn(auth::require(Scope::System)))
                .configure(vault::admin::configure),
        )
        .service(
            web::scope("/api/v1/admin")
                .wrap(from_fn(auth::operator_only))
                .configure(brands::admin::configure)
                .configure(catalog::admin::configure)
                .service(web::scope("/pool-keys").configure(vault::admin::configure)),
        )
        .configure(crate::spidergo::configure)
        .configure(crate::dashboard::configure)
        .default_service(web::to(unknown_route));
}

/// `/api/gate/v1`: public health and catalog (a token, when sent, must hold `gate:models`).
fn gateway() -> actix_web::Scope {
    let catalog = || from_fn(auth::optional(Scope::GateModels));
    web::scope("/api/gate/v1")
        .route("/health", web::get().to(status::health))
        .service(
            web::resource("/models")
                .wrap(catalog())
                .get(models::list_models),
        )
        .service(
            web::resource("/models/{model_id:.+}")
                .wrap(catalog())
                .get(models::get_model),
        )
        .service(
            web::resource("/aliases")
                .wrap(catalog())
                .get(models::list_aliases),
        )
        .service(
            web::resource("/providers")
                .wrap(catalog())
                .get(models::list_providers),
        )
        .service(
            web::resource("/usage")
                .wrap(from_fn(auth::require(Scope::GateUsage)))
                .get(usage::http::token_usage),
        )
        .service(generating("/chat/completions", chat::chat_completions))
        .service(
            web::resource("/messages")
                .wrap(from_fn(auth::require(Scope::GateChat)))
                .wrap(from_fn(messages::x_api_key_as_bearer))
                .wrap(from_fn(messages::anthropic_errors))
                .route(web::post().to(messages::messages)),
        )
        .service(
            web::resource("/messages/count_tokens")
                .wrap(from_fn(auth::require(Scope::GateChat)))
                .wrap(from_fn(messages::x_api_key_as_bearer))
                .wrap(from_fn(messages::anthropic_errors))
                .route(web::post().to(messages::count_tokens)),
        )
        .service(generating("/embeddings", media::embeddings))
        .service(generating("/images/generations", media::images))
        .service(generating("/audio/speech", media::speech))
        .service(generating("/audio/transcriptions", media::transcriptions))
}

/// A `POST` route that generates content: needs `gate:chat`.
fn generating<F, Args>(path: &str, handler: F) -> impl HttpServiceFactory + use<F, Args>
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .wrap(from_fn(auth::require(Scope::GateChat)))
        .route(web::post().to(handler))
}

/// Renders actix's own errors in the JSON envelope: a 405 from a resource, and any plain-text 4xx
/// an actix extractor produced itself ("payload reached size limit" and the like). JSON errors
/// and pages that render their own 4xx pass untouched.
pub fn envelope_for_bare_errors() -> ErrorHandlers<BoxBody> {
    ErrorHandlers::new()
        .handler(
            StatusCode::METHOD_NOT_ALLOWED,
            |res: ServiceResponse<BoxBody>| {
                let (req, _) = res.into_parts();
                let message = format!("{} is not allowed on {}", req.method(), req.path());
                let error = ApiError::new(ErrorCode::MethodNotAllowed, message);
                Ok(replaced(req, error))
            },
        )
        .default_handler_client(|res: ServiceResponse<BoxBody>| {
            // actix's own errors render as text/plain; every envelope (ours, the vault's) is JSON.
            let plain_text = res
                .response()
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"text/plain"));
            let foreign = res
                .response()
                .error()
                .filter(|_| plain_text)
                .map(|err| (res.status(), err.to_string()));
            let Some((status, message)) = foreign else {
                return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
            };
            let code = match status {
                StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
                StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
                StatusCode::NOT_FOUND => ErrorCode::NotFound,
                _ => ErrorCode::InvalidRequest,
            };
            let (req, _) = res.into_parts();
            Ok(replaced(req, ApiError::new(code, message)))
        })
}

fn replaced(req: actix_web::HttpRequest, error: ApiError) -> ErrorHandlerResponse<BoxBody> {
    let res: ServiceResponse<EitherBody<BoxBody>> =
        ServiceResponse::new(req, error.error_response()).map_into_right_body();
    ErrorHandlerResponse::Response(res)
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpRequest, HttpResponse, test, web};
    use std::collections::BTreeSet;

    const PROBE: &str = "/__resource_map";

    async fn resource_map(req: HttpRequest) -> HttpResponse {
        HttpResponse::Ok().body(format!("{:#?}", req.resource_map()))
    }

    /// Every route pattern of `configure`, read from actix's own resource map (its pretty `Debug`
    /// form: each node's pattern, nested by indentation, scopes being prefixes).
    async fn mounted() -> BTreeSet<String> {
        let app = test::init_service(
            App::new()
                .route(PROBE, web::get().to(resource_map))
                .configure(|cfg| super::configure(cfg, 1024)),
        )
        .await;
        let req = test::TestRequest::get().uri(PROBE).to_request();
        let text =
            String::from_utf8(test::call_and_read_body(&app, req).await.to_vec()).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        let mut stack: Vec<(usize, String)> = Vec::new();
        let mut routes = BTreeSet::new();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() != "ResourceMap {" {
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let field = |name: &str| {
                lines[i..]
                    .iter()
                    .position(|l| l.trim_start().starts_with(name))
                    .map(|at| i + at)
                    .expect(name)
            };
            let pattern = lines[field("patterns: Single(") + 1]
                .trim()
                .trim_end_matches(',')
                .trim_matches('"')
                .to_owned();
            let prefix = lines[field("is_prefix:")].contains("true");
            stack.retain(|(depth, _)| *depth < indent);
            stack.push((indent, pattern));
            if !prefix {
                routes.insert(stack.iter().map(|(_, p)| p.as_str()).collect::<String>());
            }
        }
        routes.remove(PROBE);
        assert!(
            routes.len() > 30,
            "the resource map was not read: {routes:?}"
        );
        routes
    }

    /// `{id}`, `{alias_id:.+}` and `{_:.*}` all become `{}`.
    fn shape(path: &str) -> String {
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_param = true;
                    out.push_str("{}");
                }
                '}' => in_param = false,
                _ if !in_param => out.push(c),
                _ => {}
            }
        }
        out
    }

    #[actix_web::test]
    async fn every_route_is_in_the_openapi_document_and_every_documented_path_is_served() {
        // The dashboard is pages for people, not an API: it is not in the document (its own
        // tests walk its routes, `dashboard::SIGNED_IN_PAGES`).
        let served: BTreeSet<String> = mounted()
            .await
            .iter()
            .filter(|p| !p.starts_with("/dashboard"))
            .map(|p| shape(p))
            .collect();
        let documented: BTreeSet<String> = crate::openapi::document()
            .paths
            .paths
            .keys()
            .map(|p| shape(p))
            .collect();
        let undocumented: Vec<&String> = served.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routes without an operation: {undocumented:?}"
        );
        let unserved: Vec<&String> = documented.difference(&served).collect();
        assert!(
            unserved.is_empty(),
            "documented but not served: {unserved:?}"
        );
    }
}
