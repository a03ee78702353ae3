//! QR codes for activation and unlock links: in the terminal (for a phone to scan off the RA's
//! screen), and as PNG or SVG files (to print or send).

use std::path::Path;

use anyhow::{Context, Result};
use qrcode::render::{svg, unicode};
use qrcode::{Color, EcLevel, QrCode};

fn code(data: &str) -> Result<QrCode> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .context("the link is too long for a QR code")
}

/// The QR code as text, two modules per character cell.
pub fn terminal(data: &str) -> Result<String> {
    Ok(code(data)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Writes an SVG file.
pub fn write_svg(data: &str, path: &Path) -> Result<()> {
    let image = code(data)?
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build();
    std::fs::write(path, image).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a greyscale PNG file, 8 pixels a module, with the standard 4-module quiet zone.
pub fn write_png(data: &str, path: &Path) -> Result<()> {
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let qr = code(data)?;
    let width = qr.width();
    let colors = qr.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (mx, my) = (i % width + QUIET, i / width + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let side32 = u32::try_from(side).context("QR image too large")?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), side32, side32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("cannot write PNG header")?;
    writer
        .write_image_data(&pixels)
        .context("cannot write PNG data")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_all_three_forms() {
        let link = "https://127.0.0.1:8443/activate#code=ABCDEFGH-JKMN-PQRS-TVWX-YZ01&fp=00";
        assert!(terminal(link).expect("terminal").lines().count() > 10);
        let dir = tempfile::tempdir().expect("tempdir");
        write_png(link, &dir.path().join("a.png")).expect("png");
        write_svg(link, &dir.path().join("a.svg")).expect("svg");
        let png = std::fs::read(dir.path().join("a.png")).expect("read");
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.path().join("a.svg")).expect("read");
        assert!(svg.contains("<svg"));
    }
}
