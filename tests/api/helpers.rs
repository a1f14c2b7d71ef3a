//! `TestApp`: the real server on a random port against a fresh database, with one method per call.

use crate::fake_provider::FakeProvider;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use spidergate::config::Config;
use spidergate::state::AppState;

/// Where the test's database lives; removed when the test ends, even on panic.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres(PostgresDb),
    /// Another test app's database (a second replica): its owner removes it.
    SharedWith(String),
}

/// The backend this run tests: `SPIDERGATE_TEST_DATABASE=postgres` (or `sqlite`, the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_this_run() -> Backend {
        match std::env::var("SPIDERGATE_TEST_DATABASE").as_deref() {
            Ok("postgres") | Ok("postgresql") => Backend::Postgres,
            Ok("sqlite") | Ok("") | Err(_) => Backend::Sqlite,
            Ok(other) => panic!("SPIDERGATE_TEST_DATABASE={other}: expected sqlite or postgres"),
        }
    }
}

impl TestDb {
    pub fn sqlite() -> Self {
        TestDb::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh, empty database on this run's backend (see [`Backend::of_this_run`]).
    pub async fn fresh() -> Self {
        match Backend::of_this_run() {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::Postgres(PostgresDb::create().await),
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => {
                format!("sqlite://{}/spidergate.db?mode=rwc", dir.path().display())
            }
            TestDb::Postgres(db) => db.url.clone(),
            TestDb::SharedWith(url) => url.clone(),
        }
    }
}

/// A uniquely named database on the local PostgreSQL server, dropped at the end of the test.
pub struct PostgresDb {
    name: String,
    url: String,
}

/// The maintenance database tests create their own databases from.
fn postgres_admin_url() -> String {
    std::env::var("SPIDERGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl PostgresDb {
    pub async fn create() -> Self {
        use sea_orm::ConnectionTrait;
        let name = format!("spidergate_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(postgres_admin_url())
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 is reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let base = postgres_admin_url();
        let url = format!(
            "{}/{name}",
            &base[..base.rfind('/').expect("url has a database")]
        );
        PostgresDb { name, url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        // Drop runs outside async context: use a private runtime on its own thread.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                use sea_orm::ConnectionTrait;
                let admin = sea_orm::Database::connect(postgres_admin_url()).await?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                admin.close().await
            })
        });
        if let Ok(Err(err)) = dropped.join() {
            eprintln!("could not drop test database: {err}");
        }
    }
}

pub struct TestApp {
    pub address: String,
    /// The fake every provider's base URL points at.
    pub fake: FakeProvider,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub state: AppState,
    config: Config,
    handle: actix_web::dev::ServerHandle,
    serving: actix_web::rt::task::JoinHandle<anyhow::Result<()>>,
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(TestDb::fresh().await, |_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(TestDb::fresh().await, customise).await
}

/// A Fernet key for tests' vaults.
pub const VAULT_KEY: &str = "8J6V0a2fFqQ9WmXoV3Zb4lK1nT7sR5yU0cE2dG6hJ4k=";

/// The default test config: loopback, port 0, one worker, the given database, a random admin
/// token, a vault key, short upstream timeouts, and every provider pointed at a fresh fake.
pub async fn spawn_app_on(db: TestDb, customise: impl FnOnce(&mut Config)) -> TestApp {
    let fake = FakeProvider::start().await;
    let mut config = Config::builtin().expect("built-in config");
    let catalog = spidergate::catalog::Catalog::load(&Default::default()).expect("catalog");
    for provider in catalog.providers() {
        let base_url = if provider.base_url.contains("{account_id}") {
            format!("{}/{}/{{account_id}}/v1", fake.url, provider.id)
        } else {
            format!("{}/{}/v1", fake.url, provider.id)
        };
        config.providers.insert(
            provider.id.clone(),
            spidergate::config::ProviderOverride {
                base_url: Some(base_url),
                oauth: None,
            },
        );
    }
    config.vault.keys = vec![spidergate::secret::Secret::new(VAULT_KEY)];
    config.upstream.timeout_secs = 1;
    config.upstream.stream_idle_timeout_secs = 1;
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.workers = 1;
    config.server.shutdown_timeout_secs = 1;
    config.database.url = db.url();
    config.admin.token =
        spidergate::secret::Secret::new(format!("admin-{}", uuid::Uuid::new_v4().simple()));
    customise(&mut config);
    start(config, db, fake).await
}

async fn start(config: Config, db: TestDb, fake: FakeProvider) -> TestApp {
    let app = spidergate::run(config.clone()).await.expect("app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let state = app.state().clone();
    let serving = actix_web::rt::spawn(app.serve());
    TestApp {
        address,
        fake,
        // A request that never gets an answer fails the test instead of hanging the suite.
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("HTTP client"),
        admin_token: config.admin.token.expose().to_owned(),
        state,
        config,
        handle,
        serving,
        db,
    }
}

/// Waits for `serve` to return after a stop: a hang is a failure with a message, not a stuck suite
/// (its own steps are bounded well within this; their warnings say which one waited).
async fn served(serving: actix_web::rt::task::JoinHandle<anyhow::Result<()>>) {
    tokio::time::timeout(std::time::Duration::from_secs(120), serving)
        .await
        .expect("serve() returns within 120 s of a stop")
        .expect("serve task")
        .expect("clean shutdown");
}

/// A response reduced to what tests assert on.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// `error.code` of the envelope (panics with the body when there is none).
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.body))
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    /// Asserts the status and the envelope's code together, showing the body on failure.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.body
        );
        let kind = self.body["error"]["type"].as_str().expect("error.type");
        assert!(
            !kind.is_empty() && !self.message().is_empty(),
            "envelope: {}",
            self.body
        );
    }
}

