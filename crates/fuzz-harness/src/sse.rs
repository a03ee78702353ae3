//! `sse`: the phone's server-sent-events parser (`vsc_authenticator::sse`), which reads
//! whatever the network delivers from the server's device channel.
//!
//! Input: one byte that picks how the stream is cut into pieces, then the stream. Properties:
//! the parser's output does not depend on where the network cut the stream (the events, the
//! error and `retry` are the same fed whole or in the chosen pieces, empty pieces included),
//! and no event's type or id contains a line break (or the id a NUL).

use vsc_authenticator::sse::{SseError, SseEvent, SseParser};

/// Everything a parser produced: the events dispatched before the first error, the error,
/// and the `retry` value at the end.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<SseEvent>,
    error: Option<SseError>,
    retry_ms: Option<u64>,
}

fn feed<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut error = None;
    for piece in pieces {
        match parser.push(piece) {
            Ok(more) => events.extend(more),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Outcome {
        events,
        error,
        retry_ms: parser.retry_ms(),
    }
}

/// Piece lengths from `seed`: 0 to `seed % 16 + 1` bytes each (a small xorshift, so one byte
/// picks a whole cutting pattern).
fn pieces(stream: &[u8], seed: u8) -> Vec<&[u8]> {
    let longest = usize::from(seed % 16) + 1;
    let mut state = u32::from(seed) | 0x9E37_0000;
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = (state as usize % (longest + 1)).min(rest.len());
        let (piece, tail) = rest.split_at(len);
        out.push(piece);
        rest = tail;
    }
    out
}

/// The target.
pub fn run(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = feed(std::iter::once(stream));
    let cut = feed(pieces(stream, seed).into_iter());
    // Fed whole, an error discards the events of that one push; in pieces, the events of the
    // earlier pieces were already returned. Everything else must agree.
    if whole.error.is_some() {
        assert_eq!(whole.error, cut.error, "the error depends on the cutting");
    } else {
        assert_eq!(whole, cut, "the events depend on where the stream was cut");
    }
    for event in &whole.events {
        assert!(
            !event.event.contains(['\n', '\r']),
            "event type with a line break: {event:?}"
        );
        if let Some(id) = &event.id {
            assert!(!id.contains(['\n', '\r', '\0']), "bad event id: {event:?}");
        }
        assert!(!event.data.contains('\r'), "data with CR: {event:?}");
    }
}
