//! A reliability diagram: how often the model is right at each level of confidence.
//!
//! Predictions are binned by their confidence (the probability the model gave its
//! answer); each bin's bar is the fraction that was correct. A calibrated model's bars
//! follow the diagonal. The red part of a bar is the gap to the bin's mean confidence
//! (above the bar: over-confident), and the expected calibration error (ECE) is the
//! count-weighted mean of those gaps, as in Guo et al., "On Calibration of Modern
//! Neural Networks" (2017).

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::{
    ChartBuilder, DrawingArea, DrawingBackend, LineSeries, RGBColor, Rectangle, SeriesLabelPosition,
};
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::Color;

use super::text::{self, EM};
use super::{check, font, Plot, GRID, INK, WHITE};

pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 640;
pub const BAR_COLOR: RGBColor = RGBColor(31, 119, 180);
pub const GAP_COLOR: RGBColor = RGBColor(214, 39, 40);
const DIAGONAL: RGBColor = RGBColor(120, 120, 120);

/// One confidence bin: predictions with confidence in [lo, hi) (the last bin includes
/// 1.0), how many there were, their mean confidence and the fraction correct.
#[derive(Clone, Debug, PartialEq)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: u64,
    /// Mean confidence of the bin's predictions (the bin's middle when empty).
    pub confidence: f64,
    /// Fraction of the bin's predictions that were correct (0 when empty).
    pub accuracy: f64,
}

/// A reliability diagram over equal-width confidence bins.
#[derive(Clone, Debug)]
pub struct Reliability {
    pub title: String,
    pub bins: Vec<Bin>,
}

impl Reliability {
    /// Bin `confidence[i]` (in [0, 1]) with whether prediction `i` was `correct` into
    /// `bins` equal-width bins over [0, 1]. Errors on different lengths, no bins, or a
    /// confidence that is NaN or outside [0, 1] (naming its index).
    pub fn from_predictions(
        title: impl Into<String>,
        confidence: &[f32],
        correct: &[bool],
        bins: usize,
    ) -> Result<Reliability> {
        if confidence.len() != correct.len() {
            bail!("reliability diagram: {} confidences but {} correct flags", confidence.len(), correct.len());
        }
        if bins == 0 || bins > 1000 {
            bail!("reliability diagram: {bins} bins; give 1 to 1000");
        }
        let mut sums = vec![(0u64, 0f64, 0u64); bins];
        for (i, (&c, &ok)) in confidence.iter().zip(correct).enumerate() {
            if !(0.0..=1.0).contains(&c) {
                bail!("reliability diagram: confidence {c} of prediction {i} is not in [0, 1]");
            }
            let b = ((c as f64 * bins as f64) as usize).min(bins - 1);
            sums[b].0 += 1;
            sums[b].1 += c as f64;
            sums[b].2 += u64::from(ok);
        }
        let bins = sums
            .iter()
            .enumerate()
            .map(|(b, &(count, conf, right))| {
                let (lo, hi) = (b as f64 / sums.len() as f64, (b + 1) as f64 / sums.len() as f64);
                let (confidence, accuracy) = if count == 0 {
                    ((lo + hi) / 2.0, 0.0)
                } else {
                    (conf / count as f64, right as f64 / count as f64)
                };
                Bin { lo, hi, count, confidence, accuracy }
            })
            .collect();
        Ok(Reliability { title: title.into(), bins })
    }

    /// How many predictions the bins hold.
    pub fn total(&self) -> u64 {
        self.bins.iter().map(|b| b.count).sum()
    }

    /// Expected calibration error: Σ count/total × |accuracy − confidence| (0 with no
    /// predictions).
    pub fn ece(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        self.bins.iter().map(|b| b.count as f64 / total as f64 * (b.accuracy - b.confidence).abs()).sum()
    }
}

