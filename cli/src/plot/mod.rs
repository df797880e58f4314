//! kiln's plots, drawn with plotters into SVG or PNG files.
//!
//! - [`LogitsPlot`]: the logits of a whole vocabulary (`kiln next --plot`), as a
//!   min-max envelope per pixel column with the top token and chosen tokens marked.
//! - [`Heatmap`]: a grid of cells, each with a colour for its value and a token label
//!   (a logit lens: layers × positions, colour = probability, label = top token).
//! - [`Reliability`]: a reliability diagram (confidence bins against their accuracy,
//!   with counts and the diagonal of perfect calibration) for evaluation calibration.
//!
//! Each is a [`Plot`]; [`write()`] picks SVG or PNG from the file name. All text is drawn
//! with fonts embedded in the binary ([`text`]): any token shows as itself, CJK and
//! emoji included, and what the fonts cannot draw shows escaped (`\u{...}`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend, IntoFont, RGBColor, Rectangle, Text, TextStyle};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::Color;

mod backend;
// `lens --plot` and `eval --plot` use part of the heatmap's and the reliability
// diagram's API; the tests use the rest.
#[allow(dead_code)]
mod heatmap;
mod logits;
#[allow(dead_code)]
mod reliability;
#[allow(dead_code)]
pub mod text;

#[allow(unused_imports)]
pub use backend::{check, png, svg, Plot};
#[allow(unused_imports)]
pub use heatmap::{Cell, Heatmap};
pub use logits::{mark_label, LogitsPlot, Mark};
#[allow(unused_imports)]
pub use reliability::{Bin, Reliability};
#[allow(unused_imports)]
pub use text::{cell_token, display, quoted_token, truncate};

/// Text and axes.
pub const INK: RGBColor = RGBColor(40, 40, 40);
pub const WHITE: RGBColor = RGBColor(255, 255, 255);
/// Grid lines.
pub const GRID: RGBColor = RGBColor(225, 225, 225);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// The format named by the file's extension; checked before the model loads, with
    /// the folder the file goes in.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let format = match ext.as_deref() {
            Some("svg") => Format::Svg,
            Some("png") => Format::Png,
            _ => bail!("--plot {}: unknown image format; give a file name ending in .svg or .png", path.display()),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                bail!("--plot {}: folder {} does not exist", path.display(), dir.display());
            }
        }
        Ok(format)
    }
}

/// `plot` as SVG text or PNG bytes.
pub fn encode(plot: &impl Plot, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Svg => Ok(svg(plot)?.into_bytes()),
        Format::Png => png(plot),
    }
}

/// Write `plot` to `path`, as SVG or PNG by the file's extension.
pub fn write(path: &Path, plot: &impl Plot) -> Result<()> {
    let bytes = encode(plot, Format::from_path(path)?)?;
    std::fs::write(path, bytes).with_context(|| format!("writing the plot to {}", path.display()))
}

/// Plot text at the embedded font's native size, anchored at `h`, `v`.
pub(crate) fn font(color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (text::FAMILY, text::plotters_size(text::EM)).into_font().color(&color).pos(Pos::new(h, v))
}

/// Fill the `w` × `h` pixel rectangle whose top-left pixel is (`x`, `y`).
pub(crate) fn fill<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    x: i32,
    y: i32,
    w: i32,
    h: i32,
    c: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if w <= 0 || h <= 0 {
        return Ok(());
    }
    check(area.draw(&Rectangle::new([(x, y), (x + w, y + h)], c.filled())))
}

/// Draw `s` with its anchor point at (`x`, `y`).
pub(crate) fn write_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &str,
    x: i32,
    y: i32,
    style: &TextStyle,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    check(area.draw(&Text::new(s.to_string(), (x, y), style.clone())))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the plot tests: decoding PNGs and reading pixels.

    use super::*;

    /// A decoded RGB image.
    pub struct Image {
        pub width: u32,
        pub height: u32,
        pub pixels: Vec<u8>,
    }

    impl Image {
        pub fn at(&self, x: i32, y: i32) -> RGBColor {
            let i = 3 * (y as usize * self.width as usize + x as usize);
            RGBColor(self.pixels[i], self.pixels[i + 1], self.pixels[i + 2])
        }

        /// Pixels in the rectangle that are not `background`.
        pub fn ink(&self, x: i32, y: i32, w: i32, h: i32, background: RGBColor) -> usize {
            (y..y + h)
                .flat_map(|yy| (x..x + w).map(move |xx| (xx, yy)))
                .filter(|&(xx, yy)| self.at(xx, yy) != background)
                .count()
        }

        /// The rectangle's pixels, row by row.
        pub fn crop(&self, x: i32, y: i32, w: i32, h: i32) -> Vec<RGBColor> {
            (y..y + h).flat_map(|yy| (x..x + w).map(move |xx| (xx, yy))).map(|(xx, yy)| self.at(xx, yy)).collect()
        }
    }

    /// PNG bytes decoded with the `png` crate; they must be 8-bit RGB.
    pub fn decode(bytes: &[u8]) -> Image {
        let mut reader = ::png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a valid PNG");
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.color_type, info.bit_depth), (::png::ColorType::Rgb, ::png::BitDepth::Eight));
        buf.truncate(info.buffer_size());
        Image { width: info.width, height: info.height, pixels: buf }
    }

    /// Write `plot` as `name`.svg and `name`.png into a temporary folder, check both
    /// files (the SVG is a whole document, the PNG decodes to the plot's size), and
    /// return the SVG text and the decoded PNG. With KILN_PLOT_DIR set, the files are
    /// also copied there to look at.
    pub fn render_both(plot: &impl Plot, name: &str) -> (String, Image) {
        let dir = tempfile::tempdir().unwrap();
        let (svg_path, png_path) = (dir.path().join(format!("{name}.svg")), dir.path().join(format!("{name}.png")));
        write(&svg_path, plot).unwrap();
        write(&png_path, plot).unwrap();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        let (w, h) = plot.size();
        assert!(svg.contains(&format!("width=\"{w}\" height=\"{h}\"")), "size");
        // Every text asks for the monospace fonts at the size that matches the layout.
        let font = format!("font-family=\"{}\" font-size=\"13.3\"", backend::SVG_FAMILY);
        assert_eq!(svg.matches(&font).count(), svg.matches("<text ").count(), "{svg}");
        let image = decode(&std::fs::read(&png_path).unwrap());
        assert_eq!((image.width, image.height), (w, h));
        if let Ok(keep) = std::env::var("KILN_PLOT_DIR") {
            for p in [&svg_path, &png_path] {
                std::fs::copy(p, Path::new(&keep).join(p.file_name().unwrap())).unwrap();
            }
        }
        (svg, image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_comes_from_the_extension() {
        assert_eq!(Format::from_path(Path::new("a.svg")).unwrap(), Format::Svg);
        assert_eq!(Format::from_path(Path::new("A.PNG")).unwrap(), Format::Png);
        for bad in ["a.jpg", "a", "svg"] {
            let e = Format::from_path(Path::new(bad)).unwrap_err().to_string();
            assert!(e.contains("give a file name ending in .svg or .png"), "{e}");
        }
        let e = Format::from_path(Path::new("/no/such/dir/a.png")).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
