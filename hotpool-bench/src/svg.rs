//! A line plot on linear axes written as SVG text: one `polyline` per
//! series, circles at marked points, shaded spans of x with a label.
//! Used for memory over time, where the other plots' log axes and category
//! x axis do not fit and the structure of the file is checked by tests.

use std::fmt::Write as _;

/// The plot's size, also its `viewBox`.
pub const WIDTH: f64 = 960.0;
/// The plot's height.
pub const HEIGHT: f64 = 540.0;
/// The chart area: left, right, top and bottom edges.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 750.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 480.0;

/// Line colours, one per series in turn.
const COLOURS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One line of a plot.
#[derive(Debug)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Points circled on the line.
    pub marks: Vec<(f64, f64)>,
}

/// A line plot.
#[derive(Debug)]
pub struct Plot {
    /// The title above the chart.
    pub title: String,
    /// The x axis' description.
    pub x_desc: String,
    /// The y axis' description.
    pub y_desc: String,
    /// Shaded ranges of x, each with a label at its top.
    pub spans: Vec<(f64, f64, String)>,
    /// The lines.
    pub series: Vec<Series>,
}

/// Text with the characters XML gives a meaning escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Round tick positions covering `lo..=hi`, about `n` of them.
fn ticks(lo: f64, hi: f64, n: f64) -> Vec<f64> {
    let raw = (hi - lo) / n;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick's label: no more decimals than the step needs.
fn label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

impl Plot {
    /// The plot as an SVG document.
    pub fn render(&self) -> String {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(self.spans.iter().flat_map(|s| [s.0, s.1]));
        let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        let (x_lo, x_hi) = if x_lo < x_hi {
            (x_lo, x_hi)
        } else {
            (0.0, 1.0)
        };
        let y_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0f64, f64::max);
        let (y_lo, y_hi) = (0.0, if y_max > 0.0 { y_max * 1.08 } else { 1.0 });
        let px = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * (RIGHT - LEFT);
        let py = |y: f64| BOTTOM - (y - y_lo) / (y_hi - y_lo) * (BOTTOM - TOP);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
             viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\">\n\
             <rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n\
             <text x=\"{}\" y=\"28\" font-size=\"18\" text-anchor=\"middle\">{}</text>\n",
            WIDTH / 2.0,
            escape(&self.title)
        );
        for (a, b, text) in &self.spans {
            let (x0, x1) = (px(*a), px(*b));
            let _ = writeln!(
                s,
                "<rect class=\"span\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{}\" \
                 fill=\"#dddddd\"/>\n<text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{}</text>",
                (x1 - x0).max(2.0),
                BOTTOM - TOP,
                x0.max(x1) + 4.0,
                TOP + 14.0,
                escape(text)
            );
        }
        let xt = ticks(x_lo, x_hi, 10.0);
        let x_step = xt.get(1).zip(xt.first()).map_or(1.0, |(b, a)| b - a);
        for x in &xt {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{BOTTOM}\" stroke=\"#eeeeee\"/>\n\
                 <text x=\"{0:.1}\" y=\"{1}\" font-size=\"12\" text-anchor=\"middle\">{2}</text>",
                px(*x),
                BOTTOM + 18.0,
                label(*x, x_step)
            );
        }
        let yt = ticks(y_lo, y_hi, 8.0);
        let y_step = yt.get(1).zip(yt.first()).map_or(1.0, |(b, a)| b - a);
        for y in &yt {
            let _ = writeln!(
                s,
                "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{RIGHT}\" y2=\"{0:.1}\" stroke=\"#eeeeee\"/>\n\
                 <text x=\"{1}\" y=\"{2:.1}\" font-size=\"12\" text-anchor=\"end\">{3}</text>",
                py(*y),
                LEFT - 6.0,
                py(*y) + 4.0,
                label(*y, y_step)
            );
        }
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n\
             <text x=\"{}\" y=\"{}\" font-size=\"14\" text-anchor=\"middle\">{}</text>\n\
             <text x=\"18\" y=\"{}\" font-size=\"14\" text-anchor=\"middle\" \
             transform=\"rotate(-90 18 {})\">{}</text>",
            RIGHT - LEFT,
            BOTTOM - TOP,
            (LEFT + RIGHT) / 2.0,
            BOTTOM + 42.0,
            escape(&self.x_desc),
            (TOP + BOTTOM) / 2.0,
            (TOP + BOTTOM) / 2.0,
            escape(&self.y_desc)
        );
        for (i, line) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let name = escape(&line.name);
            s.push_str("<polyline class=\"series\" fill=\"none\" stroke-width=\"2\" ");
            let _ = write!(s, "stroke=\"{colour}\" data-name=\"{name}\" points=\"");
            for (j, (x, y)) in line.points.iter().enumerate() {
                let sep = if j == 0 { "" } else { " " };
                let _ = write!(s, "{sep}{:.1},{:.1}", px(*x), py(*y));
            }
            s.push_str("\"/>\n");
            for (x, y) in &line.marks {
                let _ = writeln!(
                    s,
                    "<circle class=\"mark\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"none\" \
                     stroke=\"{colour}\"/>",
                    px(*x),
                    py(*y)
                );
            }
            let y = TOP + 20.0 + 24.0 * i as f64;
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" \
                 stroke-width=\"3\"/>\n<text x=\"{}\" y=\"{}\" font-size=\"14\">{name}</text>",
                RIGHT + 16.0,
                RIGHT + 40.0,
                RIGHT + 46.0,
                y + 5.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}
