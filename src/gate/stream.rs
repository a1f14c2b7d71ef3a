//! Streaming chat: open the upstream stream (falling back while nothing has been sent), then
//! relay it event by event.
//!
//! The relay forwards each upstream event's bytes as they are, looking inside only to meter usage
//! and to drop the usage chunk the client did not ask for. A failure after the first byte ends the
//! stream with one `data: {"error": …}` event. Dropping the response (client gone) drops the
//! upstream body, which closes that connection and so cancels the call.

use super::call::GateCall;
use super::chat::fallback_header;
use super::request::ChatRequest;
use crate::catalog::Model;
use crate::error::{ApiError, ErrorCode};
use crate::providers::sse::{self, Event, EventSplitter, Usage};
use crate::providers::{Endpoint, ErrorKind, ProviderError};
use crate::routing::{self, Plan};
use crate::state::AppState;
use crate::usage::Phase;
use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use reqwest::Method;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

type Upstream = BoxStream<'static, Result<Bytes, reqwest::Error>>;

/// An upstream stream that has produced its first bytes.
pub struct Opened {
    first: Bytes,
    rest: Upstream,
}

pub async fn chat_stream(
    state: &AppState,
    mut call: GateCall,
    plan: &Plan,
    request: &ChatRequest,
) -> Result<HttpResponse, ApiError> {
    call.enter(Phase::Upstream);
    let timeout = state.config.upstream.timeout();
    let opened = routing::call_with_fallback(
        state,
        plan,
        ErrorCode::NoAvailableKey,
        &mut call.attempts,
        |endpoint, model| {
            open(
                state.http.clone(),
                endpoint,
                request.upstream_body(&model, plan.completion_limit(&model.id)),
                timeout,
            )
        },
    )
    .await;
    let served = match opened {
        Ok(served) => served,
        Err(err) => return Err(call.fail(err)),
    };
    call.served(plan, &served);
    call.mark_streamed();
    let mut response = HttpResponse::Ok();
    call.headers(&mut response);
    fallback_header(&mut response, plan, &served.model.id);
    let meter = Meter {
        call,
        model: served.model,
        prompt_estimate: request.prompt_estimate(),
        chunks: 0,
        usage: None,
    };
    let relay = Relay::new(
        served.value,
        request.include_usage,
        state.config.upstream.stream_idle_timeout(),
        meter,
    );
    Ok(response
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .streaming(relay.into_stream()))
}

/// What a stream used, for billing when it ends however it ends.
struct Meter {
    call: GateCall,
    model: Model,
    prompt_estimate: u64,
    /// Content chunks relayed: about one token each, the bill when no usage chunk arrives.
    chunks: u64,
    usage: Option<Usage>,
}

impl Meter {
    fn usage(&self) -> Usage {
        self.usage.unwrap_or(Usage {
            prompt_tokens: self.prompt_estimate,
            completion_tokens: self.chunks,
        })
    }
}

/// Sends the request and waits for the first chunk, all within `timeout`. Until this returns Ok
/// the client has seen nothing, so any failure here may still fall back.
async fn open(
    http: reqwest::Client,
    endpoint: Endpoint,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Opened, ProviderError> {
    let opening = async {
        let request = endpoint
            .request(&http, Method::POST, "/chat/completions")
            .header(CONTENT_TYPE.as_str(), "application/json")
            .body(body);
        let mut rest = endpoint.send(request, None).await?.bytes_stream().boxed();
        let first = first_event(&mut rest)
            .await
            .map_err(|err| endpoint.scrub(err))?;
        Ok(Opened { first, rest })
    };
    tokio::time::timeout(timeout, opening)
        .await
        .unwrap_or_else(|_| {
            Err(ProviderError::new(
                ErrorKind::Timeout,
                None,
                format!("no first byte within {}s", timeout.as_secs_f32()),
            ))
        })
}

/// A 2xx stream is only an answer once its first data event is a chunk: read until that event
/// is complete (comments and keep-alives before it are kept) and check it, so an error event, a
/// non-JSON line or a stream that ends at once fails this attempt while fallback is still
/// possible. Returns every byte read.
async fn first_event(rest: &mut Upstream) -> Result<Bytes, ProviderError> {
    let mut read = bytes::BytesMut::new();
    let mut splitter = EventSplitter::default();
    loop {
        let chunk = match rest.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(err)) => return Err(ProviderError::from_reqwest(err)),
            None => {
                return Err(ProviderError::malformed(
                    "but closed the stream before any data",
                ));
            }
        };
        read.extend_from_slice(&chunk);
        for event in splitter.push(&chunk) {
            if let Some(verdict) = sse::opening_verdict(&event) {
                return verdict.map(|()| read.freeze());
            }
        }
        if read.len() > FIRST_EVENT_LIMIT {
            return Err(ProviderError::malformed(
                "with no data event in its first 64 KiB",
            ));
        }
    }
}

