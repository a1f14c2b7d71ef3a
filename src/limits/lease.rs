//! Hard budgets shared by replicas: each replica spends a token's month from a lease it granted
//! itself out of PostgreSQL, so the replicas together never pass the cap.
//!
//! `token_budgets` holds what the leases of a token's month have spent, `budget_leases` what each
//! replica may still spend. One transaction (an [`Exchange`]) reports a replica's spend, gives
//! back what it no longer needs and grants it a slice, keeping `spent + Σ leases ≤ cap`, where
//! `spent` is the larger of the leases' account and the ledger's (which also holds spend made
//! before the token's cap was hard). Requests then reserve from the local lease with no network
//! call; a slice is up to 64 worst cases, and only one when the room left is tight, so near the
//! cap every request takes exactly its worst case ("direct mode") and nothing is stranded. A lease
//! idle for a few seconds, and every lease at shutdown, goes back. A replica not seen for
//! `FORFEIT_AFTER` is taken for dead: its leases count as spent (never over; at most one slice
//! lost). Only PostgreSQL needs this; a SQLite file is one node and spends from the cap directly.

use super::cell::TokenCell;
use crate::coherence::Replicas;
use crate::error::{ApiError, ErrorCode};
use crate::money::Money;
use dashmap::DashMap;
use sea_orm::DatabaseConnection;
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// A replica not seen for this long has its leases forfeited. Far beyond the 4 s after which a
/// replica cut off from the database refuses requests, so a live replica never spends a lease
/// that was taken from it.
const FORFEIT_AFTER: Duration = Duration::from_secs(15);
/// At most this many worst cases per slice.
const SLICE_REQUESTS: i64 = 64;
/// How long a request waits for an exchange before it is told the budget cannot be checked. An
/// exchange that committed after this is safe: the database then counts what it reported twice
/// (this replica reports it again), which refuses early, never late.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);
/// Giving a lease back keeps no request waiting: a busy database gets longer.
const GIVE_BACK_TIMEOUT: Duration = Duration::from_secs(8);

/// The lease of a token's month on this replica, renewed one exchange at a time per token.
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    replicas: Replicas,
    turns: DashMap<i32, Arc<Mutex<()>>>,
}

/// What a request needs of the lease: its worst case ideally, at least its minimum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Want {
    pub worst: Money,
    pub least: Money,
    pub cap: Money,
}

/// What the cell hands over when an exchange begins (its lease is frozen until it ends).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub period_start: i64,
    /// Spent from the lease since the last exchange, reported now.
    pub spent: Money,
    /// Of the lease, what this replica keeps; the rest goes back.
    pub keep: Money,
    /// What the requests in flight hold of it.
    pub held: Money,
}

/// One transaction's account and request.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Exchange {
    token_id: i32,
    period_start: i64,
    spent: Money,
    keep: Money,
    /// More wanted (0: none), and the least worth having.
    more: i64,
    least: i64,
    cap: Money,
}

/// What the database answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exchanged {
    /// This replica's lease now.
    pub granted: Money,
    /// The lease had been forfeited (this replica was taken for dead): its spend is counted.
    pub forfeited: bool,
    /// The month's spend and every replica's leases after the exchange, for a refusal's message.
    pub spent: Money,
    pub leased: Money,
}

impl Leases {
    pub fn new(db: DatabaseConnection, replicas: Replicas) -> Leases {
        Leases {
            inner: Arc::new(Inner {
                db,
                replicas,
                turns: DashMap::new(),
            }),
        }
    }

    /// Renews the token's lease for a request wanting `want`: reports what was spent, keeps what
    /// is held and grants more. `None` when another exchange already made room. Runs detached:
    /// the cell's lease stays frozen until the exchange ends, so it ends even if the request
    /// that began it is dropped.
    pub async fn renew(
        &self,
        cell: Arc<TokenCell>,
        want: Want,
    ) -> Result<Option<Exchanged>, ApiError> {
        let leases = self.clone();
        let want = Some(want);
        tokio::spawn(async move { leases.exchange_in_turn(&cell, want, EXCHANGE_TIMEOUT).await })
            .await
            .map_err(|err| ApiError::internal(anyhow::anyhow!("budget lease task: {err}")))?
    }

    /// Gives the whole unheld lease back (idle, or shutting down), reporting what it spent.
    pub async fn give_back(&self, cell: &TokenCell) {
        // A failed exchange was logged; the lease stays and goes back at the next idle sweep.
        let _ = self.exchange_in_turn(cell, None, GIVE_BACK_TIMEOUT).await;
    }

