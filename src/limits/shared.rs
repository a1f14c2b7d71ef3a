//! Agent tokens' RPM/RPD windows shared by every replica, in Redis.
//!
//! One script call per limited request checks both windows and records the request in both, or
//! in neither, atomically and by Redis's clock. The minute window is a log of the last minute's
//! requests (a sorted set, exact); the day window counts per-minute buckets of the last 1,440
//! minutes, the oldest partial bucket in full (never more than the limit; a slot frees up to a
//! minute late). A request the budget then refuses is taken out again, so a refused request counts
//! against neither window, as on one node. While Redis cannot be reached the caller falls back
//! (`redis.on_error`).

use super::budget::{LimitError, Limits};
use crate::error::RateHeaders;
use crate::redis_link::RedisLink;
use redis::Script;
use std::sync::Arc;
use std::time::Duration;

/// KEYS: the minute log, the day buckets. ARGV: rpm, rpd (0 = no limit), the request's member,
/// 1 to record (0 to look only). Returns {verdict, minute used, minute reset ms, day used, day
/// reset ms, bucket}: verdict 0 admitted (and recorded), 1 over RPM, 2 over RPD.
const ADMIT: &str = r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local rpm, rpd, member, record = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local minute_used, minute_reset = 0, 0
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  minute_used = redis.call('ZCARD', KEYS[1])
  if minute_used > 0 then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    minute_reset = tonumber(oldest[2]) + 60000 - now
  end
end
local bucket = math.floor(now / 60000)
local day_used, day_reset = 0, 0
if rpd > 0 then
  local first = bucket - 1439
  local cursor = tonumber(redis.call('HGET', KEYS[2], 'c') or bucket)
  day_used = tonumber(redis.call('HGET', KEYS[2], 't') or '0')
  -- The cursor is the oldest bucket that may hold requests: drop what left the window, skip
  -- empty buckets. Each bucket is passed once, so this is O(1) per request on average.
  while cursor < bucket do
    local count = redis.call('HGET', KEYS[2], tostring(cursor))
    if cursor < first then
      if count then
        day_used = day_used - tonumber(count)
        redis.call('HDEL', KEYS[2], tostring(cursor))
      end
    elseif count then
      break
    end
    cursor = cursor + 1
  end
  redis.call('HSET', KEYS[2], 'c', cursor, 't', day_used)
  if day_used > 0 then day_reset = (cursor + 1440) * 60000 - now end
end
if rpm > 0 and minute_used >= rpm then return {1, minute_used, minute_reset, day_used, day_reset, bucket} end
if rpd > 0 and day_used >= rpd then return {2, minute_used, minute_reset, day_used, day_reset, bucket} end
if record then
  if rpm > 0 then
    redis.call('ZADD', KEYS[1], now, member)
    redis.call('PEXPIRE', KEYS[1], 61000)
    if minute_used == 0 then minute_reset = 60000 end
    minute_used = minute_used + 1
  end
  if rpd > 0 then
    redis.call('HINCRBY', KEYS[2], tostring(bucket), 1)
    redis.call('HINCRBY', KEYS[2], 't', 1)
    redis.call('PEXPIRE', KEYS[2], 86460000)
    if day_used == 0 then day_reset = 86400000 end
    day_used = day_used + 1
  end
end
return {0, minute_used, minute_reset, day_used, day_reset, bucket}
"#;

/// KEYS as above; ARGV: member, bucket. Takes a recorded request out of both windows.
const UNDO: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
local count = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if count > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
  redis.call('HINCRBY', KEYS[2], 't', -1)
end
return 1
"#;

#[derive(Clone)]
pub struct SharedWindows {
    link: RedisLink,
    admit: Arc<Script>,
    undo: Arc<Script>,
}

/// Whose windows: an agent token's RPM/RPD, or a provider key's minute/day limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Token(i32),
    Key(i32),
}

/// A request recorded in the shared windows, to take out again if the budget refuses it.
#[derive(Debug)]
pub struct Recorded {
    scope: Scope,
    member: String,
    bucket: i64,
}

/// What the shared windows said.
#[derive(Debug)]
pub enum Checked {
    Admitted {
        rate: Option<RateHeaders>,
        recorded: Recorded,
    },
    Refused(LimitError),
}

impl SharedWindows {
    pub fn new(link: RedisLink) -> SharedWindows {
        SharedWindows {
            link,
            admit: Arc::new(Script::new(ADMIT)),
            undo: Arc::new(Script::new(UNDO)),
        }
    }

    /// The keys of a scope's windows; hash-tagged so a Redis Cluster keeps them in one slot.
    fn keys(&self, scope: Scope) -> (String, String) {
        let prefix = self.link.prefix();
        let (kind, id) = match scope {
            Scope::Token(id) => ('t', id),
            Scope::Key(id) => ('k', id),
        };
        (
            format!("{prefix}:{{{kind}{id}}}:rpm"),
            format!("{prefix}:{{{kind}{id}}}:rpd"),
        )
    }

