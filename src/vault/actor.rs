//! `VaultActor`: owns the set of decrypted provider keys and publishes it as a snapshot.

use super::key::VaultKey;
use super::snapshot::VaultSnapshot;
use actix::{Actor, Context, Handler, Message};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// Adds or replaces one key (after its row was written).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Upsert(pub VaultKey);

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

impl Handler<Remove> for VaultActor {
    type Result = ();

    fn handle(&mut self, Remove(id): Remove, _: &mut Context<Self>) {
        self.keys.remove(&id);
        self.publish();
    }
}
