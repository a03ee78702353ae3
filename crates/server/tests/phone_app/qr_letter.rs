//! The activation letter the scanning clinician's phone reads with its camera: the QR code as
//! the RA's own tool renders it (`vsc ra card reactivate ID --qr-png`, the PNG an RA prints or
//! sends), turned into a video for Chromium's fake camera.

use std::path::Path;
use std::process::Command;

/// Signs the RA in with the CLI (`vsc ra --home HOME login`, their phone's passcode) and gives
/// the pending card `card_id` a new activation with its QR code written to `png`; the new
/// activation link (the card's earlier code stops working).
pub fn reactivate_with_qr_png(
    vsc: &Path,
    ra_home: &Path,
    passcode: &str,
    card_id: &str,
    png: &Path,
) -> String {
    let login = Command::new(vsc)
        .arg("ra")
        .arg("--home")
        .arg(ra_home)
        .arg("login")
        .env("VSC_PASSCODE", passcode)
        .output()
        .expect("vsc ra login runs");
    assert!(
        login.status.success(),
        "vsc ra login: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    let out = Command::new(vsc)
        .arg("ra")
        .arg("--home")
        .arg(ra_home)
        .args(["--json", "card", "reactivate", card_id, "--qr-png"])
        .arg(png)
        .output()
        .expect("vsc ra card reactivate runs");
    assert!(
        out.status.success(),
        "vsc ra card reactivate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("vsc ra card reactivate --json printed no JSON ({e})"));
    answer["code"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no code.url in {answer}"))
        .to_owned()
}

/// A video for Chromium's fake camera (`--use-file-for-fake-video-capture`, YUV4MPEG2, 640×480)
/// showing the PNG at `png` in the middle of a white page (scaled down by a whole factor when it
/// does not fit), after two seconds of an empty grey view (the camera pointed elsewhere).
pub fn png_to_camera_video(png: &Path, video: &Path) {
    const W: usize = 640;
    const H: usize = 480;
    let file = std::fs::File::open(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("the PNG's image");
    let (width, height) = (frame.width as usize, frame.height as usize);
    let channels = frame.color_type.samples();
    let luma_at = |x: usize, y: usize| -> u8 {
        let p = &pixels[y * frame.line_size + x * channels..][..channels];
        let luma = match channels {
            1 | 2 => u32::from(p[0]),
            // Rec. 601 luma, in integers.
            _ => (299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])) / 1000,
        };
        // Transparent parts are the white paper they are printed on.
        let alpha = if channels.is_multiple_of(2) {
            u32::from(p[channels - 1])
        } else {
            255
        };
        u8::try_from((luma * alpha + 255 * (255 - alpha)) / 255).unwrap_or(u8::MAX)
    };
    let scale = width.div_ceil(H - 40).max(height.div_ceil(H - 40)).max(1);
    let (w, h) = (width / scale, height / scale);
    let (left, top) = ((W - w) / 2, (H - h) / 2);
    let mut page = vec![255u8; W * H];
    for y in 0..h {
        for x in 0..w {
            page[(top + y) * W + left + x] = luma_at(x * scale, y * scale);
        }
    }
    let empty = vec![190u8; W * H];
    let mut out = format!("YUV4MPEG2 W{W} H{H} F5:1 Ip A1:1 C420jpeg\n").into_bytes();
    for luma in std::iter::repeat_n(&empty, 10).chain(std::iter::repeat_n(&page, 5)) {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(luma);
        out.extend(std::iter::repeat_n(128u8, 2 * (W / 2) * (H / 2)));
    }
    std::fs::write(video, out).unwrap();
}
