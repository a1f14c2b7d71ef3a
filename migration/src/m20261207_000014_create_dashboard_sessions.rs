use sea_orm_migration::{prelude::*, schema::*};

/// Dashboard sign-ins (issue #13): one row per session, keyed by the SHA-256 of the cookie's
/// random id, for a brand (`brand_id`) or the operator (`brand_id` null), with the session's
/// CSRF token, when it was last seen (idle expiry) and when it ends regardless.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DashboardSessions::Table)
                    .if_not_exists()
                    .col(pk_auto(DashboardSessions::Id))
                    .col(string_uniq(DashboardSessions::TokenHash))
                    .col(integer_null(DashboardSessions::BrandId))
                    .col(string(DashboardSessions::Csrf))
                    .col(timestamp_with_time_zone(DashboardSessions::CreatedAt))
                    .col(timestamp_with_time_zone(DashboardSessions::LastSeenAt))
                    .col(timestamp_with_time_zone(DashboardSessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dashboard_sessions_brand")
                    .table(DashboardSessions::Table)
                    .col(DashboardSessions::BrandId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DashboardSessions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DashboardSessions {
    Table,
    Id,
    TokenHash,
    BrandId,
    Csrf,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
}