    async fn exchange_in_turn(
        &self,
        cell: &TokenCell,
        want: Option<Want>,
        patience: Duration,
    ) -> Result<Option<Exchanged>, ApiError> {
        let token_id = cell.token_id;
        let _turn = self.turn(token_id).await;
        let Some(snapshot) = cell.begin_exchange(want.as_ref()) else {
            return Ok(None);
        };
        let exchange = Exchange::of(token_id, &snapshot, want);
        let outcome = tokio::time::timeout(patience, self.exchange(&exchange))
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut));
        if let Err(err) = &outcome {
            tracing::warn!(token_id, "exchanging a budget lease: {err}");
        }
        let answered = outcome.as_ref().ok().copied();
        cell.end_exchange(&snapshot, want.map(|w| w.cap), answered);
        outcome.map(Some).map_err(|_| {
            ApiError::new(
                ErrorCode::ServiceUnavailable,
                "the hard budget cannot be checked right now (the database is unreachable)",
            )
            .with_retry_after(Duration::from_secs(1))
        })
    }

    async fn turn(&self, token_id: i32) -> OwnedMutexGuard<()> {
        let lock = self.inner.turns.entry(token_id).or_default().clone();
        lock.lock_owned().await
    }

    /// The exchange, in one transaction holding the token's month row.
    async fn exchange(&self, ex: &Exchange) -> Result<Exchanged, sqlx::Error> {
        let pool: &PgPool = self.inner.db.get_postgres_connection_pool();
        let replica = self.inner.replicas.id();
        let mut tx = pool.begin().await?;
        let row_spent = lock_month(&mut tx, ex).await?;
        let forfeited_others = forfeit_dead(&mut tx, ex, replica).await?;
        let (mine, others) = leases_of(&mut tx, ex, replica).await?;
        let ledger: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM token_usage_hourly \
             WHERE agent_key_id = $1 AND hour_start >= $2",
        )
        .bind(ex.token_id)
        .bind(ex.period_start)
        .fetch_one(&mut *tx)
        .await?;

        let forfeited = mine.is_none();
        // A forfeited lease was counted whole: its spend and what it kept are in `spent` already.
        let (reported, kept) = if forfeited {
            (0, 0)
        } else {
            (ex.spent.nanos(), ex.keep.nanos())
        };
        let spent = row_spent + forfeited_others + reported;
        let remaining = ex.cap.nanos() - spent.max(ledger) - others - kept;
        let more = slice(remaining, ex.more, ex.least, self.inner.replicas.live());
        let granted = kept + more;
        sqlx::query(
            "UPDATE token_budgets SET spent_nanos = $3 WHERE agent_key_id = $1 AND period_start = $2",
        )
        .bind(ex.token_id)
        .bind(ex.period_start)
        .bind(spent)
        .execute(&mut *tx)
        .await?;
        store_lease(&mut tx, ex, replica, granted).await?;
        tx.commit().await?;
        Ok(Exchanged {
            granted: Money::from_nanos(granted),
            forfeited: forfeited && ex.had_lease(),
            spent: Money::from_nanos(spent.max(ledger)),
            leased: Money::from_nanos(others + granted),
        })
    }
}

impl Exchange {
    fn of(token_id: i32, snapshot: &Snapshot, want: Option<Want>) -> Exchange {
        // After the exchange the requests in flight hold `held` of `keep + more`.
        let free = snapshot.keep.nanos() - snapshot.held.nanos();
        let (more, least, cap) = match want {
            Some(w) => (
                (w.worst.nanos() - free).max(0),
                (w.least.nanos() - free).max(1),
                w.cap,
            ),
            None => (0, 0, Money::ZERO),
        };
        Exchange {
            token_id,
            period_start: snapshot.period_start,
            spent: snapshot.spent,
            keep: snapshot.keep,
            more,
            least,
            cap,
        }
    }

    fn had_lease(&self) -> bool {
        self.spent.nanos() > 0 || self.keep.nanos() > 0
    }
}

/// How much more to grant: `more` with room to spare, up to `SLICE_REQUESTS` of it or half of
/// this replica's share of the room, whichever is less; exactly `more` once the room left is
/// within two requests per live replica; all that is left if that is at least `least`; else
/// nothing.
fn slice(remaining: i64, more: i64, least: i64, live: u32) -> i64 {
    if more <= 0 {
        return 0;
    }
    let live = i64::from(live.max(1));
    if remaining >= more.saturating_mul(2 * live) {
        (remaining / (2 * live)).min(more.saturating_mul(SLICE_REQUESTS))
    } else if remaining >= more {
        more
    } else if remaining >= least {
        remaining
    } else {
        0
    }
}

