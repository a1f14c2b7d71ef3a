//! `limit` and `offset` of the paged database lists (traces, alerts): checked once, the same way.

use crate::error::ApiError;

/// 50 rows unless asked; at most 200.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

/// The page size to read: 400 naming the field when `limit` is outside 1–200 or `offset` past
/// what a database integer holds (2^63 − 1).
pub fn checked(limit: Option<u64>, offset: u64) -> Result<u64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "must be between 1 and 200",
        ));
    }
    if i64::try_from(offset).is_err() {
        return Err(ApiError::invalid_field(
            "offset",
            "must be at most 2^63 - 1",
        ));
    }
    Ok(limit)
}
