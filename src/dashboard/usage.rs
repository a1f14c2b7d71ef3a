//! Usage: requests and cost over time (day or hour buckets) as charts with their data tables, by
//! agent, by model and provider, each agent's budget this month, and a CSV. Time series and the
//! agent breakdown come from the hourly counters (`token_usage_hourly`), never from scanning
//! traces; the model breakdown is one grouped query, as the Keys page's spend is.

use super::pages::{brand_session, render, signed_ctx};
use crate::money::Money;
use crate::state::AppState;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use minijinja::{Value, context};
use std::collections::{BTreeMap, HashMap};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard/gate/usage", web::get().to(show))
        .route("/dashboard/gate/usage.csv", web::get().to(csv));
}

/// The range and bucket size the URL asks for (unknown values fall back to 30 days by day).
fn range(req: &HttpRequest) -> (i64, &'static str) {
    let query: HashMap<String, String> = web::Query::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let days = query
        .get("days")
        .and_then(|d| d.parse::<i64>().ok())
        .filter(|d| [1, 7, 30, 90].contains(d))
        .unwrap_or(30);
    let interval = match query.get("interval").map(String::as_str) {
        Some("hour") if days <= 7 => "hour",
        _ => "day",
    };
    (days, interval)
}

/// Counters summed per bucket start (unix seconds): (requests, cost in nanos), per agent too.
struct Counted {
    by_bucket: BTreeMap<i64, (i64, i64)>,
    by_agent: BTreeMap<i32, (i64, i64)>,
    rows: Vec<(i32, i64, i64, i64)>,
}

async fn counted(
    state: &AppState,
    tokens: &[i32],
    days: i64,
    interval: &str,
) -> Result<Counted, sea_orm::DbErr> {
    let now = state.clock.now().timestamp();
    let bucket = if interval == "hour" { 3600 } else { 86_400 };
    let from = (now - days * 86_400) / bucket * bucket;
    let rows = crate::usage::hourly_counters(&state.db, tokens, from).await?;
    let mut by_bucket = BTreeMap::new();
    let mut at = from;
    while at <= now {
        by_bucket.insert(at, (0, 0));
        at += bucket;
    }
    let mut by_agent: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for &(agent, hour, requests, cost) in &rows {
        let slot = by_bucket.entry(hour / bucket * bucket).or_default();
        slot.0 += requests;
        slot.1 += cost;
        let per = by_agent.entry(agent).or_default();
        per.0 += requests;
        per.1 += cost;
    }
    Ok(Counted {
        by_bucket,
        by_agent,
        rows,
    })
}

fn label(at: i64, interval: &str) -> String {
    let at = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
    if interval == "hour" {
        at.format("%Y-%m-%d %H:00").to_string()
    } else {
        at.format("%Y-%m-%d").to_string()
    }
}

/// A bar chart drawn as SVG rectangles (no script): one bar per bucket, scaled to the largest.
fn chart(title: &str, points: &[(String, f64, String)]) -> Value {
    let max = points
        .iter()
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let width = points.len().max(1) * 10;
    let bars: Vec<Value> = points
        .iter()
        .enumerate()
        .map(|(i, (label, value, shown))| {
            let h = value / max * 100.0;
            context! { x => i * 10 + 1, w => 8, y => format!("{:.2}", 100.0 - h), h => format!("{:.2}", h),
            label => label.clone(), value => shown.clone() }
        })
        .collect();
    context! { title, width, bars }
}

