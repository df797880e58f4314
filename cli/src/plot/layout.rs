//! Logits over the vocabulary → a [`Scene`]: the one place where data becomes pixels.
//!
//! x is the token id, y the logit. A real vocabulary has far more ids than the plot has
//! pixel columns (151,936 for Qwen2.5), so each column draws the min-max envelope of
//! its ids as one vertical line instead of one point per id.

use super::font::{text_width, ADVANCE, GLYPH_H};
use super::{Anchor, Item, Rgb, Scene};

pub const WIDTH: i32 = 960;
pub const HEIGHT: i32 = 480;
const LEFT: i32 = 84;
const RIGHT: i32 = 24;
const TOP: i32 = 52;
const BOTTOM: i32 = 60;
/// Pixels per font pixel for every text.
const TEXT: i32 = 2;

pub const INK: Rgb = Rgb(40, 40, 40);
const WHITE: Rgb = Rgb(255, 255, 255);
const GRID: Rgb = Rgb(230, 230, 230);
pub const DATA: Rgb = Rgb(96, 150, 110);
pub const TOP_COLOR: Rgb = Rgb(214, 39, 40);
pub const FIND_COLORS: [Rgb; 4] = [Rgb(31, 119, 180), Rgb(255, 127, 14), Rgb(148, 103, 189), Rgb(23, 160, 180)];

/// A token to point out, with the label written next to its marker.
pub struct Mark {
    pub id: usize,
    pub label: String,
}

/// The label "id: token (logit)", the token quoted and shortened if long.
pub fn label(id: usize, token: &str, logit: f32) -> String {
    format!("{id}: {:?} ({logit:.2})", truncate(token, 24))
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

/// Per pixel column, the (min, max) of the finite values whose index falls in it (id
/// `i` of `n` goes to column `i * columns / n`); `None` for a column with no values.
pub fn envelope(values: &[f32], columns: usize) -> Vec<Option<(f32, f32)>> {
    let mut out = vec![None; columns];
    if columns == 0 {
        return out;
    }
    for (i, &v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
        let col = i * columns / values.len();
        out[col] = Some(match out[col] {
            None => (v, v),
            Some((lo, hi)) => (v.min(lo), v.max(hi)),
        });
    }
    out
}

/// Where data lands: token id → pixel column, logit → pixel row.
pub struct Axes {
    pub left: i32,
    pub top: i32,
    /// Plot area size in pixels; `width` is also the number of envelope columns.
    pub width: i32,
    pub height: i32,
    pub n: usize,
    /// The logit range shown, bottom to top (the data plus a margin).
    pub lo: f32,
    pub hi: f32,
}

impl Axes {
    pub fn new(logits: &[f32]) -> Axes {
        let finite = logits.iter().copied().filter(|v| v.is_finite());
        let (min, max) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        let (min, max) = if min <= max { (min, max) } else { (-1.0, 1.0) };
        let span = if max > min { max - min } else { 1.0 };
        Axes {
            left: LEFT,
            top: TOP,
            width: WIDTH - LEFT - RIGHT,
            height: HEIGHT - TOP - BOTTOM,
            n: logits.len().max(1),
            lo: min - 0.05 * span,
            hi: max + 0.1 * span,
        }
    }

    /// The envelope column of `id`, from 0.
    pub fn column(&self, id: usize) -> i32 {
        (id.min(self.n - 1) as u64 * self.width as u64 / self.n as u64) as i32
    }

    pub fn x(&self, id: usize) -> i32 {
        self.left + self.column(id)
    }

    pub fn y(&self, logit: f32) -> i32 {
        let t = (self.hi - logit) / (self.hi - self.lo);
        let t = if t.is_nan() { 1.0 } else { t.clamp(0.0, 1.0) };
        self.top + (t * (self.height - 1) as f32).round() as i32
    }
}

/// About `target` round tick values (1, 2 or 5 times a power of ten apart, at least
/// `min_step`) in [lo, hi], and how many decimals they need.
fn ticks(lo: f64, hi: f64, target: f64, min_step: f64) -> (Vec<f64>, usize) {
    let raw = ((hi - lo) / target).max(min_step).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = [(1.5, 1.0), (3.0, 2.0), (7.0, 5.0)].iter().find(|(below, _)| f < *below).map_or(10.0, |n| n.1);
    let step = mag * nice;
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last).map(|k| if k == 0 { 0.0 } else { k as f64 * step }).collect();
    (ticks, decimals)
}

