//! Loading and indexing `catalog.toml`.

use crate::config::ProviderOverride;
use crate::money::Money;
use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const BUILTIN: &str = include_str!("catalog.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub id: String,
    pub label: String,
    pub category: String,
    pub base_url: String,
    pub credential_fields: Vec<String>,
    pub key_hint: String,
    pub signup_url: String,
    pub free_tier: bool,
    pub openai_compatible: bool,
    /// The wire dialect its adapter speaks (`providers/`).
    #[serde(default)]
    pub api: Api,
    /// How the key is sent; by default the dialect's own scheme.
    #[serde(default)]
    auth: Option<Auth>,
    /// Static headers sent with every request (`anthropic-version`, …).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Static query parameters added to every URL (Azure's `api-version`).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Outgoing body fields renamed for this provider (`max_completion_tokens` → `max_tokens`);
    /// a field mapped to `""` is dropped.
    #[serde(default)]
    pub param_mappings: BTreeMap<String, String>,
    /// Credential fields a key may leave out (a local server's `api_key`).
    #[serde(default)]
    pub optional_credential_fields: Vec<String>,
    /// Keys come from OAuth sign-in (`[providers.<id>.oauth]` is configured), not from pasting.
    #[serde(skip)]
    pub oauth: bool,
}

impl Provider {
    /// A `[custom_providers.<id>]` entry as a catalog provider: its key is optional.
    fn custom(id: &str, spec: &crate::config::CustomProvider) -> Provider {
        Provider {
            id: id.to_owned(),
            label: spec.label.clone().unwrap_or_else(|| id.to_owned()),
            category: "custom".into(),
            base_url: spec.base_url.trim_end_matches('/').to_owned(),
            credential_fields: vec!["api_key".into()],
            key_hint: "the server's API key, if it takes one".into(),
            signup_url: String::new(),
            free_tier: false,
            openai_compatible: spec.api == Api::Openai,
            api: spec.api,
            auth: spec.auth,
            headers: spec.headers.clone(),
            query: spec.query.clone(),
            param_mappings: spec.param_mappings.clone(),
            optional_credential_fields: vec!["api_key".into()],
            oauth: false,
        }
    }

    /// How this provider's key is sent upstream.
    pub fn auth(&self) -> Auth {
        self.auth.unwrap_or(match self.api {
            Api::Openai => Auth::Bearer,
            Api::Anthropic => Auth::XApiKey,
            Api::Gemini => Auth::XGoogApiKey,
        })
    }

    /// Whether a key can be tried by listing the provider's models (every API but fal's media one).
    pub fn checkable(&self) -> bool {
        self.openai_compatible || self.api != Api::Openai
    }
}

/// A provider's wire dialect: which adapter builds its requests and reads its answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI's chat completions (and the other OpenAI endpoints), passed through.
    #[default]
    Openai,
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
}

/// Where the key goes on an upstream request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    #[serde(rename = "bearer")]
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    #[serde(rename = "x-api-key")]
    XApiKey,
    /// `api-key: <key>` (Azure OpenAI).
    #[serde(rename = "api-key")]
    ApiKey,
    /// `x-goog-api-key: <key>` (Gemini).
    #[serde(rename = "x-goog-api-key")]
    XGoogApiKey,
    /// No key (a local server).
    #[serde(rename = "none")]
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub id: String,
    pub provider: String,
    pub provider_model: String,
    pub display_name: String,
    pub context_window: u32,
    pub max_output_tokens: u32,
    pub capabilities: Vec<String>,
    pub free_tier: bool,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Price of prompt tokens read from the provider's cache (default: the input price).
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    /// Price of prompt tokens written to the provider's cache (default: the input price).
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
    pub created: i64,
}

impl Model {
    /// A custom provider's model: `<provider>/<name>`, with what the operator said and sane
    /// defaults for the rest (a chat model of 32k context and 4k output, free unless priced).
    fn custom(provider: &str, model: &crate::config::CustomModel) -> Model {
        use crate::config::CustomModel;
        let (name, spec) = match model {
            CustomModel::Name(name) => (name.as_str(), None),
            CustomModel::Spec(spec) => (spec.name.as_str(), Some(spec)),
        };
        let input = spec.map_or(0.0, |s| s.input_per_mtok);
        let output = spec.map_or(0.0, |s| s.output_per_mtok);
        Model {
            id: format!("{provider}/{name}"),
            provider: provider.to_owned(),
            provider_model: name.to_owned(),
            display_name: spec
                .and_then(|s| s.display_name.clone())
                .unwrap_or_else(|| name.to_owned()),
            context_window: spec.and_then(|s| s.context_window).unwrap_or(32_768),
            max_output_tokens: spec.and_then(|s| s.max_output_tokens).unwrap_or(4_096),
            capabilities: spec
                .and_then(|s| s.capabilities.clone())
                .unwrap_or_else(|| vec!["chat".into(), "streaming".into()]),
            free_tier: input == 0.0 && output == 0.0,
            input_per_mtok: input,
            output_per_mtok: output,
            cache_read_per_mtok: None,
            cache_write_per_mtok: None,
            created: 0,
        }
    }

