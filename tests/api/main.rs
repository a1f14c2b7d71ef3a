//! The integration suite: ONE test binary that starts the real app on port 0.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

mod accounting;
mod alerts;
mod auth;
mod bodies;
mod brands;
mod browser;
mod catalog;
mod chat;
mod cli;
mod dashboard;
mod dialects;
mod fake_dialects;
mod fake_oauth;
mod fake_provider;
mod hard_budget;
mod helpers;
mod invites;
mod ledger;
mod logs;
mod media;
mod metrics;
mod oauth;
mod openai_sdk;
mod openapi;
mod otel;
mod own_redis;
mod process;
mod relay;
mod replicas;
mod robustness;
mod sdk_conventions;
mod sdk_tools;
mod shared_budgets;
mod shared_keys;
mod shared_limits;
mod shutdown;
mod smtp_sink;
mod spidergo;
mod storage;
mod streaming;
mod test_site;
mod tokens;
mod upstream_faults;
mod upstream_pool;
mod vault;
mod webhook_sink;
