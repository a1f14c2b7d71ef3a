//! Streams: open the upstream stream (falling back while nothing has been sent), then relay it
//! event by event.
//!
//! Upstream events are read in OpenAI form: as they are from an OpenAI-dialect provider, through
//! the adapter's [`StreamDecoder`] from any other. The relay looks inside only to meter usage, and
//! writes each event out in the client's dialect ([`Outbound`]): OpenAI events pass as they came
//! (but the usage chunk the client did not ask for), Anthropic clients get Messages events. A
//! failure after the first byte ends the stream with one error event. Dropping the response
//! (client gone) drops the upstream body, which closes that connection and so cancels the call.

use super::call::GateCall;
use crate::catalog::{Api, Model};
use crate::error::ErrorCode;
use crate::providers::chat::decoder;
use crate::providers::sse::{self, Event, EventSplitter};
use crate::providers::{Endpoint, ErrorKind, ProviderError, StreamDecoder, Usage};
use actix_web::HttpResponse;
use actix_web::HttpResponseBuilder;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

type Upstream = BoxStream<'static, Result<Bytes, reqwest::Error>>;

/// An upstream stream that has produced its first event.
pub struct Opened {
    api: Api,
    first: Bytes,
    rest: Upstream,
}

/// How OpenAI events are written to the client.
pub trait Outbound: Send {
    /// Writes `event` (of `kind`) out, in the client's dialect.
    fn emit(&mut self, event: Bytes, kind: &Event, out: &mut VecDeque<Bytes>);
    /// The event that ends a failed stream.
    fn error(&mut self, message: &str) -> Bytes;
}

/// The OpenAI client's side: events as they came, but the usage chunk it did not ask for.
pub struct OpenAiOut {
    pub include_usage: bool,
}

impl Outbound for OpenAiOut {
    fn emit(&mut self, event: Bytes, kind: &Event, out: &mut VecDeque<Bytes>) {
        if self.include_usage || !matches!(kind, Event::Usage(_)) {
            out.push_back(event);
        }
    }

    fn error(&mut self, message: &str) -> Bytes {
        sse::event(&json!({ "error": {
            "message": message,
            "type": "api_error",
            "code": ErrorCode::UpstreamError.as_str(),
        }}))
    }
}

