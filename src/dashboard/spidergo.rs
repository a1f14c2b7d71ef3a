//! SpiderGo's pages (issue #13, after SpiderGo): sign up and sign in with SpiderGo's own cookie
//! session, API keys (the new one shown once, revoke), a playground that runs a scrape or crawl
//! with one of the user's keys (counted against its day, with the same fetch safety as the API),
//! and the history. They call SpiderGo's functions directly, never its API over HTTP.
//!
//! Forms carry a token derived from the session's access token (so nothing more is stored) and
//! must come from our own pages.

use super::pages::{message, render, see_other};
use crate::auth::Digest;
use crate::spidergo::accounts::{http as accounts, session, store as users};
use crate::spidergo::api::{history, http as api, options, run};
use crate::spidergo::error::GoError;
use crate::spidergo::keys::{self, store as key_store};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::HashMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard/spidergo", web::get().to(home))
        .route("/dashboard/spidergo/register", web::post().to(register))
        .route("/dashboard/spidergo/login", web::post().to(login))
        .route("/dashboard/spidergo/logout", web::post().to(logout))
        .route("/dashboard/spidergo/keys", web::post().to(create_key))
        .route(
            "/dashboard/spidergo/keys/{id}/revoke",
            web::post().to(revoke_key),
        )
        .route("/dashboard/spidergo/run", web::post().to(playground));
}

/// The form token of a SpiderGo session: bound to its access token, so a page rendered for one
/// session is no good for another.
fn form_token(req: &HttpRequest) -> Option<String> {
    let access = req.cookie(session::ACCESS_COOKIE)?;
    Some(Digest::of(&format!("dashboard-form:{}", access.value())).to_hex()[..32].to_owned())
}

fn form_is_ours(state: &AppState, req: &HttpRequest, token: Option<&str>) -> bool {
    crate::auth::same_site(req, &state.config.server.public_url)
        && form_token(req).is_some_and(|t| Some(t.as_str()) == token)
}

fn failed(err: &GoError) -> HttpResponse {
    if err.status().is_server_error() {
        return err.error_response();
    }
    message(err.status(), None, "SpiderGo", &err.to_string())
}

fn sign_in_page(status: StatusCode, error: Option<String>) -> HttpResponse {
    render(
        status,
        "go_signin.html",
        context! { title => "SpiderGo", error },
    )
}

/// What a signed-in page shows beyond the keys and history.
#[derive(Default)]
struct Extra {
    secret: Option<String>,
    pages: Option<serde_json::Value>,
    error: Option<String>,
}

async fn home_page(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    extra: Extra,
) -> HttpResponse {
    let who = match session::signed_in(state, req).await {
        Ok(who) => who,
        Err(_) => return sign_in_page(StatusCode::OK, extra.error),
    };
    let listed = async {
        let keys = key_store::active(&state.db, who.user.id).await?;
        let history = history::list(&state.db, who.user.id, None, 20).await?;
        Ok::<_, sea_orm::DbErr>((keys, history))
    };
    let (keys, history) = match listed.await {
        Ok(listed) => listed,
        Err(err) => return GoError::from(err).error_response(),
    };
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            context! { id => k.id, name => k.name, last4 => k.last4, daily_limit => k.daily_limit,
            created_at => k.created_at.to_rfc3339() }
        })
        .collect();
    let history: Vec<Value> = history
        .into_iter()
        .map(|h| {
            context! { created_at => h.created_at.to_rfc3339(), kind => h.kind, url => h.url,
            status => h.status, total_pages => h.total_pages }
        })
        .collect();
    render(
        status,
        "go_home.html",
        context! {
            title => "SpiderGo", user => Value::from(minijinja::value::Serde(users::PublicUser::from(&who.user))),
            keys, history, go_csrf => form_token(req), secret => extra.secret,
            pages => extra.pages.map(|p| Value::from(minijinja::value::Serde(p))), error => extra.error,
        },
    )
}

pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    home_page(&state, &req, StatusCode::OK, Extra::default()).await
}

/// Signs `user` in: the session cookies, then the SpiderGo page.
async fn signed_in_as(state: &AppState, user: &users::User) -> HttpResponse {
    match session::mint(state, user.id, None).await {
        Ok((pair, _)) => {
            let mut response = see_other("/dashboard/spidergo");
            for cookie in session::cookies(state, &pair) {
                let _ = response.add_cookie(&cookie);
            }
            response
        }
        Err(err) => failed(&err),
    }
}

#[derive(Deserialize)]
pub struct SignUp {
    name: String,
    email: String,
    password: String,
}

pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SignUp>,
) -> HttpResponse {
    if !crate::auth::same_site(&req, &state.config.server.public_url) {
        return sign_in_page(
            StatusCode::FORBIDDEN,
            Some("Refused: send the form from this site.".into()),
        );
    }
    let form = form.into_inner();
    match accounts::create_account(&state, &form.name, &form.email, form.password).await {
        Ok(user) => signed_in_as(&state, &user).await,
        Err(err) if err.status().is_client_error() => {
            sign_in_page(err.status(), Some(err.to_string()))
        }
        Err(err) => failed(&err),
    }
}

#[derive(Deserialize)]
pub struct SignIn {
    email: String,
    password: String,
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SignIn>,
) -> HttpResponse {
    if !crate::auth::same_site(&req, &state.config.server.public_url) {
        return sign_in_page(
            StatusCode::FORBIDDEN,
            Some("Refused: send the form from this site.".into()),
        );
    }
    let form = form.into_inner();
    match accounts::check_login(&state, &form.email, form.password).await {
        Ok(user) => signed_in_as(&state, &user).await,
        Err(err) if err.status().is_client_error() => {
            sign_in_page(err.status(), Some(err.to_string()))
        }
        Err(err) => failed(&err),
    }
}

