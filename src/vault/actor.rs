//! `VaultActor`: owns the set of decrypted provider keys and publishes it as a snapshot.

use super::credentials::Credentials;
use super::key::{KeyRecord, VaultKey};
use super::snapshot::VaultSnapshot;
use actix::{Actor, Context, Handler, Message};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// Adds or replaces one key (after its row was written).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Upsert(pub VaultKey);

/// Replaces one key's settings (after its row was written), keeping the credential the actor
/// holds: an OAuth refresh may have replaced it since the caller read the snapshot. `fallback` is
/// the credential for a key the actor does not hold yet.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateRecord {
    pub record: KeyRecord,
    pub fallback: Option<Credentials>,
}

/// Replaces one key's credential (an OAuth refresh, after its row was written), keeping its
/// settings. Ignored for a key deleted meanwhile.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetCredentials {
    pub id: i32,
    pub credentials: Credentials,
}

/// Forgets one key (after its row was deleted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remove(pub i32);

pub struct VaultActor {
    keys: HashMap<i32, Arc<VaultKey>>,
    published: Arc<ArcSwap<VaultSnapshot>>,
}

impl VaultActor {
    pub fn new(keys: Vec<VaultKey>, published: Arc<ArcSwap<VaultSnapshot>>) -> Self {
        let keys = keys
            .into_iter()
            .map(|k| (k.record.id, Arc::new(k)))
            .collect();
        let actor = VaultActor { keys, published };
        actor.publish();
        actor
    }

    fn publish(&self) {
        self.published
            .store(Arc::new(VaultSnapshot::build(self.keys.values().cloned())));
    }
}

impl Actor for VaultActor {
    type Context = Context<Self>;
}

impl Handler<Upsert> for VaultActor {
    type Result = ();

    fn handle(&mut self, Upsert(key): Upsert, _: &mut Context<Self>) {
        self.keys.insert(key.record.id, Arc::new(key));
        self.publish();
    }
}

impl Handler<UpdateRecord> for VaultActor {
    type Result = ();

    fn handle(&mut self, msg: UpdateRecord, _: &mut Context<Self>) {
        let credentials = match self.keys.get(&msg.record.id) {
            Some(held) => held.credentials.clone(),
            None => match msg.fallback {
                Some(credentials) => credentials,
                None => return,
            },
        };
        let key = VaultKey {
            record: msg.record,
            credentials,
        };
        self.keys.insert(key.record.id, Arc::new(key));
        self.publish();
    }
}

impl Handler<SetCredentials> for VaultActor {
    type Result = ();

    fn handle(&mut self, msg: SetCredentials, _: &mut Context<Self>) {
        let Some(held) = self.keys.get(&msg.id) else {
            return;
        };
        let key = VaultKey {
            record: held.record.clone(),
            credentials: msg.credentials,
        };
        self.keys.insert(msg.id, Arc::new(key));
        self.publish();
    }
}

impl Handler<Remove> for VaultActor {
    type Result = ();

    fn handle(&mut self, Remove(id): Remove, _: &mut Context<Self>) {
        self.keys.remove(&id);
        self.publish();
    }
}
