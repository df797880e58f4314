//! The logits of a whole vocabulary (`kiln next --plot`).
//!
//! x is the token id, y the logit. A real vocabulary has far more ids than the plot has
//! pixel columns (151,936 for Qwen2.5), so each column draws the min-max envelope of
//! its ids as one vertical line instead of one point per id.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::{ChartBuilder, DrawingArea, DrawingBackend, RGBColor};
use plotters::style::text_anchor::{HPos, VPos};

use super::text::{self, EM};
use super::{check, fill, font, write_text, Plot, GRID, INK, WHITE};

pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 480;

pub const DATA: RGBColor = RGBColor(96, 150, 110);
pub const TOP_COLOR: RGBColor = RGBColor(214, 39, 40);
pub const FIND_COLORS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(148, 103, 189), RGBColor(23, 160, 180)];

/// A token to point out, with the label written next to its marker.
pub struct Mark {
    pub id: usize,
    /// Shown as [`text::display`] writes it.
    pub label: String,
}

/// The label `id: "token" (logit)`, the token quoted, escaped where the fonts have no
/// glyph, and shortened if long.
pub fn mark_label(id: usize, token: &str, logit: f32) -> String {
    format!("{id}: {} ({logit:.2})", text::quoted_token(token, 24))
}

/// Logits over the vocabulary, 960 × 480 pixels, with the top token marked in red and
/// each of `finds` in its own colour (blue, orange, purple, teal, then again); marks
/// with an id past the logits or a non-finite logit are skipped. Labels that would
/// overlap are pushed down.
pub struct LogitsPlot<'a> {
    /// One logit per token id; non-finite ones are left out of the envelope.
    pub logits: &'a [f32],
    /// Shortened with "…" to the plot's width.
    pub title: String,
    pub top: Mark,
    pub finds: Vec<Mark>,
}

/// Per pixel column, the (min, max) of the finite values whose index falls in it (id
/// `i` of `n` goes to column `i * columns / n`); `None` for a column with no values.
pub fn envelope(values: &[f32], columns: usize) -> Vec<Option<(f32, f32)>> {
    let mut out = vec![None; columns];
    if columns == 0 {
        return out;
    }
    for (i, &v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
        let col = (i as u64 * columns as u64 / values.len() as u64) as usize;
        out[col] = Some(match out[col] {
            None => (v, v),
            Some((lo, hi)) => (v.min(lo), v.max(hi)),
        });
    }
    out
}

/// The logit range shown, bottom to top: the finite data plus a margin.
pub fn value_range(logits: &[f32]) -> (f64, f64) {
    let finite = logits.iter().copied().filter(|v| v.is_finite());
    let (min, max) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (min, max) = if min <= max { (min as f64, max as f64) } else { (-1.0, 1.0) };
    let span = if max > min { max - min } else { 1.0 };
    (min - 0.05 * span, max + 0.1 * span)
}

/// The pixel column of `id` in a plot area `columns` wide, from 0.
pub fn column(id: usize, n: usize, columns: i32) -> i32 {
    (id.min(n.saturating_sub(1)) as u64 * columns as u64 / n.max(1) as u64) as i32
}

