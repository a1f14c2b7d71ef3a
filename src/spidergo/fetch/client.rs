//! The one HTTP client SpiderGo fetches with (pages, robots.txt, sitemaps), and `fetch`.
//!
//! Three doors lead to an internal address, and each is shut by the same [`Guard`]:
//! - the URL itself: checked before anything is sent (an IP literal is never resolved, so the
//!   resolver would not see it);
//! - a name: [`GuardedResolver`] is the client's resolver, and refuses the name when any address
//!   it resolves to is not public; hyper then connects only to the addresses it checked, so a
//!   second lookup (DNS rebinding) cannot slip another one in;
//! - a redirect: every hop's URL is checked like the first, and hops are capped.
//!
//! No proxy is taken from the environment, and no request can set one.

use super::guard::{Guard, Refused};
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Redirect hops followed before a fetch fails.
pub const MAX_REDIRECTS: usize = 10;
/// How long a name may take to resolve.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where names are looked up: the system's resolver, or a test's own table.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>;
}

/// The system resolver (`getaddrinfo`, on tokio's blocking pool).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
    }
}

/// Resolves through `lookup`, then refuses the name unless every address passes the guard.
pub struct GuardedResolver {
    guard: Guard,
    lookup: Arc<dyn Lookup>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (guard, lookup) = (self.guard.clone(), self.lookup.clone());
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = tokio::time::timeout(LOOKUP_TIMEOUT, lookup.lookup(host.clone()))
                .await
                .map_err(|_| format!("looking up {host} took over {LOOKUP_TIMEOUT:?}"))??;
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            for addr in &addrs {
                guard.check_ip(addr.ip())?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Builds the guarded client: the guard in the resolver and on every redirect hop, no proxy,
/// and bounded connects.
pub fn guarded_client(
    guard: &Guard,
    lookup: Arc<dyn Lookup>,
    user_agent: &str,
) -> reqwest::Result<reqwest::Client> {
    let hops = guard.clone();
    let policy = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match hops.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    });
    let resolver = GuardedResolver {
        guard: guard.clone(),
        lookup,
    };
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(resolver))
        .redirect(policy)
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .user_agent(user_agent)
        .build()
}

/// A fetched page: where it ended up (after redirects), its status and type, and its body up to
/// the cap.
#[derive(Debug)]
pub struct Page {
    pub final_url: url::Url,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The body was longer than the cap; `body` holds its first `cap` bytes.
    pub truncated: bool,
}

/// Why a fetch failed, with a message safe to show the caller.
#[derive(Debug)]
pub enum FetchError {
    /// The guard refused the URL, a redirect hop or a resolved address.
    Refused(Refused),
    /// The target did not answer within the timeout.
    Timeout,
    /// Anything else on the way (refused connection, bad TLS, reset, too many redirects).
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Refused(refused) => refused.fmt(f),
            FetchError::Timeout => f.write_str("the page did not answer in time"),
            FetchError::Failed(why) => f.write_str(why),
        }
    }
}

