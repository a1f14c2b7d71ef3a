//! A webhook receiver on loopback: every delivery it was posted (headers and JSON body), and a
//! switch to refuse the next ones with a 500.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HashMap<String, String>,
    pub raw: String,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct WebhookSink {
    pub url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
    refusals: Arc<AtomicUsize>,
}

impl WebhookSink {
    pub async fn start() -> WebhookSink {
        let sink = WebhookSink::default();
        let shared = sink.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let shared = shared.clone();
                async move { shared.receive(&req, &body) }
            }))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind webhook sink");
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        WebhookSink {
            url: format!("http://127.0.0.1:{port}/hooks/spidergate"),
            ..sink
        }
    }

    fn receive(&self, req: &HttpRequest, body: &[u8]) -> HttpResponse {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let raw = String::from_utf8_lossy(body).into_owned();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        self.received
            .lock()
            .unwrap()
            .push(Delivery { headers, raw, body });
        let refused = self
            .refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            HttpResponse::InternalServerError().finish()
        } else {
            HttpResponse::NoContent().finish()
        }
    }

    /// The next `n` deliveries are answered 500.
    pub fn refuse_next(&self, n: usize) {
        self.refusals.store(n, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// Deliveries of events of `kind`.
    pub fn of(&self, kind: &str) -> Vec<Delivery> {
        self.received()
            .into_iter()
            .filter(|d| d.body["type"] == kind)
            .collect()
    }

    /// Waits until `kind` has been delivered `n` times.
    pub async fn wait_for(&self, kind: &str, n: usize, within: Duration) -> Vec<Delivery> {
        crate::helpers::eventually(&format!("{n} deliveries of {kind}"), within, async || {
            self.of(kind).len() >= n
        })
        .await;
        self.of(kind)
    }
}