impl Plot for LogitsPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        check(root.fill(&WHITE))?;
        let n = self.logits.len().max(1);
        let (lo, hi) = value_range(self.logits);
        let ink = font(INK, HPos::Center, VPos::Top);
        let title = text::fit(&text::display(&self.title), WIDTH as f64 - 16.0, EM);
        let mut chart = check(
            ChartBuilder::on(root)
                .caption(title, ink.clone())
                .margin(12)
                .margin_right(24)
                .x_label_area_size(48)
                .y_label_area_size(72)
                .build_cartesian_2d(0f64..n as f64, lo..hi),
        )?;
        let (xs, _) = chart.plotting_area().get_pixel_range();
        let (left, width) = (xs.start, xs.end - xs.start);
        let per_column = n.div_ceil(width.max(1) as usize);
        let x_desc = match per_column {
            1 => "token id".to_string(),
            k => format!("token id (each column: min-max of up to {k} ids)"),
        };
        check(
            chart
                .configure_mesh()
                .disable_x_mesh()
                .bold_line_style(GRID)
                .light_line_style(WHITE)
                .axis_style(INK)
                .x_labels(8)
                .y_labels(8)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .label_style(ink.clone())
                .axis_desc_style(ink.clone())
                .x_desc(x_desc)
                .y_desc("logit")
                .draw(),
        )?;

        let y = |v: f32| chart.backend_coord(&(0.0, v as f64)).1;
        let x = |id: usize| left + column(id, n, width);
        for (col, span) in envelope(self.logits, width as usize).into_iter().enumerate() {
            if let Some((lo, hi)) = span {
                let (y0, y1) = (y(hi), y(lo));
                fill(root, left + col as i32, y0, 1, y1 - y0 + 1, DATA)?;
            }
        }

        // Labels first (placed so they do not overlap), then markers on top of everything.
        let marks: Vec<(&Mark, RGBColor)> = self
            .finds
            .iter()
            .zip(FIND_COLORS.iter().cycle().copied())
            .chain([(&self.top, TOP_COLOR)])
            .filter(|(m, _)| m.id < self.logits.len() && self.logits[m.id].is_finite())
            .collect();
        // Placed from the highest marker down (the top token first on ties), each label
        // pushed below any it would cover, so it stays next to its marker where it can.
        let (_, ys) = chart.plotting_area().get_pixel_range();
        let (top, bottom) = (ys.start, ys.end);
        let mut by_height: Vec<&(&Mark, RGBColor)> = marks.iter().rev().collect();
        by_height.sort_by_key(|(m, _)| y(self.logits[m.id]));
        let label_style = font(INK, HPos::Left, VPos::Top);
        let mut boxes: Vec<(i32, i32, i32, i32)> = Vec::new();
        for &&(mark, color) in &by_height {
            let (cx, cy) = (x(mark.id), y(self.logits[mark.id]));
            let label = text::display(&mark.label);
            let (bw, bh) = (text::text_width(&label, EM).ceil() as i32 + 10, EM as i32 + 8);
            let mut bx = cx + 10;
            if bx + bw > left + width {
                bx = (cx - 10 - bw).max(left);
            }
            let mut by = (cy - bh / 2).clamp(top, (bottom - bh).max(top));
            while let Some(b) =
                boxes.iter().find(|b| bx < b.0 + b.2 && b.0 < bx + bw && by < b.1 + b.3 && b.1 < by + bh)
            {
                by = b.1 + b.3 + 2;
            }
            boxes.push((bx, by, bw, bh));
            fill(root, bx, by, bw, bh, color)?;
            fill(root, bx + 1, by + 1, bw - 2, bh - 2, WHITE)?;
            write_text(root, &label, bx + 5, by + 4, &label_style)?;
        }
        for &(mark, color) in &marks {
            let (cx, cy) = (x(mark.id), y(self.logits[mark.id]));
            fill(root, cx - 6, cy - 6, 13, 13, INK)?;
            fill(root, cx - 5, cy - 5, 11, 11, color)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub mod tests {
    use super::super::testing::{render_both, Image};
    use super::*;

    /// A vocabulary-sized curve with one clear top token.
    pub fn qwen_like(top: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..151_936).map(|i| ((i as f32) * 0.37).sin() * 3.0 - (i as f32) * 1e-5).collect();
        v[top] = 25.0;
        v
    }

    #[test]
    fn envelope_is_min_and_max_per_column() {
        let v: Vec<f32> = (0..10).map(|i| if i % 2 == 0 { i as f32 } else { -(i as f32) }).collect();
        // 10 ids over 4 columns: ids 0-2, 3-4, 5-7, 8-9.
        assert_eq!(envelope(&v, 4), vec![Some((-1.0, 2.0)), Some((-3.0, 4.0)), Some((-7.0, 6.0)), Some((-9.0, 8.0))]);
        // Fewer ids than columns: empty columns in between; non-finite values skipped.
        assert_eq!(
            envelope(&[1.0, f32::NAN, 3.0], 6),
            vec![Some((1.0, 1.0)), None, None, None, Some((3.0, 3.0)), None]
        );
        assert_eq!(envelope(&[], 3), vec![None, None, None]);
    }

    #[test]
    fn labels_quote_and_escape_the_token() {
        assert_eq!(mark_label(100_000, " milk", 25.0), "100000: \" milk\" (25.00)");
        assert_eq!(mark_label(5, "東京\n", -1.5), "5: \"東京\\n\" (-1.50)");
        assert_eq!(mark_label(6, "\u{e000}", 0.0), "6: \"\\u{e000}\" (0.00)");
    }

    /// The plot area found in the image from its axis lines: the y axis is the first
    /// column that is INK over half the height, the x axis the row; returns (left, top, right, bottom).
    fn plot_area(image: &Image) -> (i32, i32, i32, i32) {
        let (w, h) = (image.width as i32, image.height as i32);
        let ink_rows = |x: i32| (0..h).filter(|&y| image.at(x, y) == INK).collect::<Vec<_>>();
        let left = (0..w).find(|&x| ink_rows(x).len() > h as usize / 2).expect("a y axis");
        let top = ink_rows(left)[0];
        // The x axis is the row that is INK over half the width (ticks hang below it).
        let bottom =
            (0..h).find(|&y| (0..w).filter(|&x| image.at(x, y) == INK).count() > w as usize / 2).expect("an x axis");
        let right = (left + 1..w)
            .take_while(|&x| image.at(x, bottom) == INK)
            .last()
            .expect("the x axis starts right of the y axis");
        (left, top, right, bottom)
    }

    /// The centre of the filled marker of `color`: the mean of the pixels whose 3 × 3
    /// neighbourhood is all `color` (a label's one-pixel border has none).
    fn marker_centre(image: &Image, color: RGBColor) -> (i32, i32) {
        let (w, h) = (image.width as i32, image.height as i32);
        let inner: Vec<(i32, i32)> = (1..h - 1)
            .flat_map(|y| (1..w - 1).map(move |x| (x, y)))
            .filter(|&(x, y)| image.crop(x - 1, y - 1, 3, 3).iter().all(|&c| c == color))
            .collect();
        assert_eq!(inner.len(), 9 * 9, "one 11 x 11 marker of {color:?}");
        let n = inner.len() as i32;
        (inner.iter().map(|p| p.0).sum::<i32>() / n, inner.iter().map(|p| p.1).sum::<i32>() / n)
    }

    #[test]
    fn svg_and_png_show_the_marks_and_labels() {
        let logits = qwen_like(123_456);
        let plot = LogitsPlot {
            logits: &logits,
            title: "Next-token logits after \"I like <my> coffee\"".into(),
            top: Mark { id: 123_456, label: mark_label(123_456, " milk", 25.0) },
            finds: vec![Mark { id: 7, label: mark_label(7, "東京", logits[7]) }],
        };
        let (svg, image) = render_both(&plot, "logits");
        assert!(svg.contains("123456: &quot; milk&quot; (25.00)</text>"), "top label");
        assert!(svg.contains("7: &quot;東京&quot;"), "CJK label as UTF-8 text");
        assert!(svg.contains("Next-token logits after &quot;I like &lt;my&gt; coffee&quot;</text>"), "escaped title");
        assert!(svg.contains("fill=\"#D62728\""), "top marker colour");
        assert!(svg.contains(">logit</text>") && svg.contains(">token id (each column: min-max of up to"), "axes");

        // The markers sit on their tokens' points: the column of the id, the row of the
        // logit, in the plot area the axes show (1 px for where the axis lines sit).
        let (left, top, right, bottom) = plot_area(&image);
        let (lo, hi) = value_range(&logits);
        let expect = |id: usize| {
            let x = left + 1 + column(id, logits.len(), right - left);
            let y = top as f64 + (hi - logits[id] as f64) / (hi - lo) * (bottom - top) as f64;
            (x, y.round() as i32)
        };
        for (id, color) in [(123_456, TOP_COLOR), (7, FIND_COLORS[0])] {
            let (got, want) = (marker_centre(&image, color), expect(id));
            assert!((got.0 - want.0).abs() <= 1 && (got.1 - want.1).abs() <= 1, "{color:?}: {got:?} vs {want:?}");
        }
    }

    #[test]
    fn labels_of_close_marks_do_not_overlap() {
        let logits = qwen_like(5);
        let finds = [6, 7].iter().map(|&id| Mark { id, label: format!("find {id}") }).collect();
        let plot = LogitsPlot { logits: &logits, title: "t".into(), top: Mark { id: 5, label: "top".into() }, finds };
        let (_, image) = render_both(&plot, "close");
        // Each label box has a one-pixel border of its colour, wider than the marker:
        // both borders must be whole (not covered by another box), and the boxes'
        // row spans must not meet.
        let mut spans = Vec::new();
        for color in [TOP_COLOR, FIND_COLORS[0], FIND_COLORS[1]] {
            let rows: Vec<i32> = (0..image.height as i32)
                .filter(|&y| (0..image.width as i32).filter(|&x| image.at(x, y) == color).count() > 30)
                .collect();
            assert_eq!(rows.len(), 2, "top and bottom border of the {color:?} box: {rows:?}");
            spans.push((rows[0], rows[1]));
        }
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                assert!(a.1 < b.0 || b.1 < a.0, "{a:?} overlaps {b:?}");
            }
        }
    }
}
