use sea_orm_migration::{prelude::*, schema::*};

/// OAuth sign-ins in progress: the PKCE verifier of each authorization request, keyed by the
/// SHA-256 of its `state` and bound to the invite that started it.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthFlows::Table)
                    .if_not_exists()
                    .col(pk_auto(OauthFlows::Id))
                    .col(string_uniq(OauthFlows::StateHash))
                    .col(integer(OauthFlows::InviteId))
                    .col(string(OauthFlows::CodeVerifier))
                    .col(timestamp_with_time_zone(OauthFlows::ExpiresAt))
                    .col(timestamp_with_time_zone(OauthFlows::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthFlows::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OauthFlows {
    Table,
    Id,
    StateHash,
    InviteId,
    CodeVerifier,
    ExpiresAt,
    CreatedAt,
}
