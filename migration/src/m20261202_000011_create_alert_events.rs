use sea_orm_migration::{prelude::*, schema::*};

/// Alerts (issue #15): `alert_events` holds one row per event ever raised, its `event_key`
/// unique, so an event raised twice (by two replicas, or again after a restart) is sent once.
/// Deliveries ride the outbox: `outbox.channel` says whether a row is an email or a webhook.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AlertEvents::Table)
                    .if_not_exists()
                    .col(pk_auto(AlertEvents::Id))
                    .col(string_uniq(AlertEvents::EventKey))
                    .col(string(AlertEvents::Kind))
                    .col(integer_null(AlertEvents::BrandId))
                    .col(text(AlertEvents::Payload))
                    .col(timestamp_with_time_zone(AlertEvents::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(string(Outbox::Channel).default("email"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::Channel)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(AlertEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AlertEvents {
    Table,
    Id,
    EventKey,
    Kind,
    BrandId,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Channel,
}
