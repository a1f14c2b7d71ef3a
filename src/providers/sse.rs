//! Server-sent events as OpenAI streams them: `data: {json}\n\n` … `data: [DONE]\n\n`.
//!
//! `EventSplitter` cuts an upstream byte stream into whole events without copying more than the
//! one partial event it must hold back; `classify` looks at an event only as far as metering needs.

use super::error::ProviderError;
use bytes::{Bytes, BytesMut};

/// Splits bytes into complete events (each including its terminating blank line).
#[derive(Default)]
pub struct EventSplitter {
    pending: BytesMut,
}

impl EventSplitter {
    /// Appends `chunk` and returns every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = find_event_end(&self.pending) {
            events.push(self.pending.split_to(end).freeze());
        }
        events
    }

    /// Bytes of an unfinished event left at the end of the stream.
    pub fn has_partial(&self) -> bool {
        self.pending.iter().any(|b| !b.is_ascii_whitespace())
    }
}

/// Index just past the first `\n\n` (or `\r\n\r\n`).
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub use super::usage::Usage;

#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// `data: [DONE]`.
    Done,
    /// The usage-only chunk (empty `choices`), with its counts.
    Usage(Usage),
    /// A content chunk (possibly carrying usage too, which is then also returned).
    Chunk(Option<Usage>),
    /// An error object sent in-band by the upstream.
    Error,
    /// A data line that is not a JSON object (nor `[DONE]`).
    Malformed,
    /// Comments, keep-alives, anything else: relayed untouched.
    Other,
}

/// Looks at one event. JSON is parsed only when the text mentions usage or an error.
pub fn classify(event: &[u8]) -> Event {
    let Some(data) = data_of(event) else {
        return Event::Other;
    };
    if data.trim_ascii() == b"[DONE]" {
        return Event::Done;
    }
    // A cheap structural check keeps garbage out without parsing every chunk.
    let data = data.trim_ascii();
    if data.first() != Some(&b'{') || data.last() != Some(&b'}') {
        return Event::Malformed;
    }
    let mentions = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    if !mentions(b"\"usage\"") && !mentions(b"\"error\"") {
        return Event::Chunk(None);
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return Event::Malformed;
    };
    if json.get("error").is_some_and(|e| !e.is_null()) {
        return Event::Error;
    }
    let usage = json.get("usage").and_then(Usage::from_json);
    let no_choices = json
        .get("choices")
        .and_then(|c| c.as_array())
        .is_none_or(|c| c.is_empty());
    match usage {
        Some(usage) if no_choices => Event::Usage(usage),
        usage => Event::Chunk(usage),
    }
}

/// Whether `event`, read before anything was relayed, shows the stream is an answer: `None` for
/// comments and keep-alives (read on), `Some(Ok)` for a chunk (fully parsed, with `choices` or
/// usage), `Some(Err)` for an error event, a line that is not JSON, or `[DONE]` with no answer.
pub fn opening_verdict(event: &[u8]) -> Option<Result<(), ProviderError>> {
    let data = data_of(event)?.trim_ascii();
    if data == b"[DONE]" {
        return Some(Err(ProviderError::malformed(
            "but ended the stream with no chunk",
        )));
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return Some(Err(ProviderError::malformed(
            "with a stream event that is not JSON",
        )));
    };
    if let Some(error) = json.get("error").filter(|e| !e.is_null()) {
        return Some(Err(ProviderError::in_band(&error.to_string())));
    }
    let answers = json.get("choices").is_some_and(serde_json::Value::is_array)
        || json.get("usage").is_some_and(serde_json::Value::is_object);
    Some(if answers {
        Ok(())
    } else {
        Err(ProviderError::malformed(
            "with a stream event without `choices`",
        ))
    })
}

/// The payload of the event's `data:` line: the whole event after it when the event starts
/// with it (OpenAI's one-line events), else the first `data:` line after `event:` or `id:` lines
/// (Anthropic names its events).
pub fn data_of(event: &[u8]) -> Option<&[u8]> {
    let text = event.trim_ascii();
    let rest = match text.strip_prefix(b"data:") {
        Some(rest) => rest,
        None => {
            let line = text
                .split(|b| *b == b'\n')
                .find(|line| line.starts_with(b"data:"))?;
            line[5..].trim_ascii_end()
        }
    };
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

/// One event carrying `json`, ready to send.
pub fn event(json: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_arbitrary_chunk_boundaries() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5}}\n\ndata: [DONE]\n\n";
        for cut in 1..stream.len() {
            let mut splitter = EventSplitter::default();
            let mut events = splitter.push(&stream[..cut]);
            events.extend(splitter.push(&stream[cut..]));
            let kinds: Vec<Event> = events.iter().map(|e| classify(e)).collect();
            let usage = Usage {
                prompt_tokens: 3,
                completion_tokens: 5,
                ..Usage::default()
            };
            assert_eq!(
                kinds,
                vec![Event::Chunk(None), Event::Usage(usage), Event::Done],
                "cut at {cut}"
            );
            assert!(!splitter.has_partial());
        }
    }

    #[test]
    fn errors_and_comments_are_recognised() {
        assert_eq!(
            classify(b"data: {\"error\":{\"message\":\"boom\"}}\n\n"),
            Event::Error
        );
        assert_eq!(classify(b": keep-alive\n\n"), Event::Other);
        assert_eq!(classify(b"data: <html>oops</html>\n\n"), Event::Malformed);
        assert!(opening_verdict(b": keep-alive\n\n").is_none());
        assert!(opening_verdict(b"data: {\"choices\":[]}\n\n").is_some_and(|v| v.is_ok()));
        for bad in [
            &b"data: not json\n\n"[..],
            b"data: {\"error\":{\"message\":\"x\"}}\n\n",
            b"data: {\"id\":1}\n\n",
            b"data: [DONE]\n\n",
        ] {
            assert!(
                opening_verdict(bad).is_some_and(|v| v.is_err()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            classify(b"data: {\"choices\":[{}],\"usage\":null}\n\n"),
            Event::Chunk(None)
        );
    }
}
