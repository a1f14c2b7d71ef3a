//! `/auth/*`: register, sign in and out, who am I, refresh, verify the email, reset the password.

use super::session::{self, REFRESH_COOKIE, Rotated};
use super::store::{self, PublicUser, Purpose};
use crate::auth::Digest;
use crate::invites::store::{Mail, queued};
use crate::spidergo::error::{GoError, parse_body};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use sea_orm::{ActiveModelTrait, TransactionTrait};
use serde::Deserialize;
use serde_json::json;

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register,
    login,
    me,
    refresh,
    logout,
    verify_email,
    resend_verification,
    forgot_password,
    reset_password
))]
pub struct Api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/me", web::get().to(me))
        .route("/auth/refresh", web::get().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/verify-email", web::post().to(verify_email))
        .route(
            "/auth/verify-email/resend",
            web::post().to(resend_verification),
        )
        .route("/auth/password/forgot", web::post().to(forgot_password))
        .route("/auth/password/reset", web::post().to(reset_password));
}

/// The shortest and longest password accepted (argon2 hashes any length; a bound keeps one
/// request from buying a lot of CPU).
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=256;
const NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=100;
/// One message for an unknown email and a wrong password: the answer says nothing about which.
const BAD_CREDENTIALS: &str = "invalid email or password";

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Register {
    name: String,
    email: String,
    password: String,
}

/// Creates an account (and queues the code that verifies its email): the API's register and
/// the dashboard's sign-up.
pub(crate) async fn create_account(
    state: &AppState,
    name: &str,
    email: &str,
    password: String,
) -> Result<store::User, GoError> {
    let name = checked_name(name)?;
    let email = normalized_email(email)?;
    check_password(&password)?;
    let hash = state
        .spidergo
        .passwords
        .hash(password)
        .await
        .map_err(GoError::internal)?;
    let now = state.clock.now();
    let Some(user) = store::create_user(&state.db, name, &email, hash, now).await? else {
        return Err(GoError::conflict(
            "an account with this email already exists",
        ));
    };
    send_code(state, &user, Purpose::VerifyEmail).await?;
    Ok(user)
}

/// The user whose email and password these are, or 401 with one message for an unknown email
/// and a wrong password.
pub(crate) async fn check_login(
    state: &AppState,
    email: &str,
    password: String,
) -> Result<store::User, GoError> {
    let email = email.trim().to_lowercase();
    let user = store::user_by_email(&state.db, &email).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let matched = state
        .spidergo
        .passwords
        .verify(password, stored)
        .await
        .map_err(GoError::internal)?;
    user.filter(|_| matched)
        .ok_or_else(|| GoError::unauthorized(BAD_CREDENTIALS))
}

/// A user's or a key's name, trimmed: 1 to 100 characters, none of them control characters.
pub(crate) fn checked_name(name: &str) -> Result<&str, GoError> {
    let name = name.trim();
    if NAME_CHARS.contains(&name.chars().count()) && !name.chars().any(char::is_control) {
        Ok(name)
    } else {
        Err(GoError::bad_request(
            "`name` must be 1 to 100 characters, none of them control characters",
        ))
    }
}

fn check_password(password: &str) -> Result<(), GoError> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(GoError::bad_request(format!(
            "`password` must be {} to {} characters",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        )))
    }
}

fn normalized_email(email: &str) -> Result<String, GoError> {
    let email = email.trim().to_lowercase();
    if crate::brands::manage::is_plausible_email(&email) && !email.chars().any(char::is_control) {
        Ok(email)
    } else {
        Err(GoError::bad_request("`email` is not an email address"))
    }
}

#[utoipa::path(post, path = "/auth/register", tag = "spidergo-accounts",
    request_body = Register,
    responses((status = 201, description = "The account (sign in next)", body = serde_json::Value), crate::spidergo::openapi::GoFailed))]
