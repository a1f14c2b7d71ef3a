//! Opening the database (SQLite file or PostgreSQL) and bringing its schema up to date.

use crate::config::DatabaseConfig;
use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use std::time::Duration;

/// Connects, tunes SQLite for concurrent readers, and runs pending migrations.
pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<DatabaseConnection> {
    let db = open(config).await?;
    Migrator::up(&db, None)
        .await
        .context("running database migrations")?;
    Ok(db)
}

/// The migrations this database has not run yet (without running them).
pub async fn pending_migrations(db: &DatabaseConnection) -> anyhow::Result<Vec<String>> {
    let pending = Migrator::get_pending_migrations(db)
        .await
        .context("reading the applied migrations")?;
    Ok(pending.iter().map(|m| m.name().to_owned()).collect())
}

/// Connects (and tunes SQLite for concurrent readers); the schema as it is.
pub async fn open(config: &DatabaseConfig) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(config.url.clone());
    options
        .max_connections(config.max_connections)
        .connect_timeout(Duration::from_secs(10))
        // Statement logging would put row values in the logs.
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .with_context(|| format!("connecting to the database at {}", redact_url(&config.url)))?;
    if config.url.starts_with("sqlite:") {
        // WAL lets readers proceed while the writer commits; the setting persists in the file.
        db.execute_unprepared("PRAGMA journal_mode=WAL;")
            .await
            .context("enabling SQLite WAL")?;
    }
    Ok(db)
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            super::redact_url("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            super::redact_url("sqlite://spidergate.db?mode=rwc"),
            "sqlite://spidergate.db?mode=rwc"
        );
    }
}
