//! A [`Scene`] rasterized into an RGB buffer and encoded with the `png` crate.

use anyhow::{Context, Result};

use super::font::{glyph, text_width, ADVANCE, GLYPH_W};
use super::{Anchor, Item, Rgb, Scene};

/// RGB pixels, row by row from the top.
pub struct Canvas {
    pub width: i32,
    pub height: i32,
    pub pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i32, height: i32, background: Rgb) -> Canvas {
        let (width, height) = (width.max(1), height.max(1));
        let pixels = [background.0, background.1, background.2].repeat((width * height) as usize);
        Canvas { width, height, pixels }
    }

    /// Fill a rectangle, clipped to the canvas.
    fn fill(&mut self, x: i32, y: i32, w: i32, h: i32, c: Rgb) {
        let (x0, x1) = (x.max(0), (x + w).min(self.width));
        let (y0, y1) = (y.max(0), (y + h).min(self.height));
        for row in y0..y1 {
            for col in x0..x1 {
                let i = 3 * (row * self.width + col) as usize;
                self.pixels[i..i + 3].copy_from_slice(&[c.0, c.1, c.2]);
            }
        }
    }

    fn text(&mut self, x: i32, y: i32, text: &str, scale: i32, anchor: Anchor, c: Rgb) {
        let width = text_width(text, scale);
        let mut x = match anchor {
            Anchor::Start => x,
            Anchor::Middle => x - width / 2,
            Anchor::End => x - width,
        };
        for ch in text.chars() {
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                        self.fill(x + col * scale, y + row as i32 * scale, scale, scale, c);
                    }
                }
            }
            x += ADVANCE * scale;
        }
    }

    #[cfg(test)]
    pub fn at(&self, x: i32, y: i32) -> Rgb {
        let i = 3 * (y * self.width + x) as usize;
        Rgb(self.pixels[i], self.pixels[i + 1], self.pixels[i + 2])
    }
}

pub fn rasterize(scene: &Scene) -> Canvas {
    let mut canvas = Canvas::new(scene.width, scene.height, scene.background);
    for item in &scene.items {
        match item {
            Item::Rect { x, y, w, h, fill } => canvas.fill(*x, *y, *w, *h, *fill),
            Item::Text { x, y, text, scale, anchor, fill } => canvas.text(*x, *y, text, *scale, *anchor, *fill),
        }
    }
    canvas
}

pub fn render(scene: &Scene) -> Result<Vec<u8>> {
    let canvas = rasterize(scene);
    let mut bytes = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut bytes, canvas.width as u32, canvas.height as u32);
    encoder.set_color(::png::ColorType::Rgb);
    encoder.set_depth(::png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding the PNG")?;
    writer.write_image_data(&canvas.pixels).context("encoding the PNG")?;
    writer.finish().context("encoding the PNG")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::layout::{label, logits_scene, tests::qwen_like, Axes, Mark, FIND_COLORS, TOP_COLOR};
    use super::*;

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = ::png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.color_type, info.bit_depth), (::png::ColorType::Rgb, ::png::BitDepth::Eight));
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn png_round_trips_with_the_marker_at_the_top_token() {
        let logits = qwen_like(123_456);
        let top = Mark { id: 123_456, label: label(123_456, " milk", 25.0) };
        let find = Mark { id: 7, label: label(7, "é", logits[7]) };
        let bytes = render(&logits_scene(&logits, "I like my coffee with", &top, &[find])).unwrap();
        let (w, h, pixels) = decode(&bytes);
        assert_eq!((w, h), (960, 480));
        let canvas = Canvas { width: w as i32, height: h as i32, pixels };
        let axes = Axes::new(&logits);
        assert_eq!(canvas.at(axes.x(123_456), axes.y(25.0)), TOP_COLOR);
        assert_eq!(canvas.at(axes.x(7), axes.y(logits[7])), FIND_COLORS[0]);
        // Red is only the marker and its label's border, on the marker's rows.
        let all = (0..h as i32).flat_map(|y| (0..w as i32).map(move |x| (x, y)));
        let red: Vec<_> = all.filter(|&(x, y)| canvas.at(x, y) == TOP_COLOR).collect();
        assert!(red.len() > 11 * 11);
        assert!(red.iter().all(|&(_, y)| (y - axes.y(25.0)).abs() <= 11), "{red:?}");
    }

    #[test]
    fn text_is_drawn_with_the_bitmap_font() {
        let scene = Scene {
            width: 20,
            height: 10,
            background: Rgb(255, 255, 255),
            items: vec![Item::Text {
                x: 1,
                y: 1,
                text: "-".into(),
                scale: 1,
                anchor: Anchor::Start,
                fill: Rgb(0, 0, 0),
            }],
        };
        let canvas = rasterize(&scene);
        let ink: Vec<(i32, i32)> = (0..10)
            .flat_map(|y| (0..20).map(move |x| (x, y)))
            .filter(|&(x, y)| canvas.at(x, y) == Rgb(0, 0, 0))
            .collect();
        assert_eq!(ink, (1..6).map(|x| (x, 4)).collect::<Vec<_>>());
    }
}
