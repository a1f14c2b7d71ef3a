//! Committing a batch of traces and the hourly token counters they add to, in one transaction.
//!
//! PostgreSQL gets one statement per table whatever the batch size: the rows travel as one array
//! per column and `UNNEST` turns them back into rows, so the server parses and plans one fixed
//! statement (prepared once per connection) and a batch costs two round trips plus the commit.
//! It goes through sqlx directly because sea-orm's binder cannot put NULLs inside arrays.
//! SQLite, in-process, takes multi-row `INSERT`s in power-of-two chunks.

use super::record::TraceRecord;
use entity::{token_usage_hourly as hourly, trace};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    TransactionTrait,
};
use std::collections::BTreeMap;

/// Requests and cost per (token, hour start) that a batch adds to `token_usage_hourly`.
type Counters = Vec<((i32, i64), (i64, i64))>;

/// Inserts the rows and adds their requests and cost to the hourly token counters, atomically.
pub async fn insert_batch(db: &DatabaseConnection, batch: &[TraceRecord]) -> Result<(), DbErr> {
    let counters = hourly_counters(batch);
    if db.get_database_backend() == DbBackend::Postgres {
        return postgres_insert(db.get_postgres_connection_pool(), batch, &counters)
            .await
            .map_err(|err| DbErr::Custom(format!("writing traces: {err}")));
    }
    let txn = db.begin().await?;
    insert_in_chunks(&txn, batch, &counters).await?;
    txn.commit().await
}

fn hourly_counters(batch: &[TraceRecord]) -> Counters {
    let mut counters: BTreeMap<(i32, i64), (i64, i64)> = BTreeMap::new();
    for r in batch.iter().filter(|r| r.admitted) {
        let Some(token) = r.agent_key_id else {
            continue;
        };
        let hour = r.created_at.timestamp().div_euclid(3600) * 3600;
        let entry = counters.entry((token, hour)).or_default();
        entry.0 += 1;
        entry.1 += r.cost.nanos();
    }
    counters.into_iter().collect()
}

const POSTGRES_TRACES: &str = "INSERT INTO traces (id, created_at, brand_id, agent_key_id, \
    request_kind, requested_model, model, provider, integration_id, status, http_status, \
    error_code, latency_ms, ttft_ms, streamed, prompt_tokens, completion_tokens, cost_nanos, \
    fallback_used, attempts, spans, request_body, response_body, cache_read_tokens, \
    cache_write_tokens) \
    SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::int4[], $4::int4[], $5::text[], \
    $6::text[], $7::text[], $8::text[], $9::int4[], $10::text[], $11::int4[], $12::text[], \
    $13::int8[], $14::int8[], $15::bool[], $16::int8[], $17::int8[], $18::int8[], $19::bool[], \
    $20::text[], $21::text[], $22::text[], $23::text[], $24::int8[], $25::int8[])";

const POSTGRES_COUNTERS: &str = "INSERT INTO token_usage_hourly \
    (agent_key_id, hour_start, requests, cost_nanos) \
    SELECT * FROM UNNEST($1::int4[], $2::int8[], $3::int8[], $4::int8[]) \
    ON CONFLICT (agent_key_id, hour_start) DO UPDATE SET \
    requests = token_usage_hourly.requests + excluded.requests, \
    cost_nanos = token_usage_hourly.cost_nanos + excluded.cost_nanos";

/// One array per column: `value` of every row.
fn column<T, V>(rows: &[T], value: impl Fn(&T) -> V) -> Vec<V> {
    rows.iter().map(value).collect()
}

async fn postgres_insert(
    pool: &sqlx::PgPool,
    batch: &[TraceRecord],
    counters: &Counters,
) -> Result<(), sqlx::Error> {
    let b = batch;
    let mut txn = pool.begin().await?;
    sqlx::query(POSTGRES_TRACES)
        .bind(column(b, |r| r.id.clone()))
        .bind(column(b, |r| r.created_at))
        .bind(column(b, |r| r.brand_id))
        .bind(column(b, |r| r.agent_key_id))
        .bind(column(b, |r| r.request_kind))
        .bind(column(b, |r| r.requested_model.clone()))
        .bind(column(b, |r| r.model().map(str::to_owned)))
        .bind(column(b, |r| r.provider().map(str::to_owned)))
        .bind(column(b, |r| r.integration_id))
        .bind(column(b, |r| r.status.as_str()))
        .bind(column(b, |r| i32::from(r.http_status)))
        .bind(column(b, |r| r.error_code))
        .bind(column(b, |r| r.latency_ms as i64))
        .bind(column(b, |r| r.ttft_ms.map(|t| t as i64)))
        .bind(column(b, |r| r.streamed))
        .bind(column(b, |r| r.prompt_tokens as i64))
        .bind(column(b, |r| r.completion_tokens as i64))
        .bind(column(b, |r| r.cost.nanos()))
        .bind(column(b, |r| r.fallback_used))
        .bind(column(b, attempts_json))
        .bind(column(b, spans_json))
        .bind(column(b, |r| r.request_body.clone()))
        .bind(column(b, |r| r.response_body.clone()))
        .bind(column(b, |r| r.cache_read_tokens as i64))
        .bind(column(b, |r| r.cache_write_tokens as i64))
        .execute(&mut *txn)
        .await?;
    if !counters.is_empty() {
        let c = counters;
        sqlx::query(POSTGRES_COUNTERS)
            .bind(column(c, |((token, _), _)| *token))
            .bind(column(c, |((_, hour), _)| *hour))
            .bind(column(c, |(_, (requests, _))| *requests))
            .bind(column(c, |(_, (_, cost))| *cost))
            .execute(&mut *txn)
            .await?;
    }
    txn.commit().await
}

