//! Provider keys shared by replicas through Redis: a key's minute/day limits are exact across
//! them, a key failed through one replica is skipped by the others, and one replica probes an
//! unhealthy key. Each test uses its own key prefix on the machine's Redis.

use crate::fake_provider::Behaviour;
use crate::helpers::{Reply, TestApp, eventually};
use crate::shared_limits::{RedisPrefix, dead_redis, redis_url, replicas_sharing};
use reqwest::StatusCode;
use serde_json::json;
use spidergate::config::OnRedisError;
use spidergate::health::HealthStatus;
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini";

async fn spread(apps: &[&TestApp], token: &str, n: usize) -> Vec<Reply> {
    let chats = (0..n).map(|i| apps[i % apps.len()].chat(token, MODEL));
    futures_util::future::join_all(chats).await
}

fn served(replies: &[Reply]) -> usize {
    replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count()
}

/// A brand whose only OpenAI key allows `per_minute` requests a minute, and a token.
async fn limited_key(apps: &[TestApp; 3], per_minute: u32) -> String {
    let (_, credential) = apps[0].create_brand("Acme").await;
    apps[0]
        .add_key(
            &credential,
            "openai",
            "sk-openai-limited",
            json!({ "minute_limit": per_minute }),
        )
        .await;
    let (token, _) = apps[0]
        .mint_token(&credential, json!({ "name": "agent" }))
        .await;
    token
}

#[actix_web::test]
async fn a_keys_minute_limit_is_exact_across_three_replicas() {
    let prefix = RedisPrefix::new();
    let apps = replicas_sharing(redis_url(), &prefix, OnRedisError::Share).await;
    let token = limited_key(&apps, 5).await;
    let [a, b, c] = &apps;
    let replies = spread(&[a, b, c], &token, 30).await;
    assert_eq!(
        served(&replies),
        5,
        "a minute limit of 5 over three replicas"
    );
    assert_eq!(apps[0].fake.calls("sk-openai-limited"), 5);
    let refused = replies
        .iter()
        .find(|r| r.status != StatusCode::OK)
        .expect("a refusal");
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "no_available_key");
}

#[actix_web::test]
async fn without_redis_each_replica_uses_its_share_of_a_keys_limit() {
    let prefix = RedisPrefix::new();
    let apps = replicas_sharing(dead_redis(), &prefix, OnRedisError::Share).await;
    let token = limited_key(&apps, 6).await;
    let [a, b, c] = &apps;
    let replies = spread(&[a, b, c], &token, 30).await;
    assert_eq!(
        served(&replies),
        6,
        "each of three replicas serves 6 / 3 = 2 on its own"
    );
    drop(apps);
    let prefix = RedisPrefix::new();
    let apps = replicas_sharing(dead_redis(), &prefix, OnRedisError::FailClosed).await;
    let token = limited_key(&apps, 6).await;
    apps[0]
        .chat(&token, MODEL)
        .await
        .assert_error(503, "no_available_key");
}

#[actix_web::test]
async fn a_key_failed_through_one_replica_is_skipped_by_the_others() {
    let prefix = RedisPrefix::new();
    let apps = replicas_sharing(redis_url(), &prefix, OnRedisError::Share).await;
    let [a, b, c] = &apps;
    let (_, credential) = a.create_brand("Acme").await;
    let broken = a
        .add_key(
            &credential,
            "openai",
            "sk-openai-broken",
            json!({ "is_primary": true }),
        )
        .await as i32;
    a.add_key(&credential, "openai", "sk-openai-spare", json!({}))
        .await;
    let (token, _) = a.mint_token(&credential, json!({ "name": "agent" })).await;
    a.fake.set("sk-openai-broken", Behaviour::ServerError);

    // Three failures through A (each request falls back to the spare and succeeds).
    for _ in 0..3 {
        assert_eq!(a.chat(&token, MODEL).await.status, StatusCode::OK);
    }
    assert_eq!(a.fake.calls("sk-openai-broken"), 3);
    for app in [b, c] {
        eventually(
            "the failures reach the other replicas",
            Duration::from_secs(10),
            async || app.state.health.status("openai", broken) == HealthStatus::Unhealthy,
        )
        .await;
    }
    let replies = spread(&[b, c], &token, 10).await;
    assert_eq!(served(&replies), 10);
    assert_eq!(
        a.fake.calls("sk-openai-broken"),
        3,
        "B and C never tried the key A found broken"
    );

    // One replica wins the probe of the unhealthy key; the others wait for its answer.
    let shared = |app: &TestApp| app.state.health.shared().expect("Redis").health.clone();
    let won = [
        shared(a).claim_probe(broken).await.expect("Redis"),
        shared(b).claim_probe(broken).await.expect("Redis"),
        shared(c).claim_probe(broken).await.expect("Redis"),
    ];
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");

    // A success anywhere (here, a reset) clears the key for every replica.
    let reset = a
        .post(
            &format!("/api/v1/integrations/{broken}/reset-health"),
            Some(&credential),
            json!({}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    for app in [b, c] {
        eventually(
            "the reset reaches the other replicas",
            Duration::from_secs(10),
            async || app.state.health.status("openai", broken) == HealthStatus::Healthy,
        )
        .await;
    }

    // A change whose message was lost (written without one) arrives with the periodic resync.
    let client = redis::Client::open(redis_url()).expect("Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let (secs, _): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut conn)
        .await
        .expect("TIME");
    let _: () = redis::cmd("HSET")
        .arg(format!("{}:{{k{broken}}}:health", prefix.0))
        .arg("f")
        .arg(3)
        .arg("c")
        .arg((secs + 60) * 1000)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    eventually(
        "the resync reads what no message announced",
        Duration::from_secs(15),
        async || c.state.health.status("openai", broken) == HealthStatus::Unhealthy,
    )
    .await;
}
