//! Token RPM/RPD windows shared through Redis by replicas on one PostgreSQL database: exact
//! across replicas, and never above a limit while Redis is away. Each test uses its own key
//! prefix on the machine's Redis (127.0.0.1:6379, or `SPIDERGATE_TEST_REDIS_URL`) and removes its
//! keys afterwards.

use crate::helpers::{PostgresDb, Reply, TestApp, TestDb, eventually, spawn_app_on};
use crate::own_redis::OwnRedis;
use crate::relay::Relay;
use reqwest::StatusCode;
use serde_json::{Value, json};
use spidergate::config::{Config, OnRedisError};
use spidergate::secret::Secret;
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini";

pub fn redis_url() -> String {
    std::env::var("SPIDERGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// This test's keys on the shared Redis, deleted when it ends.
pub struct RedisPrefix(pub String);

impl RedisPrefix {
    pub fn new() -> Self {
        RedisPrefix(format!("sgtest-{}", uuid::Uuid::new_v4().simple()))
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

/// Three replicas on one database sharing `redis` (a URL) under `prefix`, each aware of the
/// other two.
pub async fn replicas_sharing(
    redis: String,
    prefix: &RedisPrefix,
    on_error: OnRedisError,
) -> [TestApp; 3] {
    let prefix = prefix.0.clone();
    let (url, name) = (redis.clone(), prefix.clone());
    let configure = move |config: &mut Config| {
        config.redis.url = Secret::new(redis.clone());
        config.redis.prefix = prefix.clone();
        config.redis.on_error = on_error;
    };
    let a = spawn_app_on(TestDb::Postgres(PostgresDb::create().await), configure).await;
    let (b, c) = (a.replica().await, a.replica().await);
    for app in [&a, &b, &c] {
        let replicas = app.state.replicas.clone().expect("PostgreSQL replicas");
        eventually(
            "every replica counts three",
            Duration::from_secs(10),
            async || replicas.live() == 3,
        )
        .await;
    }
    if redis_answers(&url).await {
        eventually(
            "every replica has joined Redis's generation",
            Duration::from_secs(10),
            async || seeded_replicas(&url, &name).await == 3,
        )
        .await;
    }
    [a, b, c]
}

async fn redis_answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    client.get_multiplexed_async_connection().await.is_ok()
}

/// The replicas that replayed their windows into Redis's current generation (0 without one).
async fn seeded_replicas(url: &str, prefix: &str) -> i64 {
    let client = redis::Client::open(url).expect("Redis URL");
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let generation: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:gen"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    let Some(generation) = generation else {
        return 0;
    };
    redis::cmd("SCARD")
        .arg(format!("{prefix}:seeded:{generation}"))
        .query_async(&mut conn)
        .await
        .unwrap_or(0)
}

/// `replicas_sharing`, and a brand with an OpenAI key and a token minted with `limits`.
async fn three_replicas(
    redis: String,
    prefix: &RedisPrefix,
    on_error: OnRedisError,
    limits: Value,
) -> ([TestApp; 3], String) {
    let [a, b, c] = replicas_sharing(redis, prefix, on_error).await;
    let (_, credential) = a.create_brand("Acme").await;
    a.add_key(&credential, "openai", "sk-openai-shared", json!({}))
        .await;
    let mut body = json!({ "name": "agent" });
    body.as_object_mut()
        .expect("object")
        .extend(limits.as_object().expect("object").clone());
    let (token, _) = a.mint_token(&credential, body).await;
    ([a, b, c], token)
}

/// `n` concurrent chats spread round-robin over the replicas.
async fn spread(apps: &[TestApp; 3], token: &str, n: usize) -> Vec<Reply> {
    let chats = (0..n).map(|i| apps[i % 3].chat(token, MODEL));
    futures_util::future::join_all(chats).await
}

fn count(replies: &[Reply], status: StatusCode) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

#[actix_web::test]
async fn rpm_and_rpd_are_exact_across_three_replicas() {
    let prefix = RedisPrefix::new();
    let (apps, token) = three_replicas(
        redis_url(),
        &prefix,
        OnRedisError::Share,
        json!({ "rpm": 10 }),
    )
    .await;
    let replies = spread(&apps, &token, 100).await;
    assert_eq!(
        (
            count(&replies, StatusCode::OK),
            count(&replies, StatusCode::TOO_MANY_REQUESTS)
        ),
        (10, 90)
    );
    let refused = replies
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("a 429");
    refused.assert_error(429, "rate_limit_exceeded");
    assert!(refused.headers.contains_key("retry-after"));
    let served = replies
        .iter()
        .find(|r| r.status == StatusCode::OK)
        .expect("a 200");
    assert_eq!(served.headers["x-ratelimit-limit-requests"], "10");

    let prefix = RedisPrefix::new();
    let (apps, token) = three_replicas(
        redis_url(),
        &prefix,
        OnRedisError::Share,
        json!({ "rpd": 7 }),
    )
    .await;
    let replies = spread(&apps, &token, 30).await;
    assert_eq!(count(&replies, StatusCode::OK), 7);
    apps[1]
        .chat(&token, MODEL)
        .await
        .assert_error(429, "daily_rate_limit_exceeded");
    let usage = apps[2].get("/api/gate/v1/usage", Some(&token)).await.body;
    assert_eq!(usage["rate_limits"]["remaining_day"], 0, "{usage}");
}

#[actix_web::test]
async fn a_request_the_budget_refuses_counts_against_no_shared_window() {
    let prefix = RedisPrefix::new();
    let limits = json!({ "rpm": 5, "monthly_budget_usd": 0.00000001, "budget_mode": "hard" });
    let (apps, token) = three_replicas(redis_url(), &prefix, OnRedisError::Share, limits).await;
    for app in &apps {
        app.chat(&token, MODEL)
            .await
            .assert_error(402, "budget_exceeded");
    }
    eventually(
        "the refused requests taken out",
        Duration::from_secs(10),
        async || {
            let usage = apps[0].get("/api/gate/v1/usage", Some(&token)).await.body;
            usage["rate_limits"]["remaining_minute"] == 5
        },
    )
    .await;
}

/// A loopback port nothing listens on.
pub fn dead_redis() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    format!("redis://127.0.0.1:{port}")
}

#[actix_web::test]
async fn without_redis_each_replica_admits_its_share_and_health_says_so() {
    let prefix = RedisPrefix::new();
    let (apps, token) = three_replicas(
        dead_redis(),
        &prefix,
        OnRedisError::Share,
        json!({ "rpm": 9 }),
    )
    .await;
    let replies = spread(&apps, &token, 60).await;
    let served = count(&replies, StatusCode::OK);
    assert!(
        served <= 9 && served > 0,
        "{served} admitted of an rpm of 9"
    );
    assert_eq!(count(&replies, StatusCode::INTERNAL_SERVER_ERROR), 0);
    let health = apps[0].get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(
        (
            health.body["status"].as_str(),
            health.body["redis"].as_str()
        ),
        (Some("degraded"), Some("error"))
    );
}

#[actix_web::test]
async fn fail_closed_refuses_rate_limited_tokens_while_redis_is_away() {
    let prefix = RedisPrefix::new();
    let (apps, token) = three_replicas(
        dead_redis(),
        &prefix,
        OnRedisError::FailClosed,
        json!({ "rpm": 9 }),
    )
    .await;
    apps[0]
        .chat(&token, MODEL)
        .await
        .assert_error(503, "service_unavailable");
    let (_, credential) = apps[0].create_brand("Unlimited").await;
    apps[0]
        .add_key(&credential, "openai", "sk-openai-unlimited", json!({}))
        .await;
    let (free, _) = apps[0]
        .mint_token(&credential, json!({ "name": "free" }))
        .await;
    assert_eq!(
        apps[1].chat(&free, MODEL).await.status,
        StatusCode::OK,
        "tokens without rate limits do not need Redis"
    );
}

#[actix_web::test]
async fn redis_killed_mid_load_never_lets_a_limit_through_and_health_says_so() {
    let mut redis = OwnRedis::start().await;
    let prefix = RedisPrefix::new();
    let limits = json!({ "rpm": 12 });
    let (apps, token) = three_replicas(redis.url(), &prefix, OnRedisError::Share, limits).await;
    // Rounds of one request per replica; Redis dies after the third round. Each replica has then
    // admitted 3 (in Redis and in its own log); alone, each may reach its share of 12 / 3 = 4.
    let mut replies = Vec::new();
    for round in 0..20 {
        if round == 3 {
            redis.kill();
        }
        replies.extend(spread(&apps, &token, 3).await);
    }
    assert_eq!(
        count(&replies, StatusCode::OK),
        12,
        "never above the rpm of 12"
    );
    assert_eq!(
        count(&replies, StatusCode::TOO_MANY_REQUESTS),
        replies.len() - 12,
        "the rest refused for the limit, nothing failed"
    );
    for app in &apps {
        let health = app.get("/health", None).await;
        assert_eq!(
            (health.status, health.body["redis"].as_str()),
            (StatusCode::OK, Some("error"))
        );
    }
}

#[actix_web::test]
async fn redis_restarted_empty_is_exact_again_once_every_replica_replayed_its_log() {
    let mut redis = OwnRedis::start().await;
    let prefix = RedisPrefix::new();
    let limits = json!({ "rpm": 12 });
    let (apps, token) = three_replicas(redis.url(), &prefix, OnRedisError::Share, limits).await;
    let mut before = Vec::new();
    for _ in 0..3 {
        before.extend(spread(&apps, &token, 3).await);
    }
    assert_eq!(count(&before, StatusCode::OK), 9);
    // Redis comes back with nothing: the 9 live on only in the replicas' own logs.
    redis.restart().await;
    let mut after = Vec::new();
    for _ in 0..10 {
        after.extend(spread(&apps, &token, 3).await);
    }
    assert_eq!(
        count(&after, StatusCode::OK),
        3,
        "the window spanning the restart still holds 12, not 12 more"
    );
    assert_eq!(
        seeded_replicas(&redis.url(), &prefix.0).await,
        3,
        "every replica replayed into the new generation"
    );
    assert_eq!(count(&after, StatusCode::TOO_MANY_REQUESTS), 27);
}

#[actix_web::test]
async fn what_replicas_admitted_while_redis_was_unreachable_counts_once_it_is_back() {
    let redis = OwnRedis::start().await;
    let upstream = format!("127.0.0.1:{}", redis.port);
    let relay = Relay::to(&upstream).await;
    let prefix = RedisPrefix::new();
    let limits = json!({ "rpm": 12 });
    let (apps, token) = three_replicas(
        relay.in_front_of(&redis.url(), &upstream),
        &prefix,
        OnRedisError::Share,
        limits,
    )
    .await;
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.extend(spread(&apps, &token, 3).await);
    }
    // Cut off from a Redis that keeps its 9: one round is admitted by the replicas' shares
    // alone (3 each so far, so one more each of 12 / 3), which Redis never sees.
    relay.cut();
    let cut_off = spread(&apps, &token, 3).await;
    assert_eq!(count(&cut_off, StatusCode::OK), 3, "each replica's share");
    replies.extend(cut_off);
    relay.mend();
    // Without those three Redis would admit three more.
    for _ in 0..5 {
        replies.extend(spread(&apps, &token, 3).await);
    }
    assert_eq!(
        count(&replies, StatusCode::OK),
        12,
        "never above the rpm of 12"
    );
}
