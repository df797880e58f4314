//! A [`Scene`] as SVG text, written by hand.

use std::fmt::Write;

use super::font::GLYPH_H;
use super::{Anchor, Item, Rgb, Scene};

/// Text escaped for XML content and attribute values; characters XML 1.0 cannot hold
/// (most control characters) become `?`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

pub fn render(scene: &Scene) -> String {
    let (w, h) = (scene.width, scene.height);
    let mut s = String::new();
    // `write!` into a String cannot fail.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" shape-rendering="crispEdges" xml:space="preserve">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="{}"/>"#, hex(scene.background));
    for item in &scene.items {
        match item {
            Item::Rect { x, y, w, h, fill } => {
                let _ = writeln!(s, r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{}"/>"#, hex(*fill));
            }
            Item::Text { x, y, text, scale, anchor, fill } => {
                let anchor = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                // A monospace font at 10 px per scale step advances about 6 px per
                // character like the bitmap font; the baseline is the glyphs' bottom.
                let _ = writeln!(
                    s,
                    r#"<text x="{x}" y="{}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{}" text-anchor="{anchor}" fill="{}">{}</text>"#,
                    y + GLYPH_H * scale,
                    10 * scale,
                    hex(*fill),
                    escape(text)
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::super::layout::{label, logits_scene, tests::qwen_like, Mark, TOP_COLOR};
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(escape(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
        assert_eq!(escape("a\u{1}b ☕"), "a?b ☕");
    }

    #[test]
    fn svg_has_the_marker_and_the_escaped_label() {
        let logits = qwen_like(42);
        let top = Mark { id: 42, label: label(42, "<b>&", 25.0) };
        let svg = render(&logits_scene(&logits, "after \"I like\"", &top, &[]));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"480\""), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(&format!(r#"width="11" height="11" fill="{}""#, hex(TOP_COLOR))), "no marker");
        assert!(svg.contains(">42: &quot;&lt;b&gt;&amp;&quot; (25.00)</text>"), "no escaped label");
        assert!(svg.contains(">after &quot;I like&quot;</text>"), "no title");
        assert!(!svg.contains("<b>"));
    }
}
