use sea_orm_migration::{prelude::*, schema::*};

/// Issue #14: a trace records how many of its prompt tokens were read from, and written to, the
/// provider's prompt cache (Anthropic reports both; OpenAI and Gemini the reads), since they are
/// billed at their own prices. One column per statement: SQLite adds one column at a time.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Traces::CacheReadTokens, Traces::CacheWriteTokens] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Traces::Table)
                        .add_column(big_integer(column).default(0))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Traces::CacheReadTokens, Traces::CacheWriteTokens] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Traces::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Traces {
    Table,
    CacheReadTokens,
    CacheWriteTokens,
}
