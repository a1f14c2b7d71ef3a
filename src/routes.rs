//! THE URL map: every scope, its authentication, and which concern serves it.
//!
//! Authentication is a middleware on whole scopes, never per handler, so a new route inherits it.
//! Public routes are the explicit exceptions listed here.

use crate::auth::{self, Scope};
use crate::error::{path_error, query_error, unknown_route};
use crate::gate::{models, status};
use crate::{brands, tokens};
use actix_web::middleware::from_fn;
use actix_web::web;

/// Mounts every route. Called once per worker by `run()`.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(web::PayloadConfig::new(body_limit))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .route("/health", web::get().to(status::health))
        .service(gateway())
        .service(
            web::scope("/api/v1/agent-keys")
                .wrap(from_fn(auth::require(Scope::System)))
                .configure(tokens::admin::configure),
        )
        .service(
            web::scope("/api/v1/admin")
                .wrap(from_fn(auth::operator_only))
                .configure(brands::admin::configure),
        )
        // Also answers a known path with an unsupported method (resources inherit it).
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
}
