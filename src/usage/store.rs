//! Reading traces and hourly token counters: start-up seeds and the reporting queries. Writing
//! them is `ledger.rs`; these two are the only files of this concern that touch `entity`.

use super::record::TraceStatus;
use crate::money::Money;
use chrono::{DateTime, Utc};
use entity::{token_usage_hourly as hourly, trace};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use std::collections::HashMap;

/// `SUM(column)` as a `BIGINT` on both backends: PostgreSQL's `SUM(bigint)` is `NUMERIC`, which
/// does not decode as `i64` (SQLite's is already an integer). Every sum this module reads goes
/// through here.
fn sum_as_bigint(column: trace::Column) -> Expr {
    Func::cast_as(Func::sum(Expr::col(column)), "BIGINT").into()
}

/// What a token's budget actor starts from after a restart.
#[derive(Debug, Clone, Default)]
pub struct TokenSeed {
    /// (hour start, cost) for the last ~32 days, to sum from any budget period's start.
    pub hourly_cost: Vec<(i64, Money)>,
    /// (hour start, admitted requests) for the last 25 hours, for the daily window.
    pub hourly_requests: Vec<(i64, u32)>,
}

impl TokenSeed {
    pub fn spent_since(&self, start: DateTime<Utc>) -> Money {
        let from = start.timestamp();
        Money::from_nanos(
            self.hourly_cost
                .iter()
                .filter(|(h, _)| *h >= from)
                .map(|(_, c)| c.nanos())
                .sum(),
        )
    }
}

/// Every token's recent hourly counters, loaded once at start-up.
pub async fn load_token_seeds(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<HashMap<i32, TokenSeed>, DbErr> {
    let since = now.timestamp() - 32 * 24 * 3600;
    let rows = hourly::Entity::find()
        .filter(hourly::Column::HourStart.gte(since))
        .all(db)
        .await?;
    let day_ago = now.timestamp() - 25 * 3600;
    let mut seeds: HashMap<i32, TokenSeed> = HashMap::new();
    for row in rows {
        let seed = seeds.entry(row.agent_key_id).or_default();
        seed.hourly_cost
            .push((row.hour_start, Money::from_nanos(row.cost_nanos)));
        if row.hour_start >= day_ago {
            seed.hourly_requests.push((
                row.hour_start,
                row.requests.clamp(0, u32::MAX as i64) as u32,
            ));
        }
    }
    Ok(seeds)
}

/// A key's spend today and this calendar month (UTC), from the ledger.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntegrationSpend {
    pub today: Money,
    pub month: Money,
    /// Requests the key served today, to rebuild its daily counter. Attempts that failed are not
    /// in the ledger's `integration_id`, so after a restart a key may take that many more.
    pub requests_today: u32,
}

/// Per-integration spend since `month_start`, split at `day_start`; loaded once at start-up.
pub async fn load_integration_spend(
    db: &DatabaseConnection,
    month_start: DateTime<Utc>,
    day_start: DateTime<Utc>,
) -> Result<HashMap<i32, IntegrationSpend>, DbErr> {
    let mut spend: HashMap<i32, IntegrationSpend> = HashMap::new();
    for (since, today) in [(month_start, false), (day_start, true)] {
        let sums: Vec<(Option<i32>, Option<i64>, i64)> = trace::Entity::find()
            .select_only()
            .column(trace::Column::IntegrationId)
            .column_as(sum_as_bigint(trace::Column::CostNanos), "cost")
            .column_as(trace::Column::Id.count(), "requests")
            .filter(trace::Column::CreatedAt.gte(since))
            .filter(trace::Column::IntegrationId.is_not_null())
            .group_by(trace::Column::IntegrationId)
            .into_tuple()
            .all(db)
            .await?;
        for (id, cost, requests) in sums {
            let (Some(id), Some(cost)) = (id, cost) else {
                continue;
            };
            let entry = spend.entry(id).or_default();
            if today {
                entry.today = Money::from_nanos(cost);
                entry.requests_today = requests.clamp(0, i64::from(u32::MAX)) as u32;
            } else {
                entry.month = Money::from_nanos(cost);
            }
        }
    }
    Ok(spend)
}

