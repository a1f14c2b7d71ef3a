use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Invites::Table)
                    .if_not_exists()
                    .col(pk_auto(Invites::Id))
                    .col(integer(Invites::BrandId))
                    .col(string(Invites::Kind))
                    .col(string(Invites::Email))
                    .col(string(Invites::ProviderName))
                    .col(text_null(Invites::Message))
                    .col(string_uniq(Invites::TokenHash))
                    .col(string(Invites::Status))
                    .col(integer_null(Invites::IntegrationId))
                    .col(timestamp_with_time_zone(Invites::ExpiresAt))
                    .col(timestamp_with_time_zone(Invites::CreatedAt))
                    .col(timestamp_with_time_zone_null(Invites::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(pk_auto(Outbox::Id))
                    .col(string(Outbox::ToEmail))
                    .col(string(Outbox::Subject))
                    .col(text(Outbox::TextBody))
                    .col(text(Outbox::HtmlBody))
                    .col(integer(Outbox::Attempts))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Outbox::SentAt))
                    .col(text_null(Outbox::LastError))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Invites::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Invites {
    Table,
    Id,
    BrandId,
    Kind,
    Email,
    ProviderName,
    Message,
    TokenHash,
    Status,
    IntegrationId,
    ExpiresAt,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    ToEmail,
    Subject,
    TextBody,
    HtmlBody,
    Attempts,
    NextAttemptAt,
    SentAt,
    LastError,
    CreatedAt,
}
