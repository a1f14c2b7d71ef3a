//! Key health shared by replicas through Redis: consecutive failures, the cool-down, a 429's rest
//! and the single probe per cool-down, plus each key's minute/day limits (`SharedWindows`).
//!
//! A failure is counted in Redis atomically (`HINCRBY` in a script, by Redis's clock) and
//! published; every replica adopts the shared state into its `ProviderKeys` on the message, and
//! re-reads every key every few seconds in case one was lost (pub/sub is at most once). Routing
//! still reads the local snapshot, so the hot path pays nothing for health. A success on a key
//! that had failures clears its state. An unhealthy key past its cool-down is probed by the one
//! replica that wins `SET NX` on the probe key; the others keep skipping it. While Redis is away
//! each replica keeps its own view (as one node does) and key limits follow `redis.on_error`.

use super::handle::Health;
use super::key_state::{FailureKind, KeyLimits, UNHEALTHY_AFTER};
use crate::coherence::Replicas;
use crate::config::OnRedisError;
use crate::limits::SharedWindows;
use crate::redis_link::RedisLink;
use crate::vault::Vault;
use futures_util::StreamExt;
use redis::Script;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// How often every key's shared state is read again, for messages pub/sub lost.
const RESYNC_EVERY: Duration = Duration::from_secs(5);
/// Keys read per round trip when resyncing.
const RESYNC_BATCH: usize = 500;

/// The tail every script ends with: the key's state as {failures, rest left ms, cool-down left
/// ms}, by Redis's clock (`now` and `KEYS[1]`, the health hash, are set by the script's head).
const STATE: &str = r#"
local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
local r = tonumber(redis.call('HGET', KEYS[1], 'r') or '0') - now
local c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0') - now
return {f, math.max(r, 0), math.max(c, 0)}
"#;

const NOW: &str = r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"#;

/// KEYS: health hash, probe key. ARGV: rest ms (0: none), cool-down ms, failures that make a
/// key unhealthy, channel, message. Counts one failure, publishes, answers the new state.
const FAIL: &str = r#"
local f = redis.call('HINCRBY', KEYS[1], 'f', 1)
local rest = tonumber(ARGV[1])
if rest > 0 and now + rest > tonumber(redis.call('HGET', KEYS[1], 'r') or '0') then
  redis.call('HSET', KEYS[1], 'r', now + rest)
end
if f >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'c', now + tonumber(ARGV[2]))
  redis.call('DEL', KEYS[2])
end
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('PUBLISH', ARGV[4], ARGV[5])
"#;

/// KEYS: health hash, probe key. ARGV: channel, message. The key served: a clean slate.
const CLEAR: &str = r#"
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], ARGV[2])
"#;

/// A key's health as the replicas share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharedState {
    pub failures: u32,
    pub rest_left: Duration,
    pub cooldown_left: Duration,
}

#[derive(Clone)]
pub struct SharedHealth {
    link: RedisLink,
    cooldown: Duration,
    fail: Arc<Script>,
    clear: Arc<Script>,
    read: Arc<Script>,
}

impl SharedHealth {
    pub fn new(link: RedisLink, cooldown: Duration) -> SharedHealth {
        let script = |body: &str| Arc::new(Script::new(&format!("{NOW}{body}{STATE}")));
        SharedHealth {
            link,
            cooldown,
            fail: script(FAIL),
            clear: Arc::new(Script::new(CLEAR)),
            read: script(""),
        }
    }

    fn channel(&self) -> String {
        format!("{}:health", self.link.prefix())
    }

    /// The key's health hash and probe key; hash-tagged like its windows.
    fn keys(&self, id: i32) -> (String, String) {
        let prefix = self.link.prefix();
        (
            format!("{prefix}:{{k{id}}}:health"),
            format!("{prefix}:{{k{id}}}:probe"),
        )
    }

