//! `/api/v1/traces` (+ `/summary`, `/{id}`), `/api/v1/usage` (the brand), and
//! `/api/gate/v1/usage` (the calling token, or the whole brand for a client credential).
//!
//! These are reporting paths: they read the database, which the request path never does.

use super::record::TraceStatus;
use super::store::{self, TraceFilter, UsageRow};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::limits::BudgetPeriod;
use crate::money::Money;
use crate::openapi::schemas::Failed;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// This module's operations in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_traces, summary, get_trace, brand_usage, token_usage))]
pub struct Api;

/// A trace with the brand's client id.
#[derive(Serialize, ToSchema)]
struct Trace {
    #[serde(flatten)]
    trace: store::TraceView,
    client_id: String,
}

#[derive(Serialize, ToSchema)]
struct TraceList {
    data: Vec<Trace>,
    /// Matching traces in all.
    total: u64,
}

#[derive(Serialize, ToSchema)]
struct Summary {
    total: usize,
    errors: usize,
    error_rate: f64,
    cost_usd: Money,
    latency_ms: Latency,
}

#[derive(Serialize, ToSchema)]
struct Latency {
    avg: f64,
    p50: i64,
    p95: i64,
    p99: i64,
}

/// Requests, errors, tokens and cost; in a breakdown, with the one field it is grouped by.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema: written by Totals::json and grouped()")]
struct Totaled {
    requests: u64,
    errors: u64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost_usd: Money,
    #[schema(required = false)]
    model: Option<String>,
    #[schema(required = false)]
    agent_key_id: Option<i32>,
    #[schema(required = false)]
    provider: Option<String>,
    #[schema(required = false)]
    start: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema")]
struct Period {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema: written by brand_usage")]
struct BrandUsage {
    period: Period,
    totals: Totaled,
    by_model: Vec<Totaled>,
    by_agent: Vec<Totaled>,
    by_provider: Vec<Totaled>,
    by_bucket: Vec<Totaled>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema: written by token_usage")]
struct TokenUsage {
    requests: u64,
    errors: u64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost_usd: Money,
    /// `null` for a client credential (the whole brand).
    agent_key_id: Option<i32>,
    period: Period,
    by_model: Vec<Totaled>,
    /// Only for an agent token.
    #[schema(required = false)]
    budget: Option<TokenBudget>,
    #[schema(required = false)]
    rate_limits: Option<TokenRates>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema")]
struct TokenBudget {
    monthly_usd: Option<Money>,
    /// `hard` or `soft`.
    mode: String,
    spent_usd: Money,
    remaining_usd: Option<Money>,
    resets_at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema")]
struct TokenRates {
    rpm: Option<u32>,
    rpd: Option<u32>,
    remaining_minute: Option<u32>,
    remaining_day: Option<u32>,
}

pub fn configure_traces(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("").get(list_traces))
        .service(web::resource("/summary").get(summary))
        .service(web::resource("/{id}").get(get_trace));
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TraceQuery {
    agent_key_id: Option<i32>,
    model: Option<String>,
    /// `success` or `error`.
    status: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    #[param(maximum = 9223372036854775807_u64)]
    min_latency_ms: Option<u64>,
    min_cost_usd: Option<f64>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u64>,
    #[serde(default)]
    #[param(maximum = 9223372036854775807_u64)]
    offset: u64,
}

impl TraceQuery {
    fn filter(&self, principal: &Principal) -> Result<TraceFilter, ApiError> {
        // The databases compare signed 64-bit integers: a larger bound is a client error.
        if self
            .min_latency_ms
            .is_some_and(|ms| i64::try_from(ms).is_err())
        {
            return Err(ApiError::invalid_field(
                "min_latency_ms",
                "must be at most 2^63 - 1",
            ));
        }
        let status = match self.status.as_deref() {
            None => None,
            Some("success") => Some(TraceStatus::Success),
            Some("error") => Some(TraceStatus::Error),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "status",
                    "must be success or error",
                ));
            }
        };
        let min_cost = self
            .min_cost_usd
            .map(|usd| {
                Money::from_usd(usd).ok_or_else(|| {
                    ApiError::invalid_field("min_cost_usd", "must be a non-negative amount")
                })
            })
            .transpose()?;
        Ok(TraceFilter {
            brand_id: principal.brand_id,
            agent_key_id: self.agent_key_id,
            model: self.model.clone(),
            status,
            from: self.from,
            to: self.to,
            min_latency_ms: self.min_latency_ms,
            min_cost,
            ..TraceFilter::default()
        })
    }
}

fn with_client_id(principal: &Principal, trace: store::TraceView) -> Trace {
    Trace {
        trace,
        client_id: principal.client_id.to_string(),
    }
}

/// The brand's traces, newest first.
#[utoipa::path(get, path = "/api/v1/traces", tag = "usage", params(TraceQuery),
    responses((status = 200, description = "A page of traces", body = TraceList), Failed),
    security(("brand" = [])))]