impl FetchError {
    /// The guard's refusal when it is anywhere in the error's chain, else a plain failure.
    fn of(err: reqwest::Error) -> FetchError {
        if err.is_timeout() {
            return FetchError::Timeout;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(cause) = source {
            if let Some(refused) = cause.downcast_ref::<Refused>() {
                return FetchError::Refused(refused.clone());
            }
            source = cause.source();
        }
        // reqwest's message names the URL but never a header or body.
        let mut message = err.to_string();
        if let Some(cause) = std::error::Error::source(&err) {
            message = format!("{message}: {cause}");
        }
        FetchError::Failed(message)
    }
}

/// GETs `url` with `client` (built by [`guarded_client`] with the same guard) within `timeout`,
/// reading at most `cap` bytes of the body.
pub async fn fetch(
    client: &reqwest::Client,
    guard: &Guard,
    url: &url::Url,
    timeout: Duration,
    cap: usize,
) -> Result<Page, FetchError> {
    guard.check_url(url).map_err(FetchError::Refused)?;
    let reading = async {
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(FetchError::of)?;
        let (final_url, status) = (response.url().clone(), response.status().as_u16());
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = BytesMut::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(FetchError::of)? {
            let room = cap - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Page {
            final_url,
            status,
            content_type,
            body: body.freeze(),
            truncated,
        })
    };
    tokio::time::timeout(timeout, reading)
        .await
        .unwrap_or(Err(FetchError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A test's DNS: names mapped to addresses, nothing else resolves.
    struct Table(HashMap<String, Vec<SocketAddr>>);

    impl Lookup for Table {
        fn lookup(&self, host: String) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
            let found = self.0.get(&host).cloned();
            Box::pin(async move {
                found.ok_or_else(|| std::io::Error::other(format!("{host}: no such name")))
            })
        }
    }

    /// A loopback site answering every request with what `answer` says for its path.
    async fn site(answer: fn(&str, u16) -> Vec<u8>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = vec![0u8; 4096];
                    let n = socket.read(&mut request).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&request[..n]).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let _ = socket.write_all(&answer(&path, port)).await;
                    if path == "/hang" {
                        // Promised more than it sent, and never closes.
                        std::future::pending::<()>().await;
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        port
    }

    fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn answer(path: &str, port: u16) -> Vec<u8> {
        match path {
            "/page" => response("200 OK", "content-type: text/html\r\n", b"<p>hello</p>"),
            "/to-page" => response("302 Found", "location: /page\r\n", b""),
            "/to-v6-loopback" => response(
                "302 Found",
                &format!("location: http://[::1]:{port}/page\r\n"),
                b"",
            ),
            "/to-rebound-name" => response(
                "302 Found",
                &format!("location: http://rebind.test:{port}/page\r\n"),
                b"",
            ),
            "/loop" => response("302 Found", "location: /loop\r\n", b""),
            "/big" => response("200 OK", "", &vec![b'x'; 3 * 1024 * 1024]),
            "/hang" => b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly".to_vec(),
            _ => response("404 Not Found", "", b"no"),
        }
    }

    /// The guard allows 127.0.0.1 only; `rebind.test` resolves to 127.0.0.2 (not allowed) and
    /// `allowed.test` to 127.0.0.1.
    async fn setup() -> (reqwest::Client, Guard, u16) {
        crate::install_tls_provider();
        let port = site(answer).await;
        let guard = Guard::new(vec!["127.0.0.1/32".parse().expect("cidr")]);
        let table = Table(HashMap::from([
            (
                "rebind.test".to_owned(),
                vec![SocketAddr::from(([127, 0, 0, 2], 0))],
            ),
            (
                "allowed.test".to_owned(),
                vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            ),
        ]));
        let client = guarded_client(&guard, Arc::new(table), "SpiderGo-test").expect("client");
        (client, guard, port)
    }

    async fn get(client: &reqwest::Client, guard: &Guard, url: &str) -> Result<Page, FetchError> {
        let url = url::Url::parse(url).expect("url");
        fetch(client, guard, &url, Duration::from_secs(5), 1024 * 1024).await
    }

    #[tokio::test]
    async fn an_allowed_page_is_fetched_and_a_redirect_within_the_guard_followed() {
        let (client, guard, port) = setup().await;
        let page = get(&client, &guard, &format!("http://127.0.0.1:{port}/to-page"))
            .await
            .expect("page");
        assert_eq!(page.status, 200);
        assert_eq!(page.final_url.path(), "/page");
        assert_eq!(&page.body[..], b"<p>hello</p>");
        assert_eq!(page.content_type.as_deref(), Some("text/html"));
        let by_name = get(&client, &guard, &format!("http://allowed.test:{port}/page")).await;
        assert_eq!(by_name.expect("page by name").status, 200);
    }

    #[tokio::test]
    async fn a_literal_outside_the_allow_list_is_refused_before_anything_is_sent() {
        let (client, guard, port) = setup().await;
        let refused = get(&client, &guard, &format!("http://127.0.0.2:{port}/page")).await;
        assert!(
            matches!(refused, Err(FetchError::Refused(_))),
            "{refused:?}"
        );
        let empty = Guard::default();
        let refused = get(&client, &empty, &format!("http://127.0.0.1:{port}/page")).await;
        assert!(
            matches!(refused, Err(FetchError::Refused(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused() {
        let (client, guard, port) = setup().await;
        let refused = get(&client, &guard, &format!("http://rebind.test:{port}/page")).await;
        assert!(
            matches!(refused, Err(FetchError::Refused(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_redirect_into_a_private_range_is_refused_literal_or_by_name() {
        let (client, guard, port) = setup().await;
        for path in ["/to-v6-loopback", "/to-rebound-name"] {
            let refused = get(&client, &guard, &format!("http://127.0.0.1:{port}{path}")).await;
            let Err(FetchError::Refused(why)) = refused else {
                panic!("{path}: {refused:?}");
            };
            assert!(
                why.to_string()
                    .starts_with("url resolves to a non-public address"),
                "{why}"
            );
        }
    }

    #[tokio::test]
    async fn redirect_loops_fail_after_the_cap() {
        let (client, guard, port) = setup().await;
        let failed = get(&client, &guard, &format!("http://127.0.0.1:{port}/loop")).await;
        let Err(FetchError::Failed(why)) = failed else {
            panic!("{failed:?}");
        };
        assert!(why.contains("redirect"), "{why}");
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_cut_at_the_cap_and_said_so() {
        let (client, guard, port) = setup().await;
        let page = get(&client, &guard, &format!("http://127.0.0.1:{port}/big"))
            .await
            .expect("page");
        assert!(page.truncated);
        assert_eq!(page.body.len(), 1024 * 1024);
    }

    #[tokio::test]
    async fn a_page_that_never_finishes_times_out() {
        let (client, guard, port) = setup().await;
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/hang")).expect("url");
        // The page never finishes, so whatever the timeout, it is what ends the fetch.
        let timed_out = fetch(&client, &guard, &url, Duration::from_millis(300), 1024).await;
        assert!(
            matches!(timed_out, Err(FetchError::Timeout)),
            "{timed_out:?}"
        );
    }
}
