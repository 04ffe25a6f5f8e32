//! [`ResponseBody`]: a response body that keeps the request's permits until it has been sent.

mod held;

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use resilience::classify::Outcome;

use held::Held;

/// How long a response body may wait for the client to ask for its next chunk before the
/// permits it holds are given back, unless a layer sets its own: 30 seconds.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a response body ended, which decides the outcome a guard reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyEnd {
    /// Every frame was sent.
    Complete,
    /// The body failed while being sent.
    Error,
    /// The body was dropped before its end (the client went away, or the server gave up).
    Dropped,
    /// The client stopped reading: the body waited longer than its idle timeout for the
    /// client to ask for the next chunk, and gave its permits back early. The body itself
    /// goes on (the connection's own timeouts bound it), holding nothing.
    Stalled,
}

impl BodyEnd {
    /// The outcome of a call whose response head was judged `head` and whose body ended so:
    /// a complete body keeps the head's verdict, a failed body is a failure, and a body the
    /// client abandoned or stopped reading says nothing new about the service (ignored),
    /// unless the head already said it failed.
    pub fn outcome(self, head: Outcome) -> Outcome {
        match (self, head) {
            (Self::Complete, head) => head,
            (Self::Error, _) | (Self::Dropped | Self::Stalled, Outcome::Failure) => {
                Outcome::Failure
            }
            (Self::Dropped | Self::Stalled, _) => Outcome::Ignored,
        }
    }
}

/// What a layer keeps until a response body ends: a permit, a probe, or nothing (`()`).
///
/// Implemented by this crate's guards; [`finish`](Self::finish) runs exactly once, at the end
/// of the body or when it is dropped.
pub trait Guard: Send + 'static {
    /// Releases what was held, reporting how the body ended.
    fn finish(self, end: BodyEnd);

    /// Whether there is anything to release (`()` and `None` hold nothing): a body only
    /// watches for an idle client when there is.
    fn holds_anything(&self) -> bool {
        true
    }
}

/// A closure is a guard: it runs once, with how the body ended (handy to release something
/// of your own, or to record ends in tests).
impl<F: FnOnce(BodyEnd) + Send + 'static> Guard for F {
    fn finish(self, end: BodyEnd) {
        self(end);
    }
}

impl Guard for () {
    fn finish(self, _end: BodyEnd) {}

    fn holds_anything(&self) -> bool {
        false
    }
}

/// A [`Guard`] held by a response body of another framework until the body ends, with the
/// same rules as [`ResponseBody`]: given back once, at the end of the body, on an error, when
/// dropped, or when the client has left the body waiting for longer than the idle timeout
/// (once a chunk has gone out and more are to come, a small task watches for that, as for
/// [`ResponseBody`]).
///
/// For adapters (`resilience-actix` wraps actix-web's `MessageBody` around one): call
/// [`asked`](Self::asked) when the framework polls the body, [`answered`](Self::answered)
/// when a chunk goes out and [`finish`](Self::finish) when the body ends; dropping it
/// reports [`BodyEnd::Dropped`].
pub struct HeldGuard<G: Guard>(Held<G>);

impl<G: Guard> HeldGuard<G> {
    /// Holds `guard`, watched for an idle client after `idle` if set (from the first chunk
    /// that goes out while more are to come, inside a tokio runtime, if the guard holds
    /// anything).
    pub fn new(guard: G, idle: Option<Duration>) -> Self {
        Self(Held::new(guard, idle))
    }

    /// Holds nothing.
    pub fn empty() -> Self {
        Self(Held::empty())
    }

    /// The framework asked the body for its next chunk: the client is not idle.
    pub fn asked(&self) {
        self.0.asked();
    }

    /// A chunk went out: from now on the body waits for the client to ask again. Call it
    /// only when more is to come (at the end, call [`finish`](Self::finish)): the first call
    /// starts the watch.
    pub fn answered(&mut self) {
        self.0.answered();
    }

    /// Gives the guard back now (once; later calls do nothing), reporting `end`.
    pub fn finish(&mut self, end: BodyEnd) {
        self.0.finish(end);
    }

    /// Whether the guard has not been given back yet.
    pub fn is_holding(&self) -> bool {
        self.0.is_holding()
    }
}

impl<G: Guard> fmt::Debug for HeldGuard<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldGuard")
            .field("holding", &self.is_holding())
            .finish()
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

