use super::m20261122_000001_create_brands::Brands;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Integrations::Table)
                    .if_not_exists()
                    .col(pk_auto(Integrations::Id))
                    .col(integer_null(Integrations::BrandId))
                    .col(string(Integrations::ProviderName))
                    .col(string_null(Integrations::KeyLabel))
                    .col(text(Integrations::CredentialsEnc))
                    .col(string(Integrations::Fingerprint))
                    .col(text(Integrations::KeyPreview))
                    .col(boolean(Integrations::IsActive))
                    .col(boolean(Integrations::IsPrimary))
                    .col(boolean(Integrations::ShareWithPool))
                    .col(integer_null(Integrations::DailyLimit))
                    .col(integer_null(Integrations::MinuteLimit))
                    .col(big_integer_null(Integrations::SpendLimitNanos))
                    .col(string(Integrations::SpendLimitPeriod))
                    .col(string(Integrations::SpendLimitAction))
                    .col(string(Integrations::HealthStatus))
                    .col(integer(Integrations::ConsecutiveFailures))
                    .col(timestamp_with_time_zone_null(Integrations::LastUsedAt))
                    .col(text_null(Integrations::LastError))
                    .col(string_null(Integrations::DisabledReason))
                    .col(timestamp_with_time_zone(Integrations::CreatedAt))
                    .col(timestamp_with_time_zone(Integrations::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Integrations::Table, Integrations::BrandId)
                            .to(Brands::Table, Brands::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_integrations_owner_provider")
                    .table(Integrations::Table)
                    .col(Integrations::BrandId)
                    .col(Integrations::ProviderName)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Integrations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Integrations {
    Table,
    Id,
    BrandId,
    ProviderName,
    KeyLabel,
    CredentialsEnc,
    Fingerprint,
    KeyPreview,
    IsActive,
    IsPrimary,
    ShareWithPool,
    DailyLimit,
    MinuteLimit,
    SpendLimitNanos,
    SpendLimitPeriod,
    SpendLimitAction,
    HealthStatus,
    ConsecutiveFailures,
    LastUsedAt,
    LastError,
    DisabledReason,
    CreatedAt,
    UpdatedAt,
}
