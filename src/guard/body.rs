//! Body types: [`GuardBody`] wraps the request body the inner service
//! receives, [`ResponseBody`] wraps the response body it returns. Both pass
//! every byte, trailer and error through unchanged.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The request body the inner service receives.
    ///
    /// For most requests it is the original body, polled as is. For a probe
    /// whose target is in a JSON body, the guard has read up to the probe's
    /// `body_limit` first; this body then replays those frames (and any read
    /// error) exactly, followed by the rest of the original body.
    pub struct GuardBody<B>
    where
        B: Body,
    {
        #[pin]
        body: Option<B>,
        replay: VecDeque<Result<Frame<Bytes>, B::Error>>,
        rest: Option<Pin<Box<B>>>,
    }
}

impl<B: Body> GuardBody<B> {
    pub(crate) fn new(body: B) -> Self {
        Self {
            body: Some(body),
            replay: VecDeque::new(),
            rest: None,
        }
    }

    pub(crate) fn replay(
        replay: VecDeque<Result<Frame<Bytes>, B::Error>>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        Self {
            body: None,
            replay,
            rest,
        }
    }
}

impl<B: Body> std::fmt::Debug for GuardBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardBody")
            .field("buffered_frames", &self.replay.len())
            .finish_non_exhaustive()
    }
}

/// Turns any frame into a `Bytes` frame. For `Bytes` itself this is a move,
/// not a copy.
pub(crate) fn to_bytes_frame<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
}

impl<B> Body for GuardBody<B>
where
    B: Body,
    B::Data: Buf,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(body) = this.body.as_pin_mut() {
            return body
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map(to_bytes_frame)));
        }
        if let Some(f) = this.replay.pop_front() {
            return Poll::Ready(Some(f));
        }
        match this.rest {
            Some(rest) => rest
                .as_mut()
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map(to_bytes_frame))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.body {
            Some(b) => b.is_end_stream(),
            None => self.replay.is_empty() && self.rest.as_ref().is_none_or(|r| r.is_end_stream()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(b) => b.size_hint(),
            None => {
                let buffered: u64 = self
                    .replay
                    .iter()
                    .filter_map(|f| {
                        f.as_ref()
                            .ok()
                            .and_then(|f| f.data_ref())
                            .map(|d| d.len() as u64)
                    })
                    .sum();
                match &self.rest {
                    None => SizeHint::with_exact(buffered),
                    Some(r) => {
                        let h = r.size_hint();
                        let mut out = SizeHint::new();
                        out.set_lower(h.lower().saturating_add(buffered));
                        if let Some(u) = h.upper() {
                            out.set_upper(u.saturating_add(buffered));
                        }
                        out
                    }
                }
            }
        }
    }
}

pin_project! {
    /// The response body: the inner service's body untouched, or the
    /// guard's own refusal body.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Option<B>,
        refusal: Option<Bytes>,
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            inner: Some(body),
            refusal: None,
        }
    }

    pub(crate) fn refusal(bytes: Bytes) -> Self {
        Self {
            inner: None,
            refusal: Some(bytes),
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("refusal", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(b) => b.poll_frame(cx),
            None => Poll::Ready(
                this.refusal
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(B::Data::from(b)))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(b) => b.is_end_stream(),
            None => self.refusal.as_ref().is_none_or(|b| b.is_empty()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(self.refusal.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
