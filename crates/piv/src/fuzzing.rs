//! A byte-script driver for the card, shared by the cargo-fuzz target (`fuzz/`) and the tests,
//! so that both exercise the same interleavings and check the same invariants.
//!
//! A script is one configuration byte followed by frames:
//!
//! * `FF`: [`Card::reset`];
//! * `FE r`: [`Card::resume`] with the [`HostResult`] that `r` selects (see [`host_result`]),
//!   whether or not anything is pending;
//! * `FD hi lo` then that many bytes: [`Card::process`] on a long APDU (a 255-byte chaining
//!   part is 260 bytes);
//! * `n` (below `FD`) then `n` bytes: [`Card::process`] on those bytes.
//!
//! A frame cut short by the end of the script uses the bytes that are there.
//!
//! The configuration byte picks the slot algorithms (bit 0: 9A is RSA instead of EC; bit 1:
//! 9C is EC instead of RSA), the tries left (bits 2-3), and whether 9C has a certificate (bit 4
//! clear).
//!
//! [`run`] never panics; it reports the first broken invariant as an error, and the fuzz target
//! turns that into a crash.

use crate::{Card, CardConfig, HostRequest, HostResult, KeyAlgorithm, Slot, Step};

/// The card configuration a script's first byte selects.
pub fn config(selector: u8) -> CardConfig {
    let ec_or_rsa = |rsa: bool| {
        if rsa {
            KeyAlgorithm::Rsa2048
        } else {
            KeyAlgorithm::EccP256
        }
    };
    // certificate-shaped filler: the card never parses certificates, only wraps them
    let fake_certificate = |len: usize, fill: u8| {
        let mut der = vec![0x30, 0x82];
        der.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_be_bytes());
        der.resize(len + 4, fill);
        der
    };
    CardConfig {
        guid: [0x5A; 16],
        serial: 0x0102_0304,
        auth_certificate: fake_certificate(700, 0xA1),
        auth_algorithm: ec_or_rsa(selector & 1 != 0),
        sign_certificate: if selector & 0x10 == 0 {
            fake_certificate(1100, 0xC1)
        } else {
            Vec::new()
        },
        sign_algorithm: ec_or_rsa(selector & 2 == 0),
        holder_name: "Fuzz Holder".into(),
        organisation: "Fuzz Organisation With A Long Name".into(),
        pin_tries_left: (selector >> 2) & 3,
    }
}

/// The host result that byte `r` selects: `r % 8` picks PIN correct, PIN wrong (`r / 8` tries
/// left), PIN blocked, denied, failed, a well-formed P-256 signature, a 256-byte RSA result, or
/// `r / 8` bytes of junk as a signature.
pub fn host_result(r: u8) -> HostResult {
    match r % 8 {
        0 => HostResult::PinCorrect,
        1 => HostResult::PinWrong { tries_left: r / 8 },
        2 => HostResult::PinBlocked,
        3 => HostResult::Denied,
        4 => HostResult::Failed,
        5 => {
            let mut der = vec![0x30, 0x45, 0x02, 0x21, 0x00];
            der.extend_from_slice(&[0x81; 32]);
            der.extend_from_slice(&[0x02, 0x20]);
            der.extend_from_slice(&[0x42; 32]);
            HostResult::Signature(der)
        }
        6 => HostResult::Signature(vec![0x5C; 256]),
        _ => HostResult::Signature(vec![0x30; usize::from(r / 8)]),
    }
}

