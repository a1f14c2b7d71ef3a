//! Traces: the brand's requests with filters kept in the URL, a summary the database computes,
//! keyset pages ("Older", no count over the table), a CSV of exactly the filtered view, and one
//! trace's waterfall (the gateway's phases, each upstream attempt, the first token).

use super::pages::{brand_session, render};
use super::session::Signed;
use crate::auth::Principal;
use crate::money::Money;
use crate::state::AppState;
use crate::usage::{TraceFilter, TraceStatus, TraceView};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Duration, Utc};
use minijinja::{Value, context};
use std::collections::{BTreeMap, HashMap};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard/gate/traces", web::get().to(list))
        .route("/dashboard/gate/traces.csv", web::get().to(csv))
        .route("/dashboard/gate/traces/{id}", web::get().to(one));
}

const PAGE: u64 = 50;
/// Most rows one CSV export holds.
const CSV_ROWS: usize = 100_000;
const RANGES: [(&str, Option<i64>); 4] = [
    ("24h", Some(24)),
    ("7d", Some(24 * 7)),
    ("30d", Some(24 * 30)),
    ("all", None),
];

/// The filters of the URL, checked; `Err` names the one that is wrong.
fn filter(
    principal: &Principal,
    query: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<TraceFilter, String> {
    let text = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let range = text("range").unwrap_or("7d");
    let hours = RANGES
        .iter()
        .find(|(name, _)| *name == range)
        .ok_or("`range` must be 24h, 7d, 30d or all")?
        .1;
    Ok(TraceFilter {
        brand_id: principal.brand_id,
        agent_key_id: text("token")
            .map(|t| t.parse().map_err(|_| "`token` must be an agent key id"))
            .transpose()?,
        model: text("model").map(str::to_owned),
        provider: text("provider").map(str::to_owned),
        status: match text("status") {
            None => None,
            Some("success") => Some(TraceStatus::Success),
            Some("error") => Some(TraceStatus::Error),
            Some(_) => return Err("`status` must be success or error".into()),
        },
        from: hours.map(|h| now - Duration::hours(h)),
        to: None,
        min_latency_ms: text("min_latency_ms")
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|ms| i64::try_from(*ms).is_ok())
                    .ok_or("`min_latency_ms` must be a whole number of milliseconds")
            })
            .transpose()?,
        min_cost: text("min_cost_usd")
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .and_then(Money::from_usd)
                    .ok_or("`min_cost_usd` must be a non-negative amount")
            })
            .transpose()?,
        fallback_only: text("fallback").is_some(),
    })
}

