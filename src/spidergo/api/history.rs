//! The history tables: one `spidergo_crawls` row per scrape, crawl or job, and its pages in
//! `spidergo_pages` (content capped). Pages are written as they finish, so a job's progress is
//! readable while it runs and what it fetched survives its process.

use crate::spidergo::crawl::run::{PageOut, Summary};
use chrono::{DateTime, Utc};
use entity::{spidergo_crawl as crawl, spidergo_page as page};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

pub use entity::spidergo_crawl::Model as CrawlRow;

/// Statuses of a crawl row.
pub const RUNNING: &str = "running";
pub const CANCELLING: &str = "cancelling";
pub const COMPLETED: &str = "completed";
pub const CANCELLED: &str = "cancelled";
pub const INTERRUPTED: &str = "failed: interrupted";

/// A new crawl row: who, what, with which options.
pub struct NewCrawl<'a> {
    pub id: &'a str,
    pub user_id: i32,
    pub key_id: Option<&'a str>,
    pub kind: &'a str,
    pub url: &'a str,
    pub options: String,
    /// This process (`SpiderGo::instance`).
    pub owner: &'a str,
}

pub async fn start(
    db: &DatabaseConnection,
    new: NewCrawl<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    crawl::ActiveModel {
        id: Set(new.id.to_owned()),
        user_id: Set(new.user_id),
        key_id: Set(new.key_id.map(str::to_owned)),
        kind: Set(new.kind.to_owned()),
        url: Set(new.url.to_owned()),
        status: Set(RUNNING.to_owned()),
        options: Set(new.options),
        total_pages: Set(0),
        total_response_ms: Set(0),
        total_payload: Set(0),
        stop_reason: Set(None),
        skipped: Set(None),
        error: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
        owner: Set(Some(new.owner.to_owned())),
        heartbeat_at: Set(Some(now)),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Keeps at most `chars` characters of a text field.
fn cap(text: &mut String, chars: usize) {
    if let Some((at, _)) = text.char_indices().nth(chars) {
        text.truncate(at);
    }
}

/// Appends pages `first_seq..` and the running totals, in one transaction.
pub async fn append(
    db: &DatabaseConnection,
    crawl_id: &str,
    first_seq: i32,
    pages: &[PageOut],
    totals: (i32, i64, i64),
    content_chars: usize,
) -> Result<(), DbErr> {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await?;
    let rows = pages.iter().enumerate().map(|(i, p)| {
        let mut p = p.clone();
        cap(&mut p.content, content_chars);
        for text in [&mut p.markdown, &mut p.html].into_iter().flatten() {
            cap(text, content_chars);
        }
        page::ActiveModel {
            crawl_id: Set(crawl_id.to_owned()),
            seq: Set(first_seq + i as i32),
            data: Set(serde_json::to_string(&p).unwrap_or_default()),
            ..Default::default()
        }
    });
    if !pages.is_empty() {
        page::Entity::insert_many(rows).exec(&txn).await?;
    }
    crawl::Entity::update_many()
        .col_expr(crawl::Column::TotalPages, Expr::value(totals.0))
        .col_expr(crawl::Column::TotalResponseMs, Expr::value(totals.1))
        .col_expr(crawl::Column::TotalPayload, Expr::value(totals.2))
        .filter(crawl::Column::Id.eq(crawl_id))
        .exec(&txn)
        .await?;
    txn.commit().await
}

/// The final state: totals, why it stopped, and `status`.
pub async fn finish(
    db: &DatabaseConnection,
    crawl_id: &str,
    summary: &Summary,
    status: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    crawl::Entity::update_many()
        .col_expr(crawl::Column::Status, Expr::value(status))
        .col_expr(crawl::Column::TotalPages, Expr::value(summary.pages as i32))
        .col_expr(
            crawl::Column::TotalResponseMs,
            Expr::value(summary.response_ms as i64),
        )
        .col_expr(
            crawl::Column::TotalPayload,
            Expr::value(summary.payload as i64),
        )
        .col_expr(
            crawl::Column::StopReason,
            Expr::value(summary.stop.as_str()),
        )
        .col_expr(
            crawl::Column::Skipped,
            Expr::value(serde_json::to_string(&summary.skipped).unwrap_or_default()),
        )
        .col_expr(crawl::Column::FinishedAt, Expr::value(now))
        .filter(crawl::Column::Id.eq(crawl_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Stamps a running job as alive and returns its status (`cancelling` when a cancel came
/// through another replica).
pub async fn heartbeat(
    db: &DatabaseConnection,
    crawl_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, DbErr> {
    crawl::Entity::update_many()
        .col_expr(crawl::Column::HeartbeatAt, Expr::value(now))
        .filter(crawl::Column::Id.eq(crawl_id))
        .exec(db)
        .await?;
    Ok(crawl::Entity::find_by_id(crawl_id)
        .one(db)
        .await?
        .map(|row| row.status))
}

/// Asks a running job to stop; `false` when it is not running.
pub async fn request_cancel(db: &DatabaseConnection, crawl_id: &str) -> Result<bool, DbErr> {
    let done = crawl::Entity::update_many()
        .col_expr(crawl::Column::Status, Expr::value(CANCELLING))
        .filter(crawl::Column::Id.eq(crawl_id))
        .filter(crawl::Column::Status.eq(RUNNING))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Which running crawls [`interrupt`] ends.
pub enum Interrupted<'a> {
    /// Those whose process stopped stamping them before this.
    StaleBefore(DateTime<Utc>),
    /// Every one this process runs (it is stopping).
    OwnedBy(&'a str),
}

/// Marks running crawls `failed: interrupted`.
pub async fn interrupt(
    db: &DatabaseConnection,
    which: Interrupted<'_>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let running = Condition::all().add(crawl::Column::Status.is_in([RUNNING, CANCELLING]));
    let which = match which {
        Interrupted::OwnedBy(owner) => running.add(crawl::Column::Owner.eq(owner)),
        Interrupted::StaleBefore(at) => running.add(crawl::Column::HeartbeatAt.lt(at)),
    };
    let done = crawl::Entity::update_many()
        .col_expr(crawl::Column::Status, Expr::value(INTERRUPTED))
        .col_expr(crawl::Column::FinishedAt, Expr::value(now))
        .filter(which)
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// One of the user's crawls.
pub async fn get(
    db: &DatabaseConnection,
    user_id: i32,
    crawl_id: &str,
) -> Result<Option<CrawlRow>, DbErr> {
    crawl::Entity::find_by_id(crawl_id)
        .filter(crawl::Column::UserId.eq(user_id))
        .one(db)
        .await
}

/// The user's crawls, newest first, after the crawl `cursor` names.
pub async fn list(
    db: &DatabaseConnection,
    user_id: i32,
    cursor: Option<&CrawlRow>,
    limit: u64,
) -> Result<Vec<CrawlRow>, DbErr> {
    let mut query = crawl::Entity::find().filter(crawl::Column::UserId.eq(user_id));
    if let Some(after) = cursor {
        query = query.filter(
            Condition::any()
                .add(crawl::Column::CreatedAt.lt(after.created_at))
                .add(
                    Condition::all()
                        .add(crawl::Column::CreatedAt.eq(after.created_at))
                        .add(crawl::Column::Id.lt(after.id.clone())),
                ),
        );
    }
    query
        .order_by_desc(crawl::Column::CreatedAt)
        .order_by_desc(crawl::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Pages of a crawl with `seq` above `after`, in order.
pub async fn pages(
    db: &DatabaseConnection,
    crawl_id: &str,
    after: i32,
    limit: u64,
) -> Result<Vec<(i32, PageOut)>, DbErr> {
    let rows = page::Entity::find()
        .filter(page::Column::CrawlId.eq(crawl_id))
        .filter(page::Column::Seq.gt(after))
        .order_by_asc(page::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| Some((row.seq, serde_json::from_str(&row.data).ok()?)))
        .collect())
}
