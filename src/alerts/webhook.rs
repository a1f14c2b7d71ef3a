//! Posting an alert to `alerts.webhook_url`, signed so the receiver can tell it came from us.
//!
//! `X-SpiderGate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with
//! `alerts.webhook_secret` as the key (the scheme Stripe uses: the timestamp is signed too, so a
//! receiver can refuse old replays). `X-SpiderGate-Event` names the event and
//! `X-SpiderGate-Delivery` is the same on every retry of one delivery, for de-duplication.

use crate::config::AlertsConfig;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// `t=…,v1=…` for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Posts one delivery; `Err` says why it is to be retried.
pub async fn post(
    http: &reqwest::Client,
    config: &AlertsConfig,
    delivery_id: i32,
    event: &str,
    body: &str,
    timestamp: i64,
) -> Result<(), String> {
    let url = config.webhook_url.expose();
    if url.is_empty() {
        return Err("alerts.webhook_url is no longer set".into());
    }
    let mut request = http
        .post(url)
        .timeout(TIMEOUT)
        .header("content-type", "application/json")
        .header("x-spidergate-event", event)
        .header("x-spidergate-delivery", delivery_id.to_string());
    if !config.webhook_secret.is_empty() {
        let signed = signature(config.webhook_secret.expose(), timestamp, body);
        request = request.header("x-spidergate-signature", signed);
    }
    match request.body(body.to_owned()).send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("the webhook answered {}", response.status())),
        // Without the URL: it may carry a token.
        Err(err) => Err(format!(
            "the webhook could not be reached: {}",
            err.without_url()
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let a = super::signature("secret", 1_700_000_000, "{}");
        assert!(a.starts_with("t=1700000000,v1=") && a.len() == "t=1700000000,v1=".len() + 64);
        assert_ne!(a, super::signature("secret", 1_700_000_001, "{}"));
        assert_ne!(a, super::signature("secret", 1_700_000_000, "{ }"));
        assert_ne!(a, super::signature("other", 1_700_000_000, "{}"));
    }
}