impl Plot for Reliability {
    /// Bins must lie in [0, 1] with finite confidence and accuracy in [0, 1].
    fn check(&self) -> Result<()> {
        for (i, b) in self.bins.iter().enumerate() {
            let unit = |v: f64| (0.0..=1.0).contains(&v);
            if !(unit(b.lo) && unit(b.hi) && b.lo < b.hi && unit(b.confidence) && unit(b.accuracy)) {
                bail!("reliability diagram {:?}: bin {i} {b:?} is not within [0, 1]", self.title);
            }
        }
        Ok(())
    }

    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        check(root.fill(&WHITE))?;
        let ink = font(INK, HPos::Center, VPos::Top);
        // The title, and under it the summary (kept out of the plot area, where it could
        // cover bars).
        let title = text::fit(&text::display(&self.title), WIDTH as f64 - 16.0, EM);
        super::write_text(root, &title, WIDTH as i32 / 2, 12, &ink)?;
        let summary =
            format!("ECE {:.4} over {} predictions; bars labelled with their counts", self.ece(), self.total());
        super::write_text(root, &summary, WIDTH as i32 / 2, 12 + EM as i32 + 6, &ink)?;
        let mut chart = check(
            ChartBuilder::on(root)
                .margin(16)
                .margin_top(12 + 2 * EM as i32 + 20)
                .margin_right(28)
                .x_label_area_size(48)
                .y_label_area_size(64)
                .build_cartesian_2d(0f64..1f64, 0f64..1.08f64),
        )?;
        check(
            chart
                .configure_mesh()
                .bold_line_style(GRID)
                .light_line_style(WHITE)
                .axis_style(INK)
                .x_labels(11)
                .y_labels(11)
                .x_label_formatter(&|v| format!("{v:.1}"))
                .y_label_formatter(&|v| if *v <= 1.0 + 1e-9 { format!("{v:.1}") } else { String::new() })
                .label_style(ink.clone())
                .axis_desc_style(ink.clone())
                .x_desc("confidence")
                .y_desc("accuracy")
                .draw(),
        )?;

