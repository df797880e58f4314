//! Text for the plots: the embedded fonts, what they can draw, and drawing glyphs.
//!
//! All text is drawn with GNU Unifont (cli/assets/fonts, OFL 1.1), compiled into the
//! binary: `unifont` covers the whole Basic Multilingual Plane (Latin, Greek, Cyrillic,
//! CJK, Hangul, symbols...), `unifont_upper` the planes above it (emoji...). The first
//! font that has a glyph for a character draws it. Characters that neither has, and
//! control or invisible characters, are shown escaped (`\u{...}`), so a label never
//! shows a blank or a missing-glyph box.
//!
//! Unifont is a 16-pixel bitmap font stored as square outlines, so at [`EM`] pixels
//! per em every glyph covers whole pixels and the PNG text is sharp.

use std::fmt::Write;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, GlyphId, ScaleFont};

/// Pixels per em of all plot text; Unifont's native size.
pub const EM: f64 = 16.0;

/// The family name plotters knows the embedded font by (the SVG asks the viewer for
/// other fonts: [`super::backend::SVG_FAMILY`]).
pub const FAMILY: &str = "sans-serif";

/// plotters' text size for `em` pixels per em: its SVG backend writes `font-size` as
/// the size / 1.24, and [`super::backend`] draws PNG text at that same em.
pub fn plotters_size(em: f64) -> f64 {
    em * 1.24
}

static UNIFONT: &[u8] = include_bytes!("../../assets/fonts/unifont-15.0.01.otf");
static UNIFONT_UPPER: &[u8] = include_bytes!("../../assets/fonts/unifont_upper-15.0.01.otf");

/// The fallback chain, parsed once.
pub fn fonts() -> &'static [FontRef<'static>] {
    static FONTS: OnceLock<Vec<FontRef<'static>>> = OnceLock::new();
    FONTS.get_or_init(|| {
        // The files are part of the binary and checked by a test, so parsing cannot fail.
        [UNIFONT, UNIFONT_UPPER].iter().map(|b| FontRef::try_from_slice(b).expect("embedded font parses")).collect()
    })
}

/// Register the embedded fonts with plotters under [`FAMILY`] (once; plotters measures
/// text with them when laying out a chart).
pub fn register_with_plotters() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // The same bytes parsed above, so this cannot fail either.
        let _ = plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, UNIFONT);
    });
}

/// The font that draws `c` and its glyph, or `None` when no embedded font has one.
pub fn glyph_for(c: char) -> Option<(&'static FontRef<'static>, GlyphId)> {
    fonts().iter().find_map(|f| {
        let id = f.glyph_id(c);
        (id.0 != 0).then_some((f, id))
    })
}

/// Whether `c` is drawn as itself: printable (what Rust's `{:?}` leaves unescaped) and
/// in one of the embedded fonts.
pub fn drawable(c: char) -> bool {
    (c == ' ' || (!c.is_control() && c.escape_debug().next() != Some('\\'))) && glyph_for(c).is_some()
}

/// `text` with every character that is not [`drawable`] written as an escape: the
/// usual `\n`, `\t`, `\r`, and `\u{XXXX}` for the rest (as Rust's `{:?}` writes them).
pub fn display(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            c if drawable(c) || c == '\\' || c == '"' || c == '\'' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out
}

/// A token as a plot label: quoted like Rust's `{:?}` (so spaces, quotes and escapes
/// are visible) with characters the fonts lack escaped, shortened to `max` characters.
pub fn quoted_token(token: &str, max: usize) -> String {
    display(&format!("{:?}", truncate(token, max)))
}

/// A token for a small heatmap cell: no quotes, a space shown as `␣`, and everything
/// else as [`display`] writes it.
pub fn cell_token(token: &str) -> String {
    display(&token.replace(' ', "\u{2423}"))
}

/// At most `max` characters of `s`, ending in "..." when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// The longest start of `s` (ending in "…" when cut) that is at most `width` pixels wide.
pub fn fit(s: &str, width: f64, em: f64) -> String {
    if text_width(s, em) <= width {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        out.push(c);
        if text_width(&format!("{out}\u{2026}"), em) > width {
            out.pop();
            break;
        }
    }
    out.push('\u{2026}');
    out
}