/// A model's spend and request count.
pub type ModelSpend = (String, Money, u64);

/// (token, model, summed cost, requests) as the grouped query returns them.
type TokenModelRow = (Option<i32>, Option<String>, Option<i64>, i64);

/// A token's spend and requests per model since `since`.
pub async fn token_month_by_model(
    db: &DatabaseConnection,
    token: i32,
    since: DateTime<Utc>,
) -> Result<Vec<ModelSpend>, DbErr> {
    let mut by_token =
        spend_by_token_and_model(db, trace::Column::AgentKeyId.eq(token), since).await?;
    Ok(by_token.remove(&token).unwrap_or_default())
}

/// The hourly counters of `tokens` from `from` (unix seconds, inclusive): (token, hour start,
/// requests, cost in nanos), oldest first. What the dashboard's usage charts read, never traces.
pub async fn hourly_counters(
    db: &DatabaseConnection,
    tokens: &[i32],
    from: i64,
) -> Result<Vec<(i32, i64, i64, i64)>, DbErr> {
    use sea_orm::QueryOrder;
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    hourly::Entity::find()
        .filter(hourly::Column::AgentKeyId.is_in(tokens.iter().copied()))
        .filter(hourly::Column::HourStart.gte(from))
        .order_by_asc(hourly::Column::HourStart)
        .select_only()
        .columns([
            hourly::Column::AgentKeyId,
            hourly::Column::HourStart,
            hourly::Column::Requests,
            hourly::Column::CostNanos,
        ])
        .into_tuple()
        .all(db)
        .await
}

/// Every token's spend and requests per model since `since`, for one brand's tokens in one query.
pub async fn brand_month_by_model(
    db: &DatabaseConnection,
    brand_id: i32,
    since: DateTime<Utc>,
) -> Result<HashMap<i32, Vec<ModelSpend>>, DbErr> {
    spend_by_token_and_model(db, trace::Column::BrandId.eq(brand_id), since).await
}

/// Priced traces matching `which` since `since`, grouped: token id → [(model, cost, requests)].
async fn spend_by_token_and_model(
    db: &DatabaseConnection,
    which: sea_orm::sea_query::SimpleExpr,
    since: DateTime<Utc>,
) -> Result<HashMap<i32, Vec<ModelSpend>>, DbErr> {
    let rows: Vec<TokenModelRow> = trace::Entity::find()
        .select_only()
        .column(trace::Column::AgentKeyId)
        .column(trace::Column::Model)
        .column_as(sum_as_bigint(trace::Column::CostNanos), "cost")
        .column_as(trace::Column::Id.count(), "requests")
        .filter(which)
        .filter(trace::Column::CreatedAt.gte(since))
        .filter(trace::Column::CostNanos.gt(0))
        .group_by(trace::Column::AgentKeyId)
        .group_by(trace::Column::Model)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_token: HashMap<i32, Vec<ModelSpend>> = HashMap::new();
    for (token, model, cost, requests) in rows {
        if let (Some(token), Some(model)) = (token, model) {
            by_token.entry(token).or_default().push((
                model,
                Money::from_nanos(cost.unwrap_or(0)),
                Ord::max(requests, 0) as u64,
            ));
        }
    }
    Ok(by_token)
}

/// Filters of `GET /api/v1/traces` and `/summary`, always within one brand.
#[derive(Debug, Default, Clone)]
pub struct TraceFilter {
    pub brand_id: i32,
    pub agent_key_id: Option<i32>,
    pub model: Option<String>,
    pub status: Option<TraceStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub min_latency_ms: Option<u64>,
    pub min_cost: Option<Money>,
    /// The provider that served (or was last tried).
    pub provider: Option<String>,
    /// Only requests that fell back past their first attempt.
    pub fallback_only: bool,
}