/// `before=<time>|<id>`: where the previous page ended.
fn cursor(query: &HashMap<String, String>) -> Option<(DateTime<Utc>, String)> {
    let (at, id) = query.get("before")?.split_once('|')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// The query string again, without `before` (for the CSV link and the next page).
fn query_string(query: &HashMap<String, String>, before: Option<String>) -> String {
    let mut pairs: BTreeMap<&str, String> = query
        .iter()
        .filter(|(k, v)| k.as_str() != "before" && !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    if let Some(before) = before {
        pairs.insert("before", before);
    }
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn query_map(req: &HttpRequest) -> HashMap<String, String> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

/// The brand's agent keys by id, for names in the table and the filter.
async fn agents(state: &AppState, principal: &Principal) -> Vec<(i32, String)> {
    crate::tokens::admin::list(state, principal, true)
        .await
        .map(|tokens| {
            tokens
                .iter()
                .filter_map(|t| {
                    let v = serde_json::to_value(t).ok()?;
                    Some((v["id"].as_i64()? as i32, v["name"].as_str()?.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let Some(principal) = signed.brand() else {
        return HttpResponse::Forbidden().finish();
    };
    let query = query_map(&req);
    let agents = agents(&state, principal).await;
    let filter = match filter(principal, &query, state.clock.now()) {
        Ok(filter) => filter,
        Err(error) => return page(&signed, &query, &agents, Vec::new(), None, Some(error)).await,
    };
    let found = async {
        let totals = crate::usage::trace_totals(&state.db, &filter).await?;
        let rows = crate::usage::trace_page(&state.db, &filter, cursor(&query), PAGE).await?;
        Ok::<_, sea_orm::DbErr>((totals, rows))
    };
    match found.await {
        Ok((totals, rows)) => page(&signed, &query, &agents, rows, Some(totals), None).await,
        Err(err) => crate::error::ApiError::from(err).error_response(),
    }
}

async fn page(
    signed: &Signed,
    query: &HashMap<String, String>,
    agents: &[(i32, String)],
    mut rows: Vec<TraceView>,
    totals: Option<crate::usage::TraceTotals>,
    error: Option<String>,
) -> HttpResponse {
    let older = (rows.len() as u64 > PAGE).then(|| {
        rows.truncate(PAGE as usize);
        let last = rows
            .last()
            .map(|t| format!("{}|{}", t.created_at.to_rfc3339(), t.id));
        query_string(query, last)
    });
    let totals = totals.unwrap_or_default();
    let error_rate = if totals.count == 0 {
        "0.0".to_owned()
    } else {
        format!("{:.1}", totals.errors as f64 * 100.0 / totals.count as f64)
    };
    let names: BTreeMap<String, String> = agents
        .iter()
        .map(|(id, name)| (id.to_string(), name.clone()))
        .collect();
    let tokens: Vec<Value> = agents
        .iter()
        .map(|(id, name)| context! { id => *id, name => name.clone() })
        .collect();
    let filters = context! {
        token => query.get("token").cloned().unwrap_or_default(),
        model => query.get("model").cloned().unwrap_or_default(),
        provider => query.get("provider").cloned().unwrap_or_default(),
        status => query.get("status").cloned().unwrap_or_default(),
        range => query.get("range").cloned().unwrap_or_else(|| "7d".into()),
        min_latency_ms => query.get("min_latency_ms").cloned().unwrap_or_default(),
        min_cost_usd => query.get("min_cost_usd").cloned().unwrap_or_default(),
        fallback => query.contains_key("fallback"),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        status,
        "traces.html",
        context! {
            title => "Traces", section => "traces", signed => super::pages::signed_ctx(signed),
            traces => Value::from(minijinja::value::Serde(&rows)),
            totals => Value::from(minijinja::value::Serde(totals)), error_rate, names, tokens,
            filters, query => query_string(query, None), older, error,
            ranges => RANGES.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        },
    )
}

/// The filtered view as CSV (every matching row, newest first, up to `CSV_ROWS`).
pub async fn csv(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let Some(principal) = signed.brand() else {
        return HttpResponse::Forbidden().finish();
    };
    let query = query_map(&req);
    let filter = match filter(principal, &query, state.clock.now()) {
        Ok(filter) => filter,
        Err(error) => return HttpResponse::BadRequest().body(error),
    };
    let mut out = String::from(
        "id,created_at,agent_key_id,requested_model,model,provider,status,http_status,latency_ms,ttft_ms,prompt_tokens,completion_tokens,cost_usd,fallback_used,attempts\n",
    );
    let (mut before, mut written) = (None, 0);
    loop {
        let rows = match crate::usage::trace_page(&state.db, &filter, before.take(), 1000).await {
            Ok(rows) => rows,
            Err(err) => return crate::error::ApiError::from(err).error_response(),
        };
        let more = rows.len() > 1000;
        for t in rows.iter().take(1000) {
            let cost = serde_json::to_string(&t.cost_usd).unwrap_or_default();
            let fields = [
                t.id.clone(),
                t.created_at.to_rfc3339(),
                t.agent_key_id.map(|i| i.to_string()).unwrap_or_default(),
                t.requested_model.clone(),
                t.model.clone().unwrap_or_default(),
                t.provider.clone().unwrap_or_default(),
                t.status.clone(),
                t.http_status.to_string(),
                t.latency_ms.to_string(),
                t.ttft_ms.map(|v| v.to_string()).unwrap_or_default(),
                t.prompt_tokens.to_string(),
                t.completion_tokens.to_string(),
                cost,
                t.fallback_used.to_string(),
                t.attempts.as_array().map_or(0, Vec::len).to_string(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
            written += 1;
        }
        match rows.get(999) {
            Some(last) if more && written < CSV_ROWS => {
                before = Some((last.created_at, last.id.clone()));
            }
            _ => break,
        }
    }
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"traces.csv\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(out)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break; a leading `=`, `+`, `-`
/// or `@` is escaped so a spreadsheet does not run it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

pub async fn one(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let Some(principal) = signed.brand() else {
        return HttpResponse::Forbidden().finish();
    };
    let trace = match crate::usage::find_trace(&state.db, principal.brand_id, &id).await {
        Ok(Some(trace)) => trace,
        Ok(None) => {
            return super::pages::message(
                StatusCode::NOT_FOUND,
                Some(&signed),
                "Not found",
                "No trace of this brand has that id.",
            );
        }
        Err(err) => return crate::error::ApiError::from(err).error_response(),
    };
    let agent = match trace.agent_key_id {
        Some(key) => agents(&state, principal)
            .await
            .into_iter()
            .find(|(id, _)| *id == key)
            .map(|(_, n)| n),
        None => None,
    };
    let bars = bars(&trace);
    render(
        StatusCode::OK,
        "trace.html",
        context! {
            title => "Trace", section => "traces", signed => super::pages::signed_ctx(&signed),
            t => Value::from(minijinja::value::Serde(&trace)), agent, bars,
        },
    )
}

/// The waterfall: each phase of the gateway, with the upstream phase split into its attempts
/// (one after the other), as percentages of the whole request.
fn bars(trace: &TraceView) -> Vec<Value> {
    let spans = trace.spans.as_array().cloned().unwrap_or_default();
    let attempts = trace.attempts.as_array().cloned().unwrap_or_default();
    let end_of = |s: &serde_json::Value| {
        s["start_ms"].as_f64().unwrap_or(0.0) + s["duration_ms"].as_f64().unwrap_or(0.0)
    };
    let total = spans
        .iter()
        .map(end_of)
        .fold(trace.latency_ms as f64, f64::max)
        .max(1.0);
    let pct = |ms: f64| (ms * 100.0 / total).clamp(0.0, 100.0);
    let bar = |label: String, start: f64, ms: f64, failed: bool, ttft: Option<f64>| {
        context! {
            label, start => start.round() as i64, ms => ms.round() as i64,
            x => format!("{:.2}", pct(start)), w => format!("{:.2}", pct(ms).max(0.4)),
            class => if failed { "failed" } else { "" },
            ttft => ttft.map(|t| format!("{:.2}", pct(t))),
        }
    };
    let mut out = Vec::new();
    for span in &spans {
        let name = span["name"].as_str().unwrap_or("?");
        let start = span["start_ms"].as_f64().unwrap_or(0.0);
        if name != "upstream" || attempts.is_empty() {
            out.push(bar(
                name.to_owned(),
                start,
                span["duration_ms"].as_f64().unwrap_or(0.0),
                false,
                None,
            ));
            continue;
        }
        let mut at = start;
        for (i, attempt) in attempts.iter().enumerate() {
            let ms = attempt["latency_ms"].as_f64().unwrap_or(0.0);
            let failed = attempt["status"].as_str() != Some("success");
            let last = i + 1 == attempts.len();
            let ttft = trace.ttft_ms.filter(|_| last).map(|t| t as f64);
            let label = format!(
                "attempt {}: {}",
                i + 1,
                attempt["provider"].as_str().unwrap_or("?")
            );
            out.push(bar(label, at, ms, failed, ttft));
            at += ms;
        }
    }
    out
}
