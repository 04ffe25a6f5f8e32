//! [`HeldBody`]: an actix response body that keeps the request's permits until it has been
//! sent.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use pin_project_lite::pin_project;
use resilience_http::{BodyEnd, Guard, HeldGuard};

pin_project! {
    /// The body of a response that a [`Resilience`](crate::Resilience) middleware admitted: the
    /// handler's body `B` holding the stages' permits (`G`) until it ends.
    ///
    /// The rules are `resilience-http`'s [`ResponseBody`](resilience_http::ResponseBody)'s, and
    /// so is the guard's bookkeeping ([`HeldGuard`]): the permits go back at the first of
    ///
    /// * the body's last chunk ([`BodyEnd::Complete`]): the end of the stream, or the last of
    ///   the bytes a sized body announced (actix may stop polling there);
    /// * a body error ([`BodyEnd::Error`]);
    /// * the body being dropped before its end, as when the client disconnects
    ///   ([`BodyEnd::Dropped`]);
    /// * the client leaving the body unread for longer than the body idle timeout
    ///   ([`BodyEnd::Stalled`]).
    ///
    /// An empty body, and the answer to a `HEAD` request, give the permits back with the head.
    pub struct HeldBody<B, G: Guard> {
        #[pin]
        body: B,
        held: HeldGuard<G>,
        // Bytes a sized body has still to send; `None` for a stream.
        remaining: Option<u64>,
    }
}

impl<B: MessageBody, G: Guard> HeldBody<B, G> {
    /// `body`, holding nothing.
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            body,
            held: HeldGuard::empty(),
            remaining: None,
        }
    }

    /// `body` holding `guard` until it ends, or until the client has left it waiting for
    /// `idle`; at once when the body is empty or answers a `HEAD` request (nothing will poll
    /// it).
    pub(crate) fn guarded(body: B, guard: G, idle: Option<Duration>, head_request: bool) -> Self {
        let size = body.size();
        if head_request || matches!(size, BodySize::None | BodySize::Sized(0)) {
            guard.finish(BodyEnd::Complete);
            return Self::passthrough(body);
        }
        let remaining = match size {
            BodySize::Sized(length) => Some(length),
            _ => None,
        };
        Self {
            body,
            held: HeldGuard::new(guard, idle),
            remaining,
        }
    }

    /// Whether the body still holds its permits.
    pub fn is_holding(&self) -> bool {
        self.held.is_holding()
    }
}

impl<B: MessageBody, G: Guard> MessageBody for HeldBody<B, G> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        this.held.asked();
        let chunk = ready!(this.body.poll_next(cx));
        match &chunk {
            None => this.held.finish(BodyEnd::Complete),
            Some(Err(_)) => this.held.finish(BodyEnd::Error),
            Some(Ok(bytes)) => {
                let sent = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                match this.remaining {
                    Some(remaining) if *remaining <= sent => {
                        *remaining = 0;
                        this.held.finish(BodyEnd::Complete);
                    }
                    Some(remaining) => {
                        *remaining -= sent;
                        this.held.answered();
                    }
                    None => this.held.answered(),
                }
            }
        }
        Poll::Ready(chunk)
    }
}

impl<B, G: Guard> fmt::Debug for HeldBody<B, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldBody")
            .field("holding", &self.held.is_holding())
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {

    use actix_web::body::{self, BodyStream};
    use futures_util::stream;

    use resilience_testkit::Recorder;

    use super::*;

    #[tokio::test]
    async fn a_sized_body_releases_with_its_last_byte() {
        let record = Recorder::default();
        let held = HeldBody::guarded(Bytes::from_static(b"hello"), record.sink(), None, false);
        assert!(held.is_holding());
        let mut held = Box::pin(held);
        let chunk = std::future::poll_fn(|cx| held.as_mut().poll_next(cx)).await;
        assert_eq!(chunk.unwrap().unwrap(), "hello");
        assert_eq!(
            record.items(),
            [BodyEnd::Complete],
            "no need to poll past the end"
        );
        drop(held);
        assert_eq!(record.items(), [BodyEnd::Complete], "released once");
    }

    #[tokio::test]
    async fn a_stream_holds_until_its_end_and_reports_errors_and_drops() {
        let chunks = stream::iter([
            Ok::<_, std::io::Error>(Bytes::from_static(b"a")),
            Ok(Bytes::from_static(b"b")),
        ]);
        let record = Recorder::default();
        let held = HeldBody::guarded(BodyStream::new(chunks), record.sink(), None, false);
        assert_eq!(&body::to_bytes(held).await.unwrap()[..], b"ab");
        assert_eq!(record.items(), [BodyEnd::Complete]);

        let failing = stream::iter([Err::<Bytes, _>(std::io::Error::other("reset"))]);
        let record = Recorder::default();
        let held = HeldBody::guarded(BodyStream::new(failing), record.sink(), None, false);
        assert!(body::to_bytes(held).await.is_err());
        assert_eq!(record.items(), [BodyEnd::Error]);

        let record = Recorder::default();
        let pending = stream::pending::<Result<Bytes, std::io::Error>>();
        drop(HeldBody::guarded(
            BodyStream::new(pending),
            record.sink(),
            None,
            false,
        ));
        assert_eq!(record.items(), [BodyEnd::Dropped]);
    }

    #[test]
    fn empty_bodies_and_head_answers_release_at_once() {
        let record = Recorder::default();
        let held = HeldBody::guarded((), record.sink(), None, false);
        assert!(!held.is_holding());
        let head = HeldBody::guarded(Bytes::from_static(b"x"), record.sink(), None, true);
        assert!(!head.is_holding());
        assert_eq!(record.items(), [BodyEnd::Complete, BodyEnd::Complete]);
    }
}
