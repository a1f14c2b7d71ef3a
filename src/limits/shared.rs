//! Agent tokens' RPM/RPD windows shared by every replica, in Redis.
//!
//! One script call per limited request checks both windows and records the request in both, or
//! in neither, atomically and by Redis's clock. The minute window is a log of the last minute's
//! requests (a sorted set, exact); the day window counts per-minute buckets of the last 1,440
//! minutes, the oldest partial bucket in full (never more than the limit; a slot frees up to a
//! minute late). A request the budget then refuses is taken out again, so a refused request counts
//! against neither window, as on one node. While Redis cannot be reached the caller falls back
//! (`redis.on_error`).
//!
//! Redis keeps nothing on disk, so it can come back empty. Its data carries a generation
//! (`<prefix>:gen`); each replica keeps its own log of what it admitted (the windows in its cells,
//! which record every request however it was admitted) and, when the generation is not the one it
//! replayed into, first replays that log, then joins the generation's set of seeded replicas.
//! Requests wait for their replica's replay (milliseconds), and until every live replica has
//! replayed, an admitted request must also fit the replica's share of the limit (as while Redis is
//! away). So a restart of Redis never lets a window past its limit.

use super::budget::{LimitError, Limits};
use crate::coherence::Replicas;
use crate::error::RateHeaders;
use crate::redis_link::RedisLink;
use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use redis::Script;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// KEYS: the minute log, the day buckets, the generation, the generation's seeded replicas.
/// ARGV: rpm, rpd (0 = no limit), the request's member, 1 to record (0 to look only), the
/// generation this replica replayed into, the live replicas. Returns {verdict, minute used,
/// minute reset ms, day used, day reset ms, bucket}: verdict 0 admitted (and recorded), 1 over
/// RPM, 2 over RPD, 3 this replica must replay first (nothing recorded), 4 admitted and recorded
/// while some live replica has not replayed yet.
const ADMIT: &str = r#"
if redis.call('GET', KEYS[3]) ~= ARGV[5] then return {3, 0, 0, 0, 0, 0} end
local seeded = redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[6])
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
return {seeded and 0 or 4, minute_used, minute_reset, day_used, day_reset, bucket}
"#;

/// KEYS: the minute log, the day buckets. ARGV: a member prefix, n, n minute timestamps (ms),
/// then (minute bucket, requests) pairs. Adds one replica's log to windows Redis lost.
const REPLAY: &str = r#"
local n = tonumber(ARGV[2])
for i = 1, n do redis.call('ZADD', KEYS[1], ARGV[2 + i], ARGV[1] .. i) end
if n > 0 then redis.call('PEXPIRE', KEYS[1], 61000) end
local cursor = redis.call('HGET', KEYS[2], 'c')
cursor = cursor and tonumber(cursor)
local added, i = 0, 3 + n
while ARGV[i] do
  local bucket, count = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  redis.call('HINCRBY', KEYS[2], tostring(bucket), count)
  added = added + count
  if not cursor or bucket < cursor then cursor = bucket end
  i = i + 2
end
if added > 0 then
  redis.call('HINCRBY', KEYS[2], 't', added)
  redis.call('HSET', KEYS[2], 'c', cursor)
  redis.call('PEXPIRE', KEYS[2], 86460000)
end
return added
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
    replay: Arc<Script>,
    replicas: Replicas,
    generation: Arc<Generation>,
}

/// What this replica admitted in a scope's windows (its log), to replay into an empty Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    pub scope: Scope,
    /// Wall-clock milliseconds of the requests of the last minute.
    pub minute: Vec<i64>,
    /// (wall-clock milliseconds, requests) of the last day.
    pub day: Vec<(i64, u32)>,
}

/// Gathers the logs of one kind of window (tokens' or keys') from their cells.
pub type ShadowSource = Arc<dyn Fn() -> BoxFuture<'static, Vec<Shadow>> + Send + Sync>;

/// The generation of Redis's data this replica replayed its log into.
#[derive(Default)]
struct Generation {
    replayed: ArcSwap<String>,
    /// One replay at a time; requests that found the generation changed wait on it.
    replaying: tokio::sync::Mutex<()>,
    sources: std::sync::Mutex<Vec<ShadowSource>>,
    /// A call failed (Redis away): once it answers again, start a new generation.
    outage: AtomicBool,
}

fn fresh_generation(replicas: &Replicas) -> String {
    crate::random::hex_secret(8).unwrap_or_else(|_| replicas.id().to_owned())
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
    generation: Arc<String>,
    member: String,
    bucket: i64,
}

/// What the shared windows said.
#[derive(Debug)]
pub enum Checked {
    Admitted {
        rate: Option<RateHeaders>,
        recorded: Recorded,
        /// `false` while some live replica has not replayed its log into a Redis that came
        /// back empty: the request must also fit this replica's share.
        trusted: bool,
    },
    Refused(LimitError),
}

/// The script's verdicts.
const ADMITTED: i64 = 0;
const OVER_MINUTE: i64 = 1;
const OVER_DAY: i64 = 2;
const MUST_REPLAY: i64 = 3;
const ADMITTED_UNSEEDED: i64 = 4;