    /// Checks a key's minute and day limits and, if both pass, records one request in both.
    /// `false`: the key is at one of its limits, and nothing was recorded.
    pub async fn admit_key(
        &self,
        key_id: i32,
        per_minute: Option<u32>,
        per_day: Option<u32>,
        member: &str,
    ) -> redis::RedisResult<bool> {
        let scope = Scope::Key(key_id);
        let [verdict, ..] = self.call(scope, per_minute, per_day, member, true).await?;
        Ok(verdict == 0)
    }

    /// Checks the token's windows and, if both pass, records `member` in both.
    pub async fn admit(
        &self,
        token_id: i32,
        limits: &Limits,
        member: &str,
    ) -> redis::RedisResult<Checked> {
        let scope = Scope::Token(token_id);
        let answer = self
            .call(scope, limits.rpm, limits.rpd, member, true)
            .await?;
        let [
            verdict,
            minute_used,
            minute_reset,
            day_used,
            day_reset,
            bucket,
        ] = answer;
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        let used = |v: i64| v.clamp(0, i64::from(u32::MAX)) as u32;
        match verdict {
            1 => Ok(Checked::Refused(LimitError::PerMinute {
                limit: limits.rpm.unwrap_or(0),
                retry_after: ms(minute_reset),
            })),
            2 => Ok(Checked::Refused(LimitError::PerDay {
                limit: limits.rpd.unwrap_or(0),
                retry_after: ms(day_reset),
            })),
            _ => Ok(Checked::Admitted {
                rate: tighter(
                    limits
                        .rpm
                        .map(|l| headers(l, used(minute_used), ms(minute_reset))),
                    limits
                        .rpd
                        .map(|l| headers(l, used(day_used), ms(day_reset))),
                ),
                recorded: Recorded {
                    scope,
                    member: member.to_owned(),
                    bucket,
                },
            }),
        }
    }

    /// Remaining requests in the minute and day windows, recording nothing.
    pub async fn remaining(
        &self,
        token_id: i32,
        limits: &Limits,
    ) -> redis::RedisResult<(Option<u32>, Option<u32>)> {
        let scope = Scope::Token(token_id);
        let [_, minute_used, _, day_used, _, _] =
            self.call(scope, limits.rpm, limits.rpd, "", false).await?;
        let left =
            |limit: u32, used: i64| limit.saturating_sub(used.clamp(0, i64::from(u32::MAX)) as u32);
        Ok((
            limits.rpm.map(|l| left(l, minute_used)),
            limits.rpd.map(|l| left(l, day_used)),
        ))
    }

    async fn call(
        &self,
        scope: Scope,
        per_minute: Option<u32>,
        per_day: Option<u32>,
        member: &str,
        record: bool,
    ) -> redis::RedisResult<[i64; 6]> {
        let (minute, day) = self.keys(scope);
        let answer: Vec<i64> = self
            .admit
            .key(minute)
            .key(day)
            .arg(per_minute.unwrap_or(0))
            .arg(per_day.unwrap_or(0))
            .arg(member)
            .arg(if record { 1 } else { 0 })
            .invoke_async(&mut self.link.conn())
            .await?;
        answer.try_into().map_err(|_| {
            redis::RedisError::from((redis::ErrorKind::Parse, "unexpected limiter answer"))
        })
    }

    /// Takes a recorded request out of both windows (the budget refused it). Never waits.
    pub fn undo(&self, recorded: Recorded) {
        let this = self.clone();
        actix_web::rt::spawn(async move {
            let (minute, day) = this.keys(recorded.scope);
            let undone: redis::RedisResult<i64> = this
                .undo
                .key(minute)
                .key(day)
                .arg(&recorded.member)
                .arg(recorded.bucket)
                .invoke_async(&mut this.link.conn())
                .await;
            if let Err(err) = undone {
                tracing::warn!("taking a refused request out of the shared windows: {err}");
            }
        });
    }

    /// Whether Redis answers now (for `/health`).
    pub async fn reachable(&self) -> bool {
        self.link.reachable().await
    }
}

fn headers(limit: u32, used: u32, reset: Duration) -> RateHeaders {
    RateHeaders {
        limit,
        remaining: limit.saturating_sub(used),
        reset,
    }
}

/// The window with fewer requests left, as on one node.
fn tighter(minute: Option<RateHeaders>, day: Option<RateHeaders>) -> Option<RateHeaders> {
    match (minute, day) {
        (Some(m), Some(d)) => Some(if d.remaining < m.remaining { d } else { m }),
        (m, d) => m.or(d),
    }
}
