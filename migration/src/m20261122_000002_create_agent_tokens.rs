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
                    .table(AgentTokens::Table)
                    .if_not_exists()
                    .col(pk_auto(AgentTokens::Id))
                    .col(integer(AgentTokens::BrandId))
                    .col(string(AgentTokens::Name))
                    .col(string_uniq(AgentTokens::TokenHash))
                    .col(string(AgentTokens::TokenPreview))
                    .col(string(AgentTokens::Scopes))
                    .col(big_integer_null(AgentTokens::MonthlyBudgetNanos))
                    .col(string(AgentTokens::BudgetMode))
                    .col(integer_null(AgentTokens::Rpm))
                    .col(integer_null(AgentTokens::Rpd))
                    .col(text(AgentTokens::AllowedModels))
                    .col(boolean(AgentTokens::FreeModelsOnly))
                    .col(timestamp_with_time_zone(AgentTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(AgentTokens::RevokedAt))
                    .col(timestamp_with_time_zone_null(AgentTokens::LastUsedAt))
                    .col(timestamp_with_time_zone(AgentTokens::CreatedAt))
                    .col(timestamp_with_time_zone(AgentTokens::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AgentTokens::Table, AgentTokens::BrandId)
                            .to(Brands::Table, Brands::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_tokens_brand_id")
                    .table(AgentTokens::Table)
                    .col(AgentTokens::BrandId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AgentTokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AgentTokens {
    Table,
    Id,
    BrandId,
    Name,
    TokenHash,
    TokenPreview,
    Scopes,
    MonthlyBudgetNanos,
    BudgetMode,
    Rpm,
    Rpd,
    AllowedModels,
    FreeModelsOnly,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
    CreatedAt,
    UpdatedAt,
}
