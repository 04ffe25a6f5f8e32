//! [`ReplayBody`]: a request body the retry layer can send again, and the buffering behind it.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;

pin_project! {
    /// The request body the [`HttpRetryLayer`](crate::HttpRetryLayer) hands to its inner service:
    /// the buffered body (a cheap clone of the same bytes for every attempt), or the
    /// original body, possibly after a prefix that was read while trying to buffer it.
    pub struct ReplayBody<B: Body> {
        prefix: Option<Bytes>,
        trailers: Option<HeaderMap>,
        error: Option<B::Error>,
        #[pin]
        rest: Option<B>,
    }
}

impl<B: Body> ReplayBody<B> {
    /// The original body, untouched.
    pub(crate) fn streaming(body: B) -> Self {
        Self::parts(Bytes::new(), None, None, Some(body))
    }

    /// A buffered body, for one attempt.
    pub(crate) fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self::parts(data, trailers, None, None)
    }

    fn parts(
        prefix: Bytes,
        trailers: Option<HeaderMap>,
        error: Option<B::Error>,
        rest: Option<B>,
    ) -> Self {
        Self {
            prefix: (!prefix.is_empty()).then_some(prefix),
            trailers,
            error,
            rest,
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if let Some(rest) = this.rest.as_pin_mut() {
            return rest.poll_frame(cx);
        }
        Poll::Ready(
            this.trailers
                .take()
                .map(|trailers| Ok(Frame::trailers(trailers))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && self.trailers.is_none()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |prefix| prefix.len() as u64);
        let mut hint = match &self.rest {
            Some(rest) => rest.size_hint(),
            None => SizeHint::with_exact(0),
        };
        // Upper first: `set_lower` panics if it would pass the upper bound.
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + prefix);
        }
        hint.set_lower(hint.lower() + prefix);
        hint
    }
}

impl<B: Body> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayBody")
            .field("buffered", &self.prefix.as_ref().map_or(0, Bytes::len))
            .field("streaming", &self.rest.is_some())
            .finish_non_exhaustive()
    }
}

/// The request body type a [`HttpRetryService`](crate::HttpRetryService)'s inner service receives,
/// made from the [`ReplayBody`] of each attempt: [`Replay`] (the `ReplayBody` itself, for
/// services generic over their body, such as an axum `Router` as a whole or a hyper client)
/// or, with feature `axum`, `axum::body::Body` (for `Router::layer`, whose routes take only
/// that type).
pub trait RetryBody<B: Body> {
    /// The inner service's request body.
    type Body;

    /// The body of one attempt.
    fn from_replay(body: ReplayBody<B>) -> Self::Body;
}

/// The inner service receives [`ReplayBody`] request bodies (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Replay;

impl<B: Body> RetryBody<B> for Replay {
    type Body = ReplayBody<B>;

    fn from_replay(body: ReplayBody<B>) -> ReplayBody<B> {
        body
    }
}

#[cfg(feature = "axum")]
impl<B> RetryBody<B> for axum::body::Body
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError> + Send,
{
    type Body = Self;

    fn from_replay(body: ReplayBody<B>) -> Self {
        Self::new(body)
    }
}

/// A request body after trying to buffer it.
pub(crate) enum Buffered<B: Body> {
    /// The whole body, within the limit: replayable.
    Whole {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// Larger than the limit: what was read, then the rest, sent once.
    TooLarge(ReplayBody<B>),
    /// Reading failed: what was read, then the error, sent once.
    Unreadable(ReplayBody<B>),
}

/// Reads `body` into memory if it fits in `limit` bytes. A body whose declared length is
/// over the limit is not read at all; one of unknown length is read until it ends or passes
/// the limit.
pub(crate) async fn buffer<B>(mut body: B, limit: usize) -> Buffered<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    if body.size_hint().lower() > limit as u64 {
        return Buffered::TooLarge(ReplayBody::streaming(body));
    }
    let mut data = Chunks::default();
    loop {
        match body.frame().await {
            None => {
                return Buffered::Whole {
                    data: data.freeze(),
                    trailers: None,
                }
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => {
                    data.push(chunk);
                    if data.len > limit {
                        let prefix = data.freeze();
                        return Buffered::TooLarge(ReplayBody::parts(
                            prefix,
                            None,
                            None,
                            Some(body),
                        ));
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        return Buffered::Whole {
                            data: data.freeze(),
                            trailers: Some(trailers),
                        };
                    }
                }
            },
            Some(Err(error)) => {
                let prefix = data.freeze();
                return Buffered::Unreadable(ReplayBody::parts(prefix, None, Some(error), None));
            }
        }
    }
}

/// Chunks read so far; one chunk (the usual case) is kept without copying.
#[derive(Default)]
struct Chunks {
    first: Option<Bytes>,
    more: Option<BytesMut>,
    len: usize,
}

impl Chunks {
    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        match (&mut self.first, &mut self.more) {
            (None, _) => self.first = Some(chunk),
            (Some(first), None) => {
                let mut more = BytesMut::with_capacity(self.len);
                more.extend_from_slice(first);
                more.extend_from_slice(&chunk);
                self.more = Some(more);
            }
            (Some(_), Some(more)) => more.extend_from_slice(&chunk),
        }
    }

    fn freeze(self) -> Bytes {
        match (self.first, self.more) {
            (_, Some(more)) => more.freeze(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{Full, StreamBody};

    use super::*;

    type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;

    fn stream(frames: Frames) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        StreamBody::new(futures_util::stream::iter(frames))
    }

    fn data(text: &'static str) -> Result<Frame<Bytes>, std::io::Error> {
        Ok(Frame::data(Bytes::from_static(text.as_bytes())))
    }

    async fn collect<B: Body<Data = Bytes>>(body: B) -> Result<Bytes, B::Error> {
        Ok(body.collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn small_bodies_are_buffered_whole() {
        let Buffered::Whole {
            data: whole,
            trailers,
        } = buffer(stream(vec![data("ab"), data("cd")]), 4).await
        else {
            panic!("expected a whole body");
        };
        assert_eq!(&whole[..], b"abcd");
        assert!(trailers.is_none());
        let replay = ReplayBody::<Full<Bytes>>::buffered(whole.clone(), None);
        assert_eq!(replay.size_hint().exact(), Some(4));
        assert_eq!(&collect(replay).await.unwrap()[..], b"abcd");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_not_read() {
        let body = Full::new(Bytes::from_static(b"0123456789"));
        let Buffered::TooLarge(replay) = buffer(body, 4).await else {
            panic!("expected too large");
        };
        assert_eq!(replay.size_hint().exact(), Some(10));
        assert_eq!(&collect(replay).await.unwrap()[..], b"0123456789");
    }

    #[tokio::test]
    async fn a_stream_passing_the_limit_is_sent_whole_once() {
        let frames = vec![data("abc"), data("def"), data("gh")];
        let Buffered::TooLarge(replay) = buffer(stream(frames), 4).await else {
            panic!("expected too large");
        };
        assert_eq!(&collect(replay).await.unwrap()[..], b"abcdefgh");
    }

    #[tokio::test]
    async fn a_read_error_is_passed_on_after_what_was_read() {
        let frames = vec![data("ab"), Err(std::io::Error::other("reset"))];
        let Buffered::Unreadable(mut replay) = buffer(stream(frames), 64).await else {
            panic!("expected unreadable");
        };
        let first = replay.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "ab");
        assert!(replay.frame().await.unwrap().is_err());
        assert!(replay.frame().await.is_none());
        assert!(replay.is_end_stream());
    }
}
