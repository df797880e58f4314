//! A heatmap of labelled cells, made for the logit lens: one row per layer, one column
//! per position, each cell coloured by a value (the probability of the layer's top
//! token) and labelled with a token and the value.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend, RGBColor};
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::FontTransform;

use super::text::{self, EM};
use super::{fill, font, write_text, Plot, INK, WHITE};

/// One cell: its label (drawn as [`text::display`] writes it; for a token use
/// [`text::cell_token`]) and the value that gives its colour.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub label: String,
    pub value: f32,
}

/// A grid of `rows.len()` × `columns.len()` cells, row 0 at the top.
///
/// ```ignore
/// // Logit lens: layers × positions, colour = probability of the top token.
/// let mut map = Heatmap::new("Logit lens", rows, columns, cells)?;
/// map.row_title = "layer".into();
/// map.column_title = "input token".into();
/// plot::write(path, &map)?;
/// ```
#[derive(Clone, Debug)]
pub struct Heatmap {
    pub title: String,
    /// Row labels, top to bottom (e.g. layer numbers).
    pub rows: Vec<String>,
    /// Column labels, left to right (e.g. the input tokens, via [`text::cell_token`]).
    pub columns: Vec<String>,
    /// Row-major: cell (r, c) is `cells[r * columns.len() + c]`.
    pub cells: Vec<Cell>,
    /// Written beside the row labels and under the column labels.
    pub row_title: String,
    pub column_title: String,
    /// The values at the two ends of the colour scale (viridis: dark blue to yellow);
    /// values outside are drawn in the end colours, NaN cells grey.
    pub range: (f32, f32),
    /// The colour bar's title.
    pub value_name: String,
    /// Width and height of one cell in pixels: room for about 10 Latin (5 CJK)
    /// characters and a value under them at the default (88, 40).
    pub cell: (u32, u32),
}

/// Cells this small still get their colour, but no text.
const MIN_TEXT_CELL: (u32, u32) = (24, 18);
const MARGIN: i32 = 16;
/// Colour bar width, and the gap between it and the grid.
const BAR: i32 = 20;
const BAR_GAP: i32 = 24;
/// The least height of the colour bar with its title, in pixels.
const MIN_BAR: i32 = 140;
const NAN_GREY: RGBColor = RGBColor(190, 190, 190);

impl Heatmap {
    /// A heatmap with a 0..1 colour scale named "probability" and default cell size;
    /// errors unless there are `rows.len() * columns.len()` cells (and at least one).
    pub fn new(title: impl Into<String>, rows: Vec<String>, columns: Vec<String>, cells: Vec<Cell>) -> Result<Heatmap> {
        let map = Heatmap {
            title: title.into(),
            rows,
            columns,
            cells,
            row_title: String::new(),
            column_title: String::new(),
            range: (0.0, 1.0),
            value_name: "probability".into(),
            cell: (88, 40),
        };
        map.check()?;
        Ok(map)
    }

    /// The grid's shape and the colour range must make sense.
    pub fn check(&self) -> Result<()> {
        let (r, c) = (self.rows.len(), self.columns.len());
        if r == 0 || c == 0 {
            bail!("heatmap {:?}: needs at least one row and one column (got {r} × {c})", self.title);
        }
        if r > 10_000 || c > 10_000 {
            bail!("heatmap {:?}: {r} × {c} cells is too large; plot fewer rows or columns", self.title);
        }
        if r.checked_mul(c) != Some(self.cells.len()) {
            bail!("heatmap {:?}: {r} rows × {c} columns need {} cells, got {}", self.title, r * c, self.cells.len());
        }
        let (lo, hi) = self.range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            bail!("heatmap {:?}: colour range {lo}..{hi} must be finite and increasing", self.title);
        }
        if self.cell.0 == 0 || self.cell.1 == 0 || self.cell.0 > 1000 || self.cell.1 > 1000 {
            bail!("heatmap {:?}: cell size {:?} must be 1..=1000 pixels each way", self.title, self.cell);
        }
        let (w, h) = self.layout().size;
        if w > 30_000 || h > 30_000 {
            bail!(
                "heatmap {:?}: {w} × {h} pixels is too large; plot fewer rows or columns, or smaller cells",
                self.title
            );
        }
        Ok(())
    }

    /// The colour of `value` on the scale.
    pub fn color(&self, value: f32) -> RGBColor {
        if value.is_nan() {
            return NAN_GREY;
        }
        let (lo, hi) = self.range;
        ViridisRGB::get_color_normalized(value.clamp(lo, hi), lo, hi)
    }

    fn layout(&self) -> Layout {
        let label_w = self.rows.iter().map(|r| text::text_width(&text::display(r), EM)).fold(0.0, f64::max);
        let row_title_w = if self.row_title.is_empty() { 0 } else { EM as i32 + 8 };
        let grid_left = MARGIN + row_title_w + label_w.ceil() as i32 + 8;
        let grid_top = MARGIN + EM as i32 + 16;
        let (cw, ch) = (self.cell.0 as i32, self.cell.1 as i32);
        let (gw, gh) = (cw.saturating_mul(self.columns.len() as i32), ch.saturating_mul(self.rows.len() as i32));
        // Colour bar tick labels: at most "-0.00" wide plus the gap.
        let bar_labels = 6 * 8 + 8;
        let width = grid_left + gw + BAR_GAP + BAR + 6 + bar_labels + MARGIN;
        let column_title_h = if self.column_title.is_empty() { 0 } else { EM as i32 + 8 };
        let labels_bottom = grid_top + gh + 8 + EM as i32 + column_title_h;
        // The colour bar needs some height for its ticks and title, even for one row.
        let bar_bottom = grid_top + gh.max(MIN_BAR) + EM as i32 / 2;
        let height = labels_bottom.max(bar_bottom) + MARGIN;
        let title_w = text::text_width(&text::display(&self.title), EM).ceil() as i32 + 2 * MARGIN;
        Layout { grid_left, grid_top, size: (width.max(title_w).max(240) as u32, height as u32) }
    }
}