/// Advance width in pixels of `text` at `em` pixels per em. Characters without a glyph
/// advance like the missing-glyph box of the first font.
pub fn text_width(text: &str, em: f64) -> f64 {
    let base = fonts()[0].as_scaled(em as f32);
    let width: f32 = text
        .chars()
        .map(|c| match glyph_for(c) {
            Some((f, id)) => f.as_scaled(em as f32).h_advance(id),
            None => base.h_advance(GlyphId(0)),
        })
        .sum();
    width as f64
}

/// Ascent and descent (positive, below the baseline) in pixels at `em`.
pub fn vertical_metrics(em: f64) -> (f64, f64) {
    let f = fonts()[0].as_scaled(em as f32);
    (f.ascent() as f64, -f.descent() as f64)
}

/// Rasterize `text` with its baseline starting at `(x, y)` (pixels, y down): calls
/// `pixel(x, y, coverage)` for every covered pixel, coverage in (0, 1].
pub fn rasterize(text: &str, em: f64, (x, y): (f64, f64), mut pixel: impl FnMut(i32, i32, f32)) {
    let mut pen = x as f32;
    for c in text.chars() {
        let (font, id) = glyph_for(c).unwrap_or((&fonts()[0], GlyphId(0)));
        let scaled = font.as_scaled(em as f32);
        let glyph = id.with_scale_and_position(em as f32, ab_glyph::point(pen, y as f32));
        if let Some(outline) = scaled.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                if coverage > 0.0 {
                    pixel(bounds.min.x as i32 + gx as i32, bounds.min.y as i32 + gy as i32, coverage.min(1.0));
                }
            });
        }
        pen += scaled.h_advance(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fonts_cover_many_scripts() {
        for c in "Aé ßΩЖжあア東京한글€→∑☕".chars() {
            assert!(drawable(c), "{c:?} has no glyph");
        }
        // Emoji come from the second font.
        let (font, _) = glyph_for('😀').unwrap();
        assert!(std::ptr::eq(font, &fonts()[1]));
        // Latin is 8 px wide, CJK 16 px, at 16 px per em.
        assert_eq!(text_width("ab", EM), 16.0);
        assert_eq!(text_width("東京", EM), 32.0);
        assert_eq!(vertical_metrics(EM), (14.0, 2.0));
    }

    #[test]
    fn what_cannot_be_drawn_is_escaped() {
        assert_eq!(display("a\nb\t\r"), "a\\nb\\t\\r");
        assert_eq!(display("東京 \"x\" \\"), "東京 \"x\" \\");
        // A zero-width space is invisible, U+E000 (private use) and U+10FFFD have no glyph.
        assert_eq!(display("a\u{200b}\u{e000}\u{10fffd}\u{1}"), "a\\u{200b}\\u{e000}\\u{10fffd}\\u{1}");
        assert_eq!(quoted_token(" milk\n", 24), "\" milk\\n\"");
        assert_eq!(quoted_token("\u{e000}", 24), "\"\\u{e000}\"");
        assert_eq!(cell_token(" the"), "\u{2423}the");
        assert_eq!(truncate("abcdefgh", 6), "abc...");
    }

    #[test]
    fn fit_cuts_to_a_width() {
        assert_eq!(fit("abc", 24.0, EM), "abc");
        // Latin letters and the ellipsis are 8 px each: four letters and "…" make 40.
        assert_eq!(fit("abcdefghijkl", 40.0, EM), "abcd\u{2026}");
        assert_eq!(fit("abcdefghijkl", 47.0, EM), "abcd\u{2026}");
        // CJK is 16 px: two characters and "…".
        assert_eq!(fit("東京都庁", 40.0, EM), "東京\u{2026}");
    }

    #[test]
    fn glyphs_land_on_whole_pixels_with_their_side_bearing() {
        // 'i' has blank columns on its left: its ink must not start at the pen position.
        let mut ink = Vec::new();
        rasterize("i", EM, (0.0, 14.0), |x, y, c| ink.push((x, y, c)));
        assert!(!ink.is_empty());
        assert!(ink.iter().all(|&(_, _, c)| c == 1.0), "Unifont at 16 px is all whole pixels");
        let min_x = ink.iter().map(|p| p.0).min().unwrap();
        assert!(min_x > 0, "left side bearing kept: {min_x}");
        assert!(ink.iter().all(|&(x, y, _)| (0..8).contains(&x) && (0..16).contains(&y)));
    }
}
