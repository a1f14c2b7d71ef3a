//! Operator alias overrides. The only file of the catalog that touches `entity`.

use chrono::{DateTime, Utc};
use entity::alias_override;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};

/// Every stored override: (alias id, chain).
pub async fn load_overrides(db: &DatabaseConnection) -> Result<Vec<(String, Vec<String>)>, DbErr> {
    let rows = alias_override::Entity::find().all(db).await?;
    rows.into_iter()
        .map(|row| {
            let models = serde_json::from_str(&row.models).map_err(|_| {
                DbErr::Custom(format!("alias override {}: corrupt models", row.alias_id))
            })?;
            Ok((row.alias_id, models))
        })
        .collect()
}

/// The stored chain of `alias_id`, if the operator replaced it.
pub async fn find_override(
    db: &DatabaseConnection,
    alias_id: &str,
) -> Result<Option<Vec<String>>, DbErr> {
    let row = alias_override::Entity::find_by_id(alias_id.to_owned())
        .one(db)
        .await?;
    Ok(row.and_then(|r| serde_json::from_str(&r.models).ok()))
}

pub async fn save_override(
    db: &DatabaseConnection,
    alias_id: &str,
    models: &[String],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = alias_override::ActiveModel {
        alias_id: Set(alias_id.to_owned()),
        models: Set(serde_json::Value::from(models.to_vec()).to_string()),
        updated_at: Set(now),
    };
    alias_override::Entity::insert(row)
        .on_conflict(
            OnConflict::column(alias_override::Column::AliasId)
                .update_columns([
                    alias_override::Column::Models,
                    alias_override::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await
        .map(|_| ())
}
