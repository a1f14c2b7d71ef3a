//! sea-orm entities, one module per table. Only the `store.rs` file of each concern imports these.

pub mod agent_token;
pub mod alert_event;
pub mod alias_override;
pub mod brand;
pub mod dashboard_session;
pub mod integration;
pub mod invite;
pub mod oauth_flow;
pub mod outbox;
pub mod prelude;
pub mod spidergo_api_key;
pub mod spidergo_code;
pub mod spidergo_crawl;
pub mod spidergo_page;
pub mod spidergo_session;
pub mod spidergo_user;
pub mod token_usage_hourly;
pub mod trace;
