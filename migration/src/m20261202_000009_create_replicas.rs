use sea_orm_migration::{prelude::*, schema::*};

/// `replicas`: the gateways following this database's change log, and how far each has got. A
/// write answers only once every live replica (seen in the last seconds) has applied it.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Replicas::Table)
                    .if_not_exists()
                    .col(string(Replicas::Id).primary_key())
                    .col(big_integer(Replicas::Applied))
                    .col(timestamp_with_time_zone(Replicas::LastSeen))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Replicas::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Replicas {
    Table,
    Id,
    Applied,
    LastSeen,
}