pin_project! {
/// The body of every response that passes through a layer of this crate: the inner
/// service's body `B` with what the layer holds (`G`) until it ends, or a body made by
/// the layer itself (a rejection, a timeout, a fallback).
///
/// A limiter's slot must be held for as long as the work it limits, and for an HTTP server
/// that work ends when the last byte of the response body has been handed to the connection,
/// not when the handler returns its headers: a streamed download or a server-sent event stream
/// keeps doing work long after that. So every layer of this crate wraps the inner service's body in
/// a [`ResponseBody`] that owns a [`Guard`] (a bulkhead slot, a half-open probe, ...) and gives
/// it back at the first of:
///
/// * the body's last frame ([`BodyEnd::Complete`]): checked after every frame with
///   [`Body::is_end_stream`] as well, because hyper stops polling a body that says it is over;
/// * a body error ([`BodyEnd::Error`]);
/// * the body being dropped before its end, as when the client goes away
///   ([`BodyEnd::Dropped`]);
/// * the client leaving the body waiting for longer than the layer's body idle timeout
///   (30 s by default; see [`HttpStageLayer::body_idle_timeout`](crate::HttpStageLayer::body_idle_timeout))
///   to ask for the next chunk ([`BodyEnd::Stalled`]): a client that stops reading could
///   otherwise hold its slot for as long as its connection lives. The watch starts when a
///   chunk has gone out and more are to come: then a small task watches, since a client
///   that does not read stops hyper from polling the body at all. A body sent in one chunk
///   (most answers) is never watched and costs no task.
///
/// Responses made by this crate (rejections, timeouts, fallbacks) use the same type with a
/// body held in memory and no guard, so a layer has one response type whatever happened.
    pub struct ResponseBody<B, G: Guard = ()> {
        #[pin]
        kind: Kind<B>,
        held: Held<G>,
    }
}

impl<B, G: Guard> ResponseBody<B, G> {
    /// The inner body, passed through with nothing held.
    pub(crate) fn new(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
            held: Held::empty(),
        }
    }

    /// A body made by a layer, held in memory.
    pub(crate) fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
            held: Held::empty(),
        }
    }

    /// Whether this body is still holding its guard.
    pub fn is_holding(&self) -> bool {
        self.held.is_holding()
    }

    /// Gives the guard back now, as a body that ended so would.
    pub(crate) fn release(&mut self, end: BodyEnd) {
        self.held.finish(end);
    }
}

impl<B: Body, G: Guard> ResponseBody<B, G> {
    /// The inner body holding `guard` until it ends, or until the client has left it waiting
    /// for `idle` (if set). A body that is already over (an empty one) gives the guard back
    /// at once: hyper may never poll it.
    pub(crate) fn guarded(body: B, guard: G, idle: Option<Duration>) -> Self {
        if body.is_end_stream() {
            guard.finish(BodyEnd::Complete);
            return Self::new(body);
        }
        let held = Held::new(guard, idle);
        Self {
            kind: Kind::Inner { body },
            held,
        }
    }
}

impl<B, G> Body for ResponseBody<B, G>
where
    B: Body<Data = Bytes>,
    G: Guard,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Inner { mut body } => {
                this.held.asked();
                // Looked at in place and handed back whole: taking the frame out of the poll
                // (`ready!`) copies it the moment the inner body has written it, and the
                // processor stalls reading back stores it has not finished.
                let poll = body.as_mut().poll_frame(cx);
                match &poll {
                    Poll::Pending => {}
                    Poll::Ready(None) => this.held.finish(BodyEnd::Complete),
                    Poll::Ready(Some(Err(_))) => this.held.finish(BodyEnd::Error),
                    Poll::Ready(Some(Ok(_))) if body.is_end_stream() => {
                        this.held.finish(BodyEnd::Complete);
                    }
                    Poll::Ready(Some(Ok(_))) => this.held.answered(),
                }
                poll
            }
            KindProj::Full { data } => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}

impl<B, G: Guard> fmt::Debug for ResponseBody<B, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Full { .. } => "full",
        };
        f.debug_struct("ResponseBody")
            .field("kind", &kind)
            .field("holding", &self.is_holding())
            .finish()
    }
}

#[cfg(test)]
mod tests {

    use futures_util::StreamExt;
    use http_body_util::{BodyExt, Full, StreamBody};

    use resilience_testkit::Recorder;

    use super::*;

    #[test]
    fn outcomes_follow_the_end() {
        use Outcome::*;
        assert_eq!(BodyEnd::Complete.outcome(Success), Success);
        assert_eq!(BodyEnd::Complete.outcome(Failure), Failure);
        assert_eq!(BodyEnd::Error.outcome(Success), Failure);
        assert_eq!(BodyEnd::Dropped.outcome(Success), Ignored);
        assert_eq!(BodyEnd::Dropped.outcome(Failure), Failure);
    }