/// How long a generation's own keys outlive the last check of a live replica.
const GENERATION_KEPT: Duration = Duration::from_secs(7 * 86_400);

/// How often a replica checks that Redis still holds the generation it replayed into.
const GENERATION_CHECK: Duration = Duration::from_secs(1);

impl SharedWindows {
    pub fn new(link: RedisLink, replicas: Replicas) -> SharedWindows {
        SharedWindows {
            link,
            admit: Arc::new(Script::new(ADMIT)),
            undo: Arc::new(Script::new(UNDO)),
            replay: Arc::new(Script::new(REPLAY)),
            replicas,
            generation: Arc::default(),
        }
    }

    /// Adds a kind of window whose log is replayed into an empty Redis.
    pub fn add_source(&self, source: ShadowSource) {
        if let Ok(mut sources) = self.generation.sources.lock() {
            sources.push(source);
        }
    }

    fn generation_keys(&self, generation: &str) -> (String, String) {
        let prefix = self.link.prefix();
        (
            format!("{prefix}:gen"),
            format!("{prefix}:seeded:{generation}"),
        )
    }

    /// Replays this replica's log if Redis does not hold the generation it replayed into (it
    /// restarted empty, or this replica just started), then joins the generation.
    pub async fn replay_if_needed(&self) -> redis::RedisResult<()> {
        let _one = self.generation.replaying.lock().await;
        self.replay_in_turn().await
    }