type Form = web::Form<HashMap<String, String>>;

fn csrf_of(form: &Form) -> Option<&str> {
    form.get("_csrf").map(String::as_str)
}

pub async fn logout(state: web::Data<AppState>, req: HttpRequest, form: Form) -> HttpResponse {
    if !form_is_ours(&state, &req, csrf_of(&form)) {
        return super::pages::refused(None);
    }
    if let Ok(who) = session::signed_in(&state, &req).await
        && let Err(err) = users::revoke_family(&state.db, &who.family, state.clock.now()).await
    {
        return GoError::from(err).error_response();
    }
    let mut response = see_other("/dashboard/spidergo");
    for cookie in session::cleared(&state) {
        let _ = response.add_cookie(&cookie);
    }
    response
}

/// The signed-in user of a form post, or the page to answer instead.
async fn poster(
    state: &AppState,
    req: &HttpRequest,
    form: &Form,
) -> Result<session::SignedIn, HttpResponse> {
    let who = match session::signed_in(state, req).await {
        Ok(who) => who,
        Err(_) => return Err(see_other("/dashboard/spidergo")),
    };
    if !form_is_ours(state, req, csrf_of(form)) {
        return Err(super::pages::refused(None));
    }
    Ok(who)
}

pub async fn create_key(state: web::Data<AppState>, req: HttpRequest, form: Form) -> HttpResponse {
    let who = match poster(&state, &req, &form).await {
        Ok(who) => who,
        Err(answer) => return answer,
    };
    let name = form.get("name").map(String::as_str).unwrap_or_default();
    let created = async {
        let name = accounts::checked_name(name)?;
        let go = &state.spidergo.config;
        let secret = keys::new_secret().map_err(GoError::internal)?;
        let limits = (go.max_active_keys, go.daily_limit);
        match key_store::create(
            &state.db,
            who.user.id,
            name,
            &secret,
            limits,
            state.clock.now(),
        )
        .await?
        {
            key_store::Created::Key(_) => Ok(secret),
            key_store::Created::TooMany => Err(GoError::conflict(format!(
                "you can have at most {} active API keys: revoke one first",
                go.max_active_keys
            ))),
        }
    };
    match created.await {
        Ok(secret) => {
            let extra = Extra {
                secret: Some(secret),
                ..Extra::default()
            };
            home_page(&state, &req, StatusCode::CREATED, extra).await
        }
        Err(err) if err.status().is_client_error() => {
            let extra = Extra {
                error: Some(err.to_string()),
                ..Extra::default()
            };
            home_page(&state, &req, err.status(), extra).await
        }
        Err(err) => failed(&err),
    }
}

pub async fn revoke_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: Form,
) -> HttpResponse {
    let who = match poster(&state, &req, &form).await {
        Ok(who) => who,
        Err(answer) => return answer,
    };
    match key_store::revoke(&state.db, who.user.id, &id, state.clock.now()).await {
        Ok(_) => see_other("/dashboard/spidergo"),
        Err(err) => GoError::from(err).error_response(),
    }
}

/// Runs a scrape or crawl with one of the user's keys, as `/v1/*` would with that key.
pub async fn playground(state: web::Data<AppState>, req: HttpRequest, form: Form) -> HttpResponse {
    let who = match poster(&state, &req, &form).await {
        Ok(who) => who,
        Err(answer) => return answer,
    };
    let ran = async {
        let key_id = form.get("key_id").map(String::as_str).unwrap_or_default();
        let key = key_store::active_by_id(&state.db, who.user.id, key_id)
            .await?
            .ok_or_else(|| GoError::bad_request("choose one of your active API keys"))?;
        let mode = match form.get("mode").map(String::as_str) {
            Some("crawl") => options::Mode::Crawl,
            _ => options::Mode::Scrape,
        };
        let mut body = serde_json::json!({ "url": form.get("url").cloned().unwrap_or_default() });
        if mode == options::Mode::Crawl
            && let Some(pages) = form
                .get("max_pages")
                .and_then(|p| p.trim().parse::<u64>().ok())
        {
            body["max_pages"] = pages.into();
        }
        let options: options::Options = serde_json::from_value(body.clone())
            .map_err(|err| GoError::bad_request(err.to_string()))?;
        let plan = options.plan(&state.spidergo, mode)?;
        options::check_target(&state.spidergo, &plan.seed).await?;
        let caller = keys::Caller {
            key_id: key.id.clone(),
            user_id: who.user.id,
            daily_limit: u32::try_from(key.daily_limit).unwrap_or(0),
        };
        caller.spend(&state).await?;
        let request = run::Request {
            user_id: who.user.id,
            key_id: Some(key.id),
            mode,
            options: body.to_string(),
            plan,
        };
        let (_, _, pages) = api::run_to_end(&state, request).await?;
        Ok::<_, GoError>(pages)
    };
    match ran.await {
        Ok(pages) => {
            let extra = Extra {
                pages: Some(serde_json::json!(pages)),
                ..Extra::default()
            };
            home_page(&state, &req, StatusCode::OK, extra).await
        }
        Err(err) if err.status().is_client_error() => {
            let extra = Extra {
                error: Some(err.to_string()),
                ..Extra::default()
            };
            home_page(&state, &req, err.status(), extra).await
        }
        Err(err) => failed(&err),
    }
}