    #[tokio::test]
    async fn a_full_body_releases_after_its_only_frame() {
        let record = Recorder::default();
        let body = ResponseBody::guarded(Full::new(Bytes::from_static(b"hi")), record.sink(), None);
        assert!(body.is_holding());
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"hi");
        assert_eq!(record.items(), [BodyEnd::Complete]);
    }

    #[test]
    fn an_empty_body_releases_at_once() {
        let record = Recorder::default();
        let body = ResponseBody::guarded(Full::new(Bytes::new()), record.sink(), None);
        assert!(!body.is_holding());
        assert_eq!(record.items(), [BodyEnd::Complete]);
        drop(body);
        assert_eq!(record.items(), [BodyEnd::Complete], "released once");
    }

    /// A streamed body of two data chunks, `a` then `b`.
    fn two_chunks() -> impl Body<Data = Bytes, Error = std::io::Error> {
        let frames = [b"a", b"b"].map(|data| Ok(Frame::data(Bytes::from_static(data))));
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_stream_holds_until_its_end_and_reports_errors_and_drops() {
        let record = Recorder::default();
        let mut body = ResponseBody::guarded(two_chunks(), record.sink(), None);
        body.frame().await.unwrap().unwrap();
        assert!(record.items().is_empty(), "held after the first chunk");
        body.frame().await.unwrap().unwrap();
        assert!(body.frame().await.is_none());
        assert_eq!(record.items(), [BodyEnd::Complete]);

        let failing: Vec<Result<Frame<Bytes>, std::io::Error>> =
            vec![Err(std::io::Error::other("reset"))];
        let record = Recorder::default();
        let mut body = ResponseBody::guarded(
            StreamBody::new(futures_util::stream::iter(failing)),
            record.sink(),
            None,
        );
        assert!(body.frame().await.unwrap().is_err());
        assert_eq!(record.items(), [BodyEnd::Error]);

        let record = Recorder::default();
        let pending = futures_util::stream::pending::<Result<Frame<Bytes>, std::io::Error>>();
        drop(ResponseBody::guarded(
            StreamBody::new(pending),
            record.sink(),
            None,
        ));
        assert_eq!(record.items(), [BodyEnd::Dropped]);
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_body_with_more_to_send_after_a_chunk_is_watched_by_a_task() {
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let idle = Some(Duration::from_secs(1));
        let record = Recorder::default();
        let body = ResponseBody::guarded(Full::new(Bytes::from_static(b"hi")), record.sink(), idle);
        assert_eq!(tasks(), 0, "nothing sent yet");
        body.collect().await.unwrap();
        assert_eq!(tasks(), 0, "sent in one chunk: never watched");
        assert_eq!(record.items(), [BodyEnd::Complete]);

        let record = Recorder::default();
        let mut body = ResponseBody::guarded(two_chunks(), record.sink(), idle);
        assert_eq!(tasks(), 0);
        body.frame().await.unwrap().unwrap();
        assert_eq!(tasks(), 1, "a chunk out, more to come: watched");
        body.frame().await.unwrap().unwrap();
        assert!(body.frame().await.is_none());
        assert_eq!(record.items(), [BodyEnd::Complete]);
        tokio::task::yield_now().await;
        assert_eq!(tasks(), 0, "the watch ends with the body");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_the_client_stops_reading_gives_its_guard_back_after_the_idle_time() {
        let idle = Duration::from_secs(1);
        let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Frame::data(
            Bytes::from_static(b"a"),
        ))])
        .chain(futures_util::stream::pending());
        let record = Recorder::default();
        let mut body = ResponseBody::guarded(StreamBody::new(chunks), record.sink(), Some(idle));
        body.frame().await.unwrap().unwrap();
        // The client got a chunk and does not ask for the next one.
        tokio::time::sleep(idle - Duration::from_millis(1)).await;
        assert!(record.items().is_empty());
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(record.items(), [BodyEnd::Stalled]);
        assert!(!body.is_holding());
        drop(body);
        assert_eq!(record.items(), [BodyEnd::Stalled], "released once");

        // A client waiting for the body's next chunk is not idle, however long it waits.
        let record = Recorder::default();
        let pending = futures_util::stream::pending::<Result<Frame<Bytes>, std::io::Error>>();
        let mut body = ResponseBody::guarded(StreamBody::new(pending), record.sink(), Some(idle));
        let asked = tokio::time::timeout(10 * idle, body.frame()).await;
        assert!(asked.is_err(), "nothing to send yet");
        assert!(record.items().is_empty());
        drop(body);
        assert_eq!(record.items(), [BodyEnd::Dropped]);
    }
}
