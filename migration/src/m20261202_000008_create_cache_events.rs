use sea_orm_migration::{prelude::*, schema::*};

/// `cache_events`: the change log replicas follow to keep their in-memory caches (credentials,
/// agent tokens, vault keys, alias chains) coherent. On PostgreSQL a trigger on each cached table
/// writes the event in the writing transaction, so no code path can forget it, and notifies
/// `sg_cache`; an advisory lock makes versions commit in version order, so a reader that has seen
/// version N has seen everything before it. Events carry ids only, never row contents. Writes
/// that change no cached field (last-use stamps, key health) produce no event.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, event kind, JSON fields whose changes are not cache-relevant).
const CACHED: [(&str, &str, &str); 4] = [
    ("brands", "brand", "'updated_at'"),
    (
        "agent_tokens",
        "agent_token",
        "'updated_at' - 'last_used_at'",
    ),
    (
        "integrations",
        "integration",
        "'updated_at' - 'last_used_at' - 'health_status' - 'consecutive_failures' - 'last_error'",
    ),
    ("alias_overrides", "alias_override", "'updated_at'"),
];

const EVENT_FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION sg_cache_event() RETURNS trigger AS $$
DECLARE
    changed TEXT;
    written BIGINT;
BEGIN
    -- One writer at a time from here to commit: versions become visible in order.
    PERFORM pg_advisory_xact_lock(7270001);
    IF TG_OP = 'DELETE' THEN
        changed := (to_jsonb(OLD) ->> TG_ARGV[1]);
    ELSE
        changed := (to_jsonb(NEW) ->> TG_ARGV[1]);
    END IF;
    INSERT INTO cache_events (kind, entity, at) VALUES (TG_ARGV[0], changed, now())
        RETURNING version INTO written;
    PERFORM pg_notify('sg_cache', written::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CacheEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CacheEvents::Version))
                    .col(string(CacheEvents::Kind))
                    .col(string(CacheEvents::Entity))
                    .col(timestamp_with_time_zone(CacheEvents::At))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() != sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            // One SQLite file is one node: nothing to keep coherent.
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(EVENT_FUNCTION).await?;
        for (table, kind, noise) in CACHED {
            let key = if table == "alias_overrides" {
                "alias_id"
            } else {
                "id"
            };
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_cache_event AFTER INSERT OR DELETE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION sg_cache_event('{kind}', '{key}')"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "CREATE TRIGGER {table}_cache_event_update AFTER UPDATE ON {table} FOR EACH ROW \
                 WHEN ((to_jsonb(OLD) - {noise}) IS DISTINCT FROM (to_jsonb(NEW) - {noise})) \
                 EXECUTE FUNCTION sg_cache_event('{kind}', '{key}')"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            let db = manager.get_connection();
            for (table, _, _) in CACHED {
                db.execute_unprepared(&format!(
                    "DROP TRIGGER IF EXISTS {table}_cache_event ON {table}; \
                     DROP TRIGGER IF EXISTS {table}_cache_event_update ON {table}"
                ))
                .await?;
            }
            db.execute_unprepared("DROP FUNCTION IF EXISTS sg_cache_event()")
                .await?;
        }
        manager
            .drop_table(Table::drop().table(CacheEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CacheEvents {
    Table,
    Version,
    Kind,
    Entity,
    At,
}