struct Layout {
    grid_left: i32,
    grid_top: i32,
    size: (u32, u32),
}

/// Dark text on light cells, white on dark ones.
fn text_on(c: RGBColor) -> RGBColor {
    let luminance = 0.299 * c.0 as f32 + 0.587 * c.1 as f32 + 0.114 * c.2 as f32;
    if luminance > 140.0 {
        INK
    } else {
        WHITE
    }
}

/// A value in at most 5 characters where it can.
fn format_value(v: f32) -> String {
    match v.abs() {
        a if a.is_nan() => "nan".into(),
        a if a < 10.0 => format!("{v:.2}"),
        a if a < 1000.0 => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    }
}

impl Plot for Heatmap {
    fn check(&self) -> Result<()> {
        Heatmap::check(self)
    }

    fn size(&self) -> (u32, u32) {
        self.layout().size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        Heatmap::check(self)?;
        let Layout { grid_left, grid_top, size } = self.layout();
        super::check(root.fill(&WHITE))?;
        let (cw, ch) = (self.cell.0 as i32, self.cell.1 as i32);
        let (nr, nc) = (self.rows.len() as i32, self.columns.len() as i32);
        let (gw, gh) = (cw * nc, ch * nr);
        let title = text::fit(&text::display(&self.title), size.0 as f64 - 2.0 * MARGIN as f64, EM);
        write_text(root, &title, size.0 as i32 / 2, MARGIN, &font(INK, HPos::Center, VPos::Top))?;

        let with_text = self.cell.0 >= MIN_TEXT_CELL.0 && self.cell.1 >= MIN_TEXT_CELL.1;
        let two_lines = ch >= 2 * EM as i32 + 4;
        for (i, cell) in self.cells.iter().enumerate() {
            let (r, c) = ((i / nc as usize) as i32, (i % nc as usize) as i32);
            let (x, y) = (grid_left + c * cw, grid_top + r * ch);
            let color = self.color(cell.value);
            fill(root, x, y, cw, ch, color)?;
            if !with_text {
                continue;
            }
            let ink = text_on(color);
            let label = text::fit(&text::display(&cell.label), (cw - 6) as f64, EM);
            let cx = x + cw / 2;
            if two_lines {
                let top = y + (ch - 2 * EM as i32) / 2;
                write_text(root, &label, cx, top, &font(ink, HPos::Center, VPos::Top))?;
                let value = text::fit(&format_value(cell.value), (cw - 6) as f64, EM);
                write_text(root, &value, cx, top + EM as i32, &font(ink, HPos::Center, VPos::Top))?;
            } else {
                write_text(root, &label, cx, y + (ch - EM as i32) / 2, &font(ink, HPos::Center, VPos::Top))?;
            }
        }
        // Thin white lines between cells.
        for c in 1..nc {
            fill(root, grid_left + c * cw, grid_top, 1, gh, WHITE)?;
        }
        for r in 1..nr {
            fill(root, grid_left, grid_top + r * ch, gw, 1, WHITE)?;
        }

        let right = font(INK, HPos::Right, VPos::Center);
        for (r, label) in self.rows.iter().enumerate() {
            let y = grid_top + r as i32 * ch + ch / 2;
            write_text(root, &text::display(label), grid_left - 8, y, &right)?;
        }
        let below = font(INK, HPos::Center, VPos::Top);
        for (c, label) in self.columns.iter().enumerate() {
            let label = text::fit(&text::display(label), (cw - 4).max(8) as f64, EM);
            write_text(root, &label, grid_left + c as i32 * cw + cw / 2, grid_top + gh + 8, &below)?;
        }
        if !self.column_title.is_empty() {
            let y = grid_top + gh + 8 + EM as i32 + 8;
            write_text(root, &text::display(&self.column_title), grid_left + gw / 2, y, &below)?;
        }
        if !self.row_title.is_empty() {
            let style = font(INK, HPos::Center, VPos::Top).transform(FontTransform::Rotate270);
            write_text(root, &text::display(&self.row_title), MARGIN, grid_top + gh / 2, &style)?;
        }

        // The colour bar: the scale from `hi` at the top to `lo` at the bottom.
        let bar_x = grid_left + gw + BAR_GAP;
        let bar_h = gh.max(MIN_BAR) - 2 * EM as i32;
        let bar_top = grid_top + 2 * EM as i32;
        let (lo, hi) = self.range;
        for k in 0..bar_h {
            let v = hi - (hi - lo) * k as f32 / (bar_h - 1).max(1) as f32;
            fill(root, bar_x, bar_top + k, BAR, 1, self.color(v))?;
        }
        let left = font(INK, HPos::Left, VPos::Center);
        for k in 0..=4 {
            let y = bar_top + (bar_h - 1) * k / 4;
            let v = hi - (hi - lo) * k as f32 / 4.0;
            fill(root, bar_x + BAR, y, 4, 1, INK)?;
            write_text(root, &format_value(v), bar_x + BAR + 6, y, &left)?;
        }
        let name = text::fit(&text::display(&self.value_name), (size.0 as i32 - bar_x - MARGIN / 2) as f64, EM);
        write_text(root, &name, bar_x, grid_top, &font(INK, HPos::Left, VPos::Top))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::render_both;
    use super::*;

    fn lens() -> Heatmap {
        let tokens = ["The", " capital", " of", " Japan", " is"];
        let tops = ["東京", " Tokyo", "\u{e000}", " the", "\n"];
        let rows: Vec<String> = (0..3).map(|l| format!("{l}")).collect();
        let columns = tokens.iter().map(|t| text::cell_token(t)).collect();
        let cells = (0..3)
            .flat_map(|l| {
                tops.iter()
                    .enumerate()
                    .map(move |(p, t)| Cell { label: text::cell_token(t), value: (l * 5 + p) as f32 / 14.0 })
            })
            .collect();
        let mut map = Heatmap::new("Logit lens: \"The capital of Japan is\"", rows, columns, cells).unwrap();
        map.row_title = "layer".into();
        map.column_title = "input token".into();
        map
    }

    #[test]
    fn shapes_must_match() {
        let cell = Cell { label: "a".into(), value: 0.5 };
        let e = Heatmap::new("t", vec!["0".into()], vec!["a".into(), "b".into()], vec![cell.clone()]).unwrap_err();
        assert!(e.to_string().contains("1 rows × 2 columns need 2 cells, got 1"), "{e}");
        let e = Heatmap::new("t", vec![], vec![], vec![]).unwrap_err();
        assert!(e.to_string().contains("at least one row"), "{e}");
        let mut map = Heatmap::new("t", vec!["0".into()], vec!["a".into()], vec![cell]).unwrap();
        map.range = (1.0, 1.0);
        assert!(map.check().unwrap_err().to_string().contains("colour range"));
        map.range = (0.0, 1.0);
        map.cell = (1000, 1000);
        map.columns = vec!["a".into(); 40];
        map.cells = vec![Cell { label: "a".into(), value: 0.0 }; 40];
        assert!(map.check().unwrap_err().to_string().contains("too large"));
        map.columns = vec!["a".into(); 20_000];
        map.cells = vec![Cell { label: "a".into(), value: 0.0 }; 20_000];
        let e = super::super::svg(&map).unwrap_err().to_string();
        assert!(e.contains("1 × 20000 cells is too large"), "{e}");
    }

    #[test]
    fn colours_follow_the_range() {
        let map = lens();
        assert_eq!(map.color(0.0), ViridisRGB::get_color_normalized(0.0, 0.0, 1.0));
        assert_eq!(map.color(-5.0), map.color(0.0));
        assert_eq!(map.color(7.0), map.color(1.0));
        assert_ne!(map.color(0.0), map.color(1.0));
        assert_eq!(map.color(f32::NAN), NAN_GREY);
        assert_eq!(format_value(0.5), "0.50");
        assert_eq!(format_value(123.46), "123.5");
        assert_eq!(format_value(-12345.6), "-12346");
    }

    #[test]
    fn svg_and_png_show_every_cell() {
        let map = lens();
        let (svg, image) = render_both(&map, "lens");
        for label in ["東京", "␣Tokyo", "\\u{e000}", "␣the", "\\n", "␣capital", "layer", "input token", "probability"]
        {
            assert!(svg.contains(&format!(">{label}</text>")), "{label} missing from the SVG");
        }
        assert!(svg.contains(">Logit lens: &quot;The capital of Japan is&quot;</text>"));
        // Every cell's colour shows in the PNG, next to the cell's centre (the text is
        // in the middle).
        let layout = map.layout();
        for (i, cell) in map.cells.iter().enumerate() {
            let (r, c) = ((i / 5) as i32, (i % 5) as i32);
            let (x, y) = (layout.grid_left + c * 88 + 3, layout.grid_top + r * 40 + 3);
            assert_eq!(image.at(x, y), map.color(cell.value), "cell {r},{c}");
            // And its text is drawn: the cell is not one flat colour.
            let inside = (layout.grid_left + c * 88 + 2, layout.grid_top + r * 40 + 2, 84, 36);
            let ink = image.ink(inside.0, inside.1, inside.2, inside.3, map.color(cell.value));
            assert!(ink > 40, "cell {r},{c} has {ink} text pixels");
        }
    }
}
