//! `Endpoint`: one provider key's base URL, credential and static headers; builds and sends
//! upstream requests.

use super::error::{ErrorKind, ProviderError, retry_after};
use crate::catalog::{Api, Auth, Provider};
use crate::secret::Secret;
use crate::vault::Credentials;
use reqwest::{Method, RequestBuilder, Response};
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest error body read from an upstream (enough for any JSON error).
const ERROR_BODY_LIMIT: usize = 16 * 1024;
/// The credential field that replaces a provider's base URL (local and self-hosted servers).
pub const BASE_URL_FIELD: &str = "base_url";

pub struct Endpoint {
    /// The provider's dialect, which picks the adapter.
    pub api: Api,
    /// The provider's renames of outgoing body fields.
    pub param_mappings: BTreeMap<String, String>,
    base_url: String,
    auth: Auth,
    api_key: Option<Secret>,
    headers: BTreeMap<String, String>,
    query: BTreeMap<String, String>,
    /// W3C trace context sent upstream: `traceparent`, and the client's `tracestate`.
    trace: Option<(String, Option<String>)>,
}

impl Endpoint {
    /// The provider's base URL (the key's own for a self-hosted server, `{field}` placeholders
    /// filled from the credential), its auth scheme and static headers, and the key.
    pub fn new(provider: &Provider, credentials: &Credentials) -> Result<Endpoint, ProviderError> {
        let missing = |field: &str| {
            ProviderError::new(
                ErrorKind::Auth,
                None,
                format!("stored credential has no `{field}`"),
            )
        };
        let auth = provider.auth();
        let key_optional = auth == Auth::None
            || provider
                .optional_credential_fields
                .iter()
                .any(|f| f == "api_key");
        let api_key = match credentials.bearer() {
            Some(key) => Some(Secret::new(key)),
            None if key_optional => None,
            None => return Err(missing("api_key")),
        };
        let own_url = provider
            .credential_fields
            .iter()
            .any(|f| f == BASE_URL_FIELD);
        let mut base_url = match credentials.get(BASE_URL_FIELD).filter(|_| own_url) {
            Some(url) => {
                check_base_url(url).map_err(|e| ProviderError::new(ErrorKind::Client, None, e))?;
                url.trim_end_matches('/').to_owned()
            }
            None => provider.base_url.clone(),
        };
        while let Some((start, end)) = placeholder(&base_url) {
            let field = base_url[start + 1..end].to_owned();
            let value = credentials.get(&field).ok_or_else(|| missing(&field))?;
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ProviderError::new(
                    ErrorKind::Client,
                    None,
                    format!("{field} may only hold letters, digits, - and _"),
                ));
            }
            base_url.replace_range(start..=end, value);
        }
        // Cloning an empty map allocates nothing: most providers pay nothing for these.
        let mut headers = provider.headers.clone();
        let versioned = headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("anthropic-version"));
        if provider.api == Api::Anthropic && !versioned {
            headers.insert("anthropic-version".into(), super::anthropic::VERSION.into());
        }
        Ok(Endpoint {
            api: provider.api,
            param_mappings: provider.param_mappings.clone(),
            base_url,
            auth,
            api_key,
            headers,
            query: provider.query.clone(),
            trace: None,
        })
    }

    /// Every request from here on carries this trace context (the attempt's span as parent).
    pub fn trace(&mut self, traceparent: String, tracestate: Option<&str>) {
        self.trace = Some((traceparent, tracestate.map(str::to_owned)));
    }

    /// A request to `base_url + path` with the key in the provider's scheme, its static headers
    /// and query. Nothing the client sent is forwarded (its `x-stainless-*` SDK headers would be
    /// refused by some providers) but the trace context.
    pub fn request(&self, http: &reqwest::Client, method: Method, path: &str) -> RequestBuilder {
        let mut request = http.request(method, format!("{}{path}", self.base_url));
        if let Some(key) = &self.api_key {
            let key = key.expose();
            request = match self.auth {
                Auth::Bearer => request.bearer_auth(key),
                Auth::XApiKey => request.header("x-api-key", key),
                Auth::ApiKey => request.header("api-key", key),
                Auth::XGoogApiKey => request.header("x-goog-api-key", key),
                Auth::None => request,
            };
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if !self.query.is_empty() {
            let pairs: Vec<(&String, &String)> = self.query.iter().collect();
            request = request.query(&pairs);
        }
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
        .map_err(|e| self.scrub(ProviderError::from_reqwest(e)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let body = read_limited(response).await;
        Err(self.scrub(ProviderError::from_status(status, &body, wait)))
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

    /// The models this endpoint serves (`GET /models`, OpenAI's list shape): what
    /// `discover_models` reads.
    pub async fn list_models(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<Vec<String>, ProviderError> {
        let response = self
            .send(self.request(http, Method::GET, "/models"), Some(timeout))
            .await?;
        let list: serde_json::Value = response
            .json()
            .await
            .map_err(|e| self.scrub(ProviderError::from_reqwest(e)))?;
        let ids = list["data"]
            .as_array()
            .ok_or_else(|| ProviderError::malformed("without `data`"))?
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        Ok(ids)
    }

    pub fn scrub(&self, err: ProviderError) -> ProviderError {
        match &self.api_key {
            Some(key) => err.scrub(key.expose()),
            None => err,
        }
    }
}

/// The first `{name}` placeholder's braces, as byte offsets.
fn placeholder(url: &str) -> Option<(usize, usize)> {
    let start = url.find('{')?;
    let end = start + url[start..].find('}')?;
    Some((start, end))
}

/// A key's own base URL: `http` or `https`, with a host that is not a cloud metadata address
/// (a link-local `169.254.0.0/16` or `fe80::/10` address, or a metadata host name), so a
/// brand cannot aim the gateway at the machine's instance credentials.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "`base_url` is not a URL".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("`base_url` must be an http:// or https:// URL".into());
    }
    let refused = match parsed.host() {
        None => true,
        Some(url::Host::Ipv4(ip)) => ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => {
            // fe80::/10, and AWS's IPv6 metadata address fd00:ec2::254.
            (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]
        }
        Some(url::Host::Domain(name)) => {
            let name = name.to_ascii_lowercase();
            name == "metadata.google.internal" || name == "metadata"
        }
    };
    if refused {
        return Err("`base_url` may not point at a link-local or metadata address".into());
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::{Endpoint, check_base_url};
    use crate::catalog::Catalog;
    use crate::vault::Credentials;

    #[test]
    fn azure_fills_its_url_from_the_credential_and_sends_api_key_and_api_version() {
        let catalog = Catalog::load(&Default::default()).expect("catalog");
        let azure = catalog.provider("azure_openai").expect("azure");
        let fields = serde_json::json!({ "api_key": "az-key-123", "resource": "contoso", "deployment": "gpt4o-prod" });
        let credentials = Credentials::from_request(azure, &fields).expect("credentials");
        let endpoint = Endpoint::new(azure, &credentials).expect("endpoint");
        crate::install_tls_provider();
        let request = endpoint
            .request(
                &reqwest::Client::new(),
                reqwest::Method::POST,
                "/chat/completions",
            )
            .build()
            .expect("request");
        let url = request.url();
        assert_eq!(url.host_str(), Some("contoso.openai.azure.com"));
        assert_eq!(
            url.path(),
            "/openai/deployments/gpt4o-prod/chat/completions"
        );
        assert!(
            url.query().is_some_and(|q| q.starts_with("api-version=")),
            "{url}"
        );
        assert_eq!(request.headers()["api-key"], "az-key-123");
        assert!(request.headers().get("authorization").is_none());

        let bad =
            serde_json::json!({ "api_key": "k", "resource": "evil.com/x", "deployment": "d" });
        let credentials = Credentials::from_request(azure, &bad).expect("fields present");
        assert!(
            Endpoint::new(azure, &credentials).is_err(),
            "a placeholder cannot smuggle a host"
        );
    }

    #[test]
    fn a_keys_own_base_url_may_be_local_but_never_a_metadata_address() {
        for ok in [
            "http://localhost:11434/v1",
            "http://10.0.0.5:8000/v1",
            "https://llm.internal/v1",
        ] {
            assert!(check_base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://169.254.169.254/latest",
            "http://[fe80::1]/v1",
            "http://metadata.google.internal/v1",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }
}