async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let form: Register = parse_body(&body)?;
    let user = create_account(&state, &form.name, &form.email, form.password).await?;
    Ok(HttpResponse::Created().json(json!({
        "message": "Account created. A code to verify your email is on its way.",
        "user": PublicUser::from(&user),
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

#[utoipa::path(post, path = "/auth/login", tag = "spidergo-accounts",
    request_body = Login,
    responses((status = 200, description = "Signed in: the cookies are set", body = serde_json::Value), crate::spidergo::openapi::GoFailed))]
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let form: Login = parse_body(&body)?;
    let user = check_login(&state, &form.email, form.password).await?;
    let (pair, _) = session::mint(&state, user.id, None).await?;
    let mut response = HttpResponse::Ok();
    for cookie in session::cookies(&state, &pair) {
        response.cookie(cookie);
    }
    Ok(response.json(json!({ "message": "Signed in", "user": PublicUser::from(&user) })))
}

#[utoipa::path(get, path = "/auth/me", tag = "spidergo-accounts",
    responses((status = 200, description = "The signed-in user", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_session" = [])))]
async fn me(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, GoError> {
    let who = session::signed_in(&state, &req).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": PublicUser::from(&who.user) })))
}

#[utoipa::path(get, path = "/auth/refresh", tag = "spidergo-accounts",
    responses((status = 200, description = "A new cookie pair; the old refresh token is spent", body = serde_json::Value), crate::spidergo::openapi::GoFailed))]
async fn refresh(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let Some(cookie) = req.cookie(REFRESH_COOKIE) else {
        return Err(GoError::unauthorized("no refresh token: sign in again"));
    };
    match session::rotate(&state, cookie.value()).await? {
        Rotated::Fresh { user_id, pair } => {
            let user = store::user_by_id(&state.db, user_id)
                .await?
                .ok_or_else(|| GoError::unauthorized("sign in again"))?;
            let mut response = HttpResponse::Ok();
            for cookie in session::cookies(&state, &pair) {
                response.cookie(cookie);
            }
            Ok(response
                .json(json!({ "message": "Session refreshed", "user": PublicUser::from(&user) })))
        }
        Rotated::Invalid => Err(GoError::unauthorized(
            "the refresh token is not valid: sign in again",
        )),
        Rotated::Reused => Err(GoError::unauthorized(
            "this refresh token was already used; every session it belonged to is signed out",
        )),
    }
}

/// Ends the session family of whichever token the request carries; always clears the cookies.
#[utoipa::path(post, path = "/auth/logout", tag = "spidergo-accounts",
    responses((status = 200, description = "Signed out; the cookies are cleared", body = serde_json::Value), crate::spidergo::openapi::GoFailed))]
