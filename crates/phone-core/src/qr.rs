//! QR decoding from a camera frame, for browsers without `BarcodeDetector` (the app scans the
//! RA's activation QR). Pure Rust (rqrr), so it runs in WebAssembly and natively alike.

/// Decodes the first readable QR code in a greyscale frame (`luma`, one byte per pixel, rows
/// top to bottom, `width` × `height`). `None` when no code can be read; a frame of the wrong
/// size reads as no code.
pub fn decode_luma(luma: &[u8], width: usize, height: usize) -> Option<String> {
    if width == 0 || height == 0 || width.checked_mul(height)? != luma.len() {
        return None;
    }
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
    image
        .detect_grids()
        .into_iter()
        .find_map(|grid| grid.decode().ok().map(|(_, text)| text))
}

/// Greyscale from RGBA (what a canvas's `getImageData` gives), ITU-R BT.601 weights.
pub fn rgba_to_luma(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4)
        .map(|p| {
            let y = 299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]);
            u8::try_from(y / 1000).unwrap_or(u8::MAX)
        })
        .collect()
}