    /// What `prompt` and `completion` tokens cost at this model's list prices.
    pub fn cost(&self, prompt: u64, completion: u64) -> Money {
        let usd =
            (prompt as f64 * self.input_per_mtok + completion as f64 * self.output_per_mtok) / 1e6;
        Money::from_usd(usd).unwrap_or(Money::ZERO)
    }

    /// What a call that used `usage` costs: cached prompt tokens at the cache prices, the rest of
    /// the prompt at the input price, the completion at the output price.
    pub fn bill(&self, usage: &crate::providers::Usage) -> Money {
        let cached = usage.cache_read_tokens.min(usage.prompt_tokens);
        let written = usage.cache_write_tokens.min(usage.prompt_tokens - cached);
        let fresh = usage.prompt_tokens - cached - written;
        let usd = (fresh as f64 * self.input_per_mtok
            + cached as f64 * self.cache_read_per_mtok.unwrap_or(self.input_per_mtok)
            + written as f64 * self.cache_write_per_mtok.unwrap_or(self.input_per_mtok)
            + usage.completion_tokens as f64 * self.output_per_mtok)
            / 1e6;
        Money::from_usd(usd).unwrap_or(Money::ZERO)
    }

    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    pub id: String,
    pub use_case: String,
    pub models: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    providers: Vec<Provider>,
    models: Vec<Model>,
    aliases: Vec<Alias>,
}

/// The whole catalog, indexed. Immutable once built; replaced as a whole when it changes.
#[derive(Debug, Clone)]
pub struct Catalog {
    providers: Vec<Provider>,
    /// Shared: a request's plan holds its candidates' models without copying them.
    models: Vec<Arc<Model>>,
    aliases: Vec<Alias>,
    provider_index: HashMap<String, usize>,
    model_index: HashMap<String, usize>,
    alias_index: HashMap<String, usize>,
}

impl Catalog {
    /// The built-in catalog with the configured base-URL overrides applied. Fails naming an
    /// override for a provider the catalog does not have.
    pub fn load(overrides: &BTreeMap<String, ProviderOverride>) -> anyhow::Result<Catalog> {
        let file: File = toml::from_str(BUILTIN).context("parsing the built-in catalog.toml")?;
        let models = file.models.into_iter().map(Arc::new).collect();
        let mut catalog = Catalog::build(file.providers, models, file.aliases)?;
        for (id, change) in overrides {
            let Some(&at) = catalog.provider_index.get(id) else {
                bail!("invalid config at `providers.{id}`: no provider `{id}` in the catalog");
            };
            let provider = &mut catalog.providers[at];
            if let Some(url) = &change.base_url {
                provider.base_url = url.trim_end_matches('/').to_owned();
            }
            if change.oauth.is_some() {
                // An OAuth credential is only a token: there is no account id to fill the URL with.
                if provider.base_url.contains("{account_id}") {
                    bail!(
                        "invalid config at `providers.{id}.oauth`: `{id}` needs an account id in its URL, which OAuth sign-in does not provide"
                    );
                }
                provider.oauth = true;
            }
        }
        Ok(catalog)
    }

    /// A copy with the operator's custom providers and their listed models. Fails naming a
    /// custom id that a built-in provider already has.
    pub fn with_custom(
        &self,
        custom: &BTreeMap<String, crate::config::CustomProvider>,
    ) -> anyhow::Result<Catalog> {
        if custom.is_empty() {
            return Ok(self.clone());
        }
        let mut providers = self.providers.clone();
        let mut models = self.models.clone();
        for (id, spec) in custom {
            if self.provider_index.contains_key(id) {
                bail!(
                    "invalid config at `custom_providers.{id}`: `{id}` is a built-in provider; configure it under [providers.{id}]"
                );
            }
            providers.push(Provider::custom(id, spec));
            models.extend(spec.models.iter().map(|m| Arc::new(Model::custom(id, m))));
        }
        Catalog::build(providers, models, self.aliases.clone())
    }