pub async fn show(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let Some(principal) = signed.brand() else {
        return HttpResponse::Forbidden().finish();
    };
    let (days, interval) = range(&req);
    let tokens = match crate::tokens::admin::list(&state, principal, true).await {
        Ok(tokens) => tokens,
        Err(err) => return err.error_response(),
    };
    let tokens: Vec<serde_json::Value> = tokens
        .iter()
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect();
    let ids: Vec<i32> = tokens
        .iter()
        .filter_map(|t| t["id"].as_i64())
        .map(|i| i as i32)
        .collect();
    let name_of = |id: i32| {
        tokens
            .iter()
            .find(|t| t["id"].as_i64() == Some(id.into()))
            .and_then(|t| t["name"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let since = state.clock.now() - chrono::Duration::days(days);
    let found = async {
        let counted = counted(&state, &ids, days, interval).await?;
        let by_model =
            crate::usage::brand_month_by_model(&state.db, principal.brand_id, since).await?;
        Ok::<_, sea_orm::DbErr>((counted, by_model))
    };
    let (counted, by_model) = match found.await {
        Ok(found) => found,
        Err(err) => return crate::error::ApiError::from(err).error_response(),
    };
    let usd = |nanos: i64| Money::from_nanos(nanos).as_usd().to_string();
    let requests: Vec<(String, f64, String)> = counted
        .by_bucket
        .iter()
        .map(|(at, (n, _))| (label(*at, interval), *n as f64, n.to_string()))
        .collect();
    let cost: Vec<(String, f64, String)> = counted
        .by_bucket
        .iter()
        .map(|(at, (_, c))| (label(*at, interval), *c as f64, format!("${}", usd(*c))))
        .collect();
    let total_cost: i64 = counted.by_agent.values().map(|v| v.1).sum();
    let total_requests: i64 = counted.by_agent.values().map(|v| v.0).sum();
    let by_agent: Vec<Value> = counted
        .by_agent
        .iter()
        .map(|(id, (n, c))| {
            let share = if total_cost > 0 { *c as f64 * 100.0 / total_cost as f64 } else { 0.0 };
            context! { id => *id, name => name_of(*id), requests => *n, cost => usd(*c), share => format!("{share:.1}") }
        })
        .collect();
    let catalog = state.catalog.load();
    let mut models: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for rows in by_model.values() {
        for (model, cost, requests) in rows {
            let entry = models.entry(model.clone()).or_default();
            entry.0 += requests;
            entry.1 += cost.nanos();
        }
    }
    let by_model: Vec<Value> = models
        .into_iter()
        .map(|(model, (n, c))| {
            let provider = catalog
                .model(&model)
                .map_or_else(|| "?".to_owned(), |m| m.provider.clone());
            context! { model, provider, requests => n, cost => usd(c) }
        })
        .collect();
    let budgets: Vec<Value> = tokens
        .iter()
        .filter(|t| !t["monthly_budget_usd"].is_null() && t["revoked_at"].is_null())
        .map(|t| {
            context! { name => t["name"].as_str().unwrap_or("?").to_owned(),
            spent => t["spend"]["month_usd"].to_string(), budget => t["monthly_budget_usd"].to_string(),
            mode => t["budget_mode"].as_str().unwrap_or("hard").to_owned() }
        })
        .collect();
    render(
        StatusCode::OK,
        "usage.html",
        context! {
            title => "Usage", section => "usage", signed => signed_ctx(&signed), days, interval,
            total => context! { requests => total_requests, cost => usd(total_cost) },
            charts => vec![chart("Requests", &requests), chart("Cost", &cost)],
            by_agent, by_model, budgets,
        },
    )
}

/// The counters of the range as CSV: one line per agent and hour.
pub async fn csv(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let signed = match brand_session(&state, &req).await {
        Ok(signed) => signed,
        Err(answer) => return answer,
    };
    let Some(principal) = signed.brand() else {
        return HttpResponse::Forbidden().finish();
    };
    let (days, interval) = range(&req);
    let ids: Vec<i32> = match crate::tokens::admin::list(&state, principal, true).await {
        Ok(tokens) => tokens
            .iter()
            .filter_map(|t| serde_json::to_value(t).ok()?["id"].as_i64())
            .map(|i| i as i32)
            .collect(),
        Err(err) => return err.error_response(),
    };
    let counted = match counted(&state, &ids, days, interval).await {
        Ok(counted) => counted,
        Err(err) => return crate::error::ApiError::from(err).error_response(),
    };
    let mut out = String::from("hour_start,agent_key_id,requests,cost_usd\n");
    for (agent, hour, requests, cost) in counted.rows {
        let at = chrono::DateTime::from_timestamp(hour, 0)
            .unwrap_or_default()
            .to_rfc3339();
        out.push_str(&format!(
            "{at},{agent},{requests},{}\n",
            Money::from_nanos(cost).as_usd()
        ));
    }
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"usage.csv\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(out)
}