impl TraceFilter {
    fn query(&self) -> sea_orm::Select<trace::Entity> {
        let mut q = trace::Entity::find().filter(trace::Column::BrandId.eq(self.brand_id));
        if let Some(key) = self.agent_key_id {
            q = q.filter(trace::Column::AgentKeyId.eq(key));
        }
        if let Some(model) = &self.model {
            // The model that served, or the one asked for (an alias, or a model that failed).
            let served_or_asked = sea_orm::Condition::any()
                .add(trace::Column::Model.eq(model.as_str()))
                .add(trace::Column::RequestedModel.eq(model.as_str()));
            q = q.filter(served_or_asked);
        }
        if let Some(status) = self.status {
            q = q.filter(trace::Column::Status.eq(status.as_str()));
        }
        if let Some(from) = self.from {
            q = q.filter(trace::Column::CreatedAt.gte(from));
        }
        if let Some(to) = self.to {
            q = q.filter(trace::Column::CreatedAt.lt(to));
        }
        if let Some(ms) = self.min_latency_ms {
            q = q.filter(trace::Column::LatencyMs.gte(ms as i64));
        }
        if let Some(cost) = self.min_cost {
            q = q.filter(trace::Column::CostNanos.gte(cost.nanos()));
        }
        if let Some(provider) = &self.provider {
            q = q.filter(trace::Column::Provider.eq(provider.as_str()));
        }
        if self.fallback_only {
            q = q.filter(trace::Column::FallbackUsed.eq(true));
        }
        q
    }
}

/// A trace as the API shows it (`client_id` is added by the caller, who knows the brand).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TraceView {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub agent_key_id: Option<i32>,
    pub request_kind: String,
    pub requested_model: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub integration_id: Option<i32>,
    pub status: String,
    pub http_status: i32,
    pub error_code: Option<String>,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub streamed: bool,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Of `prompt_tokens`, read from the provider's prompt cache.
    pub cache_read_tokens: i64,
    /// Of `prompt_tokens`, written to the provider's prompt cache.
    pub cache_write_tokens: i64,
    pub cost_usd: Money,
    pub fallback_used: bool,
    /// Each upstream call: `{provider, model, integration_id, status, error_code, latency_ms}`.
    #[schema(value_type = Vec<Object>)]
    pub attempts: serde_json::Value,
    /// The gateway's phases: `{name, start_ms, duration_ms}`.
    #[schema(value_type = Vec<Object>)]
    pub spans: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

impl From<trace::Model> for TraceView {
    fn from(t: trace::Model) -> Self {
        let json =
            |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Array(Vec::new()));
        TraceView {
            attempts: json(&t.attempts),
            spans: json(&t.spans),
            id: t.id,
            created_at: t.created_at,
            agent_key_id: t.agent_key_id,
            request_kind: t.request_kind,
            requested_model: t.requested_model,
            model: t.model,
            provider: t.provider,
            integration_id: t.integration_id,
            status: t.status,
            http_status: t.http_status,
            error_code: t.error_code,
            latency_ms: t.latency_ms,
            ttft_ms: t.ttft_ms,
            streamed: t.streamed,
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
            cache_read_tokens: t.cache_read_tokens,
            cache_write_tokens: t.cache_write_tokens,
            cost_usd: Money::from_nanos(t.cost_nanos),
            fallback_used: t.fallback_used,
            request_body: t.request_body,
            response_body: t.response_body,
        }
    }
}

/// A page of traces, newest first, and the total matching.
pub async fn list_traces(
    db: &DatabaseConnection,
    filter: &TraceFilter,
    limit: u64,
    offset: u64,
) -> Result<(Vec<TraceView>, u64), DbErr> {
    use sea_orm::{PaginatorTrait, QueryOrder};
    let total = filter.query().count(db).await?;
    let rows = filter
        .query()
        .order_by_desc(trace::Column::CreatedAt)
        .order_by_desc(trace::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows.into_iter().map(TraceView::from).collect(), total))
}