impl TestApp {
    /// A second server on this one's database and config, as another replica would be. Drop it
    /// before this one.
    pub async fn replica(&self) -> TestApp {
        let url = self.db.url();
        start(
            self.config.clone(),
            TestDb::SharedWith(url),
            self.fake.clone(),
        )
        .await
    }

    /// Stops this server gracefully and waits until `serve` has returned: its background work
    /// (mailer, refresher) is over, so nothing more can happen. Returns the database.
    pub async fn stop(self) -> TestDb {
        self.handle.stop(true).await;
        served(self.serving).await;
        self.db
    }

    /// Ends this server as a crash would: nothing of `serve`'s shutdown runs (no lease goes back,
    /// nothing left in memory is written). Its background loops end with it, so it leaves the
    /// replica registry as a killed replica does once it is no longer seen.
    pub async fn crash(self) {
        self.serving.abort();
        let _ = self.serving.await;
        self.handle.stop(false).await;
    }

    /// Stops this server gracefully and starts a new one on the same database and config.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}, |_| async {}).await
    }

    /// Stops this server, runs `between` with its config while nothing serves, then starts a
    /// new server on the same database with `change` applied to the config.
    pub async fn restart_with<F: std::future::Future<Output = ()>>(
        self,
        change: impl FnOnce(&mut Config),
        between: impl FnOnce(Config) -> F,
    ) -> TestApp {
        self.handle.stop(true).await;
        // `serve` writes in-memory state after the HTTP server stops; wait for it.
        served(self.serving).await;
        let mut config = self.config;
        change(&mut config);
        between(config.clone()).await;
        start(config, self.db, self.fake).await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.expect("request reaches the server")).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.request(Method::GET, path, bearer, None).await
    }

    pub async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, bearer, Some(body)).await
    }

    pub async fn patch(&self, path: &str, bearer: Option<&str>, body: Value) -> Reply {
        self.request(Method::PATCH, path, bearer, Some(body)).await
    }

    pub async fn delete(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.request(Method::DELETE, path, bearer, None).await
    }

    /// `POST /api/v1/admin/brands` → (client_id, credential).
    pub async fn create_brand(&self, name: &str) -> (String, String) {
        let reply = self
            .post(
                "/api/v1/admin/brands",
                Some(&self.admin_token),
                json!({ "name": name }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let client_id = reply.body["brand"]["client_id"]
            .as_str()
            .expect("client_id")
            .to_owned();
        let credential = reply.body["credential"]
            .as_str()
            .expect("credential")
            .to_owned();
        (client_id, credential)
    }

    /// `POST /api/v1/agent-keys` with `body`, asserting 201 → (token, agent_key).
    pub async fn mint_token(&self, credential: &str, body: Value) -> (String, Value) {
        let reply = self
            .post("/api/v1/agent-keys", Some(credential), body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let token = reply.body["token"].as_str().expect("token").to_owned();
        (token, reply.body["agent_key"].clone())
    }

    /// A brand whose vault holds the OpenAI `key`, and a token with a hard budget of `cap` USD:
    /// (credential, token, token id).
    pub async fn brand_with_capped_token(&self, key: &str, cap: f64) -> (String, String, i64) {
        let (_, credential) = self.create_brand("Acme").await;
        self.add_key(&credential, "openai", key, json!({})).await;
        let (token, minted) = self
            .mint_token(
                &credential,
                json!({ "name": "capped", "monthly_budget_usd": cap, "budget_mode": "hard" }),
            )
            .await;
        let id = minted["id"].as_i64().expect("token id");
        (credential, token, id)
    }
}

impl TestApp {
    /// `POST /api/v1/integrations` for the brand → the new integration's id.
    pub async fn add_key(
        &self,
        credential: &str,
        provider: &str,
        api_key: &str,
        extra: Value,
    ) -> i64 {
        let mut body = json!({ "provider_name": provider, "credentials": { "api_key": api_key } });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let reply = self
            .post("/api/v1/integrations", Some(credential), body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["integration"]["id"]
            .as_i64()
            .expect("integration id")
    }

    /// `POST /api/v1/admin/pool-keys` → the new pool key's id.
    pub async fn add_pool_key(&self, provider: &str, api_key: &str) -> i64 {
        let body = json!({ "provider_name": provider, "credentials": { "api_key": api_key } });
        let reply = self
            .post("/api/v1/admin/pool-keys", Some(&self.admin_token), body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["integration"]["id"]
            .as_i64()
            .expect("pool key id")
    }

    /// A non-streamed chat completion for `model`.
    pub async fn chat(&self, token: &str, model: &str) -> Reply {
        let body = json!({ "model": model, "messages": [{ "role": "user", "content": "ping" }] });
        self.post("/api/gate/v1/chat/completions", Some(token), body)
            .await
    }

    /// A chat completion for `model` that must succeed → the API key the provider was called with.
    pub async fn serving_key(&self, token: &str, model: &str) -> String {
        let reply = self.chat(token, model).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        self.fake
            .requests()
            .last()
            .expect("an upstream call")
            .api_key
            .clone()
    }

    /// A streamed chat completion: status, headers, and the raw SSE text.
    pub async fn chat_stream(
        &self,
        token: &str,
        body: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let response = self
            .client
            .post(format!("{}/api/gate/v1/chat/completions", self.address))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.expect("stream body"))
    }

    /// The ranked models of a public alias, as `GET /api/gate/v1/aliases` lists them.
    pub async fn alias_chain(&self, alias: &str) -> Vec<String> {
        let aliases = self.get("/api/gate/v1/aliases", None).await.body;
        let found = aliases["data"]
            .as_array()
            .expect("aliases")
            .iter()
            .find(|a| a["id"] == alias)
            .cloned();
        let models = found.unwrap_or_else(|| panic!("no alias {alias}"))["models"].clone();
        models
            .as_array()
            .expect("models")
            .iter()
            .map(|m| m.as_str().expect("model id").to_owned())
            .collect()
    }

    /// A brand with a credential and a default agent token → (credential, token).
    pub async fn brand_with_token(&self) -> (String, String) {
        let (_, credential) = self.create_brand("Acme").await;
        let (token, _) = self
            .mint_token(&credential, json!({ "name": "agent" }))
            .await;
        (credential, token)
    }
}

/// The provider of a catalog model id (`groq/…` → groq; OpenAI's bare names → openai).
pub fn provider_of(model: &str) -> String {
    model
        .split_once('/')
        .map_or("openai", |(provider, _)| provider)
        .to_owned()
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("response body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "non-JSON body ({status}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Polls `check` every 50 ms until it holds; panics naming `what` after `within`.
pub async fn eventually(
    what: &str,
    within: std::time::Duration,
    mut check: impl AsyncFnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
