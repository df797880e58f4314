//! Rendering a [`Plot`] to SVG text or PNG bytes with plotters' SVG and bitmap backends.
//!
//! Both backends are wrapped in [`Fonted`], which measures all text with the embedded
//! fonts ([`super::text`]) so the layout is the same in both formats, and on the bitmap
//! draws the glyphs itself: per character from the first font that has it, at whole
//! pixels, keeping each glyph's side bearing (plotters' own ab_glyph text drawing uses
//! one font and drops the bearing, which misplaces narrow glyphs like `i`). The SVG
//! keeps text as `<text>` elements with UTF-8 content, which a browser draws with its
//! own fonts, CJK included: monospace fonts sized to Unifont's advance ([`SVG_FAMILY`]).

use anyhow::{anyhow, Context, Result};
use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, DrawingArea, IntoDrawingArea, SVGBackend};
use plotters_backend::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind, FontFamily,
    FontStyle, FontTransform,
};

use super::text;

/// Something kiln can draw: a fixed-size picture drawn onto any plotters backend.
pub trait Plot {
    /// An error when the plot's data cannot be drawn (checked before [`Plot::size`]).
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);

    /// Draw onto `root`, a drawing area of [`Plot::size`] with nothing drawn yet.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// A plotters backend whose text is measured, and on a bitmap drawn, with the embedded
/// fonts. Everything else goes to the wrapped backend unchanged.
pub struct Fonted<B> {
    inner: B,
    /// Draw glyphs as pixels (bitmap) instead of passing text on (SVG).
    raster: bool,
}

/// Where the top-left corner of `text`'s layout box goes for `pos` and the style's
/// anchor, as an offset from `pos`, and the box's size.
fn layout<S: BackendTextStyle>(text: &str, style: &S) -> ((i32, i32), (u32, u32)) {
    let em = style.size() / 1.24;
    let (ascent, descent) = text::vertical_metrics(em);
    let (w, h) = (text::text_width(text, em).round() as i32, (ascent + descent).round() as i32);
    let anchor = style.anchor();
    let dx = match anchor.h_pos {
        HPos::Left => 0,
        HPos::Center => -w / 2,
        HPos::Right => -w,
    };
    let dy = match anchor.v_pos {
        VPos::Top => 0,
        VPos::Center => -h / 2,
        VPos::Bottom => -h,
    };
    ((dx, dy), (w as u32, h as u32))
}

impl<B: DrawingBackend> DrawingBackend for Fonted<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<B::ErrorType>> {
        Ok(layout(text, style).1)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        if !self.raster {
            return self.inner.draw_text(text, &SvgText::new(style), pos);
        }
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let em = style.size() / 1.24;
        let ((dx, dy), _) = layout(text, style);
        let ascent = text::vertical_metrics(em).0;
        let transform = style.transform();
        let mut result = Ok(());
        text::rasterize(text, em, (0.0, ascent), |x, y, coverage| {
            let (x, y) = transform.transform(x + dx, y + dy);
            let alpha = color.alpha * coverage as f64;
            if result.is_ok() {
                result = self.inner.draw_pixel((pos.0 + x, pos.1 + y), BackendColor { alpha, rgb: color.rgb });
            }
        });
        result
    }
}

/// The font families an SVG asks the viewer for: monospace fonts, whose advance of 0.6
/// em is Unifont's 8 pixels for Latin text at [`SVG_PX`], so text measured with Unifont
/// fits the boxes drawn around it in the viewer's font too (CJK comes out a little
/// narrower than Unifont's 16 pixels, never wider).
pub const SVG_FAMILY: &str = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, monospace";
/// SVG font size in pixels for text of [`text::EM`] pixels per em in the PNG.
pub const SVG_PX: f64 = 13.3;

/// A text style as the SVG gets it: [`SVG_FAMILY`], scaled to [`SVG_PX`].
struct SvgText<'a, S> {
    inner: &'a S,
    size: f64,
}

impl<'a, S: BackendTextStyle> SvgText<'a, S> {
    fn new(inner: &'a S) -> Self {
        // plotters writes `font-size` as size / 1.24; rounding to 0.1 px keeps it short.
        let px = (inner.size() / 1.24 * SVG_PX / text::EM * 10.0).round() / 10.0;
        SvgText { inner, size: px * 1.24 }
    }
}

impl<S: BackendTextStyle> BackendTextStyle for SvgText<'_, S> {
    type FontError = S::FontError;

    fn color(&self) -> BackendColor {
        self.inner.color()
    }
    fn size(&self) -> f64 {
        self.size
    }
    fn transform(&self) -> FontTransform {
        self.inner.transform()
    }
    fn style(&self) -> FontStyle {
        self.inner.style()
    }
    fn anchor(&self) -> Pos {
        self.inner.anchor()
    }
    fn family(&self) -> FontFamily<'_> {
        FontFamily::Name(SVG_FAMILY)
    }
    fn layout_box(&self, text: &str) -> Result<((i32, i32), (i32, i32)), S::FontError> {
        self.inner.layout_box(text)
    }
    fn draw<E, F: FnMut(i32, i32, BackendColor) -> Result<(), E>>(
        &self,
        text: &str,
        pos: BackendCoord,
        draw: F,
    ) -> Result<Result<(), E>, S::FontError> {
        self.inner.draw(text, pos, draw)
    }
}