/// Runs a script, checking after every step that:
///
/// * every response is 2 to 258 bytes (short APDUs only ever get short responses);
/// * while a host request is pending, `process` answers `69 85`;
/// * a PIN request carries 6 to 8 ASCII digits;
/// * a signature request comes only with the PIN verified, for the slot's configured algorithm,
///   with 32 (EC) or 256 (RSA) bytes of input;
/// * `resume` with nothing pending answers `6F 00`, and clears the pending request otherwise;
/// * after `reset`, the PIN is not verified and nothing is pending.
///
/// Returns what the script made the card do.
pub fn run(script: &[u8]) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let Some((&selector, mut rest)) = script.split_first() else {
        return Ok(summary);
    };
    let config = config(selector);
    let mut card = Card::new(config.clone());
    while let Some((&frame, tail)) = rest.split_first() {
        rest = tail;
        match frame {
            0xFF => {
                card.reset();
                if card.pin_verified() || card.has_pending_request() {
                    return Err("state survived a reset".into());
                }
            }
            0xFE => {
                let (r, tail) = match rest.split_first() {
                    Some((&r, tail)) => (r, tail),
                    None => (4, rest),
                };
                rest = tail;
                let was_pending = card.has_pending_request();
                let reply = card.resume(host_result(r));
                summary.responses += 1;
                check_response(&reply)?;
                if !was_pending && reply != [0x6F, 0x00] {
                    return Err(format!("resume with nothing pending gave {reply:02X?}"));
                }
                if card.has_pending_request() {
                    return Err("resume left a request pending".into());
                }
            }
            n => {
                let len = if n == 0xFD {
                    let (len, tail) = match rest.split_first_chunk::<2>() {
                        Some((len, tail)) => (usize::from(u16::from_be_bytes(*len)), tail),
                        None => (0, &[][..]),
                    };
                    rest = tail;
                    len
                } else {
                    usize::from(n)
                };
                let (apdu, tail) = rest.split_at(len.min(rest.len()));
                rest = tail;
                let was_pending = card.has_pending_request();
                let verified = card.pin_verified();
                match card.process(apdu) {
                    Step::Reply(reply) => {
                        summary.responses += 1;
                        check_response(&reply)?;
                        if was_pending && reply != [0x69, 0x85] {
                            return Err(format!("process while pending gave {reply:02X?}"));
                        }
                    }
                    Step::Host(request) => {
                        if was_pending {
                            return Err("a second host request while one was pending".into());
                        }
                        check_request(&config, verified, &request)?;
                        match request {
                            HostRequest::VerifyPin { .. } => summary.pin_requests += 1,
                            HostRequest::Sign { .. } => summary.sign_requests += 1,
                        }
                        if !card.has_pending_request() {
                            return Err("a host request without a pending state".into());
                        }
                    }
                }
            }
        }
    }
    Ok(summary)
}

/// Counts of what a script made the card do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Response APDUs (from `process` and from `resume`).
    pub responses: usize,
    /// PIN checks asked of the host.
    pub pin_requests: usize,
    /// Signatures asked of the host.
    pub sign_requests: usize,
}

fn check_response(reply: &[u8]) -> Result<(), String> {
    if (2..=258).contains(&reply.len()) {
        Ok(())
    } else {
        Err(format!("response of {} bytes", reply.len()))
    }
}

fn check_request(config: &CardConfig, verified: bool, request: &HostRequest) -> Result<(), String> {
    match request {
        HostRequest::VerifyPin { pin } => {
            if (6..=8).contains(&pin.len()) && pin.iter().all(u8::is_ascii_digit) {
                Ok(())
            } else {
                Err("PIN request with a malformed PIN".into())
            }
        }
        HostRequest::Sign {
            slot,
            algorithm,
            input,
        } => {
            let configured = match slot {
                Slot::Authentication => config.auth_algorithm,
                Slot::Signature => config.sign_algorithm,
            };
            let expected_len = match algorithm {
                KeyAlgorithm::EccP256 => 32,
                KeyAlgorithm::Rsa2048 => 256,
            };
            if !verified {
                Err("signature requested without a verified PIN".into())
            } else if *algorithm != configured {
                Err("signature requested with the wrong algorithm".into())
            } else if input.len() != expected_len {
                Err(format!("signature input of {} bytes", input.len()))
            } else {
                Ok(())
            }
        }
    }
}
