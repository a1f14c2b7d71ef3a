//! SpiderGo in the OpenAPI document: its two credentials and the shapes its operations share.
//! The operations are declared beside their handlers (`accounts::http`, `keys::http`,
//! `api::http`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{OpenApi, ToSchema};

/// An `sk_live_` key as a bearer token: `/v1/*`.
pub const KEY: &str = "spidergo_key";
/// The `access_token` cookie of a signed-in user: `/auth/*` and `/history`.
pub const SESSION: &str = "spidergo_session";

/// Every SpiderGo answer that is not data: `{"message": …}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema")]
pub struct GoMessage {
    message: String,
}

/// SpiderGo's failures, in the seed's envelope.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "a schema")]
pub enum GoFailed {
    #[response(status = "4XX", description = "Refused: the message says why")]
    Client(GoMessage),
    #[response(status = "5XX", description = "SpiderGo failed")]
    Server(GoMessage),
}

#[derive(OpenApi)]
#[openapi(components(schemas(GoMessage)))]
struct Shared;

/// The whole of SpiderGo's part of the document.
pub fn api() -> utoipa::openapi::OpenApi {
    let mut doc = Shared::openapi();
    doc.merge(super::accounts::http::Api::openapi());
    doc.merge(super::keys::http::Api::openapi());
    doc.merge(super::api::http::Api::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        KEY,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A SpiderGo API key (`sk_live_…`)"))
                .build(),
        ),
    );
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "access_token",
            "The session cookie `POST /auth/login` sets",
        ))),
    );
    doc
}