    /// A copy with `provider`'s models that `names` lists and the catalog lacks added (what
    /// `discover_models` found). Models are never removed here: an alias may name them.
    pub fn with_discovered(&self, provider: &str, names: &[String]) -> Catalog {
        let fresh: Vec<Arc<Model>> = names
            .iter()
            .map(|name| Model::custom(provider, &crate::config::CustomModel::Name(name.clone())))
            .filter(|m| !self.model_index.contains_key(&m.id))
            .map(Arc::new)
            .collect();
        if fresh.is_empty() {
            return self.clone();
        }
        let mut models = self.models.clone();
        models.extend(fresh);
        // The ids are new and the providers and aliases unchanged: building cannot fail.
        Catalog::build(self.providers.clone(), models, self.aliases.clone())
            .unwrap_or_else(|_| self.clone())
    }

    fn build(
        providers: Vec<Provider>,
        models: Vec<Arc<Model>>,
        aliases: Vec<Alias>,
    ) -> anyhow::Result<Catalog> {
        let provider_index = index(&providers, |p| &p.id, "provider")?;
        let model_index = index(&models, |m| &m.id, "model")?;
        let alias_index = index(&aliases, |a| &a.id, "alias")?;
        for model in &models {
            if !provider_index.contains_key(&model.provider) {
                bail!(
                    "catalog: model `{}` names unknown provider `{}`",
                    model.id,
                    model.provider
                );
            }
        }
        for alias in &aliases {
            if let Some(missing) = alias.models.iter().find(|m| !model_index.contains_key(*m)) {
                bail!(
                    "catalog: alias `{}` names unknown model `{missing}`",
                    alias.id
                );
            }
        }
        Ok(Catalog {
            providers,
            models,
            aliases,
            provider_index,
            model_index,
            alias_index,
        })
    }

    /// A copy with alias `id`'s chain replaced. 404 for an unknown alias; 400 naming an unknown
    /// model or an empty chain.
    pub fn with_chain(
        &self,
        id: &str,
        models: Vec<String>,
    ) -> Result<Catalog, crate::error::ApiError> {
        use crate::error::ApiError;
        let Some(&at) = self.alias_index.get(id) else {
            return Err(ApiError::not_found("alias"));
        };
        if models.is_empty() {
            return Err(ApiError::invalid_field(
                "models",
                "must name at least one model",
            ));
        }
        if let Some(unknown) = models.iter().find(|m| !self.model_index.contains_key(*m)) {
            return Err(ApiError::invalid_field(
                "models",
                format!("`{unknown}` is not a model of the catalog"),
            ));
        }
        let mut updated = self.clone();
        updated.aliases[at].models = models;
        Ok(updated)
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    pub fn models(&self) -> &[Arc<Model>] {
        &self.models
    }

    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.provider_index.get(id).map(|&i| &self.providers[i])
    }

    pub fn model(&self, id: &str) -> Option<&Arc<Model>> {
        self.model_index.get(id).map(|&i| &self.models[i])
    }

    pub fn alias(&self, id: &str) -> Option<&Alias> {
        self.alias_index.get(id).map(|&i| &self.aliases[i])
    }

    /// True when `id` is a model id or an alias id.
    pub fn knows(&self, id: &str) -> bool {
        self.model_index.contains_key(id) || self.alias_index.contains_key(id)
    }

    /// Ids of the aliases whose chain contains `model_id`, in catalog order.
    pub fn aliases_containing<'a>(
        &'a self,
        model_id: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.aliases
            .iter()
            .filter(move |a| a.models.iter().any(|m| m == model_id))
            .map(|a| a.id.as_str())
    }
}

