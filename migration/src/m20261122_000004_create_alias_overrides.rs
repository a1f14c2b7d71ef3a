use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AliasOverrides::Table)
                    .if_not_exists()
                    .col(string(AliasOverrides::AliasId).primary_key())
                    .col(text(AliasOverrides::Models))
                    .col(timestamp_with_time_zone(AliasOverrides::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AliasOverrides::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AliasOverrides {
    Table,
    AliasId,
    Models,
    UpdatedAt,
}