/// How much a stream may send before its first data event.
const FIRST_EVENT_LIMIT: usize = 64 * 1024;

/// The relay's state between polls.
struct Relay {
    upstream: Upstream,
    splitter: EventSplitter,
    out: VecDeque<Bytes>,
    include_usage: bool,
    idle_timeout: Duration,
    meter: Meter,
    saw_done: bool,
    finished: bool,
    /// Why the stream ended early, once it did.
    failure: Option<&'static str>,
}

impl Relay {
    fn new(opened: Opened, include_usage: bool, idle_timeout: Duration, meter: Meter) -> Relay {
        let mut relay = Relay {
            upstream: opened.rest,
            splitter: EventSplitter::default(),
            out: VecDeque::new(),
            include_usage,
            idle_timeout,
            meter,
            saw_done: false,
            finished: false,
            failure: None,
        };
        relay.accept(&opened.first);
        relay
    }

    fn into_stream(self) -> impl Stream<Item = Result<Bytes, Infallible>> {
        futures_util::stream::unfold(self, |mut relay| async move {
            let next = relay.next_bytes().await?;
            Some((Ok(next), relay))
        })
    }

    /// The next bytes to send, or `None` when the stream is over.
    async fn next_bytes(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.out.pop_front() {
                return Some(bytes);
            }
            if self.finished {
                return None;
            }
            match tokio::time::timeout(self.idle_timeout, self.upstream.next()).await {
                Ok(Some(Ok(chunk))) => self.accept(&chunk),
                Ok(Some(Err(err))) => self.fail(&ProviderError::from_reqwest(err).message),
                Ok(None) if self.saw_done || self.finished => self.finished = true,
                Ok(None) => self.fail("upstream ended the stream early"),
                Err(_) => self.fail("upstream went silent mid-stream"),
            }
        }
    }

    /// Queues the complete events of `chunk`, metering usage and dropping an unrequested usage chunk.
    fn accept(&mut self, chunk: &[u8]) {
        for event in self.splitter.push(chunk) {
            match sse::classify(&event) {
                Event::Usage(usage) => {
                    self.meter.usage = Some(usage);
                    if self.include_usage {
                        self.out.push_back(event);
                    }
                }
                Event::Chunk(usage) => {
                    self.meter.usage = usage.or(self.meter.usage);
                    self.meter.chunks += 1;
                    self.out.push_back(event);
                }
                Event::Done => {
                    self.saw_done = true;
                    self.out.push_back(event);
                }
                Event::Error => {
                    self.out.push_back(event);
                    self.finished = true;
                    self.failure = Some(ErrorCode::UpstreamError.as_str());
                }
                Event::Malformed => self.fail("upstream sent an event that is not JSON"),
                Event::Other => self.out.push_back(event),
            }
        }
    }

    /// Ends the stream with one error event, as API.md section 3 specifies.
    fn fail(&mut self, reason: &str) {
        tracing::warn!("stream failed after its first byte: {reason}");
        let error = json!({ "error": {
            "message": format!("the upstream stream failed: {reason}"),
            "type": "api_error",
            "code": ErrorCode::UpstreamError.as_str(),
        }});
        self.out.push_back(sse::event(&error));
        self.finished = true;
        self.failure = Some(ErrorCode::UpstreamError.as_str());
    }
}

/// However the stream ends (done, failed, or dropped because the client left), bill what was
/// generated and record the trace.
impl Drop for Relay {
    fn drop(&mut self) {
        let usage = self.meter.usage();
        let model = self.meter.model.clone();
        match (self.finished && self.saw_done, self.failure) {
            (true, None) => {
                self.meter.call.succeed(&model, usage);
            }
            (_, Some(code)) => self.meter.call.fail_after_start(&model, usage, code),
            (false, None) => self
                .meter
                .call
                .fail_after_start(&model, usage, "client_disconnected"),
        }
    }
}