    /// After an outage: the new generation, unless another request is already on it (then this
    /// one is told Redis is not ready, and falls back like during the outage, never waiting).
    async fn replay_after_outage(&self) -> redis::RedisResult<()> {
        let Ok(_one) = self.generation.replaying.try_lock() else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "the rate windows are being replayed after an outage",
            )));
        };
        self.replay_in_turn().await
    }

    async fn replay_in_turn(&self) -> redis::RedisResult<()> {
        let mut conn = self.link.conn();
        let (gen_key, _) = self.generation_keys("");
        if self.generation.outage.load(Ordering::Acquire) {
            // This replica admitted on its own while Redis was away: a new generation (fresh
            // window keys) into which every replica replays its whole log, so nothing counts
            // twice and nothing admitted meanwhile is missing.
            let fresh = fresh_generation(&self.replicas);
            let _: () = redis::cmd("SET")
                .arg(&gen_key)
                .arg(&fresh)
                .query_async(&mut conn)
                .await?;
            self.generation.outage.store(false, Ordering::Release);
        }
        let current: Option<String> = redis::cmd("GET")
            .arg(&gen_key)
            .query_async(&mut conn)
            .await?;
        let replayed = self.generation.replayed.load_full();
        if current.as_deref() == Some(replayed.as_str()) {
            return self.keep_generation(&replayed).await;
        }
        // The generation to replay into: the current one, or a new one if Redis lost it.
        let _: Option<String> = redis::cmd("SET")
            .arg(&gen_key)
            .arg(fresh_generation(&self.replicas))
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        let joined: String = redis::cmd("GET")
            .arg(&gen_key)
            .query_async(&mut conn)
            .await?;
        let sources: Vec<ShadowSource> = self
            .generation
            .sources
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let mut replayed_requests = 0;
        let member = format!(
            "{}:replayed:{}",
            self.replicas.id(),
            crate::random::hex_secret(4).unwrap_or_default()
        );
        for source in sources {
            for shadow in source().await {
                replayed_requests += self.replay_one(&shadow, &joined, &member).await?;
            }
        }
        let (_, seeded) = self.generation_keys(&joined);
        let _: i64 = redis::cmd("SADD")
            .arg(&seeded)
            .arg(self.replicas.id())
            .query_async(&mut conn)
            .await?;
        self.keep_generation(&joined).await?;
        if current.is_some() || replayed_requests > 0 {
            tracing::warn!(
                replayed_requests,
                "Redis did not hold this replica's windows: replayed them"
            );
        }
        self.generation.replayed.store(Arc::new(joined));
        Ok(())
    }

    /// Keeps the generation's keys for `GENERATION_KEPT` after the last replica stopped checking
    /// it (a deployment that is gone leaves nothing behind for long).
    async fn keep_generation(&self, generation: &str) -> redis::RedisResult<()> {
        let (gen_key, seeded) = self.generation_keys(generation);
        let kept = GENERATION_KEPT.as_millis() as u64;
        redis::pipe()
            .cmd("PEXPIRE")
            .arg(gen_key)
            .arg(kept)
            .ignore()
            .cmd("PEXPIRE")
            .arg(seeded)
            .arg(kept)
            .ignore()
            .query_async(&mut self.link.conn())
            .await
    }

    async fn replay_one(
        &self,
        shadow: &Shadow,
        generation: &str,
        member: &str,
    ) -> redis::RedisResult<i64> {
        if shadow.minute.is_empty() && shadow.day.is_empty() {
            return Ok(0);
        }
        let (minute, day) = self.keys(shadow.scope, generation);
        let mut call = self.replay.key(minute);
        call.key(day)
            .arg(format!("{member}:"))
            .arg(shadow.minute.len())
            .arg(&shadow.minute);
        for &(at_ms, requests) in &shadow.day {
            call.arg(at_ms.div_euclid(60_000)).arg(requests);
        }
        call.invoke_async(&mut self.link.conn()).await
    }

    /// Checks every second that Redis holds this replica's generation (so an idle replica
    /// replays too), until `stop`.
    pub async fn follow_generation(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut check = tokio::time::interval(GENERATION_CHECK);
        loop {
            tokio::select! {
                _ = check.tick() => {
                    if let Err(err) = self.replay_if_needed().await {
                        crate::redis_link::warn_unreachable("replaying the rate windows waits", &err);
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// The keys of a scope's windows; hash-tagged so a Redis Cluster keeps them in one slot.
    /// Named by the generation too: a new generation starts from empty windows.
    fn keys(&self, scope: Scope, generation: &str) -> (String, String) {
        let prefix = self.link.prefix();
        let (kind, id) = match scope {
            Scope::Token(id) => ('t', id),
            Scope::Key(id) => ('k', id),
        };
        (
            format!("{prefix}:{{{kind}{id}}}:rpm:{generation}"),
            format!("{prefix}:{{{kind}{id}}}:rpd:{generation}"),
        )
    }

    /// Checks a key's minute and day limits and, if both pass, records one request in both:
    /// `Some(trusted)` (see `Checked::Admitted`). `None`: the key is at one of its limits, and
    /// nothing was recorded.
    pub async fn admit_key(
        &self,
        key_id: i32,
        per_minute: Option<u32>,
        per_day: Option<u32>,
        member: &str,
    ) -> redis::RedisResult<Option<(Recorded, bool)>> {
        let scope = Scope::Key(key_id);
        let ([verdict, _, _, _, _, bucket], generation) =
            self.call(scope, per_minute, per_day, member, true).await?;
        let recorded = Recorded {
            scope,
            generation,
            member: member.to_owned(),
            bucket,
        };
        Ok(match verdict {
            ADMITTED => Some((recorded, true)),
            ADMITTED_UNSEEDED => Some((recorded, false)),
            _ => None,
        })
    }

    /// Checks the token's windows and, if both pass, records `member` in both.
    pub async fn admit(
        &self,
        token_id: i32,
        limits: &Limits,
        member: &str,
    ) -> redis::RedisResult<Checked> {
        let scope = Scope::Token(token_id);
        let (answer, generation) = self
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
            OVER_MINUTE => Ok(Checked::Refused(LimitError::PerMinute {
                limit: limits.rpm.unwrap_or(0),
                retry_after: ms(minute_reset),
            })),
            OVER_DAY => Ok(Checked::Refused(LimitError::PerDay {
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
                    generation,
                    member: member.to_owned(),
                    bucket,
                },
                trusted: verdict == ADMITTED,
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
        let ([_, minute_used, _, day_used, _, _], _) =
            self.call(scope, limits.rpm, limits.rpd, "", false).await?;
        let left =
            |limit: u32, used: i64| limit.saturating_sub(used.clamp(0, i64::from(u32::MAX)) as u32);
        Ok((
            limits.rpm.map(|l| left(l, minute_used)),
            limits.rpd.map(|l| left(l, day_used)),
        ))
    }

    /// One script call; when Redis lacks this replica's log, replays it first and calls again.
    async fn call(
        &self,
        scope: Scope,
        per_minute: Option<u32>,
        per_day: Option<u32>,
        member: &str,
        record: bool,
    ) -> redis::RedisResult<([i64; 6], Arc<String>)> {
        if self.generation.outage.load(Ordering::Acquire) {
            self.replay_after_outage().await?;
        }
        for _ in 0..2 {
            let replayed = self.generation.replayed.load_full();
            let answer = self
                .call_once(scope, per_minute, per_day, member, record, &replayed)
                .await
                .inspect_err(|_| self.generation.outage.store(true, Ordering::Release))?;
            if answer[0] != MUST_REPLAY {
                return Ok((answer, replayed));
            }
            self.replay_if_needed().await?;
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "Redis's windows changed generation twice during one request",
        )))
    }

    async fn call_once(
        &self,
        scope: Scope,
        per_minute: Option<u32>,
        per_day: Option<u32>,
        member: &str,
        record: bool,
        replayed: &str,
    ) -> redis::RedisResult<[i64; 6]> {
        let (minute, day) = self.keys(scope, replayed);
        let (generation, seeded) = self.generation_keys(replayed);
        let answer: Vec<i64> = self
            .admit
            .key(minute)
            .key(day)
            .key(generation)
            .key(seeded)
            .arg(per_minute.unwrap_or(0))
            .arg(per_day.unwrap_or(0))
            .arg(member)
            .arg(if record { 1 } else { 0 })
            .arg(replayed)
            .arg(self.replicas.live().max(1))
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
            let (minute, day) = this.keys(recorded.scope, &recorded.generation);
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
