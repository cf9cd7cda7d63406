//! QR codes of tracked links for print and stores: SVG (scalable, for designers) and PNG
//! (1-bit greyscale, for anything else). Error correction level M (15%): survives a smudged
//! poster while keeping the module count, and so the print size, modest.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the code, as the QR specification requires.
pub const QUIET_ZONE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("text too long for a QR code: {0}")]
    TooLong(String),
    #[error("png encoding failed: {0}")]
    Png(String),
}

/// The module matrix with its quiet zone: `dark[y * size + x]`.
struct Modules {
    size: usize,
    dark: Vec<bool>,
}

fn modules(text: &str) -> Result<Modules, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError::TooLong(e.to_string()))?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET_ZONE;
    let mut dark = vec![false; size * size];
    for y in 0..width {
        for x in 0..width {
            dark[(y + QUIET_ZONE) * size + x + QUIET_ZONE] = colors[y * width + x] == Color::Dark;
        }
    }
    Ok(Modules { size, dark })
}

/// An SVG document of the QR code of `text`, one unit per module (scale it freely).
pub fn svg(text: &str) -> Result<String, QrError> {
    let m = modules(text)?;
    let mut path = String::new();
    for y in 0..m.size {
        let mut x = 0;
        while x < m.size {
            if m.dark[y * m.size + x] {
                let start = x;
                while x < m.size && m.dark[y * m.size + x] {
                    x += 1;
                }
                path.push_str(&format!("M{start} {y}h{}v1H{start}z", x - start));
            } else {
                x += 1;
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {s} {s}\" width=\"{px}\" height=\"{px}\" shape-rendering=\"crispEdges\"><rect width=\"{s}\" height=\"{s}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>\n",
        s = m.size,
        px = m.size * 8
    ))
}

/// A PNG image of the QR code of `text`, `scale` pixels per module (1-bit greyscale).
pub fn png(text: &str, scale: usize) -> Result<Vec<u8>, QrError> {
    let m = modules(text)?;
    let scale = scale.clamp(1, 32);
    let px = m.size * scale;
    let row_bytes = px.div_ceil(8);
    let mut data = vec![0u8; row_bytes * px];
    for y in 0..px {
        for x in 0..px {
            // 1 = white in 1-bit greyscale.
            if !m.dark[(y / scale) * m.size + x / scale] {
                data[y * row_bytes + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, px as u32, px as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        let mut writer = encoder
            .write_header()
            .map_err(|e| QrError::Png(e.to_string()))?;
        writer
            .write_image_data(&data)
            .map_err(|e| QrError::Png(e.to_string()))?;
        writer.finish().map_err(|e| QrError::Png(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str =
        "https://wa.me/5215512345678?text=Hola%2C%20quiero%20informaci%C3%B3n%20%5Bref%3AAB23CD%5D";

    /// Decodes a PNG back to (width, greyscale pixels).
    fn decode_png(bytes: &[u8]) -> (usize, Vec<u8>) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.width, info.height);
        buf.truncate(info.buffer_size());
        (info.width as usize, buf)
    }

    #[test]
    fn png_decodes_back_to_the_link() {
        let bytes = png(URL, 4).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let (w, pixels) = decode_png(&bytes);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, w, |x, y| pixels[y * w + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().unwrap();
        assert_eq!(content, URL);
    }

    #[test]
    fn svg_has_the_same_modules_as_the_png() {
        let s = svg(URL).unwrap();
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        // Rasterise the SVG's runs and decode them.
        let m = modules(URL).unwrap();
        let size = m.size;
        let mut dark = vec![false; size * size];
        let d = s.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
        for run in d.split('M').filter(|r| !r.is_empty()) {
            let (xy, rest) = run.split_once('h').unwrap();
            let (x, y) = xy.split_once(' ').unwrap();
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            let len: usize = rest.split('v').next().unwrap().parse().unwrap();
            for i in 0..len {
                dark[y * size + x + i] = true;
            }
        }
        assert_eq!(dark, m.dark);
        let scale = 4;
        let w = size * scale;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, w, |x, y| {
            if dark[(y / scale) * size + x / scale] {
                0
            } else {
                255
            }
        });
        let (_, content) = img.detect_grids()[0].decode().unwrap();
        assert_eq!(content, URL);
    }

    #[test]
    fn text_too_long_is_an_error_not_a_panic() {
        assert!(matches!(svg(&"x".repeat(5000)), Err(QrError::TooLong(_))));
        assert!(png(&"x".repeat(5000), 4).is_err());
    }
}