/// A page of traces newest first, after the trace `before` names (its time and id), without
/// counting the whole table: `limit + 1` rows are read so the caller knows whether more follow.
pub async fn trace_page(
    db: &DatabaseConnection,
    filter: &TraceFilter,
    before: Option<(DateTime<Utc>, String)>,
    limit: u64,
) -> Result<Vec<TraceView>, DbErr> {
    use sea_orm::QueryOrder;
    let mut query = filter.query();
    if let Some((at, id)) = before {
        query = query.filter(
            sea_orm::Condition::any()
                .add(trace::Column::CreatedAt.lt(at))
                .add(
                    sea_orm::Condition::all()
                        .add(trace::Column::CreatedAt.eq(at))
                        .add(trace::Column::Id.lt(id)),
                ),
        );
    }
    let rows = query
        .order_by_desc(trace::Column::CreatedAt)
        .order_by_desc(trace::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(TraceView::from).collect())
}

/// Totals of the matching traces, computed by the database: count, errors, cost, and the
/// median and 95th-percentile latency (nearest rank).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct TraceTotals {
    pub count: i64,
    pub errors: i64,
    pub cost_usd: Money,
    pub p50_ms: i64,
    pub p95_ms: i64,
}

pub async fn trace_totals(
    db: &DatabaseConnection,
    filter: &TraceFilter,
) -> Result<TraceTotals, DbErr> {
    use sea_orm::{FromQueryResult, QueryOrder};
    #[derive(FromQueryResult)]
    struct Sums {
        count: i64,
        errors: Option<i64>,
        cost: Option<i64>,
    }
    let errors = Expr::cust("CAST(SUM(CASE WHEN status <> 'success' THEN 1 ELSE 0 END) AS BIGINT)");
    let sums = filter
        .query()
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "count")
        .column_as(errors, "errors")
        .column_as(sum_as_bigint(trace::Column::CostNanos), "cost")
        .into_model::<Sums>()
        .one(db)
        .await?;
    let Some(sums) = sums.filter(|s| s.count > 0) else {
        return Ok(TraceTotals::default());
    };
    let at_rank = |p: i64| {
        let rank = (p * sums.count + 99) / 100;
        filter
            .query()
            .select_only()
            .column(trace::Column::LatencyMs)
            .order_by_asc(trace::Column::LatencyMs)
            .offset((rank.max(1) - 1) as u64)
            .limit(1)
            .into_tuple::<i64>()
            .one(db)
    };
    Ok(TraceTotals {
        count: sums.count,
        errors: sums.errors.unwrap_or(0),
        cost_usd: Money::from_nanos(sums.cost.unwrap_or(0)),
        p50_ms: at_rank(50).await?.unwrap_or(0),
        p95_ms: at_rank(95).await?.unwrap_or(0),
    })
}

pub async fn find_trace(
    db: &DatabaseConnection,
    brand_id: i32,
    id: &str,
) -> Result<Option<TraceView>, DbErr> {
    let row = trace::Entity::find_by_id(id.to_owned())
        .filter(trace::Column::BrandId.eq(brand_id))
        .one(db)
        .await?;
    Ok(row.map(TraceView::from))
}

/// The columns aggregates need, for every matching trace.
#[derive(Debug, Clone, sea_orm::FromQueryResult)]
pub struct UsageRow {
    pub created_at: DateTime<Utc>,
    pub agent_key_id: Option<i32>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: String,
    pub latency_ms: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_nanos: i64,
}

pub async fn usage_rows(
    db: &DatabaseConnection,
    filter: &TraceFilter,
) -> Result<Vec<UsageRow>, DbErr> {
    filter
        .query()
        .select_only()
        .columns([
            trace::Column::CreatedAt,
            trace::Column::AgentKeyId,
            trace::Column::Model,
            trace::Column::Provider,
            trace::Column::Status,
            trace::Column::LatencyMs,
            trace::Column::PromptTokens,
            trace::Column::CompletionTokens,
            trace::Column::CostNanos,
        ])
        .into_model::<UsageRow>()
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, EntityTrait, QuerySelect, QueryTrait};

    #[test]
    fn sums_are_cast_to_bigint_on_both_backends() {
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            let sql = entity::trace::Entity::find()
                .select_only()
                .column_as(
                    super::sum_as_bigint(entity::trace::Column::CostNanos),
                    "cost",
                )
                .build(backend)
                .to_string();
            assert!(
                sql.contains(r#"CAST(SUM("cost_nanos") AS BIGINT)"#),
                "{backend:?}: {sql}"
            );
        }
    }
}