fn index<T>(
    items: &[T],
    key: impl Fn(&T) -> &String,
    what: &str,
) -> anyhow::Result<HashMap<String, usize>> {
    let mut map = HashMap::with_capacity(items.len());
    for (at, item) in items.iter().enumerate() {
        if map.insert(key(item).clone(), at).is_some() {
            bail!("catalog: duplicate {what} id `{}`", key(item));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_PROVIDERS: [&str; 16] = [
        "openrouter",
        "groq",
        "mistral",
        "google_ai",
        "fal_ai",
        "cerebras",
        "together",
        "cohere",
        "cloudflare",
        "nvidia_nim",
        "fireworks",
        "sambanova",
        "huggingface",
        "github_models",
        "ai21",
        "baseten",
    ];

    fn builtin() -> Catalog {
        Catalog::load(&BTreeMap::new()).expect("built-in catalog loads")
    }

    #[test]
    fn has_the_seed_providers_plus_openai() {
        let catalog = builtin();
        for id in SEED_PROVIDERS.iter().chain(&["openai"]) {
            assert!(catalog.provider(id).is_some(), "missing provider {id}");
        }
        let cloudflare = catalog.provider("cloudflare").expect("cloudflare");
        assert_eq!(cloudflare.credential_fields, ["api_key", "account_id"]);
    }

    #[test]
    fn has_every_task_alias_and_free_models_cost_nothing() {
        let catalog = builtin();
        let spideriq = [
            "fast",
            "free",
            "chat",
            "coding",
            "extraction",
            "classification",
            "summarization",
            "translation",
            "research",
            "creative",
            "vision",
            "lead-analysis",
        ];
        let agent = [
            "chat",
            "tool-use",
            "coding",
            "planning",
            "creative",
            "vision",
            "research",
            "fast",
            "embed",
            "embed-small",
            "embed-large",
        ];
        let ids = spideriq
            .iter()
            .map(|a| format!("spideriq/{a}"))
            .chain(agent.iter().map(|a| format!("agent/{a}")));
        for id in ids {
            assert!(
                catalog.alias(&id).is_some_and(|a| !a.models.is_empty()),
                "alias {id}"
            );
        }
        for model in catalog.models().iter().filter(|m| m.free_tier) {
            assert_eq!(
                (model.input_per_mtok, model.output_per_mtok),
                (0.0, 0.0),
                "{}",
                model.id
            );
        }
        let free = catalog.alias("spideriq/free").expect("free alias");
        assert!(
            free.models
                .iter()
                .all(|m| catalog.model(m).is_some_and(|m| m.free_tier))
        );
        assert_eq!(
            catalog.alias("agent/embed").expect("embed").models[0],
            "text-embedding-3-small"
        );
    }

    #[test]
    fn base_url_overrides_apply_and_unknown_providers_are_refused() {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "groq".to_owned(),
            ProviderOverride {
                base_url: Some("http://127.0.0.1:9/v1/".into()),
                oauth: None,
            },
        );
        let catalog = Catalog::load(&overrides).expect("override of a known provider");
        assert_eq!(
            catalog.provider("groq").expect("groq").base_url,
            "http://127.0.0.1:9/v1"
        );

        overrides.insert("nope".to_owned(), ProviderOverride::default());
        let err = Catalog::load(&overrides).expect_err("unknown provider");
        assert!(err.to_string().contains("providers.nope"), "{err}");
    }

    #[test]
    fn an_oauth_client_marks_its_provider_unless_the_url_needs_an_account() {
        let client = crate::config::OAuthClient {
            authorize_url: "https://auth.test/authorize".into(),
            token_url: "https://auth.test/token".into(),
            client_id: "gw".into(),
            client_secret: Default::default(),
            scopes: vec![],
        };
        let with_oauth = ProviderOverride {
            base_url: None,
            oauth: Some(client),
        };
        let mut overrides = BTreeMap::new();
        overrides.insert("groq".to_owned(), with_oauth.clone());
        let catalog = Catalog::load(&overrides).expect("oauth for groq");
        assert!(catalog.provider("groq").expect("groq").oauth);
        assert!(!catalog.provider("openai").expect("openai").oauth);

        overrides.insert("cloudflare".to_owned(), with_oauth);
        let err = Catalog::load(&overrides).expect_err("cloudflare needs an account id");
        assert!(
            err.to_string().contains("providers.cloudflare.oauth"),
            "{err}"
        );
    }

    #[test]
    fn a_custom_provider_may_not_take_a_built_in_id() {
        let spec: crate::config::CustomProvider =
            toml::from_str("base_url = \"http://127.0.0.1:8000/v1\"\nmodels = [\"m\"]")
                .expect("spec");
        let custom = BTreeMap::from([("groq".to_owned(), spec.clone())]);
        let err = builtin().with_custom(&custom).expect_err("a built-in id");
        assert!(err.to_string().contains("custom_providers.groq"), "{err}");
        let custom = BTreeMap::from([("mine".to_owned(), spec)]);
        let catalog = builtin().with_custom(&custom).expect("a new id");
        assert_eq!(
            catalog.model("mine/m").map(|m| m.provider_model.as_str()),
            Some("m")
        );
        let found = catalog.with_discovered("mine", &["m".into(), "n".into()]);
        assert_eq!(found.models().len(), catalog.models().len() + 1);
    }

    #[test]
    fn aliases_naming_unknown_models_are_refused() {
        let alias = Alias {
            id: "x".into(),
            use_case: String::new(),
            models: vec!["ghost".into()],
        };
        let err = Catalog::build(vec![], vec![], vec![alias]).expect_err("unknown model");
        assert!(err.to_string().contains("ghost"), "{err}");
    }
}
