//! Catalog reads: `/models`, `/models/{id}`, `/aliases`, `/providers`.
//!
//! Public; a caller that sends a token (scope `gate:models`) is authenticated by the middleware,
//! so `is_configured` reflects that brand's own and shared keys as well as the pool.

use crate::auth::Principal;
use crate::catalog::{Catalog, Model, Provider};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::vault::VaultSnapshot;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
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

#[derive(Deserialize)]
pub struct ModelsQuery {
    provider: Option<String>,
    #[serde(default)]
    free_only: bool,
    #[serde(default)]
    configured_only: bool,
    search: Option<String>,
    capability: Option<String>,
    #[serde(default)]
    sort_by: SortBy,
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

#[derive(Serialize)]
struct ModelView<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    owned_by: &'a str,
    spidergate_info: ModelInfo<'a>,
}

#[derive(Serialize)]
struct ModelInfo<'a> {
    provider: &'a str,
    provider_model: &'a str,
    display_name: &'a str,
    context_window: u32,
    max_output_tokens: u32,
    capabilities: &'a [String],
    free_tier: bool,
    is_configured: bool,
    in_task_aliases: Vec<&'a str>,
    pricing: Pricing,
}

#[derive(Serialize)]
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
    Ok(HttpResponse::Ok().json(json!({ "object": "list", "data": data, "total": total })))
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

pub async fn list_aliases(state: web::Data<AppState>) -> HttpResponse {
    let catalog = state.catalog.load();
    let data: Vec<_> = catalog
        .aliases()
        .iter()
        .map(|a| json!({ "id": a.id, "use_case": a.use_case, "models": a.models }))
        .collect();
    HttpResponse::Ok().json(json!({ "object": "list", "data": data }))
}

pub async fn list_providers(state: web::Data<AppState>, caller: Option<Principal>) -> HttpResponse {
    let catalog = state.catalog.load();
    let vault = state.vault.snapshot();
    let viewer = Viewer::new(&vault, caller.as_ref());
    let data: Vec<_> = catalog
        .providers()
        .iter()
        .map(|p| provider_view(p, &viewer))
        .collect();
    HttpResponse::Ok().json(json!({ "object": "list", "data": data }))
}

fn provider_view(p: &Provider, viewer: &Viewer) -> serde_json::Value {
    json!({
        "id": p.id,
        "label": p.label,
        "category": p.category,
        "credential_fields": p.credential_fields,
        "signup_url": p.signup_url,
        "free_tier": p.free_tier,
        "openai_compatible": p.openai_compatible,
        "auth": if p.oauth { "oauth" } else { "api_key" },
        "is_configured": viewer.is_configured(&p.id),
    })
}
