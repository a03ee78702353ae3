//! A parser for server-sent events (the `text/event-stream` format of the HTML standard), fed
//! with the body of a streamed response in whatever pieces the network delivers.
//!
//! Lines end with LF, CR or CR LF (a CR LF may be split across two pieces); `event:`, `data:`
//! (repeated fields are joined with LF), `id:` and `retry:` are understood, a line starting with
//! `:` is a comment (the server's keep-alive), a line without a colon is a field with an empty
//! value, and one space after the colon is dropped. A blank line dispatches the event being
//! built, unless it has no data. A UTF-8 byte order mark at the very start is skipped. Bytes are
//! collected per line and only then decoded, so a multi-byte character split between two pieces
//! arrives whole. Lines and events are bounded so that a misbehaving server cannot make the
//! phone hold unbounded memory.

use std::mem;

/// The longest line accepted.
const MAX_LINE: usize = 256 * 1024;
/// The most data one event may carry.
const MAX_EVENT_DATA: usize = 1024 * 1024;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`message` when the server named none).
    pub event: String,
    /// The data lines joined with LF.
    pub data: String,
    /// The last event id seen so far in the stream, if any.
    pub id: Option<String>,
}

/// Why a stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line longer than the limit.
    #[error("a line of the event stream is longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// An event with more data than the limit.
    #[error("an event of the event stream carries more than {MAX_EVENT_DATA} bytes")]
    EventTooLarge,
}

/// The parser's state between pieces.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous piece ended with CR: an LF at the start of this one belongs to it.
    after_cr: bool,
    /// The first line has been seen (the BOM check is done).
    started: bool,
    event: String,
    data: String,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// The reconnection delay the server asked for with `retry:`, milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Feeds the next piece of the stream; returns the events it completed, in order.
    pub fn push(&mut self, piece: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        for &b in piece {
            if mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' => self.end_line(&mut out)?,
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out)?;
                }
                _ => {
                    if self.line.len() >= MAX_LINE {
                        return Err(SseError::LineTooLong);
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(out)
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let raw = mem::take(&mut self.line);
        let mut bytes = raw.as_slice();
        if !mem::replace(&mut self.started, true) {
            bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        }
        let line = String::from_utf8_lossy(bytes);
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_DATA {
                    return Err(SseError::EventTooLarge);
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = mem::take(&mut self.event);
        let mut data = mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        data.pop();
        out.push(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.to_owned(),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    /// Feeds `stream` cut at every given offset; returns everything dispatched.
    fn feed_in_pieces(stream: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
            out.extend(parser.push(&stream[start..cut]).expect("parses"));
            start = cut;
        }
        out
    }

    const STREAM: &str = "\u{FEFF}: keep-alive\n\n\
        event: auth-request\ndata: {\"a\":\ndata:1}\nid: 7\n\n\
        event:auth-request-closed\r\ndata:{\"request_id\":\"r\",\"state\":\"approved\"}\r\n\r\n\
        event: resync\rdata: {}\r\r\
        data\n\n\
        data: caf\u{e9} \u{1F600}\n\n\
        event: ignored-without-data\n\n\
        :\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            ev("auth-request", "{\"a\":\n1}", Some("7")),
            ev(
                "auth-request-closed",
                "{\"request_id\":\"r\",\"state\":\"approved\"}",
                Some("7"),
            ),
            ev("resync", "{}", Some("7")),
            ev("message", "", Some("7")),
            ev("message", "caf\u{e9} \u{1F600}", Some("7")),
        ]
    }

    #[test]
    fn whole_stream_at_once() {
        assert_eq!(feed_in_pieces(STREAM.as_bytes(), &[]), expected());
    }

    #[test]
    fn every_single_cut_gives_the_same_events() {
        let bytes = STREAM.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(feed_in_pieces(bytes, &[cut]), expected(), "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_and_awkward_cuts() {
        let bytes = STREAM.as_bytes();
        let every: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(feed_in_pieces(bytes, &every), expected());
        // Inside the BOM, between CR and LF, inside a four-byte character.
        let bom = 1;
        let crlf = STREAM.find("\r\n").expect("crlf") + 1;
        let emoji = STREAM.find('\u{1F600}').expect("emoji") + 2;
        assert_eq!(feed_in_pieces(bytes, &[bom, crlf, emoji]), expected());
    }

    #[test]
    fn only_a_leading_bom_is_skipped_and_fields_are_exact() {
        let mut p = SseParser::new();
        let out = p
            .push(b"data: x\n\n\xEF\xBB\xBFdata: y\n\nDATA: z\n\ndata:  two spaces\n\nretry: 2500\nretry: x\n")
            .expect("parses");
        assert_eq!(
            out,
            vec![ev("message", "x", None), ev("message", " two spaces", None)]
        );
        assert_eq!(p.retry_ms(), Some(2500));
        // An event is not dispatched until its blank line arrives.
        assert!(p.push(b"data: pending").expect("parses").is_empty());
        assert!(p.push(b"\n").expect("parses").is_empty());
        assert_eq!(
            p.push(b"\n").expect("parses"),
            vec![ev("message", "pending", None)]
        );
        // An id with NUL is ignored; an empty id clears it.
        let out = p
            .push(b"id: a\0b\ndata: 1\n\nid\ndata: 2\n\nid: 9\ndata: 3\n\n")
            .expect("parses");
        assert_eq!(
            out,
            vec![
                ev("message", "1", None),
                ev("message", "2", Some("")),
                ev("message", "3", Some("9"))
            ]
        );
    }

    #[test]
    fn limits() {
        let mut p = SseParser::new();
        let long = vec![b'a'; MAX_LINE + 1];
        assert_eq!(p.push(&long), Err(SseError::LineTooLong));
        let mut p = SseParser::new();
        let line = format!("data: {}\n", "b".repeat(MAX_LINE - 10));
        let mut result = Ok(Vec::new());
        for _ in 0..(MAX_EVENT_DATA / MAX_LINE + 2) {
            result = p.push(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::EventTooLarge));
    }
}
