//! `/v1/scrape`, `/v1/crawl` (JSON or NDJSON), `/v1/crawl/jobs*` and `/v1/history*` with an
//! `sk_live_` key; `/history*` with the cookie session.

use super::history::{self, CrawlRow};
use super::options::{self, Mode, Options};
use super::run::{self, Event, Request};
use crate::spidergo::accounts::session;
use crate::spidergo::crawl::run::{PageOut, SkippedOut, Summary};
use crate::spidergo::error::{GoError, Quota, parse_body};
use crate::spidergo::keys::{self, Caller};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    scrape,
    crawl,
    create_job,
    job_status,
    cancel_job,
    history_by_key,
    history_item_by_key,
    history_by_session,
    history_item_by_session
))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/scrape", web::post().to(scrape))
        .route("/v1/crawl", web::post().to(crawl))
        .route("/v1/crawl/jobs", web::post().to(create_job))
        .route("/v1/crawl/jobs/{id}", web::get().to(job_status))
        .route("/v1/crawl/jobs/{id}", web::delete().to(cancel_job))
        .route("/v1/history", web::get().to(history_by_key))
        .route("/v1/history/{id}", web::get().to(history_item_by_key))
        .route("/history", web::get().to(history_by_session))
        .route("/history/{id}", web::get().to(history_item_by_session));
}

/// A 200 with the key's quota headers.
fn ok(quota: &Quota, status: actix_web::http::StatusCode, body: Value) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    quota.apply(&mut response);
    response.json(body)
}

/// Authenticates, reads and checks the body, checks the target, then spends one request of the
/// key's day: a bad request or target costs nothing.
async fn admit(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    mode: Mode,
) -> Result<(Caller, Quota, Request), GoError> {
    let caller = keys::authenticate(state, req).await?;
    let checked = async {
        let options: Options = parse_body(body)?;
        let plan = options.plan(&state.spidergo, mode)?;
        options::check_target(&state.spidergo, &plan.seed).await?;
        Ok::<_, GoError>((options, plan))
    };
    let (options, plan) = match checked.await {
        Ok(checked) => checked,
        Err(err) => return Err(err.with_quota(caller.standing(state).await?)),
    };
    let quota = caller.spend(state).await?;
    let request = Request {
        user_id: caller.user_id,
        key_id: Some(caller.key_id.clone()),
        mode,
        options: serde_json::to_string(&options).unwrap_or_default(),
        plan,
    };
    Ok((caller, quota, request))
}

/// The seed's envelope: totals and pages; a crawl adds `StopReason` and `Skipped`.
fn envelope(
    crid: &str,
    user_id: i32,
    summary: &Summary,
    pages: Option<&[PageOut]>,
    crawl: bool,
) -> Value {
    let mut message = json!({
        "CRID": crid,
        "UserID": user_id.to_string(),
        "TotalPages": summary.pages,
        "TotalResponseTimeMS": summary.response_ms,
        "TotalPayloadSize": summary.payload,
    });
    if let Some(pages) = pages {
        message["Pages"] = json!(pages);
    }
    if crawl {
        message["StopReason"] = json!(summary.stop.as_str());
        message["Skipped"] = json!(summary.skipped);
    }
    message
}