fn rect(x: i32, y: i32, w: i32, h: i32, fill: Rgb) -> Item {
    Item::Rect { x, y, w, h, fill }
}

fn text(x: i32, y: i32, text: impl Into<String>, anchor: Anchor) -> Item {
    Item::Text { x, y, text: text.into(), scale: TEXT, anchor, fill: INK }
}

/// The whole plot: envelope, axes with ticks, title, and a marker + label for `top`
/// (red) and each of `finds` (other colours). Marks with an id past the logits are skipped.
pub fn logits_scene(logits: &[f32], title: &str, top: &Mark, finds: &[Mark]) -> Scene {
    let axes = Axes::new(logits);
    let (l, t, w, h) = (axes.left, axes.top, axes.width, axes.height);
    let bottom = t + h;
    let half_text = GLYPH_H * TEXT / 2;
    let mut items = Vec::new();

    let (yticks, decimals) = ticks(axes.lo as f64, axes.hi as f64, 6.0, 0.0);
    for v in yticks {
        let y = axes.y(v as f32);
        items.push(rect(l, y, w, 1, GRID));
        items.push(rect(l - 5, y, 5, 1, INK));
        items.push(text(l - 9, y - half_text, format!("{v:.decimals$}"), Anchor::End));
    }
    for (col, column) in envelope(logits, w as usize).into_iter().enumerate() {
        if let Some((lo, hi)) = column {
            let (y0, y1) = (axes.y(hi), axes.y(lo));
            items.push(rect(l + col as i32, y0, 1, y1 - y0 + 1, DATA));
        }
    }
    items.extend([
        rect(l - 1, t - 1, w + 2, 1, INK),
        rect(l - 1, bottom, w + 2, 1, INK),
        rect(l - 1, t - 1, 1, h + 2, INK),
        rect(l + w, t - 1, 1, h + 2, INK),
    ]);
    let (xticks, _) = ticks(0.0, (axes.n - 1) as f64, 7.0, 1.0);
    for v in xticks {
        let x = axes.x(v as usize);
        items.push(rect(x, bottom + 1, 1, 5, INK));
        items.push(text(x, bottom + 10, format!("{v:.0}"), Anchor::Middle));
    }
    let per_column = axes.n.div_ceil(w as usize);
    let xlabel = match per_column {
        1 => "token id".to_string(),
        k => format!("token id (each column: min-max of up to {k} ids)"),
    };
    items.push(text(l + w / 2, HEIGHT - 22, xlabel, Anchor::Middle));
    items.push(text(l - 9, t - 2 * half_text - 8, "logit", Anchor::End));
    let max_title = ((WIDTH - 16) / (ADVANCE * TEXT)) as usize;
    items.push(text(WIDTH / 2, 12, truncate(title, max_title), Anchor::Middle));

    // Labels first (placed so they do not overlap), then markers on top of everything.
    let marks: Vec<(&Mark, Rgb)> = finds
        .iter()
        .zip(FIND_COLORS.iter().cycle().copied())
        .chain([(top, TOP_COLOR)])
        .filter(|(m, _)| m.id < logits.len())
        .collect();
    // Placed from the highest marker down (the top token first on ties), each label
    // pushed below any it would cover, so it stays next to its marker where it can.
    let mut by_height: Vec<&(&Mark, Rgb)> = marks.iter().rev().collect();
    by_height.sort_by_key(|(m, _)| axes.y(logits[m.id]));
    let mut boxes: Vec<(i32, i32, i32, i32)> = Vec::new();
    for &&(mark, color) in &by_height {
        let (cx, cy) = (axes.x(mark.id), axes.y(logits[mark.id]));
        let (bw, bh) = (text_width(&mark.label, TEXT) + 8, GLYPH_H * TEXT + 8);
        let mut bx = cx + 10;
        if bx + bw > l + w {
            bx = (cx - 10 - bw).max(l);
        }
        let mut by = (cy - bh / 2).clamp(t, (bottom - bh).max(t));
        while let Some(b) = boxes.iter().find(|b| bx < b.0 + b.2 && b.0 < bx + bw && by < b.1 + b.3 && b.1 < by + bh) {
            by = b.1 + b.3 + 2;
        }
        boxes.push((bx, by, bw, bh));
        items.push(rect(bx, by, bw, bh, color));
        items.push(rect(bx + 1, by + 1, bw - 2, bh - 2, WHITE));
        items.push(text(bx + 4, by + 4, mark.label.clone(), Anchor::Start));
    }
    for &(mark, color) in &marks {
        let (cx, cy) = (axes.x(mark.id), axes.y(logits[mark.id]));
        items.push(rect(cx - 6, cy - 6, 13, 13, INK));
        items.push(rect(cx - 5, cy - 5, 11, 11, color));
    }
    Scene { width: WIDTH, height: HEIGHT, background: WHITE, items }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A vocabulary-sized curve with one clear top token.
    pub fn qwen_like(top: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..151_936).map(|i| ((i as f32) * 0.37).sin() * 3.0 - (i as f32) * 1e-5).collect();
        v[top] = 25.0;
        v
    }

    fn rects_of(scene: &Scene, color: Rgb) -> Vec<(i32, i32, i32, i32)> {
        let rects = scene.items.iter().filter_map(|i| match *i {
            Item::Rect { x, y, w, h, fill } if fill == color => Some((x, y, w, h)),
            _ => None,
        });
        rects.collect()
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
    fn ticks_are_round_numbers() {
        assert_eq!(ticks(-1.3, 9.2, 6.0, 0.0), (vec![0.0, 2.0, 4.0, 6.0, 8.0], 0));
        assert_eq!(ticks(0.0, 151_935.0, 7.0, 1.0).0.last(), Some(&140_000.0));
        let (small, d) = ticks(0.1, 0.35, 5.0, 0.0);
        let labels: Vec<String> = small.iter().map(|v| format!("{v:.d$}")).collect();
        assert_eq!(labels, ["0.10", "0.15", "0.20", "0.25", "0.30", "0.35"]);
        assert_eq!(ticks(0.0, 0.0, 7.0, 1.0).0, vec![0.0]);
    }

    #[test]
    fn the_top_token_column_is_marked_and_labelled() {
        let logits = qwen_like(100_000);
        let top = Mark { id: 100_000, label: label(100_000, " milk", 25.0) };
        let scene = logits_scene(&logits, "title", &top, &[]);
        let axes = Axes::new(&logits);
        assert_eq!(axes.column(100_000), (100_000 * axes.width as usize / 151_936) as i32);
        let red = rects_of(&scene, TOP_COLOR);
        // The label's border and the marker; the marker is 11 px centred on the point.
        let (x, y, w, h) = *red.last().unwrap();
        assert_eq!((x + w / 2, y + h / 2), (axes.x(100_000), axes.y(25.0)));
        assert!(scene
            .items
            .iter()
            .any(|i| matches!(i, Item::Text { text, .. } if text == "100000: \" milk\" (25.00)")));
        // The envelope column holding the top token reaches up to it.
        let data = rects_of(&scene, DATA);
        let col = data.iter().find(|r| r.0 == axes.x(100_000)).unwrap();
        assert_eq!(col.1, axes.y(25.0));
    }

    #[test]
    fn labels_of_close_marks_do_not_overlap() {
        let logits = qwen_like(5);
        let marks: Vec<Mark> = [6, 7].iter().map(|&id| Mark { id, label: format!("find {id}") }).collect();
        let scene = logits_scene(&logits, "t", &Mark { id: 5, label: "top".into() }, &marks);
        let white: Vec<_> = rects_of(&scene, WHITE);
        assert_eq!(white.len(), 3);
        for (i, a) in white.iter().enumerate() {
            for b in &white[i + 1..] {
                assert!(a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1, "{a:?} overlaps {b:?}");
            }
        }
    }
}