async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let now = state.clock.now();
    let presented = [
        (session::ACCESS_COOKIE, store::TokenKind::Access),
        (REFRESH_COOKIE, store::TokenKind::Refresh),
    ];
    for (name, kind) in presented {
        let Some(cookie) = req.cookie(name) else {
            continue;
        };
        if let Some(row) =
            store::live_token(&state.db, Digest::of(cookie.value()), kind, now).await?
        {
            store::revoke_family(&state.db, &row.family, now).await?;
        }
    }
    let mut response = HttpResponse::Ok();
    for cookie in session::cleared(&state) {
        response.cookie(cookie);
    }
    Ok(response.json(json!({ "message": "Signed out" })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Code {
    code: String,
}

#[utoipa::path(post, path = "/auth/verify-email", tag = "spidergo-accounts",
    request_body = Code,
    responses((status = 200, description = "The email is verified", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_session" = [])))]
async fn verify_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let who = session::signed_in(&state, &req).await?;
    let form: Code = parse_body(&body)?;
    let now = state.clock.now();
    let digest = code_digest(who.user.id, &form.code);
    if !store::redeem_code(&state.db, who.user.id, Purpose::VerifyEmail, digest, now).await? {
        return Err(GoError::bad_request(
            "the code is wrong, used or expired: ask for a new one",
        ));
    }
    store::mark_verified(&state.db, who.user.id, now).await?;
    Ok(HttpResponse::Ok().json(json!({ "message": "Email verified" })))
}

#[utoipa::path(post, path = "/auth/verify-email/resend", tag = "spidergo-accounts",
    responses((status = 202, description = "A new code is queued", body = serde_json::Value), crate::spidergo::openapi::GoFailed),
    security(("spidergo_session" = [])))]
async fn resend_verification(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let who = session::signed_in(&state, &req).await?;
    if who.user.email_verified_at.is_some() {
        return Err(GoError::conflict("this email is already verified"));
    }
    send_code(&state, &who.user, Purpose::VerifyEmail).await?;
    Ok(HttpResponse::Accepted().json(json!({ "message": "A new code is on its way" })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Forgot {
    email: String,
}

/// Always the same answer, so it cannot be used to learn which emails have accounts.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "spidergo-accounts",
    request_body = Forgot,
    responses((status = 202, description = "A code is queued if the account exists", body = serde_json::Value), crate::spidergo::openapi::GoFailed))]
async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let form: Forgot = parse_body(&body)?;
    let email = form.email.trim().to_lowercase();
    if let Some(user) = store::user_by_email(&state.db, &email).await? {
        send_code(&state, &user, Purpose::ResetPassword).await?;
    }
    Ok(HttpResponse::Accepted().json(json!({
        "message": "If an account uses this email, a reset code is on its way"
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Reset {
    email: String,
    code: String,
    password: String,
}

/// Sets a new password with an emailed code and signs every session of the account out.
#[utoipa::path(post, path = "/auth/password/reset", tag = "spidergo-accounts",
    request_body = Reset,
    responses((status = 200, description = "The password is changed and every session ended", body = serde_json::Value), crate::spidergo::openapi::GoFailed))]
async fn reset_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GoError> {
    session::same_origin(&state, &req)?;
    let form: Reset = parse_body(&body)?;
    check_password(&form.password)?;
    let wrong = || GoError::bad_request("the email or code is wrong, used or expired");
    let email = form.email.trim().to_lowercase();
    let user = store::user_by_email(&state.db, &email)
        .await?
        .ok_or_else(wrong)?;
    let hash = state
        .spidergo
        .passwords
        .hash(form.password)
        .await
        .map_err(GoError::internal)?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    if !store::redeem_code(
        &txn,
        user.id,
        Purpose::ResetPassword,
        code_digest(user.id, &form.code),
        now,
    )
    .await?
    {
        txn.commit().await?;
        return Err(wrong());
    }
    store::set_password(&txn, user.id, hash).await?;
    store::revoke_user(&txn, user.id, now).await?;
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "message": "Password changed; sign in again" })))
}

/// A code is bound to its user, so the same digits mean nothing for another account.
fn code_digest(user_id: i32, code: &str) -> Digest {
    Digest::of(&format!("{user_id}:{}", code.trim()))
}

/// Queues an email with a fresh 8-digit code, in one transaction with the code (both or neither).
async fn send_code(state: &AppState, user: &store::User, purpose: Purpose) -> Result<(), GoError> {
    let code = eight_digits().map_err(GoError::internal)?;
    let ttl = state.spidergo.config.code_ttl_mins;
    let now = state.clock.now();
    let mail = code_mail(user, purpose, &code, ttl);
    let txn = state.db.begin().await?;
    let expires = now + chrono::Duration::minutes(ttl as i64);
    store::insert_code(
        &txn,
        user.id,
        purpose,
        code_digest(user.id, &code),
        expires,
        now,
    )
    .await?;
    queued(mail, "email", now).insert(&txn).await?;
    txn.commit().await?;
    state.mailer.wake();
    Ok(())
}

fn eight_digits() -> anyhow::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|err| anyhow::anyhow!("OS randomness unavailable: {err}"))?;
    Ok(format!("{:08}", u64::from_le_bytes(bytes) % 100_000_000))
}

fn code_mail(user: &store::User, purpose: Purpose, code: &str, ttl_mins: u64) -> Mail {
    let (subject, what) = match purpose {
        Purpose::VerifyEmail => ("Verify your SpiderGo email", "verify your email address"),
        Purpose::ResetPassword => ("Reset your SpiderGo password", "choose a new password"),
    };
    let text = format!(
        "Hello,\n\nYour code to {what} is {code}. It works once, for {ttl_mins} minutes.\n\nIf you did not ask for it, ignore this email.\n"
    );
    let html = format!(
        "<p>Hello,</p><p>Your code to {what} is <strong>{code}</strong>. It works once, for {ttl_mins} minutes.</p><p>If you did not ask for it, ignore this email.</p>"
    );
    Mail {
        to: user.email.clone(),
        subject: subject.to_owned(),
        text,
        html,
    }
}