#[utoipa::path(post, path = "/v1/scrape", tag = "spidergo",
    request_body = Options,
    responses((status = 200, description = "The envelope with the page", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_key" = [])))]
async fn scrape(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GoError> {
    let (caller, quota, request) = admit(&state, &req, &body, Mode::Scrape).await?;
    let (crid, summary, pages) = run_to_end(&state, request).await?;
    Ok(ok(
        &quota,
        actix_web::http::StatusCode::OK,
        json!({
            "message": envelope(&crid, caller.user_id, &summary, Some(&pages), false)
        }),
    ))
}

#[utoipa::path(post, path = "/v1/crawl", tag = "spidergo",
    request_body = Options,
    responses((status = 200, description = "The envelope with every page (or NDJSON lines)", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_key" = [])))]
async fn crawl(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GoError> {
    let (caller, quota, request) = admit(&state, &req, &body, Mode::Crawl).await?;
    if wants_ndjson(&req) {
        return stream(&state, caller, quota, request).await;
    }
    let (crid, summary, pages) = run_to_end(&state, request).await?;
    Ok(ok(
        &quota,
        actix_web::http::StatusCode::OK,
        json!({
            "message": envelope(&crid, caller.user_id, &summary, Some(&pages), true)
        }),
    ))
}

fn new_crid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn wants_ndjson(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/x-ndjson"))
}

/// Runs a crawl while the caller waits, collecting its pages in completion order.
pub(crate) async fn run_to_end(
    state: &AppState,
    request: Request,
) -> Result<(String, Summary, Vec<PageOut>), GoError> {
    let (_keep, cancel) = watch::channel(false);
    let (crid, events) = run::start(state, new_crid(), request, true, cancel).await?;
    let mut events =
        events.ok_or_else(|| GoError::internal(anyhow::anyhow!("a waiting run has events")))?;
    let mut pages = Vec::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Page(page) => pages.push(*page),
            Event::Done(summary) => return Ok((crid, summary, pages)),
        }
    }
    Err(GoError::internal(anyhow::anyhow!(
        "the crawl task ended without a summary"
    )))
}

/// NDJSON: one page object per line as each finishes, then `{"summary": …}` (the envelope
/// without `Pages`).
async fn stream(
    state: &AppState,
    caller: Caller,
    quota: Quota,
    request: Request,
) -> Result<HttpResponse, GoError> {
    let (keep, cancel) = watch::channel(false);
    let (crid, events) = run::start(state, new_crid(), request, true, cancel).await?;
    let events =
        events.ok_or_else(|| GoError::internal(anyhow::anyhow!("a waiting run has events")))?;
    let user_id = caller.user_id;
    let lines = futures_util::stream::unfold((events, keep), move |(mut events, keep)| {
        let crid = crid.clone();
        async move {
            let line = match events.recv().await? {
                Event::Page(page) => serde_json::to_vec(&page),
                Event::Done(summary) => serde_json::to_vec(
                    &json!({ "summary": envelope(&crid, user_id, &summary, None, true) }),
                ),
            };
            let mut line = line.unwrap_or_default();
            line.push(b'\n');
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(line)),
                (events, keep),
            ))
        }
    });
    let mut response = HttpResponse::Ok();
    quota.apply(&mut response);
    Ok(response
        .content_type("application/x-ndjson")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(lines))
}

#[utoipa::path(post, path = "/v1/crawl/jobs", tag = "spidergo",
    request_body = Options,
    responses((status = 202, description = "The job started", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_key" = [])))]
async fn create_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GoError> {
    let (_, quota, request) = admit(&state, &req, &body, Mode::Job).await?;
    // The cancel signal is registered before the task starts, so it is there to remove when
    // the task ends, however soon.
    let (tx, cancel) = watch::channel(false);
    let crid = new_crid();
    state.spidergo.jobs.adopt(&crid, tx);
    if let Err(err) = run::start(&state, crid.clone(), request, false, cancel).await {
        state.spidergo.jobs.remove(&crid);
        return Err(err);
    }
    Ok(ok(
        &quota,
        actix_web::http::StatusCode::ACCEPTED,
        json!({
            "message": { "JobID": crid, "Status": history::RUNNING }
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    cursor: Option<i32>,
    limit: Option<u64>,
}

const PAGE_LIMIT: u64 = 50;
const PAGE_LIMIT_MAX: u64 = 200;
/// A running job unstamped this long has lost its process.
pub const STALE_SECS: i64 = 15;

/// The query string as `T`, or a 400 in SpiderGo's envelope.
fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, GoError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|err| GoError::bad_request(format!("invalid query: {err}")))
}

fn page_limit(limit: Option<u64>) -> Result<u64, GoError> {
    let limit = limit.unwrap_or(PAGE_LIMIT);
    if (1..=PAGE_LIMIT_MAX).contains(&limit) {
        Ok(limit)
    } else {
        Err(GoError::bad_request(format!(
            "`limit` must be between 1 and {PAGE_LIMIT_MAX}"
        )))
    }
}

/// A crawl row as the API shows it (without pages).
fn summary_of(row: &CrawlRow) -> Value {
    let skipped: Option<SkippedOut> = row
        .skipped
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    json!({
        "CRID": row.id,
        "UserID": row.user_id.to_string(),
        "Kind": row.kind,
        "URL": row.url,
        "Status": row.status,
        "TotalPages": row.total_pages,
        "TotalResponseTimeMS": row.total_response_ms,
        "TotalPayloadSize": row.total_payload,
        "StopReason": row.stop_reason,
        "Skipped": skipped,
        "CreatedAt": row.created_at,
        "FinishedAt": row.finished_at,
    })
}

/// The user's crawl `id` with its status brought up to date (a running job whose process died
/// is `failed: interrupted`), or 404.
async fn owned(state: &AppState, user_id: i32, id: &str) -> Result<CrawlRow, GoError> {
    let not_found = || GoError::not_found("no crawl with this id");
    let row = history::get(&state.db, user_id, id)
        .await?
        .ok_or_else(not_found)?;
    let stale_before = state.clock.now() - chrono::Duration::seconds(STALE_SECS);
    let running = row.status == history::RUNNING || row.status == history::CANCELLING;
    if running && row.heartbeat_at.is_some_and(|at| at < stale_before) {
        let stale = history::Interrupted::StaleBefore(stale_before);
        history::interrupt(&state.db, stale, state.clock.now()).await?;
        return history::get(&state.db, user_id, id)
            .await?
            .ok_or_else(not_found);
    }
    Ok(row)
}

/// A crawl's summary and its pages after `cursor`, with the cursor of the next page of pages.
async fn with_pages(state: &AppState, row: &CrawlRow, query: PageQuery) -> Result<Value, GoError> {
    let limit = page_limit(query.limit)?;
    let pages = history::pages(&state.db, &row.id, query.cursor.unwrap_or(-1), limit).await?;
    let next = (pages.len() as u64 == limit)
        .then(|| pages.last().map(|(seq, _)| *seq))
        .flatten();
    let mut message = summary_of(row);
    message["JobID"] = json!(row.id);
    message["Pages"] = json!(pages.into_iter().map(|(_, page)| page).collect::<Vec<_>>());
    message["NextCursor"] = json!(next);
    Ok(message)
}

#[utoipa::path(get, path = "/v1/crawl/jobs/{id}", tag = "spidergo",
    params(("id" = String, Path, description = "The CRID"), PageQuery),
    responses((status = 200, description = "The job and its pages after the cursor", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_key" = [])))]
async fn job_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, GoError> {
    crawl_by_key(&state, &req, &id).await
}

/// One of the key's user's crawls with its pages after the cursor (a job's status, or a history
/// entry: the same row).
async fn crawl_by_key(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
) -> Result<HttpResponse, GoError> {
    let (caller, quota) = reading(state, req).await?;
    let found = async {
        let row = owned(state, caller.user_id, id).await?;
        with_pages(state, &row, query(req)?).await
    };
    let message = found.await.map_err(|e| e.with_quota(quota))?;
    Ok(ok(
        &quota,
        actix_web::http::StatusCode::OK,
        json!({ "message": message }),
    ))
}

/// A read with a key (status, history): the caller and where its day stands, for the headers.
async fn reading(state: &AppState, req: &HttpRequest) -> Result<(Caller, Quota), GoError> {
    let caller = keys::authenticate(state, req).await?;
    let quota = caller.standing(state).await?;
    Ok((caller, quota))
}

/// Stops a running job (here at once; on another replica at its next heartbeat).
#[utoipa::path(delete, path = "/v1/crawl/jobs/{id}", tag = "spidergo",
    params(("id" = String, Path, description = "The CRID")),
    responses((status = 202, description = "The job is stopping", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_key" = [])))]
async fn cancel_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, GoError> {
    let (caller, quota) = reading(&state, &req).await?;
    let row = owned(&state, caller.user_id, &id)
        .await
        .map_err(|e| e.with_quota(quota))?;
    if row.status != history::RUNNING && row.status != history::CANCELLING {
        return Err(
            GoError::conflict(format!("the job is already {}", row.status)).with_quota(quota),
        );
    }
    history::request_cancel(&state.db, &row.id).await?;
    // Here at once; on another replica at its next heartbeat.
    state.spidergo.jobs.cancel(&row.id);
    Ok(ok(
        &quota,
        actix_web::http::StatusCode::ACCEPTED,
        json!({
            "message": { "JobID": row.id, "Status": history::CANCELLING }
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    cursor: Option<String>,
    limit: Option<u64>,
}

/// The user's crawls newest first; `NextCursor` is the CRID to continue after.
async fn history_page(
    state: &AppState,
    user_id: i32,
    query: HistoryQuery,
) -> Result<Value, GoError> {
    let limit = page_limit(query.limit)?;
    let after = match &query.cursor {
        Some(crid) => Some(
            history::get(&state.db, user_id, crid)
                .await?
                .ok_or_else(|| GoError::bad_request("`cursor` is not one of your crawls"))?,
        ),
        None => None,
    };
    let rows = history::list(&state.db, user_id, after.as_ref(), limit).await?;
    let next = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(
        json!({ "message": { "History": rows.iter().map(summary_of).collect::<Vec<_>>(), "NextCursor": next } }),
    )
}

#[utoipa::path(get, path = "/v1/history", tag = "spidergo",
    params(HistoryQuery),
    responses((status = 200, description = "Crawls newest first", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_key" = [])))]
async fn history_by_key(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, GoError> {
    let (caller, quota) = reading(&state, &req).await?;
    let body = history_page(&state, caller.user_id, query(&req)?)
        .await
        .map_err(|e| e.with_quota(quota))?;
    Ok(ok(&quota, actix_web::http::StatusCode::OK, body))
}

#[utoipa::path(get, path = "/v1/history/{id}", tag = "spidergo",
    params(("id" = String, Path, description = "The CRID"), PageQuery),
    responses((status = 200, description = "One crawl and its pages", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_key" = [])))]
async fn history_item_by_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, GoError> {
    crawl_by_key(&state, &req, &id).await
}

#[utoipa::path(get, path = "/history", tag = "spidergo",
    params(HistoryQuery),
    responses((status = 200, description = "Crawls newest first", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_session" = [])))]
async fn history_by_session(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, GoError> {
    let who = session::signed_in(&state, &req).await?;
    Ok(HttpResponse::Ok().json(history_page(&state, who.user.id, query(&req)?).await?))
}

#[utoipa::path(get, path = "/history/{id}", tag = "spidergo",
    params(("id" = String, Path, description = "The CRID"), PageQuery),
    responses((status = 200, description = "One crawl and its pages", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_session" = [])))]
async fn history_item_by_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, GoError> {
    let who = session::signed_in(&state, &req).await?;
    let row = owned(&state, who.user.id, &id).await?;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "message": with_pages(&state, &row, query(&req)?).await? })),
    )
}
