use sea_orm_migration::{prelude::*, schema::*};

/// SpiderGo (issue #12), its own realm beside the brands: users (argon2id hashes), sessions
/// (SHA-256 of opaque tokens, grouped in refresh families), `sk_live_` keys (SHA-256, last four
/// characters), each key's requests per UTC day, emailed codes (verify email, reset password),
/// and every scrape or crawl with its pages (the history, and async jobs' progress).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SpidergoUsers::Table)
                    .if_not_exists()
                    .col(pk_auto(SpidergoUsers::Id))
                    .col(string(SpidergoUsers::Name))
                    .col(string_uniq(SpidergoUsers::Email))
                    .col(string(SpidergoUsers::PasswordHash))
                    .col(timestamp_with_time_zone_null(
                        SpidergoUsers::EmailVerifiedAt,
                    ))
                    // Bumped by every key creation: the row lock that serialises a user's creates.
                    .col(integer(SpidergoUsers::KeySerial).default(0))
                    .col(timestamp_with_time_zone(SpidergoUsers::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SpidergoSessions::Table)
                    .if_not_exists()
                    .col(pk_auto(SpidergoSessions::Id))
                    .col(integer(SpidergoSessions::UserId))
                    .col(string(SpidergoSessions::Family))
                    .col(string(SpidergoSessions::Kind))
                    .col(string_uniq(SpidergoSessions::TokenHash))
                    .col(timestamp_with_time_zone(SpidergoSessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(SpidergoSessions::UsedAt))
                    .col(timestamp_with_time_zone_null(SpidergoSessions::RevokedAt))
                    .col(timestamp_with_time_zone(SpidergoSessions::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_spidergo_sessions_family")
                    .table(SpidergoSessions::Table)
                    .col(SpidergoSessions::Family)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SpidergoApiKeys::Table)
                    .if_not_exists()
                    .col(string(SpidergoApiKeys::Id).primary_key())
                    .col(integer(SpidergoApiKeys::UserId))
                    .col(string(SpidergoApiKeys::Name))
                    .col(string_uniq(SpidergoApiKeys::KeyHash))
                    .col(string(SpidergoApiKeys::Last4))
                    .col(integer(SpidergoApiKeys::DailyLimit))
                    .col(boolean(SpidergoApiKeys::IsActive))
                    .col(timestamp_with_time_zone(SpidergoApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(SpidergoApiKeys::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_spidergo_api_keys_user")
                    .table(SpidergoApiKeys::Table)
                    .col(SpidergoApiKeys::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SpidergoKeyUsage::Table)
                    .if_not_exists()
                    .col(string(SpidergoKeyUsage::KeyId))
                    .col(string(SpidergoKeyUsage::Day))
                    .col(integer(SpidergoKeyUsage::Requests))
                    .primary_key(
                        Index::create()
                            .col(SpidergoKeyUsage::KeyId)
                            .col(SpidergoKeyUsage::Day),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SpidergoCodes::Table)
                    .if_not_exists()
                    .col(pk_auto(SpidergoCodes::Id))
                    .col(integer(SpidergoCodes::UserId))
                    .col(string(SpidergoCodes::Purpose))
                    .col(string(SpidergoCodes::CodeHash))
                    .col(integer(SpidergoCodes::Attempts).default(0))
                    .col(timestamp_with_time_zone(SpidergoCodes::ExpiresAt))
                    .col(timestamp_with_time_zone_null(SpidergoCodes::UsedAt))
                    .col(timestamp_with_time_zone(SpidergoCodes::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SpidergoCrawls::Table)
                    .if_not_exists()
                    .col(string(SpidergoCrawls::Id).primary_key())
                    .col(integer(SpidergoCrawls::UserId))
                    .col(string_null(SpidergoCrawls::KeyId))
                    .col(string(SpidergoCrawls::Kind))
                    .col(text(SpidergoCrawls::Url))
                    .col(string(SpidergoCrawls::Status))
                    .col(text(SpidergoCrawls::Options))
                    .col(integer(SpidergoCrawls::TotalPages))
                    .col(big_integer(SpidergoCrawls::TotalResponseMs))
                    .col(big_integer(SpidergoCrawls::TotalPayload))
                    .col(string_null(SpidergoCrawls::StopReason))
                    .col(text_null(SpidergoCrawls::Skipped))
                    .col(text_null(SpidergoCrawls::Error))
                    .col(timestamp_with_time_zone(SpidergoCrawls::CreatedAt))
                    .col(timestamp_with_time_zone_null(SpidergoCrawls::FinishedAt))
                    // The process running it, which stamps it while it runs; a stale stamp
                    // means that process died.
                    .col(string_null(SpidergoCrawls::Owner))
                    .col(timestamp_with_time_zone_null(SpidergoCrawls::HeartbeatAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_spidergo_crawls_user_created")
                    .table(SpidergoCrawls::Table)
                    .col(SpidergoCrawls::UserId)
                    .col(SpidergoCrawls::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SpidergoPages::Table)
                    .if_not_exists()
                    .col(pk_auto(SpidergoPages::Id))
                    .col(string(SpidergoPages::CrawlId))
                    .col(integer(SpidergoPages::Seq))
                    .col(text(SpidergoPages::Data))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_spidergo_pages_crawl_seq")
                    .table(SpidergoPages::Table)
                    .col(SpidergoPages::CrawlId)
                    .col(SpidergoPages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SpidergoPages::Table.into_iden(),
            SpidergoCrawls::Table.into_iden(),
            SpidergoCodes::Table.into_iden(),
            SpidergoKeyUsage::Table.into_iden(),
            SpidergoApiKeys::Table.into_iden(),
            SpidergoSessions::Table.into_iden(),
            SpidergoUsers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum SpidergoUsers {
    Table,
    Id,
    Name,
    Email,
    PasswordHash,
    EmailVerifiedAt,
    KeySerial,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SpidergoSessions {
    Table,
    Id,
    UserId,
    Family,
    Kind,
    TokenHash,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SpidergoApiKeys {
    Table,
    Id,
    UserId,
    Name,
    KeyHash,
    Last4,
    DailyLimit,
    IsActive,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum SpidergoKeyUsage {
    Table,
    KeyId,
    Day,
    Requests,
}

#[derive(DeriveIden)]
enum SpidergoCodes {
    Table,
    Id,
    UserId,
    Purpose,
    CodeHash,
    Attempts,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SpidergoCrawls {
    Table,
    Id,
    UserId,
    KeyId,
    Kind,
    Url,
    Status,
    Options,
    TotalPages,
    TotalResponseMs,
    TotalPayload,
    StopReason,
    Skipped,
    Error,
    CreatedAt,
    FinishedAt,
    Owner,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum SpidergoPages {
    Table,
    Id,
    CrawlId,
    Seq,
    Data,
}