async fn list_traces(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<TraceQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = crate::paging::checked(query.limit, query.offset)?;
    let filter = query.filter(&principal)?;
    let (rows, total) = store::list_traces(&state.db, &filter, limit, query.offset).await?;
    let data = rows
        .into_iter()
        .map(|t| with_client_id(&principal, t))
        .collect();
    Ok(HttpResponse::Ok().json(TraceList { data, total }))
}

#[utoipa::path(get, path = "/api/v1/traces/{id}", tag = "usage",
    params(("id" = String, Path, description = "The request id (`X-Request-ID`)")),
    responses((status = 200, description = "The trace", body = Trace), Failed),
    security(("brand" = [])))]
async fn get_trace(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let trace = store::find_trace(&state.db, principal.brand_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("trace"))?;
    Ok(HttpResponse::Ok().json(with_client_id(&principal, trace)))
}

/// Counts, error rate, cost and latency percentiles of the matching traces.
#[utoipa::path(get, path = "/api/v1/traces/summary", tag = "usage", params(TraceQuery),
    responses((status = 200, description = "The summary", body = Summary), Failed),
    security(("brand" = [])))]
async fn summary(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<TraceQuery>,
) -> Result<HttpResponse, ApiError> {
    let rows = store::usage_rows(&state.db, &query.filter(&principal)?).await?;
    let total = rows.len();
    let errors = rows
        .iter()
        .filter(|r| r.status != TraceStatus::Success.as_str())
        .count();
    let mut latencies: Vec<i64> = rows.iter().map(|r| r.latency_ms).collect();
    latencies.sort_unstable();
    let avg = if total == 0 {
        0.0
    } else {
        latencies.iter().sum::<i64>() as f64 / total as f64
    };
    Ok(HttpResponse::Ok().json(Summary {
        total,
        errors,
        error_rate: if total == 0 {
            0.0
        } else {
            errors as f64 / total as f64
        },
        cost_usd: Money::from_nanos(rows.iter().map(|r| r.cost_nanos).sum()),
        latency_ms: Latency {
            avg,
            p50: percentile(&latencies, 50),
            p95: percentile(&latencies, 95),
            p99: percentile(&latencies, 99),
        },
    }))
}

/// Nearest-rank percentile of sorted values; 0 when empty.
fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Requests, errors, tokens and cost over some traces.
#[derive(Default, Clone, Copy)]
struct Totals {
    requests: u64,
    errors: u64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost: i64,
}

impl Totals {
    fn of(rows: &[UsageRow]) -> Totals {
        let mut totals = Totals::default();
        rows.iter().for_each(|r| totals.add(r));
        totals
    }

    fn add(&mut self, row: &UsageRow) {
        self.requests += 1;
        self.errors += u64::from(row.status != TraceStatus::Success.as_str());
        self.prompt_tokens += row.prompt_tokens;
        self.completion_tokens += row.completion_tokens;
        self.cost += row.cost_nanos;
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": Money::from_nanos(self.cost),
        })
    }
}

/// Totals per key, as `[{<key_name>: key, requests, …}]`, largest cost first.
fn grouped(
    rows: &[UsageRow],
    key_name: &str,
    key: impl Fn(&UsageRow) -> Option<Value>,
) -> Vec<Value> {
    let mut groups: BTreeMap<String, (Value, Totals)> = BTreeMap::new();
    for row in rows {
        let Some(k) = key(row) else { continue };
        groups
            .entry(k.to_string())
            .or_insert_with(|| (k, Totals::default()))
            .1
            .add(row);
    }
    let mut list: Vec<(Value, Totals)> = groups.into_values().collect();
    list.sort_by_key(|(_, t)| std::cmp::Reverse(t.cost));
    list.into_iter()
        .map(|(k, t)| {
            let mut v = t.json();
            v[key_name] = k;
            v
        })
        .collect()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Default: the start of the current budget month.
    from: Option<DateTime<Utc>>,
    /// Default: its end.
    to: Option<DateTime<Utc>>,
    /// `day` (default) or `hour` (`/api/v1/usage` only).
    bucket: Option<String>,
}

