use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Brands::Table)
                    .if_not_exists()
                    .col(pk_auto(Brands::Id))
                    .col(string_uniq(Brands::ClientId))
                    .col(string(Brands::Name))
                    .col(string_null(Brands::ContactEmail))
                    .col(integer_null(Brands::BillingAnchorDay))
                    .col(string(Brands::KeyHash))
                    .col(string(Brands::SecretHash))
                    .col(timestamp_with_time_zone(Brands::CreatedAt))
                    .col(timestamp_with_time_zone(Brands::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Brands::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Brands {
    Table,
    Id,
    ClientId,
    Name,
    ContactEmail,
    BillingAnchorDay,
    KeyHash,
    SecretHash,
    CreatedAt,
    UpdatedAt,
}