/// Sends `request` and waits for the first event, all within `timeout`. Until this returns Ok
/// the client has seen nothing, so any failure here may still fall back.
pub async fn open(
    endpoint: &Endpoint,
    request: reqwest::RequestBuilder,
    model: &Model,
    timeout: Duration,
) -> Result<Opened, ProviderError> {
    let api = endpoint.api;
    let opening = async {
        let mut rest = endpoint.send(request, None).await?.bytes_stream().boxed();
        let first = first_event(&mut rest, decoder(api, model))
            .await
            .map_err(|err| endpoint.scrub(err))?;
        Ok(Opened { api, first, rest })
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
/// possible. Another dialect's events are judged as the adapter translates them (by a decoder of
/// their own: the relay's starts afresh from the bytes returned). Returns every byte read.
async fn first_event(
    rest: &mut Upstream,
    mut decoder: Option<Box<dyn StreamDecoder>>,
) -> Result<Bytes, ProviderError> {
    let mut read = bytes::BytesMut::new();
    let mut splitter = EventSplitter::default();
    let mut decoded = Vec::new();
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
            decoded.clear();
            match decoder.as_mut() {
                Some(decoder) => decoder.decode(&event, &mut decoded),
                None => decoded.push(event),
            }
            for event in &decoded {
                if let Some(verdict) = sse::opening_verdict(event) {
                    return verdict.map(|()| read.freeze());
                }
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

/// The streamed response: `call`'s headers (plus `extra`), and the relay of `opened` that
/// bills `model` when it ends. `native`: the upstream speaks the client's dialect, so its bytes
/// are forwarded as they are and translated only to be metered.
pub struct StreamReply {
    pub model: Arc<Model>,
    pub prompt_estimate: u64,
    pub idle_timeout: Duration,
    pub native: bool,
}

impl StreamReply {
    pub fn respond(
        self,
        mut call: GateCall,
        mut response: HttpResponseBuilder,
        opened: Opened,
        outbound: Box<dyn Outbound>,
    ) -> HttpResponse {
        call.mark_streamed();
        call.headers(&mut response);
        let meter = Meter {
            call,
            model: self.model,
            prompt_estimate: self.prompt_estimate,
            chunks: 0,
            usage: None,
        };
        let relay = Relay {
            decoder: decoder(opened.api, &meter.model),
            upstream: opened.rest,
            splitter: EventSplitter::default(),
            out: VecDeque::new(),
            decoded: Vec::new(),
            outbound,
            native: self.native,
            idle_timeout: self.idle_timeout,
            meter,
            saw_done: false,
            finished: false,
            failure: None,
            gave_up: false,
        };
        let relay = relay.started(&opened.first);
        response
            .insert_header((CONTENT_TYPE, "text/event-stream"))
            .insert_header((CACHE_CONTROL, "no-cache"))
            .streaming(relay.into_stream())
    }
}

/// What a stream used, for billing when it ends however it ends.
struct Meter {
    call: GateCall,
    model: Arc<Model>,
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
            ..Usage::default()
        })
    }
}

/// The relay's state between polls.
struct Relay {
    upstream: Upstream,
    splitter: EventSplitter,
    decoder: Option<Box<dyn StreamDecoder>>,
    /// Events waiting to be sent.
    out: VecDeque<Bytes>,
    /// The decoder's output for the event at hand (kept to reuse its allocation).
    decoded: Vec<Bytes>,
    outbound: Box<dyn Outbound>,
    native: bool,
    idle_timeout: Duration,
    meter: Meter,
    saw_done: bool,
    finished: bool,
    /// Why the stream ended early, once it did.
    failure: Option<&'static str>,
    /// The relay ended the stream itself (its own error event sent).
    gave_up: bool,
}

impl Relay {
    fn started(mut self, first: &[u8]) -> Relay {
        self.accept(first);
        self
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
                Ok(None) => self.upstream_ended(),
                Err(_) => self.fail("upstream went silent mid-stream"),
            }
        }
    }

    /// Takes in the complete events of `chunk`.
    fn accept(&mut self, chunk: &[u8]) {
        for event in self.splitter.push(chunk) {
            let Some(decoder) = self.decoder.as_mut() else {
                self.take(event);
                continue;
            };
            let was_finished = self.finished;
            let mut decoded = std::mem::take(&mut self.decoded);
            decoder.decode(&event, &mut decoded);
            for openai in decoded.drain(..) {
                self.take(openai);
            }
            self.decoded = decoded;
            // An upstream error event is forwarded too; one the relay gave up on is replaced.
            if self.native && !was_finished && !self.gave_up {
                self.out.push_back(event);
            }
        }
    }

    fn upstream_ended(&mut self) {
        if let Some(decoder) = self.decoder.as_mut() {
            let mut closing = Vec::new();
            decoder.finish(&mut closing);
            for event in closing {
                self.take(event);
            }
        }
        if self.saw_done || self.finished {
            self.finished = true;
        } else {
            self.fail("upstream ended the stream early");
        }
    }

    /// Meters one OpenAI event and writes it out (unless the raw upstream bytes are).
    fn take(&mut self, event: Bytes) {
        if self.finished {
            return;
        }
        let kind = sse::classify(&event);
        match &kind {
            Event::Usage(usage) => self.meter.usage = Some(*usage),
            Event::Chunk(usage) => {
                self.meter.usage = usage.or(self.meter.usage);
                self.meter.chunks += 1;
            }
            Event::Done => self.saw_done = true,
            Event::Error => {
                self.finished = true;
                self.failure = Some(ErrorCode::UpstreamError.as_str());
            }
            Event::Malformed => return self.fail("upstream sent an event that is not JSON"),
            Event::Other => {}
        }
        if !self.native {
            self.outbound.emit(event, &kind, &mut self.out);
        }
        if self.saw_done && !self.native {
            self.finished = true;
        }
    }

    /// Ends the stream with one error event, as API.md section 3 specifies.
    fn fail(&mut self, reason: &str) {
        tracing::warn!("stream failed after its first byte: {reason}");
        let error = self
            .outbound
            .error(&format!("the upstream stream failed: {reason}"));
        self.out.push_back(error);
        self.finished = true;
        self.gave_up = true;
        self.failure = Some(ErrorCode::UpstreamError.as_str());
    }
}

/// However the stream ends (done, failed, or dropped because the client left), bill what was
/// generated and record the trace.
impl Drop for Relay {
    fn drop(&mut self) {
        let usage = self.meter.usage();
        let model = self.meter.model.clone();
        match (self.saw_done, self.failure) {
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
