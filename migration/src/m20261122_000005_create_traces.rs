use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Traces::Table)
                    .if_not_exists()
                    .col(string(Traces::Id).primary_key())
                    .col(timestamp_with_time_zone(Traces::CreatedAt))
                    .col(integer(Traces::BrandId))
                    .col(integer_null(Traces::AgentKeyId))
                    .col(string(Traces::RequestKind))
                    .col(string(Traces::RequestedModel))
                    .col(string_null(Traces::Model))
                    .col(string_null(Traces::Provider))
                    .col(integer_null(Traces::IntegrationId))
                    .col(string(Traces::Status))
                    .col(integer(Traces::HttpStatus))
                    .col(string_null(Traces::ErrorCode))
                    .col(big_integer(Traces::LatencyMs))
                    .col(big_integer_null(Traces::TtftMs))
                    .col(boolean(Traces::Streamed))
                    .col(big_integer(Traces::PromptTokens))
                    .col(big_integer(Traces::CompletionTokens))
                    .col(big_integer(Traces::CostNanos))
                    .col(boolean(Traces::FallbackUsed))
                    .col(text(Traces::Attempts))
                    .col(text(Traces::Spans))
                    .col(text_null(Traces::RequestBody))
                    .col(text_null(Traces::ResponseBody))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "idx_traces_brand_created",
                vec![Traces::BrandId, Traces::CreatedAt],
            ),
            (
                "idx_traces_key_created",
                vec![Traces::AgentKeyId, Traces::CreatedAt],
            ),
            (
                "idx_traces_integration_created",
                vec![Traces::IntegrationId, Traces::CreatedAt],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Traces::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(TokenUsageHourly::Table)
                    .if_not_exists()
                    .col(integer(TokenUsageHourly::AgentKeyId))
                    .col(big_integer(TokenUsageHourly::HourStart))
                    .col(big_integer(TokenUsageHourly::Requests))
                    .col(big_integer(TokenUsageHourly::CostNanos))
                    .primary_key(
                        Index::create()
                            .col(TokenUsageHourly::AgentKeyId)
                            .col(TokenUsageHourly::HourStart),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TokenUsageHourly::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Traces::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Traces {
    Table,
    Id,
    CreatedAt,
    BrandId,
    AgentKeyId,
    RequestKind,
    RequestedModel,
    Model,
    Provider,
    IntegrationId,
    Status,
    HttpStatus,
    ErrorCode,
    LatencyMs,
    TtftMs,
    Streamed,
    PromptTokens,
    CompletionTokens,
    CostNanos,
    FallbackUsed,
    Attempts,
    Spans,
    RequestBody,
    ResponseBody,
}

#[derive(DeriveIden)]
enum TokenUsageHourly {
    Table,
    AgentKeyId,
    HourStart,
    Requests,
    CostNanos,
}
