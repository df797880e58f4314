//! Logits plots for `kiln next --plot`: the logit of every token id over the whole
//! vocabulary, with the top token (and any `--find` tokens) marked.
//!
//! [`layout`] turns the data into a [`Scene`] of pixel-aligned rectangles and text; the
//! SVG and PNG backends only draw that scene, so both show the same picture and the
//! data → pixel logic is tested without files.

use std::path::Path;

use anyhow::{bail, Context, Result};

mod font;
mod layout;
mod png;
mod svg;

pub use layout::{label, logits_scene, truncate, Mark};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// One thing to draw, in pixels from the top-left corner.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Rect {
        x: i32,
        y: i32,
        w: i32,
        h: i32,
        fill: Rgb,
    },
    /// `x` is where `anchor` sits; `y` is the top of the glyphs, which are `7 * scale`
    /// pixels tall and advance `6 * scale` pixels per character.
    Text {
        x: i32,
        y: i32,
        text: String,
        scale: i32,
        anchor: Anchor,
        fill: Rgb,
    },
}

pub struct Scene {
    pub width: i32,
    pub height: i32,
    pub background: Rgb,
    pub items: Vec<Item>,
}

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

/// Encode `scene` as SVG text or PNG bytes.
pub fn encode(scene: &Scene, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Svg => Ok(svg::render(scene).into_bytes()),
        Format::Png => png::render(scene),
    }
}

pub fn write(path: &Path, scene: &Scene) -> Result<()> {
    let bytes = encode(scene, Format::from_path(path)?)?;
    std::fs::write(path, bytes).with_context(|| format!("writing the plot to {}", path.display()))
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