/// Creates the month's row on first use and locks it; its spend so far.
async fn lock_month(tx: &mut Transaction<'_, Postgres>, ex: &Exchange) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO token_budgets (agent_key_id, period_start, spent_nanos) VALUES ($1, $2, 0) \
         ON CONFLICT DO NOTHING",
    )
    .bind(ex.token_id)
    .bind(ex.period_start)
    .execute(&mut **tx)
    .await?;
    sqlx::query_scalar(
        "SELECT spent_nanos FROM token_budgets WHERE agent_key_id = $1 AND period_start = $2 \
         FOR UPDATE",
    )
    .bind(ex.token_id)
    .bind(ex.period_start)
    .fetch_one(&mut **tx)
    .await
}

/// Removes the leases of replicas not seen for `FORFEIT_AFTER`; what they held, counted spent.
async fn forfeit_dead(
    tx: &mut Transaction<'_, Postgres>,
    ex: &Exchange,
    replica: &str,
) -> Result<i64, sqlx::Error> {
    let forfeited: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM budget_leases l WHERE agent_key_id = $1 AND period_start = $2 \
         AND replica_id <> $3 AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = l.replica_id \
         AND r.last_seen > now() - make_interval(secs => $4)) RETURNING granted_nanos",
    )
    .bind(ex.token_id)
    .bind(ex.period_start)
    .bind(replica)
    .bind(FORFEIT_AFTER.as_secs_f64())
    .fetch_all(&mut **tx)
    .await?;
    if !forfeited.is_empty() {
        tracing::warn!(
            token_id = ex.token_id,
            leases = forfeited.len(),
            "forfeited the budget leases of replicas taken for dead"
        );
    }
    Ok(forfeited.iter().sum())
}

/// This replica's lease (`None`: it has none, or it was forfeited) and the others' total.
async fn leases_of(
    tx: &mut Transaction<'_, Postgres>,
    ex: &Exchange,
    replica: &str,
) -> Result<(Option<i64>, i64), sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT replica_id, granted_nanos FROM budget_leases \
         WHERE agent_key_id = $1 AND period_start = $2",
    )
    .bind(ex.token_id)
    .bind(ex.period_start)
    .fetch_all(&mut **tx)
    .await?;
    let mine = rows.iter().find(|(id, _)| id == replica).map(|(_, g)| *g);
    let others = rows
        .iter()
        .filter(|(id, _)| id != replica)
        .map(|(_, g)| g)
        .sum();
    Ok((mine, others))
}

async fn store_lease(
    tx: &mut Transaction<'_, Postgres>,
    ex: &Exchange,
    replica: &str,
    granted: i64,
) -> Result<(), sqlx::Error> {
    let query = if granted > 0 {
        sqlx::query(
            "INSERT INTO budget_leases (agent_key_id, period_start, replica_id, granted_nanos) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (agent_key_id, period_start, replica_id) \
             DO UPDATE SET granted_nanos = EXCLUDED.granted_nanos",
        )
        .bind(ex.token_id)
        .bind(ex.period_start)
        .bind(replica)
        .bind(granted)
    } else {
        sqlx::query(
            "DELETE FROM budget_leases \
             WHERE agent_key_id = $1 AND period_start = $2 AND replica_id = $3",
        )
        .bind(ex.token_id)
        .bind(ex.period_start)
        .bind(replica)
    };
    query.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::slice;

    #[test]
    fn slices_are_generous_with_room_and_exact_near_the_cap() {
        // Plenty of room: half of this replica's share, at most 64 requests' worth.
        assert_eq!(slice(1_000_000, 100, 10, 1), 6_400);
        assert_eq!(slice(6_000, 100, 10, 3), 1_000);
        // Within two requests per replica: exactly what the request needs.
        assert_eq!(slice(500, 100, 10, 3), 100);
        // Less than the request's worst case: all that is left, if it pays for the least.
        assert_eq!(slice(60, 100, 10, 3), 60);
        assert_eq!(slice(9, 100, 10, 3), 0);
        assert_eq!(slice(-5, 100, 10, 1), 0);
        // Nothing wanted, nothing granted.
        assert_eq!(slice(1_000_000, 0, 0, 1), 0);
    }
}
