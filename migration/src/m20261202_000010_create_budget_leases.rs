use sea_orm_migration::{prelude::*, schema::*};

/// Hard budgets shared by replicas: `token_budgets` holds what the leases of a token's budget
/// month have spent, `budget_leases` what each replica may still spend of it. A replica grants
/// itself a slice in one transaction that keeps `spent + Σ leases ≤ cap` (see `limits/lease.rs`).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TokenBudgets::Table)
                    .if_not_exists()
                    .col(integer(TokenBudgets::AgentKeyId))
                    .col(big_integer(TokenBudgets::PeriodStart))
                    .col(big_integer(TokenBudgets::SpentNanos))
                    .primary_key(
                        Index::create()
                            .col(TokenBudgets::AgentKeyId)
                            .col(TokenBudgets::PeriodStart),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BudgetLeases::Table)
                    .if_not_exists()
                    .col(integer(BudgetLeases::AgentKeyId))
                    .col(big_integer(BudgetLeases::PeriodStart))
                    .col(string(BudgetLeases::ReplicaId))
                    .col(big_integer(BudgetLeases::GrantedNanos))
                    .primary_key(
                        Index::create()
                            .col(BudgetLeases::AgentKeyId)
                            .col(BudgetLeases::PeriodStart)
                            .col(BudgetLeases::ReplicaId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BudgetLeases::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TokenBudgets::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum TokenBudgets {
    Table,
    AgentKeyId,
    PeriodStart,
    SpentNanos,
}

#[derive(DeriveIden)]
enum BudgetLeases {
    Table,
    AgentKeyId,
    PeriodStart,
    ReplicaId,
    GrantedNanos,
}