    /// Counts a failure of the key for every replica; the shared state after it.
    pub async fn failed(
        &self,
        provider: &str,
        id: i32,
        kind: FailureKind,
    ) -> redis::RedisResult<SharedState> {
        let rest = match kind {
            FailureKind::RateLimited { retry_after } => retry_after.as_millis() as u64,
            _ => 0,
        };
        let (health, probe) = self.keys(id);
        let answer: Vec<i64> = self
            .fail
            .key(health)
            .key(probe)
            .arg(rest)
            .arg(self.cooldown.as_millis() as u64)
            .arg(UNHEALTHY_AFTER)
            .arg(self.channel())
            .arg(format!("{provider} {id}"))
            .invoke_async(&mut self.link.conn())
            .await?;
        state_of(&answer)
    }

    /// The key served (or was reset): no failures, no cool-down, no rest, for every replica.
    pub async fn cleared(&self, provider: &str, id: i32) -> redis::RedisResult<()> {
        let (health, probe) = self.keys(id);
        self.clear
            .key(health)
            .key(probe)
            .arg(self.channel())
            .arg(format!("{provider} {id}"))
            .invoke_async(&mut self.link.conn())
            .await
    }

    pub async fn read(&self, id: i32) -> redis::RedisResult<SharedState> {
        let (health, _) = self.keys(id);
        let answer: Vec<i64> = self
            .read
            .key(health)
            .invoke_async(&mut self.link.conn())
            .await?;
        state_of(&answer)
    }

    /// Whether this replica may send the probe of an unhealthy key (one replica per cool-down).
    pub async fn claim_probe(&self, id: i32) -> redis::RedisResult<bool> {
        let (_, probe) = self.keys(id);
        let won: Option<String> = redis::cmd("SET")
            .arg(probe)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(self.cooldown.as_millis() as u64)
            .query_async(&mut self.link.conn())
            .await?;
        Ok(won.is_some())
    }

    /// Follows the other replicas' changes until `stop`: each published key is read and adopted,
    /// and every key is read again on (re)subscribing and every `RESYNC_EVERY`.
    pub async fn follow(self, health: Health, vault: Vault, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(err) = self.follow_once(&health, &vault, &mut stop).await {
                warn_now_and_then("following shared key health", &err);
            }
            let retry = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                _ = retry => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    async fn follow_once(
        &self,
        health: &Health,
        vault: &Vault,
        stop: &mut watch::Receiver<bool>,
    ) -> redis::RedisResult<()> {
        let mut pubsub = self.link.subscriber().await?;
        pubsub.subscribe(self.channel()).await?;
        let mut messages = pubsub.on_message();
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        return Err(redis::RedisError::from((redis::ErrorKind::Io, "subscription ended")));
                    };
                    let payload: String = message.get_payload()?;
                    if let Some((provider, id)) = payload.split_once(' ')
                        && let Ok(id) = id.parse()
                    {
                        health.adopt(provider, id, self.read(id).await?);
                    }
                }
                _ = resync.tick() => self.resync(health, vault).await?,
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// Reads every vault key's shared state, `RESYNC_BATCH` keys per round trip (a pipeline of
    /// `HMGET`s after one `TIME`, so the times left are by Redis's clock).
    async fn resync(&self, health: &Health, vault: &Vault) -> redis::RedisResult<()> {
        let snapshot = vault.snapshot();
        let keys: Vec<(&str, i32)> = snapshot
            .all_keys()
            .map(|k| (k.record.provider.as_str(), k.record.id))
            .collect();
        for batch in keys.chunks(RESYNC_BATCH) {
            let mut pipe = redis::pipe();
            pipe.cmd("TIME");
            for (_, id) in batch {
                pipe.cmd("HMGET")
                    .arg(self.keys(*id).0)
                    .arg("f")
                    .arg("r")
                    .arg("c");
            }
            let answers: Vec<redis::Value> = pipe.query_async(&mut self.link.conn()).await?;
            let mut answers = answers.into_iter();
            let clock: Vec<i64> = parse(answers.next())?;
            let now = clock.first().copied().unwrap_or(0) * 1000
                + clock.get(1).copied().unwrap_or(0) / 1000;
            for ((provider, id), answer) in batch.iter().zip(answers) {
                let fields: Vec<Option<i64>> = parse(Some(answer))?;
                let field = |i: usize| fields.get(i).copied().flatten().unwrap_or(0);
                let state = [field(0), (field(1) - now).max(0), (field(2) - now).max(0)];
                health.adopt(provider, *id, state_of(&state)?);
            }
        }
        Ok(())
    }
}

