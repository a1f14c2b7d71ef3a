//! W3C trace context: what a client's `traceparent` says, and what each upstream attempt is sent.

use std::time::{Duration, SystemTime};

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// The trace one generating request belongs to.
#[derive(Debug, Clone)]
pub struct CallTrace {
    pub trace_id: TraceId,
    /// The client's span, when it sent a `traceparent`.
    pub parent: Option<SpanId>,
    /// The gateway's span for this request (the client's own span id when not exporting).
    pub span_id: SpanId,
    pub sampled: bool,
    /// The client's `tracestate`, passed on unchanged.
    pub tracestate: Option<String>,
    /// Wall-clock start of the request: spans carry absolute times.
    pub started: SystemTime,
    /// False when no collector is configured: the client's context is only passed on upstream.
    pub exported: bool,
}

/// An upstream attempt's span: known before the attempt, so its id can go upstream.
#[derive(Debug, Clone, Copy)]
pub struct AttemptSpan {
    pub id: SpanId,
    pub started: SystemTime,
    pub duration: Duration,
}

impl CallTrace {
    /// The trace of a request with these headers: the client's context continued when it sent a
    /// valid `traceparent`, else a new root (sampled at `ratio`). `None` when there is nothing to
    /// export and nothing to pass on.
    pub fn begin(
        traceparent: Option<&str>,
        tracestate: Option<&str>,
        exporting: Option<f64>,
        started: SystemTime,
    ) -> Option<CallTrace> {
        let incoming = traceparent.and_then(parse_traceparent);
        let (trace_id, parent, sampled) = match (incoming, exporting) {
            (Some((trace, parent, sampled)), _) => (trace, Some(parent), sampled),
            (None, Some(ratio)) => (random_trace_id(), None, sample(ratio)),
            (None, None) => return None,
        };
        let span_id = match (exporting, parent) {
            (None, Some(parent)) => parent,
            _ => new_span_id(),
        };
        Some(CallTrace {
            trace_id,
            parent,
            span_id,
            sampled,
            tracestate: tracestate
                .filter(|_| parent.is_some())
                .filter(|s| s.len() <= 512)
                .map(str::to_owned),
            started,
            exported: exporting.is_some(),
        })
    }

    /// A span for the next upstream attempt (when exporting; else the client's span is passed on).
    pub fn attempt(&self) -> AttemptSpan {
        AttemptSpan {
            id: if self.exported {
                new_span_id()
            } else {
                self.span_id
            },
            started: SystemTime::now(),
            duration: Duration::ZERO,
        }
    }

    /// The `traceparent` an upstream is sent for the attempt with span `span`.
    pub fn traceparent(&self, span: SpanId) -> String {
        format!(
            "00-{}-{}-{}",
            hex::encode(self.trace_id),
            hex::encode(span),
            if self.sampled { "01" } else { "00" }
        )
    }
}

/// `00-<32 hex trace>-<16 hex parent>-<2 hex flags>` (W3C Trace Context level 1; a later version's
/// extra fields are ignored as the spec says). All-zero ids are invalid.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, bool)> {
    let value = value.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || !is_lower_hex(version) {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !(is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags)) {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    hex::decode_to_slice(trace, &mut trace_id).ok()?;
    hex::decode_to_slice(parent, &mut span_id).ok()?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, flags & 1 == 1))
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_trace_id() -> TraceId {
    let mut id = [0u8; 16];
    while id == [0; 16] {
        fill(&mut id);
    }
    id
}

pub fn new_span_id() -> SpanId {
    let mut id = [0u8; 8];
    while id == [0; 8] {
        fill(&mut id);
    }
    id
}

fn sample(ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    ((u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64) < ratio
}

/// Span ids need to be unique, not secret; if the OS has no randomness, the clock's nanoseconds
/// mixed with a counter still are.
fn fill(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mixed = (nanos ^ n.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte = (mixed.rotate_left((i as u32 % 8) * 8) & 0xff) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_client_traceparent_is_continued_with_the_gateways_own_span() {
        let call = CallTrace::begin(Some(CLIENT), Some("vendor=x"), Some(0.0), SystemTime::now())
            .expect("traced");
        assert_eq!(
            hex::encode(call.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            call.parent.map(hex::encode).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert!(
            call.sampled,
            "the client's sampled flag wins over the ratio"
        );
        let attempt = call.attempt();
        assert_ne!(attempt.id, call.span_id);
        let upstream = call.traceparent(attempt.id);
        assert!(upstream.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(upstream.ends_with("-01") && !upstream.contains("00f067aa0ba902b7"));
        assert_eq!(call.tracestate.as_deref(), Some("vendor=x"));
    }

    #[test]
    fn without_a_collector_the_clients_context_is_passed_on_unchanged() {
        let call = CallTrace::begin(Some(CLIENT), None, None, SystemTime::now()).expect("passed");
        assert_eq!(call.traceparent(call.attempt().id), CLIENT);
        assert!(CallTrace::begin(None, None, None, SystemTime::now()).is_none());
    }

    #[test]
    fn malformed_traceparents_start_a_new_root() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
            let call = CallTrace::begin(Some(bad), None, Some(1.0), SystemTime::now())
                .expect("a new root");
            assert!(call.parent.is_none() && call.sampled, "{bad}");
        }
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }

    #[test]
    fn the_ratio_samples_new_roots() {
        let sampled = (0..2000)
            .filter(|_| {
                CallTrace::begin(None, None, Some(0.25), SystemTime::now())
                    .is_some_and(|c| c.sampled)
            })
            .count();
        assert!((300..700).contains(&sampled), "{sampled} of 2000 at 0.25");
        assert!(
            CallTrace::begin(None, None, Some(0.0), SystemTime::now()).is_some_and(|c| !c.sampled)
        );
    }
}
