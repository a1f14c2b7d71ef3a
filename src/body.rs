//! Request bodies at the edge: a deadline for receiving them, and connections closed (not
//! drained) when a body is left unread.
//!
//! actix bounds how long a client may take to send the request head, but not the body: a body
//! trickled at a byte a second held its connection open indefinitely. [`guard`] wraps every
//! request's payload in a stream that fails once `server.body_read_timeout_secs` have passed since
//! the head arrived, and answers 408 `request_timeout` when it did. And when a handler answers
//! without reading the whole body (a 413 at the size limit, a 401, a 408), actix would otherwise
//! go on reading and discarding a chunked body to its end; the guard keeps the unread payload
//! alive until the response is sent, which makes actix close the connection instead.
//! Size limits themselves are the extractors' (`web::PayloadConfig`, `json::Body`).

use crate::error::{ApiError, ErrorCode};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError};
use bytes::Bytes;
use futures_util::Stream;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// What the payload stream tells the middleware after the handler ran.
#[derive(Default)]
struct Outcome {
    timed_out: Cell<bool>,
    /// A payload the handler dropped before its end: kept until the response is sent.
    unread: RefCell<Option<Payload>>,
}

/// The middleware: `from_fn(move |req, next| body::guard(req, next, deadline))`.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
    deadline: Duration,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let empty = req
        .headers()
        .get(CONTENT_LENGTH)
        .is_some_and(|length| length.as_bytes() == b"0");
    let payload = req.take_payload();
    if empty || matches!(payload, Payload::None) {
        // No body (a GET, `Content-Length: 0`): nothing to bound, nothing left unread.
        req.set_payload(payload);
        return next.call(req).await;
    }
    let outcome = Rc::new(Outcome::default());
    let bounded = Deadline {
        inner: Some(payload),
        ended: false,
        at: Instant::now() + deadline,
        timer: None,
        outcome: outcome.clone(),
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(bounded),
    });
    // Handlers' errors arrive as responses; an `Err` here comes from a middleware and passes.
    let response = next.call(req).await?;
    let response = if outcome.timed_out.get() {
        let message = format!(
            "the request body was not received within {}s",
            deadline.as_secs()
        );
        let (request, _) = response.into_parts();
        let timeout = ApiError::new(ErrorCode::RequestTimeout, message).error_response();
        ServiceResponse::new(request, timeout)
    } else {
        response
    };
    let unread = outcome.unread.borrow_mut().take();
    Ok(match unread {
        None => response,
        Some(payload) => response
            .map_body(|_, body| HoldUnread {
                body,
                _payload: payload,
            })
            .map_into_boxed_body(),
    })
}

/// The request payload, failing with a timeout once `at` has passed. The timer is only armed when
/// the body is not all there yet (most bodies arrive with their head and never need one).
struct Deadline {
    inner: Option<Payload>,
    ended: bool,
    at: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    outcome: Rc<Outcome>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = Pin::new(inner).poll_next(cx) {
            this.ended |= item.is_none();
            return Poll::Ready(item);
        }
        let at = this.at;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.outcome.timed_out.set(true);
        let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body deadline");
        Poll::Ready(Some(Err(PayloadError::Io(late))))
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if !self.ended {
            *self.outcome.unread.borrow_mut() = self.inner.take();
        }
    }
}

/// A response body that keeps the request's unread payload alive until it has been sent.
struct HoldUnread {
    body: BoxBody,
    _payload: Payload,
}

impl MessageBody for HoldUnread {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
