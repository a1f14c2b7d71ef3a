//! A fake OAuth 2.0 authorization server on loopback, strict where a real one is: `/authorize`
//! remembers the PKCE challenge and redirects back with a one-time code; `/token` checks the
//! client's Basic credentials, the code, the redirect URI and the S256 verifier, and grants
//! refresh tokens that rotate on use. Refresh grants can be switched to `invalid_grant`, whose
//! description echoes the refresh token it was sent, as careless servers do.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "spidergate-test-client";
pub const CLIENT_SECRET: &str = "oauth-client-secret-5150";

/// One call to `/token`.
#[derive(Debug, Clone)]
pub struct TokenCall {
    pub grant_type: String,
    /// Whether the grant was honoured.
    pub granted: bool,
}

struct IssuedCode {
    challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct Server {
    codes_issued: u32,
    tokens_issued: u32,
    codes: HashMap<String, IssuedCode>,
    live_refresh_tokens: HashSet<String>,
    refuse_refresh: bool,
    calls: Vec<TokenCall>,
    /// Every code and token handed out, for leak checks.
    issued: Vec<String>,
    authorize_queries: Vec<HashMap<String, String>>,
}

#[derive(Clone)]
pub struct FakeOAuth {
    pub url: String,
    server: Arc<Mutex<Server>>,
}

impl FakeOAuth {
    pub async fn start() -> FakeOAuth {
        let server = Arc::new(Mutex::new(Server::default()));
        let data = web::Data::from(server.clone());
        let http = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind fake OAuth server");
        let port = http.addrs()[0].port();
        actix_web::rt::spawn(http.run());
        FakeOAuth {
            url: format!("http://127.0.0.1:{port}"),
            server,
        }
    }

    /// The gateway's client registration at this server.
    pub fn client(&self) -> spidergate::config::OAuthClient {
        spidergate::config::OAuthClient {
            authorize_url: format!("{}/authorize", self.url),
            token_url: format!("{}/token", self.url),
            client_id: CLIENT_ID.into(),
            client_secret: spidergate::secret::Secret::new(CLIENT_SECRET),
            scopes: vec!["models.read".into(), "offline_access".into()],
        }
    }

    /// From now on, refresh grants answer 400 `invalid_grant` (or are honoured again).
    pub fn refuse_refresh(&self, refuse: bool) {
        self.server.lock().expect("server").refuse_refresh = refuse;
    }

    pub fn calls(&self) -> Vec<TokenCall> {
        self.server.lock().expect("server").calls.clone()
    }

    pub fn refresh_calls(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.grant_type == "refresh_token")
            .count()
    }

    /// Every code and token this server handed out.
    pub fn issued(&self) -> Vec<String> {
        self.server.lock().expect("server").issued.clone()
    }

    pub fn authorize_queries(&self) -> Vec<HashMap<String, String>> {
        self.server
            .lock()
            .expect("server")
            .authorize_queries
            .clone()
    }
}

fn oauth_error((status, error, description): Refusal) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(json!({ "error": error, "error_description": description }))
}

async fn authorize(
    query: web::Query<HashMap<String, String>>,
    server: web::Data<Mutex<Server>>,
) -> HttpResponse {
    let q = query.into_inner();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let mut server = server.lock().expect("server");
    server.authorize_queries.push(q.clone());
    if get("response_type") != "code"
        || get("client_id") != CLIENT_ID
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
        || get("state").is_empty()
    {
        return oauth_error((400, "invalid_request", "bad authorize request".into()));
    }
    server.codes_issued += 1;
    let code = format!("code-{:04}", server.codes_issued);
    server.issued.push(code.clone());
    server.codes.insert(
        code.clone(),
        IssuedCode {
            challenge: get("code_challenge"),
            redirect_uri: get("redirect_uri"),
        },
    );
    let back = format!("{}?code={code}&state={}", get("redirect_uri"), get("state"));
    HttpResponse::Found()
        .insert_header(("location", back))
        .finish()
}

async fn token(
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
    server: web::Data<Mutex<Server>>,
) -> HttpResponse {
    let form = form.into_inner();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let mut server = server.lock().expect("server");
    let grant_type = get("grant_type");
    let expected_auth = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let authorised = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == expected_auth.as_bytes());
    let verdict = if !authorised {
        Err((401, "invalid_client", "unknown client".into()))
    } else {
        match grant_type.as_str() {
            "authorization_code" => check_code(&mut server, &get),
            "refresh_token" => check_refresh(&mut server, &get("refresh_token")),
            _ => Err((400, "unsupported_grant_type", grant_type.clone())),
        }
    };
    server.calls.push(TokenCall {
        grant_type,
        granted: verdict.is_ok(),
    });
    match verdict {
        Ok(()) => grant(&mut server),
        Err(refusal) => oauth_error(refusal),
    }
}

/// A refusal: the HTTP status, the OAuth `error` code and its description.
type Refusal = (u16, &'static str, String);

fn check_code(server: &mut Server, get: &dyn Fn(&str) -> String) -> Result<(), Refusal> {
    let issued =
        server
            .codes
            .remove(&get("code"))
            .ok_or((400, "invalid_grant", "unknown code".into()))?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
    if challenge != issued.challenge || get("redirect_uri") != issued.redirect_uri {
        return Err((400, "invalid_grant", "PKCE verification failed".into()));
    }
    Ok(())
}

fn check_refresh(server: &mut Server, refresh_token: &str) -> Result<(), Refusal> {
    if server.refuse_refresh || !server.live_refresh_tokens.remove(refresh_token) {
        let description = format!("refresh token {refresh_token} was revoked");
        return Err((400, "invalid_grant", description));
    }
    Ok(())
}

/// New tokens numbered `0001`, `0002` …; the refresh token replaces the one used.
fn grant(server: &mut Server) -> HttpResponse {
    server.tokens_issued += 1;
    let n = server.tokens_issued;
    let (access_token, refresh_token) = (
        format!("oauth-access-{n:04}"),
        format!("oauth-refresh-{n:04}"),
    );
    server.live_refresh_tokens.insert(refresh_token.clone());
    server
        .issued
        .extend([access_token.clone(), refresh_token.clone()]);
    HttpResponse::Ok().json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": refresh_token,
    }))
}