        let filled: Vec<&Bin> = self.bins.iter().filter(|b| b.count > 0).collect();
        let bars = filled.iter().map(|b| Rectangle::new([(b.lo, 0.0), (b.hi, b.accuracy)], BAR_COLOR.filled()));
        check(chart.draw_series(bars))?
            .label("accuracy")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], BAR_COLOR.filled()));
        let outlines = filled.iter().map(|b| Rectangle::new([(b.lo, 0.0), (b.hi, b.accuracy)], INK.stroke_width(1)));
        check(chart.draw_series(outlines))?;
        let gaps = filled.iter().map(|b| {
            let (a, c) = (b.accuracy.min(b.confidence), b.accuracy.max(b.confidence));
            Rectangle::new([(b.lo, a), (b.hi, c)], GAP_COLOR.mix(0.35).filled())
        });
        check(chart.draw_series(gaps))?
            .label("gap to mean confidence")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], GAP_COLOR.mix(0.35).filled()));
        check(chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], DIAGONAL.stroke_width(2))))?
            .label("perfect calibration")
            .legend(|(x, y)| plotters::element::PathElement::new([(x, y), (x + 16, y)], DIAGONAL.stroke_width(2)));

        // Counts above the bars (on a white patch, so the diagonal does not cross
        // them), where there is room for them.
        let (xs, _) = chart.plotting_area().get_pixel_range();
        let bin_px = (xs.end - xs.start) as f64 / self.bins.len().max(1) as f64;
        let above = font(INK, HPos::Center, VPos::Bottom);
        for b in self.bins.iter().filter(|b| b.count > 0) {
            let label = b.count.to_string();
            let w = text::text_width(&label, EM).ceil() as i32;
            if w as f64 > bin_px - 4.0 {
                continue;
            }
            let (x, y) = chart.backend_coord(&((b.lo + b.hi) / 2.0, b.accuracy.max(b.confidence)));
            super::fill(root, x - w / 2 - 2, y - 2 - EM as i32, w + 4, EM as i32, WHITE)?;
            super::write_text(root, &label, x, y - 2, &above)?;
        }

        check(
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.9))
                .border_style(INK)
                .label_font(font(INK, HPos::Left, VPos::Top))
                .draw(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::render_both;
    use super::*;

    #[test]
    fn bins_count_and_average() {
        let conf = [0.05, 0.15, 0.95, 1.0, 0.92, 0.5];
        let right = [false, true, true, true, false, true];
        let r = Reliability::from_predictions("t", &conf, &right, 10).unwrap();
        assert_eq!(r.bins.len(), 10);
        assert_eq!(r.total(), 6);
        let last = &r.bins[9];
        assert_eq!((last.lo, last.hi, last.count), (0.9, 1.0, 3), "1.0 falls in the last bin");
        assert!((last.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert!((last.confidence - (0.95 + 1.0 + 0.92) / 3.0).abs() < 1e-6);
        assert_eq!(r.bins[3].count, 0);
        assert_eq!(r.bins[3].confidence, 0.35);
        // ECE by hand: bins 0, 1, 5, 9.
        let want = (0.05f64 + (1.0 - 0.15) + (1.0 - 0.5) + 3.0 * (last.confidence - last.accuracy).abs()) / 6.0;
        assert!((r.ece() - want).abs() < 1e-6, "{} vs {want}", r.ece());
    }

    #[test]
    fn bad_input_is_an_error() {
        let e = |c: &[f32], ok: &[bool], bins| Reliability::from_predictions("t", c, ok, bins).unwrap_err().to_string();
        assert!(e(&[0.5], &[], 10).contains("1 confidences but 0 correct flags"));
        assert!(e(&[0.5], &[true], 0).contains("0 bins"));
        assert!(e(&[0.5, f32::NAN], &[true, true], 10).contains("confidence NaN of prediction 1"));
        assert!(e(&[1.5], &[true], 10).contains("confidence 1.5 of prediction 0 is not in [0, 1]"));
        assert_eq!(Reliability::from_predictions("t", &[], &[], 5).unwrap().ece(), 0.0);
        let mut r = Reliability::from_predictions("t", &[0.5], &[true], 2).unwrap();
        r.bins[1].accuracy = f64::NAN;
        let e = super::super::png(&r).unwrap_err().to_string();
        assert!(e.contains("bin 1") && e.contains("is not within [0, 1]"), "{e}");
    }

    #[test]
    fn svg_and_png_show_bars_counts_and_the_diagonal() {
        // An over-confident model: right 60% of the time at 0.9 confidence.
        let mut conf = Vec::new();
        let mut right = Vec::new();
        for i in 0..500u32 {
            let c = (i % 100) as f32 / 100.0;
            conf.push(c);
            right.push((i * 7919 % 100) as f32 / 100.0 < c * 0.7);
        }
        let r = Reliability::from_predictions("Calibration of 東京 test", &conf, &right, 10).unwrap();
        let (svg, image) = render_both(&r, "reliability");
        assert!(svg.contains(">Calibration of 東京 test</text>"));
        for label in ["accuracy", "confidence", "perfect calibration", "gap to mean confidence", "50"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label} missing");
        }
        assert!(
            svg.contains(&format!(">ECE {:.4} over 500 predictions; bars labelled with their counts</text>", r.ece()))
        );
        let blue = image.pixels.chunks_exact(3).filter(|p| *p == [BAR_COLOR.0, BAR_COLOR.1, BAR_COLOR.2]).count();
        assert!(blue > 5000, "bars drawn: {blue} pixels");
        let grey = image.pixels.chunks_exact(3).filter(|p| *p == [DIAGONAL.0, DIAGONAL.1, DIAGONAL.2]).count();
        assert!(grey > 500, "diagonal drawn: {grey} pixels");
    }
}
