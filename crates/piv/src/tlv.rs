//! BER-TLV, as far as PIV needs it: writing tag-length-value triples with definite lengths, and
//! reading them back from untrusted bytes without ever indexing out of bounds.
//!
//! Tags are handled as their raw bytes (`5F C1 05` stays three bytes; reading returns the tag as a
//! big-endian `u32`), lengths up to four bytes (`84 xx xx xx xx`) are accepted on input, and the
//! shortest length form is always written.

/// Appends `tag`, the BER length of `value` and `value` to `out`.
pub(crate) fn put(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    put_len(out, value.len());
    out.extend_from_slice(value);
}

/// Returns `tag || len || value` as a new vector.
pub(crate) fn wrap(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + tag.len() + 5);
    put(&mut out, tag, value);
    out
}

/// Appends a definite BER length in its shortest form.
fn put_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let significant: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(&significant);
}

/// One element read from a BER-TLV encoded buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    /// The tag bytes as a big-endian number (`0x5FC105`, `0x7C`).
    pub tag: u32,
    /// The value bytes.
    pub value: &'a [u8],
}

/// Reads one TLV from the front of `input`, returning it and the bytes after it. `None` when
/// the input is empty, truncated, has a tag longer than three bytes or a length longer than four.
pub(crate) fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&first, mut rest) = input.split_first()?;
    let mut tag = u32::from(first);
    if first & 0x1F == 0x1F {
        // multi-byte tag: continuation bytes have bit 8 set, the last one has it clear
        let mut count = 1;
        loop {
            let (&b, tail) = rest.split_first()?;
            rest = tail;
            tag = (tag << 8) | u32::from(b);
            count += 1;
            if count > 3 {
                return None;
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&len_byte, tail) = rest.split_first()?;
    rest = tail;
    let len = if len_byte < 0x80 {
        usize::from(len_byte)
    } else {
        let n = usize::from(len_byte & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let (len_bytes, tail) = rest.split_at_checked(n)?;
        rest = tail;
        len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let (value, rest) = rest.split_at_checked(len)?;
    Some((Tlv { tag, value }, rest))
}

/// Reads a buffer that must consist of exactly one TLV. `None` if it is malformed or followed by
/// anything.
pub(crate) fn read_single(input: &[u8]) -> Option<Tlv<'_>> {
    match read(input)? {
        (tlv, []) => Some(tlv),
        _ => None,
    }
}

/// Reads a buffer that must consist of whole TLVs only. `None` if any of them is malformed.
pub(crate) fn read_all(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut items = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = read(input)?;
        items.push(tlv);
        input = rest;
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(wrap(&[0x70], &[]), [0x70, 0x00]);
        assert_eq!(wrap(&[0x70], &[0; 0x7F])[..2], [0x70, 0x7F]);
        assert_eq!(wrap(&[0x70], &[0; 0x80])[..3], [0x70, 0x81, 0x80]);
        assert_eq!(wrap(&[0x70], &[0; 0xFF])[..3], [0x70, 0x81, 0xFF]);
        assert_eq!(wrap(&[0x70], &[0; 0x100])[..4], [0x70, 0x82, 0x01, 0x00]);
        assert_eq!(
            wrap(&[0x70], &[0; 0x1_0000])[..5],
            [0x70, 0x83, 0x01, 0x00, 0x00]
        );
    }

    #[test]
    fn reads_what_it_writes() {
        for len in [0usize, 1, 0x7F, 0x80, 0xFF, 0x100, 0x1234] {
            let value = vec![0xAB; len];
            let encoded = wrap(&[0x5F, 0xC1, 0x05], &value);
            let tlv = read_single(&encoded).expect("well-formed");
            assert_eq!(tlv.tag, 0x5F_C1_05);
            assert_eq!(tlv.value, &value[..]);
        }
    }

    #[test]
    fn rejects_truncated_and_oversized_input() {
        assert_eq!(read(&[]), None);
        assert_eq!(read(&[0x7C]), None);
        assert_eq!(read(&[0x7C, 0x02, 0x81]), None);
        assert_eq!(read(&[0x7C, 0x81]), None);
        assert_eq!(read(&[0x7C, 0x80]), None, "indefinite length");
        assert_eq!(read(&[0x7C, 0x85, 1, 0, 0, 0, 0]), None);
        assert_eq!(read(&[0x7C, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(read(&[0x5F]), None, "tag cut short");
        assert_eq!(read(&[0x5F, 0xC1]), None, "tag cut short");
        assert_eq!(read(&[0x5F, 0xC1, 0xC1, 0x05, 0x00]), None, "four-byte tag");
        assert_eq!(read_single(&[0x53, 0x00, 0x00]), None, "trailing byte");
    }

    #[test]
    fn reads_sequences() {
        let items = read_all(&[0x82, 0x00, 0x81, 0x02, 1, 2]).expect("two items");
        assert_eq!(
            items,
            [
                Tlv {
                    tag: 0x82,
                    value: &[]
                },
                Tlv {
                    tag: 0x81,
                    value: &[1, 2]
                }
            ]
        );
        assert_eq!(read_all(&[0x82, 0x00, 0x81]), None);
        assert_eq!(read_all(&[]), Some(vec![]));
    }
}