/// Turn plotters' drawing errors (generic in the backend) into anyhow errors.
pub fn check<T, E: std::error::Error + Send + Sync + 'static>(r: Result<T, E>) -> Result<T> {
    r.map_err(|e| anyhow!("drawing the plot: {e}"))
}

/// The plot as an SVG document.
pub fn svg(plot: &impl Plot) -> Result<String> {
    plot.check()?;
    text::register_with_plotters();
    let mut out = String::new();
    {
        let backend = Fonted { inner: SVGBackend::with_string(&mut out, plot.size()), raster: false };
        let root = backend.into_drawing_area();
        plot.draw(&root)?;
        check(root.present())?;
    }
    Ok(preserve_text_spaces(&out))
}

/// plotters writes each text's content on a line of its own (a newline after the
/// opening tag and one before `</text>`), which an SVG viewer shows as spaces once the
/// text's own spaces are kept; drop those newlines and keep the text's spaces, so a
/// token like "  " does not collapse into one space. Attribute values are escaped, so
/// the first `>` after `<text ` ends the opening tag.
fn preserve_text_spaces(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(start) = rest.find("<text ") {
        let Some(end) = rest[start..].find('>').map(|e| start + e + 1) else { break };
        out.push_str(&rest[..end]);
        rest = rest[end..].strip_prefix('\n').unwrap_or(&rest[end..]);
        if let Some(close) = rest.find("</text>") {
            out.push_str(rest[..close].strip_suffix('\n').unwrap_or(&rest[..close]));
            rest = &rest[close..];
        }
    }
    out.push_str(rest);
    out.replacen("<svg ", "<svg xml:space=\"preserve\" ", 1)
}

/// The plot as an 8-bit RGB image: width, height and pixels row by row from the top.
pub fn pixels(plot: &impl Plot) -> Result<(u32, u32, Vec<u8>)> {
    plot.check()?;
    text::register_with_plotters();
    let (w, h) = plot.size();
    let len = (w as usize).checked_mul(h as usize).and_then(|n| n.checked_mul(3));
    let mut buf = vec![0u8; len.context("plot size overflows")?];
    {
        let inner = check(BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut buf, (w, h)))?;
        let root = Fonted { inner, raster: true }.into_drawing_area();
        plot.draw(&root)?;
        check(root.present())?;
    }
    Ok((w, h, buf))
}

/// The plot as PNG bytes (8-bit RGB).
pub fn png(plot: &impl Plot) -> Result<Vec<u8>> {
    let (w, h, pixels) = pixels(plot)?;
    let mut bytes = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(::png::ColorType::Rgb);
    encoder.set_depth(::png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding the PNG")?;
    writer.write_image_data(&pixels).context("encoding the PNG")?;
    writer.finish().context("encoding the PNG")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use plotters::style::text_anchor::{HPos, VPos};

    use super::super::testing::render_both;
    use super::super::{font, write_text, INK, WHITE};
    use super::*;

    /// One line of text, drawn as it is (not escaped), its top-left at (4, 4).
    struct Line(&'static str);

    impl Plot for Line {
        fn size(&self) -> (u32, u32) {
            (80, 24)
        }
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
        where
            DB::ErrorType: 'static,
        {
            check(root.fill(&WHITE))?;
            write_text(root, self.0, 4, 4, &font(INK, HPos::Left, VPos::Top))
        }
    }

    #[test]
    fn cjk_text_is_drawn_with_its_own_glyphs() {
        let (svg, tokyo) = render_both(&Line("東京"), "tokyo");
        assert!(svg.contains(">東京</text>"), "{svg}");
        // Two private-use characters: no font has them, so the missing-glyph box.
        let (_, missing) = render_both(&Line("\u{e000}\u{e001}"), "missing");
        let (_, reversed) = render_both(&Line("京東"), "reversed");
        // The glyphs fill their 32 x 16 cell at (4, 4), nothing lies outside it.
        let cell = |image: &super::super::testing::Image| image.crop(4, 4, 32, 16);
        let ink = tokyo.ink(4, 4, 32, 16, WHITE);
        assert!(ink > 60, "only {ink} dark pixels for 東京");
        assert_eq!(tokyo.ink(0, 0, 80, 24, WHITE), ink, "ink outside the glyph cell");
        assert_ne!(cell(&tokyo), cell(&missing), "東京 drawn as missing-glyph boxes");
        assert_ne!(cell(&tokyo), cell(&reversed), "two different glyphs");
        // The second glyph is the first of the reversed text, 16 px to the left.
        assert_eq!(tokyo.crop(20, 4, 16, 16), reversed.crop(4, 4, 16, 16));
        // Unifont at 16 px: every text pixel is the full text colour.
        assert!(tokyo.crop(0, 0, 80, 24).iter().all(|&c| c == WHITE || c == INK));
    }

    #[test]
    fn svg_text_keeps_its_own_spaces_only() {
        let svg = "<svg width=\"1\">\n<text x=\"1\" fill=\"#000\">\n  two  </text>\n<rect/>\n<text y=\"2\">\nb</text>\n</svg>\n";
        assert_eq!(
            preserve_text_spaces(svg),
            "<svg xml:space=\"preserve\" width=\"1\">\n<text x=\"1\" fill=\"#000\">  two  </text>\n<rect/>\n<text y=\"2\">b</text>\n</svg>\n"
        );
    }
}
