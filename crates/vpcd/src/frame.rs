//! The vpcd wire format: every message is a 2-byte big-endian length followed by that many
//! bytes of payload.
//!
//! From vpcd to the card a 1-byte payload is a control message ([`Request::PowerOff`],
//! [`Request::PowerOn`], [`Request::Reset`], [`Request::GetAtr`]); anything longer is a command
//! APDU. From the card to vpcd every message is a reply: the ATR (to `GetAtr`) or a response
//! APDU (to a command APDU). Power off, power on and reset get no reply.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest payload the 2-byte length can describe (65 535 bytes, just under 64 KiB).
///
/// This is also the limit for anything read from vpcd: the length field cannot describe more,
/// so no frame vpcd sends can make this side buffer more than one frame plus one read.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;

/// Control byte: power the card off (no reply).
pub const CTRL_OFF: u8 = 0x00;
/// Control byte: power the card on (no reply; vpcd asks for the ATR next).
pub const CTRL_ON: u8 = 0x01;
/// Control byte: warm reset (no reply; vpcd asks for the ATR next).
pub const CTRL_RESET: u8 = 0x02;
/// Control byte: send the ATR (the reply is the ATR as an ordinary frame).
pub const CTRL_ATR: u8 = 0x04;

/// One decoded message from vpcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `00`: power off.
    PowerOff,
    /// `01`: power on.
    PowerOn,
    /// `02`: reset.
    Reset,
    /// `04`: send the ATR.
    GetAtr,
    /// A command APDU (two or more bytes).
    Apdu(Vec<u8>),
}

/// Why a byte stream from vpcd is not a valid sequence of messages.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A frame with length 0. vpcd never sends one (it only sends control bytes and non-empty
    /// APDUs), so the peer is not vpcd or the stream is out of step.
    #[error("empty frame")]
    Empty,
    /// A 1-byte frame that is not one of the four control messages. Whether vpcd would wait
    /// for a reply is unknown, so the stream cannot be trusted to stay in step.
    #[error("unknown control message {0:#04x}")]
    UnknownControl(u8),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes received of the frame (length field included).
        have: usize,
        /// Bytes the frame needs (length field included), if the length was complete.
        need: usize,
    },
    /// Reading the socket failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// Encodes one payload as a frame. Returns `None` if it is longer than [`MAX_PAYLOAD`].
pub fn encode(payload: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(payload.len()).ok()?;
    let mut out = Vec::with_capacity(2 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// Decodes one payload into a [`Request`].
pub fn decode(payload: Vec<u8>) -> Result<Request, FrameError> {
    match payload.as_slice() {
        [] => Err(FrameError::Empty),
        [CTRL_OFF] => Ok(Request::PowerOff),
        [CTRL_ON] => Ok(Request::PowerOn),
        [CTRL_RESET] => Ok(Request::Reset),
        [CTRL_ATR] => Ok(Request::GetAtr),
        [other] => Err(FrameError::UnknownControl(*other)),
        _ => Ok(Request::Apdu(payload)),
    }
}

/// Reads frames from a byte stream.
///
/// [`FrameReader::next`] is cancel-safe: bytes already read stay in the buffer when its future
/// is dropped (it only awaits [`AsyncReadExt::read`], which is cancel-safe), so it can sit in a
/// `select!` next to a slow card.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a byte stream.
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: Vec::new(),
        }
    }

    /// The next message; `Ok(None)` when the peer closed the connection between frames.
    pub async fn next(&mut self) -> Result<Option<Request>, FrameError> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(payload) = self.take_frame() {
                return decode(payload).map(Some);
            }
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(FrameError::Truncated {
                    have: self.buf.len(),
                    need: self.needed().unwrap_or(2),
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Bytes the frame at the head of the buffer needs, once its length field is complete.
    fn needed(&self) -> Option<usize> {
        match self.buf.as_slice() {
            [hi, lo, ..] => Some(2 + usize::from(u16::from_be_bytes([*hi, *lo]))),
            _ => None,
        }
    }

    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let need = self.needed()?;
        if self.buf.len() < need {
            return None;
        }
        let payload = self.buf[2..need].to_vec();
        self.buf.drain(..need);
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn encode_prefixes_big_endian_length() {
        assert_eq!(encode(&[0x90, 0x00]).unwrap(), vec![0, 2, 0x90, 0x00]);
        assert_eq!(encode(&[]).unwrap(), vec![0, 0]);
        let big = vec![0u8; 0x0123];
        assert_eq!(&encode(&big).unwrap()[..2], &[0x01, 0x23]);
        assert_eq!(
            encode(&vec![0u8; MAX_PAYLOAD]).unwrap().len(),
            MAX_PAYLOAD + 2
        );
        assert!(encode(&vec![0u8; MAX_PAYLOAD + 1]).is_none());
    }

    #[test]
    fn decode_control_and_apdus() {
        assert_eq!(decode(vec![0]).unwrap(), Request::PowerOff);
        assert_eq!(decode(vec![1]).unwrap(), Request::PowerOn);
        assert_eq!(decode(vec![2]).unwrap(), Request::Reset);
        assert_eq!(decode(vec![4]).unwrap(), Request::GetAtr);
        assert!(matches!(
            decode(vec![3]),
            Err(FrameError::UnknownControl(3))
        ));
        assert!(matches!(decode(vec![]), Err(FrameError::Empty)));
        // Two bytes is already an APDU as far as the link is concerned; the card judges it.
        assert_eq!(decode(vec![0, 4]).unwrap(), Request::Apdu(vec![0, 4]));
    }

    #[tokio::test]
    async fn reader_reassembles_frames_split_and_joined_across_reads() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(rx);
        let writer = tokio::spawn(async move {
            // One frame in three pieces, then two frames in one write.
            for piece in [&[0u8][..], &[5, 0x00, 0xA4], &[0x04, 0x00, 0x00]] {
                tx.write_all(piece).await.unwrap();
                tx.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            tx.write_all(&[0, 1, 4, 0, 1, 1]).await.unwrap();
        });
        assert_eq!(
            reader.next().await.unwrap(),
            Some(Request::Apdu(vec![0x00, 0xA4, 0x04, 0x00, 0x00]))
        );
        assert_eq!(reader.next().await.unwrap(), Some(Request::GetAtr));
        assert_eq!(reader.next().await.unwrap(), Some(Request::PowerOn));
        writer.await.unwrap();
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reader_reports_truncated_frames() {
        let mut reader = FrameReader::new(&[0u8, 9, 1, 2][..]);
        assert!(matches!(
            reader.next().await,
            Err(FrameError::Truncated { have: 4, need: 11 })
        ));
        let mut reader = FrameReader::new(&[0u8][..]);
        assert!(matches!(
            reader.next().await,
            Err(FrameError::Truncated { have: 1, need: 2 })
        ));
    }

    #[tokio::test]
    async fn reader_accepts_the_largest_frame() {
        let frame = encode(&vec![0x5A; MAX_PAYLOAD]).unwrap();
        let mut reader = FrameReader::new(frame.as_slice());
        assert_eq!(
            reader.next().await.unwrap(),
            Some(Request::Apdu(vec![0x5A; MAX_PAYLOAD]))
        );
        assert_eq!(reader.next().await.unwrap(), None);
    }
}
