//! Catalog reads: `/models`, `/models/{id}`, `/aliases`, `/providers`.
//!
//! Public; a caller that sends a token (scope `gate:models`) is authenticated by the middleware,
//! so `is_configured` reflects that brand's own and shared keys as well as the pool.

use crate::auth::Principal;
use crate::catalog::{Catalog, Model, Provider};
use crate::error::{ApiError, ErrorCode};
use crate::openapi::schemas::Failed;
use crate::state::AppState;
use crate::vault::VaultSnapshot;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// This module's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_models, get_model, list_aliases, list_providers))]
pub struct Api;

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
enum SortBy {
    /// Catalog order, which is curated by popularity.
    #[default]
    Usage,
    Name,
    Provider,
    Context,
    Cost,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelsQuery {
    provider: Option<String>,
    #[serde(default)]
    free_only: bool,
    #[serde(default)]
    configured_only: bool,
    search: Option<String>,
    capability: Option<String>,
    #[serde(default)]
    #[param(inline)]
    sort_by: SortBy,
    /// 1 to 2000 (default 500).
    #[param(minimum = 1, maximum = 2000)]
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

#[derive(Serialize, ToSchema)]
struct ModelView<'a> {
    id: &'a str,
    /// Always `model`.
    object: &'static str,
    created: i64,
    owned_by: &'a str,
    spidergate_info: ModelInfo<'a>,
}

#[derive(Serialize, ToSchema)]
struct ModelInfo<'a> {
    provider: &'a str,
    provider_model: &'a str,
    display_name: &'a str,
    context_window: u32,
    max_output_tokens: u32,
    #[schema(value_type = Vec<String>)]
    capabilities: &'a [String],
    free_tier: bool,
    is_configured: bool,
    #[schema(value_type = Vec<String>)]
    in_task_aliases: Vec<&'a str>,
    pricing: Pricing,
}

/// US dollars per million tokens.
#[derive(Serialize, ToSchema)]
struct Pricing {
    input_per_mtok: f64,
    output_per_mtok: f64,
}

/// Who is looking, for `is_configured`: a brand sees its own, shared and pool keys; an anonymous
/// caller sees the pool only.
struct Viewer<'a> {
    vault: &'a VaultSnapshot,
    brand_id: Option<i32>,
}

impl<'a> Viewer<'a> {
    fn new(vault: &'a VaultSnapshot, caller: Option<&Principal>) -> Self {
        Viewer {
            vault,
            brand_id: caller.map(|p| p.brand_id),
        }
    }

    fn is_configured(&self, provider: &str) -> bool {
        self.vault.is_configured(provider, self.brand_id)
    }
}

fn model_view<'a>(catalog: &'a Catalog, model: &'a Model, viewer: &Viewer) -> ModelView<'a> {
    ModelView {
        id: &model.id,
        object: "model",
        created: model.created,
        owned_by: &model.provider,
        spidergate_info: ModelInfo {
            provider: &model.provider,
            provider_model: &model.provider_model,
            display_name: &model.display_name,
            context_window: model.context_window,
            max_output_tokens: model.max_output_tokens,
            capabilities: &model.capabilities,
            free_tier: model.free_tier,
            is_configured: viewer.is_configured(&model.provider),
            in_task_aliases: catalog.aliases_containing(&model.id).collect(),
            pricing: Pricing {
                input_per_mtok: model.input_per_mtok,
                output_per_mtok: model.output_per_mtok,
            },
        },
    }
}

/// The catalog's models (OpenAI's list shape, plus `spidergate_info` and `total`).
#[utoipa::path(get, path = "/api/gate/v1/models", tag = "catalog", params(ModelsQuery),
    responses((status = 200, description = "A page of models", body = ModelList), Failed),
    security((), ("agent" = [])))]
pub async fn list_models(
    state: web::Data<AppState>,
    caller: Option<Principal>,
    query: web::Query<ModelsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(500);
    if !(1..=2000).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "must be between 1 and 2000",
        ));
    }
    let catalog = state.catalog.load();
    let vault = state.vault.snapshot();
    let viewer = Viewer::new(&vault, caller.as_ref());
    let mut models: Vec<&Model> = catalog
        .models()
        .iter()
        .map(AsRef::as_ref)
        .filter(|m| matches(m, &query, &viewer))
        .collect();
    sort(&mut models, query.sort_by);
    let total = models.len();
    let data: Vec<ModelView> = models
        .into_iter()
        .skip(query.offset)
        .take(limit)
        .map(|m| model_view(&catalog, m, &viewer))
        .collect();
    Ok(HttpResponse::Ok().json(ModelList {
        object: "list",
        data,
        total,
    }))
}

fn matches(model: &Model, q: &ModelsQuery, viewer: &Viewer) -> bool {
    let search = q.search.as_deref().map(str::to_lowercase);
    q.provider.as_deref().is_none_or(|p| model.provider == p)
        && (!q.free_only || model.free_tier)
        && (!q.configured_only || viewer.is_configured(&model.provider))
        && q.capability
            .as_deref()
            .is_none_or(|c| model.capabilities.iter().any(|have| have == c))
        && search.is_none_or(|s| {
            [&model.id, &model.display_name, &model.provider]
                .iter()
                .any(|f| f.to_lowercase().contains(&s))
        })
}

