//! Schema migrations, run by `spidergate::run` at start-up on SQLite and PostgreSQL alike.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_brands;
mod m20261122_000002_create_agent_tokens;
mod m20261122_000003_create_integrations;
mod m20261122_000004_create_alias_overrides;
mod m20261122_000005_create_traces;
mod m20261122_000006_create_invites_and_outbox;
mod m20261201_000007_create_oauth_flows;
mod m20261202_000008_create_cache_events;
mod m20261202_000009_create_replicas;
mod m20261202_000010_create_budget_leases;
mod m20261202_000011_create_alert_events;
mod m20261203_000012_add_trace_cache_tokens;
mod m20261207_000013_create_spidergo;
mod m20261207_000014_create_dashboard_sessions;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_brands::Migration),
            Box::new(m20261122_000002_create_agent_tokens::Migration),
            Box::new(m20261122_000003_create_integrations::Migration),
            Box::new(m20261122_000004_create_alias_overrides::Migration),
            Box::new(m20261122_000005_create_traces::Migration),
            Box::new(m20261122_000006_create_invites_and_outbox::Migration),
            Box::new(m20261201_000007_create_oauth_flows::Migration),
            Box::new(m20261202_000008_create_cache_events::Migration),
            Box::new(m20261202_000009_create_replicas::Migration),
            Box::new(m20261202_000010_create_budget_leases::Migration),
            Box::new(m20261202_000011_create_alert_events::Migration),
            Box::new(m20261203_000012_add_trace_cache_tokens::Migration),
            Box::new(m20261207_000013_create_spidergo::Migration),
            Box::new(m20261207_000014_create_dashboard_sessions::Migration),
        ]
    }
}