fn parse<T: redis::FromRedisValue>(value: Option<redis::Value>) -> redis::RedisResult<T> {
    let value = value.ok_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Parse, "a short pipeline answer"))
    })?;
    Ok(redis::from_redis_value(value)?)
}

fn state_of(answer: &[i64]) -> redis::RedisResult<SharedState> {
    let &[failures, rest, cooldown] = answer else {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Parse,
            "unexpected key health answer",
        )));
    };
    let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
    Ok(SharedState {
        failures: failures.clamp(0, i64::from(u32::MAX)) as u32,
        rest_left: ms(rest),
        cooldown_left: ms(cooldown),
    })
}

/// Key health and key limits shared through Redis, and what key limits do while it is away.
#[derive(Clone)]
pub struct SharedKeys {
    pub health: SharedHealth,
    pub windows: SharedWindows,
    pub on_error: OnRedisError,
    pub replicas: Replicas,
}

/// A key this replica took for a request, before the replicas agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub id: i32,
    /// The key is unhealthy and this request is its probe.
    pub probe: bool,
    /// This replica's requests on the key in the last minute and today, this one included.
    pub minute: u32,
    pub day: u32,
}

impl SharedKeys {
    /// Whether the key this replica took may serve: its probe is this replica's, and its minute/day
    /// limits have room across every replica (the request is then counted there).
    pub async fn confirm(&self, taken: &Taken, limits: &KeyLimits) -> bool {
        if taken.probe {
            match self.health.claim_probe(taken.id).await {
                Ok(true) => {}
                Ok(false) => return false,
                // Redis away: each replica probes on its own, as one node does.
                Err(err) => warn_now_and_then("claiming a key's probe", &err),
            }
        }
        if limits.per_minute.is_none() && limits.per_day.is_none() {
            return true;
        }
        let member = self.member();
        match self
            .windows
            .admit_key(taken.id, limits.per_minute, limits.per_day, &member)
            .await
        {
            Ok(Some((_, true))) => true,
            // Some replica has not replayed into a Redis that came back empty: the share too.
            Ok(Some((recorded, false))) => {
                let within = self.within_share(taken, limits);
                if !within {
                    self.windows.undo(recorded);
                }
                within
            }
            Ok(None) => false,
            Err(err) => {
                warn_now_and_then("checking a key's shared limits", &err);
                match self.on_error {
                    OnRedisError::FailClosed => false,
                    OnRedisError::Share => self.within_share(taken, limits),
                }
            }
        }
    }

    /// Whether this replica's own requests on the key fit its share of each limit (limit ÷ live
    /// replicas), so the replicas together stay within it.
    fn within_share(&self, taken: &Taken, limits: &KeyLimits) -> bool {
        let live = self.replicas.live().max(1);
        let within = |limit: Option<u32>, used: u32| limit.is_none_or(|l| used <= l / live);
        within(limits.per_minute, taken.minute) && within(limits.per_day, taken.day)
    }

    /// A name for one request in a key's windows, unique across replicas.
    fn member(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("{}:{n}", self.replicas.id())
    }
}

fn warn_now_and_then(what: &str, err: &redis::RedisError) {
    crate::redis_link::warn_unreachable(
        &format!("{what}; key health and limits are per replica"),
        err,
    );
}