/// `GET /api/v1/usage`: the brand's totals, by model, agent, provider and time bucket.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, description = "The brand's usage", body = BrandUsage), Failed),
    security(("brand" = [])))]
pub async fn brand_usage(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let bucket = match query.bucket.as_deref().unwrap_or("day") {
        "day" => Duration::days(1),
        "hour" => Duration::hours(1),
        _ => return Err(ApiError::invalid_field("bucket", "must be day or hour")),
    };
    let (from, to) = period(&state, &principal, query.from, query.to);
    let filter = TraceFilter {
        brand_id: principal.brand_id,
        from: Some(from),
        to: Some(to),
        ..TraceFilter::default()
    };
    let rows = store::usage_rows(&state.db, &filter).await?;
    let totals = Totals::of(&rows);
    let by_bucket = grouped(&rows, "start", |r| {
        r.created_at.duration_trunc(bucket).ok().map(|t| json!(t))
    });
    let mut by_bucket = by_bucket;
    by_bucket.sort_by(|a, b| a["start"].as_str().cmp(&b["start"].as_str()));
    Ok(HttpResponse::Ok().json(json!({
        "period": { "from": from, "to": to },
        "totals": totals.json(),
        "by_model": grouped(&rows, "model", |r| r.model.clone().map(Value::from)),
        "by_agent": grouped(&rows, "agent_key_id", |r| Some(r.agent_key_id.map_or(Value::Null, Value::from))),
        "by_provider": grouped(&rows, "provider", |r| r.provider.clone().map(Value::from)),
        "by_bucket": by_bucket,
    })))
}

/// The requested range, defaulting to the caller's current budget month.
fn period(
    state: &AppState,
    principal: &Principal,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let anchor = principal
        .token
        .as_ref()
        .and_then(|t| t.anchor_day)
        .or_else(|| state.auth.anchor_day(&principal.client_id));
    let month = BudgetPeriod::containing(state.clock.now(), anchor);
    (from.unwrap_or(month.start), to.unwrap_or(month.end))
}

/// `GET /api/gate/v1/usage`: the calling token's own usage, budget and rate limits.
#[utoipa::path(get, path = "/api/gate/v1/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, description = "The caller's usage", body = TokenUsage), Failed),
    security(("agent" = []), ("brand" = [])))]
pub async fn token_usage(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = period(&state, &principal, query.from, query.to);
    let token = principal.token.clone();
    let filter = TraceFilter {
        brand_id: principal.brand_id,
        agent_key_id: token.as_ref().map(|t| t.id),
        from: Some(from),
        to: Some(to),
        ..TraceFilter::default()
    };
    let rows = store::usage_rows(&state.db, &filter).await?;
    let totals = Totals::of(&rows);
    let mut body = totals.json();
    body["agent_key_id"] = json!(token.as_ref().map(|t| t.id));
    body["period"] = json!({ "from": from, "to": to });
    body["by_model"] = json!(grouped(&rows, "model", |r| r
        .model
        .clone()
        .map(Value::from)));
    if let Some(token) = token {
        let now = state.clock.now();
        let (spent, remaining_minute, remaining_day) = state.budgets.peek(&token, now).await;
        let limits = &token.limits;
        let month = BudgetPeriod::containing(now, token.anchor_day);
        body["budget"] = json!({
            "monthly_usd": limits.monthly_budget,
            "mode": if limits.hard_budget { "hard" } else { "soft" },
            "spent_usd": spent,
            "remaining_usd": limits.monthly_budget.map(|cap| Money::from_nanos((cap.nanos() - spent.nanos()).max(0))),
            "resets_at": month.end,
        });
        body["rate_limits"] = json!({ "rpm": limits.rpm, "rpd": limits.rpd, "remaining_minute": remaining_minute, "remaining_day": remaining_day });
    }
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(
            [
                super::percentile(&values, 50),
                super::percentile(&values, 95),
                super::percentile(&values, 99)
            ],
            [50, 95, 99]
        );
        assert_eq!(super::percentile(&[7], 99), 7);
        assert_eq!(super::percentile(&[], 50), 0);
    }
}