fn attempts_json(r: &TraceRecord) -> String {
    serde_json::to_string(&r.attempts).unwrap_or_else(|_| "[]".into())
}

fn spans_json(r: &TraceRecord) -> String {
    serde_json::to_string(&r.spans).unwrap_or_else(|_| "[]".into())
}

fn row(r: &TraceRecord) -> trace::ActiveModel {
    trace::ActiveModel {
        id: Set(r.id.clone()),
        created_at: Set(r.created_at),
        brand_id: Set(r.brand_id),
        agent_key_id: Set(r.agent_key_id),
        request_kind: Set(r.request_kind.to_owned()),
        requested_model: Set(r.requested_model.clone()),
        model: Set(r.model().map(str::to_owned)),
        provider: Set(r.provider().map(str::to_owned)),
        integration_id: Set(r.integration_id),
        status: Set(r.status.as_str().to_owned()),
        http_status: Set(i32::from(r.http_status)),
        error_code: Set(r.error_code.map(str::to_owned)),
        latency_ms: Set(r.latency_ms as i64),
        ttft_ms: Set(r.ttft_ms.map(|t| t as i64)),
        streamed: Set(r.streamed),
        prompt_tokens: Set(r.prompt_tokens as i64),
        completion_tokens: Set(r.completion_tokens as i64),
        cache_read_tokens: Set(r.cache_read_tokens as i64),
        cache_write_tokens: Set(r.cache_write_tokens as i64),
        cost_nanos: Set(r.cost.nanos()),
        fallback_used: Set(r.fallback_used),
        attempts: Set(attempts_json(r)),
        spans: Set(spans_json(r)),
        request_body: Set(r.request_body.clone()),
        response_body: Set(r.response_body.clone()),
    }
}

/// Largest statement: 64 rows × 23 columns stays far below SQLite's parameter limit.
const MAX_ROWS_PER_STATEMENT: usize = 64;

/// Splits into chunks of 64, 32, 16, … rows. Every distinct row count is a distinct prepared
/// statement that the driver caches per connection; arbitrary batch sizes filled that cache
/// with up to a hundred huge statements (over 100 MiB of RSS under load). This keeps it to seven.
fn power_of_two_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let size = MAX_ROWS_PER_STATEMENT.min(1 << items.len().ilog2());
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

async fn insert_in_chunks(
    txn: &DatabaseTransaction,
    batch: &[TraceRecord],
    counters: &Counters,
) -> Result<(), DbErr> {
    for chunk in power_of_two_chunks(batch) {
        trace::Entity::insert_many(chunk.iter().map(row))
            .exec(txn)
            .await?;
    }
    let add = |column: hourly::Column, name: &str| {
        Expr::col((hourly::Entity, column)).add(Expr::cust(format!("excluded.{name}")))
    };
    for chunk in power_of_two_chunks(counters) {
        let rows = chunk
            .iter()
            .map(|&((token, hour), (requests, cost))| hourly::ActiveModel {
                agent_key_id: Set(token),
                hour_start: Set(hour),
                requests: Set(requests),
                cost_nanos: Set(cost),
            });
        hourly::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([hourly::Column::AgentKeyId, hourly::Column::HourStart])
                    .value(
                        hourly::Column::Requests,
                        add(hourly::Column::Requests, "requests"),
                    )
                    .value(
                        hourly::Column::CostNanos,
                        add(hourly::Column::CostNanos, "cost_nanos"),
                    )
                    .to_owned(),
            )
            .exec(txn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_batches_split_into_a_handful_of_statement_shapes() {
        for len in [0usize, 1, 7, 64, 65, 500, 1000] {
            let items: Vec<usize> = (0..len).collect();
            let sizes: Vec<usize> = super::power_of_two_chunks(&items)
                .map(<[usize]>::len)
                .collect();
            assert_eq!(sizes.iter().sum::<usize>(), len);
            assert!(
                sizes.iter().all(|s| s.is_power_of_two() && *s <= 64),
                "{len}: {sizes:?}"
            );
        }
    }
}
