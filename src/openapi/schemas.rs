//! Schemas several concerns share: the error envelopes, money, and open JSON objects.

use crate::error::ErrorCode;
use crate::money::Money;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{RefOr, schema};
use utoipa::{PartialSchema, ToSchema};

/// Every error but the vault's: `{"error": {"message", "type", "param", "code"}}`.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema: the envelope is written by ApiError::error_response"
)]
pub struct ErrorEnvelope {
    error: ErrorObject,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema")]
pub struct ErrorObject {
    /// What went wrong, for a person; never key material.
    message: String,
    /// The OpenAI error type of the code.
    #[schema(rename = "type")]
    kind: String,
    /// The request field at fault, when there is one.
    param: Option<String>,
    code: ErrorCodeName,
}

/// One of the codes of API.md's error table.
pub struct ErrorCodeName;

impl PartialSchema for ErrorCodeName {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .into()
    }
}

impl ToSchema for ErrorCodeName {}

/// The vault's (seed-compatible) failure: `{"success": false, "error", "code"}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema: written by vault::admin::SeedError")]
pub struct VaultFailure {
    success: bool,
    error: String,
    code: ErrorCodeName,
}

/// An amount in US dollars, as a JSON number.
impl PartialSchema for Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some("US dollars"))
            .into()
    }
}

impl ToSchema for Money {}

/// A JSON object whose fields are the upstream's or the client's (OpenAI's own schema).
pub fn open_object() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .additional_properties(Some(schema::AdditionalProperties::FreeForm(true)))
        .into()
}

/// What any operation may answer besides its success: the error envelope, with the status of its
/// code (API.md's table).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "a schema")]
pub enum Failed {
    #[response(status = "4XX", description = "Refused: the `code` says why")]
    Client(ErrorEnvelope),
    #[response(status = "5XX", description = "The gateway or an upstream failed")]
    Server(ErrorEnvelope),
}

/// The vault's failures: its own envelope, or the common one from authentication and for
/// internal errors.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "a schema")]
pub enum VaultFailed {
    #[response(status = "4XX", description = "Refused: the `code` says why")]
    Client(VaultRefusal),
    #[response(status = "5XX", description = "The gateway failed")]
    Server(ErrorEnvelope),
}

/// The vault's own refusal, or the common envelope when authentication refused first.
pub struct VaultRefusal;

impl PartialSchema for VaultRefusal {
    fn schema() -> RefOr<Schema> {
        schema::OneOfBuilder::new()
            .item(RefOr::Ref(schema::Ref::from_schema_name("VaultFailure")))
            .item(RefOr::Ref(schema::Ref::from_schema_name("ErrorEnvelope")))
            .into()
    }
}

impl ToSchema for VaultRefusal {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("VaultFailure".into(), VaultFailure::schema()));
        schemas.push(("ErrorEnvelope".into(), ErrorEnvelope::schema()));
        <ErrorEnvelope as ToSchema>::schemas(schemas);
    }
}

/// A numeric object id in the path.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "a schema: the handlers read it with PathId")]
pub struct Id {
    /// The object's id.
    id: i32,
}
