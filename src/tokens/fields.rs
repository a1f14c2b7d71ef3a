//! The settings of an agent token and their validation, shared by mint (`POST`) and edit (`PATCH`).

use crate::auth::Scopes;
use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::money::Money;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

pub const DEFAULT_EXPIRY_HOURS: i64 = 720;
pub const MAX_EXPIRY_HOURS: i64 = 2160;

/// The JSON body of both `POST` and `PATCH`. Absent fields keep their value (or the default on
/// mint); `null` clears a nullable limit. Unknown fields (including the secret) are refused.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenFields {
    /// Required when minting.
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<f64>, minimum = 0)]
    monthly_budget_usd: Option<Option<f64>>,
    budget_mode: Option<BudgetMode>,
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<u32>)]
    rpm: Option<Option<u32>>,
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<u32>)]
    rpd: Option<Option<u32>>,
    allowed_models: Option<Vec<String>>,
    free_models_only: Option<bool>,
    scopes: Option<Vec<String>>,
    expires_in_hours: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetMode {
    Hard,
    Soft,
}

impl BudgetMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetMode::Hard => "hard",
            BudgetMode::Soft => "soft",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hard" => Some(BudgetMode::Hard),
            "soft" => Some(BudgetMode::Soft),
            _ => None,
        }
    }
}

/// A token's complete, validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    pub name: String,
    pub monthly_budget: Option<Money>,
    pub budget_mode: BudgetMode,
    pub rpm: Option<u32>,
    pub rpd: Option<u32>,
    pub allowed_models: Vec<String>,
    pub free_models_only: bool,
    pub scopes: Scopes,
    pub expires_at: DateTime<Utc>,
}

impl TokenFields {
    /// Settings for a new token: the contract's defaults with these fields applied.
    pub fn into_new_settings(
        self,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<TokenSettings, ApiError> {
        if self.name.is_none() {
            return Err(ApiError::invalid_field("name", "is required"));
        }
        let defaults = TokenSettings {
            name: String::new(),
            monthly_budget: None,
            budget_mode: BudgetMode::Hard,
            rpm: None,
            rpd: None,
            allowed_models: Vec::new(),
            free_models_only: false,
            scopes: Scopes::default_for_tokens(),
            expires_at: now + Duration::hours(DEFAULT_EXPIRY_HOURS),
        };
        self.apply_to(defaults, catalog, now)
    }

    /// `current` with these fields applied, validated as a whole.
    pub fn apply_to(
        self,
        mut s: TokenSettings,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<TokenSettings, ApiError> {
        if let Some(name) = self.name {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(ApiError::invalid_field(
                    "name",
                    "must be 1 to 100 characters",
                ));
            }
            s.name = name.to_owned();
        }
        if let Some(budget) = self.monthly_budget_usd {
            s.monthly_budget = budget
                .map(|usd| {
                    Money::from_usd(usd).ok_or_else(|| {
                        ApiError::invalid_field(
                            "monthly_budget_usd",
                            "must be a non-negative amount of USD",
                        )
                    })
                })
                .transpose()?;
        }
        if let Some(mode) = self.budget_mode {
            s.budget_mode = mode;
        }
        if let Some(rpm) = self.rpm {
            s.rpm = crate::json::positive_limit("rpm", rpm)?;
        }
        if let Some(rpd) = self.rpd {
            s.rpd = crate::json::positive_limit("rpd", rpd)?;
        }
        if let Some(models) = self.allowed_models {
            s.allowed_models = known_models(models, catalog)?;
        }
        if let Some(free) = self.free_models_only {
            s.free_models_only = free;
        }
        if let Some(names) = self.scopes {
            s.scopes = parse_scopes(&names)?;
        }
        if let Some(hours) = self.expires_in_hours {
            if !(1..=MAX_EXPIRY_HOURS).contains(&hours) {
                return Err(ApiError::invalid_field(
                    "expires_in_hours",
                    format!("must be between 1 and {MAX_EXPIRY_HOURS}"),
                ));
            }
            s.expires_at = now + Duration::hours(hours);
        }
        Ok(s)
    }
}

fn known_models(models: Vec<String>, catalog: &Catalog) -> Result<Vec<String>, ApiError> {
    if let Some(unknown) = models.iter().find(|m| !catalog.knows(m)) {
        return Err(ApiError::invalid_field(
            "allowed_models",
            format!(
                "`{unknown}` is neither a model nor an alias (see GET /api/gate/v1/models and /aliases)"
            ),
        ));
    }
    let mut models = models;
    models.dedup();
    Ok(models)
}

fn parse_scopes(names: &[String]) -> Result<Scopes, ApiError> {
    if names.is_empty() {
        return Err(ApiError::invalid_field(
            "scopes",
            "must name at least one scope",
        ));
    }
    Scopes::parse(names.iter().map(String::as_str)).map_err(|unknown| {
        ApiError::invalid_field(
            "scopes",
            format!("unknown scope `{unknown}`; allowed: gate:chat, gate:models, gate:usage, system, job, content"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;
    use std::collections::BTreeMap;

    fn catalog() -> Catalog {
        Catalog::load(&BTreeMap::new()).expect("catalog")
    }

    fn fields(json: &str) -> TokenFields {
        serde_json::from_str(json).expect("valid fields json")
    }

    #[test]
    fn new_tokens_get_the_contract_defaults() {
        let now = crate::clock::Clock::default().now();
        let s = fields(r#"{"name":" bot "}"#)
            .into_new_settings(&catalog(), now)
            .expect("valid");
        assert_eq!(s.name, "bot");
        assert_eq!(s.budget_mode, BudgetMode::Hard);
        assert_eq!(s.expires_at, now + Duration::hours(720));
        assert!(s.scopes.contains(Scope::GateUsage) && !s.scopes.contains(Scope::System));
    }

    #[test]
    fn patches_keep_absent_fields_and_clear_nulls() {
        let now = crate::clock::Clock::default().now();
        let c = catalog();
        let s = fields(r#"{"name":"a","rpm":10,"rpd":100,"monthly_budget_usd":5}"#)
            .into_new_settings(&c, now)
            .expect("valid");
        let s = fields(r#"{"rpm":null}"#)
            .apply_to(s, &c, now)
            .expect("valid");
        assert_eq!(
            (s.rpm, s.rpd, s.monthly_budget),
            (None, Some(100), Money::from_usd(5.0))
        );
    }

    #[test]
    fn invalid_values_name_their_field() {
        let cases = [
            (r#"{}"#, "name"),
            (r#"{"name":""}"#, "name"),
            (r#"{"name":"a","expires_in_hours":0}"#, "expires_in_hours"),
            (
                r#"{"name":"a","expires_in_hours":2161}"#,
                "expires_in_hours",
            ),
            (r#"{"name":"a","rpm":0}"#, "rpm"),
            (
                r#"{"name":"a","monthly_budget_usd":-1}"#,
                "monthly_budget_usd",
            ),
            (r#"{"name":"a","scopes":["gate:chat","root"]}"#, "scopes"),
            (r#"{"name":"a","scopes":[]}"#, "scopes"),
            (
                r#"{"name":"a","allowed_models":["no-such-model"]}"#,
                "allowed_models",
            ),
        ];
        for (json, field) in cases {
            let err = fields(json)
                .into_new_settings(&catalog(), crate::clock::Clock::default().now())
                .expect_err(json);
            assert!(err.to_string().contains(field), "{json}: {err}");
        }
    }
}
