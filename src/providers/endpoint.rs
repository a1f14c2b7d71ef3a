//! `Endpoint`: one provider key's base URL and credential; builds and sends upstream requests.

use super::error::{ErrorKind, ProviderError, retry_after};
use crate::catalog::Provider;
use crate::secret::Secret;
use crate::vault::Credentials;
use reqwest::{Method, RequestBuilder, Response};
use std::time::Duration;

/// Longest error body read from an upstream (enough for any JSON error).
const ERROR_BODY_LIMIT: usize = 16 * 1024;

pub struct Endpoint {
    base_url: String,
    api_key: Secret,
    /// W3C trace context sent upstream: `traceparent`, and the client's `tracestate`.
    trace: Option<(String, Option<String>)>,
}

impl Endpoint {
    /// The provider's (possibly overridden) base URL with `{account_id}` filled in, and the key.
    pub fn new(provider: &Provider, credentials: &Credentials) -> Result<Endpoint, ProviderError> {
        let missing = |field: &str| {
            ProviderError::new(
                ErrorKind::Auth,
                None,
                format!("stored credential has no `{field}`"),
            )
        };
        let api_key = credentials.bearer().ok_or_else(|| missing("api_key"))?;
        let mut base_url = provider.base_url.clone();
        if base_url.contains("{account_id}") {
            let account = credentials
                .get("account_id")
                .ok_or_else(|| missing("account_id"))?;
            if !account
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ProviderError::new(
                    ErrorKind::Client,
                    None,
                    "account_id may only hold letters, digits, - and _",
                ));
            }
            base_url = base_url.replace("{account_id}", account);
        }
        Ok(Endpoint {
            base_url,
            api_key: Secret::new(api_key),
            trace: None,
        })
    }

    /// Every request from here on carries this trace context (the attempt's span as parent).
    pub fn trace(&mut self, traceparent: String, tracestate: Option<&str>) {
        self.trace = Some((traceparent, tracestate.map(str::to_owned)));
    }

    /// A request to `base_url + path` with the key as a bearer token. Nothing the client sent is
    /// forwarded (its `x-stainless-*` SDK headers would be refused by some providers) but the
    /// trace context.
    pub fn request(&self, http: &reqwest::Client, method: Method, path: &str) -> RequestBuilder {
        let mut request = http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.api_key.expose());
        if let Some((traceparent, tracestate)) = &self.trace {
            request = request.header("traceparent", traceparent);
            if let Some(state) = tracestate {
                request = request.header("tracestate", state);
            }
        }
        request
    }

    /// Sends `request`; a non-2xx answer becomes a classified `ProviderError` with the key scrubbed.
    /// `timeout` bounds the wait for the response head (`None`: the client's defaults).
    pub async fn send(
        &self,
        request: RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<Response, ProviderError> {
        let sending = request.send();
        let response = match timeout {
            Some(limit) => tokio::time::timeout(limit, sending).await.map_err(|_| {
                ProviderError::new(
                    ErrorKind::Timeout,
                    None,
                    format!("no answer within {}s", limit.as_secs_f32()),
                )
            })?,
            None => sending.await,
        }
        .map_err(|e| ProviderError::from_reqwest(e).scrub(self.api_key.expose()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let body = read_limited(response).await;
        Err(ProviderError::from_status(status, &body, wait).scrub(self.api_key.expose()))
    }

    /// Lists the provider's models with this key: the cheapest call that proves a key works.
    pub async fn check(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<(), ProviderError> {
        self.send(self.request(http, Method::GET, "/models"), Some(timeout))
            .await
            .map(|_| ())
    }

    pub fn scrub(&self, err: ProviderError) -> ProviderError {
        err.scrub(self.api_key.expose())
    }
}

async fn read_limited(mut response: Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}