fn sort(models: &mut [&Model], by: SortBy) {
    match by {
        SortBy::Usage => {}
        SortBy::Name => models.sort_by(|a, b| a.display_name.cmp(&b.display_name)),
        SortBy::Provider => models.sort_by(|a, b| (&a.provider, &a.id).cmp(&(&b.provider, &b.id))),
        SortBy::Context => models.sort_by_key(|m| std::cmp::Reverse(m.context_window)),
        SortBy::Cost => models.sort_by(|a, b| {
            (a.input_per_mtok + a.output_per_mtok)
                .total_cmp(&(b.input_per_mtok + b.output_per_mtok))
        }),
    }
}

#[utoipa::path(get, path = "/api/gate/v1/models/{model_id}", tag = "catalog",
    params(("model_id" = String, Path, description = "A catalog model id (`groq/llama-3.3-70b`)")),
    responses((status = 200, description = "The model", body = ModelView), Failed),
    security((), ("agent" = [])))]
pub async fn get_model(
    state: web::Data<AppState>,
    caller: Option<Principal>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let catalog = state.catalog.load();
    let Some(model) = catalog.model(&id) else {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("model `{id}` does not exist"),
        )
        .with_param("model"));
    };
    let vault = state.vault.snapshot();
    let viewer = Viewer::new(&vault, caller.as_ref());
    Ok(HttpResponse::Ok().json(model_view(&catalog, model, &viewer)))
}

/// The task aliases and their ranked chains.
#[utoipa::path(get, path = "/api/gate/v1/aliases", tag = "catalog",
    responses((status = 200, description = "Every alias", body = AliasList), Failed),
    security((), ("agent" = [])))]
pub async fn list_aliases(state: web::Data<AppState>) -> HttpResponse {
    let catalog = state.catalog.load();
    let data = catalog.aliases().iter().map(AliasView::of).collect();
    HttpResponse::Ok().json(AliasList {
        object: "list",
        data,
    })
}

/// The providers a key can be added for, and whether the caller has one.
#[utoipa::path(get, path = "/api/gate/v1/providers", tag = "catalog",
    responses((status = 200, description = "Every provider", body = ProviderList), Failed),
    security((), ("agent" = [])))]
pub async fn list_providers(state: web::Data<AppState>, caller: Option<Principal>) -> HttpResponse {
    let catalog = state.catalog.load();
    let vault = state.vault.snapshot();
    let viewer = Viewer::new(&vault, caller.as_ref());
    let data = catalog
        .providers()
        .iter()
        .map(|p| provider_view(p, &viewer))
        .collect();
    HttpResponse::Ok().json(ProviderList {
        object: "list",
        data,
    })
}

fn provider_view<'a>(p: &'a Provider, viewer: &Viewer) -> ProviderView<'a> {
    ProviderView {
        id: &p.id,
        label: &p.label,
        category: &p.category,
        credential_fields: &p.credential_fields,
        signup_url: &p.signup_url,
        free_tier: p.free_tier,
        openai_compatible: p.openai_compatible,
        api: p.api,
        optional_credential_fields: &p.optional_credential_fields,
        auth: if p.oauth { "oauth" } else { "api_key" },
        is_configured: viewer.is_configured(&p.id),
    }
}

#[derive(Serialize, ToSchema)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelView<'a>>,
    /// Matching models in all (the page holds at most `limit`).
    total: usize,
}

/// A task alias: a ranked chain of models, the first healthy one serving.
#[derive(Serialize, ToSchema)]
pub struct AliasView<'a> {
    id: &'a str,
    use_case: &'a str,
    #[schema(value_type = Vec<String>)]
    models: &'a [String],
}

impl<'a> AliasView<'a> {
    pub fn of(alias: &'a crate::catalog::Alias) -> Self {
        AliasView {
            id: &alias.id,
            use_case: &alias.use_case,
            models: &alias.models,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct AliasList<'a> {
    object: &'static str,
    data: Vec<AliasView<'a>>,
}

#[derive(Serialize, ToSchema)]
struct ProviderView<'a> {
    id: &'a str,
    label: &'a str,
    category: &'a str,
    /// What a key needs (`api_key`, and `account_id` for some).
    #[schema(value_type = Vec<String>)]
    credential_fields: &'a [String],
    signup_url: &'a str,
    free_tier: bool,
    openai_compatible: bool,
    /// The wire dialect: `openai`, `anthropic` or `gemini`.
    #[schema(value_type = String)]
    api: crate::catalog::Api,
    /// Credential fields a key may leave out (a local server's `api_key`).
    #[schema(value_type = Vec<String>)]
    optional_credential_fields: &'a [String],
    /// `api_key` or `oauth`.
    #[schema(value_type = String)]
    auth: &'static str,
    is_configured: bool,
}

#[derive(Serialize, ToSchema)]
struct ProviderList<'a> {
    object: &'static str,
    data: Vec<ProviderView<'a>>,
}
