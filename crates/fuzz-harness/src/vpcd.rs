//! `vpcd`: the frame reader of the vpcd link (`vsc_vpcd::frame`), which reads whatever the
//! peer on the link's TCP port sends.
//!
//! Input: one byte that picks how the bytes arrive (piece sizes, and reads that are not ready
//! yet), then the byte stream. The reader is polled by hand; whenever a read is not ready its
//! `next()` future is dropped and a new one started, as `select!` does next to a slow card.
//! Property: the messages (up to the first error) are exactly what a plain reference decoding
//! of the stream gives, however the bytes arrive and however often `next()` is cancelled
//! (the reader is cancel-safe); and every payload re-encodes to its frame.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, ReadBuf};
use vsc_vpcd::frame::{self, FrameError, FrameReader, Request};

/// A byte stream that arrives in pieces of 1 to 16 bytes, every other read "not ready yet".
struct Trickle<'a> {
    rest: &'a [u8],
    state: u32,
    stall: bool,
}

impl Trickle<'_> {
    fn next_random(&mut self) -> u32 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        self.state
    }
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = self.next_random();
        if self.stall && r & 1 == 0 {
            // Not ready: the driver below polls again (after dropping the future).
            return Poll::Pending;
        }
        let want = (r as usize >> 1) % 16 + 1;
        let n = want.min(self.rest.len()).min(buf.remaining());
        let (now, later) = self.rest.split_at(n);
        buf.put_slice(now);
        self.rest = later;
        Poll::Ready(Ok(()))
    }
}

/// What one `next()` gave, comparable.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Message(Request),
    Closed,
    Empty,
    UnknownControl(u8),
    Truncated { have: usize, need: usize },
}

fn got(result: Result<Option<Request>, FrameError>) -> Got {
    match result {
        Ok(Some(request)) => Got::Message(request),
        Ok(None) => Got::Closed,
        Err(FrameError::Empty) => Got::Empty,
        Err(FrameError::UnknownControl(b)) => Got::UnknownControl(b),
        Err(FrameError::Truncated { have, need }) => Got::Truncated { have, need },
        Err(FrameError::Io(e)) => panic!("the in-memory stream cannot fail: {e}"),
    }
}

/// The reference: frames taken off the front of the whole stream, up to the first error.
fn reference(mut rest: &[u8]) -> Vec<Got> {
    let mut out = Vec::new();
    loop {
        let (need, payload) = match rest {
            [] => {
                out.push(Got::Closed);
                return out;
            }
            [hi, lo, payload @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), payload),
            [_] => {
                out.push(Got::Truncated { have: 1, need: 2 });
                return out;
            }
        };
        if payload.len() < need {
            out.push(Got::Truncated {
                have: rest.len(),
                need: need + 2,
            });
            return out;
        }
        let (this, later) = payload.split_at(need);
        let got = got(frame::decode(this.to_vec()).map(Some));
        let stop = !matches!(got, Got::Message(_));
        if let Got::Message(Request::Apdu(apdu)) = &got {
            assert_eq!(
                frame::encode(apdu).as_deref(),
                Some(&rest[..need + 2]),
                "an APDU does not re-encode to its frame"
            );
        }
        out.push(got);
        if stop {
            return out;
        }
        rest = later;
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut reader = FrameReader::new(Trickle {
        rest: stream,
        state: u32::from(seed) | 0x5EED_0000,
        stall: seed & 0x80 != 0,
    });
    let mut cx = Context::from_waker(Waker::noop());
    let mut seen = Vec::new();
    loop {
        let result = {
            let mut next = pin!(reader.next());
            let mut polls = 0usize;
            loop {
                // Poll a fresh future at most a few times, then cancel it and start again.
                match next.as_mut().poll(&mut cx) {
                    Poll::Ready(result) => break Some(result),
                    Poll::Pending if polls < usize::from(seed & 3) => polls += 1,
                    Poll::Pending => break None,
                }
            }
        };
        let Some(result) = result else { continue };
        let got = got(result);
        let stop = !matches!(got, Got::Message(_));
        seen.push(got);
        if stop {
            break;
        }
    }
    assert_eq!(
        seen,
        reference(stream),
        "the reader disagrees with the reference decoding"
    );
}
